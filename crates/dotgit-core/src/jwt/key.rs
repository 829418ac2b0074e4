//! RSA public keys registered for customer-signed JWTs (SPEC §6 "JWT key"): parsing from PEM
//! (SPKI or PKCS#1) or a JWK, validation, and the canonical forms we store and show.
//!
//! What must hold: only RSA public keys are accepted — the modulus is 2048…8192 bits counted on
//! the actual value (leading zero octets do not count), the exponent odd, ≥ 3 and < 2^32. A
//! private key (any PEM labelled `… PRIVATE KEY`, any JWK carrying `d`, `p`, `q`, `dp`, `dq`,
//! `qi`, `oth` or `k`) is refused before anything of it is decoded, and no error message ever
//! contains key material. DER is read strictly (definite minimal lengths, minimal positive
//! INTEGERs, no trailing bytes).
//!
//! Follows: RFC 5280 §4.1.2.7 and RFC 3279 §2.3.1 (SubjectPublicKeyInfo, rsaEncryption with
//! NULL parameters), RFC 8017 Appendix A.1.1 (RSAPublicKey), RFC 7468 §2–§4 (PEM text encoding,
//! strict form: no explanatory text, no headers), RFC 7517 §4 and RFC 7518 §6.3.1 (RSA JWK),
//! RFC 7638 §3 (JWK thumbprint).

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::fmt;

/// Smallest accepted RSA modulus, in bits.
pub const MIN_MODULUS_BITS: usize = 2048;
/// Largest accepted RSA modulus, in bits (the limit of the signature check too).
pub const MAX_MODULUS_BITS: usize = 8192;
/// Longest PEM text looked at (an 8192-bit SPKI PEM is about 1.5 KiB).
pub const MAX_PEM_LEN: usize = 16 * 1024;
/// Longest base64url `n` or `e` member of a JWK looked at.
const MAX_JWK_COMPONENT_LEN: usize = 4096;
/// Largest accepted public exponent: 2^32 (even, so the largest that passes is 2^32 - 1).
const MAX_EXPONENT: u64 = 1 << 32;

/// JWK members that belong to a private or symmetric key (RFC 7518 §6.3.2, §6.4.1).
const PRIVATE_JWK_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// DER content of the rsaEncryption OID, 1.2.840.113549.1.1.1.
const RSA_ENCRYPTION_OID: [u8; 9] = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

const TAG_INTEGER: u8 = 0x02;
const TAG_BIT_STRING: u8 = 0x03;
const TAG_NULL: u8 = 0x05;
const TAG_OID: u8 = 0x06;
const TAG_SEQUENCE: u8 = 0x30;

/// Why a public key was refused. `Display` is one sentence naming the field (`public_key`), fit
/// for a 400 `invalid_key` answer; it never contains key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// A private key was pasted (PEM).
    #[error("public_key: this is a private key; paste the PUBLIC key instead (-----BEGIN PUBLIC KEY-----). Nothing of the private key was kept")]
    PrivateKeyPem,
    /// A JWK carries private (or symmetric) key members; the member name is given, never its value.
    #[error("public_key: a JWK must not contain private members ({0}); send only the public key (kty, n, e). Nothing of it was kept")]
    PrivateJwkMember(&'static str),
    /// A certificate was pasted instead of a public key.
    #[error("public_key: a certificate is not accepted; paste its PUBLIC key (-----BEGIN PUBLIC KEY-----)")]
    Certificate,
    /// A PEM block of another type.
    #[error("public_key: unsupported PEM type; expected -----BEGIN PUBLIC KEY----- or -----BEGIN RSA PUBLIC KEY-----")]
    UnsupportedPemLabel,
    /// The text is not one well-formed PEM block.
    #[error("public_key: not a well-formed PEM block (expected only -----BEGIN PUBLIC KEY-----, base64 lines, -----END PUBLIC KEY-----)")]
    MalformedPem,
    /// The input is longer than any RSA public key we accept.
    #[error("public_key: too long for an RSA public key")]
    TooLong,
    /// The DER inside the PEM is not a valid SubjectPublicKeyInfo / RSAPublicKey.
    #[error("public_key: not a valid DER-encoded RSA public key")]
    MalformedDer,
    /// A key of another algorithm (EC, Ed25519, RSASSA-PSS-restricted, `oct`, …).
    #[error(
        "public_key: only RSA keys are accepted (SPKI algorithm rsaEncryption, or JWK kty \"RSA\")"
    )]
    NotRsa,
    /// The value is neither a PEM string nor a JWK object.
    #[error("public_key: must be a PEM string or a JWK object")]
    NotPemOrJwk,
    /// A JWK member is missing or has a bad value.
    #[error("public_key: JWK member \"{member}\" {problem}")]
    InvalidJwkMember {
        /// The member name.
        member: &'static str,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The modulus is too small.
    #[error("public_key: RSA modulus must be at least 2048 bits (got {0})")]
    ModulusTooSmall(usize),
    /// The modulus is too large.
    #[error("public_key: RSA modulus must be at most 8192 bits (got {0})")]
    ModulusTooLarge(usize),
    /// The modulus is even, so it cannot be an RSA modulus.
    #[error("public_key: RSA modulus must be odd")]
    ModulusEven,
    /// The exponent is below 3 (e = 0, 1 or 2).
    #[error("public_key: RSA exponent must be at least 3")]
    ExponentTooSmall,
    /// The exponent is even.
    #[error("public_key: RSA exponent must be odd")]
    ExponentEven,
    /// The exponent is above 2^32.
    #[error("public_key: RSA exponent must be at most 2^32")]
    ExponentTooLarge,
}

/// A validated RSA public key: modulus `n` and exponent `e` as big-endian bytes without leading
/// zeros, plus the key parsed once for RS256 verification (so a verify does not rebuild it).
/// `Debug` shows only the size and the RFC 7638 thumbprint; equality compares `n` and `e`.
#[derive(Clone)]
pub struct RsaPublicKey {
    n: Vec<u8>,
    e: Vec<u8>,
    bits: usize,
    parsed: std::sync::Arc<aws_lc_rs::signature::ParsedPublicKey>,
}

impl PartialEq for RsaPublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.n == other.n && self.e == other.e
    }
}

impl Eq for RsaPublicKey {}

impl std::hash::Hash for RsaPublicKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.n.hash(state);
        self.e.hash(state);
    }
}

impl fmt::Debug for RsaPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RsaPublicKey")
            .field("bits", &self.bits)
            .field("thumbprint", &self.thumbprint())
            .finish()
    }
}

impl RsaPublicKey {
    /// Builds a key from big-endian modulus and exponent bytes (leading zero octets allowed and
    /// ignored) and applies every size rule.
    pub fn from_components(n: &[u8], e: &[u8]) -> Result<RsaPublicKey, KeyError> {
        let n = strip_leading_zeros(n);
        let e = strip_leading_zeros(e);
        let bits = bit_length(n);
        if bits < MIN_MODULUS_BITS {
            return Err(KeyError::ModulusTooSmall(bits));
        }
        if bits > MAX_MODULUS_BITS {
            return Err(KeyError::ModulusTooLarge(bits));
        }
        if n.last().is_some_and(|b| b & 1 == 0) {
            return Err(KeyError::ModulusEven);
        }
        if e.len() > 8 {
            return Err(KeyError::ExponentTooLarge);
        }
        let ev = e.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        if ev > MAX_EXPONENT {
            return Err(KeyError::ExponentTooLarge);
        }
        if ev < 3 {
            return Err(KeyError::ExponentTooSmall);
        }
        if ev & 1 == 0 {
            return Err(KeyError::ExponentEven);
        }
        let parsed = aws_lc_rs::signature::ParsedPublicKey::new(
            &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
            spki_der(n, e),
        )
        .map_err(|_| KeyError::MalformedDer)?;
        Ok(RsaPublicKey {
            n: n.to_vec(),
            e: e.to_vec(),
            bits,
            parsed: std::sync::Arc::new(parsed),
        })
    }

    /// Parses one PEM block: `PUBLIC KEY` (SPKI, rsaEncryption only) or `RSA PUBLIC KEY`
    /// (PKCS#1). Any text naming a `PRIVATE KEY` is refused before it is decoded.
    pub fn from_pem(pem: &str) -> Result<RsaPublicKey, KeyError> {
        if pem.contains("PRIVATE KEY") {
            return Err(KeyError::PrivateKeyPem);
        }
        if pem.len() > MAX_PEM_LEN {
            return Err(KeyError::TooLong);
        }
        let (label, der) = decode_pem(pem)?;
        match label {
            "PUBLIC KEY" => parse_spki(&der),
            "RSA PUBLIC KEY" => parse_pkcs1(&der),
            "CERTIFICATE" | "TRUSTED CERTIFICATE" | "X509 CERTIFICATE" => {
                Err(KeyError::Certificate)
            }
            _ => Err(KeyError::UnsupportedPemLabel),
        }
    }

    /// Parses an RSA public JWK: `kty` must be `"RSA"`; `n` and `e` unpadded base64url; no
    /// private member; `alg`, if present, `"RS256"`; `use`, if present, `"sig"`; `key_ops`, if
    /// present, only `"verify"`. Other members (`kid`, `x5c`, …) are ignored and never used.
    pub fn from_jwk(jwk: &Value) -> Result<RsaPublicKey, KeyError> {
        let obj = jwk.as_object().ok_or(KeyError::NotPemOrJwk)?;
        if let Some(m) = PRIVATE_JWK_MEMBERS.iter().find(|m| obj.contains_key(**m)) {
            return Err(KeyError::PrivateJwkMember(m));
        }
        match obj.get("kty") {
            None => return Err(jwk_err("kty", "is required")),
            Some(Value::String(s)) if s == "RSA" => {}
            Some(_) => return Err(KeyError::NotRsa),
        }
        check_optional_str(obj, "alg", "RS256", "must be \"RS256\" when present")?;
        check_optional_str(obj, "use", "sig", "must be \"sig\" when present")?;
        if let Some(ops) = obj.get("key_ops") {
            let ok = ops
                .as_array()
                .is_some_and(|a| !a.is_empty() && a.iter().all(|o| o.as_str() == Some("verify")));
            if !ok {
                return Err(jwk_err("key_ops", "must be [\"verify\"] when present"));
            }
        }
        let n = jwk_component(obj, "n")?;
        let e = jwk_component(obj, "e")?;
        RsaPublicKey::from_components(&n, &e)
    }

    /// Parses the `public_key` field of a create request: a PEM string, a JWK object, or a JWK
    /// serialized as a JSON string (duplicate members refused).
    pub fn from_pem_or_jwk(value: &Value) -> Result<RsaPublicKey, KeyError> {
        match value {
            Value::String(s) if s.trim_start().starts_with('{') => {
                if s.len() > MAX_PEM_LEN {
                    return Err(KeyError::TooLong);
                }
                let obj =
                    super::json::parse_object(s.as_bytes()).map_err(|_| KeyError::NotPemOrJwk)?;
                RsaPublicKey::from_jwk(&Value::Object(obj))
            }
            Value::String(s) => RsaPublicKey::from_pem(s),
            Value::Object(_) => RsaPublicKey::from_jwk(value),
            _ => Err(KeyError::NotPemOrJwk),
        }
    }

    /// Size of the modulus in bits.
    pub fn modulus_bits(&self) -> usize {
        self.bits
    }

    /// The modulus, big-endian, without leading zeros.
    pub fn modulus(&self) -> &[u8] {
        &self.n
    }

    /// The public exponent, big-endian, without leading zeros.
    pub fn exponent(&self) -> &[u8] {
        &self.e
    }

    /// The public JWK, as shown to the customer: `kty`, `kid`, `alg`, `use`, `n`, `e`.
    pub fn to_jwk(&self, kid: &str) -> Value {
        json!({
            "kty": "RSA",
            "kid": kid,
            "alg": "RS256",
            "use": "sig",
            "n": URL_SAFE_NO_PAD.encode(&self.n),
            "e": URL_SAFE_NO_PAD.encode(&self.e),
        })
    }

    /// RFC 7638 JWK SHA-256 thumbprint, base64url without padding.
    pub fn thumbprint(&self) -> String {
        // RFC 7638 §3.2: required members only, lexicographic order, no whitespace; the
        // base64url alphabet needs no JSON escaping.
        let canonical = format!(
            r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
            URL_SAFE_NO_PAD.encode(&self.e),
            URL_SAFE_NO_PAD.encode(&self.n)
        );
        URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
    }

    /// The DER SubjectPublicKeyInfo (rsaEncryption, NULL parameters).
    pub fn to_spki_der(&self) -> Vec<u8> {
        spki_der(&self.n, &self.e)
    }

    /// Verifies an RS256 signature with the key parsed at construction.
    pub(crate) fn verify_rs256(&self, message: &[u8], signature: &[u8]) -> bool {
        self.parsed.verify_sig(message, signature).is_ok()
    }

    /// The canonical stored form: an SPKI PEM (`-----BEGIN PUBLIC KEY-----`, 64-column lines,
    /// trailing newline), byte-identical to what OpenSSL writes.
    pub fn to_pem(&self) -> String {
        let b64 = STANDARD.encode(self.to_spki_der());
        let mut out = String::from("-----BEGIN PUBLIC KEY-----\n");
        let mut rest = b64.as_str();
        while !rest.is_empty() {
            let (line, tail) = rest.split_at(rest.len().min(64));
            out.push_str(line);
            out.push('\n');
            rest = tail;
        }
        out.push_str("-----END PUBLIC KEY-----\n");
        out
    }
}

fn jwk_err(member: &'static str, problem: &'static str) -> KeyError {
    KeyError::InvalidJwkMember { member, problem }
}

fn check_optional_str(
    obj: &Map<String, Value>,
    member: &'static str,
    want: &str,
    problem: &'static str,
) -> Result<(), KeyError> {
    match obj.get(member) {
        None => Ok(()),
        Some(Value::String(s)) if s == want => Ok(()),
        Some(_) => Err(jwk_err(member, problem)),
    }
}

fn jwk_component(obj: &Map<String, Value>, member: &'static str) -> Result<Vec<u8>, KeyError> {
    let s = match obj.get(member) {
        Some(Value::String(s)) => s,
        _ => return Err(jwk_err(member, "is required and must be a string")),
    };
    if s.is_empty() || s.len() > MAX_JWK_COMPONENT_LEN {
        return Err(jwk_err(member, "has an invalid length"));
    }
    // URL_SAFE_NO_PAD refuses '=', '+', '/', whitespace and non-canonical trailing bits.
    URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| jwk_err(member, "must be unpadded base64url"))
}

fn strip_leading_zeros(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|x| *x != 0).unwrap_or(b.len());
    &b[start..]
}

/// Bit length of a big-endian value without leading zero octets.
fn bit_length(b: &[u8]) -> usize {
    match b.first() {
        None => 0,
        Some(first) => b.len() * 8 - first.leading_zeros() as usize,
    }
}

/// Strict PEM: optional surrounding whitespace, one BEGIN line, base64 lines, the matching END
/// line; no headers, no text before or after.
fn decode_pem(pem: &str) -> Result<(&str, Vec<u8>), KeyError> {
    let text = pem.trim_start_matches('\u{feff}').trim();
    let mut lines = text.lines().map(str::trim);
    let begin = lines.next().ok_or(KeyError::MalformedPem)?;
    let label = begin
        .strip_prefix("-----BEGIN ")
        .and_then(|l| l.strip_suffix("-----"))
        .ok_or(KeyError::MalformedPem)?;
    let end_line = format!("-----END {label}-----");
    let mut body = String::new();
    let mut ended = false;
    for line in lines.by_ref() {
        if line == end_line {
            ended = true;
            break;
        }
        if line.contains(':') || line.starts_with("-----") {
            return Err(KeyError::MalformedPem);
        }
        body.push_str(line);
    }
    if !ended || lines.any(|l| !l.is_empty()) {
        return Err(KeyError::MalformedPem);
    }
    let der = STANDARD
        .decode(body.as_bytes())
        .map_err(|_| KeyError::MalformedPem)?;
    Ok((label, der))
}

/// SubjectPublicKeyInfo ::= SEQUENCE { algorithm AlgorithmIdentifier, subjectPublicKey BIT STRING }
fn parse_spki(der: &[u8]) -> Result<RsaPublicKey, KeyError> {
    let mut outer = Der::new(der);
    let mut spki = Der::new(outer.read(TAG_SEQUENCE)?);
    outer.finish()?;
    let mut alg = Der::new(spki.read(TAG_SEQUENCE)?);
    let oid = alg.read(TAG_OID)?;
    if oid != RSA_ENCRYPTION_OID {
        return Err(KeyError::NotRsa);
    }
    // RFC 3279 §2.3.1 says NULL; an absent parameter is tolerated.
    if !alg.is_empty() && !alg.read(TAG_NULL)?.is_empty() {
        return Err(KeyError::MalformedDer);
    }
    alg.finish()?;
    let bits = spki.read(TAG_BIT_STRING)?;
    spki.finish()?;
    match bits.split_first() {
        Some((0, rsa_key)) => parse_pkcs1(rsa_key),
        _ => Err(KeyError::MalformedDer),
    }
}

/// RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }
fn parse_pkcs1(der: &[u8]) -> Result<RsaPublicKey, KeyError> {
    let mut outer = Der::new(der);
    let mut seq = Der::new(outer.read(TAG_SEQUENCE)?);
    outer.finish()?;
    let n = seq.read_positive_integer()?;
    let e = seq.read_positive_integer()?;
    seq.finish()?;
    RsaPublicKey::from_components(n, e)
}

/// A strict DER reader over one level of TLVs.
struct Der<'a> {
    buf: &'a [u8],
}

impl<'a> Der<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Der { buf }
    }

    fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    fn finish(&self) -> Result<(), KeyError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(KeyError::MalformedDer)
        }
    }

    fn byte(&mut self) -> Result<u8, KeyError> {
        let (b, rest) = self.buf.split_first().ok_or(KeyError::MalformedDer)?;
        self.buf = rest;
        Ok(*b)
    }

    /// Reads one element with tag `tag` and returns its contents.
    fn read(&mut self, tag: u8) -> Result<&'a [u8], KeyError> {
        if self.byte()? != tag {
            return Err(KeyError::MalformedDer);
        }
        let first = self.byte()?;
        let len = match first {
            0..=0x7f => usize::from(first),
            0x81..=0x83 => {
                let count = usize::from(first & 0x7f);
                let mut len = 0usize;
                for _ in 0..count {
                    len = (len << 8) | usize::from(self.byte()?);
                }
                // minimal: the long form only when needed, no leading zero octet
                let min = 1usize << (8 * (count - 1));
                if len < 0x80 || len < min {
                    return Err(KeyError::MalformedDer);
                }
                len
            }
            // 0x80 is the (BER-only) indefinite form; longer lengths are far beyond any key
            _ => return Err(KeyError::MalformedDer),
        };
        if len > self.buf.len() {
            return Err(KeyError::MalformedDer);
        }
        let (content, rest) = self.buf.split_at(len);
        self.buf = rest;
        Ok(content)
    }

    /// Reads a minimally encoded, strictly positive INTEGER; returns its magnitude.
    fn read_positive_integer(&mut self) -> Result<&'a [u8], KeyError> {
        let v = self.read(TAG_INTEGER)?;
        match v {
            [] => Err(KeyError::MalformedDer),
            [b, ..] if b & 0x80 != 0 => Err(KeyError::MalformedDer), // negative
            [0] => Err(KeyError::MalformedDer),                      // zero
            [0, b, ..] if b & 0x80 == 0 => Err(KeyError::MalformedDer), // not minimal
            [0, rest @ ..] => Ok(rest),
            _ => Ok(v),
        }
    }
}

fn der_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let len = content.len();
    let mut out = vec![tag];
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

/// A non-negative INTEGER from a magnitude without leading zeros.
fn der_uint(magnitude: &[u8]) -> Vec<u8> {
    let mut content = Vec::with_capacity(magnitude.len() + 1);
    if magnitude.first().is_none_or(|b| b & 0x80 != 0) {
        content.push(0);
    }
    content.extend_from_slice(magnitude);
    der_tlv(TAG_INTEGER, &content)
}

/// SubjectPublicKeyInfo DER (rsaEncryption) of a modulus and exponent.
fn spki_der(n: &[u8], e: &[u8]) -> Vec<u8> {
    let mut rsa_key = der_uint(n);
    rsa_key.extend(der_uint(e));
    let rsa_key = der_tlv(TAG_SEQUENCE, &rsa_key);
    let mut alg = der_tlv(TAG_OID, &RSA_ENCRYPTION_OID);
    alg.extend(der_tlv(TAG_NULL, &[]));
    let mut bits = vec![0u8];
    bits.extend(rsa_key);
    let mut spki = der_tlv(TAG_SEQUENCE, &alg);
    spki.extend(der_tlv(TAG_BIT_STRING, &bits));
    der_tlv(TAG_SEQUENCE, &spki)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn der_lengths_must_be_minimal() {
        // long form for a short length
        assert!(Der::new(&[0x04, 0x81, 0x01, 0xaa]).read(0x04).is_err());
        // leading zero in a two-octet length
        let mut v = vec![0x04, 0x82, 0x00, 0x80];
        v.extend([0u8; 0x80]);
        assert!(Der::new(&v).read(0x04).is_err());
        // indefinite form
        assert!(Der::new(&[0x30, 0x80, 0x00, 0x00]).read(0x30).is_err());
        // truncated
        assert!(Der::new(&[0x04, 0x05, 0x01]).read(0x04).is_err());
        // fine
        assert_eq!(Der::new(&[0x04, 0x01, 0xaa]).read(0x04).unwrap(), &[0xaa]);
        let mut v = vec![0x04, 0x81, 0x80];
        v.extend([7u8; 0x80]);
        assert_eq!(Der::new(&v).read(0x04).unwrap().len(), 0x80);
    }

    #[test]
    fn der_integers_must_be_minimal_and_positive() {
        let int = |b: &[u8]| {
            let v = der_tlv(TAG_INTEGER, b);
            Der::new(&v).read_positive_integer().map(<[u8]>::to_vec)
        };
        assert_eq!(int(&[0x01, 0x00, 0x01]).unwrap(), vec![1, 0, 1]);
        assert_eq!(int(&[0x00, 0x80]).unwrap(), vec![0x80]);
        assert!(int(&[0x00, 0x01]).is_err());
        assert!(int(&[0x80]).is_err());
        assert!(int(&[0x00]).is_err());
        assert!(int(&[]).is_err());
    }

    #[test]
    fn der_writer_round_trips_lengths() {
        for len in [0usize, 1, 0x7f, 0x80, 0xff, 0x100, 0x1234] {
            let content = vec![0x5a; len];
            let v = der_tlv(0x04, &content);
            let mut d = Der::new(&v);
            assert_eq!(d.read(0x04).unwrap(), content.as_slice());
            assert!(d.is_empty());
        }
    }

    #[test]
    fn bit_length_counts_the_value() {
        assert_eq!(bit_length(&[]), 0);
        assert_eq!(bit_length(&[1]), 1);
        assert_eq!(bit_length(&[0x80, 0]), 16);
        assert_eq!(bit_length(strip_leading_zeros(&[0, 0, 0x7f])), 7);
    }
}
