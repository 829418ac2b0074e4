//! Customer-signed RS256 JWTs end to end: JWT Configuration over the API, tokens minted in the
//! test with aws-lc-rs (not with the verifier), and the attack catalogue against the real server.
//! Every refusal must be the one 401 `invalid_token`, never a 5xx.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use dotgit_testkit::{json, reqwest, Account, TestServer, AUDIENCE, T0};
use reqwest::Method;
use serde_json::Value;

/// A customer's signing key.
pub struct Signer {
    kp: KeyPair,
}

impl Signer {
    pub fn new(bits: KeySize) -> Signer {
        Signer {
            kp: KeyPair::generate(bits).unwrap(),
        }
    }

    /// The public key as PKCS#1 PEM (`RSA PUBLIC KEY`).
    pub fn pkcs1_pem(&self) -> String {
        pem("RSA PUBLIC KEY", self.kp.public_key().as_ref())
    }

    pub fn sign_raw(&self, header: &str, claims: &str) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        );
        let mut sig = vec![0u8; self.kp.public_modulus_len()];
        self.kp
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                input.as_bytes(),
                &mut sig,
            )
            .unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    pub fn sign(&self, header: Value, claims: Value) -> String {
        self.sign_raw(&header.to_string(), &claims.to_string())
    }
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

struct Setup {
    s: TestServer,
    alice: Account,
    admin: String,
    signer: Signer,
    kid: String,
    issuer: String,
}

async fn setup_with(single_use: bool) -> Setup {
    setup_cached(single_use, 100_000).await
}

async fn setup_cached(single_use: bool, cache_capacity: u64) -> Setup {
    // these tests make many failed attempts on purpose; the limiter has its own tests
    let s = TestServer::start_with(|c| {
        c.auth_failure_limit = 1000;
        c.verification_cache_capacity = cache_capacity;
    })
    .await;
    let alice = s.account("alice").await;
    let admin = s
        .key(&alice, &["keys:write", "repo:write", "deploy:read"])
        .await;
    let signer = Signer::new(KeySize::Rsa2048);
    let r = s
        .post(
            "/v1/jwt-keys",
            &admin,
            json!({"name": "edge", "public_key": signer.pkcs1_pem(),
                   "allowed_scopes": ["repo:read", "deploy:read"], "max_lifetime_seconds": 900,
                   "issuer": "https://ci.example.com", "single_use": single_use}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["subject"], alice.id.as_str());
    assert_eq!(r.body["issuer"], "https://ci.example.com");
    assert_eq!(r.body["public_key_jwk"]["kty"], "RSA");
    let kid = r.body["kid"].as_str().unwrap().to_owned();
    Setup {
        s,
        alice,
        admin,
        signer,
        kid,
        issuer: "https://ci.example.com".into(),
    }
}

impl Setup {
    fn claims(&self, extra: Value) -> Value {
        let now = T0 + (self.s_now() - T0);
        let mut c = json!({"iss": self.issuer, "sub": self.alice.id, "aud": AUDIENCE,
                           "iat": now, "exp": now + 600, "scope": "repo:read"});
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c
    }
    fn s_now(&self) -> i64 {
        use dotgit_core::Clock;
        self.s.clock.now()
    }
    fn header(&self) -> Value {
        json!({"alg": "RS256", "typ": "JWT", "kid": self.kid})
    }
    fn token(&self, extra: Value) -> String {
        self.signer.sign(self.header(), self.claims(extra))
    }
}

async fn refused(s: &TestServer, token: &str, why: &str) {
    let r = s.get("/v1/user", token).await;
    assert_eq!(
        (r.status, r.code()),
        (401, "invalid_token"),
        "{why}: {}",
        r.text
    );
    assert_eq!(
        r.body["message"],
        dotgit_server::error::INVALID_TOKEN_MESSAGE,
        "{why}"
    );
}

#[tokio::test]
async fn a_registered_key_signs_tokens_that_work_until_exp_or_deletion() {
    let t = setup_with(false).await;
    let s = &t.s;
    let tok = t.token(json!({}));
    let r = s.get("/v1/user", &tok).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["credential"]["kind"], "jwt");
    assert_eq!(r.body["credential"]["id"], t.kid.as_str());
    assert_eq!(r.body["credential"]["scopes"], json!(["repo:read"]));
    assert_eq!(
        r.body["credential"]["expires_at"],
        dotgit_core::clock::rfc3339(T0 + 600)
    );
    assert_eq!(s.get("/v1/projects", &tok).await.status, 200);
    let r = s.post("/v1/projects", &tok, json!({"slug": "x"})).await;
    assert_eq!((r.status, r.code()), (401, "insufficient_scope"));
    // reusable until it expires (60 s leeway), then refused — from the cache too
    assert_eq!(s.get("/v1/user", &tok).await.status, 200);
    s.clock.advance(600 + 60);
    assert_eq!(s.get("/v1/user", &tok).await.status, 200);
    s.clock.advance(1);
    refused(s, &tok, "expired").await;
    // listing and reading the configuration
    let r = s.get("/v1/jwt-keys", &t.admin).await;
    assert_eq!(r.body.as_array().unwrap().len(), 1);
    assert_eq!(r.body[0]["max_lifetime_seconds"], 900);
    assert_eq!(
        s.get(&format!("/v1/jwt-keys/{}", t.kid), &t.admin)
            .await
            .status,
        200
    );
    // deletion takes effect at once, also for a token already in the cache
    let fresh = t.token(json!({}));
    assert_eq!(s.get("/v1/user", &fresh).await.status, 200);
    assert_eq!(
        s.delete(&format!("/v1/jwt-keys/{}", t.kid), &t.admin)
            .await
            .status,
        204
    );
    refused(s, &fresh, "key deleted").await;
    assert_eq!(
        s.get(&format!("/v1/jwt-keys/{}", t.kid), &t.admin)
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn with_the_verification_cache_off_every_use_is_verified_in_full() {
    // the token's digest keys only the cache; with the cache off the server skips it, and a
    // repeated token must still go through signature, expiry and key checks every time
    let t = setup_cached(false, 0).await;
    let s = &t.s;
    let tok = t.token(json!({}));
    for _ in 0..2 {
        let r = s.get("/v1/user", &tok).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.body["credential"]["id"], t.kid.as_str());
    }
    // a different signature over the same claims is refused, even right after a success
    let (signing_input, _) = tok.rsplit_once('.').unwrap();
    let other = t.token(json!({"scope": "deploy:read"}));
    let (_, foreign_sig) = other.rsplit_once('.').unwrap();
    refused(
        s,
        &format!("{signing_input}.{foreign_sig}"),
        "signature of another token",
    )
    .await;
    s.clock.advance(600 + 61);
    refused(s, &tok, "expired").await;
    let fresh = t.token(json!({}));
    assert_eq!(s.get("/v1/user", &fresh).await.status, 200);
    let r = s.delete(&format!("/v1/jwt-keys/{}", t.kid), &t.admin).await;
    assert_eq!(r.status, 204);
    refused(s, &fresh, "key deleted").await;
}

#[tokio::test]
async fn registration_refuses_bad_keys_and_keeps_no_trace_of_private_members() {
    let s = TestServer::start().await;
    let a = s.account("alice").await;
    let admin = s.key(&a, &["keys:write", "repo:read"]).await;
    let good = Signer::new(KeySize::Rsa2048).pkcs1_pem();
    let jwk = dotgit_core::jwt::RsaPublicKey::from_pem(&good)
        .unwrap()
        .to_jwk("x");
    let secret_d = "c2VjcmV0LXByaXZhdGUtZXhwb25lbnQtdmFsdWUtMTIzNDU2Nzg5MA";
    let mut private_jwk = jwk.clone();
    private_jwk["d"] = json!(secret_d);
    let cases = [
        (
            json!({"name": "a", "public_key": private_jwk, "allowed_scopes": ["repo:read"]}),
            400,
            "invalid_key",
        ),
        (
            json!({"name": "a", "public_key": "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n", "allowed_scopes": ["repo:read"]}),
            400,
            "invalid_key",
        ),
        (
            json!({"name": "a", "public_key": "not a key", "allowed_scopes": ["repo:read"]}),
            400,
            "invalid_key",
        ),
        (
            json!({"name": "a", "public_key": {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}, "allowed_scopes": ["repo:read"]}),
            400,
            "invalid_key",
        ),
        (
            json!({"name": "a", "public_key": good, "allowed_scopes": ["repo:read"], "max_lifetime_seconds": 100}),
            400,
            "invalid_request",
        ),
        (
            json!({"name": "a", "public_key": good, "allowed_scopes": ["repo:read"], "max_lifetime_seconds": 86401}),
            400,
            "invalid_request",
        ),
        (
            json!({"name": "a", "public_key": good, "allowed_scopes": ["repo:nope"]}),
            400,
            "invalid_scope",
        ),
        (
            json!({"name": "a", "public_key": good, "allowed_scopes": ["repo:write"]}),
            401,
            "insufficient_scope",
        ),
        (
            json!({"name": "a", "public_key": good}),
            400,
            "invalid_request",
        ),
    ];
    for (body, status, code) in cases {
        let r = s.post("/v1/jwt-keys", &admin, body.clone()).await;
        assert_eq!((r.status, r.code()), (status, code), "{body}: {}", r.text);
        assert!(!r.text.contains(secret_d));
    }
    // a 1024-bit key
    let small = Signer::new(KeySize::Rsa2048); // aws-lc-rs will not make 1024-bit keys; use the fixture
    drop(small);
    let k1024 = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../dotgit-core/testdata/jwt/rsa1024.spki.pem"
    ))
    .unwrap();
    let r = s
        .post(
            "/v1/jwt-keys",
            &admin,
            json!({"name": "a", "public_key": k1024, "allowed_scopes": ["repo:read"]}),
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "invalid_key"));
    assert!(
        r.body["message"].as_str().unwrap().contains("2048"),
        "{}",
        r.text
    );
    // a JWK works; the same name twice does not
    let r = s
        .post(
            "/v1/jwt-keys",
            &admin,
            json!({"name": "jwk", "public_key": jwk, "allowed_scopes": ["repo:read"]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["max_lifetime_seconds"], 3600);
    assert_eq!(
        r.body["issuer"], r.body["kid"],
        "issuer defaults to the kid"
    );
    let r = s
        .post(
            "/v1/jwt-keys",
            &admin,
            json!({"name": "jwk", "public_key": good, "allowed_scopes": ["repo:read"]}),
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "invalid_request"));
    // nothing of the private JWK reached the database files
    let st = s.state().clone();
    st.store.close().await;
    for entry in std::fs::read_dir(&s.config.data_dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        let hay = String::from_utf8_lossy(&bytes);
        assert!(!hay.contains(secret_d), "private member found on disk");
    }
}

#[tokio::test]
async fn the_attack_catalogue_is_refused() {
    let t = setup_with(false).await;
    let s = &t.s;
    let c = t.claims(json!({}));
    let other = Signer::new(KeySize::Rsa2048);
    let pem_text = t.signer.pkcs1_pem();
    let hs = |alg: &str, secret: &[u8]| {
        let h = URL_SAFE_NO_PAD.encode(json!({"alg": alg, "kid": t.kid}).to_string());
        let p = URL_SAFE_NO_PAD.encode(c.to_string());
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
        let tag = aws_lc_rs::hmac::sign(&key, format!("{h}.{p}").as_bytes());
        format!("{h}.{p}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    };
    let unsigned = |alg: &str| {
        format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(json!({"alg": alg, "kid": t.kid}).to_string()),
            URL_SAFE_NO_PAD.encode(c.to_string())
        )
    };
    let mut attacks: Vec<(&str, String)> = vec![
        ("alg none", unsigned("none")),
        ("alg None", unsigned("None")),
        ("alg NONE + fake sig", format!("{}c2ln", unsigned("NONE"))),
        ("HS256 keyed with the PEM", hs("HS256", pem_text.as_bytes())),
        ("HS256 keyed with the PEM body", hs("HS256", pem_text.lines().filter(|l| !l.starts_with("---")).collect::<String>().as_bytes())),
        ("signed by another key", other.sign(t.header(), c.clone())),
        ("jwk header naming the attacker's key", other.sign(json!({"alg": "RS256", "kid": t.kid, "jwk": dotgit_core::jwt::RsaPublicKey::from_pem(&other.pkcs1_pem()).unwrap().to_jwk("x")}), c.clone())),
        ("jku header", other.sign(json!({"alg": "RS256", "kid": t.kid, "jku": "https://127.0.0.1:1/jwks"}), c.clone())),
        ("PS256", t.signer.sign(json!({"alg": "PS256", "kid": t.kid}), c.clone())),
        ("RS512", t.signer.sign(json!({"alg": "RS512", "kid": t.kid}), c.clone())),
        ("unknown crit", t.signer.sign(json!({"alg": "RS256", "kid": t.kid, "crit": ["exp"]}), c.clone())),
        ("unknown kid", t.signer.sign(json!({"alg": "RS256", "kid": "jwk_doesnotexist0000"}), c.clone())),
        ("wrong audience", t.token(json!({"aud": "https://evil.example"}))),
        ("two audiences", t.token(json!({"aud": [AUDIENCE, "https://evil.example"]}))),
        ("wrong issuer", t.token(json!({"iss": "https://evil.example"}))),
        ("no exp", t.token(json!({"exp": null}))),
        ("no iat", t.token(json!({"iat": null}))),
        ("lifetime over the key's max", t.token(json!({"exp": T0 + 901}))),
        ("not yet valid", t.token(json!({"nbf": T0 + 300}))),
        ("expired", t.token(json!({"iat": T0 - 800, "exp": T0 - 61}))),
        ("scope beyond the key", t.token(json!({"scope": "repo:write"}))),
        ("malformed scope", t.token(json!({"scope": "repo:READ"}))),
        ("duplicate claim", t.signer.sign_raw(&t.header().to_string(), &format!("{{\"sub\":\"{}\",{}", "acct_evil", &c.to_string()[1..]))),
        ("tampered payload", {
            let tok = t.token(json!({}));
            let parts: Vec<&str> = tok.split('.').collect();
            let evil = URL_SAFE_NO_PAD.encode(t.claims(json!({"scope": "deploy:read"})).to_string());
            format!("{}.{}.{}", parts[0], evil, parts[2])
        }),
        ("oversized", t.token(json!({"pad": "x".repeat(12_000)}))),
        ("JWE shape", "a.b.c.d.e".to_owned()),
    ];
    // kid of alice's key, but sub naming another account: the key is only looked up there
    let bob = s.account("bob").await;
    attacks.push(("sub of another account", t.token(json!({"sub": bob.id}))));
    for (why, tok) in &attacks {
        refused(s, tok, why).await;
    }
    // a key registered by bob cannot be used to sign for alice
    let bob_admin = s.key(&bob, &["keys:write", "repo:read"]).await;
    let bob_signer = Signer::new(KeySize::Rsa2048);
    let r = s.post("/v1/jwt-keys", &bob_admin, json!({"name": "b", "public_key": bob_signer.pkcs1_pem(), "allowed_scopes": ["repo:read"], "issuer": t.issuer})).await;
    let bob_kid = r.body["kid"].as_str().unwrap();
    let forged = bob_signer.sign(json!({"alg": "RS256", "kid": bob_kid}), c.clone());
    refused(s, &forged, "foreign kid").await;
    // the legitimate token still works after all that
    let ok = t.token(json!({}));
    assert_eq!(s.get("/v1/user", &ok).await.status, 200);
}

#[tokio::test]
async fn single_use_tokens_are_accepted_once_even_across_restarts_and_races() {
    let mut t = setup_with(true).await;
    let no_jti = t.token(json!({}));
    refused(&t.s, &no_jti, "single-use key without jti").await;
    let tok = t.token(json!({"jti": "run-1"}));
    assert_eq!(t.s.get("/v1/user", &tok).await.status, 200);
    refused(&t.s, &tok, "replay").await;
    let tok2 = t.token(json!({"jti": "run-2"}));
    t.s.restart().await;
    refused(&t.s, &tok, "replay after restart").await;
    assert_eq!(t.s.get("/v1/user", &tok2).await.status, 200);
    // 10 racing uses of one token: exactly one succeeds
    let tok3 = t.token(json!({"jti": "race"}));
    let s = &t.s;
    let rs = futures::future::join_all((0..10).map(|_| s.get("/v1/user", &tok3))).await;
    assert_eq!(rs.iter().filter(|r| r.status == 200).count(), 1);
    assert!(rs
        .iter()
        .filter(|r| r.status != 200)
        .all(|r| r.code() == "invalid_token"));
    let _ = &mut t;
}

#[tokio::test]
async fn custom_claims_narrow_access_by_source_and_project() {
    let t = setup_with(false).await;
    let s = &t.s;
    for slug in ["my-app", "other"] {
        assert_eq!(
            s.post("/v1/projects", &t.admin, json!({"slug": slug}))
                .await
                .status,
            201
        );
    }
    // ips: the test client connects from 127.0.0.1
    refused(
        s,
        &t.token(json!({"ips": ["10.0.0.0/8"]})),
        "outside allowed networks",
    )
    .await;
    assert_eq!(
        s.get(
            "/v1/user",
            &t.token(json!({"ips": ["10.0.0.0/8", "127.0.0.0/8"]}))
        )
        .await
        .status,
        200
    );
    refused(s, &t.token(json!({"ips": ["not-a-cidr"]})), "bad ips claim").await;
    // projects: listings filtered, other projects refused with the scope they would need
    let tok = t.token(json!({"projects": ["my-app"], "scope": "repo:read deploy:read"}));
    let r = s.get("/v1/projects", &tok).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body.as_array().unwrap().len(), 1);
    assert_eq!(r.body[0]["slug"], "my-app");
    assert_eq!(s.get("/v1/projects/my-app", &tok).await.status, 200);
    let r = s.get("/v1/projects/other", &tok).await;
    assert_eq!((r.status, r.code()), (401, "insufficient_scope"));
    assert!(r
        .header("www-authenticate")
        .unwrap()
        .contains(r#"scope="repo:read:other""#));
    assert_eq!(
        s.get("/v1/projects/other/deployments", &tok).await.code(),
        "insufficient_scope"
    );
    refused(
        s,
        &t.token(json!({"projects": ["Bad_Slug"]})),
        "bad projects claim",
    )
    .await;
    let r = s.req(Method::GET, "/v1/user", Some(&tok), None).await;
    assert_eq!(
        r.body["credential"]["scopes"],
        json!(["repo:read:my-app", "deploy:read:my-app"])
    );
}
