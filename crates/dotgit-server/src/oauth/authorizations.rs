//! `/v1/oauth/authorizations`: the apps the caller's account has authorized, and revoking one.
//!
//! What must hold: revoking an authorization revokes every grant under it (every access and
//! refresh token the app holds for this account, and any code not yet redeemed) in one
//! transaction, and this node's verification cache is cleared before the 204, so the app's
//! access tokens answer 401 on the very next request.

use crate::error::ApiError;
use crate::extract::{ApiPath, Caller};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use dotgit_core::clock::rfc3339;
use dotgit_core::ScopeSet;
use dotgit_store::OAuthAuthorizationRow;
use schemars::JsonSchema;
use serde::Serialize;

/// An app the account has authorized.
#[derive(Debug, Serialize, JsonSchema)]
pub struct AuthorizationOut {
    /// Opaque id (`authz_…`), for `DELETE`.
    pub id: String,
    /// The app's client id.
    pub client_id: String,
    /// The app's name.
    pub app_name: String,
    /// Every scope approved since the authorization was (re)created.
    pub scopes: Vec<String>,
    /// First approval (RFC 3339).
    pub created_at: String,
    /// Latest approval (RFC 3339).
    pub updated_at: String,
}

fn out(r: &OAuthAuthorizationRow) -> AuthorizationOut {
    AuthorizationOut {
        id: r.id.clone(),
        client_id: r.client_id.clone(),
        app_name: r.app_name.clone(),
        scopes: ScopeSet::parse_space_separated(&r.scope)
            .unwrap_or_default()
            .to_strings(),
        created_at: rfc3339(r.created_at),
        updated_at: rfc3339(r.updated_at),
    }
}

/// Lists the apps the account has authorized.
pub async fn list(
    State(s): State<AppState>,
    Caller(p): Caller,
) -> Result<Json<Vec<AuthorizationOut>>, ApiError> {
    let rows = s.store.list_oauth_authorizations(&p.account_id).await?;
    Ok(Json(rows.iter().map(out).collect()))
}

/// Revokes an authorization: 204, and the app's tokens for this account stop working at once.
pub async fn revoke(
    State(s): State<AppState>,
    Caller(p): Caller,
    actor: crate::audit::Actor,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let now = s.now();
    let done = s
        .store
        .revoke_oauth_authorization(&p.account_id, &id, now, &actor.oauth_audit(now))
        .await?;
    s.invalidate_local();
    if done {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("The authorization"))
    }
}
