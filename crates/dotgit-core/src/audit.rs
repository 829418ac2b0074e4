//! Audit events (SPEC §4 "Audit", §6 audit event): what happened, when, to which account and
//! credential (by id — never a secret), from where, with which outcome and detailed reason.
//!
//! What must hold: events are append-only and chained — each stored event carries
//! `hash = SHA-256(prev_hash ‖ canonical(event))`, so changing, removing or reordering a stored
//! event breaks every later link and `dotgit audit verify` finds it.

use sha2::{Digest, Sha256};

/// Event types.
pub mod types {
    /// A credential was accepted.
    pub const AUTH_SUCCEEDED: &str = "auth.succeeded";
    /// A credential was refused (the reason says why).
    pub const AUTH_FAILED: &str = "auth.failed";
    /// A valid credential of a suspended account was refused.
    pub const AUTH_SUSPENDED: &str = "auth.suspended";
    /// A valid credential lacked the scope a route needs.
    pub const SCOPE_DENIED: &str = "scope.denied";
    /// A source crossed the failed-authentication limit.
    pub const RATE_LIMIT_TRIPPED: &str = "rate_limit.tripped";
    /// A credential used up its hourly request budget.
    pub const BUDGET_EXHAUSTED: &str = "rate_limit.budget_exhausted";
    /// Account created.
    pub const ACCOUNT_CREATED: &str = "account.created";
    /// Account suspended.
    pub const ACCOUNT_SUSPENDED: &str = "account.suspended";
    /// Suspension lifted.
    pub const ACCOUNT_UNSUSPENDED: &str = "account.unsuspended";
    /// Account security settings changed.
    pub const ACCOUNT_SETTINGS_CHANGED: &str = "account.settings_changed";
    /// API key issued.
    pub const API_KEY_CREATED: &str = "api_key.created";
    /// API key rotated (the event names the old key; the reason names the new one).
    pub const API_KEY_ROTATED: &str = "api_key.rotated";
    /// API key revoked.
    pub const API_KEY_REVOKED: &str = "api_key.revoked";
    /// API key reached its expiry.
    pub const API_KEY_EXPIRED: &str = "api_key.expired";
    /// JWT public key registered.
    pub const JWT_KEY_REGISTERED: &str = "jwt_key.registered";
    /// JWT public key deleted.
    pub const JWT_KEY_DELETED: &str = "jwt_key.deleted";
    /// A credential was used from a network it was never used from before.
    pub const ANOMALY_NEW_NETWORK: &str = "anomaly.new_network";
    /// Many failed attempts against one account's credentials in a short window.
    pub const ANOMALY_FAILURE_BURST: &str = "anomaly.failure_burst";
    /// A revoked or expired credential was presented: it may have leaked.
    pub const ANOMALY_REVOKED_CREDENTIAL_USED: &str = "anomaly.revoked_credential_used";
    /// A credential unused for 30+ days became active.
    pub const ANOMALY_DORMANT_CREDENTIAL_ACTIVE: &str = "anomaly.dormant_credential_active";
    /// A rotated OAuth refresh token was presented again.
    pub const ANOMALY_REFRESH_TOKEN_REUSE: &str = "anomaly.refresh_token_reuse";
    /// A user approved an OAuth app (an authorization code was issued).
    pub const OAUTH_AUTHORIZED: &str = "oauth.authorized";
    /// An authorization code was exchanged for tokens (a grant began).
    pub const OAUTH_CODE_REDEEMED: &str = "oauth.code_redeemed";
    /// An authorization code was presented a second time; its grant was revoked.
    pub const OAUTH_CODE_REPLAYED: &str = "oauth.code_replayed";
    /// A refresh token was rotated.
    pub const OAUTH_TOKEN_REFRESHED: &str = "oauth.token_refreshed";
    /// A rotated refresh token was presented again; its grant was revoked.
    pub const OAUTH_REFRESH_REUSE_DETECTED: &str = "oauth.refresh_reuse_detected";
    /// A client revoked a token (RFC 7009).
    pub const OAUTH_TOKEN_REVOKED: &str = "oauth.token_revoked";
    /// A user revoked an app's authorization.
    pub const OAUTH_AUTHORIZATION_REVOKED: &str = "oauth.authorization_revoked";
    /// An OAuth app was registered.
    pub const OAUTH_APP_CREATED: &str = "oauth_app.created";
    /// An OAuth app's client secret was replaced.
    pub const OAUTH_APP_SECRET_ROTATED: &str = "oauth_app.secret_rotated";
    /// An OAuth app was deleted.
    pub const OAUTH_APP_DELETED: &str = "oauth_app.deleted";
    /// A password sign-in succeeded.
    pub const LOGIN_SUCCEEDED: &str = "login.succeeded";
    /// A password sign-in failed.
    pub const LOGIN_FAILED: &str = "login.failed";
}

/// The outcome an event of this type records.
pub fn outcome_of(event_type: &str) -> &'static str {
    if event_type.starts_with("anomaly.") {
        outcomes::DETECTED
    } else if event_type.ends_with("_replayed")
        || event_type.ends_with("_reuse_detected")
        || event_type.ends_with(".failed")
    {
        outcomes::FAILURE
    } else {
        outcomes::SUCCESS
    }
}

/// Outcomes.
pub mod outcomes {
    /// Allowed / done.
    pub const SUCCESS: &str = "success";
    /// Refused.
    pub const FAILURE: &str = "failure";
    /// Noticed (anomalies).
    pub const DETECTED: &str = "detected";
}

/// One audit event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// Opaque id.
    pub id: String,
    /// Unix seconds, UTC.
    pub time: i64,
    /// The request that caused it (`cli` for the command line, `internal` for background work).
    pub request_id: String,
    /// One of [`types`].
    pub event_type: String,
    /// The account concerned.
    pub account_id: Option<String>,
    /// The credential concerned (id only).
    pub credential_id: Option<String>,
    /// Source address.
    pub source_ip: Option<String>,
    /// User agent.
    pub user_agent: Option<String>,
    /// One of [`outcomes`].
    pub outcome: String,
    /// The detailed reason (never a secret).
    pub reason: Option<String>,
}

/// The chain link of `e` after `prev_hash` (hex SHA-256 over length-prefixed fields, so no two
/// different events serialize alike).
pub fn chain_hash(prev_hash: &str, e: &AuditEvent) -> String {
    let mut h = Sha256::new();
    let mut field = |s: Option<&str>| match s {
        None => h.update(b"-"),
        Some(v) => {
            h.update((v.len() as u64).to_be_bytes());
            h.update(v.as_bytes());
        }
    };
    field(Some(prev_hash));
    field(Some(&e.id));
    field(Some(&e.time.to_string()));
    field(Some(&e.request_id));
    field(Some(&e.event_type));
    field(e.account_id.as_deref());
    field(e.credential_id.as_deref());
    field(e.source_ip.as_deref());
    field(e.user_agent.as_deref());
    field(Some(&e.outcome));
    field(e.reason.as_deref());
    let d = h.finalize();
    let mut out = String::with_capacity(64);
    for b in d {
        out.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        out.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    out
}

/// The `prev_hash` of the first event.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[cfg(test)]
mod tests {
    use super::*;

    fn ev() -> AuditEvent {
        AuditEvent {
            id: "evt_1".into(),
            time: 1,
            request_id: "req_1".into(),
            event_type: types::AUTH_FAILED.into(),
            account_id: None,
            credential_id: Some("key_1".into()),
            source_ip: Some("127.0.0.1".into()),
            user_agent: None,
            outcome: outcomes::FAILURE.into(),
            reason: Some("revoked credential".into()),
        }
    }

    #[test]
    fn any_field_change_changes_the_link() {
        let base = chain_hash(GENESIS_HASH, &ev());
        assert_eq!(base.len(), 64);
        assert_eq!(base, chain_hash(GENESIS_HASH, &ev()));
        let mut e = ev();
        e.reason = Some("revoked credentia".into());
        assert_ne!(base, chain_hash(GENESIS_HASH, &e));
        let mut e = ev();
        e.account_id = Some(String::new());
        assert_ne!(
            base,
            chain_hash(GENESIS_HASH, &e),
            "empty differs from absent"
        );
        assert_ne!(base, chain_hash(&base, &ev()), "the previous link is bound");
    }
}
