-- The API-key verification probe (`KEY_PROBE`, every request whose key is not in the
-- verification cache) reads its five key columns from this index alone. Through the unique
-- index on `secret_hash` it found a rowid there and then descended the table's own B-tree for
-- the row: two leaf pages per probe, each a `pread` once the keys outgrow the page cache.
-- Measured over 1M keys (docs/performance.md, session 9): 15-18 % less server CPU per
-- cache-missing request. The unique index stays: it is what enforces one key per digest.
-- Costs: ~140 bytes more per key on disk, and a key's creation, revocation or rotation
-- updates one more index entry (keys change rarely; they are verified on every request).
CREATE INDEX api_keys_verify ON api_keys(secret_hash, account_id, id, scopes, created_at, expires_at, revoked_at);
