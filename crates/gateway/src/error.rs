//! The one mapping from a gRPC status to an HTTP answer, and the two error bodies it is written in.
//!
//! The gateway speaks two dialects, one per tutorial it reproduces: go-zero's
//! `{"code": <status>, "msg": "…"}` under `/user/…` and `/admin/…`, FastAPI's `{"detail": "…"}`
//! everywhere else ([`Dialect::for_path`]). Every handler turns a failed gRPC call into an [`ApiError`]
//! with [`ApiError::from_grpc`]; a route that owes its tutorial a particular wording adjusts the
//! result with [`ApiError::reword`], never by looking at gRPC codes itself. Errors produced by
//! middleware (404, 405, 408, 413, a caught panic) arrive with no JSON body and are rewritten
//! into the dialect of their path by [`shape_plain_errors`].

use std::{any::Any, borrow::Cow};

use auth_api::metadata::RETRY_AFTER as RETRY_AFTER_METADATA;
use axum::{
    Json,
    body::Body,
    extract::{Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use serde::Serialize;
use tonic::{Code, Status};
use utoipa::ToSchema;

/// Which tutorial's error shape a path answers in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `/user/…` and the operators' `/admin/…`: `{"code","msg"}`; an unparsable body is 400.
    GoZero,
    /// Everything else: `{"detail"}`; an unparsable body is 422.
    FastApi,
}

/// The FastAPI tutorial's two 401 wordings (`OAuth2PasswordBearer`): with a bearer token that
/// did not pass, and without one.
pub fn fastapi_unauthorized(bearer_presented: bool) -> &'static str {
    if bearer_presented { "Invalid token" } else { "Not authenticated" }
}

impl Dialect {
    pub fn for_path(path: &str) -> Self {
        let under = |root: &str| path.strip_prefix(root).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
        if under("/user") || under("/admin") { Self::GoZero } else { Self::FastApi }
    }

    /// The status of a body that does not parse or misses a field.
    pub fn unparsable_body(self) -> StatusCode {
        match self {
            Self::GoZero => StatusCode::BAD_REQUEST,
            Self::FastApi => StatusCode::UNPROCESSABLE_ENTITY,
        }
    }
}

/// go-zero's error body (`errorx.CodeError`): `code` repeats the HTTP status.
// `deny_unknown_fields` only tells the OpenAPI document that no other field is ever sent.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"code": 401, "msg": "invalid credentials"}))]
pub struct CodeError {
    #[schema(minimum = 400, maximum = 599)]
    pub code: u16,
    pub msg: String,
}

/// FastAPI's error body (`HTTPException`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"detail": "Incorrect username or password"}))]
pub struct Detail {
    pub detail: String,
}

/// An HTTP error in the dialect of the route that produced it.
#[derive(Debug)]
pub struct ApiError {
    dialect: Dialect,
    status: StatusCode,
    message: Cow<'static, str>,
    retry_after: Option<HeaderValue>,
}

/// The message of every 503: auth-svc down, unreachable, or lost mid-call.
const UNAVAILABLE: &str = "auth service unavailable, retry later";

impl ApiError {
    pub fn new(dialect: Dialect, status: StatusCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self { dialect, status, message: message.into(), retry_after: None }
    }

    /// The HTTP answer to a failed gRPC call (the table in docs/api.md). Only the messages of
    /// INVALID_ARGUMENT, ALREADY_EXISTS, UNAUTHENTICATED and RESOURCE_EXHAUSTED reach the
    /// client: auth-svc writes those for users (a throttled login and a busy server must read
    /// differently). Everything else gets a fixed message, so no internal detail leaks.
    pub fn from_grpc(dialect: Dialect, status: &Status) -> Self {
        let user_message = |fallback: &'static str| -> Cow<'static, str> {
            match status.message().trim() {
                "" => fallback.into(),
                message => message.to_owned().into(),
            }
        };
        let (http, message) = match status.code() {
            Code::InvalidArgument => (StatusCode::BAD_REQUEST, user_message("invalid request")),
            Code::Unauthenticated => (StatusCode::UNAUTHORIZED, user_message("not authenticated")),
            Code::AlreadyExists => (StatusCode::CONFLICT, user_message("already exists")),
            Code::PermissionDenied => (StatusCode::FORBIDDEN, "permission denied".into()),
            Code::NotFound => (StatusCode::NOT_FOUND, "not found".into()),
            Code::ResourceExhausted => (StatusCode::TOO_MANY_REQUESTS, user_message("too many attempts, retry later")),
            // tonic's refusal of a request message over auth-svc's `grpc.max_message_bytes`
            // (tonic 0.14 answers OUT_OF_RANGE; RESOURCE_EXHAUSTED is only its code for a
            // decompressed message over the limit, and the gateway never compresses, so that
            // code stays a throttle's 429).
            Code::OutOfRange => (StatusCode::PAYLOAD_TOO_LARGE, "request too large".into()),
            Code::Unavailable => {
                tracing::warn!(grpc_message = status.message(), "auth-svc unavailable");
                (StatusCode::SERVICE_UNAVAILABLE, UNAVAILABLE.into())
            }
            Code::Unknown | Code::Cancelled if is_transport_failure(status) => {
                tracing::warn!(grpc_code = ?status.code(), grpc_message = status.message(), "connection to auth-svc lost mid-call");
                (StatusCode::SERVICE_UNAVAILABLE, UNAVAILABLE.into())
            }
            Code::DeadlineExceeded => {
                tracing::warn!(grpc_message = status.message(), "auth-svc did not answer in time");
                (StatusCode::GATEWAY_TIMEOUT, "auth service did not answer in time".into())
            }
            code => {
                tracing::error!(grpc_code = ?code, grpc_message = status.message(), "auth-svc call failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal server error".into())
            }
        };
        let mut error = Self::new(dialect, http, message);
        if status.code() == Code::ResourceExhausted {
            // docs/api.md: every 429 carries Retry-After.
            error.retry_after = Some(retry_after_seconds(status).unwrap_or(HeaderValue::from_static("1")));
        }
        error
    }

    /// A body the route could not use: 413 past the size limit, else the dialect's
    /// "does not parse" status with the extractor's explanation.
    pub fn unparsable(dialect: Dialect, rejection_status: StatusCode, why: String, body_limit: usize) -> Self {
        if rejection_status == StatusCode::PAYLOAD_TOO_LARGE {
            return Self::too_large(dialect, body_limit);
        }
        Self::new(dialect, dialect.unparsable_body(), why)
    }

    pub fn too_large(dialect: Dialect, body_limit: usize) -> Self {
        Self::new(dialect, StatusCode::PAYLOAD_TOO_LARGE, format!("request body too large (limit {body_limit} bytes)"))
    }

    /// The 401 of an `Authorization` header too long to send to auth-svc (`bearer`: it claimed
    /// the Bearer scheme), worded as the dialect words an unusable token.
    pub fn authorization_too_long(dialect: Dialect, bearer: bool) -> Self {
        let message = match (dialect, bearer) {
            (Dialect::FastApi, bearer) => fastapi_unauthorized(bearer),
            // auth-svc's own wording for such a token.
            (Dialect::GoZero, true) => "bearer token too long",
            (Dialect::GoZero, false) => "authorization header too long",
        };
        Self::new(dialect, StatusCode::UNAUTHORIZED, message)
    }

    /// Gives this error the status and wording a tutorial fixes for one route, if it has status
    /// `when` (e.g. `/signup` answers a taken username with 400 "Username already exists").
    #[must_use]
    pub fn reword(mut self, when: StatusCode, status: StatusCode, message: &'static str) -> Self {
        if self.status == when {
            self.status = status;
            self.message = message.into();
        }
        self
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

/// The `retry-after` metadata if it is a plain number of seconds (RFC 9110's delay-seconds).
fn retry_after_seconds(status: &Status) -> Option<HeaderValue> {
    let value = status.metadata().get(RETRY_AFTER_METADATA)?.to_str().ok()?.trim();
    let valid = !value.is_empty() && value.len() <= 10 && value.bytes().all(|b| b.is_ascii_digit());
    valid.then(|| HeaderValue::from_str(value).ok()).flatten()
}

/// Whether an UNKNOWN or CANCELLED status is tonic's report of a broken connection to auth-svc
/// (auth-svc crashed or was killed mid-call: "transport error", "h2 protocol error: …",
/// "operation was canceled: connection closed") rather than an answer from auth-svc. Such a
/// status carries the transport error as its source; the message is checked too, for statuses
/// that lost it.
fn is_transport_failure(status: &Status) -> bool {
    let mut source = std::error::Error::source(status);
    while let Some(error) = source {
        if error.is::<tonic::transport::Error>()
            || error.is::<hyper::Error>()
            || error.is::<h2::Error>()
            || error.is::<std::io::Error>()
        {
            return true;
        }
        source = error.source();
    }
    let message = status.message().to_ascii_lowercase();
    ["transport error", "h2 protocol error", "connection closed", "connection reset", "broken pipe"]
        .iter()
        .any(|needle| message.contains(needle))
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let message = self.message.into_owned();
        let mut response = match self.dialect {
            Dialect::GoZero => {
                (self.status, Json(CodeError { code: self.status.as_u16(), msg: message })).into_response()
            }
            Dialect::FastApi => (self.status, Json(Detail { detail: message })).into_response(),
        };
        let headers = response.headers_mut();
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, seconds);
        }
        response
    }
}

/// Middleware: an error response without a JSON body (axum's 404/405, tower-http's 408/413, a
/// caught panic's 500) is rewritten into the dialect of its path, keeping its other headers.
/// `body_limit` is the configured request-size limit, for the 413 message.
pub async fn shape_plain_errors(State(body_limit): State<usize>, request: Request, next: Next) -> Response {
    let dialect = Dialect::for_path(request.uri().path());
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(&response) {
        return response;
    }
    let error = match status {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::too_large(dialect, body_limit),
        StatusCode::REQUEST_TIMEOUT => ApiError::new(dialect, status, "request timed out"),
        StatusCode::INTERNAL_SERVER_ERROR => ApiError::new(dialect, status, "internal server error"),
        _ => ApiError::new(dialect, status, status.canonical_reason().unwrap_or("error")),
    };
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(header::CONTENT_TYPE);
    parts.headers.remove(header::CONTENT_LENGTH);
    let mut shaped = error.into_response();
    for (name, value) in &parts.headers {
        shaped.headers_mut().entry(name).or_insert_with(|| value.clone());
    }
    shaped
}

/// `CatchPanicLayer`'s answer to a handler that panicked: log it, answer a bare 500, which
/// [`shape_plain_errors`] (one layer out) gives its JSON body.
pub fn caught_panic(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    tracing::error!(panic = message, "handler panicked");
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response
}

fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"))
}

#[cfg(test)]
mod tests {
    use axum::body::to_bytes;
    use tonic::metadata::MetadataValue;

    use super::*;

    async fn render(error: ApiError) -> (StatusCode, http::HeaderMap, serde_json::Value) {
        let response = error.into_response();
        let (parts, body) = response.into_parts();
        let bytes = to_bytes(body, 4096).await.unwrap();
        (parts.status, parts.headers, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn every_grpc_code_gets_its_contract_status() {
        let cases = [
            (Code::InvalidArgument, StatusCode::BAD_REQUEST),
            (Code::Unauthenticated, StatusCode::UNAUTHORIZED),
            (Code::PermissionDenied, StatusCode::FORBIDDEN),
            (Code::NotFound, StatusCode::NOT_FOUND),
            (Code::AlreadyExists, StatusCode::CONFLICT),
            (Code::ResourceExhausted, StatusCode::TOO_MANY_REQUESTS),
            (Code::OutOfRange, StatusCode::PAYLOAD_TOO_LARGE),
            (Code::Unavailable, StatusCode::SERVICE_UNAVAILABLE),
            (Code::DeadlineExceeded, StatusCode::GATEWAY_TIMEOUT),
            (Code::Internal, StatusCode::INTERNAL_SERVER_ERROR),
            (Code::Unknown, StatusCode::INTERNAL_SERVER_ERROR),
            (Code::DataLoss, StatusCode::INTERNAL_SERVER_ERROR),
        ];
        for (code, http) in cases {
            assert_eq!(ApiError::from_grpc(Dialect::GoZero, &Status::new(code, "x")).status(), http, "{code:?}");
        }
    }

    #[tokio::test]
    async fn user_messages_pass_and_internal_ones_do_not() {
        let (_, _, body) =
            render(ApiError::from_grpc(Dialect::GoZero, &Status::already_exists("username already exists"))).await;
        assert_eq!(body, serde_json::json!({"code": 409, "msg": "username already exists"}));
        let (_, _, body) =
            render(ApiError::from_grpc(Dialect::FastApi, &Status::internal("db at 10.0.0.3 refused: password"))).await;
        assert_eq!(body, serde_json::json!({"detail": "internal server error"}));
        let (_, _, body) =
            render(ApiError::from_grpc(Dialect::FastApi, &Status::unavailable("tcp connect error"))).await;
        assert_eq!(body, serde_json::json!({"detail": "auth service unavailable, retry later"}));
    }

    #[tokio::test]
    async fn unauthenticated_carries_www_authenticate() {
        let (status, headers, body) =
            render(ApiError::from_grpc(Dialect::GoZero, &Status::unauthenticated("invalid credentials"))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(headers.get(header::WWW_AUTHENTICATE).unwrap(), "Bearer");
        assert_eq!(body, serde_json::json!({"code": 401, "msg": "invalid credentials"}));
    }

    #[tokio::test]
    async fn resource_exhausted_copies_retry_after() {
        let mut status = Status::resource_exhausted("slow down");
        status.metadata_mut().insert("retry-after", MetadataValue::from_static("42"));
        let (code, headers, body) = render(ApiError::from_grpc(Dialect::FastApi, &status)).await;
        assert_eq!(code, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(headers.get(header::RETRY_AFTER).unwrap(), "42");
        assert_eq!(body, serde_json::json!({"detail": "slow down"}), "auth-svc's words for users reach them");

        // docs/api.md: a 429 always says when to come back.
        let mut status = Status::resource_exhausted("slow down");
        status.metadata_mut().insert("retry-after", MetadataValue::from_static("soon"));
        let (_, headers, _) = render(ApiError::from_grpc(Dialect::FastApi, &status)).await;
        assert_eq!(headers.get(header::RETRY_AFTER).unwrap(), "1");
        let (_, headers, _) = render(ApiError::from_grpc(Dialect::GoZero, &Status::resource_exhausted("x"))).await;
        assert_eq!(headers.get(header::RETRY_AFTER).unwrap(), "1");
    }

    #[tokio::test]
    async fn a_connection_lost_mid_call_is_503_not_500() {
        let broken = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "connection reset by peer");
        let from_source = Status::from_error(Box::new(broken));
        assert_eq!(from_source.code(), Code::Unknown);
        for status in [
            from_source,
            Status::unknown("transport error"),
            Status::unknown("h2 protocol error: error reading a body from connection"),
            Status::cancelled("operation was canceled: connection closed"),
        ] {
            let (code, _, body) = render(ApiError::from_grpc(Dialect::GoZero, &status)).await;
            assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{status:?}");
            assert_eq!(body, serde_json::json!({"code": 503, "msg": "auth service unavailable, retry later"}));
        }
        // auth-svc's own UNKNOWN or CANCELLED answers stay 500.
        for status in [Status::unknown("boom"), Status::cancelled("request cancelled")] {
            let error = ApiError::from_grpc(Dialect::GoZero, &status);
            assert_eq!(error.status(), StatusCode::INTERNAL_SERVER_ERROR, "{status:?}");
        }
    }

    #[test]
    fn reword_only_touches_the_named_status() {
        let taken = ApiError::from_grpc(Dialect::FastApi, &Status::already_exists("username already exists")).reword(
            StatusCode::CONFLICT,
            StatusCode::BAD_REQUEST,
            "Username already exists",
        );
        assert_eq!((taken.status(), taken.message()), (StatusCode::BAD_REQUEST, "Username already exists"));
        let policy = ApiError::from_grpc(Dialect::FastApi, &Status::invalid_argument("password too short")).reword(
            StatusCode::CONFLICT,
            StatusCode::BAD_REQUEST,
            "Username already exists",
        );
        assert_eq!(policy.message(), "password too short");
    }

    #[test]
    fn dialect_follows_the_path() {
        assert_eq!(Dialect::for_path("/user/login"), Dialect::GoZero);
        assert_eq!(Dialect::for_path("/user"), Dialect::GoZero);
        assert_eq!(Dialect::for_path("/users"), Dialect::FastApi);
        assert_eq!(Dialect::for_path("/admin/users/7"), Dialect::GoZero);
        assert_eq!(Dialect::for_path("/admin"), Dialect::GoZero);
        assert_eq!(Dialect::for_path("/administrator"), Dialect::FastApi);
        assert_eq!(Dialect::for_path("/token"), Dialect::FastApi);
    }
}
