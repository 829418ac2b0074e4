//! Mint an RS256 JWT for dotgit in Rust with aws-lc-rs (no JWT library needed).
//! Needs: PRIVATE_KEY (PKCS#8 PEM file), KID, ISS, SUB, AUD; optional SCOPE (default "repo:read").
//! Run: `cargo run -q -p dotgit-cli --example mint_jwt`

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeyPair;
use aws_lc_rs::signature::RSA_PKCS1_SHA256;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use std::time::{SystemTime, UNIX_EPOCH};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let env = |k: &str| std::env::var(k).map_err(|_| format!("{k} is not set"));
    let pem = std::fs::read_to_string(env("PRIVATE_KEY")?)?;
    let der = STANDARD.decode(
        pem.lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<String>(),
    )?;
    let key = KeyPair::from_pkcs8(&der).map_err(|e| format!("not a PKCS#8 RSA key: {e}"))?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": env("KID")?});
    let claims = serde_json::json!({
        "iss": env("ISS")?, "sub": env("SUB")?, "aud": env("AUD")?,
        "iat": now, "exp": now + 600,
        "scope": std::env::var("SCOPE").unwrap_or_else(|_| "repo:read".into()),
    });
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut sig = vec![0; key.public_modulus_len()];
    key.sign(
        &RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        input.as_bytes(),
        &mut sig,
    )
    .map_err(|_| "signing failed")?;
    println!("{input}.{}", URL_SAFE_NO_PAD.encode(sig));
    Ok(())
}
