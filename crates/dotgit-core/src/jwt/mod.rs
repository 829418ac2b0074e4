//! Customer-signed JWT bearer tokens (SPEC §1, §4 "JWT", §6 "JWT key"): a pure, I/O-free
//! RS256 verifier and the RSA public keys it checks against.
//!
//! What must hold: only the compact JWS serialization (three non-empty unpadded base64url segments,
//! at most [`MAX_TOKEN_LEN`] bytes, checked before any decoding); header and claim set are UTF-8
//! JSON objects without duplicate member names; `alg` is exactly `RS256` (every `none`, HMAC, PSS
//! and EC spelling refused, so no HS/RS key confusion); `kid` is required; `crit`, `cty`, `b64`,
//! `zip` and `enc` are refused; `typ`, when present, is `JWT` or `application/jwt` (any case);
//! `jku`, `x5u`, `jwk`, `x5c` are ignored — the key is only ever the one the caller registered. The
//! signature (RSASSA-PKCS1-v1_5 with SHA-256, via aws-lc-rs) is checked before any claim is
//! trusted; then `sub`, `iss`, `aud` (string or one-element array), integer `exp` and `iat`,
//! optional `nbf`, the leeway, the key's maximum lifetime, the `scope` ⊆ allowed scopes rule, `jti`
//! for single-use keys, and the `ips` / `projects` custom claims. A claim we read must have its
//! documented JSON type (`null` is a wrong type, not an absence); NumericDates must be integers.
//! Unknown claims are ignored. Every refusal is a [`JwtError`] whose [`JwtError::reason`] is for
//! the audit log only; nothing here echoes token text.
//!
//! Follows: RFC 7515 §3.1 and §7.1 (compact serialization), §4.1.1 (`alg`), §4.1.11 (`crit`),
//! §5.2 (validation); RFC 7518 §3.3 (RS256); RFC 7519 §4.1 (registered claims), §5.1 (`typ`),
//! §7.2 (validation); RFC 8017 §8.2.2 (RSASSA-PKCS1-v1_5 verification); RFC 8725 §3.1–§3.2,
//! §3.8–§3.11 (JWT best current practice); RFC 4648 §5 (base64url).

mod json;
mod key;

pub use key::{KeyError, RsaPublicKey, MAX_MODULUS_BITS, MAX_PEM_LEN, MIN_MODULUS_BITS};

use crate::net::Cidr;
use crate::scope::ScopeSet;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use json::{Obj, Val};
use std::fmt;

/// Longest token looked at; anything longer is refused before any decoding.
pub const MAX_TOKEN_LEN: usize = crate::credential::MAX_CREDENTIAL_LEN;
/// Clock skew tolerated on `exp`, `nbf` and `iat` (SPEC §4).
pub const LEEWAY_SECONDS: i64 = 60;
/// Smallest `max_lifetime_seconds` a key may be registered with (15 minutes).
pub const MIN_MAX_LIFETIME_SECONDS: i64 = 900;
/// Largest `max_lifetime_seconds` a key may be registered with (24 hours); [`verify`] never
/// allows more, whatever the policy says.
pub const MAX_MAX_LIFETIME_SECONDS: i64 = 86_400;
/// `max_lifetime_seconds` when the create request gives none (1 hour).
pub const DEFAULT_MAX_LIFETIME_SECONDS: i64 = 3_600;
/// Longest `kid`.
pub const MAX_KID_LEN: usize = 128;
/// Longest `sub`.
pub const MAX_SUB_LEN: usize = 256;
/// Longest `jti`, in characters.
pub const MAX_JTI_LEN: usize = 256;
/// Most entries in the `ips` or `projects` claim.
pub const MAX_CLAIM_LIST_LEN: usize = 64;

/// Why a token was refused. The HTTP answer is always the same 401 `invalid_token`; the variant
/// (through [`JwtError::reason`]) goes to the audit log only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum JwtError {
    /// Longer than [`MAX_TOKEN_LEN`].
    #[error("token too long")]
    TooLong,
    /// Not three non-empty dot-separated segments.
    #[error("not a compact JWS")]
    NotCompactJws,
    /// Five segments: a JWE, which is not accepted.
    #[error("JWE is not accepted")]
    Jwe,
    /// A segment is not unpadded base64url.
    #[error("segment is not unpadded base64url")]
    BadBase64,
    /// Header or payload is not UTF-8.
    #[error("header or payload is not UTF-8")]
    NotUtf8,
    /// The header is not a JSON object.
    #[error("header is not a JSON object")]
    HeaderNotObject,
    /// The payload is not a JSON object.
    #[error("payload is not a JSON object")]
    PayloadNotObject,
    /// Header or payload names a JSON member twice.
    #[error("duplicate JSON member name")]
    DuplicateMember,
    /// No `alg` header.
    #[error("alg missing")]
    MissingAlg,
    /// `alg` is not exactly `RS256`.
    #[error("alg is not RS256")]
    UnsupportedAlg,
    /// No `kid` header.
    #[error("kid missing")]
    MissingKid,
    /// `kid` is not a string of 1..=128 characters.
    #[error("kid invalid")]
    InvalidKid,
    /// A `crit` header: no extension is understood.
    #[error("crit header not supported")]
    CritNotSupported,
    /// `typ` present and not `JWT`.
    #[error("typ is not JWT")]
    BadTyp,
    /// `cty`, `b64`, `zip` or `enc` header present.
    #[error("unsupported header parameter")]
    UnsupportedHeader,
    /// No `sub` claim.
    #[error("sub missing")]
    MissingSubject,
    /// `sub` is not a string of 1..=256 bytes.
    #[error("sub invalid")]
    InvalidSubject,
    /// The RS256 signature does not verify under the registered key.
    #[error("bad signature")]
    BadSignature,
    /// `sub` is not the key owner's account id.
    #[error("sub is not the key's account")]
    SubjectMismatch,
    /// No `iss` claim.
    #[error("iss missing")]
    MissingIssuer,
    /// `iss` is not the key's registered issuer.
    #[error("iss mismatch")]
    IssuerMismatch,
    /// No `aud` claim.
    #[error("aud missing")]
    MissingAudience,
    /// `aud` is not this server's audience (as a string or a one-element array).
    #[error("aud mismatch")]
    AudienceMismatch,
    /// No `exp` claim.
    #[error("exp missing")]
    MissingExp,
    /// `exp` is not an integer.
    #[error("exp is not an integer")]
    InvalidExp,
    /// No `iat` claim.
    #[error("iat missing")]
    MissingIat,
    /// `iat` is not an integer.
    #[error("iat is not an integer")]
    InvalidIat,
    /// `nbf` present and not an integer.
    #[error("nbf is not an integer")]
    InvalidNbf,
    /// `exp` is not after `iat`.
    #[error("exp not after iat")]
    ExpNotAfterIat,
    /// `exp - iat` is over the key's maximum lifetime.
    #[error("lifetime over the key's maximum")]
    LifetimeTooLong,
    /// `now > exp + leeway`.
    #[error("expired")]
    Expired,
    /// `now + leeway < nbf`.
    #[error("not yet valid")]
    NotYetValid,
    /// `iat > now + leeway`.
    #[error("issued in the future")]
    IssuedInFuture,
    /// `scope` is not a string of valid scopes.
    #[error("scope claim invalid")]
    InvalidScope,
    /// `scope` is not a subset of the key's allowed scopes.
    #[error("scope not allowed for this key")]
    ScopeNotAllowed,
    /// Single-use key and no `jti`.
    #[error("jti missing")]
    MissingJti,
    /// `jti` is not a string of 1..=256 characters.
    #[error("jti invalid")]
    InvalidJti,
    /// `ips` is not an array of 1..=64 CIDR strings.
    #[error("ips claim invalid")]
    InvalidIps,
    /// `projects` is not an array of 1..=64 project slugs.
    #[error("projects claim invalid")]
    InvalidProjects,
}

impl JwtError {
    /// A stable snake_case label for the audit log's `reason`.
    pub fn reason(&self) -> &'static str {
        match self {
            JwtError::TooLong => "jwt_too_long",
            JwtError::NotCompactJws => "jwt_not_compact_jws",
            JwtError::Jwe => "jwt_jwe_not_accepted",
            JwtError::BadBase64 => "jwt_bad_base64url",
            JwtError::NotUtf8 => "jwt_not_utf8",
            JwtError::HeaderNotObject => "jwt_header_not_json_object",
            JwtError::PayloadNotObject => "jwt_payload_not_json_object",
            JwtError::DuplicateMember => "jwt_duplicate_json_member",
            JwtError::MissingAlg => "jwt_alg_missing",
            JwtError::UnsupportedAlg => "jwt_alg_not_rs256",
            JwtError::MissingKid => "jwt_kid_missing",
            JwtError::InvalidKid => "jwt_kid_invalid",
            JwtError::CritNotSupported => "jwt_crit_not_supported",
            JwtError::BadTyp => "jwt_typ_not_jwt",
            JwtError::UnsupportedHeader => "jwt_unsupported_header_parameter",
            JwtError::MissingSubject => "jwt_sub_missing",
            JwtError::InvalidSubject => "jwt_sub_invalid",
            JwtError::BadSignature => "jwt_bad_signature",
            JwtError::SubjectMismatch => "jwt_sub_mismatch",
            JwtError::MissingIssuer => "jwt_iss_missing",
            JwtError::IssuerMismatch => "jwt_iss_mismatch",
            JwtError::MissingAudience => "jwt_aud_missing",
            JwtError::AudienceMismatch => "jwt_aud_mismatch",
            JwtError::MissingExp => "jwt_exp_missing",
            JwtError::InvalidExp => "jwt_exp_invalid",
            JwtError::MissingIat => "jwt_iat_missing",
            JwtError::InvalidIat => "jwt_iat_invalid",
            JwtError::InvalidNbf => "jwt_nbf_invalid",
            JwtError::ExpNotAfterIat => "jwt_exp_not_after_iat",
            JwtError::LifetimeTooLong => "jwt_lifetime_too_long",
            JwtError::Expired => "jwt_expired",
            JwtError::NotYetValid => "jwt_not_yet_valid",
            JwtError::IssuedInFuture => "jwt_iat_in_future",
            JwtError::InvalidScope => "jwt_scope_invalid",
            JwtError::ScopeNotAllowed => "jwt_scope_not_allowed",
            JwtError::MissingJti => "jwt_jti_missing",
            JwtError::InvalidJti => "jwt_jti_invalid",
            JwtError::InvalidIps => "jwt_ips_invalid",
            JwtError::InvalidProjects => "jwt_projects_invalid",
        }
    }
}

/// A token whose shape and header passed, not yet verified: only [`Unverified::kid`] and
/// [`Unverified::sub`] may be used, to look the key up among the keys of the account named by
/// `sub`. `Debug` shows only those two (the rest is the bearer credential).
#[derive(Clone)]
pub struct Unverified {
    kid: String,
    sub: String,
    /// The members of the claim set that [`verify`] reads ([`READ_CLAIMS`]), taken when it was
    /// decoded (and found strict): the claim set is parsed once.
    claims: Obj<'static>,
    signing_input: String,
    signature: Vec<u8>,
}

impl fmt::Debug for Unverified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Unverified")
            .field("kid", &self.kid)
            .field("sub", &self.sub)
            .finish_non_exhaustive()
    }
}

impl Unverified {
    /// The header `kid` (1..=128 characters), unverified.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The `sub` claim (1..=256 bytes), unverified.
    pub fn sub(&self) -> &str {
        &self.sub
    }

    /// The `jti` claim if it is a string, unverified.
    pub fn jti(&self) -> Option<String> {
        self.claims
            .get("jti")
            .and_then(Val::as_str)
            .map(str::to_owned)
    }
}

/// The claims [`verify`] reads besides `sub`. Every other member of a claim set is ignored, and
/// not kept.
const READ_CLAIMS: [&str; 9] = [
    "iss", "aud", "exp", "iat", "nbf", "scope", "jti", "ips", "projects",
];

/// What the server knows about the registered key named by the token's `kid`, found among the
/// keys of the account named by `sub`.
#[derive(Debug, Clone, Copy)]
pub struct KeyPolicy<'a> {
    /// The registered public key.
    pub key: &'a RsaPublicKey,
    /// The owning account's id; `sub` must equal it.
    pub account_id: &'a str,
    /// The key's registered issuer; `iss` must equal it.
    pub issuer: &'a str,
    /// The scopes a token signed by this key may carry.
    pub allowed_scopes: &'a ScopeSet,
    /// Longest accepted `exp - iat` (900..=86400; capped at 86400 here whatever it says).
    pub max_lifetime_seconds: i64,
    /// Whether `jti` is required (the server then refuses a replayed `jti`).
    pub single_use: bool,
}

/// The verifying server's side.
#[derive(Debug, Clone, Copy)]
pub struct VerifyContext<'a> {
    /// This server's audience; `aud` must equal it exactly.
    pub audience: &'a str,
    /// The current time, Unix seconds.
    pub now: i64,
    /// Tolerated clock skew in seconds ([`LEEWAY_SECONDS`]); negative values count as 0.
    pub leeway: i64,
}

/// A verified token: who, until when, and what it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedJwt {
    /// The account id (equal to the key's `account_id`).
    pub sub: String,
    /// The key id from the header.
    pub kid: String,
    /// The token id, if any (always present for single-use keys).
    pub jti: Option<String>,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Expires at, Unix seconds (the token is refused after `exp + leeway`).
    pub exp: i64,
    /// The granted scopes: the `scope` claim, a subset of the key's allowed scopes.
    pub scopes: ScopeSet,
    /// Allowed source networks, if the token narrows them.
    pub ips: Option<Vec<Cidr>>,
    /// Allowed project slugs, if the token narrows them.
    pub projects: Option<Vec<String>>,
}

fn base64url(segment: &str) -> Result<Vec<u8>, JwtError> {
    URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| JwtError::BadBase64)
}

/// Checks the token's shape and header and reads `kid` and `sub`, without any key. Shape and
/// size are checked first, before any base64 or JSON work.
pub fn decode_unverified(token: &str) -> Result<Unverified, JwtError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(JwtError::TooLong);
    }
    let mut segments = token.split('.');
    let (h, p, s) = match (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    ) {
        (Some(h), Some(p), Some(s), None) => (h, p, s),
        (Some(_), Some(_), Some(_), Some(_)) if segments.clone().count() == 1 => {
            return Err(JwtError::Jwe)
        }
        _ => return Err(JwtError::NotCompactJws),
    };
    if [h, p, s].iter().any(|seg| seg.is_empty()) {
        return Err(JwtError::NotCompactJws);
    }
    // every segment is decoded before any JSON is read, and the decoder refuses any byte
    // outside the base64url alphabet, padding and non-canonical trailing bits: a separate pass
    // over the bytes first would only repeat it
    let header_bytes = base64url(h)?;
    let payload = base64url(p)?;
    let signature = base64url(s)?;

    let header = json::parse(&header_bytes).map_err(|e| json_error(e, true))?;
    let kid = check_header(&header)?;

    let claims = json::parse(&payload).map_err(|e| json_error(e, false))?;
    let sub = match claims.get("sub") {
        None => return Err(JwtError::MissingSubject),
        Some(Val::Str(s)) if !s.is_empty() && s.len() <= MAX_SUB_LEN => s.to_string(),
        Some(_) => return Err(JwtError::InvalidSubject),
    };
    // one parse: what `verify` reads is kept, owned, for after the signature
    let claims = claims.into_owned_subset(&READ_CLAIMS);

    Ok(Unverified {
        kid,
        sub,
        claims,
        signing_input: token[..h.len() + 1 + p.len()].to_owned(),
        signature,
    })
}

fn json_error(e: json::JsonError, header: bool) -> JwtError {
    match e {
        json::JsonError::NotUtf8 => JwtError::NotUtf8,
        json::JsonError::DuplicateMember => JwtError::DuplicateMember,
        json::JsonError::NotObject if header => JwtError::HeaderNotObject,
        json::JsonError::NotObject => JwtError::PayloadNotObject,
    }
}

/// The JOSE header rules; returns the `kid`.
fn check_header(header: &Obj<'_>) -> Result<String, JwtError> {
    match header.get("alg") {
        None => return Err(JwtError::MissingAlg),
        Some(Val::Str(a)) if a == "RS256" => {}
        Some(_) => return Err(JwtError::UnsupportedAlg),
    }
    if header.contains_key("crit") {
        return Err(JwtError::CritNotSupported);
    }
    // `cty` would announce a nested JWT or other content; `b64` (RFC 7797) changes the signing
    // input; `zip` and `enc` belong to JWE. None is supported.
    if ["cty", "b64", "zip", "enc"]
        .iter()
        .any(|k| header.contains_key(k))
    {
        return Err(JwtError::UnsupportedHeader);
    }
    match header.get("typ") {
        None => {}
        Some(Val::Str(t))
            if t.eq_ignore_ascii_case("JWT") || t.eq_ignore_ascii_case("application/jwt") => {}
        Some(_) => return Err(JwtError::BadTyp),
    }
    // jku, x5u, jwk, x5c, x5t, x5t#S256: deliberately never read.
    match header.get("kid") {
        None => Err(JwtError::MissingKid),
        Some(Val::Str(k)) if !k.is_empty() && k.chars().count() <= MAX_KID_LEN => Ok(k.to_string()),
        Some(_) => Err(JwtError::InvalidKid),
    }
}

/// RS256 (RSASSA-PKCS1-v1_5 with SHA-256, RFC 7518 §3.3 / RFC 8017 §8.2.2) over `message`.
pub fn verify_rs256_signature(
    key: &RsaPublicKey,
    message: &[u8],
    signature: &[u8],
) -> Result<(), JwtError> {
    if key.verify_rs256(message, signature) {
        Ok(())
    } else {
        Err(JwtError::BadSignature)
    }
}

/// Reads an integer NumericDate. Non-integers (`1.5`, `1e9`, strings) are refused rather than
/// rounded: RFC 7519 allows fractions, but no issuer we support needs them.
fn int_claim(claims: &Obj<'_>, name: &str, invalid: JwtError) -> Result<Option<i64>, JwtError> {
    match claims.get(name) {
        None => Ok(None),
        Some(v) => v.as_i64().map(Some).ok_or(invalid),
    }
}

fn string_list<'c>(
    claims: &'c Obj<'_>,
    name: &str,
    invalid: JwtError,
) -> Result<Option<Vec<&'c str>>, JwtError> {
    let Some(v) = claims.get(name) else {
        return Ok(None);
    };
    let Val::Array(items) = v else {
        return Err(invalid);
    };
    if items.is_empty() || items.len() > MAX_CLAIM_LIST_LEN {
        return Err(invalid);
    }
    items
        .iter()
        .map(|i| i.as_str().ok_or(invalid))
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// Verifies the signature with the registered key, then every claim rule. The caller must have
/// found `key` by (`u.sub()`, `u.kid()`) among the keys of that account, and must itself refuse a
/// replayed `jti` when `key.single_use`.
pub fn verify(
    u: &Unverified,
    key: &KeyPolicy<'_>,
    ctx: &VerifyContext<'_>,
) -> Result<VerifiedJwt, JwtError> {
    verify_rs256_signature(key.key, u.signing_input.as_bytes(), &u.signature)?;
    let c = &u.claims;

    if u.sub != key.account_id {
        return Err(JwtError::SubjectMismatch);
    }
    match c.get("iss") {
        None => return Err(JwtError::MissingIssuer),
        Some(Val::Str(i)) if i == key.issuer => {}
        Some(_) => return Err(JwtError::IssuerMismatch),
    }
    let aud_ok = match c.get("aud") {
        None => return Err(JwtError::MissingAudience),
        Some(Val::Str(a)) => a == ctx.audience,
        Some(Val::Array(a)) => a.len() == 1 && a[0].as_str() == Some(ctx.audience),
        Some(_) => false,
    };
    if !aud_ok {
        return Err(JwtError::AudienceMismatch);
    }

    let exp = int_claim(c, "exp", JwtError::InvalidExp)?.ok_or(JwtError::MissingExp)?;
    let iat = int_claim(c, "iat", JwtError::InvalidIat)?.ok_or(JwtError::MissingIat)?;
    let nbf = int_claim(c, "nbf", JwtError::InvalidNbf)?;
    // i128: no overflow whatever the token says
    let (exp_w, iat_w, now) = (i128::from(exp), i128::from(iat), i128::from(ctx.now));
    let leeway = i128::from(ctx.leeway.max(0));
    let max_lifetime = i128::from(key.max_lifetime_seconds.min(MAX_MAX_LIFETIME_SECONDS));
    if exp_w <= iat_w {
        return Err(JwtError::ExpNotAfterIat);
    }
    if exp_w - iat_w > max_lifetime {
        return Err(JwtError::LifetimeTooLong);
    }
    if now > exp_w + leeway {
        return Err(JwtError::Expired);
    }
    if iat_w > now + leeway {
        return Err(JwtError::IssuedInFuture);
    }
    if let Some(nbf) = nbf {
        if now + leeway < i128::from(nbf) {
            return Err(JwtError::NotYetValid);
        }
    }

    let scopes = match c.get("scope") {
        None => ScopeSet::empty(),
        Some(Val::Str(s)) => {
            ScopeSet::parse_space_separated(s).map_err(|_| JwtError::InvalidScope)?
        }
        Some(_) => return Err(JwtError::InvalidScope),
    };
    if !scopes.is_subset_of(key.allowed_scopes) {
        return Err(JwtError::ScopeNotAllowed);
    }

    let jti = match c.get("jti") {
        None if key.single_use => return Err(JwtError::MissingJti),
        None => None,
        Some(Val::Str(j)) if !j.is_empty() && j.chars().count() <= MAX_JTI_LEN => {
            Some(j.to_string())
        }
        Some(_) => return Err(JwtError::InvalidJti),
    };

    let ips = string_list(c, "ips", JwtError::InvalidIps)?
        .map(|list| {
            list.into_iter()
                .map(|s| Cidr::parse(s).ok_or(JwtError::InvalidIps))
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    let projects = string_list(c, "projects", JwtError::InvalidProjects)?
        .map(|list| {
            list.into_iter()
                .map(|s| {
                    if crate::slug::is_valid(s) {
                        Ok(s.to_owned())
                    } else {
                        Err(JwtError::InvalidProjects)
                    }
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;

    Ok(VerifiedJwt {
        sub: u.sub.clone(),
        kid: u.kid.clone(),
        jti,
        iat,
        exp,
        scopes,
        ips,
        projects,
    })
}
