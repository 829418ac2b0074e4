//! `Store::purge_ended_oauth`: what it deletes, what it keeps, what it counts, and its batches.
//! The rows are written straight into a migrated database (foreign keys off for the setup, so
//! that no account, app or authorization is needed); the purge runs through the store.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use dotgit_store::{OAuthPurged, Store};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::SqlitePool;
use std::str::FromStr;

async fn setup() -> (tempfile::TempDir, Store, SqlitePool) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("dotgit.db");
    let store = Store::open(&db).await.unwrap();
    let opts = SqliteConnectOptions::from_str(&format!("sqlite://{}", db.display()))
        .unwrap()
        .foreign_keys(false);
    let raw = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(opts)
        .await
        .unwrap();
    (dir, store, raw)
}

async fn grant(raw: &SqlitePool, id: &str, refresh_expires_at: i64) {
    sqlx::query(
        "INSERT INTO oauth_grants (id, authorization_id, account_id, client_id, scope, created_at,
         refresh_expires_at) VALUES ($1, 'oaz', 'acct', 'dgc', 'repo:read', 0, $2)",
    )
    .bind(id)
    .bind(refresh_expires_at)
    .execute(raw)
    .await
    .unwrap();
}

/// A token of `grant` issued at `created_at`.
async fn token(
    raw: &SqlitePool,
    id: &str,
    kind: &str,
    grant: &str,
    created_at: i64,
    expires_at: i64,
) {
    sqlx::query(
        "INSERT INTO oauth_tokens (id, token_hash, kind, grant_id, account_id, client_id, scope,
         created_at, expires_at) VALUES ($1, $2, $3, $4, 'acct', 'dgc', 'repo:read', $5, $6)",
    )
    .bind(id)
    .bind(format!("hash-of-{id}"))
    .bind(kind)
    .bind(grant)
    .bind(created_at)
    .bind(expires_at)
    .execute(raw)
    .await
    .unwrap();
}

async fn ids(raw: &SqlitePool, table: &str) -> Vec<String> {
    sqlx::query_scalar(&format!("SELECT id FROM {table} ORDER BY id"))
        .fetch_all(raw)
        .await
        .unwrap()
}

/// The refresh lifetime the tests pass: refresh tokens issued before `CUT - LIFETIME` ended.
const LIFETIME: i64 = 100;
const CUT: i64 = 1_000;

/// What a purge at `cut` with `batch` deleted.
async fn purge(store: &Store, cut: i64, batch: i64) -> OAuthPurged {
    store.purge_ended_oauth(cut, LIFETIME, batch).await.unwrap()
}

fn purged(access_tokens: u64, refresh_tokens: u64, grants: u64, more: bool) -> OAuthPurged {
    OAuthPurged {
        access_tokens,
        refresh_tokens,
        grants,
        more,
    }
}

// The tokens are inserted in the order they were issued, as the server issues them: the purge
// walks the table in that order (its `seq`), and a refresh token ends with its family, at most
// a refresh lifetime after it was issued.

#[tokio::test]
async fn ended_rows_go_and_live_ones_stay() {
    let (_dir, store, raw) = setup().await;
    // a family that ended before the cut, one that ends exactly at it, and a live one
    grant(&raw, "g_ended", 899).await;
    grant(&raw, "g_cut", 1_000).await;
    grant(&raw, "g_live", 5_000).await;
    // the ended family's rotated and last refresh tokens go, and its access token goes by its
    // own expiry, like the live family's first one
    token(&raw, "e_used", "refresh", "g_ended", 850, 899).await;
    token(&raw, "e_access", "access", "g_ended", 850, 999).await;
    token(&raw, "e_now", "refresh", "g_ended", 899, 899).await;
    token(&raw, "a_old", "access", "g_live", 899, 999).await;
    // a refresh token issued exactly a lifetime before the cut stays (strictly before goes),
    // and so does an access token that expires at the cut
    token(&raw, "c_now", "refresh", "g_cut", 900, 1_000).await;
    token(&raw, "a_cut", "access", "g_live", 900, 1_000).await;
    token(&raw, "r_used", "refresh", "g_live", 950, 5_000).await;
    token(&raw, "r_now", "refresh", "g_live", 960, 5_000).await;

    assert_eq!(purge(&store, CUT, 500).await, purged(2, 2, 1, false));
    assert_eq!(
        ids(&raw, "oauth_tokens").await,
        ["a_cut", "c_now", "r_now", "r_used"]
    );
    assert_eq!(ids(&raw, "oauth_grants").await, ["g_cut", "g_live"]);
    // nothing more to do
    assert_eq!(purge(&store, CUT, 500).await, OAuthPurged::default());
    // a second later the family that ended at the cut goes, and so do its token and the
    // access token that expired at the cut
    assert_eq!(purge(&store, CUT + 1, 500).await, purged(1, 1, 1, false));
    assert_eq!(ids(&raw, "oauth_tokens").await, ["r_now", "r_used"]);
}

#[tokio::test]
async fn a_transaction_deletes_at_most_a_batch_of_each_in_the_order_they_were_issued() {
    let (_dir, store, raw) = setup().await;
    grant(&raw, "g_live", 5_000).await;
    for g in 0..3 {
        grant(&raw, &format!("g{g}"), 20 + g).await;
    }
    // ended access tokens and ended families' refresh tokens, interleaved, then a live pair
    for (id, kind, grant_id, created, expires) in [
        ("a0", "access", "g_live", 0, 10),
        ("a1", "access", "g_live", 1, 11),
        ("g0_r", "refresh", "g0", 10, 20),
        ("a2", "access", "g_live", 11, 12),
        ("g1_r", "refresh", "g1", 11, 21),
        ("a3", "access", "g_live", 12, 13),
        ("g2_r", "refresh", "g2", 12, 22),
        ("a4", "access", "g_live", 13, 14),
        ("live_a", "access", "g_live", 990, 5_000),
        ("live_r", "refresh", "g_live", 990, 5_000),
    ] {
        token(&raw, id, kind, grant_id, created, expires).await;
    }
    // the first issued first; the grants that ended first first
    assert_eq!(purge(&store, CUT, 2).await, purged(2, 2, 2, true));
    assert_eq!(
        ids(&raw, "oauth_tokens").await,
        ["a2", "a3", "a4", "g2_r", "live_a", "live_r"]
    );
    assert_eq!(ids(&raw, "oauth_grants").await, ["g2", "g_live"]);
    assert_eq!(purge(&store, CUT, 2).await, purged(2, 1, 1, true));
    assert_eq!(purge(&store, CUT, 2).await, purged(1, 0, 0, false));
    assert_eq!(ids(&raw, "oauth_tokens").await, ["live_a", "live_r"]);
    assert_eq!(ids(&raw, "oauth_grants").await, ["g_live"]);
    assert_eq!(purge(&store, CUT, 2).await, OAuthPurged::default());
}

#[tokio::test]
async fn a_walk_reads_a_bounded_number_of_rows_and_goes_on_where_it_stopped() {
    let (_dir, store, raw) = setup().await;
    grant(&raw, "g_live", 5_000).await;
    // ten live refresh tokens in front of an ended access token: a batch of 1 reads 4 rows
    for i in 0..10 {
        token(&raw, &format!("r{i:02}"), "refresh", "g_live", 990, 5_000).await;
    }
    token(&raw, "a_old", "access", "g_live", 990, 999).await;
    token(&raw, "a_live", "access", "g_live", 990, 5_000).await;
    // two walks of 4 rows pass 8 refresh tokens and find nothing to delete, but say that
    // there is more to walk; the third reaches the access token
    assert_eq!(purge(&store, CUT, 1).await, purged(0, 0, 0, true));
    assert_eq!(purge(&store, CUT, 1).await, purged(0, 0, 0, true));
    assert_eq!(purge(&store, CUT, 1).await, purged(1, 0, 0, false));
    assert_eq!(ids(&raw, "oauth_tokens").await.len(), 11);
    assert!(!ids(&raw, "oauth_tokens")
        .await
        .contains(&"a_old".to_owned()));
}

/// A token whose expiry is out of issue order (the clock stepped back while it was issued)
/// holds the walk back until the token before it ends: later, never earlier.
#[tokio::test]
async fn a_token_out_of_order_is_purged_late_never_early() {
    let (_dir, store, raw) = setup().await;
    grant(&raw, "g_live", 5_000).await;
    token(&raw, "a_live", "access", "g_live", 900, 1_200).await;
    token(&raw, "a_stepped_back", "access", "g_live", 700, 900).await;
    assert_eq!(purge(&store, CUT, 500).await, OAuthPurged::default());
    assert_eq!(
        ids(&raw, "oauth_tokens").await,
        ["a_live", "a_stepped_back"]
    );
    assert_eq!(purge(&store, 1_201, 500).await, purged(2, 0, 0, false));
    assert!(ids(&raw, "oauth_tokens").await.is_empty());
}

/// Once the newest tokens are deleted (their account or app deleted), a new token still gets a
/// `seq` past every one given before, so the walk, which has passed the old ones, finds it. With
/// SQLite's default rowids it would take the deleted tokens' `seq`s and never be purged.
#[tokio::test]
async fn a_seq_is_never_given_twice_so_the_walk_finds_tokens_issued_after_deletions() {
    let (_dir, store, raw) = setup().await;
    grant(&raw, "g_live", 5_000).await;
    for i in 0..3 {
        token(&raw, &format!("a{i}"), "access", "g_live", 0, 10).await;
    }
    assert_eq!(purge(&store, CUT, 500).await, purged(3, 0, 0, false));
    token(&raw, "a_next", "access", "g_live", 20, 30).await;
    let seq: i64 = sqlx::query_scalar("SELECT seq FROM oauth_tokens WHERE id = 'a_next'")
        .fetch_one(&raw)
        .await
        .unwrap();
    assert_eq!(seq, 4);
    assert_eq!(purge(&store, CUT, 500).await, purged(1, 0, 0, false));
    assert!(ids(&raw, "oauth_tokens").await.is_empty());
}

/// A new process starts its walks at the table's first row. A row put back behind a walk's
/// place (a table restored by hand, with its `seq`s) is not found by the process that had
/// walked past that place, and is by the next one.
#[tokio::test]
async fn a_reopened_store_walks_the_table_again_from_its_start() {
    let (dir, store, raw) = setup().await;
    grant(&raw, "g_live", 5_000).await;
    for i in 0..3 {
        token(&raw, &format!("a{i}"), "access", "g_live", 0, 10).await;
    }
    token(&raw, "a_live", "access", "g_live", 900, 1_200).await;
    assert_eq!(purge(&store, CUT, 500).await, purged(3, 0, 0, false));
    sqlx::query(
        "INSERT INTO oauth_tokens (seq, id, token_hash, kind, grant_id, account_id, client_id,
         scope, created_at, expires_at)
         VALUES (2, 'a_restored', 'h', 'access', 'g_live', 'acct', 'dgc', 'repo:read', 0, 10)",
    )
    .execute(&raw)
    .await
    .unwrap();
    assert_eq!(purge(&store, CUT, 500).await, OAuthPurged::default());
    store.close().await;
    let store = Store::open(&dir.path().join("dotgit.db")).await.unwrap();
    assert_eq!(purge(&store, CUT, 500).await, purged(1, 0, 0, false));
    assert_eq!(ids(&raw, "oauth_tokens").await, ["a_live"]);
}

/// A walk reads the table a few rows at a time and goes on past each chunk until it meets a
/// live token of its kind: one transaction deletes every ended token of a long stretch.
#[tokio::test]
async fn one_walk_goes_through_many_chunks() {
    let (_dir, store, raw) = setup().await;
    grant(&raw, "g_live", 5_000).await;
    for i in 0..70 {
        token(&raw, &format!("r{i:03}"), "refresh", "g_live", 990, 5_000).await;
        if i % 2 == 0 {
            token(&raw, &format!("a{i:03}"), "access", "g_live", 0, 10).await;
        }
    }
    token(&raw, "a_live", "access", "g_live", 990, 5_000).await;
    token(&raw, "a_after", "access", "g_live", 0, 10).await;
    assert_eq!(purge(&store, CUT, 500).await, purged(35, 0, 0, false));
    let left = ids(&raw, "oauth_tokens").await;
    assert_eq!(left.len(), 72);
    // the token after the live one waits for it (late, never early)
    assert!(left.contains(&"a_after".to_owned()) && left.contains(&"a_live".to_owned()));
}
