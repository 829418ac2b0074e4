//! Authentication and authorization of `/v1` requests (SPEC §1–§4, DESIGN "request path").
//!
//! What must hold: the credential is read only from `Authorization: Bearer` (scheme
//! case-insensitive, exactly one header); its shape is checked before any I/O; every bad
//! credential gets the same 401 `invalid_token` (the reason goes only to the log / audit); a
//! valid credential of a suspended account gets 403; a source over its failure budget gets 429
//! before its credential is even looked at; scopes are checked after all of that.

use crate::cache::CachedCredential;
use crate::error::ApiError;
use crate::limiter::Budget;
use crate::state::AppState;
use axum::http::{header, HeaderMap};
use dotgit_core::credential::{classify, TokenShape};
use dotgit_core::{
    AccountStatus, Action, CredentialKind, Plan, Principal, Resource, ScopeSet, SecretHash,
};
use std::net::IpAddr;
use std::sync::Arc;

/// Who may call a route: declared once per route in `router.rs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No credential needed (discovery, health).
    Public,
    /// Any valid credential of an active account.
    Authenticated,
    /// A scope on a resource, for the projects given.
    Scoped(Resource, Action, Projects),
    /// An operator account's credential with `keys:<action>` over every project.
    Operator(Action),
}

/// Which projects a scoped route concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Projects {
    /// Every project: the scope must not be narrowed.
    All,
    /// At least one project (listings, filtered per project by the handler; creation, checked
    /// by the handler against the body).
    AnyOne,
    /// The project named by this path parameter.
    Path(&'static str),
}

impl Access {
    /// The scope string shown in documentation (`repo:read:{slug}` for path-narrowed routes).
    pub fn describe(&self) -> Option<String> {
        match self {
            Access::Public => None,
            Access::Authenticated => Some(String::new()),
            Access::Scoped(r, a, Projects::Path(p)) => {
                Some(format!("{}:{}:{{{p}}}", r.as_str(), a.as_str()))
            }
            Access::Scoped(r, a, _) => Some(format!("{}:{}", r.as_str(), a.as_str())),
            Access::Operator(a) => Some(format!("keys:{}", a.as_str())),
        }
    }
}

/// Why a credential was refused; for the log and audit only, never the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Not a credential shape we know, or a bad checksum.
    Malformed,
    /// More than one `Authorization` header, or not the Bearer scheme.
    BadHeader,
    /// Well-formed but not issued by us.
    Unknown,
    /// Revoked.
    Revoked,
    /// Past its expiry (including the end of a rotation grace period).
    Expired,
    /// A kind this server does not accept yet.
    Unsupported,
}

impl Failure {
    /// The detailed reason.
    pub fn reason(self) -> &'static str {
        match self {
            Failure::Malformed => "malformed credential or bad checksum",
            Failure::BadHeader => "unusable Authorization header",
            Failure::Unknown => "unknown credential",
            Failure::Revoked => "revoked credential",
            Failure::Expired => "expired credential",
            Failure::Unsupported => "credential kind not accepted",
        }
    }
}

/// The Bearer credential of a request: `Ok(None)` if there is none at all.
pub fn bearer(headers: &HeaderMap) -> Result<Option<&str>, Failure> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(v) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(Failure::BadHeader);
    }
    let s = v.to_str().map_err(|_| Failure::BadHeader)?;
    let (scheme, rest) = s.split_once(' ').ok_or(Failure::BadHeader)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Failure::BadHeader);
    }
    let token = rest.trim_start_matches(' ');
    if token.is_empty() || token.contains(' ') {
        return Err(Failure::BadHeader);
    }
    Ok(Some(token))
}

/// Verifies a presented credential string. The caller has already passed the source
/// rate-limit check. On `Err`, the source's failure counter has been bumped where due.
pub async fn verify_credential(
    state: &AppState,
    token: &str,
    ip: IpAddr,
) -> Result<Principal, ApiError> {
    let now = state.now();
    let result = match classify(token) {
        TokenShape::Malformed => Err(Failure::Malformed),
        TokenShape::Jwt => Err(Failure::Unsupported),
        TokenShape::Opaque(kind, hash) => verify_opaque(state, kind, &hash, now).await?,
    };
    match result {
        Ok(c) => {
            if c.status == AccountStatus::Suspended {
                return Err(ApiError::account_suspended());
            }
            Ok(Principal {
                account_id: c.account_id.clone(),
                username: c.username.clone(),
                plan: c.plan,
                operator: c.operator,
                kind: c.kind,
                credential_id: c.credential_id.clone(),
                scopes: c.scopes.clone(),
                expires_at: c.expires_at,
            })
        }
        Err(f) => {
            state.limiter.record_failure(ip, now);
            tracing::info!(source_ip = %ip, reason = f.reason(), "authentication failed");
            Err(ApiError::invalid_token().with_cause(f.reason()))
        }
    }
}

/// What the owner of an account may still do; a credential's effective scopes are its grant
/// intersected with this. Every account may act on everything it owns.
pub fn owner_may(_plan: Plan) -> ScopeSet {
    ScopeSet::all()
}

async fn verify_opaque(
    state: &AppState,
    kind: CredentialKind,
    hash: &SecretHash,
    now: i64,
) -> Result<Result<Arc<CachedCredential>, Failure>, ApiError> {
    let cred = match state.cache.get(hash) {
        Some(c) => c,
        None => {
            let generation = state.cache.generation();
            let found = match kind {
                CredentialKind::ApiKey => load_api_key(state, hash).await?,
                _ => return Ok(Err(Failure::Unsupported)),
            };
            match found {
                Ok(c) => {
                    let c = Arc::new(c);
                    state.cache.fill(hash, generation, c.clone());
                    c
                }
                Err(f) => return Ok(Err(f)),
            }
        }
    };
    if cred.kind != kind {
        return Ok(Err(Failure::Unknown));
    }
    if cred.expires_at.is_some_and(|e| now >= e) {
        return Ok(Err(Failure::Expired));
    }
    Ok(Ok(cred))
}

async fn load_api_key(
    state: &AppState,
    hash: &SecretHash,
) -> Result<Result<CachedCredential, Failure>, ApiError> {
    let Some((key, acct)) = state.store.api_key_by_hash(&hash.to_hex()).await? else {
        return Ok(Err(Failure::Unknown));
    };
    if key.revoked_at.is_some() {
        return Ok(Err(Failure::Revoked));
    }
    let plan = Plan::parse(&acct.plan).unwrap_or(Plan::Free);
    let granted = ScopeSet::parse_space_separated(&key.scopes).unwrap_or_default();
    Ok(Ok(CachedCredential {
        kind: CredentialKind::ApiKey,
        credential_id: key.id,
        account_id: acct.id,
        username: acct.username,
        plan,
        operator: acct.is_operator,
        status: AccountStatus::parse(&acct.status),
        scopes: granted.intersect(&owner_may(plan)),
        expires_at: key.expires_at,
        created_at: key.created_at,
    }))
}

/// Authenticates a request from its headers: 429 for a blocked source, 401 for a missing or bad
/// credential, 403 for a suspended account; then spends one request of the credential's budget.
pub async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    ip: IpAddr,
) -> Result<(Principal, Budget), ApiError> {
    let now = state.now();
    if let Some(wait) = state.limiter.blocked(ip, now) {
        return Err(ApiError::rate_limited(
            "Too many failed authentication attempts from this address; back off and retry later.",
            wait,
        ));
    }
    let token = match bearer(headers) {
        Ok(Some(t)) => t,
        Ok(None) => return Err(ApiError::missing_credential()),
        Err(f) => {
            state.limiter.record_failure(ip, now);
            return Err(ApiError::invalid_token().with_cause(f.reason()));
        }
    };
    let principal = verify_credential(state, token, ip).await?;
    let budget = state.limiter.spend(&principal.credential_id, now);
    if principal.kind == CredentialKind::ApiKey {
        state.note_use(&principal.credential_id);
    }
    Ok((principal, budget))
}

/// Checks a route's access rule against an authenticated principal.
pub fn authorize(
    p: &Principal,
    access: Access,
    path_param: impl Fn(&str) -> Option<String>,
) -> Result<(), ApiError> {
    match access {
        Access::Public | Access::Authenticated => Ok(()),
        Access::Scoped(r, a, Projects::All) => p
            .require(r, a, None)
            .map_err(|s| ApiError::insufficient_scope(&s)),
        Access::Scoped(r, a, Projects::AnyOne) => {
            if p.scopes.allows_any_project(r, a) {
                Ok(())
            } else {
                Err(ApiError::insufficient_scope(&dotgit_core::Scope::new(r, a)))
            }
        }
        Access::Scoped(r, a, Projects::Path(name)) => {
            let slug = path_param(name)
                .ok_or_else(|| ApiError::internal(format!("missing path parameter {name}")))?;
            if !dotgit_core::slug::is_valid(&slug) {
                return Err(ApiError::not_found("The project"));
            }
            p.require(r, a, Some(&slug))
                .map_err(|s| ApiError::insufficient_scope(&s))
        }
        Access::Operator(a) => {
            if !p.operator {
                return Err(ApiError::not_found("The resource"));
            }
            p.require(Resource::Keys, a, None)
                .map_err(|s| ApiError::insufficient_scope(&s))
        }
    }
}
