//! Statements that run on a timer over whole tables use an index, so their cost does not grow
//! with the number of keys (a scan of 1M keys every 5 s held SQLite's write lock for 0.3 s).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use dotgit_store::{Store, EXPIRY_DUE};
use sqlx::Row;

#[tokio::test]
async fn the_expiry_recorder_searches_an_index_instead_of_scanning_the_keys() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("dotgit.db");
    let store = Store::open(&db).await.unwrap();
    store.close().await;
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let plan: Vec<String> = sqlx::query(&format!(
        "EXPLAIN QUERY PLAN UPDATE api_keys SET expiry_audited = 1 WHERE {EXPIRY_DUE} RETURNING id"
    ))
    .bind(1_800_000_000_i64)
    .fetch_all(&pool)
    .await
    .unwrap()
    .iter()
    .map(|r| r.get::<String, _>("detail"))
    .collect();
    assert!(
        plan.iter()
            .any(|d| d.contains("USING INDEX api_keys_expiry_due")),
        "{plan:?}"
    );
    assert!(!plan.iter().any(|d| d.starts_with("SCAN")), "{plan:?}");
}
