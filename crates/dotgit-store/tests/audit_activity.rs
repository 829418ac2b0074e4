//! The activity file (ADR 0020): a writer batch of successful authentications alone goes to
//! `dotgit-activity.db` beside the database, so the database file — and the page cache of every
//! connection that reads keys from it — is left alone by the per-request writes. Every other
//! event stays in the database file. Both files share one sequence of positions, so reads,
//! paging and export see one log in order; each file carries its own hash chain, and tampering in
//! either is caught.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use common::pool as raw;
use dotgit_core::audit::AuditEvent;
use dotgit_store::{activity_path, AuditFilter, Store};

mod common;

const T0: i64 = 1_795_953_600;

fn event(i: usize, kind: &str) -> AuditEvent {
    let ok = kind == "auth.succeeded";
    AuditEvent {
        id: format!("evt_{i:05}"),
        time: T0 + i as i64,
        request_id: format!("req_{i}"),
        event_type: kind.to_owned().into(),
        account_id: Some("acct_1".into()),
        credential_id: Some(format!("key_{}", i % 3)),
        source_ip: Some("203.0.113.7".into()),
        user_agent: None,
        outcome: if ok { "success" } else { "failure" }.to_owned().into(),
        reason: Some(if ok { "api_key" } else { "revoked credential" }.into()),
    }
}

fn successes(from: usize, n: usize) -> Vec<AuditEvent> {
    (from..from + n)
        .map(|i| event(i, "auth.succeeded"))
        .collect()
}

/// SQLite's count of commits other connections made to the file `pool` reads.
async fn data_version(pool: &sqlx::SqlitePool) -> i64 {
    sqlx::query_scalar("PRAGMA data_version")
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn rows(pool: &sqlx::SqlitePool) -> Vec<(i64, String)> {
    sqlx::query_as("SELECT seq, type FROM audit_events ORDER BY seq")
        .fetch_all(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn successes_alone_leave_the_database_file_unchanged_and_read_back_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("dotgit.db");
    let store = Store::open(&db).await.unwrap();
    assert!(activity_path(&db).ends_with("dotgit-activity.db"));
    let (main, activity) = (raw(&db).await, raw(&activity_path(&db)).await);

    store
        .append_audit(&[event(0, "auth.failed")])
        .await
        .unwrap();
    let before = data_version(&main).await;
    store.append_audit(&successes(1, 40)).await.unwrap();
    store.append_audit(&successes(41, 9)).await.unwrap();
    assert_eq!(
        data_version(&main).await,
        before,
        "a batch of successes committed to the database file"
    );
    // a failure, then a batch with a failure among successes: the database file, whole
    let mut mixed = successes(51, 5);
    mixed.insert(2, event(50, "auth.failed"));
    store
        .append_audit(&[event(56, "account.suspended")])
        .await
        .unwrap();
    store.append_audit(&mixed).await.unwrap();
    assert_ne!(data_version(&main).await, before);

    // where the rows are: positions 2 and 3 (the two packs) in the activity file
    let (in_main, in_activity) = (rows(&main).await, rows(&activity).await);
    assert_eq!(
        in_activity,
        vec![(2, "auth.succeeded".into()), (3, "auth.succeeded".into())]
    );
    assert_eq!(in_main.first(), Some(&(1, "auth.failed".to_owned())));
    assert!(in_main.iter().all(|(seq, _)| *seq == 1 || *seq > 3));

    // one log: every event once, newest first, positions strictly decreasing across the files
    let all = store
        .list_audit(&AuditFilter::default(), 1000)
        .await
        .unwrap();
    assert_eq!(all.len(), 57);
    assert!(all
        .windows(2)
        .all(|w| (w[0].seq, w[0].index) > (w[1].seq, w[1].index)));
    let ids: Vec<&str> = all.iter().rev().map(|e| e.event.id.as_str()).collect();
    let mut expected: Vec<String> = (0..50).map(|i| format!("evt_{i:05}")).collect();
    expected.push("evt_00056".into());
    expected.extend(mixed.iter().map(|e| e.id.clone()));
    assert_eq!(ids, expected);

    // paged in threes through both files: the same events
    let mut paged = Vec::new();
    let mut before = None;
    loop {
        let page = store
            .list_audit(
                &AuditFilter {
                    account_id: Some("acct_1".into()),
                    before,
                    ..Default::default()
                },
                3,
            )
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        before = Some((last.seq, last.index));
        paged.extend(page);
    }
    assert_eq!(paged.len(), 57);
    assert!(paged
        .iter()
        .zip(&all)
        .all(|(a, b)| a.event.id == b.event.id));

    // a rare type's filter reads the database file alone and finds its events
    let failed = store
        .list_audit(
            &AuditFilter {
                event_type: Some("auth.failed".into()),
                ..Default::default()
            },
            100,
        )
        .await
        .unwrap();
    assert_eq!(failed.len(), 2);
    // and an outcome filter: failures from the database file alone, successes from both
    for (outcome, n) in [("failure", 3), ("success", 54)] {
        let found = store
            .list_audit(
                &AuditFilter {
                    outcome: Some(outcome.into()),
                    ..Default::default()
                },
                100,
            )
            .await
            .unwrap();
        assert_eq!(found.len(), n, "{outcome}");
        assert!(found.iter().all(|e| e.event.outcome == outcome));
    }

    // export from a position reads both files in order
    let exported = store.audit_after(1, 1000).await.unwrap();
    assert_eq!(exported.len(), 56);
    assert_eq!(exported[0].event.id, "evt_00001");
    assert_eq!(store.verify_audit_chain().await.unwrap(), Ok(57));
}

#[tokio::test]
async fn tampering_in_the_activity_file_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("dotgit.db");
    let store = Store::open(&db).await.unwrap();
    store
        .append_audit(&[event(0, "auth.failed")])
        .await
        .unwrap();
    for k in 0..3 {
        store
            .append_audit(&successes(1 + 10 * k, 10))
            .await
            .unwrap();
    }
    assert_eq!(store.verify_audit_chain().await.unwrap(), Ok(31));
    let activity = raw(&activity_path(&db)).await;
    assert!(
        sqlx::query("DELETE FROM audit_events WHERE seq = 3")
            .execute(&activity)
            .await
            .is_err(),
        "the activity file's rows are append-only"
    );
    sqlx::query("DROP TRIGGER audit_events_no_delete")
        .execute(&activity)
        .await
        .unwrap();
    sqlx::query("DELETE FROM audit_events WHERE seq = 3")
        .execute(&activity)
        .await
        .unwrap();
    let broken = store.verify_audit_chain().await.unwrap();
    assert_eq!(broken.map_err(|b| b.seq), Err(4));
}

/// Two stores on one data directory — a server and the command line — append at once: the
/// server's batches of successes to the activity file, the other's events to the database file.
/// Every position is given once, in commit order, and both chains hold.
#[tokio::test]
async fn two_writers_share_one_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("dotgit.db");
    let (server, cli) = (
        Store::open(&db).await.unwrap(),
        Store::open(&db).await.unwrap(),
    );
    let a = tokio::spawn(async move {
        for k in 0..40 {
            server
                .append_audit(&successes(1000 + 5 * k, 5))
                .await
                .unwrap();
        }
    });
    let b = tokio::spawn(async move {
        for k in 0..40 {
            cli.append_audit(&[event(k, "auth.failed")]).await.unwrap();
        }
        cli
    });
    a.await.unwrap();
    let cli = b.await.unwrap();
    let (main, activity) = (raw(&db).await, raw(&activity_path(&db)).await);
    let mut seqs: Vec<i64> = rows(&main)
        .await
        .into_iter()
        .chain(rows(&activity).await)
        .map(|(s, _)| s)
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=80).collect::<Vec<i64>>());
    assert_eq!(cli.verify_audit_chain().await.unwrap(), Ok(240));
}
