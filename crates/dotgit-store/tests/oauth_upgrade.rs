//! Upgrading a database made before migration 0014 (the token table rebuilt without its index
//! and foreign key by grant) keeps every token row as it was, and the purge then finds them by
//! the time they were issued.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use dotgit_store::{OAuthPurged, Store};

mod common;

type Row = (
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    i64,
    i64,
    Option<i64>,
    Option<i64>,
    Option<String>,
);

async fn rows(pool: &sqlx::SqlitePool) -> Vec<Row> {
    sqlx::query_as(
        "SELECT id, token_hash, kind, grant_id, account_id, client_id, scope, created_at,
         expires_at, revoked_at, used_at, replaced_by FROM oauth_tokens ORDER BY id",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn tokens_issued_before_0014_survive_the_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("dotgit.db");
    let pool = common::database_before(dir.path(), &db, "0014").await;
    common::oauth_parties(&pool).await;
    sqlx::query(
        "INSERT INTO oauth_grants (id, authorization_id, account_id, client_id, scope, created_at,
         refresh_expires_at, revoked_at, revoked_reason)
         VALUES ('g1', 'oaz', 'acct', 'dgc', 'repo:read', 0, 100, 50, 'refresh token reused')",
    )
    .execute(&pool)
    .await
    .unwrap();
    // a rotated refresh token, its successor (revoked with the family, as 0003 marked them),
    // and an access token
    for (id, kind, created, expires, revoked, used, replaced) in [
        ("t1", "refresh", 0, 100, Some(50), Some(10), Some("t2")),
        ("t2", "refresh", 10, 100, Some(50), None, None),
        ("t3", "access", 10, 7_210, None, None, None),
    ] {
        sqlx::query(
            "INSERT INTO oauth_tokens (id, token_hash, kind, grant_id, account_id, client_id,
             scope, created_at, expires_at, revoked_at, used_at, replaced_by)
             VALUES ($1, $2, $3, 'g1', 'acct', 'dgc', 'repo:read', $4, $5, $6, $7, $8)",
        )
        .bind(id)
        .bind(format!("hash-of-{id}"))
        .bind(kind)
        .bind(created)
        .bind(expires)
        .bind(revoked)
        .bind(used)
        .bind(replaced)
        .execute(&pool)
        .await
        .unwrap();
    }
    let before = rows(&pool).await;
    pool.close().await;

    let store = Store::open(&db).await.unwrap();
    store.close().await;
    let pool = common::pool(&db).await;
    assert_eq!(rows(&pool).await, before);
    let (fk,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM pragma_foreign_key_list('oauth_tokens') WHERE \"table\" = 'oauth_grants'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(fk, 0, "no foreign key to the grants is left");
    pool.close().await;

    // a refresh lifetime of 100 and a cut at 111: both refresh tokens were issued before 11
    let store = Store::open(&db).await.unwrap();
    assert_eq!(
        store.purge_ended_oauth(111, 100, 500).await.unwrap(),
        OAuthPurged {
            access_tokens: 0,
            refresh_tokens: 2,
            grants: 1,
            more: false
        }
    );
    store.close().await;
    let pool = common::pool(&db).await;
    let left: Vec<String> = rows(&pool).await.into_iter().map(|r| r.0).collect();
    assert_eq!(left, ["t3"]);
}

/// Upgrading a database made before migration 0016 (the token table rebuilt with
/// `AUTOINCREMENT`, its two purge indexes dropped) keeps every token and its `seq`, and a new
/// token gets a `seq` past the largest there ever was, even once the newest tokens are gone.
#[tokio::test]
async fn tokens_issued_before_0016_keep_their_seq_and_no_seq_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("dotgit.db");
    let pool = common::database_before(dir.path(), &db, "0016").await;
    common::oauth_parties(&pool).await;
    sqlx::query(
        "INSERT INTO oauth_grants (id, authorization_id, account_id, client_id, scope, created_at,
         refresh_expires_at) VALUES ('g1', 'oaz', 'acct', 'dgc', 'repo:read', 0, 100)",
    )
    .execute(&pool)
    .await
    .unwrap();
    let insert = "INSERT INTO oauth_tokens (seq, id, token_hash, kind, grant_id, account_id,
         client_id, scope, created_at, expires_at, replaces)
         VALUES ($1, $2, $3, $4, 'g1', 'acct', 'dgc', 'repo:read', 0, 100, $5)";
    for (seq, id, kind, replaces) in [
        (3, "t3", "refresh", None),
        (7, "t7", "refresh", Some(3)),
        (9, "t9", "access", None),
    ] {
        sqlx::query(insert)
            .bind(seq)
            .bind(id)
            .bind(format!("hash-of-{id}"))
            .bind(kind)
            .bind(replaces)
            .execute(&pool)
            .await
            .unwrap();
    }
    let seqs = async |pool: &sqlx::SqlitePool| -> Vec<(i64, String, Option<i64>)> {
        sqlx::query_as("SELECT seq, id, replaces FROM oauth_tokens ORDER BY seq")
            .fetch_all(pool)
            .await
            .unwrap()
    };
    let before = seqs(&pool).await;
    pool.close().await;

    let store = Store::open(&db).await.unwrap();
    store.close().await;
    let pool = common::pool(&db).await;
    assert_eq!(seqs(&pool).await, before);
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'oauth_tokens'
         AND sql IS NOT NULL ORDER BY name",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(indexes, ["oauth_tokens_successor"]);
    // the newest token goes (as a cascade would delete it); the next one still gets a new seq
    sqlx::query("DELETE FROM oauth_tokens WHERE seq = 9")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO oauth_tokens (id, token_hash, kind, grant_id, account_id, client_id, scope,
         created_at, expires_at) VALUES ('t10', 'h', 'access', 'g1', 'acct', 'dgc', 'repo:read',
         0, 100)",
    )
    .execute(&pool)
    .await
    .unwrap();
    let (seq,): (i64,) = sqlx::query_as("SELECT seq FROM oauth_tokens WHERE id = 't10'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(seq, 10);
}
