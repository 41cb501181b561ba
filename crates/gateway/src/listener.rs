//! The accept loop: service-kit's connection server (axum::serve has no header read timeout,
//! idle timeout nor header size limit) with the `http.*` connection limits, handing every
//! request its connection's peer address, and a graceful shutdown bounded by the grace period.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use axum::{Router, extract::ConnectInfo, http::Request};
use service_kit::{
    http_server::{self, ConnectionInfo, ConnectionLimits, Incoming},
    tls::ServerTls,
};
use tokio::net::TcpListener;
use tower::ServiceExt as _;

use crate::config::Config;

/// Largest request head (request line and headers) accepted, over HTTP/1 and HTTP/2 alike; a
/// larger one is answered 431 by hyper before any handler runs. The largest legitimate header is
/// `Authorization` (about 4 KB).
pub const MAX_HEADER_BYTES: u32 = 32 * 1024;

/// HTTP/1 and HTTP/2 (cleartext, prior knowledge) with the `http.*` connection limits and the
/// header size limit.
pub fn connection_limits(config: &Config) -> ConnectionLimits {
    ConnectionLimits {
        accept_http1: true,
        header_read_timeout: config.header_read_timeout(),
        idle_timeout: config.idle_timeout(),
        max_concurrent_streams: config.http.max_concurrent_streams,
        keepalive_interval: config.keepalive_interval(),
        keepalive_timeout: config.keepalive_timeout(),
        max_header_list_bytes: MAX_HEADER_BYTES,
    }
}

/// What HTTPS offers by ALPN: HTTP/2 first, then HTTP/1.1.
pub const HTTPS_ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// The listener's TLS when `http.tls` sets a certificate (HTTPS), re-read when its files change.
pub fn https(config: &Config) -> anyhow::Result<Option<Arc<ServerTls>>> {
    if !config.http_tls_enabled()? {
        return Ok(None);
    }
    let tls = ServerTls::load(&config.http.tls, "http.tls", &HTTPS_ALPN).map_err(anyhow::Error::msg)?;
    tracing::info!(mutual = config.http.tls.client_ca_file.is_some(), "REST over HTTPS");
    Ok(Some(tls))
}

/// Serves `router` on `listener` (over TLS when `tls` is given) until `shutdown` completes, then
/// stops accepting and gives in-flight requests `shutdown_grace` to finish.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<ServerTls>>,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
    shutdown_grace: Duration,
) {
    // Every request carries its connection's peer (`ConnectInfo<SocketAddr>`), as axum's
    // `into_make_service_with_connect_info` would give it.
    let make_service = |connection: ConnectionInfo| {
        let peer: ConnectInfo<SocketAddr> = ConnectInfo(connection.remote_addr);
        router.clone().map_request(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(peer);
            request
        })
    };
    let _reload = tls.as_ref().map(ServerTls::watch);
    http_server::serve(listener, tls, make_service, limits, shutdown, shutdown_grace).await;
}
