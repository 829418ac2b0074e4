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

/// A client config trusting the test server's certificate, offering `suites` (in that order)
/// over `version`.
fn client_config(
    cert: &std::path::Path,
    version: &'static rustls::SupportedProtocolVersion,
    suites: &[rustls::SupportedCipherSuite],
) -> rustls::ClientConfig {
    let provider = rustls::crypto::CryptoProvider {
        cipher_suites: suites.to_vec(),
        ..rustls::crypto::aws_lc_rs::default_provider()
    };
    rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(root_store(cert))
        .with_no_client_auth()
}

/// Connects with `cfg`, sends `GET /livez` with `Connection: close`, reads the answer to its end,
/// and returns the client's connection state; the handshake's error if it failed.
fn exchange(
    addr: std::net::SocketAddr,
    cfg: &Arc<rustls::ClientConfig>,
) -> Result<rustls::ClientConnection, std::io::Error> {
    use std::io::{Read, Write};
    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    let mut conn = rustls::ClientConnection::new(cfg.clone(), name).unwrap();
    let mut sock = std::net::TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut tls = rustls::Stream::new(&mut conn, &mut sock);
    tls.write_all(b"GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")?;
    let mut answer = Vec::new();
    // the server closes after answering; a missing close_notify is not these tests' concern
    let _ = tls.read_to_end(&mut answer);
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    Ok(conn)
}

/// Completes a handshake with a client offering `suites` (in that order) over `version`, and
/// returns the suite the server chose.
fn negotiated(
    (addr, cert): &(std::net::SocketAddr, std::path::PathBuf),
    version: &'static rustls::SupportedProtocolVersion,
    suites: &[rustls::SupportedCipherSuite],
) -> rustls::CipherSuite {
    let cfg = Arc::new(client_config(cert, version, suites));
    let conn = exchange(*addr, &cfg).unwrap();
    conn.negotiated_cipher_suite().unwrap().suite()
}

#[tokio::test]
async fn a_tls13_handshake_gives_one_ticket_more_on_request_and_the_ticket_resumes() {
    use rustls::client::TicketRequest;
    use rustls::HandshakeKind;
    let server = TestServer::start().await;
    let (addr, cert) = (server.running().addr, server.running().cert_path.clone());
    tokio::task::spawn_blocking(move || {
        let suites = rustls::crypto::aws_lc_rs::default_provider().cipher_suites;
        let cfg = Arc::new(client_config(&cert, &rustls::version::TLS13, &suites));
        let first = exchange(addr, &cfg).unwrap();
        assert_eq!(first.handshake_kind(), Some(HandshakeKind::Full));
        assert_eq!(first.tls13_tickets_received(), 1);
        // the same client config keeps the ticket, and the next connection resumes with it
        let second = exchange(addr, &cfg).unwrap();
        assert_eq!(second.handshake_kind(), Some(HandshakeKind::Resumed));
        assert_eq!(second.tls13_tickets_received(), 1);
        // RFC 9149: a client asking for tickets gets them, up to the server's cap of 4
        for (asked, given) in [(3u8, 3u32), (9, 4), (0, 0)] {
            let mut c = client_config(&cert, &rustls::version::TLS13, &suites);
            c.send_ticket_request = Some(TicketRequest {
                new_session_count: asked,
                resumption_count: asked,
            });
            let conn = exchange(addr, &Arc::new(c)).unwrap();
            assert_eq!(conn.tls13_tickets_received(), given, "asked for {asked}");
        }
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_refused_handshake_still_sends_the_client_its_alert() {
    use rustls::crypto::aws_lc_rs::cipher_suite as cs;
    let server = TestServer::start().await;
    let (addr, cert) = (server.running().addr, server.running().cert_path.clone());
    tokio::task::spawn_blocking(move || {
        // the server's certificate is ECDSA: a TLS 1.2 client offering only RSA suites shares none
        let cfg = Arc::new(client_config(
            &cert,
            &rustls::version::TLS12,
            &[cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256],
        ));
        let err = exchange(addr, &cfg).unwrap_err();
        let tls = err
            .get_ref()
            .and_then(|e| e.downcast_ref::<rustls::Error>())
            .unwrap_or_else(|| panic!("not a TLS error: {err}"));
        assert_eq!(
            *tls,
            rustls::Error::AlertReceived(rustls::AlertDescription::HandshakeFailure),
            "{err}"
        );
    })
    .await
    .unwrap();
    // and the server serves the next client
    let r = server
        .client
        .get(server.url("/livez"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn the_server_prefers_aes_128_gcm_over_the_clients_order_and_serves_every_suite() {
    use rustls::crypto::aws_lc_rs::cipher_suite as cs;
    use rustls::CipherSuite as S;
    let server = TestServer::start().await;
    let s = (server.running().addr, server.running().cert_path.clone());
    tokio::task::spawn_blocking(move || {
        let v13 = &rustls::version::TLS13;
        let v12 = &rustls::version::TLS12;
        // a client listing AES-256-GCM first (OpenSSL's and rustls' default order) gets AES-128
        let aes256_first = [
            cs::TLS13_AES_256_GCM_SHA384,
            cs::TLS13_CHACHA20_POLY1305_SHA256,
            cs::TLS13_AES_128_GCM_SHA256,
        ];
        assert_eq!(
            negotiated(&s, v13, &aes256_first),
            S::TLS13_AES_128_GCM_SHA256
        );
        let aes256_first_12 = [
            cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        ];
        assert_eq!(
            negotiated(&s, v12, &aes256_first_12),
            S::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
        );
        // without AES-128, the next in the server's order; a client offering one suite gets it
        assert_eq!(
            negotiated(
                &s,
                v13,
                &[
                    cs::TLS13_CHACHA20_POLY1305_SHA256,
                    cs::TLS13_AES_256_GCM_SHA384
                ]
            ),
            S::TLS13_AES_256_GCM_SHA384
        );
        for (suite, want) in [
            (cs::TLS13_AES_256_GCM_SHA384, S::TLS13_AES_256_GCM_SHA384),
            (
                cs::TLS13_CHACHA20_POLY1305_SHA256,
                S::TLS13_CHACHA20_POLY1305_SHA256,
            ),
        ] {
            assert_eq!(negotiated(&s, v13, &[suite]), want);
        }
        assert_eq!(
            negotiated(
                &s,
                v12,
                &[cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256]
            ),
            S::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
        );
    })
    .await
    .unwrap();
}
