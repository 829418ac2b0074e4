//! `dotgit-bench`: the helpers `bench/run.sh` needs beyond the `dotgit` command itself.
//!
//! - `seed-keys`: bulk-inserts API keys straight into a data dir's database (a million in
//!   seconds, where a million `dotgit keys create` would take hours), writing a random sample of
//!   the secrets for the load generator.
//! - `jwt`: registers a fresh RSA key for an account and mints a long-lived token for it.
//! - `rs256`: the raw RS256 verification cost on this core (the floor of the JWT path).
//! - `oauth-seed`: runs the real authorization-code flow over HTTPS N times and writes the
//!   access and refresh tokens (N independent refresh families).
//! - `logins`: a steady rate of password sign-ins through the login form (argon2 load).
//! - `handshakes`: new connections, each a full TLS handshake (no resumption) and one request.
//!
//! Nothing here is part of the product; it exists to measure it.

use anyhow::{bail, Context, Result};
use aws_lc_rs::rand::SecureRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{self, KeyPair as _, RSA_PKCS1_SHA256};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use clap::{Parser, Subcommand};
use dotgit_core::credential::{generate, random_base62, CredentialKind};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(name = "dotgit-bench", about = "helpers for bench/run.sh")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Insert COUNT API keys (scope repo:read) for ACCOUNT; write SAMPLE of their secrets to OUT.
    SeedKeys {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        account: String,
        #[arg(long)]
        count: u64,
        #[arg(long)]
        sample: u64,
        #[arg(long)]
        out: PathBuf,
    },
    /// Register a new RSA key for ACCOUNT and print a token (valid for an hour) signed with it.
    Jwt {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        account: String,
        /// The server's audience (its public URL).
        #[arg(long)]
        audience: String,
    },
    /// Median nanoseconds of one raw RS256 verification (2048-bit key parsed once).
    Rs256 {
        #[arg(long, default_value_t = 1000)]
        millis: u64,
    },
    /// Run the authorization-code flow FAMILIES times; write access_tokens.txt and
    /// refresh_tokens.txt into OUT_DIR, and the app's credentials into OUT_DIR/client.env.
    OauthSeed {
        #[arg(long)]
        url: String,
        #[arg(long)]
        cert: PathBuf,
        #[arg(long)]
        user: String,
        #[arg(long)]
        password: String,
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        families: u32,
        #[arg(long)]
        out_dir: PathBuf,
    },
    /// Sign in through the login form RATE times a second for SECONDS; print the count.
    Logins {
        #[arg(long)]
        url: String,
        #[arg(long)]
        cert: PathBuf,
        #[arg(long)]
        user: String,
        #[arg(long)]
        password: String,
        #[arg(long, default_value_t = 20)]
        rate: u32,
        #[arg(long)]
        seconds: u64,
    },
    /// For SECONDS, over CONNECTIONS concurrent loops: open a TCP connection, make a full TLS
    /// handshake (resumption off, X25519 then P-256 offered, as OpenSSL 3.0 does), send one
    /// `GET` of the URL's path with `Connection: close` and read the answer to its end. Prints
    /// the answers that were 200 and the failures.
    Handshakes {
        #[arg(long)]
        url: String,
        #[arg(long)]
        cert: PathBuf,
        #[arg(long, default_value_t = 32)]
        connections: usize,
        #[arg(long)]
        seconds: f64,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Runtime::new()?;
    match cli.cmd {
        Cmd::SeedKeys {
            data_dir,
            account,
            count,
            sample,
            out,
        } => rt.block_on(seed_keys(&data_dir, &account, count, sample, &out)),
        Cmd::Jwt {
            data_dir,
            account,
            audience,
        } => rt.block_on(jwt(&data_dir, &account, &audience)),
        Cmd::Rs256 { millis } => rs256(millis),
        Cmd::OauthSeed {
            url,
            cert,
            user,
            password,
            data_dir,
            families,
            out_dir,
        } => rt.block_on(oauth_seed(
            &url, &cert, &user, &password, &data_dir, families, &out_dir,
        )),
        Cmd::Logins {
            url,
            cert,
            user,
            password,
            rate,
            seconds,
        } => rt.block_on(logins(&url, &cert, &user, &password, rate, seconds)),
        Cmd::Handshakes {
            url,
            cert,
            connections,
            seconds,
        } => rt.block_on(handshakes(&url, &cert, connections, seconds)),
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn entropy() -> Result<[u8; 64]> {
    let mut b = [0u8; 64];
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| anyhow::anyhow!("CSPRNG failure"))?;
    Ok(b)
}

async fn account_id(store: &dotgit_store::Store, username: &str) -> Result<String> {
    Ok(store
        .account_by_username(username)
        .await?
        .with_context(|| format!("no account {username}"))?
        .id)
}

async fn seed_keys(
    data_dir: &Path,
    account: &str,
    count: u64,
    sample: u64,
    out: &Path,
) -> Result<()> {
    let store = dotgit_server::open_store(data_dir).await?;
    let acct = account_id(&store, account).await?;
    store.close().await;
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(
            sqlx::sqlite::SqliteConnectOptions::new()
                .filename(dotgit_server::db_path(data_dir))
                .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal),
        )
        .await?;
    let every = (count / sample.max(1)).max(1);
    let mut file = std::io::BufWriter::new(std::fs::File::create(out)?);
    let created = now();
    const ROWS: u64 = 500;
    let mut done = 0u64;
    while done < count {
        let mut tx = pool.begin().await?;
        for _ in 0..20 {
            let n = ROWS.min(count - done);
            if n == 0 {
                break;
            }
            let mut sql = String::from(
                "INSERT INTO api_keys (id, account_id, name, prefix, secret_hash, scopes, created_at) VALUES ",
            );
            let mut rows = Vec::with_capacity(n as usize);
            for i in 0..n {
                let secret =
                    generate(CredentialKind::ApiKey, &entropy()?).context("CSPRNG short")?;
                let id = format!(
                    "key_{}",
                    random_base62(&entropy()?, 16).context("CSPRNG short")?
                );
                if (done + i).is_multiple_of(every) {
                    writeln!(file, "{}", secret.expose())?;
                }
                rows.push((
                    id,
                    secret.display_prefix(),
                    secret.hash().to_hex(),
                    done + i,
                ));
                sql.push_str(if i == 0 {
                    "(?,?,?,?,?,?,?)"
                } else {
                    ",(?,?,?,?,?,?,?)"
                });
            }
            let mut q = sqlx::query(&sql);
            for (id, prefix, hash, i) in rows {
                q = q
                    .bind(id)
                    .bind(&acct)
                    .bind(format!("bench-{i}"))
                    .bind(prefix)
                    .bind(hash)
                    .bind("repo:read")
                    .bind(created);
            }
            q.execute(&mut *tx).await?;
            done += n;
        }
        tx.commit().await?;
    }
    file.flush()?;
    pool.close().await;
    eprintln!("seeded {count} keys for {account}");
    Ok(())
}

fn pem(label: &str, der: &[u8]) -> String {
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        STANDARD.encode(der)
    )
}

fn sign(kp: &KeyPair, input: &str) -> Result<String> {
    let mut sig = vec![0; kp.public_modulus_len()];
    kp.sign(
        &RSA_PKCS1_SHA256,
        &aws_lc_rs::rand::SystemRandom::new(),
        input.as_bytes(),
        &mut sig,
    )
    .map_err(|_| anyhow::anyhow!("signing failed"))?;
    Ok(URL_SAFE_NO_PAD.encode(sig))
}

async fn jwt(data_dir: &Path, account: &str, audience: &str) -> Result<()> {
    let store = dotgit_server::open_store(data_dir).await?;
    let acct = account_id(&store, account).await?;
    let kp = KeyPair::generate(KeySize::Rsa2048).map_err(|_| anyhow::anyhow!("keygen"))?;
    let public = serde_json::Value::String(pem("RSA PUBLIC KEY", kp.public_key().as_ref()));
    let scopes =
        dotgit_core::ScopeSet::parse_list(&["repo:read"]).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let row = dotgit_server::ops::register_jwt_key(
        &store,
        now(),
        &acct,
        dotgit_server::ops::NewJwtKey {
            name: &format!("bench-{}", now()),
            public_key: &public,
            allowed_scopes: &scopes,
            max_lifetime_seconds: Some(3600),
            issuer: Some("bench"),
            single_use: false,
        },
        &dotgit_server::audit::Actor::cli(),
    )
    .await
    .map_err(|e| anyhow::anyhow!("registering the key: {e:?}"))?;
    store.close().await;
    let iat = now() - 5;
    let header = URL_SAFE_NO_PAD.encode(format!(
        r#"{{"alg":"RS256","typ":"JWT","kid":"{}"}}"#,
        row.kid
    ));
    let claims = URL_SAFE_NO_PAD.encode(format!(
        r#"{{"iss":"bench","sub":"{acct}","aud":"{audience}","iat":{iat},"exp":{},"scope":"repo:read"}}"#,
        iat + 3600
    ));
    let input = format!("{header}.{claims}");
    println!("{input}.{}", sign(&kp, &input)?);
    Ok(())
}

fn rs256(millis: u64) -> Result<()> {
    let kp = KeyPair::generate(KeySize::Rsa2048).map_err(|_| anyhow::anyhow!("keygen"))?;
    let msg = b"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJiZW5jaCJ9";
    let input = std::str::from_utf8(msg)?;
    let sig = URL_SAFE_NO_PAD.decode(sign(&kp, input)?)?;
    let key = signature::ParsedPublicKey::new(
        &signature::RSA_PKCS1_2048_8192_SHA256,
        kp.public_key().as_ref(),
    )
    .map_err(|_| anyhow::anyhow!("parse"))?;
    let mut rounds = Vec::new();
    let end = Instant::now() + Duration::from_millis(millis);
    while Instant::now() < end || rounds.len() < 5 {
        let t = Instant::now();
        for _ in 0..200 {
            key.verify_sig(std::hint::black_box(msg), std::hint::black_box(&sig))
                .map_err(|_| anyhow::anyhow!("verify"))?;
        }
        rounds.push(t.elapsed().as_nanos() as f64 / 200.0);
    }
    rounds.sort_by(|a, b| a.total_cmp(b));
    println!("{:.0}", rounds[rounds.len() / 2]);
    Ok(())
}

fn client(cert: &Path) -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .use_preconfigured_tls(dotgit_testkit::tls_client_config(cert))
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()?)
}

fn form(pairs: &[(&str, &str)]) -> String {
    let mut f = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        f.append_pair(k, v);
    }
    f.finish()
}

async fn post_form(
    c: &reqwest::Client,
    url: &str,
    pairs: &[(&str, &str)],
) -> Result<reqwest::Response> {
    Ok(c.post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(pairs))
        .send()
        .await?)
}

async fn login(c: &reqwest::Client, base: &str, user: &str, password: &str) -> Result<()> {
    let page = c.get(format!("{base}/login")).send().await?.text().await?;
    let csrf = dotgit_testkit::hidden_inputs(&page, "/login")
        .and_then(|f| f.into_iter().find(|(k, _)| k == "csrf_token"))
        .map(|(_, v)| v)
        .context("no csrf_token on /login")?;
    let r = post_form(
        c,
        &format!("{base}/login"),
        &[
            ("username", user),
            ("password", password),
            ("csrf_token", &csrf),
        ],
    )
    .await?;
    if r.status() != 303 {
        let status = r.status();
        let body = r.text().await.unwrap_or_default();
        bail!(
            "sign-in answered {status}: {}",
            body.chars().take(300).collect::<String>()
        );
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn oauth_seed(
    base: &str,
    cert: &Path,
    user: &str,
    password: &str,
    data_dir: &Path,
    families: u32,
    out_dir: &Path,
) -> Result<()> {
    // the app, registered the way an operator does (the same function as `dotgit oauth-apps create`)
    let redirect = "https://client.bench.example/cb";
    let store = dotgit_server::open_store(data_dir).await?;
    let acct = account_id(&store, user).await?;
    let (app, secret) = dotgit_server::oauth::apps::register_app(
        &store,
        now(),
        &acct,
        dotgit_server::oauth::apps::NewApp {
            name: &format!("bench-{}", now()),
            redirect_uris: &[redirect.to_owned()],
            allowed_scopes: &dotgit_core::ScopeSet::parse_list(&["repo:read"])
                .map_err(|e| anyhow::anyhow!("{e:?}"))?,
            confidential: true,
        },
        &dotgit_server::audit::Actor::cli(),
    )
    .await
    .map_err(|e| anyhow::anyhow!("registering the app: {e:?}"))?;
    store.close().await;
    let secret = secret.context("confidential app without a secret")?;
    let c = client(cert)?;
    login(&c, base, user, password).await?;
    let (mut access, mut refresh) = (String::new(), String::new());
    for i in 0..families {
        let verifier = URL_SAFE_NO_PAD.encode(entropy()?);
        let challenge = URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            verifier.as_bytes(),
        ));
        let q = form(&[
            ("response_type", "code"),
            ("client_id", &app.client_id),
            ("redirect_uri", redirect),
            ("scope", "repo:read"),
            ("state", &i.to_string()),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ]);
        let page = c
            .get(format!("{base}/oauth/authorize?{q}"))
            .send()
            .await?
            .text()
            .await?;
        // every hidden field of the consent form, then the decision
        let mut pairs =
            dotgit_testkit::hidden_inputs(&page, "/oauth/authorize").context("no consent form")?;
        pairs.push(("decision".into(), "approve".into()));
        let refs: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let r = post_form(&c, &format!("{base}/oauth/authorize"), &refs).await?;
        let loc = r
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .context("consent did not redirect")?;
        let code = url::Url::parse(loc)?
            .query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
            .context("no code in the redirect")?;
        let t: serde_json::Value = c
            .post(format!("{base}/oauth/token"))
            .basic_auth(&app.client_id, Some(secret.expose()))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", redirect),
                ("code_verifier", &verifier),
            ]))
            .send()
            .await?
            .json()
            .await?;
        let (Some(a), Some(rt)) = (t["access_token"].as_str(), t["refresh_token"].as_str()) else {
            bail!("token response without tokens: {t}");
        };
        access.push_str(a);
        access.push('\n');
        refresh.push_str(rt);
        refresh.push('\n');
    }
    std::fs::create_dir_all(out_dir)?;
    std::fs::write(out_dir.join("access_tokens.txt"), access)?;
    std::fs::write(out_dir.join("refresh_tokens.txt"), refresh)?;
    std::fs::write(
        out_dir.join("client.env"),
        format!(
            "CLIENT_ID={}\nCLIENT_SECRET={}\nINTROSPECT_PATH=/oauth/introspect\nTOKEN_PATH=/oauth/token\n",
            app.client_id,
            secret.expose()
        ),
    )?;
    eprintln!("{families} refresh families for {}", app.client_id);
    Ok(())
}

async fn logins(
    base: &str,
    cert: &Path,
    user: &str,
    password: &str,
    rate: u32,
    seconds: u64,
) -> Result<()> {
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate.max(1))));
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = tokio::task::JoinSet::new();
    while Instant::now() < end {
        tick.tick().await;
        let (base, cert, user, password) = (
            base.to_owned(),
            cert.to_owned(),
            user.to_owned(),
            password.to_owned(),
        );
        // a fresh client (and session) per sign-in, as separate people would
        tasks.spawn(async move {
            let c = client(&cert)?;
            login(&c, &base, &user, &password).await
        });
    }
    let (mut ok, mut failed) = (0u32, 0u32);
    let mut first_error = None;
    while let Some(r) = tasks.join_next().await {
        match r {
            Ok(Ok(())) => ok += 1,
            Ok(Err(e)) => {
                failed += 1;
                first_error.get_or_insert_with(|| format!("{e:#}"));
            }
            Err(e) => {
                failed += 1;
                first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
    println!("logins {ok} failed {failed}");
    if let Some(e) = first_error {
        eprintln!("first sign-in error: {e}");
    }
    Ok(())
}

/// The client of `handshakes`: the certificate in `cert` as the only root, no session resumption
/// (every connection a full handshake), and the key-exchange groups OpenSSL 3.0 offers first —
/// an X25519 key share, P-256 as the fallback — so the server does what it does for curl or a
/// script's HTTP library, not the post-quantum hybrid a rustls client would ask for.
fn full_handshake_client(cert: &Path) -> Result<rustls::ClientConfig> {
    use rustls::crypto::aws_lc_rs::{default_provider, kx_group};
    let provider = rustls::crypto::CryptoProvider {
        kx_groups: vec![kx_group::X25519, kx_group::SECP256R1],
        ..default_provider()
    };
    let mut cfg = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(provider))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(dotgit_testkit::root_store(cert))
        .with_no_client_auth();
    cfg.resumption = rustls::client::Resumption::disabled();
    Ok(cfg)
}

async fn handshakes(url: &str, cert: &Path, connections: usize, seconds: f64) -> Result<()> {
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    use std::sync::Arc;
    let url = url::Url::parse(url).context("--url")?;
    let host = url.host_str().context("--url has no host")?.to_owned();
    let port = url.port_or_known_default().context("--url has no port")?;
    let name = rustls::pki_types::ServerName::try_from(host.clone())?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(full_handshake_client(cert)?));
    let request: Arc<[u8]> = format!(
        "GET {} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n",
        url.path()
    )
    .into_bytes()
    .into();
    let addr = (host.as_str(), port);
    let addr = tokio::net::lookup_host(addr)
        .await?
        .next()
        .context("--url: no address")?;
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let mut loops = tokio::task::JoinSet::new();
    for _ in 0..connections.max(1) {
        let (connector, name, request) = (connector.clone(), name.clone(), request.clone());
        let (ok, failed) = (ok.clone(), failed.clone());
        loops.spawn(async move {
            while Instant::now() < deadline {
                match one_connection(&connector, name.clone(), addr, &request).await {
                    Ok(true) => ok.fetch_add(1, Relaxed),
                    Ok(false) | Err(_) => failed.fetch_add(1, Relaxed),
                };
            }
        });
    }
    while loops.join_next().await.is_some() {}
    let (ok, failed) = (ok.load(Relaxed), failed.load(Relaxed));
    println!("requests {ok}");
    println!("failed {failed}");
    if ok == 0 {
        bail!("no connection got its answer ({failed} failed)");
    }
    Ok(())
}

/// One connection: handshake, request, the whole answer. True when the answer was a 200.
async fn one_connection(
    connector: &tokio_rustls::TlsConnector,
    name: rustls::pki_types::ServerName<'static>,
    addr: std::net::SocketAddr,
    request: &[u8],
) -> Result<bool> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let mut tls = connector.connect(name, tcp).await?;
    tls.write_all(request).await?;
    let mut answer = Vec::with_capacity(512);
    tls.read_to_end(&mut answer).await?;
    Ok(answer.starts_with(b"HTTP/1.1 200 "))
}
