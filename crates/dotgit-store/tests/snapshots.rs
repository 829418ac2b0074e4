//! The request path's held read snapshots (ADR 0023): what this process commits is seen by the
//! next lookup; what another process commits is seen once the snapshot is `SNAPSHOT_MAX_AGE`
//! old, or at once when the lookup would otherwise find nothing; no snapshot is held while the
//! file is being written; a thread that stops asking lets go of its snapshot; and the WAL is
//! still reset, so it does not grow while snapshots are held between writes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use dotgit_core::audit::AuditEvent;
use dotgit_store::{
    forget, holds_snapshot, pretend_elapsed, release_and_checkpoint_now, Store,
    QUIET_BEFORE_HOLDING, SNAPSHOT_MAX_AGE,
};
use sqlx::SqlitePool;
use std::time::Instant;

mod common;

const T: i64 = 1_795_953_600;

fn hash(n: u32) -> String {
    format!("{n:0>64}")
}

/// An account and keys `key_1`… with digests `hash(1)`…, written behind the store's back.
async fn keys(p: &SqlitePool, n: u32) {
    sqlx::query(
        "INSERT INTO accounts (id, username, password_hash, plan, created_at)
         VALUES ('acct_1', 'alice', 'x', 'pro', ?)",
    )
    .bind(T)
    .execute(p)
    .await
    .unwrap();
    for i in 1..=n {
        add_key(p, i).await;
    }
}

async fn add_key(p: &SqlitePool, i: u32) {
    sqlx::query(
        "INSERT INTO api_keys (id, account_id, name, prefix, secret_hash, scopes, created_at)
         VALUES (?, 'acct_1', 'ci', 'dg_live_', ?, 'repo:read', ?)",
    )
    .bind(format!("key_{i}"))
    .bind(hash(i))
    .bind(T)
    .execute(p)
    .await
    .unwrap();
}

fn revocation(key: &str) -> AuditEvent {
    AuditEvent {
        id: format!("evt_{key}"),
        time: T + 10,
        request_id: "req_1".into(),
        event_type: "api_key.revoked".to_owned().into(),
        account_id: Some("acct_1".into()),
        credential_id: Some(key.into()),
        source_ip: None,
        user_agent: None,
        outcome: "success".to_owned().into(),
        reason: None,
    }
}

async fn revoked_at(store: &Store, i: u32) -> Option<i64> {
    let (key, _) = store.api_key_by_hash(&hash(i)).await.unwrap().unwrap();
    key.revoked_at
}

/// Looks key 1 up until this thread holds a snapshot (the file must first be seen quiet), and
/// returns a time from before that snapshot began: it is at most as old as this time.
async fn hold(store: &Store, db: &std::path::Path) -> Instant {
    for _ in 0..3 {
        store.api_key_by_hash(&hash(1)).await.unwrap().unwrap();
        pretend_elapsed(QUIET_BEFORE_HOLDING);
    }
    let before = Instant::now();
    store.api_key_by_hash(&hash(1)).await.unwrap().unwrap();
    assert!(holds_snapshot(db), "no snapshot held on a quiet file");
    before
}

/// A write of this process to the database file (a project `p{i}`), through the store.
async fn write_database(store: &Store, i: i64) {
    store
        .create_project(&dotgit_store::ProjectRow {
            account_id: "acct_1".into(),
            slug: format!("p{i}"),
            name: format!("p{i}"),
            created_at: T + i,
        })
        .await
        .unwrap();
}

async fn setup(n: u32) -> (tempfile::TempDir, Store, SqlitePool) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("dotgit.db");
    let store = Store::open(&db).await.unwrap();
    let other = common::pool(&db).await;
    keys(&other, n).await;
    (dir, store, other)
}

// (the tests run on one thread each, `#[tokio::test]`: every lookup of a test uses the same
// thread's connection and snapshot)

#[tokio::test]
async fn this_processs_revocation_is_seen_by_the_next_lookup() {
    let (dir, store, _other) = setup(2).await;
    hold(&store, &dir.path().join("dotgit.db")).await;
    assert_eq!(revoked_at(&store, 1).await, None);
    // the snapshot is still held: only the commit count tells
    assert!(store
        .revoke_api_key("acct_1", "key_1", T + 10, &revocation("key_1"))
        .await
        .unwrap());
    assert_eq!(revoked_at(&store, 1).await, Some(T + 10));
    assert_eq!(revoked_at(&store, 2).await, None);
}

#[tokio::test]
async fn another_processs_change_is_seen_once_the_snapshot_is_old() {
    let (dir, store, other) = setup(1).await;
    let taken = hold(&store, &dir.path().join("dotgit.db")).await;
    // another process (here a connection the store does not know) revokes the key
    sqlx::query("UPDATE api_keys SET revoked_at = ? WHERE id = 'key_1'")
        .bind(T + 20)
        .execute(&other)
        .await
        .unwrap();
    let seen = revoked_at(&store, 1).await;
    if taken.elapsed() < SNAPSHOT_MAX_AGE {
        // still the held snapshot: this is what shows that snapshots are held at all
        assert_eq!(
            seen, None,
            "a lookup within the snapshot's age took a new one"
        );
    }
    pretend_elapsed(SNAPSHOT_MAX_AGE);
    assert_eq!(revoked_at(&store, 1).await, Some(T + 20));
}

#[tokio::test]
async fn a_key_made_by_another_process_is_found_at_once() {
    let (dir, store, other) = setup(1).await;
    hold(&store, &dir.path().join("dotgit.db")).await;
    // `dotgit keys create` in another process, while this thread's snapshot is held
    add_key(&other, 2).await;
    let (key, account) = store.api_key_by_hash(&hash(2)).await.unwrap().unwrap();
    assert_eq!((key.id.as_str(), account.id.as_str()), ("key_2", "acct_1"));
    assert!(store.api_key_by_hash(&hash(3)).await.unwrap().is_none());
}

/// The WAL's size, and whether a checkpoint that resets it succeeded (`busy` = 0).
async fn truncate(db: &std::path::Path, busy_ms: u64) -> (i64, u64) {
    let p = common::pool(db).await;
    sqlx::query(&format!("PRAGMA busy_timeout = {busy_ms}"))
        .execute(&p)
        .await
        .unwrap();
    let (busy,): (i64,) = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
        .fetch_one(&p)
        .await
        .unwrap();
    p.close().await;
    let wal = std::fs::metadata(db.with_extension("db-wal"))
        .map(|m| m.len())
        .unwrap_or(0);
    (busy, wal)
}

#[tokio::test]
async fn an_idle_threads_snapshot_is_let_go() {
    let (dir, store, other) = setup(1).await;
    let db = dir.path().join("dotgit.db");
    // a frame in the WAL that no checkpoint has copied yet, so the snapshot reads the WAL
    add_key(&other, 2).await;
    let (looked, stop) = (
        std::sync::mpsc::channel::<Instant>(),
        std::sync::mpsc::channel::<()>(),
    );
    let s = store.clone();
    let at = db.clone();
    let worker = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let taken = rt.block_on(hold(&s, &at));
        looked.0.send(taken).unwrap();
        // idle from here on, its connection (and snapshot) kept
        stop.1.recv().unwrap();
    });
    let at = looked.1.recv().unwrap();
    let (busy, _) = truncate(&db, 0).await;
    if at.elapsed() < SNAPSHOT_MAX_AGE {
        assert_eq!(busy, 1, "the idle thread held no snapshot");
    }
    // the releaser ends it within two `SNAPSHOT_MAX_AGE`s; the checkpoint waits that long
    let (busy, wal) = truncate(&db, 10_000).await;
    assert_eq!((busy, wal), (0, 0), "the idle snapshot was never let go");
    stop.0.send(()).unwrap();
    worker.join().unwrap();
}

#[tokio::test]
async fn no_snapshot_is_held_while_the_file_is_written() {
    let (dir, store, other) = setup(2).await;
    let db = dir.path().join("dotgit.db");
    hold(&store, &db).await;
    // this process writes: the next lookups read one transaction each
    write_database(&store, 0).await;
    assert_eq!(revoked_at(&store, 1).await, None);
    assert!(!holds_snapshot(&db));
    pretend_elapsed(QUIET_BEFORE_HOLDING);
    // quiet long enough, but SQLite's data version moved since the last look: not yet
    assert_eq!(revoked_at(&store, 1).await, None);
    assert!(!holds_snapshot(&db));
    pretend_elapsed(QUIET_BEFORE_HOLDING);
    assert_eq!(revoked_at(&store, 1).await, None);
    assert!(holds_snapshot(&db));

    // another process writes: seen when the snapshot is renewed, and not held again at once
    sqlx::query("UPDATE api_keys SET revoked_at = ? WHERE id = 'key_2'")
        .bind(T + 30)
        .execute(&other)
        .await
        .unwrap();
    pretend_elapsed(SNAPSHOT_MAX_AGE);
    assert_eq!(revoked_at(&store, 2).await, Some(T + 30));
    assert!(!holds_snapshot(&db));
}

fn wal_len(db: &std::path::Path) -> u64 {
    std::fs::metadata(db.with_extension("db-wal"))
        .map(|m| m.len())
        .unwrap_or(0)
}

#[tokio::test]
async fn the_wal_starts_over_between_writes_while_snapshots_are_held() {
    let (dir, store, _other) = setup(1).await;
    let db = dir.path().join("dotgit.db");
    let mut sizes = Vec::new();
    for i in 0..30 {
        hold(&store, &db).await;
        // a write while this thread holds its snapshot (ADR 0012's addendum: with readers that
        // always hold one, the WAL never started over and grew without end)
        write_database(&store, i).await;
        assert_eq!(revoked_at(&store, 1).await, None);
        // what the background thread does once the writes stop
        release_and_checkpoint_now();
        sizes.push(wal_len(&db));
    }
    assert!(
        sizes[29] <= sizes[3],
        "the WAL grew from {} to {} bytes over 26 writes",
        sizes[3],
        sizes[29]
    );
}

#[tokio::test]
async fn the_background_thread_checkpoints_once_writes_stop() {
    let (dir, store, _other) = setup(1).await;
    let db = dir.path().join("dotgit.db");
    hold(&store, &db).await;
    release_and_checkpoint_now();
    let before = std::fs::metadata(&db).unwrap().modified().unwrap();
    write_database(&store, 0).await;
    // the commit went to the WAL alone; only a checkpoint writes the database file
    assert_eq!(std::fs::metadata(&db).unwrap().modified().unwrap(), before);
    let deadline = Instant::now() + std::time::Duration::from_secs(10);
    while std::fs::metadata(&db).unwrap().modified().unwrap() == before {
        assert!(
            Instant::now() < deadline,
            "no checkpoint within 10 s of the last commit"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_forgotten_file_is_not_checkpointed_again() {
    let (dir, store, other) = setup(1).await;
    let db = dir.path().join("dotgit.db");
    let wal = dir.path().join("dotgit.db-wal");
    write_database(&store, 0).await;
    // a test server's data dir half deleted: its WAL gone, the database file not yet
    forget(&db);
    for name in ["dotgit.db-wal", "dotgit.db-shm"] {
        std::fs::remove_file(dir.path().join(name)).unwrap();
    }
    // a checkpoint due (the commit above), which opened the database by its path and recreated
    // the WAL before the file was forgotten; the background thread runs the same
    release_and_checkpoint_now();
    assert!(
        !wal.exists(),
        "a checkpoint recreated a forgotten file's WAL"
    );
    drop((store, other));
}

#[tokio::test]
async fn a_change_the_invalidation_poll_found_is_seen_by_the_next_lookup() {
    let (dir, store, other) = setup(1).await;
    hold(&store, &dir.path().join("dotgit.db")).await;
    sqlx::query("UPDATE api_keys SET revoked_at = ? WHERE id = 'key_1'")
        .bind(T + 40)
        .execute(&other)
        .await
        .unwrap();
    // the server's poll read the invalidation row: the lookup that refills the verification
    // cache after it must not read the snapshot from before the change
    store.note_change_elsewhere();
    assert_eq!(revoked_at(&store, 1).await, Some(T + 40));
}

#[tokio::test]
async fn last_use_times_leave_the_database_file_and_the_held_snapshot_alone() {
    let (dir, store, _other) = setup(1).await;
    let db = dir.path().join("dotgit.db");
    hold(&store, &db).await;
    // SQLite's count of other connections' commits to the database file, as a reader sees it
    let reader = rusqlite::Connection::open(&db).unwrap();
    let version = || -> i64 {
        reader
            .query_row("PRAGMA data_version", [], |r| r.get(0))
            .unwrap()
    };
    let before = version();
    store
        .touch_api_keys(vec![("key_1".into(), T + 5)])
        .await
        .unwrap();
    store
        .touch_scope_usage(vec![("key_1".into(), "repo:read".into(), T + 5)])
        .await
        .unwrap();
    // (ADR 0024) the flush committed to the activity file: the readers of the database file
    // keep their page caches, and this thread its snapshot
    assert_eq!(
        version(),
        before,
        "the last-use flush wrote the database file"
    );
    assert_eq!(revoked_at(&store, 1).await, None);
    assert!(holds_snapshot(&db), "the last-use flush ended the snapshot");
    let key = store.get_api_key("acct_1", "key_1").await.unwrap().unwrap();
    assert_eq!(key.last_used_at, Some(T + 5));
    assert_eq!(
        store.scope_usage("key_1").await.unwrap(),
        vec![("repo:read".to_owned(), T + 5)]
    );
}
