//! The gateway against a scripted `UserService` that records the metadata it receives: what
//! travels to auth-svc, and the gRPC statuses a healthy auth-svc does not produce on demand
//! (RESOURCE_EXHAUSTED, INTERNAL, a stalled call, NOT_SERVING).

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use auth_api::user::v1::{
    GetUserInfoRequest, LoginRequest, LoginResponse, LogoutRequest, LogoutResponse, RefreshRequest, RegisterRequest,
    RegisterResponse, UserInfo,
    user_service_server::{UserService, UserServiceServer},
};
use reqwest::StatusCode;
use serde_json::json;
use tokio::{net::TcpListener, sync::oneshot};
use tonic::{
    Code, Request, Response, Status,
    metadata::{MetadataMap, MetadataValue},
    transport::{Server, server::TcpIncoming},
};
use tonic_health::ServingStatus;

use crate::support::{Gateway, client, gateway_config, header, read};

#[derive(Clone, Copy)]
enum Behavior {
    Answer,
    Fail { code: Code, message: &'static str, retry_after: Option<&'static str> },
    Stall,
}

#[derive(Clone)]
struct ScriptedUsers {
    behavior: Behavior,
    seen: Arc<Mutex<Vec<MetadataMap>>>,
}

impl ScriptedUsers {
    async fn answer<T, R>(&self, request: Request<R>, value: T) -> Result<Response<T>, Status> {
        self.seen.lock().unwrap().push(request.metadata().clone());
        match self.behavior {
            Behavior::Answer => Ok(Response::new(value)),
            Behavior::Fail { code, message, retry_after } => {
                let mut status = Status::new(code, message);
                if let Some(seconds) = retry_after {
                    status.metadata_mut().insert("retry-after", MetadataValue::from_static(seconds));
                }
                Err(status)
            }
            Behavior::Stall => {
                tokio::time::sleep(Duration::from_secs(30)).await;
                Ok(Response::new(value))
            }
        }
    }
}

fn pair() -> LoginResponse {
    LoginResponse { access_token: "a.b.c".into(), refresh_token: "d.e.f".into(), expires_in: 60 }
}

#[tonic::async_trait]
impl UserService for ScriptedUsers {
    async fn register(&self, request: Request<RegisterRequest>) -> Result<Response<RegisterResponse>, Status> {
        self.answer(request, RegisterResponse { id: 7, username: "fake".into(), role: "admin".into() }).await
    }

    async fn login(&self, request: Request<LoginRequest>) -> Result<Response<LoginResponse>, Status> {
        self.answer(request, pair()).await
    }

    async fn refresh(&self, request: Request<RefreshRequest>) -> Result<Response<LoginResponse>, Status> {
        self.answer(request, pair()).await
    }

    async fn get_user_info(&self, request: Request<GetUserInfoRequest>) -> Result<Response<UserInfo>, Status> {
        self.answer(request, UserInfo { id: 7, username: "fake".into(), role: "admin".into() }).await
    }

    async fn logout(&self, request: Request<LogoutRequest>) -> Result<Response<LogoutResponse>, Status> {
        self.answer(request, LogoutResponse {}).await
    }
}

struct Fixture {
    base: String,
    seen: Arc<Mutex<Vec<MetadataMap>>>,
    _gateway: Gateway,
    _upstream: oneshot::Sender<()>,
}

impl Fixture {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn last_metadata(&self) -> MetadataMap {
        self.seen.lock().unwrap().last().cloned().expect("auth-svc was called")
    }
}

async fn start(behavior: Behavior, health: ServingStatus, grpc_timeout_ms: u64) -> Fixture {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let users = ScriptedUsers { behavior, seen: seen.clone() };
    let (reporter, health_service) = tonic_health::server::health_reporter();
    reporter.set_service_status("user.v1.UserService", health).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(
        Server::builder()
            .add_service(health_service)
            .add_service(UserServiceServer::new(users))
            .serve_with_incoming_shutdown(TcpIncoming::from(listener), async move {
                let _ = stopped.await;
            }),
    );
    let mut config = gateway_config(addr);
    config.grpc.request_timeout_ms = grpc_timeout_ms;
    let gateway = Gateway::start(&config).await;
    Fixture { base: format!("http://{}", gateway.addr), seen, _gateway: gateway, _upstream: stop }
}

#[tokio::test]
async fn authorization_and_request_id_travel_as_metadata() {
    let fixture = start(Behavior::Answer, ServingStatus::Serving, 5_000).await;
    let client = client();

    let response = client
        .get(fixture.url("/user/info"))
        .header("authorization", "Bearer abc.def.ghi")
        .header("x-request-id", "trace-42")
        .send()
        .await
        .unwrap();
    let (status, _, body) = read(response).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"id": 7, "username": "fake", "role": "admin"}));
    let metadata = fixture.last_metadata();
    assert_eq!(metadata.get("authorization").unwrap(), "Bearer abc.def.ghi");
    assert_eq!(metadata.get("x-request-id").unwrap(), "trace-42");

    // Generated ids travel too: the one auth-svc sees is the one the caller gets back.
    let response = client.get(fixture.url("/protected")).send().await.unwrap();
    let echoed = header(response.headers(), "x-request-id").to_owned();
    let metadata = fixture.last_metadata();
    assert_eq!(metadata.get("x-request-id").unwrap(), echoed.as_str());
    assert!(metadata.get("authorization").is_none());
}

#[tokio::test]
async fn resource_exhausted_is_429_with_retry_after() {
    let behavior = Behavior::Fail { code: Code::ResourceExhausted, message: "slow down", retry_after: Some("17") };
    let fixture = start(behavior, ServingStatus::Serving, 5_000).await;
    let client = client();

    let response =
        client.post(fixture.url("/user/login")).json(&json!({"username": "a", "password": "b"})).send().await.unwrap();
    let (status, headers, body) = read(response).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&headers, "retry-after"), "17");
    assert_eq!(body, json!({"code": 429, "msg": "too many attempts, retry later"}));

    let response =
        client.post(fixture.url("/token")).form(&[("username", "a"), ("password", "b")]).send().await.unwrap();
    let (status, headers, body) = read(response).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&headers, "retry-after"), "17");
    assert_eq!(body, json!({"detail": "too many attempts, retry later"}));
}

#[tokio::test]
async fn internal_errors_carry_no_detail() {
    let behavior =
        Behavior::Fail { code: Code::Internal, message: "pool timed out at db.internal:5432", retry_after: None };
    let fixture = start(behavior, ServingStatus::Serving, 5_000).await;
    let client = client();
    let response = client.post(fixture.url("/signup")).json(&json!({"username": "a", "password": "b"})).send().await;
    let (status, _, body) = read(response.unwrap()).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body, json!({"detail": "internal server error"}));

    let response = client.post(fixture.url("/user/logout")).send().await.unwrap();
    let (status, _, body) = read(response).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body, json!({"code": 500, "msg": "internal server error"}));
}

#[tokio::test]
async fn a_stalled_call_is_504() {
    let fixture = start(Behavior::Stall, ServingStatus::Serving, 200).await;
    let client = client();
    let response = client.get(fixture.url("/user/info")).bearer_auth("x.y.z").send().await.unwrap();
    let (status, _, body) = read(response).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(body, json!({"code": 504, "msg": "auth service did not answer in time"}));
}

#[tokio::test]
async fn readyz_is_503_while_auth_svc_is_not_serving() {
    let fixture = start(Behavior::Answer, ServingStatus::NotServing, 5_000).await;
    let (status, _, body) = read(client().get(fixture.url("/readyz")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body, json!({"status": "unavailable"}));
}
