//! Assembles and runs the HTTP server: the routes behind the tower-http stack (request id,
//! tracing, CORS, error shaping, panic catching, timeout, body limit) and a graceful shutdown
//! bounded by the configured grace period.

use std::{any::Any, future::Future, future::IntoFuture as _, net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context as _;
use axum::{
    Router,
    body::Body,
    extract::DefaultBodyLimit,
    http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode, header},
    middleware,
};
use tokio::{net::TcpListener, sync::Notify};
use tower::ServiceBuilder;
use tower_http::{
    catch_panic::CatchPanicLayer,
    cors::{AllowOrigin, CorsLayer},
    limit::RequestBodyLimitLayer,
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    timeout::TimeoutLayer,
    trace::{DefaultOnResponse, TraceLayer},
};
use tracing::Level;

use crate::{
    config::{Config, CorsConfig},
    error, routes,
    upstream::{REQUEST_ID, Upstream},
};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub upstream: Upstream,
    /// `http.body_limit_bytes`, for the 413 message.
    pub body_limit: usize,
}

/// A gateway whose port is bound, ready to serve.
pub struct App {
    listener: TcpListener,
    router: Router,
    shutdown_grace: Duration,
}

impl App {
    /// Validates `config`, prepares the (lazy) channel to auth-svc and binds `config.listen`.
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        config.validate()?;
        let state = AppState { upstream: Upstream::new(config)?, body_limit: config.http.body_limit_bytes };
        let router = with_middleware(routes::router().with_state(state), config);
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {} (listen)", config.listen))?;
        Ok(Self { listener, router, shutdown_grace: config.shutdown_grace() })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes, then stops accepting and gives in-flight requests the
    /// grace period to finish.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let draining = Arc::new(Notify::new());
        let signal = {
            let draining = draining.clone();
            async move {
                shutdown.await;
                tracing::info!("shutting down: finishing in-flight requests");
                draining.notify_one();
            }
        };
        let server = axum::serve(self.listener, self.router).with_graceful_shutdown(signal).into_future();
        let grace = self.shutdown_grace;
        tokio::select! {
            result = server => result.context("HTTP server failed")?,
            () = async { draining.notified().await; tokio::time::sleep(grace).await } => {
                tracing::warn!(grace_seconds = grace.as_secs(), "grace period over; closing remaining requests");
            }
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// The tower-http stack, outermost first. The request id comes first so every later layer, the
/// log span and the gRPC call see it, and every response (errors and preflights included)
/// carries it back. Errors made by the inner layers get their JSON body from
/// `shape_plain_errors`, which therefore sits outside them.
pub fn with_middleware(router: Router, config: &Config) -> Router {
    let body_limit = config.http.body_limit_bytes;
    let request_id = HeaderName::from_static(REQUEST_ID);
    let stack = ServiceBuilder::new()
        .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
        .layer(PropagateRequestIdLayer::new(request_id))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .layer(cors(&config.cors))
        .layer(middleware::from_fn_with_state(body_limit, error::shape_plain_errors))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, config.request_timeout()))
        .layer(RequestBodyLimitLayer::new(body_limit))
        // The limit above is the one in force; axum's own 2 MB default would silently cap it.
        .layer(DefaultBodyLimit::disable());
    router.layer(stack)
}

/// Method, path (no query string) and request id; never headers, which hold tokens.
fn request_span(request: &Request<Body>) -> tracing::Span {
    let request_id = request.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("");
    tracing::info_span!("http", method = %request.method(), path = %request.uri().path(), request_id)
}

/// A handler panicked: log it, answer a bare 500 (shaped into JSON one layer out).
fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response<Body> {
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    tracing::error!(panic = message, "handler panicked");
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response
}

/// Browsers on the configured origins may call with a bearer token (which makes them send a
/// preflight); no cookies, so no `Allow-Credentials`.
fn cors(config: &CorsConfig) -> CorsLayer {
    let origins = if config.allowed_origins.iter().any(|origin| origin == "*") {
        AllowOrigin::any()
    } else {
        // Already validated as header values by `Config::validate`.
        AllowOrigin::list(config.allowed_origins.iter().filter_map(|origin| HeaderValue::from_str(origin).ok()))
    };
    let request_id = HeaderName::from_static(REQUEST_ID);
    CorsLayer::new()
        .allow_origin(origins)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, request_id.clone()])
        .expose_headers([request_id, header::RETRY_AFTER, header::WWW_AUTHENTICATE])
        .max_age(Duration::from_secs(config.max_age_seconds))
}

#[cfg(test)]
mod tests {
    use axum::{body::to_bytes, routing::get};
    use tower::ServiceExt as _;

    use super::*;

    async fn call(router: Router, path: &str) -> (StatusCode, http::HeaderMap, serde_json::Value) {
        let response = router.oneshot(Request::get(path).body(Body::empty()).unwrap()).await.unwrap();
        let (parts, body) = response.into_parts();
        let bytes = to_bytes(body, 4096).await.unwrap();
        (parts.status, parts.headers, serde_json::from_slice(&bytes).unwrap())
    }

    async fn boom() -> &'static str {
        panic!("secret internal detail")
    }

    #[tokio::test]
    async fn a_panic_becomes_a_generic_500_in_the_dialect_of_its_path() {
        let router = Router::new().route("/user/boom", get(boom)).route("/boom", get(boom));
        let router = with_middleware(router, &Config::default());
        let (status, headers, body) = call(router.clone(), "/user/boom").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body, serde_json::json!({"code": 500, "msg": "internal server error"}));
        assert!(headers.get(REQUEST_ID).is_some());
        let (_, _, body) = call(router, "/boom").await;
        assert_eq!(body, serde_json::json!({"detail": "internal server error"}));
    }

    #[tokio::test]
    async fn a_slow_handler_gets_408() {
        async fn slow() -> &'static str {
            tokio::time::sleep(Duration::from_secs(5)).await;
            "late"
        }
        let mut config = Config::default();
        config.grpc.request_timeout_ms = 10;
        config.http.request_timeout_ms = 50;
        let router = with_middleware(Router::new().route("/slow", get(slow)), &config);
        let (status, _, body) = call(router, "/slow").await;
        assert_eq!(status, StatusCode::REQUEST_TIMEOUT);
        assert_eq!(body, serde_json::json!({"detail": "request timed out"}));
    }

    /// Without `Content-Length` the limit can only trip while the extractor reads the body.
    #[tokio::test]
    async fn a_streamed_oversized_body_is_413_in_the_dialect_of_its_path() {
        let config = Config::default();
        let state = AppState { upstream: Upstream::new(&config).unwrap(), body_limit: config.http.body_limit_bytes };
        let router = with_middleware(routes::router().with_state(state), &config);
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
                serde_json::json!({"detail": "request body too large (limit 65536 bytes)"}),
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

    #[tokio::test]
    async fn unknown_paths_and_methods_answer_in_json() {
        let router = with_middleware(Router::new().route("/user/info", get(|| async { "hi" })), &Config::default());
        let (status, _, body) = call(router.clone(), "/nowhere").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body, serde_json::json!({"detail": "Not Found"}));
        let response = router.oneshot(Request::post("/user/info").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.headers().get(header::ALLOW).unwrap(), "GET,HEAD");
        let bytes = to_bytes(response.into_body(), 4096).await.unwrap();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&bytes).unwrap(),
            serde_json::json!({"code": 405, "msg": "Method Not Allowed"})
        );
    }
}
