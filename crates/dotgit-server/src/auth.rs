//! Authentication and authorization of `/v1` requests (SPEC §1–§4, DESIGN "request path").
//!
//! What must hold: the credential is read only from `Authorization: Bearer` (scheme
//! case-insensitive, exactly one header); its shape is checked before any I/O; every bad
//! credential gets the same 401 `invalid_token` (the reason goes only to the log / audit); a
//! valid credential of a suspended account gets 403; a source over its failure budget gets 429
//! before its credential is even looked at; scopes are checked after all of that.

use crate::audit::Actor;
use crate::cache::{CachedCredential, JwtKeyEntry};
use crate::error::ApiError;
use crate::limiter::Budget;
use crate::state::AppState;
use axum::http::{header, HeaderMap};
use dotgit_core::audit::{outcomes, types};
use dotgit_core::credential::{classify, TokenShape};
use dotgit_core::jwt::{self, KeyPolicy, VerifyContext, LEEWAY_SECONDS};
use dotgit_core::{
    AccountStatus, Action, CredentialKind, Plan, Principal, Resource, ScopeSet, SecretHash,
};
use std::net::IpAddr;
use std::sync::atomic::Ordering;
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
    /// A customer JWT failed a verification rule (the reason names which).
    Jwt(&'static str),
    /// A JWT whose `kid` is not a key of the account named by `sub`.
    UnknownJwtKey,
    /// A single-use JWT presented again.
    JtiReplay,
    /// The source address is outside the credential's allowed networks (JWT `ips`).
    SourceNotAllowed,
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
            Failure::Jwt(reason) => reason,
            Failure::UnknownJwtKey => "jwt_unknown_kid",
            Failure::JtiReplay => "jwt_jti_replayed",
            Failure::SourceNotAllowed => "source address outside the credential's allowed networks",
        }
    }
}

/// A refusal with whatever is known of whose credential it was (for the audit log only).
#[derive(Debug, Clone)]
pub struct Refused {
    /// Why.
    pub failure: Failure,
    /// The owner, when the credential was recognised.
    pub account_id: Option<String>,
    /// The credential, when recognised.
    pub credential_id: Option<String>,
}

impl From<Failure> for Refused {
    fn from(failure: Failure) -> Self {
        Refused {
            failure,
            account_id: None,
            credential_id: None,
        }
    }
}

impl Refused {
    fn of(failure: Failure, account_id: &str, credential_id: &str) -> Self {
        Refused {
            failure,
            account_id: Some(account_id.to_owned()),
            credential_id: Some(credential_id.to_owned()),
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

/// An accepted credential.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The verified credential (for a cached one, its cache entry); who it authenticates as is
    /// [`CachedCredential::principal`], shared with every request of a cached credential.
    pub credential: Arc<CachedCredential>,
    /// The credential is older than its account's rotation policy (a warning header).
    pub rotation_due: bool,
}

/// Verifies a presented credential string and records the decision (audit, metrics). The
/// caller has already passed the source rate-limit check. On a refusal, the source's failure
/// counter has been bumped.
pub async fn verify_credential(
    state: &AppState,
    token: &str,
    actor: &Actor,
) -> Result<Verified, ApiError> {
    verify_credential_at(state, token, actor, state.now()).await
}

/// [`verify_credential`] at a time the caller has read already (one clock read a request).
async fn verify_credential_at(
    state: &AppState,
    token: &str,
    actor: &Actor,
    now: i64,
) -> Result<Verified, ApiError> {
    let shape = classify(token);
    let kind = match &shape {
        TokenShape::Opaque(k, _) => Some(*k),
        TokenShape::Jwt => Some(CredentialKind::Jwt),
        TokenShape::Malformed => None,
    };
    let result = match shape {
        TokenShape::Malformed => Err(Failure::Malformed.into()),
        TokenShape::Jwt => verify_jwt(state, token, now).await?,
        TokenShape::Opaque(kind, hash) => verify_opaque(state, kind, &hash, now).await?,
    };
    let ip = actor.ip.unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let result = result.and_then(|c| match &c.ips {
        Some(nets) if !nets.iter().any(|n| n.contains(ip)) => Err(Refused::of(
            Failure::SourceNotAllowed,
            &c.account_id,
            &c.credential_id,
        )),
        _ => Ok(c),
    });
    let k = crate::audit::kind_index(kind);
    match result {
        Ok(c) => {
            if c.status == AccountStatus::Suspended {
                state.metrics.auth_suspended.fetch_add(1, Ordering::Relaxed);
                state
                    .auditor
                    .record(actor.event(
                        now,
                        types::AUTH_SUSPENDED,
                        Some(&c.account_id),
                        Some(&c.credential_id),
                        outcomes::FAILURE,
                        Some("account suspended"),
                    ))
                    .await;
                return Err(ApiError::account_suspended());
            }
            state.metrics.auth_success[k].fetch_add(1, Ordering::Relaxed);
            if state.config.audit_auth_success {
                let subject: Arc<dyn dotgit_core::audit::Subject> = c.clone();
                state
                    .auditor
                    .record_success(actor.success(now, subject))
                    .await;
            }
            Ok(Verified {
                rotation_due: c.rotation_due(now),
                credential: c,
            })
        }
        Err(r) => {
            state.metrics.auth_failure[k].fetch_add(1, Ordering::Relaxed);
            record_failure(state, actor, now, &r).await;
            Err(ApiError::invalid_token().with_cause(r.failure.reason()))
        }
    }
}

/// Counts a failed authentication against the source and records it (and a limiter trip).
pub async fn record_failure(state: &AppState, actor: &Actor, now: i64, r: &Refused) {
    record_refusal(
        state,
        actor,
        now,
        types::AUTH_FAILED,
        r.account_id.as_deref(),
        r.credential_id.as_deref(),
        r.failure.reason(),
    )
    .await;
}

/// Counts a refused authentication (a credential, a password) against the source, records it
/// as `event_type`, and records the limiter trip if this refusal caused one.
pub async fn record_refusal(
    state: &AppState,
    actor: &Actor,
    now: i64,
    event_type: &'static str,
    account_id: Option<&str>,
    credential_id: Option<&str>,
    reason: &str,
) {
    let ip = actor.ip.unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let tripped = state.limiter.record_failure(ip, now);
    tracing::info!(source_ip = %ip, reason, "authentication failed");
    state
        .auditor
        .record(actor.event(
            now,
            event_type,
            account_id,
            credential_id,
            outcomes::FAILURE,
            Some(reason.to_owned()),
        ))
        .await;
    if tripped {
        state
            .metrics
            .rate_limit_trips
            .fetch_add(1, Ordering::Relaxed);
        state
            .auditor
            .record(actor.event(
                now,
                types::RATE_LIMIT_TRIPPED,
                None,
                None,
                outcomes::FAILURE,
                Some(format!(
                    "{} failed authentications within {} s",
                    state.config.auth_failure_limit, state.config.auth_failure_window_seconds
                )),
            ))
            .await;
    }
}

/// What the owner of an account may still do; a credential's effective scopes are its grant
/// intersected with this. Every account may act on everything it owns.
pub fn owner_may(_plan: Plan) -> ScopeSet {
    ScopeSet::all()
}

/// A credential's effective scopes: `granted` intersected with [`owner_may`]. Every plan may
/// use every scope, so that is `granted` as it is; verifications use this instead of building
/// the set of every scope and intersecting with it each time (a test holds the two equal).
pub fn within_owner(granted: ScopeSet, plan: Plan) -> ScopeSet {
    match plan {
        Plan::Free | Plan::Pro | Plan::Enterprise => granted,
    }
}

/// An opaque credential's verification through the cache, without recording a decision (the
/// introspection endpoint also answers `active` from it).
pub(crate) async fn verify_opaque(
    state: &AppState,
    kind: CredentialKind,
    hash: &SecretHash,
    now: i64,
) -> Result<Result<Arc<CachedCredential>, Refused>, ApiError> {
    let cred = match state.cache.get(hash) {
        Some(c) => c,
        None => {
            let generation = state.cache.generation();
            let found = match kind {
                CredentialKind::ApiKey => load_api_key(state, hash).await?,
                CredentialKind::OAuthAccess => load_access_token(state, hash).await?,
                // a refresh token is only ever good at the token endpoint
                _ => return Ok(Err(Failure::Unsupported.into())),
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
        return Ok(Err(Failure::Unknown.into()));
    }
    if cred.valid_until.is_some_and(|e| now >= e) {
        return Ok(Err(Refused::of(
            Failure::Expired,
            &cred.account_id,
            &cred.credential_id,
        )));
    }
    Ok(Ok(cred))
}

/// Resources the JWT `projects` claim narrows; the others are not per project.
const PROJECT_RESOURCES: [Resource; 2] = [Resource::Repo, Resource::Deploy];

/// Verifies a customer JWT (SPEC §4): the key is looked up only among the keys of the account
/// named by `sub`; a repeated token of a reusable key is served from the verification cache
/// until its `exp` (plus leeway) or the key's deletion; a single-use token's `jti` is consumed
/// durably before it is accepted, so a replay fails even after a restart.
async fn verify_jwt(
    state: &AppState,
    token: &str,
    now: i64,
) -> Result<Result<Arc<CachedCredential>, Refused>, ApiError> {
    // the token's digest only keys the cache: with the cache off it is not computed
    let hash = state.cache.enabled().then(|| SecretHash::of(token));
    if let Some(c) = hash.as_ref().and_then(|h| state.cache.get(h)) {
        if c.kind != CredentialKind::Jwt {
            return Ok(Err(Failure::Unknown.into()));
        }
        if c.valid_until.is_some_and(|e| now >= e) {
            return Ok(Err(Refused::of(
                Failure::Expired,
                &c.account_id,
                &c.credential_id,
            )));
        }
        return Ok(Ok(c));
    }
    let generation = state.cache.generation();
    let u = match jwt::decode_unverified(token) {
        Ok(u) => u,
        Err(e) => return Ok(Err(Failure::Jwt(e.reason()).into())),
    };
    let Some(entry) = jwt_key(state, u.sub(), u.kid(), generation).await? else {
        return Ok(Err(Failure::UnknownJwtKey.into()));
    };
    let refuse = |f: Failure| Ok(Err(Refused::of(f, &entry.account_id, &entry.kid)));
    let policy = KeyPolicy {
        key: &entry.key,
        account_id: &entry.account_id,
        issuer: &entry.issuer,
        allowed_scopes: &entry.allowed_scopes,
        max_lifetime_seconds: entry.max_lifetime_seconds,
        single_use: entry.single_use,
    };
    let ctx = VerifyContext {
        audience: &state.audience,
        now,
        leeway: LEEWAY_SECONDS,
    };
    let v = match jwt::verify(&u, &policy, &ctx) {
        Ok(v) => v,
        Err(e) => return refuse(Failure::Jwt(e.reason())),
    };
    if entry.rotation_enforced && now >= entry.rotation_due_at {
        return refuse(Failure::Jwt("jwt_key_past_rotation_policy"));
    }
    let mut valid_until = v.exp.saturating_add(LEEWAY_SECONDS).saturating_add(1);
    if entry.rotation_enforced {
        valid_until = valid_until.min(entry.rotation_due_at);
    }
    if entry.single_use {
        let Some(jti) = v.jti.as_deref() else {
            return refuse(Failure::Jwt("jwt_missing_jti"));
        };
        // a write on a GET: detached so that a client hanging up cannot cancel its transaction
        let (store, kid, jti) = (state.store.clone(), entry.kid.clone(), jti.to_owned());
        let consumed =
            tokio::spawn(async move { store.consume_jti(&kid, &jti, valid_until, now).await })
                .await
                .map_err(|e| ApiError::internal(format!("jti task failed: {e}")))??;
        if !consumed {
            return refuse(Failure::JtiReplay);
        }
    }
    let mut scopes = within_owner(v.scopes, entry.plan);
    if let Some(projects) = &v.projects {
        scopes = scopes.narrow_to_projects(projects, &PROJECT_RESOURCES);
    }
    let cred = Arc::new(CachedCredential {
        kind: CredentialKind::Jwt,
        credential_id: entry.kid.clone(),
        account_id: entry.account_id.clone(),
        username: entry.username.clone(),
        plan: entry.plan,
        operator: entry.operator,
        status: entry.status,
        scopes,
        expires_at: Some(v.exp),
        valid_until: Some(valid_until),
        created_at: v.iat,
        ips: v.ips,
        rotation_due_at: Some(entry.rotation_due_at),
        client_id: None,
        principal: std::sync::OnceLock::new(),
        user_body: std::sync::OnceLock::new(),
    });
    if let (false, Some(hash)) = (entry.single_use, &hash) {
        state.cache.fill(hash, generation, cred.clone());
    }
    Ok(Ok(cred))
}

/// The registered key `kid` of account `account_id`, parsed, from the cache or the store.
async fn jwt_key(
    state: &AppState,
    account_id: &str,
    kid: &str,
    generation: u64,
) -> Result<Option<Arc<JwtKeyEntry>>, ApiError> {
    if let Some(e) = state.cache.jwt_key(account_id, kid) {
        return Ok(Some(e));
    }
    let Some(row) = state.store.get_jwt_key(account_id, kid).await? else {
        return Ok(None);
    };
    let Some(acct) = state.store.account_by_id(account_id).await? else {
        return Ok(None);
    };
    let Ok(key) = jwt::RsaPublicKey::from_pem(&row.public_key_pem) else {
        return Err(ApiError::internal(format!(
            "stored JWT key {kid} does not parse"
        )));
    };
    let plan = Plan::parse(&acct.plan).unwrap_or(Plan::Free);
    let entry = Arc::new(JwtKeyEntry {
        kid: row.kid,
        account_id: acct.id,
        username: acct.username,
        plan,
        operator: acct.is_operator,
        status: AccountStatus::parse(&acct.status),
        key,
        issuer: row.issuer,
        allowed_scopes: ScopeSet::parse_space_separated(&row.allowed_scopes).unwrap_or_default(),
        max_lifetime_seconds: row.max_lifetime_seconds,
        single_use: row.single_use,
        rotation_due_at: row
            .created_at
            .saturating_add(acct.rotation_policy_days.saturating_mul(86_400)),
        rotation_enforced: acct.rotation_policy_enforce,
    });
    state.cache.fill_jwt_key(generation, entry.clone());
    Ok(Some(entry))
}

async fn load_api_key(
    state: &AppState,
    hash: &SecretHash,
) -> Result<Result<CachedCredential, Refused>, ApiError> {
    let Some((key, acct)) = state.store.api_key_by_hash(&hash.to_hex()).await? else {
        return Ok(Err(Failure::Unknown.into()));
    };
    if key.revoked_at.is_some() {
        return Ok(Err(Refused::of(Failure::Revoked, &acct.id, &key.id)));
    }
    let plan = Plan::parse(&acct.plan).unwrap_or(Plan::Free);
    let granted = ScopeSet::parse_space_separated(&key.scopes).unwrap_or_default();
    let rotation_due_at = key
        .created_at
        .saturating_add(acct.rotation_policy_days.saturating_mul(86_400));
    // an enforced rotation policy is an expiry like any other
    let valid_until = match (key.expires_at, acct.rotation_policy_enforce) {
        (e, false) => e,
        (Some(e), true) => Some(e.min(rotation_due_at)),
        (None, true) => Some(rotation_due_at),
    };
    Ok(Ok(CachedCredential {
        kind: CredentialKind::ApiKey,
        credential_id: key.id,
        account_id: acct.id,
        username: acct.username,
        plan,
        operator: acct.is_operator,
        status: AccountStatus::parse(&acct.status),
        scopes: within_owner(granted, plan),
        expires_at: valid_until,
        valid_until,
        created_at: key.created_at,
        ips: None,
        rotation_due_at: Some(rotation_due_at),
        client_id: None,
        principal: std::sync::OnceLock::new(),
        user_body: std::sync::OnceLock::new(),
    }))
}

/// An OAuth access token (`dgo_…`), verified exactly like an API key: by digest, through the
/// same cache, with effective scopes = granted ∩ what the owner may do. A revoked token, or one
/// whose grant (token family) was revoked, is refused.
async fn load_access_token(
    state: &AppState,
    hash: &SecretHash,
) -> Result<Result<CachedCredential, Refused>, ApiError> {
    let Some((tok, grant, acct)) = state.store.oauth_token_by_hash(&hash.to_hex()).await? else {
        return Ok(Err(Failure::Unknown.into()));
    };
    if tok.kind != "access" {
        return Ok(Err(Failure::Unknown.into()));
    }
    if tok.revoked_at.is_some() || grant.revoked_at.is_some() {
        return Ok(Err(Refused::of(Failure::Revoked, &acct.id, &tok.id)));
    }
    let plan = Plan::parse(&acct.plan).unwrap_or(Plan::Free);
    let granted = ScopeSet::parse_space_separated(&tok.scope).unwrap_or_default();
    Ok(Ok(CachedCredential {
        kind: CredentialKind::OAuthAccess,
        credential_id: tok.id,
        account_id: acct.id,
        username: acct.username,
        plan,
        operator: acct.is_operator,
        status: AccountStatus::parse(&acct.status),
        scopes: within_owner(granted, plan),
        expires_at: Some(tok.expires_at),
        valid_until: Some(tok.expires_at),
        created_at: tok.created_at,
        ips: None,
        rotation_due_at: None,
        client_id: Some(tok.client_id),
        principal: std::sync::OnceLock::new(),
        user_body: std::sync::OnceLock::new(),
    }))
}

/// Authenticates a request from its headers: 429 for a blocked source, 401 for a missing or bad
/// credential, 403 for a suspended account; then spends one request of the credential's budget.
pub async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    actor: &Actor,
) -> Result<(Verified, Budget), ApiError> {
    let now = state.now();
    check_source(state, actor, now)?;
    let token = match bearer(headers) {
        Ok(Some(t)) => t,
        Ok(None) => return Err(ApiError::missing_credential()),
        Err(f) => {
            record_failure(state, actor, now, &f.into()).await;
            return Err(ApiError::invalid_token().with_cause(f.reason()));
        }
    };
    let verified = verify_credential_at(state, token, actor, now).await?;
    let c = &verified.credential;
    let budget = state
        .limiter
        .spend(&c.credential_id, state.config.budget_for(c.plan), now);
    if budget.exceeded {
        state
            .metrics
            .rate_limited_responses
            .fetch_add(1, Ordering::Relaxed);
        if budget.first_exceeded {
            state
                .metrics
                .rate_limit_trips
                .fetch_add(1, Ordering::Relaxed);
            state
                .auditor
                .record(actor.event(
                    now,
                    types::BUDGET_EXHAUSTED,
                    Some(&c.account_id),
                    Some(&c.credential_id),
                    outcomes::FAILURE,
                    Some(format!("{} requests this hour", budget.limit)),
                ))
                .await;
        }
    }
    if c.kind == CredentialKind::ApiKey {
        state.note_use(&c.credential_id, now);
    }
    Ok((verified, budget))
}

/// 429 for a source over its failure budget — checked before the credential is looked at, so
/// the refusal is cheaper than a 401.
pub fn check_source(state: &AppState, actor: &Actor, now: i64) -> Result<(), ApiError> {
    let ip = actor.ip.unwrap_or(IpAddr::from([0, 0, 0, 0]));
    match state.limiter.blocked(ip, now) {
        None => Ok(()),
        Some(wait) => {
            state
                .metrics
                .rate_limited_responses
                .fetch_add(1, Ordering::Relaxed);
            Err(ApiError::rate_limited(
                "Too many failed authentication attempts from this address; back off and retry later.",
                wait,
            ))
        }
    }
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

/// The granted scope that admitted a request under `access` (for least-privilege reporting).
pub fn scope_used(
    p: &Principal,
    access: Access,
    path_param: impl Fn(&str) -> Option<String>,
) -> Option<String> {
    let (r, a, project) = match access {
        Access::Scoped(r, a, Projects::All) => (r, a, None),
        Access::Scoped(r, a, Projects::Path(name)) => (r, a, path_param(name)),
        Access::Scoped(r, a, Projects::AnyOne) => {
            return p
                .scopes
                .iter()
                .find(|s| s.resource == r && s.action.implies(a))
                .map(|s| s.to_string())
        }
        Access::Operator(a) => (Resource::Keys, a, None),
        Access::Public | Access::Authenticated => return None,
    };
    p.scopes
        .iter()
        .find(|s| s.allows(r, a, project.as_deref()))
        .map(|s| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn within_owner_is_the_intersection_with_what_the_owner_may_do() {
        for plan in [Plan::Free, Plan::Pro, Plan::Enterprise] {
            for granted in [
                "",
                "repo:read",
                "repo:write:my-app deploy:read",
                "repo:write deploy:write team:read audit:read keys:write",
                "repo:read:a repo:read:b deploy:write:a",
            ] {
                let g = ScopeSet::parse_space_separated(granted).expect("scopes parse");
                assert_eq!(
                    within_owner(g.clone(), plan),
                    g.intersect(&owner_may(plan)),
                    "{plan:?}: {granted}"
                );
            }
        }
    }
}
