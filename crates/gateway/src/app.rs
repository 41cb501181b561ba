//! Assembles and runs the HTTP server: the routes behind the tower-http stack (request id,
//! client address, tracing, CORS, error shaping, panic catching, timeout, body limit), served by
//! service-kit's connection server (axum::serve has no header read timeout, idle timeout nor
//! header size limit), and a graceful shutdown bounded by the configured grace period.

use std::{any::Any, future::Future, net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    Router,
    body::Body,
    extract::{ConnectInfo, DefaultBodyLimit},
    http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, header},
    middleware,
};
use service_kit::http_server::{self, ConnectionInfo, ConnectionLimits, Incoming};
use tokio::net::TcpListener;
use tower::{ServiceBuilder, ServiceExt as _};
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
    client,
    config::{Config, CorsConfig},
    error, routes,
    upstream::{ClientIp, REQUEST_ID, Upstream},
};

/// Largest request head (request line and headers) accepted, over HTTP/1 and HTTP/2 alike; a
/// larger one is answered 431 by hyper before any handler runs. The largest legitimate header is
/// `Authorization` (about 4 KB).
pub const MAX_HEADER_BYTES: u32 = 32 * 1024;

/// Longest `x-request-id` accepted from a client; see [`sanitize_request_id`].
pub const MAX_REQUEST_ID_BYTES: usize = 128;

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
    admin_listener: Option<TcpListener>,
    metrics: Arc<crate::metrics::Metrics>,
    router: Router,
    shutdown_grace: Duration,
    limits: ConnectionLimits,
}

impl App {
    /// Validates `config`, prepares the (lazy) channel to auth-svc and binds `config.listen`.
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        config.validate()?;
        let state = AppState { upstream: Upstream::new(config)?, body_limit: config.http.body_limit_bytes };
        let metrics = Arc::new(crate::metrics::Metrics::default());
        // Outermost, so the status counted is the one the client gets.
        let router = with_middleware(routes::router().with_state(state), config)
            .layer(middleware::from_fn_with_state(metrics.clone(), crate::metrics::record));
        let listener = service_kit::bind(config.listen, "listen").await?;
        let admin_listener = service_kit::bind_admin(config.admin_listen).await?;
        Ok(Self {
            listener,
            admin_listener,
            metrics,
            router,
            shutdown_grace: config.shutdown_grace(),
            limits: connection_limits(config),
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
        let Self { listener, admin_listener, metrics, router, shutdown_grace, limits } = self;
        // The admin port lives as long as this call: its server ends when `admin_stop` drops.
        let (admin_stop, admin_stopped) = tokio::sync::oneshot::channel::<()>();
        if let Some(admin) = admin_listener {
            let stopped = async move {
                let _ = admin_stopped.await;
            };
            tokio::spawn(service_kit::serve_metrics(admin, move || metrics.render(), stopped));
        }
        let _admin_stop = admin_stop;
        // Every request carries its connection's peer (`ConnectInfo<SocketAddr>`), as axum's
        // `into_make_service_with_connect_info` would give it.
        let make_service = |connection: ConnectionInfo| {
            let peer = ConnectInfo(connection.remote_addr);
            router.clone().map_request(move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(peer);
                request
            })
        };
        http_server::serve(listener, make_service, limits, shutdown, shutdown_grace).await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// HTTP/1 and HTTP/2 (cleartext, prior knowledge) with the `http.*` connection limits and the
/// header size limit.
fn connection_limits(config: &Config) -> ConnectionLimits {
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

/// The tower-http stack, outermost first. The request id comes first (a client-sent one only if
/// it is sane) so every later layer, the log span and the gRPC call see it, and every response
/// (errors and preflights included) carries it back. Then the client address, for the log span
/// and for auth-svc. Errors made by the inner layers get their JSON body from
/// `shape_plain_errors`, which therefore sits outside them.
pub fn with_middleware(router: Router, config: &Config) -> Router {
    let body_limit = config.http.body_limit_bytes;
    let request_id = HeaderName::from_static(REQUEST_ID);
    // Validated by `Config::validate` (so never an error here).
    let trusted_proxy_header = config.trusted_proxy_header().unwrap_or_default();
    let stack = ServiceBuilder::new()
        .layer(middleware::map_request(sanitize_request_id))
        .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
        .layer(PropagateRequestIdLayer::new(request_id))
        .layer(middleware::map_request_with_state(trusted_proxy_header, client::resolve_client_ip))
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

/// Middleware: [`sanitize_request_id_headers`] on the request's headers.
async fn sanitize_request_id(mut request: Request<Body>) -> Request<Body> {
    sanitize_request_id_headers(request.headers_mut());
    request
}

/// Keeps a client's `x-request-id` only if it is at most [`MAX_REQUEST_ID_BYTES`] of
/// `[A-Za-z0-9._:-]` (and only the first, if several were sent); otherwise removes it, so the
/// next layer generates a fresh UUID. The id goes into every log line and into auth-svc's
/// metadata, where a huge one makes auth-svc drop the HTTP/2 connection every call shares.
/// Afterwards `headers` hold at most one `x-request-id`, and it is sane.
pub fn sanitize_request_id_headers(headers: &mut HeaderMap) {
    let mut sent = headers.get_all(REQUEST_ID).iter();
    let first = sent.next();
    let keep = sent.next().is_none() && first.is_some_and(is_sane_request_id);
    if !keep && let Some(first) = first {
        tracing::debug!(bytes = first.len(), "replacing an unusable x-request-id");
        let first = first.clone();
        headers.remove(REQUEST_ID);
        if is_sane_request_id(&first) {
            headers.insert(REQUEST_ID, first);
        }
    }
}

/// 1 to [`MAX_REQUEST_ID_BYTES`] bytes of `[A-Za-z0-9._:-]`.
pub fn is_sane_request_id(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    (1..=MAX_REQUEST_ID_BYTES).contains(&bytes.len())
        && bytes.iter().all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// Method, path (no query string), request id and client address; never headers, which hold
/// tokens.
fn request_span(request: &Request<Body>) -> tracing::Span {
    let request_id = request.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("");
    let client = request.extensions().get::<ClientIp>().map(|&ClientIp(ip)| tracing::field::display(ip));
    tracing::info_span!("http", method = %request.method(), path = %request.uri().path(), request_id, client)
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

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config {
            cases: 128, failure_persistence: None, ..proptest::test_runner::Config::default()
        })]

        /// Whatever ids a client sends (any bytes a header may hold, any number of them), at
        /// most one remains, it is sane, and it is the client's first if that one was sane.
        #[test]
        fn sanitize_leaves_at_most_one_sane_request_id(
            sent in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..200), 0..4),
        ) {
            let mut headers = HeaderMap::new();
            let sent: Vec<HeaderValue> = sent.iter().filter_map(|bytes| HeaderValue::from_bytes(bytes).ok()).collect();
            for value in &sent {
                headers.append(REQUEST_ID, value.clone());
            }
            sanitize_request_id_headers(&mut headers);
            let left: Vec<_> = headers.get_all(REQUEST_ID).iter().collect();
            proptest::prop_assert!(left.len() <= 1);
            match sent.first().filter(|first| is_sane_request_id(first)) {
                Some(first) => proptest::prop_assert_eq!(left, vec![first]),
                None => proptest::prop_assert!(left.is_empty()),
            }
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
