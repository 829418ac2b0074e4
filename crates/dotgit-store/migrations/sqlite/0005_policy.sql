-- Per-account key rotation policy (SPEC §4 "Rotation") and per-key scope usage (least privilege).
ALTER TABLE accounts ADD COLUMN rotation_policy_days INTEGER NOT NULL DEFAULT 90;
ALTER TABLE accounts ADD COLUMN rotation_policy_enforce INTEGER NOT NULL DEFAULT 0;

CREATE TABLE credential_scope_usage (
    credential_id TEXT NOT NULL,
    scope         TEXT NOT NULL,
    last_used_at  INTEGER NOT NULL,
    PRIMARY KEY (credential_id, scope)
);
