//! A scripted `UserService`, standing in for auth-svc: it answers each call as the test's
//! [`Behavior`] says (a canned answer, a chosen gRPC status, a stall, or a gate the test opens)
//! and records the metadata and the request messages it receives. It gives what a healthy auth-svc does not produce on
//! demand (RESOURCE_EXHAUSTED, INTERNAL, a stalled call, NOT_SERVING) and lets a test see what
//! travels to auth-svc. [`start`] puts a gateway in front of it ([`Fixture`]); the suites in
//! `with_scripted_upstream` use it.

use std::{
    any::Any,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use auth_api::user::v1::{
    self as v1, ChangePasswordRequest, ClientCredentialsRequest, ClientSecretResponse, ClientTokenResponse,
    CreateClientRequest, DeleteAccountRequest, DeleteAccountResponse, DeleteClientRequest, DeleteClientResponse,
    DeleteUserRequest, DeleteUserResponse, DisableClientRequest, DisableUserRequest, EnableClientRequest,
    EnableUserRequest, GetJwksRequest, GetJwksResponse, GetServerMetadataRequest, GetServerMetadataResponse,
    GetUserInfoRequest, GetUserRequest, IntrospectTokenRequest, Jwk, ListClientsRequest, ListClientsResponse,
    ListSessionsRequest, ListSessionsResponse, ListUsersRequest, ListUsersResponse, LoginRequest, LoginResponse,
    LogoutAllRequest, LogoutAllResponse, LogoutRequest, LogoutResponse, RefreshRequest, RegisterRequest,
    RegisterResponse, RevokeSessionRequest, RevokeSessionResponse, RevokeTokenRequest, RevokeTokenResponse,
    RevokeUserSessionsRequest, RevokeUserSessionsResponse, RotateClientSecretRequest, ServiceClient, Session,
    SetUserRoleRequest, UserInfo, UserRecord, ValidateTokenRequest, ValidateTokenResponse, get_user_request,
    user_service_server::{UserService, UserServiceServer},
};
use prost_types::Timestamp;
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
    /// Fails as a client call of auth-svc does: with the RFC 6749 code in `x-oauth-error`.
    FailOAuth {
        code: Code,
        oauth_error: &'static str,
        message: &'static str,
    },
}

#[derive(Clone)]
struct ScriptedUsers {
    behavior: Behavior,
    seen: Arc<Mutex<Vec<MetadataMap>>>,
    /// The request message of every call, in order (a `Box` of the call's request type).
    requests: Arc<Mutex<Vec<Box<dyn Any + Send>>>>,
    gate: watch::Receiver<bool>,
    /// What GetJwks answers (when `behavior` answers).
    jwks: Arc<Mutex<GetJwksResponse>>,
    /// What IntrospectToken answers (when `behavior` answers).
    introspection: Arc<Mutex<ValidateTokenResponse>>,
    /// What GetServerMetadata answers (when `behavior` answers); `None`: UNAVAILABLE.
    server_metadata: Arc<Mutex<Option<GetServerMetadataResponse>>>,
    /// What Login answers (when `behavior` answers): [`pair`] until the test sets a challenge.
    login: Arc<Mutex<LoginResponse>>,
}

impl ScriptedUsers {
    async fn answer<T, R: Clone + Send + 'static>(&self, request: Request<R>, value: T) -> Result<Response<T>, Status> {
        self.seen.lock().unwrap().push(request.metadata().clone());
        self.requests.lock().unwrap().push(Box::new(request.get_ref().clone()));
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
            Behavior::FailOAuth { code, oauth_error, message } => {
                let mut status = Status::new(code, message);
                status.metadata_mut().insert("x-oauth-error", MetadataValue::from_static(oauth_error));
                Err(status)
            }
        }
    }
}

/// The token pair every scripted Login and Refresh answers.
pub fn pair() -> LoginResponse {
    LoginResponse { access_token: "a.b.c".into(), refresh_token: "d.e.f".into(), expires_in: 60, mfa_challenge: None }
}

/// The challenge [`ScriptedUpstream::answer_login_with_challenge`] makes Login answer.
pub fn challenge() -> LoginResponse {
    LoginResponse {
        access_token: String::new(),
        refresh_token: String::new(),
        expires_in: 0,
        mfa_challenge: Some(v1::MfaChallenge {
            challenge: "mfa.chal.lenge".into(),
            expires_in: 300,
            methods: vec!["totp".into(), "recovery_code".into()],
        }),
    }
}

/// What every scripted BeginTotpEnrolment answers.
pub fn sample_enrolment() -> v1::TotpEnrolment {
    v1::TotpEnrolment {
        secret: "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP".into(),
        otpauth_uri: "otpauth://totp/auth-svc:fake?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=auth-svc".into(),
        qr_svg: "<svg xmlns=\"http://www.w3.org/2000/svg\"></svg>".into(),
    }
}

/// What every scripted ConfirmTotpEnrolment and RegenerateRecoveryCodes answers.
pub fn sample_recovery_codes() -> v1::RecoveryCodes {
    v1::RecoveryCodes { recovery_codes: vec!["aaaaa-bbbbb".into(), "ccccc-ddddd".into()] }
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
        let answer = self.login.lock().unwrap().clone();
        self.answer(request, answer).await
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

    /// Answers the account named, with the role asked for.
    async fn set_user_role(&self, request: Request<SetUserRoleRequest>) -> Result<Response<UserInfo>, Status> {
        let SetUserRoleRequest { username, role } = request.get_ref().clone();
        self.answer_authenticated(request, UserInfo { id: 7, username, role }).await
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

    async fn list_sessions(
        &self,
        request: Request<ListSessionsRequest>,
    ) -> Result<Response<ListSessionsResponse>, Status> {
        self.answer_authenticated(request, ListSessionsResponse { sessions: sample_sessions() }).await
    }

    async fn revoke_session(
        &self,
        request: Request<RevokeSessionRequest>,
    ) -> Result<Response<RevokeSessionResponse>, Status> {
        self.answer_authenticated(request, RevokeSessionResponse {}).await
    }

    async fn logout_all(&self, request: Request<LogoutAllRequest>) -> Result<Response<LogoutAllResponse>, Status> {
        self.answer_authenticated(request, LogoutAllResponse { revoked_sessions: 2 }).await
    }

    async fn change_password(
        &self,
        request: Request<ChangePasswordRequest>,
    ) -> Result<Response<LoginResponse>, Status> {
        self.answer_authenticated(request, pair()).await
    }

    async fn delete_account(
        &self,
        request: Request<DeleteAccountRequest>,
    ) -> Result<Response<DeleteAccountResponse>, Status> {
        self.answer_authenticated(request, DeleteAccountResponse {}).await
    }

    /// The first page (no page token) has a next page; the page after it is the last.
    async fn list_users(&self, request: Request<ListUsersRequest>) -> Result<Response<ListUsersResponse>, Status> {
        let next_page_token = if request.get_ref().page_token.is_empty() { "page-2" } else { "" };
        let page = ListUsersResponse { users: sample_users(), next_page_token: next_page_token.into() };
        self.answer_authenticated(request, page).await
    }

    async fn get_user(&self, request: Request<GetUserRequest>) -> Result<Response<UserRecord>, Status> {
        let id = match request.get_ref().user {
            Some(get_user_request::User::Id(id)) => id,
            _ => 0,
        };
        self.answer_authenticated(request, user_record(id, false)).await
    }

    async fn disable_user(&self, request: Request<DisableUserRequest>) -> Result<Response<UserRecord>, Status> {
        let id = request.get_ref().id;
        self.answer_authenticated(request, user_record(id, true)).await
    }

    async fn enable_user(&self, request: Request<EnableUserRequest>) -> Result<Response<UserRecord>, Status> {
        let id = request.get_ref().id;
        self.answer_authenticated(request, user_record(id, false)).await
    }

    async fn delete_user(&self, request: Request<DeleteUserRequest>) -> Result<Response<DeleteUserResponse>, Status> {
        self.answer_authenticated(request, DeleteUserResponse {}).await
    }

    async fn revoke_user_sessions(
        &self,
        request: Request<RevokeUserSessionsRequest>,
    ) -> Result<Response<RevokeUserSessionsResponse>, Status> {
        self.answer_authenticated(request, RevokeUserSessionsResponse { revoked_sessions: 1 }).await
    }

    async fn get_server_metadata(
        &self,
        request: Request<GetServerMetadataRequest>,
    ) -> Result<Response<GetServerMetadataResponse>, Status> {
        let metadata = self.server_metadata.lock().unwrap().clone();
        match metadata {
            Some(metadata) => self.answer(request, metadata).await,
            None => {
                self.seen.lock().unwrap().push(request.metadata().clone());
                Err(Status::unavailable("scripted outage"))
            }
        }
    }

    async fn client_credentials(
        &self,
        request: Request<ClientCredentialsRequest>,
    ) -> Result<Response<ClientTokenResponse>, Status> {
        let token = client_token(request.get_ref());
        self.answer(request, token).await
    }

    async fn introspect_token(
        &self,
        request: Request<IntrospectTokenRequest>,
    ) -> Result<Response<ValidateTokenResponse>, Status> {
        let answer = self.introspection.lock().unwrap().clone();
        self.answer(request, answer).await
    }

    async fn revoke_token(
        &self,
        request: Request<RevokeTokenRequest>,
    ) -> Result<Response<RevokeTokenResponse>, Status> {
        self.answer(request, RevokeTokenResponse {}).await
    }

    // The operators' client calls: no gateway route makes them.
    async fn create_client(&self, _: Request<CreateClientRequest>) -> Result<Response<ClientSecretResponse>, Status> {
        Err(Status::unimplemented("no gateway route"))
    }

    async fn list_clients(&self, _: Request<ListClientsRequest>) -> Result<Response<ListClientsResponse>, Status> {
        Err(Status::unimplemented("no gateway route"))
    }

    async fn rotate_client_secret(
        &self,
        _: Request<RotateClientSecretRequest>,
    ) -> Result<Response<ClientSecretResponse>, Status> {
        Err(Status::unimplemented("no gateway route"))
    }

    async fn disable_client(&self, _: Request<DisableClientRequest>) -> Result<Response<ServiceClient>, Status> {
        Err(Status::unimplemented("no gateway route"))
    }

    async fn enable_client(&self, _: Request<EnableClientRequest>) -> Result<Response<ServiceClient>, Status> {
        Err(Status::unimplemented("no gateway route"))
    }

    async fn delete_client(&self, _: Request<DeleteClientRequest>) -> Result<Response<DeleteClientResponse>, Status> {
        Err(Status::unimplemented("no gateway route"))
    }

    // The second factor: VerifyMfa is public; the others need the bearer, as in auth-svc.
    async fn verify_mfa(&self, request: Request<v1::VerifyMfaRequest>) -> Result<Response<LoginResponse>, Status> {
        self.answer(request, pair()).await
    }

    async fn begin_totp_enrolment(
        &self,
        request: Request<v1::BeginTotpEnrolmentRequest>,
    ) -> Result<Response<v1::TotpEnrolment>, Status> {
        self.answer_authenticated(request, sample_enrolment()).await
    }

    async fn confirm_totp_enrolment(
        &self,
        request: Request<v1::ConfirmTotpEnrolmentRequest>,
    ) -> Result<Response<v1::RecoveryCodes>, Status> {
        self.answer_authenticated(request, sample_recovery_codes()).await
    }

    async fn disable_totp(
        &self,
        request: Request<v1::DisableTotpRequest>,
    ) -> Result<Response<v1::DisableTotpResponse>, Status> {
        self.answer_authenticated(request, v1::DisableTotpResponse {}).await
    }

    async fn regenerate_recovery_codes(
        &self,
        request: Request<v1::RegenerateRecoveryCodesRequest>,
    ) -> Result<Response<v1::RecoveryCodes>, Status> {
        self.answer_authenticated(request, sample_recovery_codes()).await
    }

    async fn get_mfa_status(
        &self,
        request: Request<v1::GetMfaStatusRequest>,
    ) -> Result<Response<v1::MfaStatus>, Status> {
        self.answer_authenticated(request, v1::MfaStatus { totp_enabled: true, recovery_codes_left: 9 }).await
    }

    async fn reset_mfa(&self, request: Request<v1::ResetMfaRequest>) -> Result<Response<v1::UserRecord>, Status> {
        let id = request.get_ref().id;
        self.answer_authenticated(request, user_record(id, false)).await
    }
}

impl ScriptedUsers {
    /// As auth-svc's bearer layer: no `authorization` metadata is UNAUTHENTICATED before the
    /// behaviour applies (the call is still recorded).
    async fn answer_authenticated<T, R: Clone + Send + 'static>(
        &self,
        request: Request<R>,
        value: T,
    ) -> Result<Response<T>, Status> {
        if request.metadata().get("authorization").is_none() {
            self.seen.lock().unwrap().push(request.metadata().clone());
            self.requests.lock().unwrap().push(Box::new(request.get_ref().clone()));
            return Err(Status::unauthenticated("missing authorization: Bearer token"));
        }
        self.answer(request, value).await
    }
}

/// 2026-12-01T13:45:00Z plus `offset` seconds and `nanos`.
pub fn at(offset: i64, nanos: i32) -> Option<Timestamp> {
    Some(Timestamp { seconds: 1_796_132_700 + offset, nanos })
}

/// What every scripted ListSessions answers: the current session, with a sub-second last use,
/// and an older one whose address and user agent were unknown.
pub fn sample_sessions() -> Vec<Session> {
    vec![
        Session {
            id: "0193a6a4-7c1e-7d52-9f3a-2b8c4d5e6f70".into(),
            created_at: at(0, 0),
            last_used_at: at(1_212, 250_000_000),
            expires_at: at(7 * 86_400, 0),
            client_address: "203.0.113.9".into(),
            user_agent: "curl/8.5.0".into(),
            current: true,
        },
        Session {
            id: "0193a6a4-0000-7000-8000-000000000001".into(),
            created_at: at(-86_400, 0),
            last_used_at: at(-3_600, 0),
            expires_at: at(6 * 86_400, 0),
            client_address: String::new(),
            user_agent: String::new(),
            current: false,
        },
    ]
}

/// Account `id` as the scripted admin calls answer it: logged in once (unless it is id 3, which
/// never did), `disabled` as given.
pub fn user_record(id: i64, disabled: bool) -> UserRecord {
    let last_login_at = if id == 3 { None } else { at(60, 500_000) };
    UserRecord { id, username: format!("user{id}"), role: "user".into(), created_at: at(0, 0), disabled, last_login_at }
}

/// What every scripted ListUsers page holds: accounts 2 and 3.
pub fn sample_users() -> Vec<UserRecord> {
    vec![user_record(2, false), user_record(3, true)]
}

/// What every scripted ClientCredentials answers: the scopes asked for, or two when none was.
pub fn client_token(request: &ClientCredentialsRequest) -> ClientTokenResponse {
    let scopes = if request.scopes.is_empty() {
        vec!["introspect".into(), "orders:read".into()]
    } else {
        request.scopes.clone()
    };
    ClientTokenResponse { access_token: "c.d.e".into(), token_type: "Bearer".into(), expires_in: 300, scopes }
}

/// What GetServerMetadata answers until [`ScriptedUpstream::set_server_metadata`].
pub fn sample_server_metadata() -> GetServerMetadataResponse {
    GetServerMetadataResponse {
        issuer: "auth-svc".into(),
        scopes_supported: vec!["introspect".into(), "orders:read".into()],
        signing_algs: vec!["HS256".into(), "EdDSA".into()],
    }
}

/// A scripted auth-svc on an ephemeral loopback port; stops when dropped.
pub struct ScriptedUpstream {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<MetadataMap>>>,
    requests: Arc<Mutex<Vec<Box<dyn Any + Send>>>>,
    jwks: Arc<Mutex<GetJwksResponse>>,
    introspection: Arc<Mutex<ValidateTokenResponse>>,
    server_metadata: Arc<Mutex<Option<GetServerMetadataResponse>>>,
    login: Arc<Mutex<LoginResponse>>,
    gate: watch::Sender<bool>,
    _stop: oneshot::Sender<()>,
}

impl ScriptedUpstream {
    /// Starts the service (on `runtime` if given, else the caller's runtime).
    pub async fn start(behavior: Behavior, health: ServingStatus, runtime: Option<&tokio::runtime::Runtime>) -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (gate, gate_rx) = watch::channel(false);
        let jwks = Arc::new(Mutex::new(sample_jwks()));
        let introspection = Arc::new(Mutex::new(ValidateTokenResponse { active: false, claims: None }));
        let server_metadata = Arc::new(Mutex::new(Some(sample_server_metadata())));
        let login = Arc::new(Mutex::new(pair()));
        let users = ScriptedUsers {
            behavior,
            seen: seen.clone(),
            requests: requests.clone(),
            gate: gate_rx,
            jwks: jwks.clone(),
            introspection: introspection.clone(),
            server_metadata: server_metadata.clone(),
            login: login.clone(),
        };
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
        Self { addr, seen, requests, jwks, introspection, server_metadata, login, gate, _stop: stop }
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

    /// What IntrospectToken answers from now on.
    pub fn set_introspection(&self, answer: ValidateTokenResponse) {
        *self.introspection.lock().unwrap() = answer;
    }

    /// Login answers [`challenge`] from now on, as auth-svc does for an account with a second factor.
    pub fn answer_login_with_challenge(&self) {
        *self.login.lock().unwrap() = challenge();
    }

    /// What GetServerMetadata answers from now on; `None`: UNAVAILABLE.
    pub fn set_server_metadata(&self, answer: Option<GetServerMetadataResponse>) {
        *self.server_metadata.lock().unwrap() = answer;
    }
}

/// A scripted auth-svc and a gateway in front of it.
pub struct Fixture {
    pub base: String,
    pub client: reqwest::Client,
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

    /// The request message of the last call auth-svc received, which must be a `T`.
    pub fn last_request<T: Clone + 'static>(&self) -> T {
        let requests = self.upstream.requests.lock().unwrap();
        let last = requests.last().expect("auth-svc was called");
        last.downcast_ref::<T>()
            .unwrap_or_else(|| panic!("the last call was not a {}", std::any::type_name::<T>()))
            .clone()
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
    Fixture { base: format!("http://{}", gateway.addr), client: super::client(), upstream, _gateway: gateway }
}
