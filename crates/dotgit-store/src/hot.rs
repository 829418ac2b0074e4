//! Point reads on the request path, answered on the calling thread (ADR 0012).
//!
//! sqlx runs every SQLite connection on a thread of its own and hands each query over a channel,
//! so one lookup costs two thread switches. On a busy core those switches cost more than the
//! lookup itself (a cache-missing API key spent ~40 % of the server's CPU parked and woken in
//! sqlx's workers). The verification lookups — an index probe and a row, microseconds from the
//! page cache — therefore go through a read-only rusqlite connection owned by the thread that
//! asks (one per runtime worker, opened on first use, statements prepared once). Everything else
//! stays on sqlx.
//!
//! While the file is quiet, each of those connections keeps one read transaction open across
//! lookups (ADR 0023): starting and ending a read transaction takes and drops a WAL read lock
//! (system calls) and checks the WAL's header, on every lookup. The rules:
//!
//! - A held snapshot answers a lookup only while this process has not committed to the file
//!   since it began (every write of the store counts its commits: [`committed`]) and it is less
//!   than [`SNAPSHOT_MAX_AGE`] old (the bound on how long another process's change, such as the
//!   CLI's, goes unseen). A lookup that finds nothing in a held snapshot looks again in a new one,
//!   so a key just made by another process is found at once.
//! - A thread holds a snapshot only after the file has seen no commit, from any process, for
//!   [`QUIET_BEFORE_HOLDING`]. While writes go on, lookups run one read transaction each, as
//!   they always did: readers that always hold a snapshot keep SQLite from ever resetting the
//!   WAL, which then grows without end (ADR 0012's addendum measured 570 MB in 40 s).
//! - A background thread (one per process, asleep while nothing is held) ends the snapshots of
//!   threads that stopped asking, and checkpoints a file [`QUIET_BEFORE_CHECKPOINT`] after this
//!   process's last commit to it, while the readers are not holding: the next writer then finds
//!   the WAL copied back and starts it over, and the readers' next snapshots read the database
//!   file alone, which does not stand in a reset's way.

use crate::{AccountRow, KeyToVerify, Result, StoreError};
use parking_lot::Mutex;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row};
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Weak};
use std::time::{Duration, Instant};

/// The longest a held snapshot answers lookups: how long a change made by another process (the
/// CLI, another server on the same file) may stay unseen by a lookup that finds the row. This
/// process's own commits are seen by the next lookup.
pub const SNAPSHOT_MAX_AGE: Duration = Duration::from_millis(50);

/// How long a file must have gone without a commit before a thread holds a snapshot of it.
pub const QUIET_BEFORE_HOLDING: Duration = Duration::from_millis(250);

/// How long after this process's last commit to a file the background thread checkpoints it
/// (shorter than [`QUIET_BEFORE_HOLDING`], so that the readers are not holding then).
pub const QUIET_BEFORE_CHECKPOINT: Duration = Duration::from_millis(100);

/// One thread's connection to one file, and the read transaction it holds.
struct Slot {
    conn: Connection,
    /// This process's commits to the file (shared with every writer of it).
    commits: Arc<AtomicU64>,
    held: Option<Held>,
    /// The commit count last seen.
    seen_commits: u64,
    /// SQLite's `data_version` last read: it moves when any other connection, of any process,
    /// has committed to the file since.
    seen_version: Option<i64>,
    /// Since when neither has moved.
    quiet_since: Instant,
}

#[derive(Clone, Copy)]
struct Held {
    /// The commit count read before the snapshot began.
    commits: u64,
    since: Instant,
}

impl Slot {
    /// Ends the held read transaction, if any.
    fn end(&mut self) -> rusqlite::Result<()> {
        if self.held.take().is_some() && !self.conn.is_autocommit() {
            self.conn.execute_batch("COMMIT")?;
        }
        Ok(())
    }

    /// Whether the held snapshot may answer a lookup now.
    fn current(&self, commits: u64, now: Instant) -> bool {
        match self.held {
            Some(h) => {
                h.commits == commits
                    && now.saturating_duration_since(h.since) < SNAPSHOT_MAX_AGE
                    && !self.conn.is_autocommit()
            }
            None => false,
        }
    }
}

thread_local! {
    static CONNECTIONS: RefCell<HashMap<PathBuf, Arc<Mutex<Slot>>>> = RefCell::new(HashMap::new());
}

/// This process's commit counts, one per database file (every `Store` on the file and its
/// batching writers share one), by the file's canonical path.
static COMMITS: LazyLock<Mutex<HashMap<PathBuf, Arc<AtomicU64>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// The counter of this process's commits to the database at `path` (see [`committed`]).
pub(crate) fn commits(path: &Path) -> Arc<AtomicU64> {
    // one counter per file, however its path is spelled
    let file = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    COMMITS.lock().entry(file).or_default().clone()
}

/// Counts a commit to the file of `commits`. Called after the commit returns, never before: a
/// lookup that sees the new count must find the commit in its next snapshot.
pub(crate) fn committed(commits: &AtomicU64) {
    commits.fetch_add(1, Ordering::Release);
    // the background thread checkpoints the file once this process has stopped writing to it
    arm();
}

/// Every thread's slots, for the background thread.
static SLOTS: LazyLock<Mutex<Vec<Weak<Mutex<Slot>>>>> = LazyLock::new(|| Mutex::new(Vec::new()));
/// Set while the background thread has work (a held snapshot, a checkpoint due); it sleeps
/// while this is clear.
static ARMED: AtomicBool = AtomicBool::new(false);
static GATE: LazyLock<(std::sync::Mutex<()>, std::sync::Condvar)> =
    LazyLock::new(|| (std::sync::Mutex::new(()), std::sync::Condvar::new()));
static BACKGROUND: std::sync::Once = std::sync::Once::new();

/// Wakes the background thread (started on first use).
fn arm() {
    if ARMED.swap(true, Ordering::SeqCst) {
        return;
    }
    BACKGROUND.call_once(|| {
        let spawned = std::thread::Builder::new()
            .name("dotgit-snapshots".into())
            .spawn(background);
        if let Err(e) = spawned {
            tracing::error!(error = %e, "could not start the read-snapshot thread");
        }
    });
    let (lock, wake) = &*GATE;
    let _g = lock
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    wake.notify_one();
}

fn slots() -> Vec<Arc<Mutex<Slot>>> {
    let mut all = SLOTS.lock();
    all.retain(|w| w.strong_count() > 0);
    all.iter().filter_map(Weak::upgrade).collect()
}

/// Ends every snapshot at least `age` old whose thread is not using it; returns whether a
/// snapshot is still held.
fn release_idle(age: Duration) -> bool {
    let now = Instant::now();
    let mut still = false;
    for s in slots() {
        let Some(mut slot) = s.try_lock() else {
            // in use: its thread is reading and will come back
            still = true;
            continue;
        };
        if let Some(h) = slot.held {
            if now.saturating_duration_since(h.since) >= age {
                if let Err(e) = slot.end() {
                    tracing::warn!(error = %e, "ending an idle read snapshot failed");
                }
            } else {
                still = true;
            }
        }
    }
    still
}

/// The background thread's view of one file's commits.
struct Pending {
    count: u64,
    changed: Instant,
    checkpointed: u64,
}

/// The background thread's memory: what it knows of each file, its checkpointing connections.
#[derive(Default)]
struct Checkpoints {
    files: HashMap<PathBuf, Pending>,
    conns: HashMap<PathBuf, Connection>,
}

impl Checkpoints {
    /// Checkpoints each file this process committed to that has been quiet for `quiet`;
    /// returns whether one is still due.
    fn run(&mut self, quiet: Duration) -> bool {
        let now = Instant::now();
        let files: Vec<(PathBuf, u64)> = COMMITS
            .lock()
            .iter()
            .map(|(p, c)| (p.clone(), c.load(Ordering::Acquire)))
            .collect();
        let mut due = false;
        for (path, count) in files {
            let p = self.files.entry(path.clone()).or_insert(Pending {
                count: 0,
                changed: now,
                checkpointed: 0,
            });
            if p.count != count {
                p.count = count;
                p.changed = now;
            }
            if p.checkpointed == p.count {
                continue;
            }
            if now.saturating_duration_since(p.changed) < quiet {
                due = true;
                continue;
            }
            p.checkpointed = p.count;
            if let Err(e) = self.checkpoint(&path) {
                // a file deleted or locked: the writers' own checkpoints go on as ever
                tracing::debug!(error = %e, file = %path.display(), "quiet checkpoint failed");
                self.conns.remove(&path);
            }
        }
        due
    }

    fn checkpoint(&mut self, path: &Path) -> rusqlite::Result<()> {
        let conn = match self.conns.entry(path.to_owned()) {
            std::collections::hash_map::Entry::Occupied(c) => c.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                // never creates the file: one deleted since stays deleted
                let c = Connection::open_with_flags(
                    path,
                    OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                c.busy_timeout(Duration::from_millis(100))?;
                v.insert(c)
            }
        };
        // copies what no reader still needs, waiting for no one
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
    }
}

static CHECKPOINTS: LazyLock<Mutex<Checkpoints>> = LazyLock::new(Mutex::default);

fn background() {
    let (lock, wake) = &*GATE;
    loop {
        {
            let mut g = lock
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            while !ARMED.load(Ordering::SeqCst) {
                g = wake
                    .wait(g)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            }
        }
        std::thread::sleep(SNAPSHOT_MAX_AGE);
        // cleared before the work: whatever is held or committed after this point sets it
        // again (`arm`), and what was there before is found by the work
        ARMED.store(false, Ordering::SeqCst);
        let held = release_idle(SNAPSHOT_MAX_AGE);
        let due = CHECKPOINTS.lock().run(QUIET_BEFORE_CHECKPOINT);
        if held || due {
            ARMED.store(true, Ordering::SeqCst);
        }
    }
}

/// Ends every idle snapshot of this process and checkpoints every file this process has
/// committed to, now, whatever the timers say (tests; the background thread does both on its
/// own).
#[doc(hidden)]
pub fn release_and_checkpoint_now() {
    release_idle(Duration::ZERO);
    CHECKPOINTS.lock().run(Duration::ZERO);
}

/// Makes the background thread forget the database file at `path`: once this returns, no
/// checkpoint of it runs (one under way is waited for) and the thread's connection to it is
/// closed. For a process that is done with a file about to be deleted, such as a test server's
/// throw-away data dir: a checkpoint that opened the database just before the deletion recreated
/// its WAL just after it (SQLite creates a missing WAL when it opens one), and the directory
/// could then not be removed. Nothing of this process may use the file afterwards: a store
/// opened on it again starts a count of its own.
#[doc(hidden)]
pub fn forget(path: &Path) {
    let file = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    // the order `Checkpoints::run` takes them in
    let mut checkpoints = CHECKPOINTS.lock();
    COMMITS.lock().remove(&file);
    checkpoints.files.remove(&file);
    checkpoints.conns.remove(&file);
}

/// Makes `by` pass for this thread's snapshots and quiet periods (tests of the timers, which
/// must not sleep to see them run out).
#[doc(hidden)]
pub fn pretend_elapsed(by: Duration) {
    CONNECTIONS.with(|cell| {
        for s in cell.borrow().values() {
            let mut slot = s.lock();
            if let Some(h) = slot.held.as_mut() {
                h.since = h.since.checked_sub(by).unwrap_or(h.since);
            }
            slot.quiet_since = slot.quiet_since.checked_sub(by).unwrap_or(slot.quiet_since);
        }
    });
}

/// Whether this thread holds a snapshot of `path` (tests).
#[doc(hidden)]
pub fn holds_snapshot(path: &Path) -> bool {
    CONNECTIONS.with(|cell| {
        cell.borrow()
            .get(path)
            .is_some_and(|s| s.lock().held.is_some())
    })
}

fn open(path: &Path) -> rusqlite::Result<Connection> {
    let c = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    c.busy_timeout(Duration::from_secs(5))?;
    // the same 64 MiB page cache as the pooled connections (memory-mapping the file instead was
    // measured slower here: 11,344 against 16,914 cache-missing requests/s over 1M keys)
    c.pragma_update(None, "cache_size", -65536)?;
    c.set_prepared_statement_cache_capacity(32);
    Ok(c)
}

/// A read-write connection of its own for a batching writer, foreign keys on, the activity file
/// attached (ADR 0020). The audit writer opens it with `synchronous=NORMAL`: its commits are not
/// synced to disk one by one, it syncs both files' WALs at least once a second while it writes
/// and when it pauses (see `append_audit_with_networks`), and every synced commit of the other
/// writers (all class A/B changes, `synchronous=FULL`) syncs the database file's WAL, audit
/// frames in it included. The refresh writer opens it with `FULL` (and turns the foreign keys
/// off: `refresh::open`).
pub(crate) fn open_writer(path: &Path, synchronous: &str) -> rusqlite::Result<Connection> {
    let c = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    c.busy_handler(Some(writer_busy))?;
    // the activity file (ADR 0020): the audit writer appends batches of successes there, and
    // every writer reads the sequence of the audit log from both files
    let activity = crate::activity_path(path);
    c.execute(
        "ATTACH DATABASE ?1 AS activity",
        [activity.to_string_lossy().as_ref()],
    )?;
    c.pragma_update(None, "synchronous", synchronous)?;
    c.pragma_update(
        Some(rusqlite::DatabaseName::Attached("activity")),
        "synchronous",
        synchronous,
    )?;
    c.pragma_update(None, "foreign_keys", true)?;
    // a small page cache: a writer touches recent pages, and SQLite walks the cache's whole hash
    // table at the end of every write transaction (with 64 MiB, a quarter of a refresh's cost)
    c.pragma_update(None, "cache_size", -4096)?;
    // savepoints (one per rotation in a refresh batch) journal the pages they change to a
    // statement journal: in a temporary file that was a sixth of a rotation's cost, in memory
    // it is a copy
    c.pragma_update(None, "temp_store", "MEMORY")?;
    c.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES)?;
    c.set_prepared_statement_cache_capacity(8);
    Ok(c)
}

/// Times a batching writer's connection found the database locked and waited for it.
static WRITER_LOCK_WAITS: AtomicU64 = AtomicU64::new(0);

/// How many times, since the process started, a batching writer (the audit writer, the refresh
/// writer) or the start-up move of last-use times (`audit::move_last_use`) found the write lock
/// of the database file or of its activity file taken and waited for it. A store's own writes
/// take turns (`WriteTurn`) and leave it at 0; it moves when another process writes the files
/// (the command line beside the server), or when a pooled write of this process ran longer than
/// a batching writer waits for it (10 s) and the writer went on (`Store::on_writer`).
/// Exported as `dotgit_store_writer_lock_waits_total`.
pub fn writer_lock_waits() -> u64 {
    WRITER_LOCK_WAITS.load(Ordering::Relaxed)
}

/// The batching writers' busy handler, SQLite's own (`sqlite3_busy_timeout`) with a count: it
/// waits 1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, then 100 ms at a time, the last wait cut to
/// end at 5 s, and counts each wait (its first retry) in [`writer_lock_waits`].
fn writer_busy(retries: i32) -> bool {
    let n = usize::try_from(retries).unwrap_or(0);
    if n == 0 {
        WRITER_LOCK_WAITS.fetch_add(1, Ordering::Relaxed);
    }
    match busy_delay_ms(n) {
        Some(ms) => {
            std::thread::sleep(Duration::from_millis(ms));
            true
        }
        None => false,
    }
}

/// The busy handler's wait before its retry number `n` (0 first), or `None` once 5 s have
/// been waited.
fn busy_delay_ms(n: usize) -> Option<u64> {
    const DELAYS_MS: [u64; 12] = [1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100];
    const TIMEOUT_MS: u64 = 5_000;
    let last = DELAYS_MS[DELAYS_MS.len() - 1];
    let waited = DELAYS_MS
        .iter()
        .take(n)
        .sum::<u64>()
        .saturating_add((n.saturating_sub(DELAYS_MS.len()) as u64).saturating_mul(last));
    let delay = DELAYS_MS[n.min(DELAYS_MS.len() - 1)].min(TIMEOUT_MS.saturating_sub(waited));
    (delay > 0).then_some(delay)
}

/// WAL pages after which a committing writer copies the WAL back into the database.
pub(crate) const WAL_AUTOCHECKPOINT_PAGES: i64 = 10_000;

/// Runs `f` on this thread's connection to `path`, opening it on first use; a connection whose
/// `f` failed is not reused.
fn on_slot<T>(path: &Path, f: impl FnOnce(&mut Slot) -> rusqlite::Result<T>) -> Result<T> {
    CONNECTIONS.with(|cell| {
        let mut map = cell.borrow_mut();
        let slot = match map.get(path) {
            Some(s) => s,
            None => {
                let conn = open(path).map_err(StoreError::Hot)?;
                let commits = commits(path);
                let s = Arc::new(Mutex::new(Slot {
                    conn,
                    seen_commits: commits.load(Ordering::Acquire),
                    commits,
                    held: None,
                    seen_version: None,
                    quiet_since: Instant::now(),
                }));
                {
                    let mut all = SLOTS.lock();
                    all.retain(|w| w.strong_count() > 0);
                    all.push(Arc::downgrade(&s));
                }
                map.entry(path.to_owned()).or_insert(s)
            }
        };
        let r = f(&mut slot.lock());
        if r.is_err() {
            map.remove(path);
        }
        r.map_err(StoreError::Hot)
    })
}

/// A point read: `f` on this thread's held snapshot of `path` if it may answer (see the module's
/// rules), else on a new read transaction, held if the file is quiet. When a snapshot that was
/// already held finds nothing, `f` runs again on a new one: a row another process has just
/// committed (a key made by `dotgit keys create`) is found at once.
pub(crate) fn lookup<T>(
    path: &Path,
    f: impl Fn(&Connection) -> rusqlite::Result<Option<T>>,
) -> Result<Option<T>> {
    on_slot(path, |slot| {
        let now = Instant::now();
        // read before any snapshot begins: a commit it does not count may be in the snapshot
        // or not, and the next lookup, seeing a higher count, takes a new one
        let commits = slot.commits.load(Ordering::Acquire);
        if slot.current(commits, now) {
            if let Some(v) = f(&slot.conn)? {
                return Ok(Some(v));
            }
        }
        slot.end()?;
        if commits != slot.seen_commits {
            slot.seen_commits = commits;
            slot.quiet_since = now;
        }
        if now.saturating_duration_since(slot.quiet_since) < QUIET_BEFORE_HOLDING {
            // the file is being written: one read transaction for this lookup alone
            return f(&slot.conn);
        }
        slot.conn.execute_batch("BEGIN")?;
        // (this read begins the snapshot)
        let version: i64 = slot
            .conn
            .prepare_cached("PRAGMA data_version")?
            .query_row([], |r| r.get(0))?;
        if slot.seen_version == Some(version) {
            slot.held = Some(Held {
                commits,
                since: now,
            });
            arm();
            return f(&slot.conn);
        }
        // another connection committed since the last look: not quiet yet
        slot.seen_version = Some(version);
        slot.quiet_since = now;
        let found = f(&slot.conn);
        slot.conn.execute_batch("COMMIT")?;
        found
    })
}

/// Runs `f` on this thread's connection to `path` outside any snapshot (it ends the one held):
/// for a read that must see everything committed so far, by any process.
pub(crate) fn fresh<T>(
    path: &Path,
    f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> Result<T> {
    on_slot(path, |slot| {
        slot.end()?;
        f(&slot.conn)
    })
}

pub(crate) fn account(r: &Row<'_>, at: usize) -> rusqlite::Result<AccountRow> {
    Ok(AccountRow {
        id: r.get(at)?,
        username: r.get(at + 1)?,
        password_hash: r.get(at + 2)?,
        plan: r.get(at + 3)?,
        is_operator: r.get(at + 4)?,
        status: r.get(at + 5)?,
        status_reason: r.get(at + 6)?,
        created_at: r.get(at + 7)?,
        anomaly_auto_revoke: r.get(at + 8)?,
        rotation_policy_days: r.get(at + 9)?,
        rotation_policy_enforce: r.get(at + 10)?,
    })
}

/// The key under `hash_hex` and its account, in one statement.
pub(crate) fn api_key_by_hash(
    path: &Path,
    hash_hex: &str,
) -> Result<Option<(KeyToVerify, AccountRow)>> {
    lookup(path, |c| {
        let mut st = c.prepare_cached(crate::KEY_PROBE)?;
        st.query_row([hash_hex], |r| {
            let key = KeyToVerify {
                id: r.get(0)?,
                scopes: r.get(1)?,
                created_at: r.get(2)?,
                expires_at: r.get(3)?,
                revoked_at: r.get(4)?,
            };
            Ok((key, account(r, 5)?))
        })
        .optional()
    })
}

/// An account by id.
pub(crate) fn account_by_id(path: &Path, id: &str) -> Result<Option<AccountRow>> {
    lookup(path, |c| {
        let mut st = c.prepare_cached(&format!(
            "SELECT {} FROM accounts WHERE id = ?1",
            crate::ACCOUNT_COLS
        ))?;
        st.query_row([id], |r| account(r, 0)).optional()
    })
}

/// An OAuth client by id (client authentication at the token and introspection endpoints).
pub(crate) fn oauth_app(path: &Path, client_id: &str) -> Result<Option<crate::OAuthAppRow>> {
    lookup(path, |c| {
        let mut st = c.prepare_cached(
            "SELECT client_id, account_id, name, redirect_uris, confidential, secret_hash,
                    allowed_scopes, created_at, secret_created_at
             FROM oauth_apps WHERE client_id = ?1",
        )?;
        st.query_row([client_id], |r| {
            Ok(crate::OAuthAppRow {
                client_id: r.get(0)?,
                account_id: r.get(1)?,
                name: r.get(2)?,
                redirect_uris: r.get(3)?,
                confidential: r.get(4)?,
                secret_hash: r.get(5)?,
                allowed_scopes: r.get(6)?,
                created_at: r.get(7)?,
                secret_created_at: r.get(8)?,
            })
        })
        .optional()
    })
}

/// A token, its grant and its account.
pub(crate) type TokenGrantAccount = (crate::OAuthTokenRow, crate::OAuthGrantRow, AccountRow);

/// An OAuth token by digest, with its grant and account: its candidate rows from the token
/// index (ADR 0022), each read by rowid in one statement that checks the whole digest.
pub(crate) fn oauth_token_by_hash(
    path: &Path,
    tokens: &crate::token_index::TokenIndex,
    token_hash: &str,
) -> Result<Option<TokenGrantAccount>> {
    // before `with`: loading the index reads through this thread's connection too
    let rowids = tokens.candidates(token_hash)?;
    if rowids.is_empty() {
        return Ok(None);
    }
    lookup(path, |c| {
        Ok(token_at_one_of(c, &rowids, token_hash)?.map(|(_, t)| t))
    })
}

/// The token with digest `token_hash` at the first of `rowids` (the token index's candidates)
/// that holds it, and that rowid, on any connection (the refresh writer runs it inside its
/// transaction).
pub(crate) fn token_at_one_of(
    c: &Connection,
    rowids: &[i64],
    token_hash: &str,
) -> rusqlite::Result<Option<(i64, TokenGrantAccount)>> {
    for &rowid in rowids {
        if let Some(found) = token_grant_account(c, rowid, token_hash)? {
            return Ok(Some((rowid, found)));
        }
    }
    Ok(None)
}

/// The statement behind [`token_at_one_of`]: the token at `rowid` if its digest is `token_hash`.
fn token_grant_account(
    c: &Connection,
    rowid: i64,
    token_hash: &str,
) -> rusqlite::Result<Option<TokenGrantAccount>> {
    let mut st = c.prepare_cached(crate::TOKEN_LOOKUP)?;
    st.query_row(rusqlite::params![rowid, token_hash], |r| {
        Ok((
            crate::OAuthTokenRow {
                id: r.get(0)?,
                token_hash: r.get(1)?,
                kind: r.get(2)?,
                grant_id: r.get(3)?,
                account_id: r.get(4)?,
                client_id: r.get(5)?,
                scope: r.get(6)?,
                created_at: r.get(7)?,
                expires_at: r.get(8)?,
                revoked_at: r.get(9)?,
                used_at: r.get(10)?,
                replaced_by: r.get(11)?,
            },
            crate::OAuthGrantRow {
                id: r.get(12)?,
                authorization_id: r.get(13)?,
                account_id: r.get(14)?,
                client_id: r.get(15)?,
                scope: r.get(16)?,
                created_at: r.get(17)?,
                refresh_expires_at: r.get(18)?,
                revoked_at: r.get(19)?,
                revoked_reason: r.get(20)?,
            },
            account(r, 21)?,
        ))
    })
    .optional()
}

#[cfg(test)]
mod tests {
    /// The same steps as SQLite's `sqliteDefaultBusyCallback`, 5 s in all.
    #[test]
    fn the_busy_handler_waits_sqlite_s_steps_for_five_seconds() {
        let delays: Vec<u64> = (0..).map_while(super::busy_delay_ms).collect();
        assert_eq!(delays[..12], [1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100]);
        assert_eq!(delays.iter().sum::<u64>(), 5_000);
        assert_eq!(delays.len(), 59);
        assert_eq!(super::busy_delay_ms(usize::MAX), None);
    }
}
