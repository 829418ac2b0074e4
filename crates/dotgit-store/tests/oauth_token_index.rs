//! OAuth tokens are found by digest through a map in memory over a table without a digest index
//! (migration 0015, ADR 0022). The table stays the truth: tokens stored before the upgrade are
//! found, two digests sharing the map's 64-bit key are both found, a token whose row went is
//! unknown even where a later row took its rowid, and the purge forgets what it deletes. And
//! rotations batched into one transaction (ADR 0015): one that fails is rolled back alone.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use dotgit_core::audit::AuditEvent;
use dotgit_store::{IssuedTokens, OAuthPurged, OAuthTokenRow, Rotated, Store, StoreError};
use sqlx::SqlitePool;

mod common;

const NOW: i64 = 1_795_953_600;

/// A 64-character hex digest: `head` (16 hex characters, the map's key) then `tail` repeated.
fn digest(head: &str, tail: char) -> String {
    assert_eq!(head.len(), 16);
    format!("{head}{}", tail.to_string().repeat(48))
}

/// The parties, and grant `g1`, live for 30 days.
async fn family(raw: &SqlitePool) {
    common::oauth_parties(raw).await;
    grant(raw, "g1").await;
}

/// Another grant of the same account and app, live for 30 days.
async fn grant(raw: &SqlitePool, id: &str) {
    sqlx::query(
        "INSERT INTO oauth_grants (id, authorization_id, account_id, client_id, scope, created_at,
         refresh_expires_at) VALUES ($1, 'oaz', 'acct', 'dgc', 'repo:read', $2, $3)",
    )
    .bind(id)
    .bind(NOW - 100)
    .bind(NOW + 30 * 86_400)
    .execute(raw)
    .await
    .unwrap();
}

/// A token row written behind the store's back; returns its rowid.
async fn token(raw: &SqlitePool, id: &str, hash: &str, kind: &str, expires_at: i64) -> i64 {
    sqlx::query(
        "INSERT INTO oauth_tokens (id, token_hash, kind, grant_id, account_id, client_id, scope,
         created_at, expires_at) VALUES ($1, $2, $3, 'g1', 'acct', 'dgc', 'repo:read', $4, $5)",
    )
    .bind(id)
    .bind(hash)
    .bind(kind)
    .bind(NOW - 100)
    .bind(expires_at)
    .execute(raw)
    .await
    .unwrap()
    .last_insert_rowid()
}

async fn found(store: &Store, hash: &str) -> Option<String> {
    store
        .oauth_token_by_hash(hash)
        .await
        .unwrap()
        .map(|(t, _, _)| t.id)
}

/// A token's `used_at` and `replaced_by`, as the store reads them.
async fn used(store: &Store, hash: &str) -> (Option<i64>, Option<String>) {
    let (t, _, _) = store.oauth_token_by_hash(hash).await.unwrap().unwrap();
    (t.used_at, t.replaced_by)
}

fn new_token(id: &str, hash: &str, kind: &str) -> OAuthTokenRow {
    OAuthTokenRow {
        id: id.into(),
        token_hash: hash.into(),
        kind: kind.into(),
        grant_id: "g1".into(),
        account_id: "acct".into(),
        client_id: "dgc".into(),
        scope: "repo:read".into(),
        created_at: NOW,
        expires_at: NOW + 7_200,
        revoked_at: None,
        used_at: None,
        replaced_by: None,
    }
}

fn event(kind: &'static str, account: &str, credential: &str, reason: String) -> AuditEvent {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    AuditEvent {
        id: format!("evt_{n}"),
        time: NOW,
        request_id: "internal".into(),
        event_type: kind.to_owned().into(),
        account_id: Some(account.into()),
        credential_id: Some(credential.into()),
        source_ip: None,
        user_agent: None,
        outcome: "success".to_owned().into(),
        reason: Some(reason.into()),
    }
}

/// Rotates `hash` into an access token and a refresh token with the given digests (ids
/// `tok_new_a{n}` and `tok_new_r{n}`).
async fn try_rotate(
    store: &Store,
    hash: &str,
    n: u32,
    access: &str,
    refresh: &str,
) -> Result<Rotated<()>, StoreError> {
    let (access, refresh) = (access.to_owned(), refresh.to_owned());
    store
        .rotate_refresh(
            hash,
            NOW,
            move |_, _, _| -> Result<IssuedTokens, ()> {
                Ok(IssuedTokens {
                    grant: None,
                    access: new_token(&format!("tok_new_a{n}"), &access, "access"),
                    // rotation FAILS makes a refresh token of no kind, which the table's CHECK
                    // refuses after the access token was inserted
                    refresh: new_token(
                        &format!("tok_new_r{n}"),
                        &refresh,
                        if n == FAILS { "neither" } else { "refresh" },
                    ),
                })
            },
            event,
        )
        .await
}

/// The rotation number whose insert fails (`try_rotate`).
const FAILS: u32 = 99;

async fn rotate(store: &Store, hash: &str, n: u32, access: &str, refresh: &str) -> Rotated<()> {
    try_rotate(store, hash, n, access, refresh).await.unwrap()
}

/// Queues a rotation of each of `hashes` at once, so that the writer takes them as one batch:
/// the n-th into tokens whose digests begin with `access + n` and `refresh + n` (16 hex
/// characters) and go on with `tail`.
fn queue_rotations(
    store: &Store,
    hashes: &[String],
    access: u32,
    refresh: u32,
    tail: char,
) -> Vec<tokio::task::JoinHandle<Result<Rotated<()>, StoreError>>> {
    hashes
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let n = i as u32;
            let (a, f) = (
                digest(&format!("{:016x}", access + n), tail),
                digest(&format!("{:016x}", refresh + n), tail),
            );
            let (store, h) = (store.clone(), h.clone());
            tokio::spawn(async move { try_rotate(&store, &h, n, &a, &f).await })
        })
        .collect()
}

/// The `oauth.token_refreshed` events as every reader sees them (packs expanded), newest first;
/// only those naming `credential` when given.
async fn refreshed(store: &Store, credential: Option<&str>) -> Vec<AuditEvent> {
    let f = dotgit_store::AuditFilter {
        event_type: Some("oauth.token_refreshed".into()),
        credential_id: credential.map(str::to_owned),
        ..Default::default()
    };
    store
        .list_audit(&f, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .collect()
}

/// A fresh store with grant `g1` and `n` refresh tokens of it (`tok_r0`, `tok_r1`, …) whose
/// digests begin with `first`, `first + 1`, … (16 hex characters) and go on with `tail`; the
/// directory lasts as long as the returned guard.
async fn refresh_tokens(
    n: u64,
    first: u64,
    tail: char,
) -> (tempfile::TempDir, Store, SqlitePool, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("dotgit.db");
    let store = Store::open(&db).await.unwrap();
    let raw = common::pool(&db).await;
    family(&raw).await;
    let r: Vec<String> = (0..n)
        .map(|i| digest(&format!("{:016x}", first + i), tail))
        .collect();
    for (i, h) in r.iter().enumerate() {
        token(&raw, &format!("tok_r{i}"), h, "refresh", NOW + 30 * 86_400).await;
    }
    (dir, store, raw, r)
}

#[tokio::test]
async fn tokens_stored_before_0015_are_found_and_rotate_through_the_map() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("dotgit.db");
    let raw = common::database_before(dir.path(), &db, "0015").await;
    family(&raw).await;
    // two digests sharing their first 64 bits (the map's key) and one that does not
    let (r1, r2) = (
        digest("00000000000000aa", 'b'),
        digest("00000000000000aa", 'c'),
    );
    let a1 = digest("1111111111111111", 'd');
    token(&raw, "tok_r1", &r1, "refresh", NOW + 30 * 86_400).await;
    token(&raw, "tok_r2", &r2, "refresh", NOW + 30 * 86_400).await;
    token(&raw, "tok_a1", &a1, "access", NOW + 7_200).await;
    // a refresh token rotated before 0015, its own row marked, in a family of its own
    grant(&raw, "g2").await;
    let old = digest("abcdef0123456789", '0');
    sqlx::query(
        "INSERT INTO oauth_tokens (id, token_hash, kind, grant_id, account_id, client_id, scope,
         created_at, expires_at, used_at, replaced_by)
         VALUES ('tok_old', $1, 'refresh', 'g2', 'acct', 'dgc', 'repo:read', $2, $3, $4, 'tok_x')",
    )
    .bind(&old)
    .bind(NOW - 100)
    .bind(NOW + 30 * 86_400)
    .bind(NOW - 50)
    .execute(&raw)
    .await
    .unwrap();
    raw.close().await;

    let store = Store::open(&db).await.unwrap();
    let raw = common::pool(&db).await;
    let (digest_indexes,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM pragma_index_list('oauth_tokens') l
         JOIN pragma_index_info(l.name) i WHERE i.name = 'token_hash'",
    )
    .fetch_one(&raw)
    .await
    .unwrap();
    assert_eq!(digest_indexes, 0, "no index on the digest is left");
    assert_eq!(store.warm_token_index().await.unwrap(), 4);
    assert_eq!(
        used(&store, &old).await,
        (Some(NOW - 50), Some("tok_x".into()))
    );

    assert_eq!(found(&store, &r1).await.as_deref(), Some("tok_r1"));
    assert_eq!(found(&store, &r2).await.as_deref(), Some("tok_r2"));
    assert_eq!(found(&store, &a1).await.as_deref(), Some("tok_a1"));
    assert_eq!(found(&store, &digest("00000000000000aa", 'e')).await, None);
    assert_eq!(found(&store, "not a digest").await, None);
    assert_eq!(found(&store, "").await, None);

    // the second of the two sharing a key rotates, and its successors are found at once
    let (a2, r3) = (
        digest("2222222222222222", 'f'),
        digest("00000000000000aa", '9'),
    );
    assert!(matches!(
        rotate(&store, &r2, 2, &a2, &r3).await,
        Rotated::Issued(_)
    ));
    assert_eq!(found(&store, &a2).await.as_deref(), Some("tok_new_a2"));
    assert_eq!(found(&store, &r3).await.as_deref(), Some("tok_new_r2"));
    // the consumed token reads as used, replaced by its successor, whose row names it; its own
    // row is not written
    assert_eq!(
        used(&store, &r2).await,
        (Some(NOW), Some("tok_new_r2".into()))
    );
    let (raw_used, names): (Option<i64>, bool) = sqlx::query_as(
        "SELECT p.used_at, s.replaces = p.seq FROM oauth_tokens p, oauth_tokens s
         WHERE p.id = 'tok_r2' AND s.id = 'tok_new_r2'",
    )
    .fetch_one(&raw)
    .await
    .unwrap();
    assert_eq!((raw_used, names), (None, true));
    // the one it shares a key with is untouched
    assert_eq!(used(&store, &r1).await, (None, None));
    // presented again: reuse, the family revoked
    assert!(matches!(
        rotate(
            &store,
            &r2,
            3,
            &digest("3333333333333333", '1'),
            &digest("4444444444444444", '1')
        )
        .await,
        Rotated::Reused
    ));
    // a digest no token has rotates nothing
    assert!(matches!(
        rotate(
            &store,
            &digest("00000000000000aa", '7'),
            4,
            &digest("5555555555555555", '1'),
            &digest("6666666666666666", '1')
        )
        .await,
        Rotated::Unknown
    ));

    // after a restart the map is loaded from the table
    store.close().await;
    let store = Store::open(&db).await.unwrap();
    assert_eq!(store.warm_token_index().await.unwrap(), 6);
    assert_eq!(found(&store, &r3).await.as_deref(), Some("tok_new_r2"));
    assert_eq!(found(&store, &r1).await.as_deref(), Some("tok_r1"));
    // presented again after the upgrade, the token rotated before it is reuse
    assert!(matches!(
        rotate(
            &store,
            &old,
            5,
            &digest("7777777777777777", '2'),
            &digest("8888888888888888", '2')
        )
        .await,
        Rotated::Reused
    ));
    store.close().await;
}

#[tokio::test]
async fn a_token_whose_row_went_is_unknown_even_where_a_later_row_took_its_rowid() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("dotgit.db");
    let store = Store::open(&db).await.unwrap();
    let raw = common::pool(&db).await;
    family(&raw).await;
    let gone = digest("7777777777777777", 'a');
    let rowid = token(&raw, "tok_gone", &gone, "access", NOW + 7_200).await;
    // written behind the store's back, before its map was loaded: the load reads it
    assert_eq!(found(&store, &gone).await.as_deref(), Some("tok_gone"));
    // the row goes as a cascade deletes it (not through the purge, which tells the map)
    sqlx::query("DELETE FROM oauth_tokens WHERE id = 'tok_gone'")
        .execute(&raw)
        .await
        .unwrap();
    assert_eq!(found(&store, &gone).await, None);
    // a later row takes the same rowid (only by naming it: since migration 0016 SQLite gives no
    // `seq` twice, but a restored or hand-edited table may): the map's stale entry points at
    // it, and the digest check refuses it
    let other = digest("7777777777777777", 'b');
    sqlx::query(
        "INSERT INTO oauth_tokens (rowid, id, token_hash, kind, grant_id, account_id, client_id,
         scope, created_at, expires_at)
         VALUES ($1, 'tok_other', $2, 'access', 'g1', 'acct', 'dgc', 'repo:read', $3, $4)",
    )
    .bind(rowid)
    .bind(&other)
    .bind(NOW)
    .bind(NOW + 7_200)
    .execute(&raw)
    .await
    .unwrap();
    assert_eq!(found(&store, &gone).await, None);
    store.close().await;
}

#[tokio::test]
async fn the_purge_forgets_the_tokens_it_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("dotgit.db");
    let store = Store::open(&db).await.unwrap();
    let raw = common::pool(&db).await;
    family(&raw).await;
    let mut expired = Vec::new();
    for i in 0..5 {
        let h = digest(&format!("{i:016x}"), 'c');
        token(&raw, &format!("tok_x{i}"), &h, "access", NOW - 10).await;
        expired.push(h);
    }
    let live = digest("8888888888888888", 'c');
    token(&raw, "tok_live", &live, "access", NOW + 7_200).await;
    assert_eq!(store.warm_token_index().await.unwrap(), 6);
    assert_eq!(found(&store, &expired[0]).await.as_deref(), Some("tok_x0"));
    assert_eq!(
        store
            .purge_ended_oauth(NOW, 30 * 86_400, 500)
            .await
            .unwrap(),
        OAuthPurged {
            access_tokens: 5,
            refresh_tokens: 0,
            grants: 0,
            more: false
        }
    );
    assert_eq!(store.warm_token_index().await.unwrap(), 1);
    for h in &expired {
        assert_eq!(found(&store, h).await, None);
    }
    assert_eq!(found(&store, &live).await.as_deref(), Some("tok_live"));
    store.close().await;
}

#[tokio::test]
async fn a_rotation_that_fails_in_a_batch_is_rolled_back_alone() {
    let (_dir, store, _raw, r) = refresh_tokens(3, 0xa1, 'a').await;
    // the second rotation's new refresh token is refused by the table after its new access
    // token was inserted
    let new = |i: u32| {
        (
            digest(&format!("{:016x}", 0xb0 + i), 'b'),
            digest(&format!("{:016x}", 0xc0 + i), 'c'),
        )
    };
    let ((a1, r1), (a2, r2), (a3, r3)) = (new(1), new(2), new(3));
    // queued together, so the writer takes them as one batch
    let (first, second, third) = tokio::join!(
        try_rotate(&store, &r[0], 1, &a1, &r1),
        try_rotate(&store, &r[1], FAILS, &a2, &r2),
        try_rotate(&store, &r[2], 3, &a3, &r3),
    );
    assert!(matches!(first, Ok(Rotated::Issued(_))), "{first:?}");
    assert!(
        matches!(second, Err(StoreError::Conflict("token"))),
        "{second:?}"
    );
    assert!(matches!(third, Ok(Rotated::Issued(_))), "{third:?}");
    assert_eq!(found(&store, &r1).await.as_deref(), Some("tok_new_r1"));
    assert_eq!(found(&store, &r3).await.as_deref(), Some("tok_new_r3"));
    assert_eq!(found(&store, &a2).await, None);
    assert_eq!(used(&store, &r[0]).await.0, Some(NOW));
    assert_eq!(used(&store, &r[1]).await, (None, None), "rolled back");
    assert_eq!(used(&store, &r[2]).await.0, Some(NOW));
    assert_eq!(
        refreshed(&store, None).await.len(),
        2,
        "no event of the rotation rolled back"
    );
    // the batch appended its events to one chain, without a gap or a fork
    assert!(store.verify_audit_chain().await.unwrap().is_ok());
    // the token whose rotation failed is still good
    assert!(matches!(
        rotate(&store, &r[1], 2, &a2, &r2).await,
        Rotated::Issued(_)
    ));
    assert_eq!(found(&store, &r2).await.as_deref(), Some("tok_new_r2"));
    assert!(store.verify_audit_chain().await.unwrap().is_ok());
    store.close().await;
}

#[tokio::test]
async fn a_batch_of_rotations_extends_one_audit_chain() {
    let (_dir, store, raw, r) = refresh_tokens(8, 0xd0, 'd').await;
    // eight rotations queued together, the last presenting the first's token again (reuse:
    // two more events, the family revoked); one batch, one head of the log read
    let jobs = queue_rotations(&store, &r, 0xe0, 0xf0, 'e');
    let (store2, again) = (store.clone(), r[0].clone());
    let reuse = tokio::spawn(async move {
        try_rotate(
            &store2,
            &again,
            50,
            &digest("abababababababab", 'a'),
            &digest("cdcdcdcdcdcdcdcd", 'a'),
        )
        .await
    });
    for j in jobs {
        assert!(matches!(j.await.unwrap(), Ok(Rotated::Issued(_))));
    }
    assert!(matches!(reuse.await.unwrap(), Ok(Rotated::Reused)));
    // the eight rotations' events are one packed row, then the reuse's two rows, in the order
    // the rotations ran
    let rows: Vec<(i64, String, bool)> =
        sqlx::query_as("SELECT seq, type, pack IS NOT NULL FROM audit_events ORDER BY seq")
            .fetch_all(&raw)
            .await
            .unwrap();
    let expected = [
        (1, "oauth.token_refreshed", true),
        (2, "oauth.refresh_reuse_detected", false),
        (3, "anomaly.refresh_token_reuse", false),
    ];
    assert_eq!(
        rows.iter()
            .map(|(s, t, p)| (*s, t.as_str(), *p))
            .collect::<Vec<_>>(),
        expected,
        "positions without a gap"
    );
    // read back as the ten events the rotations made, oldest first
    let mut log = store
        .list_audit(&dotgit_store::AuditFilter::default(), 100)
        .await
        .unwrap();
    log.reverse();
    let types: Vec<&str> = log.iter().map(|e| &*e.event.event_type).collect();
    assert_eq!(types[..8], ["oauth.token_refreshed"; 8]);
    assert_eq!(
        types[8..],
        [
            "oauth.refresh_reuse_detected",
            "anomaly.refresh_token_reuse"
        ]
    );
    assert!(store.verify_audit_chain().await.unwrap().is_ok());
    // appends after the batch (through the other writers) continue the same chain
    store
        .append_audit(&[event("account.suspended", "acct", "acct", "test".into())])
        .await
        .unwrap();
    assert!(store.verify_audit_chain().await.unwrap().is_ok());
    store.close().await;
}

/// Rows of `oauth_tokens` whose account or app is missing.
async fn orphans(raw: &SqlitePool) -> usize {
    sqlx::query("PRAGMA foreign_key_check(oauth_tokens)")
        .fetch_all(raw)
        .await
        .unwrap()
        .len()
}

#[tokio::test]
async fn rotations_write_tokens_only_under_the_consumed_tokens_account_and_app() {
    // the refresh writer checks no foreign key (refresh::open): what it inserts must name parents
    // that exist, which the consumed token's do
    let (_dir, store, raw, r) = refresh_tokens(3, 0x10, '1').await;
    let (a0, f0) = (
        digest("2000000000000000", '2'),
        digest("3000000000000000", '3'),
    );
    assert!(matches!(
        rotate(&store, &r[0], 0, &a0, &f0).await,
        Rotated::Issued(_)
    ));
    assert_eq!(orphans(&raw).await, 0);

    // a check that hands back tokens of another account or app is refused, nothing written
    let (a1, f1) = (
        digest("2100000000000000", '2'),
        digest("3100000000000000", '3'),
    );
    for (account, client) in [("nobody", "dgc"), ("acct", "dgc_nobody")] {
        let (a, f) = (a1.clone(), f1.clone());
        let out = store
            .rotate_refresh(
                &r[1],
                NOW,
                move |_, _, _| -> Result<IssuedTokens, ()> {
                    let mut access = new_token("tok_x_a", &a, "access");
                    let mut refresh = new_token("tok_x_r", &f, "refresh");
                    refresh.account_id = account.into();
                    access.client_id = client.into();
                    Ok(IssuedTokens {
                        grant: None,
                        access,
                        refresh,
                    })
                },
                event,
            )
            .await;
        assert!(matches!(out, Err(StoreError::Internal(_))), "{out:?}");
    }
    assert_eq!(found(&store, &a1).await, None);
    assert_eq!(found(&store, &f1).await, None);
    assert_eq!(used(&store, &r[1]).await, (None, None));
    assert_eq!(orphans(&raw).await, 0);

    // the app deleted (its tokens go with it): its last token is unknown, nothing is inserted
    sqlx::query("DELETE FROM oauth_apps WHERE client_id = 'dgc'")
        .execute(&raw)
        .await
        .unwrap();
    let (a2, f2) = (
        digest("2200000000000000", '2'),
        digest("3200000000000000", '3'),
    );
    assert!(matches!(
        rotate(&store, &r[2], 2, &a2, &f2).await,
        Rotated::Unknown
    ));
    let (left,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM oauth_tokens")
        .fetch_one(&raw)
        .await
        .unwrap();
    assert_eq!(left, 0);
    assert_eq!(orphans(&raw).await, 0);
    store.close().await;
}

#[tokio::test]
async fn a_batchs_refresh_events_are_packed_and_read_back_whole() {
    let (_dir, store, raw, mut r) = refresh_tokens(4, 0x71, '7').await;
    // a second grant of the same account and app, with two refresh tokens: the batch's pack
    // then names each event's grant (format 2)
    grant(&raw, "g2").await;
    for i in 0..2 {
        let h = digest(&format!("{:016x}", 0x81 + i), '8');
        sqlx::query(
            "INSERT INTO oauth_tokens (id, token_hash, kind, grant_id, account_id, client_id,
             scope, created_at, expires_at) VALUES ($1, $2, 'refresh', 'g2', 'acct', 'dgc',
             'repo:read', $3, $4)",
        )
        .bind(format!("tok_g2_{i}"))
        .bind(&h)
        .bind(NOW - 100)
        .bind(NOW + 30 * 86_400)
        .execute(&raw)
        .await
        .unwrap();
        r.push(h);
    }
    // six rotations queued together: one batch
    let jobs = queue_rotations(&store, &r, 0x91, 0xa1, '9');
    for j in jobs {
        assert!(matches!(j.await.unwrap(), Ok(Rotated::Issued(_))));
    }
    let rows: Vec<(String, Option<String>, bool)> = sqlx::query_as(
        "SELECT type, credential_id, pack IS NOT NULL FROM audit_events ORDER BY seq",
    )
    .fetch_all(&raw)
    .await
    .unwrap();
    assert_eq!(
        rows,
        [("oauth.token_refreshed".to_owned(), None, true)],
        "one row for the batch, naming no single grant"
    );
    // every reader sees the six events, each with its own id and grant, the shared fields kept
    let log = refreshed(&store, None).await;
    assert_eq!(log.len(), 6);
    let mut ids: Vec<&str> = log.iter().map(|e| e.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 6, "six distinct ids: {ids:?}");
    let grants: Vec<Option<&str>> = log
        .iter()
        .rev()
        .map(|e| e.credential_id.as_deref())
        .collect();
    assert_eq!(
        grants,
        [
            Some("g1"),
            Some("g1"),
            Some("g1"),
            Some("g1"),
            Some("g2"),
            Some("g2")
        ]
    );
    for e in &log {
        assert_eq!(e.account_id.as_deref(), Some("acct"));
        assert_eq!(&*e.outcome, "success");
        assert_eq!(e.reason.as_deref(), Some("app dgc, scope `repo:read`"));
        assert_eq!(e.time, NOW);
        assert_eq!(e.request_id, "internal");
    }
    // a filter on a grant keeps that grant's events of the pack
    let g2 = refreshed(&store, Some("g2")).await;
    assert_eq!(g2.len(), 2);
    assert!(g2.iter().all(|e| e.credential_id.as_deref() == Some("g2")));
    assert!(store.verify_audit_chain().await.unwrap().is_ok());
    store.close().await;
}
