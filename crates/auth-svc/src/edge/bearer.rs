//! The bearer-token check in front of `UserService`, as a tower layer (a tonic `Interceptor`
//! cannot see which method is called).
//!
//! Default deny: every method needs `authorization: Bearer <access token>` unless [`access`]
//! says it is public, so an RPC added later is protected until someone decides otherwise.
//! Verified claims go into the request extensions, where the methods read them.

use std::{
    sync::Arc,
    task::{Context, Poll},
};

use futures::future::BoxFuture;
use http::{HeaderMap, Request, Response};
use tonic::{Status, body::Body, server::NamedService};
use tower::{Layer, Service};

use auth_token::bearer_token;

use crate::auth::tokens::{AccessClaims, TokenError, TokenKeys};
use crate::{domain::role::ROLE_ADMIN, metrics::Metrics, store::revocation::Revocations};

/// What a method (full gRPC path) needs; the label names it in the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No token: Register, Login, Refresh; ValidateToken carries the token it asks about in its
    /// body (and, under `introspection.require_client`, checks the caller's itself); GetJwks
    /// and GetServerMetadata serve public facts; the OAuth 2.0 client calls authenticate the
    /// client from the body.
    Public(&'static str),
    /// A valid access token of a live session.
    Bearer(&'static str),
    /// That, with role `admin` (PERMISSION_DENIED otherwise).
    Admin(&'static str),
}

/// The one list of who may call what. Anything not named here needs a token.
pub fn access(path: &str) -> Access {
    match path.strip_prefix("/user.v1.UserService/") {
        Some("Register") => Access::Public("Register"),
        Some("Login") => Access::Public("Login"),
        Some("Refresh") => Access::Public("Refresh"),
        Some("ValidateToken") => Access::Public("ValidateToken"),
        Some("GetJwks") => Access::Public("GetJwks"),
        Some("GetUserInfo") => Access::Bearer("GetUserInfo"),
        Some("Logout") => Access::Bearer("Logout"),
        Some("ListSessions") => Access::Bearer("ListSessions"),
        Some("RevokeSession") => Access::Bearer("RevokeSession"),
        Some("LogoutAll") => Access::Bearer("LogoutAll"),
        Some("ChangePassword") => Access::Bearer("ChangePassword"),
        Some("DeleteAccount") => Access::Bearer("DeleteAccount"),
        // The challenge in the body is the proof of the first step.
        Some("VerifyMfa") => Access::Public("VerifyMfa"),
        Some("BeginTotpEnrolment") => Access::Bearer("BeginTotpEnrolment"),
        Some("ConfirmTotpEnrolment") => Access::Bearer("ConfirmTotpEnrolment"),
        Some("DisableTotp") => Access::Bearer("DisableTotp"),
        Some("RegenerateRecoveryCodes") => Access::Bearer("RegenerateRecoveryCodes"),
        Some("GetMfaStatus") => Access::Bearer("GetMfaStatus"),
        Some("ResetMfa") => Access::Admin("ResetMfa"),
        Some("SetUserRole") => Access::Admin("SetUserRole"),
        Some("ListUsers") => Access::Admin("ListUsers"),
        Some("GetUser") => Access::Admin("GetUser"),
        Some("DisableUser") => Access::Admin("DisableUser"),
        Some("EnableUser") => Access::Admin("EnableUser"),
        Some("DeleteUser") => Access::Admin("DeleteUser"),
        Some("RevokeUserSessions") => Access::Admin("RevokeUserSessions"),
        Some("CreateClient") => Access::Admin("CreateClient"),
        Some("ListClients") => Access::Admin("ListClients"),
        Some("RotateClientSecret") => Access::Admin("RotateClientSecret"),
        Some("DisableClient") => Access::Admin("DisableClient"),
        Some("EnableClient") => Access::Admin("EnableClient"),
        Some("DeleteClient") => Access::Admin("DeleteClient"),
        // The client authenticates in the request body (its id and secret), or, for
        // RevokeToken, the token itself is the proof.
        Some("GetServerMetadata") => Access::Public("GetServerMetadata"),
        Some("ClientCredentials") => Access::Public("ClientCredentials"),
        Some("IntrospectToken") => Access::Public("IntrospectToken"),
        Some("RevokeToken") => Access::Public("RevokeToken"),
        // A bounded label for everything else (metrics label sets must stay small).
        _ => Access::Bearer("other"),
    }
}

#[derive(Clone)]
pub struct BearerAuthLayer {
    keys: Arc<TokenKeys>,
    revocations: Arc<Revocations>,
    metrics: Arc<Metrics>,
}

impl BearerAuthLayer {
    pub fn new(keys: Arc<TokenKeys>, revocations: Arc<Revocations>, metrics: Arc<Metrics>) -> Self {
        Self { keys, revocations, metrics }
    }
}

impl<S> Layer<S> for BearerAuthLayer {
    type Service = BearerAuth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BearerAuth {
            inner,
            keys: self.keys.clone(),
            revocations: self.revocations.clone(),
            metrics: self.metrics.clone(),
        }
    }
}

#[derive(Clone)]
pub struct BearerAuth<S> {
    inner: S,
    keys: Arc<TokenKeys>,
    revocations: Arc<Revocations>,
    metrics: Arc<Metrics>,
}

impl<S: NamedService> NamedService for BearerAuth<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> Service<Request<B>> for BearerAuth<S>
where
    S: Service<Request<B>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        // The clone that was driven to readiness serves this call (tower's usual swap).
        let clone = self.inner.clone();
        let mut ready = std::mem::replace(&mut self.inner, clone);
        let started = std::time::Instant::now();
        let (method, needs) = match access(request.uri().path()) {
            Access::Public(method) => (method, None),
            Access::Bearer(method) => (method, Some(false)),
            Access::Admin(method) => (method, Some(true)),
        };
        let (keys, revocations, metrics) = (self.keys.clone(), self.revocations.clone(), self.metrics.clone());
        Box::pin(async move {
            let response = match needs {
                None => ready.call(request).await,
                Some(admin_only) => match check(&keys, &revocations, request.headers(), admin_only).await {
                    Ok(claims) => {
                        request.extensions_mut().insert(claims);
                        ready.call(request).await
                    }
                    // Refused calls never reach the service methods.
                    Err(status) => Ok(status.into_http()),
                },
            };
            counted(response, &metrics, method, started)
        })
    }
}

/// The bearer rules of a protected call: a valid access token of a live session, and for an
/// admin method the role `admin`.
async fn check(
    keys: &TokenKeys,
    revocations: &Revocations,
    headers: &HeaderMap,
    admin_only: bool,
) -> Result<AccessClaims, Status> {
    let claims = authenticate(keys, headers)?;
    if revocations.is_revoked(&claims.sid).await? {
        return Err(Status::unauthenticated("session revoked"));
    }
    // After the revocation check: a logged-out token is UNAUTHENTICATED, whatever its role.
    if admin_only && claims.role != ROLE_ADMIN {
        return Err(Status::permission_denied("only admins may call this method"));
    }
    Ok(claims)
}

/// Counts a call by its status: every call of `UserService` is counted here, once, whether this
/// layer refused it or a method answered. A unary call's error is a trailers-only response
/// (`grpc-status` in the headers); without one the call succeeded.
fn counted<E>(
    response: Result<Response<Body>, E>,
    metrics: &Metrics,
    method: &'static str,
    started: std::time::Instant,
) -> Result<Response<Body>, E> {
    if let Ok(response) = &response {
        let code = Status::from_header_map(response.headers()).map_or(tonic::Code::Ok, |status| status.code());
        metrics.rpc(method, code, started);
    }
    response
}

/// Verifies the one `authorization` header and returns its access-token claims.
pub fn authenticate(keys: &TokenKeys, headers: &HeaderMap) -> Result<AccessClaims, Status> {
    let token = bearer_token(headers).map_err(|refusal| Status::unauthenticated(refusal.to_string()))?;
    keys.verify_access(token).map_err(|err| {
        Status::unauthenticated(match err {
            TokenError::Expired => "access token expired",
            TokenError::NotYetValid => "access token is not valid yet",
            TokenError::WrongType => "not an access token",
            TokenError::Invalid => "invalid access token",
        })
    })
}
