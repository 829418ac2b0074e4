//! The one error type at the HTTP edge (SPEC §3): every error is
//! `{"error", "message", "request_id"}` JSON with `X-Request-Id`, and 401s carry the RFC 6750
//! `WWW-Authenticate` challenge. The public message never contains a secret; the internal cause
//! is logged once, here, and never sent.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use dotgit_core::audit::RequestId;
use dotgit_core::Scope;
use dotgit_store::StoreError;
use serde::Serialize;

tokio::task_local! {
    /// The current request's id, set by the request-id middleware.
    pub static REQUEST_ID: RequestId;
}

/// The current request id, or `-` outside a request.
pub fn current_request_id() -> RequestId {
    REQUEST_ID.try_with(|id| *id).unwrap_or(RequestId::NONE)
}

/// The message every invalid credential gets, whatever the reason (SPEC §3).
pub const INVALID_TOKEN_MESSAGE: &str = "The credential is invalid, expired or revoked.";

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Machine-readable code.
    pub code: &'static str,
    /// Human sentence (public).
    pub message: String,
    /// `WWW-Authenticate` value, for 401s.
    pub challenge: Option<String>,
    /// `Retry-After` seconds, for 429s.
    pub retry_after: Option<u64>,
    /// Internal detail, logged once, never sent.
    pub cause: Option<String>,
    /// An OAuth endpoint's error (RFC 6749 §5.2): the body also carries `error_description`
    /// (the same sentence as `message`) for off-the-shelf OAuth clients.
    pub oauth: bool,
}

impl ApiError {
    /// A new error.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            challenge: None,
            retry_after: None,
            cause: None,
            oauth: false,
        }
    }

    /// 401 without any credential: `WWW-Authenticate: Bearer realm="dotgit"`, no error attribute.
    pub fn missing_credential() -> Self {
        let mut e = Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "This request needs a credential: send `Authorization: Bearer <credential>`.",
        );
        e.challenge = Some(r#"Bearer realm="dotgit""#.to_owned());
        e
    }

    /// 401 `invalid_token`: one indistinguishable answer for every bad credential.
    pub fn invalid_token() -> Self {
        let mut e = Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            INVALID_TOKEN_MESSAGE,
        );
        e.challenge = Some(r#"Bearer realm="dotgit", error="invalid_token""#.to_owned());
        e
    }

    /// 401 `insufficient_scope`, naming the scope needed.
    pub fn insufficient_scope(needed: &Scope) -> Self {
        let mut e = Self::new(
            StatusCode::UNAUTHORIZED,
            "insufficient_scope",
            format!("This request needs the scope `{needed}`, which the credential does not have."),
        );
        e.challenge = Some(format!(
            r#"Bearer realm="dotgit", error="insufficient_scope", scope="{needed}""#
        ));
        e
    }

    /// 403 `account_suspended`.
    pub fn account_suspended() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "account_suspended",
            "The account that owns this credential is suspended.",
        )
    }

    /// 429 `rate_limited`.
    pub fn rate_limited(message: &str, retry_after: u64) -> Self {
        let mut e = Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message);
        e.retry_after = Some(retry_after.max(1));
        e
    }

    /// 400 `invalid_request`; the message names the field.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    /// 400 `invalid_scope`.
    pub fn invalid_scope(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_scope", message)
    }

    /// 404 `not_found`.
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} was not found."),
        )
    }

    /// 403 `https_required`.
    pub fn https_required() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "https_required",
            "The dotgit API is served over HTTPS only; the request was not processed.",
        )
    }

    /// 503 `temporarily_unavailable`: fail closed.
    pub fn unavailable(cause: impl std::fmt::Display) -> Self {
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "Storage is unreachable; the request was not processed. Retry later.",
        );
        e.cause = Some(cause.to_string());
        e.retry_after = Some(1);
        e
    }

    /// 500, for bugs only.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        let mut e = Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "An internal error occurred.",
        );
        e.cause = Some(cause.to_string());
        e
    }

    // ---- OAuth 2.0 (RFC 6749 §5.2, RFC 7009, RFC 7662) -----------------------------------

    /// Marks the error as an OAuth endpoint's: the body gains `error_description`.
    pub fn oauth(mut self) -> Self {
        self.oauth = true;
        self
    }

    /// 401 `invalid_client`: client authentication failed (unknown client, no or wrong
    /// secret, unsupported method). Always with the `Basic` challenge (RFC 6749 §5.2).
    pub fn invalid_client(message: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::UNAUTHORIZED, "invalid_client", message).oauth();
        e.challenge = Some(r#"Basic realm="dotgit""#.to_owned());
        e
    }

    /// 400 `invalid_grant`: the code or refresh token is invalid, expired, revoked, used,
    /// issued to another client, or its redirect URI or PKCE verifier does not match.
    pub fn invalid_grant(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_grant", message).oauth()
    }

    /// 400 `unauthorized_client`: this client may not use this grant.
    pub fn unauthorized_client(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "unauthorized_client", message).oauth()
    }

    /// 400 `unsupported_grant_type`.
    pub fn unsupported_grant_type(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "unsupported_grant_type", message).oauth()
    }

    /// Attaches an internal cause (logged, never sent).
    pub fn with_cause(mut self, cause: impl Into<String>) -> Self {
        self.cause = Some(cause.into());
        self
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(field) => {
                ApiError::invalid_request(format!("{field}: already exists"))
            }
            StoreError::Internal(what) => ApiError::internal(what),
            other => ApiError::unavailable(other),
        }
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    message: &'a str,
    request_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_description: Option<&'a str>,
}

/// Renders an error body (used by `ApiError` and by the plain-HTTP listener).
pub fn json_error_response(
    status: StatusCode,
    code: &str,
    message: &str,
    request_id: &str,
) -> Response {
    error_response(status, code, message, request_id, None)
}

/// The body of every error; OAuth endpoints add `error_description` (the same sentence as
/// `message`) and `Pragma: no-cache` (RFC 6749 §5.1–5.2).
fn error_response(
    status: StatusCode,
    code: &str,
    message: &str,
    request_id: &str,
    error_description: Option<&str>,
) -> Response {
    let body = serde_json::to_vec(&Body {
        error: code,
        message,
        request_id,
        error_description,
    })
    .unwrap_or_default();
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    if error_description.is_some() {
        resp.headers_mut()
            .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    }
    resp
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let request_id = current_request_id();
        if let Some(cause) = &self.cause {
            if self.status.is_server_error() {
                tracing::error!(request_id = %request_id, code = self.code, cause = %cause, "request failed");
            } else {
                tracing::debug!(request_id = %request_id, code = self.code, cause = %cause, "request refused");
            }
        }
        let description = self.oauth.then_some(self.message.as_str());
        let mut resp = error_response(
            self.status,
            self.code,
            &self.message,
            request_id.as_str(),
            description,
        );
        if let Some(c) = self.challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, c);
        }
        if let Some(s) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        resp
    }
}
