//! dotgit-testkit: the real server, in-process, for integration tests — HTTPS on port 0 with its
//! own self-signed certificate, a throw-away data dir, a clock the test moves by hand, and an
//! HTTPS client that trusts exactly that certificate. Nothing is mocked.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use dotgit_core::{ManualClock, Plan, ScopeSet};
use dotgit_server::{ops, AppState, Config, Running};
use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::Value;
use std::sync::Arc;

pub use reqwest;
pub use serde_json::json;

/// A test account.
#[derive(Debug, Clone)]
pub struct Account {
    /// Id.
    pub id: String,
    /// Username.
    pub username: String,
    /// Password.
    pub password: String,
}

/// A response, read whole.
#[derive(Debug)]
pub struct Resp {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: HeaderMap,
    /// Body as JSON (`Null` if not JSON).
    pub body: Value,
    /// Body as text.
    pub text: String,
}

impl Resp {
    /// The `error` field of an error body.
    pub fn code(&self) -> &str {
        self.body["error"].as_str().unwrap_or("")
    }
    /// A header as a string.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }
}

/// A running dotgit server.
#[derive(Debug)]
pub struct TestServer {
    running: Option<Running>,
    /// Settings it was started with (data dir inside `dir`).
    pub config: Config,
    /// The directory holding the data dir (deleted on drop; `None` once dropped).
    dir: Option<tempfile::TempDir>,
    /// The clock the server reads.
    pub clock: Arc<ManualClock>,
    /// An HTTPS client trusting the server's certificate.
    pub client: reqwest::Client,
    /// `https://127.0.0.1:<port>`
    pub base: String,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let Some(dir) = self.dir.take() else { return };
        // A test rarely stops its server, so the server is still running as its files go. Its
        // store's background thread could checkpoint the database: opened just before the
        // deletion, it recreated the WAL just after it, and the directory stayed behind. That
        // thread lets go of the file first.
        dotgit_store::forget(&dotgit_server::db_path(&self.config.data_dir));
        let path = dir.path().to_owned();
        drop(dir);
        // A connection the server was opening as the test ended (a pooled reader, the audit
        // writer's) does the same: the directory is swept again a little later.
        sweep_later(path);
    }
}

/// Removes `path` again, if something recreated it, 50 ms and 1 s from now (on a thread of its
/// own, started on first use).
fn sweep_later(path: std::path::PathBuf) {
    use std::sync::mpsc;
    use std::time::{Duration, Instant};
    static SWEEPER: std::sync::LazyLock<std::sync::Mutex<mpsc::Sender<std::path::PathBuf>>> =
        std::sync::LazyLock::new(|| {
            let (tx, rx) = mpsc::channel::<std::path::PathBuf>();
            std::thread::Builder::new()
                .name("testkit-sweeper".into())
                .spawn(move || {
                    let mut due: Vec<(Instant, std::path::PathBuf)> = Vec::new();
                    loop {
                        let wait = due
                            .iter()
                            .map(|(at, _)| at.saturating_duration_since(Instant::now()))
                            .min()
                            .unwrap_or(Duration::from_secs(3600));
                        match rx.recv_timeout(wait) {
                            Ok(p) => {
                                let now = Instant::now();
                                due.push((now + Duration::from_millis(50), p.clone()));
                                due.push((now + Duration::from_secs(1), p));
                            }
                            Err(mpsc::RecvTimeoutError::Timeout) => {}
                            Err(mpsc::RecvTimeoutError::Disconnected) => return,
                        }
                        let now = Instant::now();
                        due.retain(|(at, p)| {
                            if *at > now {
                                return true;
                            }
                            if p.exists() {
                                let _ = std::fs::remove_dir_all(p);
                            }
                            false
                        });
                    }
                })
                .expect("sweeper thread");
            std::sync::Mutex::new(tx)
        });
    let _ = SWEEPER
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .send(path);
}

/// The JWT audience test servers expect.
pub const AUDIENCE: &str = "https://dotgit.test";

/// The time test clocks start at: 2026-11-29T12:00:00Z.
pub const T0: i64 = 1_795_953_600;

impl TestServer {
    /// Starts a server with default settings.
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    /// Starts a server after `f` adjusts the settings.
    pub async fn start_with(f: impl FnOnce(&mut Config)) -> TestServer {
        dotgit_server::tls::install_crypto_provider();
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config {
            data_dir: dir.path().join("data"),
            listen: "127.0.0.1:0".parse().unwrap(),
            invalidation_poll_ms: 100,
            audience: Some(AUDIENCE.to_owned()),
            ..Config::default()
        };
        f(&mut config);
        let clock = Arc::new(ManualClock::new(T0));
        let running = dotgit_server::start(config.clone(), clock.clone())
            .await
            .expect("server starts");
        let client = client_for(&running.cert_path);
        let base = format!("https://{}", running.addr);
        TestServer {
            running: Some(running),
            config,
            dir: Some(dir),
            clock,
            client,
            base,
        }
    }

    /// The server's shared state (store, cache, limiter).
    pub fn state(&self) -> &AppState {
        &self.running.as_ref().expect("running").state
    }

    /// The running server.
    pub fn running(&self) -> &Running {
        self.running.as_ref().expect("running")
    }

    /// Stops the server and starts it again on the same data dir (new port).
    pub async fn restart(&mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
        let running = dotgit_server::start(self.config.clone(), self.clock.clone())
            .await
            .expect("server restarts");
        self.base = format!("https://{}", running.addr);
        self.running = Some(running);
    }

    /// Stops the server.
    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
    }

    /// Creates an account (password `password-<username>`).
    pub async fn account(&self, username: &str) -> Account {
        self.account_with(username, Plan::Pro, false).await
    }

    /// Creates an account with a plan and operator flag.
    pub async fn account_with(&self, username: &str, plan: Plan, operator: bool) -> Account {
        let password = format!("password-{username}");
        let a = ops::create_account(
            &self.state().store,
            self.clock_now(),
            username,
            &password,
            plan,
            operator,
            &dotgit_server::audit::Actor::cli(),
        )
        .await
        .expect("account");
        Account {
            id: a.id,
            username: a.username,
            password,
        }
    }

    /// Issues an API key directly (as the CLI does) and returns the secret.
    pub async fn key(&self, account: &Account, scopes: &[&str]) -> String {
        let scopes = ScopeSet::parse_list(scopes).expect("scopes");
        let name = format!("k{}", ops::new_id("t").unwrap());
        let (_row, secret) = ops::create_api_key(
            &self.state().store,
            self.clock_now(),
            &account.id,
            &name,
            &scopes,
            None,
            &dotgit_server::audit::Actor::cli(),
        )
        .await
        .expect("key");
        secret.expose().to_owned()
    }

    fn clock_now(&self) -> i64 {
        use dotgit_core::Clock;
        self.clock.now()
    }

    /// Waits (up to 5 s) until the audit log holds an event matching `pred`, and returns the
    /// events of the log, newest first. Per-request events are written behind by the batching
    /// writer, so a test asks for what it expects instead of sleeping.
    pub async fn audit_until(
        &self,
        pred: impl Fn(&dotgit_core::audit::AuditEvent) -> bool,
    ) -> Vec<dotgit_core::audit::AuditEvent> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let all = self.audit_all().await;
            if all.iter().any(&pred) {
                return all;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "expected audit event not written; log: {:#?}",
                all.iter()
                    .map(|e| (&e.event_type, &e.reason))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Every audit event, newest first, straight from the store.
    pub async fn audit_all(&self) -> Vec<dotgit_core::audit::AuditEvent> {
        self.state()
            .store
            .list_audit(&dotgit_store::AuditFilter::default(), 100_000)
            .await
            .expect("audit")
            .into_iter()
            .map(|e| e.event)
            .collect()
    }

    /// Full URL of a path.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Sends a request with an optional Bearer credential and JSON body.
    pub async fn req(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        let mut rb = self.client.request(method, self.url(path));
        if let Some(t) = token {
            rb = rb.header("authorization", format!("Bearer {t}"));
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        read(rb.send().await.expect("request sent")).await
    }

    /// GET with a credential.
    pub async fn get(&self, path: &str, token: &str) -> Resp {
        self.req(Method::GET, path, Some(token), None).await
    }

    /// POST JSON with a credential.
    pub async fn post(&self, path: &str, token: &str, body: Value) -> Resp {
        self.req(Method::POST, path, Some(token), Some(body)).await
    }

    /// DELETE with a credential.
    pub async fn delete(&self, path: &str, token: &str) -> Resp {
        self.req(Method::DELETE, path, Some(token), None).await
    }
}

/// Reads a response whole.
pub async fn read(r: reqwest::Response) -> Resp {
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Resp {
        status,
        headers,
        body,
        text,
    }
}

/// A root store holding exactly the certificates in `cert_path`.
pub fn root_store(cert_path: &std::path::Path) -> rustls::RootCertStore {
    let pem = std::fs::read(cert_path).expect("cert");
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(c.expect("pem")).expect("root");
    }
    roots
}

/// A rustls client config (aws-lc-rs) trusting exactly the certificate in `cert_path`.
pub fn tls_client_config(cert_path: &std::path::Path) -> rustls::ClientConfig {
    let roots = root_store(cert_path);
    rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth()
}

/// An HTTPS client trusting exactly the certificate in `cert_path`.
pub fn client_for(cert_path: &std::path::Path) -> reqwest::Client {
    reqwest::Client::builder()
        .use_preconfigured_tls(tls_client_config(cert_path))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// Undoes askama's HTML escaping of attribute values.
pub fn unescape_html(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The hidden inputs (name, value) of the first form posting to `action` in a page; `None` when
/// there is no such form or an input is malformed.
pub fn hidden_inputs(html: &str, action: &str) -> Option<Vec<(String, String)>> {
    let start = html.find(&format!("action=\"{action}\""))?;
    let end = start + html[start..].find("</form>")?;
    let mut out = Vec::new();
    for tag in html[start..end].split("<input").skip(1) {
        let tag = &tag[..tag.find('>')?];
        if !tag.contains("type=\"hidden\"") {
            continue;
        }
        let attr = |name: &str| {
            let k = format!("{name}=\"");
            let i = tag.find(&k)? + k.len();
            Some(unescape_html(&tag[i..i + tag[i..].find('"')?]))
        };
        out.push((attr("name")?, attr("value")?));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::TestServer;
    use std::time::{Duration, Instant};

    #[tokio::test]
    async fn a_dropped_servers_directory_goes_even_if_a_late_connection_recreates_a_file() {
        let server = TestServer::start().await;
        let data = server.config.data_dir.clone();
        let top = data.parent().expect("the data dir's parent").to_owned();
        drop(server);
        // what a connection the server was opening as the test ended does: SQLite creates the
        // WAL it opens, after the deletion
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join("dotgit.db-wal"), b"").unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while top.exists() {
            assert!(
                Instant::now() < deadline,
                "{} was not swept again",
                top.display()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
