//! Settings → JWT Configuration (`/settings/jwt`): register an RSA public key (PEM or JWK
//! pasted), list, delete after a confirmation step, and for each key a worked example of
//! minting a token for it: the `kid`, `iss`, `sub` and `aud` to use and an openssl one-liner
//! (the same as docs/jwt.md).
//!
//! Registration goes through `ops::register_jwt_key` exactly like `POST /v1/jwt-keys`: the key
//! is parsed by the core (a JWK with private members is refused before anything is written)
//! and only its canonical public PEM is stored.

use super::{
    confirm, is_form_error, picked_scopes, project_slugs, render, when_rfc3339, Chrome, Confirm,
    Dash, DashForm, PICKER,
};
use crate::api::jwt_keys::{out, policy, JwtKeyOut};
use crate::error::ApiError;
use crate::ops;
use crate::web::error_page;
use askama::Template;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;

const ACTIVE: &str = "jwt";

/// A key as the list shows it, with its worked example.
struct JwtView {
    kid: String,
    name: String,
    issuer: String,
    subject: String,
    scopes: Vec<String>,
    max_lifetime: String,
    single_use: bool,
    created: String,
    not_after: Option<String>,
    rotation_due: bool,
    thumbprint: String,
    example: String,
    open: bool,
}

/// Single-quotes a value for a POSIX shell.
fn sh(v: &str) -> String {
    format!("'{}'", v.replace('\'', r"'\''"))
}

/// The worked example: mint a token for key `k` with openssl and call the API with it.
fn example(k: &JwtKeyOut, audience: &str, public_url: &str) -> String {
    let scope = k
        .allowed_scopes
        .first()
        .cloned()
        .unwrap_or_else(|| "repo:read".to_owned());
    let lifetime = k.max_lifetime_seconds.min(600);
    let (jti_fmt, jti_arg) = if k.single_use {
        (r#","jti":"%s""#, r#" "$(openssl rand -hex 16)""#)
    } else {
        ("", "")
    };
    format!(
        r#"KID={kid} ISS={iss} SUB={sub} AUD={aud}
PRIVATE_KEY=private.pem   # the private half of the key you registered
b64url() {{ openssl base64 -A | tr '+/' '-_' | tr -d '='; }}
now=$(date +%s)
header=$(printf '{{"alg":"RS256","typ":"JWT","kid":"%s"}}' "$KID" | b64url)
payload=$(printf '{{"iss":"%s","sub":"%s","aud":"%s","iat":%d,"exp":%d,"scope":"%s"{jti_fmt}}}' \
  "$ISS" "$SUB" "$AUD" "$now" "$((now + {lifetime}))" {scope}{jti_arg} | b64url)
signature=$(printf '%s.%s' "$header" "$payload" | openssl dgst -sha256 -sign "$PRIVATE_KEY" -binary | b64url)
TOKEN="$header.$payload.$signature"
curl -H "Authorization: Bearer $TOKEN" {url}/v1/user"#,
        kid = sh(&k.kid),
        iss = sh(&k.issuer),
        sub = sh(&k.subject),
        aud = sh(audience),
        scope = sh(&scope),
        url = sh(public_url.trim_end_matches('/')),
    )
}

#[derive(Template)]
#[template(path = "dashboard/jwt.html")]
struct JwtPage {
    chrome: Chrome,
    keys: Vec<JwtView>,
    projects: Vec<String>,
    picker: &'static [(&'static str, &'static str)],
    audience: String,
    subject: String,
    name: String,
    issuer: String,
    public_key: String,
}

#[derive(Default)]
struct Extra {
    notice: Option<String>,
    error: Option<String>,
    registered: Option<String>,
    name: String,
    issuer: String,
    public_key: String,
}

async fn show(d: &Dash, status: StatusCode, extra: Extra) -> Response {
    match build(d, extra).await {
        Ok(page) => render(status, &page),
        Err(e) => error_page(e),
    }
}

async fn build(d: &Dash, extra: Extra) -> Result<JwtPage, ApiError> {
    let s = &d.state;
    let pol = policy(s, d.account_id()).await?;
    let now = d.now();
    let keys = s
        .store
        .list_jwt_keys(d.account_id())
        .await?
        .iter()
        .map(|row| {
            let k = out(row, pol, now);
            JwtView {
                example: example(&k, &s.audience, &s.public_url),
                open: extra.registered.as_deref() == Some(k.kid.as_str()),
                kid: k.kid,
                name: k.name,
                issuer: k.issuer,
                subject: k.subject,
                scopes: k.allowed_scopes,
                max_lifetime: lifetime_text(k.max_lifetime_seconds),
                single_use: k.single_use,
                created: when_rfc3339(&k.created_at),
                not_after: k.not_after.as_deref().map(when_rfc3339),
                rotation_due: k.rotation_due,
                thumbprint: k.thumbprint,
            }
        })
        .collect();
    let mut chrome = d.chrome(ACTIVE);
    chrome.notice = extra.notice;
    chrome.error = extra.error;
    Ok(JwtPage {
        chrome,
        keys,
        projects: project_slugs(d).await?,
        picker: &PICKER,
        audience: s.audience.clone(),
        subject: d.account_id().to_owned(),
        name: extra.name,
        issuer: extra.issuer,
        public_key: extra.public_key,
    })
}

fn lifetime_text(seconds: i64) -> String {
    if seconds % 3600 == 0 {
        format!("{} h", seconds / 3600)
    } else if seconds % 60 == 0 {
        format!("{} min", seconds / 60)
    } else {
        format!("{seconds} s")
    }
}

/// `GET /settings/jwt`.
pub async fn page(d: Dash) -> Response {
    show(&d, StatusCode::OK, Extra::default()).await
}

/// `POST /settings/jwt` (form `name`, `public_key` (PEM or JWK), `scope`…, `project`?,
/// `extra_scopes`?, `max_lifetime_seconds`?, `issuer`?, `single_use`?): registers a key.
pub async fn register(DashForm { dash: d, form }: DashForm) -> Response {
    let name = form.get("name").unwrap_or("").to_owned();
    let issuer = form.text("issuer").map(str::to_owned);
    let pasted = form.get("public_key").unwrap_or("").trim().to_owned();
    let result = async {
        if pasted.is_empty() {
            return Err(ApiError::invalid_request(
                "public_key: paste the RSA public key, as PEM or as a JWK",
            ));
        }
        let scopes = picked_scopes(&form, "allowed_scopes")?;
        d.check_grantable(&scopes)?;
        let max = form.number::<i64>("max_lifetime_seconds")?;
        // the core reads a PEM string, or a JWK given as a JSON string
        let key = serde_json::Value::String(pasted.clone());
        ops::register_jwt_key(
            &d.state.store,
            d.now(),
            d.account_id(),
            ops::NewJwtKey {
                name: &name,
                public_key: &key,
                allowed_scopes: &scopes,
                max_lifetime_seconds: max,
                issuer: issuer.as_deref(),
                single_use: form.checked("single_use"),
            },
            &d.actor,
        )
        .await
    }
    .await;
    match result {
        Ok(row) => {
            show(
                &d,
                StatusCode::OK,
                Extra {
                    notice: Some(format!(
                        "JWT key `{}` registered with kid {}. Sign tokens with its private key as shown below.",
                        row.name, row.kid
                    )),
                    registered: Some(row.kid),
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
                    issuer: issuer.unwrap_or_default(),
                    public_key: pasted,
                    ..Extra::default()
                },
            )
            .await
        }
        Err(e) => error_page(e),
    }
}

/// `GET /settings/jwt/{kid}/delete`: the confirmation step.
pub async fn delete_confirm(Path(kid): Path<String>, d: Dash) -> Response {
    let k = match d.state.store.get_jwt_key(d.account_id(), &kid).await {
        Ok(Some(k)) => k,
        Ok(None) => return error_page(ApiError::not_found("The JWT key")),
        Err(e) => return error_page(e.into()),
    };
    let action = format!("/settings/jwt/{}/delete", k.kid);
    confirm(
        &d,
        Confirm {
            active: ACTIVE,
            title: "Delete JWT key",
            question: "Delete this JWT key?",
            details: vec![
                ("Name", k.name.clone()),
                ("kid", k.kid.clone()),
                ("Issuer", k.issuer.clone()),
            ],
            consequence:
                "Every token signed with it is refused from now on (401). This cannot be undone.",
            action: &action,
            button: "Delete key",
            cancel: "/settings/jwt",
        },
    )
}

/// `POST /settings/jwt/{kid}/delete`: deletes the key; its tokens stop working at once.
pub async fn delete(Path(kid): Path<String>, DashForm { dash: d, .. }: DashForm) -> Response {
    let s = &d.state;
    let done = ops::delete_jwt_key(&s.store, d.now(), d.account_id(), &kid, &d.actor).await;
    s.invalidate_local();
    match done {
        Ok(true) => {
            show(
                &d,
                StatusCode::OK,
                Extra {
                    notice: Some(format!(
                        "JWT key {kid} deleted: its tokens stopped working at once."
                    )),
                    ..Extra::default()
                },
            )
            .await
        }
        Ok(false) => error_page(ApiError::not_found("The JWT key")),
        Err(e) => error_page(e),
    }
}
