//! Query plans the performance depends on. Statements that run on a timer over whole tables use
//! an index, so their cost does not grow with the number of keys (a scan of 1M keys every 5 s
//! held SQLite's write lock for 0.3 s); the API-key probe on the request path reads one index
//! and no page of the key table (one leaf page per probe instead of two). The OAuth purge, on the
//! same timer, finds ended tokens and grants through indexes, not by reading every token.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use dotgit_store::{
    Store, EXPIRY_DUE, KEY_PROBE, PURGE_ACCESS_TOKENS, PURGE_FAMILY_TOKENS, PURGE_GRANTS,
};
use sqlx::Row;

/// The query plan of `sql` (one `detail` line per step) on a freshly migrated database. The
/// parameters stay unbound: SQLite's plan does not depend on their values.
async fn plan_of(sql: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("dotgit.db");
    let store = Store::open(&db).await.unwrap();
    store.close().await;
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    sqlx::query(&format!("EXPLAIN QUERY PLAN {sql}"))
        .fetch_all(&pool)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<String, _>("detail"))
        .collect()
}

#[tokio::test]
async fn the_key_probe_reads_the_covering_index_and_not_the_key_table() {
    let plan = plan_of(KEY_PROBE).await;
    assert!(
        plan.iter()
            .any(|d| d == "SEARCH k USING COVERING INDEX api_keys_verify (secret_hash=?)"),
        "{plan:?}"
    );
    assert!(!plan.iter().any(|d| d.starts_with("SCAN")), "{plan:?}");
}

#[tokio::test]
async fn the_expiry_recorder_searches_an_index_instead_of_scanning_the_keys() {
    let plan = plan_of(&format!(
        "UPDATE api_keys SET expiry_audited = 1 WHERE {EXPIRY_DUE} RETURNING id"
    ))
    .await;
    assert!(
        plan.iter()
            .any(|d| d.contains("USING INDEX api_keys_expiry_due")),
        "{plan:?}"
    );
    assert!(!plan.iter().any(|d| d.starts_with("SCAN")), "{plan:?}");
}

#[tokio::test]
async fn the_oauth_purge_finds_ended_tokens_and_grants_through_indexes() {
    for (sql, index) in [
        (PURGE_ACCESS_TOKENS, "oauth_tokens_access_expiry"),
        (PURGE_FAMILY_TOKENS, "oauth_grants_refresh_expiry"),
        (PURGE_FAMILY_TOKENS, "oauth_tokens_by_grant"),
        (PURGE_GRANTS, "oauth_grants_refresh_expiry"),
    ] {
        let plan = plan_of(sql).await;
        assert!(plan.iter().any(|d| d.contains(index)), "{sql}: {plan:?}");
        assert!(
            !plan.iter().any(|d| d.starts_with("SCAN")),
            "{sql}: {plan:?}"
        );
    }
}
