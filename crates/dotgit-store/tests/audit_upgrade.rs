//! Upgrading a database made before migration 0007 (the leaner audit table) keeps every event,
//! keeps the chain verifiable, and keeps the log append-only.

use dotgit_core::audit::{chain_hash, AuditEvent, GENESIS_HASH};
use dotgit_store::{AuditFilter, Store};

mod common;

fn event(i: i64) -> AuditEvent {
    AuditEvent {
        id: format!("evt_{i:04}"),
        time: 1_795_953_600 + i,
        request_id: format!("req_{i}"),
        event_type: if i % 3 == 0 {
            "auth.failed"
        } else {
            "auth.succeeded"
        }
        .into(),
        account_id: Some("acct_1".into()),
        credential_id: Some("key_1".into()),
        source_ip: Some("203.0.113.7".into()),
        user_agent: None,
        outcome: if i % 3 == 0 { "failure" } else { "success" }.into(),
        reason: (i % 3 == 0).then(|| "unknown key".into()),
    }
}

#[tokio::test]
async fn events_written_before_0007_survive_the_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("dotgit.db");
    // the schema as it was: migrations 0001–0006 only
    let pool = common::database_before(dir.path(), &db, "0007").await;
    let mut prev = GENESIS_HASH.to_owned();
    for i in 1..=30 {
        let e = event(i);
        let hash = chain_hash(&prev, &e);
        sqlx::query(
            "INSERT INTO audit_events (id, time, request_id, type, account_id, credential_id, source_ip, user_agent, outcome, reason, prev_hash, hash)
             VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        )
        .bind(&e.id).bind(e.time).bind(&e.request_id).bind(&e.event_type).bind(&e.account_id)
        .bind(&e.credential_id).bind(&e.source_ip).bind(&e.user_agent).bind(&e.outcome)
        .bind(&e.reason).bind(&prev).bind(&hash)
        .execute(&pool)
        .await
        .unwrap();
        prev = hash;
    }
    pool.close().await;

    let store = Store::open(&db).await.unwrap();
    assert_eq!(store.verify_audit_chain().await.unwrap(), Ok(30));
    let all = store
        .list_audit(&AuditFilter::default(), 100)
        .await
        .unwrap();
    assert_eq!(all.len(), 30);
    assert_eq!(all[0].seq, 30, "sequence numbers are kept");
    assert_eq!(all[0].event, event(30));
    let failed = store
        .list_audit(
            &AuditFilter {
                event_type: Some("auth.failed".into()),
                credential_id: Some("key_1".into()),
                ..AuditFilter::default()
            },
            100,
        )
        .await
        .unwrap();
    assert_eq!(failed.len(), 10);
    // new events extend the old chain, and sequence numbers go on from where they were
    store.append_audit(&[event(31)]).await.unwrap();
    assert_eq!(store.verify_audit_chain().await.unwrap(), Ok(31));
    let newest = store.list_audit(&AuditFilter::default(), 1).await.unwrap();
    assert_eq!(newest[0].seq, 31);
    // still append-only
    let pool = common::pool(&db).await;
    assert!(sqlx::query("DELETE FROM audit_events WHERE seq = 2")
        .execute(&pool)
        .await
        .is_err());
    assert!(
        sqlx::query("UPDATE audit_events SET reason = 'x' WHERE seq = 3")
            .execute(&pool)
            .await
            .is_err()
    );
}
