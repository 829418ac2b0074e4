//! The audit trail: each event type is produced by the action that should produce it (asserted
//! next to the HTTP result), no secret reaches the log, the database or the server's output,
//! tampering is caught, paging is stable, and each anomaly rule fires on its scenario and stays
//! quiet on ordinary use.

use dotgit_core::audit::AuditEvent;
use dotgit_core::Plan;
use dotgit_testkit::{json, reqwest, Resp, TestServer};
use reqwest::Method;
use std::sync::{Arc, Mutex, OnceLock};

fn of_type<'a>(events: &'a [AuditEvent], t: &str) -> Vec<&'a AuditEvent> {
    events.iter().filter(|e| e.event_type == t).collect()
}

/// GET with a chosen source address, through a trusted proxy (the test client is the proxy).
async fn get_from(s: &TestServer, path: &str, token: &str, source: &str) -> Resp {
    let r = s
        .client
        .get(s.url(path))
        .bearer_auth(token)
        .header("x-forwarded-for", source)
        .header("user-agent", "audit-test/1.0")
        .send()
        .await
        .unwrap();
    dotgit_testkit::read(r).await
}

async fn proxied_server() -> TestServer {
    TestServer::start_with(|c| {
        c.trusted_proxies = vec!["127.0.0.0/8".into()];
        c.auth_failure_limit = 1000;
    })
    .await
}

#[tokio::test]
async fn every_action_produces_its_event() {
    let s = TestServer::start_with(|c| {
        c.trusted_proxies = vec!["127.0.0.0/8".into()];
        c.auth_failure_limit = 3;
        c.request_budget_per_hour = 1000;
    })
    .await;
    let op = s.account_with("root", Plan::Enterprise, true).await;
    let opkey = s.key(&op, &["keys:write"]).await;
    let a = s.account("alice").await;
    let admin = s.key(&a, &["keys:write", "repo:read"]).await;

    // created
    let r = s
        .post(
            "/v1/api-keys",
            &admin,
            json!({"name": "ci", "scopes": ["repo:read"]}),
        )
        .await;
    assert_eq!(r.status, 201);
    let (key, id) = (
        r.body["key"].as_str().unwrap().to_owned(),
        r.body["id"].as_str().unwrap().to_owned(),
    );
    let log = s.audit_all().await;
    let created = of_type(&log, "api_key.created");
    let e = created
        .iter()
        .find(|e| e.credential_id.as_deref() == Some(&id))
        .expect("api_key.created");
    assert_eq!(e.account_id.as_deref(), Some(a.id.as_str()));
    assert_eq!(e.outcome, "success");
    assert!(
        e.reason.as_deref().unwrap().contains(&key[..8]),
        "prefix recorded"
    );
    assert_eq!(
        e.request_id,
        r.header("x-request-id").unwrap(),
        "event carries the request id"
    );
    assert_eq!(e.source_ip.as_deref(), Some("127.0.0.1"));

    // success, with source and user agent
    let r = get_from(&s, "/v1/user", &key, "198.51.100.7").await;
    assert_eq!(r.status, 200);
    let rid = r.header("x-request-id").unwrap();
    let log = s
        .audit_until(|e| e.request_id == rid && e.event_type == "auth.succeeded")
        .await;
    let e = log.iter().find(|e| e.request_id == rid).unwrap();
    assert_eq!(e.credential_id.as_deref(), Some(id.as_str()));
    assert_eq!(e.source_ip.as_deref(), Some("198.51.100.7"));
    assert_eq!(e.user_agent.as_deref(), Some("audit-test/1.0"));
    assert_eq!(e.reason.as_deref(), Some("api_key"));

    // scope denial
    let r = s.get("/v1/teams", &key).await;
    assert_eq!(r.code(), "insufficient_scope");
    let rid = r.header("x-request-id").unwrap();
    let log = s.audit_until(|e| e.request_id == rid).await;
    let e = log.iter().find(|e| e.request_id == rid).unwrap();
    assert_eq!(e.event_type, "scope.denied");
    assert!(e.reason.as_deref().unwrap().contains("team:read"));

    // rotation and revocation
    let r = s
        .post(
            &format!("/v1/api-keys/{id}/rotate"),
            &admin,
            json!({"grace_period_seconds": 0}),
        )
        .await;
    assert_eq!(r.status, 201);
    let new_id = r.body["id"].as_str().unwrap().to_owned();
    let log = s.audit_all().await;
    let e = of_type(&log, "api_key.rotated")[0];
    assert_eq!(e.credential_id.as_deref(), Some(id.as_str()));
    assert!(e.reason.as_deref().unwrap().contains(&new_id));
    assert_eq!(
        s.delete(&format!("/v1/api-keys/{new_id}"), &admin)
            .await
            .status,
        204
    );
    let log = s.audit_all().await;
    assert!(of_type(&log, "api_key.revoked")
        .iter()
        .any(|e| e.credential_id.as_deref() == Some(&new_id)));

    // failure with the withheld detail, and the limiter trip
    let r = get_from(&s, "/v1/user", &key, "203.0.113.50").await;
    assert_eq!(r.code(), "invalid_token");
    let log = s
        .audit_until(|e| e.event_type == "auth.failed" && e.credential_id.as_deref() == Some(&id))
        .await;
    let e = log.iter().find(|e| e.event_type == "auth.failed").unwrap();
    assert_eq!(
        e.reason.as_deref(),
        Some("expired credential"),
        "the reason the 401 withheld"
    );
    assert_eq!(e.account_id.as_deref(), Some(a.id.as_str()));
    for _ in 0..2 {
        get_from(&s, "/v1/user", "dg_nonsense", "203.0.113.50").await;
    }
    assert_eq!(
        get_from(&s, "/v1/user", &admin, "203.0.113.50")
            .await
            .code(),
        "rate_limited"
    );
    let log = s
        .audit_until(|e| e.event_type == "rate_limit.tripped")
        .await;
    assert_eq!(
        of_type(&log, "rate_limit.tripped")[0].source_ip.as_deref(),
        Some("203.0.113.50")
    );

    // suspension and what it does to requests
    s.post(
        "/v1/admin/accounts/alice/suspend",
        &opkey,
        json!({"reason": "chargeback"}),
    )
    .await;
    assert_eq!(s.get("/v1/user", &admin).await.code(), "account_suspended");
    let log = s.audit_until(|e| e.event_type == "auth.suspended").await;
    let e = of_type(&log, "account.suspended")[0];
    assert_eq!(e.account_id.as_deref(), Some(a.id.as_str()));
    assert!(e.reason.as_deref().unwrap().contains("chargeback"));
    s.post("/v1/admin/accounts/alice/unsuspend", &opkey, json!({}))
        .await;
    assert_eq!(
        of_type(&s.audit_all().await, "account.unsuspended").len(),
        1
    );

    // expiry is recorded once, by the background sweep
    let r = s
        .post(
            "/v1/api-keys",
            &admin,
            json!({"name": "short", "scopes": ["repo:read"], "expires_in_days": 1}),
        )
        .await;
    let short = r.body["id"].as_str().unwrap().to_owned();
    s.clock.advance(86_400);
    dotgit_server::state::record_expiries(s.state()).await;
    dotgit_server::state::record_expiries(s.state()).await;
    let log = s.audit_all().await;
    let expired: Vec<_> = of_type(&log, "api_key.expired")
        .into_iter()
        .filter(|e| e.credential_id.as_deref() == Some(&short))
        .collect();
    assert_eq!(expired.len(), 1);

    // JWT keys
    let pem = crate::jwt::Signer::new(aws_lc_rs::rsa::KeySize::Rsa2048).pkcs1_pem();
    let r = s
        .post(
            "/v1/jwt-keys",
            &admin,
            json!({"name": "j", "public_key": pem, "allowed_scopes": ["repo:read"]}),
        )
        .await;
    let kid = r.body["kid"].as_str().unwrap().to_owned();
    s.delete(&format!("/v1/jwt-keys/{kid}"), &admin).await;
    let log = s.audit_all().await;
    assert_eq!(
        of_type(&log, "jwt_key.registered")[0]
            .credential_id
            .as_deref(),
        Some(kid.as_str())
    );
    assert_eq!(
        of_type(&log, "jwt_key.deleted")[0].credential_id.as_deref(),
        Some(kid.as_str())
    );

    // the chain over all of that holds
    assert!(s.state().store.verify_audit_chain().await.unwrap().is_ok());
}

static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();

#[derive(Clone)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn no_secret_reaches_the_audit_log_the_logs_or_the_database_files() {
    let buf = LOG.get_or_init(|| {
        let b = Arc::new(Mutex::new(Vec::new()));
        let writer = Capture(b.clone());
        let sub = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .finish();
        let _ = tracing::subscriber::set_global_default(sub);
        b
    });
    let s = proxied_server().await;
    let a = s.account("alice").await;
    let admin = s.key(&a, &["keys:write", "repo:read"]).await;
    let mut secrets = vec![admin.clone()];
    for i in 0..3 {
        let r = s
            .post(
                "/v1/api-keys",
                &admin,
                json!({"name": format!("k{i}"), "scopes": ["repo:read"]}),
            )
            .await;
        secrets.push(r.body["key"].as_str().unwrap().to_owned());
    }
    let rotated = s
        .post(
            &format!(
                "/v1/api-keys/{}/rotate",
                s.get("/v1/api-keys", &admin).await.body[0]["id"]
                    .as_str()
                    .unwrap()
            ),
            &admin,
            json!({}),
        )
        .await;
    secrets.push(rotated.body["key"].as_str().unwrap().to_owned());
    // a JWT is a bearer secret too
    let signer = crate::jwt::Signer::new(aws_lc_rs::rsa::KeySize::Rsa2048);
    let r = s.post("/v1/jwt-keys", &admin, json!({"name": "j", "public_key": signer.pkcs1_pem(), "allowed_scopes": ["repo:read"], "issuer": "i"})).await;
    let kid = r.body["kid"].as_str().unwrap().to_owned();
    let now = dotgit_testkit::T0;
    let jwt = signer.sign(json!({"alg": "RS256", "kid": kid}), json!({"iss": "i", "sub": a.id, "aud": dotgit_testkit::AUDIENCE, "iat": now, "exp": now + 600, "scope": "repo:read"}));
    secrets.push(jwt.clone());
    // use every secret: successes, failures (a mangled one, a revoked one), denials, the check API
    for sec in &secrets {
        s.get("/v1/user", sec).await;
        s.get("/v1/teams", sec).await;
        s.req(
            Method::POST,
            "/v1/auth/check",
            None,
            Some(json!({"credential": sec, "scope": "repo:write"})),
        )
        .await;
        let mut bad = sec.clone();
        bad.push('x');
        s.get("/v1/user", &bad).await;
    }
    let victim = secrets[1].clone();
    let vid = s.get("/v1/user", &victim).await.body["credential"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    s.delete(&format!("/v1/api-keys/{vid}"), &admin).await;
    s.get("/v1/user", &victim).await;
    s.audit_until(|e| e.event_type == "anomaly.revoked_credential_used")
        .await;
    s.state().flush_usage().await;

    // 1. the audit log, as the API serves it and as stored
    let api_log = s
        .get(
            "/v1/audit-events?limit=500",
            &s.key(&a, &["audit:read"]).await,
        )
        .await;
    assert!(api_log.body["events"].as_array().unwrap().len() > 20);
    let stored = format!("{:?}", s.audit_all().await);
    // 2. everything the server logged
    let logs = String::from_utf8_lossy(&buf.lock().unwrap()).into_owned();
    assert!(logs.contains("authentication failed"), "the capture works");
    // 3. the database files, byte for byte
    let mut files = String::new();
    for entry in std::fs::read_dir(&s.config.data_dir).unwrap() {
        files.push_str(&String::from_utf8_lossy(
            &std::fs::read(entry.unwrap().path()).unwrap(),
        ));
    }
    for sec in &secrets {
        // the random part of a key, or the signature of the JWT: what makes it a secret
        let needle = if sec.starts_with("dg") {
            &sec[3..33]
        } else {
            sec.rsplit('.').next().unwrap()
        };
        assert!(!api_log.text.contains(needle), "secret in the audit API");
        assert!(!stored.contains(needle), "secret in the audit table");
        assert!(!logs.contains(needle), "secret in the logs");
        assert!(!files.contains(needle), "secret in the database files");
    }
}

#[tokio::test]
async fn tampering_with_a_stored_event_is_caught_by_audit_verify() {
    let s = TestServer::start().await;
    let a = s.account("alice").await;
    let k = s.key(&a, &["repo:read"]).await;
    for _ in 0..5 {
        s.get("/v1/user", &k).await;
        s.get("/v1/user", "dg_nope").await;
    }
    s.audit_until(|e| e.event_type == "auth.failed").await;
    let dir = s.config.data_dir.clone();
    let verify = |dir: std::path::PathBuf| async move {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_dotgit"))
            .args(["audit", "verify", "--data-dir"])
            .arg(dir)
            .output()
            .await
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (ok, out) = verify(dir.clone()).await;
    assert!(ok, "{out}");
    assert!(out.contains("hash chain intact"), "{out}");

    // the database itself refuses updates and deletes of audit events
    let db = dotgit_server::db_path(&dir);
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let err = sqlx::query("UPDATE audit_events SET reason = 'nothing to see' WHERE seq = 3")
        .execute(&pool)
        .await;
    assert!(err.unwrap_err().to_string().contains("append-only"));
    assert!(sqlx::query("DELETE FROM audit_events WHERE seq = 3")
        .execute(&pool)
        .await
        .is_err());

    // an attacker with file access drops the guard and edits one event: verify names it
    sqlx::query("DROP TRIGGER audit_events_no_update")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE audit_events SET source_ip = '10.9.9.9' WHERE seq = 3")
        .execute(&pool)
        .await
        .unwrap();
    let (ok, out) = verify(dir.clone()).await;
    assert!(!ok);
    assert!(out.contains("seq 3"), "{out}");
    // restoring the field but deleting a later event is caught too
    sqlx::query("UPDATE audit_events SET source_ip = '127.0.0.1' WHERE seq = 3")
        .execute(&pool)
        .await
        .unwrap();
    assert!(verify(dir.clone()).await.0, "restored");
    sqlx::query("DROP TRIGGER audit_events_no_delete")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM audit_events WHERE seq = 5")
        .execute(&pool)
        .await
        .unwrap();
    let (ok, out) = verify(dir.clone()).await;
    assert!(!ok);
    assert!(out.contains("seq 6"), "{out}");
    pool.close().await;
}

#[tokio::test]
async fn listing_filters_isolates_accounts_and_pages_stably_under_concurrent_inserts() {
    let s = TestServer::start_with(|c| c.auth_failure_limit = 1000).await;
    let op = s.account_with("root", Plan::Enterprise, true).await;
    let a = s.account("alice").await;
    let b = s.account("bob").await;
    let ka = s.key(&a, &["audit:read", "repo:read"]).await;
    let kb = s.key(&b, &["audit:read", "repo:read"]).await;
    let kop = s.key(&op, &["audit:read"]).await;
    for _ in 0..15 {
        s.get("/v1/projects", &ka).await;
        s.get("/v1/projects", &kb).await;
    }
    s.audit_until(|e| e.account_id.as_deref() == Some(&b.id) && e.event_type == "auth.succeeded")
        .await;
    let total_a = s
        .audit_all()
        .await
        .iter()
        .filter(|e| e.account_id.as_deref() == Some(&a.id))
        .count();

    // alice sees only alice's events; asking for bob's is refused; operators see both
    let r = s.get("/v1/audit-events?limit=500", &ka).await;
    let evs = r.body["events"].as_array().unwrap();
    assert!(
        evs.iter().all(|e| e["account_id"] == a.id.as_str()),
        "{}",
        r.text
    );
    assert_eq!(
        s.get(&format!("/v1/audit-events?account_id={}", b.id), &ka)
            .await
            .code(),
        "invalid_request"
    );
    let r = s
        .get(
            &format!("/v1/audit-events?account_id={}&limit=500", b.id),
            &kop,
        )
        .await;
    assert!(r.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["account_id"] == b.id.as_str()));
    assert!(!r.body["events"].as_array().unwrap().is_empty());

    // filters
    let r = s
        .get("/v1/audit-events?type=auth.&outcome=success&limit=500", &ka)
        .await;
    assert!(r.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["type"] == "auth.succeeded"));
    let r = s
        .get("/v1/audit-events?since=2030-01-01T00:00:00Z", &ka)
        .await;
    assert_eq!(r.body["events"], json!([]));
    for bad in [
        "limit=0",
        "limit=501",
        "since=yesterday",
        "cursor=zzz",
        "outcome=maybe",
        "colour=red",
    ] {
        let r = s.get(&format!("/v1/audit-events?{bad}"), &ka).await;
        assert_eq!(
            (r.status, r.code()),
            (400, "invalid_request"),
            "{bad}: {}",
            r.text
        );
    }

    // a burst lands in one batch of the writer: alice's successes are stored as a pack, and
    // pages of 7 end inside it
    futures::future::join_all((0..60).map(|_| s.get("/v1/projects", &ka))).await;
    let before_burst = total_a;
    let total_a = loop {
        let n = s
            .audit_all()
            .await
            .iter()
            .filter(|e| e.account_id.as_deref() == Some(&a.id))
            .count();
        if n >= before_burst + 60 {
            break n;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };

    // page through alice's log in pages of 7 while new events keep arriving
    let s2 = &s;
    let ka2 = ka.clone();
    let writer = async move {
        for _ in 0..30 {
            s2.get("/v1/projects", &ka2).await;
        }
    };
    let reader = async {
        let mut seen: Vec<String> = Vec::new();
        let mut cursor: Option<String> = None;
        let mut inside_a_pack = false;
        let mut first_page_newest: Option<String> = None;
        loop {
            let q = match &cursor {
                Some(c) => format!("/v1/audit-events?limit=7&cursor={c}"),
                None => "/v1/audit-events?limit=7".to_owned(),
            };
            let r = s.get(&q, &ka).await;
            assert_eq!(r.status, 200, "{}", r.text);
            for e in r.body["events"].as_array().unwrap() {
                seen.push(e["id"].as_str().unwrap().to_owned());
            }
            if first_page_newest.is_none() {
                first_page_newest = seen.first().cloned();
            }
            match r.body["next_cursor"].as_str() {
                Some(c) => {
                    let plain = base64::Engine::decode(
                        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                        c,
                    )
                    .unwrap();
                    inside_a_pack |= plain.contains(&b'.');
                    cursor = Some(c.to_owned());
                }
                None => break,
            }
        }
        assert!(inside_a_pack, "some page ended inside a packed row");
        seen
    };
    let (_, seen) = tokio::join!(writer, reader);
    let unique: std::collections::HashSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no event twice");
    assert!(
        seen.len() >= total_a,
        "nothing that existed before paging started was skipped"
    );
}

#[tokio::test]
async fn anomaly_rules_fire_on_their_scenario_and_stay_quiet_otherwise() {
    let s = proxied_server().await;
    let a = s.account("alice").await;
    let admin = s.key(&a, &["keys:write", "repo:read"]).await;
    let k = s.key(&a, &["repo:read"]).await;
    let kid = get_from(&s, "/v1/user", &k, "198.51.100.200").await.body["credential"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // ordinary use: one network, regular intervals, no failures → no anomaly
    for i in 0..5 {
        assert_eq!(
            get_from(&s, "/v1/projects", &k, &format!("198.51.100.{i}"))
                .await
                .status,
            200
        );
        s.clock.advance(3600);
    }
    s.audit_until(|e| e.source_ip.as_deref() == Some("198.51.100.4"))
        .await;
    assert!(
        s.audit_all()
            .await
            .iter()
            .all(|e| !e.event_type.starts_with("anomaly.")),
        "quiet on ordinary use"
    );

    // a network the key never came from
    get_from(&s, "/v1/projects", &k, "203.0.113.9").await;
    let log = s
        .audit_until(|e| e.event_type == "anomaly.new_network")
        .await;
    let e = of_type(&log, "anomaly.new_network")[0];
    assert_eq!(e.credential_id.as_deref(), Some(kid.as_str()));
    assert!(e.reason.as_deref().unwrap().contains("203.0.113.0/24"));
    // …and only the first time
    get_from(&s, "/v1/projects", &k, "203.0.113.10").await;
    get_from(&s, "/v1/projects", &k, "198.51.100.1").await;
    s.audit_until(|e| {
        e.source_ip.as_deref() == Some("198.51.100.1")
            && e.event_type == "auth.succeeded"
            && e.time > dotgit_testkit::T0 + 5 * 3600 - 1
    })
    .await;
    assert_eq!(
        of_type(&s.audit_all().await, "anomaly.new_network").len(),
        1
    );

    // dormant: 29 days is quiet, 30 days fires
    s.clock.advance(29 * 86_400);
    get_from(&s, "/v1/projects", &k, "198.51.100.1").await;
    s.clock.advance(30 * 86_400);
    get_from(&s, "/v1/projects", &k, "198.51.100.1").await;
    let log = s
        .audit_until(|e| e.event_type == "anomaly.dormant_credential_active")
        .await;
    let dormant = of_type(&log, "anomaly.dormant_credential_active");
    assert_eq!(dormant.len(), 1);
    assert!(dormant[0].reason.as_deref().unwrap().contains("30 days"));

    // a burst of failures against the account's credentials, and use of a revoked key
    let r = s
        .post(
            "/v1/api-keys",
            &admin,
            json!({"name": "leaky", "scopes": ["repo:read"]}),
        )
        .await;
    let (leaky, leaky_id) = (
        r.body["key"].as_str().unwrap().to_owned(),
        r.body["id"].as_str().unwrap().to_owned(),
    );
    s.delete(&format!("/v1/api-keys/{leaky_id}"), &admin).await;
    for _ in 0..9 {
        get_from(&s, "/v1/projects", &leaky, "192.0.2.1").await;
    }
    let log = s
        .audit_until(|e| e.event_type == "anomaly.revoked_credential_used")
        .await;
    assert!(
        of_type(&log, "anomaly.failure_burst").is_empty(),
        "nine is not a burst"
    );
    get_from(&s, "/v1/projects", &leaky, "192.0.2.1").await;
    let log = s
        .audit_until(|e| e.event_type == "anomaly.failure_burst")
        .await;
    let burst = of_type(&log, "anomaly.failure_burst");
    assert_eq!(burst.len(), 1);
    assert_eq!(burst[0].account_id.as_deref(), Some(a.id.as_str()));
    assert_eq!(
        of_type(&log, "anomaly.revoked_credential_used")[0]
            .credential_id
            .as_deref(),
        Some(leaky_id.as_str())
    );

    // the dashboard shows them: they are listed under the anomaly type prefix
    let reader = s.key(&a, &["audit:read"]).await;
    let r = s.get("/v1/audit-events?type=anomaly.", &reader).await;
    assert!(
        r.body["events"].as_array().unwrap().len() >= 4,
        "{}",
        r.text
    );
}

#[tokio::test]
async fn an_account_can_ask_for_keys_to_be_revoked_automatically_on_anomalies() {
    let s = proxied_server().await;
    let a = s.account("alice").await;
    let admin = s.key(&a, &["keys:write"]).await;
    let k = s.key(&a, &["repo:read"]).await;
    let r = s
        .req(
            Method::PATCH,
            "/v1/user",
            Some(&admin),
            Some(json!({"anomaly_auto_revoke": true})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        get_from(&s, "/v1/projects", &k, "198.51.100.1")
            .await
            .status,
        200
    );
    get_from(&s, "/v1/projects", &k, "203.0.113.1").await;
    s.audit_until(|e| {
        e.event_type == "api_key.revoked"
            && e.reason.as_deref().unwrap_or("").contains("automatically")
    })
    .await;
    assert_eq!(
        get_from(&s, "/v1/projects", &k, "198.51.100.1")
            .await
            .code(),
        "invalid_token"
    );
    // the admin key, used from one place only, is untouched
    assert_eq!(s.get("/v1/api-keys", &admin).await.status, 200);
    assert_eq!(
        of_type(&s.audit_all().await, "account.settings_changed").len(),
        1
    );
}

#[tokio::test]
async fn export_writes_json_lines_and_follows_new_events() {
    let s = TestServer::start().await;
    let a = s.account("alice").await;
    let k = s.key(&a, &["repo:read"]).await;
    s.get("/v1/user", &k).await;
    s.audit_until(|e| e.event_type == "auth.succeeded").await;
    let n = s.audit_all().await.len();
    let dir = s.config.data_dir.clone();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_dotgit"))
        .args(["audit", "export", "--data-dir"])
        .arg(&dir)
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), n);
    assert!(
        lines
            .windows(2)
            .all(|w| w[0]["seq"].as_i64() < w[1]["seq"].as_i64()),
        "oldest first"
    );
    assert!(lines.iter().all(|l| l["id"].is_string()
        && l["type"].is_string()
        && l["time"].as_str().unwrap().ends_with('Z')));

    // --follow prints events recorded after it started
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_dotgit"))
        .args(["audit", "export", "--follow", "--data-dir"])
        .arg(&dir)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut reader = tokio::io::BufReader::new(child.stdout.take().unwrap());
    let mut got = Vec::new();
    for _ in 0..n {
        let mut line = String::new();
        tokio::io::AsyncBufReadExt::read_line(&mut reader, &mut line)
            .await
            .unwrap();
        got.push(line);
    }
    s.get("/v1/user", "dg_after_follow").await;
    let next = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        let mut line = String::new();
        tokio::io::AsyncBufReadExt::read_line(&mut reader, &mut line)
            .await
            .unwrap();
        line
    })
    .await
    .expect("followed a new event");
    assert!(next.contains("auth.failed"), "{next}");
    child.kill().await.unwrap();
}

#[tokio::test]
async fn metrics_count_authentications_and_the_audit_queue() {
    let s = TestServer::start().await;
    let a = s.account("alice").await;
    let k = s.key(&a, &["repo:read"]).await;
    for _ in 0..3 {
        s.get("/v1/user", &k).await;
    }
    s.get("/v1/user", "dg_bad").await;
    let r = s.req(Method::GET, "/metrics", None, None).await;
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    assert!(
        r.text
            .contains("dotgit_authentications_total{kind=\"api_key\",outcome=\"success\"} 3"),
        "{}",
        r.text
    );
    assert!(
        r.text
            .contains("dotgit_authentications_total{kind=\"unknown\",outcome=\"failure\"} 1"),
        "{}",
        r.text
    );
    assert!(r.text.contains("dotgit_audit_queue_depth "));
    // a count of the process's (the tests share it): present, and a number
    let waits = r
        .text
        .lines()
        .find_map(|l| l.strip_prefix("dotgit_store_writer_lock_waits_total "))
        .unwrap_or_else(|| panic!("{}", r.text));
    assert!(waits.parse::<u64>().is_ok(), "{waits}");
    assert!(r
        .text
        .contains("dotgit_request_duration_seconds_bucket{le=\"+Inf\"}"));
}

#[tokio::test]
async fn oauth_grants_and_sign_ins_are_audited_and_refresh_reuse_is_an_anomaly() {
    use crate::oauth::{code_for, exchange, refresh, tokens, world};
    let w = world().await;
    let (s, app) = (&w.s, &w.app);
    let (code, verifier) = code_for(&w.browser, app, "repo:read").await;
    let (_, r1) = tokens(&exchange(s, app, &code, &verifier).await);
    let (_, r2) = tokens(&refresh(s, app, &r1, None).await);
    // replays: the rotated refresh token, then the code
    refresh(s, app, &r1, None).await;
    exchange(s, app, &code, &verifier).await;
    let log = s.audit_until(|e| e.event_type == "login.succeeded").await;
    let bob = Some(w.bob.id.as_str());
    for t in [
        "oauth_app.created",
        "oauth.authorized",
        "oauth.code_redeemed",
        "oauth.token_refreshed",
        "oauth.code_replayed",
        "oauth.refresh_reuse_detected",
        "anomaly.refresh_token_reuse",
    ] {
        assert!(!of_type(&log, t).is_empty(), "{t} missing");
    }
    let reuse = of_type(&log, "oauth.refresh_reuse_detected")[0];
    assert_eq!(reuse.account_id.as_deref(), bob);
    assert_eq!(reuse.outcome, "failure");
    assert_eq!(
        of_type(&log, "anomaly.refresh_token_reuse")[0].outcome,
        "detected"
    );
    assert_eq!(of_type(&log, "oauth.code_redeemed")[0].outcome, "success");
    assert_eq!(
        of_type(&log, "login.succeeded")[0].account_id.as_deref(),
        bob
    );
    // the refresh tokens and the code never appear in the log
    let dump = format!("{log:?}");
    for secret in [&code, &r1, &r2] {
        assert!(!dump.contains(secret.as_str()));
    }
    // a failed sign-in is recorded with the reason the page does not give
    crate::oauth::Browser::new(s)
        .login_to(&w.bob.username, "wrong password!", None)
        .await;
    let log = s.audit_until(|e| e.event_type == "login.failed").await;
    assert_eq!(
        of_type(&log, "login.failed")[0].reason.as_deref(),
        Some("wrong password")
    );
    // so is a client that fails to authenticate at the token endpoint
    let wrong = crate::oauth::App {
        secret: Some("dgs_not-the-secret".into()),
        ..app.clone()
    };
    assert_eq!(
        crate::oauth::introspect(s, &wrong, &r2).await.code(),
        "invalid_client"
    );
    let why = "client authentication: wrong client secret";
    let log = s.audit_until(|e| e.reason.as_deref() == Some(why)).await;
    let e = log
        .iter()
        .find(|e| e.reason.as_deref() == Some(why))
        .unwrap();
    assert_eq!(e.credential_id.as_deref(), Some(app.client_id.as_str()));
    assert!(s.state().store.verify_audit_chain().await.unwrap().is_ok());
}

#[tokio::test]
async fn the_new_network_rule_remembers_networks_across_a_restart() {
    let mut s = proxied_server().await;
    let a = s.account("alice").await;
    let k = s.key(&a, &["repo:read"]).await;
    assert_eq!(
        get_from(&s, "/v1/user", &k, "198.51.100.7").await.status,
        200
    );
    s.audit_until(|e| e.event_type == "auth.succeeded").await;
    s.restart().await;
    // the first use after the restart comes from a new network: the rule knows the old one
    // from the database, so it fires
    assert_eq!(get_from(&s, "/v1/user", &k, "192.0.2.1").await.status, 200);
    let log = s
        .audit_until(|e| e.event_type == "anomaly.new_network")
        .await;
    let e = of_type(&log, "anomaly.new_network")[0];
    let reason = e.reason.as_deref().unwrap();
    assert!(reason.contains("192.0.2.0/24"), "{reason}");
    assert!(reason.contains("known: 198.51.100.0/24"), "{reason}");
    // the network known from before the restart stays quiet
    assert_eq!(
        get_from(&s, "/v1/user", &k, "198.51.100.8").await.status,
        200
    );
    s.audit_until(|e| e.source_ip.as_deref() == Some("198.51.100.8"))
        .await;
    assert_eq!(
        of_type(&s.audit_all().await, "anomaly.new_network").len(),
        1
    );
}
