//! `POST /v1/auth/check`: the decision a `/v1` route would make, for the platform's other
//! services (gateway / forward-auth). Same status codes and error bodies; the credential travels
//! in the JSON body and is never echoed.

use crate::auth;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::state::AppState;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use dotgit_core::Scope;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::user::CredentialInfo;

/// Check body.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    /// The credential exactly as a client would send it after `Bearer `.
    pub credential: String,
    /// The scope the protected operation needs (optional: authentication only).
    pub scope: Option<String>,
}

impl std::fmt::Debug for CheckRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckRequest")
            .field("credential", &"<redacted>")
            .field("scope", &self.scope)
            .finish()
    }
}

/// A positive decision.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CheckResponse<'a> {
    /// Always true (a refusal is an error response).
    pub allowed: bool,
    /// Account id.
    pub account_id: &'a str,
    /// Username.
    pub username: &'a str,
    /// The credential.
    pub credential: CredentialInfo<'a>,
}

/// Decides.
pub async fn check(
    State(s): State<AppState>,
    actor: crate::audit::Actor,
    ApiJson(body): ApiJson<CheckRequest>,
) -> Result<Response, ApiError> {
    let needed = match &body.scope {
        Some(sc) => {
            Some(Scope::parse(sc).map_err(|e| ApiError::invalid_scope(format!("scope: {e}")))?)
        }
        None => None,
    };
    auth::check_source(&s, &actor, s.now())?;
    let p = auth::verify_credential(&s, &body.credential, &actor)
        .await?
        .credential
        .principal();
    if let Some(sc) = &needed {
        p.require(sc.resource, sc.action, sc.project.as_deref())
            .map_err(|missing| ApiError::insufficient_scope(&missing))?;
    }
    let budget = s
        .limiter
        .spend(&p.credential_id, s.config.budget_for(p.plan), s.now());
    if budget.exceeded {
        return Err(ApiError::rate_limited(
            "The credential has used its request budget for this hour.",
            u64::try_from(budget.reset - s.now()).unwrap_or(1),
        ));
    }
    Ok(Json(CheckResponse {
        allowed: true,
        account_id: &p.account_id,
        username: &p.username,
        credential: CredentialInfo::of(&p),
    })
    .into_response())
}
