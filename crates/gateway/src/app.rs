//! Start-up, top to bottom: validate the config, prepare the channel to auth-svc, assemble the
//! routes and their OpenAPI document behind the middleware stack, bind the ports; then serve
//! (the accept loop is `listener`'s) until the shutdown future completes.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use axum::{Router, middleware::from_fn_with_state};
use service_kit::{http_server::ConnectionLimits, tls::ServerTls};
use tokio::net::TcpListener;

use crate::{
    config::Config,
    listener,
    metrics::{self, Metrics},
    middleware::with_middleware,
    openapi, routes,
    state::AppState,
};

/// A gateway whose port is bound, ready to serve.
pub struct App {
    listener: TcpListener,
    /// HTTPS on `listener` (`http.tls`).
    tls: Option<Arc<ServerTls>>,
    admin_listener: Option<TcpListener>,
    metrics: Arc<Metrics>,
    router: Router,
    shutdown_grace: Duration,
    limits: ConnectionLimits,
}

impl App {
    /// Validates `config`, prepares the (lazy) channel to auth-svc and binds `config.listen`.
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        config.validate()?;
        let state = AppState::new(config)?;
        let metrics = Arc::new(Metrics::default());
        // Outermost, so the status counted is the one the client gets.
        let router = with_middleware(routes_with_docs(state), config)
            .layer(from_fn_with_state(metrics.clone(), metrics::record));
        let tls = listener::https(config)?;
        let listener = service_kit::bind(config.listen, "listen").await?;
        let admin_listener = service_kit::bind_admin(config.admin_listen).await?;
        Ok(Self {
            listener,
            tls,
            admin_listener,
            metrics,
            router,
            shutdown_grace: config.shutdown_grace(),
            limits: listener::connection_limits(config),
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The bound admin (metrics) address, when `admin_listen` is set.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_listener.as_ref().and_then(|listener| listener.local_addr().ok())
    }

    /// Serves until `shutdown` completes, then stops accepting and gives in-flight requests the
    /// grace period to finish.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let Self { listener, tls, admin_listener, metrics, router, shutdown_grace, limits } = self;
        // The admin port lives as long as this call: its server ends when `admin_stop` drops.
        let (admin_stop, admin_stopped) = tokio::sync::oneshot::channel::<()>();
        if let Some(admin) = admin_listener {
            let stopped = async move {
                let _ = admin_stopped.await;
            };
            tokio::spawn(service_kit::serve_metrics(admin, move || metrics.render(), stopped));
        }
        let _admin_stop = admin_stop;
        listener::serve(listener, tls, router, limits, shutdown, shutdown_grace).await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Every route, with the OpenAPI document describing them and the docs UI mounted beside them;
/// no middleware yet.
pub fn routes_with_docs(state: AppState) -> Router {
    let (api, paths) = routes::api().split_for_parts();
    api.merge(openapi::docs_router(openapi::document(paths))).with_state(state)
}

#[cfg(test)]
mod tests {
    use axum::{
        body::{Body, to_bytes},
        http::{Request, StatusCode, header},
    };
    use tower::ServiceExt as _;

    use super::*;

    /// Without `Content-Length` the limit can only trip while the extractor reads the body.
    #[tokio::test]
    async fn a_streamed_oversized_body_is_413_in_the_dialect_of_its_path() {
        let config = Config::default();
        let state = AppState::new(&config).unwrap();
        let router = with_middleware(routes_with_docs(state), &config);
        for (path, content_type, expected) in [
            (
                "/user/register",
                "application/json",
                serde_json::json!({"code": 413, "msg": "request body too large (limit 65536 bytes)"}),
            ),
            (
                "/signup",
                "application/json",
                serde_json::json!({"detail": "request body too large (limit 65536 bytes)"}),
            ),
            (
                "/token",
                "application/x-www-form-urlencoded",
                serde_json::json!({"detail": "request body too large (limit 65536 bytes)", "error": "invalid_request",
                    "error_description": "request body too large (limit 65536 bytes)"}),
            ),
        ] {
            let chunks = (0..20).map(|_| Ok::<_, std::io::Error>(vec![b'x'; 8 * 1024]));
            let request = Request::post(path)
                .header(header::CONTENT_TYPE, content_type)
                .body(Body::from_stream(futures::stream::iter(chunks)))
                .unwrap();
            assert!(request.headers().get(header::CONTENT_LENGTH).is_none());
            let response = router.clone().oneshot(request).await.unwrap();
            assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE, "{path}");
            let bytes = to_bytes(response.into_body(), 4096).await.unwrap();
            assert_eq!(serde_json::from_slice::<serde_json::Value>(&bytes).unwrap(), expected, "{path}");
        }
    }
}
