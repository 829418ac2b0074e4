//! The verification cache (DESIGN "request path"): SHA-256 of an opaque credential → what it
//! authenticates as, so a repeated API key costs one hash and one map lookup.
//!
//! What must hold: a revocation, rotation or suspension is never served stale. Every change
//! bumps a generation and clears the cache under a write lock; a fill that read the database
//! before the change carries the old generation and is dropped. Other nodes and the CLI reach
//! this through the `invalidations` table, polled by [`crate::state::spawn_background`].

use crate::bounded::Bounded;
use dotgit_core::jwt::RsaPublicKey;
use dotgit_core::net::Cidr;
use dotgit_core::{AccountStatus, CredentialKind, Plan, Principal, ScopeSet, SecretHash};
use parking_lot::RwLock;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// How long an entry is served before it is read from the database again.
const TTL: Duration = Duration::from_secs(600);

/// What a verified opaque credential authenticates as.
#[derive(Debug, Clone)]
pub struct CachedCredential {
    /// Kind.
    pub kind: CredentialKind,
    /// Credential id.
    pub credential_id: String,
    /// Owner.
    pub account_id: String,
    /// Owner's username.
    pub username: String,
    /// Owner's plan.
    pub plan: Plan,
    /// Owner is an operator.
    pub operator: bool,
    /// Owner's status.
    pub status: AccountStatus,
    /// Effective scopes.
    pub scopes: ScopeSet,
    /// When it expires (shown to the caller).
    pub expires_at: Option<i64>,
    /// The first second it is no longer accepted (a JWT's `exp` plus leeway; else `expires_at`).
    pub valid_until: Option<i64>,
    /// When the key was made (rotation policy).
    pub created_at: i64,
    /// Source networks it may be used from (the JWT `ips` claim); `None`: anywhere.
    pub ips: Option<Vec<Cidr>>,
    /// When the credential (or the key that signs it) passes its account's rotation policy.
    pub rotation_due_at: Option<i64>,
    /// The OAuth client an access token was issued to (introspection answers only it).
    pub client_id: Option<String>,
    /// The caller this credential authenticates as, built at its first use and shared by every
    /// request served from this entry (see [`CachedCredential::principal`]).
    pub principal: OnceLock<Arc<Principal>>,
    /// The `GET /v1/user` body, rendered at its first request: everything in it comes from
    /// this entry, which never changes (a change to the credential or its account drops the
    /// entry).
    pub user_body: OnceLock<axum::body::Bytes>,
}

impl CachedCredential {
    /// The caller this credential authenticates as. Built once per entry: a cached credential's
    /// requests share it instead of copying its ids, username and scopes each time.
    pub fn principal(&self) -> Arc<Principal> {
        self.principal
            .get_or_init(|| {
                Arc::new(Principal {
                    account_id: self.account_id.clone(),
                    username: self.username.clone(),
                    plan: self.plan,
                    operator: self.operator,
                    kind: self.kind,
                    credential_id: self.credential_id.clone(),
                    scopes: self.scopes.clone(),
                    expires_at: self.expires_at,
                })
            })
            .clone()
    }

    /// Whether the credential (or the key that signs it) is past its account's rotation policy.
    pub fn rotation_due(&self, now: i64) -> bool {
        self.rotation_due_at.is_some_and(|d| now >= d)
    }
}

/// Successes of a cached credential are queued pointing at its entry (nothing copied).
impl dotgit_core::audit::Subject for CachedCredential {
    fn account_id(&self) -> &str {
        &self.account_id
    }
    fn credential_id(&self) -> &str {
        &self.credential_id
    }
    fn kind(&self) -> &'static str {
        self.kind.as_str()
    }
}

/// A registered OAuth client as client authentication needs it, cached per client id.
#[derive(Debug)]
pub struct CachedClient {
    /// The app (its secret only as a hash).
    pub app: Arc<dotgit_store::OAuthAppRow>,
    /// When its secret stops working under an enforced rotation policy of its account.
    pub secret_refused_from: Option<i64>,
}

/// A registered JWT key with its owner, parsed once and cached per (account, kid).
#[derive(Debug)]
pub struct JwtKeyEntry {
    /// Key id.
    pub kid: String,
    /// Owner.
    pub account_id: String,
    /// Owner's username.
    pub username: String,
    /// Owner's plan.
    pub plan: Plan,
    /// Owner is an operator.
    pub operator: bool,
    /// Owner's status.
    pub status: AccountStatus,
    /// Parsed public key.
    pub key: RsaPublicKey,
    /// Expected `iss`.
    pub issuer: String,
    /// Scopes tokens may carry.
    pub allowed_scopes: ScopeSet,
    /// Longest `exp - iat`.
    pub max_lifetime_seconds: i64,
    /// `jti` required and accepted once.
    pub single_use: bool,
    /// When the key passes its account's rotation policy.
    pub rotation_due_at: i64,
    /// Whether the policy makes it stop working then.
    pub rotation_enforced: bool,
}

/// The cache.
#[derive(Debug)]
pub struct VerifyCache {
    enabled: bool,
    map: Bounded<[u8; 32], CachedCredential>,
    jwt_keys: Bounded<String, JwtKeyEntry>,
    clients: Bounded<String, CachedClient>,
    generation: RwLock<u64>,
}

impl Default for VerifyCache {
    fn default() -> Self {
        Self::new(100_000)
    }
}

impl VerifyCache {
    /// A cache of up to `capacity` credentials (0: none is kept); entries are re-read at least
    /// every 10 minutes.
    pub fn new(capacity: u64) -> Self {
        VerifyCache {
            enabled: capacity > 0,
            map: Bounded::new(capacity, TTL),
            jwt_keys: Bounded::new(10_000, TTL),
            clients: Bounded::new(10_000, TTL),
            generation: RwLock::new(0),
        }
    }

    /// Whether credentials are kept at all (capacity above zero).
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// A cached entry.
    pub fn get(&self, h: &SecretHash) -> Option<Arc<CachedCredential>> {
        self.map.get(&h.0)
    }

    /// The generation to pass to [`VerifyCache::fill`]; read it before reading the database.
    pub fn generation(&self) -> u64 {
        *self.generation.read()
    }

    /// Inserts an entry read from the database at generation `seen`, unless something changed
    /// since.
    pub fn fill(&self, h: &SecretHash, seen: u64, v: Arc<CachedCredential>) {
        let g = self.generation.read();
        if self.enabled && *g == seen {
            self.map.insert(h.0, v);
        }
    }

    /// A cached JWT key, only if it belongs to `account_id` (kids are globally unique, but a
    /// key is only ever looked up among the keys of the account a token names).
    pub fn jwt_key(&self, account_id: &str, kid: &str) -> Option<Arc<JwtKeyEntry>> {
        self.jwt_keys
            .get(kid)
            .filter(|e| e.account_id == account_id)
    }

    /// Caches a JWT key read at generation `seen`, unless something changed since.
    pub fn fill_jwt_key(&self, seen: u64, v: Arc<JwtKeyEntry>) {
        let g = self.generation.read();
        if *g == seen {
            self.jwt_keys.insert(v.kid.clone(), v);
        }
    }

    /// A cached OAuth client.
    pub fn client(&self, client_id: &str) -> Option<Arc<CachedClient>> {
        self.clients.get(client_id)
    }

    /// Caches an OAuth client read at generation `seen`, unless something changed since.
    pub fn fill_client(&self, seen: u64, v: Arc<CachedClient>) {
        let g = self.generation.read();
        if self.enabled && *g == seen {
            self.clients.insert(v.app.client_id.clone(), v);
        }
    }

    /// Drops everything (after any revocation, rotation, key deletion, secret change or
    /// suspension).
    pub fn invalidate_all(&self) {
        let mut g = self.generation.write();
        *g += 1;
        self.map.clear();
        self.jwt_keys.clear();
        self.clients.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dotgit_core::SecretHash;

    fn entry() -> Arc<CachedCredential> {
        Arc::new(CachedCredential {
            kind: CredentialKind::ApiKey,
            credential_id: "key_1".into(),
            account_id: "acct_1".into(),
            username: "alice".into(),
            plan: Plan::Free,
            operator: false,
            status: AccountStatus::Active,
            scopes: ScopeSet::all(),
            expires_at: None,
            valid_until: None,
            created_at: 0,
            ips: None,
            rotation_due_at: None,
            client_id: None,
            principal: OnceLock::new(),
            user_body: OnceLock::new(),
        })
    }

    #[test]
    fn fills_and_forgets_on_invalidation() {
        let c = VerifyCache::new(10);
        let h = SecretHash::of("dg_x");
        c.fill(&h, c.generation(), entry());
        assert!(c.get(&h).is_some());
        c.invalidate_all();
        assert!(c.get(&h).is_none());
        // a fill that read the database before the invalidation is dropped
        let stale = c.generation() - 1;
        c.fill(&h, stale, entry());
        assert!(c.get(&h).is_none());
    }

    #[test]
    fn capacity_zero_keeps_nothing() {
        let c = VerifyCache::new(0);
        let h = SecretHash::of("dg_x");
        c.fill(&h, c.generation(), entry());
        assert!(c.get(&h).is_none());
    }
}
