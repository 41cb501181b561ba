//! The gateway against a scripted `UserService` that records the metadata it receives: what
//! travels to auth-svc, and the gRPC statuses a healthy auth-svc does not produce on demand
//! (RESOURCE_EXHAUSTED, INTERNAL, a stalled call, NOT_SERVING). Other modules use the scripted
//! service too ([`ScriptedUpstream`], [`start`]): the shutdown test holds its calls at a gate, the
//! decoding properties need an auth-svc that always answers, the JWKS tests a key set of their
//! choosing ([`ScriptedUpstream::set_jwks`]).

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use auth_api::user::v1::{
    GetJwksRequest, GetJwksResponse, GetUserInfoRequest, Jwk, LoginRequest, LoginResponse, LogoutRequest,
    LogoutResponse, RefreshRequest, RegisterRequest, RegisterResponse, SetUserRoleRequest, UserInfo,
    ValidateTokenRequest, ValidateTokenResponse,
    user_service_server::{UserService, UserServiceServer},
};
use reqwest::StatusCode;
use serde_json::json;
use tokio::{
    net::TcpListener,
    sync::{oneshot, watch},
};
use tonic::{
    Code, Request, Response, Status,
    metadata::{MetadataMap, MetadataValue},
    transport::{Server, server::TcpIncoming},
};
use tonic_health::ServingStatus;

use crate::support::{Gateway, client, gateway_config, header, read};

#[derive(Clone, Copy)]
pub enum Behavior {
    Answer,
    Fail {
        code: Code,
        message: &'static str,
        retry_after: Option<&'static str>,
    },
    Stall,
    /// Answers once [`ScriptedUpstream::open_gate`] is called (at once after that).
    Gated,
}

#[derive(Clone)]
struct ScriptedUsers {
    behavior: Behavior,
    seen: Arc<Mutex<Vec<MetadataMap>>>,
    gate: watch::Receiver<bool>,
    /// What GetJwks answers (when `behavior` answers).
    jwks: Arc<Mutex<GetJwksResponse>>,
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
            Behavior::Gated => {
                let mut gate = self.gate.clone();
                gate.wait_for(|open| *open).await.map_err(|_| Status::cancelled("gate dropped"))?;
                Ok(Response::new(value))
            }
        }
    }
}

/// The token pair every scripted Login and Refresh answers.
pub fn pair() -> LoginResponse {
    LoginResponse { access_token: "a.b.c".into(), refresh_token: "d.e.f".into(), expires_in: 60 }
}

/// The key set GetJwks answers until [`ScriptedUpstream::set_jwks`]: an Ed25519 key (no `y`) and
/// a P-256 key (RFC 8037's and RFC 7515's example keys), cacheable for 300 seconds.
pub fn sample_jwks() -> GetJwksResponse {
    let okp = Jwk {
        kty: "OKP".into(),
        crv: "Ed25519".into(),
        x: "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo".into(),
        y: String::new(),
        kid: "ed-1".into(),
        alg: "EdDSA".into(),
        r#use: "sig".into(),
    };
    let ec = Jwk {
        kty: "EC".into(),
        crv: "P-256".into(),
        x: "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU".into(),
        y: "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0".into(),
        kid: "ec-1".into(),
        alg: "ES256".into(),
        r#use: "sig".into(),
    };
    GetJwksResponse { keys: vec![okp, ec], max_age_seconds: 300 }
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

    /// As auth-svc's interceptor: no `authorization` metadata is UNAUTHENTICATED before the
    /// behaviour applies. Answers the account named, with the role asked for.
    async fn set_user_role(&self, request: Request<SetUserRoleRequest>) -> Result<Response<UserInfo>, Status> {
        if request.metadata().get("authorization").is_none() {
            self.seen.lock().unwrap().push(request.metadata().clone());
            return Err(Status::unauthenticated("missing authorization: Bearer token"));
        }
        let SetUserRoleRequest { username, role } = request.get_ref().clone();
        self.answer(request, UserInfo { id: 7, username, role }).await
    }

    async fn validate_token(
        &self,
        request: Request<ValidateTokenRequest>,
    ) -> Result<Response<ValidateTokenResponse>, Status> {
        self.answer(request, ValidateTokenResponse { active: false, claims: None }).await
    }

    async fn get_jwks(&self, request: Request<GetJwksRequest>) -> Result<Response<GetJwksResponse>, Status> {
        let jwks = self.jwks.lock().unwrap().clone();
        self.answer(request, jwks).await
    }
}

/// A scripted auth-svc on an ephemeral loopback port; stops when dropped.
pub struct ScriptedUpstream {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<MetadataMap>>>,
    jwks: Arc<Mutex<GetJwksResponse>>,
    gate: watch::Sender<bool>,
    _stop: oneshot::Sender<()>,
}

impl ScriptedUpstream {
    /// Starts the service (on `runtime` if given, else the caller's runtime).
    pub async fn start(behavior: Behavior, health: ServingStatus, runtime: Option<&tokio::runtime::Runtime>) -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (gate, gate_rx) = watch::channel(false);
        let jwks = Arc::new(Mutex::new(sample_jwks()));
        let users = ScriptedUsers { behavior, seen: seen.clone(), gate: gate_rx, jwks: jwks.clone() };
        let (reporter, health_service) = tonic_health::server::health_reporter();
        reporter.set_service_status("user.v1.UserService", health).await;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        // Sockets belong to the runtime that registers them: on `runtime`, shutting it down closes
        // every connection at once, as a crashed process would.
        let listener = {
            let _entered = runtime.map(tokio::runtime::Runtime::enter);
            TcpListener::from_std(listener).unwrap()
        };
        let server = Server::builder()
            .add_service(health_service)
            .add_service(UserServiceServer::new(users))
            .serve_with_incoming_shutdown(TcpIncoming::from(listener), async move {
                let _ = stopped.await;
            });
        match runtime {
            Some(runtime) => drop(runtime.spawn(server)),
            None => drop(tokio::spawn(server)),
        }
        Self { addr, seen, jwks, gate, _stop: stop }
    }

    /// Calls received so far (answered or not).
    pub fn calls(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// Lets every held and future [`Behavior::Gated`] call answer.
    pub fn open_gate(&self) {
        self.gate.send_replace(true);
    }

    /// What GetJwks answers from now on.
    pub fn set_jwks(&self, jwks: GetJwksResponse) {
        *self.jwks.lock().unwrap() = jwks;
    }
}

/// A scripted auth-svc and a gateway in front of it.
pub struct Fixture {
    pub base: String,
    pub upstream: ScriptedUpstream,
    _gateway: Gateway,
}

impl Fixture {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The metadata of the last call auth-svc received.
    pub fn last_metadata(&self) -> MetadataMap {
        self.upstream.seen.lock().unwrap().last().cloned().expect("auth-svc was called")
    }

    pub fn calls(&self) -> usize {
        self.upstream.calls()
    }
}

pub async fn start(behavior: Behavior, health: ServingStatus, grpc_timeout_ms: u64) -> Fixture {
    start_with(behavior, health, None, |config| config.grpc.request_timeout_ms = grpc_timeout_ms).await
}

/// The scripted auth-svc (on `runtime` if given, else the test's own) and a gateway in front of
/// it, configured by `adjust`.
async fn start_with(
    behavior: Behavior,
    health: ServingStatus,
    runtime: Option<&tokio::runtime::Runtime>,
    adjust: impl FnOnce(&mut gateway::Config),
) -> Fixture {
    let upstream = ScriptedUpstream::start(behavior, health, runtime).await;
    let mut config = gateway_config(upstream.addr);
    adjust(&mut config);
    let gateway = Gateway::start(&config).await;
    Fixture { base: format!("http://{}", gateway.addr), upstream, _gateway: gateway }
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

/// A throttle or a full hashing queue (RESOURCE_EXHAUSTED with `retry-after`) on each route
/// that registers or logs in: 429 with auth-svc's `Retry-After`, in the route's dialect.
#[tokio::test]
async fn resource_exhausted_is_429_with_retry_after() {
    let behavior = Behavior::Fail { code: Code::ResourceExhausted, message: "slow down", retry_after: Some("17") };
    let fixture = start(behavior, ServingStatus::Serving, 5_000).await;
    let client = client();
    let credentials = json!({"username": "a", "password": "b"});
    // auth-svc's own words (a throttle and a busy server read differently).
    let gozero = json!({"code": 429, "msg": "slow down"});
    let fastapi = json!({"detail": "slow down"});
    for (path, expected) in
        [("/user/register", &gozero), ("/user/login", &gozero), ("/signup", &fastapi), ("/token", &fastapi)]
    {
        let request = if path == "/token" {
            client.post(fixture.url(path)).form(&[("username", "a"), ("password", "b")])
        } else {
            client.post(fixture.url(path)).json(&credentials)
        };
        let (status, headers, body) = read(request.send().await.unwrap()).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{path}");
        assert_eq!(header(&headers, "retry-after"), "17", "{path}");
        assert_eq!(&body, expected, "{path}");
    }
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

#[tokio::test]
async fn resource_exhausted_without_a_usable_retry_after_still_says_when() {
    for retry_after in [None, Some("soon")] {
        let behavior = Behavior::Fail { code: Code::ResourceExhausted, message: "slow down", retry_after };
        let fixture = start(behavior, ServingStatus::Serving, 5_000).await;
        let response = client()
            .post(fixture.url("/user/login"))
            .json(&json!({"username": "a", "password": "b"}))
            .send()
            .await
            .unwrap();
        let (status, headers, body) = read(response).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{retry_after:?}");
        assert_eq!(header(&headers, "retry-after"), "1", "{retry_after:?}");
        assert_eq!(body, json!({"code": 429, "msg": "slow down"}));
    }
}

/// auth-svc dies while a call is in flight (its runtime, and with it every socket, is dropped):
/// tonic reports a transport failure, which is an outage (503), not a gateway bug (500).
#[tokio::test]
async fn auth_svc_dying_mid_call_is_503() {
    for (path, expected) in [
        ("/user/login", json!({"code": 503, "msg": "auth service unavailable, retry later"})),
        ("/token", json!({"detail": "auth service unavailable, retry later"})),
    ] {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let fixture = start_with(Behavior::Stall, ServingStatus::Serving, Some(&runtime), |_| {}).await;
        let request = if path == "/token" {
            client().post(fixture.url(path)).form(&[("username", "a"), ("password", "b")])
        } else {
            client().post(fixture.url(path)).json(&json!({"username": "a", "password": "b"}))
        };
        let call = tokio::spawn(request.send());
        let started = std::time::Instant::now();
        while fixture.calls() == 0 {
            assert!(started.elapsed() < Duration::from_secs(5), "the call never reached auth-svc");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        runtime.shutdown_background();
        let (status, _, body) = read(call.await.unwrap().unwrap()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{path}: {body}");
        assert_eq!(body, expected, "{path}");
    }
}

#[tokio::test]
async fn authorization_travels_only_to_the_routes_that_use_it() {
    let fixture = start(Behavior::Answer, ServingStatus::Serving, 5_000).await;
    let client = client();
    let credentials = json!({"username": "a", "password": "b"});
    for path in ["/user/register", "/user/login", "/signup"] {
        let response = client.post(fixture.url(path)).bearer_auth("a.b.c").json(&credentials).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert!(fixture.last_metadata().get("authorization").is_none(), "{path}");
    }
    let response = client
        .post(fixture.url("/user/refresh"))
        .bearer_auth("a.b.c")
        .json(&json!({"refreshToken": "d.e.f"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(fixture.last_metadata().get("authorization").is_none(), "/user/refresh");
    let response =
        client.post(fixture.url("/token")).bearer_auth("a.b.c").form(&[("username", "a"), ("password", "b")]);
    assert_eq!(response.send().await.unwrap().status(), StatusCode::OK);
    assert!(fixture.last_metadata().get("authorization").is_none(), "/token");

    for (method, path) in [("GET", "/user/info"), ("POST", "/user/logout"), ("GET", "/protected")] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let response = client.request(method, fixture.url(path)).bearer_auth("a.b.c").send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(fixture.last_metadata().get("authorization").unwrap(), "Bearer a.b.c", "{path}");
    }
}

/// auth-svc refuses tokens over 4096 bytes with an HTTP/2 431, which tonic reports as a 500;
/// the gateway refuses them itself, as the 401 of a bad token, without calling auth-svc.
#[tokio::test]
async fn an_oversized_authorization_is_401_without_calling_auth_svc() {
    let fixture = start(Behavior::Answer, ServingStatus::Serving, 5_000).await;
    let client = client();
    let long_token = "a".repeat(20 * 1024);
    for (path, expected) in [
        ("/protected", json!({"detail": "Invalid token"})),
        ("/user/info", json!({"code": 401, "msg": "bearer token too long"})),
    ] {
        let response = client.get(fixture.url(path)).bearer_auth(&long_token).send().await.unwrap();
        let (status, headers, body) = read(response).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(header(&headers, "www-authenticate"), "Bearer", "{path}");
        assert_eq!(body, expected, "{path}");
    }
    let response = client.post(fixture.url("/user/logout")).bearer_auth(&long_token).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(fixture.calls(), 0, "auth-svc must not see an oversized token");

    // The largest token auth-svc accepts still goes through.
    let largest = "a".repeat(4096);
    let response = client.get(fixture.url("/protected")).bearer_auth(&largest).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(fixture.last_metadata().get("authorization").unwrap(), format!("Bearer {largest}").as_str());
}

/// An id that is too long or has odd characters would travel into logs and metadata (a 70 KB one
/// makes auth-svc drop the whole shared HTTP/2 connection): it is replaced by a fresh UUID, the
/// one the caller gets back and auth-svc sees.
#[tokio::test]
async fn an_unusable_request_id_is_replaced() {
    let fixture = start(Behavior::Answer, ServingStatus::Serving, 5_000).await;
    let client = client();
    let long = "r".repeat(8 * 1024);
    let just_too_long = "r".repeat(129);
    for given in [long.as_str(), just_too_long.as_str(), "has spaces", "a/b", "tab\tid", "é"] {
        let response = client
            .post(fixture.url("/user/login"))
            .header("x-request-id", given.as_bytes())
            .json(&json!({"username": "a", "password": "b"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let echoed = header(response.headers(), "x-request-id").to_owned();
        assert_eq!(echoed.len(), 36, "{given:.40}: {echoed}");
        assert_eq!(echoed.matches('-').count(), 4, "{echoed}");
        assert_eq!(fixture.last_metadata().get("x-request-id").unwrap(), echoed.as_str());
    }
    let longest = format!("{}.:_-Z9", "r".repeat(122));
    assert_eq!(longest.len(), 128);
    for given in [longest.as_str(), "trace-42", "01J9Z:edge.7_x"] {
        let response = client.get(fixture.url("/user/info")).header("x-request-id", given).send().await.unwrap();
        assert_eq!(header(response.headers(), "x-request-id"), given);
        assert_eq!(fixture.last_metadata().get("x-request-id").unwrap(), given);
    }
}

/// FastAPI (Starlette) matches the form media type case-insensitively, as RFC 9110 says.
#[tokio::test]
async fn token_accepts_the_form_media_type_in_any_case() {
    let fixture = start(Behavior::Answer, ServingStatus::Serving, 5_000).await;
    for content_type in ["Application/X-WWW-Form-Urlencoded", "APPLICATION/X-WWW-FORM-URLENCODED; charset=UTF-8"] {
        let response = client()
            .post(fixture.url("/token"))
            .header("content-type", content_type)
            .body("username=a&password=b")
            .send()
            .await
            .unwrap();
        let (status, _, body) = read(response).await;
        assert_eq!(status, StatusCode::OK, "{content_type}: {body}");
        assert_eq!(body["access_token"], "a.b.c");
    }
    let body = "--XyZ\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\na\r\n\
                --XyZ\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\nb\r\n--XyZ--\r\n";
    let response = client()
        .post(fixture.url("/token"))
        .header("content-type", "Multipart/Form-Data; boundary=XyZ")
        .body(body)
        .send()
        .await
        .unwrap();
    let (status, _, body) = read(response).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// auth-svc throttles failed logins per client address, the first `x-forwarded-for` entry:
/// the gateway always sends exactly one, the TCP peer, whatever the client claims.
#[tokio::test]
async fn auth_svc_learns_the_tcp_peer_whatever_the_client_claims() {
    let fixture = start(Behavior::Answer, ServingStatus::Serving, 5_000).await;
    let client = client();
    let credentials = json!({"username": "a", "password": "b"});
    let response = client.post(fixture.url("/user/login")).json(&credentials).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let forwarded: Vec<_> = fixture.last_metadata().get_all("x-forwarded-for").iter().cloned().collect();
    assert_eq!(forwarded, ["127.0.0.1"]);

    let response = client
        .post(fixture.url("/token"))
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-forwarded-for", "7.7.7.7, 8.8.8.8")
        .header("x-real-ip", "9.9.9.9")
        .form(&[("username", "a"), ("password", "b")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let forwarded: Vec<_> = fixture.last_metadata().get_all("x-forwarded-for").iter().cloned().collect();
    assert_eq!(forwarded, ["127.0.0.1"]);
}

/// Behind a trusted proxy (`http.trusted_proxy_header`), the client is the entry that proxy
/// wrote: the last of `x-forwarded-for` (earlier ones are the client's own claims), or
/// `x-real-ip`; the peer when the header is missing or unusable.
#[tokio::test]
async fn behind_a_trusted_proxy_auth_svc_learns_the_proxied_client() {
    let fixture = start_with(Behavior::Answer, ServingStatus::Serving, None, |config| {
        config.http.trusted_proxy_header = "x-forwarded-for".into();
    })
    .await;
    let client = client();
    let login = |headers: &'static [(&'static str, &'static str)]| {
        let mut request = client.post(fixture.url("/user/login")).json(&json!({"username": "a", "password": "b"}));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send()
    };
    for (headers, expected) in [
        (&[("x-forwarded-for", "6.6.6.6, 203.0.113.9")][..], "203.0.113.9"),
        (&[("x-forwarded-for", "6.6.6.6"), ("x-forwarded-for", "198.51.100.2")][..], "198.51.100.2"),
        (&[("x-forwarded-for", "2001:db8::5")][..], "2001:db8::5"),
        (&[("x-real-ip", "203.0.113.9")][..], "127.0.0.1"),
        (&[("x-forwarded-for", "not-an-address")][..], "127.0.0.1"),
        (&[][..], "127.0.0.1"),
    ] {
        assert_eq!(login(headers).await.unwrap().status(), StatusCode::OK);
        let forwarded: Vec<_> = fixture.last_metadata().get_all("x-forwarded-for").iter().cloned().collect();
        assert_eq!(forwarded, [expected], "{headers:?}");
    }

    let fixture = start_with(Behavior::Answer, ServingStatus::Serving, None, |config| {
        config.http.trusted_proxy_header = "X-Real-IP".into();
    })
    .await;
    let response = client
        .post(fixture.url("/user/login"))
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-real-ip", "203.0.113.77")
        .json(&json!({"username": "a", "password": "b"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(fixture.last_metadata().get("x-forwarded-for").unwrap(), "203.0.113.77");
}

/// A request head past the gateway's limit is refused (431) by the HTTP server itself: a huge
/// header never reaches a handler, a log line or auth-svc.
#[tokio::test]
async fn an_oversized_request_head_is_431() {
    let fixture = start(Behavior::Answer, ServingStatus::Serving, 5_000).await;
    let client = client();
    let huge = "r".repeat(70 * 1024);
    for (name, path) in [("x-request-id", "/user/login"), ("x-anything", "/token")] {
        let response = client.post(fixture.url(path)).header(name, &huge).body("{}").send().await.unwrap();
        assert_eq!(response.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "{name}");
    }
    assert_eq!(fixture.calls(), 0);
    let response =
        client.post(fixture.url("/user/login")).json(&json!({"username": "a", "password": "b"})).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

/// Every answer a route gives to the statuses auth-svc can answer its call with (docs/api.md's
/// lists per RPC, plus a stalled call and an auth-svc that is gone) is one the OpenAPI document
/// lists for that route, with the documented headers. A healthy stack, which is all
/// Schemathesis sees, never shows most of these.
#[tokio::test]
async fn every_answer_to_an_auth_svc_failure_is_documented() {
    let doc = serde_json::to_value(gateway::routes::openapi()).unwrap();
    // (method, path, the RPC's failure codes)
    // OUT_OF_RANGE: a request message over auth-svc's size limit, on every route with a body.
    let account_codes = [
        Code::InvalidArgument,
        Code::AlreadyExists,
        Code::ResourceExhausted,
        Code::OutOfRange,
        Code::Unavailable,
        Code::Internal,
    ];
    let login_codes = [
        Code::InvalidArgument,
        Code::Unauthenticated,
        Code::ResourceExhausted,
        Code::OutOfRange,
        Code::Unavailable,
        Code::Internal,
    ];
    let refresh_codes =
        [Code::InvalidArgument, Code::Unauthenticated, Code::OutOfRange, Code::Unavailable, Code::Internal];
    let token_codes = [Code::Unauthenticated, Code::Unavailable, Code::Internal];
    let role_codes = [
        Code::InvalidArgument,
        Code::Unauthenticated,
        Code::PermissionDenied,
        Code::NotFound,
        Code::OutOfRange,
        Code::Unavailable,
        Code::Internal,
    ];
    let jwks_codes = [Code::Unavailable, Code::Internal];
    let routes: [(&str, &str, &[Code]); 10] = [
        ("post", "/user/register", &account_codes),
        ("post", "/signup", &account_codes),
        ("post", "/user/login", &login_codes),
        ("post", "/token", &login_codes),
        ("post", "/user/refresh", &refresh_codes),
        ("get", "/user/info", &token_codes),
        ("post", "/user/logout", &token_codes),
        ("get", "/protected", &token_codes),
        ("post", "/user/role", &role_codes),
        ("get", "/.well-known/jwks.json", &jwks_codes),
    ];
    let mut behaviors: Vec<(Behavior, String)> = [
        Code::InvalidArgument,
        Code::AlreadyExists,
        Code::Unauthenticated,
        Code::PermissionDenied,
        Code::NotFound,
        Code::ResourceExhausted,
        Code::OutOfRange,
        Code::Unavailable,
        Code::Internal,
    ]
    .into_iter()
    .map(|code| (Behavior::Fail { code, message: "scripted", retry_after: Some("3") }, format!("{code:?}")))
    .collect();
    behaviors.push((Behavior::Stall, "a stalled call".to_owned()));

    let client = client();
    let send = |base: String, method: &'static str, path: &'static str| {
        let url = format!("{base}{path}");
        let request = match (method, path) {
            (_, "/token") => client.post(url).form(&[("username", "a"), ("password", "b")]),
            (_, "/user/refresh") => client.post(url).json(&json!({"refreshToken": "d.e.f"})),
            ("post", "/user/logout") => client.post(url).bearer_auth("a.b.c"),
            ("post", "/user/role") => {
                client.post(url).bearer_auth("a.b.c").json(&json!({"username": "a", "role": "b"}))
            }
            (_, "/.well-known/jwks.json") => client.get(url),
            ("post", _) => client.post(url).json(&json!({"username": "a", "password": "b"})),
            _ => client.get(url).bearer_auth("a.b.c"),
        };
        request.send()
    };
    let check = |method: &str, path: &str, what: &str, response: &reqwest::Response| {
        let status = response.status().as_u16().to_string();
        let documented = &doc["paths"][path][method]["responses"][&status];
        assert!(documented.is_object(), "{method} {path} answers {what} with {status}, which is not documented");
        for (name, header) in documented["headers"].as_object().into_iter().flatten() {
            if header["required"] == true {
                assert!(response.headers().contains_key(name.as_str()), "{method} {path} {status}: no {name}");
            }
        }
    };

    for (behavior, what) in behaviors {
        let fixture = start(behavior, ServingStatus::Serving, 200).await;
        for (method, path, codes) in routes {
            let answered = match behavior {
                Behavior::Fail { code, .. } => codes.contains(&code),
                _ => true,
            };
            if answered {
                let response = send(fixture.base.clone(), method, path).await.unwrap();
                check(method, path, &what, &response);
            }
        }
    }

    // auth-svc gone: nothing listens on the upstream address.
    let gateway = Gateway::start(&gateway_config("127.0.0.1:9".parse().unwrap())).await;
    for (method, path, _) in routes {
        let response = send(format!("http://{}", gateway.addr), method, path).await.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "{path}");
        check(method, path, "auth-svc gone", &response);
    }
}
