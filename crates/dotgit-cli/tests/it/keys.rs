//! API-key lifecycle end to end: create → use → rotate with grace → old key dies → revoke →
//! 401 at once and after a restart; subset rule; bad input; cross-account isolation; races.

use dotgit_testkit::{json, TestServer};
use futures::future::join_all;

#[tokio::test]
async fn key_lifecycle_end_to_end() {
    let mut s = TestServer::start().await;
    let alice = s.account("alice").await;
    let admin_key = s.key(&alice, &["keys:write", "repo:write"]).await;

    // create through the API: 201, the secret once, no-store
    let r = s
        .post(
            "/v1/api-keys",
            &admin_key,
            json!({"name": "ci", "scopes": ["repo:read"]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.header("cache-control").as_deref(), Some("no-store"));
    let key = r.body["key"].as_str().unwrap().to_owned();
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert!(key.starts_with("dg_") && key.len() == 39);
    assert_eq!(r.body["prefix"], key[..8]);
    assert_eq!(r.body["scopes"], json!(["repo:read"]));
    assert_eq!(r.body["rotation_due"], false);
    assert_eq!(r.body["expires_at"], json!(null));
    assert!(r.body["created_at"].as_str().unwrap().ends_with('Z'));

    // use it
    let r = s.get("/v1/user", &key).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["username"], "alice");
    assert_eq!(r.body["credential"]["kind"], "api_key");
    assert_eq!(r.body["credential"]["id"], id.as_str());
    assert_eq!(r.body["credential"]["scopes"], json!(["repo:read"]));
    assert_eq!(s.get("/v1/projects", &key).await.status, 200);

    // the secret is never shown again; last_used_at is recorded without a write per request
    let r = s.get(&format!("/v1/api-keys/{id}"), &admin_key).await;
    assert_eq!(r.status, 200);
    assert!(r.body.get("key").is_none());
    assert!(!r.text.contains(&key[3..]));
    assert!(r.body["last_used_at"].is_string());
    let list = s.get("/v1/api-keys", &admin_key).await;
    assert!(!list.text.contains(&key[3..]));
    assert_eq!(list.body.as_array().unwrap().len(), 2);

    // rotate with a 1 h grace: both work, then only the new one
    let r = s
        .post(
            &format!("/v1/api-keys/{id}/rotate"),
            &admin_key,
            json!({"grace_period_seconds": 3600}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let new_key = r.body["key"].as_str().unwrap().to_owned();
    let new_id = r.body["id"].as_str().unwrap().to_owned();
    assert_ne!(new_key, key);
    assert_eq!(r.body["name"], "ci");
    assert_eq!(r.body["scopes"], json!(["repo:read"]));
    assert_eq!(s.get("/v1/user", &key).await.status, 200);
    assert_eq!(s.get("/v1/user", &new_key).await.status, 200);
    s.clock.advance(3599);
    assert_eq!(s.get("/v1/user", &key).await.status, 200);
    s.clock.advance(1);
    let r = s.get("/v1/user", &key).await;
    assert_eq!((r.status, r.code()), (401, "invalid_token"));
    assert_eq!(s.get("/v1/user", &new_key).await.status, 200);
    // rotating the already-rotated key again is refused
    let r = s
        .post(&format!("/v1/api-keys/{id}/rotate"), &admin_key, json!({}))
        .await;
    assert_eq!(r.status, 400, "{}", r.text);

    // revoke: 204, then 401 at once (the cache held it) and after a restart
    let r = s
        .delete(&format!("/v1/api-keys/{new_id}"), &admin_key)
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = s.get("/v1/user", &new_key).await;
    assert_eq!((r.status, r.code()), (401, "invalid_token"));
    assert_eq!(
        s.delete(&format!("/v1/api-keys/{new_id}"), &admin_key)
            .await
            .status,
        404
    );
    s.restart().await;
    let r = s.get("/v1/user", &new_key).await;
    assert_eq!((r.status, r.code()), (401, "invalid_token"));
    assert_eq!(s.get("/v1/user", &admin_key).await.status, 200);
    s.stop().await;
}

#[tokio::test]
async fn rotation_with_zero_grace_kills_the_old_key_at_once_and_default_grace_is_a_day() {
    let s = TestServer::start().await;
    let a = s.account("bob").await;
    let admin = s.key(&a, &["keys:write", "repo:read"]).await;
    let r = s
        .post(
            "/v1/api-keys",
            &admin,
            json!({"name": "x", "scopes": ["repo:read"]}),
        )
        .await;
    let (k1, id1) = (
        r.body["key"].as_str().unwrap().to_owned(),
        r.body["id"].as_str().unwrap().to_owned(),
    );
    assert_eq!(s.get("/v1/user", &k1).await.status, 200); // now cached
    let r = s
        .post(
            &format!("/v1/api-keys/{id1}/rotate"),
            &admin,
            json!({"grace_period_seconds": 0}),
        )
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(s.get("/v1/user", &k1).await.status, 401);

    // empty body → default 24 h grace
    let id2 = r.body["id"].as_str().unwrap().to_owned();
    let k2 = r.body["key"].as_str().unwrap().to_owned();
    let r = s
        .client
        .post(s.url(&format!("/v1/api-keys/{id2}/rotate")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    s.clock.advance(86_399);
    assert_eq!(s.get("/v1/user", &k2).await.status, 200);
    s.clock.advance(1);
    assert_eq!(s.get("/v1/user", &k2).await.status, 401);
}

#[tokio::test]
async fn optional_expiry_and_rotation_due() {
    let s = TestServer::start().await;
    let a = s.account("carol").await;
    let admin = s.key(&a, &["keys:write", "repo:read"]).await;
    let r = s
        .post(
            "/v1/api-keys",
            &admin,
            json!({"name": "short", "scopes": ["repo:read"], "expires_in_days": 1}),
        )
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(r.body["expires_at"], "2026-11-30T12:00:00Z");
    let k = r.body["key"].as_str().unwrap().to_owned();
    assert_eq!(s.get("/v1/user", &k).await.status, 200);
    s.clock.advance(86_400);
    assert_eq!(s.get("/v1/user", &k).await.code(), "invalid_token");
    // the admin key is now 1 day old; past 90 days it is flagged
    s.clock.advance(90 * 86_400);
    let r = s.get("/v1/api-keys", &admin).await;
    assert!(r
        .body
        .as_array()
        .unwrap()
        .iter()
        .all(|k| k["rotation_due"] == true));
}

#[tokio::test]
async fn a_key_cannot_create_a_broader_key_and_needs_keys_scopes() {
    let s = TestServer::start().await;
    let a = s.account("dave").await;
    let narrow = s.key(&a, &["keys:write", "repo:read:my-app"]).await;
    for (scopes, needed) in [
        (json!(["repo:read"]), "repo:read"),
        (json!(["repo:write:my-app"]), "repo:write:my-app"),
        (json!(["deploy:read"]), "deploy:read"),
        (json!(["repo:read:other"]), "repo:read:other"),
    ] {
        let r = s
            .post(
                "/v1/api-keys",
                &narrow,
                json!({"name": "n", "scopes": scopes}),
            )
            .await;
        assert_eq!(
            (r.status, r.code()),
            (401, "insufficient_scope"),
            "{}",
            r.text
        );
        assert_eq!(
            r.header("www-authenticate").unwrap(),
            format!(r#"Bearer realm="dotgit", error="insufficient_scope", scope="{needed}""#)
        );
    }
    let r = s
        .post(
            "/v1/api-keys",
            &narrow,
            json!({"name": "ok", "scopes": ["repo:read:my-app", "keys:read"]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let reader = r.body["key"].as_str().unwrap().to_owned();
    // keys:read may list but not create or revoke
    assert_eq!(s.get("/v1/api-keys", &reader).await.status, 200);
    let r = s
        .post(
            "/v1/api-keys",
            &reader,
            json!({"name": "z", "scopes": ["keys:read"]}),
        )
        .await;
    assert_eq!((r.status, r.code()), (401, "insufficient_scope"));
    // no keys scope at all
    let plain = s.key(&a, &["repo:write"]).await;
    let r = s.get("/v1/api-keys", &plain).await;
    assert_eq!((r.status, r.code()), (401, "insufficient_scope"));
    assert!(r
        .header("www-authenticate")
        .unwrap()
        .contains(r#"scope="keys:read""#));
}

#[tokio::test]
async fn bad_input_is_refused_with_the_field_named_and_nothing_stored() {
    let s = TestServer::start().await;
    let a = s.account("erin").await;
    let admin = s.key(&a, &["keys:write", "repo:read"]).await;
    let cases = [
        (
            json!({"name": "x", "scopes": ["repo:admin"]}),
            "invalid_scope",
            "scopes[0]",
        ),
        (
            json!({"name": "x", "scopes": ["repo:read", "Repo:read"]}),
            "invalid_scope",
            "scopes[1]",
        ),
        (
            json!({"name": "x", "scopes": []}),
            "invalid_scope",
            "scopes",
        ),
        (
            json!({"name": "x", "scopes": [1]}),
            "invalid_request",
            "scopes[0]",
        ),
        (
            json!({"name": "x", "scopes": "repo:read"}),
            "invalid_request",
            "scopes",
        ),
        (json!({"scopes": ["repo:read"]}), "invalid_request", "name"),
        (
            json!({"name": "", "scopes": ["repo:read"]}),
            "invalid_request",
            "name",
        ),
        (
            json!({"name": "x", "scopes": ["repo:read"], "admin": true}),
            "invalid_request",
            "admin",
        ),
        (
            json!({"name": "x", "scopes": ["repo:read"], "expires_in_days": 0}),
            "invalid_request",
            "expires_in_days",
        ),
        (
            json!({"name": "x", "scopes": ["repo:read"], "expires_in_days": -1}),
            "invalid_request",
            "expires_in_days",
        ),
        (json!(["not", "an", "object"]), "invalid_request", "body"),
    ];
    for (body, code, field) in cases {
        let r = s.post("/v1/api-keys", &admin, body.clone()).await;
        assert_eq!((r.status, r.code()), (400, code), "{body}: {}", r.text);
        assert!(
            r.body["message"].as_str().unwrap().contains(field),
            "{body}: {}",
            r.text
        );
    }
    // malformed JSON and wrong content type
    let r = s
        .client
        .post(s.url("/v1/api-keys"))
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    let r = dotgit_testkit::read(r).await;
    assert_eq!((r.status, r.code()), (400, "invalid_request"));
    let r = s
        .client
        .post(s.url("/v1/api-keys"))
        .bearer_auth(&admin)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    let r = dotgit_testkit::read(r).await;
    assert_eq!((r.status, r.code()), (400, "invalid_request"));
    assert!(r.body["message"].as_str().unwrap().contains("Content-Type"));
    // duplicate names among active keys
    assert_eq!(
        s.post(
            "/v1/api-keys",
            &admin,
            json!({"name": "dup", "scopes": ["repo:read"]})
        )
        .await
        .status,
        201
    );
    let r = s
        .post(
            "/v1/api-keys",
            &admin,
            json!({"name": "dup", "scopes": ["repo:read"]}),
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "invalid_request"));
    assert!(r.body["message"].as_str().unwrap().starts_with("name"));
    // rotate with a bad grace
    let id = s.get("/v1/api-keys", &admin).await.body[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = s
        .post(
            &format!("/v1/api-keys/{id}/rotate"),
            &admin,
            json!({"grace_period_seconds": -5}),
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "invalid_request"));
    assert!(r.body["message"]
        .as_str()
        .unwrap()
        .contains("grace_period_seconds"));
    // nothing half-written: exactly the admin key and "dup"
    let names: Vec<String> = s
        .get("/v1/api-keys", &admin)
        .await
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.contains(&"dup".to_owned()));
}

#[tokio::test]
async fn another_accounts_keys_are_404_never_a_leak() {
    let s = TestServer::start().await;
    let a = s.account("frank").await;
    let b = s.account("grace").await;
    let ka = s.key(&a, &["keys:write"]).await;
    let kb = s.key(&b, &["keys:write", "repo:read"]).await;
    let r = s
        .post(
            "/v1/api-keys",
            &kb,
            json!({"name": "b1", "scopes": ["repo:read"]}),
        )
        .await;
    let bid = r.body["id"].as_str().unwrap().to_owned();
    let bkey = r.body["key"].as_str().unwrap().to_owned();
    for r in [
        s.get(&format!("/v1/api-keys/{bid}"), &ka).await,
        s.delete(&format!("/v1/api-keys/{bid}"), &ka).await,
        s.post(&format!("/v1/api-keys/{bid}/rotate"), &ka, json!({}))
            .await,
    ] {
        assert_eq!((r.status, r.code()), (404, "not_found"), "{}", r.text);
        assert!(!r.text.contains("grace"));
    }
    assert!(!s.get("/v1/api-keys", &ka).await.text.contains(&bid));
    assert_eq!(
        s.get("/v1/user", &bkey).await.status,
        200,
        "B's key still works"
    );
}

#[tokio::test]
async fn parallel_creates_and_revokes() {
    let s = TestServer::start().await;
    let a = s.account("heidi").await;
    let admin = s.key(&a, &["keys:write", "repo:read"]).await;
    // 20 racing creates with distinct names all succeed
    let rs = join_all((0..20).map(|i| {
        s.post(
            "/v1/api-keys",
            &admin,
            json!({"name": format!("k{i}"), "scopes": ["repo:read"]}),
        )
    }))
    .await;
    assert!(
        rs.iter().all(|r| r.status == 201),
        "{:?}",
        rs.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    // 10 racing creates with the same name: exactly one wins
    let rs = join_all((0..10).map(|_| {
        s.post(
            "/v1/api-keys",
            &admin,
            json!({"name": "same", "scopes": ["repo:read"]}),
        )
    }))
    .await;
    assert_eq!(rs.iter().filter(|r| r.status == 201).count(), 1);
    assert!(rs
        .iter()
        .filter(|r| r.status != 201)
        .all(|r| r.status == 400 && r.code() == "invalid_request"));
    // 10 racing revokes of one key: exactly one 204, the rest 404; the key is dead
    let id = rs.iter().find(|r| r.status == 201).unwrap().body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let key = rs.iter().find(|r| r.status == 201).unwrap().body["key"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(s.get("/v1/user", &key).await.status, 200);
    let path = format!("/v1/api-keys/{id}");
    let rs = join_all((0..10).map(|_| s.delete(&path, &admin))).await;
    assert_eq!(rs.iter().filter(|r| r.status == 204).count(), 1);
    assert_eq!(rs.iter().filter(|r| r.status == 404).count(), 9);
    assert_eq!(s.get("/v1/user", &key).await.status, 401);
    // revoking while using: every use after the revoke's 204 is refused
    let k2 = s.key(&a, &["repo:read"]).await;
    let id2 = s.get("/v1/user", &k2).await.body["credential"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let uses = join_all((0..20).map(|_| s.get("/v1/user", &k2)));
    let path2 = format!("/v1/api-keys/{id2}");
    let (uses, rev) = tokio::join!(uses, s.delete(&path2, &admin));
    assert_eq!(rev.status, 204);
    assert!(uses.iter().all(|r| r.status == 200 || r.status == 401));
    assert_eq!(s.get("/v1/user", &k2).await.status, 401);
    assert_eq!(
        s.get("/v1/api-keys", &admin)
            .await
            .body
            .as_array()
            .unwrap()
            .len(),
        21
    );
}

/// Last-use times are written behind: a key's first use at the next flush, later uses at most
/// once a minute (`dotgit_server::usage`), everything when the server stops. The API adds what
/// is still in memory, so it is exact all along.
#[tokio::test]
async fn last_use_times_reach_the_database_at_most_a_minute_late_and_the_api_is_exact() {
    use dotgit_core::Clock;
    use dotgit_server::usage::{CHUNK, RESOLUTION_SECONDS};
    use serde_json::Value;
    let mut s = TestServer::start().await;
    let alice = s.account("alice").await;
    let admin = s.key(&alice, &["keys:write"]).await;
    let key = s.key(&alice, &["repo:read"]).await;
    let id = s.get("/v1/user", &key).await.body["credential"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let t0 = s.clock.now();
    let stored = |s: &TestServer| {
        let (store, account, id) = (s.state().store.clone(), alice.id.clone(), id.clone());
        async move {
            let k = store.get_api_key(&account, &id).await.unwrap().unwrap();
            let scopes = store.scope_usage(&id).await.unwrap();
            (k.last_used_at, scopes)
        }
    };
    async fn api(s: &TestServer, path: &str, admin: &str) -> (Value, Value) {
        let b = s.get(path, admin).await.body;
        (
            b["last_used_at"].clone(),
            b["scope_usage"][0]["last_used_at"].clone(),
        )
    }
    let path = format!("/v1/api-keys/{id}");
    let at = |t: i64| json!(dotgit_core::clock::rfc3339(t));

    assert_eq!(s.get("/v1/projects", &key).await.status, 200);
    s.state().flush_due_usage().await;
    assert_eq!(
        stored(&s).await,
        (Some(t0), vec![("repo:read".to_owned(), t0)])
    );
    // used again 10 s later: in memory only; the API answers it
    s.clock.advance(10);
    assert_eq!(s.get("/v1/projects", &key).await.status, 200);
    s.state().flush_due_usage().await;
    assert_eq!(stored(&s).await.0, Some(t0));
    assert_eq!(api(&s, &path, &admin).await, (at(t0 + 10), at(t0 + 10)));
    // a minute after the write, the latest use is written, with no use since
    s.clock.advance(RESOLUTION_SECONDS - 11);
    s.state().flush_due_usage().await;
    assert_eq!(stored(&s).await.0, Some(t0));
    s.clock.advance(1);
    s.state().flush_due_usage().await;
    assert_eq!(
        stored(&s).await,
        (Some(t0 + 10), vec![("repo:read".to_owned(), t0 + 10)])
    );
    // a use not yet due is written when the server stops
    s.clock.advance(5);
    assert_eq!(s.get("/v1/projects", &key).await.status, 200);
    s.state().flush_due_usage().await;
    assert_eq!(stored(&s).await.0, Some(t0 + 10));
    s.restart().await;
    let t1 = t0 + RESOLUTION_SECONDS + 5;
    assert_eq!(
        stored(&s).await,
        (Some(t1), vec![("repo:read".to_owned(), t1)])
    );
    assert_eq!(api(&s, &path, &admin).await, (at(t1), at(t1)));

    // a flush larger than one transaction's share writes every time (in several)
    let ids: Vec<String> = (0..CHUNK * 2 + 5)
        .map(|i| format!("key_bulk{i:05}"))
        .collect();
    for i in &ids {
        s.state().note_use(i, s.state().now());
        s.state().note_scope_use(i, "repo:read".to_owned());
    }
    s.state().flush_due_usage().await;
    // (they live in the activity file beside the database, ADR 0024)
    let db = dotgit_store::activity_path(&dotgit_server::db_path(&s.config.data_dir));
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=ro", db.display()))
        .await
        .unwrap();
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM api_key_last_use WHERE key_id LIKE 'key_bulk%' AND at = ?",
    )
    .bind(t1)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(n, ids.len() as i64);
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM credential_scope_usage WHERE credential_id LIKE 'key_bulk%'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(n, ids.len() as i64);
    assert_eq!(s.state().pending_use(&ids[CHUNK * 2 + 4]), None);
}
