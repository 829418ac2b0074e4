//! Rows and events for the store's tests: the test binaries reach them through `common`, the
//! unit tests in `src/lib.rs` include this file by path.

use dotgit_core::audit::AuditEvent;
use sqlx::SqlitePool;

/// Inserts account `acct_1` (alice), behind the store's back.
pub async fn account(pool: &SqlitePool) {
    sqlx::query(
        "INSERT INTO accounts (id, username, password_hash, plan, created_at)
         VALUES ('acct_1', 'alice', 'x', 'pro', 0)",
    )
    .execute(pool)
    .await
    .expect("insert account acct_1");
}

/// Inserts project `big` of `acct_1` with 200,000 deployments, so that deleting it (their
/// cascade) runs for a while: a few hundred milliseconds.
pub async fn big_project(pool: &SqlitePool) {
    for q in [
        "INSERT INTO projects (account_id, slug, name, created_at)
         VALUES ('acct_1', 'big', 'Big', 0)",
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200000)
         INSERT INTO deployments (id, account_id, project_slug, ref, environment, status, created_at)
         SELECT 'dep_' || i, 'acct_1', 'big', 'main', 'production', 'succeeded', i FROM n",
    ] {
        sqlx::query(q).execute(pool).await.expect("insert project big");
    }
}

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
