//! Operator routes: list accounts, suspend and unsuspend (SPEC §4: suspension blocks every
//! credential of the account with 403 while it lasts, revokes nothing, and lifting it restores
//! them). Non-operators get 404: the routes do not exist for them.

use crate::audit::Actor;
use crate::error::ApiError;
use crate::extract::{ApiJsonOrEmpty, ApiPath, Caller};
use crate::ops;
use crate::state::AppState;
use axum::extract::State;
use axum::Json;
use dotgit_core::clock::rfc3339;
use dotgit_store::AccountRow;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An account as operators see it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct AccountOut {
    /// Id.
    pub id: String,
    /// Username.
    pub username: String,
    /// Plan.
    pub plan: String,
    /// `active` or `suspended`.
    pub status: String,
    /// Why it is suspended.
    pub status_reason: Option<String>,
    /// Operator.
    pub operator: bool,
    /// RFC 3339.
    pub created_at: String,
}

/// Suspension body.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SuspendBody {
    /// Why (kept with the account).
    pub reason: Option<String>,
}

fn account_out(a: &AccountRow) -> AccountOut {
    AccountOut {
        id: a.id.clone(),
        username: a.username.clone(),
        plan: a.plan.clone(),
        status: a.status.clone(),
        status_reason: a.status_reason.clone(),
        operator: a.is_operator,
        created_at: rfc3339(a.created_at),
    }
}

/// Every account.
pub async fn list(
    State(s): State<AppState>,
    Caller(_p): Caller,
) -> Result<Json<Vec<AccountOut>>, ApiError> {
    Ok(Json(
        s.store
            .list_accounts()
            .await?
            .iter()
            .map(account_out)
            .collect(),
    ))
}

/// Suspends or reinstates an account (shared by the API and the dashboard's `/admin`): the
/// reason is checked, the change audited, this node's caches dropped.
pub async fn set_status(
    s: &AppState,
    actor: &Actor,
    username: &str,
    suspend: bool,
    reason: Option<&str>,
) -> Result<AccountRow, ApiError> {
    if let Some(r) = reason {
        ops::check_name("reason", r)?;
    }
    let a = ops::set_suspended(&s.store, s.now(), username, suspend, reason, actor)
        .await?
        .ok_or_else(|| ApiError::not_found("The account"))?;
    s.invalidate_local();
    Ok(a)
}

/// Suspends an account.
pub async fn suspend(
    State(s): State<AppState>,
    Caller(_p): Caller,
    actor: Actor,
    ApiPath(username): ApiPath<String>,
    ApiJsonOrEmpty(body): ApiJsonOrEmpty<SuspendBody>,
) -> Result<Json<AccountOut>, ApiError> {
    let a = set_status(&s, &actor, &username, true, body.reason.as_deref()).await?;
    Ok(Json(account_out(&a)))
}

/// Lifts a suspension.
pub async fn unsuspend(
    State(s): State<AppState>,
    Caller(_p): Caller,
    actor: Actor,
    ApiPath(username): ApiPath<String>,
) -> Result<Json<AccountOut>, ApiError> {
    let a = set_status(&s, &actor, &username, false, None).await?;
    Ok(Json(account_out(&a)))
}

/// What a revoke-all did.
#[derive(Debug, Serialize, JsonSchema)]
pub struct RevokedAll {
    /// The account.
    pub username: String,
    /// Ids of the API keys revoked and JWT keys deleted.
    pub revoked: Vec<String>,
}

/// Revokes every credential of an account (separate from suspension, which revokes nothing).
pub async fn revoke_credentials(
    State(s): State<AppState>,
    Caller(_p): Caller,
    actor: Actor,
    ApiPath(username): ApiPath<String>,
) -> Result<Json<RevokedAll>, ApiError> {
    let (acct, revoked) = ops::revoke_all_credentials(&s.store, s.now(), &username, &actor)
        .await?
        .ok_or_else(|| ApiError::not_found("The account"))?;
    s.invalidate_local();
    Ok(Json(RevokedAll {
        username: acct.username,
        revoked,
    }))
}
