//! The dashboard's security properties, over HTTPS with a cookie-keeping client: sessions on
//! every page, CSRF and same-origin on every form, operator pages hidden, security headers,
//! session end, other accounts' objects out of reach, and bad input refused on the page with
//! the SPEC's message and nothing stored.

use super::*;
use dotgit_core::Plan;
use dotgit_testkit::json;

/// Every form of the dashboard, with fields that would succeed (for alice, an operator, acting
/// on bob's account in `/admin`); `{key}` is one of alice's API key ids.
fn forms(key_id: &str) -> Vec<(String, Vec<(&'static str, &'static str)>)> {
    vec![
        (
            "/settings/api-keys".into(),
            vec![("name", "ci"), ("scope", "repo:read")],
        ),
        (format!("/settings/api-keys/{key_id}/rotate"), vec![]),
        (format!("/settings/api-keys/{key_id}/revoke"), vec![]),
        (
            "/settings/jwt".into(),
            vec![
                ("name", "edge"),
                ("public_key", "x"),
                ("scope", "repo:read"),
            ],
        ),
        ("/settings/jwt/jwk_x/delete".into(), vec![]),
        (
            "/settings/oauth-apps".into(),
            vec![
                ("name", "App"),
                ("redirect_uris", "https://app.example/cb"),
                ("scope", "repo:read"),
            ],
        ),
        ("/settings/oauth-apps/dgc_x/delete".into(), vec![]),
        ("/settings/oauth-apps/dgc_x/rotate-secret".into(), vec![]),
        ("/settings/authorized-apps/authz_x/revoke".into(), vec![]),
        (
            "/settings/security".into(),
            vec![("rotation_policy_days", "30")],
        ),
        (
            "/admin/accounts/bob/suspend".into(),
            vec![("reason", "abuse")],
        ),
        ("/admin/accounts/bob/unsuspend".into(), vec![]),
        ("/admin/accounts/bob/revoke-credentials".into(), vec![]),
    ]
}

fn assert_dashboard_headers(r: &Resp, what: &str) {
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("text/html; charset=utf-8"),
        "{what}"
    );
    let csp = r.header("content-security-policy").unwrap_or_default();
    assert_eq!(csp, dotgit_server::web::dashboard::DASHBOARD_CSP, "{what}");
    for must in [
        "default-src 'none'",
        "script-src 'self'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    ] {
        assert!(csp.contains(must), "{what}: {must}");
    }
    assert!(!csp.contains("unsafe"), "{what}: {csp}");
    assert_eq!(
        r.header("x-frame-options").as_deref(),
        Some("DENY"),
        "{what}"
    );
    assert_eq!(
        r.header("referrer-policy").as_deref(),
        Some("no-referrer"),
        "{what}"
    );
    assert_eq!(
        r.header("cache-control").as_deref(),
        Some("no-store"),
        "{what}"
    );
    assert_eq!(
        r.header("x-content-type-options").as_deref(),
        Some("nosniff"),
        "{what}"
    );
    assert!(r.header("strict-transport-security").is_some(), "{what}");
    // no inline script, style or event handler anywhere: the CSP would block them anyway
    let html = r.text.to_ascii_lowercase();
    for tag in html.split("<script").skip(1) {
        let open = &tag[..tag.find('>').unwrap()];
        assert!(open.contains("src=\"/static/"), "{what}: inline script");
        assert!(tag[tag.find('>').unwrap() + 1..].starts_with("</script>"));
    }
    assert!(!html.contains("<style"), "{what}: inline style");
    assert!(!html.contains(" style=\""), "{what}: style attribute");
    for handler in [
        " onclick=",
        " onload=",
        " onsubmit=",
        " onerror=",
        "javascript:",
    ] {
        assert!(!html.contains(handler), "{what}: {handler}");
    }
}

#[tokio::test]
async fn every_page_needs_a_session_and_comes_back_after_sign_in() {
    let s = TestServer::start().await;
    let a = s.account_with("alice", Plan::Enterprise, true).await;
    let b = Browser::new(&s);
    for (path, back) in [
        ("/settings", "%2Fsettings"),
        ("/settings/api-keys", "%2Fsettings%2Fapi-keys"),
        ("/settings/jwt", "%2Fsettings%2Fjwt"),
        ("/settings/oauth-apps", "%2Fsettings%2Foauth-apps"),
        (
            "/settings/security?type=anomaly.",
            "%2Fsettings%2Fsecurity%3Ftype%3Danomaly.",
        ),
        ("/admin", "%2Fadmin"),
        (
            "/settings/api-keys/key_x/revoke",
            "%2Fsettings%2Fapi-keys%2Fkey_x%2Frevoke",
        ),
        (
            "/settings/jwt/jwk_x/delete",
            "%2Fsettings%2Fjwt%2Fjwk_x%2Fdelete",
        ),
        (
            "/admin/accounts/bob/revoke-credentials",
            "%2Fadmin%2Faccounts%2Fbob%2Frevoke-credentials",
        ),
    ] {
        let r = b.get(path).await;
        assert_eq!(r.status, 303, "{path}");
        assert_eq!(
            r.header("location").unwrap(),
            format!("/login?return_to={back}"),
            "{path}"
        );
    }
    // a form posted without a session changes nothing and sends the browser to sign in,
    // coming back to the page the form belongs to
    for (path, pairs) in forms("key_x") {
        let r = b.post_form(&path, &pairs).await;
        assert_eq!(r.status, 303, "{path}");
        let loc = r.header("location").unwrap();
        assert!(loc.starts_with("/login?return_to=%2F"), "{path}: {loc}");
        assert!(!loc.contains("rotate") && !loc.contains("suspend"), "{loc}");
    }
    assert!(s
        .state()
        .store
        .list_api_keys(&a.id)
        .await
        .unwrap()
        .is_empty());
    // signing in from the redirect lands on the page asked for
    let r = b
        .login_to(
            "alice",
            &a.password,
            Some("/settings/security?type=anomaly."),
        )
        .await;
    assert_eq!(r.status, 303);
    assert_eq!(
        r.header("location").as_deref(),
        Some("/settings/security?type=anomaly.")
    );
    let r = b.get("/settings/security?type=anomaly.").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.text.contains("Security log"));
    // the signed-in landing page links to the dashboard
    let r = b.get("/settings").await;
    assert_eq!(
        (r.status, r.header("location").as_deref()),
        (303, Some("/settings/api-keys"))
    );
}

#[tokio::test]
async fn every_form_needs_the_sessions_csrf_token_and_a_same_origin_request() {
    let s = TestServer::start().await;
    let a = s.account_with("alice", Plan::Enterprise, true).await;
    let bob = s.account("bob").await;
    let bob_key = s.key(&bob, &["repo:read"]).await;
    s.key(&a, &["repo:read"]).await;
    let key_id = s.state().store.list_api_keys(&a.id).await.unwrap()[0]
        .id
        .clone();
    let b = signed_in(&s, &a).await;
    let good = csrf(&b).await;
    // another session's token (alice signed in elsewhere) is not this session's
    let other = csrf(&signed_in(&s, &a).await).await;
    assert_ne!(good, other);
    let origin = s.base.clone();
    for (path, pairs) in forms(&key_id) {
        let without = b.post_form(&path, &pairs).await;
        assert_eq!(without.status, 403, "{path} without csrf_token");
        assert!(without.text.contains("csrf_token"), "{path}");
        let mut wrong = pairs.clone();
        wrong.push(("csrf_token", &other));
        assert_eq!(b.post_form(&path, &wrong).await.status, 403, "{path} wrong");
        let mut forged = pairs.clone();
        forged.push(("csrf_token", "0".repeat(64).leak()));
        assert_eq!(
            b.post_form(&path, &forged).await.status,
            403,
            "{path} forged"
        );
        // the right token, but the browser says the form came from another site
        let mut right = pairs.clone();
        right.push(("csrf_token", &good));
        for headers in [
            vec![("origin", "https://evil.example")],
            vec![("origin", "null")],
            vec![("sec-fetch-site", "cross-site")],
            vec![("sec-fetch-site", "same-site")],
            vec![
                ("origin", origin.as_str()),
                ("sec-fetch-site", "cross-site"),
            ],
            vec![("origin", "null"), ("sec-fetch-site", "cross-site")],
            vec![("origin", "null"), ("sec-fetch-site", "none")],
            vec![("origin", "https://127.0.0.1.evil.example")],
        ] {
            let r = post_with_headers(&b, &s, &path, &right, &headers).await;
            assert_eq!(r.status, 403, "{path} {headers:?}");
            assert!(r.text.contains("another site"), "{path}");
        }
    }
    // nothing was changed by any of them
    let keys = s.state().store.list_api_keys(&a.id).await.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].id, key_id);
    assert!(s
        .state()
        .store
        .list_jwt_keys(&a.id)
        .await
        .unwrap()
        .is_empty());
    assert!(s
        .state()
        .store
        .list_oauth_apps(&a.id)
        .await
        .unwrap()
        .is_empty());
    let acct = s.state().store.account_by_id(&a.id).await.unwrap().unwrap();
    assert_eq!(acct.rotation_policy_days, 90);
    assert_eq!(s.get("/v1/user", &bob_key).await.status, 200);
    // what a browser sends for a same-origin form on a `no-referrer` page is accepted
    let r = post_with_headers(
        &b,
        &s,
        "/settings/security",
        &[("rotation_policy_days", "45"), ("csrf_token", &good)],
        &[("origin", "null"), ("sec-fetch-site", "same-origin")],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // the same form from this origin, with the token, works
    let r = post_with_headers(
        &b,
        &s,
        "/admin/accounts/bob/suspend",
        &[("reason", "abuse"), ("csrf_token", &good)],
        &[
            ("origin", origin.as_str()),
            ("sec-fetch-site", "same-origin"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        s.get("/v1/user", &bob_key).await.code(),
        "account_suspended"
    );
}

#[tokio::test]
async fn operator_pages_do_not_exist_for_other_accounts() {
    let s = TestServer::start().await;
    let op = s.account_with("root", Plan::Enterprise, true).await;
    let bob = s.account("bob").await;
    let bob_key = s.key(&bob, &["repo:read"]).await;
    let unknown = s.req(reqwest_get(), "/no-such-page", None, None).await;
    let b = signed_in(&s, &bob).await;
    let nav = b.get("/settings/api-keys").await;
    assert!(!nav.text.contains("href=\"/admin\""), "no Admin link");
    for path in ["/admin", "/admin/accounts/root/revoke-credentials"] {
        let r = b.get(path).await;
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(r.code(), unknown.code());
        assert_eq!(r.body["message"], unknown.body["message"]);
    }
    for (path, pairs) in [
        ("/admin/accounts/root/suspend", vec![("reason", "x")]),
        ("/admin/accounts/root/unsuspend", vec![]),
        ("/admin/accounts/root/revoke-credentials", vec![]),
    ] {
        let r = submit(&b, path, &pairs).await;
        assert_eq!(r.status, 404, "{path}");
    }
    let root = s
        .state()
        .store
        .account_by_id(&op.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(root.status, "active");
    // the operator sees the page, with the Admin link
    let o = signed_in(&s, &op).await;
    let r = o.get("/admin").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.text.contains("href=\"/admin\""));
    assert!(r.text.contains("bob"));
    assert_eq!(s.get("/v1/user", &bob_key).await.status, 200);
}

fn reqwest_get() -> dotgit_testkit::reqwest::Method {
    dotgit_testkit::reqwest::Method::GET
}

#[tokio::test]
async fn every_page_carries_the_security_headers_and_no_inline_code() {
    let s = TestServer::start().await;
    let a = s.account_with("alice", Plan::Enterprise, true).await;
    let key = s.key(&a, &["keys:write", "repo:write"]).await;
    let key_id = s.state().store.list_api_keys(&a.id).await.unwrap()[0]
        .id
        .clone();
    let b = signed_in(&s, &a).await;
    let mut pages: Vec<String> = PAGES.iter().map(|p| p.to_string()).collect();
    pages.push(format!("/settings/api-keys/{key_id}/revoke"));
    pages.push("/admin/accounts/alice/revoke-credentials".into());
    for p in &pages {
        let r = b.get(p).await;
        assert_eq!(r.status, 200, "{p}: {}", r.text);
        assert_dashboard_headers(&r, p);
    }
    // the answers to forms too, including the one showing a secret
    let r = submit(
        &b,
        "/settings/api-keys",
        &[("name", "ci"), ("scope", "repo:read")],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_dashboard_headers(&r, "create");
    let bad = submit(&b, "/settings/api-keys", &[("name", "ci")]).await;
    assert_eq!(bad.status, 400);
    assert_dashboard_headers(&bad, "create, bad input");
    // the one script is served from this origin, as JavaScript, and never sniffed
    let js = b.get("/static/dotgit.js").await;
    assert_eq!(js.status, 200);
    assert_eq!(
        js.header("content-type").as_deref(),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(
        js.header("x-content-type-options").as_deref(),
        Some("nosniff")
    );
    assert!(js.text.contains("data-copy"));
    // the sign-in page keeps its stricter policy: no script at all
    let login = Browser::new(&s).get("/login").await;
    let csp = login.header("content-security-policy").unwrap();
    assert!(!csp.contains("script-src"), "{csp}");
    assert!(!login.text.contains("<script"));
    let _ = key;
}

#[tokio::test]
async fn sign_out_idle_timeout_and_absolute_expiry_end_access() {
    let s = TestServer::start().await;
    let a = s.account("alice").await;
    // sign out
    let b = signed_in(&s, &a).await;
    let token = csrf(&b).await;
    let r = b.post_form("/logout", &[("csrf_token", &token)]).await;
    assert_eq!(r.status, 303);
    let r = b.get("/settings/api-keys").await;
    assert_eq!(r.status, 303);
    assert!(r.header("location").unwrap().starts_with("/login?"));
    // and the old session's token no longer works for a form either
    let r = b
        .post_form(
            "/settings/api-keys",
            &[
                ("name", "x"),
                ("scope", "repo:read"),
                ("csrf_token", &token),
            ],
        )
        .await;
    assert_eq!(r.status, 303);
    assert!(s
        .state()
        .store
        .list_api_keys(&a.id)
        .await
        .unwrap()
        .is_empty());

    // an hour without a request ends a session
    let b = signed_in(&s, &a).await;
    assert_eq!(b.get("/settings/jwt").await.status, 200);
    s.clock.advance(3599);
    assert_eq!(b.get("/settings/jwt").await.status, 200);
    s.clock.advance(3601);
    assert_eq!(b.get("/settings/jwt").await.status, 303);

    // twelve hours end it however busy it is
    let b = signed_in(&s, &a).await;
    for _ in 0..14 {
        s.clock.advance(50 * 60);
        assert_eq!(b.get("/settings/api-keys").await.status, 200);
    }
    s.clock.advance(50 * 60);
    let r = b.get("/settings/api-keys").await;
    assert_eq!(r.status, 303, "past the absolute lifetime");
}

#[tokio::test]
async fn another_accounts_objects_are_404_and_nothing_of_theirs_changes() {
    let s = TestServer::start().await;
    let a = s.account("alice").await;
    let bob = s.account("bob").await;
    let bob_key = s.key(&bob, &["keys:write", "repo:read"]).await;
    let bob_key_id = s.state().store.list_api_keys(&bob.id).await.unwrap()[0]
        .id
        .clone();
    let signer = crate::jwt::Signer::new(aws_lc_rs::rsa::KeySize::Rsa2048);
    let jwt = s
        .post(
            "/v1/jwt-keys",
            &bob_key,
            json!({"name": "edge", "public_key": signer.pkcs1_pem(), "allowed_scopes": ["repo:read"]}),
        )
        .await;
    assert_eq!(jwt.status, 201, "{}", jwt.text);
    let kid = jwt.body["kid"].as_str().unwrap().to_owned();
    let app = crate::oauth::register(
        &s,
        &bob_key,
        true,
        &[crate::oauth::REDIRECT],
        &["repo:read"],
    )
    .await;
    let b = signed_in(&s, &a).await;
    for path in [
        format!("/settings/api-keys/{bob_key_id}/revoke"),
        format!("/settings/jwt/{kid}/delete"),
        format!("/settings/oauth-apps/{}/delete", app.client_id),
        format!("/settings/oauth-apps/{}/rotate-secret", app.client_id),
    ] {
        let confirm = b.get(&path).await;
        assert_eq!(confirm.status, 404, "GET {path}");
        let r = submit(&b, &path, &[]).await;
        assert_eq!(r.status, 404, "POST {path}: {}", r.text);
        assert!(!r.text.contains(&bob_key_id) || path.contains(&bob_key_id));
    }
    let r = submit(
        &b,
        &format!("/settings/api-keys/{bob_key_id}/rotate"),
        &[("grace_period_seconds", "0")],
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.text);
    // bob's key, JWT key and app are all still there and working
    assert_eq!(s.get("/v1/user", &bob_key).await.status, 200);
    assert_eq!(
        s.get(&format!("/v1/jwt-keys/{kid}"), &bob_key).await.status,
        200
    );
    assert_eq!(
        s.get(&format!("/v1/oauth/apps/{}", app.client_id), &bob_key)
            .await
            .status,
        200
    );
    let bobs = s.state().store.list_api_keys(&bob.id).await.unwrap();
    assert_eq!(bobs.len(), 1);
    assert!(bobs[0].replaced_by.is_none());
    // and no revocation was recorded against them
    let events = s.audit_all().await;
    assert!(!events.iter().any(|e| e.event_type == "api_key.revoked"
        || e.event_type == "api_key.rotated"
        || e.event_type == "jwt_key.deleted"
        || e.event_type == "oauth_app.deleted"));
}

#[tokio::test]
async fn bad_input_shows_the_specs_message_on_the_page_and_stores_nothing() {
    let s = TestServer::start().await;
    let a = s.account_with("alice", Plan::Enterprise, true).await;
    s.account("bob").await;
    let b = signed_in(&s, &a).await;
    // (the sign-in's own event is written behind; wait for it before counting)
    let before = s
        .audit_until(|e| e.event_type == "login.succeeded")
        .await
        .len();
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            "/settings/api-keys",
            vec![("name", "ci"), ("extra_scopes", "repo:admin")],
            "scopes[0]: `repo:admin` is not a valid scope",
        ),
        (
            "/settings/api-keys",
            vec![
                ("name", "ci"),
                ("scope", "repo:read"),
                ("project", "Not A Slug"),
            ],
            "scopes[0]: `repo:read:Not A Slug` is not a valid scope",
        ),
        (
            "/settings/api-keys",
            vec![("name", "ci")],
            "scopes: at least one scope is required",
        ),
        (
            "/settings/api-keys",
            vec![("scope", "repo:read")],
            "name: must be 1 to 100 characters",
        ),
        (
            "/settings/api-keys",
            vec![
                ("name", "ci"),
                ("scope", "repo:read"),
                ("expires_in_days", "0"),
            ],
            "expires_in_days: must be between 1 and 3650",
        ),
        (
            "/settings/api-keys",
            vec![
                ("name", "ci"),
                ("scope", "repo:read"),
                ("expires_in_days", "soon"),
            ],
            "expires_in_days: must be a whole number",
        ),
        (
            "/settings/jwt",
            vec![
                ("name", "edge"),
                ("scope", "repo:read"),
                (
                    "public_key",
                    "-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----",
                ),
            ],
            "public_key",
        ),
        (
            "/settings/jwt",
            vec![("name", "edge"), ("scope", "repo:read")],
            "public_key: paste the RSA public key",
        ),
        (
            "/settings/oauth-apps",
            vec![
                ("name", "App"),
                ("redirect_uris", "http://app.example/cb"),
                ("scope", "repo:read"),
            ],
            "redirect_uris[0]: http:// is only allowed on a loopback host",
        ),
        (
            "/settings/oauth-apps",
            vec![
                ("name", "App"),
                ("redirect_uris", "https://app.example/cb#x"),
                ("scope", "repo:read"),
            ],
            "redirect_uris[0]: must not contain a fragment",
        ),
        (
            "/settings/security",
            vec![("rotation_policy_days", "0")],
            "rotation_policy_days: must be between 1 and 3650",
        ),
        (
            "/admin/accounts/bob/suspend",
            vec![],
            "reason: say why the account is suspended",
        ),
    ];
    for (path, pairs, message) in cases {
        let r = submit(&b, path, &pairs).await;
        assert_eq!(r.status, 400, "{path} {pairs:?}: {}", r.text);
        let text = crate::oauth::unescape(&r.text);
        assert!(text.contains(message), "{path}: {message} in {text}");
        assert!(text.contains("role=\"alert\""), "{path}");
        // the form is still there, filled in with what was typed where that is safe
        assert!(r.text.contains("<form method=\"post\""), "{path}");
    }
    let st = &s.state().store;
    assert!(st.list_api_keys(&a.id).await.unwrap().is_empty());
    assert!(st.list_jwt_keys(&a.id).await.unwrap().is_empty());
    assert!(st.list_oauth_apps(&a.id).await.unwrap().is_empty());
    let acct = st.account_by_username("bob").await.unwrap().unwrap();
    assert_eq!(acct.status, "active");
    let me = st.account_by_id(&a.id).await.unwrap().unwrap();
    assert_eq!(me.rotation_policy_days, 90);
    assert_eq!(s.audit_all().await.len(), before, "nothing was recorded");
    // the security log's filters are checked the way the API checks them
    let r = b.get("/settings/security?since=yesterday").await;
    assert_eq!(r.status, 400);
    assert!(
        r.text.contains("since: must be an RFC 3339 time"),
        "{}",
        r.text
    );
    let r = b.get("/settings/security?outcome=maybe").await;
    assert_eq!(r.status, 400);
    assert!(r
        .text
        .contains("outcome: must be success, failure or detected"));
}

#[tokio::test]
async fn dashboard_sign_in_failures_are_generic_and_rate_limited() {
    let s = TestServer::start_with(|c| {
        c.auth_failure_limit = 3;
        c.auth_failure_window_seconds = 60;
    })
    .await;
    let a = s.account("alice").await;
    let b = Browser::new(&s);
    let r = b.get("/settings/api-keys").await;
    let back = "/settings/api-keys";
    assert!(r.header("location").unwrap().contains("return_to"));
    let wrong = b.login_to("alice", "wrong-password", Some(back)).await;
    let unknown = b.login_to("mallory", "wrong-password", Some(back)).await;
    assert_eq!((wrong.status, unknown.status), (401, 401));
    let generic = |r: &Resp, user: &str| {
        let token = crate::oauth::csrf_of(&r.text, "/login");
        r.text.replace(&token, "TOKEN").replace(user, "USER")
    };
    assert_eq!(
        generic(&wrong, "alice"),
        generic(&unknown, "mallory"),
        "one generic answer for a wrong password and an unknown user"
    );
    assert!(wrong.text.contains("Incorrect username or password."));
    b.login_to("alice", "wrong-again", Some(back)).await;
    let r = b.login_to("alice", &a.password, Some(back)).await;
    assert_eq!(r.status, 429, "{}", r.text);
    assert!(r.header("retry-after").is_some());
    assert_eq!(b.get(back).await.status, 303, "still signed out");
    s.clock.advance(61);
    let r = b.login_to("alice", &a.password, Some(back)).await;
    assert_eq!(
        (r.status, r.header("location").as_deref()),
        (303, Some(back))
    );
    assert_eq!(b.get(back).await.status, 200);
}
