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

#[tokio::test]
async fn ended_rows_go_and_live_ones_stay() {
    let (_dir, store, raw) = setup().await;
    // a live family: one access token expired before the cut, one at it, a rotated refresh
    // token and the current one (both end with the family)
    grant(&raw, "g_live", 5_000).await;
    token(&raw, "a_old", "access", "g_live", 0, 999).await;
    token(&raw, "a_cut", "access", "g_live", 0, 1_000).await;
    token(&raw, "r_used", "refresh", "g_live", 850, 5_000).await;
    token(&raw, "r_now", "refresh", "g_live", 950, 5_000).await;
    // an ended family: its refresh tokens issued a lifetime before the cut go, one issued
    // exactly then stays (strictly before goes), and its access token goes by its own expiry
    grant(&raw, "g_ended", 999).await;
    token(&raw, "e_access", "access", "g_ended", 990, 2_000).await;
    token(&raw, "e_used", "refresh", "g_ended", 850, 999).await;
    token(&raw, "e_now", "refresh", "g_ended", 899, 999).await;
    token(&raw, "e_edge", "refresh", "g_ended", 900, 999).await;
    // a family that ends exactly at the cut stays, and so does its old refresh token: a token
    // goes only once it has ended, whenever it was issued
    grant(&raw, "g_cut", 1_000).await;
    token(&raw, "c_now", "refresh", "g_cut", 800, 1_000).await;

    let p = store.purge_ended_oauth(CUT, LIFETIME, 500).await.unwrap();
    assert_eq!(
        p,
        OAuthPurged {
            access_tokens: 1,
            refresh_tokens: 2,
            grants: 1
        }
    );
    assert_eq!(
        ids(&raw, "oauth_tokens").await,
        ["a_cut", "c_now", "e_access", "e_edge", "r_now", "r_used"]
    );
    assert_eq!(ids(&raw, "oauth_grants").await, ["g_cut", "g_live"]);
    // nothing more to do
    let again = store.purge_ended_oauth(CUT, LIFETIME, 500).await.unwrap();
    assert_eq!(again, OAuthPurged::default());
}

#[tokio::test]
async fn a_transaction_deletes_at_most_a_batch_of_each() {
    let (_dir, store, raw) = setup().await;
    grant(&raw, "g_live", 5_000).await;
    for i in 0..5 {
        token(&raw, &format!("a{i}"), "access", "g_live", 0, 10 + i).await;
    }
    // issued newest first, so that "oldest first" is not the insertion order
    for g in (0..3).rev() {
        let id = format!("g{g}");
        grant(&raw, &id, 20 + g).await;
        token(&raw, &format!("{id}_r"), "refresh", &id, 10 + g, 20 + g).await;
        token(&raw, &format!("{id}_a"), "access", &id, 10 + g, 5_000).await;
    }
    let first = store.purge_ended_oauth(CUT, LIFETIME, 2).await.unwrap();
    assert_eq!(
        first,
        OAuthPurged {
            access_tokens: 2,
            refresh_tokens: 2,
            grants: 2
        }
    );
    // the oldest first: the grants that ended first, the refresh tokens issued first
    assert_eq!(ids(&raw, "oauth_grants").await, ["g2", "g_live"]);
    assert_eq!(
        ids(&raw, "oauth_tokens").await,
        ["a2", "a3", "a4", "g0_a", "g1_a", "g2_a", "g2_r"]
    );
    let second = store.purge_ended_oauth(CUT, LIFETIME, 2).await.unwrap();
    assert_eq!(
        second,
        OAuthPurged {
            access_tokens: 2,
            refresh_tokens: 1,
            grants: 1
        }
    );
    let third = store.purge_ended_oauth(CUT, LIFETIME, 2).await.unwrap();
    assert_eq!(
        third,
        OAuthPurged {
            access_tokens: 1,
            ..Default::default()
        }
    );
    // the access tokens of ended grants wait for their own expiry
    assert_eq!(ids(&raw, "oauth_tokens").await, ["g0_a", "g1_a", "g2_a"]);
    assert_eq!(ids(&raw, "oauth_grants").await, ["g_live"]);
}
