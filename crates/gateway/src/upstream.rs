//! The tonic `Channel`s to auth-svc, the calls the REST routes make on it, and the metadata
//! that travels with them ([`Forwarded`]). Failed calls come back as tonic `Status`es; turning
//! them into HTTP answers is `error`'s job.
//!
//! The channel is created with `connect_lazy`: the gateway starts (and answers 503) while
//! auth-svc is down, and the channel reconnects by itself when it is back. There are
//! `grpc.connections` of them, each its own HTTP/2 connection, taken in turn by successive calls:
//! one connection is one task on one core, which the whole gateway's traffic would wait on. The gateway never judges a token: it forwards the caller's
//! `Authorization` header as gRPC metadata and lets auth-svc's bearer layer decide. Besides the
//! request id, it also tells auth-svc the client's address (`x-forwarded-for`), which auth-svc
//! throttles failed logins by, and the client's `User-Agent` (`x-forwarded-user-agent`), which
//! auth-svc records with each session it starts.

use std::{
    future::Future,
    net::IpAddr,
    pin::Pin,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context as _;
use auth_api::user::v1::{
    BeginTotpEnrolmentRequest, ChangePasswordRequest, ClientCredentialsRequest, ClientTokenResponse,
    ConfirmTotpEnrolmentRequest, DeleteAccountRequest, DeleteUserRequest, DisableTotpRequest, DisableUserRequest,
    EnableUserRequest, GetJwksRequest, GetJwksResponse, GetMfaStatusRequest, GetServerMetadataRequest,
    GetServerMetadataResponse, GetUserInfoRequest, GetUserRequest, IntrospectTokenRequest, ListSessionsRequest,
    ListSessionsResponse, ListUsersRequest, ListUsersResponse, LoginRequest, LoginResponse, LogoutAllRequest,
    LogoutRequest, MfaStatus, RecoveryCodes, RefreshRequest, RegenerateRecoveryCodesRequest, RegisterRequest,
    RegisterResponse, ResetMfaRequest, RevokeSessionRequest, RevokeTokenRequest, RevokeUserSessionsRequest,
    SetUserRoleRequest, TotpEnrolment, UserInfo, UserRecord, ValidateTokenResponse, VerifyMfaRequest,
    user_service_client::UserServiceClient,
};
use http::{
    HeaderMap, HeaderValue,
    header::{AUTHORIZATION, USER_AGENT},
};
use hyper_util::rt::TokioIo;
use service_kit::tls::{ClientStream, ClientTls, Watcher};
use tokio::net::TcpStream;
use tonic::{
    Status,
    metadata::{AsciiMetadataValue, MetadataMap},
    transport::{Channel, Endpoint, Uri},
};
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};

use crate::config::Config;

/// The service `/readyz` asks auth-svc's health endpoint about.
pub use auth_api::user::v1::user_service_server::SERVICE_NAME as USER_SERVICE;

/// Header (and gRPC metadata key) that carries the request id end to end.
pub use auth_api::metadata::REQUEST_ID;

/// A handle on auth-svc; cheap to clone (every clone shares the connections and the cache).
#[derive(Clone)]
pub struct Upstream {
    channels: Arc<[Channel]>,
    /// Which channel the next call takes (modulo their number).
    next: Arc<AtomicUsize>,
    timeout: Duration,
    server_metadata: Arc<Mutex<Option<CachedServerMetadata>>>,
    /// Re-reads `grpc.tls`'s files while any clone lives (`https://` upstreams only).
    _tls_watcher: Option<Arc<Watcher>>,
}

/// Opens the connections to an `https://` upstream: TCP to the URL's host and port (443 when
/// none is given), then the TLS handshake with the current files. tonic's own TLS would read the
/// certificates once; this connector takes up rotated ones.
#[derive(Clone)]
struct TlsConnector {
    tls: Arc<ClientTls>,
}

impl tower::Service<Uri> for TlsConnector {
    type Response = TokioIo<ClientStream>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = std::io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let tls = self.tls.clone();
        Box::pin(async move {
            let host = uri.host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_owned();
            let port = uri.port_u16().unwrap_or(443);
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            Ok(TokioIo::new(tls.connect(tcp).await?))
        })
    }
}

/// How long a GetServerMetadata answer is reused. What it holds (issuer, scopes, algorithms)
/// only changes when auth-svc is reconfigured, and the document is public: caching it keeps
/// anonymous polling of `/.well-known/oauth-authorization-server` off auth-svc.
pub const SERVER_METADATA_TTL: Duration = Duration::from_secs(60);

struct CachedServerMetadata {
    fetched: Instant,
    answer: GetServerMetadataResponse,
}

impl Upstream {
    /// Prepares the channels; nothing is dialled until a call needs it. For an `https://`
    /// upstream, every connection is made over TLS with `grpc.tls`'s files, re-read when they
    /// change (a rotated client certificate is presented from the next connection on).
    pub fn new(config: &Config) -> anyhow::Result<Self> {
        let uri = config.upstream_uri()?;
        let endpoint = Endpoint::from(uri.clone())
            .connect_timeout(config.connect_timeout())
            .tcp_nodelay(true)
            // Notices a silently dead peer (a killed pod) instead of waiting on it forever.
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(10))
            .user_agent(concat!("auth-gateway/", env!("CARGO_PKG_VERSION")))
            .context("building the upstream endpoint")?;
        let (channels, tls_watcher) = if uri.scheme_str() == Some("https") {
            let host = uri.host().unwrap_or_default();
            let tls = ClientTls::load(&config.grpc.tls, "grpc.tls", host, &[b"h2"]).map_err(anyhow::Error::msg)?;
            let connector = TlsConnector { tls: tls.clone() };
            let channels =
                (0..config.grpc.connections.get()).map(|_| endpoint.connect_with_connector_lazy(connector.clone()));
            (channels.collect(), Some(Arc::new(tls.watch())))
        } else {
            ((0..config.grpc.connections.get()).map(|_| endpoint.connect_lazy()).collect(), None)
        };
        Ok(Self {
            channels,
            next: Arc::default(),
            timeout: config.grpc_timeout(),
            server_metadata: Arc::default(),
            _tls_watcher: tls_watcher,
        })
    }

    /// The channel whose turn it is.
    fn channel(&self) -> Channel {
        let turn = self.next.fetch_add(1, Ordering::Relaxed) % self.channels.len();
        self.channels[turn].clone()
    }

    pub async fn register(&self, metadata: &Forwarded, message: RegisterRequest) -> Result<RegisterResponse, Status> {
        self.call(metadata, message, |mut client, request| async move { client.register(request).await }).await
    }

    pub async fn login(&self, metadata: &Forwarded, message: LoginRequest) -> Result<LoginResponse, Status> {
        self.call(metadata, message, |mut client, request| async move { client.login(request).await }).await
    }

    /// The second step of a login whose first step answered an MFA challenge.
    pub async fn verify_mfa(&self, metadata: &Forwarded, message: VerifyMfaRequest) -> Result<LoginResponse, Status> {
        self.call(metadata, message, |mut client, request| async move { client.verify_mfa(request).await }).await
    }

    pub async fn refresh(&self, metadata: &Forwarded, message: RefreshRequest) -> Result<LoginResponse, Status> {
        self.call(metadata, message, |mut client, request| async move { client.refresh(request).await }).await
    }

    pub async fn user_info(&self, metadata: &Forwarded) -> Result<UserInfo, Status> {
        self.call(
            metadata,
            GetUserInfoRequest {},
            |mut client, request| async move { client.get_user_info(request).await },
        )
        .await
    }

    pub async fn logout(&self, metadata: &Forwarded) -> Result<(), Status> {
        self.call(metadata, LogoutRequest {}, |mut client, request| async move { client.logout(request).await })
            .await?;
        Ok(())
    }

    pub async fn set_user_role(&self, metadata: &Forwarded, message: SetUserRoleRequest) -> Result<UserInfo, Status> {
        self.call(metadata, message, |mut client, request| async move { client.set_user_role(request).await }).await
    }

    pub async fn list_sessions(&self, metadata: &Forwarded) -> Result<ListSessionsResponse, Status> {
        let message = ListSessionsRequest {};
        self.call(metadata, message, |mut client, request| async move { client.list_sessions(request).await }).await
    }

    pub async fn revoke_session(&self, metadata: &Forwarded, message: RevokeSessionRequest) -> Result<(), Status> {
        self.call(metadata, message, |mut client, request| async move { client.revoke_session(request).await }).await?;
        Ok(())
    }

    pub async fn logout_all(&self, metadata: &Forwarded, message: LogoutAllRequest) -> Result<(), Status> {
        self.call(metadata, message, |mut client, request| async move { client.logout_all(request).await }).await?;
        Ok(())
    }

    pub async fn change_password(
        &self,
        metadata: &Forwarded,
        message: ChangePasswordRequest,
    ) -> Result<LoginResponse, Status> {
        self.call(metadata, message, |mut client, request| async move { client.change_password(request).await }).await
    }

    pub async fn delete_account(&self, metadata: &Forwarded, message: DeleteAccountRequest) -> Result<(), Status> {
        self.call(metadata, message, |mut client, request| async move { client.delete_account(request).await }).await?;
        Ok(())
    }

    pub async fn begin_totp_enrolment(&self, metadata: &Forwarded, password: String) -> Result<TotpEnrolment, Status> {
        let message = BeginTotpEnrolmentRequest { password };
        self.call(metadata, message, |mut client, request| async move { client.begin_totp_enrolment(request).await })
            .await
    }

    pub async fn confirm_totp_enrolment(
        &self,
        metadata: &Forwarded,
        message: ConfirmTotpEnrolmentRequest,
    ) -> Result<RecoveryCodes, Status> {
        self.call(metadata, message, |mut client, request| async move { client.confirm_totp_enrolment(request).await })
            .await
    }

    pub async fn disable_totp(&self, metadata: &Forwarded, message: DisableTotpRequest) -> Result<(), Status> {
        self.call(metadata, message, |mut client, request| async move { client.disable_totp(request).await }).await?;
        Ok(())
    }

    pub async fn regenerate_recovery_codes(
        &self,
        metadata: &Forwarded,
        message: RegenerateRecoveryCodesRequest,
    ) -> Result<RecoveryCodes, Status> {
        self.call(
            metadata,
            message,
            |mut client, request| async move { client.regenerate_recovery_codes(request).await },
        )
        .await
    }

    pub async fn mfa_status(&self, metadata: &Forwarded) -> Result<MfaStatus, Status> {
        let message = GetMfaStatusRequest {};
        self.call(metadata, message, |mut client, request| async move { client.get_mfa_status(request).await }).await
    }

    pub async fn reset_mfa(&self, metadata: &Forwarded, message: ResetMfaRequest) -> Result<UserRecord, Status> {
        self.call(metadata, message, |mut client, request| async move { client.reset_mfa(request).await }).await
    }

    pub async fn list_users(
        &self,
        metadata: &Forwarded,
        message: ListUsersRequest,
    ) -> Result<ListUsersResponse, Status> {
        self.call(metadata, message, |mut client, request| async move { client.list_users(request).await }).await
    }

    pub async fn get_user(&self, metadata: &Forwarded, message: GetUserRequest) -> Result<UserRecord, Status> {
        self.call(metadata, message, |mut client, request| async move { client.get_user(request).await }).await
    }

    pub async fn disable_user(&self, metadata: &Forwarded, message: DisableUserRequest) -> Result<UserRecord, Status> {
        self.call(metadata, message, |mut client, request| async move { client.disable_user(request).await }).await
    }

    pub async fn enable_user(&self, metadata: &Forwarded, message: EnableUserRequest) -> Result<UserRecord, Status> {
        self.call(metadata, message, |mut client, request| async move { client.enable_user(request).await }).await
    }

    pub async fn delete_user(&self, metadata: &Forwarded, message: DeleteUserRequest) -> Result<(), Status> {
        self.call(metadata, message, |mut client, request| async move { client.delete_user(request).await }).await?;
        Ok(())
    }

    pub async fn revoke_user_sessions(
        &self,
        metadata: &Forwarded,
        message: RevokeUserSessionsRequest,
    ) -> Result<(), Status> {
        self.call(metadata, message, |mut client, request| async move { client.revoke_user_sessions(request).await })
            .await?;
        Ok(())
    }

    pub async fn jwks(&self, metadata: &Forwarded) -> Result<GetJwksResponse, Status> {
        self.call(metadata, GetJwksRequest {}, |mut client, request| async move { client.get_jwks(request).await })
            .await
    }

    pub async fn client_credentials(
        &self,
        metadata: &Forwarded,
        message: ClientCredentialsRequest,
    ) -> Result<ClientTokenResponse, Status> {
        self.call(metadata, message, |mut client, request| async move { client.client_credentials(request).await })
            .await
    }

    pub async fn introspect_token(
        &self,
        metadata: &Forwarded,
        message: IntrospectTokenRequest,
    ) -> Result<ValidateTokenResponse, Status> {
        self.call(metadata, message, |mut client, request| async move { client.introspect_token(request).await }).await
    }

    pub async fn revoke_token(&self, metadata: &Forwarded, message: RevokeTokenRequest) -> Result<(), Status> {
        self.call(metadata, message, |mut client, request| async move { client.revoke_token(request).await }).await?;
        Ok(())
    }

    /// GetServerMetadata's answer, reused for [`SERVER_METADATA_TTL`] after a successful call; a
    /// failed call is not remembered, so the next request asks again.
    pub async fn server_metadata(&self, metadata: &Forwarded) -> Result<GetServerMetadataResponse, Status> {
        if let Some(answer) = self.cached_server_metadata() {
            return Ok(answer);
        }
        let message = GetServerMetadataRequest {};
        let answer = self
            .call(metadata, message, |mut client, request| async move { client.get_server_metadata(request).await })
            .await?;
        let fresh = CachedServerMetadata { fetched: Instant::now(), answer: answer.clone() };
        *self.server_metadata.lock().unwrap_or_else(PoisonError::into_inner) = Some(fresh);
        Ok(answer)
    }

    fn cached_server_metadata(&self) -> Option<GetServerMetadataResponse> {
        let cache = self.server_metadata.lock().unwrap_or_else(PoisonError::into_inner);
        cache
            .as_ref()
            .filter(|cached| cached.fetched.elapsed() < SERVER_METADATA_TTL)
            .map(|cached| cached.answer.clone())
    }

    /// Whether auth-svc's gRPC health service reports `user.v1.UserService` as SERVING.
    pub async fn is_serving(&self) -> Result<bool, Status> {
        let mut client = HealthClient::new(self.channel());
        let request = tonic::Request::new(HealthCheckRequest { service: USER_SERVICE.to_owned() });
        let answer = deadline(self.timeout, client.check(request)).await?;
        Ok(answer.into_inner().status == ServingStatus::Serving as i32)
    }

    /// Sends `message` with the caller's `metadata` through `call`, within the deadline.
    async fn call<M, T, F, Fut>(&self, metadata: &Forwarded, message: M, call: F) -> Result<T, Status>
    where
        F: FnOnce(UserServiceClient<Channel>, tonic::Request<M>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let mut request = tonic::Request::new(message);
        metadata.apply(request.metadata_mut());
        // The REST request's span is the parent of auth-svc's (nothing is sent with tracing off).
        service_kit::telemetry::inject_context(&tracing::Span::current(), request.metadata_mut().as_mut());
        let client = UserServiceClient::new(self.channel());
        deadline(self.timeout, call(client, request)).await.map(tonic::Response::into_inner)
    }
}

/// Bounds a call on the client side and reports DEADLINE_EXCEEDED (504). Neither
/// `Endpoint::timeout` nor a `grpc-timeout` header is used: tonic reports both expiries as
/// CANCELLED ("Timeout expired"), indistinguishable from other cancellations. Dropping the
/// call resets its HTTP/2 stream, so auth-svc stops working on it all the same.
async fn deadline<T>(
    timeout: Duration,
    call: impl Future<Output = Result<tonic::Response<T>, Status>>,
) -> Result<tonic::Response<T>, Status> {
    tokio::time::timeout(timeout, call)
        .await
        .unwrap_or_else(|_| Err(Status::deadline_exceeded("auth-svc did not answer in time")))
}

/// Longest `Authorization` header forwarded: `Bearer ` and the largest token auth-svc accepts
/// (4096 bytes). auth-svc answers a longer one with an HTTP/2 431 instead of a gRPC status, which
/// would read as a 500; the gateway refuses it itself, as the 401 of an unusable token.
pub use auth_token::MAX_AUTHORIZATION_BYTES;

/// Metadata key in which auth-svc reads the client address (it throttles failed logins per
/// address). Always set by the gateway, never copied from the caller.
pub use auth_api::metadata::FORWARDED_FOR;

/// Metadata key in which auth-svc reads the HTTP client's `User-Agent` (recorded with the session
/// a login starts). Always the gateway's copy of the header, never a caller's own metadata.
pub use auth_api::metadata::FORWARDED_USER_AGENT;

/// Longest `User-Agent` passed on, in characters: as much as auth-svc records.
pub const MAX_USER_AGENT_CHARS: usize = 256;

/// The parts of a REST request that travel on to auth-svc as gRPC metadata: the request id (set
/// by the request-id middleware), the client address, the client's `User-Agent` (shortened), and,
/// only for the routes whose call auth-svc authenticates (`extract::WithAuthorization`), the
/// caller's `Authorization` header, untouched. Nothing else the caller sent is forwarded.
#[derive(Debug, Clone, Default)]
pub struct Forwarded {
    authorization: Option<AsciiMetadataValue>,
    request_id: Option<AsciiMetadataValue>,
    client_ip: Option<IpAddr>,
    user_agent: Option<AsciiMetadataValue>,
    /// Whether the caller sent `Authorization: Bearer …` at all (FastAPI words a missing
    /// credential differently from a bad one; auth-svc still decides).
    bearer_presented: bool,
}

impl Forwarded {
    /// The request id, the client address and the user agent; never `Authorization`.
    pub fn from_parts(headers: &HeaderMap, client_ip: Option<IpAddr>) -> Self {
        // A request id that is not valid metadata is dropped (the middleware only lets sane
        // ones through, so this does not happen in practice).
        let request_id = headers.get(REQUEST_ID).and_then(|value| AsciiMetadataValue::try_from(value.as_bytes()).ok());
        Self {
            authorization: None,
            request_id,
            client_ip,
            user_agent: headers.get(USER_AGENT).and_then(shortened_user_agent),
            bearer_presented: is_bearer(headers.get(AUTHORIZATION)),
        }
    }

    /// Adds the caller's `Authorization` header, or refuses one longer than
    /// [`MAX_AUTHORIZATION_BYTES`]. A value that is not valid metadata is dropped; auth-svc then
    /// answers "missing token", which is what the caller effectively sent.
    pub fn with_authorization(mut self, headers: &HeaderMap) -> Result<Self, AuthorizationTooLong> {
        if let Some(value) = headers.get(AUTHORIZATION) {
            if value.len() > MAX_AUTHORIZATION_BYTES {
                return Err(AuthorizationTooLong { bearer: self.bearer_presented });
            }
            self.authorization = AsciiMetadataValue::try_from(value.as_bytes()).ok();
        }
        Ok(self)
    }

    pub fn bearer_presented(&self) -> bool {
        self.bearer_presented
    }

    fn apply(&self, metadata: &mut MetadataMap) {
        if let Some(value) = &self.authorization {
            metadata.insert("authorization", value.clone());
        }
        if let Some(value) = &self.request_id {
            metadata.insert(REQUEST_ID, value.clone());
        }
        // `insert` replaces: auth-svc takes the first entry, so exactly one, ours, must be there.
        if let Some(ip) = self.client_ip
            && let Ok(value) = AsciiMetadataValue::try_from(ip.to_string())
        {
            metadata.insert(FORWARDED_FOR, value);
        }
        // Always sent, empty when the client sent none we can pass on: then auth-svc records
        // none rather than our own `user-agent`.
        let user_agent = self.user_agent.clone().unwrap_or_else(|| AsciiMetadataValue::from_static(""));
        metadata.insert(FORWARDED_USER_AGENT, user_agent);
    }
}

/// The first [`MAX_USER_AGENT_CHARS`] characters of a `User-Agent`, if they are valid ASCII
/// metadata: printable ASCII, as the gRPC spec defines ASCII values (tonic itself would let other
/// bytes through, which other gRPC stacks refuse). An empty one, or one that is not UTF-8 or not
/// printable ASCII within that prefix, is sent as empty, and auth-svc records none.
fn shortened_user_agent(value: &HeaderValue) -> Option<AsciiMetadataValue> {
    let text = std::str::from_utf8(value.as_bytes()).ok()?;
    let end = text.char_indices().nth(MAX_USER_AGENT_CHARS).map_or(text.len(), |(index, _)| index);
    let shortened = &text[..end];
    let printable = !shortened.is_empty() && shortened.bytes().all(|byte| (b' '..=b'~').contains(&byte));
    printable.then(|| AsciiMetadataValue::try_from(shortened).ok()).flatten()
}

fn is_bearer(authorization: Option<&HeaderValue>) -> bool {
    authorization.is_some_and(|value| auth_token::claims_bearer_scheme(value.as_bytes()))
}

/// An `Authorization` header too long for auth-svc to look at.
#[derive(Debug, Clone, Copy)]
pub struct AuthorizationTooLong {
    /// Whether it claimed the Bearer scheme.
    pub bearer: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers
                .append(http::HeaderName::from_bytes(name.as_bytes()).unwrap(), HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    fn metadata(forwarded: &Forwarded) -> MetadataMap {
        let mut metadata = MetadataMap::new();
        forwarded.apply(&mut metadata);
        metadata
    }

    #[test]
    fn forwards_authorization_request_id_and_client_address() {
        let headers = headers(&[("authorization", "Bearer abc.def.ghi"), (REQUEST_ID, "req-1")]);
        let forwarded =
            Forwarded::from_parts(&headers, Some([10, 0, 0, 7].into())).with_authorization(&headers).unwrap();
        let metadata = metadata(&forwarded);
        assert_eq!(metadata.get("authorization").unwrap(), "Bearer abc.def.ghi");
        assert_eq!(metadata.get(REQUEST_ID).unwrap(), "req-1");
        assert_eq!(metadata.get(FORWARDED_FOR).unwrap(), "10.0.0.7");
        assert!(forwarded.bearer_presented());
    }

    #[test]
    fn authorization_is_forwarded_only_when_asked_for() {
        let headers = headers(&[("authorization", "Bearer abc.def.ghi")]);
        let metadata = metadata(&Forwarded::from_parts(&headers, None));
        assert!(metadata.get("authorization").is_none());
        assert!(metadata.get(FORWARDED_FOR).is_none());
    }

    #[test]
    fn a_caller_sent_forwarded_for_never_travels() {
        let headers = headers(&[(FORWARDED_FOR, "6.6.6.6"), (FORWARDED_FOR, "7.7.7.7")]);
        let metadata = metadata(&Forwarded::from_parts(&headers, Some([127, 0, 0, 1].into())));
        let values: Vec<_> = metadata.get_all(FORWARDED_FOR).iter().collect();
        assert_eq!(values, ["127.0.0.1"]);
    }

    #[test]
    fn an_authorization_over_the_token_limit_is_refused() {
        let largest = format!("Bearer {}", "a".repeat(4096));
        assert_eq!(largest.len(), MAX_AUTHORIZATION_BYTES);
        let ok = headers(&[("authorization", &largest)]);
        assert!(Forwarded::from_parts(&ok, None).with_authorization(&ok).is_ok());
        let too_long = headers(&[("authorization", &format!("{largest}a"))]);
        let refused = Forwarded::from_parts(&too_long, None).with_authorization(&too_long).unwrap_err();
        assert!(refused.bearer);
        let basic = headers(&[("authorization", &format!("Basic {}", "a".repeat(5000)))]);
        assert!(!Forwarded::from_parts(&basic, None).with_authorization(&basic).unwrap_err().bearer);
    }

    #[test]
    fn the_user_agent_travels_shortened_to_its_first_256_characters() {
        let sent =
            |headers: &HeaderMap| metadata(&Forwarded::from_parts(headers, None)).get(FORWARDED_USER_AGENT).cloned();
        assert_eq!(sent(&headers(&[("user-agent", "curl/8.5.0")])).unwrap(), "curl/8.5.0");

        let long = format!("{}{}", "u".repeat(256), "v".repeat(100));
        assert_eq!(sent(&headers(&[("user-agent", &long)])).unwrap(), "u".repeat(256).as_str());

        // Non-ASCII past the cut does not matter; within it the value is not ASCII metadata.
        let mut utf8 = HeaderMap::new();
        let late = format!("{}é", "u".repeat(256));
        utf8.insert(USER_AGENT, HeaderValue::from_bytes(late.as_bytes()).unwrap());
        assert_eq!(sent(&utf8).unwrap(), "u".repeat(256).as_str());
        utf8.insert(USER_AGENT, HeaderValue::from_bytes("agent é".as_bytes()).unwrap());
        assert_eq!(sent(&utf8).unwrap(), "");
        utf8.insert(USER_AGENT, HeaderValue::from_bytes(b"agent \xff").unwrap());
        assert_eq!(sent(&utf8).unwrap(), "");

        // Sent empty, so auth-svc records none rather than the gateway's own `user-agent`.
        assert_eq!(sent(&HeaderMap::new()).unwrap(), "");
        assert_eq!(sent(&headers(&[("user-agent", "")])).unwrap(), "");
        assert_eq!(sent(&headers(&[("user-agent", "tab\tagent")])).unwrap(), "");
        assert_eq!(sent(&headers(&[(FORWARDED_USER_AGENT, "forged")])).unwrap(), "", "a caller's copy never travels");
    }

    #[test]
    fn other_schemes_and_absence_are_not_a_bearer() {
        assert!(!Forwarded::from_parts(&HeaderMap::new(), None).bearer_presented());
        assert!(!Forwarded::from_parts(&headers(&[("authorization", "Basic dXNlcjpwYXNz")]), None).bearer_presented());
        assert!(Forwarded::from_parts(&headers(&[("authorization", "bearer x")]), None).bearer_presented());
    }
}
