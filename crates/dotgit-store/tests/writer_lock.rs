//! The batching writers and SQLite's write lock (ADR 0015's addenda). Within one process the
//! write turn keeps them from meeting the lock: a write refused inside its transaction, or one
//! whose caller went away while it ran, is over before a batching writer begins (one that runs
//! longer than the writer's 10-s wait for it is the unit test's in `src/lib.rs`). Another
//! process's write is waited for, and each wait is counted (`writer_lock_waits`,
//! `dotgit_store_writer_lock_waits_total`).
//!
//! The count is the process's, so this file is a test binary of its own and its tests take
//! turns.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use common::fixtures::failure;
use common::jwt_key;
use dotgit_core::audit::AuditEvent;
use dotgit_store::{writer_lock_waits, Store, StoreError};
use std::time::Duration;

mod common;

/// The tests of this binary read one process-wide count: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn with_account(db: &std::path::Path) -> Store {
    let store = Store::open(db).await.unwrap();
    let p = common::pool(db).await;
    common::fixtures::account(&p).await;
    p.close().await;
    store
}

fn lifecycle(id: &str) -> AuditEvent {
    AuditEvent {
        event_type: "jwt_key.created".to_owned().into(),
        outcome: "success".to_owned().into(),
        reason: None,
        credential_id: None,
        source_ip: None,
        ..failure(id)
    }
}

async fn failures_stored(store: &Store) -> usize {
    store
        .list_audit(
            &dotgit_store::AuditFilter {
                account_id: Some("acct_1".into()),
                event_type: Some("auth.failed".into()),
                ..Default::default()
            },
            1000,
        )
        .await
        .unwrap()
        .len()
}

#[tokio::test]
async fn a_refused_write_is_rolled_back_before_the_next_writer_begins() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let store = with_account(&dir.path().join("dotgit.db")).await;
    store
        .insert_jwt_key(&jwt_key("jwk_0", "deploy"), &lifecycle("evt_0"))
        .await
        .unwrap();
    let before = writer_lock_waits();
    // without the fix, a hundred tries met the lock 0 to 17 times (once in nine runs, 0)
    for i in 0..300 {
        // refused after `BEGIN IMMEDIATE` on the pooled writer: its transaction is dropped
        // uncommitted, and the audit writer's batch takes the turn right after
        let dup = store
            .insert_jwt_key(
                &jwt_key(&format!("jwk_{}", i + 1), "deploy"),
                &lifecycle(&format!("evt_dup_{i}")),
            )
            .await;
        assert!(matches!(dup, Err(StoreError::Conflict("name"))), "{dup:?}");
        store
            .append_audit(&[failure(&format!("evt_{i}"))])
            .await
            .unwrap();
    }
    assert_eq!(
        writer_lock_waits() - before,
        0,
        "the audit writer met the lock of a refused write's rollback"
    );
    assert_eq!(failures_stored(&store).await, 300);
    // the refused writes left nothing: one key, its one event
    assert_eq!(store.list_jwt_keys("acct_1").await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_statement_whose_caller_went_away_ends_before_the_next_writer_begins() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("dotgit.db");
    let store = with_account(&db).await;
    // a project with enough deployments that deleting it (their cascade) runs for a while
    let p = common::pool(&db).await;
    common::fixtures::big_project(&p).await;
    let before = writer_lock_waits();

    // the caller gives up while the DELETE runs on sqlx's connection thread, which runs it out
    let gave_up = tokio::time::timeout(
        Duration::from_millis(20),
        store.delete_project("acct_1", "big"),
    )
    .await;
    assert!(
        gave_up.is_err(),
        "the delete ended within 20 ms: {gave_up:?}"
    );
    store.append_audit(&[failure("evt_after")]).await.unwrap();
    assert_eq!(
        writer_lock_waits() - before,
        0,
        "the audit writer met the lock of a statement still running"
    );
    assert_eq!(failures_stored(&store).await, 1);
    // the statement ran out whole: the project and every deployment are gone
    assert!(
        store.get_project("acct_1", "big").await.unwrap().is_none(),
        "the delete never started (the caller gave up before it reached sqlx's thread)"
    );
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM deployments")
        .fetch_one(&p)
        .await
        .unwrap();
    assert_eq!(left, 0);
    p.close().await;
}

#[tokio::test]
async fn another_process_s_write_is_waited_for_and_counted() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("dotgit.db");
    let store = with_account(&db).await;
    let before = writer_lock_waits();

    // another process (here, a connection behind the store's back) holds the write lock
    let other = common::pool(&db).await;
    let mut held = other.begin().await.unwrap();
    sqlx::query("UPDATE accounts SET plan = 'enterprise' WHERE id = 'acct_1'")
        .execute(&mut *held)
        .await
        .unwrap();

    let append = tokio::spawn({
        let store = store.clone();
        async move { store.append_audit(&[failure("evt_waits")]).await }
    });
    // the audit writer finds the lock taken and waits (its busy handler counts the wait)
    tokio::time::timeout(Duration::from_secs(10), async {
        while writer_lock_waits() == before {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .expect("the audit writer never waited for the lock");
    assert!(!append.is_finished());

    held.commit().await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), append)
        .await
        .expect("the audit writer did not go on after the lock was released")
        .unwrap()
        .unwrap();
    assert_eq!(writer_lock_waits() - before, 1);
    assert_eq!(failures_stored(&store).await, 1);
    other.close().await;
}
