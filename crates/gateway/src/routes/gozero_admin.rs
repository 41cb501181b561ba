//! The operators' routes, in the go-zero dialect (issues 14 and 19): `/admin/users` and
//! `/admin/users/{id}/…`. Each needs an admin's bearer token, which travels to auth-svc untouched
//! (auth-svc checks the role, and that the account is still an admin); each handler makes exactly
//! one `UserService` call. A malformed `{id}` or query is refused here, without a call.

use auth_api::user::v1::{
    DeleteUserRequest, DisableUserRequest, EnableUserRequest, GetUserRequest, ListUsersRequest, ResetMfaRequest,
    RevokeUserSessionsRequest, UserRecord, get_user_request,
};
use axum::{Json, extract::State, http::StatusCode};
use serde::{Deserialize, Serialize};
use tonic::Status;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    gozero::{TAG, failed},
    gozero_accounts::EmptyResp,
    timestamp,
};
use crate::{
    error::{ApiError, CodeError},
    extract::{PathParam, QueryParams, WithAuthorization},
    state::AppState,
};

/// An account as operators see it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({
    "id": 2,
    "username": "bob",
    "role": "user",
    "createdAt": "2026-12-01T13:45:00Z",
    "disabled": false,
    "lastLoginAt": null
}))]
pub struct UserRecordResp {
    pub id: i64,
    pub username: String,
    pub role: String,
    /// When the account was created (RFC 3339, UTC).
    #[schema(format = DateTime)]
    pub created_at: String,
    /// A disabled account cannot log in or refresh.
    pub disabled: bool,
    /// The last successful login; `null` until the first.
    #[schema(format = DateTime)]
    pub last_login_at: Option<String>,
}

/// One page of accounts.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UsersPageResp {
    /// In id order.
    pub users: Vec<UserRecordResp>,
    /// Pass as `pageToken` for the next page; `""` on the last page.
    pub next_page_token: String,
}

/// The query of `GET /admin/users`; every parameter is optional.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListUsersQuery {
    /// Accounts per page, at most 100; absent or 0: 50.
    #[param(minimum = 0, maximum = 100)]
    pub page_size: Option<u32>,
    /// The `nextPageToken` of the previous page, with the same filters; absent for the first page.
    pub page_token: Option<String>,
    /// Only usernames that start with this, compared as usernames are (`AL` finds `alice`).
    pub username_prefix: Option<String>,
    /// Only accounts with exactly this role.
    pub role: Option<String>,
}

impl TryFrom<UserRecord> for UserRecordResp {
    type Error = ApiError;

    fn try_from(user: UserRecord) -> Result<Self, ApiError> {
        Ok(Self {
            created_at: timestamp::required("created_at", user.created_at)?,
            last_login_at: timestamp::optional("last_login_at", user.last_login_at)?,
            id: user.id,
            username: user.username,
            role: user.role,
            disabled: user.disabled,
        })
    }
}

impl From<ListUsersQuery> for ListUsersRequest {
    fn from(query: ListUsersQuery) -> Self {
        Self {
            // Anything over i32 is over 100 all the same: auth-svc refuses it.
            page_size: query.page_size.map_or(0, |size| i32::try_from(size).unwrap_or(i32::MAX)),
            page_token: query.page_token.unwrap_or_default(),
            username_prefix: query.username_prefix.unwrap_or_default(),
            role: query.role.unwrap_or_default(),
        }
    }
}

/// A failed call on one account: the mapper's bare "not found" would read like an unknown path.
fn failed_on_user(status: Status) -> ApiError {
    failed(status).reword(StatusCode::NOT_FOUND, StatusCode::NOT_FOUND, "user not found")
}

/// Lists accounts (admins only).
///
/// Accounts in id order, a page at a time, filtered by username prefix and role. Needs an
/// access token with role `admin`, as every `/admin/...` route does.
#[utoipa::path(get, path = "/admin/users", tag = TAG, security(("bearer" = [])), params(ListUsersQuery),
    responses(
        (status = 200, description = "One page of accounts", body = UsersPageResp),
        (status = 400, description = "A query parameter that does not parse, a page size over 100, or a page \
            token this route did not answer (or answered for other filters)", body = CodeError),
        (status = 403, description = "The caller is not an admin", body = CodeError,
            example = json!({"code": 403, "msg": "permission denied"})),
    ))]
pub async fn list_users(
    State(state): State<AppState>,
    WithAuthorization(forwarded): WithAuthorization,
    QueryParams(query): QueryParams<ListUsersQuery>,
) -> Result<Json<UsersPageResp>, ApiError> {
    let page = state.upstream.list_users(&forwarded, query.into()).await.map_err(failed)?;
    let users = page.users.into_iter().map(UserRecordResp::try_from).collect::<Result<_, _>>()?;
    Ok(Json(UsersPageResp { users, next_page_token: page.next_page_token }))
}

/// One account (admins only).
///
/// The account with this id, with its role, whether it is disabled, and when it was created and
/// last logged in.
#[utoipa::path(get, path = "/admin/users/{id}", tag = TAG, security(("bearer" = [])),
    params(("id" = i64, Path, description = "The account's id")),
    responses(
        (status = 200, description = "The account", body = UserRecordResp),
        (status = 400, description = "`id` is not an integer", body = CodeError),
        (status = 403, description = "The caller is not an admin", body = CodeError),
        (status = 404, description = "No account has this id", body = CodeError,
            example = json!({"code": 404, "msg": "user not found"})),
    ))]
pub async fn get_user(
    State(state): State<AppState>,
    WithAuthorization(forwarded): WithAuthorization,
    PathParam(id): PathParam<i64>,
) -> Result<Json<UserRecordResp>, ApiError> {
    let request = GetUserRequest { user: Some(get_user_request::User::Id(id)) };
    let user = state.upstream.get_user(&forwarded, request).await.map_err(failed_on_user)?;
    Ok(Json(user.try_into()?))
}

/// Disables an account (admins only).
///
/// The account cannot log in or refresh, every session ends and its access tokens are refused.
/// Idempotent. An admin cannot disable their own account.
#[utoipa::path(post, path = "/admin/users/{id}/disable", tag = TAG, security(("bearer" = [])),
    params(("id" = i64, Path, description = "The account's id")),
    responses(
        (status = 200, description = "The account, now disabled", body = UserRecordResp),
        (status = 400, description = "`id` is not an integer, or is the caller's own account", body = CodeError),
        (status = 403, description = "The caller is not an admin", body = CodeError),
        (status = 404, description = "No account has this id", body = CodeError),
    ))]
pub async fn disable_user(
    State(state): State<AppState>,
    WithAuthorization(forwarded): WithAuthorization,
    PathParam(id): PathParam<i64>,
) -> Result<Json<UserRecordResp>, ApiError> {
    let user = state.upstream.disable_user(&forwarded, DisableUserRequest { id }).await.map_err(failed_on_user)?;
    Ok(Json(user.try_into()?))
}

/// Enables a disabled account (admins only).
///
/// The account may log in again; its ended sessions stay ended. Idempotent.
#[utoipa::path(post, path = "/admin/users/{id}/enable", tag = TAG, security(("bearer" = [])),
    params(("id" = i64, Path, description = "The account's id")),
    responses(
        (status = 200, description = "The account, now enabled", body = UserRecordResp),
        (status = 400, description = "`id` is not an integer", body = CodeError),
        (status = 403, description = "The caller is not an admin", body = CodeError),
        (status = 404, description = "No account has this id", body = CodeError),
    ))]
pub async fn enable_user(
    State(state): State<AppState>,
    WithAuthorization(forwarded): WithAuthorization,
    PathParam(id): PathParam<i64>,
) -> Result<Json<UserRecordResp>, ApiError> {
    let user = state.upstream.enable_user(&forwarded, EnableUserRequest { id }).await.map_err(failed_on_user)?;
    Ok(Json(user.try_into()?))
}

/// Ends every session of an account (admins only).
///
/// Its refresh and access tokens are refused at once; unlike disabling, the account may log in
/// again.
#[utoipa::path(post, path = "/admin/users/{id}/revoke-sessions", tag = TAG, security(("bearer" = [])),
    params(("id" = i64, Path, description = "The account's id")),
    responses(
        (status = 200, description = "Its sessions ended", body = EmptyResp),
        (status = 400, description = "`id` is not an integer", body = CodeError),
        (status = 403, description = "The caller is not an admin", body = CodeError),
        (status = 404, description = "No account has this id", body = CodeError),
    ))]
pub async fn revoke_user_sessions(
    State(state): State<AppState>,
    WithAuthorization(forwarded): WithAuthorization,
    PathParam(id): PathParam<i64>,
) -> Result<Json<EmptyResp>, ApiError> {
    let request = RevokeUserSessionsRequest { id };
    state.upstream.revoke_user_sessions(&forwarded, request).await.map_err(failed_on_user)?;
    Ok(Json(EmptyResp {}))
}

/// Removes an account's second factor (admins only).
///
/// For a user who lost both the authenticator and the recovery codes: removes them and ends
/// every session of the account, which logs in with the password alone until it enrols again.
/// Idempotent; audited by auth-svc.
#[utoipa::path(post, path = "/admin/users/{id}/reset-mfa", tag = TAG, security(("bearer" = [])),
    params(("id" = i64, Path, description = "The account's id")),
    responses(
        (status = 200, description = "The account, without a second factor", body = UserRecordResp),
        (status = 400, description = "`id` is not an integer, or the second factor is not configured on this \
            server", body = CodeError),
        (status = 403, description = "The caller is not an admin", body = CodeError),
        (status = 404, description = "No account has this id", body = CodeError,
            example = json!({"code": 404, "msg": "user not found"})),
    ))]
pub async fn reset_mfa(
    State(state): State<AppState>,
    WithAuthorization(forwarded): WithAuthorization,
    PathParam(id): PathParam<i64>,
) -> Result<Json<UserRecordResp>, ApiError> {
    let user = state.upstream.reset_mfa(&forwarded, ResetMfaRequest { id }).await.map_err(failed_on_user)?;
    Ok(Json(user.try_into()?))
}

/// Deletes an account (admins only).
///
/// Deletes it with every session; its tokens are refused at once. Not the caller's own
/// (`DELETE /user` is for that).
#[utoipa::path(delete, path = "/admin/users/{id}", tag = TAG, security(("bearer" = [])),
    params(("id" = i64, Path, description = "The account's id")),
    responses(
        (status = 200, description = "Account deleted", body = EmptyResp),
        (status = 400, description = "`id` is not an integer, or is the caller's own account", body = CodeError),
        (status = 403, description = "The caller is not an admin", body = CodeError),
        (status = 404, description = "No account has this id", body = CodeError),
    ))]
pub async fn delete_user(
    State(state): State<AppState>,
    WithAuthorization(forwarded): WithAuthorization,
    PathParam(id): PathParam<i64>,
) -> Result<Json<EmptyResp>, ApiError> {
    state.upstream.delete_user(&forwarded, DeleteUserRequest { id }).await.map_err(failed_on_user)?;
    Ok(Json(EmptyResp {}))
}

/// This module's routes, for `routes::api`.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(list_users))
        .routes(routes!(get_user, delete_user))
        .routes(routes!(disable_user))
        .routes(routes!(enable_user))
        .routes(routes!(revoke_user_sessions))
        .routes(routes!(reset_mfa))
}
