//! `GET /v1/user`: the caller, its account and the credential in use.

use crate::audit::Actor;
use crate::error::ApiError;
use crate::extract::{ApiJson, Caller};
use crate::state::AppState;
use axum::extract::State;
use axum::Json;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

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

/// Security settings body.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserSettings {
    /// Revoke an API key automatically when an anomaly involves it.
    pub anomaly_auto_revoke: bool,
}

/// The settings as they now are.
#[derive(Debug, Serialize, JsonSchema)]
pub struct UserSettingsOut {
    /// Account id.
    pub id: String,
    /// Revoke an API key automatically when an anomaly involves it.
    pub anomaly_auto_revoke: bool,
}

/// Changes the account's security settings.
pub async fn patch_user(
    State(s): State<AppState>,
    Caller(p): Caller,
    actor: Actor,
    ApiJson(body): ApiJson<UserSettings>,
) -> Result<Json<UserSettingsOut>, ApiError> {
    let now = s.now();
    let event = actor.event(
        now,
        dotgit_core::audit::types::ACCOUNT_SETTINGS_CHANGED,
        Some(&p.account_id),
        None,
        dotgit_core::audit::outcomes::SUCCESS,
        Some(format!(
            "anomaly_auto_revoke = {}{}",
            body.anomaly_auto_revoke,
            actor.by()
        )),
    );
    s.store
        .set_anomaly_auto_revoke(&p.account_id, body.anomaly_auto_revoke, &event)
        .await?;
    Ok(Json(UserSettingsOut {
        id: p.account_id.clone(),
        anomaly_auto_revoke: body.anomaly_auto_revoke,
    }))
}
