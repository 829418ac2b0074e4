//! The HTTPS listener: TLS 1.2 and 1.3 both work, HSTS is on every answer, and a client that
//! connects and says nothing does not hold up anyone else (handshakes run per connection).

use dotgit_testkit::{reqwest, root_store, TestServer};
use std::sync::Arc;
use std::time::Duration;

#[tokio::test]
async fn tls12_and_tls13_clients_are_served() {
    let s = TestServer::start().await;
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(root_store(&s.running().cert_path))
        .with_no_client_auth();
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(cfg)
            .build()
            .unwrap();
        let r = client.get(s.url("/livez")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{version:?}");
        assert!(r.headers()["strict-transport-security"]
            .to_str()
            .unwrap()
            .starts_with("max-age="));
    }
}

#[tokio::test]
async fn a_silent_client_does_not_block_new_connections() {
    let s = TestServer::start().await;
    let addr = s.running().addr;
    // several connections that never start a handshake
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    let r = tokio::time::timeout(Duration::from_secs(5), s.client.get(s.url("/livez")).send())
        .await
        .expect("served while other connections sit idle")
        .unwrap();
    assert_eq!(r.status(), 200);
    drop(idle);
}

#[tokio::test]
async fn plain_http_on_the_tls_port_gets_no_answer() {
    let s = TestServer::start().await;
    let plain = reqwest::Client::new();
    let r = plain
        .get(format!("http://{}/livez", s.running().addr))
        .send()
        .await;
    assert!(r.is_err() || r.unwrap().status() != 200);
}
