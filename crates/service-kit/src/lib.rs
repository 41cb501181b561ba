//! What auth-svc and the gateway share as processes, written once: configuration loading, log
//! setup, OTLP traces, the shutdown signals, binding listeners, and the admin port that serves
//! Prometheus `/metrics`.

pub mod config;
pub mod http_server;
pub mod logging;
pub mod telemetry;
pub mod tls;

use std::{future::Future, net::SocketAddr, sync::Arc};

use anyhow::Context as _;
use tokio::net::TcpListener;

/// Binds `address`; the error names the config key that set it.
pub async fn bind(address: SocketAddr, key: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(address).await.with_context(|| format!("cannot listen on {address} ({key})"))
}

/// Registers SIGTERM (Kubernetes) and SIGINT (Ctrl-C) now, so a signal that arrives while the
/// service is still starting means "drain", not death; the future resolves on either.
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
    })
}

/// Binds the admin address when one is configured (`admin_listen`).
pub async fn bind_admin(address: Option<SocketAddr>) -> anyhow::Result<Option<TcpListener>> {
    match address {
        Some(address) => bind(address, "admin_listen").await.map(Some),
        None => Ok(None),
    }
}

/// Serves `GET /metrics` (Prometheus text format, from `render`) on `listener` until `shutdown`.
pub async fn serve_metrics(
    listener: TcpListener,
    render: impl Fn() -> String + Send + Sync + 'static,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::{Router, http::header, routing::get};
    let render = Arc::new(render);
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let render = render.clone();
            async move { ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], render()) }
        }),
    );
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}
