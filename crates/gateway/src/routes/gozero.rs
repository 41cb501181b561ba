//! The go-zero tutorial's `user-api`: camelCase JSON under `/user/…`, errors as
//! `{"code","msg"}`. Each handler makes exactly one `UserService` call. The same dialect's
//! routes for the caller's sessions and account are in `gozero_accounts`, the second factor's in
//! `gozero_mfa`, the operators' in `gozero_admin`.

use auth_api::user::v1::{
    LoginRequest, LoginResponse, RefreshRequest, RegisterRequest, RegisterResponse, SetUserRoleRequest, UserInfo,
};
use axum::{Json, extract::State, http::StatusCode, response::IntoResponse};
use serde::{Deserialize, Serialize};
use tonic::Status;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    error::{ApiError, CodeError, Dialect},
    extract::{Forwarded, JsonBody, WithAuthorization},
    state::AppState,
};

pub const TAG: &str = "go-zero";

/// A failed call, in this dialect (shared with `gozero_accounts` and `gozero_admin`).
pub(super) fn failed(status: Status) -> ApiError {
    ApiError::from_grpc(Dialect::GoZero, &status)
}

/// Body of `/user/register` (no `Debug`: it holds a password).
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"username": "alice", "password": "secret123"}))]
pub struct RegisterReq {
    pub username: String,
    #[schema(format = Password)]
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"id": 1, "username": "alice", "role": "user"}))]
pub struct RegisterResp {
    pub id: i64,
    pub username: String,
    pub role: String,
}

/// Body of `/user/login` (no `Debug`: it holds a password).
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"username": "alice", "password": "secret123"}))]
pub struct LoginReq {
    pub username: String,
    #[schema(format = Password)]
    pub password: String,
}

/// A fresh token pair (no `Debug`: it holds tokens).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoginResp {
    /// JWT to send as `Authorization: Bearer <token>`.
    pub access_token: String,
    /// JWT accepted only by `/user/refresh`; single use.
    pub refresh_token: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
}

/// The first step of a login passed for an account with a second factor: no tokens yet, a
/// challenge for `/user/mfa/verify` instead (no `Debug`: the challenge stands in for the
/// password).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"mfaChallenge": {"challenge": "eyJ0eXAiOiJtZmErand0In0.e30.c2ln", "expiresIn": 300,
    "methods": ["totp", "recovery_code"]}}))]
pub struct MfaChallengeResp {
    pub mfa_challenge: MfaChallenge,
}

/// What `/user/mfa/verify` needs besides a code.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MfaChallenge {
    /// Opaque and single use: send it to `/user/mfa/verify` with a code.
    pub challenge: String,
    /// Seconds until the challenge expires (then log in again).
    pub expires_in: i64,
    /// What `/user/mfa/verify` accepts: `totp` (`code`), `recovery_code` (`recoveryCode`).
    #[schema(example = json!(["totp", "recovery_code"]))]
    pub methods: Vec<String>,
}

/// `/user/login`'s 200 body: the pair, or, for an account with a second factor, the challenge
/// alone (the proto3 JSON mapping of the one `LoginResponse` auth-svc answers).
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum LoginAnswer {
    Pair(LoginResp),
    Challenge(MfaChallengeResp),
}

impl From<LoginResponse> for LoginAnswer {
    /// The challenge wins: auth-svc sets it instead of the tokens (user.proto: check it first).
    fn from(answer: LoginResponse) -> Self {
        match answer.mfa_challenge {
            Some(challenge) => Self::Challenge(MfaChallengeResp {
                mfa_challenge: MfaChallenge {
                    challenge: challenge.challenge,
                    expires_in: challenge.expires_in,
                    methods: challenge.methods,
                },
            }),
            None => Self::Pair(answer.into()),
        }
    }
}

/// Body of `/user/refresh`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefreshReq {
    pub refresh_token: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"id": 1, "username": "alice", "role": "user"}))]
pub struct UserInfoResp {
    pub id: i64,
    pub username: String,
    pub role: String,
}

/// Body of `/user/role`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"username": "bob", "role": "admin"}))]
pub struct SetRoleReq {
    /// The account to change.
    pub username: String,
    /// One of auth-svc's configured roles (`auth.roles`).
    pub role: String,
}

/// `/user/logout` answers an empty object.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogoutResp {}

impl From<RegisterResponse> for RegisterResp {
    fn from(user: RegisterResponse) -> Self {
        Self { id: user.id, username: user.username, role: user.role }
    }
}

impl From<LoginResponse> for LoginResp {
    fn from(pair: LoginResponse) -> Self {
        Self { access_token: pair.access_token, refresh_token: pair.refresh_token, expires_in: pair.expires_in }
    }
}

impl From<UserInfo> for UserInfoResp {
    fn from(user: UserInfo) -> Self {
        Self { id: user.id, username: user.username, role: user.role }
    }
}

/// Creates an account with role `user`.
///
/// The go-zero tutorial's sign-up: the username and password must pass auth-svc's policy. The
/// answer is the new account, without tokens: log in with `/user/login` to get a pair.
#[utoipa::path(post, path = "/user/register", tag = TAG, request_body = RegisterReq,
    responses(
        (status = 200, description = "Account created", body = RegisterResp),
        (status = 400, description = "Body does not parse, or breaks the username/password policy", body = CodeError),
        (status = 409, description = "Username taken", body = CodeError,
            example = json!({"code": 409, "msg": "username already exists"})),
        (status = 429, description = "Too many sign-ups from this client address, or auth-svc's hashing \
            queue is full", body = CodeError),
    ))]
pub async fn register(
    State(state): State<AppState>,
    forwarded: Forwarded,
    JsonBody(body): JsonBody<RegisterReq>,
) -> Result<Json<RegisterResp>, ApiError> {
    let request = RegisterRequest { username: body.username, password: body.password };
    let user = state.upstream.register(&forwarded, request).await.map_err(failed)?;
    Ok(Json(user.into()))
}

/// Logs in: a username and password for a token pair.
///
/// Checks the password and starts a new session, answered as an access token (for
/// `Authorization: Bearer`) and a single-use refresh token (for `/user/refresh`). Failed logins
/// are throttled per username and per client address. For an account with a second factor the
/// answer is `{"mfaChallenge": …}` instead, with no tokens: send the challenge and a code to
/// `/user/mfa/verify` for the pair.
#[utoipa::path(post, path = "/user/login", tag = TAG, request_body = LoginReq,
    responses(
        (status = 200, description = "Token pair; for an account with a second factor, the challenge for \
            `/user/mfa/verify` instead", body = LoginAnswer,
            headers(("cache-control" = String, description = "no-store"))),
        (status = 400, description = "Body does not parse, misses a field, or breaks the username/password \
            policy", body = CodeError),
        (status = 401, description = "Wrong username or password", body = CodeError,
            example = json!({"code": 401, "msg": "invalid credentials"})),
        (status = 429, description = "Too many failed logins for this username or client address, or \
            auth-svc's hashing queue is full", body = CodeError),
    ))]
pub async fn login(
    State(state): State<AppState>,
    forwarded: Forwarded,
    JsonBody(body): JsonBody<LoginReq>,
) -> Result<impl IntoResponse, ApiError> {
    let request = LoginRequest { username: body.username, password: body.password };
    let answer = state.upstream.login(&forwarded, request).await.map_err(failed)?;
    Ok(super::no_store(LoginAnswer::from(answer)))
}

/// Exchanges a refresh token for a new token pair.
///
/// The presented refresh token is spent. Presented again within `auth.refresh_reuse_interval`
/// seconds it answers the same new pair (tabs refreshing at once); later, it is taken as stolen and
/// ends its session.
#[utoipa::path(post, path = "/user/refresh", tag = TAG, request_body = RefreshReq,
    responses(
        (status = 200, description = "New token pair", body = LoginResp,
            headers(("cache-control" = String, description = "no-store"))),
        (status = 400, description = "Body does not parse or misses a field", body = CodeError),
        (status = 401, description = "Refresh token invalid, expired or already used", body = CodeError),
    ))]
pub async fn refresh(
    State(state): State<AppState>,
    forwarded: Forwarded,
    JsonBody(body): JsonBody<RefreshReq>,
) -> Result<impl IntoResponse, ApiError> {
    let request = RefreshRequest { refresh_token: body.refresh_token };
    let pair = state.upstream.refresh(&forwarded, request).await.map_err(failed)?;
    Ok(super::no_store(LoginResp::from(pair)))
}

/// The caller's account.
///
/// The id, username and role of the account behind the bearer access token.
#[utoipa::path(get, path = "/user/info", tag = TAG, security(("bearer" = [])),
    responses(
        (status = 200, description = "The account", body = UserInfoResp),
    ))]
pub async fn info(
    State(state): State<AppState>,
    WithAuthorization(forwarded): WithAuthorization,
) -> Result<Json<UserInfoResp>, ApiError> {
    let user = state.upstream.user_info(&forwarded).await.map_err(failed)?;
    Ok(Json(user.into()))
}

/// Logs out: ends the session of the bearer access token.
///
/// The session's refresh and access tokens are refused at once. The caller's other sessions go
/// on (`/user/logout-all` ends them too).
#[utoipa::path(post, path = "/user/logout", tag = TAG, security(("bearer" = [])),
    responses(
        (status = 200, description = "Session ended", body = LogoutResp),
    ))]
pub async fn logout(
    State(state): State<AppState>,
    WithAuthorization(forwarded): WithAuthorization,
) -> Result<Json<LogoutResp>, ApiError> {
    state.upstream.logout(&forwarded).await.map_err(failed)?;
    Ok(Json(LogoutResp {}))
}

/// Sets the role of an account (admins only).
///
/// Tokens issued to the account afterwards carry the new role. Needs an access token with role
/// `admin` whose account is still an admin.
#[utoipa::path(post, path = "/user/role", tag = TAG, security(("bearer" = [])), request_body = SetRoleReq,
    responses(
        (status = 200, description = "The account, with its new role", body = UserInfoResp,
            example = json!({"id": 2, "username": "bob", "role": "admin"})),
        (status = 400, description = "Body does not parse or misses a field, or the role is not one of the \
            configured roles", body = CodeError),
        (status = 403, description = "The token's role is not `admin`", body = CodeError,
            example = json!({"code": 403, "msg": "permission denied"})),
        (status = 404, description = "No account has this username", body = CodeError,
            example = json!({"code": 404, "msg": "user not found"})),
    ))]
pub async fn set_role(
    State(state): State<AppState>,
    WithAuthorization(forwarded): WithAuthorization,
    JsonBody(body): JsonBody<SetRoleReq>,
) -> Result<Json<UserInfoResp>, ApiError> {
    let request = SetUserRoleRequest { username: body.username, role: body.role };
    let user = state.upstream.set_user_role(&forwarded, request).await.map_err(|status| {
        // The mapper's bare "not found" would read like an unknown path.
        failed(status).reword(StatusCode::NOT_FOUND, StatusCode::NOT_FOUND, "user not found")
    })?;
    Ok(Json(user.into()))
}

/// This module's routes, for `routes::api`.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(info))
        .routes(routes!(logout))
        .routes(routes!(set_role))
}
