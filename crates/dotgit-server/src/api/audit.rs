//! `GET /v1/audit-events` (`audit:read`): the audit log, newest first, with filters and a stable
//! cursor. An account sees only its own events; operators see every account's and may filter by
//! `account_id`.

use crate::error::ApiError;
use crate::extract::Caller;
use crate::state::AppState;
use axum::extract::{Query, State};
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use dotgit_core::audit::AuditEvent;
use dotgit_core::clock::{parse_rfc3339, rfc3339};
use dotgit_store::{AuditFilter, StoredEvent};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One event (SPEC §6).
#[derive(Debug, Serialize, JsonSchema)]
pub struct AuditEventOut {
    /// Opaque id.
    pub id: String,
    /// RFC 3339 UTC.
    pub time: String,
    /// The request that caused it.
    pub request_id: String,
    /// E.g. `auth.failed`, `api_key.created`, `anomaly.new_network`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Account concerned.
    pub account_id: Option<String>,
    /// Credential concerned (id, never the secret).
    pub credential_id: Option<String>,
    /// Source address.
    pub source_ip: Option<String>,
    /// User agent.
    pub user_agent: Option<String>,
    /// `success`, `failure` or `detected`.
    pub outcome: String,
    /// Detailed reason.
    pub reason: Option<String>,
}

/// A page of events.
#[derive(Debug, Serialize, JsonSchema)]
pub struct AuditPage {
    /// Newest first.
    pub events: Vec<AuditEventOut>,
    /// Pass as `cursor` for the next (older) page; null at the end.
    pub next_cursor: Option<String>,
}

/// Query parameters.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// RFC 3339: events at or after.
    pub since: Option<String>,
    /// RFC 3339: events before.
    pub until: Option<String>,
    /// Exact type, or a prefix ending in `.` (`anomaly.`).
    #[serde(rename = "type")]
    pub event_type: Option<String>,
    /// Credential id.
    pub credential_id: Option<String>,
    /// `success`, `failure` or `detected`.
    pub outcome: Option<String>,
    /// Operators only: another account's events.
    pub account_id: Option<String>,
    /// 1–500 (default 100).
    pub limit: Option<i64>,
    /// From `next_cursor`.
    pub cursor: Option<String>,
}

/// Shapes a stored event.
pub fn event_out(e: &AuditEvent) -> AuditEventOut {
    AuditEventOut {
        id: e.id.clone(),
        time: rfc3339(e.time),
        request_id: e.request_id.clone(),
        event_type: e.event_type.to_string(),
        account_id: e.account_id.clone(),
        credential_id: e.credential_id.clone(),
        source_ip: e.source_ip.clone(),
        user_agent: e.user_agent.clone(),
        outcome: e.outcome.to_string(),
        reason: e.reason.as_deref().map(str::to_owned),
    }
}

fn time_param(field: &str, v: &Option<String>) -> Result<Option<i64>, ApiError> {
    match v {
        None => Ok(None),
        Some(s) => parse_rfc3339(s).map(Some).ok_or_else(|| {
            ApiError::invalid_request(format!(
                "{field}: must be an RFC 3339 time like 2026-11-29T12:00:00Z"
            ))
        }),
    }
}

/// The cursor for the page after `last`: `seq:<seq>` or, inside a pack, `seq:<seq>.<index>`,
/// base64url (opaque to clients).
pub fn encode_cursor(last: &StoredEvent) -> String {
    if last.index == 0 {
        URL_SAFE_NO_PAD.encode(format!("seq:{}", last.seq))
    } else {
        URL_SAFE_NO_PAD.encode(format!("seq:{}.{}", last.seq, last.index))
    }
}

fn decode_cursor(c: &str) -> Option<(i64, u32)> {
    let bytes = URL_SAFE_NO_PAD.decode(c).ok()?;
    let pos = std::str::from_utf8(&bytes).ok()?.strip_prefix("seq:")?;
    match pos.split_once('.') {
        None => Some((pos.parse().ok()?, 0)),
        Some((seq, index)) => Some((seq.parse().ok()?, index.parse().ok()?)),
    }
}

/// Builds the store filter for a caller (account scoping enforced here).
pub fn filter_for(
    account_id: &str,
    operator: bool,
    q: &AuditQuery,
) -> Result<(AuditFilter, i64), ApiError> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::invalid_request(
            "limit: must be between 1 and 500",
        ));
    }
    let account = match (&q.account_id, operator) {
        (Some(other), true) => Some(other.clone()),
        (None, true) => None,
        (Some(other), false) if other != account_id => {
            return Err(ApiError::invalid_request(
                "account_id: only operators may read other accounts' events",
            ))
        }
        (_, false) => Some(account_id.to_owned()),
    };
    let before = match &q.cursor {
        None => None,
        Some(c) => Some(
            decode_cursor(c)
                .ok_or_else(|| ApiError::invalid_request("cursor: not a cursor from this API"))?,
        ),
    };
    if let Some(o) = &q.outcome {
        if !["success", "failure", "detected"].contains(&o.as_str()) {
            return Err(ApiError::invalid_request(
                "outcome: must be success, failure or detected",
            ));
        }
    }
    Ok((
        AuditFilter {
            account_id: account,
            credential_id: q.credential_id.clone(),
            event_type: q.event_type.clone(),
            outcome: q.outcome.clone(),
            since: time_param("since", &q.since)?,
            until: time_param("until", &q.until)?,
            before,
        },
        limit,
    ))
}

/// Lists events.
pub async fn list(
    State(s): State<AppState>,
    Caller(p): Caller,
    q: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<AuditPage>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::invalid_request(format!("query: {}", e.body_text())))?;
    let (filter, limit) = filter_for(&p.account_id, p.operator, &q)?;
    let rows: Vec<StoredEvent> = s.store.list_audit(&filter, limit + 1).await?;
    let more = rows.len() as i64 > limit;
    let page: Vec<&StoredEvent> = rows.iter().take(limit as usize).collect();
    let next_cursor = match (more, page.last()) {
        (true, Some(last)) => Some(encode_cursor(last)),
        _ => None,
    };
    Ok(Json(AuditPage {
        events: page.iter().map(|e| event_out(&e.event)).collect(),
        next_cursor,
    }))
}
