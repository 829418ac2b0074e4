//! The real `dotgit` binary: accounts, keys and suspension from the command line against the data
//! dir of a running server (changes reach it within 1 s), and `dotgit serve` itself.

use dotgit_testkit::{client_for, TestServer};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs the real binary without blocking the runtime: the in-process server shares this thread
/// and must keep serving (and finishing its own transactions) while the command runs.
async fn dotgit(
    data_dir: &std::path::Path,
    args: &[&str],
    stdin: Option<&str>,
) -> (bool, String, String) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_dotgit"))
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("dotgit runs");
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        tokio::io::AsyncWriteExt::write_all(&mut input, text.as_bytes())
            .await
            .unwrap();
    }
    drop(input);
    let out = child.wait_with_output().await.unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Polls `f` until it returns true; panics after `limit`. Returns how long it took.
async fn within<F, Fut>(limit: Duration, mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if f().await {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn cli_accounts_keys_and_suspension_reach_a_running_server_within_a_second() {
    let s = TestServer::start().await;
    // the CLI reads the real clock; keep the server's clock there too
    let sync_clock = || {
        s.clock.set(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs() as i64,
        )
    };
    sync_clock();
    let dir = s.config.data_dir.clone();

    let (ok, out, err) = dotgit(
        &dir,
        &["admin", "create-account", "alice", "--plan", "pro"],
        Some("a long password\n"),
    )
    .await;
    assert!(ok, "{err}");
    let acct: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(acct["username"], "alice");
    assert_eq!(acct["plan"], "pro");
    assert!(!out.contains("a long password"));

    let (ok, out, err) = dotgit(
        &dir,
        &[
            "keys",
            "create",
            "--account",
            "alice",
            "--scope",
            "repo:read",
            "--scope",
            "keys:write",
            "--name",
            "laptop",
        ],
        None,
    )
    .await;
    assert!(ok, "{err}");
    let key = out.trim().to_owned();
    assert_eq!(out.lines().count(), 1, "prints only the key");
    assert!(key.starts_with("dg_") && key.len() == 39, "{key}");
    let r = s.get("/v1/projects", &key).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let id = s.get("/v1/user", &key).await.body["credential"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // suspension from the CLI: the running server (which has the key cached) refuses within 1 s
    let (ok, _, err) = dotgit(
        &dir,
        &["admin", "suspend", "alice", "--reason", "test"],
        None,
    )
    .await;
    assert!(ok, "{err}");
    let took = within(Duration::from_secs(1), || async {
        s.get("/v1/projects", &key).await.code() == "account_suspended"
    })
    .await;
    eprintln!("suspension reached the server in {took:?}");
    let (ok, _, _) = dotgit(&dir, &["admin", "unsuspend", "alice"], None).await;
    assert!(ok);
    within(Duration::from_secs(1), || async {
        s.get("/v1/projects", &key).await.status == 200
    })
    .await;

    // rotation from the CLI with no grace: old key dies within 1 s, the new one works
    let (ok, out, err) = dotgit(&dir, &["keys", "rotate", &id, "--grace", "0"], None).await;
    assert!(ok, "{err}");
    let new_key = out.trim().to_owned();
    sync_clock();
    assert!(new_key.starts_with("dg_") && new_key != key);
    within(Duration::from_secs(1), || async {
        s.get("/v1/projects", &key).await.status == 401
    })
    .await;
    assert_eq!(s.get("/v1/projects", &new_key).await.status, 200);

    // bad input: clear messages, non-zero exit, nothing created
    let (ok, _, err) = dotgit(&dir, &["admin", "create-account", "bob"], Some("short\n")).await;
    assert!(!ok);
    assert!(err.contains("password"), "{err}");
    let (ok, _, err) = dotgit(
        &dir,
        &["admin", "create-account", "alice"],
        Some("another long password\n"),
    )
    .await;
    assert!(!ok);
    assert!(err.contains("taken"), "{err}");
    let (ok, _, err) = dotgit(
        &dir,
        &[
            "keys",
            "create",
            "--account",
            "alice",
            "--scope",
            "repo:all",
        ],
        None,
    )
    .await;
    assert!(!ok);
    assert!(err.contains("--scope[0]"), "{err}");
    let (ok, _, err) = dotgit(
        &dir,
        &[
            "keys",
            "create",
            "--account",
            "nobody",
            "--scope",
            "repo:read",
        ],
        None,
    )
    .await;
    assert!(!ok);
    assert!(err.contains("nobody"), "{err}");
    let (ok, _, err) = dotgit(&dir, &["admin", "suspend", "nobody"], None).await;
    assert!(!ok && err.contains("nobody"), "{err}");
}

#[tokio::test]
async fn dotgit_serve_starts_with_zero_config_and_stops_on_sigterm() {
    dotgit_server::tls::install_crypto_provider();
    let dir = tempfile_dir();
    let mut child = Command::new(env!("CARGO_BIN_EXE_dotgit"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let first = match lines.next() {
        Some(l) => l.unwrap(),
        None => panic!("dotgit serve exited: {:?}", child.wait()),
    };
    let addr = first
        .split("https://")
        .nth(1)
        .unwrap_or_else(|| panic!("no address in {first:?}"))
        .trim()
        .to_owned();
    let mut printed = String::new();
    for _ in 0..2 {
        printed.push_str(&lines.next().unwrap().unwrap());
    }
    assert!(printed.contains("dotgit-data/tls-cert.pem"), "{printed}");
    assert!(printed.contains("created now"), "{printed}");
    std::thread::spawn(move || for _ in lines {});
    let data = dir.join("dotgit-data");
    assert!(data.join("dotgit.db").exists());
    let client = client_for(&data.join("tls-cert.pem"));
    let r = client
        .get(format!("https://{addr}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("strict-transport-security").is_some());
    // the key file is private
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data.join("tls-key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "key readable by others: {mode:o}");
    }
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempfile_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!(
        "dotgit-serve-{}-{}",
        std::process::id(),
        Instant::now().elapsed().as_nanos()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}
