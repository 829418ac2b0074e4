//! Shared by the store's tests: a connection to a file behind the store's back, and a database
//! as an older release left it (the upgrade tests).

#![allow(clippy::unwrap_used, clippy::expect_used)]
// each test binary that includes this module uses only part of it
#![allow(dead_code)]

pub mod fixtures;

use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::SqlitePool;
use std::path::Path;
use std::str::FromStr;

/// A one-connection pool on the database file `db` (created if missing).
pub async fn pool(db: &Path) -> SqlitePool {
    SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(
            SqliteConnectOptions::from_str("sqlite://")
                .unwrap()
                .filename(db)
                .create_if_missing(true),
        )
        .await
        .unwrap()
}

/// Creates `db` with only the migrations numbered below `before` (e.g. "0010") applied, as a
/// release from before that migration left it, and returns a pool on it. `scratch` holds the
/// copied migrations.
pub async fn database_before(scratch: &Path, db: &Path, before: &str) -> SqlitePool {
    let old = scratch.join(format!("migrations-before-{before}"));
    std::fs::create_dir(&old).unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
    for entry in std::fs::read_dir(&src).unwrap() {
        let p = entry.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if name.as_str() < before {
            std::fs::copy(&p, old.join(&name)).unwrap();
        }
    }
    let pool = pool(db).await;
    sqlx::migrate::Migrator::new(old.as_path())
        .await
        .unwrap()
        .run(&pool)
        .await
        .unwrap();
    pool
}

/// The parties of an OAuth grant: account `acct` (alice), public app `dgc` and its authorization
/// `oaz` (scope `repo:read`), as the OAuth tests' rows expect them.
pub async fn oauth_parties(pool: &SqlitePool) {
    for sql in [
        "INSERT INTO accounts (id, username, password_hash, plan, created_at)
         VALUES ('acct', 'alice', 'x', 'free', 0)",
        "INSERT INTO oauth_apps (client_id, account_id, name, redirect_uris, confidential,
         allowed_scopes, created_at) VALUES ('dgc', 'acct', 'CI', '[]', 0, 'repo:read', 0)",
        "INSERT INTO oauth_authorizations (id, account_id, client_id, scope, created_at,
         updated_at) VALUES ('oaz', 'acct', 'dgc', 'repo:read', 0, 0)",
    ] {
        sqlx::query(sql).execute(pool).await.unwrap();
    }
}

/// A JWT key row of account `acct_1`, made at 2026-11-29 12:00 UTC (the store never parses its
/// PEM).
pub fn jwt_key(kid: &str, name: &str) -> dotgit_store::JwtKeyRow {
    dotgit_store::JwtKeyRow {
        kid: kid.into(),
        account_id: "acct_1".into(),
        name: name.into(),
        issuer: "ci".into(),
        public_key_pem: "-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n".into(),
        thumbprint: format!("thumb-{kid}"),
        allowed_scopes: "repo:read".into(),
        max_lifetime_seconds: 3600,
        single_use: false,
        created_at: 1_795_953_600,
    }
}
