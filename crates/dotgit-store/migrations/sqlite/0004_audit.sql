-- Append-only, hash-chained audit log (SPEC §4 "Audit").
CREATE TABLE audit_events (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    id            TEXT NOT NULL UNIQUE,
    time          INTEGER NOT NULL,
    request_id    TEXT NOT NULL,
    type          TEXT NOT NULL,
    account_id    TEXT,
    credential_id TEXT,
    source_ip     TEXT,
    user_agent    TEXT,
    outcome       TEXT NOT NULL,
    reason        TEXT,
    prev_hash     TEXT NOT NULL,
    hash          TEXT NOT NULL
);
CREATE INDEX audit_by_account ON audit_events(account_id, seq);
CREATE INDEX audit_by_credential ON audit_events(credential_id, seq);
CREATE INDEX audit_by_type ON audit_events(type, seq);

-- No update or delete path, not even by mistake: the database refuses them.
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END;

-- Networks (/24 for IPv4, /48 for IPv6) each credential has been used from: anomaly detection.
CREATE TABLE credential_networks (
    credential_id TEXT NOT NULL,
    network       TEXT NOT NULL,
    first_seen    INTEGER NOT NULL,
    PRIMARY KEY (credential_id, network)
);

-- Per-account choice: revoke an API key automatically when an anomaly involves it.
ALTER TABLE accounts ADD COLUMN anomaly_auto_revoke INTEGER NOT NULL DEFAULT 0;
-- Whether the expiry of a key has been recorded in the audit log.
ALTER TABLE api_keys ADD COLUMN expiry_audited INTEGER NOT NULL DEFAULT 0;
