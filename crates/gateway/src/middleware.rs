//! The tower-http stack every request passes through, outermost first: request id (a client's
//! only if it is sane), client address, tracing, CORS, error shaping, panic catching, timeout
//! and body limit.

use std::time::Duration;

use axum::{
    Router,
    body::Body,
    extract::{DefaultBodyLimit, MatchedPath},
    http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, header},
    middleware,
};
use service_kit::telemetry;
use tower::ServiceBuilder;
use tower_http::{
    catch_panic::CatchPanicLayer,
    cors::{AllowOrigin, CorsLayer},
    limit::RequestBodyLimitLayer,
    request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer},
    timeout::TimeoutLayer,
    trace::{self, DefaultOnResponse, TraceLayer},
};
use tracing::Level;

use crate::{
    config::{Config, CorsConfig},
    error,
    extract::{ClientIp, resolve_client_ip},
    upstream::REQUEST_ID,
};

/// Longest `x-request-id` accepted from a client; see [`sanitize_request_id_headers`].
pub const MAX_REQUEST_ID_BYTES: usize = 128;

/// The tower-http stack, outermost first. The request id comes first (a client-sent one only if
/// it is sane) so every later layer, the log span and the gRPC call see it, and every response
/// (errors and preflights included) carries it back. Then the client address, for the log span
/// and for auth-svc. Errors made by the inner layers get their JSON body from
/// `error::shape_plain_errors`, which therefore sits outside them.
pub fn with_middleware(router: Router, config: &Config) -> Router {
    let body_limit = config.http.body_limit_bytes;
    let request_id = HeaderName::from_static(REQUEST_ID);
    // Validated by `Config::validate` (so never an error here).
    let trusted_proxy_header = config.trusted_proxy_header().unwrap_or_default();
    let stack = ServiceBuilder::new()
        .layer(middleware::map_request(sanitize_request_id))
        .layer(SetRequestIdLayer::new(request_id.clone(), RandomRequestId))
        .layer(PropagateRequestIdLayer::new(request_id))
        .layer(middleware::map_request_with_state(trusted_proxy_header, resolve_client_ip))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_response(OnResponse(DefaultOnResponse::new().level(Level::INFO))),
        )
        .layer(cors(&config.cors))
        .layer(middleware::from_fn_with_state(body_limit, error::shape_plain_errors))
        .layer(CatchPanicLayer::custom(error::caught_panic))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, config.request_timeout()))
        .layer(RequestBodyLimitLayer::new(body_limit))
        // The limit above is the one in force; axum's own 2 MB default would silently cap it.
        .layer(DefaultBodyLimit::disable());
    router.layer(stack)
}

/// Fresh request ids: random (version 4) UUIDs from the thread's CSPRNG. tower-http's
/// `MakeRequestUuid` asks the kernel for each one (a `getrandom` call per request, which showed
/// in the gateway's profile); the ids are the same kind.
#[derive(Clone, Copy)]
struct RandomRequestId;

impl MakeRequestId for RandomRequestId {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        let id = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
        let mut text = uuid::Uuid::encode_buffer();
        HeaderValue::from_str(id.hyphenated().encode_lower(&mut text)).ok().map(RequestId::new)
    }
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
/// tokens. With tracing on, the span continues the caller's trace (`traceparent`), is named
/// `METHOD /route` and carries the OpenTelemetry HTTP attributes (not log fields).
fn request_span(request: &Request<Body>) -> tracing::Span {
    let request_id = request.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("");
    let client = request.extensions().get::<ClientIp>().map(|&ClientIp(ip)| tracing::field::display(ip));
    // The route template (`/user/sessions/{id}`), never the path with its ids; none: unrouted.
    let route = request.extensions().get::<MatchedPath>().map(MatchedPath::as_str);
    let name = format!("{} {}", request.method(), route.unwrap_or("unrouted"));
    let span = tracing::info_span!(
        "http",
        method = %request.method(),
        path = %request.uri().path(),
        request_id,
        client,
        otel.name = name,
        otel.kind = "server",
    );
    telemetry::set_parent_from(&span, request.headers());
    telemetry::set_attribute(&span, "http.request.method", request.method().as_str().to_owned());
    if let Some(route) = route {
        telemetry::set_attribute(&span, "http.route", route.to_owned());
    }
    span
}

/// The access-log line, and the status code on the request's span.
#[derive(Clone)]
struct OnResponse(DefaultOnResponse);

impl<B> trace::OnResponse<B> for OnResponse {
    fn on_response(self, response: &http::Response<B>, latency: Duration, span: &tracing::Span) {
        let status = response.status();
        telemetry::set_attribute(span, "http.response.status_code", i64::from(status.as_u16()));
        if status.is_server_error() {
            telemetry::mark_failed(span);
        }
        self.0.on_response(response, latency, span);
    }
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
        // DELETE for `/user/sessions/{id}`, `/user`, `/user/mfa/totp` and `/admin/users/{id}`.
        .allow_methods([Method::GET, Method::POST, Method::DELETE])
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

    #[test]
    fn fresh_request_ids_are_distinct_sane_version_4_uuids() {
        let request = Request::new(());
        let ids: std::collections::HashSet<String> = (0..1000)
            .map(|_| {
                let id = RandomRequestId.make_request_id(&request).expect("an id");
                assert!(is_sane_request_id(id.header_value()));
                let text = id.header_value().to_str().unwrap().to_owned();
                assert_eq!(uuid::Uuid::parse_str(&text).unwrap().get_version_num(), 4, "{text}");
                text
            })
            .collect();
        assert_eq!(ids.len(), 1000);
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
