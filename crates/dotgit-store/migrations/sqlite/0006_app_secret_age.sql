-- When a confidential OAuth app's client secret was issued (the rotation policy ages it).
ALTER TABLE oauth_apps ADD COLUMN secret_created_at INTEGER;
UPDATE oauth_apps SET secret_created_at = created_at WHERE secret_hash IS NOT NULL;
