-- Packed successful authentications (docs/audit.md, "Packed events"; ADR 0014): the
-- `auth.succeeded` events of one credential that one audit batch holds become one row. `pack`
-- holds each event's own fields (id, time, request id, source, user agent); the row's columns
-- hold what they share, its `time` is the earliest event's and `time_last` the latest's. Rows
-- written before this migration, and every other event, have both columns NULL.
ALTER TABLE audit_events ADD COLUMN time_last INTEGER;
ALTER TABLE audit_events ADD COLUMN pack BLOB;
