//! The dashboard end to end in a real headless Chromium (Debian's `chromium` and
//! `chromium-driver`), driven over WebDriver with fantoccini: sign in, create a key narrowed to
//! a project, read its secret once, call the API with it, revoke it (with confirmation) and see
//! the API refuse it, register a JWT key (pasted PEM) and an OAuth app (client secret shown
//! once), see the security log list all of it, sign out; then, as an operator, suspend an
//! account at `/admin` with a reason and see its key refused with 403 `account_suspended`.
//!
//! Screenshots of the main pages are taken on the way; they are saved into the directory named
//! by `DOTGIT_SCREENSHOTS` (the README's are made with
//! `DOTGIT_SCREENSHOTS=docs/screenshots cargo test -p dotgit-cli --test it dashboard::browser`),
//! or into a temporary directory.
//!
//! The browser trusts nothing it does not have to: it accepts exactly the test server's
//! self-signed certificate, by its public key (`--ignore-certificate-errors-spki-list`), in a
//! fresh profile. Without `/usr/bin/chromium` or `/usr/bin/chromedriver` the test is skipped
//! with a message, unless `CI` is set: then it fails.

use base64::Engine;
use dotgit_core::Plan;
use dotgit_testkit::{json, TestServer};
use fantoccini::{Client, ClientBuilder, Locator};
use futures::FutureExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A chromedriver process of this test, stopped (by its pid) when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    async fn start() -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                std::time::Instant::now() < deadline,
                "chromedriver did not listen"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        driver
    }
}

/// base64(SHA-256(SubjectPublicKeyInfo)) of the first certificate in a PEM file: what
/// `--ignore-certificate-errors-spki-list` takes.
fn spki_pin(cert_pem: &Path) -> String {
    let pem = std::fs::read(cert_pem).unwrap();
    let der = rustls_pemfile::certs(&mut pem.as_slice())
        .next()
        .unwrap()
        .unwrap();
    // Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version, serialNumber,
    //   signature, issuer, validity, subject, subjectPublicKeyInfo, … }, … }
    fn tlv(b: &[u8]) -> (usize, usize) {
        // (header length, content length)
        let len = b[1] as usize;
        if len < 0x80 {
            (2, len)
        } else {
            let n = len & 0x7f;
            let mut l = 0usize;
            for i in 0..n {
                l = (l << 8) | b[2 + i] as usize;
            }
            (2 + n, l)
        }
    }
    let der: &[u8] = der.as_ref();
    let (h, _) = tlv(der);
    let tbs = &der[h..];
    let (h, _) = tlv(tbs);
    let mut rest = &tbs[h..];
    if rest[0] == 0xa0 {
        let (h, l) = tlv(rest);
        rest = &rest[h + l..];
    }
    for _ in 0..5 {
        // serialNumber, signature, issuer, validity, subject
        let (h, l) = tlv(rest);
        rest = &rest[h + l..];
    }
    let (h, l) = tlv(rest);
    let spki = &rest[..h + l];
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, spki);
    base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
}

async fn browser(driver: &Driver, s: &TestServer, profile: &Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--window-size=1280,1024",
                format!("--user-data-dir={}", profile.display()),
                format!("--ignore-certificate-errors-spki-list={}", spki_pin(&s.running().cert_path)),
            ],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a WebDriver session")
}

/// Where screenshots go.
fn shots_dir(tmp: &Path) -> PathBuf {
    match std::env::var_os("DOTGIT_SCREENSHOTS") {
        Some(d) => {
            let d = PathBuf::from(d);
            // relative to the repository root, not to this crate
            let d = if d.is_relative() {
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(d)
            } else {
                d
            };
            std::fs::create_dir_all(&d).unwrap();
            d
        }
        None => tmp.to_path_buf(),
    }
}

struct Journey<'a> {
    c: &'a Client,
    s: &'a TestServer,
    shots: PathBuf,
}

impl Journey<'_> {
    async fn goto(&self, path: &str) {
        self.c.goto(&self.s.url(path)).await.unwrap();
    }

    async fn find(&self, css: &str) -> fantoccini::elements::Element {
        match self
            .c
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(css))
            .await
        {
            Ok(el) => el,
            Err(e) => {
                let url = self.c.current_url().await.map(|u| u.to_string());
                let page = self.c.source().await.unwrap_or_default();
                let _ = self.shot("failure").await;
                panic!("{css}: {e}\nat {url:?}\n{page}");
            }
        }
    }

    async fn fill(&self, css: &str, text: &str) {
        let el = self.find(css).await;
        el.clear().await.unwrap();
        el.send_keys(text).await.unwrap();
    }

    async fn click(&self, css: &str) {
        self.find(css).await.click().await.unwrap();
    }

    async fn source(&self) -> String {
        self.c.source().await.unwrap()
    }

    async fn path(&self) -> String {
        let u = self.c.current_url().await.unwrap();
        match u.query() {
            Some(q) => format!("{}?{q}", u.path()),
            None => u.path().to_owned(),
        }
    }

    /// The location once it satisfies `ok` (within 10 s): a click that submits a form returns
    /// before the navigation it starts has finished, so the old page can still be showing.
    async fn path_when(&self, ok: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let p = self.path().await;
            if ok(&p) {
                return p;
            }
            assert!(std::time::Instant::now() < deadline, "still at {p}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn shot(&self, name: &str) {
        let png = self.c.screenshot().await.unwrap();
        assert!(
            png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000,
            "{name}"
        );
        std::fs::write(self.shots.join(format!("{name}.png")), png).unwrap();
    }

    async fn sign_in(&self, user: &str, password: &str) {
        self.fill("#username", user).await;
        // keyboard only: type the password and press Enter
        self.fill("#password", &format!("{password}\u{E007}")).await;
        self.find("nav.nav").await;
    }
}

async fn journey(
    j: &Journey<'_>,
    alice: &dotgit_testkit::Account,
    root: &dotgit_testkit::Account,
    alice_other_key: &str,
) {
    let s = j.s;

    // a page of the dashboard sends an anonymous browser to sign in, and back
    j.goto("/settings/api-keys").await;
    assert!(j
        .path()
        .await
        .starts_with("/login?return_to=%2Fsettings%2Fapi-keys"));
    j.fill("#username", &alice.username).await;
    j.shot("login").await;
    j.sign_in(&alice.username, &alice.password).await;
    assert_eq!(j.path().await, "/settings/api-keys");

    // Create New Key, narrowed to one project
    j.fill("#name", "CI deploy").await;
    j.click("#scope-repo-read").await;
    j.click("#scope-deploy-write").await;
    j.find("#project")
        .await
        .select_by_value("my-app")
        .await
        .unwrap();
    j.find("#expires_in_days")
        .await
        .select_by_value("90")
        .await
        .unwrap();
    j.click("#create-key button[type=submit]").await;
    let field = j.find("#secret-value").await;
    let secret = field.prop("value").await.unwrap().unwrap();
    assert!(secret.starts_with("dg_") && secret.len() == 39, "{secret}");
    let panel = j.find("#new-secret").await.text().await.unwrap();
    assert!(panel.contains("you will not see it again"), "{panel}");
    assert!(panel.contains("repo:read:my-app") && panel.contains("deploy:write:my-app"));
    // the copy button is there (the self-hosted script unhid it) and answers
    let copy = j.find("button.copy").await;
    assert!(
        copy.is_displayed().await.unwrap(),
        "the script ran under the CSP"
    );
    copy.click().await.unwrap();
    let c = j.c;
    c.wait()
        .at_most(Duration::from_secs(5))
        .for_element(Locator::XPath(
            "//p[@id='secret-value-status'][normalize-space(.) != '']",
        ))
        .await
        .unwrap();
    j.shot("api-keys").await;

    // the key works on the API, for its project
    assert_eq!(s.get("/v1/projects/my-app", &secret).await.status, 200);
    assert_eq!(
        s.get("/v1/projects/other-app", &secret).await.code(),
        "insufficient_scope"
    );

    // read once: the list shows it by prefix only
    j.goto("/settings/api-keys").await;
    let list = j.source().await;
    assert!(!list.contains(&secret));
    assert!(list.contains(&secret[..8]));

    // revoke, with a confirmation step
    let id = s
        .state()
        .store
        .list_api_keys(&alice.id)
        .await
        .unwrap()
        .into_iter()
        .find(|k| k.name == "CI deploy")
        .unwrap()
        .id;
    j.click(&format!("#key-{id} a.danger")).await;
    let q = j.find("#q").await.text().await.unwrap();
    assert_eq!(q, "Revoke this API key?");
    assert_eq!(
        s.get("/v1/user", &secret).await.status,
        200,
        "not before confirming"
    );
    j.click("#confirm").await;
    let notice = j.find("p.banner.ok").await.text().await.unwrap();
    assert!(notice.contains("revoked"), "{notice}");
    let refused = s.get("/v1/user", &secret).await;
    assert_eq!((refused.status, refused.code()), (401, "invalid_token"));

    // JWT Configuration: paste a PEM
    let signer = crate::jwt::Signer::new(aws_lc_rs::rsa::KeySize::Rsa2048);
    j.goto("/settings/jwt").await;
    j.fill("#name", "edge functions").await;
    j.fill("#public_key", &signer.pkcs1_pem()).await;
    j.click("#scope-repo-read").await;
    j.fill("#issuer", "https://ci.example").await;
    j.click("#register-jwt button[type=submit]").await;
    let kid = j.find("details[open] code.kid").await.text().await.unwrap();
    let sub = j.find("details[open] code.sub").await.text().await.unwrap();
    let aud = j.find("details[open] code.aud").await.text().await.unwrap();
    assert!(kid.starts_with("jwk_"));
    assert_eq!(sub, alice.id);
    j.shot("jwt").await;
    let token = signer.sign(
        json!({"alg": "RS256", "kid": kid}),
        json!({"iss": "https://ci.example", "sub": sub, "aud": aud, "iat": dotgit_testkit::T0,
               "exp": dotgit_testkit::T0 + 600, "scope": "repo:read"}),
    );
    assert_eq!(
        s.get("/v1/user", &token).await.status,
        200,
        "the worked example's claims work"
    );

    // OAuth apps: the client secret once
    j.goto("/settings/oauth-apps").await;
    j.fill("#name", "Deploy Dashboard").await;
    j.fill("#redirect_uris", "https://deploy.example/oauth/callback")
        .await;
    j.click("#scope-repo-read").await;
    j.click("#scope-deploy-read").await;
    j.click("#register-app button[type=submit]").await;
    let client_secret = j
        .find("#secret-value")
        .await
        .prop("value")
        .await
        .unwrap()
        .unwrap();
    assert!(client_secret.starts_with("dgs_"));
    let panel = j.find("#new-secret").await.text().await.unwrap();
    assert!(panel.contains("you will not see it again"));
    j.shot("oauth-apps").await;
    j.goto("/settings/oauth-apps").await;
    assert!(!j.source().await.contains(&client_secret));

    // the security log lists all of it, the revoked key's reuse flagged as an anomaly
    s.audit_until(|e| e.event_type == "anomaly.revoked_credential_used")
        .await;
    j.goto("/settings/security").await;
    let log = j.find("#events").await.text().await.unwrap();
    for t in [
        "api_key.created",
        "api_key.revoked",
        "jwt_key.registered",
        "oauth_app.created",
        "anomaly.revoked_credential_used",
    ] {
        assert!(log.contains(t), "{t} in the security log");
    }
    let flagged = j.find("tr.anomaly").await.text().await.unwrap();
    assert!(
        flagged.contains("anomaly.revoked_credential_used"),
        "{flagged}"
    );
    j.find("#f-type")
        .await
        .select_by_value("anomaly.")
        .await
        .unwrap();
    j.click("#filters button[type=submit]").await;
    j.path_when(|p| p.contains("type=anomaly.")).await;
    let filtered = j.find("#events").await.text().await.unwrap();
    assert!(
        filtered.contains("anomaly.revoked_credential_used"),
        "{filtered}"
    );
    assert!(!filtered.contains("api_key.created"), "{filtered}");
    j.goto("/settings/security").await;
    j.shot("security").await;

    // sign out: the dashboard is closed again
    j.click("form.signout button").await;
    j.find("#username").await;
    j.goto("/settings/jwt").await;
    assert!(j.path().await.starts_with("/login?"));

    // an operator suspends alice with a reason
    assert_eq!(s.get("/v1/user", alice_other_key).await.status, 200);
    j.goto("/admin").await;
    j.sign_in(&root.username, &root.password).await;
    assert_eq!(j.path().await, "/admin");
    j.fill("#reason-alice", "Leaked credentials, ticket 4711")
        .await;
    j.click("#account-alice button.danger").await;
    let notice = j.find("p.banner.ok").await.text().await.unwrap();
    assert!(notice.contains("alice suspended"), "{notice}");
    let row = j.find("#account-alice").await.text().await.unwrap();
    assert!(row.contains("suspended") && row.contains("Leaked credentials, ticket 4711"));
    j.shot("admin").await;
    let refused = s.get("/v1/user", alice_other_key).await;
    assert_eq!((refused.status, refused.code()), (403, "account_suspended"));

    // and on a phone-sized screen the tables become cards
    c.set_window_size(390, 844).await.unwrap();
    j.goto("/admin").await;
    j.find("#account-alice").await;
    j.shot("admin-phone").await;
}

#[tokio::test]
async fn the_dashboard_end_to_end_in_headless_chromium() {
    if !Path::new(CHROMIUM).exists() || !Path::new(CHROMEDRIVER).exists() {
        if std::env::var_os("CI").is_some() {
            panic!("{CHROMIUM} and {CHROMEDRIVER} are required when CI is set: .ci/run installs Debian's chromium and chromium-driver");
        }
        eprintln!(
            "SKIPPED dashboard::browser: {CHROMIUM} or {CHROMEDRIVER} is missing \
             (apt-get install -y chromium chromium-driver to run it; with CI set this fails)"
        );
        return;
    }
    let s = TestServer::start().await;
    let alice = s.account("alice").await;
    let root = s.account_with("root", Plan::Enterprise, true).await;
    let alice_other_key = s.key(&alice, &["repo:write"]).await;
    for slug in ["my-app", "other-app"] {
        let r = s
            .post(
                "/v1/projects",
                &alice_other_key,
                json!({"slug": slug, "name": slug}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let tmp = tempfile::tempdir().unwrap();
    let profile = tmp.path().join("profile");
    let driver = Driver::start().await;
    let c = browser(&driver, &s, &profile).await;
    let j = Journey {
        c: &c,
        s: &s,
        shots: shots_dir(tmp.path()),
    };
    let outcome = std::panic::AssertUnwindSafe(journey(&j, &alice, &root, &alice_other_key))
        .catch_unwind()
        .await;
    let _ = c.close().await;
    drop(driver);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}
