//! Server-rendered HTML (SPEC §5 "Dashboard"): the shared layout, the one self-hosted stylesheet,
//! message pages, and the security headers every page carries.
//!
//! What must hold: pages are askama templates, HTML-escaped by default, with no external asset;
//! every HTML response has a strict `Content-Security-Policy` (`default-src 'none'`, styles only
//! from this origin, forms post only to this origin, no framing), `X-Frame-Options: DENY` and
//! `Referrer-Policy: no-referrer`. Browser sessions and CSRF live in [`session`], the login and
//! logout pages in [`login`]; the dashboard ([`dashboard`]) builds on the same three.

pub mod dashboard;
pub mod login;
pub mod session;

use crate::error::ApiError;
use askama::Template;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// The Content-Security-Policy of every HTML page.
pub const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The stylesheet, compiled in.
const CSS: &str = include_str!("../../static/dotgit.css");

/// Adds the HTML security headers to a response.
pub fn secure_html_headers(resp: &mut Response) {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

/// An HTML page with the security headers.
pub fn html(status: StatusCode, body: String) -> Response {
    let mut resp = (status, body).into_response();
    secure_html_headers(&mut resp);
    resp
}

/// Renders a template into a page; a template error is a 500 (a bug), never a partial page.
pub fn render(status: StatusCode, t: &impl Template) -> Response {
    match t.render() {
        Ok(body) => html(status, body),
        Err(e) => ApiError::internal(format!("template: {e}")).into_response(),
    }
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage<'a> {
    heading: &'a str,
    message: &'a str,
    class: &'a str,
    link: Option<&'a str>,
}

/// A page that only says something (an error, mostly).
pub fn message(status: StatusCode, heading: &str, message: &str) -> Response {
    let class = if status.is_success() { "info" } else { "error" };
    render(
        status,
        &MessagePage {
            heading,
            message,
            class,
            link: None,
        },
    )
}

/// A message page with a link to go on.
pub fn message_with_link(status: StatusCode, heading: &str, message: &str, link: &str) -> Response {
    let class = if status.is_success() { "info" } else { "error" };
    render(
        status,
        &MessagePage {
            heading,
            message,
            class,
            link: Some(link),
        },
    )
}

/// An [`ApiError`] shown as a page (same status; the public message only).
pub fn error_page(e: ApiError) -> Response {
    if let Some(cause) = &e.cause {
        if e.status.is_server_error() {
            tracing::error!(code = e.code, cause = %cause, "page failed");
        }
    }
    let heading = match e.status {
        StatusCode::TOO_MANY_REQUESTS => "Too many attempts",
        StatusCode::FORBIDDEN => "Request refused",
        s if s.is_server_error() => "Something went wrong",
        _ => "Bad request",
    };
    let mut resp = message(e.status, heading, &e.message);
    if let Some(s) = e.retry_after {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(s));
    }
    resp
}

/// A 303 See Other to `location` (after a form POST).
pub fn see_other(location: &str) -> Response {
    redirect(StatusCode::SEE_OTHER, location)
}

/// A redirect with the given status; an unusable location becomes a 500.
pub fn redirect(status: StatusCode, location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(v) => {
            let mut resp = status.into_response();
            resp.headers_mut().insert(header::LOCATION, v);
            resp
        }
        Err(_) => ApiError::internal("redirect location is not a header value").into_response(),
    }
}

/// `GET /static/dotgit.css`.
pub async fn stylesheet() -> Response {
    let mut resp = CSS.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    resp
}
