-- OAuth 2.0 authorization server (RFC 6749 + RFC 9700) and browser sessions.
-- Every secret (client secret, code, access/refresh token, session id) is a SHA-256 hex digest.

-- Registered third-party applications. `redirect_uris` is newline-separated (a validated URI
-- never contains a newline); matching is exact, byte for byte.
CREATE TABLE oauth_apps (
    client_id      TEXT PRIMARY KEY,
    account_id     TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    redirect_uris  TEXT NOT NULL,
    confidential   INTEGER NOT NULL,
    secret_hash    TEXT,
    allowed_scopes TEXT NOT NULL,
    created_at     INTEGER NOT NULL
);
CREATE INDEX oauth_apps_by_account ON oauth_apps(account_id, created_at);

-- What a user authorized an app to do (one row per user and app; `scope` is the union of
-- every approval since it was last revoked). Revoking it revokes every grant below it and
-- keeps the row (revoked_at) so the grants' history stays.
CREATE TABLE oauth_authorizations (
    id         TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    client_id  TEXT NOT NULL REFERENCES oauth_apps(client_id) ON DELETE CASCADE,
    scope      TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    revoked_at INTEGER,
    UNIQUE (account_id, client_id)
);

-- A grant is one redeemed authorization code and the token family it started: every access and
-- refresh token issued from that code or from its rotations. `refresh_expires_at` is fixed at
-- the grant (30 days, absolute); rotation never moves it.
CREATE TABLE oauth_grants (
    id                 TEXT PRIMARY KEY,
    authorization_id   TEXT NOT NULL REFERENCES oauth_authorizations(id) ON DELETE CASCADE,
    account_id         TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    client_id          TEXT NOT NULL REFERENCES oauth_apps(client_id) ON DELETE CASCADE,
    scope              TEXT NOT NULL,
    created_at         INTEGER NOT NULL,
    refresh_expires_at INTEGER NOT NULL,
    revoked_at         INTEGER,
    revoked_reason     TEXT
);
CREATE INDEX oauth_grants_by_authorization ON oauth_grants(authorization_id);

-- Authorization codes: 60 s, single use (`used_at`), bound to client, redirect URI, PKCE
-- challenge, scope and account. `grant_id` names what its redemption issued, so a replay can
-- revoke exactly that.
CREATE TABLE oauth_codes (
    code_hash        TEXT PRIMARY KEY,
    authorization_id TEXT NOT NULL REFERENCES oauth_authorizations(id) ON DELETE CASCADE,
    account_id       TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    client_id        TEXT NOT NULL REFERENCES oauth_apps(client_id) ON DELETE CASCADE,
    redirect_uri     TEXT NOT NULL,
    code_challenge   TEXT NOT NULL,
    scope            TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL,
    used_at          INTEGER,
    grant_id         TEXT
);
CREATE INDEX oauth_codes_by_expiry ON oauth_codes(expires_at);

-- Access (`dgo_`) and refresh (`dgr_`) tokens. A refresh token is single use: `used_at` is set
-- when it is rotated and `replaced_by` names its successor.
CREATE TABLE oauth_tokens (
    id          TEXT PRIMARY KEY,
    token_hash  TEXT NOT NULL UNIQUE,
    kind        TEXT NOT NULL CHECK (kind IN ('access', 'refresh')),
    grant_id    TEXT NOT NULL REFERENCES oauth_grants(id) ON DELETE CASCADE,
    account_id  TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    client_id   TEXT NOT NULL REFERENCES oauth_apps(client_id) ON DELETE CASCADE,
    scope       TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    revoked_at  INTEGER,
    used_at     INTEGER,
    replaced_by TEXT
);
CREATE INDEX oauth_tokens_by_grant ON oauth_tokens(grant_id);

-- Browser sessions (the login the consent page and the dashboard need). Only the digest of the
-- session id is stored; a session ends at `expires_at` (absolute) or after `idle_expires_at`.
CREATE TABLE sessions (
    id_hash         TEXT PRIMARY KEY,
    account_id      TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    created_at      INTEGER NOT NULL,
    last_seen_at    INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    idle_expires_at INTEGER NOT NULL
);
CREATE INDEX sessions_by_expiry ON sessions(expires_at);
