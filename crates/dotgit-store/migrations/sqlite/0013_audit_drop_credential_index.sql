-- `audit_rare_by_credential` (migration 0007) served no query: a filter on a credential also
-- matches packs of successes, whose rows carry no single credential (`credential_id IS NULL AND
-- pack IS NOT NULL`, migration 0008), and a partial index of the rare events cannot answer that.
-- Such a filter reads the account's index, or the type index when it names a rare type
-- (tests/plans.rs). The index still cost every rare event a random page: each refresh-token
-- rotation writes an `oauth.token_refreshed` event, and its entry landed wherever its grant's
-- entries were (docs/performance.md, session 12: ~12 % of a rotation).
DROP INDEX audit_rare_by_credential;
