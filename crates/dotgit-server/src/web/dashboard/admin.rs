//! `/admin`, operators only: every account with its plan and status; suspend (with a reason,
//! kept with the account and in the audit log) or lift a suspension; revoke all of an
//! account's credentials after a confirmation step.
//!
//! What must hold: for a non-operator every `/admin` path answers exactly like an unknown path
//! (404), whatever the method; suspension goes through `api::admin::set_status` and revoke-all
//! through `ops::revoke_all_credentials`, as the `/v1/admin` routes do, and this node's cache
//! is dropped, so the account's credentials answer 403 `account_suspended` (or 401) at once.

use super::{confirm, is_form_error, not_for_you, render, Chrome, Confirm, Dash, DashForm};
use crate::api::admin::set_status;
use crate::error::ApiError;
use crate::ops;
use crate::web::error_page;
use askama::Template;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;

const ACTIVE: &str = "admin";

struct AccountView {
    username: String,
    plan: String,
    suspended: bool,
    reason: String,
    operator: bool,
    created: String,
    is_me: bool,
}

#[derive(Template)]
#[template(path = "dashboard/admin.html")]
struct AdminPage {
    chrome: Chrome,
    accounts: Vec<AccountView>,
    suspended: usize,
}

async fn show(
    d: &Dash,
    status: StatusCode,
    notice: Option<String>,
    error: Option<String>,
) -> Response {
    let accounts = match d.state.store.list_accounts().await {
        Ok(a) => a,
        Err(e) => return error_page(e.into()),
    };
    let accounts: Vec<AccountView> = accounts
        .into_iter()
        .map(|a| AccountView {
            suspended: a.status == "suspended",
            reason: a.status_reason.unwrap_or_default(),
            operator: a.is_operator,
            created: super::when(a.created_at),
            is_me: a.id == d.account_id(),
            username: a.username,
            plan: a.plan,
        })
        .collect();
    let mut chrome = d.chrome(ACTIVE);
    chrome.notice = notice;
    chrome.error = error;
    render(
        status,
        &AdminPage {
            chrome,
            suspended: accounts.iter().filter(|a| a.suspended).count(),
            accounts,
        },
    )
}

/// `GET /admin`.
pub async fn page(d: Dash) -> Response {
    if !d.session.account.is_operator {
        return not_for_you();
    }
    show(&d, StatusCode::OK, None, None).await
}

/// `POST /admin/accounts/{username}/suspend` (form `reason`, required).
pub async fn suspend(
    Path(username): Path<String>,
    DashForm { dash: d, form }: DashForm,
) -> Response {
    if !d.session.account.is_operator {
        return not_for_you();
    }
    let result = async {
        let reason = form.text("reason").ok_or_else(|| {
            ApiError::invalid_request(
                "reason: say why the account is suspended (it is kept with the account and in the audit log)",
            )
        })?;
        if username == d.session.account.username {
            return Err(ApiError::invalid_request(
                "username: you cannot suspend your own account from the dashboard",
            ));
        }
        set_status(&d.state, &d.actor, &username, true, Some(reason)).await
    }
    .await;
    match result {
        Ok(a) => {
            show(
                &d,
                StatusCode::OK,
                Some(format!(
                    "{} suspended: every credential of the account is refused (403 account_suspended) until the suspension is lifted. Nothing was revoked.",
                    a.username
                )),
                None,
            )
            .await
        }
        Err(e) if is_form_error(&e) => show(&d, e.status, None, Some(e.message)).await,
        Err(e) => error_page(e),
    }
}

/// `POST /admin/accounts/{username}/unsuspend`.
pub async fn unsuspend(
    Path(username): Path<String>,
    DashForm { dash: d, .. }: DashForm,
) -> Response {
    if !d.session.account.is_operator {
        return not_for_you();
    }
    match set_status(&d.state, &d.actor, &username, false, None).await {
        Ok(a) => {
            show(
                &d,
                StatusCode::OK,
                Some(format!(
                    "Suspension of {} lifted: its credentials work again.",
                    a.username
                )),
                None,
            )
            .await
        }
        Err(e) if is_form_error(&e) => show(&d, e.status, None, Some(e.message)).await,
        Err(e) => error_page(e),
    }
}

/// `GET /admin/accounts/{username}/revoke-credentials`: the confirmation step.
pub async fn revoke_all_confirm(Path(username): Path<String>, d: Dash) -> Response {
    if !d.session.account.is_operator {
        return not_for_you();
    }
    let a = match d.state.store.account_by_username(&username).await {
        Ok(Some(a)) => a,
        Ok(None) => return error_page(ApiError::not_found("The account")),
        Err(e) => return error_page(e.into()),
    };
    let action = format!("/admin/accounts/{}/revoke-credentials", a.username);
    confirm(
        &d,
        Confirm {
            active: ACTIVE,
            title: "Revoke all credentials",
            question: "Revoke every credential of this account?",
            details: vec![
                ("Account", a.username.clone()),
                ("Plan", a.plan.clone()),
                ("Status", a.status.clone()),
            ],
            consequence: "All of its API keys are revoked and all of its JWT keys deleted, at once. This cannot be undone.",
            action: &action,
            button: "Revoke all credentials",
            cancel: "/admin",
        },
    )
}

/// `POST /admin/accounts/{username}/revoke-credentials`.
pub async fn revoke_all(
    Path(username): Path<String>,
    DashForm { dash: d, .. }: DashForm,
) -> Response {
    if !d.session.account.is_operator {
        return not_for_you();
    }
    let s = &d.state;
    let result = ops::revoke_all_credentials(&s.store, d.now(), &username, &d.actor).await;
    s.invalidate_local();
    match result {
        Ok(Some((a, ids))) => {
            show(
                &d,
                StatusCode::OK,
                Some(format!(
                    "Revoked {} credential(s) of {}.",
                    ids.len(),
                    a.username
                )),
                None,
            )
            .await
        }
        Ok(None) => error_page(ApiError::not_found("The account")),
        Err(e) => error_page(e),
    }
}
