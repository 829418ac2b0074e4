//! Settings → OAuth apps (`/settings/oauth-apps`): register an app (name, redirect URIs,
//! confidential or public, allowed scopes) with its client secret shown once, list, delete
//! after a confirmation step; and "Authorized apps": the apps this account has granted access
//! to, each revocable.
//!
//! Registration and deletion go through `oauth::apps` and revocation through
//! `oauth::authorizations`, exactly like the `/v1/oauth/…` routes; the verification cache is
//! dropped after a deletion or revocation, so the app's tokens answer 401 at once.

use super::{
    confirm, is_form_error, picked_scopes, project_slugs, render, when_rfc3339, Chrome, Confirm,
    Dash, DashForm, PICKER,
};
use crate::error::ApiError;
use crate::oauth::apps::{
    app_out, delete_app, policy_days, register_app, rotate_app_secret, NewApp,
};
use crate::web::error_page;
use askama::Template;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use dotgit_core::ScopeSet;

const ACTIVE: &str = "oauth-apps";

struct AppView {
    client_id: String,
    name: String,
    redirect_uris: Vec<String>,
    confidential: bool,
    scopes: Vec<String>,
    created: String,
    rotation_due: bool,
}

struct GrantView {
    id: String,
    app_name: String,
    client_id: String,
    scopes: Vec<String>,
    created: String,
    updated: String,
}

/// A new app's credentials, shown once.
struct Registered {
    name: String,
    client_id: String,
    secret: Option<String>,
}

#[derive(Template)]
#[template(path = "dashboard/oauth_apps.html")]
struct AppsPage {
    chrome: Chrome,
    apps: Vec<AppView>,
    grants: Vec<GrantView>,
    projects: Vec<String>,
    picker: &'static [(&'static str, &'static str)],
    registered: Option<Registered>,
    name: String,
    redirect_uris: String,
    public_client: bool,
}

#[derive(Default)]
struct Extra {
    notice: Option<String>,
    error: Option<String>,
    registered: Option<Registered>,
    name: String,
    redirect_uris: String,
    public_client: bool,
}

async fn show(d: &Dash, status: StatusCode, extra: Extra) -> Response {
    match build(d, extra).await {
        Ok(page) => render(status, &page),
        Err(e) => error_page(e),
    }
}

async fn build(d: &Dash, extra: Extra) -> Result<AppsPage, ApiError> {
    let s = &d.state;
    let policy = (policy_days(&s.store, d.account_id()).await?, d.now());
    let apps = s
        .store
        .list_oauth_apps(d.account_id())
        .await?
        .iter()
        .map(|a| {
            let o = app_out(a, None, policy);
            AppView {
                client_id: o.client_id.clone(),
                name: o.name.clone(),
                redirect_uris: o.redirect_uris.clone(),
                confidential: o.confidential,
                scopes: o.allowed_scopes.clone(),
                created: when_rfc3339(&o.created_at),
                rotation_due: o.rotation_due,
            }
        })
        .collect();
    let grants = s
        .store
        .list_oauth_authorizations(d.account_id())
        .await?
        .into_iter()
        .map(|g| GrantView {
            scopes: ScopeSet::parse_space_separated(&g.scope)
                .unwrap_or_default()
                .to_strings(),
            id: g.id,
            app_name: g.app_name,
            client_id: g.client_id,
            created: super::when(g.created_at),
            updated: super::when(g.updated_at),
        })
        .collect();
    let mut chrome = d.chrome(ACTIVE);
    chrome.notice = extra.notice;
    chrome.error = extra.error;
    Ok(AppsPage {
        chrome,
        apps,
        grants,
        projects: project_slugs(d).await?,
        picker: &PICKER,
        registered: extra.registered,
        name: extra.name,
        redirect_uris: extra.redirect_uris,
        public_client: extra.public_client,
    })
}

/// `GET /settings/oauth-apps`.
pub async fn page(d: Dash) -> Response {
    show(&d, StatusCode::OK, Extra::default()).await
}

/// `POST /settings/oauth-apps` (form `name`, `redirect_uris` (one per line), `client_type`
/// (`confidential` | `public`), `scope`…, `project`?, `extra_scopes`?): registers an app and
/// shows its client secret this once.
pub async fn register(DashForm { dash: d, form }: DashForm) -> Response {
    let name = form.get("name").unwrap_or("").to_owned();
    let uris_text = form.get("redirect_uris").unwrap_or("").to_owned();
    let public_client = form.get("client_type") == Some("public");
    let result = async {
        let uris: Vec<String> = uris_text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect();
        let scopes = picked_scopes(&form, "allowed_scopes")?;
        d.check_grantable(&scopes)?;
        register_app(
            &d.state.store,
            d.now(),
            d.account_id(),
            NewApp {
                name: &name,
                redirect_uris: &uris,
                allowed_scopes: &scopes,
                confidential: !public_client,
            },
            &d.actor,
        )
        .await
    }
    .await;
    match result {
        Ok((row, secret)) => {
            let notice = if row.confidential {
                format!("OAuth app `{}` registered.", row.name)
            } else {
                format!(
                    "OAuth app `{}` registered as a public client: it has no secret and must use PKCE.",
                    row.name
                )
            };
            show(
                &d,
                StatusCode::OK,
                Extra {
                    notice: Some(notice),
                    registered: Some(Registered {
                        name: row.name.clone(),
                        client_id: row.client_id.clone(),
                        secret: secret.map(|s| s.expose().to_owned()),
                    }),
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
                    redirect_uris: uris_text,
                    public_client,
                    ..Extra::default()
                },
            )
            .await
        }
        Err(e) => error_page(e),
    }
}

/// `GET /settings/oauth-apps/{client_id}/delete`: the confirmation step.
pub async fn delete_confirm(Path(client_id): Path<String>, d: Dash) -> Response {
    let app = match d.state.store.oauth_app(&client_id).await {
        Ok(Some(a)) if a.account_id == d.account_id() => a,
        Ok(_) => return error_page(ApiError::not_found("The OAuth app")),
        Err(e) => return error_page(e.into()),
    };
    let action = format!("/settings/oauth-apps/{}/delete", app.client_id);
    confirm(
        &d,
        Confirm {
            active: ACTIVE,
            title: "Delete OAuth app",
            question: "Delete this OAuth app?",
            details: vec![
                ("Name", app.name.clone()),
                ("Client id", app.client_id.clone()),
            ],
            consequence: "Every code and token issued to it stops working at once, for every user who authorized it. This cannot be undone.",
            action: &action,
            button: "Delete app",
            cancel: "/settings/oauth-apps",
        },
    )
}

/// `POST /settings/oauth-apps/{client_id}/delete`.
pub async fn delete(Path(client_id): Path<String>, DashForm { dash: d, .. }: DashForm) -> Response {
    let s = &d.state;
    let done = delete_app(&s.store, d.now(), d.account_id(), &client_id, &d.actor).await;
    s.invalidate_local();
    match done {
        Ok(true) => {
            show(
                &d,
                StatusCode::OK,
                Extra {
                    notice: Some(format!(
                        "OAuth app {client_id} deleted: its tokens stopped working at once."
                    )),
                    ..Extra::default()
                },
            )
            .await
        }
        Ok(false) => error_page(ApiError::not_found("The OAuth app")),
        Err(e) => error_page(e),
    }
}

/// `GET /settings/oauth-apps/{client_id}/rotate-secret`: the confirmation step.
pub async fn rotate_confirm(Path(client_id): Path<String>, d: Dash) -> Response {
    let app = match d.state.store.oauth_app(&client_id).await {
        Ok(Some(a)) if a.account_id == d.account_id() && a.confidential => a,
        Ok(_) => return error_page(ApiError::not_found("The confidential OAuth app")),
        Err(e) => return error_page(e.into()),
    };
    let action = format!("/settings/oauth-apps/{}/rotate-secret", app.client_id);
    confirm(
        &d,
        Confirm {
            active: ACTIVE,
            title: "Replace client secret",
            question: "Replace this app's client secret?",
            details: vec![
                ("Name", app.name.clone()),
                ("Client id", app.client_id.clone()),
            ],
            consequence: "The new secret is shown once; the old one stops working at once, so update the app's configuration right away.",
            action: &action,
            button: "Replace secret",
            cancel: "/settings/oauth-apps",
        },
    )
}

/// `POST /settings/oauth-apps/{client_id}/rotate-secret`: a new client secret, shown once.
pub async fn rotate(Path(client_id): Path<String>, DashForm { dash: d, .. }: DashForm) -> Response {
    let s = &d.state;
    let rotated = rotate_app_secret(&s.store, d.now(), d.account_id(), &client_id, &d.actor).await;
    s.invalidate_local();
    match rotated {
        Ok(Some((row, secret))) => {
            show(
                &d,
                StatusCode::OK,
                Extra {
                    notice: Some(format!(
                        "Client secret of `{}` replaced: the old one no longer works.",
                        row.name
                    )),
                    registered: Some(Registered {
                        name: row.name.clone(),
                        client_id: row.client_id.clone(),
                        secret: Some(secret.expose().to_owned()),
                    }),
                    ..Extra::default()
                },
            )
            .await
        }
        Ok(None) => error_page(ApiError::not_found("The confidential OAuth app")),
        Err(e) => error_page(e),
    }
}

/// `GET /settings/authorized-apps/{id}/revoke`: the confirmation step.
pub async fn revoke_confirm(Path(id): Path<String>, d: Dash) -> Response {
    let g = match d
        .state
        .store
        .get_oauth_authorization(d.account_id(), &id)
        .await
    {
        Ok(Some(g)) => g,
        Ok(None) => return error_page(ApiError::not_found("The authorization")),
        Err(e) => return error_page(e.into()),
    };
    let action = format!("/settings/authorized-apps/{}/revoke", g.id);
    confirm(
        &d,
        Confirm {
            active: ACTIVE,
            title: "Revoke access",
            question: "Revoke this app's access to your account?",
            details: vec![
                ("App", g.app_name.clone()),
                ("Client id", g.client_id.clone()),
                ("Scopes", g.scope.clone()),
            ],
            consequence:
                "Its access and refresh tokens stop working at once; it will have to ask you again.",
            action: &action,
            button: "Revoke access",
            cancel: "/settings/oauth-apps",
        },
    )
}

/// `POST /settings/authorized-apps/{id}/revoke`.
pub async fn revoke(Path(id): Path<String>, DashForm { dash: d, .. }: DashForm) -> Response {
    let s = &d.state;
    let now = d.now();
    let done = s
        .store
        .revoke_oauth_authorization(d.account_id(), &id, now, &d.actor.oauth_audit(now))
        .await
        .map_err(ApiError::from);
    s.invalidate_local();
    match done {
        Ok(true) => {
            show(
                &d,
                StatusCode::OK,
                Extra {
                    notice: Some(
                        "Access revoked: the app's tokens stopped working at once.".into(),
                    ),
                    ..Extra::default()
                },
            )
            .await
        }
        Ok(false) => error_page(ApiError::not_found("The authorization")),
        Err(e) => error_page(e),
    }
}
