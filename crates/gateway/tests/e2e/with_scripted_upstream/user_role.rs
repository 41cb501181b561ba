//! `POST /user/role` against the scripted auth-svc: the bearer token travels as metadata, and
//! SetUserRole's statuses come back in the go-zero dialect.

use reqwest::StatusCode;
use serde_json::{Value, json};
use tonic::Code;
use tonic_health::ServingStatus;

use crate::support::{
    client, header, read,
    scripted_upstream::{Behavior, Fixture, start},
};

fn failing(code: Code, message: &'static str) -> Behavior {
    Behavior::Fail { code, message, retry_after: None }
}

/// POST /user/role with `Authorization: Bearer <token>`.
async fn set_role(fixture: &Fixture, token: &str, body: &Value) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    read(client().post(fixture.url("/user/role")).bearer_auth(token).json(body).send().await.unwrap()).await
}

#[tokio::test]
async fn set_role_answers_the_account_and_forwards_the_bearer_token() {
    let fixture = start(Behavior::Answer, ServingStatus::Serving, 5_000).await;
    let (status, headers, body) =
        set_role(&fixture, "adm.in.token", &json!({"username": "bob", "role": "admin"})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&headers, "content-type"), "application/json");
    assert_eq!(body, json!({"id": 7, "username": "bob", "role": "admin"}));
    let metadata = fixture.last_metadata();
    assert_eq!(metadata.get("authorization").unwrap(), "Bearer adm.in.token");
    assert_eq!(metadata.get("x-forwarded-for").unwrap(), "127.0.0.1");
}

#[tokio::test]
async fn set_role_maps_set_user_role_failures() {
    let cases = [
        (
            failing(Code::PermissionDenied, "only an admin may set roles"),
            StatusCode::FORBIDDEN,
            json!({"code": 403, "msg": "permission denied"}),
        ),
        (failing(Code::NotFound, "no such user"), StatusCode::NOT_FOUND, json!({"code": 404, "msg": "user not found"})),
        (
            failing(Code::InvalidArgument, "unknown role \"root\""),
            StatusCode::BAD_REQUEST,
            json!({"code": 400, "msg": "unknown role \"root\""}),
        ),
        (
            failing(Code::Unauthenticated, "invalid access token"),
            StatusCode::UNAUTHORIZED,
            json!({"code": 401, "msg": "invalid access token"}),
        ),
    ];
    for (behavior, expected_status, expected_body) in cases {
        let fixture = start(behavior, ServingStatus::Serving, 5_000).await;
        let (status, headers, body) = set_role(&fixture, "a.b.c", &json!({"username": "bob", "role": "root"})).await;
        assert_eq!(status, expected_status, "{body}");
        assert_eq!(body, expected_body);
        let challenge = headers.get("www-authenticate").map(|value| value.to_str().unwrap());
        assert_eq!(challenge, (status == StatusCode::UNAUTHORIZED).then_some("Bearer"), "{status}");
        assert_eq!(fixture.last_metadata().get("authorization").unwrap(), "Bearer a.b.c");
    }
}

#[tokio::test]
async fn set_role_without_a_token_is_401() {
    let fixture = start(Behavior::Answer, ServingStatus::Serving, 5_000).await;
    let response =
        client().post(fixture.url("/user/role")).json(&json!({"username": "bob", "role": "admin"})).send().await;
    let (status, headers, body) = read(response.unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(header(&headers, "www-authenticate"), "Bearer");
    assert_eq!(body, json!({"code": 401, "msg": "missing authorization: Bearer token"}));
    assert!(fixture.last_metadata().get("authorization").is_none());
}

#[tokio::test]
async fn set_role_with_a_bad_body_is_400_without_calling_auth_svc() {
    let fixture = start(Behavior::Answer, ServingStatus::Serving, 5_000).await;
    let (status, _, body) = set_role(&fixture, "a.b.c", &json!({"username": "bob"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], 400);
    assert!(body["msg"].as_str().unwrap().contains("missing field `role`"), "{body}");

    let (status, _, body) = set_role(&fixture, "a.b.c", &json!({"username": "bob", "role": 1})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], 400);

    let response = client()
        .post(fixture.url("/user/role"))
        .bearer_auth("a.b.c")
        .header("content-type", "application/json")
        .body("{\"username\": ")
        .send()
        .await
        .unwrap();
    let (status, _, body) = read(response).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["msg"].as_str().unwrap().starts_with("Failed to parse the request body as JSON"), "{body}");

    let response = client().post(fixture.url("/user/role")).bearer_auth("a.b.c").body("username=bob").send().await;
    let (status, _, body) = read(response.unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, json!({"code": 400, "msg": "Expected request with `Content-Type: application/json`"}));
    assert_eq!(fixture.calls(), 0);
}
