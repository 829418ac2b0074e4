-- OAuth tokens without the index by grant (docs/adr/0019, addendum). Every token of a grant sat
-- in `oauth_tokens_by_grant`, so each refresh-token rotation wrote two entries wherever its
-- grant's were: one more random page a rotation, through the WAL and the next checkpoint.
-- Two things used it, and neither needs it now:
-- * revoking a family marked each token revoked. Every check of a token reads its grant's
--   `revoked_at` too, so the grant's alone decides; revoking a family writes the grant only.
-- * the purge deleted an ended grant's tokens by grant. Refresh tokens are now deleted by the
--   time they were issued, through a partial index whose entries arrive in that order (one hot
--   page a refresh): a refresh token ends with its grant, at most 30 days after it was issued.
-- The table is rebuilt because its foreign key to the grants must go with the index: deleting
-- a grant would otherwise search every token for the grant's (SQLite checks a foreign key by
-- reading the child table). A token whose grant is gone is answered as an unknown token, as it
-- was when its row went with the grant.
CREATE TABLE oauth_tokens_new (
    id          TEXT PRIMARY KEY,
    token_hash  TEXT NOT NULL UNIQUE,
    kind        TEXT NOT NULL CHECK (kind IN ('access', 'refresh')),
    grant_id    TEXT NOT NULL,
    account_id  TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    client_id   TEXT NOT NULL REFERENCES oauth_apps(client_id) ON DELETE CASCADE,
    scope       TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    revoked_at  INTEGER,
    used_at     INTEGER,
    replaced_by TEXT
);
INSERT INTO oauth_tokens_new (id, token_hash, kind, grant_id, account_id, client_id, scope,
                              created_at, expires_at, revoked_at, used_at, replaced_by)
SELECT id, token_hash, kind, grant_id, account_id, client_id, scope, created_at, expires_at,
       revoked_at, used_at, replaced_by FROM oauth_tokens ORDER BY rowid;
DROP TABLE oauth_tokens;
ALTER TABLE oauth_tokens_new RENAME TO oauth_tokens;

CREATE INDEX oauth_tokens_access_expiry ON oauth_tokens(expires_at) WHERE kind = 'access';
CREATE INDEX oauth_tokens_refresh_issued ON oauth_tokens(created_at) WHERE kind = 'refresh';
