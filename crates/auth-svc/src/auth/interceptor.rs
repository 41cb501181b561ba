//! The bearer-token check in front of `UserService`, as a tower layer (a tonic `Interceptor`
//! cannot see which method is called).
//!
//! Default deny: every method needs `authorization: Bearer <access token>` except those in
//! [`PUBLIC_METHODS`], so an RPC added later is protected until someone decides otherwise.
//! Verified claims go into the request extensions, where the methods read them.

use std::{
    sync::Arc,
    task::{Context, Poll},
};

use futures::future::BoxFuture;
use http::{HeaderMap, Request, Response, header::AUTHORIZATION};
use tonic::{Status, body::Body, server::NamedService};
use tower::{Layer, Service};

use super::tokens::{AccessClaims, MAX_TOKEN_BYTES, TokenError, TokenKeys};
use crate::revocation::Revocations;

/// Methods callable without a token (full gRPC paths).
pub const PUBLIC_METHODS: &[&str] =
    &["/user.v1.UserService/Register", "/user.v1.UserService/Login", "/user.v1.UserService/Refresh"];

#[derive(Clone)]
pub struct BearerAuthLayer {
    keys: Arc<TokenKeys>,
    revocations: Arc<Revocations>,
}

impl BearerAuthLayer {
    pub fn new(keys: Arc<TokenKeys>, revocations: Arc<Revocations>) -> Self {
        Self { keys, revocations }
    }
}

impl<S> Layer<S> for BearerAuthLayer {
    type Service = BearerAuth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BearerAuth { inner, keys: self.keys.clone(), revocations: self.revocations.clone() }
    }
}

#[derive(Clone)]
pub struct BearerAuth<S> {
    inner: S,
    keys: Arc<TokenKeys>,
    revocations: Arc<Revocations>,
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
        if PUBLIC_METHODS.contains(&request.uri().path()) {
            return Box::pin(ready.call(request));
        }
        let claims = match authenticate(&self.keys, request.headers()) {
            Ok(claims) => claims,
            Err(status) => return Box::pin(futures::future::ready(Ok(status.into_http()))),
        };
        let revocations = self.revocations.clone();
        Box::pin(async move {
            match revocations.is_revoked(&claims.sid).await {
                Ok(false) => {}
                Ok(true) => return Ok(Status::unauthenticated("session revoked").into_http()),
                Err(err) => return Ok(Status::from(err).into_http()),
            }
            request.extensions_mut().insert(claims);
            ready.call(request).await
        })
    }
}

/// Verifies the one `authorization` header and returns its access-token claims.
pub fn authenticate(keys: &TokenKeys, headers: &HeaderMap) -> Result<AccessClaims, Status> {
    let token = bearer_token(headers).map_err(Status::unauthenticated)?;
    keys.verify_access(token).map_err(|err| {
        Status::unauthenticated(match err {
            TokenError::Expired => "access token expired",
            TokenError::NotYetValid => "access token is not valid yet",
            TokenError::WrongType => "not an access token",
            TokenError::Invalid => "invalid access token",
        })
    })
}

/// The token of `authorization: Bearer <token>` (RFC 6750 section 2.1), strictly: one header,
/// scheme `Bearer` in any case, one or more spaces, then a b64token with nothing after it.
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, &'static str> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let value = values.next().ok_or("missing authorization: Bearer token")?;
    if values.next().is_some() {
        return Err("more than one authorization header");
    }
    let value = value.to_str().map_err(|_| "authorization header is not valid ASCII")?;
    let (scheme, rest) = value.split_once(' ').ok_or("authorization header must be `Bearer <token>`")?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err("authorization scheme must be Bearer");
    }
    let token = rest.trim_start_matches(' ');
    if token.is_empty() {
        return Err("missing bearer token");
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Err("bearer token too long");
    }
    if !is_b64token(token) {
        return Err("malformed bearer token");
    }
    Ok(token)
}

/// RFC 6750's b64token: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/'))
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn headers(values: &[&[u8]]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append(AUTHORIZATION, HeaderValue::from_bytes(value).expect("header value"));
        }
        map
    }

    #[test]
    fn accepts_a_plain_bearer_token() {
        assert_eq!(bearer_token(&headers(&[b"Bearer abc.def.ghi"])), Ok("abc.def.ghi"));
        assert_eq!(bearer_token(&headers(&[b"bearer  abc.def.ghi"])), Ok("abc.def.ghi"));
    }

    #[test]
    fn refuses_every_malformed_header() {
        let cases: &[&[&[u8]]] = &[
            &[],
            &[b"Bearer"],
            &[b"Bearer "],
            &[b"Basic dXNlcjpwYXNz"],
            &[b"Bearer abc def"],
            &[b"Bearer\tabc"],
            &[b"Bearer a,b"],
            &[b"Bearer abc", b"Bearer abc"],
            &[b"Bearer \xff\xfe"],
        ];
        for case in cases {
            assert!(bearer_token(&headers(case)).is_err(), "{case:?}");
        }
    }
}
