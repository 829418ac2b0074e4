//! `/v1/oauth/apps`: OAuth app registration (SPEC §6 "OAuth app"), shared with the
//! `dotgit oauth-apps create` command.
//!
//! What must hold: redirect URIs are validated here, once, so the authorization endpoint can
//! match them byte for byte: absolute `https://` URIs, or `http://` only on a loopback host
//! (127.0.0.1, [::1], localhost); no fragment, no wildcard, no userinfo; 1 to 10 of them. A
//! confidential app's secret is shown once, in the creation answer, and stored only as its
//! SHA-256 digest. Deleting an app kills every token issued to it at once.

use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, Caller};
use crate::ops;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use dotgit_core::clock::rfc3339;
use dotgit_core::credential::random_base62;
use dotgit_core::{ScopeSet, Secret};
use dotgit_store::{OAuthAppRow, Store};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Most redirect URIs an app may register.
pub const MAX_REDIRECT_URIS: usize = 10;
/// Longest redirect URI accepted.
pub const MAX_REDIRECT_URI_LEN: usize = 2000;

/// An OAuth app as returned by the API.
#[derive(Serialize, JsonSchema)]
pub struct AppOut {
    /// Public client identifier.
    pub client_id: String,
    /// Name shown on the consent page.
    pub name: String,
    /// Registered redirect URIs, matched exactly.
    pub redirect_uris: Vec<String>,
    /// Confidential (authenticates with a secret) or public (PKCE only).
    pub confidential: bool,
    /// Scopes the app may be granted.
    pub allowed_scopes: Vec<String>,
    /// RFC 3339.
    pub created_at: String,
    /// The client secret is older than the account's rotation policy.
    pub rotation_due: bool,
    /// The client secret of a confidential app, in the creation answer only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
}

impl std::fmt::Debug for AppOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppOut")
            .field("client_id", &self.client_id)
            .field("name", &self.name)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Create body.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApp {
    /// 1–100 characters, shown to users on the consent page.
    pub name: String,
    /// 1–10 absolute `https://` URIs (or `http://` on 127.0.0.1, [::1] or localhost); no
    /// fragment, wildcard or userinfo.
    pub redirect_uris: Vec<String>,
    /// Scopes the app may ever be granted; within the calling credential's scopes.
    pub allowed_scopes: Vec<String>,
    /// `true` (default): the app gets a secret; `false`: a public client (PKCE only).
    pub confidential: Option<bool>,
}

/// When an app's client secret passes its account's rotation policy (`None`: no secret).
pub fn secret_due_at(a: &OAuthAppRow, policy_days: i64) -> Option<i64> {
    a.secret_hash.as_ref()?;
    Some(
        a.secret_created_at
            .unwrap_or(a.created_at)
            .saturating_add(policy_days.saturating_mul(86_400)),
    )
}

/// Shapes a stored app for output; `policy` is the account's (rotation policy days, now).
pub fn app_out(a: &OAuthAppRow, secret: Option<&Secret>, policy: (i64, i64)) -> AppOut {
    let (days, now) = policy;
    AppOut {
        client_id: a.client_id.clone(),
        name: a.name.clone(),
        redirect_uris: a
            .redirect_uri_list()
            .into_iter()
            .map(str::to_owned)
            .collect(),
        confidential: a.confidential,
        allowed_scopes: ScopeSet::parse_space_separated(&a.allowed_scopes)
            .unwrap_or_default()
            .to_strings(),
        created_at: rfc3339(a.created_at),
        rotation_due: secret_due_at(a, days).is_some_and(|d| now >= d),
        client_secret: secret.map(|s| s.expose().to_owned()),
    }
}

/// The account's rotation policy days, for [`app_out`].
pub async fn policy_days(store: &Store, account_id: &str) -> Result<i64, ApiError> {
    Ok(store
        .account_by_id(account_id)
        .await?
        .map(|a| a.rotation_policy_days)
        .unwrap_or(ops::ROTATION_POLICY_DAYS))
}

/// Checks one redirect URI for registration; the message names `field` (`redirect_uris[i]`).
pub fn validate_redirect_uri(field: &str, raw: &str) -> Result<(), ApiError> {
    let bad = |why: &str| ApiError::invalid_request(format!("{field}: {why}"));
    if raw.is_empty() || raw.len() > MAX_REDIRECT_URI_LEN {
        return Err(bad(&format!(
            "must be 1 to {MAX_REDIRECT_URI_LEN} characters"
        )));
    }
    if raw
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || !c.is_ascii())
    {
        return Err(bad(
            "must not contain white space, control or non-ASCII characters (percent-encode them)",
        ));
    }
    if raw.contains('#') {
        return Err(bad("must not contain a fragment (#)"));
    }
    if raw.contains('*') {
        return Err(bad(
            "must not contain a wildcard (*): URIs are matched exactly",
        ));
    }
    let u = url::Url::parse(raw).map_err(|e| bad(&format!("not an absolute URI ({e})")))?;
    if !u.username().is_empty() || u.password().is_some() || raw.contains('@') {
        return Err(bad("must not contain userinfo (user@host)"));
    }
    let host = u.host_str().unwrap_or("");
    match u.scheme() {
        "https" => {}
        "http" if matches!(host, "127.0.0.1" | "[::1]" | "localhost") => {}
        "http" => {
            return Err(bad(
                "http:// is only allowed on a loopback host (127.0.0.1, [::1], localhost); use https://",
            ))
        }
        other => {
            return Err(bad(&format!(
                "scheme `{other}` is not allowed: use https:// (or http:// on a loopback host)"
            )))
        }
    }
    if host.is_empty() {
        return Err(bad("must name a host"));
    }
    Ok(())
}

/// Validates a registration's redirect URIs (1–10, each valid, no duplicates).
pub fn validate_redirect_uris(uris: &[String]) -> Result<(), ApiError> {
    if uris.is_empty() {
        return Err(ApiError::invalid_request(
            "redirect_uris: at least one redirect URI is required",
        ));
    }
    if uris.len() > MAX_REDIRECT_URIS {
        return Err(ApiError::invalid_request(format!(
            "redirect_uris: at most {MAX_REDIRECT_URIS}"
        )));
    }
    for (i, u) in uris.iter().enumerate() {
        validate_redirect_uri(&format!("redirect_uris[{i}]"), u)?;
        if uris[..i].contains(u) {
            return Err(ApiError::invalid_request(format!(
                "redirect_uris[{i}]: listed twice"
            )));
        }
    }
    Ok(())
}

/// A new client secret: `dgs_` and 40 base62 characters from the CSPRNG.
fn new_client_secret() -> Result<Secret, ApiError> {
    let r =
        random_base62(&ops::entropy()?, 40).ok_or_else(|| ApiError::internal("CSPRNG short"))?;
    Ok(Secret::new(format!("dgs_{r}")))
}

/// What an app registration asks for.
#[derive(Debug, Clone, Copy)]
pub struct NewApp<'a> {
    /// Display name.
    pub name: &'a str,
    /// Exact redirect URIs.
    pub redirect_uris: &'a [String],
    /// Scopes the app may ask for.
    pub allowed_scopes: &'a ScopeSet,
    /// Confidential (has a secret) or public (PKCE only).
    pub confidential: bool,
}

/// Registers an app for `account_id` (class B). Returns the app and, for a confidential app,
/// its secret (to show once).
pub async fn register_app(
    store: &Store,
    now: i64,
    account_id: &str,
    app: NewApp<'_>,
    actor: &crate::audit::Actor,
) -> Result<(OAuthAppRow, Option<Secret>), ApiError> {
    let NewApp {
        name,
        redirect_uris,
        allowed_scopes,
        confidential,
    } = app;
    ops::check_name("name", name)?;
    validate_redirect_uris(redirect_uris)?;
    let secret = if confidential {
        Some(new_client_secret()?)
    } else {
        None
    };
    let row = OAuthAppRow {
        client_id: ops::new_id("dgc")?,
        account_id: account_id.to_owned(),
        name: name.to_owned(),
        redirect_uris: redirect_uris.join("\n"),
        confidential,
        secret_hash: secret.as_ref().map(|s| s.hash().to_hex()),
        allowed_scopes: allowed_scopes.to_space_separated(),
        created_at: now,
        secret_created_at: confidential.then_some(now),
    };
    let event = actor.event(
        now,
        dotgit_core::audit::types::OAUTH_APP_CREATED,
        Some(account_id),
        Some(&row.client_id),
        dotgit_core::audit::outcomes::SUCCESS,
        Some(format!(
            "{} app `{}`, scopes {}{}",
            if confidential {
                "confidential"
            } else {
                "public"
            },
            row.name,
            row.allowed_scopes,
            actor.by()
        )),
    );
    store.insert_oauth_app(&row, &event).await?;
    Ok((row, secret))
}

/// Lists the account's apps.
pub async fn list(
    State(s): State<AppState>,
    Caller(p): Caller,
) -> Result<Json<Vec<AppOut>>, ApiError> {
    let rows = s.store.list_oauth_apps(&p.account_id).await?;
    let policy = (policy_days(&s.store, &p.account_id).await?, s.now());
    Ok(Json(
        rows.iter().map(|a| app_out(a, None, policy)).collect(),
    ))
}

/// Registers an app: 201 with the secret (confidential apps), shown this once.
pub async fn create(
    State(s): State<AppState>,
    Caller(p): Caller,
    actor: crate::audit::Actor,
    ApiJson(body): ApiJson<CreateApp>,
) -> Result<(StatusCode, Json<AppOut>), ApiError> {
    let scopes = ops::parse_scopes("allowed_scopes", &body.allowed_scopes)?;
    if let Some(extra) = scopes
        .iter()
        .find(|wanted| !p.scopes.iter().any(|held| held.covers(wanted)))
    {
        return Err(ApiError::insufficient_scope(extra)
            .with_cause("app allowed scopes broader than its creator"));
    }
    let (row, secret) = register_app(
        &s.store,
        s.now(),
        &p.account_id,
        NewApp {
            name: &body.name,
            redirect_uris: &body.redirect_uris,
            allowed_scopes: &scopes,
            confidential: body.confidential.unwrap_or(true),
        },
        &actor,
    )
    .await?;
    let policy = (policy_days(&s.store, &p.account_id).await?, s.now());
    Ok((
        StatusCode::CREATED,
        Json(app_out(&row, secret.as_ref(), policy)),
    ))
}

/// One app of the account.
pub async fn get(
    State(s): State<AppState>,
    Caller(p): Caller,
    ApiPath(client_id): ApiPath<String>,
) -> Result<Json<AppOut>, ApiError> {
    let app = s
        .store
        .oauth_app(&client_id)
        .await?
        .filter(|a| a.account_id == p.account_id)
        .ok_or_else(|| ApiError::not_found("The OAuth app"))?;
    let policy = (policy_days(&s.store, &p.account_id).await?, s.now());
    Ok(Json(app_out(&app, None, policy)))
}

/// Replaces a confidential app's client secret of `account_id` (class A, audited): the old
/// secret stops working at once. `Ok(None)`: no such confidential app. Shared by the API and
/// the dashboard.
pub async fn rotate_app_secret(
    store: &Store,
    now: i64,
    account_id: &str,
    client_id: &str,
    actor: &crate::audit::Actor,
) -> Result<Option<(OAuthAppRow, Secret)>, ApiError> {
    let secret = new_client_secret()?;
    let event = actor.event(
        now,
        dotgit_core::audit::types::OAUTH_APP_SECRET_ROTATED,
        Some(account_id),
        Some(client_id),
        dotgit_core::audit::outcomes::SUCCESS,
        Some(format!("client secret replaced{}", actor.by())),
    );
    if !store
        .rotate_oauth_app_secret(account_id, client_id, &secret.hash().to_hex(), now, &event)
        .await?
    {
        return Ok(None);
    }
    let app = store
        .oauth_app(client_id)
        .await?
        .ok_or_else(|| ApiError::not_found("The OAuth app"))?;
    Ok(Some((app, secret)))
}

/// Replaces a confidential app's client secret: 200 with the new secret, shown this once; the
/// old secret stops working at once.
pub async fn rotate_secret(
    State(s): State<AppState>,
    Caller(p): Caller,
    actor: crate::audit::Actor,
    ApiPath(client_id): ApiPath<String>,
) -> Result<Json<AppOut>, ApiError> {
    let now = s.now();
    let rotated = rotate_app_secret(&s.store, now, &p.account_id, &client_id, &actor).await?;
    s.invalidate_local();
    let (app, secret) = rotated.ok_or_else(|| ApiError::not_found("The confidential OAuth app"))?;
    let policy = (policy_days(&s.store, &p.account_id).await?, now);
    Ok(Json(app_out(&app, Some(&secret), policy)))
}

/// Deletes an app of `account_id` with every code and token issued to it (class A, audited).
/// `false`: no such app. Shared by the API and the dashboard.
pub async fn delete_app(
    store: &Store,
    now: i64,
    account_id: &str,
    client_id: &str,
    actor: &crate::audit::Actor,
) -> Result<bool, ApiError> {
    let event = actor.event(
        now,
        dotgit_core::audit::types::OAUTH_APP_DELETED,
        Some(account_id),
        Some(client_id),
        dotgit_core::audit::outcomes::SUCCESS,
        Some(format!(
            "deleted with every token issued to it{}",
            actor.by()
        )),
    );
    Ok(store
        .delete_oauth_app(account_id, client_id, now, &event)
        .await?)
}

/// Deletes an app: 204; every code and token issued to it stops working at once.
pub async fn delete(
    State(s): State<AppState>,
    Caller(p): Caller,
    actor: crate::audit::Actor,
    ApiPath(client_id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let done = delete_app(&s.store, s.now(), &p.account_id, &client_id, &actor).await?;
    s.invalidate_local();
    if done {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("The OAuth app"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uri_rules() {
        for ok in [
            "https://app.example/callback",
            "https://app.example:8443/cb?x=1",
            "http://127.0.0.1:8080/cb",
            "http://[::1]:9000/cb",
            "http://localhost/cb",
        ] {
            assert!(validate_redirect_uri("u", ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://app.example/cb",
            "https://app.example/cb#frag",
            "https://*.app.example/cb",
            "https://user:pw@app.example/cb",
            "https://user@app.example/cb",
            "/relative",
            "app.example/cb",
            "javascript:alert(1)",
            "com.example.app:/cb",
            "https://app.example/c b",
            "",
            "http://127.0.0.2.evil.example/cb",
        ] {
            let e = validate_redirect_uri("redirect_uris[3]", bad).unwrap_err();
            assert!(
                e.message.starts_with("redirect_uris[3]: "),
                "{bad}: {}",
                e.message
            );
        }
    }
}
