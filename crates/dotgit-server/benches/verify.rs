//! Micro-benchmarks of the verification paths, each against its floor measured in the same run:
//! the customer-JWT path (decode, key lookup, RS256, claims, scopes) against the raw RS256
//! verify alone; a cached API key; key parsing and checksum; scope matching.
//!
//! `cargo bench -p dotgit-server --bench verify` — prints medians of interleaved rounds.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{self, KeyPair as _, RSA_PKCS1_SHA256};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use dotgit_core::{Action, ManualClock, Plan, Resource, ScopeSet};
use dotgit_server::{auth, ops, AppState, Config};
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

const T0: i64 = 1_795_953_600;
const TOKENS: usize = 2_000;
const ROUNDS: usize = 7;

fn pem(label: &str, der: &[u8]) -> String {
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        STANDARD.encode(der)
    )
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// ns per call of `f` over `n` calls.
fn time(n: usize, mut f: impl FnMut(usize)) -> f64 {
    let start = Instant::now();
    for i in 0..n {
        f(i);
    }
    start.elapsed().as_nanos() as f64 / n as f64
}

fn main() {
    dotgit_server::tls::install_crypto_provider();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = rt
        .block_on(dotgit_store::Store::open(&dir.path().join("b.db")))
        .unwrap();
    let config = Config {
        audience: Some("https://dotgit.bench".into()),
        request_budget_per_hour: u32::MAX,
        // this measures verification; the audit writer's cost is measured by bench/run.sh
        audit_auth_success: false,
        ..Config::default()
    };
    let (state, _audit_rx) = AppState::new(store, Arc::new(ManualClock::new(T0)), config);
    let actor = dotgit_server::audit::Actor::internal();
    let actor = dotgit_server::audit::Actor {
        ip: Some("127.0.0.1".parse().unwrap()),
        ..actor
    };
    let acct = rt
        .block_on(ops::create_account(
            &state.store,
            T0,
            "bench",
            "bench password",
            Plan::Pro,
            false,
            &actor,
        ))
        .unwrap();
    let scopes = ScopeSet::parse_list(&["repo:read"]).unwrap();
    let (_k, api_key) = rt
        .block_on(ops::create_api_key(
            &state.store,
            T0,
            &acct.id,
            "b",
            &scopes,
            None,
            &actor,
        ))
        .unwrap();
    let kp = KeyPair::generate(KeySize::Rsa2048).unwrap();
    let public_pem = serde_json::Value::String(pem("RSA PUBLIC KEY", kp.public_key().as_ref()));
    let row = rt
        .block_on(ops::register_jwt_key(
            &state.store,
            T0,
            &acct.id,
            ops::NewJwtKey {
                name: "bench",
                public_key: &public_pem,
                allowed_scopes: &scopes,
                max_lifetime_seconds: None,
                issuer: Some("bench"),
                single_use: false,
            },
            &actor,
        ))
        .unwrap();
    // distinct tokens (different iat), so none is served from the verified-token cache
    let rng = SystemRandom::new();
    let header = URL_SAFE_NO_PAD.encode(format!(
        r#"{{"alg":"RS256","typ":"JWT","kid":"{}"}}"#,
        row.kid
    ));
    let tokens: Vec<(String, Vec<u8>, Vec<u8>)> = (0..TOKENS)
        .map(|i| {
            let iat = T0 - i as i64;
            let claims = format!(
                r#"{{"iss":"bench","sub":"{}","aud":"https://dotgit.bench","iat":{iat},"exp":{},"scope":"repo:read"}}"#,
                acct.id,
                iat + 3000
            );
            let input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims));
            let mut sig = vec![0; kp.public_modulus_len()];
            kp.sign(&RSA_PKCS1_SHA256, &rng, input.as_bytes(), &mut sig).unwrap();
            let tok = format!("{input}.{}", URL_SAFE_NO_PAD.encode(&sig));
            (tok, input.into_bytes(), sig)
        })
        .collect();
    // the floor: a key parsed once, as fast as aws-lc-rs verifies
    let raw_key = signature::ParsedPublicKey::new(
        &signature::RSA_PKCS1_2048_8192_SHA256,
        kp.public_key().as_ref(),
    )
    .unwrap();
    // warm the key cache and the API-key cache
    rt.block_on(auth::verify_credential(&state, &tokens[0].0, &actor))
        .unwrap();
    rt.block_on(auth::verify_credential(&state, api_key.expose(), &actor))
        .unwrap();

    let (mut raw, mut jwt, mut jwt_cached, mut key_cached, mut classify, mut scope) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    let (mut authn, mut limiter) = (vec![], vec![]);
    let mut headers = axum::http::HeaderMap::new();
    headers.insert(
        "authorization",
        format!("Bearer {}", api_key.expose()).parse().unwrap(),
    );
    let ip = actor.ip.unwrap();
    for round in 0..ROUNDS {
        raw.push(time(TOKENS, |i| {
            let (_, msg, sig) = &tokens[i];
            raw_key.verify_sig(black_box(msg), black_box(sig)).unwrap();
        }));
        // each round needs tokens the cache has not seen: clear it (key entries are re-read once)
        state.cache.invalidate_all();
        jwt.push(time(TOKENS, |i| {
            let p = rt.block_on(auth::verify_credential(
                &state,
                black_box(&tokens[i].0),
                &actor,
            ));
            assert!(p.is_ok(), "round {round} token {i}: {:?}", p.err());
        }));
        jwt_cached.push(time(TOKENS, |i| {
            let p = rt.block_on(auth::verify_credential(
                &state,
                black_box(&tokens[i].0),
                &actor,
            ));
            assert!(p.is_ok());
        }));
        key_cached.push(time(20_000, |_| {
            let p = rt.block_on(auth::verify_credential(
                &state,
                black_box(api_key.expose()),
                &actor,
            ));
            assert!(p.is_ok());
        }));
        authn.push(time(20_000, |_| {
            let p = rt.block_on(auth::authenticate(&state, black_box(&headers), &actor));
            assert!(p.is_ok());
        }));
        limiter.push(time(200_000, |_| {
            black_box(state.limiter.blocked(black_box(ip), T0));
            black_box(
                state
                    .limiter
                    .spend(black_box("key_0123456789abcdef"), u32::MAX, T0),
            );
        }));
        classify.push(time(200_000, |_| {
            black_box(dotgit_core::credential::classify(black_box(
                api_key.expose(),
            )));
        }));
        let set = ScopeSet::parse_list(&[
            "repo:read:a",
            "deploy:write",
            "team:read",
            "repo:write:my-app",
        ])
        .unwrap();
        scope.push(time(200_000, |_| {
            black_box(set.allows(Resource::Repo, Action::Read, black_box(Some("my-app"))));
        }));
    }
    let ratio: Vec<f64> = jwt.iter().zip(&raw).map(|(j, r)| j / r).collect();
    let (raw_m, jwt_m) = (median(raw), median(jwt));
    println!("| path | median ns/op ({ROUNDS} rounds) |");
    println!("|---|---|");
    println!("| raw RS256 verify (aws-lc-rs, 2048-bit) | {raw_m:.0} |");
    println!("| customer JWT, full verify path, token not cached | {jwt_m:.0} |");
    println!(
        "| customer JWT, repeated token (verified cache) | {:.0} |",
        median(jwt_cached)
    );
    println!("| API key, cached | {:.0} |", median(key_cached));
    let (authn_m, limiter_m) = (median(authn), median(limiter));
    println!("| authenticate(): header, limiter, cached API key, budget | {authn_m:.0} |");
    println!("| limiter alone (source check + budget spend) | {limiter_m:.0} |");
    println!(
        "| classify + checksum of an API key | {:.0} |",
        median(classify)
    );
    println!("| scope match (4-scope set) | {:.1} |", median(scope));
    println!();
    println!(
        "JWT path / raw RS256 verify: {:.3}x (median of per-round ratios; target <= 1.5x)",
        median(ratio)
    );
    println!(
        "limiter share of authenticate(): {:.1}% (target: under 5% of a whole request, which costs more than authenticate())",
        100.0 * limiter_m / authn_m
    );
}
