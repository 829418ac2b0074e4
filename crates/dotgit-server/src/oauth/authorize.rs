//! `GET /oauth/authorize` (the consent page) and `POST /oauth/authorize` (the user's decision):
//! RFC 6749 §4.1.1–4.1.2 with PKCE (RFC 7636), `iss` (RFC 9207) and RFC 9700's rules.
//!
//! What must hold:
//! - Until the client and its redirect URI are known good — the client exists and the
//!   `redirect_uri` is byte for byte one it registered — every error is an HTML page and never a
//!   redirect (RFC 6749 §4.1.2.1, no open redirector). After that, errors go back to the client
//!   as `error`, `error_description`, `state` and `iss` on its redirect URI.
//! - PKCE S256 is required from every client; `plain` or a missing method is refused.
//! - The scope granted is requested ∩ the app's allowed scopes ∩ what the user may do; if
//!   nothing is left, `invalid_scope`.
//! - Consent is a CSRF-protected form POST by the signed-in user; a suspended account authorizes
//!   nothing. Approval stores a 60-second single-use code (digest only) bound to the client, the
//!   redirect URI, the PKCE challenge, the scope and the account.

use super::CODE_SECONDS;
use crate::auth::owner_may;
use crate::error::ApiError;
use crate::extract::{FormBody, FormParams};
use crate::state::AppState;
use crate::web::session::{self, is_cross_site, MaybeSession, Session, CSRF_FIELD};
use crate::web::{self, render};
use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use dotgit_core::credential::random_base62;
use dotgit_core::{AccountStatus, Action, Plan, Resource, Scope, ScopeSet, SecretHash};
use dotgit_store::{OAuthAppRow, OAuthCodeRow};

/// A validated authorization request.
#[derive(Debug)]
struct AuthzRequest {
    app: OAuthAppRow,
    redirect_uri: String,
    state: Option<String>,
    /// requested ∩ the app's allowed scopes (the user's limit is applied once they are known)
    scope: ScopeSet,
    code_challenge: String,
}

/// Where an invalid request goes.
#[derive(Debug)]
enum Refusal {
    /// An HTML page: the client or redirect URI cannot be trusted.
    Page(StatusCode, String),
    /// Back to the client's redirect URI.
    Redirect(ErrorRedirect),
}

#[derive(Debug)]
struct ErrorRedirect {
    redirect_uri: String,
    state: Option<String>,
    error: &'static str,
    description: String,
}

impl ErrorRedirect {
    fn response(&self, issuer: &str, status: StatusCode) -> Response {
        let mut params: Vec<(&str, &str)> = vec![
            ("error", self.error),
            ("error_description", &self.description),
        ];
        if let Some(st) = &self.state {
            params.push(("state", st));
        }
        params.push(("iss", issuer));
        web::redirect(status, &with_query(&self.redirect_uri, &params))
    }
}

/// Appends parameters to a registered redirect URI (which never has a fragment), keeping its
/// own query (RFC 6749 §3.1.2).
pub fn with_query(uri: &str, params: &[(&str, &str)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        q.append_pair(k, v);
    }
    let q = q.finish();
    let sep = match uri.find('?') {
        None => "?",
        Some(_) if uri.ends_with('?') || uri.ends_with('&') => "",
        Some(_) => "&",
    };
    format!("{uri}{sep}{q}")
}

/// Validates the parameters of an authorization request (query of the GET, hidden fields of
/// the consent POST), in the order RFC 6749 §4.1.2.1 requires.
async fn validate(s: &AppState, p: &FormParams) -> Result<AuthzRequest, Refusal> {
    let page = |msg: &str| Refusal::Page(StatusCode::BAD_REQUEST, msg.to_owned());
    if p.is_duplicated("client_id") {
        return Err(page("The request names client_id more than once."));
    }
    let Some(client_id) = p.get("client_id") else {
        return Err(page("The request has no client_id."));
    };
    let app =
        match s.store.oauth_app(client_id).await {
            Ok(Some(a)) => a,
            Ok(None) => return Err(page(
                "The application that sent you here (its client_id) is not registered with dotgit.",
            )),
            Err(e) => {
                let e: ApiError = e.into();
                return Err(Refusal::Page(e.status, e.message));
            }
        };
    if p.is_duplicated("redirect_uri") {
        return Err(page("The request names redirect_uri more than once."));
    }
    let Some(redirect_uri) = p.get("redirect_uri") else {
        return Err(page(
            "The request has no redirect_uri; dotgit requires one.",
        ));
    };
    if !app.redirect_uri_list().contains(&redirect_uri) {
        return Err(page(
            "The redirect_uri is not one the application registered (they must match exactly), so dotgit will not send you there.",
        ));
    }
    // from here on, errors go back to the client
    let state = if p.is_duplicated("state") {
        None
    } else {
        p.get("state").map(str::to_owned)
    };
    let redirect = |error: &'static str, description: String| {
        Refusal::Redirect(ErrorRedirect {
            redirect_uri: redirect_uri.to_owned(),
            state: state.clone(),
            error,
            description,
        })
    };
    if let Some(d) = p.duplicates().first() {
        return Err(redirect(
            "invalid_request",
            format!("{d}: given more than once"),
        ));
    }
    match p.get("response_type") {
        None => {
            return Err(redirect(
                "invalid_request",
                "response_type: required (code)".into(),
            ))
        }
        Some("code") => {}
        Some(_) => {
            return Err(redirect(
                "unsupported_response_type",
                "response_type: only `code` is supported".into(),
            ))
        }
    }
    if p.get("request").is_some() || p.get("request_uri").is_some() {
        return Err(redirect(
            "request_not_supported",
            "request objects are not supported".into(),
        ));
    }
    match p.get("code_challenge_method") {
        Some("S256") => {}
        Some("plain") => {
            return Err(redirect(
                "invalid_request",
                "code_challenge_method: `plain` is refused; use S256".into(),
            ))
        }
        Some(_) => {
            return Err(redirect(
                "invalid_request",
                "code_challenge_method: must be S256".into(),
            ))
        }
        None => {
            return Err(redirect(
                "invalid_request",
                "code_challenge_method: required (PKCE S256 is mandatory for every client)".into(),
            ))
        }
    }
    let code_challenge = match p.get("code_challenge") {
        Some(c) if super::valid_s256_challenge(c) => c.to_owned(),
        Some(_) => {
            return Err(redirect(
                "invalid_request",
                "code_challenge: must be the 43-character BASE64URL(SHA256(code_verifier))".into(),
            ))
        }
        None => {
            return Err(redirect(
                "invalid_request",
                "code_challenge: required (PKCE S256 is mandatory for every client)".into(),
            ))
        }
    };
    let requested = match p.get("scope") {
        None => {
            return Err(redirect(
                "invalid_scope",
                "scope: required (space-separated scopes)".into(),
            ))
        }
        Some(sc) => ScopeSet::parse_space_separated(sc)
            .map_err(|e| redirect("invalid_scope", format!("scope: {e}")))?,
    };
    let allowed = ScopeSet::parse_space_separated(&app.allowed_scopes).unwrap_or_default();
    let scope = requested.intersect(&allowed);
    if scope.is_empty() {
        return Err(redirect(
            "invalid_scope",
            "scope: none of the requested scopes may be granted to this application".into(),
        ));
    }
    Ok(AuthzRequest {
        redirect_uri: redirect_uri.to_owned(),
        app,
        state,
        scope,
        code_challenge,
    })
}

fn refusal_response(s: &AppState, r: Refusal, status: StatusCode) -> Response {
    match r {
        Refusal::Page(code, msg) => {
            web::message(code, "This authorization request is invalid", &msg)
        }
        Refusal::Redirect(e) => e.response(&s.public_url, status),
    }
}

/// What the user may grant: the request ∩ what their account may do. `Err`: the redirect.
fn user_scope(req: &AuthzRequest, plan: Plan) -> Result<ScopeSet, Refusal> {
    let granted = req.scope.intersect(&owner_may(plan));
    if granted.is_empty() {
        return Err(Refusal::Redirect(ErrorRedirect {
            redirect_uri: req.redirect_uri.clone(),
            state: req.state.clone(),
            error: "invalid_scope",
            description: "scope: nothing requested is something this account may grant".into(),
        }));
    }
    Ok(granted)
}

fn suspended(req: &AuthzRequest) -> Refusal {
    Refusal::Redirect(ErrorRedirect {
        redirect_uri: req.redirect_uri.clone(),
        state: req.state.clone(),
        error: "access_denied",
        description: "the account is suspended and cannot authorize applications".into(),
    })
}

/// One line of the consent page.
#[derive(Debug)]
struct ScopeLine {
    name: String,
    text: String,
}

/// What a scope lets an app do, in words.
fn describe(s: &Scope) -> String {
    let what = match (s.resource, s.action) {
        (Resource::Repo, Action::Read) => "read your projects (repositories)",
        (Resource::Repo, Action::Write) => "read, create and delete your projects (repositories)",
        (Resource::Deploy, Action::Read) => "read your deployments",
        (Resource::Deploy, Action::Write) => "read and start deployments",
        (Resource::Team, Action::Read) => "read your teams and their members",
        (Resource::Team, Action::Write) => "read and change your teams and their members",
        (Resource::Audit, Action::Read) => "read your audit log",
        (Resource::Audit, Action::Write) => "read your audit log",
        (Resource::Keys, Action::Read) => "read your credentials (API keys, JWT keys, OAuth apps)",
        (Resource::Keys, Action::Write) => {
            "create and revoke your credentials (API keys, JWT keys, OAuth apps)"
        }
    };
    match &s.project {
        Some(p) => format!("{what}, in project {p} only"),
        None => format!("{what}, in every project"),
    }
}

#[derive(Template)]
#[template(path = "consent.html")]
struct ConsentPage<'a> {
    app_name: &'a str,
    client_id: &'a str,
    username: &'a str,
    redirect_uri: &'a str,
    scopes: Vec<ScopeLine>,
    scope: String,
    state: Option<&'a str>,
    code_challenge: &'a str,
    csrf_token: String,
}

/// `GET /oauth/authorize`: validates the request, sends an anonymous browser to `/login` (and
/// back here), and shows the signed-in user the consent page.
pub async fn authorize_page(
    State(s): State<AppState>,
    MaybeSession(sess): MaybeSession,
    RawQuery(query): RawQuery,
) -> Response {
    let query = query.unwrap_or_default();
    let params = FormParams::parse(query.as_bytes());
    let req = match validate(&s, &params).await {
        Ok(r) => r,
        Err(r) => return refusal_response(&s, r, StatusCode::FOUND),
    };
    let sess = match sess {
        Ok(Some(sess)) => sess,
        Ok(None) => {
            let here = format!("/oauth/authorize?{query}");
            let login = with_query("/login", &[("return_to", &here)]);
            return web::redirect(StatusCode::FOUND, &login);
        }
        Err(e) => return web::error_page(e),
    };
    consent_page(&s, &req, &sess)
}

fn consent_page(s: &AppState, req: &AuthzRequest, sess: &Session) -> Response {
    let acct = &sess.account;
    if AccountStatus::parse(&acct.status) == AccountStatus::Suspended {
        return refusal_response(s, suspended(req), StatusCode::FOUND);
    }
    let plan = Plan::parse(&acct.plan).unwrap_or(Plan::Free);
    let granted = match user_scope(req, plan) {
        Ok(g) => g,
        Err(r) => return refusal_response(s, r, StatusCode::FOUND),
    };
    render(
        StatusCode::OK,
        &ConsentPage {
            app_name: &req.app.name,
            client_id: &req.app.client_id,
            username: &acct.username,
            redirect_uri: &req.redirect_uri,
            scopes: granted
                .iter()
                .map(|sc| ScopeLine {
                    name: sc.to_string(),
                    text: describe(sc),
                })
                .collect(),
            scope: granted.to_space_separated(),
            state: req.state.as_deref(),
            code_challenge: &req.code_challenge,
            csrf_token: sess.csrf_token(),
        },
    )
}

/// `POST /oauth/authorize` (the consent form): `decision=approve` redirects to the client with
/// `code`, `state` and `iss`; `decision=deny` with `error=access_denied`. Refused with 403
/// without a session or a valid `csrf_token`.
pub async fn decide(
    State(s): State<AppState>,
    headers: HeaderMap,
    actor: crate::audit::Actor,
    MaybeSession(sess): MaybeSession,
    FormBody(form): FormBody,
) -> Response {
    let form = match form {
        Ok(f) => f,
        Err(e) => return web::error_page(e),
    };
    let sess = match sess {
        Ok(Some(sess)) => sess,
        Ok(None) => {
            return web::error_page(ApiError::new(
                StatusCode::FORBIDDEN,
                "login_required",
                "You are not signed in (or your session ended), so this decision was not accepted. Start again from the application.",
            ))
        }
        Err(e) => return web::error_page(e),
    };
    if is_cross_site(&headers) {
        return web::error_page(session::cross_site_refused());
    }
    if form.is_duplicated(CSRF_FIELD) {
        return web::error_page(session::csrf_refused());
    }
    if let Err(e) = sess.verify_csrf(form.get(CSRF_FIELD)) {
        return web::error_page(e);
    }
    let req = match validate(&s, &form).await {
        Ok(r) => r,
        Err(r) => return refusal_response(&s, r, StatusCode::SEE_OTHER),
    };
    let acct = &sess.account;
    if AccountStatus::parse(&acct.status) == AccountStatus::Suspended {
        return refusal_response(&s, suspended(&req), StatusCode::SEE_OTHER);
    }
    match form.get("decision") {
        Some("approve") => {}
        Some("deny") => {
            let e = ErrorRedirect {
                redirect_uri: req.redirect_uri.clone(),
                state: req.state.clone(),
                error: "access_denied",
                description: "the user denied the request".into(),
            };
            return e.response(&s.public_url, StatusCode::SEE_OTHER);
        }
        _ => {
            return web::message(
                StatusCode::BAD_REQUEST,
                "This authorization request is invalid",
                "decision: must be approve or deny",
            )
        }
    }
    let plan = Plan::parse(&acct.plan).unwrap_or(Plan::Free);
    let granted = match user_scope(&req, plan) {
        Ok(g) => g,
        Err(r) => return refusal_response(&s, r, StatusCode::SEE_OTHER),
    };
    match issue_code(&s, &req, &acct.id, &granted, &actor).await {
        Ok(code) => {
            let mut params: Vec<(&str, &str)> = vec![("code", &code)];
            if let Some(st) = &req.state {
                params.push(("state", st));
            }
            params.push(("iss", &s.public_url));
            web::redirect(
                StatusCode::SEE_OTHER,
                &with_query(&req.redirect_uri, &params),
            )
        }
        Err(e) => {
            // the client and redirect URI are trusted: tell the client (RFC 6749 §4.1.2.1)
            let e = ErrorRedirect {
                redirect_uri: req.redirect_uri.clone(),
                state: req.state.clone(),
                error: if e.status == StatusCode::SERVICE_UNAVAILABLE {
                    "temporarily_unavailable"
                } else {
                    "server_error"
                },
                description: "the authorization could not be recorded; try again".into(),
            };
            e.response(&s.public_url, StatusCode::SEE_OTHER)
        }
    }
}

/// Stores a new code (digest only) under the user's authorization of the app; returns it.
async fn issue_code(
    s: &AppState,
    req: &AuthzRequest,
    account_id: &str,
    granted: &ScopeSet,
    actor: &crate::audit::Actor,
) -> Result<String, ApiError> {
    let now = s.now();
    let code = random_base62(&crate::ops::entropy()?, 43)
        .ok_or_else(|| ApiError::internal("CSPRNG short"))?;
    let row = OAuthCodeRow {
        code_hash: SecretHash::of(&code).to_hex(),
        authorization_id: String::new(),
        account_id: account_id.to_owned(),
        client_id: req.app.client_id.clone(),
        redirect_uri: req.redirect_uri.clone(),
        code_challenge: req.code_challenge.clone(),
        scope: granted.to_space_separated(),
        created_at: now,
        expires_at: now + CODE_SECONDS,
        used_at: None,
        grant_id: None,
    };
    let new_id = crate::ops::new_id("authz")?;
    s.store
        .issue_code(
            &row,
            &new_id,
            |previous| {
                let mut all: Vec<Scope> = granted.iter().cloned().collect();
                if let Some(prev) = previous.and_then(|p| ScopeSet::parse_space_separated(p).ok()) {
                    all.extend(prev.iter().cloned());
                }
                let merged = ScopeSet::from_scopes(all.clone());
                // keep the set readable: drop scopes another member covers
                let kept: Vec<Scope> = all
                    .iter()
                    .filter(|sc| !merged.iter().any(|o| o != *sc && o.covers(sc)))
                    .cloned()
                    .collect();
                ScopeSet::from_scopes(kept).to_space_separated()
            },
            now,
            &actor.oauth_audit(now),
        )
        .await?;
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_parameters_keep_the_registered_query() {
        assert_eq!(
            with_query("https://a.example/cb", &[("code", "x y"), ("state", "s&t")]),
            "https://a.example/cb?code=x+y&state=s%26t"
        );
        assert_eq!(
            with_query("https://a.example/cb?app=1", &[("code", "c")]),
            "https://a.example/cb?app=1&code=c"
        );
    }
}
