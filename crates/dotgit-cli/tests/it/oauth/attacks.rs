//! What an attacker tries against the authorization server, and what they see: code replay and
//! theft, redirect-URI and PKCE games, refresh-token reuse, races, scope widening, foreign
//! tokens, expiry (by moving the injected clock), refresh tokens as Bearer credentials.

use super::*;
use dotgit_testkit::{json, TestServer};
use futures::future::join_all;

#[tokio::test]
async fn a_replayed_code_fails_and_revokes_the_tokens_of_its_first_redemption() {
    let w = world().await;
    let (s, app) = (&w.s, &w.app);
    let (code, verifier) = code_for(&w.browser, app, "repo:read").await;
    let (access, refresh_token) = tokens(&exchange(s, app, &code, &verifier).await);
    assert_eq!(s.get("/v1/projects", &access).await.status, 200); // cached now
    let r = exchange(s, app, &code, &verifier).await;
    assert_oauth_error(&r, 400, "invalid_grant");
    assert!(r.body["message"].as_str().unwrap().contains("revoked"));
    // everything issued from that code is dead, at once
    let r = s.get("/v1/projects", &access).await;
    assert_eq!((r.status, r.code()), (401, "invalid_token"));
    assert_oauth_error(
        &refresh(s, app, &refresh_token, None).await,
        400,
        "invalid_grant",
    );
    assert_eq!(
        introspect(s, app, &access).await.body,
        json!({"active": false})
    );
    // a third try changes nothing and still fails
    assert_oauth_error(
        &exchange(s, app, &code, &verifier).await,
        400,
        "invalid_grant",
    );
}

#[tokio::test]
async fn a_code_of_client_a_cannot_be_redeemed_by_client_b() {
    let w = world().await;
    let (s, app_a) = (&w.s, &w.app);
    let app_b = register(s, &w.alice_key, true, &[REDIRECT], &["repo:write"]).await;
    let public_b = register(s, &w.alice_key, false, &[REDIRECT], &["repo:write"]).await;
    let (code, verifier) = code_for(&w.browser, app_a, "repo:read").await;
    for b in [&app_b, &public_b] {
        let r = exchange(s, b, &code, &verifier).await;
        assert_oauth_error(&r, 400, "invalid_grant");
        assert!(r.body["message"]
            .as_str()
            .unwrap()
            .contains("not issued to this client"));
    }
    // B's attempts did not burn A's code
    let r = exchange(s, app_a, &code, &verifier).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test]
async fn the_redirect_uri_must_be_sent_again_and_match_exactly() {
    let w = world().await;
    let s = &w.s;
    let app = register(
        s,
        &w.alice_key,
        true,
        &[REDIRECT, "https://app.example/other"],
        &["repo:read"],
    )
    .await;
    let (code, verifier) = code_for(&w.browser, &app, "repo:read").await;
    let secret = app.secret.clone().unwrap();
    let basic = Some((app.client_id.as_str(), secret.as_str()));
    let missing = post_token(
        s,
        "/oauth/token",
        basic,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_oauth_error(&missing, 400, "invalid_request");
    assert!(missing.body["message"]
        .as_str()
        .unwrap()
        .starts_with("redirect_uri"));
    for wrong in [
        "https://app.example/other",
        "https://app.example/callback/",
        "https://APP.example/callback",
        "https://app.example/callback?x=1",
    ] {
        let r = post_token(
            s,
            "/oauth/token",
            basic,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", wrong),
                ("code_verifier", &verifier),
            ],
        )
        .await;
        assert_oauth_error(&r, 400, "invalid_grant");
        assert!(r.body["message"]
            .as_str()
            .unwrap()
            .starts_with("redirect_uri"));
    }
    assert_eq!(exchange(s, &app, &code, &verifier).await.status, 200);
}

#[tokio::test]
async fn pkce_is_required_and_plain_is_refused() {
    let w = world().await;
    let (s, app, b) = (&w.s, &w.app, &w.browser);
    // at the authorization endpoint: no challenge, no method, plain → invalid_request redirect
    let (verifier, challenge) = pkce();
    let base = |extra: &[(&str, &str)]| {
        let mut p = vec![
            ("response_type", "code"),
            ("client_id", app.client_id.as_str()),
            ("redirect_uri", REDIRECT),
            ("scope", "repo:read"),
            ("state", "xyz"),
        ];
        p.extend_from_slice(extra);
        format!("/oauth/authorize?{}", form(&p))
    };
    for (extra, needle) in [
        (vec![], "code_challenge_method"),
        (
            vec![("code_challenge", challenge.as_str())],
            "code_challenge_method",
        ),
        (
            vec![
                ("code_challenge", verifier.as_str()),
                ("code_challenge_method", "plain"),
            ],
            "plain",
        ),
        (vec![("code_challenge_method", "S256")], "code_challenge"),
        (
            vec![
                ("code_challenge", "too-short"),
                ("code_challenge_method", "S256"),
            ],
            "code_challenge",
        ),
    ] {
        let r = b.get(&base(&extra)).await;
        assert_eq!(r.status, 302, "{}", r.text);
        let p = location_params(&r);
        assert!(r.header("location").unwrap().starts_with(REDIRECT));
        assert_eq!(p["error"], "invalid_request", "{extra:?}");
        assert!(p["error_description"].contains(needle), "{p:?}");
        assert_eq!(p["state"], "xyz");
        assert_eq!(p["iss"], s.base);
        assert!(!p.contains_key("code"));
    }
    // at the token endpoint: missing verifier, wrong verifier, the challenge itself as verifier
    let (code, verifier) = code_for(b, app, "repo:read").await;
    let secret = app.secret.clone().unwrap();
    let basic = Some((app.client_id.as_str(), secret.as_str()));
    let r = post_token(
        s,
        "/oauth/token",
        basic,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
        ],
    )
    .await;
    assert_oauth_error(&r, 400, "invalid_request");
    assert!(r.body["message"]
        .as_str()
        .unwrap()
        .starts_with("code_verifier"));
    let (other_verifier, _) = pkce();
    let challenge = challenge_of(&verifier);
    for wrong in [other_verifier.as_str(), challenge.as_str()] {
        let r = exchange(s, app, &code, wrong).await;
        assert_oauth_error(&r, 400, "invalid_grant");
        assert!(r.body["message"]
            .as_str()
            .unwrap()
            .starts_with("code_verifier"));
    }
    let r = exchange(s, app, &code, "short").await;
    assert_oauth_error(&r, 400, "invalid_request");
    // the right verifier still works: failed attempts do not burn the code
    assert_eq!(exchange(s, app, &code, &verifier).await.status, 200);
}

#[tokio::test]
async fn refresh_token_reuse_revokes_the_whole_family() {
    let w = world().await;
    let (s, app) = (&w.s, &w.app);
    let (code, verifier) = code_for(&w.browser, app, "repo:read").await;
    let (a1, r1) = tokens(&exchange(s, app, &code, &verifier).await);
    let (a2, r2) = tokens(&refresh(s, app, &r1, None).await);
    let (a3, r3) = tokens(&refresh(s, app, &r2, None).await);
    for a in [&a1, &a2, &a3] {
        assert_eq!(s.get("/v1/projects", a).await.status, 200);
    }
    // the attacker replays the first refresh token
    let r = refresh(s, app, &r1, None).await;
    assert_oauth_error(&r, 400, "invalid_grant");
    assert!(r.body["message"].as_str().unwrap().contains("revoked"));
    // every token of the family is dead, including the newest ones, at once
    for a in [&a1, &a2, &a3] {
        let r = s.get("/v1/projects", a).await;
        assert_eq!((r.status, r.code()), (401, "invalid_token"));
    }
    assert_oauth_error(&refresh(s, app, &r3, None).await, 400, "invalid_grant");
    assert_eq!(introspect(s, app, &r3).await.body, json!({"active": false}));
    // another grant of the same user and app is untouched
    let (code, verifier) = code_for(&w.browser, app, "repo:read").await;
    let (a4, _) = tokens(&exchange(s, app, &code, &verifier).await);
    assert_eq!(s.get("/v1/projects", &a4).await.status, 200);
}

#[tokio::test]
async fn twenty_racing_redemptions_of_one_code_give_exactly_one_success() {
    let w = world().await;
    let (s, app) = (&w.s, &w.app);
    let (code, verifier) = code_for(&w.browser, app, "repo:read").await;
    let results = join_all((0..20).map(|_| exchange(s, app, &code, &verifier))).await;
    let ok: Vec<_> = results.iter().filter(|r| r.status == 200).collect();
    assert_eq!(ok.len(), 1, "exactly one success");
    for r in results.iter().filter(|r| r.status != 200) {
        assert_oauth_error(r, 400, "invalid_grant");
    }
    // the losers were replays: the winner's tokens are revoked too (RFC 6749 §4.1.2)
    let (access, refresh_token) = tokens(ok[0]);
    assert_eq!(s.get("/v1/user", &access).await.status, 401);
    assert_oauth_error(
        &refresh(s, app, &refresh_token, None).await,
        400,
        "invalid_grant",
    );
}

#[tokio::test]
async fn twenty_racing_refreshes_of_one_token_give_exactly_one_success() {
    let w = world().await;
    let (s, app) = (&w.s, &w.app);
    let (code, verifier) = code_for(&w.browser, app, "repo:read").await;
    let (_, rt) = tokens(&exchange(s, app, &code, &verifier).await);
    let results = join_all((0..20).map(|_| refresh(s, app, &rt, None))).await;
    let ok: Vec<_> = results.iter().filter(|r| r.status == 200).collect();
    assert_eq!(ok.len(), 1, "exactly one success");
    for r in results.iter().filter(|r| r.status != 200) {
        assert_oauth_error(r, 400, "invalid_grant");
    }
    // every loser was a reuse of a rotated token: strict RFC 9700 revokes the family
    let (access, new_rt) = tokens(ok[0]);
    assert_eq!(s.get("/v1/user", &access).await.status, 401);
    assert_oauth_error(&refresh(s, app, &new_rt, None).await, 400, "invalid_grant");
}

#[tokio::test]
async fn concurrent_refreshes_of_many_grants_share_commits_and_fail_alone() {
    let w = world().await;
    let (s, app) = (&w.s, &w.app);
    let mut rts = Vec::new();
    for _ in 0..14 {
        let (code, verifier) = code_for(&w.browser, app, "repo:read").await;
        rts.push(tokens(&exchange(s, app, &code, &verifier).await).1);
    }
    // one token already rotated (presenting it again is reuse), one refresh asks for more scope
    let spent = rts.pop().unwrap();
    let (_, after_spent) = tokens(&refresh(s, app, &spent, None).await);
    let widen = rts.pop().unwrap();
    let good = join_all(rts.iter().map(|rt| refresh(s, app, rt, None)));
    let bad = futures::future::join(
        refresh(s, app, &spent, None),
        refresh(s, app, &widen, Some("repo:read repo:write")),
    );
    let (good, (reused, widened)) = futures::future::join(good, bad).await;
    let mut access_tokens = std::collections::HashSet::new();
    for r in &good {
        let (access, _) = tokens(r);
        assert_eq!(s.get("/v1/user", &access).await.status, 200);
        access_tokens.insert(access);
    }
    assert_eq!(access_tokens.len(), 12, "twelve distinct successes");
    assert_oauth_error(&reused, 400, "invalid_grant");
    assert_oauth_error(&widened, 400, "invalid_scope");
    // the reuse revoked its own family only; the refused refresh wrote nothing
    assert_oauth_error(
        &refresh(s, app, &after_spent, None).await,
        400,
        "invalid_grant",
    );
    assert_eq!(refresh(s, app, &widen, None).await.status, 200);
    assert!(s.state().store.verify_audit_chain().await.unwrap().is_ok());
}

#[tokio::test]
async fn a_refresh_may_narrow_the_scope_but_never_widen_it() {
    let w = world().await;
    let (s, app) = (&w.s, &w.app);
    let (code, verifier) = code_for(&w.browser, app, "repo:write keys:read").await;
    let (_, rt) = tokens(&exchange(s, app, &code, &verifier).await);
    // wider than the grant: refused, and the refresh token is not spent
    for wide in [
        "repo:write keys:write",
        "team:read",
        "repo:write keys:read audit:read",
    ] {
        let r = refresh(s, app, &rt, Some(wide)).await;
        assert_oauth_error(&r, 400, "invalid_scope");
    }
    let r = refresh(s, app, &rt, Some("not-a-scope")).await;
    assert_oauth_error(&r, 400, "invalid_scope");
    // narrower: the access token has less, the next refresh token keeps the grant's scope
    let r = refresh(s, app, &rt, Some("repo:read:my-app")).await;
    assert_eq!(r.body["scope"], "repo:read:my-app");
    let (narrow, rt2) = tokens(&r);
    let u = s.get("/v1/user", &narrow).await;
    assert_eq!(u.body["credential"]["scopes"], json!(["repo:read:my-app"]));
    let r = s.get("/v1/oauth/apps", &narrow).await;
    assert_eq!((r.status, r.code()), (401, "insufficient_scope"));
    let r = refresh(s, app, &rt2, None).await;
    assert_eq!(r.body["scope"], "repo:write keys:read", "{}", r.text);
}

#[tokio::test]
async fn revoking_another_clients_token_has_no_effect() {
    let w = world().await;
    let (s, app) = (&w.s, &w.app);
    let other = register(s, &w.alice_key, true, &[REDIRECT], &["repo:read"]).await;
    let public_other = register(s, &w.alice_key, false, &[REDIRECT], &["repo:read"]).await;
    let (code, verifier) = code_for(&w.browser, app, "repo:read").await;
    let (access, rt) = tokens(&exchange(s, app, &code, &verifier).await);
    for attacker in [&other, &public_other] {
        for t in [&access, &rt] {
            let r = as_client(s, attacker, "/oauth/revoke", &[("token", t)]).await;
            assert_eq!(r.status, 200, "{}", r.text);
            assert_eq!(r.text, "");
        }
    }
    assert_eq!(s.get("/v1/projects", &access).await.status, 200);
    assert_eq!(introspect(s, app, &access).await.body["active"], true);
    assert_eq!(refresh(s, app, &rt, None).await.status, 200);
    // unauthenticated revocation is refused outright
    let r = post_token(s, "/oauth/revoke", None, &[("token", &access)]).await;
    assert_oauth_error(&r, 401, "invalid_client");
}

#[tokio::test]
async fn introspection_answers_only_active_false_for_foreign_expired_revoked_or_bogus_tokens() {
    let w = world().await;
    let (s, app) = (&w.s, &w.app);
    let other = register(s, &w.alice_key, true, &[REDIRECT], &["repo:read"]).await;
    let (code, verifier) = code_for(&w.browser, app, "repo:read").await;
    let (access, rt) = tokens(&exchange(s, app, &code, &verifier).await);
    let r = introspect(s, app, &access).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let b = &r.body;
    assert_eq!(b["active"], true);
    assert_eq!(b["scope"], "repo:read");
    assert_eq!(b["client_id"], app.client_id.as_str());
    assert_eq!(b["username"], "bob");
    assert_eq!(b["sub"], w.bob.id.as_str());
    assert_eq!(b["token_type"], "Bearer");
    assert_eq!(b["iat"], dotgit_testkit::T0);
    assert_eq!(b["exp"], dotgit_testkit::T0 + 7200);
    assert_eq!(b["iss"], s.base);
    assert_eq!(b["aud"], s.base);
    assert_eq!(
        introspect(s, app, &rt).await.body["token_type"],
        "refresh_token"
    );
    // another client asking about it, bogus tokens, an API key
    let api_key = s.key(&w.bob, &["repo:read"]).await;
    for (who, t) in [
        (&other, access.as_str()),
        (&other, rt.as_str()),
        (app, "dgo_abcdefghijABCDEFGHIJ01234567892C2O59"),
        (app, "garbage"),
        (app, api_key.as_str()),
    ] {
        let r = introspect(s, who, t).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body, json!({"active": false}), "{t}");
    }
    // expired
    s.clock.advance(7200);
    assert_eq!(
        introspect(s, app, &access).await.body,
        json!({"active": false})
    );
    // revoked
    let (a2, _) = tokens(&refresh(s, app, &rt, None).await);
    assert_eq!(introspect(s, app, &a2).await.body["active"], true);
    as_client(s, app, "/oauth/revoke", &[("token", &a2)]).await;
    assert_eq!(introspect(s, app, &a2).await.body, json!({"active": false}));
    // the rotated refresh token is no longer active either
    assert_eq!(introspect(s, app, &rt).await.body, json!({"active": false}));
}

#[tokio::test]
async fn access_tokens_expire_after_two_hours() {
    let w = world().await;
    let (s, app) = (&w.s, &w.app);
    let (code, verifier) = code_for(&w.browser, app, "repo:read").await;
    let (access, rt) = tokens(&exchange(s, app, &code, &verifier).await);
    assert_eq!(s.get("/v1/projects", &access).await.status, 200);
    s.clock.advance(7199);
    assert_eq!(s.get("/v1/projects", &access).await.status, 200);
    s.clock.advance(1);
    let r = s.get("/v1/projects", &access).await;
    assert_eq!((r.status, r.code()), (401, "invalid_token"));
    // the refresh token still gets a fresh one
    let (a2, _) = tokens(&refresh(s, app, &rt, None).await);
    assert_eq!(s.get("/v1/projects", &a2).await.status, 200);
}

#[tokio::test]
async fn refresh_tokens_expire_thirty_days_after_the_grant_whatever_the_rotations() {
    let w = world().await;
    let (s, app) = (&w.s, &w.app);
    let (code, verifier) = code_for(&w.browser, app, "repo:read").await;
    let (_, mut rt) = tokens(&exchange(s, app, &code, &verifier).await);
    // rotate every 10 days: rotation never moves the end
    for _ in 0..2 {
        s.clock.advance(10 * 86_400);
        rt = tokens(&refresh(s, app, &rt, None).await).1;
    }
    s.clock.advance(10 * 86_400 - 1); // 30 days minus one second after the grant
    let r = refresh(s, app, &rt, None).await;
    let (access, last) = tokens(&r);
    let i = introspect(s, app, &last).await;
    assert_eq!(i.body["exp"], dotgit_testkit::T0 + 30 * 86_400);
    assert_eq!(s.get("/v1/projects", &access).await.status, 200);
    s.clock.advance(1);
    assert_oauth_error(&refresh(s, app, &last, None).await, 400, "invalid_grant");
    // the last access token lives its own two hours
    assert_eq!(s.get("/v1/projects", &access).await.status, 200);
}

/// Whether the database still holds the row of `token` (by its digest), whether or not its
/// grant's row is still there.
async fn stored(s: &TestServer, token: &str) -> bool {
    let hash = dotgit_core::SecretHash::of(token).to_hex();
    let db = s.config.data_dir.join("dotgit.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM oauth_tokens WHERE token_hash = $1")
        .bind(hash)
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    n == 1
}

#[tokio::test]
async fn ended_tokens_are_purged_a_day_later_and_rotated_ones_stay_while_their_family_lives() {
    // `purge_ended` is what the server's 5-s maintenance tick runs; it runs here at each moment
    // the test needs, and the assertions read the database, whichever of the two purged
    use dotgit_server::oauth::purge_ended;
    use dotgit_testkit::T0;
    let w = world().await;
    let (s, app) = (&w.s, &w.app);
    // family F, granted at T0: two access tokens and a rotated refresh token
    let (code, verifier) = code_for(&w.browser, app, "repo:read").await;
    let (a1, r1) = tokens(&exchange(s, app, &code, &verifier).await);
    let (a2, r2) = tokens(&refresh(s, app, &r1, None).await);
    // a1 and a2 expired at T0 + 2 h; a day later they are still kept (refused as expired)
    s.clock.set(T0 + 7200 + 86_400);
    purge_ended(s.state()).await;
    assert!(stored(s, &a1).await && stored(s, &a2).await);
    let r = s.get("/v1/projects", &a1).await;
    assert_eq!((r.status, r.code()), (401, "invalid_token"));
    // one second more and they are gone; the rotated refresh token stays, its family lives
    s.clock.advance(1);
    purge_ended(s.state()).await;
    assert!(!stored(s, &a1).await && !stored(s, &a2).await);
    assert!(stored(s, &r1).await && stored(s, &r2).await);
    let r = s.get("/v1/projects", &a2).await;
    assert_eq!((r.status, r.code()), (401, "invalid_token"));
    let (a3, r3) = tokens(&refresh(s, app, &r2, None).await);
    let r3_issued = T0 + 7200 + 86_400 + 1;
    // family G, granted now (bob signs in again: a day ended his session), which outlives F by
    // a day and a bit
    w.browser.login(&w.bob).await;
    let (code, verifier) = code_for(&w.browser, app, "repo:read").await;
    let (g_access, g_refresh) = tokens(&exchange(s, app, &code, &verifier).await);
    // replay detection still sees r1 as rotated: presenting it revokes F, as before purging
    let r = refresh(s, app, &r1, None).await;
    assert_oauth_error(&r, 400, "invalid_grant");
    assert!(r.body["message"].as_str().unwrap().contains("revoked"));
    assert_oauth_error(&refresh(s, app, &r3, None).await, 400, "invalid_grant");
    // F ended at T0 + 30 days: its grant and refresh tokens are kept for a day after that; the
    // access tokens of both families expired long ago
    s.clock.set(T0 + 30 * 86_400 + 86_400);
    purge_ended(s.state()).await;
    assert!(!stored(s, &a3).await && !stored(s, &g_access).await);
    assert!(stored(s, &r1).await && stored(s, &r3).await);
    s.clock.advance(1);
    // then F's grant goes, with the refresh tokens issued when it began (r1, r2). r3, issued a
    // day later, is kept as long again after its issue, and is refused like them: its grant
    // is gone
    purge_ended(s.state()).await;
    assert!(!stored(s, &r1).await && !stored(s, &r2).await);
    assert!(stored(s, &r3).await);
    for t in [&r1, &r2, &r3] {
        assert_oauth_error(&refresh(s, app, t, None).await, 400, "invalid_grant");
    }
    // G is untouched: its refresh token still works
    let (g2, _) = tokens(&refresh(s, app, &g_refresh, None).await);
    assert_eq!(s.get("/v1/projects", &g2).await.status, 200);
    assert_eq!(
        purge_ended(s.state()).await,
        dotgit_store::OAuthPurged::default()
    );
    // a refresh lifetime and a day after r3 was issued, it goes too
    s.clock.set(r3_issued + 30 * 86_400 + 86_400);
    purge_ended(s.state()).await;
    assert!(stored(s, &r3).await);
    s.clock.advance(1);
    purge_ended(s.state()).await;
    assert!(!stored(s, &r3).await);
    assert_oauth_error(&refresh(s, app, &r3, None).await, 400, "invalid_grant");
}

#[tokio::test]
async fn codes_expire_after_sixty_seconds() {
    let w = world().await;
    let (s, app) = (&w.s, &w.app);
    let (code, verifier) = code_for(&w.browser, app, "repo:read").await;
    s.clock.advance(60);
    let r = exchange(s, app, &code, &verifier).await;
    assert_oauth_error(&r, 400, "invalid_grant");
    assert!(r.body["message"].as_str().unwrap().contains("expired"));
    let (code, verifier) = code_for(&w.browser, app, "repo:read").await;
    s.clock.advance(59);
    assert_eq!(exchange(s, app, &code, &verifier).await.status, 200);
}

#[tokio::test]
async fn a_refresh_token_is_not_a_bearer_credential() {
    let w = world().await;
    let (s, app) = (&w.s, &w.app);
    let (code, verifier) = code_for(&w.browser, app, "repo:read").await;
    let (_, rt) = tokens(&exchange(s, app, &code, &verifier).await);
    for path in ["/v1/user", "/v1/projects"] {
        let r = s.get(path, &rt).await;
        assert_eq!((r.status, r.code()), (401, "invalid_token"), "{path}");
        assert_eq!(
            r.header("www-authenticate").as_deref(),
            Some(r#"Bearer realm="dotgit", error="invalid_token""#)
        );
        assert!(!r.text.contains(&rt));
    }
    // and it still works where it belongs
    assert_eq!(refresh(s, app, &rt, None).await.status, 200);
}

#[tokio::test]
async fn failed_client_authentication_trips_the_source_limiter() {
    let s = TestServer::start_with(|c| {
        c.auth_failure_limit = 3;
        c.auth_failure_window_seconds = 60;
    })
    .await;
    let a = s.account("alice").await;
    let key = s.key(&a, &["keys:write", "repo:read"]).await;
    let app = register(&s, &key, true, &[REDIRECT], &["repo:read"]).await;
    for _ in 0..3 {
        let r = post_token(
            &s,
            "/oauth/token",
            Some((&app.client_id, "dgs_guess")),
            &[("grant_type", "refresh_token"), ("refresh_token", "x")],
        )
        .await;
        assert_oauth_error(&r, 401, "invalid_client");
    }
    let secret = app.secret.clone().unwrap();
    let r = post_token(
        &s,
        "/oauth/token",
        Some((&app.client_id, &secret)),
        &[("grant_type", "refresh_token"), ("refresh_token", "x")],
    )
    .await;
    assert_oauth_error(&r, 429, "rate_limited");
    assert_eq!(r.header("retry-after").as_deref(), Some("60"));
    s.clock.advance(60);
    let r = post_token(
        &s,
        "/oauth/token",
        Some((&app.client_id, &secret)),
        &[("grant_type", "refresh_token"), ("refresh_token", "x")],
    )
    .await;
    assert_oauth_error(&r, 400, "invalid_grant");
}

#[tokio::test]
async fn redirect_uri_tricks_get_an_error_page_and_never_a_redirect() {
    let s = TestServer::start().await;
    let a = s.account("alice").await;
    let key = s.key(&a, &["keys:write", "repo:read"]).await;
    let app = register(
        &s,
        &key,
        false,
        &["https://app.example/callback", "http://127.0.0.1:8080/cb"],
        &["repo:read"],
    )
    .await;
    let b = Browser::new(&s);
    b.login(&a).await;
    let (_, challenge) = pkce();
    let tricks = [
        "https://app.example/callback/",
        "https://APP.example/callback",
        "https://app.example/Callback",
        "https://app.example/callback?extra=1",
        "https://app.example/callback#frag",
        "https://evil@app.example/callback",
        "https://app.example.evil.example/callback",
        "https://app.example:444/callback",
        "http://app.example/callback",
        "http://127.0.0.1:8081/cb",
        "http://localhost:8080/cb",
        "https://app.example/callback/../callback",
        "https://app.example/%63allback",
        "",
    ];
    for uri in tricks {
        let mut p = vec![
            ("response_type", "code"),
            ("client_id", app.client_id.as_str()),
            ("scope", "repo:read"),
            ("state", "s"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ];
        if !uri.is_empty() {
            p.push(("redirect_uri", uri));
        }
        let r = b.get(&format!("/oauth/authorize?{}", form(&p))).await;
        assert_eq!(r.status, 400, "{uri}: {}", r.text);
        assert!(r.header("location").is_none(), "{uri}: never a redirect");
        assert!(
            r.header("content-type").unwrap().starts_with("text/html"),
            "{uri}"
        );
        assert!(r.text.contains("redirect_uri"), "{uri}: {}", r.text);
    }
    // two redirect_uri parameters, one of them good
    let r = b
        .get(&format!(
            "/oauth/authorize?{}",
            form(&[
                ("response_type", "code"),
                ("client_id", &app.client_id),
                ("redirect_uri", "https://evil.example/cb"),
                ("redirect_uri", "https://app.example/callback"),
                ("scope", "repo:read"),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
            ])
        ))
        .await;
    assert_eq!(r.status, 400);
    assert!(r.header("location").is_none());
    // an unknown client: error page too
    let r = b
        .get(&format!(
            "/oauth/authorize?{}",
            form(&[
                ("response_type", "code"),
                ("client_id", "dgc_unknown"),
                ("redirect_uri", "https://app.example/callback"),
            ])
        ))
        .await;
    assert_eq!(r.status, 400);
    assert!(r.header("location").is_none());
    assert!(r.text.contains("not registered"));
    // the exact URIs work, including the loopback one with its port
    for uri in ["https://app.example/callback", "http://127.0.0.1:8080/cb"] {
        let p = [
            ("response_type", "code"),
            ("client_id", app.client_id.as_str()),
            ("redirect_uri", uri),
            ("scope", "repo:read"),
            ("state", "s"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ];
        let r = b.get(&format!("/oauth/authorize?{}", form(&p))).await;
        assert_eq!(r.status, 200, "{uri}: {}", r.text);
    }
}

#[tokio::test]
async fn registration_refuses_bad_redirect_uris_naming_the_entry() {
    let s = TestServer::start().await;
    let a = s.account("alice").await;
    let key = s.key(&a, &["keys:write", "repo:read"]).await;
    for (uris, index, needle) in [
        (
            vec!["https://ok.example/cb", "http://app.example/cb"],
            1,
            "loopback",
        ),
        (vec!["https://app.example/cb#x"], 0, "fragment"),
        (vec!["https://*.app.example/cb"], 0, "wildcard"),
        (
            vec![
                "https://ok.example/cb",
                "https://ok.example/cb2",
                "https://u:p@app.example/cb",
            ],
            2,
            "userinfo",
        ),
        (vec!["/relative/cb"], 0, "absolute"),
        (vec!["custom.scheme:/cb"], 0, "scheme"),
        (vec!["javascript:alert(1)"], 0, "scheme"),
        (
            vec!["https://ok.example/cb", "https://ok.example/cb"],
            1,
            "twice",
        ),
    ] {
        let r = s
            .post(
                "/v1/oauth/apps",
                &key,
                json!({"name": "x", "redirect_uris": uris, "allowed_scopes": ["repo:read"]}),
            )
            .await;
        assert_eq!((r.status, r.code()), (400, "invalid_request"), "{uris:?}");
        let msg = r.body["message"].as_str().unwrap();
        assert!(
            msg.starts_with(&format!("redirect_uris[{index}]: ")) && msg.contains(needle),
            "{uris:?}: {msg}"
        );
    }
    let eleven: Vec<String> = (0..11).map(|i| format!("https://a.example/{i}")).collect();
    let r = s
        .post(
            "/v1/oauth/apps",
            &key,
            json!({"name": "x", "redirect_uris": eleven, "allowed_scopes": ["repo:read"]}),
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "invalid_request"));
    assert!(r.body["message"]
        .as_str()
        .unwrap()
        .starts_with("redirect_uris"));
    // allowed scopes within the creating credential's
    let r = s
        .post(
            "/v1/oauth/apps",
            &key,
            json!({"name": "x", "redirect_uris": ["https://a.example/cb"], "allowed_scopes": ["repo:write"]}),
        )
        .await;
    assert_eq!((r.status, r.code()), (401, "insufficient_scope"));
    let r = s
        .post(
            "/v1/oauth/apps",
            &key,
            json!({"name": "x", "redirect_uris": ["https://a.example/cb"], "allowed_scopes": ["repo:bogus"]}),
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "invalid_scope"));
    assert!(r.body["message"]
        .as_str()
        .unwrap()
        .starts_with("allowed_scopes[0]"));
    // nothing was stored; the secret of a good one is shown once and stored hashed
    assert_eq!(s.get("/v1/oauth/apps", &key).await.body, json!([]));
    let r = s
        .post(
            "/v1/oauth/apps",
            &key,
            json!({"name": "ok", "redirect_uris": ["https://a.example/cb"], "allowed_scopes": ["repo:read"]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.header("cache-control").as_deref(), Some("no-store"));
    let secret = r.body["client_secret"].as_str().unwrap().to_owned();
    let list = s.get("/v1/oauth/apps", &key).await;
    assert!(!list.text.contains(&secret));
    assert!(list.body[0].get("client_secret").is_none());
}

#[tokio::test]
async fn the_granted_scope_is_requested_and_allowed_and_nothing_else() {
    let w = world().await;
    let (s, b) = (&w.s, &w.browser);
    let app = register(
        s,
        &w.alice_key,
        true,
        &[REDIRECT],
        &["repo:read", "keys:read"],
    )
    .await;
    // asked for more than the app may have: narrowed to what it may
    let (code, verifier) = code_for(b, &app, "repo:write team:write keys:read").await;
    let r = exchange(s, &app, &code, &verifier).await;
    assert_eq!(r.body["scope"], "repo:read keys:read", "{}", r.text);
    // asked for nothing grantable: invalid_scope back to the client
    let (_, challenge) = pkce();
    for scope in ["team:write audit:read", "repo:nope", ""] {
        let mut p = vec![
            ("response_type", "code"),
            ("client_id", app.client_id.as_str()),
            ("redirect_uri", REDIRECT),
            ("state", "s"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ];
        if !scope.is_empty() {
            p.push(("scope", scope));
        }
        let r = b.get(&format!("/oauth/authorize?{}", form(&p))).await;
        assert_eq!(r.status, 302, "{scope}: {}", r.text);
        assert_eq!(location_params(&r)["error"], "invalid_scope", "{scope}");
    }
    // the user editing the consent form's scope cannot go past what the app is allowed
    let (verifier, challenge) = pkce();
    let page = b
        .get(&authorize_path(&app, "repo:read", &challenge, "s"))
        .await;
    let mut fields = hidden_inputs(&page.text, "/oauth/authorize");
    for f in fields.iter_mut() {
        if f.0 == "scope" {
            f.1 = "repo:write keys:write".into();
        }
    }
    let mut pairs: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    pairs.push(("decision", "approve"));
    let r = b.post_form("/oauth/authorize", &pairs).await;
    assert_eq!(r.status, 303, "{}", r.text);
    let code = location_params(&r)["code"].clone();
    let r = exchange(s, &app, &code, &verifier).await;
    assert_eq!(r.body["scope"], "repo:read keys:read", "{}", r.text);
    // other parameters: unsupported response_type, duplicated parameters
    let r = b
        .get(&format!(
            "/oauth/authorize?{}",
            form(&[
                ("response_type", "token"),
                ("client_id", &app.client_id),
                ("redirect_uri", REDIRECT),
                ("scope", "repo:read"),
                ("state", "s"),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
            ])
        ))
        .await;
    assert_eq!(location_params(&r)["error"], "unsupported_response_type");
    let r = b
        .get(&format!(
            "/oauth/authorize?{}",
            form(&[
                ("response_type", "code"),
                ("client_id", &app.client_id),
                ("redirect_uri", REDIRECT),
                ("scope", "repo:read"),
                ("scope", "keys:read"),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
            ])
        ))
        .await;
    assert_eq!(location_params(&r)["error"], "invalid_request");
}

#[tokio::test]
async fn cached_introspection_forgets_a_rotated_client_secret_and_a_suspension_at_once() {
    let w = world().await;
    let (s, app) = (&w.s, &w.app);
    let (code, verifier) = code_for(&w.browser, app, "repo:read").await;
    let (access, _rt) = tokens(&exchange(s, app, &code, &verifier).await);
    // the second answer comes from the caches (client and token)
    for _ in 0..2 {
        assert_eq!(introspect(s, app, &access).await.body["active"], true);
    }
    let r = s
        .post(
            &format!("/v1/oauth/apps/{}/rotate-secret", app.client_id),
            &w.alice_key,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let rotated = App {
        secret: Some(r.body["client_secret"].as_str().unwrap().to_owned()),
        ..app.clone()
    };
    let r = introspect(s, app, &access).await;
    assert_eq!(
        (r.status, r.code()),
        (401, "invalid_client"),
        "the old secret stops at once"
    );
    assert_eq!(introspect(s, &rotated, &access).await.body["active"], true);
    assert_eq!(introspect(s, &rotated, &access).await.body["active"], true);
    // the token's owner is suspended: inactive at once, though it was just answered from cache
    let op = s
        .account_with("root", dotgit_core::Plan::Enterprise, true)
        .await;
    let opkey = s.key(&op, &["keys:write"]).await;
    let r = s
        .post(
            &format!("/v1/admin/accounts/{}/suspend", w.bob.username),
            &opkey,
            json!({"reason": "fraud"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        introspect(s, &rotated, &access).await.body,
        json!({"active": false})
    );
}
