//! `/v1/jwt-keys` — JWT Configuration: register, list, get and delete the RSA public keys a
//! customer signs its JWTs with (SPEC §4, §6). Deleting a key stops its tokens at once.

use crate::audit::Actor;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, Caller};
use crate::ops;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use dotgit_core::clock::rfc3339;
use dotgit_core::jwt::RsaPublicKey;
use dotgit_core::ScopeSet;
use dotgit_store::JwtKeyRow;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A registered JWT key.
#[derive(Debug, Serialize, JsonSchema)]
pub struct JwtKeyOut {
    /// Server-assigned key id: the JWT header `kid`.
    pub kid: String,
    /// Name.
    pub name: String,
    /// The `iss` tokens must carry.
    pub issuer: String,
    /// Scopes tokens may carry in their `scope` claim.
    pub allowed_scopes: Vec<String>,
    /// Longest accepted `exp - iat`.
    pub max_lifetime_seconds: i64,
    /// Each token needs a `jti` and is accepted once.
    pub single_use: bool,
    /// RFC 3339.
    pub created_at: String,
    /// When the key stops being accepted (set when the account enforces its rotation policy),
    /// or null.
    pub not_after: Option<String>,
    /// Older than the account's rotation policy.
    pub rotation_due: bool,
    /// The account id tokens must carry in `sub`.
    pub subject: String,
    /// RFC 7638 SHA-256 thumbprint of the public key.
    pub thumbprint: String,
    /// The public key as a JWK.
    pub public_key_jwk: serde_json::Value,
}

/// Registration body.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateJwtKey {
    /// Name, unique in the account.
    pub name: String,
    /// RSA public key: PEM (SPKI `PUBLIC KEY` or PKCS#1 `RSA PUBLIC KEY`) or a JWK object.
    pub public_key: serde_json::Value,
    /// Scopes tokens may carry; within the calling credential's scopes.
    pub allowed_scopes: Vec<String>,
    /// 900…86400 (default 3600).
    pub max_lifetime_seconds: Option<i64>,
    /// Expected `iss` (default: the kid).
    pub issuer: Option<String>,
    /// Require a `jti` and accept each token once.
    pub single_use: Option<bool>,
}

/// The account's rotation policy: (days, enforced).
pub async fn policy(s: &AppState, account_id: &str) -> Result<(i64, bool), ApiError> {
    let a = s
        .store
        .account_by_id(account_id)
        .await?
        .ok_or_else(|| ApiError::not_found("The account"))?;
    Ok((a.rotation_policy_days, a.rotation_policy_enforce))
}

/// Shapes a stored key for output, under the account's rotation policy.
pub fn out(k: &JwtKeyRow, (days, enforced): (i64, bool), now: i64) -> JwtKeyOut {
    let due_at = k.created_at.saturating_add(days.saturating_mul(86_400));
    let jwk = RsaPublicKey::from_pem(&k.public_key_pem)
        .map(|key| key.to_jwk(&k.kid))
        .unwrap_or(serde_json::Value::Null);
    JwtKeyOut {
        kid: k.kid.clone(),
        name: k.name.clone(),
        issuer: k.issuer.clone(),
        allowed_scopes: ScopeSet::parse_space_separated(&k.allowed_scopes)
            .unwrap_or_default()
            .to_strings(),
        max_lifetime_seconds: k.max_lifetime_seconds,
        single_use: k.single_use,
        created_at: rfc3339(k.created_at),
        not_after: enforced.then(|| rfc3339(due_at)),
        rotation_due: now >= due_at,
        subject: k.account_id.clone(),
        thumbprint: k.thumbprint.clone(),
        public_key_jwk: jwk,
    }
}

/// Lists the account's JWT keys.
pub async fn list(
    State(s): State<AppState>,
    Caller(p): Caller,
) -> Result<Json<Vec<JwtKeyOut>>, ApiError> {
    let pol = policy(&s, &p.account_id).await?;
    let now = s.now();
    Ok(Json(
        s.store
            .list_jwt_keys(&p.account_id)
            .await?
            .iter()
            .map(|k| out(k, pol, now))
            .collect(),
    ))
}

/// Registers a key.
pub async fn create(
    State(s): State<AppState>,
    Caller(p): Caller,
    actor: Actor,
    ApiJson(body): ApiJson<CreateJwtKey>,
) -> Result<(StatusCode, Json<JwtKeyOut>), ApiError> {
    let scopes = ops::parse_scopes("allowed_scopes", &body.allowed_scopes)?;
    if let Some(extra) = scopes
        .iter()
        .find(|wanted| !p.scopes.iter().any(|held| held.covers(wanted)))
    {
        return Err(
            ApiError::insufficient_scope(extra).with_cause("JWT key broader than its creator")
        );
    }
    let row = ops::register_jwt_key(
        &s.store,
        s.now(),
        &p.account_id,
        ops::NewJwtKey {
            name: &body.name,
            public_key: &body.public_key,
            allowed_scopes: &scopes,
            max_lifetime_seconds: body.max_lifetime_seconds,
            issuer: body.issuer.as_deref(),
            single_use: body.single_use.unwrap_or(false),
        },
        &actor,
    )
    .await?;
    let pol = policy(&s, &p.account_id).await?;
    Ok((StatusCode::CREATED, Json(out(&row, pol, s.now()))))
}

/// One key.
pub async fn get(
    State(s): State<AppState>,
    Caller(p): Caller,
    ApiPath(kid): ApiPath<String>,
) -> Result<Json<JwtKeyOut>, ApiError> {
    let k = s
        .store
        .get_jwt_key(&p.account_id, &kid)
        .await?
        .ok_or_else(|| ApiError::not_found("The JWT key"))?;
    let pol = policy(&s, &p.account_id).await?;
    Ok(Json(out(&k, pol, s.now())))
}

/// Deletes a key: its tokens stop working at once.
pub async fn delete(
    State(s): State<AppState>,
    Caller(p): Caller,
    actor: Actor,
    ApiPath(kid): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let done = ops::delete_jwt_key(&s.store, s.now(), &p.account_id, &kid, &actor).await?;
    s.invalidate_local();
    if done {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("The JWT key"))
    }
}
