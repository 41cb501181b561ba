//! `BearerLayer`: the tower middleware that guards a whole axum `Router` or tonic `Server`.
//!
//! It reads exactly one `Authorization: Bearer <token>` header, verifies the token (with the
//! layer's audience, if it requires one), checks the scopes the layer requires, and either
//! passes the request on with the `Claims` in its extensions or answers itself, without calling
//! the inner service: a 401 (403 for a missing scope, 503 when the keys cannot be had) for plain
//! HTTP, or a gRPC trailers-only response with `UNAUTHENTICATED` (`PERMISSION_DENIED`,
//! `UNAVAILABLE`) for requests whose `content-type` is `application/grpc…`. The body of a
//! refusal is `ResBody::default()`, which is why one layer fits both axum (`axum::body::Body`)
//! and tonic (`tonic::body::Body`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use tower::{Layer, Service};

use crate::{Claims, Verifier, VerifyError};

/// See the module docs; made by [`Verifier::layer`]. Layers of one verifier share its key
/// cache, so each router (or tonic service) can have its own requirements at no extra cost:
///
/// ```no_run
/// # fn routes(verifier: &auth_verifier::Verifier, reads: axum::Router, writes: axum::Router) -> axum::Router {
/// let reads = reads.layer(verifier.layer().require_audience("orders").require_scopes(["orders:read"]));
/// let writes = writes.layer(verifier.layer().require_audience("orders").require_scopes(["orders:write"]));
/// reads.merge(writes)
/// # }
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct BearerLayer {
    verifier: Verifier,
    route: Arc<RouteRules>,
}

/// What the routes behind one layer need beyond a valid token.
#[derive(Clone, Debug, Default)]
struct RouteRules {
    /// Replaces the verifier's audience when set.
    audience: Option<String>,
    scopes: Vec<String>,
    /// Authentication methods (`amr`, RFC 8176) the token's session must have passed.
    methods: Vec<String>,
    /// The `WWW-Authenticate` of a 403, naming every scope required (RFC 6750 section 3.1);
    /// set with the first scope.
    scope_challenge: Option<HeaderValue>,
}

impl BearerLayer {
    pub(crate) fn new(verifier: Verifier) -> Self {
        Self { verifier, route: Arc::default() }
    }

    /// Requires every one of `scopes` to be granted (the token's `scope` claim); calls add up.
    /// A token lacking one gets HTTP 403 with `WWW-Authenticate: Bearer
    /// error="insufficient_scope", scope="<all required scopes>"`, or gRPC `PERMISSION_DENIED`.
    /// A user's token has no scopes, so a route requiring any refuses every user (403).
    ///
    /// # Panics
    ///
    /// When a scope is not an RFC 6749 section 3.3 scope token (empty, or with a space, `"`,
    /// `\` or a non-printable or non-ASCII character): a setup mistake, like a bad axum path.
    pub fn require_scopes<I>(mut self, scopes: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        let route = Arc::make_mut(&mut self.route);
        for scope in scopes {
            let scope = scope.into();
            assert!(is_scope_token(&scope), "require_scopes: {scope:?} is not an RFC 6749 scope token");
            if !route.scopes.contains(&scope) {
                route.scopes.push(scope);
            }
        }
        if !route.scopes.is_empty() {
            route.scope_challenge = Some(scope_challenge(&route.scopes));
        }
        self
    }

    /// Requires the token's session to have passed every one of `methods` (the `amr` claim,
    /// RFC 8176; auth-svc writes `pwd`, and `otp` after a second factor); calls add up. A token
    /// without one gets HTTP 401 with `WWW-Authenticate: Bearer
    /// error="insufficient_user_authentication"` (RFC 9470), or gRPC `UNAUTHENTICATED`: the
    /// user logs in again, with the second factor. A service account's token has no `amr`, so
    /// a route requiring any refuses every client.
    ///
    /// # Panics
    ///
    /// When a method is empty or not printable ASCII without spaces or quotes (a setup mistake).
    pub fn require_amr<I>(mut self, methods: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        let route = Arc::make_mut(&mut self.route);
        for method in methods {
            let method = method.into();
            assert!(is_scope_token(&method), "require_amr: {method:?} is not an authentication method name");
            if !route.methods.contains(&method) {
                route.methods.push(method);
            }
        }
        self
    }

    /// Requires the token's `aud` to list `audience`, in place of the verifier's own
    /// ([`VerifierBuilder::audience`](crate::VerifierBuilder::audience)) for the routes behind
    /// this layer. A token naming another audience, or none (every user's token), gets HTTP 401
    /// `invalid_token`, or gRPC `UNAUTHENTICATED`.
    ///
    /// # Panics
    ///
    /// When `audience` is empty.
    pub fn require_audience(mut self, audience: impl Into<String>) -> Self {
        let audience = audience.into();
        assert!(!audience.is_empty(), "require_audience: the audience must not be empty");
        Arc::make_mut(&mut self.route).audience = Some(audience);
        self
    }
}

impl<S> Layer<S> for BearerLayer {
    type Service = BearerService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BearerService { inner, verifier: self.verifier.clone(), route: Arc::clone(&self.route) }
    }
}

/// The service [`BearerLayer`] wraps around an inner service.
#[derive(Clone, Debug)]
pub struct BearerService<S> {
    inner: S,
    verifier: Verifier,
    route: Arc<RouteRules>,
}

/// Lets one tonic service be wrapped on its own: `add_service(verifier.layer().layer(svc))`.
#[cfg(feature = "tonic")]
impl<S: tonic::server::NamedService> tonic::server::NamedService for BearerService<S> {
    const NAME: &'static str = S::NAME;
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for BearerService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        // The instance that was polled ready handles this request; a fresh clone takes its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let verifier = self.verifier.clone();
        let route = Arc::clone(&self.route);
        Box::pin(async move {
            let grpc = is_grpc(request.headers());
            // The token borrows from the request, which is only changed once `admit` is done.
            let verified = match bearer_token(request.headers()) {
                Ok(token) => route.admit(&verifier, token).await,
                Err(error) => Err(error),
            };
            match verified {
                Ok(claims) => {
                    request.extensions_mut().insert(claims);
                    inner.call(request).await
                }
                Err(error) => {
                    tracing::debug!(reason = %error, "refused a request's bearer token");
                    Ok(refusal(&error, grpc, &route))
                }
            }
        })
    }
}

impl RouteRules {
    /// The token verified for this route's audience, then its scopes: a token for another
    /// service is a 401 before any scope is looked at.
    async fn admit(&self, verifier: &Verifier, token: &str) -> Result<Claims, VerifyError> {
        let audience = self.audience.as_deref().or(verifier.audience());
        let claims = verifier.verify_for(token, audience).await?;
        if let Some(missing) = self.scopes.iter().find(|scope| !claims.has_scope(scope)) {
            return Err(VerifyError::InsufficientScope { scope: missing.clone() });
        }
        if let Some(missing) = self.methods.iter().find(|method| !claims.amr().contains(method)) {
            return Err(VerifyError::InsufficientUserAuthentication { method: missing.clone() });
        }
        Ok(claims)
    }
}

/// RFC 6749 section 3.3: `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`, which also keeps it
/// fit for the quoted `scope` of a `WWW-Authenticate` header.
fn is_scope_token(scope: &str) -> bool {
    !scope.is_empty() && scope.bytes().all(|b| matches!(b, 0x21 | 0x23..=0x5b | 0x5d..=0x7e))
}

fn scope_challenge(scopes: &[String]) -> HeaderValue {
    let challenge = format!(r#"Bearer error="insufficient_scope", scope="{}""#, scopes.join(" "));
    #[allow(clippy::expect_used, reason = "scope tokens are printable ASCII without quotes, checked on entry")]
    HeaderValue::try_from(challenge).expect("a valid header value")
}

/// The token of the one `Authorization: Bearer` header, by the rules auth-svc applies
/// (`auth_token::bearer_token`). No bearer credentials at all is `MissingToken`; broken
/// ones are `MalformedHeader`.
fn bearer_token(headers: &HeaderMap) -> Result<&str, VerifyError> {
    auth_token::bearer_token(headers)
        .map_err(|refusal| if refusal.is_absent() { VerifyError::MissingToken } else { VerifyError::MalformedHeader })
}

fn is_grpc(headers: &HeaderMap) -> bool {
    headers.get(CONTENT_TYPE).is_some_and(|value| value.as_bytes().starts_with(b"application/grpc"))
}

fn refusal<B: Default>(error: &VerifyError, grpc: bool, route: &RouteRules) -> Response<B> {
    let mut response = Response::new(B::default());
    let headers = response.headers_mut();
    if grpc {
        // Trailers-only: status 200, the gRPC status in the headers, no body.
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        let code = match error {
            VerifyError::KeysUnavailable => "14",
            VerifyError::InsufficientScope { .. } => "7",
            _ => "16",
        };
        headers.insert("grpc-status", HeaderValue::from_static(code));
        if let Ok(message) = HeaderValue::from_str(&percent_encode(&error.to_string())) {
            headers.insert("grpc-message", message);
        }
        return response;
    }
    let (status, challenge) = match error {
        VerifyError::KeysUnavailable => (StatusCode::SERVICE_UNAVAILABLE, None),
        VerifyError::InsufficientScope { .. } => (StatusCode::FORBIDDEN, route.scope_challenge.clone()),
        VerifyError::MissingToken => (StatusCode::UNAUTHORIZED, Some(HeaderValue::from_static("Bearer"))),
        VerifyError::InsufficientUserAuthentication { .. } => (
            StatusCode::UNAUTHORIZED,
            Some(HeaderValue::from_static(
                r#"Bearer error="insufficient_user_authentication", error_description="a second factor is required""#,
            )),
        ),
        _ => (StatusCode::UNAUTHORIZED, Some(HeaderValue::from_static(r#"Bearer error="invalid_token""#))),
    };
    if let Some(challenge) = challenge {
        headers.insert(WWW_AUTHENTICATE, challenge);
    }
    *response.status_mut() = status;
    response
}

/// `grpc-message` is percent-encoded UTF-8: printable ASCII but `%` stays as it is.
fn percent_encode(message: &str) -> String {
    let mut encoded = String::with_capacity(message.len());
    for byte in message.bytes() {
        if (0x20..=0x7e).contains(&byte) && byte != b'%' {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}
