//! The FastAPI tutorial's OAuth2 password flow: `/signup`, `/token`, `/protected`, errors as
//! `{"detail"}`. `/token` also takes the refresh grant (RFC 6749 section 6), the tutorial's
//! exercise, and its errors add RFC 6749 section 5.2's `error` and `error_description`
//! ([`Dialect::TokenEndpoint`]). Each handler makes exactly one `UserService` call.

use auth_api::user::v1::{LoginRequest, LoginResponse, RefreshRequest, RegisterRequest};
use axum::{
    Json,
    body::{Body, Bytes},
    extract::{FromRequest, Multipart, Request, State},
    http::{HeaderMap, StatusCode, header},
    response::IntoResponse,
};
use serde::{Deserialize, Serialize};
use tonic::Status;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    error::{ApiError, Detail, Dialect, TokenError},
    extract::{Forwarded, JsonBody, WithAuthorization},
    state::AppState,
};

pub const TAG: &str = "FastAPI";

/// `/signup` and `/protected`.
const DIALECT: Dialect = Dialect::FastApi;

/// `/token`.
const TOKEN_DIALECT: Dialect = Dialect::TokenEndpoint;

fn failed(status: Status) -> ApiError {
    ApiError::from_grpc(DIALECT, &status)
}

fn token_failed(status: Status) -> ApiError {
    ApiError::from_grpc(TOKEN_DIALECT, &status)
}

/// `/token`'s 422 (`invalid_request`) for a form it cannot use.
fn shape_error(message: impl Into<String>) -> ApiError {
    ApiError::new(TOKEN_DIALECT, TOKEN_DIALECT.unparsable_body(), message.into())
}

/// Body of `/signup` (no `Debug`: it holds a password).
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"username": "licat", "password": "correct horse"}))]
pub struct SignupRequest {
    pub username: String,
    #[schema(format = Password)]
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageResponse {
    pub message: String,
}

/// Body of `/token`, as a form: OAuth2's password grant (`grant_type` may be left out, as
/// FastAPI's `OAuth2PasswordRequestForm` allows) or its refresh grant. `scope`, `client_id`
/// and `client_secret` (which FastAPI's form and OAuth 2.0 client libraries send) and any other
/// field are accepted and ignored.
#[derive(Deserialize, ToSchema)]
pub struct TokenForm {
    /// `password` (the default) or `refresh_token`.
    #[schema(example = "password")]
    pub grant_type: Option<String>,
    /// Password grant.
    pub username: Option<String>,
    /// Password grant.
    #[schema(format = Password)]
    pub password: Option<String>,
    /// Refresh grant.
    pub refresh_token: Option<String>,
    /// Ignored.
    pub scope: Option<String>,
}

/// What a `/token` form asks for, once checked (no `Debug`: it holds secrets).
pub enum Grant {
    Password { username: String, password: String },
    RefreshToken { refresh_token: String },
}

impl TokenForm {
    /// The grant the form asks for: `grant_type` absent or `password` needs `username` and
    /// `password` (else 422 `invalid_request`); `refresh_token` needs `refresh_token`; any other
    /// grant type is 400 `unsupported_grant_type`.
    pub fn grant(self) -> Result<Grant, ApiError> {
        let required =
            |value: Option<String>, name: &str| value.ok_or_else(|| shape_error(format!("missing field `{name}`")));
        match self.grant_type.as_deref() {
            None | Some("password") => Ok(Grant::Password {
                username: required(self.username, "username")?,
                password: required(self.password, "password")?,
            }),
            Some("refresh_token") => {
                Ok(Grant::RefreshToken { refresh_token: required(self.refresh_token, "refresh_token")? })
            }
            // CONTRACT.md lists client_credentials, but service accounts do not exist yet (issue
            // 15): until they do, it is refused like any grant the server does not support.
            Some(_) => Err(ApiError::unsupported_grant_type("grant_type must be `password` or `refresh_token`")),
        }
    }
}

impl FromRequest<AppState> for TokenForm {
    type Rejection = ApiError;

    /// Reads `application/x-www-form-urlencoded` or `multipart/form-data`, like FastAPI's
    /// `Form(...)` parameters do; see [`decode_token_form`].
    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        read_token_form(request, state.body_limit).await
    }
}

/// The whole decoding of a `/token` request from its headers and body: `Content-Type` picks
/// `application/x-www-form-urlencoded` or `multipart/form-data` (with its boundary), and the
/// fields fill a [`TokenForm`]; [`TokenForm::grant`] then checks which grant it is. The error
/// is the route's answer: 422 ([`TokenError`] with `invalid_request`) for anything unusable, 413 past a size limit
/// (`body_limit` only words its message: the server's limit is enforced by its middleware before
/// this runs, and a body given here is held to axum's default of 2 MB). Never panics, whatever
/// the bytes.
///
/// The future needs no runtime (the body is in memory): a fuzz target can drive it with
/// `futures::executor::block_on`.
pub async fn decode_token_form(headers: &HeaderMap, body: Bytes, body_limit: usize) -> Result<TokenForm, ApiError> {
    let mut request = Request::new(Body::from(body));
    *request.headers_mut() = headers.clone();
    read_token_form(request, body_limit).await
}

async fn read_token_form(request: Request, body_limit: usize) -> Result<TokenForm, ApiError> {
    let rejected = |status: StatusCode, text: String| ApiError::unparsable(TOKEN_DIALECT, status, text, body_limit);
    match form_media_type(request.headers()) {
        Some(URLENCODED) => {
            // Parsed here rather than with axum's `Form`, which matches the media type
            // case-sensitively.
            let body = Bytes::from_request(request, &())
                .await
                .map_err(|rejection| rejected(rejection.status(), rejection.body_text()))?;
            serde_urlencoded::from_bytes(&body).map_err(|err| shape_error(err.to_string()))
        }
        Some(_) => {
            let mut multipart = Multipart::from_request(request, &())
                .await
                .map_err(|rejection| rejected(rejection.status(), rejection.body_text()))?;
            let mut fields = serde_json::Map::new();
            while let Some(field) =
                multipart.next_field().await.map_err(|err| rejected(err.status(), err.body_text()))?
            {
                let name = field.name().unwrap_or_default().to_owned();
                let value = field.text().await.map_err(|err| rejected(err.status(), err.body_text()))?;
                fields.insert(name, serde_json::Value::String(value));
            }
            serde_json::from_value(serde_json::Value::Object(fields)).map_err(|err| shape_error(err.to_string()))
        }
        None => Err(shape_error("expected a form: application/x-www-form-urlencoded or multipart/form-data")),
    }
}

/// Which form encoding `headers` announce: the media type of `Content-Type`, lowercased, if it
/// is one of the two `/token` reads. Matched case-insensitively, as RFC 9110 (and FastAPI) do.
fn form_media_type(headers: &HeaderMap) -> Option<&'static str> {
    let media_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .map(|mime| mime.trim().to_ascii_lowercase())?;
    [URLENCODED, MULTIPART].into_iter().find(|known| *known == media_type)
}

const URLENCODED: &str = "application/x-www-form-urlencoded";
const MULTIPART: &str = "multipart/form-data";

/// `/token`'s answer: the tutorial's `access_token` and `token_type`, plus the pair's
/// `expires_in` and `refresh_token` (RFC 6749 section 5.1). No `Debug`: it holds tokens.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: TokenType,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// Single-use; send it back with `grant_type=refresh_token`.
    pub refresh_token: String,
}

/// RFC 6749's `token_type`: always `bearer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TokenType {
    Bearer,
}

impl From<LoginResponse> for TokenResponse {
    fn from(pair: LoginResponse) -> Self {
        Self {
            access_token: pair.access_token,
            token_type: TokenType::Bearer,
            expires_in: pair.expires_in,
            refresh_token: pair.refresh_token,
        }
    }
}

/// Creates an account.
///
/// The FastAPI tutorial's sign-up, with role `user`: the username and password must pass
/// auth-svc's policy, and a taken username is a 400. Get tokens from `/token` next.
#[utoipa::path(post, path = "/signup", tag = TAG, request_body = SignupRequest,
    responses(
        (status = 200, description = "Account created", body = MessageResponse,
            example = json!({"message": "User created successfully"})),
        (status = 429, description = "Too many sign-ups from this client address, or auth-svc's hashing \
            queue is full", body = Detail),
        (status = 400, description = "Username taken, or the username/password policy is broken", body = Detail,
            example = json!({"detail": "Username already exists"})),
    ))]
pub async fn signup(
    State(state): State<AppState>,
    forwarded: Forwarded,
    JsonBody(SignupRequest { username, password }): JsonBody<SignupRequest>,
) -> Result<Json<MessageResponse>, ApiError> {
    let request = RegisterRequest { username, password };
    state.upstream.register(&forwarded, request).await.map_err(|status| {
        failed(status).reword(StatusCode::CONFLICT, StatusCode::BAD_REQUEST, "Username already exists")
    })?;
    Ok(Json(MessageResponse { message: "User created successfully".to_owned() }))
}

/// OAuth2 token endpoint: a token pair for a password or a refresh token.
///
/// A form (urlencoded or multipart) with the password grant (`username` and `password`;
/// `grant_type` may be left out) or the refresh grant (`grant_type=refresh_token`); other fields
/// are ignored. Errors carry RFC 6749's `error` and `error_description` beside the tutorial's
/// `detail`.
#[utoipa::path(post, path = "/token", tag = TAG,
    request_body(content(
        (TokenForm = "application/x-www-form-urlencoded"),
        (TokenForm = "multipart/form-data"),
    )),
    responses(
        (status = 200, description = "Token pair", body = TokenResponse,
            headers(("cache-control" = String, description = "no-store"))),
        (status = 400, description = "`unsupported_grant_type`: a grant_type other than `password` and \
            `refresh_token`; `invalid_request`: breaks the username/password policy", body = TokenError,
            example = json!({"detail": "grant_type must be `password` or `refresh_token`",
                "error": "unsupported_grant_type",
                "error_description": "grant_type must be `password` or `refresh_token`"})),
        (status = 401, description = "`invalid_grant`: wrong credentials, or an unusable refresh token",
            body = TokenError,
            example = json!({"detail": "Incorrect username or password", "error": "invalid_grant",
                "error_description": "Incorrect username or password"})),
        (status = 422, description = "`invalid_request`: not a form, or a missing field", body = TokenError),
        (status = 429, description = "`invalid_request`: too many failed logins for this username or client \
            address, or auth-svc's hashing queue is full", body = TokenError),
    ))]
pub async fn token(
    State(state): State<AppState>,
    forwarded: Forwarded,
    form: TokenForm,
) -> Result<impl IntoResponse, ApiError> {
    let pair = match form.grant()? {
        Grant::Password { username, password } => {
            state.upstream.login(&forwarded, LoginRequest { username, password }).await.map_err(|status| {
                token_failed(status).reword(
                    StatusCode::UNAUTHORIZED,
                    StatusCode::UNAUTHORIZED,
                    "Incorrect username or password",
                )
            })?
        }
        Grant::RefreshToken { refresh_token } => {
            state.upstream.refresh(&forwarded, RefreshRequest { refresh_token }).await.map_err(token_failed)?
        }
    };
    Ok(super::no_store(TokenResponse::from(pair)))
}

/// A route only a bearer of a valid access token may call.
///
/// Greets the access token's user by name. `/protected/`, the trailing slash of the tutorial's
/// browser example, answers the same.
#[utoipa::path(get, path = "/protected", tag = TAG, security(("oauth2" = [])),
    responses(
        (status = 200, description = "Greeting", body = MessageResponse,
            example = json!({"message": "Hello licat! This is a protected route"})),
        (status = 401, description = "`Not authenticated` without a bearer token, `Invalid token` with a bad one",
            body = Detail),
    ))]
pub async fn protected(
    State(state): State<AppState>,
    WithAuthorization(forwarded): WithAuthorization,
) -> Result<Json<MessageResponse>, ApiError> {
    let user = state.upstream.user_info(&forwarded).await.map_err(|status| {
        // auth-svc decided; only the wording is FastAPI's.
        failed(status).reword(
            StatusCode::UNAUTHORIZED,
            StatusCode::UNAUTHORIZED,
            crate::error::fastapi_unauthorized(forwarded.bearer_presented()),
        )
    })?;
    Ok(Json(MessageResponse { message: format!("Hello {}! This is a protected route", user.username) }))
}

/// This module's routes, for `routes::api`.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default().routes(routes!(signup)).routes(routes!(token)).routes(routes!(protected))
}
