//! `GET /v1/user`: the caller, its account and the credential in use.

use crate::audit::Actor;
use crate::error::ApiError;
use crate::extract::{ApiJson, Caller, CallerCredential};
use crate::state::AppState;
use axum::extract::State;
use axum::response::Response;
use axum::Json;
use dotgit_core::{Principal, ScopeSet};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The credential a request used. Borrowed from the caller's principal: the two routes that
/// answer it (`/v1/user`, `/v1/check`) are among the hottest, and their bodies were eight small
/// allocations each.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CredentialInfo<'a> {
    /// `api_key`, `oauth_access_token`, `jwt` or `mtls`.
    pub kind: &'a str,
    /// Credential id.
    pub id: &'a str,
    /// Effective scopes.
    #[schemars(with = "Vec<String>")]
    pub scopes: ScopeStrings<'a>,
    /// When it stops working (RFC 3339), or null.
    pub expires_at: Option<String>,
}

impl<'a> CredentialInfo<'a> {
    /// What `p` authenticated with.
    pub fn of(p: &'a Principal) -> Self {
        CredentialInfo {
            kind: p.kind.as_str(),
            id: &p.credential_id,
            scopes: ScopeStrings(&p.scopes),
            expires_at: super::ts_opt(p.expires_at),
        }
    }
}

/// A scope set as the JSON array of its scope strings, each written straight into the body
/// (no string per scope, no vector of them).
#[derive(Debug, Clone, Copy)]
pub struct ScopeStrings<'a>(pub &'a ScopeSet);

impl Serialize for ScopeStrings<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Text<'b>(&'b dotgit_core::Scope);
        impl Serialize for Text<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self.0)
            }
        }
        s.collect_seq(self.0.iter().map(Text))
    }
}

/// An account as its owner sees it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct UserOut<'a> {
    /// Account id.
    pub id: &'a str,
    /// Username.
    pub username: &'a str,
    /// `free`, `pro` or `enterprise`.
    pub plan: &'a str,
    /// `active` or `suspended`.
    pub status: &'a str,
    /// The credential in use.
    pub credential: CredentialInfo<'a>,
}

/// The caller. The body is rendered once per verified credential (it only says what the
/// credential's cache entry says) and served from that entry afterwards.
pub async fn get_user(CallerCredential(c): CallerCredential) -> Result<Response, ApiError> {
    let body = match c.user_body.get() {
        Some(b) => b.clone(),
        None => {
            let p = c.principal();
            // room for the body (~200 bytes, a little more for a JWT's) without growing the buffer
            let mut rendered = Vec::with_capacity(320);
            serde_json::to_writer(
                &mut rendered,
                &UserOut {
                    id: &p.account_id,
                    username: &p.username,
                    plan: p.plan.as_str(),
                    status: "active",
                    credential: CredentialInfo::of(&p),
                },
            )
            .map_err(|e| ApiError::internal(format!("rendering /v1/user: {e}")))?;
            c.user_body.get_or_init(|| rendered.into()).clone()
        }
    };
    let mut resp = Response::new(axum::body::Body::from(body));
    // every header the answer will carry fits without growing the map: the content type and
    // length, the access check's rate-limit headers (and key-rotation notice), the edge's four
    let h = resp.headers_mut();
    *h = axum::http::HeaderMap::with_capacity(ANSWER_HEADERS);
    h.insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

/// Headers an authenticated JSON answer carries on its way out (9, or 10 with the key-rotation
/// notice), with room to spare.
const ANSWER_HEADERS: usize = 12;

/// Security settings body: every field optional; what is absent is left as it is.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserSettings {
    /// Revoke an API key automatically when an anomaly involves it.
    pub anomaly_auto_revoke: Option<bool>,
    /// Keys (API keys, JWT keys) older than this many days are due for rotation (1–3650).
    pub rotation_policy_days: Option<i64>,
    /// Keys past the rotation policy stop working.
    pub rotation_policy_enforce: Option<bool>,
}

/// The settings as they now are.
#[derive(Debug, Serialize, JsonSchema)]
pub struct UserSettingsOut {
    /// Account id.
    pub id: String,
    /// Revoke an API key automatically when an anomaly involves it.
    pub anomaly_auto_revoke: bool,
    /// Rotation policy, days.
    pub rotation_policy_days: i64,
    /// Keys past the rotation policy stop working.
    pub rotation_policy_enforce: bool,
}

/// Changes the account's security settings (shared by `PATCH /v1/user` and the dashboard's
/// Security page): validated, audited in the same transaction, caches dropped.
pub async fn apply_settings(
    s: &AppState,
    account_id: &str,
    body: &UserSettings,
    actor: &Actor,
) -> Result<dotgit_store::AccountRow, ApiError> {
    if let Some(d) = body.rotation_policy_days {
        if !(1..=3650).contains(&d) {
            return Err(ApiError::invalid_request(
                "rotation_policy_days: must be between 1 and 3650",
            ));
        }
    }
    if body.anomaly_auto_revoke.is_none()
        && body.rotation_policy_days.is_none()
        && body.rotation_policy_enforce.is_none()
    {
        return Err(ApiError::invalid_request(
            "body: name at least one of anomaly_auto_revoke, rotation_policy_days, rotation_policy_enforce",
        ));
    }
    let now = s.now();
    let mut changes = Vec::new();
    if let Some(v) = body.anomaly_auto_revoke {
        changes.push(format!("anomaly_auto_revoke = {v}"));
    }
    if let Some(v) = body.rotation_policy_days {
        changes.push(format!("rotation_policy_days = {v}"));
    }
    if let Some(v) = body.rotation_policy_enforce {
        changes.push(format!("rotation_policy_enforce = {v}"));
    }
    let event = actor.event(
        now,
        dotgit_core::audit::types::ACCOUNT_SETTINGS_CHANGED,
        Some(account_id),
        None,
        dotgit_core::audit::outcomes::SUCCESS,
        Some(format!("{}{}", changes.join(", "), actor.by())),
    );
    let settings = dotgit_store::AccountSettings {
        anomaly_auto_revoke: body.anomaly_auto_revoke,
        rotation_policy_days: body.rotation_policy_days,
        rotation_policy_enforce: body.rotation_policy_enforce,
    };
    let a = s
        .store
        .update_account_settings(account_id, &settings, now, &event)
        .await?
        .ok_or_else(|| ApiError::not_found("The account"))?;
    s.invalidate_local();
    Ok(a)
}

/// Changes the account's security settings.
pub async fn patch_user(
    State(s): State<AppState>,
    Caller(p): Caller,
    actor: Actor,
    ApiJson(body): ApiJson<UserSettings>,
) -> Result<Json<UserSettingsOut>, ApiError> {
    let a = apply_settings(&s, &p.account_id, &body, &actor).await?;
    Ok(Json(UserSettingsOut {
        id: a.id,
        anomaly_auto_revoke: a.anomaly_auto_revoke,
        rotation_policy_days: a.rotation_policy_days,
        rotation_policy_enforce: a.rotation_policy_enforce,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The scope array written straight into the body is the one `to_strings` spells.
        #[test]
        fn scope_strings_serialize_as_the_scope_texts(
            picks in proptest::collection::vec((0usize..5, any::<bool>(), proptest::option::of("[a-z][a-z0-9-]{0,20}")), 0..8)
        ) {
            let scopes: Vec<dotgit_core::Scope> = picks
                .iter()
                .map(|(r, write, project)| {
                    let text = format!(
                        "{}:{}{}",
                        dotgit_core::Resource::ALL[r % dotgit_core::Resource::ALL.len()].as_str(),
                        if *write { "write" } else { "read" },
                        project.as_ref().map(|p| format!(":{p}")).unwrap_or_default()
                    );
                    dotgit_core::Scope::parse(&text).unwrap()
                })
                .collect();
            let set = ScopeSet::from_scopes(scopes);
            prop_assert_eq!(
                serde_json::to_value(ScopeStrings(&set)).unwrap(),
                serde_json::to_value(set.to_strings()).unwrap()
            );
        }
    }
}
