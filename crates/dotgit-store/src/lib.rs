//! dotgit-store: the durable state of dotgit in embedded SQLite (sqlx, WAL, `synchronous=FULL`).
//!
//! What must hold (DESIGN "Durability classes"): revocations and suspensions (class A) and
//! issuance (class B) are committed and flushed before the caller answers 2xx; each such change
//! appends to `invalidations` in the same transaction so every verification cache, on this node
//! or another process, drops stale entries. Every write of this process takes one turn first
//! (`WriteTurn`) and starts with `BEGIN IMMEDIATE`, so concurrent writers queue instead of
//! failing with `SQLITE_BUSY`. Queries use `$n` placeholders and portable types so the
//! PostgreSQL backend can share them (docs/adr/0002).

mod audit;
mod hot;
pub use hot::{
    forget, holds_snapshot, pretend_elapsed, release_and_checkpoint_now, writer_lock_waits,
    QUIET_BEFORE_CHECKPOINT, QUIET_BEFORE_HOLDING, SNAPSHOT_MAX_AGE,
};
mod oauth;
mod refresh;
mod rows;
mod token_index;

pub use audit::{audit_rows_sql, AuditFilter, ChainBreak, StoredEvent, AUDIT_SYNC_INTERVAL};
pub use oauth::*;
pub use rows::*;

use dotgit_core::audit::AuditEvent;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

/// Errors from storage.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was hit; the value names the field.
    #[error("conflict on {0}")]
    Conflict(&'static str),
    /// The database could not be reached or answered with an error: fail closed (503).
    #[error("storage unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// A migration failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A read on the request path's own connection failed: fail closed (503).
    #[error("storage unavailable: {0}")]
    Hot(#[source] rusqlite::Error),
    /// Stored data this version cannot read (an audit pack whose bytes were altered).
    #[error("internal storage error: {0}")]
    Internal(String),
    /// A storage writer (audit, refresh) stopped or failed its task: fail closed (503).
    #[error("storage unavailable: {0}")]
    Stopped(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Unavailable(e)
    }
}

/// Result alias.
pub type Result<T> = std::result::Result<T, StoreError>;

pub(crate) fn unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

/// The SQLite store: a pool of readers and a single writer.
#[derive(Debug, Clone)]
pub struct Store {
    read: SqlitePool,
    write: SqlitePool,
    /// The write turn: every write of this process takes it first, and holds it until its
    /// commit or rollback is done (see [`WriteTurn`]).
    turn: WriteTurn,
    /// The database file, for the request path's own connections (`hot`).
    path: std::path::PathBuf,
    /// The audit writer's own connection (opened on first use; see `append_audit_with_networks`).
    audit_writer: std::sync::Arc<std::sync::Mutex<Option<audit::AuditWriter>>>,
    /// The refresh writer's queue (started on first use; see `rotate_refresh`).
    refresh: std::sync::Arc<std::sync::OnceLock<refresh::Queue>>,
    /// OAuth tokens by digest (ADR 0022; loaded on first use or by [`Store::warm_token_index`]).
    tokens: std::sync::Arc<token_index::TokenIndex>,
    /// Where the purge's walks of the token table stand (ADR 0019, second addendum).
    purge_cursors: std::sync::Arc<std::sync::Mutex<oauth::PurgeCursors>>,
    /// This process's commits to the file (ADR 0023): every write adds one after it commits.
    commits: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

/// A write transaction on the pooled writer. Its commit counts as one of this process's commits
/// to the file (`hot::commits`), so the request path's held read snapshots see it at once
/// (ADR 0023).
pub(crate) struct WriteTx {
    tx: Transaction<'static, Sqlite>,
    commits: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Declared last, so dropped last: the transaction is finished (or its rollback queued on
    /// the pooled connection) before the next write may start. Its
    /// [`TurnState::pooled_unsettled`] is cleared by a successful commit only.
    turn: tokio::sync::OwnedMutexGuard<TurnState>,
}

/// What the write turn guards.
#[derive(Debug)]
pub(crate) struct TurnState {
    /// A use of the pooled writer began and was not seen to end: a transaction dropped
    /// uncommitted (an error inside it, a failed commit, a cancelled caller), a `BEGIN` or a
    /// single statement whose caller went away while it ran. sqlx finishes what is left on the
    /// connection's thread (the queued rollback, the statement's last step) and hands the
    /// connection back to the pool only after that (`PoolConnection`'s return pings it, behind
    /// whatever is queued): until then SQLite's write lock may still be held. The pooled
    /// writer's next use waits for the connection anyway; a batching writer waits for it here
    /// ([`Store::on_writer`]) instead of on SQLite's busy handler, which sleeps 1 ms and more at
    /// a time. Set before every pooled use starts, cleared when one ends cleanly.
    pooled_unsettled: bool,
    /// How long a batching writer waits for an unsettled pooled connection before it goes on
    /// and leaves the wait to SQLite's busy handler ([`SETTLE_WAIT`]; shorter in a test).
    settle_wait: Duration,
}

/// How long a batching writer waits for the pooled connection to settle: the pool's own acquire
/// timeout. A statement that runs longer is waited for by SQLite's busy handler instead.
const SETTLE_WAIT: Duration = Duration::from_secs(10);

impl Default for TurnState {
    fn default() -> Self {
        TurnState {
            pooled_unsettled: false,
            settle_wait: SETTLE_WAIT,
        }
    }
}

/// The process's turn to write. The database has one writer at a time; this process has three
/// kinds — the pooled sqlx connection (class A/B changes), the audit writer's and the refresh
/// writer's rusqlite connections (`audit::soft_write`, `refresh`) — and each takes this turn
/// before it begins a transaction, so none waits on SQLite's lock (whose busy handler sleeps
/// milliseconds at a time) for another. The batching writers once took the turn by holding the
/// pool's single connection, but releasing it made sqlx ping the connection on its worker thread,
/// two thread hand-offs a batch on the refresh writer's critical path (ADR 0015, addendum of
/// 2026-12-07).
pub(crate) type WriteTurn = std::sync::Arc<tokio::sync::Mutex<TurnState>>;

impl std::ops::Deref for WriteTx {
    type Target = sqlx::SqliteConnection;
    fn deref(&self) -> &sqlx::SqliteConnection {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut sqlx::SqliteConnection {
        &mut self.tx
    }
}

impl WriteTx {
    /// Commits, then counts the commit (after it: a lookup that sees the count sees the rows).
    pub(crate) async fn commit(self) -> std::result::Result<(), sqlx::Error> {
        let WriteTx {
            tx,
            commits,
            mut turn,
        } = self;
        let r = tx.commit().await;
        // a failed commit leaves the transaction open, and dropping it queues its rollback: the
        // connection stays unsettled
        if r.is_ok() {
            turn.pooled_unsettled = false;
        }
        hot::committed(&commits);
        r
    }
}

pub(crate) const ACCOUNT_COLS: &str =
    "id, username, password_hash, plan, is_operator, status, status_reason, created_at, anomaly_auto_revoke, rotation_policy_days, rotation_policy_enforce";
/// The keys whose expiry [`Store::record_expired_api_keys`] records (`$1` is now): live keys
/// past their expiry, not yet recorded. Migration 0009's partial index `api_keys_expiry_due`
/// answers it without a scan of the table (`tests/plans.rs`).
pub const EXPIRY_DUE: &str =
    "expiry_audited = 0 AND revoked_at IS NULL AND expires_at IS NOT NULL AND expires_at <= $1";

/// The API-key verification probe (`?1` is the key's digest): the five columns
/// [`KeyToVerify`] holds and the key's account. Migration 0011's index `api_keys_verify` covers
/// the key's part, so the probe reads no page of the `api_keys` table itself
/// (`tests/plans.rs`).
pub const KEY_PROBE: &str = "SELECT k.id, k.scopes, k.created_at, k.expires_at, k.revoked_at,
        a.id, a.username, a.password_hash, a.plan, a.is_operator, a.status,
        a.status_reason, a.created_at, a.anomaly_auto_revoke, a.rotation_policy_days,
        a.rotation_policy_enforce
     FROM api_keys k JOIN accounts a ON a.id = k.account_id
     WHERE k.secret_hash = ?1";

/// An API key's columns as [`ApiKeyRow`] reads them; the last use lives in `api_key_last_use`
/// (migration 0010), in the activity file (ADR 0024).
const KEY_COLS: &str = "id, account_id, name, prefix, secret_hash, scopes, created_at, expires_at, revoked_at,
    (SELECT at FROM activity.api_key_last_use WHERE key_id = api_keys.id) AS last_used_at, replaced_by, rotated_from";

/// The activity file beside the database at `db` (`dotgit.db` → `dotgit-activity.db`): the
/// batches of successful authentications go there, so that the per-request writes leave the
/// database file, and the page caches of the connections reading keys from it, alone (ADR 0020).
/// A backup takes both files.
pub fn activity_path(db: &Path) -> std::path::PathBuf {
    let mut name = db.file_stem().unwrap_or_default().to_owned();
    name.push("-activity.db");
    db.with_file_name(name)
}

impl Store {
    /// Opens (creating if needed) the database file at `path` and its activity file beside it
    /// ([`activity_path`]), and applies migrations.
    pub async fn open(path: &Path) -> Result<Self> {
        let activity = activity_path(path);
        let attach = activity
            .to_str()
            .ok_or_else(|| {
                StoreError::Internal(format!("the data path {} is not UTF-8", path.display()))
            })?
            .to_owned();
        let opts = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5))
            // 64 MiB of page cache per connection: the audit log's indexes stay in memory
            .pragma("cache_size", "-65536")
            .pragma(
                "wal_autocheckpoint",
                hot::WAL_AUTOCHECKPOINT_PAGES.to_string(),
            );
        // migrations run on a connection of their own, without the activity file attached: an
        // unqualified name in them must only ever mean the database's own table
        let migrate = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts.clone())
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&migrate).await?;
        migrate.close().await;
        let file = activity.clone();
        let db = path.to_owned();
        tokio::task::spawn_blocking(move || {
            audit::create_activity(&file)?;
            audit::move_last_use(&db)
        })
        .await
        .map_err(|e| StoreError::Stopped(format!("creating the activity file: {e}")))?
        .map_err(StoreError::Hot)?;
        // every pooled connection sees the activity file as schema `activity`
        let attached = |read_only: bool| {
            let attach = attach.clone();
            let pool = SqlitePoolOptions::new().test_before_acquire(false);
            pool.after_connect(move |conn, _| {
                let attach = attach.clone();
                Box::pin(async move {
                    sqlx::query("ATTACH DATABASE $1 AS activity")
                        .bind(attach)
                        .execute(&mut *conn)
                        .await?;
                    if !read_only {
                        sqlx::query("PRAGMA activity.synchronous = FULL")
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            })
        };
        // no ping before handing out a connection: it is a local file, and the ping was one more
        // hand-off to sqlx's connection thread per transaction
        let write = attached(false)
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(opts.clone())
            .await?;
        let read = attached(true)
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(opts.read_only(true))
            .await?;
        Ok(Store {
            read,
            write,
            turn: WriteTurn::default(),
            path: path.to_owned(),
            audit_writer: Default::default(),
            refresh: Default::default(),
            tokens: std::sync::Arc::new(token_index::TokenIndex::new(path.to_owned())),
            purge_cursors: Default::default(),
            commits: hot::commits(path),
        })
    }

    /// Loads the map that finds OAuth tokens by digest (ADR 0022), if it is not loaded yet, and
    /// returns how many tokens it holds. The server calls it at start; without it, the first
    /// token lookup loads the map.
    pub async fn warm_token_index(&self) -> Result<usize> {
        self.hot_open()?;
        let tokens = self.tokens.clone();
        tokio::task::spawn_blocking(move || tokens.warm())
            .await
            .map_err(|e| StoreError::Stopped(format!("loading the token index: {e}")))?
    }

    /// Closes every connection; later calls fail with [`StoreError::Unavailable`]. A write in
    /// progress finishes first.
    pub async fn close(&self) {
        let _turn = self.turn.lock().await;
        self.write.close().await;
        self.read.close().await;
        if let Ok(mut c) = self.audit_writer.lock() {
            *c = None;
        }
    }

    /// Runs blocking writer work `f` (on a rusqlite connection of its own) in the write turn:
    /// no other write runs, or waits on SQLite's write lock, meanwhile. The turn goes with `f`
    /// to its thread and is given back when `f` returns, even if the caller stopped waiting.
    /// Refused once the store is closed. Used by the batching writers (`audit::soft_write`,
    /// `refresh`).
    pub(crate) async fn on_writer<T: Send + 'static>(
        write: &SqlitePool,
        turn: &WriteTurn,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T> {
        let mut turn = turn.clone().lock_owned().await;
        if write.is_closed() {
            return Err(StoreError::Unavailable(sqlx::Error::PoolClosed));
        }
        if turn.pooled_unsettled {
            // the pooled connection comes back once what was left on it has run
            match tokio::time::timeout(turn.settle_wait, write.acquire()).await {
                Ok(Ok(conn)) => {
                    drop(conn);
                    turn.pooled_unsettled = false;
                }
                Ok(Err(sqlx::Error::PoolClosed)) => {
                    return Err(StoreError::Unavailable(sqlx::Error::PoolClosed))
                }
                // it did not come back in time (a statement running that long): go on and let
                // SQLite's busy handler wait for the lock too; the flag stays set, so the next
                // batch waits for the connection again
                Ok(Err(e)) => tracing::warn!(error = %e, "waiting for the pooled writer to settle"),
                Err(_) => tracing::warn!(
                    waited_ms = turn.settle_wait.as_millis(),
                    "the pooled writer did not settle; waiting on the database's lock instead"
                ),
            }
        }
        tokio::task::spawn_blocking(move || {
            let r = f();
            drop(turn);
            r
        })
        .await
        .map_err(|e| StoreError::Stopped(format!("writer task failed: {e}")))
    }

    pub(crate) async fn begin_write(&self) -> Result<WriteTx> {
        let mut turn = self.turn.clone().lock_owned().await;
        // set before the connection is used: a caller that goes away during the `BEGIN`, or a
        // transaction that is not committed, leaves it set
        turn.pooled_unsettled = true;
        let tx = self.write.begin_with("BEGIN IMMEDIATE").await?;
        Ok(WriteTx {
            tx,
            commits: self.commits.clone(),
            turn,
        })
    }

    /// Runs one statement on the pooled writer (its own transaction), in the write turn, and
    /// counts its commit.
    pub(crate) async fn exec<'q>(
        &self,
        q: sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    ) -> std::result::Result<sqlx::sqlite::SqliteQueryResult, sqlx::Error> {
        let mut turn = self.turn.lock().await;
        // set before the statement starts: a caller that goes away while it runs leaves it set
        turn.pooled_unsettled = true;
        let r = q.execute(&self.write).await;
        if matches!(r, Ok(_) | Err(sqlx::Error::Database(_))) {
            // the statement ran to its end (or SQLite refused it, and rolled it back)
            turn.pooled_unsettled = false;
        }
        self.committed();
        r
    }

    /// Tells the request path's lookups that another process changed the file (the server's
    /// invalidation poll found its rows): the next lookup of every thread reads a new snapshot
    /// (ADR 0023). Call it before clearing what was cached from the old state, so that a lookup
    /// that refills the cache reads the change.
    pub fn note_change_elsewhere(&self) {
        hot::committed(&self.commits);
    }

    /// Counts a commit made on the pooled writer outside [`Store::begin_write`] (a single
    /// statement, or a batching writer's transaction that changed the database file).
    pub(crate) fn committed(&self) {
        hot::committed(&self.commits);
    }

    /// A cheap round trip, for health checks.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }

    // ---- accounts ----------------------------------------------------------------------

    /// Creates an account with its audit event; `Conflict("username")` if the name is taken.
    pub async fn create_account(&self, a: &AccountRow, event: &AuditEvent) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let r = sqlx::query(
            "INSERT INTO accounts (id, username, password_hash, plan, is_operator, status, status_reason, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&a.id)
        .bind(&a.username)
        .bind(&a.password_hash)
        .bind(&a.plan)
        .bind(a.is_operator)
        .bind(&a.status)
        .bind(&a.status_reason)
        .bind(a.created_at)
        .execute(&mut *tx)
        .await;
        match r {
            Ok(_) => {}
            Err(e) if unique_violation(&e) => return Err(StoreError::Conflict("username")),
            Err(e) => return Err(e.into()),
        }
        audit::append(&mut tx, std::slice::from_ref(event)).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The account with this username.
    pub async fn account_by_username(&self, username: &str) -> Result<Option<AccountRow>> {
        let q = format!("SELECT {ACCOUNT_COLS} FROM accounts WHERE username = $1");
        Ok(sqlx::query_as::<_, AccountRow>(&q)
            .bind(username)
            .fetch_optional(&self.read)
            .await?)
    }

    /// The account with this id.
    /// (A point read on the calling thread, ADR 0012: client authentication at the token and
    /// introspection endpoints asks for it on every request.)
    pub async fn account_by_id(&self, id: &str) -> Result<Option<AccountRow>> {
        self.hot_open()?;
        crate::hot::account_by_id(&self.path, id)
    }

    /// Every account, by username.
    pub async fn list_accounts(&self) -> Result<Vec<AccountRow>> {
        let q = format!("SELECT {ACCOUNT_COLS} FROM accounts ORDER BY username");
        Ok(sqlx::query_as::<_, AccountRow>(&q)
            .fetch_all(&self.read)
            .await?)
    }

    /// Sets an account's status (class A: committed with its invalidation before returning).
    /// Returns the updated account, or `None` if there is no such user.
    pub async fn set_account_status(
        &self,
        username: &str,
        status: &str,
        reason: Option<&str>,
        now: i64,
        event: impl FnOnce(&AccountRow) -> AuditEvent,
    ) -> Result<Option<AccountRow>> {
        let mut tx = self.begin_write().await?;
        let q = format!(
            "UPDATE accounts SET status = $1, status_reason = $2 WHERE username = $3 RETURNING {ACCOUNT_COLS}"
        );
        let row = sqlx::query_as::<_, AccountRow>(&q)
            .bind(status)
            .bind(reason)
            .bind(username)
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(a) = &row {
            invalidate(&mut tx, "account", &a.id, now).await?;
            audit::append(&mut tx, &[event(a)]).await?;
        }
        tx.commit().await?;
        Ok(row)
    }

    // ---- API keys ----------------------------------------------------------------------

    /// Inserts a new key. `Conflict("name")` if the account has a live key of that name.
    pub async fn insert_api_key(&self, k: &ApiKeyRow, now: i64, event: &AuditEvent) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let dup: Option<(String,)> = sqlx::query_as(
            "SELECT id FROM api_keys WHERE account_id = $1 AND name = $2 AND revoked_at IS NULL
             AND (expires_at IS NULL OR expires_at > $3) AND replaced_by IS NULL",
        )
        .bind(&k.account_id)
        .bind(&k.name)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        if dup.is_some() {
            return Err(StoreError::Conflict("name"));
        }
        insert_key(&mut tx, k).await?;
        audit::append(&mut tx, std::slice::from_ref(event)).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The key stored under this secret digest, with its account: the verification lookup.
    /// Answered on the calling thread (see `hot`): it blocks it for one index probe.
    pub async fn api_key_by_hash(
        &self,
        hash_hex: &str,
    ) -> Result<Option<(KeyToVerify, AccountRow)>> {
        self.hot_open()?;
        hot::api_key_by_hash(&self.path, hash_hex)
    }

    /// Refuses hot reads once the store is closed (fail closed, like the pools).
    pub(crate) fn hot_open(&self) -> Result<()> {
        if self.read.is_closed() {
            return Err(StoreError::Unavailable(sqlx::Error::PoolClosed));
        }
        Ok(())
    }

    /// The account's keys that are not revoked, newest first.
    pub async fn list_api_keys(&self, account_id: &str) -> Result<Vec<ApiKeyRow>> {
        let q = format!(
            "SELECT {KEY_COLS} FROM api_keys WHERE account_id = $1 AND revoked_at IS NULL ORDER BY created_at DESC, id DESC"
        );
        Ok(sqlx::query_as::<_, ApiKeyRow>(&q)
            .bind(account_id)
            .fetch_all(&self.read)
            .await?)
    }

    /// One non-revoked key of the account.
    pub async fn get_api_key(&self, account_id: &str, id: &str) -> Result<Option<ApiKeyRow>> {
        let q = format!(
            "SELECT {KEY_COLS} FROM api_keys WHERE account_id = $1 AND id = $2 AND revoked_at IS NULL"
        );
        Ok(sqlx::query_as::<_, ApiKeyRow>(&q)
            .bind(account_id)
            .bind(id)
            .fetch_optional(&self.read)
            .await?)
    }

    /// One non-revoked key by id alone (the CLI's rotate).
    pub async fn get_api_key_any_account(&self, id: &str) -> Result<Option<ApiKeyRow>> {
        let q = format!("SELECT {KEY_COLS} FROM api_keys WHERE id = $1 AND revoked_at IS NULL");
        Ok(sqlx::query_as::<_, ApiKeyRow>(&q)
            .bind(id)
            .fetch_optional(&self.read)
            .await?)
    }

    /// Revokes a key (class A). `false` if there was no live key with that id in the account.
    pub async fn revoke_api_key(
        &self,
        account_id: &str,
        id: &str,
        now: i64,
        event: &AuditEvent,
    ) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query(
            "UPDATE api_keys SET revoked_at = $1 WHERE account_id = $2 AND id = $3 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(account_id)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 1 {
            invalidate(&mut tx, "api_key", id, now).await?;
            audit::append(&mut tx, std::slice::from_ref(event)).await?;
        }
        tx.commit().await?;
        Ok(n == 1)
    }

    /// Rotates key `old_id` into `new` in one transaction: the old key stops working at
    /// `old_expires_at` (kept earlier if it already expired sooner) and points at the new one.
    /// `None` if the old key is not live (revoked, expired, or already rotated).
    pub async fn rotate_api_key(
        &self,
        account_id: &str,
        old_id: &str,
        new: &ApiKeyRow,
        old_expires_at: i64,
        now: i64,
        event: &AuditEvent,
    ) -> Result<Option<()>> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query(
            "UPDATE api_keys SET replaced_by = $1,
                    expires_at = CASE WHEN expires_at IS NOT NULL AND expires_at < $2 THEN expires_at ELSE $2 END
             WHERE account_id = $3 AND id = $4 AND revoked_at IS NULL AND replaced_by IS NULL
               AND (expires_at IS NULL OR expires_at > $5)",
        )
        .bind(&new.id)
        .bind(old_expires_at)
        .bind(account_id)
        .bind(old_id)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n != 1 {
            return Ok(None);
        }
        insert_key(&mut tx, new).await?;
        invalidate(&mut tx, "api_key", old_id, now).await?;
        audit::append(&mut tx, std::slice::from_ref(event)).await?;
        tx.commit().await?;
        Ok(Some(()))
    }

    /// Records API keys' last-use times in one batch (class C, written behind): a time only
    /// moves forward. `uses` are ids of keys (the server notes a use only after the key verified).
    ///
    /// One transaction in one blocking call (`soft_write`): through sqlx every key's UPDATE was a
    /// hand-off to sqlx's thread, tens of thousands of them every flush when many keys are used.
    pub async fn touch_api_keys(&self, uses: Vec<(String, i64)>) -> Result<()> {
        if uses.is_empty() {
            return Ok(());
        }
        self.soft_write(move |c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            {
                let mut st = tx.prepare_cached(
                    "INSERT INTO activity.api_key_last_use (key_id, at) VALUES (?2, ?1)
                     ON CONFLICT (key_id) DO UPDATE SET at = excluded.at WHERE excluded.at > at",
                )?;
                for (id, ts) in &uses {
                    st.execute(rusqlite::params![ts, id])?;
                }
            }
            tx.commit()?;
            // the activity file alone: the request path's lookups keep their snapshots and page
            // caches (ADR 0024)
            Ok(false)
        })
        .await
    }

    // ---- JWT keys ----------------------------------------------------------------------

    /// Registers a JWT public key (class B). `Conflict("name")` if the account has a key of that name.
    pub async fn insert_jwt_key(&self, k: &JwtKeyRow, event: &AuditEvent) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let dup: Option<(String,)> =
            sqlx::query_as("SELECT kid FROM jwt_keys WHERE account_id = $1 AND name = $2")
                .bind(&k.account_id)
                .bind(&k.name)
                .fetch_optional(&mut *tx)
                .await?;
        if dup.is_some() {
            return Err(StoreError::Conflict("name"));
        }
        sqlx::query(
            "INSERT INTO jwt_keys (kid, account_id, name, issuer, public_key_pem, thumbprint, allowed_scopes, max_lifetime_seconds, single_use, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&k.kid)
        .bind(&k.account_id)
        .bind(&k.name)
        .bind(&k.issuer)
        .bind(&k.public_key_pem)
        .bind(&k.thumbprint)
        .bind(&k.allowed_scopes)
        .bind(k.max_lifetime_seconds)
        .bind(k.single_use)
        .bind(k.created_at)
        .execute(&mut *tx)
        .await?;
        audit::append(&mut tx, std::slice::from_ref(event)).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The account's JWT keys, newest first.
    pub async fn list_jwt_keys(&self, account_id: &str) -> Result<Vec<JwtKeyRow>> {
        Ok(sqlx::query_as::<_, JwtKeyRow>(
            "SELECT * FROM jwt_keys WHERE account_id = $1 ORDER BY created_at DESC, kid DESC",
        )
        .bind(account_id)
        .fetch_all(&self.read)
        .await?)
    }

    /// One JWT key of the account: the verification lookup is always (account, kid).
    pub async fn get_jwt_key(&self, account_id: &str, kid: &str) -> Result<Option<JwtKeyRow>> {
        Ok(sqlx::query_as::<_, JwtKeyRow>(
            "SELECT * FROM jwt_keys WHERE account_id = $1 AND kid = $2",
        )
        .bind(account_id)
        .bind(kid)
        .fetch_optional(&self.read)
        .await?)
    }

    /// Deletes a JWT key (class A: tokens signed with it stop working at once).
    pub async fn delete_jwt_key(
        &self,
        account_id: &str,
        kid: &str,
        now: i64,
        event: &AuditEvent,
    ) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query("DELETE FROM jwt_keys WHERE account_id = $1 AND kid = $2")
            .bind(account_id)
            .bind(kid)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 1 {
            invalidate(&mut tx, "jwt_key", kid, now).await?;
            audit::append(&mut tx, std::slice::from_ref(event)).await?;
        }
        tx.commit().await?;
        Ok(n == 1)
    }

    /// Records a single-use token's `jti` (class A). `false` if it was seen before: a replay.
    /// Expired entries are swept in the same transaction.
    pub async fn consume_jti(
        &self,
        kid: &str,
        jti: &str,
        keep_until: i64,
        now: i64,
    ) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM jwt_jti WHERE expires_at < $1")
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let n = sqlx::query(
            "INSERT INTO jwt_jti (kid, jti, expires_at) VALUES ($1, $2, $3) ON CONFLICT (kid, jti) DO NOTHING",
        )
        .bind(kid)
        .bind(jti)
        .bind(keep_until)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(n == 1)
    }

    /// Records the expiry of every key whose `expires_at` has passed and was not yet recorded
    /// (each exactly once, also with several nodes), with one audit event per key.
    pub async fn record_expired_api_keys(
        &self,
        now: i64,
        event: impl Fn(&ApiKeyRow) -> AuditEvent,
    ) -> Result<Vec<ApiKeyRow>> {
        let mut tx = self.begin_write().await?;
        let q = format!(
            "UPDATE api_keys SET expiry_audited = 1 WHERE {EXPIRY_DUE} RETURNING {KEY_COLS}"
        );
        let rows = sqlx::query_as::<_, ApiKeyRow>(&q)
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;
        let events: Vec<AuditEvent> = rows.iter().map(event).collect();
        audit::append(&mut tx, &events).await?;
        tx.commit().await?;
        Ok(rows)
    }

    /// Changes an account's security settings (each `None` is left as it is), with its audit
    /// event, and invalidates caches (the rotation policy changes what keys may do).
    pub async fn update_account_settings(
        &self,
        account_id: &str,
        s: &AccountSettings,
        now: i64,
        event: &AuditEvent,
    ) -> Result<Option<AccountRow>> {
        let mut tx = self.begin_write().await?;
        let q = format!(
            "UPDATE accounts SET
                anomaly_auto_revoke = COALESCE($1, anomaly_auto_revoke),
                rotation_policy_days = COALESCE($2, rotation_policy_days),
                rotation_policy_enforce = COALESCE($3, rotation_policy_enforce)
             WHERE id = $4 RETURNING {ACCOUNT_COLS}"
        );
        let row = sqlx::query_as::<_, AccountRow>(&q)
            .bind(s.anomaly_auto_revoke)
            .bind(s.rotation_policy_days)
            .bind(s.rotation_policy_enforce)
            .bind(account_id)
            .fetch_optional(&mut *tx)
            .await?;
        if row.is_some() {
            invalidate(&mut tx, "account", account_id, now).await?;
            audit::append(&mut tx, std::slice::from_ref(event)).await?;
        }
        tx.commit().await?;
        Ok(row)
    }

    /// Revokes every API key and deletes every JWT key of an account in one transaction
    /// (class A). Returns the ids affected; `events` builds one audit event per credential.
    pub async fn revoke_all_credentials(
        &self,
        account_id: &str,
        now: i64,
        events: impl Fn(&str, &str) -> AuditEvent,
    ) -> Result<Vec<String>> {
        let mut tx = self.begin_write().await?;
        let keys: Vec<String> = sqlx::query_scalar(
            "UPDATE api_keys SET revoked_at = $1 WHERE account_id = $2 AND revoked_at IS NULL RETURNING id",
        )
        .bind(now)
        .bind(account_id)
        .fetch_all(&mut *tx)
        .await?;
        let jwt: Vec<String> =
            sqlx::query_scalar("DELETE FROM jwt_keys WHERE account_id = $1 RETURNING kid")
                .bind(account_id)
                .fetch_all(&mut *tx)
                .await?;
        let mut evs = Vec::new();
        for k in &keys {
            evs.push(events("api_key", k));
        }
        for k in &jwt {
            evs.push(events("jwt_key", k));
        }
        invalidate(&mut tx, "account", account_id, now).await?;
        audit::append(&mut tx, &evs).await?;
        tx.commit().await?;
        Ok(keys.into_iter().chain(jwt).collect())
    }

    /// Records which granted scopes credentials used, in one batch (class C, written behind):
    /// a time only moves forward. One transaction in one blocking call (`soft_write`), as
    /// [`Store::touch_api_keys`]: through sqlx every row was a hand-off to sqlx's thread.
    pub async fn touch_scope_usage(&self, uses: Vec<(String, String, i64)>) -> Result<()> {
        if uses.is_empty() {
            return Ok(());
        }
        self.soft_write(move |c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            {
                let mut st = tx.prepare_cached(
                    "INSERT INTO activity.credential_scope_usage (credential_id, scope, last_used_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (credential_id, scope) DO UPDATE SET last_used_at = excluded.last_used_at
                     WHERE excluded.last_used_at > last_used_at",
                )?;
                for (cred, scope, ts) in &uses {
                    st.execute(rusqlite::params![cred, scope, ts])?;
                }
            }
            tx.commit()?;
            // the activity file alone: the request path's lookups keep their snapshots and page
            // caches (ADR 0024)
            Ok(false)
        })
        .await
    }

    /// When each scope of a credential was last used.
    pub async fn scope_usage(&self, credential_id: &str) -> Result<Vec<(String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT scope, last_used_at FROM activity.credential_scope_usage WHERE credential_id = $1",
        )
        .bind(credential_id)
        .fetch_all(&self.read)
        .await?)
    }

    // ---- invalidations -----------------------------------------------------------------

    /// The newest invalidation sequence number (0 if none).
    pub async fn invalidation_head(&self) -> Result<i64> {
        let row = sqlx::query("SELECT COALESCE(MAX(seq), 0) AS m FROM invalidations")
            .fetch_one(&self.read)
            .await?;
        Ok(row.try_get::<i64, _>("m")?)
    }

    /// Invalidations after `seq`, oldest first.
    pub async fn invalidations_since(&self, seq: i64) -> Result<Vec<Invalidation>> {
        Ok(sqlx::query_as::<_, Invalidation>(
            "SELECT seq, kind, target FROM invalidations WHERE seq > $1 ORDER BY seq LIMIT 1000",
        )
        .bind(seq)
        .fetch_all(&self.read)
        .await?)
    }

    // ---- projects ----------------------------------------------------------------------

    /// Creates a project; `Conflict("slug")` if it exists.
    pub async fn create_project(&self, p: &ProjectRow) -> Result<()> {
        let r = self.exec(sqlx::query(
            "INSERT INTO projects (account_id, slug, name, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&p.account_id)
        .bind(&p.slug)
        .bind(&p.name)
        .bind(p.created_at))
        .await;
        match r {
            Ok(_) => Ok(()),
            Err(e) if unique_violation(&e) => Err(StoreError::Conflict("slug")),
            Err(e) => Err(e.into()),
        }
    }

    /// The account's projects by slug.
    pub async fn list_projects(&self, account_id: &str) -> Result<Vec<ProjectRow>> {
        Ok(sqlx::query_as::<_, ProjectRow>(
            "SELECT account_id, slug, name, created_at FROM projects WHERE account_id = $1 ORDER BY slug",
        )
        .bind(account_id)
        .fetch_all(&self.read)
        .await?)
    }

    /// One project.
    pub async fn get_project(&self, account_id: &str, slug: &str) -> Result<Option<ProjectRow>> {
        Ok(sqlx::query_as::<_, ProjectRow>(
            "SELECT account_id, slug, name, created_at FROM projects WHERE account_id = $1 AND slug = $2",
        )
        .bind(account_id)
        .bind(slug)
        .fetch_optional(&self.read)
        .await?)
    }

    /// Deletes a project and its deployments; `false` if it did not exist.
    pub async fn delete_project(&self, account_id: &str, slug: &str) -> Result<bool> {
        let n = self
            .exec(
                sqlx::query("DELETE FROM projects WHERE account_id = $1 AND slug = $2")
                    .bind(account_id)
                    .bind(slug),
            )
            .await?
            .rows_affected();
        Ok(n == 1)
    }

    // ---- deployments -------------------------------------------------------------------

    /// Creates a deployment of an existing project; `false` if the project does not exist.
    pub async fn create_deployment(&self, d: &DeploymentRow) -> Result<bool> {
        let n = self.exec(sqlx::query(
            "INSERT INTO deployments (id, account_id, project_slug, ref, environment, status, created_at)
             SELECT $1, $2, $3, $4, $5, $6, $7
             WHERE EXISTS (SELECT 1 FROM projects WHERE account_id = $2 AND slug = $3)",
        )
        .bind(&d.id)
        .bind(&d.account_id)
        .bind(&d.project_slug)
        .bind(&d.git_ref)
        .bind(&d.environment)
        .bind(&d.status)
        .bind(d.created_at))
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// A project's deployments, newest first.
    pub async fn list_deployments(
        &self,
        account_id: &str,
        slug: &str,
    ) -> Result<Vec<DeploymentRow>> {
        Ok(sqlx::query_as::<_, DeploymentRow>(
            "SELECT id, account_id, project_slug, ref, environment, status, created_at FROM deployments
             WHERE account_id = $1 AND project_slug = $2 ORDER BY created_at DESC, id DESC",
        )
        .bind(account_id)
        .bind(slug)
        .fetch_all(&self.read)
        .await?)
    }

    /// One deployment of a project.
    pub async fn get_deployment(
        &self,
        account_id: &str,
        slug: &str,
        id: &str,
    ) -> Result<Option<DeploymentRow>> {
        Ok(sqlx::query_as::<_, DeploymentRow>(
            "SELECT id, account_id, project_slug, ref, environment, status, created_at FROM deployments
             WHERE account_id = $1 AND project_slug = $2 AND id = $3",
        )
        .bind(account_id)
        .bind(slug)
        .bind(id)
        .fetch_optional(&self.read)
        .await?)
    }

    // ---- teams -------------------------------------------------------------------------

    /// Creates a team; `Conflict("slug")` if it exists.
    pub async fn create_team(&self, t: &TeamRow) -> Result<()> {
        let r = self.exec(sqlx::query(
            "INSERT INTO teams (account_id, slug, name, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&t.account_id)
        .bind(&t.slug)
        .bind(&t.name)
        .bind(t.created_at))
        .await;
        match r {
            Ok(_) => Ok(()),
            Err(e) if unique_violation(&e) => Err(StoreError::Conflict("slug")),
            Err(e) => Err(e.into()),
        }
    }

    /// The account's teams with their members' usernames.
    pub async fn list_teams(&self, account_id: &str) -> Result<Vec<(TeamRow, Vec<String>)>> {
        let teams = sqlx::query_as::<_, TeamRow>(
            "SELECT account_id, slug, name, created_at FROM teams WHERE account_id = $1 ORDER BY slug",
        )
        .bind(account_id)
        .fetch_all(&self.read)
        .await?;
        let members: Vec<(String, String)> = sqlx::query_as(
            "SELECT m.team_slug, a.username FROM team_members m JOIN accounts a ON a.id = m.member_id
             WHERE m.account_id = $1 ORDER BY a.username",
        )
        .bind(account_id)
        .fetch_all(&self.read)
        .await?;
        Ok(teams
            .into_iter()
            .map(|t| {
                let m = members
                    .iter()
                    .filter(|(slug, _)| *slug == t.slug)
                    .map(|(_, u)| u.clone())
                    .collect();
                (t, m)
            })
            .collect())
    }

    /// Adds `member_id` to a team (idempotent). `false` if the team does not exist.
    pub async fn put_team_member(
        &self,
        account_id: &str,
        slug: &str,
        member_id: &str,
        now: i64,
    ) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let exists: Option<(String,)> =
            sqlx::query_as("SELECT slug FROM teams WHERE account_id = $1 AND slug = $2")
                .bind(account_id)
                .bind(slug)
                .fetch_optional(&mut *tx)
                .await?;
        if exists.is_none() {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO team_members (account_id, team_slug, member_id, added_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (account_id, team_slug, member_id) DO NOTHING",
        )
        .bind(account_id)
        .bind(slug)
        .bind(member_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Removes a member; `false` if they were not a member of that team.
    pub async fn delete_team_member(
        &self,
        account_id: &str,
        slug: &str,
        member_id: &str,
    ) -> Result<bool> {
        let n = self.exec(sqlx::query(
            "DELETE FROM team_members WHERE account_id = $1 AND team_slug = $2 AND member_id = $3",
        )
        .bind(account_id)
        .bind(slug)
        .bind(member_id))
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// A team with its members.
    pub async fn get_team(
        &self,
        account_id: &str,
        slug: &str,
    ) -> Result<Option<(TeamRow, Vec<String>)>> {
        Ok(self
            .list_teams(account_id)
            .await?
            .into_iter()
            .find(|(t, _)| t.slug == slug))
    }
}

async fn insert_key(tx: &mut sqlx::SqliteConnection, k: &ApiKeyRow) -> Result<()> {
    let r = sqlx::query(
        "INSERT INTO api_keys (id, account_id, name, prefix, secret_hash, scopes, created_at, expires_at, revoked_at, replaced_by, rotated_from)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(&k.id)
    .bind(&k.account_id)
    .bind(&k.name)
    .bind(&k.prefix)
    .bind(&k.secret_hash)
    .bind(&k.scopes)
    .bind(k.created_at)
    .bind(k.expires_at)
    .bind(k.revoked_at)
    .bind(&k.replaced_by)
    .bind(&k.rotated_from)
    .execute(&mut *tx)
    .await;
    match r {
        Ok(_) => {}
        Err(e) if unique_violation(&e) => return Err(StoreError::Conflict("id")),
        Err(e) => return Err(e.into()),
    }
    if let Some(at) = k.last_used_at {
        sqlx::query("INSERT INTO activity.api_key_last_use (key_id, at) VALUES ($1, $2)")
            .bind(&k.id)
            .bind(at)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

pub(crate) async fn invalidate(
    tx: &mut sqlx::SqliteConnection,
    kind: &str,
    target: &str,
    now: i64,
) -> Result<()> {
    sqlx::query("INSERT INTO invalidations (kind, target, created_at) VALUES ($1, $2, $3)")
        .bind(kind)
        .bind(target)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

#[cfg(test)]
#[path = "../tests/common/fixtures.rs"]
mod test_fixtures;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::test_fixtures::{account, big_project, failure};

    /// A pooled statement that outlasts the settle wait: the batching writer goes on, waits for
    /// the lock in SQLite's busy handler (counted), lands its batch, and leaves the flag set; the
    /// next batch waits for the connection again and meets no lock.
    #[tokio::test]
    async fn a_batching_writer_goes_on_when_the_pooled_writer_does_not_settle() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("dotgit.db");
        let store = Store::open(&db).await.unwrap();
        let other = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(
                SqliteConnectOptions::from_str("sqlite://")
                    .unwrap()
                    .filename(&db),
            )
            .await
            .unwrap();
        account(&other).await;
        big_project(&other).await;
        store.turn.lock().await.settle_wait = Duration::from_millis(30);
        let before = hot::writer_lock_waits();

        let gave_up = tokio::time::timeout(
            Duration::from_millis(20),
            store.delete_project("acct_1", "big"),
        )
        .await;
        assert!(gave_up.is_err(), "the delete ended within 20 ms");
        // the pooled connection does not come back within 30 ms: the batch goes on anyway
        store.append_audit(&[failure("evt_1")]).await.unwrap();
        assert_eq!(
            hot::writer_lock_waits() - before,
            1,
            "the lock was not waited for"
        );
        assert!(store.turn.lock().await.pooled_unsettled);

        store.append_audit(&[failure("evt_2")]).await.unwrap();
        assert_eq!(hot::writer_lock_waits() - before, 1);
        assert!(!store.turn.lock().await.pooled_unsettled);

        let events: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_events")
            .fetch_one(&other)
            .await
            .unwrap();
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM deployments")
            .fetch_one(&other)
            .await
            .unwrap();
        assert_eq!((events, left), (2, 0));
        other.close().await;
    }
}
