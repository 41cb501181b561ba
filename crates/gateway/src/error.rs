//! The one mapping from a gRPC status to an HTTP answer, and the error bodies it is written in.
//!
//! The gateway speaks two dialects, one per tutorial it reproduces: go-zero's
//! `{"code": <status>, "msg": "…"}` under `/user/…` and `/admin/…`, FastAPI's `{"detail": "…"}`
//! everywhere else ([`Dialect::for_path`]); the OAuth 2.0 token endpoint `/token` adds RFC 6749
//! section 5.2's `error` and `error_description` to FastAPI's body, and the OAuth 2.0 endpoints
//! under `/oauth2/…`, which no tutorial has, answer with those two alone. Every handler turns a
//! failed gRPC call into an [`ApiError`] with [`ApiError::from_grpc`] (the calls a client
//! authenticates, with [`ApiError::from_client_call`], which reads auth-svc's RFC 6749 code from
//! the status metadata); a route that owes its tutorial a particular wording adjusts the
//! result with [`ApiError::reword`], never by looking at gRPC codes itself. Errors produced by
//! middleware (404, 405, 408, 413, a caught panic) arrive with no JSON body and are rewritten
//! into the dialect of their path by [`shape_plain_errors`].

use std::{any::Any, borrow::Cow};

use auth_api::metadata::{OAUTH_ERROR, RETRY_AFTER as RETRY_AFTER_METADATA};
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
    /// `/token`: FastAPI's dialect, its `detail` beside RFC 6749's `error` and
    /// `error_description` ([`TokenError`]), so OAuth 2.0 client libraries see a refusal as one.
    TokenEndpoint,
    /// `/oauth2/…` (introspection, revocation): RFC 6749's `error` and `error_description` alone
    /// ([`OAuthError`]); an unparsable body is 400 `invalid_request`, as RFC 6749 section 5.2 says.
    OAuth2,
}

/// The challenge of a 401 `invalid_client`: RFC 6749 section 5.2 asks for the scheme the client
/// used, and HTTP Basic is the one client authentication scheme the gateway takes (a client that
/// sent its secret in the form gets it too, which section 5.2 allows).
pub const CLIENT_CHALLENGE: &str = "Basic realm=\"auth-svc\"";

/// The challenge of every other 401: a missing or unusable bearer token or, on `/token`, wrong
/// user credentials (the tutorial's).
pub const BEARER_CHALLENGE: &str = "Bearer";

/// The FastAPI tutorial's two 401 wordings (`OAuth2PasswordBearer`): with a bearer token that
/// did not pass, and without one.
pub fn fastapi_unauthorized(bearer_presented: bool) -> &'static str {
    if bearer_presented { "Invalid token" } else { "Not authenticated" }
}

impl Dialect {
    pub fn for_path(path: &str) -> Self {
        let under = |root: &str| path.strip_prefix(root).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
        if under("/user") || under("/admin") {
            Self::GoZero
        } else if path == TOKEN_PATH {
            Self::TokenEndpoint
        } else if under("/oauth2") {
            Self::OAuth2
        } else {
            Self::FastApi
        }
    }

    /// The status of a body that does not parse or misses a field.
    pub fn unparsable_body(self) -> StatusCode {
        match self {
            Self::GoZero | Self::OAuth2 => StatusCode::BAD_REQUEST,
            Self::FastApi | Self::TokenEndpoint => StatusCode::UNPROCESSABLE_ENTITY,
        }
    }

    /// The `WWW-Authenticate` values a 401 of this dialect can carry: only `/token` and
    /// `/oauth2/…` authenticate clients.
    pub fn challenges(self) -> &'static [&'static str] {
        match self {
            Self::GoZero | Self::FastApi => &[BEARER_CHALLENGE],
            Self::TokenEndpoint => &[BEARER_CHALLENGE, CLIENT_CHALLENGE],
            Self::OAuth2 => &[CLIENT_CHALLENGE],
        }
    }
}

/// The path of the OAuth 2.0 token endpoint, whose errors are [`Dialect::TokenEndpoint`].
pub const TOKEN_PATH: &str = "/token";

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

/// `/token`'s error body: FastAPI's `detail` (unchanged, for the tutorial's clients) beside
/// RFC 6749 section 5.2's `error` and `error_description` (for OAuth 2.0 client libraries).
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"detail": "Incorrect username or password", "error": "invalid_grant",
    "error_description": "Incorrect username or password"}))]
pub struct TokenError {
    pub detail: String,
    pub error: OAuthErrorCode,
    /// The same text as `detail`, held to RFC 6749's character set (printable ASCII but `"` and `\`).
    pub error_description: String,
}

/// The error body of the OAuth 2.0 endpoints under `/oauth2/…` (RFC 6749 section 5.2, which
/// RFC 7662 and RFC 7009 refer to): no tutorial's `detail`, as no tutorial has these paths.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"error": "invalid_client", "error_description": "client authentication required"}))]
pub struct OAuthError {
    pub error: OAuthErrorCode,
    /// Printable ASCII but `"` and `\` (RFC 6749's character set).
    pub error_description: String,
}

/// The RFC 6749 `error` codes the OAuth 2.0 endpoints answer with: section 5.2's for a refused
/// request (`invalid_target` is RFC 8707's, for an audience the client may not ask for), and
/// section 4.1.2.1's `server_error` and `temporarily_unavailable`, which the endpoints borrow for
/// 5xx answers so that every error body has an `error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OAuthErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    InvalidScope,
    InvalidTarget,
    ServerError,
    TemporarilyUnavailable,
}

impl OAuthErrorCode {
    /// The code auth-svc names in the `x-oauth-error` metadata of a refused client call: one of
    /// those it documents (proto/user/v1/user.proto), else `None`.
    fn from_metadata(status: &Status) -> Option<Self> {
        match status.metadata().get(OAUTH_ERROR)?.to_str().ok()? {
            "invalid_request" => Some(Self::InvalidRequest),
            "invalid_client" => Some(Self::InvalidClient),
            "unauthorized_client" => Some(Self::UnauthorizedClient),
            "invalid_scope" => Some(Self::InvalidScope),
            "invalid_target" => Some(Self::InvalidTarget),
            _ => None,
        }
    }

    /// The HTTP status of a refusal with this code (RFC 6749 section 5.2): 401 for a failed
    /// client authentication, else 400, but for `unauthorized_client` under `/oauth2/…`: there
    /// the client did authenticate and may not call the endpoint (introspection without the
    /// `introspect` scope), which is what 403 says (RFC 7662 names no status for it).
    pub fn status(self, dialect: Dialect) -> StatusCode {
        match self {
            Self::InvalidClient => StatusCode::UNAUTHORIZED,
            Self::UnauthorizedClient if dialect == Dialect::OAuth2 => StatusCode::FORBIDDEN,
            Self::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            Self::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// The code of a `/token` or `/oauth2/…` answer with HTTP status `status`, unless the route
    /// or auth-svc chose one ([`ApiError::oauth`], [`ApiError::from_client_call`]).
    pub fn for_status(status: StatusCode) -> Self {
        match status {
            // Wrong credentials or an unusable refresh token. RFC 6749 answers invalid_grant with
            // 400, but CONTRACT.md keeps the tutorial's 401 (and its WWW-Authenticate).
            StatusCode::UNAUTHORIZED => Self::InvalidGrant,
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT => Self::TemporarilyUnavailable,
            status if status.is_server_error() => Self::ServerError,
            // A form that does not parse or misses a field (422), a policy error (400), a body
            // too large (413), a slow upload (408), and a throttled login (429: RFC 6749 has no
            // code for throttling, and invalid_request is the closest).
            _ => Self::InvalidRequest,
        }
    }
}

/// `message` in RFC 6749's `error_description` characters (`%x20-21 / %x23-5B / %x5D-7E`): `"`
/// becomes `'`, any other character outside them `?`.
fn oauth_error_description(message: &str) -> String {
    message
        .chars()
        .map(|c| match c {
            '"' => '\'',
            '\x20'..='\x7e' if c != '\\' => c,
            _ => '?',
        })
        .collect()
}

/// An HTTP error in the dialect of the route that produced it.
#[derive(Debug)]
pub struct ApiError {
    dialect: Dialect,
    status: StatusCode,
    message: Cow<'static, str>,
    retry_after: Option<HeaderValue>,
    /// [`Dialect::TokenEndpoint`]'s `error`, when the route chose it rather than the status.
    oauth_error: Option<OAuthErrorCode>,
}

/// The message of every 503: auth-svc down, unreachable, or lost mid-call.
const UNAVAILABLE: &str = "auth service unavailable, retry later";

impl ApiError {
    pub fn new(dialect: Dialect, status: StatusCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self { dialect, status, message: message.into(), retry_after: None, oauth_error: None }
    }

    /// `/token`'s 400 `unsupported_grant_type` (RFC 6749 section 5.2).
    pub fn unsupported_grant_type(message: impl Into<Cow<'static, str>>) -> Self {
        Self::oauth(Dialect::TokenEndpoint, OAuthErrorCode::UnsupportedGrantType, message)
    }

    /// A refusal with RFC 6749 code `code`, with [`OAuthErrorCode::status`]'s status.
    pub fn oauth(dialect: Dialect, code: OAuthErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        let mut error = Self::new(dialect, code.status(dialect), message);
        error.oauth_error = Some(code);
        error
    }

    /// The HTTP answer to a failed call that a client authenticates (ClientCredentials,
    /// IntrospectToken, RevokeToken): a refusal (INVALID_ARGUMENT, UNAUTHENTICATED,
    /// PERMISSION_DENIED) takes the RFC 6749 code auth-svc put in the `x-oauth-error` metadata,
    /// and that code's status; without a code it knows, UNAUTHENTICATED is `invalid_client` and
    /// PERMISSION_DENIED `unauthorized_client` (what these calls document), and every other
    /// status is answered as [`ApiError::from_grpc`] answers it.
    pub fn from_client_call(dialect: Dialect, status: &Status) -> Self {
        let mut error = Self::from_grpc(dialect, status);
        let refused = matches!(status.code(), Code::InvalidArgument | Code::Unauthenticated | Code::PermissionDenied);
        if !refused {
            return error;
        }
        let code = OAuthErrorCode::from_metadata(status).unwrap_or(match status.code() {
            Code::Unauthenticated => OAuthErrorCode::InvalidClient,
            Code::PermissionDenied => OAuthErrorCode::UnauthorizedClient,
            _ => OAuthErrorCode::InvalidRequest,
        });
        error.status = code.status(dialect);
        error.oauth_error = Some(code);
        if code == OAuthErrorCode::InvalidClient && status.message().trim().is_empty() {
            error.message = "client authentication failed".into();
        }
        error
    }

    /// The HTTP answer to a failed gRPC call (the table in docs/api.md). Only the messages of
    /// INVALID_ARGUMENT, ALREADY_EXISTS, UNAUTHENTICATED, RESOURCE_EXHAUSTED and
    /// FAILED_PRECONDITION reach the client: auth-svc writes those for users (a throttled login
    /// and a busy server must read differently; a server without `mfa.keys` says so). Everything
    /// else gets a fixed message, so no internal detail leaks.
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
            // The server is not set up for the call (the second factor on an auth-svc without
            // `mfa.keys`): the request cannot succeed as sent, which is the client's to know, not
            // a fault of the gateway's (500). 400 in every dialect.
            Code::FailedPrecondition => {
                (StatusCode::BAD_REQUEST, user_message("not available in the server's configuration"))
            }
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
            (Dialect::FastApi | Dialect::TokenEndpoint, bearer) => fastapi_unauthorized(bearer),
            // auth-svc's own wording for such a token.
            (Dialect::GoZero, true) => "bearer token too long",
            (Dialect::GoZero | Dialect::OAuth2, false) => "authorization header too long",
            (Dialect::OAuth2, true) => "bearer token too long",
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

    /// The `error` of this error's `/token` or `/oauth2/…` body.
    pub fn oauth_error(&self) -> OAuthErrorCode {
        self.oauth_error.unwrap_or_else(|| OAuthErrorCode::for_status(self.status))
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
        let oauth_error = self.oauth_error();
        let message = self.message.into_owned();
        let mut response = match self.dialect {
            Dialect::GoZero => {
                (self.status, Json(CodeError { code: self.status.as_u16(), msg: message })).into_response()
            }
            Dialect::FastApi => (self.status, Json(Detail { detail: message })).into_response(),
            Dialect::TokenEndpoint => {
                let error_description = oauth_error_description(&message);
                (self.status, Json(TokenError { detail: message, error: oauth_error, error_description }))
                    .into_response()
            }
            Dialect::OAuth2 => {
                let error_description = oauth_error_description(&message);
                (self.status, Json(OAuthError { error: oauth_error, error_description })).into_response()
            }
        };
        let headers = response.headers_mut();
        if self.status == StatusCode::UNAUTHORIZED {
            let client_refused = self.oauth_error == Some(OAuthErrorCode::InvalidClient);
            let challenge = if client_refused { CLIENT_CHALLENGE } else { BEARER_CHALLENGE };
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
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
            (Code::FailedPrecondition, StatusCode::BAD_REQUEST),
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

    /// A server without `mfa.keys` is a 400 that says so, in every dialect (not a 500).
    #[tokio::test]
    async fn failed_precondition_is_400_with_auth_svcs_words() {
        let unconfigured = Status::failed_precondition("second factor not configured on this server");
        let (status, _, body) = render(ApiError::from_grpc(Dialect::GoZero, &unconfigured)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body, serde_json::json!({"code": 400, "msg": "second factor not configured on this server"}));
        let (status, _, body) = render(ApiError::from_grpc(Dialect::FastApi, &unconfigured)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body, serde_json::json!({"detail": "second factor not configured on this server"}));
        let (status, _, body) = render(ApiError::from_grpc(Dialect::OAuth2, &unconfigured)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            body,
            serde_json::json!({"error": "invalid_request",
                "error_description": "second factor not configured on this server"})
        );
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

    #[tokio::test]
    async fn token_errors_carry_rfc_6749_codes_beside_detail() {
        let cases = [
            (Status::unauthenticated("refresh token reused"), 401, "invalid_grant"),
            (Status::invalid_argument("password too short"), 400, "invalid_request"),
            (Status::resource_exhausted("slow down"), 429, "invalid_request"),
            (Status::failed_precondition("second factor not configured on this server"), 400, "invalid_request"),
            (Status::out_of_range("x"), 413, "invalid_request"),
            (Status::internal("x"), 500, "server_error"),
            (Status::unavailable("x"), 503, "temporarily_unavailable"),
            (Status::deadline_exceeded("x"), 504, "temporarily_unavailable"),
        ];
        for (status, http, code) in cases {
            let (answered, _, body) = render(ApiError::from_grpc(Dialect::TokenEndpoint, &status)).await;
            assert_eq!(answered.as_u16(), http, "{status:?}");
            let detail = body["detail"].clone();
            assert_eq!(body, serde_json::json!({"detail": detail, "error": code, "error_description": detail}));
        }
        let (status, _, body) = render(ApiError::unsupported_grant_type("unsupported grant_type")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            body,
            serde_json::json!({"detail": "unsupported grant_type", "error": "unsupported_grant_type",
                "error_description": "unsupported grant_type"})
        );
    }

    #[test]
    fn error_descriptions_keep_to_rfc_6749_characters() {
        assert_eq!(oauth_error_description("missing field `username`"), "missing field `username`");
        assert_eq!(oauth_error_description("a \"b\" c\\d\u{e9}\n"), "a 'b' c?d??");
    }

    #[test]
    fn dialect_follows_the_path() {
        assert_eq!(Dialect::for_path("/user/login"), Dialect::GoZero);
        assert_eq!(Dialect::for_path("/user"), Dialect::GoZero);
        assert_eq!(Dialect::for_path("/users"), Dialect::FastApi);
        assert_eq!(Dialect::for_path("/admin/users/7"), Dialect::GoZero);
        assert_eq!(Dialect::for_path("/admin"), Dialect::GoZero);
        assert_eq!(Dialect::for_path("/administrator"), Dialect::FastApi);
        assert_eq!(Dialect::for_path("/token"), Dialect::TokenEndpoint);
        assert_eq!(Dialect::for_path("/tokens"), Dialect::FastApi);
        assert_eq!(Dialect::for_path("/signup"), Dialect::FastApi);
        assert_eq!(Dialect::for_path("/oauth2/introspect"), Dialect::OAuth2);
        assert_eq!(Dialect::for_path("/oauth2"), Dialect::OAuth2);
        assert_eq!(Dialect::for_path("/oauth2x"), Dialect::FastApi);
        assert_eq!(Dialect::for_path("/.well-known/oauth-authorization-server"), Dialect::FastApi);
    }

    fn with_oauth_error(mut status: Status, code: &'static str) -> Status {
        status.metadata_mut().insert(OAUTH_ERROR, MetadataValue::from_static(code));
        status
    }

    /// The code auth-svc names decides `error` and the status, in both dialects that have one.
    #[tokio::test]
    async fn client_calls_answer_with_the_code_auth_svc_names() {
        let cases = [
            (Status::unauthenticated("unknown client"), "invalid_client", 401, 401),
            (Status::invalid_argument("scope `admin` not allowed"), "invalid_scope", 400, 400),
            (Status::invalid_argument("audience not allowed"), "invalid_target", 400, 400),
            (Status::invalid_argument("too many scopes"), "invalid_request", 400, 400),
            (Status::permission_denied("no introspect scope"), "unauthorized_client", 400, 403),
            // The code wins over the status it came with.
            (Status::invalid_argument("disabled"), "invalid_client", 401, 401),
        ];
        for (status, code, token_status, oauth2_status) in cases {
            let status = with_oauth_error(status, code);
            let (http, headers, body) = render(ApiError::from_client_call(Dialect::TokenEndpoint, &status)).await;
            assert_eq!((http.as_u16(), &body["error"]), (token_status, &code.into()), "{status:?}");
            assert_eq!(body["detail"], body["error_description"]);
            if http == StatusCode::UNAUTHORIZED {
                assert_eq!(headers[header::WWW_AUTHENTICATE], CLIENT_CHALLENGE);
            }
            let (http, headers, body) = render(ApiError::from_client_call(Dialect::OAuth2, &status)).await;
            assert_eq!(http.as_u16(), oauth2_status, "{status:?}");
            let message = status.message();
            let description = if code == "unauthorized_client" { "permission denied" } else { message };
            assert_eq!(body, serde_json::json!({"error": code, "error_description": description}), "{status:?}");
            assert_eq!(headers.get(header::WWW_AUTHENTICATE).is_some(), http == StatusCode::UNAUTHORIZED);
        }
    }

    #[tokio::test]
    async fn client_calls_without_a_known_code_fall_back_on_the_status() {
        let cases = [
            (Status::unauthenticated(""), 401, "invalid_client", "client authentication failed"),
            (with_oauth_error(Status::unauthenticated("x"), "made_up"), 401, "invalid_client", "x"),
            (Status::permission_denied("x"), 403, "unauthorized_client", "permission denied"),
            (Status::invalid_argument("bad"), 400, "invalid_request", "bad"),
            // Not a refusal: the code is ignored.
            (
                with_oauth_error(Status::unavailable("db down"), "invalid_client"),
                503,
                "temporarily_unavailable",
                "auth service unavailable, retry later",
            ),
            (Status::unimplemented("not yet"), 500, "server_error", "internal server error"),
        ];
        for (status, http, code, description) in cases {
            let (answered, headers, body) = render(ApiError::from_client_call(Dialect::OAuth2, &status)).await;
            assert_eq!(answered.as_u16(), http, "{status:?}");
            assert_eq!(body, serde_json::json!({"error": code, "error_description": description}), "{status:?}");
            if answered == StatusCode::UNAUTHORIZED {
                assert_eq!(headers[header::WWW_AUTHENTICATE], "Basic realm=\"auth-svc\"");
            }
        }
    }

    #[tokio::test]
    async fn only_invalid_client_challenges_with_basic() {
        let (_, headers, _) = render(ApiError::from_grpc(Dialect::TokenEndpoint, &Status::unauthenticated("x"))).await;
        assert_eq!(headers[header::WWW_AUTHENTICATE], BEARER_CHALLENGE);
        let refused = ApiError::oauth(Dialect::TokenEndpoint, OAuthErrorCode::InvalidClient, "no client");
        let (status, headers, body) = render(refused).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(headers[header::WWW_AUTHENTICATE], CLIENT_CHALLENGE);
        assert_eq!(
            body,
            serde_json::json!({"detail": "no client", "error": "invalid_client", "error_description": "no client"})
        );
    }
}
