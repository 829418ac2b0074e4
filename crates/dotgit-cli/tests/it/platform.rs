//! The platform API the credentials protect: projects, deployments, teams, narrowed scopes,
//! `/v1/auth/check`, `/openapi.json`, `/healthz`.

use dotgit_core::Plan;
use dotgit_testkit::{json, reqwest, TestServer};
use reqwest::Method;

#[tokio::test]
async fn projects_and_deployments_with_project_narrowed_scopes() {
    let s = TestServer::start().await;
    let a = s.account("alice").await;
    let full = s.key(&a, &["repo:write", "deploy:write"]).await;
    for slug in ["my-app", "other"] {
        let r = s
            .post(
                "/v1/projects",
                &full,
                json!({"slug": slug, "name": format!("App {slug}")}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        assert_eq!(r.body["slug"], slug);
    }
    let r = s
        .post("/v1/projects", &full, json!({"slug": "my-app"}))
        .await;
    assert_eq!((r.status, r.code()), (400, "invalid_request"));

    let narrow = s
        .key(&a, &["repo:read:my-app", "deploy:write:my-app"])
        .await;
    // listing shows only what the credential may read
    let r = s.get("/v1/projects", &narrow).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body.as_array().unwrap().len(), 1);
    assert_eq!(r.body[0]["slug"], "my-app");
    assert_eq!(
        s.get("/v1/projects", &full)
            .await
            .body
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(s.get("/v1/projects/my-app", &narrow).await.status, 200);
    let r = s.get("/v1/projects/other", &narrow).await;
    assert_eq!((r.status, r.code()), (401, "insufficient_scope"));
    // read-only on repo: may not delete or create
    let r = s.delete("/v1/projects/my-app", &narrow).await;
    assert!(r
        .header("www-authenticate")
        .unwrap()
        .contains(r#"scope="repo:write:my-app""#));
    let r = s
        .post("/v1/projects", &narrow, json!({"slug": "my-app-2"}))
        .await;
    assert_eq!((r.status, r.code()), (401, "insufficient_scope"));
    // a project-narrowed write key may create exactly its project
    let creator = s.key(&a, &["repo:write:fresh"]).await;
    assert_eq!(
        s.post("/v1/projects", &creator, json!({"slug": "fresh"}))
            .await
            .status,
        201
    );
    assert_eq!(
        s.post("/v1/projects", &creator, json!({"slug": "fresh2"}))
            .await
            .status,
        401
    );

    // deployments
    let r = s
        .post(
            "/v1/projects/my-app/deployments",
            &narrow,
            json!({"ref": "main", "environment": "production"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["project"], "my-app");
    assert_eq!(r.body["ref"], "main");
    assert_eq!(r.body["status"], "queued");
    let dep = r.body["id"].as_str().unwrap().to_owned();
    let r = s
        .get(&format!("/v1/projects/my-app/deployments/{dep}"), &narrow)
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["environment"], "production");
    assert_eq!(
        s.get("/v1/projects/my-app/deployments", &narrow)
            .await
            .body
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let r = s
        .post(
            "/v1/projects/other/deployments",
            &narrow,
            json!({"ref": "main", "environment": "production"}),
        )
        .await;
    assert_eq!((r.status, r.code()), (401, "insufficient_scope"));
    let r = s
        .post(
            "/v1/projects/my-app/deployments",
            &narrow,
            json!({"ref": "", "environment": "production"}),
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "invalid_request"));
    assert!(r.body["message"].as_str().unwrap().starts_with("ref"));
    let r = s
        .post(
            "/v1/projects/nope/deployments",
            &full,
            json!({"ref": "main", "environment": "prod"}),
        )
        .await;
    assert_eq!((r.status, r.code()), (404, "not_found"));
    let r = s
        .get(&format!("/v1/projects/other/deployments/{dep}"), &full)
        .await;
    assert_eq!(
        r.status, 404,
        "a deployment is only found under its own project"
    );

    // delete cascades
    assert_eq!(s.delete("/v1/projects/my-app", &full).await.status, 204);
    assert_eq!(s.get("/v1/projects/my-app", &full).await.status, 404);
    assert_eq!(
        s.get(&format!("/v1/projects/my-app/deployments/{dep}"), &full)
            .await
            .status,
        404
    );
    assert_eq!(s.delete("/v1/projects/my-app", &full).await.status, 404);
}

#[tokio::test]
async fn accounts_are_isolated() {
    let s = TestServer::start().await;
    let a = s.account("alice").await;
    let b = s.account("bob").await;
    let ka = s
        .key(&a, &["repo:write", "deploy:write", "team:write"])
        .await;
    let kb = s
        .key(&b, &["repo:write", "deploy:write", "team:write"])
        .await;
    assert_eq!(
        s.post("/v1/projects", &ka, json!({"slug": "secret-app"}))
            .await
            .status,
        201
    );
    let dep = s
        .post(
            "/v1/projects/secret-app/deployments",
            &ka,
            json!({"ref": "v1", "environment": "prod"}),
        )
        .await;
    let dep = dep.body["id"].as_str().unwrap().to_owned();
    assert_eq!(s.get("/v1/projects/secret-app", &kb).await.status, 404);
    assert_eq!(
        s.get(&format!("/v1/projects/secret-app/deployments/{dep}"), &kb)
            .await
            .status,
        404
    );
    assert_eq!(s.delete("/v1/projects/secret-app", &kb).await.status, 404);
    assert_eq!(s.get("/v1/projects", &kb).await.body, json!([]));
    // the same slug is free in another account
    assert_eq!(
        s.post("/v1/projects", &kb, json!({"slug": "secret-app"}))
            .await
            .status,
        201
    );
    assert_eq!(s.get("/v1/projects/secret-app", &ka).await.status, 200);
}

#[tokio::test]
async fn teams_and_members() {
    let s = TestServer::start().await;
    let a = s.account("alice").await;
    let _b = s.account("bob").await;
    let k = s.key(&a, &["team:write"]).await;
    let r = s
        .post(
            "/v1/teams",
            &k,
            json!({"slug": "core", "name": "Core team"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(
        r.body,
        json!({"slug": "core", "name": "Core team", "members": []})
    );
    let r = s
        .req(Method::PUT, "/v1/teams/core/members/bob", Some(&k), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["members"], json!(["bob"]));
    // idempotent
    assert_eq!(
        s.req(Method::PUT, "/v1/teams/core/members/bob", Some(&k), None)
            .await
            .status,
        200
    );
    let r = s
        .req(Method::PUT, "/v1/teams/core/members/nobody", Some(&k), None)
        .await;
    assert_eq!((r.status, r.code()), (404, "not_found"));
    let r = s
        .req(Method::PUT, "/v1/teams/none/members/bob", Some(&k), None)
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(
        s.get("/v1/teams", &k).await.body[0]["members"],
        json!(["bob"])
    );
    assert_eq!(s.delete("/v1/teams/core/members/bob", &k).await.status, 204);
    assert_eq!(s.delete("/v1/teams/core/members/bob", &k).await.status, 404);
    assert_eq!(s.get("/v1/teams", &k).await.body[0]["members"], json!([]));
    let ro = s.key(&a, &["team:read"]).await;
    assert_eq!(s.get("/v1/teams", &ro).await.status, 200);
    assert_eq!(
        s.post("/v1/teams", &ro, json!({"slug": "x"})).await.code(),
        "insufficient_scope"
    );
}

#[tokio::test]
async fn auth_check_gives_the_same_decision_as_a_route() {
    let s = TestServer::start().await;
    let op = s.account_with("root", Plan::Enterprise, true).await;
    let opkey = s.key(&op, &["keys:write"]).await;
    let a = s.account("alice").await;
    let k = s.key(&a, &["repo:read:my-app"]).await;
    let check = |cred: String, scope: Option<&str>| {
        let mut body = json!({"credential": cred});
        if let Some(sc) = scope {
            body["scope"] = json!(sc);
        }
        s.req(Method::POST, "/v1/auth/check", None, Some(body))
    };
    let r = check(k.clone(), Some("repo:read:my-app")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["allowed"], true);
    assert_eq!(r.body["username"], "alice");
    assert_eq!(r.body["credential"]["scopes"], json!(["repo:read:my-app"]));
    assert!(!r.text.contains(&k));
    let r = check(k.clone(), Some("repo:write:my-app")).await;
    assert_eq!((r.status, r.code()), (401, "insufficient_scope"));
    assert!(r
        .header("www-authenticate")
        .unwrap()
        .contains(r#"scope="repo:write:my-app""#));
    let r = check(k.clone(), Some("repo:read")).await;
    assert_eq!(r.code(), "insufficient_scope");
    let r = check("dg_nope".into(), Some("repo:read")).await;
    assert_eq!((r.status, r.code()), (401, "invalid_token"));
    let r = check(k.clone(), Some("repo:everything")).await;
    assert_eq!((r.status, r.code()), (400, "invalid_scope"));
    let r = check(k.clone(), None).await;
    assert_eq!(r.status, 200);
    s.post("/v1/admin/accounts/alice/suspend", &opkey, json!({}))
        .await;
    let r = check(k.clone(), Some("repo:read:my-app")).await;
    assert_eq!((r.status, r.code()), (403, "account_suspended"));
    let r = s
        .req(
            Method::POST,
            "/v1/auth/check",
            None,
            Some(json!({"scope": "repo:read"})),
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "invalid_request"));
    assert!(r.body["message"].as_str().unwrap().contains("credential"));
}

#[tokio::test]
async fn openapi_lists_every_route_with_its_scope_and_health_is_public() {
    let s = TestServer::start().await;
    let r = s.req(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["openapi"], "3.1.0");
    let paths = r.body["paths"].as_object().unwrap();
    assert_eq!(
        paths["/v1/projects/{slug}"]["get"]["x-required-scope"],
        "repo:read:{slug}"
    );
    assert_eq!(
        paths["/v1/api-keys"]["post"]["x-required-scope"],
        "keys:write"
    );
    assert!(paths["/v1/api-keys"]["post"]["requestBody"].is_object());
    // every documented route answers an anonymous call as its access rule says
    let docs = dotgit_server::router::route_docs();
    assert!(docs.len() >= 20);
    for d in &docs {
        let path = d
            .path
            .replace("{slug}", "my-app")
            .replace("{id}", "x")
            .replace("{account}", "bob")
            .replace("{username}", "bob");
        let method = reqwest::Method::from_bytes(d.method.as_str().as_bytes()).unwrap();
        assert!(
            paths[d.path][d.method.as_str().to_ascii_lowercase()].is_object(),
            "{} {} documented",
            d.method,
            d.path
        );
        let r = s.req(method, &path, None, None).await;
        match d.access.describe() {
            Some(_) => assert_eq!(
                (r.status, r.code()),
                (401, "invalid_token"),
                "{} {}",
                d.method,
                d.path
            ),
            None => assert_ne!(r.status, 401, "{} {}", d.method, d.path),
        }
    }
    // and a credential without the documented scope gets exactly that scope in the challenge
    let a = s.account("alice").await;
    let k_audit = s.key(&a, &["audit:read"]).await;
    let k_team = s.key(&a, &["team:read"]).await;
    for d in docs
        .iter()
        .filter(|d| matches!(d.access, dotgit_server::auth::Access::Scoped(..)))
    {
        // a credential with a scope on some other resource than the route's
        let k = match d.access {
            dotgit_server::auth::Access::Scoped(dotgit_core::Resource::Audit, ..) => &k_team,
            _ => &k_audit,
        };
        let path = d
            .path
            .replace("{slug}", "my-app")
            .replace("{id}", "x")
            .replace("{account}", "bob");
        let method = reqwest::Method::from_bytes(d.method.as_str().as_bytes()).unwrap();
        let r = s.req(method, &path, Some(k), Some(json!({}))).await;
        let want = d.access.describe().unwrap().replace("{slug}", "my-app");
        assert_eq!(r.code(), "insufficient_scope", "{} {}", d.method, d.path);
        assert!(
            r.header("www-authenticate")
                .unwrap()
                .contains(&format!("scope=\"{want}\"")),
            "{} {}",
            d.method,
            d.path
        );
    }
    let r = s.req(Method::GET, "/healthz", None, None).await;
    assert_eq!((r.status, r.body["status"].as_str()), (200, Some("ok")));
}
