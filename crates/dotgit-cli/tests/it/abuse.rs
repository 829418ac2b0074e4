//! Abuse protection and account control: the failed-authentication limiter (exact count, backoff,
//! proxies), per-plan budgets, suspension of every credential kind, revoke-all, the rotation
//! policy (flagged, then enforced) and the least-privilege report.

use crate::jwt::Signer;
use aws_lc_rs::rsa::KeySize;
use dotgit_core::Plan;
use dotgit_testkit::{json, reqwest, Resp, TestServer, AUDIENCE, T0};
use reqwest::Method;

async fn from(s: &TestServer, token: &str, source: &str) -> Resp {
    let r = s
        .client
        .get(s.url("/v1/projects"))
        .bearer_auth(token)
        .header("x-forwarded-for", source)
        .send()
        .await
        .unwrap();
    dotgit_testkit::read(r).await
}

#[tokio::test]
async fn the_default_limit_trips_at_exactly_twenty_and_backs_off_on_repeat() {
    let s = TestServer::start().await;
    let a = s.account("alice").await;
    let good = s.key(&a, &["repo:read"]).await;
    for i in 0..20 {
        assert_eq!(
            s.get("/v1/projects", "dg_guess").await.status,
            401,
            "attempt {}",
            i + 1
        );
    }
    let r = s.get("/v1/projects", "dg_guess").await;
    assert_eq!((r.status, r.code()), (429, "rate_limited"));
    assert_eq!(r.header("retry-after").as_deref(), Some("300"));
    assert_eq!(
        s.get("/v1/projects", &good).await.status,
        429,
        "every attempt from the source waits"
    );
    // the 429 did not count as further failures: the block ends on time
    s.clock.advance(300);
    assert_eq!(s.get("/v1/projects", &good).await.status, 200);
    // tripping again within a day doubles the block
    for _ in 0..20 {
        s.get("/v1/projects", "dg_guess").await;
    }
    assert_eq!(
        s.get("/v1/projects", &good)
            .await
            .header("retry-after")
            .as_deref(),
        Some("600")
    );
    s.clock.advance(599);
    assert_eq!(s.get("/v1/projects", &good).await.status, 429);
    s.clock.advance(1);
    assert_eq!(s.get("/v1/projects", &good).await.status, 200);
}

#[tokio::test]
async fn forwarded_for_is_believed_only_from_trusted_proxies() {
    // no trusted proxies: a client cannot escape its budget by inventing X-Forwarded-For
    let s = TestServer::start_with(|c| c.auth_failure_limit = 3).await;
    for i in 0..3 {
        from(&s, "dg_guess", &format!("203.0.113.{i}")).await;
    }
    assert_eq!(from(&s, "dg_guess", "198.51.100.77").await.status, 429);

    // behind a trusted proxy: each client address has its own budget, and a valid credential
    // from another source is unaffected
    let s = TestServer::start_with(|c| {
        c.auth_failure_limit = 3;
        c.trusted_proxies = vec!["127.0.0.1/32".into()];
    })
    .await;
    let a = s.account("alice").await;
    let good = s.key(&a, &["repo:read"]).await;
    for _ in 0..3 {
        from(&s, "dg_guess", "203.0.113.5").await;
    }
    assert_eq!(from(&s, &good, "203.0.113.5").await.status, 429);
    assert_eq!(from(&s, &good, "198.51.100.9").await.status, 200);
    // the right-most untrusted hop counts, not a spoofed left-most one
    assert_eq!(from(&s, &good, "10.0.0.1, 203.0.113.5").await.status, 429);
}

#[tokio::test]
async fn budgets_are_per_plan() {
    let s = TestServer::start_with(|c| {
        c.request_budget_per_hour = 100;
        c.request_budget_per_hour_free = Some(2);
    })
    .await;
    let free = s.account_with("freeloader", Plan::Free, false).await;
    let pro = s.account_with("payer", Plan::Pro, false).await;
    let kf = s.key(&free, &["repo:read"]).await;
    let kp = s.key(&pro, &["repo:read"]).await;
    assert_eq!(
        s.get("/v1/projects", &kf)
            .await
            .header("x-ratelimit-limit")
            .as_deref(),
        Some("2")
    );
    assert_eq!(
        s.get("/v1/projects", &kp)
            .await
            .header("x-ratelimit-limit")
            .as_deref(),
        Some("100")
    );
    s.get("/v1/projects", &kf).await;
    assert_eq!(s.get("/v1/projects", &kf).await.code(), "rate_limited");
    assert_eq!(s.get("/v1/projects", &kp).await.status, 200);
}

#[tokio::test]
async fn suspension_blocks_api_keys_and_jwts_survives_restarts_and_revokes_nothing() {
    let mut s = TestServer::start().await;
    let op = s.account_with("root", Plan::Enterprise, true).await;
    let opkey = s.key(&op, &["keys:write"]).await;
    let a = s.account("alice").await;
    let admin = s.key(&a, &["keys:write", "repo:read"]).await;
    let signer = Signer::new(KeySize::Rsa2048);
    let r = s.post("/v1/jwt-keys", &admin, json!({"name": "ci", "public_key": signer.pkcs1_pem(), "allowed_scopes": ["repo:read"], "issuer": "ci"})).await;
    let kid = r.body["kid"].as_str().unwrap().to_owned();
    let jwt = |now: i64| {
        signer.sign(json!({"alg": "RS256", "kid": kid}), json!({"iss": "ci", "sub": a.id, "aud": AUDIENCE, "iat": now, "exp": now + 900, "scope": "repo:read"}))
    };
    let tok = jwt(T0);
    assert_eq!(s.get("/v1/projects", &admin).await.status, 200);
    assert_eq!(
        s.get("/v1/projects", &tok).await.status,
        200,
        "cached before the suspension"
    );
    let r = s
        .post(
            "/v1/admin/accounts/alice/suspend",
            &opkey,
            json!({"reason": "fraud"}),
        )
        .await;
    assert_eq!(r.body["status_reason"], "fraud");
    for cred in [&admin, &tok] {
        let r = s.get("/v1/projects", cred).await;
        assert_eq!((r.status, r.code()), (403, "account_suspended"));
    }
    // an invalid credential still gets 401: account state never leaks
    let mut forged = tok.clone();
    forged.push('A');
    assert_eq!(s.get("/v1/projects", &forged).await.status, 401);
    s.restart().await;
    assert_eq!(
        s.get("/v1/projects", &admin).await.code(),
        "account_suspended"
    );
    assert_eq!(
        s.get("/v1/projects", &jwt(T0 + 1)).await.code(),
        "account_suspended"
    );
    s.post("/v1/admin/accounts/alice/unsuspend", &opkey, json!({}))
        .await;
    assert_eq!(
        s.get("/v1/projects", &admin).await.status,
        200,
        "lifting restores everything"
    );
    assert_eq!(s.get("/v1/projects", &jwt(T0 + 2)).await.status, 200);
}

#[tokio::test]
async fn revoke_all_credentials_is_a_separate_operator_action() {
    let s = TestServer::start().await;
    let op = s.account_with("root", Plan::Enterprise, true).await;
    let opkey = s.key(&op, &["keys:write"]).await;
    let a = s.account("alice").await;
    let k1 = s.key(&a, &["repo:read", "keys:write"]).await;
    let k2 = s.key(&a, &["repo:read"]).await;
    let signer = Signer::new(KeySize::Rsa2048);
    s.post(
        "/v1/jwt-keys",
        &k1,
        json!({"name": "ci", "public_key": signer.pkcs1_pem(), "allowed_scopes": ["repo:read"]}),
    )
    .await;
    assert_eq!(s.get("/v1/projects", &k2).await.status, 200);
    let r = s
        .post(
            "/v1/admin/accounts/alice/revoke-credentials",
            &opkey,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["revoked"].as_array().unwrap().len(), 3);
    for k in [&k1, &k2] {
        assert_eq!(s.get("/v1/projects", k).await.code(), "invalid_token");
    }
    assert_eq!(
        s.get("/v1/user", &opkey).await.status,
        200,
        "other accounts untouched"
    );
    // not an operator: the route does not exist
    let k3 = s.key(&a, &["keys:write"]).await;
    assert_eq!(
        s.post("/v1/admin/accounts/root/revoke-credentials", &k3, json!({}))
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn rotation_policy_flags_then_enforces_for_api_keys_and_jwt_keys() {
    let s = TestServer::start().await;
    let a = s.account("alice").await;
    let admin = s.key(&a, &["keys:write", "repo:read"]).await;
    let signer = Signer::new(KeySize::Rsa2048);
    let r = s.post("/v1/jwt-keys", &admin, json!({"name": "ci", "public_key": signer.pkcs1_pem(), "allowed_scopes": ["repo:read"], "issuer": "ci"})).await;
    let kid = r.body["kid"].as_str().unwrap().to_owned();
    assert_eq!(r.body["rotation_due"], false);
    assert_eq!(r.body["not_after"], json!(null));
    let jwt = |now: i64| {
        signer.sign(json!({"alg": "RS256", "kid": kid}), json!({"iss": "ci", "sub": a.id, "aud": AUDIENCE, "iat": now, "exp": now + 900, "scope": "repo:read"}))
    };

    // day 89: fine; day 90: due — flagged in the key object and on every use, still working
    s.clock.advance(89 * 86_400);
    let r = s.get("/v1/projects", &admin).await;
    assert_eq!(r.status, 200);
    assert!(r.header("x-dotgit-key-rotation-due").is_none());
    s.clock.advance(86_400);
    let r = s.get("/v1/projects", &admin).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("x-dotgit-key-rotation-due").as_deref(),
        Some("true")
    );
    assert_eq!(
        s.get("/v1/api-keys", &admin).await.body[0]["rotation_due"],
        true
    );
    assert_eq!(
        s.get(&format!("/v1/jwt-keys/{kid}"), &admin).await.body["rotation_due"],
        true
    );
    let now = T0 + 90 * 86_400;
    assert_eq!(
        s.get("/v1/projects", &jwt(now))
            .await
            .header("x-dotgit-key-rotation-due")
            .as_deref(),
        Some("true")
    );

    // a fresh key is not due
    let fresh = s
        .post(
            "/v1/api-keys",
            &admin,
            json!({"name": "fresh", "scopes": ["repo:read"]}),
        )
        .await;
    let fresh_key = fresh.body["key"].as_str().unwrap().to_owned();
    assert_eq!(fresh.body["rotation_due"], false);

    // the account tightens and enforces the policy: old keys stop working at once
    let r = s
        .req(
            Method::PATCH,
            "/v1/user",
            Some(&fresh_key),
            Some(json!({"rotation_policy_days": 30})),
        )
        .await;
    assert_eq!(r.code(), "insufficient_scope", "needs keys:write");
    let r = s
        .req(
            Method::PATCH,
            "/v1/user",
            Some(&admin),
            Some(json!({"rotation_policy_days": 30, "rotation_policy_enforce": true})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["rotation_policy_days"], 30);
    assert_eq!(s.get("/v1/projects", &admin).await.code(), "invalid_token");
    assert_eq!(
        s.get("/v1/projects", &jwt(now + 1)).await.code(),
        "invalid_token"
    );
    assert_eq!(s.get("/v1/projects", &fresh_key).await.status, 200);
    // …and the fresh one in 30 days
    let fresh_out = s.get("/v1/api-keys", &fresh_key).await;
    assert_eq!(fresh_out.code(), "insufficient_scope");
    s.clock.advance(30 * 86_400 - 1);
    assert_eq!(s.get("/v1/projects", &fresh_key).await.status, 200);
    s.clock.advance(1);
    assert_eq!(
        s.get("/v1/projects", &fresh_key).await.code(),
        "invalid_token"
    );
    let r = s
        .req(
            Method::PATCH,
            "/v1/user",
            Some(&admin),
            Some(json!({"rotation_policy_days": 0})),
        )
        .await;
    assert_eq!(
        r.code(),
        "invalid_token",
        "the admin key is past the policy too"
    );
}

#[tokio::test]
async fn bad_settings_are_refused() {
    let s = TestServer::start().await;
    let a = s.account("alice").await;
    let admin = s.key(&a, &["keys:write"]).await;
    for (body, field) in [
        (json!({"rotation_policy_days": 0}), "rotation_policy_days"),
        (
            json!({"rotation_policy_days": 4000}),
            "rotation_policy_days",
        ),
        (
            json!({"rotation_policy_enforce": "yes"}),
            "rotation_policy_enforce",
        ),
        (json!({}), "body"),
        (json!({"colour": 1}), "colour"),
    ] {
        let r = s
            .req(Method::PATCH, "/v1/user", Some(&admin), Some(body.clone()))
            .await;
        assert_eq!((r.status, r.code()), (400, "invalid_request"), "{body}");
        assert!(
            r.body["message"].as_str().unwrap().contains(field),
            "{body}: {}",
            r.text
        );
    }
}

#[tokio::test]
async fn each_key_reports_which_of_its_scopes_it_actually_used() {
    let mut s = TestServer::start().await;
    let a = s.account("alice").await;
    let admin = s
        .key(
            &a,
            &["keys:write", "repo:write", "deploy:read", "team:read"],
        )
        .await;
    let r = s
        .post(
            "/v1/api-keys",
            &admin,
            json!({"name": "ci", "scopes": ["repo:read", "deploy:read", "team:read"]}),
        )
        .await;
    let (k, id) = (
        r.body["key"].as_str().unwrap().to_owned(),
        r.body["id"].as_str().unwrap().to_owned(),
    );
    assert_eq!(
        r.body["unused_scopes"],
        json!(["repo:read", "deploy:read", "team:read"])
    );
    s.post("/v1/projects", &admin, json!({"slug": "app"})).await;
    assert_eq!(s.get("/v1/projects", &k).await.status, 200);
    assert_eq!(s.get("/v1/projects/app", &k).await.status, 200);
    let r = s.get(&format!("/v1/api-keys/{id}"), &admin).await;
    assert_eq!(
        r.body["unused_scopes"],
        json!(["deploy:read", "team:read"]),
        "{}",
        r.text
    );
    let usage = r.body["scope_usage"].as_array().unwrap();
    assert_eq!(usage[0]["scope"], "repo:read");
    assert_eq!(usage[0]["last_used_at"], dotgit_core::clock::rfc3339(T0));
    assert_eq!(usage[1]["last_used_at"], json!(null));
    // persisted (written behind), and ageing out of the 30-day window
    s.restart().await;
    let r = s.get(&format!("/v1/api-keys/{id}"), &admin).await;
    assert_eq!(r.body["unused_scopes"], json!(["deploy:read", "team:read"]));
    s.clock.advance(31 * 86_400);
    let r = s.get(&format!("/v1/api-keys/{id}"), &admin).await;
    assert_eq!(
        r.body["unused_scopes"],
        json!(["repo:read", "deploy:read", "team:read"])
    );
    assert_eq!(
        r.body["scope_usage"][0]["last_used_at"],
        dotgit_core::clock::rfc3339(T0)
    );
}

#[tokio::test]
async fn the_rotation_policy_covers_oauth_client_secrets_which_can_be_rotated() {
    use crate::oauth::{code_for, exchange, introspect, world, App};
    let w = world().await;
    let (s, app) = (&w.s, &w.app);
    let (code, verifier) = code_for(&w.browser, app, "repo:write").await;
    let r = exchange(s, app, &code, &verifier).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let access = r.body["access_token"].as_str().unwrap().to_owned();
    let path = format!("/v1/oauth/apps/{}", app.client_id);
    assert_eq!(s.get(&path, &w.alice_key).await.body["rotation_due"], false);
    s.clock.advance(90 * 86_400);
    assert_eq!(s.get(&path, &w.alice_key).await.body["rotation_due"], true);
    // flagged only: the secret still authenticates the client
    assert_eq!(introspect(s, app, &access).await.status, 200);
    // enforced: the client is refused until its secret is rotated
    let r = s
        .req(
            Method::PATCH,
            "/v1/user",
            Some(&w.alice_key),
            Some(json!({"rotation_policy_enforce": true})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = introspect(s, app, &access).await;
    assert_eq!((r.status, r.code()), (401, "invalid_client"));
    // the owner's key is itself past the policy now: a fresh key rotates the secret
    assert_eq!(s.get(&path, &w.alice_key).await.code(), "invalid_token");
    let alice = s
        .state()
        .store
        .account_by_username("alice")
        .await
        .unwrap()
        .unwrap();
    let alice = dotgit_testkit::Account {
        id: alice.id,
        username: alice.username,
        password: String::new(),
    };
    let owner = s.key(&alice, &["keys:write"]).await;
    let r = s
        .post(&format!("{path}/rotate-secret"), &owner, json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["rotation_due"], false);
    let new_secret = r.body["client_secret"].as_str().unwrap().to_owned();
    assert_ne!(Some(new_secret.clone()), app.secret);
    let rotated = App {
        secret: Some(new_secret),
        ..app.clone()
    };
    assert_eq!(introspect(s, &rotated, &access).await.status, 200);
    assert_eq!(
        introspect(s, app, &access).await.code(),
        "invalid_client",
        "the old secret is dead"
    );
    assert!(
        s.get(&path, &owner)
            .await
            .body
            .get("client_secret")
            .is_none(),
        "shown once"
    );
}
