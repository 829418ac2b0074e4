//! Plain rows as stored; the server turns them into API objects.

/// An account row.
#[derive(Clone, sqlx::FromRow)]
pub struct AccountRow {
    /// Opaque id.
    pub id: String,
    /// Unique username.
    pub username: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// `free` | `pro` | `enterprise`.
    pub plan: String,
    /// Server operator.
    pub is_operator: bool,
    /// `active` | `suspended`.
    pub status: String,
    /// Why it was suspended.
    pub status_reason: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// Revoke an API key automatically when an anomaly involves it.
    pub anomaly_auto_revoke: bool,
    /// Keys older than this many days are due for rotation.
    pub rotation_policy_days: i64,
    /// Keys past the rotation policy stop working.
    pub rotation_policy_enforce: bool,
}

/// Account security settings to change; `None` leaves a setting as it is.
#[derive(Debug, Clone, Default)]
pub struct AccountSettings {
    /// Revoke an API key automatically when an anomaly involves it.
    pub anomaly_auto_revoke: Option<bool>,
    /// Rotation policy, days.
    pub rotation_policy_days: Option<i64>,
    /// Enforce the rotation policy.
    pub rotation_policy_enforce: Option<bool>,
}

impl std::fmt::Debug for AccountRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountRow")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("password_hash", &"<redacted>")
            .field("plan", &self.plan)
            .field("is_operator", &self.is_operator)
            .field("status", &self.status)
            .finish()
    }
}

/// An API key row. `secret_hash` is the SHA-256 hex digest of the key.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApiKeyRow {
    /// Opaque id.
    pub id: String,
    /// Owner.
    pub account_id: String,
    /// Human name.
    pub name: String,
    /// First 8 characters of the key.
    pub prefix: String,
    /// SHA-256 hex of the key.
    pub secret_hash: String,
    /// Granted scopes, space-separated.
    pub scopes: String,
    /// Unix seconds.
    pub created_at: i64,
    /// When it stops working (user expiry or end of rotation grace).
    pub expires_at: Option<i64>,
    /// When it was revoked.
    pub revoked_at: Option<i64>,
    /// Last authenticated use (batched).
    pub last_used_at: Option<i64>,
    /// The key that rotated this one.
    pub replaced_by: Option<String>,
    /// The key this one rotated.
    pub rotated_from: Option<String>,
}

/// What verifying an API key reads of its row ([`crate::Store::api_key_by_hash`]): only the
/// columns the decision needs, so the probe decodes no name, prefix or digest.
#[derive(Debug, Clone)]
pub struct KeyToVerify {
    /// `key_…` id.
    pub id: String,
    /// Granted scopes, space-separated.
    pub scopes: String,
    /// Unix seconds.
    pub created_at: i64,
    /// When it stops working (user expiry or end of rotation grace).
    pub expires_at: Option<i64>,
    /// When it was revoked.
    pub revoked_at: Option<i64>,
}

/// A project row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ProjectRow {
    /// Owner.
    pub account_id: String,
    /// Slug (unique per account).
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Unix seconds.
    pub created_at: i64,
}

/// A deployment row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeploymentRow {
    /// Opaque id.
    pub id: String,
    /// Owner.
    pub account_id: String,
    /// Project slug.
    pub project_slug: String,
    /// Git ref deployed.
    #[sqlx(rename = "ref")]
    pub git_ref: String,
    /// Target environment.
    pub environment: String,
    /// Status.
    pub status: String,
    /// Unix seconds.
    pub created_at: i64,
}

/// A team row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TeamRow {
    /// Owner.
    pub account_id: String,
    /// Slug (unique per account).
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Unix seconds.
    pub created_at: i64,
}

/// One cache invalidation.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Invalidation {
    /// Sequence number.
    pub seq: i64,
    /// `api_key`, `account`, …
    pub kind: String,
    /// The id of what changed.
    pub target: String,
}

/// A registered customer JWT public key.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct JwtKeyRow {
    /// Server-assigned key id (the JWT header `kid`).
    pub kid: String,
    /// Owner (the JWT `sub`).
    pub account_id: String,
    /// Human name.
    pub name: String,
    /// Expected `iss`.
    pub issuer: String,
    /// The RSA public key, SPKI PEM.
    pub public_key_pem: String,
    /// RFC 7638 thumbprint.
    pub thumbprint: String,
    /// Scopes tokens may carry, space-separated.
    pub allowed_scopes: String,
    /// Longest `exp - iat` accepted.
    pub max_lifetime_seconds: i64,
    /// Each `jti` accepted once.
    pub single_use: bool,
    /// Unix seconds.
    pub created_at: i64,
}
