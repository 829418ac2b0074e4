//! OAuth 2.0 state (RFC 6749, RFC 9700) and browser sessions.
//!
//! What must hold: single-use items (authorization codes, refresh tokens) are consumed with a
//! conditional update inside the one `BEGIN IMMEDIATE` transaction that issues what replaces
//! them, so of any number of racing redemptions exactly one succeeds. A second use of a consumed
//! item revokes the whole token family in that same transaction (RFC 6749 §4.1.2, RFC 9700
//! §4.14.2). Every revocation appends to `invalidations` in its transaction, so no verification
//! cache serves a revoked token. The policy (client binding, PKCE, expiry, scope) is decided by
//! the caller's `check` closure, run inside the transaction on the rows it read there.
use dotgit_core::audit::{types, AuditEvent};

/// Builds the audit event of an OAuth state change from (type, account id, credential id,
/// reason); the event commits in the same transaction as the change (class A/B).
pub type OAuthAudit<'a> =
    &'a (dyn Fn(&'static str, &str, &str, String) -> AuditEvent + Send + Sync);

use crate::{invalidate, unique_violation, AccountRow, Result, Store, StoreError, ACCOUNT_COLS};

/// A registered OAuth application.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OAuthAppRow {
    /// Public client identifier.
    pub client_id: String,
    /// The account that registered it.
    pub account_id: String,
    /// Display name shown on the consent page.
    pub name: String,
    /// Registered redirect URIs, newline-separated.
    pub redirect_uris: String,
    /// Confidential (has a secret) or public (PKCE only).
    pub confidential: bool,
    /// SHA-256 hex of the client secret (confidential apps).
    pub secret_hash: Option<String>,
    /// Scopes the app may ever be granted, space-separated.
    pub allowed_scopes: String,
    /// Unix seconds.
    pub created_at: i64,
    /// When the current client secret was issued (confidential apps).
    pub secret_created_at: Option<i64>,
}

impl OAuthAppRow {
    /// The registered redirect URIs.
    pub fn redirect_uri_list(&self) -> Vec<&str> {
        self.redirect_uris
            .split('\n')
            .filter(|s| !s.is_empty())
            .collect()
    }
}

/// A user's authorization of an app, with the app's name.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OAuthAuthorizationRow {
    /// Opaque id (`authz_…`).
    pub id: String,
    /// The user.
    pub account_id: String,
    /// The app.
    pub client_id: String,
    /// The app's name.
    pub app_name: String,
    /// Union of the approved scopes, space-separated.
    pub scope: String,
    /// First approval (Unix seconds).
    pub created_at: i64,
    /// Latest approval.
    pub updated_at: i64,
}

/// An authorization code (stored under its digest).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OAuthCodeRow {
    /// SHA-256 hex of the code.
    pub code_hash: String,
    /// The authorization it was issued under.
    pub authorization_id: String,
    /// The user who approved.
    pub account_id: String,
    /// The app it was issued to.
    pub client_id: String,
    /// The exact redirect URI of the authorization request.
    pub redirect_uri: String,
    /// PKCE S256 challenge.
    pub code_challenge: String,
    /// Granted scopes, space-separated.
    pub scope: String,
    /// Unix seconds.
    pub created_at: i64,
    /// First second it is no longer accepted.
    pub expires_at: i64,
    /// When it was redeemed.
    pub used_at: Option<i64>,
    /// The grant its redemption started.
    pub grant_id: Option<String>,
}

/// A grant: one redeemed code and the family of tokens issued from it and its rotations.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OAuthGrantRow {
    /// Opaque id (`grant_…`).
    pub id: String,
    /// The authorization it belongs to.
    pub authorization_id: String,
    /// The user.
    pub account_id: String,
    /// The app.
    pub client_id: String,
    /// Granted scopes, space-separated.
    pub scope: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Absolute end of every refresh token of the family.
    pub refresh_expires_at: i64,
    /// When the family was revoked.
    pub revoked_at: Option<i64>,
    /// Why.
    pub revoked_reason: Option<String>,
}

/// An access or refresh token (stored under its digest).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OAuthTokenRow {
    /// Opaque id (`tok_…`), the credential id.
    pub id: String,
    /// SHA-256 hex of the token.
    pub token_hash: String,
    /// `access` | `refresh`.
    pub kind: String,
    /// The family.
    pub grant_id: String,
    /// The user.
    pub account_id: String,
    /// The app.
    pub client_id: String,
    /// Scopes, space-separated.
    pub scope: String,
    /// Unix seconds.
    pub created_at: i64,
    /// First second it is no longer accepted.
    pub expires_at: i64,
    /// When it was revoked.
    pub revoked_at: Option<i64>,
    /// Refresh tokens: when it was rotated.
    pub used_at: Option<i64>,
    /// Refresh tokens: its successor.
    pub replaced_by: Option<String>,
}

/// A browser session (stored under the digest of its id).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionRow {
    /// SHA-256 hex of the session id.
    pub id_hash: String,
    /// The signed-in account.
    pub account_id: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Last request seen.
    pub last_seen_at: i64,
    /// Absolute end.
    pub expires_at: i64,
    /// End if no request comes before it.
    pub idle_expires_at: i64,
}

/// What a successful redemption or rotation writes.
#[derive(Debug, Clone)]
pub struct IssuedTokens {
    /// The new grant (code redemption only).
    pub grant: Option<OAuthGrantRow>,
    /// The new access token.
    pub access: OAuthTokenRow,
    /// The new refresh token.
    pub refresh: OAuthTokenRow,
}

/// Outcome of an authorization-code redemption.
#[derive(Debug)]
pub enum Redeemed<R> {
    /// No such code (never issued, swept, or its authorization was revoked).
    Unknown,
    /// The code was already redeemed: everything issued from it is now revoked.
    Replayed,
    /// The caller's check refused it; nothing was written.
    Refused(R),
    /// Tokens issued.
    Issued,
}

/// Outcome of a refresh-token rotation.
#[derive(Debug)]
pub enum Rotated<R> {
    /// No such refresh token.
    Unknown,
    /// Revoked (itself or its family).
    Inactive,
    /// An already rotated token was presented again: the whole family is now revoked.
    Reused,
    /// The caller's check refused it; nothing was written.
    Refused(R),
    /// Tokens issued (as the check made them).
    Issued(Box<IssuedTokens>),
}

/// Outcome of a client's revocation request (RFC 7009).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRevocation {
    /// Unknown token, or one of another client: nothing happened.
    NoEffect,
    /// The access token was revoked.
    AccessToken,
    /// The refresh token's whole family was revoked.
    Family,
}

const APP_COLS: &str =
    "client_id, account_id, name, redirect_uris, confidential, secret_hash, allowed_scopes, created_at, secret_created_at";
const CODE_COLS: &str = "code_hash, authorization_id, account_id, client_id, redirect_uri, code_challenge, scope, created_at, expires_at, used_at, grant_id";
const GRANT_COLS: &str = "id, authorization_id, account_id, client_id, scope, created_at, refresh_expires_at, revoked_at, revoked_reason";
pub(crate) const TOKEN_COLS: &str = "id, token_hash, kind, grant_id, account_id, client_id, scope, created_at, expires_at, revoked_at, used_at, replaced_by";
const SESSION_COLS: &str =
    "id_hash, account_id, created_at, last_seen_at, expires_at, idle_expires_at";

/// How long a consumed code is remembered for replay detection (beyond its family's life).
const CODE_MEMORY_SECONDS: i64 = 31 * 86_400;

/// A token by rowid (`?1`) and digest (`?2`), with its grant and account (migration 0015,
/// ADR 0022). A token is used when a successor names it in `replaces` (found through the index
/// `oauth_tokens_successor`), or, if it was rotated before migration 0015, by its own `used_at`;
/// `used_at` and `replaced_by` are read as the successor's issue time and id.
pub const TOKEN_LOOKUP: &str = "SELECT t.id, t.token_hash, t.kind, t.grant_id, t.account_id,
        t.client_id, t.scope, t.created_at, t.expires_at, t.revoked_at,
        COALESCE(t.used_at, s.created_at), COALESCE(t.replaced_by, s.id),
        g.id, g.authorization_id, g.account_id, g.client_id, g.scope, g.created_at,
        g.refresh_expires_at, g.revoked_at, g.revoked_reason,
        a.id, a.username, a.password_hash, a.plan, a.is_operator, a.status,
        a.status_reason, a.created_at, a.anomaly_auto_revoke, a.rotation_policy_days,
        a.rotation_policy_enforce
     FROM oauth_tokens t
     JOIN oauth_grants g ON g.id = t.grant_id
     JOIN accounts a ON a.id = t.account_id
     LEFT JOIN oauth_tokens s ON s.replaces = t.seq
     WHERE t.seq = ?1 AND t.token_hash = ?2";

/// The next tokens after a place in the table (`$1`), at most `$2` of them, in the order they
/// were issued: a step of the purge's walk (ADR 0019, second addendum), a search of the table's
/// own b-tree from that `seq`, no index (`tests/plans.rs`).
pub const PURGE_WALK: &str = "SELECT seq, kind, created_at, expires_at FROM oauth_tokens
    WHERE seq > $1 ORDER BY seq LIMIT $2";
/// Deletes the tokens of kind `$3` with `seq` in (`$1`, `$2`]: the walk found every one of them
/// ended. Their digests and `seq`s come back for the token index (ADR 0022).
pub const PURGE_TOKENS: &str = "DELETE FROM oauth_tokens WHERE seq > $1 AND seq <= $2 AND kind = $3
    RETURNING token_hash, seq";
/// The grants whose refresh lifetime ended before `$1`, at most `$2` of them, oldest first
/// (through `oauth_grants_refresh_expiry`, migration 0012). Their tokens go by their own ends
/// (above); one that outlives its grant's row is refused as an unknown token.
pub const PURGE_GRANTS: &str = "DELETE FROM oauth_grants WHERE id IN (
    SELECT id FROM oauth_grants WHERE refresh_expires_at < $1 ORDER BY refresh_expires_at LIMIT $2)";

/// What one [`Store::purge_ended_oauth`] transaction deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OAuthPurged {
    /// Access tokens that had expired (their grant lives on).
    pub access_tokens: u64,
    /// Refresh tokens, rotated or not, whose grant had ended.
    pub refresh_tokens: u64,
    /// Ended grants.
    pub grants: u64,
    /// The transaction stopped at its limits, not because it had found everything: another
    /// may find more.
    pub more: bool,
}

/// Where the purge's walks of `oauth_tokens` stand (ADR 0019, second addendum): every access
/// token with a `seq` up to `access` is gone, and so is every refresh token up to `refresh`.
/// In memory: a new process starts both at 0 and walks the table once.
#[derive(Debug, Default)]
pub(crate) struct PurgeCursors {
    access: i64,
    refresh: i64,
}

/// A token as the purge's walk reads it.
#[derive(sqlx::FromRow)]
struct Walked {
    seq: i64,
    kind: String,
    created_at: i64,
    expires_at: i64,
}

/// Rows a walk reads at a time: in the steady state the first live token is among the first
/// few rows, and the write lock is held for one small read.
const WALK_CHUNK: i64 = 32;

/// One walk of `oauth_tokens` from `from` for tokens of `kind`, inside the purge's write
/// transaction: reads the next tokens in `seq` order, a chunk at a time, passes every token of
/// the other kind and every one of `kind` that `ended` says is done, and stops before the first
/// one that is not, after `batch` of them, or after `scan_limit` rows. Every token of `kind` it
/// passes has ended. Returns the new place, and whether it stopped at a limit (more may
/// follow) rather than at a live token or the table's end.
async fn walk(
    tx: &mut sqlx::SqliteConnection,
    from: i64,
    kind: &str,
    batch: u64,
    scan_limit: u64,
    ended: impl Fn(&Walked) -> bool,
) -> Result<(i64, bool)> {
    let (mut to, mut passed, mut read) = (from, 0u64, 0u64);
    loop {
        let rows = sqlx::query_as::<_, Walked>(PURGE_WALK)
            .bind(to)
            .bind(WALK_CHUNK)
            .fetch_all(&mut *tx)
            .await?;
        for r in &rows {
            if r.kind == kind {
                if !ended(r) {
                    return Ok((to, false));
                }
                if passed == batch {
                    return Ok((to, true));
                }
                passed += 1;
            }
            to = r.seq;
            read += 1;
            if read == scan_limit {
                return Ok((to, true));
            }
        }
        if (rows.len() as i64) < WALK_CHUNK {
            return Ok((to, false));
        }
    }
}

impl Store {
    // ---- apps --------------------------------------------------------------------------

    /// Registers an app (class B).
    pub async fn insert_oauth_app(&self, a: &OAuthAppRow, event: &AuditEvent) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let r = sqlx::query(
            "INSERT INTO oauth_apps (client_id, account_id, name, redirect_uris, confidential, secret_hash, allowed_scopes, created_at, secret_created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&a.client_id)
        .bind(&a.account_id)
        .bind(&a.name)
        .bind(&a.redirect_uris)
        .bind(a.confidential)
        .bind(&a.secret_hash)
        .bind(&a.allowed_scopes)
        .bind(a.created_at)
        .bind(a.secret_created_at)
        .execute(&mut *tx)
        .await;
        match r {
            Ok(_) => {}
            Err(e) if unique_violation(&e) => return Err(StoreError::Conflict("client_id")),
            Err(e) => return Err(e.into()),
        }
        crate::audit::append(&mut tx, std::slice::from_ref(event)).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The apps an account registered, newest first.
    pub async fn list_oauth_apps(&self, account_id: &str) -> Result<Vec<OAuthAppRow>> {
        let q = format!(
            "SELECT {APP_COLS} FROM oauth_apps WHERE account_id = $1 ORDER BY created_at DESC, client_id DESC"
        );
        Ok(sqlx::query_as::<_, OAuthAppRow>(&q)
            .bind(account_id)
            .fetch_all(&self.read)
            .await?)
    }

    /// Any app by client id (the authorization and token endpoints).
    pub async fn oauth_app(&self, client_id: &str) -> Result<Option<OAuthAppRow>> {
        self.hot_open()?;
        crate::hot::oauth_app(&self.path, client_id)
    }

    /// Replaces a confidential app's client secret (class A: the old one stops at once).
    /// `false` if the account has no such confidential app.
    pub async fn rotate_oauth_app_secret(
        &self,
        account_id: &str,
        client_id: &str,
        new_secret_hash: &str,
        now: i64,
        event: &AuditEvent,
    ) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query(
            "UPDATE oauth_apps SET secret_hash = $1, secret_created_at = $2
             WHERE account_id = $3 AND client_id = $4 AND confidential = 1",
        )
        .bind(new_secret_hash)
        .bind(now)
        .bind(account_id)
        .bind(client_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 1 {
            // cached client authentications (every node) forget the old secret
            crate::invalidate(&mut tx, "oauth_app", client_id, now).await?;
            crate::audit::append(&mut tx, std::slice::from_ref(event)).await?;
        }
        tx.commit().await?;
        Ok(n == 1)
    }

    /// Deletes an app of the account and, with it, every code, grant and token (class A).
    pub async fn delete_oauth_app(
        &self,
        account_id: &str,
        client_id: &str,
        now: i64,
        event: &AuditEvent,
    ) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query("DELETE FROM oauth_apps WHERE account_id = $1 AND client_id = $2")
            .bind(account_id)
            .bind(client_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 1 {
            invalidate(&mut tx, "oauth_app", client_id, now).await?;
            crate::audit::append(&mut tx, std::slice::from_ref(event)).await?;
        }
        tx.commit().await?;
        Ok(n == 1)
    }

    // ---- authorizations and codes ------------------------------------------------------

    /// Records an approval and issues its code (class B) in one transaction: the user's
    /// authorization of the app is created, or revived after a revocation, or has its scope
    /// merged by `merge_scope(previous)`; the code is stored under it. Returns the
    /// authorization id.
    pub async fn issue_code(
        &self,
        code: &OAuthCodeRow,
        new_authorization_id: &str,
        merge_scope: impl FnOnce(Option<&str>) -> String,
        now: i64,
        ev: OAuthAudit<'_>,
    ) -> Result<String> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM oauth_codes WHERE expires_at < $1")
            .bind(now - CODE_MEMORY_SECONDS)
            .execute(&mut *tx)
            .await?;
        let existing: Option<(String, String, Option<i64>)> = sqlx::query_as(
            "SELECT id, scope, revoked_at FROM oauth_authorizations WHERE account_id = $1 AND client_id = $2",
        )
        .bind(&code.account_id)
        .bind(&code.client_id)
        .fetch_optional(&mut *tx)
        .await?;
        let id = match existing {
            Some((id, scope, revoked_at)) => {
                let previous = revoked_at.is_none().then_some(scope.as_str());
                let merged = merge_scope(previous);
                sqlx::query(
                    "UPDATE oauth_authorizations SET scope = $1, updated_at = $2, revoked_at = NULL,
                            created_at = CASE WHEN revoked_at IS NULL THEN created_at ELSE $2 END
                     WHERE id = $3",
                )
                .bind(&merged)
                .bind(now)
                .bind(&id)
                .execute(&mut *tx)
                .await?;
                id
            }
            None => {
                sqlx::query(
                    "INSERT INTO oauth_authorizations (id, account_id, client_id, scope, created_at, updated_at, revoked_at)
                     VALUES ($1, $2, $3, $4, $5, $5, NULL)",
                )
                .bind(new_authorization_id)
                .bind(&code.account_id)
                .bind(&code.client_id)
                .bind(merge_scope(None))
                .bind(now)
                .execute(&mut *tx)
                .await?;
                new_authorization_id.to_owned()
            }
        };
        sqlx::query(
            "INSERT INTO oauth_codes (code_hash, authorization_id, account_id, client_id, redirect_uri, code_challenge, scope, created_at, expires_at, used_at, grant_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, NULL)",
        )
        .bind(&code.code_hash)
        .bind(&id)
        .bind(&code.account_id)
        .bind(&code.client_id)
        .bind(&code.redirect_uri)
        .bind(&code.code_challenge)
        .bind(&code.scope)
        .bind(code.created_at)
        .bind(code.expires_at)
        .execute(&mut *tx)
        .await?;
        let e = ev(
            types::OAUTH_AUTHORIZED,
            &code.account_id,
            &id,
            format!("app {} asked for `{}`", code.client_id, code.scope),
        );
        crate::audit::append(&mut tx, &[e]).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Redeems an authorization code (class A) in one transaction. A code already redeemed is a
    /// replay: the family its first redemption started is revoked and `Replayed` returned.
    /// Otherwise `check` decides on the code and its account; on `Ok` the code is consumed
    /// (`used_at IS NULL` → exactly one winner) and the grant and tokens are inserted.
    pub async fn redeem_code<R>(
        &self,
        code_hash: &str,
        now: i64,
        check: impl FnOnce(&OAuthCodeRow, &AccountRow) -> std::result::Result<IssuedTokens, R>,
        ev: OAuthAudit<'_>,
    ) -> Result<Redeemed<R>> {
        let mut tx = self.begin_write().await?;
        let q = format!("SELECT {CODE_COLS} FROM oauth_codes WHERE code_hash = $1");
        let Some(code) = sqlx::query_as::<_, OAuthCodeRow>(&q)
            .bind(code_hash)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(Redeemed::Unknown);
        };
        if code.used_at.is_some() {
            if let Some(grant_id) = &code.grant_id {
                revoke_family(&mut tx, grant_id, "authorization code replayed", now).await?;
            }
            let e = ev(
                types::OAUTH_CODE_REPLAYED,
                &code.account_id,
                code.grant_id.as_deref().unwrap_or(""),
                format!(
                    "app {}: authorization code redeemed twice; every token issued from it revoked",
                    code.client_id
                ),
            );
            crate::audit::append(&mut tx, &[e]).await?;
            tx.commit().await?;
            return Ok(Redeemed::Replayed);
        }
        let Some(acct) = account_in(&mut tx, &code.account_id).await? else {
            return Ok(Redeemed::Unknown);
        };
        let issued = match check(&code, &acct) {
            Ok(i) => i,
            Err(r) => return Ok(Redeemed::Refused(r)),
        };
        let Some(grant) = &issued.grant else {
            return Ok(Redeemed::Unknown);
        };
        let n = sqlx::query(
            "UPDATE oauth_codes SET used_at = $1, grant_id = $2 WHERE code_hash = $3 AND used_at IS NULL",
        )
        .bind(now)
        .bind(&grant.id)
        .bind(code_hash)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n != 1 {
            return Ok(Redeemed::Unknown);
        }
        sqlx::query(&format!(
            "INSERT INTO oauth_grants ({GRANT_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, NULL)"
        ))
        .bind(&grant.id)
        .bind(&grant.authorization_id)
        .bind(&grant.account_id)
        .bind(&grant.client_id)
        .bind(&grant.scope)
        .bind(grant.created_at)
        .bind(grant.refresh_expires_at)
        .execute(&mut *tx)
        .await?;
        let access = insert_token(&mut tx, &issued.access).await?;
        let refresh = insert_token(&mut tx, &issued.refresh).await?;
        let e = ev(
            types::OAUTH_CODE_REDEEMED,
            &grant.account_id,
            &grant.id,
            format!("app {}, scope `{}`", grant.client_id, grant.scope),
        );
        crate::audit::append(&mut tx, &[e]).await?;
        tx.commit().await?;
        // before the tokens are answered (ADR 0022)
        self.tokens.insert([
            (issued.access.token_hash.as_str(), access),
            (issued.refresh.token_hash.as_str(), refresh),
        ])?;
        Ok(Redeemed::Issued)
    }

    /// Rotates a refresh token (class A) in one transaction. A token already rotated is reuse:
    /// its whole family is revoked and `Reused` returned (RFC 9700 §4.14.2). Otherwise `check`
    /// decides on the token, its grant and account; on `Ok` the token is consumed (exactly one
    /// winner) and its successors inserted. Runs on the group-committing refresh writer
    /// (`refresh.rs`, ADR 0015): the answer comes once the commit is on disk, and a caller that
    /// stops waiting does not stop the rotation. `check` may run more than once (when another
    /// rotation of its batch failed, the batch runs again); only the last run's tokens count.
    pub async fn rotate_refresh<R: Send + 'static>(
        &self,
        token_hash: &str,
        now: i64,
        check: impl Fn(&OAuthTokenRow, &OAuthGrantRow, &AccountRow) -> std::result::Result<IssuedTokens, R>
            + Send
            + 'static,
        ev: impl Fn(&'static str, &str, &str, String) -> AuditEvent + Send + Sync + 'static,
    ) -> Result<Rotated<R>> {
        self.hot_open()?;
        let queue = self.refresh.get_or_init(|| {
            crate::refresh::spawn(
                self.write.clone(),
                self.turn.clone(),
                self.path.clone(),
                self.tokens.clone(),
            )
        });
        let (reply, answer) = tokio::sync::oneshot::channel();
        let work = crate::refresh::Work {
            token_hash: token_hash.to_owned(),
            now,
            check: Box::new(move |t, g, a| {
                check(t, g, a).map_err(|r| Box::new(r) as Box<dyn std::any::Any + Send>)
            }),
            events: Box::new(ev),
        };
        queue
            .send((work, reply))
            .map_err(|_| StoreError::Stopped("the refresh writer has stopped".into()))?;
        let out = answer
            .await
            .map_err(|_| StoreError::Stopped("the refresh writer dropped a rotation".into()))??;
        Ok(match out {
            Rotated::Unknown => Rotated::Unknown,
            Rotated::Inactive => Rotated::Inactive,
            Rotated::Reused => Rotated::Reused,
            Rotated::Issued(i) => Rotated::Issued(i),
            Rotated::Refused(r) => match r.downcast::<R>() {
                Ok(r) => Rotated::Refused(*r),
                Err(_) => return Err(StoreError::Internal("a refusal of another type".into())),
            },
        })
    }

    /// A token of either kind by digest, with its grant and account (verification and
    /// introspection).
    pub async fn oauth_token_by_hash(
        &self,
        token_hash: &str,
    ) -> Result<Option<(OAuthTokenRow, OAuthGrantRow, AccountRow)>> {
        self.hot_open()?;
        crate::hot::oauth_token_by_hash(&self.path, &self.tokens, token_hash)
    }

    /// RFC 7009 revocation by a client (class A): only a token issued to `client_id` is touched;
    /// a refresh token takes its whole family with it.
    pub async fn revoke_token_of_client(
        &self,
        token_hash: &str,
        client_id: &str,
        now: i64,
        ev: OAuthAudit<'_>,
    ) -> Result<TokenRevocation> {
        let rowids = self.tokens.candidates(token_hash)?;
        let mut tx = self.begin_write().await?;
        let q =
            format!("SELECT {TOKEN_COLS} FROM oauth_tokens WHERE rowid = $1 AND token_hash = $2");
        let mut found = None;
        for rowid in rowids {
            if let Some(t) = sqlx::query_as::<_, OAuthTokenRow>(&q)
                .bind(rowid)
                .bind(token_hash)
                .fetch_optional(&mut *tx)
                .await?
            {
                found = Some((rowid, t));
                break;
            }
        }
        let Some((rowid, tok)) = found else {
            return Ok(TokenRevocation::NoEffect);
        };
        if tok.client_id != client_id {
            return Ok(TokenRevocation::NoEffect);
        }
        let out = if tok.kind == "refresh" {
            revoke_family(
                &mut tx,
                &tok.grant_id,
                "refresh token revoked by the client",
                now,
            )
            .await?;
            TokenRevocation::Family
        } else {
            sqlx::query(
                "UPDATE oauth_tokens SET revoked_at = $1 WHERE seq = $2 AND revoked_at IS NULL",
            )
            .bind(now)
            .bind(rowid)
            .execute(&mut *tx)
            .await?;
            invalidate(&mut tx, "oauth_token", &tok.id, now).await?;
            TokenRevocation::AccessToken
        };
        let what = match out {
            TokenRevocation::Family => "refresh token and its whole grant",
            _ => "access token",
        };
        let e = ev(
            types::OAUTH_TOKEN_REVOKED,
            &tok.account_id,
            &tok.id,
            format!("app {client_id} revoked its {what}"),
        );
        crate::audit::append(&mut tx, &[e]).await?;
        tx.commit().await?;
        Ok(out)
    }

    /// The apps an account has authorized (not revoked), most recent first.
    pub async fn list_oauth_authorizations(
        &self,
        account_id: &str,
    ) -> Result<Vec<OAuthAuthorizationRow>> {
        Ok(sqlx::query_as::<_, OAuthAuthorizationRow>(
            "SELECT z.id, z.account_id, z.client_id, a.name AS app_name, z.scope, z.created_at, z.updated_at
             FROM oauth_authorizations z JOIN oauth_apps a ON a.client_id = z.client_id
             WHERE z.account_id = $1 AND z.revoked_at IS NULL
             ORDER BY z.updated_at DESC, z.id DESC",
        )
        .bind(account_id)
        .fetch_all(&self.read)
        .await?)
    }

    /// One live authorization of the account.
    pub async fn get_oauth_authorization(
        &self,
        account_id: &str,
        id: &str,
    ) -> Result<Option<OAuthAuthorizationRow>> {
        Ok(sqlx::query_as::<_, OAuthAuthorizationRow>(
            "SELECT z.id, z.account_id, z.client_id, a.name AS app_name, z.scope, z.created_at, z.updated_at
             FROM oauth_authorizations z JOIN oauth_apps a ON a.client_id = z.client_id
             WHERE z.account_id = $1 AND z.id = $2 AND z.revoked_at IS NULL",
        )
        .bind(account_id)
        .bind(id)
        .fetch_optional(&self.read)
        .await?)
    }

    /// Revokes a user's authorization of an app (class A): every grant under it, their
    /// tokens, and any code not yet redeemed. `false` if there was no live one.
    pub async fn revoke_oauth_authorization(
        &self,
        account_id: &str,
        id: &str,
        now: i64,
        ev: OAuthAudit<'_>,
    ) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query(
            "UPDATE oauth_authorizations SET revoked_at = $1 WHERE id = $2 AND account_id = $3 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(id)
        .bind(account_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n != 1 {
            return Ok(false);
        }
        let grants: Vec<(String,)> = sqlx::query_as(
            "SELECT id FROM oauth_grants WHERE authorization_id = $1 AND revoked_at IS NULL",
        )
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
        for (g,) in &grants {
            revoke_family(&mut tx, g, "authorization revoked by the user", now).await?;
        }
        sqlx::query("DELETE FROM oauth_codes WHERE authorization_id = $1 AND used_at IS NULL")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        invalidate(&mut tx, "oauth_authorization", id, now).await?;
        let e = ev(
            types::OAUTH_AUTHORIZATION_REVOKED,
            account_id,
            id,
            format!("{} grant(s) and their tokens revoked", grants.len()),
        );
        crate::audit::append(&mut tx, &[e]).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Deletes, in one transaction, what no request can use any more and what no refusal needs,
    /// at most `batch` rows of each kind: access tokens that expired before `before`; refresh
    /// tokens, rotated or not, issued more than `refresh_lifetime` before it (they ended with
    /// their grant by then); grants whose refresh lifetime ended before it. A rotated refresh
    /// token is issued after its grant began, so it stays at least as long as its family can
    /// still be refreshed, which is as long as replay detection needs it. The caller passes a
    /// `before` some time in the past, so that a recently expired token is still there to be
    /// refused as expired.
    ///
    /// Tokens are found by walking the table in issue order (`seq`) from where the last walk of
    /// their kind stopped, at most `4 × batch` rows a walk, up to the first token of the kind
    /// that has not ended (ADR 0019, second addendum). An access token ends two hours after it
    /// was issued and a refresh token is done a refresh lifetime after, so the first live one
    /// is where the ended ones stop. A token that breaks that order (the clock stepped back
    /// while it was issued) holds the walk until it ends: the purge may be late, never early.
    /// Grants are found through `oauth_grants_refresh_expiry` (migration 0012).
    pub async fn purge_ended_oauth(
        &self,
        before: i64,
        refresh_lifetime: i64,
        batch: i64,
    ) -> Result<OAuthPurged> {
        let batch_n = u64::try_from(batch.max(1)).unwrap_or(1);
        let scan_limit = batch_n.saturating_mul(4);
        let (from_access, from_refresh) = {
            let c = self.purge_cursors.lock().unwrap_or_else(|p| p.into_inner());
            (c.access, c.refresh)
        };
        let mut tx = self.begin_write().await?;
        let (to_access, more_access) =
            walk(&mut tx, from_access, "access", batch_n, scan_limit, |r| {
                r.expires_at < before
            })
            .await?;
        let (to_refresh, more_refresh) =
            walk(&mut tx, from_refresh, "refresh", batch_n, scan_limit, |r| {
                r.created_at < before.saturating_sub(refresh_lifetime) && r.expires_at < before
            })
            .await?;
        // the tokens' digests and rowids come back, for the token index (ADR 0022)
        let mut gone: Vec<(String, i64)> = Vec::new();
        let mut delete = async |from: i64, to: i64, kind: &str| -> Result<u64> {
            if to <= from {
                return Ok(0);
            }
            let rows = sqlx::query_as::<_, (String, i64)>(PURGE_TOKENS)
                .bind(from)
                .bind(to)
                .bind(kind)
                .fetch_all(&mut *tx)
                .await?;
            let n = rows.len() as u64;
            gone.extend(rows);
            Ok(n)
        };
        let access_tokens = delete(from_access, to_access, "access").await?;
        let refresh_tokens = delete(from_refresh, to_refresh, "refresh").await?;
        let grants = sqlx::query(PURGE_GRANTS)
            .bind(before)
            .bind(batch)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        {
            // a purge that ran meanwhile may have gone further
            let mut c = self.purge_cursors.lock().unwrap_or_else(|p| p.into_inner());
            c.access = c.access.max(to_access);
            c.refresh = c.refresh.max(to_refresh);
        }
        self.tokens
            .remove(gone.iter().map(|(h, r)| (h.as_str(), *r)))?;
        Ok(OAuthPurged {
            access_tokens,
            refresh_tokens,
            grants,
            more: more_access || more_refresh || grants == batch_n,
        })
    }

    // ---- sessions ----------------------------------------------------------------------

    /// Starts a session (and ends `replaces`, the session it supersedes, if any); expired
    /// sessions are swept in the same transaction.
    pub async fn create_session(&self, s: &SessionRow, replaces: Option<&str>) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM sessions WHERE expires_at <= $1 OR idle_expires_at <= $1")
            .bind(s.created_at)
            .execute(&mut *tx)
            .await?;
        if let Some(old) = replaces {
            sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
                .bind(old)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(&format!(
            "INSERT INTO sessions ({SESSION_COLS}) VALUES ($1, $2, $3, $4, $5, $6)"
        ))
        .bind(&s.id_hash)
        .bind(&s.account_id)
        .bind(s.created_at)
        .bind(s.last_seen_at)
        .bind(s.expires_at)
        .bind(s.idle_expires_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// A session by the digest of its id, with its account.
    pub async fn session_by_hash(&self, id_hash: &str) -> Result<Option<(SessionRow, AccountRow)>> {
        let q = format!("SELECT {SESSION_COLS} FROM sessions WHERE id_hash = $1");
        let Some(s) = sqlx::query_as::<_, SessionRow>(&q)
            .bind(id_hash)
            .fetch_optional(&self.read)
            .await?
        else {
            return Ok(None);
        };
        let Some(a) = self.account_by_id(&s.account_id).await? else {
            return Ok(None);
        };
        Ok(Some((s, a)))
    }

    /// Records activity on a session, pushing its idle expiry (never past its absolute end).
    pub async fn touch_session(&self, id_hash: &str, now: i64, idle_expires_at: i64) -> Result<()> {
        self.exec(
            sqlx::query(
                "UPDATE sessions SET last_seen_at = $1,
                    idle_expires_at = CASE WHEN $2 < expires_at THEN $2 ELSE expires_at END
             WHERE id_hash = $3",
            )
            .bind(now)
            .bind(idle_expires_at)
            .bind(id_hash),
        )
        .await?;
        Ok(())
    }

    /// Ends a session.
    pub async fn delete_session(&self, id_hash: &str) -> Result<()> {
        self.exec(sqlx::query("DELETE FROM sessions WHERE id_hash = $1").bind(id_hash))
            .await?;
        Ok(())
    }
}

async fn account_in(
    tx: &mut sqlx::SqliteConnection,
    account_id: &str,
) -> Result<Option<AccountRow>> {
    let q = format!("SELECT {ACCOUNT_COLS} FROM accounts WHERE id = $1");
    Ok(sqlx::query_as::<_, AccountRow>(&q)
        .bind(account_id)
        .fetch_optional(&mut *tx)
        .await?)
}

/// Revokes a grant, and so every token of its family (each check of a token reads its grant's
/// `revoked_at`; the tokens' rows are not written, migration 0014), and records the
/// invalidation.
async fn revoke_family(
    tx: &mut sqlx::SqliteConnection,
    grant_id: &str,
    reason: &str,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "UPDATE oauth_grants SET revoked_at = $1, revoked_reason = $2 WHERE id = $3 AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(reason)
    .bind(grant_id)
    .execute(&mut *tx)
    .await?;
    invalidate(tx, "oauth_grant", grant_id, now).await
}

/// Inserts a token; returns its rowid.
async fn insert_token(tx: &mut sqlx::SqliteConnection, t: &OAuthTokenRow) -> Result<i64> {
    let r = sqlx::query(&format!(
        "INSERT INTO oauth_tokens ({TOKEN_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
    ))
    .bind(&t.id)
    .bind(&t.token_hash)
    .bind(&t.kind)
    .bind(&t.grant_id)
    .bind(&t.account_id)
    .bind(&t.client_id)
    .bind(&t.scope)
    .bind(t.created_at)
    .bind(t.expires_at)
    .bind(t.revoked_at)
    .bind(t.used_at)
    .bind(&t.replaced_by)
    .execute(&mut *tx)
    .await;
    match r {
        Ok(done) => Ok(done.last_insert_rowid()),
        Err(e) if unique_violation(&e) => Err(StoreError::Conflict("token")),
        Err(e) => Err(e.into()),
    }
}
