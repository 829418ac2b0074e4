-- OAuth tokens without an index on their digest (docs/adr/0022). The digest is the SHA-256 of
-- 30 random characters, so each new token's entry landed on a random leaf of that index: every
-- refresh-token rotation dirtied two random pages, which went through the WAL at the commit and
-- to the database at the next checkpoint, and the lookup descended the same index. The server
-- now finds a token through a map in memory (digest prefix → rowid, loaded from this table at
-- start) and reads its row by rowid, checking the whole digest; the table is appended to in
-- the order tokens are issued. The table is rebuilt because the index was its UNIQUE
-- constraint's.
--
-- Two more changes ride on the rebuild:
-- * `seq INTEGER PRIMARY KEY` names the rowid, so that a VACUUM keeps it: the map and
--   `replaces` hold rowids. The token's `id` is no longer a key: no statement looks a token up
--   by it (revocation writes the row by `seq`), and its index took two entries a rotation.
-- * A rotation no longer writes the consumed token's row (`used_at`, `replaced_by`). Its
--   successor names it in `replaces`, and a token is used when a successor names it (or, for
--   rotations before this migration, when its `used_at` is set). The consumed rows of a batch
--   of rotations lay on as many pages of the table, each written to the WAL at the commit; the
--   successors' entries in `oauth_tokens_successor` arrive in about the order the tokens were
--   issued, at the index's last pages. The index is UNIQUE: a token has one successor at most.
CREATE TABLE oauth_tokens_new (
    seq         INTEGER PRIMARY KEY,
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
                              created_at, expires_at, revoked_at, used_at, replaced_by)
SELECT rowid, id, token_hash, kind, grant_id, account_id, client_id, scope, created_at,
       expires_at, revoked_at, used_at, replaced_by FROM oauth_tokens ORDER BY rowid;
DROP TABLE oauth_tokens;
ALTER TABLE oauth_tokens_new RENAME TO oauth_tokens;

CREATE INDEX oauth_tokens_access_expiry ON oauth_tokens(expires_at) WHERE kind = 'access';
CREATE INDEX oauth_tokens_refresh_issued ON oauth_tokens(created_at) WHERE kind = 'refresh';
CREATE UNIQUE INDEX oauth_tokens_successor ON oauth_tokens(replaces) WHERE replaces IS NOT NULL;
