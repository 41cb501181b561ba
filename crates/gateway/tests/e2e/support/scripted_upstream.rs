//! A scripted `UserService`, standing in for auth-svc: it answers each call as the test's
//! [`Behavior`] says (a canned answer, a chosen gRPC status, a stall, or a gate the test opens)
//! and records the metadata it receives. It gives what a healthy auth-svc does not produce on
//! demand (RESOURCE_EXHAUSTED, INTERNAL, a stalled call, NOT_SERVING) and lets a test see what
//! travels to auth-svc. [`start`] puts a gateway in front of it ([`Fixture`]); the suites in
//! `with_scripted_upstream` use it.

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

use super::{Gateway, gateway_config};

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

    /// As auth-svc's bearer layer: no `authorization` metadata is UNAUTHENTICATED before the
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
pub async fn start_with(
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
