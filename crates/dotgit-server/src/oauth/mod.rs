//! The OAuth 2.0 authorization server (SPEC §4 "OAuth"): authorization code grant with PKCE
//! (RFC 6749 §4.1, RFC 7636), rotating refresh tokens (RFC 9700 §4.14.2), revocation
//! (RFC 7009), introspection (RFC 7662), metadata (RFC 8414) and the `iss` authorization
//! response parameter (RFC 9207).
//!
//! What must hold: PKCE S256 for every client (`plain` refused); redirect URIs matched exactly;
//! codes single-use and 60 s; access tokens `dgo_…` for 2 h; refresh tokens `dgr_…` expire 30
//! days after the original grant whatever the rotations; every secret stored only as its
//! SHA-256 digest; confidential clients authenticate with exactly one method
//! (`client_secret_basic` or `client_secret_post`), public clients by `client_id` and PKCE;
//! every failed client authentication counts against the source address.

pub mod apps;
pub mod authorizations;
pub mod authorize;
pub mod metadata;
pub mod token;

use crate::error::ApiError;
use crate::extract::FormParams;
use crate::state::AppState;
use axum::http::{header, HeaderMap};
use base64::Engine;
use dotgit_core::SecretHash;
use dotgit_store::OAuthAppRow;
use std::net::IpAddr;

/// Access tokens live 2 hours.
pub const ACCESS_TOKEN_SECONDS: i64 = 7200;
/// Refresh tokens end 30 days after the original grant (absolute).
pub const REFRESH_TOKEN_SECONDS: i64 = 30 * 86_400;
/// Authorization codes live 60 seconds.
pub const CODE_SECONDS: i64 = 60;
/// How long an ended token or grant is kept before it is deleted: a day, during which a
/// request presenting it is still refused (and audited) as expired rather than unknown.
pub const RETENTION_AFTER_END_SECONDS: i64 = 86_400;
/// Rows of each kind one purge transaction deletes at most (the write lock is held that long).
pub const PURGE_BATCH: i64 = 500;
/// Purge transactions per maintenance tick at most; what is left waits for the next tick.
pub const PURGE_BATCHES_PER_TICK: usize = 20;

/// Deletes the access tokens that expired, and the grants whose refresh lifetime ended, more
/// than [`RETENTION_AFTER_END_SECONDS`] ago, and the refresh tokens issued more than a refresh
/// lifetime before that (each ended with its grant by then). Called on the
/// server's maintenance tick (every 5 s): a few batches each time, so that a backlog (a
/// server that was down, an upgrade from before purging) drains without holding the write lock
/// for long. Returns what was deleted in all.
pub async fn purge_ended(state: &AppState) -> dotgit_store::OAuthPurged {
    let before = state.now() - RETENTION_AFTER_END_SECONDS;
    let mut total = dotgit_store::OAuthPurged::default();
    for _ in 0..PURGE_BATCHES_PER_TICK {
        match state
            .store
            .purge_ended_oauth(before, REFRESH_TOKEN_SECONDS, PURGE_BATCH)
            .await
        {
            Ok(p) => {
                total.access_tokens += p.access_tokens;
                total.refresh_tokens += p.refresh_tokens;
                total.grants += p.grants;
                total.more = p.more;
                if !p.more {
                    break;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not purge ended OAuth tokens");
                break;
            }
        }
    }
    if total.access_tokens + total.refresh_tokens + total.grants > 0 {
        tracing::info!(
            access_tokens = total.access_tokens,
            refresh_tokens = total.refresh_tokens,
            grants = total.grants,
            "purged ended OAuth tokens and grants"
        );
    }
    total
}

/// The PKCE S256 challenge of a verifier: `BASE64URL(SHA256(verifier))` (RFC 7636 §4.2).
pub fn s256(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(SecretHash::of(verifier).0)
}

/// Whether `s` is a valid code verifier (RFC 7636 §4.1): 43–128 unreserved characters.
pub fn valid_verifier(s: &str) -> bool {
    (43..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// Whether `s` looks like an S256 challenge: 43 base64url characters (32 bytes).
pub fn valid_s256_challenge(s: &str) -> bool {
    s.len() == 43
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// An authenticated client.
#[derive(Debug)]
pub struct Client {
    /// The app.
    pub app: std::sync::Arc<OAuthAppRow>,
}

/// Decodes one `application/x-www-form-urlencoded` component (RFC 6749 §2.3.1 asks clients to
/// encode the client id and secret this way before Basic authentication).
fn form_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let h = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(h, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// `client_secret_basic` credentials, if the request has an `Authorization: Basic` header.
/// `Err` for an `Authorization` header that is not usable Basic.
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, ApiError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(v) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::invalid_request(
            "Authorization: given more than once",
        ));
    }
    let bad = || ApiError::invalid_client("Client authentication failed.");
    let s = v.to_str().map_err(|_| bad())?;
    let (scheme, rest) = s.split_once(' ').ok_or_else(bad)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(ApiError::invalid_client(
            "Client authentication failed: use HTTP Basic (client_secret_basic) or client_secret_post.",
        ));
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    let (id, secret) = text.split_once(':').ok_or_else(bad)?;
    let id = form_decode(id).ok_or_else(bad)?;
    let secret = form_decode(secret).ok_or_else(bad)?;
    Ok(Some((id, secret)))
}

/// Authenticates the client of a token, revocation or introspection request (RFC 6749 §2.3):
/// a confidential client by its secret through exactly one method, a public client by its
/// `client_id` alone. A source over its failure budget gets 429 first; every failure counts.
pub async fn authenticate_client(
    state: &AppState,
    headers: &HeaderMap,
    form: &FormParams,
    ip: IpAddr,
) -> Result<Client, ApiError> {
    let result = client_of(state, headers, form, ip).await;
    if let Err(e) = &result {
        if e.code == "invalid_client" {
            // a refused client is an authentication decision like any other
            let actor = crate::audit::Actor {
                request_id: crate::error::current_request_id(),
                ip: Some(ip),
                user_agent: None,
                credential_id: None,
            };
            let client_id = match basic_credentials(headers) {
                Ok(Some((id, _))) => Some(id),
                _ => form.get("client_id").map(str::to_owned),
            }
            .filter(|c| c.len() <= 128);
            state
                .auditor
                .record(actor.event(
                    state.now(),
                    dotgit_core::audit::types::AUTH_FAILED,
                    None,
                    client_id.as_deref(),
                    dotgit_core::audit::outcomes::FAILURE,
                    Some(format!(
                        "client authentication: {}",
                        e.cause.as_deref().unwrap_or("refused")
                    )),
                ))
                .await;
        }
    }
    result
}

async fn client_of(
    state: &AppState,
    headers: &HeaderMap,
    form: &FormParams,
    ip: IpAddr,
) -> Result<Client, ApiError> {
    let now = state.now();
    if let Some(wait) = state.limiter.blocked(ip, now) {
        return Err(ApiError::rate_limited(
            "Too many failed authentication attempts from this address; back off and retry later.",
            wait,
        )
        .oauth());
    }
    let fail = |msg: &str, cause: &str| {
        state.limiter.record_failure(ip, now);
        tracing::info!(source_ip = %ip, reason = cause, "client authentication failed");
        ApiError::invalid_client(msg.to_owned()).with_cause(cause.to_owned())
    };
    let basic = match basic_credentials(headers) {
        Ok(b) => b,
        Err(e) if e.code == "invalid_client" => {
            return Err(fail(&e.message, "unusable Authorization header"))
        }
        Err(e) => return Err(e.oauth()),
    };
    let form_id = form.get("client_id");
    let form_secret = form.get("client_secret");
    let (client_id, secret) = match &basic {
        Some((id, secret)) => {
            if form_secret.is_some() {
                return Err(ApiError::invalid_request(
                    "client_secret: the client authenticated with HTTP Basic already; use exactly one method",
                )
                .oauth());
            }
            if form_id.is_some_and(|f| f != id) {
                return Err(ApiError::invalid_request(
                    "client_id: differs from the HTTP Basic client id",
                )
                .oauth());
            }
            (id.as_str(), Some(secret.as_str()).filter(|s| !s.is_empty()))
        }
        None => match form_id {
            Some(id) => (id, form_secret),
            None => {
                return Err(fail(
                    "Client authentication failed: send client_id (and the client secret for confidential clients).",
                    "no client credentials",
                ))
            }
        },
    };
    if client_id.len() > 128 {
        return Err(fail("Client authentication failed.", "client_id too long"));
    }
    // the app and its account's rotation policy, from the verification cache (dropped on any
    // secret rotation, app deletion or policy change) or the store
    let cached = match state.cache.client(client_id) {
        Some(c) => c,
        None => {
            let generation = state.cache.generation();
            let Some(app) = state.store.oauth_app(client_id).await? else {
                return Err(fail("Client authentication failed.", "unknown client_id"));
            };
            let mut secret_refused_from = None;
            if app.confidential {
                // an account that enforces its rotation policy also ages client secrets out
                if let Some(acct) = state.store.account_by_id(&app.account_id).await? {
                    if acct.rotation_policy_enforce {
                        secret_refused_from = apps::secret_due_at(&app, acct.rotation_policy_days);
                    }
                }
            }
            let c = std::sync::Arc::new(crate::cache::CachedClient {
                app: std::sync::Arc::new(app),
                secret_refused_from,
            });
            state.cache.fill_client(generation, c.clone());
            c
        }
    };
    let app = &cached.app;
    match (app.confidential, secret, &app.secret_hash) {
        (true, Some(secret), Some(stored)) => {
            let presented = SecretHash::of(secret).to_hex();
            if !crate::web::session::constant_time_eq(&presented, stored) {
                return Err(fail("Client authentication failed.", "wrong client secret"));
            }
        }
        (true, _, _) => {
            return Err(fail(
                "Client authentication failed: this confidential client must send its secret.",
                "confidential client without a secret",
            ))
        }
        (false, Some(_), _) => {
            return Err(fail(
                "Client authentication failed: a public client has no secret.",
                "public client sent a secret",
            ))
        }
        (false, None, _) => {}
    }
    if cached.secret_refused_from.is_some_and(|d| now >= d) {
        return Err(fail(
            "Client authentication failed: the client secret is older than the account's rotation policy; rotate it.",
            "client secret past the rotation policy",
        ));
    }
    Ok(Client { app: app.clone() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7636_appendix_b_vector() {
        assert_eq!(
            s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert!(valid_verifier(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
        ));
        assert!(!valid_verifier("short"));
        assert!(!valid_verifier(&"a".repeat(129)));
        assert!(!valid_verifier(&format!("{}+", "a".repeat(43))));
        assert!(valid_s256_challenge(
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
        assert!(!valid_s256_challenge("plain-challenge"));
    }

    #[test]
    fn basic_components_are_form_decoded() {
        assert_eq!(form_decode("a%3Ab+c").as_deref(), Some("a:b c"));
        assert_eq!(form_decode("%zz"), None);
        assert_eq!(form_decode("%4"), None);
    }
}
