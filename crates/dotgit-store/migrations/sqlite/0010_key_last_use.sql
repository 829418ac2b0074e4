-- API keys' last-use times move out of `api_keys` into a narrow table of their own.
-- The last-use writer (`Store::touch_api_keys`, every 5 s) updated one `api_keys` row per key
-- used since its last pass. Rows of ~250 bytes spread over the whole table, so with many keys
-- in use each update dirtied a page of its own: tens of thousands of 4 KiB pages through the
-- WAL and the next checkpoint each pass. Here a row is ~45 bytes, ~90 to a page.
-- No foreign key: keys are never deleted, and a key's use is recorded only after it verified.
CREATE TABLE api_key_last_use (
    key_id TEXT PRIMARY KEY,
    at     INTEGER NOT NULL
) WITHOUT ROWID;

INSERT INTO api_key_last_use (key_id, at)
    SELECT id, last_used_at FROM api_keys WHERE last_used_at IS NOT NULL;

ALTER TABLE api_keys DROP COLUMN last_used_at;
