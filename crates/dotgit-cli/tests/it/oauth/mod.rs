//! OAuth 2.0 authorization server, end to end over TLS: the whole flow driven by the `oauth2`
//! crate (an off-the-shelf client), the attacks RFC 9700 worries about, browser sign-in and
//! CSRF, app registration, and access tokens on the `/v1` API.
//!
//! The helpers here play the two other parties: a [`Browser`] (a cookie-keeping HTTPS client
//! that signs in with `POST /login` and submits the consent form like a person would) and a
//! third-party app talking to the token endpoint.

mod attacks;
mod flow;
mod web;

use base64::Engine;
use dotgit_testkit::{json, read, reqwest, Resp, TestServer};
use std::collections::HashMap;

/// The redirect URI the test apps register.
pub const REDIRECT: &str = "https://app.example/callback";

/// A registered test app.
#[derive(Debug, Clone)]
pub struct App {
    pub client_id: String,
    pub secret: Option<String>,
    pub redirect_uri: String,
}

/// Registers an app through the API with a `keys:write` key of its owner.
pub async fn register(
    s: &TestServer,
    key: &str,
    confidential: bool,
    redirect_uris: &[&str],
    scopes: &[&str],
) -> App {
    let r = s
        .post(
            "/v1/oauth/apps",
            key,
            json!({"name": "Test App", "redirect_uris": redirect_uris, "allowed_scopes": scopes, "confidential": confidential}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    App {
        client_id: r.body["client_id"].as_str().unwrap().to_owned(),
        secret: r.body["client_secret"].as_str().map(str::to_owned),
        redirect_uri: redirect_uris[0].to_owned(),
    }
}

/// A PKCE pair: (verifier, S256 challenge).
pub fn pkce() -> (String, String) {
    let mut b = [0u8; 32];
    aws_lc_rs::rand::fill(&mut b).unwrap();
    let verifier = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    (verifier.clone(), challenge_of(&verifier))
}

/// `BASE64URL(SHA256(verifier))`.
pub fn challenge_of(verifier: &str) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(d.as_ref())
}

/// Form-encodes pairs.
pub fn form(pairs: &[(&str, &str)]) -> String {
    let mut f = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        f.append_pair(k, v);
    }
    f.finish()
}

/// The path of an authorization request.
pub fn authorize_path(app: &App, scope: &str, challenge: &str, state: &str) -> String {
    format!(
        "/oauth/authorize?{}",
        form(&[
            ("response_type", "code"),
            ("client_id", &app.client_id),
            ("redirect_uri", &app.redirect_uri),
            ("scope", scope),
            ("state", state),
            ("code_challenge", challenge),
            ("code_challenge_method", "S256"),
        ])
    )
}

pub use dotgit_testkit::unescape_html as unescape;

/// The hidden inputs of the first form posting to `action` in a page.
pub fn hidden_inputs(html: &str, action: &str) -> Vec<(String, String)> {
    dotgit_testkit::hidden_inputs(html, action)
        .unwrap_or_else(|| panic!("no well-formed form posting to {action} in {html}"))
}

/// The `csrf_token` of the first form posting to `action`.
pub fn csrf_of(html: &str, action: &str) -> String {
    hidden_inputs(html, action)
        .into_iter()
        .find(|(k, _)| k == "csrf_token")
        .map(|(_, v)| v)
        .expect("csrf_token")
}

/// The query parameters of a response's `Location`.
pub fn location_params(r: &Resp) -> HashMap<String, String> {
    let loc = r.header("location").expect("location");
    let url = url::Url::parse(&loc)
        .or_else(|_| url::Url::parse(&format!("https://relative.invalid{loc}")))
        .unwrap();
    url.query_pairs().into_owned().collect()
}

/// A person's browser: keeps cookies, follows nothing by itself.
pub struct Browser {
    pub client: reqwest::Client,
    base: String,
}

impl Browser {
    pub fn new(s: &TestServer) -> Browser {
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(dotgit_testkit::tls_client_config(&s.running().cert_path))
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Browser {
            client,
            base: s.base.clone(),
        }
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("https://") {
            path.to_owned()
        } else {
            format!("{}{}", self.base, path)
        }
    }

    pub async fn get(&self, path: &str) -> Resp {
        read(self.client.get(self.url(path)).send().await.unwrap()).await
    }

    pub async fn post_form(&self, path: &str, pairs: &[(&str, &str)]) -> Resp {
        read(
            self.client
                .post(self.url(path))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form(pairs))
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// Signs in the way a script does: the form (for its CSRF token and cookie), then the POST.
    pub async fn login_to(&self, user: &str, password: &str, return_to: Option<&str>) -> Resp {
        let page = self.get("/login").await;
        assert_eq!(page.status, 200, "{}", page.text);
        let csrf = csrf_of(&page.text, "/login");
        let mut pairs = vec![
            ("username", user),
            ("password", password),
            ("csrf_token", csrf.as_str()),
        ];
        if let Some(r) = return_to {
            pairs.push(("return_to", r));
        }
        self.post_form("/login", &pairs).await
    }

    /// Signs in and checks it worked.
    pub async fn login(&self, account: &dotgit_testkit::Account) {
        let r = self
            .login_to(&account.username, &account.password, None)
            .await;
        assert_eq!(r.status, 303, "{}", r.text);
    }

    /// Submits the consent form of `page` with `decision`.
    pub async fn decide(&self, page: &Resp, decision: &str) -> Resp {
        assert_eq!(page.status, 200, "{}", page.text);
        let fields = hidden_inputs(&page.text, "/oauth/authorize");
        let mut pairs: Vec<(&str, &str)> = fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        pairs.push(("decision", decision));
        self.post_form("/oauth/authorize", &pairs).await
    }

    /// Opens the authorization request (already signed in) and approves: the redirect.
    pub async fn approve(&self, path: &str) -> Resp {
        let page = self.get(path).await;
        self.decide(&page, "approve").await
    }
}

/// A signed-in browser's code for `app` (approved), with its PKCE verifier.
pub async fn code_for(b: &Browser, app: &App, scope: &str) -> (String, String) {
    let (verifier, challenge) = pkce();
    let r = b
        .approve(&authorize_path(app, scope, &challenge, "st"))
        .await;
    assert_eq!(r.status, 303, "{}", r.text);
    let p = location_params(&r);
    (p["code"].clone(), verifier)
}

/// A token endpoint call; `basic` sends the client credentials with HTTP Basic.
pub async fn post_token(
    s: &TestServer,
    path: &str,
    basic: Option<(&str, &str)>,
    pairs: &[(&str, &str)],
) -> Resp {
    let mut rb = s
        .client
        .post(s.url(path))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(pairs));
    if let Some((id, secret)) = basic {
        rb = rb.basic_auth(id, Some(secret));
    }
    read(rb.send().await.unwrap()).await
}

/// `pairs` plus the app's own client authentication (Basic for confidential apps).
pub async fn as_client(s: &TestServer, app: &App, path: &str, pairs: &[(&str, &str)]) -> Resp {
    match &app.secret {
        Some(secret) => post_token(s, path, Some((&app.client_id, secret)), pairs).await,
        None => {
            let mut p = pairs.to_vec();
            p.push(("client_id", &app.client_id));
            post_token(s, path, None, &p).await
        }
    }
}

/// Redeems a code as `app`.
pub async fn exchange(s: &TestServer, app: &App, code: &str, verifier: &str) -> Resp {
    as_client(
        s,
        app,
        "/oauth/token",
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &app.redirect_uri),
            ("code_verifier", verifier),
        ],
    )
    .await
}

/// Refreshes as `app`.
pub async fn refresh(s: &TestServer, app: &App, rt: &str, scope: Option<&str>) -> Resp {
    let mut p = vec![("grant_type", "refresh_token"), ("refresh_token", rt)];
    if let Some(sc) = scope {
        p.push(("scope", sc));
    }
    as_client(s, app, "/oauth/token", &p).await
}

/// Introspects as `app`.
pub async fn introspect(s: &TestServer, app: &App, token: &str) -> Resp {
    as_client(s, app, "/oauth/introspect", &[("token", token)]).await
}

/// The tokens of a successful token response: (access, refresh).
pub fn tokens(r: &Resp) -> (String, String) {
    assert_eq!(r.status, 200, "{}", r.text);
    (
        r.body["access_token"].as_str().unwrap().to_owned(),
        r.body["refresh_token"].as_str().unwrap().to_owned(),
    )
}

/// Asserts an OAuth error: status, code, the SPEC §3 shape and `error_description`.
pub fn assert_oauth_error(r: &Resp, status: u16, code: &str) {
    assert_eq!((r.status, r.code()), (status, code), "{}", r.text);
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(r.body["error_description"], r.body["message"]);
    assert_eq!(
        r.body["request_id"].as_str(),
        r.header("x-request-id").as_deref()
    );
    assert_eq!(r.header("cache-control").as_deref(), Some("no-store"));
}

/// A server with alice (an app owner with an app) and bob (a user who authorizes it).
pub struct World {
    pub s: TestServer,
    pub alice_key: String,
    pub bob: dotgit_testkit::Account,
    pub app: App,
    pub browser: Browser,
}

/// Starts a server, registers a confidential app and signs bob in.
pub async fn world() -> World {
    let s = TestServer::start().await;
    let alice = s.account("alice").await;
    let alice_key = s.key(&alice, &["keys:write", "repo:write"]).await;
    let app = register(
        &s,
        &alice_key,
        true,
        &[REDIRECT],
        &["repo:write", "keys:read"],
    )
    .await;
    let bob = s.account("bob").await;
    let browser = Browser::new(&s);
    browser.login(&bob).await;
    World {
        s,
        alice_key,
        bob,
        app,
        browser,
    }
}
