//! Settings → API Keys (`/settings/api-keys`): the account's keys (name, prefix, scopes,
//! created, last used, expiry, a "rotation due" badge past the account's rotation policy, and
//! the scopes a key has not used lately), "Create New Key" with a scope picker that can narrow
//! to one project, the secret shown once with a copy button, rotation with a grace period, and
//! revocation after a confirmation step.
//!
//! Every change goes through `ops` exactly as `/v1/api-keys` does, and the verification cache
//! is dropped after a rotation or revocation, so a revoked key answers 401 on the next request.

use super::{
    confirm, is_form_error, picked_scopes, project_slugs, render, when_rfc3339, Chrome, Confirm,
    Dash, DashForm, PICKER,
};
use crate::api::keys::{key_out, ApiKeyOut, KeyContext};
use crate::error::ApiError;
use crate::ops;
use crate::web::error_page;
use askama::Template;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;

const ACTIVE: &str = "api-keys";

/// A key as the list shows it.
struct KeyView {
    id: String,
    name: String,
    prefix: String,
    scopes: Vec<String>,
    created: String,
    last_used: String,
    expires: String,
    rotation_due: bool,
    unused: Vec<String>,
    rotated: bool,
}

impl KeyView {
    fn of(o: ApiKeyOut, rotated: bool) -> KeyView {
        KeyView {
            id: o.id,
            name: o.name,
            prefix: o.prefix,
            created: when_rfc3339(&o.created_at),
            last_used: o
                .last_used_at
                .as_deref()
                .map(when_rfc3339)
                .unwrap_or_else(|| "never".to_owned()),
            expires: o
                .expires_at
                .as_deref()
                .map(when_rfc3339)
                .unwrap_or_else(|| "never".to_owned()),
            rotation_due: o.rotation_due,
            unused: if o.unused_scopes.len() < o.scopes.len() {
                o.unused_scopes
            } else {
                // never used at all: the list would only repeat the scopes
                Vec::new()
            },
            scopes: o.scopes,
            rotated,
        }
    }
}

/// A secret to show once.
struct Created {
    heading: &'static str,
    name: String,
    prefix: String,
    scopes: Vec<String>,
    secret: String,
    note: Option<String>,
}

#[derive(Template)]
#[template(path = "dashboard/api_keys.html")]
struct KeysPage {
    chrome: Chrome,
    keys: Vec<KeyView>,
    projects: Vec<String>,
    picker: &'static [(&'static str, &'static str)],
    policy_days: i64,
    created: Option<Created>,
    name: String,
}

/// What the page shows besides the list.
#[derive(Default)]
struct Extra {
    notice: Option<String>,
    error: Option<String>,
    created: Option<Created>,
    name: String,
}

async fn show(d: &Dash, status: StatusCode, extra: Extra) -> Response {
    match build(d, extra).await {
        Ok(page) => render(status, &page),
        Err(e) => error_page(e),
    }
}

async fn build(d: &Dash, extra: Extra) -> Result<KeysPage, ApiError> {
    let s = &d.state;
    let ctx = KeyContext::load(s, d.account_id()).await?;
    let rows = s.store.list_api_keys(d.account_id()).await?;
    let mut keys = Vec::with_capacity(rows.len());
    for k in &rows {
        keys.push(KeyView::of(
            key_out(s, ctx, k, None).await?,
            k.replaced_by.is_some(),
        ));
    }
    let mut chrome = d.chrome(ACTIVE);
    chrome.notice = extra.notice;
    chrome.error = extra.error;
    Ok(KeysPage {
        chrome,
        keys,
        projects: project_slugs(d).await?,
        picker: &PICKER,
        policy_days: ctx.policy_days,
        created: extra.created,
        name: extra.name,
    })
}

/// `GET /settings/api-keys`.
pub async fn page(d: Dash) -> Response {
    show(&d, StatusCode::OK, Extra::default()).await
}

/// `POST /settings/api-keys` (form `name`, `scope`…, `project`?, `extra_scopes`?,
/// `expires_in_days`?): creates a key and shows its secret this once.
pub async fn create(DashForm { dash: d, form }: DashForm) -> Response {
    let name = form.get("name").unwrap_or("").to_owned();
    let result = async {
        let scopes = picked_scopes(&form, "scopes")?;
        d.check_grantable(&scopes)?;
        let days = form.number::<u32>("expires_in_days")?;
        ops::create_api_key(
            &d.state.store,
            d.now(),
            d.account_id(),
            &name,
            &scopes,
            days,
            &d.actor,
        )
        .await
    }
    .await;
    match result {
        Ok((row, secret)) => {
            let created = Created {
                heading: "Your new API key",
                name: row.name.clone(),
                prefix: row.prefix.clone(),
                scopes: dotgit_core::ScopeSet::parse_space_separated(&row.scopes)
                    .unwrap_or_default()
                    .to_strings(),
                secret: secret.expose().to_owned(),
                note: None,
            };
            show(
                &d,
                StatusCode::OK,
                Extra {
                    notice: Some(format!("API key `{}` created.", row.name)),
                    created: Some(created),
                    ..Extra::default()
                },
            )
            .await
        }
        Err(e) if is_form_error(&e) => {
            show(
                &d,
                e.status,
                Extra {
                    error: Some(e.message),
                    name,
                    ..Extra::default()
                },
            )
            .await
        }
        Err(e) => error_page(e),
    }
}

/// `POST /settings/api-keys/{id}/rotate` (form `grace_period_seconds`?): a new key with the
/// same name, scopes and expiry; the old one works until the grace period ends.
pub async fn rotate(Path(id): Path<String>, DashForm { dash: d, form }: DashForm) -> Response {
    let s = &d.state;
    let old = match s.store.get_api_key(d.account_id(), &id).await {
        Ok(Some(k)) => k,
        Ok(None) => return error_page(ApiError::not_found("The API key")),
        Err(e) => return error_page(e.into()),
    };
    let result = async {
        let grace = form
            .number::<u32>("grace_period_seconds")?
            .unwrap_or(ops::DEFAULT_GRACE_SECONDS);
        let r = ops::rotate_api_key(&s.store, d.now(), &old, grace, &d.actor).await;
        s.invalidate_local();
        r.map(|(row, secret)| (row, secret, grace))
    }
    .await;
    match result {
        Ok((row, secret, grace)) => {
            let note = if grace == 0 {
                "The old key stopped working now.".to_owned()
            } else {
                format!(
                    "The old key (prefix {}) keeps working until {}; move your clients to the new one before then.",
                    old.prefix,
                    super::when(d.now() + i64::from(grace))
                )
            };
            let created = Created {
                heading: "Your rotated API key",
                name: row.name.clone(),
                prefix: row.prefix.clone(),
                scopes: dotgit_core::ScopeSet::parse_space_separated(&row.scopes)
                    .unwrap_or_default()
                    .to_strings(),
                secret: secret.expose().to_owned(),
                note: Some(note),
            };
            show(
                &d,
                StatusCode::OK,
                Extra {
                    notice: Some(format!("API key `{}` rotated.", row.name)),
                    created: Some(created),
                    ..Extra::default()
                },
            )
            .await
        }
        Err(e) if is_form_error(&e) => {
            show(
                &d,
                e.status,
                Extra {
                    error: Some(e.message),
                    ..Extra::default()
                },
            )
            .await
        }
        Err(e) => error_page(e),
    }
}

/// `GET /settings/api-keys/{id}/revoke`: the confirmation step.
pub async fn revoke_confirm(Path(id): Path<String>, d: Dash) -> Response {
    let k = match d.state.store.get_api_key(d.account_id(), &id).await {
        Ok(Some(k)) => k,
        Ok(None) => return error_page(ApiError::not_found("The API key")),
        Err(e) => return error_page(e.into()),
    };
    let action = format!("/settings/api-keys/{}/revoke", k.id);
    confirm(
        &d,
        Confirm {
            active: ACTIVE,
            title: "Revoke API key",
            question: "Revoke this API key?",
            details: vec![
                ("Name", k.name.clone()),
                ("Prefix", k.prefix.clone()),
                ("Scopes", k.scopes.clone()),
            ],
            consequence:
                "Every request made with it is refused from now on (401). This cannot be undone.",
            action: &action,
            button: "Revoke key",
            cancel: super::HOME,
        },
    )
}

/// `POST /settings/api-keys/{id}/revoke`: revokes the key, effective at once.
pub async fn revoke(Path(id): Path<String>, DashForm { dash: d, .. }: DashForm) -> Response {
    let s = &d.state;
    let name = match s.store.get_api_key(d.account_id(), &id).await {
        Ok(k) => k.map(|k| k.name),
        Err(e) => return error_page(e.into()),
    };
    let done = ops::revoke_api_key(&s.store, d.now(), d.account_id(), &id, &d.actor).await;
    s.invalidate_local();
    match done {
        Ok(true) => {
            show(
                &d,
                StatusCode::OK,
                Extra {
                    notice: Some(format!(
                        "API key `{}` revoked: it stopped working at once.",
                        name.unwrap_or(id)
                    )),
                    ..Extra::default()
                },
            )
            .await
        }
        Ok(false) => error_page(ApiError::not_found("The API key")),
        Err(e) => error_page(e),
    }
}
