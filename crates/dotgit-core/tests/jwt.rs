//! Tests of `dotgit_core::jwt`: keys and tokens are made by other implementations than the
//! verifier (OpenSSL and pyca/cryptography for the files in `testdata/jwt`, aws-lc-rs signing and
//! hand-assembled JWS here), plus the RFC 7520 §4.1 and RFC 7638 §3.1 vectors and Wycheproof.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{KeyPair as _, RsaKeyPair, RSA_PKCS1_SHA256};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use dotgit_core::jwt::{
    decode_unverified, verify, verify_rs256_signature, JwtError, KeyError, KeyPolicy, RsaPublicKey,
    VerifiedJwt, VerifyContext, MAX_TOKEN_LEN,
};
use dotgit_core::net::Cidr;
use dotgit_core::scope::ScopeSet;
use serde_json::{json, Value};
use std::sync::OnceLock;

macro_rules! testdata {
    ($name:literal) => {
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/jwt/", $name))
    };
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64(s: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(s).unwrap()
}

/// PEM-wraps DER the way RFC 7468 describes (64-column lines).
fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// A signing key made by aws-lc-rs, with its public key in the encodings customers paste.
struct Signer {
    kp: RsaKeyPair,
    spki_der: Vec<u8>,
    pkcs1_der: Vec<u8>,
    spki_pem: String,
    key: RsaPublicKey,
}

impl Signer {
    fn generate() -> Signer {
        let kp = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
        let spki_der = kp.public_key().as_der().unwrap().as_ref().to_vec();
        let pkcs1_der = kp.public_key().as_ref().to_vec();
        let spki_pem = pem("PUBLIC KEY", &spki_der);
        let key = RsaPublicKey::from_pem(&spki_pem).unwrap();
        Signer {
            kp,
            spki_der,
            pkcs1_der,
            spki_pem,
            key,
        }
    }

    fn sign_input(&self, input: &str) -> Vec<u8> {
        let mut sig = vec![0u8; self.kp.public_modulus_len()];
        self.kp
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                input.as_bytes(),
                &mut sig,
            )
            .unwrap();
        sig
    }

    /// A compact JWS over raw header and payload bytes.
    fn sign_raw(&self, header: &[u8], payload: &[u8]) -> String {
        let input = format!("{}.{}", b64(header), b64(payload));
        let sig = self.sign_input(&input);
        format!("{input}.{}", b64(&sig))
    }

    fn sign(&self, header: &Value, claims: &Value) -> String {
        self.sign_raw(
            &serde_json::to_vec(header).unwrap(),
            &serde_json::to_vec(claims).unwrap(),
        )
    }
}

fn signer() -> &'static Signer {
    static S: OnceLock<Signer> = OnceLock::new();
    S.get_or_init(Signer::generate)
}

fn other_signer() -> &'static Signer {
    static S: OnceLock<Signer> = OnceLock::new();
    S.get_or_init(Signer::generate)
}

const NOW: i64 = 1_700_000_000;
const ACCOUNT: &str = "acc_7Qm2";
const ISSUER: &str = "ci-deployer";
const AUDIENCE: &str = "https://dotgit.example";
const KID: &str = "jwk_3f9a";

fn header() -> Value {
    json!({"alg": "RS256", "kid": KID, "typ": "JWT"})
}

fn claims() -> Value {
    json!({
        "sub": ACCOUNT,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": NOW - 10,
        "exp": NOW + 600,
        "scope": "repo:read deploy:read",
    })
}

fn with(mut v: Value, k: &str, val: Value) -> Value {
    v.as_object_mut().unwrap().insert(k.to_owned(), val);
    v
}

fn without(mut v: Value, k: &str) -> Value {
    v.as_object_mut().unwrap().remove(k);
    v
}

struct Policy {
    allowed: ScopeSet,
    max_lifetime_seconds: i64,
    single_use: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            allowed: ScopeSet::parse_space_separated("repo:write deploy:read").unwrap(),
            max_lifetime_seconds: 3600,
            single_use: false,
        }
    }
}

fn check_with(token: &str, p: &Policy, now: i64) -> Result<VerifiedJwt, JwtError> {
    let u = decode_unverified(token)?;
    let key = KeyPolicy {
        key: &signer().key,
        account_id: ACCOUNT,
        issuer: ISSUER,
        allowed_scopes: &p.allowed,
        max_lifetime_seconds: p.max_lifetime_seconds,
        single_use: p.single_use,
    };
    let ctx = VerifyContext {
        audience: AUDIENCE,
        now,
        leeway: 60,
    };
    verify(&u, &key, &ctx)
}

fn check(token: &str) -> Result<VerifiedJwt, JwtError> {
    check_with(token, &Policy::default(), NOW)
}

/// Signs `claims` with the good header and checks it.
fn claims_result(c: Value) -> Result<VerifiedJwt, JwtError> {
    check(&signer().sign(&header(), &c))
}

fn claims_result_with(c: Value, p: &Policy) -> Result<VerifiedJwt, JwtError> {
    check_with(&signer().sign(&header(), &c), p, NOW)
}

fn header_result(h: Value) -> Result<VerifiedJwt, JwtError> {
    check(&signer().sign(&h, &claims()))
}

// ---------------------------------------------------------------------------------------------
// keys

mod keys {
    use super::*;

    fn jwk_file(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn spki_pkcs1_and_jwk_of_one_key_agree() {
        let spki = RsaPublicKey::from_pem(testdata!("rsa2048.spki.pem")).unwrap();
        let pkcs1 = RsaPublicKey::from_pem(testdata!("rsa2048.pkcs1.pem")).unwrap();
        let jwk = jwk_file(testdata!("rsa2048.jwk.json"));
        let from_jwk = RsaPublicKey::from_jwk(&jwk).unwrap();
        assert_eq!(spki, pkcs1);
        assert_eq!(spki, from_jwk);
        assert_eq!(spki.modulus_bits(), 2048);
        assert_eq!(spki.thumbprint(), testdata!("rsa2048.thumbprint").trim());
        let out = spki.to_jwk("kid-1");
        assert_eq!(out["n"], jwk["n"]);
        assert_eq!(out["e"], jwk["e"]);
        assert_eq!(out["kty"], "RSA");
        assert_eq!(out["kid"], "kid-1");
        assert_eq!(out["alg"], "RS256");
        assert_eq!(out["use"], "sig");
        assert_eq!(out.as_object().unwrap().len(), 6);
    }

    #[test]
    fn good_keys_round_trip() {
        for text in [
            testdata!("rsa2048.spki.pem"),
            testdata!("rsa2048.pkcs1.pem"),
            testdata!("rsa3072.pkcs1.pem"),
            testdata!("rsa4096.spki.pem"),
            testdata!("rsa2048-e3.spki.pem"),
        ] {
            let k = RsaPublicKey::from_pem(text).unwrap();
            assert_eq!(RsaPublicKey::from_jwk(&k.to_jwk("x")).unwrap(), k);
            assert_eq!(RsaPublicKey::from_pem(&k.to_pem()).unwrap(), k);
            assert_eq!(
                RsaPublicKey::from_pem_or_jwk(&Value::String(k.to_pem())).unwrap(),
                k
            );
            assert_eq!(RsaPublicKey::from_pem_or_jwk(&k.to_jwk("x")).unwrap(), k);
            assert_eq!(
                RsaPublicKey::from_pem_or_jwk(&Value::String(k.to_jwk("x").to_string())).unwrap(),
                k
            );
        }
        // the canonical stored PEM is byte-identical to OpenSSL's SPKI output
        for text in [
            testdata!("rsa2048.spki.pem"),
            testdata!("rsa4096.spki.pem"),
            testdata!("rsa2048-e3.spki.pem"),
        ] {
            assert_eq!(RsaPublicKey::from_pem(text).unwrap().to_pem(), text);
        }
        let k4096 = RsaPublicKey::from_pem(testdata!("rsa4096.spki.pem")).unwrap();
        assert_eq!(k4096.modulus_bits(), 4096);
        assert_eq!(k4096.thumbprint(), testdata!("rsa4096.thumbprint").trim());
        assert_eq!(
            RsaPublicKey::from_jwk(&jwk_file(testdata!("rsa4096.jwk.json"))).unwrap(),
            k4096
        );
        let e3 = RsaPublicKey::from_jwk(&jwk_file(testdata!("rsa2048-e3.jwk.json"))).unwrap();
        assert_eq!(e3.exponent(), &[3]);
        assert_eq!(e3.thumbprint(), testdata!("rsa2048-e3.thumbprint").trim());
        assert_eq!(
            RsaPublicKey::from_pem(testdata!("rsa3072.pkcs1.pem"))
                .unwrap()
                .modulus_bits(),
            3072
        );
    }

    #[test]
    fn aws_lc_encodings_parse() {
        let s = signer();
        assert_eq!(RsaPublicKey::from_pem(&s.spki_pem).unwrap(), s.key);
        assert_eq!(
            RsaPublicKey::from_pem(&pem("RSA PUBLIC KEY", &s.pkcs1_der)).unwrap(),
            s.key
        );
        assert_eq!(s.key.to_spki_der(), s.spki_der);
    }

    #[test]
    fn pem_layout_tolerance() {
        let text = testdata!("rsa2048.spki.pem");
        let k = RsaPublicKey::from_pem(text).unwrap();
        // CRLF, surrounding whitespace, indentation, one long body line
        assert_eq!(
            RsaPublicKey::from_pem(&text.replace('\n', "\r\n")).unwrap(),
            k
        );
        assert_eq!(
            RsaPublicKey::from_pem(&format!("\n\n  {text}\n\n")).unwrap(),
            k
        );
        let lines: Vec<&str> = text.lines().collect();
        let one_line = format!(
            "{}\n{}\n{}\n",
            lines[0],
            lines[1..lines.len() - 1].concat(),
            lines[lines.len() - 1]
        );
        assert_eq!(RsaPublicKey::from_pem(&one_line).unwrap(), k);
    }

    #[test]
    fn rfc7638_thumbprint_vector() {
        // RFC 7638 §3.1
        let jwk = json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        });
        let k = RsaPublicKey::from_jwk(&jwk).unwrap();
        assert_eq!(
            k.thumbprint(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn debug_shows_only_size_and_thumbprint() {
        let k = &signer().key;
        let d = format!("{k:?}");
        assert!(d.contains("2048") && d.contains(&k.thumbprint()), "{d}");
        assert!(!d.contains(&b64(k.modulus())[..16]), "{d}");
    }

    /// The modulus of the 2048-bit test key, from the JWK pyca/cryptography wrote.
    fn n2048() -> Vec<u8> {
        unb64(
            jwk_file(testdata!("rsa2048.jwk.json"))["n"]
                .as_str()
                .unwrap(),
        )
    }

    /// Hand-made DER, independent of the parser.
    fn der(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let len = content.len();
        if len < 0x80 {
            out.push(len as u8);
        } else if len < 0x100 {
            out.extend([0x81, len as u8]);
        } else {
            out.extend([0x82, (len >> 8) as u8, len as u8]);
        }
        out.extend_from_slice(content);
        out
    }

    fn der_int(v: &[u8]) -> Vec<u8> {
        let mut c = Vec::new();
        if v[0] & 0x80 != 0 {
            c.push(0);
        }
        c.extend_from_slice(v);
        der(0x02, &c)
    }

    fn pkcs1_pem(n: &[u8], e: &[u8]) -> String {
        let mut body = der_int(n);
        body.extend(der_int(e));
        pem("RSA PUBLIC KEY", &der(0x30, &body))
    }

    fn jwk(n: &[u8], e: &[u8]) -> Value {
        json!({"kty": "RSA", "n": b64(n), "e": b64(e)})
    }

    #[test]
    fn small_modulus_refused_by_value_not_length() {
        let err = RsaPublicKey::from_pem(testdata!("rsa1024.spki.pem")).unwrap_err();
        assert_eq!(err, KeyError::ModulusTooSmall(1024));
        assert_eq!(
            err.to_string(),
            "public_key: RSA modulus must be at least 2048 bits (got 1024)"
        );
        // a 1024-bit modulus padded with zero octets to 256 bytes is still 1024 bits
        let n = n2048();
        let mut padded = vec![0u8; 128];
        padded.extend_from_slice(&n[..128]);
        padded[255] |= 1;
        assert_eq!(
            RsaPublicKey::from_jwk(&jwk(&padded, &[1, 0, 1])).unwrap_err(),
            KeyError::ModulusTooSmall(1024)
        );
        assert_eq!(
            RsaPublicKey::from_components(&padded, &[1, 0, 1]).unwrap_err(),
            KeyError::ModulusTooSmall(1024)
        );
        // in DER the zero padding is a non-minimal INTEGER
        let mut body = der(0x02, &padded);
        body.extend(der_int(&[1, 0, 1]));
        assert_eq!(
            RsaPublicKey::from_pem(&pem("RSA PUBLIC KEY", &der(0x30, &body))).unwrap_err(),
            KeyError::MalformedDer
        );
        // 2047 bits
        let mut n2047 = n.clone();
        n2047[0] = 0x7f;
        assert_eq!(
            RsaPublicKey::from_jwk(&jwk(&n2047, &[1, 0, 1])).unwrap_err(),
            KeyError::ModulusTooSmall(2047)
        );
        // more than 8192 bits
        let mut huge = vec![0xffu8; 1025];
        huge[1024] = 0xff;
        assert_eq!(
            RsaPublicKey::from_jwk(&jwk(&huge, &[1, 0, 1])).unwrap_err(),
            KeyError::ModulusTooLarge(8200)
        );
        // even modulus
        let mut even = n.clone();
        even[255] &= 0xfe;
        assert_eq!(
            RsaPublicKey::from_jwk(&jwk(&even, &[1, 0, 1])).unwrap_err(),
            KeyError::ModulusEven
        );
        // a leading zero octet on a full-size JWK modulus is tolerated and ignored
        let mut lead = vec![0u8];
        lead.extend_from_slice(&n);
        let k = RsaPublicKey::from_jwk(&jwk(&lead, &[1, 0, 1])).unwrap();
        assert_eq!(k.modulus_bits(), 2048);
        assert_eq!(k.modulus(), n.as_slice());
    }

    #[test]
    fn exponent_rules() {
        let n = n2048();
        let cases: [(&[u8], Option<KeyError>); 9] = [
            (&[1], Some(KeyError::ExponentTooSmall)),
            (&[0], Some(KeyError::ExponentTooSmall)),
            (&[2], Some(KeyError::ExponentTooSmall)),
            (&[1, 0, 2], Some(KeyError::ExponentEven)),
            (&[1, 0, 0, 0, 0], Some(KeyError::ExponentEven)), // 2^32
            (&[1, 0, 0, 0, 1], Some(KeyError::ExponentTooLarge)), // 2^32 + 1
            (
                &[1, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                Some(KeyError::ExponentTooLarge),
            ),
            (&[3], None),
            (&[0xff, 0xff, 0xff, 0xff], None), // 2^32 - 1
        ];
        for (e, want) in cases {
            let from_jwk = RsaPublicKey::from_jwk(&jwk(&n, e));
            let from_pem = RsaPublicKey::from_pem(&pkcs1_pem(&n, e));
            match want {
                Some(err) => {
                    assert_eq!(from_jwk.unwrap_err(), err, "jwk e={e:?}");
                    if e != [0] {
                        assert_eq!(from_pem.unwrap_err(), err, "pem e={e:?}");
                    }
                }
                None => {
                    assert_eq!(from_jwk.unwrap(), from_pem.unwrap());
                }
            }
        }
        assert_eq!(
            KeyError::ExponentEven.to_string(),
            "public_key: RSA exponent must be odd"
        );
    }

    #[test]
    fn jwk_with_private_members_refused_without_echoing_them() {
        let base = jwk_file(testdata!("rsa2048.jwk.json"));
        let secret = "c2VjcmV0LXByaXZhdGUtZXhwb25lbnQtdmFsdWU";
        for member in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
            let j = with(base.clone(), member, json!(secret));
            let err = RsaPublicKey::from_jwk(&j).unwrap_err();
            assert_eq!(err, KeyError::PrivateJwkMember(member));
            let msg = err.to_string();
            assert!(msg.starts_with("public_key: "), "{msg}");
            assert!(msg.contains(&format!("({member})")), "{msg}");
            assert!(!msg.contains(secret), "{msg}");
            assert!(!format!("{err:?}").contains(secret));
            let via_field = RsaPublicKey::from_pem_or_jwk(&j).unwrap_err();
            assert_eq!(via_field, err);
        }
        assert_eq!(
            KeyError::PrivateJwkMember("d").to_string(),
            "public_key: a JWK must not contain private members (d); send only the public key (kty, n, e). Nothing of it was kept"
        );
    }

    #[test]
    fn private_key_pems_refused() {
        let kp = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
        let pkcs8 = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&kp).unwrap();
        let pkcs8 = pkcs8.as_ref();
        let body_b64 = STANDARD.encode(pkcs8);
        for label in [
            "PRIVATE KEY",
            "RSA PRIVATE KEY",
            "ENCRYPTED PRIVATE KEY",
            "EC PRIVATE KEY",
            "OPENSSH PRIVATE KEY",
        ] {
            let text = pem(label, pkcs8);
            let err = RsaPublicKey::from_pem(&text).unwrap_err();
            assert_eq!(err, KeyError::PrivateKeyPem, "{label}");
            let msg = err.to_string();
            assert!(msg.contains("paste the PUBLIC key"), "{msg}");
            assert!(!msg.contains(&body_b64[..40]));
            assert_eq!(
                RsaPublicKey::from_pem_or_jwk(&Value::String(text)).unwrap_err(),
                KeyError::PrivateKeyPem
            );
        }
        // a public key followed by its private key: still refused as a private key
        let bundle = format!("{}{}", signer().spki_pem, pem("PRIVATE KEY", pkcs8));
        assert_eq!(
            RsaPublicKey::from_pem(&bundle).unwrap_err(),
            KeyError::PrivateKeyPem
        );
    }

    #[test]
    fn other_algorithms_and_containers_refused() {
        assert_eq!(
            RsaPublicKey::from_pem(testdata!("ec-p256.spki.pem")).unwrap_err(),
            KeyError::NotRsa
        );
        assert_eq!(
            RsaPublicKey::from_pem(testdata!("ed25519.spki.pem")).unwrap_err(),
            KeyError::NotRsa
        );
        assert_eq!(
            RsaPublicKey::from_pem(testdata!("rsa-pss.spki.pem")).unwrap_err(),
            KeyError::NotRsa
        );
        assert_eq!(
            RsaPublicKey::from_pem(testdata!("rsa2048.cert.pem")).unwrap_err(),
            KeyError::Certificate
        );
        let ec_jwk = json!({
            "kty": "EC", "crv": "P-256",
            "x": "t6PHivOTggpaX9lkMkis2p8kMhy-CktJAFTz6atReZw",
            "y": "ODobXupKlD0DeM1yRd7bX4XFNBO1HOgCT1UCu0KY3lc"
        });
        assert_eq!(
            RsaPublicKey::from_jwk(&ec_jwk).unwrap_err(),
            KeyError::NotRsa
        );
        let okp = json!({"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"});
        assert_eq!(RsaPublicKey::from_jwk(&okp).unwrap_err(), KeyError::NotRsa);
    }

    #[test]
    fn bad_jwk_members_refused() {
        let base = jwk_file(testdata!("rsa2048.jwk.json"));
        let n = base["n"].as_str().unwrap().to_owned();
        let member_err = |j: Value, member: &str| match RsaPublicKey::from_jwk(&j) {
            Err(KeyError::InvalidJwkMember { member: m, .. }) => assert_eq!(m, member),
            other => panic!("{member}: {other:?}"),
        };
        member_err(without(base.clone(), "kty"), "kty");
        member_err(with(base.clone(), "alg", json!("RS384")), "alg");
        member_err(with(base.clone(), "alg", json!("HS256")), "alg");
        member_err(with(base.clone(), "use", json!("enc")), "use");
        member_err(with(base.clone(), "key_ops", json!(["encrypt"])), "key_ops");
        member_err(with(base.clone(), "key_ops", json!([])), "key_ops");
        member_err(without(base.clone(), "n"), "n");
        member_err(with(base.clone(), "n", json!(12)), "n");
        member_err(with(base.clone(), "n", json!(format!("{n}=="))), "n");
        member_err(with(base.clone(), "n", json!(n.replace('_', "/"))), "n");
        member_err(with(base.clone(), "n", json!(format!("{n} "))), "n");
        member_err(with(base.clone(), "e", json!("AQAB=")), "e");
        member_err(with(base.clone(), "e", json!("")), "e");
        member_err(without(base.clone(), "e"), "e");
        assert_eq!(
            RsaPublicKey::from_jwk(&with(base.clone(), "kty", json!("rsa"))).unwrap_err(),
            KeyError::NotRsa
        );
        // accepted optional members
        let ok = with(
            with(
                with(base.clone(), "alg", json!("RS256")),
                "use",
                json!("sig"),
            ),
            "key_ops",
            json!(["verify"]),
        );
        assert!(RsaPublicKey::from_jwk(&with(ok, "kid", json!("anything"))).is_ok());
        assert_eq!(
            RsaPublicKey::from_jwk(&json!("not an object")).unwrap_err(),
            KeyError::NotPemOrJwk
        );
    }

    #[test]
    fn garbage_refused() {
        let good = testdata!("rsa2048.spki.pem");
        let body: String = good.lines().filter(|l| !l.starts_with("-----")).collect();
        let cases: Vec<(String, KeyError)> = vec![
            (String::new(), KeyError::MalformedPem),
            ("hello".into(), KeyError::MalformedPem),
            (
                "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC user@host".into(),
                KeyError::MalformedPem,
            ),
            (body.clone(), KeyError::MalformedPem),
            (
                good.replace("-----END PUBLIC KEY-----", ""),
                KeyError::MalformedPem,
            ),
            (
                good.replace("END PUBLIC KEY", "END RSA PUBLIC KEY"),
                KeyError::MalformedPem,
            ),
            (good.replace("MII", "M!I"), KeyError::MalformedPem),
            (
                good.replacen('\n', "\nProc-Type: 4,ENCRYPTED\n", 1),
                KeyError::MalformedPem,
            ),
            (format!("{good}trailing text\n"), KeyError::MalformedPem),
            (format!("comment before\n{good}"), KeyError::MalformedPem),
            (format!("{good}{good}"), KeyError::MalformedPem),
            (
                "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n".into(),
                KeyError::MalformedDer,
            ),
            (
                pem("PUBLIC KEY", &[signer().spki_der.clone(), vec![0]].concat()),
                KeyError::MalformedDer,
            ),
            (
                pem("RSA PUBLIC KEY", &signer().spki_der),
                KeyError::MalformedDer,
            ),
            (
                pem("PUBLIC KEY", &signer().pkcs1_der),
                KeyError::MalformedDer,
            ),
            (
                pem("SSH2 PUBLIC KEY", &signer().spki_der),
                KeyError::UnsupportedPemLabel,
            ),
            (
                pem("DH PARAMETERS", &[1, 2, 3]),
                KeyError::UnsupportedPemLabel,
            ),
            ("-".repeat(20_000), KeyError::TooLong),
        ];
        for (text, want) in cases {
            assert_eq!(
                RsaPublicKey::from_pem(&text).unwrap_err(),
                want,
                "{:?}",
                &text[..text.len().min(80)]
            );
        }
        assert_eq!(
            RsaPublicKey::from_pem_or_jwk(&json!(42)).unwrap_err(),
            KeyError::NotPemOrJwk
        );
        assert_eq!(
            RsaPublicKey::from_pem_or_jwk(&json!("{\"kty\":\"RSA\",\"kty\":\"RSA\"}")).unwrap_err(),
            KeyError::NotPemOrJwk
        );
        // every message names the field and never carries input
        for e in [
            KeyError::MalformedPem,
            KeyError::MalformedDer,
            KeyError::NotRsa,
            KeyError::Certificate,
            KeyError::UnsupportedPemLabel,
            KeyError::TooLong,
            KeyError::NotPemOrJwk,
            KeyError::ModulusEven,
            KeyError::ModulusTooLarge(9000),
            KeyError::ExponentTooLarge,
            KeyError::ExponentTooSmall,
        ] {
            assert!(e.to_string().starts_with("public_key: "), "{e}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// the signature primitive against published vectors

mod vectors {
    use super::*;
    use wycheproof::rsa_pkcs1_verify::{TestName, TestSet};
    use wycheproof::TestResult;

    #[test]
    fn rfc7520_section_4_1_rs256() {
        let key = RsaPublicKey::from_jwk(
            &serde_json::from_str(testdata!("rfc7520-bilbo.jwk.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(key.modulus_bits(), 2048);
        let token = testdata!("rfc7520-4.1.jws").trim();
        let (input, sig) = token.rsplit_once('.').unwrap();
        let sig = unb64(sig);
        assert_eq!(
            unb64(input.split('.').next().unwrap()),
            br#"{"alg":"RS256","kid":"bilbo.baggins@hobbiton.example"}"#
        );
        assert_eq!(
            String::from_utf8(unb64(input.split('.').nth(1).unwrap())).unwrap(),
            "It\u{2019}s a dangerous business, Frodo, going out your door. You step onto the road, and if you don't keep your feet, there\u{2019}s no knowing where you might be swept off to."
        );
        verify_rs256_signature(&key, input.as_bytes(), &sig).unwrap();
        // any change breaks it
        let mut bad = sig.clone();
        bad[100] ^= 1;
        assert_eq!(
            verify_rs256_signature(&key, input.as_bytes(), &bad),
            Err(JwtError::BadSignature)
        );
        assert_eq!(
            verify_rs256_signature(&key, &input.as_bytes()[1..], &sig),
            Err(JwtError::BadSignature)
        );
        assert_eq!(
            verify_rs256_signature(&signer().key, input.as_bytes(), &sig),
            Err(JwtError::BadSignature)
        );
        // its payload is not a claim set, so as a bearer token it is refused before any key
        assert_eq!(
            decode_unverified(token).unwrap_err(),
            JwtError::PayloadNotObject
        );
    }

    /// Every case of the PKCS#1 v1.5 SHA-256 sets. "acceptable" cases (legacy encodings such as
    /// a DigestInfo without its NULL) are held to the strict answer: they must be refused.
    #[test]
    fn wycheproof_rsa_pkcs1_sha256() {
        let (mut total, mut valid, mut acceptable) = (0, 0, 0);
        for name in [
            TestName::Rsa2048Sha256,
            TestName::Rsa3072Sha256,
            TestName::Rsa4096Sha256,
            TestName::Rsa8192Sha256,
        ] {
            let set = TestSet::load(name).unwrap();
            for group in &set.test_groups {
                let key = RsaPublicKey::from_components(&group.key.n, &group.key.e);
                for t in &group.tests {
                    total += 1;
                    valid += usize::from(t.result == TestResult::Valid);
                    acceptable += usize::from(t.result == TestResult::Acceptable);
                    let ok = match &key {
                        Ok(k) => verify_rs256_signature(k, &t.msg, &t.sig).is_ok(),
                        Err(_) => false,
                    };
                    let want = t.result == TestResult::Valid;
                    assert_eq!(
                        ok, want,
                        "{name:?} tcId {} ({}) result {:?} flags {:?}",
                        t.tc_id, t.comment, t.result, t.flags
                    );
                }
                if key.is_err() {
                    assert!(group.tests.iter().all(|t| t.result != TestResult::Valid));
                }
            }
        }
        eprintln!("wycheproof: {total} cases, {valid} valid, {acceptable} acceptable (refused)");
        assert!(
            total > 400 && valid > 20,
            "only {total} Wycheproof cases ran"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// the verifier

mod verifier {
    use super::*;

    #[test]
    fn a_good_token_verifies() {
        let c = with(
            with(
                with(claims(), "jti", json!("j-1")),
                "ips",
                json!(["10.0.0.0/8", "2001:db8::/32", "192.0.2.7"]),
            ),
            "projects",
            json!(["my-app", "web"]),
        );
        let c = with(c, "unknown_claim", json!({"nested": [1, 2, {"x": null}]}));
        let token = signer().sign(&header(), &c);
        let u = decode_unverified(&token).unwrap();
        assert_eq!(u.kid(), KID);
        assert_eq!(u.sub(), ACCOUNT);
        assert_eq!(u.jti().as_deref(), Some("j-1"));
        let dbg = format!("{u:?}");
        assert!(!dbg.contains(token.split('.').nth(1).unwrap()), "{dbg}");
        assert!(!dbg.contains(token.split('.').nth(2).unwrap()), "{dbg}");
        let v = check(&token).unwrap();
        assert_eq!(
            v,
            VerifiedJwt {
                sub: ACCOUNT.into(),
                kid: KID.into(),
                jti: Some("j-1".into()),
                iat: NOW - 10,
                exp: NOW + 600,
                scopes: ScopeSet::parse_space_separated("repo:read deploy:read").unwrap(),
                ips: Some(vec![
                    Cidr::parse("10.0.0.0/8").unwrap(),
                    Cidr::parse("2001:db8::/32").unwrap(),
                    Cidr::parse("192.0.2.7").unwrap(),
                ]),
                projects: Some(vec!["my-app".into(), "web".into()]),
            }
        );
        // minimal: no typ, no scope, no jti, no custom claims
        let v = check(&signer().sign(
            &json!({"alg": "RS256", "kid": KID}),
            &without(claims(), "scope"),
        ))
        .unwrap();
        assert!(v.scopes.is_empty());
        assert_eq!((v.jti, v.ips, v.projects), (None, None, None));
    }

    #[test]
    fn escaped_claims_read_as_their_text() {
        // the claims are taken out of the claim set when it is decoded and read after the
        // signature: a value with escapes must compare as the text it stands for, one without
        // as itself, and members nobody reads (however nested) must not matter
        let payload = format!(
            r#"{{"sub":"{ACCOUNT}","iss":"ci-deploy\u0065r","aud":"https:\/\/dotgit.example","iat":{},"exp":{},"scope":"repo:r\u0065ad","jti":"j\u002d1","projects":["my-\u0061pp"],"other":{{"x":[1,{{"y":"\u00e9"}}]}}}}"#,
            NOW - 10,
            NOW + 600
        );
        let head = format!(r#"{{"alg":"RS256","kid":"{KID}"}}"#);
        let token = signer().sign_raw(head.as_bytes(), payload.as_bytes());
        let u = decode_unverified(&token).unwrap();
        assert_eq!(u.jti().as_deref(), Some("j-1"));
        let v = check(&token).unwrap();
        assert_eq!(v.jti.as_deref(), Some("j-1"));
        assert_eq!(
            v.scopes,
            ScopeSet::parse_space_separated("repo:read").unwrap()
        );
        assert_eq!(v.projects, Some(vec!["my-app".to_owned()]));
        // an escape that spells another value is that value
        let other = payload.replace(r"ci-deploy\u0065r", r"ci-deploy\u0045r");
        assert_eq!(
            check(&signer().sign_raw(head.as_bytes(), other.as_bytes())).unwrap_err(),
            JwtError::IssuerMismatch
        );
    }

    // --- shape, checked before any decoding

    #[test]
    fn only_compact_jws_shape() {
        let good = signer().sign(&header(), &claims());
        let parts: Vec<&str> = good.split('.').collect();
        let (h, p, s) = (parts[0], parts[1], parts[2]);
        let cases = [
            (String::new(), JwtError::NotCompactJws),
            (h.to_owned(), JwtError::NotCompactJws),
            (format!("{h}.{p}"), JwtError::NotCompactJws),
            (format!("{h}.{p}.{s}.{s}"), JwtError::NotCompactJws),
            (format!("{h}.{p}.{s}.{s}.{s}.{s}"), JwtError::NotCompactJws),
            (format!("{h}.{h}.{p}.{p}.{s}"), JwtError::Jwe),
            (format!("{h}.{p}."), JwtError::NotCompactJws),
            (format!("{h}..{s}"), JwtError::NotCompactJws),
            (format!(".{p}.{s}"), JwtError::NotCompactJws),
            ("..".to_owned(), JwtError::NotCompactJws),
            (format!("{h}.{p}.{s}="), JwtError::BadBase64),
            (format!("{h}=.{p}.{s}"), JwtError::BadBase64),
            (
                format!("{h}.{p}.{}", s.replace('-', "+").replace('_', "/")),
                JwtError::BadBase64,
            ),
            (format!("{h}.{p}+.{s}"), JwtError::BadBase64),
            (format!("{h}.{p}/.{s}"), JwtError::BadBase64),
            (format!("{h}.{p}.{s} "), JwtError::BadBase64),
            (format!(" {h}.{p}.{s}"), JwtError::BadBase64),
            (format!("{h}.{p}\n.{s}"), JwtError::BadBase64),
            (format!("{h}.{p}.{s}\u{e9}"), JwtError::BadBase64),
            // 4n+1 characters can never be base64
            (format!("{h}.{p}.A"), JwtError::BadBase64),
        ];
        for (token, want) in cases {
            assert_eq!(
                decode_unverified(&token).unwrap_err(),
                want,
                "{:?}",
                &token[..token.len().min(40)]
            );
        }
        // a non-canonical final character (non-zero trailing bits): "Ah" is 0x02 only to lax decoders
        let t = format!(
            "{}.{}.{}",
            b64(br#"{"alg":"RS256","kid":"k"}"#),
            b64(br#"{"sub":"a"}"#),
            "Ah"
        );
        assert_eq!(decode_unverified(&t).unwrap_err(), JwtError::BadBase64);
    }

    #[test]
    fn oversized_tokens_refused_before_decoding() {
        // over the limit, even if made of characters that would fail base64 or JSON later
        let junk = "@".repeat(MAX_TOKEN_LEN + 1);
        assert_eq!(decode_unverified(&junk).unwrap_err(), JwtError::TooLong);
        let big = signer().sign(
            &header(),
            &with(claims(), "pad", json!("x".repeat(MAX_TOKEN_LEN))),
        );
        assert!(big.len() > MAX_TOKEN_LEN);
        assert_eq!(decode_unverified(&big).unwrap_err(), JwtError::TooLong);
        // right at the limit is fine
        let base = signer().sign(&header(), &with(claims(), "pad", json!("")));
        let room = MAX_TOKEN_LEN - base.len();
        let mut extra = room * 3 / 4 + 8;
        let mut t = signer().sign(&header(), &with(claims(), "pad", json!("x".repeat(extra))));
        assert!(t.len() > MAX_TOKEN_LEN);
        while t.len() > MAX_TOKEN_LEN {
            extra -= 1;
            t = signer().sign(&header(), &with(claims(), "pad", json!("x".repeat(extra))));
        }
        assert!(t.len() > MAX_TOKEN_LEN - 4);
        check(&t).unwrap();
    }

    #[test]
    fn header_and_payload_must_be_utf8_json_objects() {
        let s = signer();
        let good_h = serde_json::to_vec(&header()).unwrap();
        let good_p = serde_json::to_vec(&claims()).unwrap();
        let bad_utf8_h = b"{\"alg\":\"RS256\",\"kid\":\"k\xff\"}".to_vec();
        let bad_utf8_p = b"{\"sub\":\"acc\xc3\x28\"}".to_vec();
        assert_eq!(
            check(&s.sign_raw(&bad_utf8_h, &good_p)).unwrap_err(),
            JwtError::NotUtf8
        );
        assert_eq!(
            check(&s.sign_raw(&good_h, &bad_utf8_p)).unwrap_err(),
            JwtError::NotUtf8
        );
        for not_object in [
            &b"[]"[..],
            b"\"RS256\"",
            b"null",
            b"42",
            b"{",
            b"nonsense",
            b"{}x",
            b"\xef\xbb\xbf{}",
        ] {
            assert_eq!(
                check(&s.sign_raw(not_object, &good_p)).unwrap_err(),
                JwtError::HeaderNotObject,
                "{not_object:?}"
            );
            assert_eq!(
                check(&s.sign_raw(&good_h, not_object)).unwrap_err(),
                JwtError::PayloadNotObject,
                "{not_object:?}"
            );
        }
    }

    #[test]
    fn duplicate_members_refused() {
        let s = signer();
        let good_h = serde_json::to_vec(&header()).unwrap();
        let good_p = serde_json::to_vec(&claims()).unwrap();
        for h in [
            format!(r#"{{"alg":"none","kid":"{KID}","alg":"RS256"}}"#),
            format!(r#"{{"alg":"RS256","kid":"other","kid":"{KID}"}}"#),
            format!(r#"{{"alg":"RS256","kid":"{KID}","\u0061lg":"RS256"}}"#),
        ] {
            assert_eq!(
                check(&s.sign_raw(h.as_bytes(), &good_p)).unwrap_err(),
                JwtError::DuplicateMember,
                "{h}"
            );
        }
        for p in [
            format!(
                r#"{{"sub":"someone-else","sub":"{ACCOUNT}","iss":"{ISSUER}","aud":"{AUDIENCE}","iat":{},"exp":{}}}"#,
                NOW - 10,
                NOW + 600
            ),
            format!(
                r#"{{"sub":"{ACCOUNT}","iss":"{ISSUER}","aud":"{AUDIENCE}","iat":{},"exp":{},"exp":{}}}"#,
                NOW - 10,
                NOW + 600,
                NOW + 999_999
            ),
            format!(
                r#"{{"sub":"{ACCOUNT}","iss":"{ISSUER}","aud":"{AUDIENCE}","iat":{},"exp":{},"scope":"repo:read","sc\u006fpe":"keys:write"}}"#,
                NOW - 10,
                NOW + 600
            ),
        ] {
            assert_eq!(
                check(&s.sign_raw(&good_h, p.as_bytes())).unwrap_err(),
                JwtError::DuplicateMember,
                "{p}"
            );
        }
        // the same payload without the duplicate verifies
        let p = format!(
            r#"{{"sub":"{ACCOUNT}","iss":"{ISSUER}","aud":"{AUDIENCE}","iat":{},"exp":{}}}"#,
            NOW - 10,
            NOW + 600
        );
        check(&s.sign_raw(&good_h, p.as_bytes())).unwrap();
    }

    // --- header

    #[test]
    fn only_rs256() {
        for alg in [
            "none",
            "None",
            "NONE",
            "nOnE",
            "HS256",
            "HS384",
            "HS512",
            "PS256",
            "PS384",
            "PS512",
            "ES256",
            "ES384",
            "ES512",
            "EdDSA",
            "RS384",
            "RS512",
            "rs256",
            "Rs256",
            "RS256 ",
            " RS256",
            "RS256\u{0}",
            "",
            "dir",
            "RSA-OAEP",
        ] {
            // correctly signed with the registered key, yet refused for its alg
            assert_eq!(
                header_result(with(header(), "alg", json!(alg))).unwrap_err(),
                JwtError::UnsupportedAlg,
                "{alg:?}"
            );
        }
        for alg in [
            json!(null),
            json!(256),
            json!(["RS256"]),
            json!({"RS256": true}),
            json!(true),
        ] {
            assert_eq!(
                header_result(with(header(), "alg", alg.clone())).unwrap_err(),
                JwtError::UnsupportedAlg,
                "{alg}"
            );
        }
        assert_eq!(
            header_result(without(header(), "alg")).unwrap_err(),
            JwtError::MissingAlg
        );
        // the classic unsigned token: no signature segment at all
        let unsigned = format!(
            "{}.{}.",
            b64(br#"{"alg":"none","kid":"jwk_3f9a"}"#),
            b64(&serde_json::to_vec(&claims()).unwrap())
        );
        assert_eq!(
            decode_unverified(&unsigned).unwrap_err(),
            JwtError::NotCompactJws
        );
        // and with a dummy signature
        assert_eq!(
            decode_unverified(&format!("{unsigned}AAAA")).unwrap_err(),
            JwtError::UnsupportedAlg
        );
    }

    fn hmac_token(alg_name: &str, alg: aws_lc_rs::hmac::Algorithm, secret: &[u8]) -> String {
        let h = json!({"alg": alg_name, "kid": KID, "typ": "JWT"});
        let input = format!(
            "{}.{}",
            b64(&serde_json::to_vec(&h).unwrap()),
            b64(&serde_json::to_vec(&claims()).unwrap())
        );
        let key = aws_lc_rs::hmac::Key::new(alg, secret);
        let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
        format!("{input}.{}", b64(tag.as_ref()))
    }

    #[test]
    fn hmac_keyed_with_the_public_key_is_refused() {
        let s = signer();
        let secrets: Vec<Vec<u8>> = vec![
            s.spki_pem.clone().into_bytes(),
            s.spki_pem.trim_end().as_bytes().to_vec(),
            s.key.to_pem().into_bytes(),
            s.spki_der.clone(),
            s.pkcs1_der.clone(),
            s.key.to_jwk(KID).to_string().into_bytes(),
            s.key.modulus().to_vec(),
            b64(s.key.modulus()).into_bytes(),
        ];
        for secret in &secrets {
            for (name, alg) in [
                ("HS256", aws_lc_rs::hmac::HMAC_SHA256),
                ("HS384", aws_lc_rs::hmac::HMAC_SHA384),
                ("HS512", aws_lc_rs::hmac::HMAC_SHA512),
            ] {
                assert_eq!(
                    check(&hmac_token(name, alg, secret)).unwrap_err(),
                    JwtError::UnsupportedAlg
                );
            }
            // an HMAC tag presented as an RS256 signature
            let t = hmac_token("RS256", aws_lc_rs::hmac::HMAC_SHA256, secret);
            assert_eq!(check(&t).unwrap_err(), JwtError::BadSignature);
        }
    }

    #[test]
    fn kid_rules() {
        assert_eq!(
            header_result(without(header(), "kid")).unwrap_err(),
            JwtError::MissingKid
        );
        for kid in [
            json!(""),
            json!(7),
            json!(null),
            json!(["a"]),
            json!("k".repeat(129)),
        ] {
            assert_eq!(
                header_result(with(header(), "kid", kid.clone())).unwrap_err(),
                JwtError::InvalidKid,
                "{kid}"
            );
        }
        let long = "k".repeat(128);
        let u = decode_unverified(&signer().sign(&with(header(), "kid", json!(long)), &claims()))
            .unwrap();
        assert_eq!(u.kid(), long);
    }

    #[test]
    fn crit_and_unsupported_parameters_refused() {
        for crit in [
            json!(["exp"]),
            json!([]),
            json!(["b64"]),
            json!("x"),
            json!(null),
        ] {
            assert_eq!(
                header_result(with(header(), "crit", crit.clone())).unwrap_err(),
                JwtError::CritNotSupported,
                "{crit}"
            );
        }
        for (k, v) in [
            ("cty", json!("JWT")),
            ("b64", json!(false)),
            ("zip", json!("DEF")),
            ("enc", json!("A256GCM")),
        ] {
            assert_eq!(
                header_result(with(header(), k, v)).unwrap_err(),
                JwtError::UnsupportedHeader,
                "{k}"
            );
        }
    }

    #[test]
    fn typ_rules() {
        for ok in ["JWT", "jwt", "Jwt", "application/jwt", "application/JWT"] {
            header_result(with(header(), "typ", json!(ok))).unwrap();
        }
        header_result(without(header(), "typ")).unwrap();
        for bad in [
            json!("at+jwt"),
            json!("JOSE"),
            json!("JWS"),
            json!(""),
            json!(1),
            json!(null),
        ] {
            assert_eq!(
                header_result(with(header(), "typ", bad.clone())).unwrap_err(),
                JwtError::BadTyp,
                "{bad}"
            );
        }
    }

    #[test]
    fn embedded_keys_and_key_urls_are_ignored() {
        let attacker = other_signer();
        let attacker_jwk = attacker.key.to_jwk(KID);
        let attacker_cert = STANDARD.encode(&attacker.spki_der);
        let h = with(
            with(
                with(
                    with(header(), "jwk", attacker_jwk.clone()),
                    "jku",
                    json!("https://attacker.example/jwks.json"),
                ),
                "x5u",
                json!("https://attacker.example/cert.pem"),
            ),
            "x5c",
            json!([attacker_cert]),
        );
        // signed by the key the header carries: still checked against the registered key only
        assert_eq!(
            check(&attacker.sign(&h, &claims())).unwrap_err(),
            JwtError::BadSignature
        );
        // signed by the registered key: the extra parameters change nothing
        check(&signer().sign(&h, &claims())).unwrap();
    }

    // --- signature

    #[test]
    fn signature_must_match_the_registered_key_and_content() {
        let s = signer();
        let good = s.sign(&header(), &claims());
        let (h, rest) = good.split_once('.').unwrap();
        let (_, sig) = rest.split_once('.').unwrap();
        // payload swapped for a more generous one, signature kept
        let greedy =
            b64(&serde_json::to_vec(&with(claims(), "scope", json!("repo:write"))).unwrap());
        assert_eq!(
            check(&format!("{h}.{greedy}.{sig}")).unwrap_err(),
            JwtError::BadSignature
        );
        // header swapped
        let h2 = b64(&serde_json::to_vec(&json!({"kid": KID, "alg": "RS256"})).unwrap());
        let p = rest.split_once('.').unwrap().0;
        assert_eq!(
            check(&format!("{h2}.{p}.{sig}")).unwrap_err(),
            JwtError::BadSignature
        );
        // signed by a different key
        assert_eq!(
            check(&other_signer().sign(&header(), &claims())).unwrap_err(),
            JwtError::BadSignature
        );
        // mangled signatures
        let raw = unb64(sig);
        let mut flipped = raw.clone();
        flipped[0] ^= 0x80;
        let mut short = raw.clone();
        short.pop();
        let mut long = vec![0u8];
        long.extend_from_slice(&raw);
        for bad in [
            flipped,
            short,
            long,
            vec![0u8; 256],
            vec![0xff; 256],
            vec![1],
        ] {
            assert_eq!(
                check(&format!("{h}.{p}.{}", b64(&bad))).unwrap_err(),
                JwtError::BadSignature
            );
        }
    }

    // --- claims

    #[test]
    fn subject_rules() {
        assert_eq!(
            claims_result(without(claims(), "sub")).unwrap_err(),
            JwtError::MissingSubject
        );
        for bad in [
            json!(""),
            json!(42),
            json!(null),
            json!([ACCOUNT]),
            json!("a".repeat(257)),
        ] {
            assert_eq!(
                claims_result(with(claims(), "sub", bad.clone())).unwrap_err(),
                JwtError::InvalidSubject,
                "{bad}"
            );
        }
        // correctly signed by the key, but naming another account
        assert_eq!(
            claims_result(with(claims(), "sub", json!("acc_other"))).unwrap_err(),
            JwtError::SubjectMismatch
        );
    }

    #[test]
    fn issuer_rules() {
        assert_eq!(
            claims_result(without(claims(), "iss")).unwrap_err(),
            JwtError::MissingIssuer
        );
        for bad in [
            json!("other"),
            json!("ci-deployer "),
            json!("CI-DEPLOYER"),
            json!(1),
            json!([ISSUER]),
            json!(null),
        ] {
            assert_eq!(
                claims_result(with(claims(), "iss", bad.clone())).unwrap_err(),
                JwtError::IssuerMismatch,
                "{bad}"
            );
        }
    }

    #[test]
    fn audience_rules() {
        claims_result(with(claims(), "aud", json!([AUDIENCE]))).unwrap();
        assert_eq!(
            claims_result(without(claims(), "aud")).unwrap_err(),
            JwtError::MissingAudience
        );
        for bad in [
            json!("https://other.example"),
            json!("https://dotgit.example/"),
            json!([AUDIENCE, "https://other.example"]),
            json!(["https://other.example", AUDIENCE]),
            json!([AUDIENCE, AUDIENCE]),
            json!([]),
            json!([[AUDIENCE]]),
            json!(["https://other.example"]),
            json!(1),
            json!(null),
            json!({"aud": AUDIENCE}),
        ] {
            assert_eq!(
                claims_result(with(claims(), "aud", bad.clone())).unwrap_err(),
                JwtError::AudienceMismatch,
                "{bad}"
            );
        }
    }

    #[test]
    fn exp_and_iat_required_integers() {
        assert_eq!(
            claims_result(without(claims(), "exp")).unwrap_err(),
            JwtError::MissingExp
        );
        assert_eq!(
            claims_result(without(claims(), "iat")).unwrap_err(),
            JwtError::MissingIat
        );
        let s = signer();
        let h = serde_json::to_vec(&header()).unwrap();
        let raw = |exp: &str, iat: &str, nbf: Option<&str>| {
            let nbf = nbf.map(|n| format!(",\"nbf\":{n}")).unwrap_or_default();
            let p = format!(
                r#"{{"sub":"{ACCOUNT}","iss":"{ISSUER}","aud":"{AUDIENCE}","exp":{exp},"iat":{iat}{nbf}}}"#
            );
            check(&s.sign_raw(&h, p.as_bytes()))
        };
        let exp = (NOW + 600).to_string();
        let iat = (NOW - 10).to_string();
        raw(&exp, &iat, None).unwrap();
        raw(&exp, &iat, Some(&iat)).unwrap();
        for bad in [
            format!("{exp}.0"),
            format!("{exp}.5"),
            "1.7e9".to_owned(),
            format!("\"{exp}\""),
            "null".to_owned(),
            "true".to_owned(),
            format!("[{exp}]"),
            "18446744073709551615".to_owned(),
        ] {
            assert_eq!(
                raw(&bad, &iat, None).unwrap_err(),
                JwtError::InvalidExp,
                "exp {bad}"
            );
            assert_eq!(
                raw(&exp, &bad, None).unwrap_err(),
                JwtError::InvalidIat,
                "iat {bad}"
            );
            assert_eq!(
                raw(&exp, &iat, Some(&bad)).unwrap_err(),
                JwtError::InvalidNbf,
                "nbf {bad}"
            );
        }
    }

    fn times(iat: i64, exp: i64) -> Value {
        with(with(claims(), "iat", json!(iat)), "exp", json!(exp))
    }

    #[test]
    fn expiry_with_leeway() {
        claims_result(times(NOW - 660, NOW - 60)).unwrap();
        assert_eq!(
            claims_result(times(NOW - 661, NOW - 61)).unwrap_err(),
            JwtError::Expired
        );
        assert_eq!(
            claims_result(times(NOW - 3600, NOW - 1000)).unwrap_err(),
            JwtError::Expired
        );
    }

    #[test]
    fn not_before_with_leeway() {
        claims_result(with(claims(), "nbf", json!(NOW + 60))).unwrap();
        claims_result(with(claims(), "nbf", json!(NOW - 5000))).unwrap();
        assert_eq!(
            claims_result(with(claims(), "nbf", json!(NOW + 61))).unwrap_err(),
            JwtError::NotYetValid
        );
    }

    #[test]
    fn issued_in_the_future_with_leeway() {
        claims_result(times(NOW + 60, NOW + 600)).unwrap();
        assert_eq!(
            claims_result(times(NOW + 61, NOW + 600)).unwrap_err(),
            JwtError::IssuedInFuture
        );
    }

    #[test]
    fn lifetime_rules() {
        assert_eq!(
            claims_result(times(NOW, NOW)).unwrap_err(),
            JwtError::ExpNotAfterIat
        );
        assert_eq!(
            claims_result(times(NOW, NOW - 1)).unwrap_err(),
            JwtError::ExpNotAfterIat
        );
        claims_result(times(NOW - 10, NOW - 10 + 3600)).unwrap();
        assert_eq!(
            claims_result(times(NOW - 10, NOW - 10 + 3601)).unwrap_err(),
            JwtError::LifetimeTooLong
        );
        let short = Policy {
            max_lifetime_seconds: 900,
            ..Policy::default()
        };
        claims_result_with(times(NOW - 10, NOW + 890), &short).unwrap();
        assert_eq!(
            claims_result_with(times(NOW - 10, NOW + 891), &short).unwrap_err(),
            JwtError::LifetimeTooLong
        );
        // a policy over 24 h is capped at 24 h
        let lax = Policy {
            max_lifetime_seconds: 10 * 86_400,
            ..Policy::default()
        };
        claims_result_with(times(NOW - 10, NOW - 10 + 86_400), &lax).unwrap();
        assert_eq!(
            claims_result_with(times(NOW - 10, NOW - 10 + 86_401), &lax).unwrap_err(),
            JwtError::LifetimeTooLong
        );
        // extreme values neither overflow nor pass
        assert_eq!(
            claims_result(times(i64::MIN, i64::MAX)).unwrap_err(),
            JwtError::LifetimeTooLong
        );
        assert_eq!(
            claims_result(times(i64::MAX - 10, i64::MAX)).unwrap_err(),
            JwtError::IssuedInFuture
        );
        assert_eq!(
            claims_result(times(i64::MIN, i64::MIN + 10)).unwrap_err(),
            JwtError::Expired
        );
    }

    #[test]
    fn scope_rules() {
        let ok = |s: &str| {
            claims_result(with(claims(), "scope", json!(s)))
                .unwrap()
                .scopes
        };
        assert_eq!(
            ok("repo:read:my-app repo:write").to_strings(),
            vec!["repo:read:my-app", "repo:write"]
        );
        assert!(ok("").is_empty());
        assert_eq!(ok("deploy:read").to_strings(), vec!["deploy:read"]);
        for bad in [
            "keys:write",
            "deploy:write",
            "audit:read",
            "repo:read keys:read",
        ] {
            assert_eq!(
                claims_result(with(claims(), "scope", json!(bad))).unwrap_err(),
                JwtError::ScopeNotAllowed,
                "{bad}"
            );
        }
        for bad in [
            json!("repo:admin"),
            json!("Repo:read"),
            json!("repo:read,deploy:read"),
            json!("repo:read\tdeploy:read"),
            json!("repo:*"),
            json!(["repo:read"]),
            json!(null),
            json!(1),
        ] {
            assert_eq!(
                claims_result(with(claims(), "scope", bad.clone())).unwrap_err(),
                JwtError::InvalidScope,
                "{bad}"
            );
        }
        let narrow = Policy {
            allowed: ScopeSet::parse_space_separated("repo:read:my-app").unwrap(),
            ..Policy::default()
        };
        claims_result_with(with(claims(), "scope", json!("repo:read:my-app")), &narrow).unwrap();
        assert_eq!(
            claims_result_with(with(claims(), "scope", json!("repo:read")), &narrow).unwrap_err(),
            JwtError::ScopeNotAllowed
        );
    }

    #[test]
    fn jti_rules() {
        let single = Policy {
            single_use: true,
            ..Policy::default()
        };
        assert_eq!(
            claims_result_with(claims(), &single).unwrap_err(),
            JwtError::MissingJti
        );
        let v = claims_result_with(with(claims(), "jti", json!("a".repeat(256))), &single).unwrap();
        assert_eq!(v.jti.as_deref(), Some("a".repeat(256).as_str()));
        // 256 characters, more bytes
        claims_result_with(with(claims(), "jti", json!("é".repeat(256))), &single).unwrap();
        for bad in [
            json!(""),
            json!("a".repeat(257)),
            json!(7),
            json!(null),
            json!(["x"]),
        ] {
            assert_eq!(
                claims_result_with(with(claims(), "jti", bad.clone()), &single).unwrap_err(),
                JwtError::InvalidJti,
                "{bad}"
            );
            assert_eq!(
                claims_result(with(claims(), "jti", bad.clone())).unwrap_err(),
                JwtError::InvalidJti,
                "{bad}"
            );
        }
        assert_eq!(claims_result(claims()).unwrap().jti, None);
    }

    #[test]
    fn ips_claim() {
        let v = claims_result(with(claims(), "ips", json!(["203.0.113.0/24", "::1"]))).unwrap();
        let ips = v.ips.unwrap();
        assert!(ips[0].contains("203.0.113.9".parse().unwrap()));
        assert!(!ips[0].contains("203.0.114.9".parse().unwrap()));
        let many: Vec<String> = (0..64).map(|i| format!("10.0.{i}.0/24")).collect();
        assert_eq!(
            claims_result(with(claims(), "ips", json!(many)))
                .unwrap()
                .ips
                .unwrap()
                .len(),
            64
        );
        let too_many: Vec<String> = (0..65).map(|i| format!("10.0.{i}.0/24")).collect();
        for bad in [
            json!(too_many),
            json!([]),
            json!(["nope"]),
            json!(["10.0.0.0/33"]),
            json!(["10.0.0.0/8", "::/129"]),
            json!([10]),
            json!("10.0.0.0/8"),
            json!(null),
            json!({"0": "10.0.0.0/8"}),
        ] {
            assert_eq!(
                claims_result(with(claims(), "ips", bad.clone())).unwrap_err(),
                JwtError::InvalidIps,
                "{bad}"
            );
        }
    }

    #[test]
    fn projects_claim() {
        let v = claims_result(with(claims(), "projects", json!(["my-app", "0"]))).unwrap();
        assert_eq!(v.projects.unwrap(), vec!["my-app", "0"]);
        let many: Vec<String> = (0..64).map(|i| format!("p{i}")).collect();
        claims_result(with(claims(), "projects", json!(many))).unwrap();
        let too_many: Vec<String> = (0..65).map(|i| format!("p{i}")).collect();
        for bad in [
            json!(too_many),
            json!([]),
            json!(["My-App"]),
            json!(["-app"]),
            json!(["a".repeat(64)]),
            json!(["my_app"]),
            json!([""]),
            json!([1]),
            json!("my-app"),
            json!(null),
        ] {
            assert_eq!(
                claims_result(with(claims(), "projects", bad.clone())).unwrap_err(),
                JwtError::InvalidProjects,
                "{bad}"
            );
        }
    }

    #[test]
    fn reasons_are_distinct_audit_labels() {
        use JwtError::*;
        let all = [
            TooLong,
            NotCompactJws,
            Jwe,
            BadBase64,
            NotUtf8,
            HeaderNotObject,
            PayloadNotObject,
            DuplicateMember,
            MissingAlg,
            UnsupportedAlg,
            MissingKid,
            InvalidKid,
            CritNotSupported,
            BadTyp,
            UnsupportedHeader,
            MissingSubject,
            InvalidSubject,
            BadSignature,
            SubjectMismatch,
            MissingIssuer,
            IssuerMismatch,
            MissingAudience,
            AudienceMismatch,
            MissingExp,
            InvalidExp,
            MissingIat,
            InvalidIat,
            InvalidNbf,
            ExpNotAfterIat,
            LifetimeTooLong,
            Expired,
            NotYetValid,
            IssuedInFuture,
            InvalidScope,
            ScopeNotAllowed,
            MissingJti,
            InvalidJti,
            InvalidIps,
            InvalidProjects,
        ];
        let mut seen = std::collections::HashSet::new();
        for e in all {
            let r = e.reason();
            assert!(seen.insert(r), "duplicate reason {r}");
            assert!(r.starts_with("jwt_"));
            assert!(r
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'_' || b.is_ascii_digit()));
            assert!(!e.to_string().is_empty());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// robustness

mod robustness {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn decode_never_panics_on_any_string(s in "\\PC{0,300}") {
            let _ = decode_unverified(&s);
        }

        #[test]
        fn decode_never_panics_on_dotted_base64url(s in "[A-Za-z0-9_\\-.=+/]{0,200}") {
            let _ = decode_unverified(&s);
        }

        #[test]
        fn decode_never_panics_on_any_json_ish_segments(
            h in prop::collection::vec(any::<u8>(), 0..120),
            p in prop::collection::vec(any::<u8>(), 0..120),
            s in prop::collection::vec(any::<u8>(), 0..64),
        ) {
            let _ = decode_unverified(&format!("{}.{}.{}", b64(&h), b64(&p), b64(&s)));
        }

        #[test]
        fn mutated_good_tokens_never_verify(pos in 0usize..2000, byte in any::<u8>()) {
            let good = signer().sign(&header(), &claims());
            let mut bytes = good.clone().into_bytes();
            let i = pos % bytes.len();
            prop_assume!(bytes[i] != byte);
            bytes[i] = byte;
            if let Ok(t) = String::from_utf8(bytes) {
                // a changed character can only be accepted if it decodes to the same bytes,
                // which strict base64url never allows
                prop_assert!(check(&t).is_err(), "mutation at {i} accepted");
            }
        }

        #[test]
        fn keys_never_panic(s in "\\PC{0,400}") {
            let _ = RsaPublicKey::from_pem(&s);
            let _ = RsaPublicKey::from_pem(&format!("-----BEGIN PUBLIC KEY-----\n{s}\n-----END PUBLIC KEY-----"));
            let _ = RsaPublicKey::from_pem_or_jwk(&Value::String(s));
        }

        #[test]
        fn der_never_panics(der in prop::collection::vec(any::<u8>(), 0..600)) {
            let _ = RsaPublicKey::from_pem(&pem("PUBLIC KEY", &der));
            let _ = RsaPublicKey::from_pem(&pem("RSA PUBLIC KEY", &der));
        }
    }
}
