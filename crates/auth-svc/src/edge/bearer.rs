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
use http::{HeaderMap, Request, Response, header::AUTHORIZATION};
use tonic::{Status, body::Body, server::NamedService};
use tower::{Layer, Service};

use crate::auth::tokens::{AccessClaims, MAX_TOKEN_BYTES, TokenError, TokenKeys};
use crate::{domain::role::ROLE_ADMIN, metrics::Metrics, store::revocation::Revocations};

/// What a method (full gRPC path) needs; the label names it in the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No token: Register, Login, Refresh; ValidateToken carries the token it asks about in its
    /// body; GetJwks serves public keys.
    Public,
    /// A valid access token of a live session.
    Bearer(&'static str),
    /// That, with role `admin` (PERMISSION_DENIED otherwise).
    Admin(&'static str),
}

/// The one list of who may call what. Anything not named here needs a token.
pub fn access(path: &str) -> Access {
    match path.strip_prefix("/user.v1.UserService/") {
        Some("Register" | "Login" | "Refresh" | "ValidateToken" | "GetJwks") => Access::Public,
        Some("GetUserInfo") => Access::Bearer("GetUserInfo"),
        Some("Logout") => Access::Bearer("Logout"),
        Some("SetUserRole") => Access::Admin("SetUserRole"),
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
        let (method, admin_only) = match access(request.uri().path()) {
            Access::Public => return Box::pin(ready.call(request)),
            Access::Bearer(method) => (method, false),
            Access::Admin(method) => (method, true),
        };
        let started = std::time::Instant::now();
        let metrics = self.metrics.clone();
        // Refused calls never reach the service methods; they are counted here.
        let refuse = move |status: Status| {
            metrics.rpc(method, status.code(), started);
            Ok(status.into_http())
        };
        let claims = match authenticate(&self.keys, request.headers()) {
            Ok(claims) => claims,
            Err(status) => return Box::pin(futures::future::ready(refuse(status))),
        };
        let revocations = self.revocations.clone();
        Box::pin(async move {
            match revocations.is_revoked(&claims.sid).await {
                Ok(false) => {}
                Ok(true) => return refuse(Status::unauthenticated("session revoked")),
                Err(err) => return refuse(Status::from(err)),
            }
            // After the revocation check: a logged-out token is UNAUTHENTICATED, whatever its role.
            if admin_only && claims.role != ROLE_ADMIN {
                return refuse(Status::permission_denied("only admins may call this method"));
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

    /// Property tests of `bearer_token`: any header bytes a client can send get an answer, never
    /// a panic, and whatever it accepts is a plausible token.
    mod properties {
        use proptest::prelude::*;

        use super::*;

        const B64TOKEN_CHARS: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/";

        /// 256 cases keep `cargo test` quick; `PROPTEST_CASES=N` asks for a longer run.
        fn config() -> ProptestConfig {
            let default = ProptestConfig::default();
            let cases = if std::env::var_os("PROPTEST_CASES").is_some() { default.cases } else { 256 };
            ProptestConfig { cases, ..default }
        }

        /// The header values that can reach us: `HeaderValue` refuses what HTTP/1 and HTTP/2
        /// parsers refuse too (control characters other than tab), so those are skipped.
        fn header_map(values: &[Vec<u8>]) -> HeaderMap {
            let mut map = HeaderMap::new();
            for value in values.iter().filter_map(|v| HeaderValue::from_bytes(v).ok()) {
                map.append(AUTHORIZATION, value);
            }
            map
        }

        /// Whatever `bearer_token` accepts, checked without its own helpers.
        fn check_accepted(map: &HeaderMap, token: &str) -> Result<(), TestCaseError> {
            let values: Vec<&[u8]> = map.get_all(AUTHORIZATION).iter().map(HeaderValue::as_bytes).collect();
            prop_assert_eq!(values.len(), 1, "accepted with {} authorization headers", values.len());
            let value = values[0];
            prop_assert!(value.len() > 7 && value[..7].eq_ignore_ascii_case(b"bearer "), "{:?}", value);
            prop_assert!(value.ends_with(token.as_bytes()));
            prop_assert!(value[7..value.len() - token.len()].iter().all(|&b| b == b' '));
            prop_assert!(!token.is_empty() && token.len() <= MAX_TOKEN_BYTES, "{} bytes", token.len());
            prop_assert!(!token.chars().any(char::is_whitespace));
            let body = token.trim_end_matches('=');
            prop_assert!(!body.is_empty() && body.chars().all(|c| B64TOKEN_CHARS.contains(c)), "{:?}", token);
            Ok(())
        }

        /// Header values that look like `Bearer <token>` and often almost are.
        fn bearerish() -> impl Strategy<Value = Vec<u8>> {
            // Weighted so that about one in ten is well formed.
            let scheme = prop_oneof![
                4 => "[bB][eE][aA][rR][eE][rR]",
                1 => Just("Basic".to_owned()),
                1 => Just("Bearer:".to_owned()),
                1 => Just(String::new()),
            ];
            let gap = prop_oneof![3 => " {1,3}", 1 => "[ \t]{0,3}"];
            let token_chars = prop_oneof![
                40 => prop::sample::select(B64TOKEN_CHARS.chars().collect::<Vec<_>>()),
                2 => Just('='),
                1 => prop::sample::select(vec![' ', '\t', ',', '"', '\u{7f}', 'é', '\u{a0}', ':']),
            ];
            let token = prop_oneof![
                prop::collection::vec(token_chars.clone(), 0..64),
                prop::collection::vec(token_chars, MAX_TOKEN_BYTES - 4..=MAX_TOKEN_BYTES + 4),
            ];
            (scheme, gap, token).prop_map(|(scheme, gap, token)| {
                format!("{scheme}{gap}{}", token.into_iter().collect::<String>()).into_bytes()
            })
        }

        proptest! {
            #![proptest_config(config())]

            #[test]
            fn arbitrary_header_bytes_never_panic(
                values in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..96), 0..3),
            ) {
                let map = header_map(&values);
                if let Ok(token) = bearer_token(&map) {
                    check_accepted(&map, token)?;
                }
            }

            #[test]
            fn bearerish_headers_give_only_plausible_tokens(values in prop::collection::vec(bearerish(), 1..=2)) {
                let map = header_map(&values);
                if let Ok(token) = bearer_token(&map) {
                    check_accepted(&map, token)?;
                }
            }

            /// The other direction: every well-formed header is accepted, whatever the case of
            /// the scheme and however many spaces follow it.
            #[test]
            fn every_well_formed_header_gives_its_token(
                scheme in "[bB][eE][aA][rR][eE][rR]",
                spaces in 1..4usize,
                body in prop_oneof!["[A-Za-z0-9._~+/-]{1,64}", "[A-Za-z0-9._~+/-]{4090,4096}"],
                padding in 0..3usize,
            ) {
                let token = format!("{body}{}", "=".repeat(padding));
                let value = format!("{scheme}{}{token}", " ".repeat(spaces));
                let map = header_map(&[value.into_bytes()]);
                let result = bearer_token(&map);
                if token.len() <= MAX_TOKEN_BYTES {
                    prop_assert_eq!(result, Ok(token.as_str()));
                } else {
                    prop_assert_eq!(result, Err("bearer token too long"));
                }
            }
        }
    }
}
