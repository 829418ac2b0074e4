//! The browser side: sign-in, the session cookie, CSRF on every form, the consent decision,
//! security headers, and no open redirect.

use super::*;
use dotgit_testkit::TestServer;

fn assert_html_security_headers(r: &Resp) {
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(
        r.header("content-security-policy").as_deref(),
        Some("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
    );
    assert_eq!(r.header("x-frame-options").as_deref(), Some("DENY"));
    assert_eq!(r.header("referrer-policy").as_deref(), Some("no-referrer"));
    assert_eq!(r.header("cache-control").as_deref(), Some("no-store"));
    assert!(!r.text.contains("<script"), "no scripts at all");
}

fn set_cookies(r: &Resp) -> Vec<String> {
    r.headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn login_sets_a_host_only_secure_session_cookie_and_pages_carry_security_headers() {
    let s = TestServer::start().await;
    let a = s.account("alice").await;
    let b = Browser::new(&s);
    let page = b.get("/login").await;
    assert_eq!(page.status, 200);
    assert_html_security_headers(&page);
    assert!(page.text.contains(r#"href="/static/dotgit.css""#));
    let login_cookie = set_cookies(&page);
    assert_eq!(login_cookie.len(), 1);
    assert!(login_cookie[0].starts_with("__Host-dotgit_login_csrf="));
    assert!(login_cookie[0].contains("Secure") && login_cookie[0].contains("HttpOnly"));
    let css = b.get("/static/dotgit.css").await;
    assert_eq!(css.status, 200);
    assert_eq!(
        css.header("content-type").as_deref(),
        Some("text/css; charset=utf-8")
    );

    let r = b.login_to("alice", &a.password, None).await;
    assert_eq!(r.status, 303, "{}", r.text);
    assert_eq!(r.header("location").as_deref(), Some("/login"));
    let cookies = set_cookies(&r);
    let session = cookies
        .iter()
        .find(|c| c.starts_with("__Host-dotgit_session="))
        .expect("session cookie");
    for attr in [
        "Path=/",
        "Secure",
        "HttpOnly",
        "SameSite=Lax",
        "Max-Age=43200",
    ] {
        assert!(session.contains(attr), "{attr} in {session}");
    }
    assert!(!session.contains("Domain"), "host-only: {session}");
    // the session id is stored only as its digest
    let id = session
        .trim_start_matches("__Host-dotgit_session=")
        .split(';')
        .next()
        .unwrap();
    assert_eq!(id.len(), 43);
    let db = std::fs::read(s.config.data_dir.join("dotgit.db")).unwrap();
    let wal = std::fs::read(s.config.data_dir.join("dotgit.db-wal")).unwrap_or_default();
    for bytes in [&db, &wal] {
        assert!(!bytes.windows(id.len()).any(|w| w == id.as_bytes()));
    }
    // signed in: the landing page names the account and offers sign-out
    let r = b.get("/login").await;
    assert_eq!(r.status, 200);
    assert!(r.text.contains("alice"));
    assert!(r.text.contains(r#"action="/logout""#));
    assert_html_security_headers(&r);
}

#[tokio::test]
async fn a_wrong_password_or_unknown_user_gets_one_generic_answer_and_trips_the_limiter() {
    let s = TestServer::start_with(|c| {
        c.auth_failure_limit = 4;
        c.auth_failure_window_seconds = 120;
    })
    .await;
    let a = s.account("alice").await;
    let b = Browser::new(&s);
    let wrong = b.login_to("alice", "not-the-password", None).await;
    let unknown = b.login_to("nobody", "whatever-password", None).await;
    for r in [&wrong, &unknown] {
        assert_eq!(r.status, 401, "{}", r.text);
        assert!(r.text.contains("Incorrect username or password."));
        assert!(!r.text.contains("not-the-password"));
        assert!(set_cookies(r)
            .iter()
            .all(|c| !c.starts_with("__Host-dotgit_session")));
        assert_html_security_headers(r);
    }
    // no session came of it
    let r = b.get("/login").await;
    assert!(r.text.contains(r#"name="password""#));
    // the failures count per source address: two more, then 429 even with the right password
    b.login_to("alice", "x", None).await;
    b.login_to("alice", "y", None).await;
    let r = b.login_to("alice", &a.password, None).await;
    assert_eq!(r.status, 429, "{}", r.text);
    assert_eq!(r.header("retry-after").as_deref(), Some("120"));
    s.clock.advance(120);
    let r = b.login_to("alice", &a.password, None).await;
    assert_eq!(r.status, 303, "{}", r.text);
}

#[tokio::test]
async fn login_without_its_csrf_token_is_refused() {
    let s = TestServer::start().await;
    let a = s.account("alice").await;
    let b = Browser::new(&s);
    // no form fetched: no cookie, no token
    let r = b
        .post_form(
            "/login",
            &[("username", "alice"), ("password", a.password.as_str())],
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert!(r.text.contains("csrf_token"));
    // a token that is not the cookie's
    let _ = b.get("/login").await;
    let r = b
        .post_form(
            "/login",
            &[
                ("username", "alice"),
                ("password", a.password.as_str()),
                ("csrf_token", "forged"),
            ],
        )
        .await;
    assert_eq!(r.status, 403);
    // a browser saying the POST came from another site
    let page = b.get("/login").await;
    let r = dotgit_testkit::read(
        b.client
            .post(s.url("/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("sec-fetch-site", "cross-site")
            .body(form(&[
                ("username", "alice"),
                ("password", a.password.as_str()),
                ("csrf_token", &csrf_of(&page.text, "/login")),
            ]))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 403);
    assert!(set_cookies(&r)
        .iter()
        .all(|c| !c.starts_with("__Host-dotgit_session")));
}

#[tokio::test]
async fn return_to_only_goes_to_same_origin_paths() {
    let s = TestServer::start().await;
    let a = s.account("alice").await;
    for (given, expected) in [
        ("https://evil.example/", "/login"),
        ("//evil.example/x", "/login"),
        ("/\\evil.example", "/login"),
        ("javascript:alert(1)", "/login"),
        (
            "/oauth/authorize?client_id=x",
            "/oauth/authorize?client_id=x",
        ),
    ] {
        let b = Browser::new(&s);
        let r = b.login_to("alice", &a.password, Some(given)).await;
        assert_eq!(r.status, 303);
        assert_eq!(r.header("location").as_deref(), Some(expected), "{given}");
    }
    // GET /login?return_to=… of a signed-in browser: the same rule
    let b = Browser::new(&s);
    b.login(&a).await;
    let r = b
        .get("/login?return_to=https%3A%2F%2Fevil.example%2F")
        .await;
    assert_eq!(r.status, 200);
    assert!(r.header("location").is_none());
}

#[tokio::test]
async fn consent_post_without_a_valid_csrf_token_is_refused() {
    let w = world().await;
    let (s, app, b) = (&w.s, &w.app, &w.browser);
    let (_, challenge) = pkce();
    let page = b
        .get(&authorize_path(app, "repo:read", &challenge, "st"))
        .await;
    assert_eq!(page.status, 200);
    assert_html_security_headers(&page);
    let fields = hidden_inputs(&page.text, "/oauth/authorize");
    let without: Vec<(&str, &str)> = fields
        .iter()
        .filter(|(k, _)| k != "csrf_token")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .chain([("decision", "approve")])
        .collect();
    // missing
    let r = b.post_form("/oauth/authorize", &without).await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert!(r.header("location").is_none());
    assert!(r.text.contains("csrf_token"));
    assert_html_security_headers(&r);
    // wrong
    let mut forged = without.clone();
    forged.push((
        "csrf_token",
        "0000000000000000000000000000000000000000000000000000000000000000",
    ));
    assert_eq!(b.post_form("/oauth/authorize", &forged).await.status, 403);
    // the token of another user's session
    let eve = s.account("eve").await;
    let eb = Browser::new(s);
    eb.login(&eve).await;
    let eve_page = eb
        .get(&authorize_path(app, "repo:read", &challenge, "st"))
        .await;
    let mut other = without.clone();
    let eve_csrf = csrf_of(&eve_page.text, "/oauth/authorize");
    other.push(("csrf_token", &eve_csrf));
    assert_eq!(b.post_form("/oauth/authorize", &other).await.status, 403);
    // a cross-site POST with a valid token
    let mut valid = without.clone();
    let csrf = csrf_of(&page.text, "/oauth/authorize");
    valid.push(("csrf_token", &csrf));
    let r = dotgit_testkit::read(
        b.client
            .post(s.url("/oauth/authorize"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("sec-fetch-site", "cross-site")
            .body(form(&valid))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 403);
    // no session at all (an attacker's own request)
    let anon = Browser::new(s);
    let r = anon.post_form("/oauth/authorize", &valid).await;
    assert_eq!(r.status, 403);
    assert!(r.header("location").is_none());
    // nothing was authorized by any of that
    let bob_key = s.key(&w.bob, &["keys:read"]).await;
    assert_eq!(
        s.get("/v1/oauth/authorizations", &bob_key).await.body,
        dotgit_testkit::json!([])
    );
    // the genuine form works
    let r = b.post_form("/oauth/authorize", &valid).await;
    assert_eq!(r.status, 303, "{}", r.text);
    assert!(location_params(&r).contains_key("code"));
}

#[tokio::test]
async fn denying_redirects_with_access_denied_state_and_iss() {
    let w = world().await;
    let (s, app, b) = (&w.s, &w.app, &w.browser);
    let (_, challenge) = pkce();
    let page = b
        .get(&authorize_path(app, "repo:read", &challenge, "the-state"))
        .await;
    let r = b.decide(&page, "deny").await;
    assert_eq!(r.status, 303);
    assert!(r.header("location").unwrap().starts_with(REDIRECT));
    let p = location_params(&r);
    assert_eq!(p["error"], "access_denied");
    assert_eq!(p["state"], "the-state");
    assert_eq!(p["iss"], s.base);
    assert!(!p.contains_key("code"));
}

#[tokio::test]
async fn logout_needs_its_csrf_token_and_ends_the_session() {
    let w = world().await;
    let (app, b) = (&w.app, &w.browser);
    let (_, challenge) = pkce();
    let path = authorize_path(app, "repo:read", &challenge, "st");
    assert_eq!(b.get(&path).await.status, 200);
    let r = b.post_form("/logout", &[]).await;
    assert_eq!(r.status, 403);
    assert_eq!(b.get(&path).await.status, 200, "still signed in");
    let page = b.get("/login").await;
    let r = b
        .post_form(
            "/logout",
            &[("csrf_token", &csrf_of(&page.text, "/logout"))],
        )
        .await;
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location").as_deref(), Some("/login"));
    // signed out: the authorization request goes to /login again
    let r = b.get(&path).await;
    assert_eq!(r.status, 302);
    assert!(r
        .header("location")
        .unwrap()
        .starts_with("/login?return_to="));
}

#[tokio::test]
async fn sessions_end_after_an_idle_hour_or_twelve_hours_whatever_happens() {
    let w = world().await;
    let (s, app, b) = (&w.s, &w.app, &w.browser);
    let (_, challenge) = pkce();
    let path = authorize_path(app, "repo:read", &challenge, "st");
    // active every 50 minutes: survives idle expiry, until the absolute 12 h
    for _ in 0..14 {
        s.clock.advance(50 * 60);
        assert_eq!(b.get(&path).await.status, 200);
    }
    s.clock.advance(40 * 60); // 12 h after login
    assert_eq!(b.get(&path).await.status, 302);
    // idle: a fresh session is gone after an hour without requests
    let b2 = Browser::new(s);
    b2.login(&w.bob).await;
    s.clock.advance(3599);
    assert_eq!(b2.get(&path).await.status, 200);
    s.clock.advance(3600);
    assert_eq!(b2.get(&path).await.status, 302);
}
