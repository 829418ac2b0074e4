//! Settings → Security (`/settings/security`): the account's audit log, newest first, with
//! filters (event type or group, outcome, time range) and cursor paging; anomalies (events
//! whose type starts with `anomaly.`) are flagged. Also the account's security settings
//! (rotation policy, enforcement, anomaly auto-revoke), changed through the same function as
//! `PATCH /v1/user`.
//!
//! The log is read through `api::audit::filter_for` with the signed-in account and
//! `operator = false`: the page shows this account's events only, even to an operator.

use super::{is_form_error, render, Chrome, Dash, DashForm};
use crate::api::audit::{encode_cursor, event_out, filter_for, AuditQuery};
use crate::api::user::{apply_settings, UserSettings};
use crate::error::ApiError;
use crate::extract::FormParams;
use crate::web::error_page;
use askama::Template;
use axum::extract::RawQuery;
use axum::http::StatusCode;
use axum::response::Response;

const ACTIVE: &str = "security";
/// Events per page.
const PAGE: i64 = 25;

/// The type filters offered: (value, label). A value ending in `.` is a group.
const TYPES: [(&str, &str); 13] = [
    ("", "All events"),
    ("anomaly.", "Anomalies"),
    ("auth.failed", "Failed authentications"),
    ("auth.succeeded", "Successful authentications"),
    ("auth.suspended", "Refused: account suspended"),
    ("scope.denied", "Scope denials"),
    ("rate_limit.", "Rate limits"),
    ("api_key.", "API keys"),
    ("jwt_key.", "JWT keys"),
    ("oauth_app.", "OAuth apps"),
    ("oauth.", "OAuth grants"),
    ("login.", "Sign-ins"),
    ("account.", "Account"),
];

struct EventView {
    time: String,
    iso: String,
    event_type: String,
    anomaly: bool,
    outcome: String,
    credential: String,
    source: String,
    reason: String,
    request_id: String,
}

#[derive(Template)]
#[template(path = "dashboard/security.html")]
struct SecurityPage {
    chrome: Chrome,
    types: &'static [(&'static str, &'static str)],
    events: Vec<EventView>,
    anomalies: usize,
    f_type: String,
    f_outcome: String,
    f_since: String,
    f_until: String,
    older: Option<String>,
    paged: bool,
    policy_days: i64,
    enforce: bool,
    auto_revoke: bool,
}

/// The filters as given in the query string.
#[derive(Default)]
struct Filters {
    event_type: String,
    outcome: String,
    since: String,
    until: String,
    cursor: Option<String>,
}

impl Filters {
    fn parse(query: Option<&str>) -> Filters {
        let q = FormParams::parse(query.unwrap_or("").as_bytes());
        let get = |k: &str| q.get(k).map(|v| v.trim().to_owned()).unwrap_or_default();
        Filters {
            event_type: get("type"),
            outcome: get("outcome"),
            since: get("since"),
            until: get("until"),
            cursor: q.get("cursor").map(str::to_owned),
        }
    }

    /// The query string of these filters (without the cursor), for paging links.
    fn query(&self) -> String {
        let mut f = form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("type", &self.event_type),
            ("outcome", &self.outcome),
            ("since", &self.since),
            ("until", &self.until),
        ] {
            if !v.is_empty() {
                f.append_pair(k, v);
            }
        }
        f.finish()
    }
}

/// A time filter as typed: RFC 3339, or what a `datetime-local` input sends
/// (`2026-11-29T12:00`, read as UTC).
fn rfc3339_of(v: &str) -> Option<String> {
    if v.is_empty() {
        None
    } else if v.len() == 16 && v.as_bytes().get(10) == Some(&b'T') {
        Some(format!("{v}:00Z"))
    } else {
        Some(v.to_owned())
    }
}

/// `GET /settings/security` (query `type`, `outcome`, `since`, `until`, `cursor`: all optional).
pub async fn page(d: Dash, RawQuery(query): RawQuery) -> Response {
    let f = Filters::parse(query.as_deref());
    show(&d, &f, None, None).await
}

async fn show(d: &Dash, f: &Filters, notice: Option<String>, error: Option<String>) -> Response {
    let mut chrome = d.chrome(ACTIVE);
    chrome.notice = notice;
    chrome.error = error;
    match build(d, f, chrome).await {
        Ok((status, page)) => render(status, &page),
        Err(e) => error_page(e),
    }
}

async fn build(
    d: &Dash,
    f: &Filters,
    mut chrome: Chrome,
) -> Result<(StatusCode, SecurityPage), ApiError> {
    let s = &d.state;
    let q = AuditQuery {
        since: rfc3339_of(&f.since),
        until: rfc3339_of(&f.until),
        event_type: Some(f.event_type.clone()).filter(|t| !t.is_empty()),
        outcome: Some(f.outcome.clone()).filter(|o| !o.is_empty()),
        limit: Some(PAGE),
        cursor: f.cursor.clone(),
        ..AuditQuery::default()
    };
    let mut status = StatusCode::OK;
    let mut events = Vec::new();
    let mut older = None;
    match filter_for(d.account_id(), false, &q) {
        Ok((filter, limit)) => {
            let rows = s.store.list_audit(&filter, limit + 1).await?;
            let more = rows.len() as i64 > limit;
            let page: Vec<_> = rows.iter().take(PAGE as usize).collect();
            if let (true, Some(last)) = (more, page.last()) {
                let cursor = encode_cursor(last);
                let base = f.query();
                let sep = if base.is_empty() { "" } else { "&" };
                older = Some(format!(
                    "/settings/security?{base}{sep}{}",
                    form_urlencoded::Serializer::new(String::new())
                        .append_pair("cursor", &cursor)
                        .finish()
                ));
            }
            for e in page {
                let o = event_out(&e.event);
                events.push(EventView {
                    time: super::when(e.event.time),
                    iso: o.time,
                    anomaly: o.event_type.starts_with("anomaly."),
                    event_type: o.event_type,
                    outcome: o.outcome,
                    credential: o.credential_id.unwrap_or_default(),
                    source: o.source_ip.unwrap_or_default(),
                    reason: o.reason.unwrap_or_default(),
                    request_id: o.request_id,
                });
            }
        }
        Err(e) if is_form_error(&e) => {
            status = e.status;
            chrome.error = Some(e.message);
        }
        Err(e) => return Err(e),
    }
    let account = s
        .store
        .account_by_id(d.account_id())
        .await?
        .ok_or_else(|| ApiError::not_found("The account"))?;
    Ok((
        status,
        SecurityPage {
            chrome,
            types: &TYPES,
            anomalies: events.iter().filter(|e| e.anomaly).count(),
            events,
            f_type: f.event_type.clone(),
            f_outcome: f.outcome.clone(),
            f_since: f.since.clone(),
            f_until: f.until.clone(),
            older,
            paged: f.cursor.is_some(),
            policy_days: account.rotation_policy_days,
            enforce: account.rotation_policy_enforce,
            auto_revoke: account.anomaly_auto_revoke,
        },
    ))
}

/// `POST /settings/security` (form `rotation_policy_days`, `rotation_policy_enforce`?,
/// `anomaly_auto_revoke`?): changes the account's security settings.
pub async fn settings(DashForm { dash: d, form }: DashForm) -> Response {
    let result = async {
        let days = form.number::<i64>("rotation_policy_days")?.ok_or_else(|| {
            ApiError::invalid_request("rotation_policy_days: must be between 1 and 3650")
        })?;
        let body = UserSettings {
            anomaly_auto_revoke: Some(form.checked("anomaly_auto_revoke")),
            rotation_policy_days: Some(days),
            rotation_policy_enforce: Some(form.checked("rotation_policy_enforce")),
        };
        apply_settings(&d.state, d.account_id(), &body, &d.actor).await
    }
    .await;
    let f = Filters::default();
    match result {
        Ok(_) => show(&d, &f, Some("Security settings saved.".into()), None).await,
        Err(e) if is_form_error(&e) => {
            let status = e.status;
            let mut resp = show(&d, &f, None, Some(e.message)).await;
            *resp.status_mut() = status;
            resp
        }
        Err(e) => error_page(e),
    }
}
