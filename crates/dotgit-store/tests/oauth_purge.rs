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

async fn token(raw: &SqlitePool, id: &str, kind: &str, grant: &str, expires_at: i64) {
    sqlx::query(
        "INSERT INTO oauth_tokens (id, token_hash, kind, grant_id, account_id, client_id, scope,
         created_at, expires_at) VALUES ($1, $2, $3, $4, 'acct', 'dgc', 'repo:read', 0, $5)",
    )
    .bind(id)
    .bind(format!("hash-of-{id}"))
    .bind(kind)
    .bind(grant)
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

#[tokio::test]
async fn ended_rows_go_and_live_ones_stay() {
    let (_dir, store, raw) = setup().await;
    // a live family: one access token expired before the cut, one after, a rotated refresh
    // token and the current one (both end with the family)
    grant(&raw, "g_live", 5_000).await;
    token(&raw, "a_old", "access", "g_live", 999).await;
    token(&raw, "a_cut", "access", "g_live", 1_000).await;
    token(&raw, "r_used", "refresh", "g_live", 5_000).await;
    token(&raw, "r_now", "refresh", "g_live", 5_000).await;
    // an ended family: everything of it goes, an access token not yet expired included
    grant(&raw, "g_ended", 999).await;
    token(&raw, "e_access", "access", "g_ended", 2_000).await;
    token(&raw, "e_used", "refresh", "g_ended", 999).await;
    token(&raw, "e_now", "refresh", "g_ended", 999).await;
    // a family that ends exactly at the cut stays (strictly before it goes)
    grant(&raw, "g_cut", 1_000).await;
    token(&raw, "c_now", "refresh", "g_cut", 1_000).await;

    let p = store.purge_ended_oauth(1_000, 500).await.unwrap();
    assert_eq!(
        p,
        OAuthPurged {
            access_tokens: 1,
            family_tokens: 3,
            grants: 1
        }
    );
    assert_eq!(
        ids(&raw, "oauth_tokens").await,
        ["a_cut", "c_now", "r_now", "r_used"]
    );
    assert_eq!(ids(&raw, "oauth_grants").await, ["g_cut", "g_live"]);
    // nothing more to do
    let again = store.purge_ended_oauth(1_000, 500).await.unwrap();
    assert_eq!(again, OAuthPurged::default());
}

#[tokio::test]
async fn a_transaction_deletes_at_most_a_batch_of_each() {
    let (_dir, store, raw) = setup().await;
    grant(&raw, "g_live", 5_000).await;
    for i in 0..5 {
        token(&raw, &format!("a{i}"), "access", "g_live", 10 + i).await;
    }
    for g in 0..3 {
        let id = format!("g{g}");
        grant(&raw, &id, 20 + g).await;
        token(&raw, &format!("{id}_r"), "refresh", &id, 20 + g).await;
        token(&raw, &format!("{id}_a"), "access", &id, 5_000).await;
    }
    let first = store.purge_ended_oauth(1_000, 2).await.unwrap();
    assert_eq!(
        first,
        OAuthPurged {
            access_tokens: 2,
            family_tokens: 4,
            grants: 2
        }
    );
    // the oldest first: the grants that ended first, the access tokens that expired first
    assert_eq!(ids(&raw, "oauth_grants").await, ["g2", "g_live"]);
    let second = store.purge_ended_oauth(1_000, 2).await.unwrap();
    assert_eq!(
        second,
        OAuthPurged {
            access_tokens: 2,
            family_tokens: 2,
            grants: 1
        }
    );
    let third = store.purge_ended_oauth(1_000, 2).await.unwrap();
    assert_eq!(third.access_tokens, 1);
    assert_eq!(ids(&raw, "oauth_tokens").await, Vec::<String>::new());
    assert_eq!(ids(&raw, "oauth_grants").await, ["g_live"]);
}
