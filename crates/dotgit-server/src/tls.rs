//! TLS (SPEC §4): rustls with the aws-lc-rs provider, TLS 1.2 and 1.3 only, ALPN h2 and
//! http/1.1. With no certificate configured, a self-signed one is made in the data dir on first
//! start and reused afterwards; its private key file is readable by the owner only.

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// TLS setup errors.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// File I/O.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Bad PEM or key.
    #[error("{0}")]
    Invalid(String),
}

/// The process-wide crypto provider: aws-lc-rs, installed explicitly (DESIGN "Known traps").
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// Where the generated certificate lives in a data dir.
pub fn self_signed_paths(data_dir: &Path) -> (PathBuf, PathBuf) {
    (data_dir.join("tls-cert.pem"), data_dir.join("tls-key.pem"))
}

/// Makes a self-signed certificate for `hosts` in `data_dir` unless one exists.
/// Returns the paths and whether it was created now.
pub fn ensure_self_signed(
    data_dir: &Path,
    hosts: &[String],
) -> Result<(PathBuf, PathBuf, bool), TlsError> {
    let (cert_path, key_path) = self_signed_paths(data_dir);
    if cert_path.exists() && key_path.exists() {
        return Ok((cert_path, key_path, false));
    }
    let ck = rcgen::generate_simple_self_signed(hosts.to_vec())
        .map_err(|e| TlsError::Invalid(format!("certificate generation failed: {e}")))?;
    write_private(&key_path, ck.key_pair.serialize_pem().as_bytes())?;
    std::fs::write(&cert_path, ck.cert.pem()).map_err(|source| TlsError::Io {
        path: cert_path.clone(),
        source,
    })?;
    Ok((cert_path, key_path, true))
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), TlsError> {
    let io = |source| TlsError::Io {
        path: path.to_owned(),
        source,
    };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)
}

/// Loads a PEM certificate chain and private key.
pub fn load_pem(
    cert: &Path,
    key: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let read = |p: &Path| {
        std::fs::read(p).map_err(|source| TlsError::Io {
            path: p.to_owned(),
            source,
        })
    };
    let cert_pem = read(cert)?;
    let key_pem = read(key)?;
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Invalid(format!("{}: {e}", cert.display())))?;
    if certs.is_empty() {
        return Err(TlsError::Invalid(format!(
            "{}: no certificate",
            cert.display()
        )));
    }
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| TlsError::Invalid(format!("{}: {e}", key.display())))?
        .ok_or_else(|| TlsError::Invalid(format!("{}: no private key", key.display())))?;
    Ok((certs, key))
}

/// The cipher suites, in the server's order of preference (ADR 0018): AES-128-GCM with SHA-256
/// first, then AES-256-GCM with SHA-384, then ChaCha20-Poly1305, for TLS 1.3 and for TLS 1.2
/// (ECDHE only). The server's order wins over the client's.
///
/// AES-128 matches the ~128-bit strength of the key exchange (X25519, P-256) and of the
/// certificate's P-256 key, and RFC 8446 §9.1 makes TLS_AES_128_GCM_SHA256 the one suite every
/// TLS 1.3 peer implements. Most clients (OpenSSL, and so curl, wrk, Python, Node) list
/// AES-256-GCM first, whose SHA-384 key schedule has no hardware help on CPUs without the
/// SHA-512 instructions: on the bench's AMD EPYC it was 17 % of a full handshake's server CPU,
/// where SHA-256 runs on the SHA extensions.
pub fn cipher_suites() -> Vec<rustls::SupportedCipherSuite> {
    use rustls::crypto::aws_lc_rs::cipher_suite as cs;
    vec![
        cs::TLS13_AES_128_GCM_SHA256,
        cs::TLS13_AES_256_GCM_SHA384,
        cs::TLS13_CHACHA20_POLY1305_SHA256,
        cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ]
}

/// The session tickets a TLS 1.3 handshake ends with (rustls sends 2 unless told).
///
/// One is what a client reconnecting one connection at a time uses: each resumption is given a
/// ticket for the next. A client that opens several at once can ask for more (RFC 9149), up to
/// [`TLS13_TICKETS_ON_REQUEST`]. The sessions the tickets name live in rustls' in-memory cache of
/// 256, so one a handshake keeps the last 256 connections resumable instead of 128; and a second
/// ticket cost a full handshake 1–2 % of its server CPU (docs/performance-history.md, session 21).
pub const TLS13_TICKETS: usize = 1;

/// The most tickets a client's RFC 9149 `ticket_request` extension is given.
pub const TLS13_TICKETS_ON_REQUEST: usize = 4;

/// A rustls server config: aws-lc-rs, TLS 1.2/1.3, the server's cipher-suite order
/// ([`cipher_suites`]), ALPN h2 + http/1.1, [`TLS13_TICKETS`] session tickets.
pub fn server_config(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::CryptoProvider {
        cipher_suites: cipher_suites(),
        ..rustls::crypto::aws_lc_rs::default_provider()
    });
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Invalid(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Invalid(e.to_string()))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    cfg.ignore_client_order = true;
    cfg.send_tls13_tickets = TLS13_TICKETS;
    cfg.max_tls13_tickets = TLS13_TICKETS_ON_REQUEST;
    Ok(Arc::new(cfg))
}
