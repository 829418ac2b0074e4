//! Point reads on the request path, answered on the calling thread (ADR 0012).
//!
//! sqlx runs every SQLite connection on a thread of its own and hands each query over a channel,
//! so one lookup costs two thread switches. On a busy core those switches cost more than the
//! lookup itself (a cache-missing API key spent ~40 % of the server's CPU parked and woken in
//! sqlx's workers). The verification lookups — an index probe and a row, microseconds from the
//! page cache — therefore go through a read-only rusqlite connection owned by the thread that
//! asks (one per runtime worker, opened on first use, statements prepared once). Everything else
//! stays on sqlx.

use crate::{AccountRow, KeyToVerify, Result, StoreError};
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row};
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

thread_local! {
    static CONNECTIONS: RefCell<HashMap<PathBuf, Connection>> = RefCell::new(HashMap::new());
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
    c.busy_timeout(Duration::from_secs(5))?;
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

/// WAL pages after which a committing writer copies the WAL back into the database.
pub(crate) const WAL_AUTOCHECKPOINT_PAGES: i64 = 10_000;

/// Runs `f` on this thread's connection to `path`.
pub(crate) fn with<T>(
    path: &Path,
    f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> Result<T> {
    CONNECTIONS.with(|cell| {
        let mut map = cell.borrow_mut();
        let conn = match map.get(path) {
            Some(c) => c,
            None => {
                let c = open(path).map_err(StoreError::Hot)?;
                map.entry(path.to_owned()).or_insert(c)
            }
        };
        match f(conn) {
            Ok(v) => Ok(v),
            Err(e) => {
                // a broken connection is not reused
                map.remove(path);
                Err(StoreError::Hot(e))
            }
        }
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
    with(path, |c| {
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
    with(path, |c| {
        let mut st = c.prepare_cached(&format!(
            "SELECT {} FROM accounts WHERE id = ?1",
            crate::ACCOUNT_COLS
        ))?;
        st.query_row([id], |r| account(r, 0)).optional()
    })
}

/// An OAuth client by id (client authentication at the token and introspection endpoints).
pub(crate) fn oauth_app(path: &Path, client_id: &str) -> Result<Option<crate::OAuthAppRow>> {
    with(path, |c| {
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
    with(path, |c| {
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
