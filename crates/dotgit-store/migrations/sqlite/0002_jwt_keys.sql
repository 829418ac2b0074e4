-- Customer JWT public keys (JWT Configuration) and single-use `jti` replay tracking.
CREATE TABLE jwt_keys (
    kid                  TEXT PRIMARY KEY,
    account_id           TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name                 TEXT NOT NULL,
    issuer               TEXT NOT NULL,
    public_key_pem       TEXT NOT NULL,
    thumbprint           TEXT NOT NULL,
    allowed_scopes       TEXT NOT NULL,
    max_lifetime_seconds INTEGER NOT NULL,
    single_use           INTEGER NOT NULL DEFAULT 0,
    created_at           INTEGER NOT NULL
);
CREATE INDEX jwt_keys_by_account ON jwt_keys(account_id, created_at);

-- A single-use token's jti is kept until the token could no longer be accepted (exp + leeway).
CREATE TABLE jwt_jti (
    kid        TEXT NOT NULL,
    jti        TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (kid, jti)
);
CREATE INDEX jwt_jti_by_expiry ON jwt_jti(expires_at);
