//! The one place that lists every route, who may call it, and its documentation. The same table
//! builds the axum router (each route wrapped in its access check) and `GET /openapi.json`, so
//! the published contract cannot drift from what is served. `Route::new` takes an [`Access`]:
//! a route cannot be added without saying who may call it.

use crate::api;
use crate::auth::{self, Access, Projects};
use crate::error::{ApiError, REQUEST_ID};
use crate::extract::MAX_BODY_BYTES;
use crate::state::AppState;
use axum::extract::{DefaultBodyLimit, FromRequestParts, RawPathParams, Request, State};
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter};
use axum::{Json, Router};
use dotgit_core::{Action, Resource};
use schemars::generate::{SchemaGenerator, SchemaSettings};
use schemars::{JsonSchema, Schema};
use serde_json::{json, Map, Value};

type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

/// One documented route.
#[derive(Debug, Clone)]
pub struct RouteDoc {
    /// HTTP method.
    pub method: Method,
    /// Path template (axum syntax, same as OpenAPI's).
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
    /// One-line summary.
    pub summary: &'static str,
    /// Success status.
    pub status: u16,
    request: Option<SchemaFn>,
    response: Option<SchemaFn>,
    /// Media type of the request body (default `application/json`).
    pub request_media: &'static str,
    /// Media type of the success body (default `application/json`).
    pub response_media: &'static str,
}

fn schema<T: JsonSchema>(g: &mut SchemaGenerator) -> Schema {
    g.subschema_for::<T>()
}

struct Table {
    router: Router<AppState>,
    docs: Vec<RouteDoc>,
}

impl Table {
    #[allow(clippy::too_many_arguments)]
    fn add<H, T>(
        mut self,
        method: Method,
        path: &'static str,
        access: Access,
        summary: &'static str,
        status: u16,
        request: Option<SchemaFn>,
        response: Option<SchemaFn>,
        handler: H,
    ) -> Self
    where
        H: axum::handler::Handler<T, AppState>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone()).unwrap_or(MethodFilter::GET);
        let mr = if access == Access::Public {
            on(filter, handler)
        } else {
            on(filter, Guarded::new(access, handler))
        };
        self.router = self.router.route(path, mr);
        self.docs.push(RouteDoc {
            method,
            path,
            access,
            summary,
            status,
            request,
            response,
            request_media: "application/json",
            response_media: "application/json",
        });
        self
    }

    /// Sets the media types of the route added last (forms, HTML pages).
    fn media(mut self, request: &'static str, response: &'static str) -> Self {
        if let Some(d) = self.docs.last_mut() {
            d.request_media = request;
            d.response_media = response;
        }
        self
    }
}

/// Every route of the HTTPS listener, with its access rule.
fn table() -> Table {
    use Access::*;
    use Action::{Read, Write};
    use Projects::{All, AnyOne, Path};
    use Resource::*;
    let get = Method::GET;
    let post = Method::POST;
    let del = Method::DELETE;
    let put = Method::PUT;
    Table {
        router: Router::new(),
        docs: Vec::new(),
    }
    .add(
        get.clone(),
        "/healthz",
        Public,
        "Readiness: the server and its storage answer",
        200,
        None,
        None,
        health,
    )
    .add(
        get.clone(),
        "/metrics",
        Public,
        "Prometheus metrics: authentications by kind and outcome, latency, rate-limit trips, audit queue",
        200,
        None,
        None,
        metrics,
    )
    .add(
        get.clone(),
        "/v1/audit-events",
        Scoped(Audit, Read, All),
        "The audit log: the account's events (operators: all), newest first, filtered, cursor-paged",
        200,
        None,
        Some(schema::<api::audit::AuditPage>),
        api::audit::list,
    )
    .add(
        Method::PATCH,
        "/v1/user",
        Scoped(Keys, Write, All),
        "Change the account's security settings (anomaly_auto_revoke)",
        200,
        Some(schema::<api::user::UserSettings>),
        Some(schema::<api::user::UserSettingsOut>),
        api::user::patch_user,
    )
    .add(
        get.clone(),
        "/livez",
        Public,
        "Liveness: the process answers (no storage round trip)",
        200,
        None,
        None,
        live,
    )
    .add(
        get.clone(),
        "/openapi.json",
        Public,
        "This document",
        200,
        None,
        None,
        openapi,
    )
    .add(
        get.clone(),
        "/v1/user",
        Authenticated,
        "The caller: account and credential in use",
        200,
        None,
        Some(schema::<api::user::UserOut<'static>>),
        api::user::get_user,
    )
    .add(
        get.clone(),
        "/v1/api-keys",
        Scoped(Keys, Read, All),
        "List API keys",
        200,
        None,
        Some(schema::<Vec<api::keys::ApiKeyOut>>),
        api::keys::list,
    )
    .add(
        post.clone(),
        "/v1/api-keys",
        Scoped(Keys, Write, All),
        "Create an API key (the secret is shown once)",
        201,
        Some(schema::<api::keys::CreateKey>),
        Some(schema::<api::keys::ApiKeyOut>),
        api::keys::create,
    )
    .add(
        get.clone(),
        "/v1/api-keys/{id}",
        Scoped(Keys, Read, All),
        "Get an API key",
        200,
        None,
        Some(schema::<api::keys::ApiKeyOut>),
        api::keys::get,
    )
    .add(
        del.clone(),
        "/v1/api-keys/{id}",
        Scoped(Keys, Write, All),
        "Revoke an API key, effective at once",
        204,
        None,
        None,
        api::keys::revoke,
    )
    .add(
        post.clone(),
        "/v1/api-keys/{id}/rotate",
        Scoped(Keys, Write, All),
        "Rotate an API key; the old key works until the grace period ends",
        201,
        Some(schema::<api::keys::RotateKey>),
        Some(schema::<api::keys::ApiKeyOut>),
        api::keys::rotate,
    )
    .add(
        get.clone(),
        "/v1/jwt-keys",
        Scoped(Keys, Read, All),
        "JWT Configuration: list registered public keys",
        200,
        None,
        Some(schema::<Vec<api::jwt_keys::JwtKeyOut>>),
        api::jwt_keys::list,
    )
    .add(
        post.clone(),
        "/v1/jwt-keys",
        Scoped(Keys, Write, All),
        "JWT Configuration: register an RSA public key (PEM or JWK)",
        201,
        Some(schema::<api::jwt_keys::CreateJwtKey>),
        Some(schema::<api::jwt_keys::JwtKeyOut>),
        api::jwt_keys::create,
    )
    .add(
        get.clone(),
        "/v1/jwt-keys/{kid}",
        Scoped(Keys, Read, All),
        "JWT Configuration: get a key",
        200,
        None,
        Some(schema::<api::jwt_keys::JwtKeyOut>),
        api::jwt_keys::get,
    )
    .add(
        del.clone(),
        "/v1/jwt-keys/{kid}",
        Scoped(Keys, Write, All),
        "JWT Configuration: delete a key; its tokens stop working at once",
        204,
        None,
        None,
        api::jwt_keys::delete,
    )
    .add(
        get.clone(),
        "/v1/projects",
        Scoped(Repo, Read, AnyOne),
        "List the projects the credential may read",
        200,
        None,
        Some(schema::<Vec<api::projects::ProjectOut>>),
        api::projects::list,
    )
    .add(
        post.clone(),
        "/v1/projects",
        Scoped(Repo, Write, AnyOne),
        "Create a project (needs repo:write on its slug)",
        201,
        Some(schema::<api::projects::CreateProject>),
        Some(schema::<api::projects::ProjectOut>),
        api::projects::create,
    )
    .add(
        get.clone(),
        "/v1/projects/{slug}",
        Scoped(Repo, Read, Path("slug")),
        "Get a project",
        200,
        None,
        Some(schema::<api::projects::ProjectOut>),
        api::projects::get,
    )
    .add(
        del.clone(),
        "/v1/projects/{slug}",
        Scoped(Repo, Write, Path("slug")),
        "Delete a project and its deployments",
        204,
        None,
        None,
        api::projects::delete,
    )
    .add(
        get.clone(),
        "/v1/projects/{slug}/deployments",
        Scoped(Deploy, Read, Path("slug")),
        "List a project's deployments",
        200,
        None,
        Some(schema::<Vec<api::projects::DeploymentOut>>),
        api::projects::list_deployments,
    )
    .add(
        post.clone(),
        "/v1/projects/{slug}/deployments",
        Scoped(Deploy, Write, Path("slug")),
        "Start a deployment",
        201,
        Some(schema::<api::projects::CreateDeployment>),
        Some(schema::<api::projects::DeploymentOut>),
        api::projects::create_deployment,
    )
    .add(
        get.clone(),
        "/v1/projects/{slug}/deployments/{id}",
        Scoped(Deploy, Read, Path("slug")),
        "Get a deployment",
        200,
        None,
        Some(schema::<api::projects::DeploymentOut>),
        api::projects::get_deployment,
    )
    .add(
        get.clone(),
        "/v1/teams",
        Scoped(Team, Read, All),
        "List teams with their members",
        200,
        None,
        Some(schema::<Vec<api::teams::TeamOut>>),
        api::teams::list,
    )
    .add(
        post.clone(),
        "/v1/teams",
        Scoped(Team, Write, All),
        "Create a team",
        201,
        Some(schema::<api::teams::CreateTeam>),
        Some(schema::<api::teams::TeamOut>),
        api::teams::create,
    )
    .add(
        put,
        "/v1/teams/{slug}/members/{account}",
        Scoped(Team, Write, All),
        "Add a member (idempotent)",
        200,
        None,
        Some(schema::<api::teams::TeamOut>),
        api::teams::put_member,
    )
    .add(
        del,
        "/v1/teams/{slug}/members/{account}",
        Scoped(Team, Write, All),
        "Remove a member",
        204,
        None,
        None,
        api::teams::delete_member,
    )
    .add(
        post.clone(),
        "/v1/auth/check",
        Public,
        "Decide on a credential and scope exactly as a /v1 route would (forward-auth)",
        200,
        Some(schema::<api::check::CheckRequest>),
        Some(schema::<api::check::CheckResponse<'static>>),
        api::check::check,
    )
    .add(
        get,
        "/v1/admin/accounts",
        Operator(Read),
        "Operators: list accounts",
        200,
        None,
        Some(schema::<Vec<api::admin::AccountOut>>),
        api::admin::list,
    )
    .add(
        post.clone(),
        "/v1/admin/accounts/{username}/suspend",
        Operator(Write),
        "Operators: suspend an account (every credential answers 403 until lifted)",
        200,
        Some(schema::<api::admin::SuspendBody>),
        Some(schema::<api::admin::AccountOut>),
        api::admin::suspend,
    )
    .add(
        post,
        "/v1/admin/accounts/{username}/unsuspend",
        Operator(Write),
        "Operators: lift a suspension",
        200,
        None,
        Some(schema::<api::admin::AccountOut>),
        api::admin::unsuspend,
    )
    .add(
        Method::POST,
        "/v1/admin/accounts/{username}/revoke-credentials",
        Operator(Write),
        "Operators: revoke every credential of an account at once",
        200,
        None,
        Some(schema::<api::admin::RevokedAll>),
        api::admin::revoke_credentials,
    )
    .pipe(oauth_routes)
    .pipe(dashboard_routes)
}

impl Table {
    fn pipe(self, f: fn(Table) -> Table) -> Table {
        f(self)
    }
}

const FORM: &str = "application/x-www-form-urlencoded";
const HTML: &str = "text/html";

/// The OAuth 2.0 authorization server, its app registration, and the browser sign-in it needs.
fn oauth_routes(t: Table) -> Table {
    use crate::{oauth, web};
    use Access::*;
    use Action::{Read, Write};
    use Projects::All;
    use Resource::Keys;
    t.add(
        Method::GET,
        "/.well-known/oauth-authorization-server",
        Public,
        "OAuth 2.0 authorization server metadata (RFC 8414)",
        200,
        None,
        Some(schema::<oauth::metadata::Metadata>),
        oauth::metadata::metadata,
    )
    .add(
        Method::GET,
        "/oauth/authorize",
        Public,
        "Authorization endpoint (RFC 6749 §4.1.1, PKCE S256 required): the consent page, after sign-in",
        200,
        None,
        None,
        oauth::authorize::authorize_page,
    )
    .media(FORM, HTML)
    .add(
        Method::POST,
        "/oauth/authorize",
        Public,
        "The consent form (CSRF-protected): redirects to the client with code, state and iss",
        303,
        None,
        None,
        oauth::authorize::decide,
    )
    .media(FORM, HTML)
    .add(
        Method::POST,
        "/oauth/token",
        Public,
        "Token endpoint: authorization_code (with PKCE) and refresh_token (rotating) grants",
        200,
        Some(schema::<oauth::token::TokenRequest>),
        Some(schema::<oauth::token::TokenResponse>),
        oauth::token::token,
    )
    .media(FORM, "application/json")
    .add(
        Method::POST,
        "/oauth/revoke",
        Public,
        "Token revocation (RFC 7009): a refresh token takes its whole grant with it",
        200,
        Some(schema::<oauth::token::TokenQuery>),
        None,
        oauth::token::revoke,
    )
    .media(FORM, "application/json")
    .add(
        Method::POST,
        "/oauth/introspect",
        Public,
        "Token introspection (RFC 7662), confidential clients, their own tokens only",
        200,
        Some(schema::<oauth::token::TokenQuery>),
        Some(schema::<oauth::token::IntrospectResponse>),
        oauth::token::introspect,
    )
    .media(FORM, "application/json")
    .add(
        Method::GET,
        "/v1/oauth/apps",
        Scoped(Keys, Read, All),
        "List the OAuth apps the account registered",
        200,
        None,
        Some(schema::<Vec<oauth::apps::AppOut>>),
        oauth::apps::list,
    )
    .add(
        Method::POST,
        "/v1/oauth/apps",
        Scoped(Keys, Write, All),
        "Register an OAuth app (a confidential app's secret is shown once)",
        201,
        Some(schema::<oauth::apps::CreateApp>),
        Some(schema::<oauth::apps::AppOut>),
        oauth::apps::create,
    )
    .add(
        Method::GET,
        "/v1/oauth/apps/{client_id}",
        Scoped(Keys, Read, All),
        "Get an OAuth app",
        200,
        None,
        Some(schema::<oauth::apps::AppOut>),
        oauth::apps::get,
    )
    .add(
        Method::POST,
        "/v1/oauth/apps/{client_id}/rotate-secret",
        Scoped(Keys, Write, All),
        "Replace a confidential app's client secret (shown once; the old one stops at once)",
        200,
        None,
        Some(schema::<crate::oauth::apps::AppOut>),
        crate::oauth::apps::rotate_secret,
    )
    .add(
        Method::DELETE,
        "/v1/oauth/apps/{client_id}",
        Scoped(Keys, Write, All),
        "Delete an OAuth app; every token issued to it stops working at once",
        204,
        None,
        None,
        oauth::apps::delete,
    )
    .add(
        Method::GET,
        "/v1/oauth/authorizations",
        Scoped(Keys, Read, All),
        "The apps the account has authorized",
        200,
        None,
        Some(schema::<Vec<oauth::authorizations::AuthorizationOut>>),
        oauth::authorizations::list,
    )
    .add(
        Method::DELETE,
        "/v1/oauth/authorizations/{id}",
        Scoped(Keys, Write, All),
        "Revoke an authorization; the app's tokens stop working at once",
        204,
        None,
        None,
        oauth::authorizations::revoke,
    )
    .add(
        Method::GET,
        "/login",
        Public,
        "Sign-in page (HTML); sets the login form's CSRF cookie",
        200,
        None,
        None,
        web::login::login_form,
    )
    .media(FORM, HTML)
    .add(
        Method::POST,
        "/login",
        Public,
        "Sign in (form username, password, csrf_token, return_to): session cookie, 303 to return_to",
        303,
        None,
        None,
        web::login::login,
    )
    .media(FORM, HTML)
    .add(
        Method::POST,
        "/logout",
        Public,
        "Sign out (form csrf_token)",
        303,
        None,
        None,
        web::login::logout,
    )
    .media(FORM, HTML)
    .add(
        Method::GET,
        "/static/dotgit.css",
        Public,
        "The stylesheet of the HTML pages",
        200,
        None,
        None,
        web::stylesheet,
    )
    .media(FORM, "text/css")
}

// ---- dashboard (branch `dashboard`) -------------------------------------------------------

/// The dashboard's HTML pages (SPEC §5): public in the table because each page does its own
/// session check (the `Dash` / `DashForm` extractors: no session → 303 to `/login`; forms
/// need the session's CSRF token and a same-origin request).
fn dashboard_routes(t: Table) -> Table {
    use crate::web::dashboard::{self as d, admin, apps, jwt, keys, security};
    use Access::Public;
    let get = || Method::GET;
    let post = || Method::POST;
    t.add(
        get(),
        "/settings",
        Public,
        "Dashboard: on to Settings → API Keys",
        303,
        None,
        None,
        d::settings_home,
    )
    .media(FORM, HTML)
    .add(
        get(),
        "/settings/api-keys",
        Public,
        "Dashboard: Settings → API Keys",
        200,
        None,
        None,
        keys::page,
    )
    .media(FORM, HTML)
    .add(
        post(),
        "/settings/api-keys",
        Public,
        "Dashboard: create an API key (the secret is shown once)",
        200,
        None,
        None,
        keys::create,
    )
    .media(FORM, HTML)
    .add(
        post(),
        "/settings/api-keys/{id}/rotate",
        Public,
        "Dashboard: rotate an API key with a grace period",
        200,
        None,
        None,
        keys::rotate,
    )
    .media(FORM, HTML)
    .add(
        get(),
        "/settings/api-keys/{id}/revoke",
        Public,
        "Dashboard: confirm revoking an API key",
        200,
        None,
        None,
        keys::revoke_confirm,
    )
    .media(FORM, HTML)
    .add(
        post(),
        "/settings/api-keys/{id}/revoke",
        Public,
        "Dashboard: revoke an API key",
        200,
        None,
        None,
        keys::revoke,
    )
    .media(FORM, HTML)
    .add(
        get(),
        "/settings/jwt",
        Public,
        "Dashboard: Settings → JWT Configuration",
        200,
        None,
        None,
        jwt::page,
    )
    .media(FORM, HTML)
    .add(
        post(),
        "/settings/jwt",
        Public,
        "Dashboard: register a JWT public key (PEM or JWK)",
        200,
        None,
        None,
        jwt::register,
    )
    .media(FORM, HTML)
    .add(
        get(),
        "/settings/jwt/{kid}/delete",
        Public,
        "Dashboard: confirm deleting a JWT key",
        200,
        None,
        None,
        jwt::delete_confirm,
    )
    .media(FORM, HTML)
    .add(
        post(),
        "/settings/jwt/{kid}/delete",
        Public,
        "Dashboard: delete a JWT key",
        200,
        None,
        None,
        jwt::delete,
    )
    .media(FORM, HTML)
    .add(
        get(),
        "/settings/oauth-apps",
        Public,
        "Dashboard: Settings → OAuth apps and authorized apps",
        200,
        None,
        None,
        apps::page,
    )
    .media(FORM, HTML)
    .add(
        post(),
        "/settings/oauth-apps",
        Public,
        "Dashboard: register an OAuth app (the client secret is shown once)",
        200,
        None,
        None,
        apps::register,
    )
    .media(FORM, HTML)
    .add(
        get(),
        "/settings/oauth-apps/{client_id}/delete",
        Public,
        "Dashboard: confirm deleting an OAuth app",
        200,
        None,
        None,
        apps::delete_confirm,
    )
    .media(FORM, HTML)
    .add(
        post(),
        "/settings/oauth-apps/{client_id}/delete",
        Public,
        "Dashboard: delete an OAuth app",
        200,
        None,
        None,
        apps::delete,
    )
    .media(FORM, HTML)
    .add(
        get(),
        "/settings/oauth-apps/{client_id}/rotate-secret",
        Public,
        "Dashboard: confirm replacing an OAuth app's client secret",
        200,
        None,
        None,
        apps::rotate_confirm,
    )
    .media(FORM, HTML)
    .add(
        post(),
        "/settings/oauth-apps/{client_id}/rotate-secret",
        Public,
        "Dashboard: replace an OAuth app's client secret (shown once)",
        200,
        None,
        None,
        apps::rotate,
    )
    .media(FORM, HTML)
    .add(
        get(),
        "/settings/authorized-apps/{id}/revoke",
        Public,
        "Dashboard: confirm revoking an app's access",
        200,
        None,
        None,
        apps::revoke_confirm,
    )
    .media(FORM, HTML)
    .add(
        post(),
        "/settings/authorized-apps/{id}/revoke",
        Public,
        "Dashboard: revoke an app's access to the account",
        200,
        None,
        None,
        apps::revoke,
    )
    .media(FORM, HTML)
    .add(
        get(),
        "/settings/security",
        Public,
        "Dashboard: Settings → Security (audit log with filters and paging, anomalies)",
        200,
        None,
        None,
        security::page,
    )
    .media(FORM, HTML)
    .add(
        post(),
        "/settings/security",
        Public,
        "Dashboard: change the account's security settings",
        200,
        None,
        None,
        security::settings,
    )
    .media(FORM, HTML)
    .add(
        get(),
        "/admin",
        Public,
        "Dashboard, operators only: accounts, plans, suspension",
        200,
        None,
        None,
        admin::page,
    )
    .media(FORM, HTML)
    .add(
        post(),
        "/admin/accounts/{username}/suspend",
        Public,
        "Dashboard, operators only: suspend an account with a reason",
        200,
        None,
        None,
        admin::suspend,
    )
    .media(FORM, HTML)
    .add(
        post(),
        "/admin/accounts/{username}/unsuspend",
        Public,
        "Dashboard, operators only: lift a suspension",
        200,
        None,
        None,
        admin::unsuspend,
    )
    .media(FORM, HTML)
    .add(
        get(),
        "/admin/accounts/{username}/revoke-credentials",
        Public,
        "Dashboard, operators only: confirm revoking all of an account's credentials",
        200,
        None,
        None,
        admin::revoke_all_confirm,
    )
    .media(FORM, HTML)
    .add(
        post(),
        "/admin/accounts/{username}/revoke-credentials",
        Public,
        "Dashboard, operators only: revoke all of an account's credentials",
        200,
        None,
        None,
        admin::revoke_all,
    )
    .media(FORM, HTML)
    .add(
        get(),
        "/static/dotgit.js",
        Public,
        "The dashboard's script (copy buttons)",
        200,
        None,
        None,
        d::script,
    )
    .media(FORM, "text/javascript")
}

// ---- end dashboard ------------------------------------------------------------------------

/// The documented routes (for tests and tooling).
pub fn route_docs() -> Vec<RouteDoc> {
    table().docs
}

/// The HTTPS application.
pub fn app(state: AppState) -> Router {
    let t = table();
    let doc = openapi_document(&t.docs, &state.public_url);
    t.router
        .layer(axum::Extension(OpenApiDoc(std::sync::Arc::new(doc))))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(middleware::from_fn(edge))
        .with_state(state)
}

/// The plain-HTTP application: every request is 403 `https_required`; nothing else is read.
pub fn http_app() -> Router {
    Router::new()
        .fallback(|| async { ApiError::https_required() })
        .layer(middleware::from_fn(edge))
}

#[derive(Clone)]
struct OpenApiDoc(std::sync::Arc<Value>);

async fn openapi(axum::Extension(doc): axum::Extension<OpenApiDoc>) -> Json<Value> {
    Json((*doc.0).clone())
}

async fn health(State(s): State<AppState>) -> Result<Json<Value>, ApiError> {
    s.store.ping().await?;
    Ok(Json(json!({"status": "ok"})))
}

async fn metrics(State(s): State<AppState>) -> Response {
    let body = s.metrics.render(s.auditor.depth());
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}

/// Records every HTTPS request's latency for `/metrics`.
async fn observe(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let start = std::time::Instant::now();
    let resp = next.run(req).await;
    s.metrics.observe_latency(start.elapsed().as_secs_f64());
    resp
}

async fn live() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

async fn not_found() -> ApiError {
    ApiError::not_found("The requested path")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "This method is not allowed on this path.",
    )
}

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Outermost middleware: request id (also in every error body), HSTS, `no-store`, and a refusal
/// of credentials in the query string.
async fn edge(req: Request, next: Next) -> Response {
    let id = crate::audit::request_id();
    // A request that may write runs in a task of its own: when the client hangs up, hyper drops
    // the connection's future, and a write transaction cancelled between two statements would
    // leave SQLite's single writer connection inside a transaction (every later write failing).
    // Detached, the request finishes — and commits or rolls back — whatever the client does.
    // Introspection (RFC 7662) is a POST that writes nothing (it reads the token and the client,
    // as a GET does), so it runs in the connection's task: no spawn and wake-up a request.
    let detach = !matches!(
        *req.method(),
        axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS
    ) && req.uri().path() != "/oauth/introspect";
    let work = REQUEST_ID
        .scope(id, async move {
            if let Some(q) = req.uri().query() {
                for pair in q.split('&') {
                    let name = pair.split('=').next().unwrap_or("");
                    if matches!(name, "access_token" | "api_key" | "token" | "credential") {
                        return ApiError::invalid_request(format!(
                            "{name}: credentials are never accepted in the query string; send `Authorization: Bearer <credential>`"
                        ))
                        .into_response();
                    }
                }
            }
            next.run(req).await
        });
    let mut resp = if detach {
        match tokio::spawn(work).await {
            Ok(r) => r,
            Err(e) => ApiError::internal(format!("request task failed: {e}")).into_response(),
        }
    } else {
        work.await
    };
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(id.as_str()) {
        h.insert(X_REQUEST_ID.clone(), v);
    }
    h.insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=63072000; includeSubDomains"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

/// A route's handler behind its access check. The check is part of the handler rather than a
/// `from_fn` layer around it: a layer clones the route's boxed service stack and boxes a `Next`
/// for every request, which the hottest authenticated routes paid on every call.
struct Guarded<H, T> {
    access: Access,
    handler: H,
    _marker: std::marker::PhantomData<fn() -> T>,
}

impl<H: Clone, T> Clone for Guarded<H, T> {
    fn clone(&self) -> Self {
        Guarded {
            access: self.access,
            handler: self.handler.clone(),
            _marker: std::marker::PhantomData,
        }
    }
}

impl<H, T> Guarded<H, T> {
    fn new(access: Access, handler: H) -> Self {
        Guarded {
            access,
            handler,
            _marker: std::marker::PhantomData,
        }
    }
}

/// Marks the handler type of a [`Guarded`] route.
#[doc(hidden)]
#[derive(Debug)]
pub struct GuardedRoute;

impl<H, T> axum::handler::Handler<(GuardedRoute, T), AppState> for Guarded<H, T>
where
    H: axum::handler::Handler<T, AppState>,
    T: 'static,
{
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Response> + Send>>;

    fn call(self, req: Request, state: AppState) -> Self::Future {
        Box::pin(enforce(state, self.access, req, self.handler))
    }
}

/// Per-route access check: authenticate, authorize against the route's declaration, spend the
/// credential's budget, and hand the principal to the handler.
async fn enforce<H, T>(state: AppState, access: Access, req: Request, handler: H) -> Response
where
    H: axum::handler::Handler<T, AppState>,
{
    let actor = crate::extract::actor_of(&state, req.headers(), req.extensions());
    let (verified, budget) = match auth::authenticate(&state, req.headers(), &actor).await {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    let principal = verified.credential.principal();
    // only a route narrowed to a path's project reads its path parameters
    let mut req = req;
    let params: Vec<(String, String)> = if matches!(access, Access::Scoped(_, _, Projects::Path(_)))
    {
        let (mut parts, body) = req.into_parts();
        let params = match RawPathParams::from_request_parts(&mut parts, &()).await {
            Ok(p) => p
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            Err(_) => Vec::new(),
        };
        req = Request::from_parts(parts, body);
        params
    } else {
        Vec::new()
    };
    let lookup = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let mut resp = if budget.exceeded {
        ApiError::rate_limited(
            "The credential has used its request budget for this hour.",
            u64::try_from(budget.reset - state.now()).unwrap_or(1),
        )
        .into_response()
    } else {
        match auth::authorize(&principal, access, lookup) {
            Err(e) => {
                if e.code == "insufficient_scope" {
                    let actor = crate::audit::Actor {
                        credential_id: Some(principal.credential_id.clone()),
                        ..actor
                    };
                    state
                        .auditor
                        .record(actor.event(
                            state.now(),
                            dotgit_core::audit::types::SCOPE_DENIED,
                            Some(&principal.account_id),
                            Some(&principal.credential_id),
                            dotgit_core::audit::outcomes::FAILURE,
                            Some(e.message.clone()),
                        ))
                        .await;
                }
                e.into_response()
            }
            Ok(()) => {
                if principal.kind == dotgit_core::CredentialKind::ApiKey {
                    if let Some(scope) = auth::scope_used(&principal, access, lookup) {
                        state.note_scope_use(&principal.credential_id, scope);
                    }
                }
                let due = verified.rotation_due;
                // the handler reaches the principal (and the entry's memos) through the entry
                req.extensions_mut().insert(verified.credential);
                let mut resp = handler.call(req, state.clone()).await;
                if due {
                    resp.headers_mut()
                        .insert(X_KEY_ROTATION_DUE.clone(), HeaderValue::from_static("true"));
                }
                resp
            }
        }
    };
    let h = resp.headers_mut();
    // room for these three and the edge's four at once, instead of growing the map twice
    h.reserve(7);
    h.insert(X_RATELIMIT_LIMIT.clone(), HeaderValue::from(budget.limit));
    h.insert(
        X_RATELIMIT_REMAINING.clone(),
        HeaderValue::from(budget.remaining),
    );
    h.insert(X_RATELIMIT_RESET.clone(), HeaderValue::from(budget.reset));
    resp
}

// header names as constants: a `&str` name is parsed and checked again on every insert
static X_RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
static X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
static X_RATELIMIT_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");
static X_KEY_ROTATION_DUE: HeaderName = HeaderName::from_static("x-dotgit-key-rotation-due");

/// Builds the OpenAPI 3.1 document from the route table.
pub fn openapi_document(docs: &[RouteDoc], public_url: &str) -> Value {
    let mut settings = SchemaSettings::draft2020_12();
    settings.definitions_path = "/components/schemas".into();
    settings.meta_schema = None;
    let mut generator = settings.into_generator();
    let error_schema = json!({
        "type": "object",
        "required": ["error", "message", "request_id"],
        "properties": {
            "error": {"type": "string", "description": "Machine-readable code (SPEC §3)."},
            "message": {"type": "string", "description": "Human sentence naming the field at fault."},
            "request_id": {"type": "string"}
        }
    });
    let mut paths = Map::new();
    for d in docs {
        let mut op = Map::new();
        op.insert("summary".into(), json!(d.summary));
        op.insert(
            "operationId".into(),
            json!(format!(
                "{}{}",
                d.method.as_str().to_ascii_lowercase(),
                d.path.replace(['/', '{', '}', '-', '.'], "_")
            )),
        );
        let params: Vec<Value> = d
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        if !params.is_empty() {
            op.insert("parameters".into(), Value::Array(params));
        }
        if let Some(req) = d.request {
            op.insert(
                "requestBody".into(),
                json!({"required": true, "content": {d.request_media: {"schema": req(&mut generator)}}}),
            );
        }
        let mut responses = Map::new();
        let ok = match d.response {
            Some(r) => {
                json!({"description": "Success", "content": {d.response_media: {"schema": r(&mut generator)}}})
            }
            None if d.response_media != "application/json" => {
                json!({"description": "Success", "content": {d.response_media: {}}})
            }
            None => json!({"description": "Success"}),
        };
        responses.insert(d.status.to_string(), ok);
        let err = json!({"description": "Error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
        responses.insert("default".into(), err);
        op.insert("responses".into(), Value::Object(responses));
        match d.access.describe() {
            None => {
                op.insert("security".into(), json!([]));
            }
            Some(scope) => {
                let scopes: Vec<String> = if scope.is_empty() {
                    vec![]
                } else {
                    vec![scope.clone()]
                };
                op.insert("security".into(), json!([{"bearer": scopes}]));
                if !scope.is_empty() {
                    op.insert("x-required-scope".into(), json!(scope));
                }
                if matches!(d.access, Access::Operator(_)) {
                    op.insert("x-operator-only".into(), json!(true));
                }
            }
        }
        let entry = paths
            .entry(d.path.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(m) = entry {
            m.insert(d.method.as_str().to_ascii_lowercase(), Value::Object(op));
        }
    }
    let mut schemas = generator.take_definitions(true);
    schemas.insert("Error".into(), error_schema);
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "dotgit API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Authentication and platform API of dotgit. Every /v1 route takes `Authorization: Bearer <credential>`; `x-required-scope` names the scope it needs."
        },
        "servers": [{"url": public_url}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "API key (dg_…), OAuth access token (dgo_…) or customer JWT"}
            }
        }
    })
}
