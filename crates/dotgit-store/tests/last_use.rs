//! API keys' last-use times (migration 0010 moved them to `api_key_last_use`, ADR 0024 to the
//! activity file): an upgrade keeps the times already recorded, and the batched writer only
//! moves a time forward.

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

/// The database file's last-use tables as a server before ADR 0024 left them, a key `key_a` of
/// `acct_1` used at `T + 50` with its scope, and `key_b` used at `T + 60`.
async fn database_with_last_uses_in_it(dir: &std::path::Path, db: &std::path::Path) {
    let p = common::database_before(dir, db, "9999").await;
    for sql in [
        "INSERT INTO accounts (id, username, password_hash, plan, created_at)
         VALUES ('acct_1', 'alice', 'x', 'pro', 0)",
        "INSERT INTO api_keys (id, account_id, name, prefix, secret_hash, scopes, created_at)
         VALUES ('key_a', 'acct_1', 'a', 'dg_live_', 'a', 'repo:read', 0)",
        "INSERT INTO api_keys (id, account_id, name, prefix, secret_hash, scopes, created_at)
         VALUES ('key_b', 'acct_1', 'b', 'dg_live_', 'b', 'repo:read', 0)",
    ] {
        sqlx::query(sql).execute(&p).await.unwrap();
    }
    old_last_uses(&p).await;
    sqlx::query(
        "INSERT INTO credential_scope_usage (credential_id, scope, last_used_at)
         VALUES ('key_a', 'repo:read', ?)",
    )
    .bind(T + 50)
    .execute(&p)
    .await
    .unwrap();
    p.close().await;
}

/// `key_a` used at `T + 50` and `key_b` at `T + 60`, in the database file's table.
async fn old_last_uses(p: &sqlx::SqlitePool) {
    sqlx::query("INSERT INTO api_key_last_use (key_id, at) VALUES ('key_a', ?), ('key_b', ?)")
        .bind(T + 50)
        .bind(T + 60)
        .execute(p)
        .await
        .unwrap();
}

/// `key_a`'s and `key_b`'s last uses, as the API reads them.
async fn assert_last_uses(store: &Store, [a, b]: [i64; 2]) {
    let keys = store.list_api_keys("acct_1").await.unwrap();
    assert_eq!(
        last_uses(&keys),
        vec![("key_a".into(), Some(a)), ("key_b".into(), Some(b))]
    );
}

async fn tables_in_database_file(db: &std::path::Path) -> Vec<String> {
    let p = pool(db).await;
    let t = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table'
         AND name IN ('api_key_last_use', 'credential_scope_usage') ORDER BY name",
    )
    .fetch_all(&p)
    .await
    .unwrap();
    p.close().await;
    t
}

#[tokio::test]
async fn an_upgrade_moves_the_last_use_times_into_the_activity_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("dotgit.db");
    database_with_last_uses_in_it(dir.path(), &db).await;
    assert_eq!(tables_in_database_file(&db).await.len(), 2);

    let store = Store::open(&db).await.unwrap();
    assert_last_uses(&store, [T + 50, T + 60]).await;
    assert_eq!(
        store.scope_usage("key_a").await.unwrap(),
        vec![("repo:read".to_owned(), T + 50)]
    );
    store.close().await;
    // the database file keeps no copy to drift, and the activity file holds the rows
    assert_eq!(tables_in_database_file(&db).await, Vec::<String>::new());
    let activity = rusqlite::Connection::open(dotgit_store::activity_path(&db)).unwrap();
    let n: i64 = activity
        .query_row("SELECT count(*) FROM api_key_last_use", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 2);

    // opening again finds nothing left to move, and loses nothing
    let store = Store::open(&db).await.unwrap();
    assert_last_uses(&store, [T + 50, T + 60]).await;
}

#[tokio::test]
async fn an_upgrade_stopped_between_copy_and_drop_keeps_the_later_times() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("dotgit.db");
    database_with_last_uses_in_it(dir.path(), &db).await;
    // a start that copied the rows and stopped before dropping them; a use written since by
    // the server that started next moved key_b's time on, and one of key_a's arrived late
    let store = Store::open(&db).await.unwrap();
    store.close().await;
    drop(store);
    let p = pool(&db).await;
    sqlx::query(
        "CREATE TABLE api_key_last_use (key_id TEXT PRIMARY KEY, at INTEGER NOT NULL) WITHOUT ROWID",
    )
    .execute(&p)
    .await
    .unwrap();
    old_last_uses(&p).await;
    p.close().await;
    let activity = rusqlite::Connection::open(dotgit_store::activity_path(&db)).unwrap();
    activity
        .execute(
            "UPDATE api_key_last_use SET at = ?1 WHERE key_id = 'key_b'",
            [T + 90],
        )
        .unwrap();
    activity
        .execute(
            "UPDATE api_key_last_use SET at = ?1 WHERE key_id = 'key_a'",
            [T + 40],
        )
        .unwrap();
    drop(activity);

    let store = Store::open(&db).await.unwrap();
    assert_last_uses(&store, [T + 50, T + 90]).await;
    store.close().await;
    assert_eq!(tables_in_database_file(&db).await, Vec::<String>::new());
}
