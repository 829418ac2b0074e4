//! Each dashboard page does what its API does, checked against the real API: keys made in the
//! dashboard authenticate (and stop when revoked or past their grace period), a JWT key's
//! worked example names the claims that make a working token, OAuth app credentials are shown
//! once, the security log filters and pages, and operators suspend with a reason.

use super::*;
use dotgit_core::Plan;
use dotgit_testkit::json;

#[tokio::test]
async fn api_keys_are_created_with_a_project_scope_shown_once_rotated_and_revoked() {
    let s = TestServer::start().await;
    let a = s.account("alice").await;
    let admin_key = s.key(&a, &["repo:write"]).await;
    for slug in ["my-app", "other-app"] {
        let r = s
            .post(
                "/v1/projects",
                &admin_key,
                json!({"slug": slug, "name": slug}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let b = signed_in(&s, &a).await;
    let page = b.get("/settings/api-keys").await;
    assert!(page
        .text
        .contains(r#"<option value="my-app">my-app</option>"#));
    assert!(page.text.contains("Create New Key"));

    let r = submit(
        &b,
        "/settings/api-keys",
        &[
            ("name", "CI deploy"),
            ("scope", "repo:read"),
            ("scope", "deploy:write"),
            ("scope", "audit:read"),
            ("project", "my-app"),
            ("expires_in_days", "30"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let secret = input_value(&r.text, "secret-value").expect("the secret on the page");
    assert!(secret.starts_with("dg_") && secret.len() == 39, "{secret}");
    assert!(r.text.contains("you will not see it again"));
    assert!(r.text.contains("data-copy=\"secret-value\""));
    for sc in ["repo:read:my-app", "deploy:write:my-app", "audit:read"] {
        assert!(r.text.contains(sc), "{sc}");
    }
    // the key works on the API for its project only
    let me = s.get("/v1/user", &secret).await;
    assert_eq!(me.status, 200);
    let mut scopes: Vec<&str> = me.body["credential"]["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    scopes.sort();
    assert_eq!(
        scopes,
        ["audit:read", "deploy:write:my-app", "repo:read:my-app"]
    );
    assert!(me.body["credential"]["expires_at"].is_string());
    assert_eq!(s.get("/v1/projects/my-app", &secret).await.status, 200);
    assert_eq!(
        s.get("/v1/projects/other-app", &secret).await.code(),
        "insufficient_scope"
    );
    // shown once: the list names it by prefix, never the secret again
    let list = b.get("/settings/api-keys").await;
    assert!(!list.text.contains(&secret));
    assert!(list
        .text
        .contains(&format!("<code>{}…</code>", &secret[..8])));
    assert!(list.text.contains("CI deploy"));
    // the audit log says the dashboard did it
    let events = s
        .audit_until(|e| {
            e.event_type == "api_key.created"
                && e.reason
                    .as_deref()
                    .unwrap_or("")
                    .contains("dashboard session")
        })
        .await;
    assert!(events
        .iter()
        .all(|e| !e.reason.clone().unwrap_or_default().contains(&secret)));

    // rotate with an hour of grace: both keys work, then only the new one
    let id = s
        .state()
        .store
        .list_api_keys(&a.id)
        .await
        .unwrap()
        .into_iter()
        .find(|k| k.name == "CI deploy")
        .unwrap()
        .id;
    let r = submit(
        &b,
        &format!("/settings/api-keys/{id}/rotate"),
        &[("grace_period_seconds", "3600")],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let rotated = input_value(&r.text, "secret-value").unwrap();
    assert_ne!(rotated, secret);
    assert!(r.text.contains("keeps working until"));
    assert_eq!(s.get("/v1/user", &secret).await.status, 200);
    assert_eq!(s.get("/v1/user", &rotated).await.status, 200);
    let list = b.get("/settings/api-keys").await;
    assert!(list.text.contains("grace period"));
    s.clock.advance(3601);
    assert_eq!(s.get("/v1/user", &secret).await.status, 401);
    assert_eq!(s.get("/v1/user", &rotated).await.status, 200);
    // (an hour without a request ended the browser's session: sign in again)
    let b = signed_in(&s, &a).await;

    // revoke: a confirmation step first, then the key stops at once
    let new_id = s
        .state()
        .store
        .list_api_keys(&a.id)
        .await
        .unwrap()
        .into_iter()
        .find(|k| k.name == "CI deploy" && k.replaced_by.is_none())
        .unwrap()
        .id;
    let confirm = b.get(&format!("/settings/api-keys/{new_id}/revoke")).await;
    assert_eq!(confirm.status, 200);
    assert!(confirm.text.contains("Revoke this API key?"));
    assert!(confirm.text.contains("cannot be undone"));
    assert_eq!(s.get("/v1/user", &rotated).await.status, 200, "not yet");
    let r = submit(&b, &format!("/settings/api-keys/{new_id}/revoke"), &[]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.text.contains("revoked"));
    let refused = s.get("/v1/user", &rotated).await;
    assert_eq!((refused.status, refused.code()), (401, "invalid_token"));
    // revoking it again finds nothing
    let again = submit(&b, &format!("/settings/api-keys/{new_id}/revoke"), &[]).await;
    assert_eq!(again.status, 404);

    // past the rotation policy a key is flagged
    s.key(&a, &["repo:read"]).await;
    s.clock.advance(91 * 86_400);
    let b = signed_in(&s, &a).await;
    let list = b.get("/settings/api-keys").await;
    assert!(list.text.contains("rotation due"), "{}", list.text);
}

#[tokio::test]
async fn a_jwt_keys_worked_example_names_the_claims_of_a_working_token() {
    let s = TestServer::start().await;
    let a = s.account("alice").await;
    let signer = crate::jwt::Signer::new(aws_lc_rs::rsa::KeySize::Rsa2048);
    let b = signed_in(&s, &a).await;
    let r = submit(
        &b,
        "/settings/jwt",
        &[
            ("name", "edge"),
            ("public_key", &signer.pkcs1_pem()),
            ("scope", "repo:read"),
            ("max_lifetime_seconds", "900"),
            ("issuer", "https://ci.example"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let kid = text_of_class(&r.text, "kid").unwrap();
    let iss = text_of_class(&r.text, "iss").unwrap();
    let sub = text_of_class(&r.text, "sub").unwrap();
    let aud = text_of_class(&r.text, "aud").unwrap();
    assert!(kid.starts_with("jwk_"));
    assert_eq!(
        (iss.as_str(), sub.as_str(), aud.as_str()),
        (
            "https://ci.example",
            a.id.as_str(),
            dotgit_testkit::AUDIENCE
        )
    );
    assert!(r.text.contains("openssl dgst -sha256 -sign"));
    assert!(r.text.contains("KID=") && r.text.contains("curl -H"));
    // a token made from exactly what the page says works
    let now = dotgit_testkit::T0;
    let token = signer.sign(
        json!({"alg": "RS256", "typ": "JWT", "kid": kid}),
        json!({"iss": iss, "sub": sub, "aud": aud, "iat": now, "exp": now + 600, "scope": "repo:read"}),
    );
    let me = s.get("/v1/user", &token).await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.body["credential"]["kind"], "jwt");
    // a private JWK is refused, and nothing is stored
    let private = json!({"kty": "RSA", "n": "sXch", "e": "AQAB", "d": "secret"}).to_string();
    let r = submit(
        &b,
        "/settings/jwt",
        &[
            ("name", "leak"),
            ("public_key", &private),
            ("scope", "repo:read"),
        ],
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(s.state().store.list_jwt_keys(&a.id).await.unwrap().len(), 1);
    // delete after confirmation: the token stops working at once
    let confirm = b.get(&format!("/settings/jwt/{kid}/delete")).await;
    assert!(confirm.text.contains("Delete this JWT key?"));
    let r = submit(&b, &format!("/settings/jwt/{kid}/delete"), &[]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(s.get("/v1/user", &token).await.status, 401);
    s.audit_until(|e| e.event_type == "jwt_key.deleted").await;
}

#[tokio::test]
async fn oauth_apps_show_the_client_secret_once_and_authorized_apps_can_be_revoked() {
    let s = TestServer::start().await;
    let alice = s.account("alice").await;
    let bob = s.account("bob").await;
    let a = signed_in(&s, &alice).await;
    let r = submit(
        &a,
        "/settings/oauth-apps",
        &[
            ("name", "Deploy Bot"),
            (
                "redirect_uris",
                "https://app.example/callback\r\nhttp://127.0.0.1:8080/cb",
            ),
            ("client_type", "confidential"),
            ("scope", "repo:write"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let secret = input_value(&r.text, "secret-value").unwrap();
    assert!(secret.starts_with("dgs_"));
    assert!(r.text.contains("you will not see it again"));
    let app = s.state().store.list_oauth_apps(&alice.id).await.unwrap()[0].clone();
    assert_eq!(
        app.redirect_uri_list(),
        ["https://app.example/callback", "http://127.0.0.1:8080/cb"]
    );
    assert!(r.text.contains(&app.client_id));
    let list = a.get("/settings/oauth-apps").await;
    assert!(!list.text.contains(&secret), "shown once");
    s.audit_until(|e| e.event_type == "oauth_app.created").await;
    // a public client gets no secret
    let r = submit(
        &a,
        "/settings/oauth-apps",
        &[
            ("name", "CLI"),
            ("redirect_uris", "http://127.0.0.1:9000/cb"),
            ("client_type", "public"),
            ("scope", "repo:read"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(input_value(&r.text, "secret-value").is_none());
    assert!(r.text.contains("PKCE"));

    // bob authorizes Deploy Bot; his dashboard lists it and revokes it
    let test_app = crate::oauth::App {
        client_id: app.client_id.clone(),
        secret: Some(secret.clone()),
        redirect_uri: "https://app.example/callback".into(),
    };
    let bb = signed_in(&s, &bob).await;
    let (code, verifier) = crate::oauth::code_for(&bb, &test_app, "repo:write").await;
    let (access, _refresh) =
        crate::oauth::tokens(&crate::oauth::exchange(&s, &test_app, &code, &verifier).await);
    assert_eq!(s.get("/v1/projects", &access).await.status, 200);
    let page = bb.get("/settings/oauth-apps").await;
    assert!(page.text.contains("Deploy Bot"));
    let grant = s
        .state()
        .store
        .list_oauth_authorizations(&bob.id)
        .await
        .unwrap()[0]
        .id
        .clone();
    let confirm = bb
        .get(&format!("/settings/authorized-apps/{grant}/revoke"))
        .await;
    assert!(confirm.text.contains("Revoke this app"));
    let r = submit(
        &bb,
        &format!("/settings/authorized-apps/{grant}/revoke"),
        &[],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(s.get("/v1/projects", &access).await.status, 401);
    assert!(!r
        .text
        .contains(&format!("/settings/authorized-apps/{grant}/revoke")));
    s.audit_until(|e| e.event_type == "oauth.authorization_revoked")
        .await;

    // alice replaces the secret (after confirmation): shown once, the old one stops at once
    let path = format!("/settings/oauth-apps/{}/rotate-secret", app.client_id);
    assert!(a.get(&path).await.text.contains("Replace this app"));
    let r = submit(&a, &path, &[]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let new_secret = input_value(&r.text, "secret-value").unwrap();
    assert_ne!(new_secret, secret);
    assert!(r.text.contains("you will not see it again"));
    let (code, verifier) = crate::oauth::code_for(&bb, &test_app, "repo:write").await;
    let old = crate::oauth::exchange(&s, &test_app, &code, &verifier).await;
    assert_eq!(old.status, 401, "{}", old.text);
    let fresh = crate::oauth::App {
        secret: Some(new_secret),
        ..test_app.clone()
    };
    let (code, verifier) = crate::oauth::code_for(&bb, &fresh, "repo:write").await;
    crate::oauth::tokens(&crate::oauth::exchange(&s, &fresh, &code, &verifier).await);
    s.audit_until(|e| e.event_type == "oauth_app.secret_rotated")
        .await;

    // alice deletes her app after confirmation
    let path = format!("/settings/oauth-apps/{}/delete", app.client_id);
    assert!(a.get(&path).await.text.contains("Delete this OAuth app?"));
    let r = submit(&a, &path, &[]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        s.state()
            .store
            .list_oauth_apps(&alice.id)
            .await
            .unwrap()
            .len(),
        1
    );
    s.audit_until(|e| e.event_type == "oauth_app.deleted").await;
}

#[tokio::test]
async fn the_security_log_filters_pages_and_flags_anomalies() {
    let s = TestServer::start().await;
    let a = s.account("alice").await;
    let other = s.account("mallory").await;
    s.key(&other, &["repo:read"]).await;
    // 30 lifecycle events of alice's, and an anomaly: a revoked key used again
    for _ in 0..29 {
        s.key(&a, &["repo:read"]).await;
    }
    let leaked = s.key(&a, &["repo:read"]).await;
    let id = s.get("/v1/user", &leaked).await.body["credential"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let admin = s.key(&a, &["keys:write"]).await;
    assert_eq!(
        s.delete(&format!("/v1/api-keys/{id}"), &admin).await.status,
        204
    );
    assert_eq!(s.get("/v1/user", &leaked).await.status, 401);
    s.audit_until(|e| e.event_type == "anomaly.revoked_credential_used")
        .await;

    let b = signed_in(&s, &a).await;
    let page = b.get("/settings/security").await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert_eq!(
        page.text.matches("<time datetime=").count(),
        25,
        "a page of 25"
    );
    assert!(page.text.contains("class=\"anomaly\""));
    assert!(page.text.contains("anomaly.revoked_credential_used"));
    assert!(page.text.contains("1 anomaly on this page"));
    assert!(!page.text.contains(&other.id), "only alice's events");
    // the next page, by cursor
    let at = page
        .text
        .find("href=\"/settings/security?cursor=")
        .expect("an Older events link")
        + 6;
    let href = unescape(&page.text[at..at + page.text[at..].find('"').unwrap()]);
    let next = b.get(&href).await;
    assert_eq!(next.status, 200, "{}", next.text);
    assert!(next.text.matches("<time datetime=").count() >= 8);
    assert!(next.text.contains("Newest events"));
    // filters: anomalies only; failures only; a time range with nothing in it
    let r = b.get("/settings/security?type=anomaly.").await;
    assert_eq!(r.text.matches("<time datetime=").count(), 1);
    assert!(r.text.contains("<option value=\"anomaly.\" selected>"));
    let r = b.get("/settings/security?outcome=failure").await;
    assert!(r.text.contains("auth.failed"));
    assert!(!r.text.contains("api_key.created"));
    let r = b
        .get("/settings/security?since=2030-01-01T00%3A00&type=api_key.")
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.text.contains("No events"));
    let r = b
        .get("/settings/security?since=2026-11-29T11%3A00&until=2026-11-29T13%3A00&type=api_key.created")
        .await;
    assert_eq!(r.text.matches("<time datetime=").count(), 25);

    // the account's settings, through PATCH /v1/user's function
    let r = submit(
        &b,
        "/settings/security",
        &[
            ("rotation_policy_days", "30"),
            ("rotation_policy_enforce", "1"),
            ("anomaly_auto_revoke", "1"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.text.contains("Security settings saved."));
    let acct = s.state().store.account_by_id(&a.id).await.unwrap().unwrap();
    assert_eq!(
        (
            acct.rotation_policy_days,
            acct.rotation_policy_enforce,
            acct.anomaly_auto_revoke
        ),
        (30, true, true)
    );
    s.audit_until(|e| e.event_type == "account.settings_changed")
        .await;
}

#[tokio::test]
async fn operators_suspend_with_a_reason_lift_it_and_revoke_everything() {
    let s = TestServer::start().await;
    let op = s.account_with("root", Plan::Enterprise, true).await;
    let bob = s.account("bob").await;
    let bob_key = s.key(&bob, &["repo:read"]).await;
    let o = signed_in(&s, &op).await;
    let page = o.get("/admin").await;
    assert!(page.text.contains("id=\"account-bob\""));
    assert!(page.text.contains("pro"));
    let r = submit(
        &o,
        "/admin/accounts/bob/suspend",
        &[("reason", "chargeback fraud")],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.text.contains("chargeback fraud"));
    let refused = s.get("/v1/user", &bob_key).await;
    assert_eq!((refused.status, refused.code()), (403, "account_suspended"));
    let events = s.audit_until(|e| e.event_type == "account.suspended").await;
    let ev = events
        .iter()
        .find(|e| e.event_type == "account.suspended")
        .unwrap();
    assert!(ev.reason.as_deref().unwrap().contains("chargeback fraud"));
    assert!(ev.reason.as_deref().unwrap().contains("dashboard session"));
    // bob signed in sees why, and can change nothing
    let bb = signed_in(&s, &bob).await;
    let mine = bb.get("/settings/api-keys").await;
    assert!(mine
        .text
        .contains("Your account is suspended (chargeback fraud)"));
    let r = submit(
        &bb,
        "/settings/api-keys",
        &[("name", "x"), ("scope", "repo:read")],
    )
    .await;
    assert_eq!(r.status, 403);
    // lift it: the key works again (nothing was revoked)
    let r = submit(&o, "/admin/accounts/bob/unsuspend", &[]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(s.get("/v1/user", &bob_key).await.status, 200);
    // revoke all, after confirmation
    let c = o.get("/admin/accounts/bob/revoke-credentials").await;
    assert!(c.text.contains("Revoke every credential of this account?"));
    let r = submit(&o, "/admin/accounts/bob/revoke-credentials", &[]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.text.contains("Revoked 1 credential(s) of bob."));
    assert_eq!(s.get("/v1/user", &bob_key).await.status, 401);
    // an unknown account is 404
    let r = submit(&o, "/admin/accounts/nobody/suspend", &[("reason", "x")]).await;
    assert_eq!(r.status, 404);
}

/// The worked example on the JWT page, run as written (with openssl and bash, the key made by
/// openssl as the page tells), mints a token the server accepts.
#[tokio::test]
async fn the_jwt_pages_openssl_recipe_runs_as_written() {
    let have = |cmd: &str| {
        std::process::Command::new(cmd)
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !have("openssl") {
        eprintln!("SKIPPED: openssl is not installed");
        return;
    }
    let s = TestServer::start().await;
    // the recipe reads the real time (`date +%s`): put the server's clock there
    let real_now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    s.clock.set(real_now);
    let a = s.account("alice").await;
    let dir = tempfile::tempdir().unwrap();
    let sh = |script: &str| {
        let out = std::process::Command::new("bash")
            .arg("-ec")
            .arg(script)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    sh("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out private.pem 2>/dev/null && openssl pkey -in private.pem -pubout -out public.pem");
    let public = std::fs::read_to_string(dir.path().join("public.pem")).unwrap();
    let b = signed_in(&s, &a).await;
    let r = submit(
        &b,
        "/settings/jwt",
        &[
            ("name", "ci"),
            ("public_key", &public),
            ("scope", "repo:read"),
            ("single_use", "1"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let start = r.text.find("<pre><code>").unwrap() + "<pre><code>".len();
    let end = start + r.text[start..].find("</code></pre>").unwrap();
    let recipe = unescape(&r.text[start..end].replace("&#34;", "\""));
    // everything but the last line (which calls the API with curl), then print the token
    let (mint, call) = recipe.rsplit_once('\n').unwrap();
    assert!(
        call.starts_with("curl -H \"Authorization: Bearer $TOKEN\""),
        "{call}"
    );
    let token = sh(&format!("{mint}\necho \"$TOKEN\""));
    let token = token.trim();
    let me = s.get("/v1/user", token).await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.body["credential"]["kind"], "jwt");
    // single use: the same token again is a replay
    assert_eq!(s.get("/v1/user", token).await.status, 401);
}
