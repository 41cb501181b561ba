//! The layer in front of a real axum `Router` and a real tonic `Server`.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use axum::{Extension, Router};
use tower::ServiceExt as _;

use super::support::*;
use crate::{Claims, Verifier};

/// A router whose one handler answers with the verified subject, and the count of its calls.
fn app(verifier: &Verifier) -> (Router, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let router = Router::new()
        .route(
            "/me",
            get(move |Extension(claims): Extension<Claims>| async move {
                counter.fetch_add(1, Ordering::SeqCst);
                format!("{} {}", claims.sub(), claims.role())
            }),
        )
        .layer(verifier.layer());
    (router, calls)
}

fn get_me(authorization: &[&str]) -> Request<Body> {
    let mut request = Request::get("/me");
    for value in authorization {
        request = request.header("authorization", *value);
    }
    request.body(Body::empty()).unwrap()
}

pub(super) async fn body_text(response: axum::response::Response) -> String {
    let bytes = axum::body::to_bytes(response.into_body(), 1024).await.unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

pub(super) fn response_header<'a>(response: &'a axum::response::Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).map(|value| value.to_str().unwrap())
}

#[tokio::test]
async fn axum_handlers_get_the_claims_as_an_extension() {
    let key = ed_a();
    let (_server, verifier) = verifier_for(&[&key]).await;
    let (app, calls) = app(&verifier);
    let token = key.sign(&access_claims());

    for scheme in ["Bearer", "bearer", "BEARER"] {
        let response = app.clone().oneshot(get_me(&[&format!("{scheme} {token}")])).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "scheme {scheme}");
        assert_eq!(body_text(response).await, "42 user");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn axum_requests_without_a_valid_token_get_401_and_never_reach_the_handler() {
    let key = ed_a();
    let (_server, verifier) = verifier_for(&[&key]).await;
    let (app, calls) = app(&verifier);
    let token = key.sign(&access_claims());
    let expired = key.sign(&claims_with(serde_json::json!({"exp": now() - 1})));
    let oversized = format!("Bearer {}", "a".repeat(4097));

    let trailing_space = format!("Bearer {token} ");
    let cases: [(&[&str], &str); 10] = [
        (&[], "Bearer"),
        (&["Basic YWxpY2U6c2VjcmV0"], "Bearer"),
        (&["Bearer"], r#"Bearer error="invalid_token""#),
        (&["Bearer "], r#"Bearer error="invalid_token""#),
        (&["Bearer not-a-jwt"], r#"Bearer error="invalid_token""#),
        (&[&format!("Bearer {expired}")], r#"Bearer error="invalid_token""#),
        (&[&format!("Bearer {token}"), &format!("Bearer {token}")], r#"Bearer error="invalid_token""#),
        (&[&oversized], r#"Bearer error="invalid_token""#),
        // RFC 6750 section 2.1: a b64token and nothing after it (auth-svc's rule too).
        (&[&trailing_space], r#"Bearer error="invalid_token""#),
        (&["Bearer a,b"], r#"Bearer error="invalid_token""#),
    ];
    for (authorization, challenge) in cases {
        let response = app.clone().oneshot(get_me(authorization)).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{authorization:?}");
        assert_eq!(response_header(&response, "www-authenticate"), Some(challenge), "{authorization:?}");
        assert_eq!(body_text(response).await, "");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn axum_requests_get_503_when_no_keys_can_be_had() {
    let verifier = Verifier::builder(dead_url().await).build().unwrap();
    let (app, calls) = app(&verifier);
    let token = ed_a().sign(&access_claims());

    let response = app.oneshot(get_me(&[&format!("Bearer {token}")])).await.unwrap();

    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response_header(&response, "www-authenticate"), None);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

fn grpc_request(authorization: Option<&str>) -> Request<Body> {
    let mut request = Request::post("/user.v1.UserService/GetUserInfo")
        .header("content-type", "application/grpc+proto")
        .header("te", "trailers");
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    request.body(Body::empty()).unwrap()
}

#[tokio::test]
async fn grpc_requests_without_a_token_get_unauthenticated_trailers_only() {
    let (_server, verifier) = verifier_for(&[&ed_a()]).await;
    let (app, calls) = app(&verifier);

    let cases = [(None, "missing bearer token"), (Some("Bearer junk"), "malformed token")];
    for (authorization, message) in cases {
        let response = app.clone().oneshot(grpc_request(authorization)).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response_header(&response, "content-type"), Some("application/grpc"));
        assert_eq!(response_header(&response, "grpc-status"), Some("16"));
        assert_eq!(response_header(&response, "grpc-message"), Some(message));
        assert_eq!(response_header(&response, "www-authenticate"), None);
        assert_eq!(body_text(response).await, "");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn grpc_requests_get_unavailable_when_no_keys_can_be_had() {
    let verifier = Verifier::builder(dead_url().await).build().unwrap();
    let (app, calls) = app(&verifier);
    let token = ed_a().sign(&access_claims());

    let response = app.oneshot(grpc_request(Some(&format!("Bearer {token}")))).await.unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response_header(&response, "grpc-status"), Some("14"));
    assert_eq!(response_header(&response, "grpc-message"), Some("signing keys are unavailable"));
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn an_unknown_kid_while_the_gateway_fails_gets_503_and_unavailable_not_401() {
    let key = ed_a();
    let (server, verifier) = verifier_for(&[&key]).await;
    verifier.prefetch().await.unwrap();
    server.set_failing(true);
    let (app, calls) = app(&verifier);
    let bearer = format!("Bearer {}", p256_b().sign(&access_claims()));

    let response = app.clone().oneshot(get_me(&[&bearer])).await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response_header(&response, "www-authenticate"), None);
    let response = app.oneshot(grpc_request(Some(&bearer))).await.unwrap();
    assert_eq!(response_header(&response, "grpc-status"), Some("14"));
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

/// A hand-written unary gRPC service (`/test.WhoAmI/Call`, empty messages) that answers with
/// the verified subject in the `x-sub` response metadata.
#[derive(Clone)]
pub(super) struct WhoAmI;

impl tonic::server::NamedService for WhoAmI {
    const NAME: &'static str = "test.WhoAmI";
}

impl tower::Service<http::Request<tonic::body::Body>> for WhoAmI {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = std::pin::Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let method = tower::service_fn(|request: tonic::Request<()>| async move {
            let claims = request.extensions().get::<Claims>().cloned();
            let claims = claims.ok_or_else(|| tonic::Status::internal("no claims"))?;
            let mut response = tonic::Response::new(());
            response.metadata_mut().insert("x-sub", claims.sub().parse().unwrap());
            Ok::<_, tonic::Status>(response)
        });
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::<(), ()>::default());
            Ok(grpc.unary(method, request).await)
        })
    }
}

/// A tonic server on 127.0.0.1:0, stopped when the returned sender is used or dropped.
pub(super) struct GrpcServer {
    channel: tonic::transport::Channel,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
}

type StopSignal = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

impl GrpcServer {
    pub(super) async fn start<F>(serve: impl FnOnce(tonic::transport::server::TcpIncoming, StopSignal) -> F) -> Self
    where
        F: Future<Output = Result<(), tonic::transport::Error>> + Send + 'static,
    {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let signal: StopSignal = Box::pin(async {
            let _ = stopped.await;
        });
        let task = tokio::spawn(serve(tonic::transport::server::TcpIncoming::from(listener), signal));
        let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{address}")).unwrap();
        Self { channel: endpoint.connect().await.unwrap(), stop, task }
    }

    /// Calls `/test.WhoAmI/Call` and returns the `x-sub` it answers.
    pub(super) async fn who_am_i(&self, authorization: Option<String>) -> Result<String, tonic::Status> {
        let mut client = tonic::client::Grpc::new(self.channel.clone());
        let mut request = tonic::Request::new(());
        if let Some(value) = authorization {
            request.metadata_mut().insert("authorization", value.parse().unwrap());
        }
        client.ready().await.unwrap();
        let path = http::uri::PathAndQuery::from_static("/test.WhoAmI/Call");
        let response = client.unary::<(), (), _>(request, path, tonic_prost::ProstCodec::default()).await?;
        Ok(response.metadata().get("x-sub").unwrap().to_str().unwrap().to_owned())
    }

    pub(super) async fn stop(self) {
        self.stop.send(()).unwrap();
        self.task.await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn tonic_methods_get_the_claims_and_refusals_are_unauthenticated() {
    let key = p256_a();
    let (_jwks_server, verifier) = verifier_for(&[&key]).await;
    let server = GrpcServer::start(|incoming, stop| {
        tonic::transport::Server::builder()
            .layer(verifier.layer())
            .add_service(WhoAmI)
            .serve_with_incoming_shutdown(incoming, stop)
    })
    .await;

    let sub = server.who_am_i(Some(format!("Bearer {}", key.sign(&access_claims())))).await;
    assert_eq!(sub.unwrap(), "42");

    let missing = server.who_am_i(None).await.unwrap_err();
    assert_eq!((missing.code(), missing.message()), (tonic::Code::Unauthenticated, "missing bearer token"));
    let mut refresh_header = header(key.algorithm, Some(key.kid));
    refresh_header.typ = Some("rt+jwt".to_owned());
    let refresh_typ = sign(&refresh_header, &access_claims(), &key.encoding);
    let refused = server.who_am_i(Some(format!("Bearer {refresh_typ}"))).await.unwrap_err();
    assert_eq!((refused.code(), refused.message()), (tonic::Code::Unauthenticated, "not an access token"));

    server.stop().await;
}

/// Needs `NamedService` for `BearerService`, the `tonic` feature's.
#[cfg(feature = "tonic")]
#[tokio::test]
async fn one_tonic_service_can_be_guarded_while_health_stays_open() {
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};
    use tower::Layer as _;

    let key = ed_a();
    let (_jwks_server, verifier) = verifier_for(&[&key]).await;
    let (_reporter, health) = tonic_health::server::health_reporter();
    let server = GrpcServer::start(|incoming, stop| {
        tonic::transport::Server::builder()
            .add_service(health)
            .add_service(verifier.layer().layer(WhoAmI))
            .serve_with_incoming_shutdown(incoming, stop)
    })
    .await;

    let check = HealthClient::new(server.channel.clone()).check(HealthCheckRequest { service: String::new() }).await;
    assert_eq!(check.unwrap().into_inner().status(), ServingStatus::Serving);
    let missing = server.who_am_i(None).await.unwrap_err();
    assert_eq!(missing.code(), tonic::Code::Unauthenticated);
    assert_eq!(server.who_am_i(Some(format!("Bearer {}", key.sign(&access_claims())))).await.unwrap(), "42");

    server.stop().await;
}
