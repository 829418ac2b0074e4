//! The happy paths: an off-the-shelf OAuth client (the `oauth2` crate) completes the whole flow
//! against the real server and calls the API; a public client; discovery; what access tokens
//! are on `/v1`; the apps a user authorized.

use super::*;
use dotgit_testkit::{json, TestServer};
use oauth2::basic::BasicClient;
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IntrospectionUrl,
    PkceCodeChallenge, RedirectUrl, RefreshToken, RevocationUrl, Scope, StandardRevocableToken,
    TokenIntrospectionResponse, TokenResponse, TokenUrl,
};
use std::time::Duration;

#[tokio::test]
async fn an_off_the_shelf_oauth2_client_completes_the_flow_and_calls_the_api() {
    let s = TestServer::start().await;
    let owner = s.account("owner").await;
    let owner_key = s.key(&owner, &["keys:write", "repo:write"]).await;
    let app = register(
        &s,
        &owner_key,
        true,
        &[REDIRECT],
        &["repo:read", "keys:read"],
    )
    .await;
    let user = s.account("carol").await;
    let user_key = s.key(&user, &["repo:write"]).await;
    let r = s
        .post(
            "/v1/projects",
            &user_key,
            json!({"slug": "my-app", "name": "My app"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);

    // the third-party app, built from the RFC 8414 metadata
    let meta = s
        .req(
            reqwest::Method::GET,
            "/.well-known/oauth-authorization-server",
            None,
            None,
        )
        .await;
    let ep = |k: &str| meta.body[k].as_str().unwrap().to_owned();
    let client = BasicClient::new(ClientId::new(app.client_id.clone()))
        .set_client_secret(ClientSecret::new(app.secret.clone().unwrap()))
        .set_auth_uri(AuthUrl::new(ep("authorization_endpoint")).unwrap())
        .set_token_uri(TokenUrl::new(ep("token_endpoint")).unwrap())
        .set_revocation_url(RevocationUrl::new(ep("revocation_endpoint")).unwrap())
        .set_introspection_url(IntrospectionUrl::new(ep("introspection_endpoint")).unwrap())
        .set_redirect_uri(RedirectUrl::new(REDIRECT.to_owned()).unwrap());
    let http = dotgit_testkit::client_for(&s.running().cert_path);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, state) = client
        .authorize_url(CsrfToken::new_random)
        .add_scope(Scope::new("repo:read".into()))
        .add_scope(Scope::new("keys:read".into()))
        .set_pkce_challenge(challenge)
        .url();

    // the user's browser: not signed in yet, so off to /login and back
    let browser = Browser::new(&s);
    let r = browser.get(auth_url.as_str()).await;
    assert_eq!(r.status, 302, "{}", r.text);
    let to_login = r.header("location").unwrap();
    assert!(to_login.starts_with("/login?return_to="), "{to_login}");
    let login_page = browser.get(&to_login).await;
    assert_eq!(login_page.status, 200);
    let r = browser
        .post_form(
            "/login",
            &[
                ("username", "carol"),
                ("password", "password-carol"),
                ("csrf_token", &csrf_of(&login_page.text, "/login")),
                ("return_to", &location_params(&r)["return_to"]),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text);
    let back = r.header("location").unwrap();
    assert!(back.starts_with("/oauth/authorize?"), "{back}");

    // the consent page names the app, the scopes and the account
    let consent = browser.get(&back).await;
    assert_eq!(consent.status, 200, "{}", consent.text);
    assert!(consent.text.contains("Test App"));
    assert!(consent.text.contains("carol"));
    assert!(consent.text.contains("<code>repo:read</code>"));
    assert!(consent.text.contains("<code>keys:read</code>"));
    let r = browser.decide(&consent, "approve").await;
    assert_eq!(r.status, 303, "{}", r.text);
    let loc = r.header("location").unwrap();
    assert!(loc.starts_with(&format!("{REDIRECT}?code=")), "{loc}");
    let p = location_params(&r);
    assert_eq!(&p["state"], state.secret());
    assert_eq!(p["iss"], s.base);
    assert_eq!(p["iss"], meta.body["issuer"]);

    // the library redeems the code (client_secret_basic + PKCE verifier)
    let token = client
        .exchange_code(AuthorizationCode::new(p["code"].clone()))
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("code exchange");
    let access = token.access_token().secret().clone();
    let refresh_token = token.refresh_token().expect("refresh token").clone();
    assert!(access.starts_with("dgo_") && access.len() == 40);
    assert!(refresh_token.secret().starts_with("dgr_"));
    assert_eq!(token.expires_in(), Some(Duration::from_secs(7200)));
    let scopes: Vec<String> = token
        .scopes()
        .unwrap()
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(scopes, vec!["repo:read", "keys:read"]);

    // the token works on /v1 like an API key: same principal shape, same scope rules
    let r = s.get("/v1/user", &access).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["username"], "carol");
    assert_eq!(r.body["credential"]["kind"], "oauth_access_token");
    assert_eq!(
        r.body["credential"]["scopes"],
        json!(["repo:read", "keys:read"])
    );
    assert_eq!(
        r.body["credential"]["expires_at"],
        dotgit_core::clock::rfc3339(dotgit_testkit::T0 + 7200)
    );
    assert!(r.header("x-ratelimit-limit").is_some());
    let r = s.get("/v1/projects", &access).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body[0]["slug"], "my-app");
    let r = s
        .post("/v1/projects", &access, json!({"slug": "x", "name": "x"}))
        .await;
    assert_eq!((r.status, r.code()), (401, "insufficient_scope"));
    assert!(r
        .header("www-authenticate")
        .unwrap()
        .ends_with(r#"scope="repo:write""#));

    // introspection through the library
    let intro = client
        .introspect(token.access_token())
        .request_async(&http)
        .await
        .expect("introspection");
    assert!(intro.active());
    assert_eq!(intro.username(), Some("carol"));

    // refresh through the library: a new pair, and the old refresh token is spent
    s.clock.advance(600);
    let refreshed = client
        .exchange_refresh_token(&refresh_token)
        .request_async(&http)
        .await
        .expect("refresh");
    let access2 = refreshed.access_token().secret().clone();
    let refresh2 = refreshed.refresh_token().unwrap().clone();
    assert_ne!(access2, access);
    assert_ne!(refresh2.secret(), refresh_token.secret());
    assert_eq!(s.get("/v1/projects", &access2).await.status, 200);

    // the user sees the app among their authorizations
    let mine = s.key(&user, &["keys:read"]).await;
    let r = s.get("/v1/oauth/authorizations", &mine).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body.as_array().unwrap().len(), 1);
    assert_eq!(r.body[0]["client_id"], app.client_id.as_str());
    assert_eq!(r.body[0]["app_name"], "Test App");
    assert_eq!(r.body[0]["scopes"], json!(["repo:read", "keys:read"]));

    // revocation through the library: the refresh token takes its whole grant with it
    client
        .revoke_token(StandardRevocableToken::RefreshToken(refresh2.clone()))
        .unwrap()
        .request_async(&http)
        .await
        .expect("revocation");
    let r = s.get("/v1/projects", &access2).await;
    assert_eq!((r.status, r.code()), (401, "invalid_token"));
    let err = client
        .exchange_refresh_token(&refresh2)
        .request_async(&http)
        .await
        .unwrap_err();
    assert!(format!("{err:?}").contains("invalid_grant"), "{err:?}");
}

#[tokio::test]
async fn a_public_client_uses_pkce_without_a_secret() {
    let s = TestServer::start().await;
    let owner = s.account("owner").await;
    let key = s.key(&owner, &["keys:write", "repo:write"]).await;
    let app = register(
        &s,
        &key,
        false,
        &["http://127.0.0.1:8765/cb"],
        &["repo:read"],
    )
    .await;
    assert_eq!(app.secret, None);
    let user = s.account("dave").await;
    let b = Browser::new(&s);
    b.login(&user).await;

    let client = BasicClient::new(ClientId::new(app.client_id.clone()))
        .set_auth_uri(AuthUrl::new(s.url("/oauth/authorize")).unwrap())
        .set_token_uri(TokenUrl::new(s.url("/oauth/token")).unwrap())
        .set_redirect_uri(RedirectUrl::new(app.redirect_uri.clone()).unwrap());
    let http = dotgit_testkit::client_for(&s.running().cert_path);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, state) = client
        .authorize_url(CsrfToken::new_random)
        .add_scope(Scope::new("repo:read".into()))
        .set_pkce_challenge(challenge)
        .url();
    let r = b.approve(auth_url.as_str()).await;
    assert_eq!(r.status, 303, "{}", r.text);
    let p = location_params(&r);
    assert_eq!(&p["state"], state.secret());
    let token = client
        .exchange_code(AuthorizationCode::new(p["code"].clone()))
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("public client exchange");
    let r = s.get("/v1/user", token.access_token().secret()).await;
    assert_eq!((r.status, r.body["username"].as_str()), (200, Some("dave")));
    let refreshed = client
        .exchange_refresh_token(&RefreshToken::new(
            token.refresh_token().unwrap().secret().clone(),
        ))
        .request_async(&http)
        .await
        .expect("public client refresh");
    assert_eq!(
        s.get("/v1/user", refreshed.access_token().secret())
            .await
            .status,
        200
    );

    // a public client cannot introspect, and cannot pretend to have a secret
    let r = introspect(&s, &app, refreshed.access_token().secret()).await;
    assert_oauth_error(&r, 401, "invalid_client");
    let r = post_token(
        &s,
        "/oauth/token",
        Some((&app.client_id, "made-up-secret")),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refreshed.refresh_token().unwrap().secret()),
        ],
    )
    .await;
    assert_oauth_error(&r, 401, "invalid_client");
}

#[tokio::test]
async fn metadata_follows_rfc_8414() {
    let s = TestServer::start().await;
    let r = s
        .req(
            reqwest::Method::GET,
            "/.well-known/oauth-authorization-server",
            None,
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let m = &r.body;
    assert_eq!(m["issuer"], s.base);
    assert_eq!(m["authorization_endpoint"], s.url("/oauth/authorize"));
    assert_eq!(m["token_endpoint"], s.url("/oauth/token"));
    assert_eq!(m["revocation_endpoint"], s.url("/oauth/revoke"));
    assert_eq!(m["introspection_endpoint"], s.url("/oauth/introspect"));
    assert_eq!(m["response_types_supported"], json!(["code"]));
    assert_eq!(
        m["grant_types_supported"],
        json!(["authorization_code", "refresh_token"])
    );
    assert_eq!(m["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(
        m["token_endpoint_auth_methods_supported"],
        json!(["client_secret_basic", "client_secret_post", "none"])
    );
    assert_eq!(m["authorization_response_iss_parameter_supported"], true);
    let scopes = m["scopes_supported"].as_array().unwrap();
    assert_eq!(scopes.len(), 10);
    assert!(scopes.contains(&json!("repo:read")) && scopes.contains(&json!("keys:write")));
    // the OpenAPI document describes the form endpoints as forms and the pages as HTML
    let api = s
        .req(reqwest::Method::GET, "/openapi.json", None, None)
        .await;
    let paths = &api.body["paths"];
    for p in ["/oauth/token", "/oauth/revoke", "/oauth/introspect"] {
        let content = &paths[p]["post"]["requestBody"]["content"];
        assert!(
            content["application/x-www-form-urlencoded"]["schema"].is_object(),
            "{p}: {content}"
        );
        assert_eq!(paths[p]["post"]["security"], json!([]), "{p}");
    }
    assert!(
        paths["/oauth/authorize"]["get"]["responses"]["200"]["content"]["text/html"].is_object()
    );
    assert_eq!(
        paths["/v1/oauth/apps"]["post"]["x-required-scope"],
        "keys:write"
    );
    assert_eq!(
        paths["/v1/oauth/authorizations/{id}"]["delete"]["x-required-scope"],
        "keys:write"
    );
}

#[tokio::test]
async fn client_secret_post_works_and_both_methods_at_once_are_refused() {
    let w = world().await;
    let (s, app) = (&w.s, &w.app);
    let secret = app.secret.clone().unwrap();
    let (code, verifier) = code_for(&w.browser, app, "repo:read").await;
    let base = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", verifier.as_str()),
    ];
    // Basic and client_secret in the body: two methods
    let mut both = base.to_vec();
    both.push(("client_secret", &secret));
    let r = post_token(s, "/oauth/token", Some((&app.client_id, &secret)), &both).await;
    assert_oauth_error(&r, 400, "invalid_request");
    assert!(r.body["message"].as_str().unwrap().contains("exactly one"));
    // a wrong secret: 401 with the Basic challenge
    let r = post_token(
        s,
        "/oauth/token",
        Some((&app.client_id, "dgs_wrong")),
        &base,
    )
    .await;
    assert_oauth_error(&r, 401, "invalid_client");
    assert_eq!(
        r.header("www-authenticate").as_deref(),
        Some(r#"Basic realm="dotgit""#)
    );
    // no secret at all for a confidential client
    let mut only_id = base.to_vec();
    only_id.push(("client_id", &app.client_id));
    let r = post_token(s, "/oauth/token", None, &only_id).await;
    assert_oauth_error(&r, 401, "invalid_client");
    // client_secret_post: the code was never consumed by the refused attempts
    let mut post = only_id.clone();
    post.push(("client_secret", &secret));
    let r = post_token(s, "/oauth/token", None, &post).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("cache-control").as_deref(), Some("no-store"));
    assert_eq!(r.header("pragma").as_deref(), Some("no-cache"));
    assert_eq!(r.body["token_type"], "Bearer");
    assert_eq!(r.body["expires_in"], 7200);
    assert_eq!(r.body["scope"], "repo:read");
}

#[tokio::test]
async fn token_endpoint_speaks_rfc_6749_errors() {
    let w = world().await;
    let (s, app) = (&w.s, &w.app);
    let secret = app.secret.clone().unwrap();
    let basic = Some((app.client_id.as_str(), secret.as_str()));
    for (pairs, status, code) in [
        (
            vec![("grant_type", "password"), ("username", "bob")],
            400,
            "unsupported_grant_type",
        ),
        (
            vec![("grant_type", "client_credentials")],
            400,
            "unsupported_grant_type",
        ),
        (vec![("code", "x")], 400, "invalid_request"),
        (
            vec![
                ("grant_type", "authorization_code"),
                ("grant_type", "refresh_token"),
            ],
            400,
            "invalid_request",
        ),
        (
            vec![("grant_type", "authorization_code"), ("code", "nope")],
            400,
            "invalid_request",
        ),
        (
            vec![
                ("grant_type", "refresh_token"),
                ("refresh_token", "dgr_nope"),
            ],
            400,
            "invalid_grant",
        ),
    ] {
        let r = post_token(s, "/oauth/token", basic, &pairs).await;
        assert_oauth_error(&r, status, code);
    }
    // an unknown client
    let r = post_token(
        s,
        "/oauth/token",
        Some(("dgc_unknown", "x")),
        &[("grant_type", "refresh_token")],
    )
    .await;
    assert_oauth_error(&r, 401, "invalid_client");
    // not a form
    let r = s
        .req(
            reqwest::Method::POST,
            "/oauth/token",
            None,
            Some(json!({"grant_type": "authorization_code"})),
        )
        .await;
    assert_oauth_error(&r, 400, "invalid_request");
    assert!(r.body["message"]
        .as_str()
        .unwrap()
        .starts_with("Content-Type"));
}

#[tokio::test]
async fn access_tokens_are_cached_like_api_keys_and_die_at_once_when_revoked() {
    let mut w = world().await;
    let (code, verifier) = code_for(&w.browser, &w.app, "repo:read").await;
    let (kept, _) = tokens(&exchange(&w.s, &w.app, &code, &verifier).await);
    let (s, app) = (&w.s, &w.app);
    let (code, verifier) = code_for(&w.browser, app, "repo:read keys:read").await;
    let (access, _refresh) = tokens(&exchange(s, app, &code, &verifier).await);
    // used twice: the second answer comes from the verification cache
    assert_eq!(s.get("/v1/projects", &access).await.status, 200);
    assert_eq!(s.get("/v1/projects", &access).await.status, 200);
    // revoke the access token alone (RFC 7009): 401 on the very next request
    let r = as_client(s, app, "/oauth/revoke", &[("token", &access)]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = s.get("/v1/projects", &access).await;
    assert_eq!((r.status, r.code()), (401, "invalid_token"));
    assert_eq!(
        r.body["message"],
        dotgit_server::error::INVALID_TOKEN_MESSAGE
    );
    // the same answer through /v1/auth/check
    let r = s
        .req(
            reqwest::Method::POST,
            "/v1/auth/check",
            None,
            Some(json!({"credential": access, "scope": "repo:read"})),
        )
        .await;
    assert_eq!((r.status, r.code()), (401, "invalid_token"));
    // revoking an unknown or malformed token is still 200
    for t in ["dgo_abcdefghijABCDEFGHIJ01234567892C2O59", "garbage"] {
        let r = as_client(s, app, "/oauth/revoke", &[("token", t)]).await;
        assert_eq!(r.status, 200, "{t}: {}", r.text);
    }
    // durable: after a restart the revoked token stays dead and the other one works
    w.s.restart().await;
    let r = w.s.get("/v1/projects", &access).await;
    assert_eq!((r.status, r.code()), (401, "invalid_token"));
    assert_eq!(w.s.get("/v1/projects", &kept).await.status, 200);
}

#[tokio::test]
async fn suspension_blocks_tokens_refresh_and_new_authorizations() {
    let w = world().await;
    let (s, app) = (&w.s, &w.app);
    let op = s
        .account_with("root", dotgit_core::Plan::Enterprise, true)
        .await;
    let opkey = s.key(&op, &["keys:write"]).await;
    let (code, verifier) = code_for(&w.browser, app, "repo:read").await;
    let (access, refresh_token) = tokens(&exchange(s, app, &code, &verifier).await);
    let r = s
        .post("/v1/admin/accounts/bob/suspend", &opkey, json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = s.get("/v1/projects", &access).await;
    assert_eq!((r.status, r.code()), (403, "account_suspended"));
    let r = refresh(s, app, &refresh_token, None).await;
    assert_oauth_error(&r, 403, "account_suspended");
    // no new authorization: the consent page sends the client access_denied
    let (_, challenge) = pkce();
    let r = w
        .browser
        .get(&authorize_path(app, "repo:read", &challenge, "s1"))
        .await;
    assert_eq!(r.status, 302, "{}", r.text);
    let p = location_params(&r);
    assert_eq!(p["error"], "access_denied");
    assert_eq!(p["state"], "s1");
    // lifting it restores the tokens; the refresh token was not spent by the refusal
    let r = s
        .post("/v1/admin/accounts/bob/unsuspend", &opkey, json!({}))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(s.get("/v1/projects", &access).await.status, 200);
    let r = refresh(s, app, &refresh_token, None).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test]
async fn authorizations_can_be_listed_and_revoked_which_kills_tokens_at_once() {
    let w = world().await;
    let (s, app) = (&w.s, &w.app);
    let bob_key = s.key(&w.bob, &["keys:write"]).await;
    let (code, verifier) = code_for(&w.browser, app, "repo:read").await;
    let (access, refresh_token) = tokens(&exchange(s, app, &code, &verifier).await);
    // a second approval of the same app merges into the same authorization
    let (code2, verifier2) = code_for(&w.browser, app, "keys:read").await;
    let (access2, _) = tokens(&exchange(s, app, &code2, &verifier2).await);
    // and a code approved but not yet redeemed
    let (code3, verifier3) = code_for(&w.browser, app, "repo:read").await;
    assert_eq!(s.get("/v1/projects", &access).await.status, 200);
    let r = s.get("/v1/oauth/authorizations", &bob_key).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let list = r.body.as_array().unwrap();
    assert_eq!(list.len(), 1, "{}", r.text);
    assert_eq!(list[0]["scopes"], json!(["repo:read", "keys:read"]));
    let id = list[0]["id"].as_str().unwrap().to_owned();
    // another user cannot see or revoke it
    let r = s
        .delete(&format!("/v1/oauth/authorizations/{id}"), &w.alice_key)
        .await;
    assert_eq!((r.status, r.code()), (404, "not_found"));
    assert_eq!(s.get("/v1/projects", &access).await.status, 200);

    let r = s
        .delete(&format!("/v1/oauth/authorizations/{id}"), &bob_key)
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    // at once: the access tokens (one was cached), the refresh token, the pending code
    for t in [&access, &access2] {
        let r = s.get("/v1/user", t).await;
        assert_eq!((r.status, r.code()), (401, "invalid_token"));
    }
    assert_oauth_error(
        &refresh(s, app, &refresh_token, None).await,
        400,
        "invalid_grant",
    );
    assert_oauth_error(
        &exchange(s, app, &code3, &verifier3).await,
        400,
        "invalid_grant",
    );
    let r = s.get("/v1/oauth/authorizations", &bob_key).await;
    assert_eq!(r.body, json!([]));
    let r = s
        .delete(&format!("/v1/oauth/authorizations/{id}"), &bob_key)
        .await;
    assert_eq!(r.status, 404);
    // authorizing again starts afresh
    let (code, verifier) = code_for(&w.browser, app, "repo:read").await;
    let (access, _) = tokens(&exchange(s, app, &code, &verifier).await);
    assert_eq!(s.get("/v1/projects", &access).await.status, 200);
    let r = s.get("/v1/oauth/authorizations", &bob_key).await;
    assert_eq!(r.body[0]["scopes"], json!(["repo:read"]));
}

#[tokio::test]
async fn deleting_an_app_kills_its_tokens_and_the_cli_registers_apps() {
    let w = world().await;
    let (s, app) = (&w.s, &w.app);
    let (code, verifier) = code_for(&w.browser, app, "repo:read").await;
    let (access, _) = tokens(&exchange(s, app, &code, &verifier).await);
    assert_eq!(s.get("/v1/projects", &access).await.status, 200);
    let r = s
        .get(&format!("/v1/oauth/apps/{}", app.client_id), &w.alice_key)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.body.get("client_secret").is_none());
    assert_eq!(r.body["confidential"], true);
    assert_eq!(r.body["redirect_uris"], json!([REDIRECT]));
    assert_eq!(r.body["allowed_scopes"], json!(["repo:write", "keys:read"]));
    // only its owner sees it
    let bob_key = s.key(&w.bob, &["keys:write"]).await;
    let r = s
        .get(&format!("/v1/oauth/apps/{}", app.client_id), &bob_key)
        .await;
    assert_eq!(r.status, 404);
    let r = s
        .delete(&format!("/v1/oauth/apps/{}", app.client_id), &bob_key)
        .await;
    assert_eq!(r.status, 404);
    let r = s
        .delete(&format!("/v1/oauth/apps/{}", app.client_id), &w.alice_key)
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = s.get("/v1/projects", &access).await;
    assert_eq!((r.status, r.code()), (401, "invalid_token"));
    let r = s.get("/v1/oauth/apps", &w.alice_key).await;
    assert_eq!(r.body, json!([]));

    // the CLI: JSON with the secret once (confidential), none for --public
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_dotgit"))
        .args([
            "oauth-apps",
            "create",
            "--account",
            "alice",
            "--name",
            "CLI app",
            "--redirect-uri",
            "https://cli.example/cb",
            "--redirect-uri",
            "http://127.0.0.1:9000/cb",
            "--scope",
            "repo:read",
            "--data-dir",
        ])
        .arg(&s.config.data_dir)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["client_id"].as_str().unwrap().starts_with("dgc_"));
    assert!(v["client_secret"].as_str().unwrap().starts_with("dgs_"));
    assert_eq!(v["confidential"], true);
    assert_eq!(
        v["redirect_uris"],
        json!(["https://cli.example/cb", "http://127.0.0.1:9000/cb"])
    );
    let r = s.get("/v1/oauth/apps", &w.alice_key).await;
    assert_eq!(r.body[0]["client_id"], v["client_id"]);
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_dotgit"))
        .args([
            "oauth-apps",
            "create",
            "--account",
            "alice",
            "--name",
            "Native",
            "--redirect-uri",
            "http://evil.example/cb",
            "--scope",
            "repo:read",
            "--public",
            "--data-dir",
        ])
        .arg(&s.config.data_dir)
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("--redirect-uri[0]: http:// is only allowed on a loopback host"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn a_revocation_made_by_another_process_reaches_a_running_server_within_a_second() {
    let w = world().await;
    let (s, app) = (&w.s, &w.app);
    let (code, verifier) = code_for(&w.browser, app, "repo:read").await;
    let (access, _) = tokens(&exchange(s, app, &code, &verifier).await);
    assert_eq!(s.get("/v1/projects", &access).await.status, 200); // cached now
    let bob_key = s.key(&w.bob, &["keys:read"]).await;
    let id = s.get("/v1/oauth/authorizations", &bob_key).await.body[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // another process (another node, or a tool) on the same database
    let other = dotgit_server::open_store(&s.config.data_dir).await.unwrap();
    assert!(other
        .revoke_oauth_authorization(
            &w.bob.id,
            &id,
            dotgit_testkit::T0,
            &dotgit_server::audit::Actor::cli().oauth_audit(dotgit_testkit::T0)
        )
        .await
        .unwrap());
    other.close().await;
    let start = std::time::Instant::now();
    loop {
        let r = s.get("/v1/projects", &access).await;
        if r.status == 401 {
            assert_eq!(r.code(), "invalid_token");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "still accepted after 1 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
