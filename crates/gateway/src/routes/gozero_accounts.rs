//! The caller's own sessions and account, in the go-zero dialect (issue 14): `/user/sessions`,
//! `/user/logout-all`, `/user/password` and `DELETE /user`. Every route needs the bearer token,
//! which travels to auth-svc untouched; each handler makes exactly one `UserService` call.

use auth_api::user::v1::{
    ChangePasswordRequest, DeleteAccountRequest, LogoutAllRequest, RevokeSessionRequest, Session,
};
use axum::{Json, extract::State, http::StatusCode, response::IntoResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    gozero::{LoginResp, TAG, failed},
    timestamp,
};
use crate::{
    error::{ApiError, CodeError},
    extract::{JsonBody, OptionalJsonBody, PathParam, WithAuthorization},
    state::AppState,
};

/// One live session of the caller: a login and every refresh that continued it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({
    "id": "0193a6a4-7c1e-7d52-9f3a-2b8c4d5e6f70",
    "createdAt": "2026-12-01T13:45:00Z",
    "lastUsedAt": "2026-12-01T14:05:12.250Z",
    "expiresAt": "2026-12-08T13:45:00Z",
    "clientAddress": "203.0.113.9",
    "userAgent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0",
    "current": true
}))]
pub struct SessionResp {
    /// The session id (a UUID): the `sid` claim of its tokens, and the `{id}` of
    /// `DELETE /user/sessions/{id}`.
    #[schema(format = "uuid")]
    pub id: String,
    /// When the login happened (RFC 3339, UTC).
    #[schema(format = DateTime)]
    pub created_at: String,
    /// The last login or refresh.
    #[schema(format = DateTime)]
    pub last_used_at: String,
    /// When its refresh token expires.
    #[schema(format = DateTime)]
    pub expires_at: String,
    /// The client address at login; `""` when unknown.
    pub client_address: String,
    /// The client's `User-Agent` at login, at most 256 characters; `""` when none was sent.
    pub user_agent: String,
    /// Whether this is the session of the bearer token of this request.
    pub current: bool,
}

/// The caller's live sessions, newest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionsResp {
    pub sessions: Vec<SessionResp>,
}

/// Body of `/user/logout-all`; optional (no body at all is `{}`).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"keepCurrent": true}))]
pub struct LogoutAllReq {
    /// Keep the session of the bearer token; absent: `false` (every session ends).
    #[serde(default)]
    pub keep_current: bool,
}

/// Body of `/user/password` (no `Debug`: it holds passwords).
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"currentPassword": "secret123", "newPassword": "a longer secret 456"}))]
pub struct ChangePasswordReq {
    #[schema(format = Password)]
    pub current_password: String,
    /// Must meet auth-svc's password policy.
    #[schema(format = Password)]
    pub new_password: String,
}

/// Body of `DELETE /user` (no `Debug`: it holds a password).
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"password": "secret123"}))]
pub struct DeleteAccountReq {
    /// The account's password, checked again.
    #[schema(format = Password)]
    pub password: String,
}

/// An empty object: the call did what it says.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmptyResp {}

impl TryFrom<Session> for SessionResp {
    type Error = ApiError;

    fn try_from(session: Session) -> Result<Self, ApiError> {
        Ok(Self {
            created_at: timestamp::required("created_at", session.created_at)?,
            last_used_at: timestamp::required("last_used_at", session.last_used_at)?,
            expires_at: timestamp::required("expires_at", session.expires_at)?,
            id: session.id,
            client_address: session.client_address,
            user_agent: session.user_agent,
            current: session.current,
        })
    }
}

/// The caller's live sessions.
///
/// Every session of the caller that is not logged out or revoked and whose refresh token has not
/// expired, with where and when it started; `current` marks the bearer token's own.
#[utoipa::path(get, path = "/user/sessions", tag = TAG, security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's sessions, newest first", body = SessionsResp),
    ))]
pub async fn list_sessions(
    State(state): State<AppState>,
    WithAuthorization(forwarded): WithAuthorization,
) -> Result<Json<SessionsResp>, ApiError> {
    let answer = state.upstream.list_sessions(&forwarded).await.map_err(failed)?;
    let sessions = answer.sessions.into_iter().map(SessionResp::try_from).collect::<Result<_, _>>()?;
    Ok(Json(SessionsResp { sessions }))
}

/// Ends one of the caller's sessions.
///
/// Ends it as `/user/logout` ends the current one (which may be this one): its refresh and
/// access tokens are refused at once. Only the caller's own sessions can be named.
#[utoipa::path(delete, path = "/user/sessions/{id}", tag = TAG, security(("bearer" = [])),
    params(("id" = String, Path, description = "A session id (UUID) from `GET /user/sessions`")),
    responses(
        (status = 200, description = "Session ended", body = EmptyResp),
        (status = 400, description = "`id` is not a session id", body = CodeError),
        (status = 404, description = "No live session of the caller has this id (another user's session \
            gets the same answer)", body = CodeError, example = json!({"code": 404, "msg": "session not found"})),
    ))]
pub async fn revoke_session(
    State(state): State<AppState>,
    WithAuthorization(forwarded): WithAuthorization,
    PathParam(session_id): PathParam<String>,
) -> Result<Json<EmptyResp>, ApiError> {
    let request = RevokeSessionRequest { session_id };
    state
        .upstream
        .revoke_session(&forwarded, request)
        .await
        .map_err(|status| failed(status).reword(StatusCode::NOT_FOUND, StatusCode::NOT_FOUND, "session not found"))?;
    Ok(Json(EmptyResp {}))
}

/// Ends every session of the caller.
///
/// With `keepCurrent`, every one but the bearer token's own. The body is optional: a request
/// without one (as `/user/logout` takes) ends every session.
#[utoipa::path(post, path = "/user/logout-all", tag = TAG, security(("bearer" = [])),
    request_body = Option<LogoutAllReq>,
    responses(
        (status = 200, description = "Sessions ended", body = EmptyResp),
    ))]
pub async fn logout_all(
    State(state): State<AppState>,
    WithAuthorization(forwarded): WithAuthorization,
    OptionalJsonBody(body): OptionalJsonBody<LogoutAllReq>,
) -> Result<Json<EmptyResp>, ApiError> {
    let request = LogoutAllRequest { keep_current: body.keep_current };
    state.upstream.logout_all(&forwarded, request).await.map_err(failed)?;
    Ok(Json(EmptyResp {}))
}

/// Changes the caller's password.
///
/// Checks the current password, sets the new one and ends every session of the account, the
/// caller's too; the caller goes on with the pair answered, of a new session.
#[utoipa::path(post, path = "/user/password", tag = TAG, security(("bearer" = [])), request_body = ChangePasswordReq,
    responses(
        (status = 200, description = "The token pair of a new session for the caller", body = LoginResp,
            headers(("cache-control" = String, description = "no-store"))),
        (status = 400, description = "Body does not parse or misses a field, or the new password breaks the \
            policy", body = CodeError),
        (status = 401, description = "Wrong current password, or a missing, invalid or expired access token",
            body = CodeError, example = json!({"code": 401, "msg": "invalid credentials"})),
        (status = 429, description = "Too many failed password checks for this account or client address, or \
            auth-svc's hashing queue is full", body = CodeError),
    ))]
pub async fn change_password(
    State(state): State<AppState>,
    WithAuthorization(forwarded): WithAuthorization,
    JsonBody(body): JsonBody<ChangePasswordReq>,
) -> Result<impl IntoResponse, ApiError> {
    let request = ChangePasswordRequest { current_password: body.current_password, new_password: body.new_password };
    let pair = state.upstream.change_password(&forwarded, request).await.map_err(failed)?;
    Ok(super::no_store(LoginResp::from(pair)))
}

/// Deletes the caller's account.
///
/// Checks the password again, then deletes the account with every session: its tokens are
/// refused at once and the username is free again.
#[utoipa::path(delete, path = "/user", tag = TAG, security(("bearer" = [])), request_body = DeleteAccountReq,
    responses(
        (status = 200, description = "Account deleted", body = EmptyResp),
        (status = 401, description = "Wrong password, or a missing, invalid or expired access token",
            body = CodeError, example = json!({"code": 401, "msg": "invalid credentials"})),
        (status = 429, description = "Too many failed password checks for this account or client address, or \
            auth-svc's hashing queue is full", body = CodeError),
    ))]
pub async fn delete_account(
    State(state): State<AppState>,
    WithAuthorization(forwarded): WithAuthorization,
    JsonBody(body): JsonBody<DeleteAccountReq>,
) -> Result<Json<EmptyResp>, ApiError> {
    let request = DeleteAccountRequest { password: body.password };
    state.upstream.delete_account(&forwarded, request).await.map_err(failed)?;
    Ok(Json(EmptyResp {}))
}

/// This module's routes, for `routes::api`.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(list_sessions))
        .routes(routes!(revoke_session))
        .routes(routes!(logout_all))
        .routes(routes!(change_password))
        .routes(routes!(delete_account))
}
