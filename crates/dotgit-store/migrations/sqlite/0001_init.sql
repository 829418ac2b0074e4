-- dotgit schema v1 (SQLite). Timestamps are Unix seconds (UTC); secrets are SHA-256 hex digests.
CREATE TABLE accounts (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    plan          TEXT NOT NULL CHECK (plan IN ('free', 'pro', 'enterprise')),
    is_operator   INTEGER NOT NULL DEFAULT 0,
    status        TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    status_reason TEXT,
    created_at    INTEGER NOT NULL
);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    account_id   TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    prefix       TEXT NOT NULL,
    secret_hash  TEXT NOT NULL UNIQUE,
    scopes       TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    revoked_at   INTEGER,
    last_used_at INTEGER,
    replaced_by  TEXT,
    rotated_from TEXT
);
CREATE INDEX api_keys_by_account ON api_keys(account_id, created_at);

CREATE TABLE projects (
    account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    slug       TEXT NOT NULL,
    name       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (account_id, slug)
);

CREATE TABLE deployments (
    id           TEXT PRIMARY KEY,
    account_id   TEXT NOT NULL,
    project_slug TEXT NOT NULL,
    ref          TEXT NOT NULL,
    environment  TEXT NOT NULL,
    status       TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    FOREIGN KEY (account_id, project_slug) REFERENCES projects(account_id, slug) ON DELETE CASCADE
);
CREATE INDEX deployments_by_project ON deployments(account_id, project_slug, created_at);

CREATE TABLE teams (
    account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    slug       TEXT NOT NULL,
    name       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (account_id, slug)
);

CREATE TABLE team_members (
    account_id TEXT NOT NULL,
    team_slug  TEXT NOT NULL,
    member_id  TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    added_at   INTEGER NOT NULL,
    PRIMARY KEY (account_id, team_slug, member_id),
    FOREIGN KEY (account_id, team_slug) REFERENCES teams(account_id, slug) ON DELETE CASCADE
);

-- Cache invalidation log: every revocation, rotation and suspension appends a row in the same
-- transaction; every server polls it, so a change made by another node or by the CLI reaches
-- every verification cache within the poll interval.
CREATE TABLE invalidations (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       TEXT NOT NULL,
    target     TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
