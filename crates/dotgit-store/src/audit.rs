//! The audit log in SQLite: appends extend the hash chain inside the caller's write transaction
//! (so a class-A event commits with its state change), queries page by position (stable while
//! new events arrive), and the chain can be re-verified end to end.
//!
//! A row is one event, or a pack of one account's successful authentications from one batch
//! (`dotgit_core::audit::encode_pack`): a position is the row's `seq` and the event's index in
//! its row (0 for a row of one event). Every read expands packs, so callers see events only.

use crate::{Result, Store, StoreError};
use dotgit_core::audit::{
    chain_hash, decode_pack, encode_pack, one_credential, pack_hash, packable, AuditEvent, Entry,
    EventFields, GENESIS_HASH,
};
use sqlx::Row;
use std::borrow::Cow;

/// A stored event with its position.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    /// Sequence number of its row (strictly increasing).
    pub seq: i64,
    /// Its index in a packed row (0 otherwise).
    pub index: u32,
    /// The event.
    pub event: AuditEvent,
}

/// Filters for listing events; `None` means any.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only this account's events.
    pub account_id: Option<String>,
    /// Only this credential's events.
    pub credential_id: Option<String>,
    /// Exact type (`auth.failed`) or a prefix ending in `.` (`anomaly.`).
    pub event_type: Option<String>,
    /// Only this outcome.
    pub outcome: Option<String>,
    /// At or after (Unix seconds).
    pub since: Option<i64>,
    /// Before (Unix seconds).
    pub until: Option<i64>,
    /// Only events before this position, `(seq, index)` (the paging cursor).
    pub before: Option<(i64, u32)>,
}

/// Where verification found the chain broken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    /// Sequence number of the first event whose link does not hold.
    pub seq: i64,
    /// Its id as stored.
    pub id: String,
}

/// The one high-volume type, left out of the partial type index.
const SUCCEEDED: &str = dotgit_core::audit::types::AUTH_SUCCEEDED;
/// Its outcome: the activity file holds events of that type and outcome only.
const SUCCESS: &str = dotgit_core::audit::outcomes::SUCCESS;

const COLS: &str = "seq, id, time, request_id, type, account_id, credential_id, source_ip, \
                    user_agent, outcome, reason, time_last, pack";

/// A stored row: one event, or a pack of them.
struct StoredRow {
    seq: i64,
    head: AuditEvent,
    time_last: Option<i64>,
    pack: Option<Vec<u8>>,
}

fn from_row(r: &sqlx::sqlite::SqliteRow) -> std::result::Result<StoredRow, sqlx::Error> {
    Ok(StoredRow {
        seq: r.try_get("seq")?,
        head: AuditEvent {
            id: r.try_get("id")?,
            time: r.try_get("time")?,
            request_id: r.try_get("request_id")?,
            event_type: r.try_get::<String, _>("type")?.into(),
            account_id: r.try_get("account_id")?,
            credential_id: r.try_get("credential_id")?,
            source_ip: r.try_get("source_ip")?,
            user_agent: r.try_get("user_agent")?,
            outcome: r.try_get::<String, _>("outcome")?.into(),
            reason: r.try_get::<Option<String>, _>("reason")?.map(Into::into),
        },
        time_last: r.try_get("time_last")?,
        pack: r.try_get("pack")?,
    })
}

impl StoredRow {
    /// The row's events, oldest first. A pack that does not decode is an error (its hash still
    /// holds, or verification reports it first).
    fn events(self) -> Result<Vec<StoredEvent>> {
        let seq = self.seq;
        let Some(pack) = &self.pack else {
            return Ok(vec![StoredEvent {
                seq,
                index: 0,
                event: self.head,
            }]);
        };
        let events = decode_pack(&self.head, self.head.time, pack)
            .ok_or_else(|| StoreError::Internal(format!("audit row {seq}: unreadable pack")))?;
        Ok(events
            .into_iter()
            .enumerate()
            .map(|(i, event)| StoredEvent {
                seq,
                index: u32::try_from(i).unwrap_or(u32::MAX),
                event,
            })
            .collect())
    }

    /// The chain link this row must carry after `prev`.
    fn link(&self, prev: &str) -> String {
        match &self.pack {
            None => chain_hash(prev, &self.head),
            Some(pack) => pack_hash(
                prev,
                &self.head,
                self.time_last.unwrap_or(self.head.time),
                pack,
            ),
        }
    }
}

/// The audit writer's connection, when it last synced its commits to disk, and whether it has
/// committed since.
#[derive(Debug)]
pub(crate) struct AuditWriter {
    conn: rusqlite::Connection,
    synced: std::time::Instant,
    dirty: bool,
}

impl AuditWriter {
    /// fsyncs the WALs of the database and of its activity file: every frame committed so far,
    /// this connection's and others', is on disk.
    fn sync(&mut self, db: &std::path::Path) -> Result<()> {
        for file in [db.to_owned(), crate::activity_path(db)] {
            let mut wal = file.into_os_string();
            wal.push("-wal");
            match std::fs::File::open(&wal) {
                Ok(f) => f
                    .sync_data()
                    .map_err(|e| StoreError::Stopped(format!("syncing the audit log: {e}")))?,
                // no WAL yet: nothing committed there to sync
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(StoreError::Stopped(format!("syncing the audit log: {e}"))),
            }
        }
        self.synced = std::time::Instant::now();
        self.dirty = false;
        Ok(())
    }
}

/// Locks a writer's connection slot. After a panic while it was held (the connection may be
/// inside a transaction) the slot is emptied, so the next use opens a fresh connection instead
/// of failing forever.
pub(crate) fn lock_fresh<T>(
    m: &std::sync::Mutex<Option<T>>,
) -> std::sync::MutexGuard<'_, Option<T>> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => {
            let mut g = poisoned.into_inner();
            *g = None;
            g
        }
    }
}

/// How long the audit writer's commits may go without one synced to disk.
pub const AUDIT_SYNC_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Rows per INSERT statement: one round trip to SQLite for many rows (13 parameters a row,
/// well under SQLite's limit of 32,766 parameters).
const ROWS_PER_STATEMENT: usize = 64;

/// What one row will hold: an event, or a pack of events sharing all but their own fields.
enum NewRow<'a, E> {
    One(Cow<'a, AuditEvent>),
    Pack(Vec<&'a E>),
}

/// Groups a batch into rows: the packable events of one account (and outcome and reason) in a
/// run of one packable type become one pack (in the order their first event came); any other
/// event, or a packable one of another type, ends the packs open before it. So no event changes
/// places with an event of another kind; everything else stays a row of its own, in order. A
/// pack may hold several of the account's credentials (format 2, ADR 0014).
fn rows_of<E: EventFields>(events: &[E]) -> Vec<NewRow<'_, E>> {
    type Key<'a> = (Option<&'a str>, &'a str, Option<&'a str>);
    fn flush<'a, E: EventFields>(rows: &mut Vec<NewRow<'a, E>>, open: &mut Vec<Vec<&'a E>>) {
        for pack in open.drain(..) {
            rows.push(match pack[..] {
                [one] => NewRow::One(one.event()),
                _ => NewRow::Pack(pack),
            });
        }
    }
    let mut rows = Vec::new();
    let mut open: Vec<Vec<&E>> = Vec::new();
    let mut by_key: foldhash::HashMap<Key<'_>, usize> = foldhash::HashMap::default();
    // the pack the previous event joined: runs of one account's events skip the hashing
    let mut last: Option<(Key<'_>, usize)> = None;
    // the type of the packs open
    let mut run: Option<&str> = None;
    for e in events {
        let kind = packable(e).then(|| e.event_type());
        if kind.is_none() || kind != run {
            flush(&mut rows, &mut open);
            by_key.clear();
            last = None;
            run = kind;
        }
        if kind.is_none() {
            rows.push(NewRow::One(e.event()));
            continue;
        }
        let key = (e.account_id(), e.outcome(), e.reason());
        let i = match last {
            Some((k, i)) if k == key => i,
            _ => *by_key.entry(key).or_insert_with(|| {
                open.push(Vec::new());
                open.len() - 1
            }),
        };
        open[i].push(e);
        last = Some((key, i));
    }
    flush(&mut rows, &mut open);
    rows
}

/// The column values of one new row, its chain link computed after `prev` (which it updates).
struct RowValues<'a> {
    id: Cow<'a, str>,
    time: i64,
    request_id: &'a str,
    event_type: &'a str,
    account_id: Option<&'a str>,
    credential_id: Option<&'a str>,
    source_ip: Option<&'a str>,
    user_agent: Option<&'a str>,
    outcome: &'a str,
    reason: Option<&'a str>,
    hash: String,
    time_last: Option<i64>,
    pack: Option<Vec<u8>>,
}

impl<E: EventFields> NewRow<'_, E> {
    fn values(&self, prev: &mut String) -> RowValues<'_> {
        match self {
            NewRow::One(e) => {
                *prev = chain_hash(prev, e);
                RowValues {
                    id: Cow::Borrowed(&e.id),
                    time: e.time,
                    request_id: &e.request_id,
                    event_type: &e.event_type,
                    account_id: e.account_id.as_deref(),
                    credential_id: e.credential_id.as_deref(),
                    source_ip: e.source_ip.as_deref(),
                    user_agent: e.user_agent.as_deref(),
                    outcome: &e.outcome,
                    reason: e.reason.as_deref(),
                    hash: prev.clone(),
                    time_last: None,
                    pack: None,
                }
            }
            NewRow::Pack(pack) => {
                let first: &E = pack[0];
                let (min, max) = pack.iter().fold((i64::MAX, i64::MIN), |(lo, hi), e| {
                    (lo.min(e.time()), hi.max(e.time()))
                });
                // the row's own columns: what the events share, the first id, the time range;
                // the credential only if they share one (otherwise the pack names each event's)
                let credential_id = if one_credential(pack) {
                    first.credential_id()
                } else {
                    None
                };
                let mut id = String::new();
                first.write_id(&mut id);
                let head = AuditEvent {
                    id,
                    time: min,
                    request_id: String::new(),
                    event_type: first.event_type().to_owned().into(),
                    account_id: first.account_id().map(str::to_owned),
                    credential_id: credential_id.map(str::to_owned),
                    source_ip: None,
                    user_agent: None,
                    outcome: first.outcome().to_owned().into(),
                    reason: first.reason().map(|r| r.to_owned().into()),
                };
                let bytes = encode_pack(pack, min);
                *prev = pack_hash(prev, &head, max, &bytes);
                RowValues {
                    id: Cow::Owned(head.id),
                    time: min,
                    request_id: "",
                    event_type: first.event_type(),
                    account_id: first.account_id(),
                    credential_id,
                    source_ip: None,
                    user_agent: None,
                    outcome: first.outcome(),
                    reason: first.reason(),
                    hash: prev.clone(),
                    time_last: Some(max),
                    pack: Some(bytes),
                }
            }
        }
    }
}

/// The schema of the activity file (ADR 0020): the database's `audit_events` as migration 0008
/// left it, for rows of successful authentications only, its `seq` given by the writer (one
/// sequence over both files), the account's index and the append-only triggers; and the
/// last-use times of keys and of scopes (ADR 0024), which moved here from the database file.
const ACTIVITY_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS audit_events (
    seq           INTEGER PRIMARY KEY,
    id            TEXT NOT NULL,
    time          INTEGER NOT NULL,
    request_id    TEXT NOT NULL,
    type          TEXT NOT NULL,
    account_id    TEXT,
    credential_id TEXT,
    source_ip     TEXT,
    user_agent    TEXT,
    outcome       TEXT NOT NULL,
    reason        TEXT,
    hash          TEXT NOT NULL,
    time_last     INTEGER,
    pack          BLOB
);
CREATE INDEX IF NOT EXISTS audit_by_account ON audit_events(account_id, seq);
CREATE TRIGGER IF NOT EXISTS audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END;
CREATE TABLE IF NOT EXISTS api_key_last_use (
    key_id TEXT PRIMARY KEY,
    at     INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS credential_scope_usage (
    credential_id TEXT NOT NULL,
    scope         TEXT NOT NULL,
    last_used_at  INTEGER NOT NULL,
    PRIMARY KEY (credential_id, scope)
) WITHOUT ROWID;
";

/// Creates the activity file at `path` if needed, in WAL mode, with its tables.
pub(crate) fn create_activity(path: &std::path::Path) -> rusqlite::Result<()> {
    let c = rusqlite::Connection::open(path)?;
    c.busy_timeout(std::time::Duration::from_secs(5))?;
    c.pragma_update(None, "journal_mode", "WAL")?;
    c.execute_batch(ACTIVITY_SCHEMA)
}

/// The last-use tables that migrations 0005 and 0010 made in the database file, and the
/// statement that copies one into the activity file's table of the same name, keeping the later
/// time where both hold a row.
const LAST_USE_MOVES: [(&str, &str); 2] = [
    (
        "api_key_last_use",
        "INSERT INTO activity.api_key_last_use (key_id, at)
         SELECT key_id, at FROM main.api_key_last_use WHERE true
         ON CONFLICT (key_id) DO UPDATE SET at = max(at, excluded.at)",
    ),
    (
        "credential_scope_usage",
        "INSERT INTO activity.credential_scope_usage (credential_id, scope, last_used_at)
         SELECT credential_id, scope, last_used_at FROM main.credential_scope_usage WHERE true
         ON CONFLICT (credential_id, scope)
         DO UPDATE SET last_used_at = max(last_used_at, excluded.last_used_at)",
    ),
];

/// Moves the last-use tables of the database file at `db` into its activity file (ADR 0024),
/// if they are still there: one transaction copies their rows, a second drops them. Each writes
/// one file, so each commits whole; a stop between the two leaves the rows in both files, and
/// the next start copies them again (the later time wins) before it drops them. Two processes
/// starting at once take turns on the write lock, and the second finds nothing left to move.
pub(crate) fn move_last_use(db: &std::path::Path) -> rusqlite::Result<()> {
    let mut c = crate::hot::open_writer(db, "FULL")?;
    let in_main = |c: &rusqlite::Connection, table: &str| -> rusqlite::Result<bool> {
        c.query_row(
            "SELECT count(*) FROM main.sqlite_master WHERE type = 'table' AND name = ?1",
            [table],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n > 0)
    };
    let mut left = false;
    for (table, _) in LAST_USE_MOVES {
        left |= in_main(&c, table)?;
    }
    if !left {
        return Ok(());
    }
    let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut moved = Vec::new();
    for (table, copy) in LAST_USE_MOVES {
        if in_main(&tx, table)? {
            tx.execute(copy, [])?;
            moved.push(table);
        }
    }
    tx.commit()?;
    let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    for table in moved {
        // (a process that moved them meanwhile dropped them too)
        tx.execute_batch(&format!("DROP TABLE IF EXISTS main.{table}"))?;
    }
    tx.commit()
}

/// Where a row goes: the database's own table, or the activity file's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum File {
    Main,
    Activity,
}

impl File {
    fn schema(self) -> &'static str {
        match self {
            File::Main => "main",
            File::Activity => "activity",
        }
    }
}

/// `INSERT INTO <schema>.audit_events (…) VALUES `, without its rows.
macro_rules! insert_into {
    ($schema:literal) => {
        concat!(
            "INSERT INTO ",
            $schema,
            ".audit_events (seq, id, time, request_id, type, account_id, credential_id, source_ip, user_agent, outcome, reason, hash, time_last, pack) VALUES "
        )
    };
}

/// The placeholders of one row of [`insert_into`].
macro_rules! one_row {
    () => {
        "(?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
    };
}

/// An insert of one row into `file`'s table: a constant, so that looking up its prepared
/// statement builds no string.
fn insert_row_sql(file: File) -> &'static str {
    match file {
        File::Main => concat!(insert_into!("main"), one_row!()),
        File::Activity => concat!(insert_into!("activity"), one_row!()),
    }
}

/// Where an append to `file` starts, in one statement: the hash of `file`'s last row (its
/// chain's head; NULL before its first row) and the last position of the log over both files
/// (NULL before any row). Every writer reads it inside a transaction that holds the database's
/// write lock (`BEGIN IMMEDIATE` takes it even when only the activity file is written), so
/// positions are given out one writer at a time, in commit order.
fn head_sql(file: File) -> &'static str {
    macro_rules! head {
        ($schema:literal) => {
            concat!(
                "SELECT (SELECT hash FROM ",
                $schema,
                ".audit_events ORDER BY seq DESC LIMIT 1),
                (SELECT MAX(s) FROM (SELECT MAX(seq) AS s FROM main.audit_events
                                     UNION ALL SELECT MAX(seq) FROM activity.audit_events))"
            )
        };
    }
    match file {
        File::Main => head!("main"),
        File::Activity => head!("activity"),
    }
}

/// The chain's previous hash and the log's last position, from [`head_sql`]'s row.
fn head((hash, seq): (Option<String>, Option<i64>)) -> (String, i64) {
    (
        hash.unwrap_or_else(|| GENESIS_HASH.to_owned()),
        seq.unwrap_or(0),
    )
}

/// Appends events inside an open write transaction, extending the chain.
pub(crate) async fn append(tx: &mut sqlx::SqliteConnection, events: &[AuditEvent]) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let (mut prev, mut seq) = head(
        sqlx::query_as(head_sql(File::Main))
            .fetch_one(&mut *tx)
            .await?,
    );
    let rows = rows_of(events);
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let mut sql = insert_into!("main").to_owned();
        // Anonymous `?` placeholders: SQLite resolves a named/numbered parameter by a linear
        // scan, which made binding quadratic in the row count (a quarter of the server's CPU).
        for i in 0..chunk.len() {
            if i > 0 {
                sql.push(',');
            }
            sql.push_str(one_row!());
        }
        let mut q = sqlx::query(&sql);
        for row in chunk {
            let v = row.values(&mut prev);
            seq += 1;
            q = q
                .bind(seq)
                .bind(v.id.into_owned())
                .bind(v.time)
                .bind(v.request_id)
                .bind(v.event_type)
                .bind(v.account_id)
                .bind(v.credential_id)
                .bind(v.source_ip)
                .bind(v.user_agent)
                .bind(v.outcome)
                .bind(v.reason)
                .bind(v.hash)
                .bind(v.time_last)
                .bind(v.pack);
        }
        q.execute(&mut *tx).await?;
    }
    Ok(())
}

/// Appends events to `file`'s chain inside an open rusqlite transaction (on a connection with
/// the activity file attached, `hot::open_writer`).
pub(crate) fn append_rs(
    tx: &rusqlite::Connection,
    file: File,
    events: &[impl EventFields],
) -> rusqlite::Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let (mut prev, mut seq) = head(
        tx.prepare_cached(head_sql(file))?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?,
    );
    let mut insert = tx.prepare_cached(insert_row_sql(file))?;
    for row in rows_of(events) {
        let v = row.values(&mut prev);
        seq += 1;
        insert.execute(rusqlite::params![
            seq,
            v.id.as_ref(),
            v.time,
            v.request_id,
            v.event_type,
            v.account_id,
            v.credential_id,
            v.source_ip,
            v.user_agent,
            v.outcome,
            v.reason,
            v.hash,
            v.time_last,
            v.pack,
        ])?;
    }
    Ok(())
}

/// The batching writer's transaction on its own rusqlite connection: the networks its anomaly
/// rules met for the first time, then the events. A batch of successful authentications alone
/// goes to the activity file, leaving the database file unchanged (ADR 0020); any other batch
/// (a failure, an anomaly, a first-seen network among them) goes to the database file whole, so
/// that every transaction writes one file and commits atomically.
fn append_batch(
    conn: &mut rusqlite::Connection,
    events: &[Entry],
    networks: &[(String, String, i64)],
) -> rusqlite::Result<bool> {
    let file = if networks.is_empty()
        && events
            .iter()
            .all(|e| e.event_type() == SUCCEEDED && e.outcome() == SUCCESS)
    {
        File::Activity
    } else {
        File::Main
    };
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    {
        let mut nets = tx.prepare_cached(
            "INSERT INTO credential_networks (credential_id, network, first_seen) VALUES (?, ?, ?)
             ON CONFLICT (credential_id, network) DO NOTHING",
        )?;
        for (credential_id, network, first_seen) in networks {
            nets.execute(rusqlite::params![credential_id, network, first_seen])?;
        }
    }
    append_rs(&tx, file, events)?;
    tx.commit()?;
    Ok(file == File::Main)
}

impl Store {
    /// Appends a batch of events in one transaction.
    pub async fn append_audit(&self, events: &[AuditEvent]) -> Result<()> {
        self.append_audit_with_networks(
            std::sync::Arc::new(events.iter().cloned().map(Entry::from).collect()),
            std::sync::Arc::new(Vec::new()),
        )
        .await
    }

    /// The batching writer's call: a batch of events and the networks (credential, network,
    /// first seen) its anomaly rules met for the first time, in one transaction.
    ///
    /// The transaction runs on a rusqlite connection of the writer's own, in one blocking call:
    /// through sqlx, each of its statements was a hand-off to sqlx's connection thread and back,
    /// and those thread switches cost more than the rows. It runs in the write turn
    /// (`WriteTurn`), so it never contends with the other writes for SQLite's write lock.
    ///
    /// Durability (docs/audit.md): the commit reaches the operating system before this returns,
    /// so a crash of the process loses nothing committed; it reaches the disk when its file's
    /// WAL is next synced — by this writer at least every [`AUDIT_SYNC_INTERVAL`] while it
    /// writes and by [`Store::sync_audit`] when it pauses, or (the database file's) by any class
    /// A/B commit — so a power loss can also take up to about that long of per-request events.
    /// A batch of successes alone goes to the activity file (see `append_batch`).
    pub async fn append_audit_with_networks(
        &self,
        events: std::sync::Arc<Vec<Entry>>,
        networks: std::sync::Arc<Vec<(String, String, i64)>>,
    ) -> Result<()> {
        self.soft_write(move |c| append_batch(c, &events, &networks))
            .await
    }

    /// Runs `f` — one transaction of soft state (class C: per-request audit events, last-used
    /// times) — in one blocking call on the batching writers' own connection, in the write turn
    /// (`WriteTurn`). Its commits reach the operating system at once and the disk within
    /// [`AUDIT_SYNC_INTERVAL`] (see [`Store::append_audit_with_networks`]). `f` tells whether it
    /// changed the database file (a batch of successes alone changes only the activity file,
    /// which the request path's lookups do not read); such a commit is counted (ADR 0023).
    pub(crate) async fn soft_write(
        &self,
        f: impl FnOnce(&mut rusqlite::Connection) -> rusqlite::Result<bool> + Send + 'static,
    ) -> Result<()> {
        let (path, slot, commits) = (
            self.path.clone(),
            self.audit_writer.clone(),
            self.commits.clone(),
        );
        let write = move || -> Result<bool> {
            let mut slot = lock_fresh(&slot);
            let w = match slot.as_mut() {
                Some(w) => w,
                None => slot.insert(AuditWriter {
                    conn: crate::hot::open_writer(&path, "NORMAL").map_err(StoreError::Hot)?,
                    synced: std::time::Instant::now(),
                    dirty: false,
                }),
            };
            let r = f(&mut w.conn);
            if r.is_err() {
                // a broken connection is not reused; what it committed before is synced first
                if w.dirty {
                    if let Err(e) = w.sync(&path) {
                        tracing::error!(error = %e, "audit log sync failed");
                    }
                }
                *slot = None;
                return r.map_err(StoreError::Hot);
            }
            w.dirty = true;
            if w.synced.elapsed() >= AUDIT_SYNC_INTERVAL {
                // committed already: a failed sync must not make the caller write the batch
                // again; it stays due and is retried with the next batch or pause
                if let Err(e) = w.sync(&path) {
                    tracing::error!(error = %e, "audit log sync failed");
                }
            }
            r.map_err(StoreError::Hot)
        };
        Store::on_writer(&self.write, &self.turn, move || -> Result<bool> {
            let changed = write();
            // counted on the writer's thread, before the turn is given back, so that it is
            // counted even if the caller stopped waiting; a failed transaction may have been a
            // failed commit: counted too, to be safe
            if !matches!(changed, Ok(false)) {
                crate::hot::committed(&commits);
            }
            changed
        })
        .await?
        .map(|_| ())
    }

    /// Syncs to disk what the audit writer committed since it last did (the writer calls this
    /// when traffic pauses, and before it stops).
    pub async fn sync_audit(&self) -> Result<()> {
        let (path, slot) = (self.path.clone(), self.audit_writer.clone());
        tokio::task::spawn_blocking(move || -> Result<()> {
            match lock_fresh(&slot).as_mut() {
                Some(w) if w.dirty => w.sync(&path),
                _ => Ok(()),
            }
        })
        .await
        .map_err(|e| StoreError::Stopped(format!("audit sync task failed: {e}")))?
    }

    /// What the anomaly rules need to know of credentials they meet for the first time since
    /// the server started: the networks each was used from, and (API keys) when it was last
    /// used or made. Two queries per 500 credentials.
    pub async fn credential_memory(
        &self,
        ids: &[String],
    ) -> Result<std::collections::HashMap<String, (Vec<String>, Option<i64>)>> {
        let mut out: std::collections::HashMap<String, (Vec<String>, Option<i64>)> =
            std::collections::HashMap::new();
        for chunk in ids.chunks(500) {
            let marks = vec!["?"; chunk.len()].join(",");
            let q = format!(
                "SELECT credential_id, network FROM credential_networks WHERE credential_id IN ({marks})"
            );
            let mut query = sqlx::query_as::<_, (String, String)>(&q);
            for id in chunk {
                query = query.bind(id);
            }
            for (cred, net) in query.fetch_all(&self.read).await? {
                out.entry(cred).or_default().0.push(net);
            }
            let q = format!(
                "SELECT k.id, COALESCE(u.at, k.created_at) FROM api_keys k
                 LEFT JOIN activity.api_key_last_use u ON u.key_id = k.id
                 WHERE k.revoked_at IS NULL AND k.id IN ({marks})"
            );
            let mut query = sqlx::query_as::<_, (String, i64)>(&q);
            for id in chunk {
                query = query.bind(id);
            }
            for (id, last) in query.fetch_all(&self.read).await? {
                out.entry(id).or_default().1 = Some(last);
            }
        }
        Ok(out)
    }

    /// Events matching `f`, newest first, at most `limit`.
    pub async fn list_audit(&self, f: &AuditFilter, limit: i64) -> Result<Vec<StoredEvent>> {
        let want = usize::try_from(limit).unwrap_or(0);
        let mut out: Vec<StoredEvent> = Vec::with_capacity(want.min(1024));
        let mut before = f.before;
        while out.len() < want {
            let rows = self
                .audit_rows(f, before, (want - out.len()) as i64)
                .await?;
            let Some(last) = rows.last() else { break };
            let last_seq = last.seq;
            for row in rows {
                let mut events = row.events()?;
                events.reverse();
                for e in events {
                    let in_range = f.since.is_none_or(|t| e.event.time >= t)
                        && f.credential_id
                            .as_ref()
                            .is_none_or(|c| e.event.credential_id.as_deref() == Some(c.as_str()))
                        && f.until.is_none_or(|t| e.event.time < t)
                        && before.is_none_or(|(s, i)| e.seq < s || (e.seq == s && e.index < i));
                    if in_range {
                        out.push(e);
                        if out.len() == want {
                            return Ok(out);
                        }
                    }
                }
            }
            before = Some((last_seq, 0));
        }
        Ok(out)
    }

    /// Rows that may hold events matching `f` before `before`, newest first, at most `limit`.
    async fn audit_rows(
        &self,
        f: &AuditFilter,
        before: Option<(i64, u32)>,
        limit: i64,
    ) -> Result<Vec<StoredRow>> {
        let (sql, binds) = rows_query(f, before, limit);
        let mut q = sqlx::query(&sql);
        for b in binds {
            q = match b {
                either::Bind::Text(s) => q.bind(s),
                either::Bind::Int(i) => q.bind(i),
            };
        }
        let rows = q.fetch_all(&self.read).await?;
        Ok(rows
            .iter()
            .map(from_row)
            .collect::<std::result::Result<_, _>>()?)
    }

    /// The events of the rows after `seq`, oldest first, from at most `limit` rows (export: the
    /// last event's `seq` is where the next call starts).
    pub async fn audit_after(&self, seq: i64, limit: i64) -> Result<Vec<StoredEvent>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLS} FROM main.audit_events WHERE seq > $1
             UNION ALL SELECT {COLS} FROM activity.audit_events WHERE seq > $1
             ORDER BY seq LIMIT $2"
        ))
        .bind(seq)
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.extend(from_row(r)?.events()?);
        }
        Ok(out)
    }

    /// Recomputes the whole log: the chain of the database file, then the activity file's
    /// (each from the genesis hash; ADR 0020). `Ok(n)`: n events, every link holds.
    pub async fn verify_audit_chain(&self) -> Result<std::result::Result<u64, ChainBreak>> {
        let mut count = 0u64;
        for file in [File::Main, File::Activity] {
            match self.verify_chain(file).await? {
                Ok(n) => count += n,
                Err(broken) => return Ok(Err(broken)),
            }
        }
        Ok(Ok(count))
    }

    async fn verify_chain(&self, file: File) -> Result<std::result::Result<u64, ChainBreak>> {
        let mut prev = GENESIS_HASH.to_owned();
        let mut after = 0i64;
        let mut count = 0u64;
        loop {
            let rows = sqlx::query(&format!(
                "SELECT {COLS}, hash FROM {}.audit_events WHERE seq > $1 ORDER BY seq LIMIT 1000",
                file.schema()
            ))
            .bind(after)
            .fetch_all(&self.read)
            .await?;
            if rows.is_empty() {
                return Ok(Ok(count));
            }
            for r in &rows {
                let row = from_row(r)?;
                let stored_hash: String = r.try_get("hash")?;
                let broken = ChainBreak {
                    seq: row.seq,
                    id: row.head.id.clone(),
                };
                if stored_hash != row.link(&prev) {
                    return Ok(Err(broken));
                }
                after = row.seq;
                match row.events() {
                    Ok(events) => count += events.len() as u64,
                    Err(_) => return Ok(Err(broken)),
                }
                prev = stored_hash;
            }
        }
    }
}

/// The statement of [`Store::list_audit`]'s rows for `f` before `before` (newest first, at most
/// `limit`), and its parameters.
fn rows_query(
    f: &AuditFilter,
    before: Option<(i64, u32)>,
    limit: i64,
) -> (String, Vec<either::Bind>) {
    // the conditions, for the database file's table and (the same parameters) the activity
    // file's, which holds successes only
    let mut sql = String::new();
    let mut activity = true;
    let mut n = 0;
    let mut next = || {
        n += 1;
        n
    };
    let mut binds: Vec<either::Bind> = Vec::new();
    if let Some(v) = &f.account_id {
        sql.push_str(&format!(" AND account_id = ${}", next()));
        binds.push(either::Bind::Text(v.clone()));
    }
    if let Some(v) = &f.credential_id {
        // a pack of several credentials names each event's in its bytes, not in the column:
        // its events are matched once decoded
        sql.push_str(&format!(
            " AND (credential_id = ${} OR (credential_id IS NULL AND pack IS NOT NULL))",
            next()
        ));
        binds.push(either::Bind::Text(v.clone()));
    }
    if let Some(v) = &f.event_type {
        if let Some(prefix) = v.strip_suffix('.') {
            // a range (`anomaly.` ≤ type < `anomaly/`) so the type index serves it
            sql.push_str(&format!(
                " AND type >= ${a} AND type < ${b}",
                a = next(),
                b = next()
            ));
            binds.push(either::Bind::Text(format!("{prefix}.")));
            binds.push(either::Bind::Text(format!("{prefix}/")));
        } else {
            sql.push_str(&format!(" AND type = ${}", next()));
            binds.push(either::Bind::Text(v.clone()));
        }
        if !SUCCEEDED.starts_with(v.as_str()) {
            // implied by the filter; stated so the partial index of rare types applies
            sql.push_str(" AND type <> 'auth.succeeded'");
            activity = false;
        }
    }
    if let Some(v) = &f.outcome {
        activity &= v == SUCCESS;
        sql.push_str(&format!(" AND outcome = ${}", next()));
        binds.push(either::Bind::Text(v.clone()));
    }
    if let Some(v) = f.since {
        // a pack's events run from `time` to `time_last`
        sql.push_str(&format!(" AND COALESCE(time_last, time) >= ${}", next()));
        binds.push(either::Bind::Int(v));
    }
    if let Some(v) = f.until {
        sql.push_str(&format!(" AND time < ${}", next()));
        binds.push(either::Bind::Int(v));
    }
    if let Some((seq, index)) = before {
        // index > 0: the earlier events of that row's pack are still to come
        let op = if index > 0 { "<=" } else { "<" };
        sql.push_str(&format!(" AND seq {op} ${}", next()));
        binds.push(either::Bind::Int(seq));
    }
    let mut query = format!("SELECT {COLS} FROM main.audit_events WHERE 1 = 1{sql}");
    if activity {
        query.push_str(&format!(
            " UNION ALL SELECT {COLS} FROM activity.audit_events WHERE 1 = 1{sql}"
        ));
    }
    query.push_str(&format!(" ORDER BY seq DESC LIMIT ${}", next()));
    binds.push(either::Bind::Int(limit));
    (query, binds)
}

/// The statement [`Store::list_audit`] runs for `f` (its parameters unbound), for query-plan
/// tests.
#[doc(hidden)]
pub fn audit_rows_sql(f: &AuditFilter) -> String {
    rows_query(f, f.before, 100).0
}

mod either {
    pub(super) enum Bind {
        Text(String),
        Int(i64),
    }
}
