//! `BearerLayer`: the tower middleware that guards a whole axum `Router` or tonic `Server`.
//!
//! It reads exactly one `Authorization: Bearer <token>` header, verifies the token, and either
//! passes the request on with the `Claims` in its extensions or answers itself, without calling
//! the inner service: a 401 (503 when the keys cannot be had) for plain HTTP, or a gRPC
//! trailers-only response with `UNAUTHENTICATED` (`UNAVAILABLE`) for requests whose
//! `content-type` is `application/grpc…`. The body of a refusal is `ResBody::default()`, which is
//! why one layer fits both axum (`axum::body::Body`) and tonic (`tonic::body::Body`).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use tower::{Layer, Service};

use crate::{Verifier, VerifyError};

/// See the module docs; made by [`Verifier::layer`].
#[derive(Clone, Debug)]
pub struct BearerLayer {
    verifier: Verifier,
}

impl BearerLayer {
    pub(crate) fn new(verifier: Verifier) -> Self {
        Self { verifier }
    }
}

impl<S> Layer<S> for BearerLayer {
    type Service = BearerService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BearerService { inner, verifier: self.verifier.clone() }
    }
}

/// The service [`BearerLayer`] wraps around an inner service.
#[derive(Clone, Debug)]
pub struct BearerService<S> {
    inner: S,
    verifier: Verifier,
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
        Box::pin(async move {
            let grpc = is_grpc(request.headers());
            // The token borrows from the request, which is only changed once `verify` is done.
            let verified = match bearer_token(request.headers()) {
                Ok(token) => verifier.verify(token).await,
                Err(error) => Err(error),
            };
            match verified {
                Ok(claims) => {
                    request.extensions_mut().insert(claims);
                    inner.call(request).await
                }
                Err(error) => {
                    tracing::debug!(reason = %error, "refused a request's bearer token");
                    Ok(refusal(&error, grpc))
                }
            }
        })
    }
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

fn refusal<B: Default>(error: &VerifyError, grpc: bool) -> Response<B> {
    let mut response = Response::new(B::default());
    let unavailable = matches!(error, VerifyError::KeysUnavailable);
    let headers = response.headers_mut();
    if grpc {
        // Trailers-only: status 200, the gRPC status in the headers, no body.
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        let code = if unavailable { "14" } else { "16" };
        headers.insert("grpc-status", HeaderValue::from_static(code));
        if let Ok(message) = HeaderValue::from_str(&percent_encode(&error.to_string())) {
            headers.insert("grpc-message", message);
        }
    } else if unavailable {
        *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    } else {
        let challenge = match error {
            VerifyError::MissingToken => "Bearer",
            _ => r#"Bearer error="invalid_token""#,
        };
        headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        *response.status_mut() = StatusCode::UNAUTHORIZED;
    }
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
