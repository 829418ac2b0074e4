-- The keys whose expiry is due to be recorded (`Store::record_expired_api_keys`, every 5 s).
-- Without this index that statement scanned the whole `api_keys` table inside a write
-- transaction: 0.3 s of a core every 5 s over 1M keys, holding SQLite's write lock meanwhile.
-- Partial: a key leaves it once its expiry is recorded or it is revoked, so it holds only keys
-- that carry an expiry and are still live.
CREATE INDEX api_keys_expiry_due ON api_keys(expires_at)
    WHERE expiry_audited = 0 AND revoked_at IS NULL AND expires_at IS NOT NULL;
