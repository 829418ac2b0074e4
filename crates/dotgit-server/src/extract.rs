//! Request extractors whose rejections speak the SPEC §3 error shape: JSON bodies (strict:
//! unknown fields refused, the failing field named), strict forms (duplicates refused, RFC 6749
//! §3.1), path parameters, and the caller.

use crate::cache::CachedCredential;
use crate::error::ApiError;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::{header, request::Parts, StatusCode};
use dotgit_core::Principal;
use serde::de::DeserializeOwned;

/// Largest request body accepted anywhere (bytes); beyond it, 413 `payload_too_large`.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A JSON body; bad JSON is 400 `invalid_request` naming the field.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

/// A JSON body that may be absent (empty body → `T::default()`).
#[derive(Debug)]
pub struct ApiJsonOrEmpty<T>(pub T);

async fn body_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<(Bytes, bool), ApiError> {
    let is_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|ct| {
            let mime = ct
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            mime == "application/json"
                || (mime.starts_with("application/") && mime.ends_with("+json"))
        })
        .unwrap_or(false);
    let bytes = Bytes::from_request(req, state).await.map_err(|rej| {
        if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("The request body is larger than {MAX_BODY_BYTES} bytes."),
            )
        } else {
            ApiError::invalid_request("body: could not be read")
        }
    })?;
    Ok((bytes, is_json))
}

fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // serde accepts a JSON array for a struct (field by position); the API takes objects only
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::invalid_request("body: must be a JSON object"));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let detail = strip_position(&inner.to_string());
        if path == "." || path.is_empty() {
            ApiError::invalid_request(format!("body: {detail}"))
        } else {
            ApiError::invalid_request(format!("{path}: {detail}"))
        }
    })
}

/// serde_json appends " at line 1 column 9"; the field path already says where.
fn strip_position(s: &str) -> String {
    match s.rfind(" at line ") {
        Some(i) => s[..i].to_owned(),
        None => s.to_owned(),
    }
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (bytes, is_json) = body_bytes(req, state).await?;
        if !is_json {
            return Err(ApiError::invalid_request(
                "Content-Type: must be application/json",
            ));
        }
        if bytes.is_empty() {
            return Err(ApiError::invalid_request("body: a JSON object is required"));
        }
        parse(&bytes).map(ApiJson)
    }
}

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for ApiJsonOrEmpty<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (bytes, is_json) = body_bytes(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(ApiJsonOrEmpty(T::default()));
        }
        if !is_json {
            return Err(ApiError::invalid_request(
                "Content-Type: must be application/json",
            ));
        }
        parse(&bytes).map(ApiJsonOrEmpty)
    }
}

/// Path parameters; a bad one is 400 `invalid_request`.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| ApiPath(v))
            .map_err(|e| ApiError::invalid_request(format!("path: {}", e.body_text())))
    }
}

/// The authenticated caller of a route. The route's access declaration in `router.rs` put it
/// there; a handler on a route without one cannot obtain it. Shared, not copied: the principal
/// is built once per verified credential (per cache entry, for a cached one).
#[derive(Debug, Clone)]
pub struct Caller(pub std::sync::Arc<Principal>);

/// The verified credential of the request, as its cache entry: for handlers that use the
/// entry's memos (`GET /v1/user`). Present exactly where [`Caller`] is.
#[derive(Debug, Clone)]
pub struct CallerCredential(pub std::sync::Arc<CachedCredential>);

/// The entry the route's access check put into the request.
fn verified_entry(parts: &Parts) -> Result<&std::sync::Arc<CachedCredential>, ApiError> {
    parts
        .extensions
        .get::<std::sync::Arc<CachedCredential>>()
        .ok_or_else(|| ApiError::internal("route has no access declaration"))
}

impl<S: Send + Sync> FromRequestParts<S> for CallerCredential {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        verified_entry(parts).map(|c| CallerCredential(c.clone()))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        verified_entry(parts).map(|c| Caller(c.principal()))
    }
}

/// The audit context of a request: request id, client address (after the trusted-proxy rule),
/// user agent, and the acting credential if the route authenticated one.
pub fn actor_of(
    state: &crate::state::AppState,
    headers: &axum::http::HeaderMap,
    extensions: &axum::http::Extensions,
) -> crate::audit::Actor {
    let peer = extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]));
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(truncated_user_agent);
    crate::audit::Actor {
        request_id: crate::error::current_request_id(),
        ip: Some(crate::net::client_ip(peer, headers, &state.trusted)),
        user_agent,
        credential_id: extensions
            .get::<std::sync::Arc<CachedCredential>>()
            .map(|c| c.credential_id.clone()),
    }
}

/// A user agent as audit events record it: its first 256 characters.
fn truncated_user_agent(ua: &str) -> std::sync::Arc<str> {
    match ua.char_indices().nth(256) {
        Some((end, _)) => std::sync::Arc::from(&ua[..end]),
        None => std::sync::Arc::from(ua),
    }
}

impl FromRequestParts<crate::state::AppState> for crate::audit::Actor {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &crate::state::AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(actor_of(state, &parts.headers, &parts.extensions))
    }
}

// ---- forms (`application/x-www-form-urlencoded`): OAuth endpoints and HTML pages ----------

/// Parsed form or query parameters. Following RFC 6749 §3.1/§3.2, a parameter sent without a
/// value counts as omitted, and a parameter sent more than once is recorded as a duplicate
/// (which every OAuth endpoint refuses with `invalid_request`).
#[derive(Default)]
pub struct FormParams {
    pairs: Vec<(String, String)>,
    duplicates: Vec<String>,
}

impl std::fmt::Debug for FormParams {
    // values may be passwords, secrets or tokens: only the names are shown
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FormParams")
            .field(
                "names",
                &self
                    .pairs
                    .iter()
                    .map(|(k, _)| k.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("duplicates", &self.duplicates)
            .finish()
    }
}

impl FormParams {
    /// Parses `a=1&b=2` (form-urlencoded, `+` is a space).
    pub fn parse(bytes: &[u8]) -> Self {
        let mut out = FormParams::default();
        for (k, v) in form_urlencoded::parse(bytes) {
            if v.is_empty() {
                continue;
            }
            if out.pairs.iter().any(|(name, _)| *name == k) {
                if !out.duplicates.iter().any(|d| *d == k) {
                    out.duplicates.push(k.into_owned());
                }
                continue;
            }
            out.pairs.push((k.into_owned(), v.into_owned()));
        }
        out
    }

    /// The value of `name`, if given (the first one, if it was duplicated).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether `name` was given more than once.
    pub fn is_duplicated(&self, name: &str) -> bool {
        self.duplicates.iter().any(|d| d == name)
    }

    /// The names given more than once.
    pub fn duplicates(&self) -> &[String] {
        &self.duplicates
    }

    /// `invalid_request` naming the first duplicated parameter.
    pub fn reject_duplicates(&self) -> Result<(), ApiError> {
        match self.duplicates.first() {
            Some(d) => Err(ApiError::invalid_request(format!(
                "{d}: given more than once (RFC 6749 §3.1)"
            ))),
            None => Ok(()),
        }
    }
}

async fn read_form<S: Send + Sync>(req: Request, state: &S) -> Result<FormParams, ApiError> {
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|ct| {
            ct.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
        .unwrap_or(false);
    if !is_form {
        return Err(ApiError::invalid_request(
            "Content-Type: must be application/x-www-form-urlencoded",
        ));
    }
    let (bytes, _) = body_bytes(req, state).await?;
    Ok(FormParams::parse(&bytes))
}

/// A strict form body for OAuth endpoints: wrong content type or a duplicated parameter is
/// 400 `invalid_request` (with `error_description`).
#[derive(Debug)]
pub struct ApiForm(pub FormParams);

impl<S: Send + Sync> FromRequest<S> for ApiForm {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let form = read_form(req, state).await.map_err(ApiError::oauth)?;
        form.reject_duplicates().map_err(ApiError::oauth)?;
        Ok(ApiForm(form))
    }
}

/// A form body for HTML pages: never rejects, so the handler can answer with a page.
#[derive(Debug)]
pub struct FormBody(pub Result<FormParams, ApiError>);

impl<S: Send + Sync> FromRequest<S> for FormBody {
    type Rejection = std::convert::Infallible;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Ok(FormBody(read_form(req, state).await))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn user_agents_keep_their_first_256_characters() {
        for ua in [
            "",
            "curl/8.5.0",
            &"é".repeat(256),
            &"é✓x".repeat(200),
            &"a".repeat(257),
        ] {
            let want: String = ua.chars().take(256).collect();
            assert_eq!(&*super::truncated_user_agent(ua), want.as_str());
        }
    }
}
