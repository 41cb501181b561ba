//! [`Forwarded`] and [`WithAuthorization`] as extractors: the request's id, client address and
//! (for the routes auth-svc checks a token on) its `Authorization` header, ready to travel as
//! gRPC metadata.

use axum::{
    extract::FromRequestParts,
    http::{HeaderValue, header::AUTHORIZATION, request::Parts},
};

use super::ClientIp;
use crate::{
    error::{ApiError, Dialect},
    upstream::{AuthorizationTooLong, Forwarded},
};

impl<S: Send + Sync> FromRequestParts<S> for Forwarded {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let client_ip = parts.extensions.get::<ClientIp>().map(|&ClientIp(ip)| ip);
        Ok(Self::from_parts(&parts.headers, client_ip))
    }
}

/// [`Forwarded`] with the caller's `Authorization`: for the routes auth-svc checks a token on
/// (`/user/info`, `/user/logout`, `/user/role`, `/protected`). A header over
/// `upstream::MAX_AUTHORIZATION_BYTES` is refused with the 401 of an unusable token, in the
/// route's dialect, without calling auth-svc.
#[derive(Debug, Clone)]
pub struct WithAuthorization(pub Forwarded);

impl<S: Send + Sync> FromRequestParts<S> for WithAuthorization {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Ok(forwarded) = Forwarded::from_request_parts(parts, state).await;
        forwarded.with_authorization(&parts.headers).map(Self).map_err(|AuthorizationTooLong { bearer }| {
            tracing::info!(
                bytes = parts.headers.get(AUTHORIZATION).map_or(0, HeaderValue::len),
                "authorization header too long"
            );
            ApiError::authorization_too_long(Dialect::for_path(parts.uri.path()), bearer)
        })
    }
}
