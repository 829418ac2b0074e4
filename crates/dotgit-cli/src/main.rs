//! The `dotgit` command (SPEC §6): `serve`, `admin`, `keys`, `jwt-keys`, `oauth-apps`. Commands
//! other than `serve` work on the data dir's database directly and record invalidations, so a
//! running server applies the change within its poll interval (SPEC §4: within 1 s).

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use dotgit_core::{Clock, Plan, SystemClock};
use dotgit_server::audit::Actor;
use dotgit_server::{ops, Config};
use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::sync::Arc;

/// mimalloc instead of glibc's allocator: the request path allocates small, short-lived objects
/// on one thread and frees them on another, where glibc's arenas spent ~15 % of the server's CPU
/// (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "dotgit",
    version,
    about = "dotgit: the authentication service of the .git platform"
)]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Args, Debug, Clone)]
struct Common {
    /// Data directory (database, TLS certificate) [env: DOTGIT_DATA_DIR; default ./dotgit-data]
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// TOML settings file [env: DOTGIT_CONFIG]
    #[arg(long, global = true, env = "DOTGIT_CONFIG")]
    config: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run the HTTPS server.
    Serve(ServeArgs),
    /// Accounts and suspension.
    #[command(subcommand)]
    Admin(AdminCmd),
    /// API keys.
    #[command(subcommand)]
    Keys(KeysCmd),
    /// The audit log.
    #[command(subcommand)]
    Audit(AuditCmd),
    /// JWT Configuration: customer public keys for RS256 JWTs.
    #[command(subcommand, name = "jwt-keys")]
    JwtKeys(JwtKeysCmd),
    /// OAuth apps: register third-party applications.
    #[command(subcommand, name = "oauth-apps")]
    OauthApps(OauthAppsCmd),
}

#[derive(Subcommand, Debug)]
enum OauthAppsCmd {
    /// Register an OAuth app; prints it as JSON, with the client secret (confidential apps, once).
    Create {
        /// Owner's username.
        #[arg(long)]
        account: String,
        /// Name shown to users on the consent page.
        #[arg(long)]
        name: String,
        /// A redirect URI (repeatable; https://, or http:// on a loopback host), matched exactly.
        #[arg(long = "redirect-uri", required = true, num_args = 1..)]
        redirect_uris: Vec<String>,
        /// A scope the app may be granted (repeatable).
        #[arg(long = "scope", required = true, num_args = 1..)]
        scopes: Vec<String>,
        /// A public client (no secret; PKCE only), e.g. a native or single-page app.
        #[arg(long)]
        public: bool,
    },
}

#[derive(Subcommand, Debug)]
enum AuditCmd {
    /// Write every event as JSON Lines, oldest first (for a SIEM).
    Export {
        /// Keep running and write new events as they are recorded.
        #[arg(long)]
        follow: bool,
        /// Only events after this sequence number.
        #[arg(long, default_value_t = 0)]
        after: i64,
    },
    /// Recompute the hash chain over the whole log; exit 1 if any stored event was altered,
    /// removed or reordered.
    Verify,
}

#[derive(Subcommand, Debug)]
enum JwtKeysCmd {
    /// Register an RSA public key; prints the key's kid, issuer and the sub tokens must carry.
    Register {
        /// Owner's username.
        #[arg(long)]
        account: String,
        /// Key name.
        #[arg(long)]
        name: String,
        /// File with the public key: PEM (SPKI or PKCS#1) or a JWK (JSON).
        #[arg(long)]
        public_key: PathBuf,
        /// A scope tokens may carry (repeatable).
        #[arg(long = "scope", required = true, num_args = 1..)]
        scopes: Vec<String>,
        /// Longest token lifetime, 900–86400 seconds (default 3600).
        #[arg(long)]
        max_lifetime_seconds: Option<i64>,
        /// Expected `iss` (default: the kid).
        #[arg(long)]
        issuer: Option<String>,
        /// Require a `jti` and accept each token once.
        #[arg(long)]
        single_use: bool,
    },
}

#[derive(Args, Debug)]
struct ServeArgs {
    /// HTTPS listen address [default 127.0.0.1:8443]
    #[arg(long)]
    listen: Option<String>,
    /// Optional plain-HTTP listener that answers 403 https_required
    #[arg(long)]
    http_listen: Option<String>,
    /// Public base URL (https://…)
    #[arg(long)]
    public_url: Option<String>,
}

#[derive(Subcommand, Debug)]
enum AdminCmd {
    /// Create an account; the password is read from standard input.
    CreateAccount {
        /// Username: a-z, 0-9 and '-'.
        username: String,
        /// Plan.
        #[arg(long, default_value = "free", value_parser = ["free", "pro", "enterprise"])]
        plan: String,
        /// Make the account a server operator.
        #[arg(long)]
        operator: bool,
    },
    /// Suspend an account: every credential answers 403 until lifted.
    Suspend {
        /// Username.
        username: String,
        /// Why.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Lift a suspension.
    Unsuspend {
        /// Username.
        username: String,
    },
    /// Revoke every API key and delete every JWT key of an account, at once.
    RevokeCredentials {
        /// Username.
        username: String,
    },
}

#[derive(Subcommand, Debug)]
enum KeysCmd {
    /// Create an API key and print only the key.
    Create {
        /// Owner's username.
        #[arg(long)]
        account: String,
        /// A scope to grant (repeatable), e.g. repo:read:my-app.
        #[arg(long = "scope", required = true, num_args = 1..)]
        scopes: Vec<String>,
        /// Key name (default: "cli-" + the time).
        #[arg(long)]
        name: Option<String>,
        /// Expire after this many days.
        #[arg(long)]
        expires_in_days: Option<u32>,
    },
    /// Rotate a key and print only the new key; the old one works for the grace period.
    Rotate {
        /// Key id (key_…).
        id: String,
        /// Grace period in seconds (default 86400; 0 = old key stops at once).
        #[arg(long)]
        grace: Option<u32>,
    },
}

/// An API error as a command-line error: the public message, plus the internal cause (the
/// operator running the command is the one who needs it).
fn cli_err(e: dotgit_server::error::ApiError) -> anyhow::Error {
    match e.cause {
        Some(cause) => anyhow::anyhow!("{} ({cause})", e.message),
        None => anyhow::anyhow!(e.message),
    }
}

/// The account with this username, or a clear error.
async fn account_named(
    store: &dotgit_store::Store,
    username: &str,
) -> Result<dotgit_store::AccountRow> {
    store
        .account_by_username(username)
        .await?
        .with_context(|| format!("no account named `{username}`"))
}

fn load_config(common: &Common, extra: &[(&str, String)]) -> Result<Config> {
    let mut flags: Vec<(&str, String)> = extra.to_vec();
    if let Some(d) = &common.data_dir {
        flags.push(("data_dir", d.display().to_string()));
    }
    Ok(Config::load(
        common.config.as_deref(),
        std::env::vars(),
        &flags,
    )?)
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    dotgit_server::tls::install_crypto_provider();
    match cli.cmd {
        Cmd::Serve(a) => serve(&cli.common, a).await,
        Cmd::Admin(a) => admin(&cli.common, a).await,
        Cmd::Keys(k) => keys(&cli.common, k).await,
        Cmd::JwtKeys(k) => jwt_keys(&cli.common, k).await,
        Cmd::Audit(a) => audit(&cli.common, a).await,
        Cmd::OauthApps(c) => oauth_apps(&cli.common, c).await,
    }
}

async fn serve(common: &Common, a: ServeArgs) -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut extra = Vec::new();
    if let Some(v) = a.listen {
        extra.push(("listen", v));
    }
    if let Some(v) = a.http_listen {
        extra.push(("http_listen", v));
    }
    if let Some(v) = a.public_url {
        extra.push(("public_url", v));
    }
    let config = load_config(common, &extra)?;
    let data_dir = config.data_dir.clone();
    // listen for SIGTERM before announcing the address, so an early one is a clean stop
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    let running = dotgit_server::start(config, Arc::new(SystemClock)).await?;
    eprintln!(
        "dotgit {} serving https://{}",
        env!("CARGO_PKG_VERSION"),
        running.addr
    );
    eprintln!("  data dir:    {}", data_dir.display());
    eprintln!(
        "  certificate: {}{}",
        running.cert_path.display(),
        if running.cert_created {
            " (self-signed, created now)"
        } else {
            ""
        }
    );
    if let Some(h) = running.http_addr {
        eprintln!("  plain HTTP:  http://{h} (answers 403 https_required)");
    }
    #[cfg(unix)]
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
    eprintln!("dotgit: shutting down");
    running.shutdown().await;
    Ok(())
}

fn read_password() -> Result<String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("Password (input is visible; end with Enter): ");
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    let pw = line.trim_end_matches(['\n', '\r']).to_owned();
    if pw.is_empty() {
        bail!("no password on standard input (e.g. `echo 'a long password' | dotgit admin create-account alice`)");
    }
    Ok(pw)
}

async fn admin(common: &Common, cmd: AdminCmd) -> Result<()> {
    let config = load_config(common, &[])?;
    let store = dotgit_server::open_store(&config.data_dir).await?;
    let now = SystemClock.now();
    match cmd {
        AdminCmd::CreateAccount {
            username,
            plan,
            operator,
        } => {
            let password = read_password()?;
            let plan = Plan::parse(&plan).unwrap_or(Plan::Free);
            let a = ops::create_account(
                &store,
                now,
                &username,
                &password,
                plan,
                operator,
                &Actor::cli(),
            )
            .await
            .map_err(cli_err)?;
            println!(
                "{}",
                serde_json::json!({"id": a.id, "username": a.username, "plan": a.plan, "operator": a.is_operator})
            );
        }
        AdminCmd::Suspend { username, reason } => {
            ops::set_suspended(
                &store,
                now,
                &username,
                true,
                reason.as_deref(),
                &Actor::cli(),
            )
            .await
            .map_err(cli_err)?
            .with_context(|| format!("no account named `{username}`"))?;
            println!("suspended {username}");
        }
        AdminCmd::Unsuspend { username } => {
            ops::set_suspended(&store, now, &username, false, None, &Actor::cli())
                .await
                .map_err(cli_err)?
                .with_context(|| format!("no account named `{username}`"))?;
            println!("unsuspended {username}");
        }
        AdminCmd::RevokeCredentials { username } => {
            let (_, ids) = ops::revoke_all_credentials(&store, now, &username, &Actor::cli())
                .await
                .map_err(cli_err)?
                .with_context(|| format!("no account named `{username}`"))?;
            println!("revoked {} credential(s) of {username}", ids.len());
        }
    }
    store.close().await;
    Ok(())
}

async fn keys(common: &Common, cmd: KeysCmd) -> Result<()> {
    let config = load_config(common, &[])?;
    let store = dotgit_server::open_store(&config.data_dir).await?;
    let now = SystemClock.now();
    match cmd {
        KeysCmd::Create {
            account,
            scopes,
            name,
            expires_in_days,
        } => {
            let acct = account_named(&store, &account).await?;
            let scopes = ops::parse_scopes("--scope", &scopes).map_err(cli_err)?;
            let name = name.unwrap_or_else(|| format!("cli-{now}"));
            let (_row, secret) = ops::create_api_key(
                &store,
                now,
                &acct.id,
                &name,
                &scopes,
                expires_in_days,
                &Actor::cli(),
            )
            .await
            .map_err(cli_err)?;
            println!("{}", secret.expose());
        }
        KeysCmd::Rotate { id, grace } => {
            let old = store
                .get_api_key_any_account(&id)
                .await?
                .with_context(|| format!("no active key with id `{id}`"))?;
            let (_row, secret) = ops::rotate_api_key(
                &store,
                now,
                &old,
                grace.unwrap_or(ops::DEFAULT_GRACE_SECONDS),
                &Actor::cli(),
            )
            .await
            .map_err(cli_err)?;
            println!("{}", secret.expose());
        }
    }
    store.close().await;
    Ok(())
}

async fn jwt_keys(common: &Common, cmd: JwtKeysCmd) -> Result<()> {
    let config = load_config(common, &[])?;
    let store = dotgit_server::open_store(&config.data_dir).await?;
    let now = SystemClock.now();
    match cmd {
        JwtKeysCmd::Register {
            account,
            name,
            public_key,
            scopes,
            max_lifetime_seconds,
            issuer,
            single_use,
        } => {
            let acct = account_named(&store, &account).await?;
            let text = std::fs::read_to_string(&public_key)
                .with_context(|| format!("reading {}", public_key.display()))?;
            let value = if text.trim_start().starts_with('{') {
                serde_json::from_str(&text)
                    .with_context(|| format!("{} is not valid JSON", public_key.display()))?
            } else {
                serde_json::Value::String(text)
            };
            let scopes = ops::parse_scopes("--scope", &scopes).map_err(cli_err)?;
            let row = ops::register_jwt_key(
                &store,
                now,
                &acct.id,
                ops::NewJwtKey {
                    name: &name,
                    public_key: &value,
                    allowed_scopes: &scopes,
                    max_lifetime_seconds,
                    issuer: issuer.as_deref(),
                    single_use,
                },
                &Actor::cli(),
            )
            .await
            .map_err(cli_err)?;
            println!(
                "{}",
                serde_json::json!({"kid": row.kid, "issuer": row.issuer, "sub": row.account_id})
            );
        }
    }
    store.close().await;
    Ok(())
}

async fn audit(common: &Common, cmd: AuditCmd) -> Result<()> {
    use std::io::Write;
    let config = load_config(common, &[])?;
    let store = dotgit_server::open_store(&config.data_dir).await?;
    match cmd {
        AuditCmd::Export { follow, after } => {
            let mut seq = after;
            let stdout = std::io::stdout();
            loop {
                let batch = store.audit_after(seq, 1000).await?;
                {
                    let mut out = stdout.lock();
                    for e in &batch {
                        let mut v =
                            serde_json::to_value(dotgit_server::api::audit::event_out(&e.event))?;
                        v["seq"] = serde_json::json!(e.seq);
                        writeln!(out, "{v}")?;
                        seq = e.seq;
                    }
                    out.flush()?;
                }
                if batch.len() < 1000 {
                    if !follow {
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                }
            }
        }
        AuditCmd::Verify => match store.verify_audit_chain().await? {
            Ok(n) => println!("ok: {n} events, hash chain intact"),
            Err(b) => {
                store.close().await;
                bail!(
                    "audit log tampered: the chain breaks at event seq {} (id {}); events from there on cannot be trusted",
                    b.seq,
                    b.id
                );
            }
        },
    }
    store.close().await;
    Ok(())
}

async fn oauth_apps(common: &Common, cmd: OauthAppsCmd) -> Result<()> {
    let config = load_config(common, &[])?;
    let store = dotgit_server::open_store(&config.data_dir).await?;
    let now = SystemClock.now();
    match cmd {
        OauthAppsCmd::Create {
            account,
            name,
            redirect_uris,
            scopes,
            public,
        } => {
            let acct = account_named(&store, &account).await?;
            let scopes = ops::parse_scopes("--scope", &scopes).map_err(cli_err)?;
            let (row, secret) = dotgit_server::oauth::apps::register_app(
                &store,
                now,
                &acct.id,
                dotgit_server::oauth::apps::NewApp {
                    name: &name,
                    redirect_uris: &redirect_uris,
                    allowed_scopes: &scopes,
                    confidential: !public,
                },
                &Actor::cli(),
            )
            .await
            .map_err(|e| {
                // the API names the field `redirect_uris[i]`; say which flag that is
                let mut e = e;
                e.message = e.message.replace("redirect_uris", "--redirect-uri");
                cli_err(e)
            })?;
            let policy = (acct.rotation_policy_days, now);
            let out = dotgit_server::oauth::apps::app_out(&row, secret.as_ref(), policy);
            println!("{}", serde_json::to_string(&out)?);
        }
    }
    store.close().await;
    Ok(())
}
