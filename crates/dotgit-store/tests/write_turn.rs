//! The write turn (`WriteTurn`, ADR 0015's addendum of 2026-12-07): every write of the process —
//! the pooled sqlx writer's transactions and statements, the audit writer's and the refresh
//! writer's batches — takes one turn first. A write that fails inside its transaction gives the
//! turn back, and a closed store refuses the batching writers as it refuses everything else.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use common::jwt_key;
use dotgit_core::audit::AuditEvent;
use dotgit_store::{Store, StoreError};
use std::time::Duration;

mod common;

const T: i64 = 1_795_953_600;

async fn with_account_and_key(db: &std::path::Path) -> Store {
    let store = Store::open(db).await.unwrap();
    // rows written behind the store's back, on a connection of their own
    let p = common::pool(db).await;
    for sql in [
        "INSERT INTO accounts (id, username, password_hash, plan, created_at)
         VALUES ('acct_1', 'alice', 'x', 'pro', 0)",
        "INSERT INTO api_keys (id, account_id, name, prefix, secret_hash, scopes, created_at)
         VALUES ('key_a', 'acct_1', 'ci', 'dg_live_', 'aa', 'repo:read', 0)",
    ] {
        sqlx::query(sql).execute(&p).await.unwrap();
    }
    p.close().await;
    store
}

fn event(id: &str) -> AuditEvent {
    AuditEvent {
        id: id.into(),
        time: T,
        request_id: format!("req_{id}"),
        event_type: "jwt_key.created".to_owned().into(),
        account_id: Some("acct_1".into()),
        credential_id: None,
        source_ip: None,
        user_agent: None,
        outcome: "success".to_owned().into(),
        reason: None,
    }
}

async fn last_use(store: &Store) -> Option<i64> {
    store
        .get_api_key("acct_1", "key_a")
        .await
        .unwrap()
        .unwrap()
        .last_used_at
}

#[tokio::test]
async fn a_write_refused_inside_its_transaction_gives_the_turn_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = with_account_and_key(&dir.path().join("dotgit.db")).await;
    let writes = async {
        store
            .insert_jwt_key(&jwt_key("jwk_1", "deploy"), &event("evt_1"))
            .await
            .unwrap();
        // the same name again: refused after `BEGIN IMMEDIATE`, its transaction dropped
        // uncommitted
        let dup = store
            .insert_jwt_key(&jwt_key("jwk_2", "deploy"), &event("evt_2"))
            .await;
        assert!(matches!(dup, Err(StoreError::Conflict("name"))), "{dup:?}");
        // the next writes of both kinds go ahead
        store
            .touch_api_keys(vec![("key_a".into(), T + 5)])
            .await
            .unwrap();
        store
            .insert_jwt_key(&jwt_key("jwk_3", "release"), &event("evt_3"))
            .await
            .unwrap();
    };
    tokio::time::timeout(Duration::from_secs(10), writes)
        .await
        .expect("a write waited for a turn that was never given back");

    let mut names: Vec<_> = store
        .list_jwt_keys("acct_1")
        .await
        .unwrap()
        .into_iter()
        .map(|k| (k.kid, k.name))
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec![
            ("jwk_1".into(), "deploy".into()),
            ("jwk_3".into(), "release".into())
        ]
    );
    assert_eq!(last_use(&store).await, Some(T + 5));
}

#[tokio::test]
async fn a_closed_store_refuses_the_batching_writers_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("dotgit.db");
    let store = with_account_and_key(&db).await;
    store
        .touch_api_keys(vec![("key_a".into(), T + 5)])
        .await
        .unwrap();
    store.close().await;

    // the audit writer's connection would open again on demand; the turn refuses it instead
    let late = store.touch_api_keys(vec![("key_a".into(), T + 9)]).await;
    assert!(matches!(late, Err(StoreError::Unavailable(_))), "{late:?}");

    let reopened = Store::open(&db).await.unwrap();
    assert_eq!(last_use(&reopened).await, Some(T + 5));
}

#[tokio::test]
async fn writes_of_every_kind_at_once_all_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = with_account_and_key(&dir.path().join("dotgit.db")).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..40i64 {
        let s = store.clone();
        tasks.spawn(async move {
            if i % 2 == 0 {
                s.touch_api_keys(vec![("key_a".into(), T + i)]).await
            } else {
                s.insert_jwt_key(
                    &jwt_key(&format!("jwk_{i}"), &format!("key {i}")),
                    &event(&format!("evt_{i}")),
                )
                .await
            }
        });
    }
    let all = async {
        while let Some(r) = tasks.join_next().await {
            r.unwrap().unwrap();
        }
    };
    tokio::time::timeout(Duration::from_secs(30), all)
        .await
        .expect("concurrent writes did not all finish");
    assert_eq!(store.list_jwt_keys("acct_1").await.unwrap().len(), 20);
    assert_eq!(last_use(&store).await, Some(T + 38));
}
