//! Listeners: the HTTPS accept loop and the optional plain-HTTP one.
//!
//! What must hold (DESIGN "Known traps"): the TLS handshake runs in each connection's own task,
//! with a deadline, so one silent client never blocks new connections; the peer address reaches
//! handlers as `ConnectInfo`; shutdown stops accepting, lets in-flight requests finish (up to a
//! deadline), then returns.

use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

mod held;
use held::Held;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);

/// Serves `app` on `listener`, over TLS when `tls` is given, until `shutdown` fires.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    app: Router,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let graceful = GracefulShutdown::new();
    let acceptor = tls.map(TlsAcceptor::from);
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let _ = tcp.set_nodelay(true);
        let app = app.clone();
        let acceptor = acceptor.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(
                move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(ConnectInfo(peer));
                    app.clone().oneshot(req.map(axum::body::Body::new))
                },
            );
            let builder = auto::Builder::new(TokioExecutor::new());
            match acceptor {
                Some(acceptor) => {
                    let Some(tls) = handshake(&acceptor, tcp, peer).await else {
                        return;
                    };
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
                    let _ = watcher.watch(conn.into_owned()).await;
                }
                None => {
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(tcp), service);
                    let _ = watcher.watch(conn.into_owned()).await;
                }
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the drain deadline; closing");
    }
}

/// Makes the TLS handshake on `tcp` within [`HANDSHAKE_TIMEOUT`]. The writes of a TLS 1.3
/// handshake's last flight, its session tickets, stay held to leave with the first answer
/// ([`held`]); anything else still held (a TLS 1.2 server `Finished`, a failed handshake's alert)
/// is sent before returning.
async fn handshake(
    acceptor: &TlsAcceptor,
    tcp: TcpStream,
    peer: SocketAddr,
) -> Option<tokio_rustls::server::TlsStream<Held<TcpStream>>> {
    let made = tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
        match acceptor
            .accept(Held::handshaking(tcp))
            .into_fallible()
            .await
        {
            Ok(mut tls) => {
                let (io, conn) = tls.get_mut();
                io.handshake_done();
                if conn.protocol_version() != Some(rustls::ProtocolVersion::TLSv1_3) {
                    tls.flush().await?;
                }
                Ok(tls)
            }
            Err((e, mut io)) => {
                // the shutdown sends what is held first: the alert telling the client why
                let _ = io.shutdown().await;
                Err(e)
            }
        }
    })
    .await;
    match made {
        Ok(Ok(tls)) => Some(tls),
        Ok(Err(e)) => {
            tracing::debug!(peer = %peer, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(peer = %peer, "TLS handshake timed out");
            None
        }
    }
}

/// The peer address type handlers see.
pub type Peer = SocketAddr;
