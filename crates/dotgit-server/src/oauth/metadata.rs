//! `GET /.well-known/oauth-authorization-server` (RFC 8414): what an off-the-shelf client needs
//! to find the endpoints and learn the rules (PKCE S256 only, code flow only, `iss` in the
//! authorization response).

use crate::state::AppState;
use axum::extract::State;
use axum::Json;
use dotgit_core::{Action, Resource, Scope};
use schemars::JsonSchema;
use serde::Serialize;

/// Authorization server metadata (RFC 8414 §2).
#[derive(Debug, Serialize, JsonSchema)]
pub struct Metadata {
    /// The server's public URL; also the `iss` of every authorization response (RFC 9207).
    pub issuer: String,
    /// `GET /oauth/authorize`.
    pub authorization_endpoint: String,
    /// `POST /oauth/token`.
    pub token_endpoint: String,
    /// `POST /oauth/revoke` (RFC 7009).
    pub revocation_endpoint: String,
    /// `POST /oauth/introspect` (RFC 7662).
    pub introspection_endpoint: String,
    /// `["code"]`.
    pub response_types_supported: Vec<&'static str>,
    /// `["query"]`.
    pub response_modes_supported: Vec<&'static str>,
    /// `["authorization_code", "refresh_token"]`.
    pub grant_types_supported: Vec<&'static str>,
    /// `["S256"]`: PKCE is required of every client, `plain` is refused.
    pub code_challenge_methods_supported: Vec<&'static str>,
    /// `client_secret_basic`, `client_secret_post`, and `none` for public clients.
    pub token_endpoint_auth_methods_supported: Vec<&'static str>,
    /// How clients authenticate at the revocation endpoint.
    pub revocation_endpoint_auth_methods_supported: Vec<&'static str>,
    /// Confidential clients only.
    pub introspection_endpoint_auth_methods_supported: Vec<&'static str>,
    /// Every scope without a project (a project-narrowed scope `<resource>:<action>:<slug>` may
    /// be requested too).
    pub scopes_supported: Vec<String>,
    /// `true` (RFC 9207).
    pub authorization_response_iss_parameter_supported: bool,
    /// The API documentation.
    pub service_documentation: String,
}

/// The metadata document.
pub async fn metadata(State(s): State<AppState>) -> Json<Metadata> {
    let base = &s.public_url;
    let mut scopes = Vec::new();
    for r in Resource::ALL {
        for a in [Action::Read, Action::Write] {
            scopes.push(Scope::new(r, a).to_string());
        }
    }
    Json(Metadata {
        issuer: base.clone(),
        authorization_endpoint: format!("{base}/oauth/authorize"),
        token_endpoint: format!("{base}/oauth/token"),
        revocation_endpoint: format!("{base}/oauth/revoke"),
        introspection_endpoint: format!("{base}/oauth/introspect"),
        response_types_supported: vec!["code"],
        response_modes_supported: vec!["query"],
        grant_types_supported: vec!["authorization_code", "refresh_token"],
        code_challenge_methods_supported: vec!["S256"],
        token_endpoint_auth_methods_supported: vec![
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
        revocation_endpoint_auth_methods_supported: vec![
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
        introspection_endpoint_auth_methods_supported: vec![
            "client_secret_basic",
            "client_secret_post",
        ],
        scopes_supported: scopes,
        authorization_response_iss_parameter_supported: true,
        service_documentation: format!("{base}/openapi.json"),
    })
}
