//! Refresh-token rotation with group commit (ADR 0015).
//!
//! A rotation is class A: committed and synced before the new tokens are answered. Through sqlx
//! it cost ten hand-offs to sqlx's connection thread and one fsync, all serialised on the single
//! writer. Here every rotation is a job for one writer task: it takes every job queued, takes the
//! write turn (`WriteTurn`: no other write interleaves), and runs the batch on a rusqlite
//! connection of its own in one blocking call — one transaction, one commit and one fsync for
//! the batch (a job that fails makes the batch run again one transaction a job, so that it is
//! rolled back alone) — then answers each job. While a batch commits, the next one gathers;
//! under load, many rotations share a sync.
//!
//! What must hold is unchanged: reuse of a rotated token is detected inside the transaction that
//! would rotate it, exactly one presentation of a token wins, and nothing is answered before the
//! commit that holds it is on disk.

use crate::token_index::TokenIndex;
use crate::{
    audit, hot, AccountRow, IssuedTokens, OAuthGrantRow, OAuthTokenRow, Result, Rotated, StoreError,
};
use dotgit_core::audit::{types, AuditEvent};
use rusqlite::{params, Connection};
use std::any::Any;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

/// The caller's decision on a token, its grant and account, with its refusal type erased.
pub(crate) type Check = Box<
    dyn Fn(
            &OAuthTokenRow,
            &OAuthGrantRow,
            &AccountRow,
        ) -> std::result::Result<IssuedTokens, Box<dyn Any + Send>>
        + Send,
>;

/// Builds the audit events of a rotation (type, account, credential, reason).
pub(crate) type Events = Box<dyn Fn(&'static str, &str, &str, String) -> AuditEvent + Send + Sync>;

/// One rotation to run.
pub(crate) struct Work {
    pub token_hash: String,
    pub now: i64,
    pub check: Check,
    pub events: Events,
}

pub(crate) type Outcome = Result<Rotated<Box<dyn Any + Send>>>;

/// Jobs waiting for the writer.
pub(crate) type Queue = mpsc::UnboundedSender<(Work, oneshot::Sender<Outcome>)>;

/// Most rotations in one transaction.
const BATCH: usize = 128;

/// Starts the writer. It ends when every sender is gone, or after its next batch once the store
/// is closed (a closed store refuses rotations before they reach the queue).
pub(crate) fn spawn(
    write: sqlx::SqlitePool,
    turn: crate::WriteTurn,
    path: PathBuf,
    tokens: Arc<TokenIndex>,
) -> Queue {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Work, oneshot::Sender<Outcome>)>();
    let conn: Arc<Mutex<Option<Connection>>> = Arc::default();
    let commits = hot::commits(&path);
    tokio::spawn(async move {
        let mut jobs = Vec::with_capacity(BATCH);
        while rx.recv_many(&mut jobs, BATCH).await > 0 {
            let (work, replies): (Vec<Work>, Vec<oneshot::Sender<Outcome>>) =
                jobs.drain(..).unzip();
            let outcomes = run(&write, &turn, &path, &conn, &tokens, work).await;
            // counted before anyone hears of the batch: a lookup of a token it rotated or
            // revoked then sees the change (ADR 0023)
            hot::committed(&commits);
            for (reply, outcome) in replies.into_iter().zip(outcomes) {
                // a caller that went away (client hung up) still had its rotation committed
                let _ = reply.send(outcome);
            }
            if write.is_closed() {
                // the store was closed: let go of the connection (later callers are refused
                // before they reach the queue)
                break;
            }
        }
    });
    tx
}

/// Runs a batch; one outcome per job, in order.
async fn run(
    write: &sqlx::SqlitePool,
    turn: &crate::WriteTurn,
    path: &std::path::Path,
    conn: &Arc<Mutex<Option<Connection>>>,
    tokens: &Arc<TokenIndex>,
    work: Vec<Work>,
) -> Vec<Outcome> {
    let n = work.len();
    let failed = |e: String| -> Vec<Outcome> {
        (0..n)
            .map(|_| Err(StoreError::Stopped(e.clone())))
            .collect()
    };
    let (path, conn, tokens) = (path.to_owned(), conn.clone(), tokens.clone());
    let done = crate::Store::on_writer(write, turn, move || -> rusqlite::Result<Vec<Outcome>> {
        let mut slot = audit::lock_fresh(&conn);
        let c = match slot.as_mut() {
            Some(c) => c,
            None => slot.insert(open(&path)?),
        };
        let r = batch(c, &tokens, work);
        if r.is_err() {
            // a broken connection is not reused
            *slot = None;
        }
        r
    })
    .await;
    match done {
        Ok(Ok(outcomes)) => outcomes,
        Ok(Err(e)) => failed(format!("refresh batch: {e}")),
        Err(e) => failed(e.to_string()),
    }
}

/// The writer's connection. It checks no foreign key: the two on `oauth_tokens` (its account and
/// its app) cost four index searches a rotation, and answer nothing a rotation does not know.
/// The new tokens name the consumed token's account and app (`rotate` refuses any others), that
/// token was read in the same transaction, and its parents exist: every other connection checks
/// foreign keys, so deleting an account or app deletes its tokens with it. This connection
/// deletes nothing (so no cascade of its own is skipped).
fn open(path: &std::path::Path) -> rusqlite::Result<Connection> {
    let c = hot::open_writer(path, "FULL")?;
    c.pragma_update(None, "foreign_keys", false)?;
    Ok(c)
}

/// Runs a batch. Every rotation goes into one transaction, with no savepoints: a savepoint per
/// rotation journalled every page it changed that an earlier rotation of the batch had changed
/// (the same last pages of the table and its indexes). The rotations' audit events are appended
/// once, after the last rotation and before the commit, in the order the rotations made them:
/// the chain's head is read once, and each account's `oauth.token_refreshed` events of the batch
/// become one packed row (ADR 0014's addendum of 2026-12-07) instead of a row each. A rotation
/// fails with an error only on a failure of SQLite itself or a conflicting insert; if one does,
/// or the append does, the whole transaction is rolled back and the batch runs again one
/// rotation per transaction, so the failing one is rolled back alone and the others commit
/// (each check runs again, on what the database then holds).
fn batch(
    c: &mut Connection,
    tokens: &TokenIndex,
    work: Vec<Work>,
) -> rusqlite::Result<Vec<Outcome>> {
    let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut out = Vec::with_capacity(work.len());
    // the rows of the rotations, for the token index once they are committed
    let mut inserted: Vec<(String, i64)> = Vec::with_capacity(2 * work.len());
    let mut events: Vec<AuditEvent> = Vec::with_capacity(work.len());
    for w in &work {
        let r = rotate(&tx, tokens, w, &mut inserted, &mut events);
        if r.is_err() {
            break;
        }
        out.push(r);
    }
    if out.len() == work.len() && audit::append_rs(&tx, audit::File::Main, &events).is_ok() {
        tx.commit()?;
        index(tokens, &inserted);
        return Ok(out);
    }
    tx.rollback()?;
    let mut out = Vec::with_capacity(work.len());
    for w in &work {
        let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let (mut rows, mut events) = (Vec::new(), Vec::new());
        let r = rotate(&tx, tokens, w, &mut rows, &mut events).and_then(|o| {
            audit::append_rs(&tx, audit::File::Main, &events).map_err(StoreError::Hot)?;
            Ok(o)
        });
        if r.is_ok() {
            tx.commit()?;
            index(tokens, &rows);
        } else {
            tx.rollback()?;
        }
        out.push(r);
    }
    Ok(out)
}

/// Adds committed rows to the token index, before anyone is answered: a token handed out is
/// always found. The rotations' lookups loaded the index, so this cannot fail on a load; if it
/// did, the new tokens would be refused as unknown, never accepted wrongly (the table is the
/// truth).
fn index(tokens: &TokenIndex, rows: &[(String, i64)]) {
    if let Err(e) = tokens.insert(rows.iter().map(|(h, r)| (h.as_str(), *r))) {
        tracing::error!(error = %e, "the token index missed rotated tokens");
    }
}

/// One rotation inside the batch's transaction; the rows it inserts are added to `rows`, and the
/// audit events it makes to `events` (the caller appends them in the same transaction).
fn rotate(
    c: &Connection,
    tokens: &TokenIndex,
    w: &Work,
    rows: &mut Vec<(String, i64)>,
    events: &mut Vec<AuditEvent>,
) -> Outcome {
    let hot = |e| StoreError::Hot(e);
    let rowids = tokens.candidates(&w.token_hash)?;
    let found = hot::token_at_one_of(c, &rowids, &w.token_hash).map_err(hot)?;
    let Some((rowid, (tok, grant, acct))) = found else {
        return Ok(Rotated::Unknown);
    };
    if tok.kind != "refresh" {
        return Ok(Rotated::Unknown);
    }
    if tok.revoked_at.is_some() || grant.revoked_at.is_some() {
        return Ok(Rotated::Inactive);
    }
    let now = w.now;
    if tok.used_at.is_some() {
        revoke_family(c, &grant.id, "refresh token reused", now).map_err(hot)?;
        let reason = format!(
            "app {}: a rotated refresh token was presented again; the whole grant is revoked",
            grant.client_id
        );
        events.push((w.events)(
            types::OAUTH_REFRESH_REUSE_DETECTED,
            &grant.account_id,
            &grant.id,
            reason.clone(),
        ));
        events.push((w.events)(
            types::ANOMALY_REFRESH_TOKEN_REUSE,
            &grant.account_id,
            &grant.id,
            reason,
        ));
        return Ok(Rotated::Reused);
    }
    let issued = match (w.check)(&tok, &grant, &acct) {
        Ok(i) => i,
        Err(r) => return Ok(Rotated::Refused(r)),
    };
    // the writer checks no foreign key (`open`): the new tokens' parents are the consumed
    // token's, which exist
    if [&issued.access, &issued.refresh]
        .iter()
        .any(|t| t.account_id != tok.account_id || t.client_id != tok.client_id)
    {
        return Err(StoreError::Internal(
            "a rotation's tokens must belong to the consumed token's account and app".into(),
        ));
    }
    // the consumed token's row is not written: its successor names it (`replaces`, migration
    // 0015), and the unique index on that column admits one successor only
    rows.push((
        issued.access.token_hash.clone(),
        insert_token(c, &issued.access, None)?,
    ));
    rows.push((
        issued.refresh.token_hash.clone(),
        insert_token(c, &issued.refresh, Some(rowid))?,
    ));
    events.push((w.events)(
        types::OAUTH_TOKEN_REFRESHED,
        &grant.account_id,
        &grant.id,
        format!("app {}, scope `{}`", grant.client_id, issued.refresh.scope),
    ));
    // no invalidation: rotation changes no access token, and refresh tokens are never cached
    Ok(Rotated::Issued(Box::new(issued)))
}

/// Revokes a grant, and so every token of it (checks read the grant's `revoked_at`), and tells
/// every verification cache.
fn revoke_family(c: &Connection, grant_id: &str, reason: &str, now: i64) -> rusqlite::Result<()> {
    c.prepare_cached(
        "UPDATE oauth_grants SET revoked_at = ?1, revoked_reason = ?2
         WHERE id = ?3 AND revoked_at IS NULL",
    )?
    .execute(params![now, reason, grant_id])?;
    c.prepare_cached("INSERT INTO invalidations (kind, target, created_at) VALUES (?1, ?2, ?3)")?
        .execute(params!["oauth_grant", grant_id, now])?;
    Ok(())
}

/// Inserts a token, the successor of the refresh token at rowid `replaces` if given; returns its
/// rowid.
fn insert_token(c: &Connection, t: &OAuthTokenRow, replaces: Option<i64>) -> Result<i64> {
    // built once: the statement cache is looked up by its text, twice a rotation
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "INSERT INTO oauth_tokens ({}, replaces)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            crate::oauth::TOKEN_COLS
        )
    });
    let r = c.prepare_cached(&SQL).and_then(|mut st| {
        st.execute(params![
            t.id,
            t.token_hash,
            t.kind,
            t.grant_id,
            t.account_id,
            t.client_id,
            t.scope,
            t.created_at,
            t.expires_at,
            t.revoked_at,
            t.used_at,
            t.replaced_by,
            replaces,
        ])
    });
    match r {
        Ok(_) => Ok(c.last_insert_rowid()),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            Err(StoreError::Conflict("token"))
        }
        Err(e) => Err(StoreError::Hot(e)),
    }
}
