//! Every row of SPEC §3's error table, over real HTTPS: status, code, headers, body shape.

use dotgit_core::Plan;
use dotgit_testkit::{json, reqwest, Resp, TestServer};
use reqwest::Method;

fn assert_error_shape(r: &Resp, status: u16, code: &str) {
    assert_eq!((r.status, r.code()), (status, code), "{}", r.text);
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json; charset=utf-8")
    );
    let rid = r.header("x-request-id").expect("x-request-id");
    assert_eq!(r.body["request_id"], rid.as_str());
    assert!(!r.body["message"].as_str().unwrap().is_empty());
    assert!(r.header("strict-transport-security").is_some());
}

#[tokio::test]
async fn missing_credential_is_a_bare_bearer_challenge() {
    let s = TestServer::start().await;
    let r = s.req(Method::GET, "/v1/projects", None, None).await;
    assert_error_shape(&r, 401, "invalid_token");
    assert_eq!(
        r.header("www-authenticate").as_deref(),
        Some(r#"Bearer realm="dotgit""#)
    );
}

#[tokio::test]
async fn every_bad_credential_gets_one_indistinguishable_answer() {
    let s = TestServer::start().await;
    let a = s.account("alice").await;
    let admin = s.key(&a, &["keys:write", "repo:read"]).await;
    let good = s.key(&a, &["repo:read"]).await;
    // revoked
    let revoked = s
        .post(
            "/v1/api-keys",
            &admin,
            json!({"name": "r", "scopes": ["repo:read"]}),
        )
        .await;
    let revoked_key = revoked.body["key"].as_str().unwrap().to_owned();
    s.delete(
        &format!("/v1/api-keys/{}", revoked.body["id"].as_str().unwrap()),
        &admin,
    )
    .await;
    // expired
    let exp = s
        .post(
            "/v1/api-keys",
            &admin,
            json!({"name": "e", "scopes": ["repo:read"], "expires_in_days": 1}),
        )
        .await;
    let expired_key = exp.body["key"].as_str().unwrap().to_owned();
    s.clock.advance(2 * 86_400);
    // bad checksum: flip the last character
    let mut bad_sum = good.clone();
    let last = bad_sum.pop().unwrap();
    bad_sum.push(if last == 'a' { 'b' } else { 'a' });
    // well-formed but unknown: a real-looking key never issued
    let unknown = "dg_abcdefghijABCDEFGHIJ01234567892C2O59";
    let bodies: Vec<(String, Resp)> = futures::future::join_all(
        [
            "garbage".to_owned(),
            bad_sum,
            unknown.to_owned(),
            revoked_key,
            expired_key,
            "dgo_abcdefghijABCDEFGHIJ01234567892C2O59".to_owned(),
            "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.c2ln".to_owned(),
        ]
        .into_iter()
        .map(|t| {
            let s = &s;
            async move {
                let r = s.get("/v1/projects", &t).await;
                (t, r)
            }
        }),
    )
    .await;
    for (t, r) in &bodies {
        assert_error_shape(r, 401, "invalid_token");
        assert_eq!(
            r.header("www-authenticate").as_deref(),
            Some(r#"Bearer realm="dotgit", error="invalid_token""#)
        );
        assert_eq!(
            r.body["message"], bodies[0].1.body["message"],
            "same message for {t}"
        );
        assert!(
            !r.text.contains(t.as_str()),
            "the credential is never echoed"
        );
    }
    // not the Bearer scheme, or two Authorization headers
    let r = s
        .client
        .get(s.url("/v1/projects"))
        .header("authorization", format!("Basic {good}"))
        .send()
        .await
        .unwrap();
    assert_error_shape(&dotgit_testkit::read(r).await, 401, "invalid_token");
    let r = s
        .client
        .get(s.url("/v1/projects"))
        .header("authorization", format!("Bearer {good}"))
        .header("authorization", format!("Bearer {good}"))
        .send()
        .await
        .unwrap();
    assert_error_shape(&dotgit_testkit::read(r).await, 401, "invalid_token");
    // the scheme name is case-insensitive
    let r = s
        .client
        .get(s.url("/v1/projects"))
        .header("authorization", format!("bEaReR {good}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn credentials_in_the_query_string_are_never_accepted() {
    let s = TestServer::start().await;
    let a = s.account("alice").await;
    let good = s.key(&a, &["repo:read"]).await;
    for name in ["access_token", "api_key", "token"] {
        let r = s
            .req(
                Method::GET,
                &format!("/v1/projects?{name}={good}"),
                None,
                None,
            )
            .await;
        assert_error_shape(&r, 400, "invalid_request");
        assert!(r.body["message"].as_str().unwrap().starts_with(name));
        assert!(!r.text.contains(&good));
    }
    // and a form body is not a credential either
    let r = s
        .client
        .get(s.url("/v1/projects"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("access_token={good}"))
        .send()
        .await
        .unwrap();
    assert_error_shape(&dotgit_testkit::read(r).await, 401, "invalid_token");
}

#[tokio::test]
async fn insufficient_scope_names_the_scope() {
    let s = TestServer::start().await;
    let a = s.account("alice").await;
    let k = s.key(&a, &["repo:read:my-app"]).await;
    let r = s.get("/v1/teams", &k).await;
    assert_error_shape(&r, 401, "insufficient_scope");
    assert_eq!(
        r.header("www-authenticate").as_deref(),
        Some(r#"Bearer realm="dotgit", error="insufficient_scope", scope="team:read""#)
    );
    let r = s.get("/v1/projects/other", &k).await;
    assert_error_shape(&r, 401, "insufficient_scope");
    assert!(r
        .header("www-authenticate")
        .unwrap()
        .contains(r#"scope="repo:read:other""#));
}

#[tokio::test]
async fn suspended_account_gets_403_but_invalid_credentials_still_401() {
    let s = TestServer::start().await;
    let op = s.account_with("root", Plan::Enterprise, true).await;
    let opkey = s.key(&op, &["keys:write"]).await;
    let a = s.account("mallory").await;
    let k = s.key(&a, &["repo:read"]).await;
    assert_eq!(s.get("/v1/projects", &k).await.status, 200);
    let r = s
        .post(
            "/v1/admin/accounts/mallory/suspend",
            &opkey,
            json!({"reason": "abuse report"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "suspended");
    let r = s.get("/v1/projects", &k).await;
    assert_error_shape(&r, 403, "account_suspended");
    let r = s
        .get("/v1/projects", "dg_abcdefghijABCDEFGHIJ01234567892C2O59")
        .await;
    assert_error_shape(&r, 401, "invalid_token");
    // suspension survives a restart, revokes nothing, and lifting it restores the key
    let mut s = s;
    s.restart().await;
    assert_eq!(s.get("/v1/projects", &k).await.code(), "account_suspended");
    let r = s
        .post("/v1/admin/accounts/mallory/unsuspend", &opkey, json!({}))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(s.get("/v1/projects", &k).await.status, 200);
    // operators only: others do not see the routes
    let r = s
        .req(Method::GET, "/v1/admin/accounts", Some(&k), None)
        .await;
    assert_error_shape(&r, 404, "not_found");
    let r = s.get("/v1/admin/accounts", &opkey).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body.as_array().unwrap().len(), 2);
    let r = s
        .post("/v1/admin/accounts/nobody/suspend", &opkey, json!({}))
        .await;
    assert_error_shape(&r, 404, "not_found");
}

#[tokio::test]
async fn failed_authentications_trip_429_per_source() {
    let s = TestServer::start_with(|c| {
        c.auth_failure_limit = 5;
        c.auth_failure_window_seconds = 60;
    })
    .await;
    let a = s.account("alice").await;
    let good = s.key(&a, &["repo:read"]).await;
    for i in 0..5 {
        let r = s.get("/v1/projects", &format!("dg_wrong{i}")).await;
        assert_eq!(r.status, 401, "attempt {i}");
    }
    let r = s.get("/v1/projects", "dg_wrong").await;
    assert_error_shape(&r, 429, "rate_limited");
    assert_eq!(r.header("retry-after").as_deref(), Some("60"));
    // even a valid credential from that source waits
    assert_eq!(s.get("/v1/projects", &good).await.status, 429);
    s.clock.advance(30);
    assert_eq!(
        s.get("/v1/projects", &good)
            .await
            .header("retry-after")
            .as_deref(),
        Some("30")
    );
    s.clock.advance(30);
    assert_eq!(s.get("/v1/projects", &good).await.status, 200);
}

#[tokio::test]
async fn request_budget_is_reported_and_enforced() {
    let s = TestServer::start_with(|c| c.request_budget_per_hour = 3).await;
    let a = s.account("alice").await;
    let k = s.key(&a, &["repo:read"]).await;
    let other = s.key(&a, &["repo:read"]).await;
    for left in [2, 1, 0] {
        let r = s.get("/v1/projects", &k).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-ratelimit-limit").as_deref(), Some("3"));
        assert_eq!(r.header("x-ratelimit-remaining"), Some(left.to_string()));
        // T0 is 12:00:00 UTC: the window resets at 13:00:00
        assert_eq!(
            r.header("x-ratelimit-reset"),
            Some((dotgit_testkit::T0 + 3600).to_string())
        );
    }
    let r = s.get("/v1/projects", &k).await;
    assert_error_shape(&r, 429, "rate_limited");
    assert_eq!(r.header("retry-after").as_deref(), Some("3600"));
    assert_eq!(
        s.get("/v1/projects", &other).await.status,
        200,
        "budgets are per credential"
    );
    s.clock.advance(3600);
    assert_eq!(s.get("/v1/projects", &k).await.status, 200);
}

#[tokio::test]
async fn bad_input_404_405_413() {
    let s = TestServer::start().await;
    let a = s.account("alice").await;
    let k = s.key(&a, &["repo:write", "keys:write"]).await;
    let r = s.get("/v1/nothing-here", &k).await;
    assert_error_shape(&r, 404, "not_found");
    let r = s.req(Method::PATCH, "/v1/projects", Some(&k), None).await;
    assert_error_shape(&r, 405, "method_not_allowed");
    let big = "x".repeat(70 * 1024);
    let r = s
        .post("/v1/projects", &k, json!({"slug": "a", "name": big}))
        .await;
    assert_error_shape(&r, 413, "payload_too_large");
    let r = s
        .post("/v1/projects", &k, json!({"slug": "Not_A_Slug"}))
        .await;
    assert_error_shape(&r, 400, "invalid_request");
    assert!(r.body["message"].as_str().unwrap().starts_with("slug"));
    assert_eq!(
        s.get("/v1/projects", &k).await.body,
        json!([]),
        "nothing stored"
    );
}

#[tokio::test]
async fn plain_http_listener_refuses_without_reading_the_credential() {
    let s = TestServer::start_with(|c| c.http_listen = Some("127.0.0.1:0".parse().unwrap())).await;
    let a = s.account("alice").await;
    let k = s.key(&a, &["repo:read"]).await;
    let http = s.running().http_addr.unwrap();
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for path in ["/v1/projects", "/v1/user", "/oauth/token", "/"] {
        let r = dotgit_testkit::read(
            plain
                .get(format!("http://{http}{path}"))
                .bearer_auth(&k)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_error_shape(&r, 403, "https_required");
        assert!(r.header("location").is_none(), "never redirects");
    }
    // the key was never looked at: its budget is untouched
    let r = s.get("/v1/projects", &k).await;
    assert_eq!(r.header("x-ratelimit-remaining").as_deref(), Some("4999"));
}

#[tokio::test]
async fn storage_down_fails_closed_with_503() {
    let s = TestServer::start().await;
    let a = s.account("alice").await;
    let k = s.key(&a, &["repo:read"]).await;
    let fresh = s.key(&a, &["repo:read"]).await;
    assert_eq!(s.get("/v1/projects", &k).await.status, 200);
    s.state().store.close().await;
    // an uncached key cannot be verified: 503, never 200 and never 401
    let r = s.get("/v1/user", &fresh).await;
    assert_error_shape(&r, 503, "temporarily_unavailable");
    let r = s.get("/v1/projects", &k).await;
    assert_error_shape(&r, 503, "temporarily_unavailable");
    let r = s.req(Method::GET, "/healthz", None, None).await;
    assert_error_shape(&r, 503, "temporarily_unavailable");
}

#[tokio::test]
async fn a_client_hanging_up_mid_write_does_not_wedge_the_writer() {
    let mut s = TestServer::start().await;
    let a = s.account("alice").await;
    let admin = s.key(&a, &["keys:write", "repo:read"]).await;
    let cert = s.running().cert_path.clone();
    // clients that give up at every point of a write: during the handshake, mid-transaction, …
    for i in 0..80u64 {
        let c = reqwest::Client::builder()
            .use_preconfigured_tls(dotgit_testkit::tls_client_config(&cert))
            .timeout(std::time::Duration::from_micros(500 + (i % 40) * 250))
            .build()
            .unwrap();
        let _ = c
            .post(s.url("/v1/api-keys"))
            .bearer_auth(&admin)
            .json(&json!({"name": format!("k{i}"), "scopes": ["repo:read"]}))
            .send()
            .await;
    }
    // writes still work, and the server still shuts down
    let r = s
        .post(
            "/v1/api-keys",
            &admin,
            json!({"name": "after", "scopes": ["repo:read"]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    tokio::time::timeout(std::time::Duration::from_secs(30), s.restart())
        .await
        .expect("the server shuts down");
}
