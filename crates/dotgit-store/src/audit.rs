//! The audit log in SQLite: appends extend the hash chain inside the caller's write transaction
//! (so a class-A event commits with its state change), queries page by sequence number (stable
//! while new events arrive), and the chain can be re-verified end to end.

use crate::{Result, Store};
use dotgit_core::audit::{chain_hash, AuditEvent, GENESIS_HASH};
use sqlx::{Row, Sqlite, Transaction};

/// A stored event with its position.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    /// Sequence number (strictly increasing).
    pub seq: i64,
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
    /// Only events with `seq` below this (the paging cursor).
    pub before_seq: Option<i64>,
}

/// Where verification found the chain broken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    /// Sequence number of the first event whose link does not hold.
    pub seq: i64,
    /// Its id as stored.
    pub id: String,
}

/// The one high-volume type, left out of the partial type and credential indexes.
const SUCCEEDED: &str = dotgit_core::audit::types::AUTH_SUCCEEDED;

const COLS: &str =
    "seq, id, time, request_id, type, account_id, credential_id, source_ip, user_agent, outcome, reason";

fn from_row(r: &sqlx::sqlite::SqliteRow) -> std::result::Result<StoredEvent, sqlx::Error> {
    Ok(StoredEvent {
        seq: r.try_get("seq")?,
        event: AuditEvent {
            id: r.try_get("id")?,
            time: r.try_get("time")?,
            request_id: r.try_get("request_id")?,
            event_type: r.try_get("type")?,
            account_id: r.try_get("account_id")?,
            credential_id: r.try_get("credential_id")?,
            source_ip: r.try_get("source_ip")?,
            user_agent: r.try_get("user_agent")?,
            outcome: r.try_get("outcome")?,
            reason: r.try_get("reason")?,
        },
    })
}

/// Rows per INSERT statement: one round trip to SQLite for many events (11 parameters a row,
/// well under SQLite's limit of 32,766 parameters).
const ROWS_PER_STATEMENT: usize = 64;

/// Appends events inside an open write transaction, extending the chain.
pub(crate) async fn append(
    tx: &mut Transaction<'static, Sqlite>,
    events: &[AuditEvent],
) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let mut prev: String =
        sqlx::query_scalar("SELECT hash FROM audit_events ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut **tx)
            .await?
            .unwrap_or_else(|| GENESIS_HASH.to_owned());
    for chunk in events.chunks(ROWS_PER_STATEMENT) {
        let mut hashes = Vec::with_capacity(chunk.len());
        for e in chunk {
            prev = chain_hash(&prev, e);
            hashes.push(prev.clone());
        }
        let mut sql = String::from(
            "INSERT INTO audit_events (id, time, request_id, type, account_id, credential_id, source_ip, user_agent, outcome, reason, hash) VALUES ",
        );
        // Anonymous `?` placeholders: SQLite resolves a named/numbered parameter by a linear
        // scan, which made binding quadratic in the row count (a quarter of the server's CPU).
        for i in 0..chunk.len() {
            sql.push_str(if i > 0 {
                ",(?,?,?,?,?,?,?,?,?,?,?)"
            } else {
                "(?,?,?,?,?,?,?,?,?,?,?)"
            });
        }
        let mut q = sqlx::query(&sql);
        for (e, hash) in chunk.iter().zip(hashes) {
            q = q
                .bind(&e.id)
                .bind(e.time)
                .bind(&e.request_id)
                .bind(&e.event_type)
                .bind(&e.account_id)
                .bind(&e.credential_id)
                .bind(&e.source_ip)
                .bind(&e.user_agent)
                .bind(&e.outcome)
                .bind(&e.reason)
                .bind(hash);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

impl Store {
    /// Appends a batch of events in one transaction.
    pub async fn append_audit(&self, events: &[AuditEvent]) -> Result<()> {
        self.append_audit_with_networks(events, &[]).await
    }

    /// The batching writer's call: a batch of events and the networks (credential, network,
    /// first seen) its anomaly rules met for the first time, in one transaction.
    pub async fn append_audit_with_networks(
        &self,
        events: &[AuditEvent],
        networks: &[(String, String, i64)],
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        for (credential_id, network, first_seen) in networks {
            sqlx::query(
                "INSERT INTO credential_networks (credential_id, network, first_seen) VALUES (?, ?, ?)
                 ON CONFLICT (credential_id, network) DO NOTHING",
            )
            .bind(credential_id)
            .bind(network)
            .bind(first_seen)
            .execute(&mut *tx)
            .await?;
        }
        append(&mut tx, events).await?;
        tx.commit().await?;
        Ok(())
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
                "SELECT id, COALESCE(last_used_at, created_at) FROM api_keys WHERE revoked_at IS NULL AND id IN ({marks})"
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
        let mut sql = format!("SELECT {COLS} FROM audit_events WHERE 1 = 1");
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
            sql.push_str(&format!(" AND credential_id = ${}", next()));
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
                // implied by the filter; stated so the partial indexes of rare events apply
                sql.push_str(" AND type <> 'auth.succeeded'");
            }
        }
        if let Some(v) = &f.outcome {
            sql.push_str(&format!(" AND outcome = ${}", next()));
            binds.push(either::Bind::Text(v.clone()));
        }
        if let Some(v) = f.since {
            sql.push_str(&format!(" AND time >= ${}", next()));
            binds.push(either::Bind::Int(v));
        }
        if let Some(v) = f.until {
            sql.push_str(&format!(" AND time < ${}", next()));
            binds.push(either::Bind::Int(v));
        }
        if let Some(v) = f.before_seq {
            sql.push_str(&format!(" AND seq < ${}", next()));
            binds.push(either::Bind::Int(v));
        }
        sql.push_str(&format!(" ORDER BY seq DESC LIMIT ${}", next()));
        binds.push(either::Bind::Int(limit));
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

    /// Events after `seq`, oldest first, at most `limit` (export).
    pub async fn audit_after(&self, seq: i64, limit: i64) -> Result<Vec<StoredEvent>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLS} FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2"
        ))
        .bind(seq)
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .iter()
            .map(from_row)
            .collect::<std::result::Result<_, _>>()?)
    }

    /// Recomputes the whole chain. `Ok(n)`: n events, every link holds.
    pub async fn verify_audit_chain(&self) -> Result<std::result::Result<u64, ChainBreak>> {
        let mut prev = GENESIS_HASH.to_owned();
        let mut after = 0i64;
        let mut count = 0u64;
        loop {
            let rows = sqlx::query(&format!(
                "SELECT {COLS}, hash FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT 1000"
            ))
            .bind(after)
            .fetch_all(&self.read)
            .await?;
            if rows.is_empty() {
                return Ok(Ok(count));
            }
            for r in &rows {
                let e = from_row(r)?;
                let stored_hash: String = r.try_get("hash")?;
                if stored_hash != chain_hash(&prev, &e.event) {
                    return Ok(Err(ChainBreak {
                        seq: e.seq,
                        id: e.event.id,
                    }));
                }
                prev = stored_hash;
                after = e.seq;
                count += 1;
            }
        }
    }
}

mod either {
    pub(super) enum Bind {
        Text(String),
        Int(i64),
    }
}
