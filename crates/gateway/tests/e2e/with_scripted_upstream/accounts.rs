//! The routes of issue 14 (the caller's sessions and account, the operators' `/admin/users`)
//! against the scripted auth-svc: the request message each one sends (fields, path and query
//! parameters, the bearer token), the exact REST body it answers (RFC 3339 times, `null` for a
//! missing last login), the go-zero statuses of the calls' failures, and the 400 of a malformed
//! path id, query or body, which never reaches auth-svc.

use auth_api::user::v1::{
    ChangePasswordRequest, DeleteAccountRequest, DeleteUserRequest, DisableUserRequest, EnableUserRequest,
    GetUserRequest, ListSessionsRequest, ListUsersRequest, LogoutAllRequest, RevokeSessionRequest,
    RevokeUserSessionsRequest, get_user_request,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tonic::Code;
use tonic_health::ServingStatus;

use crate::support::{
    cases::{
        Auth::{self, Bearer},
        Call::{self, Send},
        Case,
        Message::{Contains, Is},
        check,
    },
    header, read,
    scripted_upstream::{Behavior, Fixture, start},
};

const TOKEN: &str = "acc.ess.token";

async fn scripted() -> Fixture {
    start(Behavior::Answer, ServingStatus::Serving, 5_000).await
}

/// Sends `method path` with the bearer token (and `body` as JSON if given): status, headers, body.
async fn send(
    fixture: &Fixture,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut request = fixture.client.request(method, fixture.url(path)).bearer_auth(TOKEN);
    if let Some(body) = body {
        request = request.json(&body);
    }
    read(request.send().await.unwrap()).await
}

fn assert_bearer_forwarded(fixture: &Fixture) {
    assert_eq!(fixture.last_metadata().get("authorization").unwrap(), format!("Bearer {TOKEN}").as_str());
}

#[tokio::test]
async fn sessions_are_listed_with_rfc3339_times() {
    let fixture = scripted().await;
    let (status, headers, body) = send(&fixture, Method::GET, "/user/sessions", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(header(&headers, "content-type"), "application/json");
    assert_eq!(
        body,
        json!({"sessions": [
            {
                "id": "0193a6a4-7c1e-7d52-9f3a-2b8c4d5e6f70",
                "createdAt": "2026-12-01T13:45:00Z",
                "lastUsedAt": "2026-12-01T14:05:12.250Z",
                "expiresAt": "2026-12-08T13:45:00Z",
                "clientAddress": "203.0.113.9",
                "userAgent": "curl/8.5.0",
                "current": true
            },
            {
                "id": "0193a6a4-0000-7000-8000-000000000001",
                "createdAt": "2026-11-30T13:45:00Z",
                "lastUsedAt": "2026-12-01T12:45:00Z",
                "expiresAt": "2026-12-07T13:45:00Z",
                "clientAddress": "",
                "userAgent": "",
                "current": false
            }
        ]})
    );
    assert_eq!(fixture.last_request::<ListSessionsRequest>(), ListSessionsRequest {});
    assert_bearer_forwarded(&fixture);
}

#[tokio::test]
async fn a_session_is_revoked_by_the_id_in_the_path() {
    let fixture = scripted().await;
    let path = "/user/sessions/0193a6a4-0000-7000-8000-000000000001";
    let (status, _, body) = send(&fixture, Method::DELETE, path, None).await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));
    let sent = fixture.last_request::<RevokeSessionRequest>();
    assert_eq!(sent.session_id, "0193a6a4-0000-7000-8000-000000000001");
    assert_bearer_forwarded(&fixture);

    // The gateway does not judge ids: auth-svc answers INVALID_ARGUMENT for one that is no UUID.
    let (status, _, _) = send(&fixture, Method::DELETE, "/user/sessions/not%20a%20uuid", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fixture.last_request::<RevokeSessionRequest>().session_id, "not a uuid");
}

#[tokio::test]
async fn logout_all_keeps_the_current_session_only_when_asked() {
    let fixture = scripted().await;
    let keep_current = || fixture.last_request::<LogoutAllRequest>().keep_current;
    for (body, expected) in [
        (None, false),
        (Some(json!({})), false),
        (Some(json!({"keepCurrent": true})), true),
        (Some(json!({"keepCurrent": false})), false),
    ] {
        let (status, _, answer) = send(&fixture, Method::POST, "/user/logout-all", body.clone()).await;
        assert_eq!((status, answer), (StatusCode::OK, json!({})), "{body:?}");
        assert_eq!(keep_current(), expected, "{body:?}");
        assert_bearer_forwarded(&fixture);
    }
    // An empty body with the JSON media type is no body too.
    let response = fixture
        .client
        .post(fixture.url("/user/logout-all"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(!keep_current());
}

#[tokio::test]
async fn a_password_change_sends_both_passwords_and_answers_a_fresh_pair() {
    let fixture = scripted().await;
    let body = json!({"currentPassword": "old secret", "newPassword": "new secret"});
    let (status, headers, answer) = send(&fixture, Method::POST, "/user/password", Some(body)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&headers, "cache-control"), "no-store");
    assert_eq!(answer, json!({"accessToken": "a.b.c", "refreshToken": "d.e.f", "expiresIn": 60}));
    let sent = fixture.last_request::<ChangePasswordRequest>();
    assert_eq!((sent.current_password.as_str(), sent.new_password.as_str()), ("old secret", "new secret"));
    assert_bearer_forwarded(&fixture);
}

#[tokio::test]
async fn deleting_the_account_sends_the_password() {
    let fixture = scripted().await;
    let (status, _, answer) = send(&fixture, Method::DELETE, "/user", Some(json!({"password": "secret123"}))).await;
    assert_eq!((status, answer), (StatusCode::OK, json!({})));
    assert_eq!(fixture.last_request::<DeleteAccountRequest>().password, "secret123");
    assert_bearer_forwarded(&fixture);
}

/// Account 2 as the scripted upstream answers it (see `user_record`), `disabled` as given.
fn user_two(disabled: bool) -> Value {
    json!({
        "id": 2, "username": "user2", "role": "user", "createdAt": "2026-12-01T13:45:00Z",
        "disabled": disabled, "lastLoginAt": "2026-12-01T13:46:00.000500Z"
    })
}

#[tokio::test]
async fn users_are_listed_a_page_at_a_time() {
    let fixture = scripted().await;
    let path = "/admin/users?pageSize=2&usernamePrefix=us&role=user";
    let (status, _, body) = send(&fixture, Method::GET, path, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let user_three = json!({
        "id": 3, "username": "user3", "role": "user", "createdAt": "2026-12-01T13:45:00Z",
        "disabled": true, "lastLoginAt": null
    });
    assert_eq!(body, json!({"users": [user_two(false), user_three], "nextPageToken": "page-2"}));
    let sent = fixture.last_request::<ListUsersRequest>();
    let expected =
        ListUsersRequest { page_size: 2, page_token: String::new(), username_prefix: "us".into(), role: "user".into() };
    assert_eq!(sent, expected);
    assert_bearer_forwarded(&fixture);

    let (status, _, body) = send(&fixture, Method::GET, "/admin/users?pageToken=page-2&pageSize=2", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["nextPageToken"], "", "the last page");
    assert_eq!(fixture.last_request::<ListUsersRequest>().page_token, "page-2");

    // No query at all: auth-svc's defaults. Unknown parameters are ignored.
    let (status, _, _) = send(&fixture, Method::GET, "/admin/users?colour=blue", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fixture.last_request::<ListUsersRequest>(), ListUsersRequest::default());

    // A size over i32 is still a number: auth-svc refuses it as over 100.
    let (status, _, _) = send(&fixture, Method::GET, "/admin/users?pageSize=4294967295", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fixture.last_request::<ListUsersRequest>().page_size, i32::MAX);
}

#[tokio::test]
async fn one_account_is_read_disabled_and_enabled_by_its_id() {
    let fixture = scripted().await;
    let (status, _, body) = send(&fixture, Method::GET, "/admin/users/2", None).await;
    assert_eq!((status, body), (StatusCode::OK, user_two(false)));
    let sent = fixture.last_request::<GetUserRequest>();
    assert_eq!(sent.user, Some(get_user_request::User::Id(2)));
    assert_bearer_forwarded(&fixture);

    let (status, _, body) = send(&fixture, Method::POST, "/admin/users/2/disable", None).await;
    assert_eq!((status, body), (StatusCode::OK, user_two(true)));
    assert_eq!(fixture.last_request::<DisableUserRequest>(), DisableUserRequest { id: 2 });
    assert_bearer_forwarded(&fixture);

    let (status, _, body) = send(&fixture, Method::POST, "/admin/users/2/enable", None).await;
    assert_eq!((status, body), (StatusCode::OK, user_two(false)));
    assert_eq!(fixture.last_request::<EnableUserRequest>(), EnableUserRequest { id: 2 });
    assert_bearer_forwarded(&fixture);

    let (status, _, body) = send(&fixture, Method::GET, "/admin/users/3", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["lastLoginAt"], Value::Null, "never logged in: {body}");
    assert!(body.as_object().unwrap().contains_key("lastLoginAt"), "null, not left out");
}

#[tokio::test]
async fn an_accounts_sessions_are_revoked_and_the_account_deleted_by_its_id() {
    let fixture = scripted().await;
    let (status, _, body) = send(&fixture, Method::POST, "/admin/users/9/revoke-sessions", None).await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));
    assert_eq!(fixture.last_request::<RevokeUserSessionsRequest>(), RevokeUserSessionsRequest { id: 9 });
    assert_bearer_forwarded(&fixture);

    let (status, _, body) = send(&fixture, Method::DELETE, "/admin/users/9", None).await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));
    assert_eq!(fixture.last_request::<DeleteUserRequest>(), DeleteUserRequest { id: 9 });
    assert_bearer_forwarded(&fixture);
}

/// Every route once, as a valid request with `auth`, and the `msg` its 404 carries.
fn every_route(auth: fn() -> Auth<'static>) -> Vec<(Call<'static>, &'static str)> {
    vec![
        (Send(Method::GET, "/user/sessions", auth(), None), "not found"),
        (
            Send(Method::DELETE, "/user/sessions/0193a6a4-0000-7000-8000-000000000001", auth(), None),
            "session not found",
        ),
        (Send(Method::POST, "/user/logout-all", auth(), Some(json!({"keepCurrent": true}))), "not found"),
        (
            Send(Method::POST, "/user/password", auth(), Some(json!({"currentPassword": "a", "newPassword": "b"}))),
            "not found",
        ),
        (Send(Method::DELETE, "/user", auth(), Some(json!({"password": "a"}))), "not found"),
        (Send(Method::GET, "/admin/users?pageSize=5", auth(), None), "not found"),
        (Send(Method::GET, "/admin/users/2", auth(), None), "user not found"),
        (Send(Method::POST, "/admin/users/2/disable", auth(), None), "user not found"),
        (Send(Method::POST, "/admin/users/2/enable", auth(), None), "user not found"),
        (Send(Method::POST, "/admin/users/2/revoke-sessions", auth(), None), "user not found"),
        (Send(Method::DELETE, "/admin/users/2", auth(), None), "user not found"),
    ]
}

fn bearer() -> Auth<'static> {
    Bearer(TOKEN)
}

fn no_auth() -> Auth<'static> {
    Auth::None
}

/// NOT_FOUND, PERMISSION_DENIED, UNAUTHENTICATED and INVALID_ARGUMENT on every route, in the
/// go-zero dialect; the bearer token travels on every one.
#[tokio::test]
async fn the_calls_failures_answer_their_go_zero_statuses() {
    for (code, message, status) in [
        (Code::NotFound, "no such thing", 404),
        (Code::PermissionDenied, "only admins may call this method", 403),
        (Code::Unauthenticated, "invalid access token", 401),
        (Code::InvalidArgument, "page size over 100", 400),
    ] {
        let fixture = start(Behavior::Fail { code, message, retry_after: None }, ServingStatus::Serving, 5_000).await;
        let routes = every_route(bearer);
        let count = routes.len();
        let cases: Vec<Case> = routes
            .into_iter()
            .map(|(call, not_found)| {
                let expected = match code {
                    Code::NotFound => not_found,
                    Code::PermissionDenied => "permission denied",
                    _ => message,
                };
                (call, status, Is(expected))
            })
            .collect();
        check(&fixture, &cases).await;
        assert_eq!(fixture.calls(), count, "{code:?}: one call per request");
        assert_bearer_forwarded(&fixture);
    }
}

#[tokio::test]
async fn without_a_token_every_route_is_401() {
    let fixture = scripted().await;
    let cases: Vec<Case> = every_route(no_auth)
        .into_iter()
        .map(|(call, _)| (call, 401, Is("missing authorization: Bearer token")))
        .collect();
    check(&fixture, &cases).await;
    assert!(fixture.last_metadata().get("authorization").is_none());
}

/// A malformed `{id}` or query parameter is the go-zero 400, never a 500 or axum's plain text,
/// and auth-svc is not called.
#[tokio::test]
async fn bad_path_ids_and_query_parameters_are_400_without_a_call() {
    let fixture = scripted().await;
    let bad_id = "invalid `id` in the path: invalid digit found in string";
    let cases = [
        (Send(Method::GET, "/admin/users/abc", bearer(), None), 400, Is(bad_id)),
        (Send(Method::GET, "/admin/users/1.5", bearer(), None), 400, Is(bad_id)),
        (Send(Method::GET, "/admin/users/%20", bearer(), None), 400, Is(bad_id)),
        (
            Send(Method::GET, "/admin/users/99999999999999999999", bearer(), None),
            400,
            Is("invalid `id` in the path: number too large to fit in target type"),
        ),
        (Send(Method::GET, "/admin/users/%FF", bearer(), None), 400, Contains("UTF-8")),
        (Send(Method::POST, "/admin/users/x/disable", bearer(), None), 400, Is(bad_id)),
        (Send(Method::POST, "/admin/users/x/enable", bearer(), None), 400, Is(bad_id)),
        (Send(Method::POST, "/admin/users/x/revoke-sessions", bearer(), None), 400, Is(bad_id)),
        (Send(Method::DELETE, "/admin/users/x", bearer(), None), 400, Is(bad_id)),
        (Send(Method::GET, "/user/sessions/x", bearer(), None), 405, Is("Method Not Allowed")),
        (Send(Method::GET, "/admin/users?pageSize=abc", bearer(), None), 400, Contains("pageSize")),
        (Send(Method::GET, "/admin/users?pageSize=-1", bearer(), None), 400, Contains("pageSize")),
        (Send(Method::GET, "/admin/users?pageSize=", bearer(), None), 400, Contains("pageSize")),
        (Send(Method::GET, "/admin/users?pageSize=1e3", bearer(), None), 400, Contains("pageSize")),
        (Send(Method::GET, "/admin/users?pageSize=4294967296", bearer(), None), 400, Contains("pageSize")),
        (Send(Method::GET, "/admin/users?role=a&role=b", bearer(), None), 400, Contains("duplicate field `role`")),
    ];
    check(&fixture, &cases).await;
    assert_eq!(fixture.calls(), 0);
}

/// Bodies that do not parse, miss a field or have the wrong type are the go-zero 400.
#[tokio::test]
async fn bad_bodies_are_400_without_a_call() {
    let fixture = scripted().await;
    let cases = [
        (
            Send(Method::POST, "/user/logout-all", bearer(), Some(json!({"keepCurrent": "yes"}))),
            400,
            Contains("keepCurrent"),
        ),
        (
            Send(Method::POST, "/user/password", bearer(), Some(json!({"currentPassword": "a"}))),
            400,
            Contains("missing field `newPassword`"),
        ),
        (
            Send(Method::POST, "/user/password", bearer(), None),
            400,
            Is("Expected request with `Content-Type: application/json`"),
        ),
        (Send(Method::DELETE, "/user", bearer(), Some(json!({}))), 400, Contains("missing field `password`")),
        (
            Send(Method::DELETE, "/user", bearer(), None),
            400,
            Is("Expected request with `Content-Type: application/json`"),
        ),
    ];
    check(&fixture, &cases).await;
    // A body that is not JSON, on the route whose body is optional.
    let response =
        fixture.client.post(fixture.url("/user/logout-all")).bearer_auth(TOKEN).body("keepCurrent=true").send().await;
    let (status, _, body) = read(response.unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, json!({"code": 400, "msg": "Expected request with `Content-Type: application/json`"}));
    assert_eq!(fixture.calls(), 0);
}
