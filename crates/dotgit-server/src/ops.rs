//! Operations shared by the HTTP API and the `dotgit` command line, so both obey the same rules:
//! account creation (argon2id), API-key issuance, rotation and revocation, suspension.
//! Callers that hold a verification cache invalidate it after a successful change.

use crate::audit::Actor;
use crate::error::ApiError;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use dotgit_core::audit::{outcomes, types};
use dotgit_core::credential::{generate, random_base62, BASE62};
use dotgit_core::{CredentialKind, Plan, ScopeSet, Secret};
use dotgit_store::{AccountRow, ApiKeyRow, JwtKeyRow, Store};

/// Default rotation grace period (SPEC §6): 24 hours.
pub const DEFAULT_GRACE_SECONDS: u32 = 86_400;
/// Longest grace period accepted: 30 days.
pub const MAX_GRACE_SECONDS: u32 = 30 * 86_400;
/// Default rotation policy (SPEC §4): keys older than 90 days are flagged.
pub const ROTATION_POLICY_DAYS: i64 = 90;
/// Longest `expires_in_days`.
pub const MAX_EXPIRES_IN_DAYS: u32 = 3650;

/// Uniform random bytes from the operating system's CSPRNG (aws-lc-rs).
pub fn entropy() -> Result<[u8; 64], ApiError> {
    let mut b = [0u8; 64];
    aws_lc_rs::rand::fill(&mut b).map_err(|_| ApiError::internal("CSPRNG failure"))?;
    Ok(b)
}

/// A new opaque id like `key_3kTq…` (16 base62 characters).
pub fn new_id(prefix: &str) -> Result<String, ApiError> {
    let r = random_base62(&entropy()?, 16).ok_or_else(|| ApiError::internal("CSPRNG short"))?;
    Ok(format!("{prefix}_{r}"))
}

/// A new opaque id whose text sorts by creation time: the prefix, `_` and 16 characters, the
/// first 8 the millisecond of creation in base62 (digits, capitals, small letters: byte order
/// is time order) and 8 random ones (47 bits).
///
/// Used where rows are inserted at a high rate into a table keyed by the id (OAuth tokens, two
/// per refresh): a random key puts every insert on a random page of the primary-key index, and
/// each such page is written to the WAL, synced and checkpointed; a time-ordered one appends
/// to the index's last pages.
pub fn new_sorted_id(prefix: &str) -> Result<String, ApiError> {
    new_sorted_id_from(prefix, &entropy()?)
}

/// [`new_sorted_id`] from 64 bytes of the caller's [`entropy`].
pub fn new_sorted_id_from(prefix: &str, entropy: &[u8; 64]) -> Result<String, ApiError> {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    sorted_id(prefix, ms, entropy).ok_or_else(|| ApiError::internal("CSPRNG short"))
}

/// `N` blocks of 64 uniform random bytes in one call to the CSPRNG.
pub fn entropy_blocks<const N: usize>() -> Result<[[u8; 64]; N], ApiError> {
    let mut b = [[0u8; 64]; N];
    aws_lc_rs::rand::fill(b.as_flattened_mut())
        .map_err(|_| ApiError::internal("CSPRNG failure"))?;
    Ok(b)
}

fn sorted_id(prefix: &str, mut ms: u128, entropy: &[u8]) -> Option<String> {
    let mut id = String::with_capacity(prefix.len() + 17);
    id.push_str(prefix);
    id.push('_');
    let mut time = [0u8; 8];
    for c in time.iter_mut().rev() {
        *c = BASE62[(ms % 62) as usize];
        ms /= 62;
    }
    id.extend(time.iter().map(|b| char::from(*b)));
    id.push_str(&random_base62(entropy, 8)?);
    Some(id)
}

/// A new opaque secret of `kind`.
pub fn new_secret(kind: CredentialKind) -> Result<Secret, ApiError> {
    new_secret_from(kind, &entropy()?)
}

/// A new opaque secret of `kind` from 64 bytes of the caller's [`entropy`] (a caller that makes
/// several secrets and ids at once draws them in one call to the CSPRNG).
pub fn new_secret_from(kind: CredentialKind, entropy: &[u8; 64]) -> Result<Secret, ApiError> {
    generate(kind, entropy).ok_or_else(|| ApiError::internal("CSPRNG short"))
}

/// argon2id PHC string of a password.
pub fn hash_password(password: &str) -> Result<String, ApiError> {
    let mut salt = [0u8; 16];
    aws_lc_rs::rand::fill(&mut salt).map_err(|_| ApiError::internal("CSPRNG failure"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| ApiError::internal(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// Whether `password` matches a stored PHC string.
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Creates an account.
pub async fn create_account(
    store: &Store,
    now: i64,
    username: &str,
    password: &str,
    plan: Plan,
    operator: bool,
    actor: &Actor,
) -> Result<AccountRow, ApiError> {
    if !dotgit_core::slug::is_valid_username(username) {
        return Err(ApiError::invalid_request(
            "username: 1–39 characters of a-z, 0-9 and '-', starting with a letter or digit",
        ));
    }
    if password.chars().count() < 8 {
        return Err(ApiError::invalid_request("password: at least 8 characters"));
    }
    if password.len() > 1024 {
        return Err(ApiError::invalid_request("password: at most 1024 bytes"));
    }
    let row = AccountRow {
        id: new_id("acct")?,
        username: username.to_owned(),
        password_hash: hash_password(password)?,
        plan: plan.as_str().to_owned(),
        is_operator: operator,
        status: "active".to_owned(),
        status_reason: None,
        created_at: now,
        anomaly_auto_revoke: false,
        rotation_policy_days: ROTATION_POLICY_DAYS,
        rotation_policy_enforce: false,
    };
    let event = actor.event(
        now,
        types::ACCOUNT_CREATED,
        Some(&row.id),
        None,
        outcomes::SUCCESS,
        Some(format!(
            "plan {}{}{}",
            plan.as_str(),
            if operator { ", operator" } else { "" },
            actor.by()
        )),
    );
    store
        .create_account(&row, &event)
        .await
        .map_err(|e| match e {
            dotgit_store::StoreError::Conflict(_) => {
                ApiError::invalid_request(format!("username: `{username}` is taken"))
            }
            other => other.into(),
        })?;
    Ok(row)
}

/// Validates a display name (keys, projects, teams).
pub fn check_name(field: &str, name: &str) -> Result<(), ApiError> {
    let n = name.chars().count();
    if n == 0 || n > 100 {
        return Err(ApiError::invalid_request(format!(
            "{field}: must be 1 to 100 characters"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(ApiError::invalid_request(format!(
            "{field}: must not contain control characters"
        )));
    }
    if name.trim() != name {
        return Err(ApiError::invalid_request(format!(
            "{field}: must not start or end with white space"
        )));
    }
    Ok(())
}

/// Parses requested scopes, naming the first bad one by index.
pub fn parse_scopes(field: &str, items: &[String]) -> Result<ScopeSet, ApiError> {
    if items.is_empty() {
        return Err(ApiError::invalid_scope(format!(
            "{field}: at least one scope is required"
        )));
    }
    if items.len() > 50 {
        return Err(ApiError::invalid_scope(format!(
            "{field}: at most 50 scopes"
        )));
    }
    for (i, s) in items.iter().enumerate() {
        dotgit_core::Scope::parse(s)
            .map_err(|e| ApiError::invalid_scope(format!("{field}[{i}]: {e}")))?;
    }
    ScopeSet::parse_list(items).map_err(|e| ApiError::invalid_scope(format!("{field}: {e}")))
}

/// Issues a new API key for `account_id` (class B: committed before returning).
pub async fn create_api_key(
    store: &Store,
    now: i64,
    account_id: &str,
    name: &str,
    scopes: &ScopeSet,
    expires_in_days: Option<u32>,
    actor: &Actor,
) -> Result<(ApiKeyRow, Secret), ApiError> {
    check_name("name", name)?;
    let expires_at = match expires_in_days {
        None => None,
        Some(d) if (1..=MAX_EXPIRES_IN_DAYS).contains(&d) => Some(now + i64::from(d) * 86_400),
        Some(_) => {
            return Err(ApiError::invalid_request(format!(
                "expires_in_days: must be between 1 and {MAX_EXPIRES_IN_DAYS}"
            )))
        }
    };
    let secret = new_secret(CredentialKind::ApiKey)?;
    let row = ApiKeyRow {
        id: new_id("key")?,
        account_id: account_id.to_owned(),
        name: name.to_owned(),
        prefix: secret.display_prefix(),
        secret_hash: secret.hash().to_hex(),
        scopes: scopes.to_space_separated(),
        created_at: now,
        expires_at,
        revoked_at: None,
        last_used_at: None,
        replaced_by: None,
        rotated_from: None,
    };
    let event = actor.event(
        now,
        types::API_KEY_CREATED,
        Some(account_id),
        Some(&row.id),
        outcomes::SUCCESS,
        Some(format!(
            "prefix {}, scopes {}{}",
            row.prefix,
            row.scopes,
            actor.by()
        )),
    );
    store
        .insert_api_key(&row, now, &event)
        .await
        .map_err(|e| match e {
            dotgit_store::StoreError::Conflict("name") => ApiError::invalid_request(format!(
                "name: the account already has an active key named `{name}`"
            )),
            other => other.into(),
        })?;
    Ok((row, secret))
}

/// Rotates a key: a new key with the same name, scopes and expiry; the old one keeps working
/// for `grace` seconds (0: stops at once). Both changes commit in one transaction.
pub async fn rotate_api_key(
    store: &Store,
    now: i64,
    old: &ApiKeyRow,
    grace: u32,
    actor: &Actor,
) -> Result<(ApiKeyRow, Secret), ApiError> {
    if grace > MAX_GRACE_SECONDS {
        return Err(ApiError::invalid_request(format!(
            "grace_period_seconds: must be between 0 and {MAX_GRACE_SECONDS}"
        )));
    }
    if old.replaced_by.is_some() {
        return Err(ApiError::invalid_request(
            "id: this key was already rotated; rotate its replacement instead",
        ));
    }
    if old.expires_at.is_some_and(|e| now >= e) {
        return Err(ApiError::invalid_request("id: this key has expired"));
    }
    let secret = new_secret(CredentialKind::ApiKey)?;
    let new = ApiKeyRow {
        id: new_id("key")?,
        account_id: old.account_id.clone(),
        name: old.name.clone(),
        prefix: secret.display_prefix(),
        secret_hash: secret.hash().to_hex(),
        scopes: old.scopes.clone(),
        created_at: now,
        expires_at: old.expires_at,
        revoked_at: None,
        last_used_at: None,
        replaced_by: None,
        rotated_from: Some(old.id.clone()),
    };
    let event = actor.event(
        now,
        types::API_KEY_ROTATED,
        Some(&old.account_id),
        Some(&old.id),
        outcomes::SUCCESS,
        Some(format!(
            "replaced by {} (prefix {}), old key valid for {grace} s more{}",
            new.id,
            new.prefix,
            actor.by()
        )),
    );
    match store
        .rotate_api_key(
            &old.account_id,
            &old.id,
            &new,
            now + i64::from(grace),
            now,
            &event,
        )
        .await?
    {
        Some(()) => Ok((new, secret)),
        None => Err(ApiError::invalid_request(
            "id: this key is no longer active (revoked, expired or rotated concurrently)",
        )),
    }
}

/// What a JWT key registration asks for.
#[derive(Debug)]
pub struct NewJwtKey<'a> {
    /// Human name, unique in the account.
    pub name: &'a str,
    /// PEM string or JWK object (or a JWK as a JSON string).
    pub public_key: &'a serde_json::Value,
    /// Scopes tokens signed with it may carry.
    pub allowed_scopes: &'a ScopeSet,
    /// Longest `exp - iat` (900…86400, default 3600).
    pub max_lifetime_seconds: Option<i64>,
    /// Expected `iss` (default: the kid).
    pub issuer: Option<&'a str>,
    /// Require a `jti` and accept each once.
    pub single_use: bool,
}

/// Registers a customer JWT public key (class B). Only the canonical SPKI PEM of the public key
/// is stored; a JWK with private members is refused before anything is written.
pub async fn register_jwt_key(
    store: &Store,
    now: i64,
    account_id: &str,
    req: NewJwtKey<'_>,
    actor: &Actor,
) -> Result<JwtKeyRow, ApiError> {
    use dotgit_core::jwt;
    check_name("name", req.name)?;
    let key = jwt::RsaPublicKey::from_pem_or_jwk(req.public_key).map_err(|e| {
        ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "invalid_key",
            e.to_string(),
        )
    })?;
    let max = req
        .max_lifetime_seconds
        .unwrap_or(jwt::DEFAULT_MAX_LIFETIME_SECONDS);
    if !(jwt::MIN_MAX_LIFETIME_SECONDS..=jwt::MAX_MAX_LIFETIME_SECONDS).contains(&max) {
        return Err(ApiError::invalid_request(format!(
            "max_lifetime_seconds: must be between {} and {}",
            jwt::MIN_MAX_LIFETIME_SECONDS,
            jwt::MAX_MAX_LIFETIME_SECONDS
        )));
    }
    let kid = new_id("jwk")?;
    let issuer = req.issuer.map(str::to_owned).unwrap_or_else(|| kid.clone());
    if issuer.is_empty() || issuer.len() > 256 || issuer.chars().any(char::is_control) {
        return Err(ApiError::invalid_request(
            "issuer: 1 to 256 characters without control characters",
        ));
    }
    let row = JwtKeyRow {
        kid,
        account_id: account_id.to_owned(),
        name: req.name.to_owned(),
        issuer,
        public_key_pem: key.to_pem(),
        thumbprint: key.thumbprint(),
        allowed_scopes: req.allowed_scopes.to_space_separated(),
        max_lifetime_seconds: max,
        single_use: req.single_use,
        created_at: now,
    };
    let event = actor.event(
        now,
        types::JWT_KEY_REGISTERED,
        Some(account_id),
        Some(&row.kid),
        outcomes::SUCCESS,
        Some(format!(
            "RSA-{} thumbprint {}, scopes {}{}{}",
            key.modulus_bits(),
            row.thumbprint,
            row.allowed_scopes,
            if row.single_use { ", single use" } else { "" },
            actor.by()
        )),
    );
    store
        .insert_jwt_key(&row, &event)
        .await
        .map_err(|e| match e {
            dotgit_store::StoreError::Conflict(_) => ApiError::invalid_request(format!(
                "name: the account already has a JWT key named `{}`",
                req.name
            )),
            other => other.into(),
        })?;
    Ok(row)
}

/// Suspends or reinstates an account by username (class A). `Ok(None)`: no such user.
pub async fn set_suspended(
    store: &Store,
    now: i64,
    username: &str,
    suspended: bool,
    reason: Option<&str>,
    actor: &Actor,
) -> Result<Option<AccountRow>, ApiError> {
    let status = if suspended { "suspended" } else { "active" };
    let (event_type, what) = if suspended {
        (types::ACCOUNT_SUSPENDED, "suspended")
    } else {
        (types::ACCOUNT_UNSUSPENDED, "suspension lifted")
    };
    let why = reason.map(|r| format!(": {r}")).unwrap_or_default();
    Ok(store
        .set_account_status(username, status, reason.filter(|_| suspended), now, |a| {
            actor.event(
                now,
                event_type,
                Some(&a.id),
                None,
                outcomes::SUCCESS,
                Some(format!("{what}{}{why}", actor.by())),
            )
        })
        .await?)
}

/// Revokes an API key of `account_id` (class A). `false` if there was no live key with that id.
pub async fn revoke_api_key(
    store: &Store,
    now: i64,
    account_id: &str,
    id: &str,
    actor: &Actor,
) -> Result<bool, ApiError> {
    let event = actor.event(
        now,
        types::API_KEY_REVOKED,
        Some(account_id),
        Some(id),
        outcomes::SUCCESS,
        Some(format!("revoked{}", actor.by())),
    );
    Ok(store.revoke_api_key(account_id, id, now, &event).await?)
}

/// Revokes every credential of an account by username (class A, one transaction): API keys
/// revoked, JWT keys deleted. `Ok(None)`: no such user; otherwise the ids affected.
pub async fn revoke_all_credentials(
    store: &Store,
    now: i64,
    username: &str,
    actor: &Actor,
) -> Result<Option<(AccountRow, Vec<String>)>, ApiError> {
    let Some(acct) = store.account_by_username(username).await? else {
        return Ok(None);
    };
    let ids = store
        .revoke_all_credentials(&acct.id, now, |kind, id| {
            let (t, what) = match kind {
                "jwt_key" => (types::JWT_KEY_DELETED, "deleted"),
                _ => (types::API_KEY_REVOKED, "revoked"),
            };
            actor.event(
                now,
                t,
                Some(&acct.id),
                Some(id),
                outcomes::SUCCESS,
                Some(format!(
                    "{what} with all of the account's credentials{}",
                    actor.by()
                )),
            )
        })
        .await?;
    Ok(Some((acct, ids)))
}

/// Deletes a JWT key of `account_id` (class A). `false` if there was none.
pub async fn delete_jwt_key(
    store: &Store,
    now: i64,
    account_id: &str,
    kid: &str,
    actor: &Actor,
) -> Result<bool, ApiError> {
    let event = actor.event(
        now,
        types::JWT_KEY_DELETED,
        Some(account_id),
        Some(kid),
        outcomes::SUCCESS,
        Some(format!("deleted{}", actor.by())),
    );
    Ok(store.delete_jwt_key(account_id, kid, now, &event).await?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn entropy_blocks_are_independent_and_make_distinct_tokens() {
        let [a, b, c, d] = super::entropy_blocks::<4>().unwrap();
        let blocks = [a, b, c, d];
        for (i, x) in blocks.iter().enumerate() {
            for y in &blocks[i + 1..] {
                assert_ne!(x, y);
            }
        }
        let kind = dotgit_core::CredentialKind::OAuthRefresh;
        let (s1, s2) = (
            super::new_secret_from(kind, &a).unwrap(),
            super::new_secret_from(kind, &b).unwrap(),
        );
        assert_ne!(s1.expose(), s2.expose());
        assert!(s1.expose().starts_with("dgr_") && s1.expose().len() == 4 + 30 + 6);
        assert_ne!(
            super::new_sorted_id_from("tok", &c).unwrap(),
            super::new_sorted_id_from("tok", &d).unwrap()
        );
    }

    #[test]
    fn sorted_ids_sort_by_time_and_keep_the_id_shape() {
        let e = [7u8; 64];
        let ids: Vec<String> = [
            0u128,
            1,
            61,
            62,
            1_700_000_000_000,
            1_700_000_000_001,
            62u128.pow(8) - 1,
        ]
        .into_iter()
        .map(|ms| super::sorted_id("tok", ms, &e).unwrap())
        .collect();
        for w in ids.windows(2) {
            assert!(w[0] < w[1], "{} !< {}", w[0], w[1]);
        }
        for id in &ids {
            let body = id.strip_prefix("tok_").unwrap();
            assert_eq!(body.len(), 16);
            assert!(body.bytes().all(|b| b.is_ascii_alphanumeric()));
        }
        assert_ne!(
            super::new_sorted_id("tok").unwrap(),
            super::new_sorted_id("tok").unwrap()
        );
    }
    use super::*;

    #[test]
    fn passwords_hash_and_verify() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong horse", &h));
        assert!(!verify_password("x", "not a phc string"));
    }

    #[test]
    fn names_and_scopes_are_validated() {
        assert!(check_name("name", "CI deploy key").is_ok());
        assert!(check_name("name", "").is_err());
        assert!(check_name("name", " x").is_err());
        assert!(check_name("name", "a\nb").is_err());
        assert!(check_name("name", &"x".repeat(101)).is_err());
        let e = parse_scopes("scopes", &["repo:read".into(), "repo:admin".into()]).unwrap_err();
        assert_eq!(e.code, "invalid_scope");
        assert!(e.message.starts_with("scopes[1]:"), "{}", e.message);
        assert!(parse_scopes("scopes", &[]).is_err());
    }
}
