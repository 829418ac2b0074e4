//! Browser sessions and CSRF protection for every server-rendered form (the consent page now,
//! the dashboard later).
//!
//! What must hold:
//! - The session id is 43 base62 characters from the CSPRNG, sent only in the cookie
//!   `__Host-dotgit_session` (`Secure; HttpOnly; SameSite=Lax; Path=/`, no `Domain`), and stored
//!   only as its SHA-256 digest. A session ends after 12 hours whatever happens (absolute) or
//!   after 1 hour without a request (idle); logging in always starts a new session (no fixation).
//! - CSRF (synchronizer token): every form carries a hidden `csrf_token` bound to the session —
//!   `SHA-256("dotgit-csrf-v1:" || session id)`, so it needs no storage, changes with every
//!   session, and cannot be computed without the cookie, which scripts on other sites never see.
//!   Every state-changing POST compares it in constant time and is refused (403) without it.
//! - The login form has no session yet: it is protected by a double-submit token in the
//!   `__Host-dotgit_login_csrf` cookie (a `__Host-` cookie cannot be planted by a sibling
//!   domain), which defeats login CSRF. Any POST a browser marks `Sec-Fetch-Site: cross-site` is
//!   refused as well.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::{header, request::Parts, HeaderMap, HeaderValue};
use dotgit_core::credential::random_base62;
use dotgit_core::SecretHash;
use dotgit_store::{AccountRow, SessionRow};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "__Host-dotgit_session";
/// The login form's double-submit CSRF cookie.
pub const LOGIN_CSRF_COOKIE: &str = "__Host-dotgit_login_csrf";
/// A session ends this long after login, whatever happens.
pub const SESSION_ABSOLUTE_SECONDS: i64 = 12 * 3600;
/// A session ends after this long without a request.
pub const SESSION_IDLE_SECONDS: i64 = 3600;
/// Activity is written at most this often per session (class C).
const TOUCH_EVERY_SECONDS: i64 = 60;
/// The name of the hidden form field.
pub const CSRF_FIELD: &str = "csrf_token";

/// A signed-in browser.
pub struct Session {
    id: String,
    /// SHA-256 hex of the session id (the stored key).
    pub id_hash: String,
    /// The signed-in account.
    pub account: AccountRow,
    /// When the session ends at the latest.
    pub expires_at: i64,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("id", &"<redacted>")
            .field("account", &self.account.username)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl Session {
    /// The CSRF token to put in this session's forms.
    pub fn csrf_token(&self) -> String {
        csrf_for(&self.id)
    }

    /// Checks a submitted CSRF token (constant-time): `Err` is the 403 to answer.
    pub fn verify_csrf(&self, submitted: Option<&str>) -> Result<(), ApiError> {
        match submitted {
            Some(t) if constant_time_eq(t, &self.csrf_token()) => Ok(()),
            _ => Err(csrf_refused()),
        }
    }
}

/// The 403 for a form POST without a valid CSRF token.
pub fn csrf_refused() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::FORBIDDEN,
        "csrf_failed",
        "This form was not accepted: its security token (csrf_token) is missing or does not belong to your session. Reload the page and try again.",
    )
}

/// The 403 for a POST a browser says came from another site.
pub fn cross_site_refused() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::FORBIDDEN,
        "csrf_failed",
        "This form was submitted from another site and was not accepted.",
    )
}

fn csrf_for(session_id: &str) -> String {
    SecretHash::of(&format!("dotgit-csrf-v1:{session_id}")).to_hex()
}

/// Constant-time string equality (the length is not secret).
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a.as_bytes(), b.as_bytes()).is_ok()
}

/// Whether the browser marked the request as coming from another site (Fetch Metadata).
pub fn is_cross_site(headers: &HeaderMap) -> bool {
    headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("cross-site"))
}

/// The value of cookie `name` (the first one; `__Host-` cookies cannot be shadowed by a
/// sibling domain).
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    for v in headers.get_all(header::COOKIE) {
        let Ok(s) = v.to_str() else { continue };
        for part in s.split(';') {
            if let Some((k, val)) = part.trim().split_once('=') {
                if k == name && !val.is_empty() {
                    return Some(val.to_owned());
                }
            }
        }
    }
    None
}

/// A new random token for cookies and forms (43 base62 characters, ~256 bits).
pub fn random_token() -> Result<String, ApiError> {
    random_base62(&crate::ops::entropy()?, 43).ok_or_else(|| ApiError::internal("CSPRNG short"))
}

/// `Set-Cookie` for a `__Host-` cookie with these attributes.
pub fn set_cookie(name: &str, value: &str, max_age: i64, same_site: &str) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; Secure; HttpOnly; SameSite={same_site}; Max-Age={max_age}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
}

/// `Set-Cookie` that deletes cookie `name`.
pub fn clear_cookie(name: &str) -> HeaderValue {
    set_cookie(name, "", 0, "Lax")
}

/// The session of a request, if it has a live one. Storage errors are 503 (fail closed).
pub async fn current(state: &AppState, headers: &HeaderMap) -> Result<Option<Session>, ApiError> {
    let Some(id) = cookie(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    if id.len() != 43 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Ok(None);
    }
    let id_hash = SecretHash::of(&id).to_hex();
    let Some((row, account)) = state.store.session_by_hash(&id_hash).await? else {
        return Ok(None);
    };
    let now = state.now();
    if now >= row.expires_at || now >= row.idle_expires_at {
        return Ok(None);
    }
    if now - row.last_seen_at >= TOUCH_EVERY_SECONDS {
        state
            .store
            .touch_session(&id_hash, now, now + SESSION_IDLE_SECONDS)
            .await?;
    }
    Ok(Some(Session {
        id,
        id_hash,
        account,
        expires_at: row.expires_at,
    }))
}

/// Starts a session for `account` (ending `replaces`); returns it and its `Set-Cookie`.
pub async fn start(
    state: &AppState,
    account: AccountRow,
    replaces: Option<&Session>,
) -> Result<(Session, HeaderValue), ApiError> {
    let now = state.now();
    let id = random_token()?;
    let id_hash = SecretHash::of(&id).to_hex();
    let row = SessionRow {
        id_hash: id_hash.clone(),
        account_id: account.id.clone(),
        created_at: now,
        last_seen_at: now,
        expires_at: now + SESSION_ABSOLUTE_SECONDS,
        idle_expires_at: now + SESSION_IDLE_SECONDS,
    };
    state
        .store
        .create_session(&row, replaces.map(|s| s.id_hash.as_str()))
        .await?;
    let cookie = set_cookie(SESSION_COOKIE, &id, SESSION_ABSOLUTE_SECONDS, "Lax");
    Ok((
        Session {
            id,
            id_hash,
            account,
            expires_at: row.expires_at,
        },
        cookie,
    ))
}

/// Ends a session.
pub async fn end(state: &AppState, s: &Session) -> Result<(), ApiError> {
    state.store.delete_session(&s.id_hash).await?;
    Ok(())
}

/// The request's live session, if any (storage errors are kept for the handler to show).
#[derive(Debug)]
pub struct MaybeSession(pub Result<Option<Session>, ApiError>);

impl FromRequestParts<AppState> for MaybeSession {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(MaybeSession(current(state, &parts.headers).await))
    }
}

/// Whether `s` is a safe place to send a browser after login: a same-origin absolute path
/// (`/…`), never `//host` or `/\host` (which browsers read as another origin), no control
/// characters. Anything else falls back to the default page: no open redirect.
pub fn safe_return_to(s: &str) -> Option<&str> {
    let ok = s.starts_with('/')
        && !s.starts_with("//")
        && !s.contains('\\')
        && s.len() <= 4096
        && !s.chars().any(|c| c.is_control() || c.is_whitespace());
    ok.then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_to_is_same_origin_only() {
        assert_eq!(
            safe_return_to("/oauth/authorize?x=1"),
            Some("/oauth/authorize?x=1")
        );
        for bad in [
            "https://evil.example/",
            "//evil.example/",
            "/\\evil.example",
            "evil",
            "/a\nb",
            "/a b",
            "",
            "javascript:alert(1)",
        ] {
            assert_eq!(safe_return_to(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn csrf_is_bound_to_the_session_and_compared_whole() {
        assert_ne!(csrf_for("a"), csrf_for("b"));
        assert_eq!(csrf_for("a").len(), 64);
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "ab"));
    }

    #[test]
    fn cookies_are_read_by_exact_name() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("x__Host-dotgit_session=no; __Host-dotgit_session=yes"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE).as_deref(), Some("yes"));
        assert_eq!(cookie(&h, LOGIN_CSRF_COOKIE), None);
    }
}
