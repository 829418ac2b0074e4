//! The dashboard (SPEC §5 "Dashboard"): Settings → API Keys, JWT Configuration, OAuth apps,
//! Security, and `/admin` for operators. Server-rendered askama pages, the one self-hosted
//! stylesheet and one small self-hosted script (the copy button); no external asset.
//!
//! What must hold:
//! - Every page needs a live session: [`Dash`] answers 303 to `/login?return_to=…` without one.
//!   Every state-changing form goes through [`DashForm`], which also refuses (403, before
//!   anything is read or written) a request a browser marks as coming from another site
//!   (`Sec-Fetch-Site`), an `Origin` other than this server's, and a missing or wrong
//!   `csrf_token` (the session's synchronizer token, see [`super::session`]).
//! - Pages call the same core functions as the `/v1` API (`ops`, `api::keys::key_out`,
//!   `api::jwt_keys::out`, `oauth::apps`, `oauth::authorizations`, `api::audit::filter_for`,
//!   `api::user::apply_settings`, `api::admin::set_status`): a rule lives in one place. The
//!   signed-in user acts with the rights of their own account ([`crate::auth::owner_may`]);
//!   audit events name the dashboard session (by a prefix of its digest, never its id).
//! - A secret (API key, client secret) is shown once, in the answer to the POST that made it
//!   (`Cache-Control: no-store`, like every response), and never again.
//! - Objects are always looked up within the signed-in account: another account's id is 404.
//! - Operator pages answer non-operators exactly like an unknown path (404).
//! - Pages carry the CSP of [`super::CSP`] plus `script-src 'self'` (for `/static/dotgit.js`);
//!   no inline script or style anywhere.

pub mod admin;
pub mod apps;
pub mod jwt;
pub mod keys;
pub mod security;

use super::session::{self, Session, CSRF_FIELD};
use crate::audit::Actor;
use crate::error::ApiError;
use crate::ops;
use crate::state::AppState;
use askama::Template;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{header, request::Parts, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use dotgit_core::{Plan, ScopeSet};

/// The Content-Security-Policy of dashboard pages: the strict page policy plus this origin's
/// script (the copy button). Still no inline script or style.
pub const DASHBOARD_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The dashboard's script, compiled in.
const JS: &str = include_str!("../../../static/dotgit.js");

/// Where a signed-in browser lands in the dashboard.
pub const HOME: &str = "/settings/api-keys";

/// `GET /static/dotgit.js`.
pub async fn script() -> Response {
    let mut resp = JS.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/javascript; charset=utf-8"),
    );
    resp
}

/// `GET /settings`: on to the first settings page.
pub async fn settings_home(_d: Dash) -> Response {
    super::see_other(HOME)
}

/// Renders a dashboard page (security headers, the dashboard CSP).
pub fn render(status: StatusCode, t: &impl Template) -> Response {
    let mut resp = super::render(status, t);
    resp.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(DASHBOARD_CSP),
    );
    resp
}

/// What every dashboard page shows around its content: the navigation, who is signed in, the
/// sign-out form's token, and the page's notice or error.
#[derive(Debug, Default)]
pub struct Chrome {
    /// Signed-in username.
    pub username: String,
    /// Whether to show the Admin link.
    pub operator: bool,
    /// The session's CSRF token (every form on the page).
    pub csrf: String,
    /// Which navigation entry is current.
    pub active: &'static str,
    /// The suspension reason, if the account is suspended (empty: none given).
    pub suspended: Option<String>,
    /// A success message.
    pub notice: Option<String>,
    /// An error message (bad form input), shown with `role="alert"`.
    pub error: Option<String>,
}

/// A signed-in dashboard request: the session, the state, and the audit actor.
pub struct Dash {
    /// Shared state.
    pub state: AppState,
    /// The live session.
    pub session: Session,
    /// Who acts, for audit events: the request's context, naming the dashboard session.
    pub actor: Actor,
}

impl std::fmt::Debug for Dash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dash")
            .field("session", &self.session)
            .finish()
    }
}

impl Dash {
    /// The signed-in account's id.
    pub fn account_id(&self) -> &str {
        &self.session.account.id
    }

    /// Current time.
    pub fn now(&self) -> i64 {
        self.state.now()
    }

    /// The page chrome with `active` as the current navigation entry.
    pub fn chrome(&self, active: &'static str) -> Chrome {
        let a = &self.session.account;
        Chrome {
            username: a.username.clone(),
            operator: a.is_operator,
            csrf: self.session.csrf_token(),
            active,
            suspended: (a.status == "suspended")
                .then(|| a.status_reason.clone().unwrap_or_default()),
            notice: None,
            error: None,
        }
    }

    /// What the signed-in user may grant: everything their account may do (the rule the API
    /// applies to credentials, [`crate::auth::owner_may`]).
    pub fn check_grantable(&self, scopes: &ScopeSet) -> Result<(), ApiError> {
        let plan = Plan::parse(&self.session.account.plan).unwrap_or(Plan::Free);
        let may = crate::auth::owner_may(plan);
        match scopes
            .iter()
            .find(|wanted| !may.iter().any(|held| held.covers(wanted)))
        {
            Some(extra) => Err(ApiError::insufficient_scope(extra)),
            None => Ok(()),
        }
    }
}

/// The sign-in page, coming back to `return_to` afterwards.
fn to_login(return_to: &str) -> Response {
    let q = form_urlencoded::Serializer::new(String::new())
        .append_pair("return_to", return_to)
        .finish();
    super::see_other(&format!("/login?{q}"))
}

/// The page a form POST belongs to (`/settings/api-keys/{id}/revoke` → `/settings/api-keys`),
/// where a browser whose session ended is sent back after signing in again.
fn section_of(path: &str) -> String {
    let mut segs = path.split('/').filter(|s| !s.is_empty());
    match (segs.next(), segs.next()) {
        (Some("settings"), Some(page)) => format!("/settings/{page}"),
        (Some("admin"), _) => "/admin".to_owned(),
        _ => HOME.to_owned(),
    }
}

impl FromRequestParts<AppState> for Dash {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let session = match session::current(state, &parts.headers).await {
            Ok(Some(s)) => s,
            Ok(None) => {
                let back = if parts.method == Method::GET {
                    parts
                        .uri
                        .path_and_query()
                        .map(|p| p.as_str().to_owned())
                        .filter(|p| session::safe_return_to(p).is_some())
                        .unwrap_or_else(|| HOME.to_owned())
                } else {
                    section_of(parts.uri.path())
                };
                return Err(to_login(&back));
            }
            Err(e) => return Err(super::error_page(e)),
        };
        let mut actor = crate::extract::actor_of(state, &parts.headers, &parts.extensions);
        actor.credential_id = Some(format!(
            "dashboard session {} of {}",
            session.id_hash.get(..8).unwrap_or(""),
            session.account.username
        ));
        Ok(Dash {
            state: state.clone(),
            session,
            actor,
        })
    }
}

/// A signed-in, same-origin, CSRF-checked form POST of an active account.
#[derive(Debug)]
pub struct DashForm {
    /// The request's session and context.
    pub dash: Dash,
    /// The form's fields.
    pub form: Fields,
}

impl FromRequest<AppState> for DashForm {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let dash = Dash::from_request_parts(&mut parts, state).await?;
        if let Err(e) = same_origin(state, &parts) {
            return Err(super::error_page(e));
        }
        let form = Fields::read(Request::from_parts(parts, body), state)
            .await
            .map_err(super::error_page)?;
        dash.session
            .verify_csrf(form.get(CSRF_FIELD))
            .map_err(super::error_page)?;
        if dash.session.account.status == "suspended" {
            return Err(super::error_page(ApiError::new(
                StatusCode::FORBIDDEN,
                "account_suspended",
                "Your account is suspended: nothing can be changed until the suspension is lifted.",
            )));
        }
        Ok(DashForm { dash, form })
    }
}

/// Refuses a POST that did not come from this origin: a browser's `Sec-Fetch-Site` other
/// than `same-origin` (or `none`, typed by the user), or an `Origin` other than this server's
/// (`https://` + the request's host, or the configured public URL's origin).
///
/// `Origin: null` is what a browser sends for a form POST from a page whose referrer policy is
/// `no-referrer` — ours (Fetch, "serializing a request origin") — and also from sandboxed or
/// opaque documents; it is accepted only when the browser vouches with
/// `Sec-Fetch-Site: same-origin`.
fn same_origin(state: &AppState, parts: &Parts) -> Result<(), ApiError> {
    let h = &parts.headers;
    let site = h
        .get("sec-fetch-site")
        .map(|v| v.to_str().unwrap_or("").to_ascii_lowercase());
    if let Some(site) = &site {
        if site != "same-origin" && site != "none" {
            return Err(session::cross_site_refused());
        }
    }
    let Some(origin) = h.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or("");
    if origin == "null" {
        return match site.as_deref() {
            Some("same-origin") => Ok(()),
            _ => Err(session::cross_site_refused()),
        };
    }
    let host = h
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| parts.uri.authority().map(|a| a.as_str()));
    let own = host.is_some_and(|host| origin.eq_ignore_ascii_case(&format!("https://{host}")));
    let public = url::Url::parse(&state.public_url)
        .map(|u| origin.eq_ignore_ascii_case(&u.origin().ascii_serialization()))
        .unwrap_or(false);
    if own || public {
        Ok(())
    } else {
        Err(session::cross_site_refused())
    }
}

/// A dashboard form's fields, every value kept (a scope picker sends `scope` once per box).
#[derive(Default)]
pub struct Fields(Vec<(String, String)>);

impl std::fmt::Debug for Fields {
    // values may be secrets or keys: only the names are shown
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(k, _)| k))
            .finish()
    }
}

impl Fields {
    /// Parses `application/x-www-form-urlencoded` bytes.
    pub fn parse(bytes: &[u8]) -> Fields {
        Fields(form_urlencoded::parse(bytes).into_owned().collect())
    }

    async fn read(req: Request, state: &AppState) -> Result<Fields, ApiError> {
        let is_form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|ct| ct.split(';').next())
            .is_some_and(|m| {
                m.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        if !is_form {
            return Err(ApiError::invalid_request(
                "Content-Type: must be application/x-www-form-urlencoded",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rej| {
            if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    "The form is larger than the server accepts.",
                )
            } else {
                ApiError::invalid_request("body: could not be read")
            }
        })?;
        Ok(Fields::parse(&bytes))
    }

    /// The first non-empty value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// The first value of `name`, trimmed; `None` if absent or blank.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.get(name).map(str::trim).filter(|v| !v.is_empty())
    }

    /// Every non-empty value of `name`, in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Whether a checkbox `name` was checked.
    pub fn checked(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// A whole number field, `None` if blank; anything else is `invalid_request` naming it.
    pub fn number<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, ApiError> {
        match self.text(name) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| ApiError::invalid_request(format!("{name}: must be a whole number"))),
        }
    }
}

/// Resources offered in the scope picker, with what each covers.
pub const PICKER: [(&str, &str); 5] = [
    ("repo", "Repositories (projects)"),
    ("deploy", "Deployments"),
    ("team", "Teams and members"),
    ("audit", "The audit log"),
    ("keys", "Credentials: API keys, JWT keys, OAuth apps"),
];

/// The scopes a scope picker chose: the checked `scope` boxes (`repo:read`, …), narrowed to
/// the selected `project` for `repo` and `deploy` (the resources that live in projects), plus
/// any typed into `extra_scopes`. Validated by the API's own parser; errors name `field[i]`.
pub fn picked_scopes(form: &Fields, field: &str) -> Result<ScopeSet, ApiError> {
    let project = form.text("project");
    let mut items: Vec<String> = Vec::new();
    for v in form.all("scope") {
        let narrowable = v.starts_with("repo:") || v.starts_with("deploy:");
        match project {
            Some(p) if narrowable => items.push(format!("{v}:{p}")),
            _ => items.push(v.to_owned()),
        }
    }
    if let Some(extra) = form.get("extra_scopes") {
        items.extend(extra.split_whitespace().map(str::to_owned));
    }
    ops::parse_scopes(field, &items)
}

/// The account's project slugs, for the picker's project selector.
pub async fn project_slugs(d: &Dash) -> Result<Vec<String>, ApiError> {
    Ok(d.state
        .store
        .list_projects(d.account_id())
        .await?
        .into_iter()
        .map(|p| p.slug)
        .collect())
}

/// `2026-11-29 12:00 UTC`.
pub fn when(ts: i64) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    time::OffsetDateTime::from_unix_timestamp(ts)
        .ok()
        .and_then(|t| t.format(&fmt).ok())
        .unwrap_or_else(|| ts.to_string())
}

/// [`when`] of an RFC 3339 string from an API object.
pub fn when_rfc3339(s: &str) -> String {
    dotgit_core::clock::parse_rfc3339(s)
        .map(when)
        .unwrap_or_else(|| s.to_owned())
}

/// What a page handler does with an error: bad input re-renders the page with the message
/// (via `again`), anything else is an error page.
pub fn is_form_error(e: &ApiError) -> bool {
    e.status == StatusCode::BAD_REQUEST || e.status == StatusCode::UNAUTHORIZED
}

/// A confirmation step before something that cannot be undone.
#[derive(Template)]
#[template(path = "dashboard/confirm.html")]
struct ConfirmPage<'a> {
    chrome: Chrome,
    title: &'a str,
    question: &'a str,
    details: Vec<(&'a str, String)>,
    consequence: &'a str,
    action: &'a str,
    button: &'a str,
    cancel: &'a str,
}

/// What a confirmation page asks.
#[derive(Debug)]
pub struct Confirm<'a> {
    /// Navigation entry.
    pub active: &'static str,
    /// Page title and heading.
    pub title: &'a str,
    /// The question.
    pub question: &'a str,
    /// Facts about the object (label, value).
    pub details: Vec<(&'a str, String)>,
    /// What will happen.
    pub consequence: &'a str,
    /// Where the form posts.
    pub action: &'a str,
    /// The button's label.
    pub button: &'a str,
    /// Where "Cancel" goes.
    pub cancel: &'a str,
}

/// Renders a confirmation page.
pub fn confirm(d: &Dash, c: Confirm<'_>) -> Response {
    render(
        StatusCode::OK,
        &ConfirmPage {
            chrome: d.chrome(c.active),
            title: c.title,
            question: c.question,
            details: c.details,
            consequence: c.consequence,
            action: c.action,
            button: c.button,
            cancel: c.cancel,
        },
    )
}

/// The answer to a path only operators have, for everyone else: the same 404 as an unknown
/// path.
pub fn not_for_you() -> Response {
    ApiError::not_found("The requested path").into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_posts_return_to_their_page() {
        assert_eq!(
            section_of("/settings/api-keys/key_1/revoke"),
            "/settings/api-keys"
        );
        assert_eq!(section_of("/settings/jwt"), "/settings/jwt");
        assert_eq!(section_of("/admin/accounts/bob/suspend"), "/admin");
        assert_eq!(section_of("/elsewhere"), HOME);
    }

    #[test]
    fn the_picker_narrows_repo_and_deploy_to_the_project() {
        let f = Fields::parse(
            b"scope=repo%3Aread&scope=deploy%3Awrite&scope=audit%3Aread&project=my-app&extra_scopes=team%3Aread",
        );
        let s = picked_scopes(&f, "scopes").unwrap().to_strings();
        for want in [
            "repo:read:my-app",
            "deploy:write:my-app",
            "audit:read",
            "team:read",
        ] {
            assert!(s.contains(&want.to_owned()), "{want} in {s:?}");
        }
        let bad = Fields::parse(b"scope=repo%3Aadmin");
        let e = picked_scopes(&bad, "scopes").unwrap_err();
        assert_eq!(e.code, "invalid_scope");
        assert!(e.message.starts_with("scopes[0]: "), "{}", e.message);
        assert!(picked_scopes(&Fields::default(), "scopes").is_err());
    }

    #[test]
    fn times_read_as_utc() {
        assert_eq!(when(1_795_953_600), "2026-11-29 12:00 UTC");
        assert_eq!(when_rfc3339("2026-11-29T12:00:00Z"), "2026-11-29 12:00 UTC");
    }
}
