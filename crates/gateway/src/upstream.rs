//! The one tonic `Channel` to auth-svc and the five calls the REST routes make on it.
//!
//! The channel is created with `connect_lazy`: the gateway starts (and answers 503) while
//! auth-svc is down, and the channel reconnects by itself when it is back. All calls share one
//! HTTP/2 connection. The gateway never judges a token: it forwards the caller's
//! `Authorization` header as gRPC metadata and lets auth-svc's interceptor decide.

use std::{future::Future, time::Duration};

use anyhow::Context as _;
use auth_api::user::v1::{
    GetUserInfoRequest, LoginRequest, LoginResponse, LogoutRequest, RefreshRequest, RegisterRequest, RegisterResponse,
    UserInfo, user_service_client::UserServiceClient,
};
use axum::{extract::FromRequestParts, http::request::Parts};
use http::{HeaderMap, HeaderValue, header::AUTHORIZATION};
use tonic::{
    Status,
    metadata::{AsciiMetadataValue, MetadataMap},
    transport::{Channel, Endpoint},
};
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};

use crate::config::Config;

/// The service `/readyz` asks auth-svc's health endpoint about.
pub const USER_SERVICE: &str = "user.v1.UserService";

/// Header (and gRPC metadata key) that carries the request id end to end.
pub const REQUEST_ID: &str = "x-request-id";

/// A handle on auth-svc; cheap to clone (every clone shares the connection).
#[derive(Clone)]
pub struct Upstream {
    channel: Channel,
    timeout: Duration,
}

impl Upstream {
    /// Prepares the channel; nothing is dialled until the first call.
    pub fn new(config: &Config) -> anyhow::Result<Self> {
        let uri = config.upstream_uri()?;
        let endpoint = Endpoint::from(uri)
            .connect_timeout(config.connect_timeout())
            .tcp_nodelay(true)
            // Notices a silently dead peer (a killed pod) instead of waiting on it forever.
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(10))
            .user_agent(concat!("auth-gateway/", env!("CARGO_PKG_VERSION")))
            .context("building the upstream endpoint")?;
        Ok(Self { channel: endpoint.connect_lazy(), timeout: config.grpc_timeout() })
    }

    pub async fn register(&self, metadata: &Forwarded, message: RegisterRequest) -> Result<RegisterResponse, Status> {
        let request = self.request(metadata, message);
        self.call(|mut client| async move { client.register(request).await }).await
    }

    pub async fn login(&self, metadata: &Forwarded, message: LoginRequest) -> Result<LoginResponse, Status> {
        let request = self.request(metadata, message);
        self.call(|mut client| async move { client.login(request).await }).await
    }

    pub async fn refresh(&self, metadata: &Forwarded, message: RefreshRequest) -> Result<LoginResponse, Status> {
        let request = self.request(metadata, message);
        self.call(|mut client| async move { client.refresh(request).await }).await
    }

    pub async fn user_info(&self, metadata: &Forwarded) -> Result<UserInfo, Status> {
        let request = self.request(metadata, GetUserInfoRequest {});
        self.call(|mut client| async move { client.get_user_info(request).await }).await
    }

    pub async fn logout(&self, metadata: &Forwarded) -> Result<(), Status> {
        let request = self.request(metadata, LogoutRequest {});
        self.call(|mut client| async move { client.logout(request).await }).await.map(drop)
    }

    /// Whether auth-svc's gRPC health service reports `user.v1.UserService` as SERVING.
    pub async fn is_serving(&self) -> Result<bool, Status> {
        let mut client = HealthClient::new(self.channel.clone());
        let request = tonic::Request::new(HealthCheckRequest { service: USER_SERVICE.to_owned() });
        let answer = deadline(self.timeout, client.check(request)).await?;
        Ok(answer.into_inner().status == ServingStatus::Serving as i32)
    }

    /// A request carrying the caller's metadata.
    fn request<T>(&self, metadata: &Forwarded, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        metadata.apply(request.metadata_mut());
        request
    }

    async fn call<T, F, Fut>(&self, call: F) -> Result<T, Status>
    where
        F: FnOnce(UserServiceClient<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let client = UserServiceClient::new(self.channel.clone());
        deadline(self.timeout, call(client)).await.map(tonic::Response::into_inner)
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

/// The parts of a REST request that travel on to auth-svc as gRPC metadata: the caller's
/// `Authorization` header, untouched, and the request id (set by the request-id middleware).
#[derive(Debug, Clone, Default)]
pub struct Forwarded {
    authorization: Option<AsciiMetadataValue>,
    request_id: Option<AsciiMetadataValue>,
    /// Whether the caller sent `Authorization: Bearer …` at all (FastAPI words a missing
    /// credential differently from a bad one; auth-svc still decides).
    bearer_presented: bool,
}

impl Forwarded {
    pub fn from_headers(headers: &HeaderMap) -> Self {
        // A value that is not valid metadata is dropped; for `authorization` auth-svc then
        // answers "missing token", which is what the caller effectively sent.
        let metadata = |value: &HeaderValue| AsciiMetadataValue::try_from(value.as_bytes()).ok();
        let authorization = headers.get(AUTHORIZATION);
        let bearer_presented = authorization
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.get(..7))
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("bearer "));
        Self {
            authorization: authorization.and_then(metadata),
            request_id: headers.get(REQUEST_ID).and_then(metadata),
            bearer_presented,
        }
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
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Forwarded {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::from_headers(&parts.headers))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwards_authorization_and_request_id_verbatim() {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer abc.def.ghi"));
        headers.insert(REQUEST_ID, HeaderValue::from_static("req-1"));
        let forwarded = Forwarded::from_headers(&headers);
        let mut metadata = MetadataMap::new();
        forwarded.apply(&mut metadata);
        assert_eq!(metadata.get("authorization").unwrap(), "Bearer abc.def.ghi");
        assert_eq!(metadata.get(REQUEST_ID).unwrap(), "req-1");
        assert!(forwarded.bearer_presented());
    }

    #[test]
    fn other_schemes_and_absence_are_not_a_bearer() {
        let mut headers = HeaderMap::new();
        assert!(!Forwarded::from_headers(&headers).bearer_presented());
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Basic dXNlcjpwYXNz"));
        assert!(!Forwarded::from_headers(&headers).bearer_presented());
        headers.insert(AUTHORIZATION, HeaderValue::from_static("bearer x"));
        assert!(Forwarded::from_headers(&headers).bearer_presented());
    }
}
