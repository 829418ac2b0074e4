//! `GET|POST /login` and `POST /logout` (SPEC §5): the browser sign-in the OAuth consent page
//! (and later the dashboard) needs. A script can sign in too: `GET /login` for the form's
//! `csrf_token` (and its cookie), then `POST /login` with `username`, `password`, `csrf_token`.
//!
//! What must hold: passwords are checked with argon2id, and an unknown user costs the same hash
//! as a wrong password; every failure gets one generic message and counts against the source
//! address in the shared failed-authentication limiter (over budget → 429); success starts a new
//! session and sends the browser only to a same-origin path (`return_to`), never elsewhere.

use super::session::{
    self, clear_cookie, cookie, is_cross_site, safe_return_to, set_cookie, MaybeSession,
    CSRF_FIELD, LOGIN_CSRF_COOKIE, SESSION_COOKIE,
};
use crate::error::ApiError;
use crate::extract::{FormBody, FormParams};
use crate::state::AppState;
use askama::Template;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;

/// The one message every failed login gets.
pub const LOGIN_FAILED_MESSAGE: &str = "Incorrect username or password.";

/// The page a signed-in browser lands on when no `return_to` was given.
const DEFAULT_LANDING: &str = "/login";

/// How long the login form's CSRF cookie lives.
const LOGIN_CSRF_SECONDS: i64 = 3600;

/// A real argon2id hash of a random password, verified when the user does not exist so that an
/// unknown username costs as long as a wrong password.
fn dummy_phc() -> String {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY
        .get_or_init(|| {
            let pw = session::random_token().unwrap_or_else(|_| "dotgit-dummy-password".into());
            crate::ops::hash_password(&pw).unwrap_or_default()
        })
        .clone()
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    csrf_token: &'a str,
    return_to: &'a str,
    username: &'a str,
    error: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "signed_in.html")]
struct SignedInPage<'a> {
    username: &'a str,
    csrf_token: &'a str,
}

/// `GET /login`: the sign-in form (with a fresh login CSRF cookie), or — already signed in —
/// straight on to `return_to`, or a "signed in as" page with a sign-out button.
pub async fn login_form(MaybeSession(sess): MaybeSession, RawQuery(query): RawQuery) -> Response {
    let sess = match sess {
        Ok(s) => s,
        Err(e) => return super::error_page(e),
    };
    let query = FormParams::parse(query.unwrap_or_default().as_bytes());
    let return_to = query
        .get("return_to")
        .and_then(safe_return_to)
        .unwrap_or_default()
        .to_owned();
    if let Some(s) = sess {
        if !return_to.is_empty() {
            return super::see_other(&return_to);
        }
        return super::render(
            StatusCode::OK,
            &SignedInPage {
                username: &s.account.username,
                csrf_token: &s.csrf_token(),
            },
        );
    }
    let token = match session::random_token() {
        Ok(t) => t,
        Err(e) => return super::error_page(e),
    };
    let mut resp = super::render(
        StatusCode::OK,
        &LoginPage {
            csrf_token: &token,
            return_to: &return_to,
            username: "",
            error: None,
        },
    );
    resp.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(LOGIN_CSRF_COOKIE, &token, LOGIN_CSRF_SECONDS, "Strict"),
    );
    resp
}

/// `POST /login` (form `username`, `password`, `csrf_token`, `return_to`?): 303 to `return_to`
/// with the session cookie, or the form again with the generic failure message (401).
pub async fn login(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    actor: crate::audit::Actor,
    MaybeSession(old): MaybeSession,
    FormBody(form): FormBody,
) -> Response {
    let form = match form {
        Ok(f) => f,
        Err(e) => return super::error_page(e),
    };
    let ip = crate::net::client_ip(peer.ip(), &headers, &s.trusted);
    let now = s.now();
    if let Some(wait) = s.limiter.blocked(ip, now) {
        return super::error_page(ApiError::rate_limited(
            "Too many failed sign-in attempts from this address; wait and try again.",
            wait,
        ));
    }
    if is_cross_site(&headers) {
        return super::error_page(session::cross_site_refused());
    }
    // login CSRF: the form's token must equal the cookie set with the form
    let csrf = match (cookie(&headers, LOGIN_CSRF_COOKIE), form.get(CSRF_FIELD)) {
        (Some(c), Some(f)) if session::constant_time_eq(&c, f) => c,
        _ => return super::error_page(session::csrf_refused()),
    };
    let return_to = form
        .get("return_to")
        .and_then(safe_return_to)
        .unwrap_or(DEFAULT_LANDING)
        .to_owned();
    let username = form.get("username").unwrap_or("");
    let password = form.get("password").unwrap_or("");
    let failed = |status: StatusCode, msg: &str| {
        super::render(
            status,
            &LoginPage {
                csrf_token: &csrf,
                return_to: &return_to,
                username: if username.len() <= 64 { username } else { "" },
                error: Some(msg),
            },
        )
    };
    if username.is_empty() || password.is_empty() {
        return failed(StatusCode::BAD_REQUEST, "Enter your username and password.");
    }
    let account = match s.store.account_by_username(username).await {
        Ok(a) => a,
        Err(e) => return super::error_page(e.into()),
    };
    let phc = account
        .as_ref()
        .map(|a| a.password_hash.clone())
        .unwrap_or_else(dummy_phc);
    let pw = password.to_owned();
    // argon2id takes tens of milliseconds: on the nicer password threads, off the async workers
    let ok = crate::password::verify(pw, phc).await;
    use dotgit_core::audit::{outcomes, types};
    let Some(account) = account.as_ref().filter(|_| ok).cloned() else {
        let (who, why) = match &account {
            Some(a) => (Some(a.id.as_str()), "wrong password"),
            None => (None, "unknown username"),
        };
        crate::auth::record_refusal(&s, &actor, now, types::LOGIN_FAILED, who, None, why).await;
        return failed(StatusCode::UNAUTHORIZED, LOGIN_FAILED_MESSAGE);
    };
    s.auditor
        .record(actor.event(
            now,
            types::LOGIN_SUCCEEDED,
            Some(&account.id),
            None,
            outcomes::SUCCESS,
            Some("password"),
        ))
        .await;
    let old = old.ok().flatten();
    let (_, cookie) = match session::start(&s, account, old.as_ref()).await {
        Ok(v) => v,
        Err(e) => return super::error_page(e),
    };
    let mut resp = super::see_other(&return_to);
    resp.headers_mut().append(header::SET_COOKIE, cookie);
    resp.headers_mut()
        .append(header::SET_COOKIE, clear_cookie(LOGIN_CSRF_COOKIE));
    resp
}

/// `POST /logout` (form `csrf_token`): ends the session and clears its cookie; 303 to `/login`.
pub async fn logout(
    State(s): State<AppState>,
    headers: HeaderMap,
    MaybeSession(sess): MaybeSession,
    FormBody(form): FormBody,
) -> Response {
    let form = match form {
        Ok(f) => f,
        Err(e) => return super::error_page(e),
    };
    let sess = match sess {
        Ok(s) => s,
        Err(e) => return super::error_page(e),
    };
    let Some(sess) = sess else {
        let mut resp = super::see_other("/login");
        resp.headers_mut()
            .append(header::SET_COOKIE, clear_cookie(SESSION_COOKIE));
        return resp;
    };
    if is_cross_site(&headers) {
        return super::error_page(session::cross_site_refused());
    }
    if let Err(e) = sess.verify_csrf(form.get(CSRF_FIELD)) {
        return super::error_page(e);
    }
    if let Err(e) = session::end(&s, &sess).await {
        return super::error_page(e);
    }
    let mut resp = super::see_other("/login");
    resp.headers_mut()
        .append(header::SET_COOKIE, clear_cookie(SESSION_COOKIE));
    resp.into_response()
}
