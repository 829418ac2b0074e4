//! `/v1/api-keys`: create, list, get, revoke and rotate API keys (SPEC §6). A key can only
//! create keys whose scopes are a subset of its own effective scopes.

use crate::audit::Actor;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiJsonOrEmpty, ApiPath, Caller};
use crate::ops;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use dotgit_core::clock::rfc3339;
use dotgit_core::{ScopeSet, Secret};
use dotgit_store::ApiKeyRow;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An API key as returned by the API. `key` is present only in the creation/rotation answer.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ApiKeyOut {
    /// Opaque id.
    pub id: String,
    /// Name.
    pub name: String,
    /// First 8 characters of the key, for recognition.
    pub prefix: String,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// RFC 3339.
    pub created_at: String,
    /// When the key stops working, or null.
    pub expires_at: Option<String>,
    /// Last authenticated use, or null.
    pub last_used_at: Option<String>,
    /// Older than the account's rotation policy.
    pub rotation_due: bool,
    /// For each granted scope, when this key last used it (null: never).
    pub scope_usage: Vec<ScopeUse>,
    /// Granted scopes this key has not used in the last 30 days: candidates to drop.
    pub unused_scopes: Vec<String>,
    /// The secret, shown this once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// When a key last used one of its scopes.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ScopeUse {
    /// The granted scope.
    pub scope: String,
    /// RFC 3339, or null if never used.
    pub last_used_at: Option<String>,
}

/// The window of the least-privilege report.
pub const UNUSED_SCOPE_DAYS: i64 = 30;

/// Create body.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// 1–100 characters, unique among the account's active keys.
    pub name: String,
    /// Scopes to grant; must be within the calling credential's scopes.
    pub scopes: Vec<String>,
    /// Expiry in days (1–3650); none by default.
    pub expires_in_days: Option<u32>,
}

/// Rotate body.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateKey {
    /// How long the old key keeps working (default 86400; 0 = stops at once).
    pub grace_period_seconds: Option<u32>,
}

/// What shaping a key needs to know about its account and usage.
#[derive(Debug, Clone, Copy)]
pub struct KeyContext {
    /// The account's rotation policy, days.
    pub policy_days: i64,
}

impl KeyContext {
    /// The context of `account_id`'s keys.
    pub async fn load(s: &AppState, account_id: &str) -> Result<KeyContext, ApiError> {
        let a = s
            .store
            .account_by_id(account_id)
            .await?
            .ok_or_else(|| ApiError::not_found("The account"))?;
        Ok(KeyContext {
            policy_days: a.rotation_policy_days,
        })
    }
}

/// Shapes a stored key for output.
pub async fn key_out(
    s: &AppState,
    ctx: KeyContext,
    k: &ApiKeyRow,
    secret: Option<&Secret>,
) -> Result<ApiKeyOut, ApiError> {
    let now = s.now();
    let last = match (k.last_used_at, s.pending_use(&k.id)) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    let scopes = ScopeSet::parse_space_separated(&k.scopes)
        .unwrap_or_default()
        .to_strings();
    let mut used: std::collections::HashMap<String, i64> = if secret.is_some() {
        std::collections::HashMap::new()
    } else {
        s.store.scope_usage(&k.id).await?.into_iter().collect()
    };
    for scope in &scopes {
        if let Some(t) = s.scope_usage.pending(&(k.id.clone(), scope.clone())) {
            let e = used.entry(scope.clone()).or_insert(t);
            *e = (*e).max(t);
        }
    }
    let cutoff = now - UNUSED_SCOPE_DAYS * 86_400;
    Ok(ApiKeyOut {
        id: k.id.clone(),
        name: k.name.clone(),
        prefix: k.prefix.clone(),
        scope_usage: scopes
            .iter()
            .map(|sc| ScopeUse {
                scope: sc.clone(),
                last_used_at: super::ts_opt(used.get(sc).copied()),
            })
            .collect(),
        unused_scopes: scopes
            .iter()
            .filter(|sc| used.get(*sc).is_none_or(|t| *t < cutoff))
            .cloned()
            .collect(),
        scopes,
        created_at: rfc3339(k.created_at),
        expires_at: super::ts_opt(k.expires_at),
        last_used_at: super::ts_opt(last),
        rotation_due: now - k.created_at >= ctx.policy_days * 86_400,
        key: secret.map(|s| s.expose().to_owned()),
    })
}

/// Lists the account's keys.
pub async fn list(
    State(s): State<AppState>,
    Caller(p): Caller,
) -> Result<Json<Vec<ApiKeyOut>>, ApiError> {
    let ctx = KeyContext::load(&s, &p.account_id).await?;
    let rows = s.store.list_api_keys(&p.account_id).await?;
    let mut out = Vec::with_capacity(rows.len());
    for k in &rows {
        out.push(key_out(&s, ctx, k, None).await?);
    }
    Ok(Json(out))
}

/// Creates a key.
pub async fn create(
    State(s): State<AppState>,
    Caller(p): Caller,
    actor: Actor,
    ApiJson(body): ApiJson<CreateKey>,
) -> Result<(StatusCode, Json<ApiKeyOut>), ApiError> {
    let scopes = ops::parse_scopes("scopes", &body.scopes)?;
    if let Some(extra) = scopes
        .iter()
        .find(|wanted| !p.scopes.iter().any(|held| held.covers(wanted)))
    {
        return Err(ApiError::insufficient_scope(extra).with_cause("key broader than its creator"));
    }
    let (row, secret) = ops::create_api_key(
        &s.store,
        s.now(),
        &p.account_id,
        &body.name,
        &scopes,
        body.expires_in_days,
        &actor,
    )
    .await?;
    let ctx = KeyContext::load(&s, &p.account_id).await?;
    Ok((
        StatusCode::CREATED,
        Json(key_out(&s, ctx, &row, Some(&secret)).await?),
    ))
}

/// One key.
pub async fn get(
    State(s): State<AppState>,
    Caller(p): Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ApiKeyOut>, ApiError> {
    let k = s
        .store
        .get_api_key(&p.account_id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("The API key"))?;
    let ctx = KeyContext::load(&s, &p.account_id).await?;
    Ok(Json(key_out(&s, ctx, &k, None).await?))
}

/// Revokes a key: 204, effective at once.
pub async fn revoke(
    State(s): State<AppState>,
    Caller(p): Caller,
    actor: Actor,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let done = ops::revoke_api_key(&s.store, s.now(), &p.account_id, &id, &actor).await?;
    s.invalidate_local();
    if done {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("The API key"))
    }
}

/// Rotates a key: 201 with the new key; the old one works until the grace period ends.
pub async fn rotate(
    State(s): State<AppState>,
    Caller(p): Caller,
    actor: Actor,
    ApiPath(id): ApiPath<String>,
    ApiJsonOrEmpty(body): ApiJsonOrEmpty<RotateKey>,
) -> Result<(StatusCode, Json<ApiKeyOut>), ApiError> {
    let old = s
        .store
        .get_api_key(&p.account_id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("The API key"))?;
    let grace = body
        .grace_period_seconds
        .unwrap_or(ops::DEFAULT_GRACE_SECONDS);
    let result = ops::rotate_api_key(&s.store, s.now(), &old, grace, &actor).await;
    s.invalidate_local();
    let (row, secret) = result?;
    let ctx = KeyContext::load(&s, &p.account_id).await?;
    Ok((
        StatusCode::CREATED,
        Json(key_out(&s, ctx, &row, Some(&secret)).await?),
    ))
}
