//! `GET /v1/user`: the caller, its account and the credential in use.

use crate::error::ApiError;
use crate::extract::Caller;
use crate::state::AppState;
use axum::extract::State;
use axum::Json;
use schemars::JsonSchema;
use serde::Serialize;

/// The credential a request used.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CredentialInfo {
    /// `api_key`, `oauth_access_token`, `jwt` or `mtls`.
    pub kind: String,
    /// Credential id.
    pub id: String,
    /// Effective scopes.
    pub scopes: Vec<String>,
    /// When it stops working (RFC 3339), or null.
    pub expires_at: Option<String>,
}

/// An account as its owner sees it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct UserOut {
    /// Account id.
    pub id: String,
    /// Username.
    pub username: String,
    /// `free`, `pro` or `enterprise`.
    pub plan: String,
    /// `active` or `suspended`.
    pub status: String,
    /// The credential in use.
    pub credential: CredentialInfo,
}

/// The caller.
pub async fn get_user(
    State(_s): State<AppState>,
    Caller(p): Caller,
) -> Result<Json<UserOut>, ApiError> {
    Ok(Json(UserOut {
        id: p.account_id.clone(),
        username: p.username.clone(),
        plan: p.plan.as_str().to_owned(),
        status: "active".to_owned(),
        credential: CredentialInfo {
            kind: p.kind.as_str().to_owned(),
            id: p.credential_id.clone(),
            scopes: p.scopes.to_strings(),
            expires_at: super::ts_opt(p.expires_at),
        },
    }))
}
