//! API keys' last-use times (migration 0010 moved them to `api_key_last_use`): an upgrade keeps
//! the times already recorded, and the batched writer only moves a time forward.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use common::pool;
use dotgit_store::Store;

mod common;

const T: i64 = 1_795_953_600;

fn last_uses(keys: &[dotgit_store::ApiKeyRow]) -> Vec<(String, Option<i64>)> {
    let mut v: Vec<_> = keys
        .iter()
        .map(|k| (k.id.clone(), k.last_used_at))
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn last_use_times_recorded_before_0010_survive_the_upgrade_and_move_only_forward() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("dotgit.db");
    // the schema as it was: migrations 0001–0009 only
    let p = common::database_before(dir.path(), &db, "0010").await;
    sqlx::query(
        "INSERT INTO accounts (id, username, password_hash, plan, created_at)
         VALUES ('acct_1', 'alice', 'x', 'pro', ?)",
    )
    .bind(T)
    .execute(&p)
    .await
    .unwrap();
    for (id, used) in [
        ("key_a", Some(T + 50)),
        ("key_b", None),
        ("key_c", Some(T + 70)),
    ] {
        sqlx::query(
            "INSERT INTO api_keys (id, account_id, name, prefix, secret_hash, scopes, created_at, last_used_at)
             VALUES (?, 'acct_1', ?, 'dg_live_', ?, 'repo:read', ?, ?)",
        )
        .bind(id)
        .bind(id)
        .bind(format!("{id:0>64}"))
        .bind(T)
        .bind(used)
        .execute(&p)
        .await
        .unwrap();
    }
    p.close().await;

    let store = Store::open(&db).await.unwrap();
    let keys = store.list_api_keys("acct_1").await.unwrap();
    assert_eq!(
        last_uses(&keys),
        vec![
            ("key_a".into(), Some(T + 50)),
            ("key_b".into(), None),
            ("key_c".into(), Some(T + 70)),
        ]
    );
    // the anomaly detector's memory: the last use, or the creation for a key never used
    let memory = store
        .credential_memory(&["key_a".into(), "key_b".into()])
        .await
        .unwrap();
    assert_eq!(memory["key_a"].1, Some(T + 50));
    assert_eq!(memory["key_b"].1, Some(T));

    // a later use moves the time; an older one (a batch that arrives late) does not
    store
        .touch_api_keys(vec![
            ("key_a".into(), T + 40),
            ("key_b".into(), T + 90),
            ("key_c".into(), T + 100),
        ])
        .await
        .unwrap();
    let keys = store.list_api_keys("acct_1").await.unwrap();
    assert_eq!(
        last_uses(&keys),
        vec![
            ("key_a".into(), Some(T + 50)),
            ("key_b".into(), Some(T + 90)),
            ("key_c".into(), Some(T + 100)),
        ]
    );
    let one = store.get_api_key("acct_1", "key_b").await.unwrap().unwrap();
    assert_eq!(one.last_used_at, Some(T + 90));
    store.close().await;

    // the column is gone from `api_keys`: no second copy to drift
    let p = pool(&db).await;
    let cols: Vec<String> = sqlx::query_scalar("SELECT name FROM pragma_table_info('api_keys')")
        .fetch_all(&p)
        .await
        .unwrap();
    assert!(!cols.iter().any(|c| c == "last_used_at"), "{cols:?}");
}
