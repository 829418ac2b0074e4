//! `POST /oauth/token` (RFC 6749 §4.1.3, §6), `POST /oauth/revoke` (RFC 7009) and
//! `POST /oauth/introspect` (RFC 7662).
//!
//! What must hold:
//! - Only the `authorization_code` and `refresh_token` grants exist; anything else is
//!   `unsupported_grant_type`. Every request authenticates its client first.
//! - A code is redeemed once, by the client it was issued to, with the exact redirect URI of the
//!   authorization request and a PKCE verifier matching its S256 challenge, within 60 s; a second
//!   redemption revokes every token the first one issued. The store consumes it with a
//!   conditional update in the transaction that issues the tokens, so racing redemptions yield
//!   exactly one success.
//! - Every refresh rotates the refresh token (same absolute end, 30 days after the grant); an
//!   already rotated token presented again revokes the whole family (RFC 9700 §4.14.2). A
//!   refresh may narrow the scope, never widen it; a suspended account gets 403.
//! - Answers carrying tokens have `Cache-Control: no-store` and `Pragma: no-cache`; errors are
//!   RFC 6749 §5.2 codes in the SPEC §3 JSON shape (plus `error_description`).
//! - Revocation and introspection only ever concern the calling client's own tokens: another
//!   client's token is never revoked and introspects as exactly `{"active": false}`.

use super::{
    authenticate_client, s256, valid_verifier, Client, ACCESS_TOKEN_SECONDS, REFRESH_TOKEN_SECONDS,
};
use crate::auth::owner_may;
use crate::error::ApiError;
use crate::extract::{ApiForm, FormParams};
use crate::ops::{entropy_blocks, new_id, new_secret_from, new_sorted_id_from};
use crate::state::AppState;
use crate::web::session::constant_time_eq;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use dotgit_core::credential::{classify, TokenShape};
use dotgit_core::{AccountStatus, CredentialKind, Plan, ScopeSet, Secret};
use dotgit_store::{
    AccountRow, IssuedTokens, OAuthGrantRow, OAuthTokenRow, Redeemed, Rotated, TokenRevocation,
};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::json;
use std::net::SocketAddr;

/// `POST /oauth/token` form parameters (documentation only; the body is
/// `application/x-www-form-urlencoded`).
#[derive(Debug, JsonSchema)]
pub struct TokenRequest {
    /// `authorization_code` or `refresh_token`.
    pub grant_type: String,
    /// authorization_code: the code from the redirect.
    pub code: Option<String>,
    /// authorization_code: exactly the redirect_uri of the authorization request.
    pub redirect_uri: Option<String>,
    /// authorization_code: the PKCE verifier (43–128 characters).
    pub code_verifier: Option<String>,
    /// refresh_token: the current refresh token.
    pub refresh_token: Option<String>,
    /// refresh_token: a narrower scope for the new access token (space-separated).
    pub scope: Option<String>,
    /// client_secret_post / public clients.
    pub client_id: Option<String>,
    /// client_secret_post (confidential clients not using HTTP Basic).
    pub client_secret: Option<String>,
}

/// `POST /oauth/revoke` and `POST /oauth/introspect` form parameters (documentation only).
#[derive(Debug, JsonSchema)]
pub struct TokenQuery {
    /// The access or refresh token.
    pub token: String,
    /// `access_token` or `refresh_token` (optional; every kind is searched).
    pub token_type_hint: Option<String>,
    /// client_secret_post / public clients.
    pub client_id: Option<String>,
    /// client_secret_post.
    pub client_secret: Option<String>,
}

/// A successful token response (RFC 6749 §5.1).
#[derive(Serialize, JsonSchema)]
pub struct TokenResponse {
    /// `dgo_…`, valid for `expires_in` seconds.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires (7200).
    pub expires_in: i64,
    /// `dgr_…`, single use: every refresh returns a new one.
    pub refresh_token: String,
    /// The access token's scopes, space-separated.
    pub scope: String,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &"<redacted>")
            .field("refresh_token", &"<redacted>")
            .field("scope", &self.scope)
            .finish()
    }
}

/// An introspection answer (RFC 7662 §2.2); inactive tokens are only `{"active": false}`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct IntrospectResponse {
    /// Whether the token is active.
    pub active: bool,
    /// Effective scopes, space-separated.
    pub scope: String,
    /// The client it was issued to.
    pub client_id: String,
    /// The user's username.
    pub username: String,
    /// `Bearer` (access token) or `refresh_token`.
    pub token_type: String,
    /// Expiry (Unix seconds).
    pub exp: i64,
    /// Issue time (Unix seconds).
    pub iat: i64,
    /// The user's account id.
    pub sub: String,
    /// The API the token is for (the server's public URL).
    pub aud: String,
    /// The issuer (the server's public URL).
    pub iss: String,
}

fn peer_ip(s: &AppState, peer: SocketAddr, headers: &HeaderMap) -> std::net::IpAddr {
    crate::net::client_ip(peer.ip(), headers, &s.trusted)
}

/// `POST /oauth/token`.
pub async fn token(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    actor: crate::audit::Actor,
    ApiForm(form): ApiForm,
) -> Result<Response, ApiError> {
    let client = authenticate_client(&s, &headers, &form, peer_ip(&s, peer, &headers)).await?;
    let result = match form.get("grant_type") {
        None => Err(ApiError::invalid_request(
            "grant_type: required (authorization_code or refresh_token)",
        )),
        Some("authorization_code") => code_grant(&s, &client, &form, &actor).await,
        Some("refresh_token") => refresh_grant(&s, &client, &form, &actor).await,
        Some(_) => Err(ApiError::unsupported_grant_type(
            "grant_type: only authorization_code and refresh_token are supported",
        )),
    };
    result.map_err(ApiError::oauth)
}

/// The secrets and rows of one issuance, made before the transaction that stores them.
struct NewTokens {
    access_secret: Secret,
    refresh_secret: Secret,
    access: OAuthTokenRow,
    refresh: OAuthTokenRow,
}

fn new_tokens(client_id: &str, now: i64) -> Result<NewTokens, ApiError> {
    // two secrets and two ids from one call to the CSPRNG (four calls were ~2 % of a refresh)
    let [a, r, a_id, r_id] = entropy_blocks::<4>()?;
    let access_secret = new_secret_from(CredentialKind::OAuthAccess, &a)?;
    let refresh_secret = new_secret_from(CredentialKind::OAuthRefresh, &r)?;
    let row = |kind: &str, secret: &Secret, id: &[u8; 64]| -> Result<OAuthTokenRow, ApiError> {
        Ok(OAuthTokenRow {
            id: new_sorted_id_from("tok", id)?,
            token_hash: secret.hash().to_hex(),
            kind: kind.to_owned(),
            grant_id: String::new(),
            account_id: String::new(),
            client_id: client_id.to_owned(),
            scope: String::new(),
            created_at: now,
            expires_at: 0,
            revoked_at: None,
            used_at: None,
            replaced_by: None,
        })
    };
    Ok(NewTokens {
        access: row("access", &access_secret, &a_id)?,
        refresh: row("refresh", &refresh_secret, &r_id)?,
        access_secret,
        refresh_secret,
    })
}

fn suspended(acct: &AccountRow) -> bool {
    AccountStatus::parse(&acct.status) == AccountStatus::Suspended
}

fn token_response(access: &Secret, refresh: &Secret, scope: &str) -> Response {
    let mut resp = Json(TokenResponse {
        access_token: access.expose().to_owned(),
        token_type: "Bearer",
        expires_in: ACCESS_TOKEN_SECONDS,
        refresh_token: refresh.expose().to_owned(),
        scope: scope.to_owned(),
    })
    .into_response();
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    resp
}

async fn code_grant(
    s: &AppState,
    client: &Client,
    form: &FormParams,
    actor: &crate::audit::Actor,
) -> Result<Response, ApiError> {
    let code = form
        .get("code")
        .ok_or_else(|| ApiError::invalid_request("code: required"))?;
    let redirect_uri = form.get("redirect_uri").ok_or_else(|| {
        ApiError::invalid_request(
            "redirect_uri: required (exactly the one of the authorization request)",
        )
    })?;
    let verifier = form.get("code_verifier").ok_or_else(|| {
        ApiError::invalid_request("code_verifier: required (PKCE S256 is mandatory)")
    })?;
    if !valid_verifier(verifier) {
        return Err(ApiError::invalid_request(
            "code_verifier: must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~ (RFC 7636 §4.1)",
        ));
    }
    if code.len() > 256 {
        return Err(ApiError::invalid_grant(
            "code: invalid, expired or already used",
        ));
    }
    let now = s.now();
    let mut t = new_tokens(&client.app.client_id, now)?;
    let grant_id = new_id("grant")?;
    let challenge = s256(verifier);
    let mut scope_out = String::new();
    let outcome = s
        .store
        .redeem_code(
            &dotgit_core::SecretHash::of(code).to_hex(),
            now,
            |c, acct| {
                if c.client_id != client.app.client_id {
                    return Err(ApiError::invalid_grant(
                        "code: was not issued to this client",
                    ));
                }
                if now >= c.expires_at {
                    return Err(ApiError::invalid_grant("code: expired"));
                }
                if c.redirect_uri != redirect_uri {
                    return Err(ApiError::invalid_grant(
                        "redirect_uri: does not match the authorization request",
                    ));
                }
                if !constant_time_eq(&challenge, &c.code_challenge) {
                    return Err(ApiError::invalid_grant(
                        "code_verifier: does not match the code_challenge",
                    ));
                }
                if suspended(acct) {
                    return Err(ApiError::account_suspended());
                }
                let grant = OAuthGrantRow {
                    id: grant_id.clone(),
                    authorization_id: c.authorization_id.clone(),
                    account_id: c.account_id.clone(),
                    client_id: c.client_id.clone(),
                    scope: c.scope.clone(),
                    created_at: now,
                    refresh_expires_at: now + REFRESH_TOKEN_SECONDS,
                    revoked_at: None,
                    revoked_reason: None,
                };
                for (row, expires_at) in [
                    (&mut t.access, now + ACCESS_TOKEN_SECONDS),
                    (&mut t.refresh, grant.refresh_expires_at),
                ] {
                    row.grant_id = grant.id.clone();
                    row.account_id = c.account_id.clone();
                    row.scope = c.scope.clone();
                    row.expires_at = expires_at;
                }
                scope_out = c.scope.clone();
                Ok(IssuedTokens {
                    grant: Some(grant),
                    access: t.access.clone(),
                    refresh: t.refresh.clone(),
                })
            },
            &actor.oauth_audit(now),
        )
        .await?;
    match outcome {
        Redeemed::Issued => Ok(token_response(
            &t.access_secret,
            &t.refresh_secret,
            &scope_out,
        )),
        Redeemed::Unknown => Err(ApiError::invalid_grant(
            "code: invalid, expired or already used",
        )),
        Redeemed::Replayed => {
            s.invalidate_local();
            Err(ApiError::invalid_grant(
                "code: already used; every token issued from it has been revoked",
            )
            .with_cause("authorization code replayed"))
        }
        Redeemed::Refused(e) => Err(e),
    }
}

async fn refresh_grant(
    s: &AppState,
    client: &Client,
    form: &FormParams,
    actor: &crate::audit::Actor,
) -> Result<Response, ApiError> {
    let presented = form
        .get("refresh_token")
        .ok_or_else(|| ApiError::invalid_request("refresh_token: required"))?;
    let requested = match form.get("scope") {
        None => None,
        Some(sc) => Some(
            ScopeSet::parse_space_separated(sc)
                .map_err(|e| ApiError::invalid_scope(format!("scope: {e}")))?,
        ),
    };
    let hash = match classify(presented) {
        TokenShape::Opaque(CredentialKind::OAuthRefresh, h) => h,
        _ => return Err(ApiError::invalid_grant("refresh_token: invalid")),
    };
    let now = s.now();
    let NewTokens {
        access_secret,
        refresh_secret,
        access,
        refresh,
    } = new_tokens(&client.app.client_id, now)?;
    let client_id = client.app.client_id.clone();
    let outcome =
        s.store
            .rotate_refresh(
                &hash.to_hex(),
                now,
                move |tok, grant, acct| {
                    if tok.client_id != client_id {
                        return Err(ApiError::invalid_grant(
                            "refresh_token: was not issued to this client",
                        ));
                    }
                    if now >= tok.expires_at || now >= grant.refresh_expires_at {
                        return Err(ApiError::invalid_grant("refresh_token: expired"));
                    }
                    if suspended(acct) {
                        return Err(ApiError::account_suspended());
                    }
                    let granted = ScopeSet::parse_space_separated(&tok.scope).unwrap_or_default();
                    let access_scope =
                        match &requested {
                            None => granted.clone(),
                            Some(r) if r.is_subset_of(&granted) && !r.is_empty() => r.clone(),
                            Some(_) => return Err(ApiError::invalid_scope(
                                "scope: a refresh may only narrow the scope of the original grant",
                            )),
                        };
                    // the check may run again (the store's batch retried): start from the rows
                    let (mut access, mut refresh) = (access.clone(), refresh.clone());
                    access.grant_id = grant.id.clone();
                    access.account_id = tok.account_id.clone();
                    access.scope = access_scope.to_space_separated();
                    access.expires_at = now + ACCESS_TOKEN_SECONDS;
                    // the new refresh token keeps the grant's scope and its absolute end (RFC 6749 §6)
                    refresh.grant_id = grant.id.clone();
                    refresh.account_id = tok.account_id.clone();
                    refresh.scope = tok.scope.clone();
                    refresh.expires_at = grant.refresh_expires_at;
                    Ok(IssuedTokens {
                        grant: None,
                        access,
                        refresh,
                    })
                },
                actor.clone().into_oauth_audit(now),
            )
            .await?;
    match outcome {
        Rotated::Issued(issued) => Ok(token_response(
            &access_secret,
            &refresh_secret,
            &issued.access.scope,
        )),
        Rotated::Unknown | Rotated::Inactive => Err(ApiError::invalid_grant(
            "refresh_token: invalid, expired or revoked",
        )),
        Rotated::Reused => {
            s.invalidate_local();
            Err(ApiError::invalid_grant(
                "refresh_token: already used; the whole grant has been revoked (RFC 9700 §4.14.2)",
            )
            .with_cause("refresh token reused"))
        }
        Rotated::Refused(e) => Err(e),
    }
}

/// `POST /oauth/revoke` (RFC 7009): 200 whatever the token, which is revoked only if it was
/// issued to the calling client; a refresh token takes its whole grant with it.
pub async fn revoke(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    actor: crate::audit::Actor,
    ApiForm(form): ApiForm,
) -> Result<Response, ApiError> {
    let client = authenticate_client(&s, &headers, &form, peer_ip(&s, peer, &headers)).await?;
    let token = form
        .get("token")
        .ok_or_else(|| ApiError::invalid_request("token: required").oauth())?;
    if let TokenShape::Opaque(CredentialKind::OAuthAccess | CredentialKind::OAuthRefresh, h) =
        classify(token)
    {
        let out = s
            .store
            .revoke_token_of_client(
                &h.to_hex(),
                &client.app.client_id,
                s.now(),
                &actor.oauth_audit(s.now()),
            )
            .await
            .map_err(|e| ApiError::from(e).oauth())?;
        if out != TokenRevocation::NoEffect {
            s.invalidate_local();
        }
    }
    Ok(StatusCode::OK.into_response())
}

/// `POST /oauth/introspect` (RFC 7662): confidential clients only; the calling client's own
/// active tokens are described, everything else is exactly `{"active": false}`.
pub async fn introspect(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ApiForm(form): ApiForm,
) -> Result<Response, ApiError> {
    let client = authenticate_client(&s, &headers, &form, peer_ip(&s, peer, &headers)).await?;
    if !client.app.confidential {
        return Err(ApiError::invalid_client(
            "Introspection is only for confidential clients.",
        ));
    }
    let token = form
        .get("token")
        .ok_or_else(|| ApiError::invalid_request("token: required").oauth())?;
    let inactive = || Ok(Json(json!({"active": false})).into_response());
    let TokenShape::Opaque(kind @ (CredentialKind::OAuthAccess | CredentialKind::OAuthRefresh), h) =
        classify(token)
    else {
        return inactive();
    };
    let now = s.now();
    if kind == CredentialKind::OAuthAccess {
        // an access token is answered from the verification cache, like its use as a bearer
        // credential: a revocation, a revoked family or a suspension clears it at once
        let cred = match crate::auth::verify_opaque(&s, kind, &h, now)
            .await
            .map_err(ApiError::oauth)?
        {
            Ok(c) => c,
            Err(_) => return inactive(),
        };
        if cred.client_id.as_deref() != Some(client.app.client_id.as_str())
            || cred.status == AccountStatus::Suspended
        {
            return inactive();
        }
        return Ok(Json(IntrospectResponse {
            active: true,
            scope: cred.scopes.to_space_separated(),
            client_id: client.app.client_id.clone(),
            username: cred.username.clone(),
            token_type: "Bearer".to_owned(),
            exp: cred.expires_at.unwrap_or(0),
            iat: cred.created_at,
            sub: cred.account_id.clone(),
            aud: s.public_url.clone(),
            iss: s.public_url.clone(),
        })
        .into_response());
    }
    let Some((tok, grant, acct)) = s
        .store
        .oauth_token_by_hash(&h.to_hex())
        .await
        .map_err(|e| ApiError::from(e).oauth())?
    else {
        return inactive();
    };
    let active = tok.client_id == client.app.client_id
        && tok.revoked_at.is_none()
        && grant.revoked_at.is_none()
        && now < tok.expires_at
        && !(tok.kind == "refresh" && tok.used_at.is_some())
        && !suspended(&acct);
    if !active {
        return inactive();
    }
    let plan = Plan::parse(&acct.plan).unwrap_or(Plan::Free);
    let scope = ScopeSet::parse_space_separated(&tok.scope)
        .unwrap_or_default()
        .intersect(&owner_may(plan));
    Ok(Json(IntrospectResponse {
        active: true,
        scope: scope.to_space_separated(),
        client_id: tok.client_id,
        username: acct.username,
        token_type: "refresh_token".to_owned(),
        exp: tok.expires_at,
        iat: tok.created_at,
        sub: acct.id,
        aud: s.public_url.clone(),
        iss: s.public_url.clone(),
    })
    .into_response())
}
