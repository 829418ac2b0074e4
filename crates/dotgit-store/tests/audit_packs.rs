//! Packed successful authentications (docs/audit.md, "Packed events"; refresh rotations are
//! packed the same way): a batch's successes of one account share a row, whether of one
//! credential or several, yet every read sees each event, in an order where no event moves past
//! an event of another kind; paging, filters, export and verification work per event; and
//! tampering with a pack's bytes or time range breaks the chain.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use dotgit_core::audit::AuditEvent;
use dotgit_store::{AuditFilter, Store, StoredEvent};
use std::collections::HashSet;

mod common;

const T0: i64 = 1_795_953_600;

fn success(i: usize, credential: &str, time: i64) -> AuditEvent {
    AuditEvent {
        id: format!("evt_{i:05}"),
        time,
        request_id: format!("req_{i}"),
        event_type: "auth.succeeded".into(),
        account_id: Some(
            if credential == "key_c" {
                "acct_2"
            } else {
                "acct_1"
            }
            .into(),
        ),
        credential_id: Some(credential.into()),
        source_ip: Some(
            if i.is_multiple_of(2) {
                "203.0.113.7"
            } else {
                "2001:db8::9"
            }
            .into(),
        ),
        user_agent: (!i.is_multiple_of(3)).then(|| format!("agent/{}", i % 2)),
        outcome: "success".into(),
        reason: Some("api_key".into()),
    }
}

fn failure(i: usize, time: i64) -> AuditEvent {
    AuditEvent {
        id: format!("evt_{i:05}"),
        time,
        request_id: format!("req_{i}"),
        event_type: "auth.failed".into(),
        account_id: Some("acct_1".into()),
        credential_id: Some("key_a".into()),
        source_ip: Some("198.51.100.1".into()),
        user_agent: None,
        outcome: "failure".into(),
        reason: Some("revoked credential".into()),
    }
}

/// One writer batch: successes of three credentials over three seconds, with two failures
/// between them.
fn batch(start: usize) -> Vec<AuditEvent> {
    (0..60)
        .map(|k| {
            let i = start + k;
            let time = T0 + (k as i64) / 20;
            match k {
                25 | 41 => failure(i, time),
                _ => success(i, ["key_a", "key_b", "key_c"][k % 3], time),
            }
        })
        .collect()
}

async fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("dotgit.db")).await.unwrap();
    (dir, store)
}

/// A connection to the store's file behind its back (counting rows, tampering).
async fn raw(dir: &tempfile::TempDir) -> sqlx::SqlitePool {
    common::pool(&dir.path().join("dotgit.db")).await
}

fn ids(events: &[StoredEvent]) -> Vec<String> {
    events.iter().map(|e| e.event.id.clone()).collect()
}

async fn all(store: &Store, f: &AuditFilter) -> Vec<StoredEvent> {
    store.list_audit(f, 100_000).await.unwrap()
}

#[tokio::test]
async fn packed_events_read_back_as_the_events_written() {
    let (dir, store) = store().await;
    let written = batch(0);
    store.append_audit(&written).await.unwrap();

    // stored as few rows: 2 accounts × 3 runs between the failures, plus the 2 failures; the
    // packs of acct_1 hold two credentials (key_a, key_b) and name each event's, so their
    // credential column is empty; acct_2's hold key_c only, named in the column
    let pool = raw(&dir).await;
    let (rows, packs): (i64, i64) =
        sqlx::query_as("SELECT COUNT(*), COUNT(pack) FROM audit_events")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((rows, packs), (8, 6));
    let credentials: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT account_id, credential_id FROM audit_events WHERE pack IS NOT NULL ORDER BY seq",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    for (account, credential) in &credentials {
        match account.as_str() {
            "acct_1" => assert_eq!(credential, &None),
            _ => assert_eq!(credential.as_deref(), Some("key_c")),
        }
    }

    let listed = all(&store, &AuditFilter::default()).await;
    assert_eq!(listed.len(), written.len());
    let mut by_id: Vec<&AuditEvent> = listed.iter().map(|e| &e.event).collect();
    by_id.sort_by(|a, b| a.id.cmp(&b.id));
    let expected: Vec<&AuditEvent> = written.iter().collect();
    assert_eq!(by_id, expected, "every field of every event survives");

    // newest first; each credential's events keep their order; nothing crosses a failure
    let position = |id: &str| listed.iter().position(|e| e.event.id == id).unwrap();
    for cred in ["key_a", "key_b", "key_c"] {
        let mine: Vec<usize> = listed
            .iter()
            .enumerate()
            .filter(|(_, e)| e.event.credential_id.as_deref() == Some(cred))
            .map(|(p, _)| p)
            .collect();
        let order: Vec<&str> = mine.iter().map(|p| listed[*p].event.id.as_str()).collect();
        let mut sorted = order.clone();
        sorted.sort_unstable_by(|a, b| b.cmp(a));
        assert_eq!(order, sorted, "{cred}: newest first");
    }
    for (k, e) in written.iter().enumerate() {
        for fail in [25usize, 41] {
            let (f, p) = (position(&written[fail].id), position(&e.id));
            if k < fail {
                assert!(p > f, "{} was written before {}", e.id, written[fail].id);
            } else if k > fail {
                assert!(p < f, "{} was written after {}", e.id, written[fail].id);
            }
        }
    }

    // export and verification count events, not rows
    let exported = store.audit_after(0, 1000).await.unwrap();
    assert_eq!(exported.len(), written.len());
    assert_eq!(store.verify_audit_chain().await.unwrap(), Ok(60));
}

#[tokio::test]
async fn packs_of_the_two_packed_types_never_share_a_row_or_cross() {
    let (dir, store) = store().await;
    // one account's successes, then its refresh rotations (the refresh writer's type, packed
    // since 2026-12-07), then successes again: three runs, three packs, in that order
    let refreshed = |i: usize| AuditEvent {
        event_type: "oauth.token_refreshed".into(),
        credential_id: Some(format!("grant_{}", i % 2)),
        reason: Some("app dgc_1, scope `repo:read`".into()),
        ..success(i, "key_a", T0)
    };
    let written: Vec<AuditEvent> = (0..12)
        .map(|i| match i {
            4..=7 => refreshed(i),
            _ => success(i, "key_a", T0),
        })
        .collect();
    store.append_audit(&written).await.unwrap();
    let rows: Vec<(String, bool)> =
        sqlx::query_as("SELECT type, pack IS NOT NULL FROM audit_events ORDER BY seq")
            .fetch_all(&raw(&dir).await)
            .await
            .unwrap();
    let expected = [
        ("auth.succeeded", true),
        ("oauth.token_refreshed", true),
        ("auth.succeeded", true),
    ];
    assert_eq!(
        rows.iter()
            .map(|(t, p)| (t.as_str(), *p))
            .collect::<Vec<_>>(),
        expected
    );
    // read back in the order written (oldest first), every field kept
    let mut listed: Vec<AuditEvent> = all(&store, &AuditFilter::default())
        .await
        .into_iter()
        .map(|e| e.event)
        .collect();
    listed.reverse();
    assert_eq!(listed, written);
    assert_eq!(store.verify_audit_chain().await.unwrap(), Ok(12));
}

#[tokio::test]
async fn filters_apply_to_each_packed_event() {
    let (_dir, store) = store().await;
    let written = batch(0);
    store.append_audit(&written).await.unwrap();
    let expect = |pred: &dyn Fn(&AuditEvent) -> bool| -> HashSet<String> {
        written
            .iter()
            .filter(|e| pred(e))
            .map(|e| e.id.clone())
            .collect()
    };
    let got = |v: Vec<StoredEvent>| -> HashSet<String> { ids(&v).into_iter().collect() };

    // a time range that cuts through the packs (they span T0 … T0+2)
    let f = AuditFilter {
        since: Some(T0 + 1),
        until: Some(T0 + 2),
        ..AuditFilter::default()
    };
    assert_eq!(got(all(&store, &f).await), expect(&|e| e.time == T0 + 1));
    let f = AuditFilter {
        credential_id: Some("key_b".into()),
        since: Some(T0 + 2),
        ..AuditFilter::default()
    };
    assert_eq!(
        got(all(&store, &f).await),
        expect(&|e| e.credential_id.as_deref() == Some("key_b") && e.time >= T0 + 2)
    );
    let f = AuditFilter {
        account_id: Some("acct_2".into()),
        ..AuditFilter::default()
    };
    assert_eq!(
        got(all(&store, &f).await),
        expect(&|e| e.account_id.as_deref() == Some("acct_2"))
    );
    let f = AuditFilter {
        event_type: Some("auth.".into()),
        outcome: Some("success".into()),
        ..AuditFilter::default()
    };
    assert_eq!(
        got(all(&store, &f).await),
        expect(&|e| e.outcome == "success")
    );
    let f = AuditFilter {
        event_type: Some("auth.failed".into()),
        ..AuditFilter::default()
    };
    assert_eq!(
        got(all(&store, &f).await),
        expect(&|e| e.outcome == "failure")
    );
}

#[tokio::test]
async fn paging_through_packs_is_stable_while_events_arrive() {
    let (_dir, store) = store().await;
    let first = batch(0);
    store.append_audit(&first).await.unwrap();
    let whole = all(&store, &AuditFilter::default()).await;

    // pages of 7 split packs in the middle; a new batch lands between every two pages
    let mut paged: Vec<StoredEvent> = Vec::new();
    let mut before = None;
    let mut next_batch = 1000;
    loop {
        let f = AuditFilter {
            before,
            ..AuditFilter::default()
        };
        let page = store.list_audit(&f, 7).await.unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 7);
        let last = page.last().unwrap();
        before = Some((last.seq, last.index));
        paged.extend(page);
        store.append_audit(&batch(next_batch)).await.unwrap();
        next_batch += 1000;
    }
    assert_eq!(ids(&paged), ids(&whole), "no event lost, repeated or moved");
    assert!(paged.iter().any(|e| e.index > 0), "the pages crossed packs");
}

/// The chain breaks at row `seq`, and reads refuse the log rather than invent its events.
async fn refused_at(store: &Store, seq: i64) {
    assert_eq!(
        store.verify_audit_chain().await.unwrap().map_err(|b| b.seq),
        Err(seq)
    );
    assert!(store
        .list_audit(&AuditFilter::default(), 1000)
        .await
        .is_err());
}

#[tokio::test]
async fn tampering_with_a_pack_is_caught() {
    let (dir, store) = store().await;
    store.append_audit(&batch(0)).await.unwrap();
    store.append_audit(&batch(100)).await.unwrap();
    assert_eq!(store.verify_audit_chain().await.unwrap(), Ok(120));
    let pool = raw(&dir).await;
    let (seq, pack, time_last): (i64, Vec<u8>, i64) = sqlx::query_as(
        "SELECT seq, pack, time_last FROM audit_events WHERE pack IS NOT NULL ORDER BY seq LIMIT 1 OFFSET 4",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(
        sqlx::query("UPDATE audit_events SET pack = x'00' WHERE seq = ?")
            .bind(seq)
            .execute(&pool)
            .await
            .is_err(),
        "append-only"
    );
    sqlx::query("DROP TRIGGER audit_events_no_update")
        .execute(&pool)
        .await
        .unwrap();

    // another request id inside the pack, same length: the bytes still decode
    let mut forged = pack.clone();
    let at = forged
        .windows(4)
        .position(|w| w == b"req_")
        .expect("a request id in the pack");
    forged[at + 4] = if forged[at + 4] == b'9' { b'8' } else { b'9' };
    for (column, value) in [
        (
            "pack",
            sqlx::query("UPDATE audit_events SET pack = ? WHERE seq = ?").bind(forged),
        ),
        (
            "time_last",
            sqlx::query(
                "UPDATE audit_events SET time_last = time_last + 1, pack = ? WHERE seq = ?",
            )
            .bind(pack.clone()),
        ),
    ] {
        value.bind(seq).execute(&pool).await.unwrap();
        let broken = store.verify_audit_chain().await.unwrap();
        assert_eq!(broken.map_err(|b| b.seq), Err(seq), "{column}");
        // restored, the chain holds again
        sqlx::query("UPDATE audit_events SET pack = ?, time_last = ? WHERE seq = ?")
            .bind(pack.clone())
            .bind(time_last)
            .bind(seq)
            .execute(&pool)
            .await
            .unwrap();
        assert_eq!(
            store.verify_audit_chain().await.unwrap(),
            Ok(120),
            "{column}"
        );
    }
    // the pack holds two credentials: pinning it on one of them in its row breaks the chain,
    // and reads refuse the row rather than attribute every event to that credential
    let (credential,): (Option<String>,) =
        sqlx::query_as("SELECT credential_id FROM audit_events WHERE seq = ?")
            .bind(seq)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(credential, None, "a pack of several credentials");
    sqlx::query("UPDATE audit_events SET credential_id = 'key_a' WHERE seq = ?")
        .bind(seq)
        .execute(&pool)
        .await
        .unwrap();
    refused_at(&store, seq).await;
    sqlx::query("UPDATE audit_events SET credential_id = NULL WHERE seq = ?")
        .bind(seq)
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(store.verify_audit_chain().await.unwrap(), Ok(120));
    // bytes that no longer decode: reading fails instead of inventing events
    sqlx::query("UPDATE audit_events SET pack = x'01ff' WHERE seq = ?")
        .bind(seq)
        .execute(&pool)
        .await
        .unwrap();
    refused_at(&store, seq).await;
}
