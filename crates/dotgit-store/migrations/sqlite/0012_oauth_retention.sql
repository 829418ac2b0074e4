-- Ended OAuth tokens and grants are deleted a day after they end (`Store::purge_ended_oauth`,
-- docs/oauth.md "Retention"); before, every token ever issued stayed, two rows a refresh.
-- Access tokens are found by their expiry: a partial index of access tokens alone, whose
-- expiries grow with the time they were issued at, so each new entry lands at the index's end
-- (one hot page, not one more random page per refresh). Refresh tokens end with their grant
-- and go with it: grants are found by the end of their refresh lifetime.
CREATE INDEX oauth_tokens_access_expiry ON oauth_tokens(expires_at) WHERE kind = 'access';
CREATE INDEX oauth_grants_refresh_expiry ON oauth_grants(refresh_expires_at);
