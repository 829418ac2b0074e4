//! Audit events for the store's tests: the test binaries reach it through `common`, the unit
//! tests in `src/lib.rs` include it by path.

use dotgit_core::audit::AuditEvent;

/// A per-request failure on account `acct_1`, which the audit writer appends to the database
/// file (a batch of successes alone goes to the activity file).
pub fn failure(id: &str) -> AuditEvent {
    AuditEvent {
        id: id.into(),
        time: 1_795_953_600,
        request_id: format!("req_{id}"),
        event_type: "auth.failed".to_owned().into(),
        account_id: Some("acct_1".into()),
        credential_id: Some("key_x".into()),
        source_ip: Some("192.0.2.7".into()),
        user_agent: None,
        outcome: "failure".to_owned().into(),
        reason: Some("unknown_key".into()),
    }
}
