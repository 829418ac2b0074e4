-- OAuth tokens purged in the order they were issued, without an index of their own (docs/adr/0019,
-- second addendum). The purge found ended tokens through two partial indexes, access tokens by
-- expiry and refresh tokens by issue time. Their entries arrived at each index's last page, but
-- every rotation still wrote two more index entries, and a rotation's commit one or two more
-- pages. The table itself is in issue order: `seq` grows with every token. The purge now walks
-- it from where it stopped last, one cursor per kind, and stops at the first token of that
-- kind that has not ended.
--
-- The table is rebuilt for `AUTOINCREMENT`: without it SQLite gives a new row the largest
-- `seq` plus one, so once the newest tokens are deleted (an account or app deleted), a new
-- token could take a `seq` the purge has already walked past, and it would never be purged.
-- With it, no `seq` is given twice.
CREATE TABLE oauth_tokens_new (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT NOT NULL,
    token_hash  TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('access', 'refresh')),
    grant_id    TEXT NOT NULL,
    account_id  TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    client_id   TEXT NOT NULL REFERENCES oauth_apps(client_id) ON DELETE CASCADE,
    scope       TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    revoked_at  INTEGER,
    used_at     INTEGER,
    replaced_by TEXT,
    replaces    INTEGER
);
INSERT INTO oauth_tokens_new (seq, id, token_hash, kind, grant_id, account_id, client_id, scope,
                              created_at, expires_at, revoked_at, used_at, replaced_by, replaces)
SELECT seq, id, token_hash, kind, grant_id, account_id, client_id, scope, created_at,
       expires_at, revoked_at, used_at, replaced_by, replaces FROM oauth_tokens ORDER BY seq;
DROP TABLE oauth_tokens;
ALTER TABLE oauth_tokens_new RENAME TO oauth_tokens;

CREATE UNIQUE INDEX oauth_tokens_successor ON oauth_tokens(replaces) WHERE replaces IS NOT NULL;
