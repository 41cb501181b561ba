//! The go-zero routes: camelCase JSON, errors as {"code","msg"}.

use reqwest::StatusCode;
use serde_json::json;

use crate::support::{header, is_jwt, read, spawn_app};

#[tokio::test]
async fn register_returns_the_new_account() {
    let app = spawn_app().await;
    let response = app.post_json("/user/register", &json!({"username": "alice", "password": "secret123"})).await;
    let (status, headers, body) = read(response).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&headers, "content-type"), "application/json");
    assert_eq!(body, json!({"id": 1, "username": "alice", "role": "user"}));
}

#[tokio::test]
async fn register_with_a_taken_username_is_409() {
    let app = spawn_app().await;
    app.register("alice", "secret123").await;
    let response = app.post_json("/user/register", &json!({"username": "alice", "password": "other-secret"})).await;
    let (status, _, body) = read(response).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body, json!({"code": 409, "msg": "username already exists"}));
}

#[tokio::test]
async fn register_breaking_the_password_policy_is_400_with_the_reason() {
    let app = spawn_app().await;
    let response = app.post_json("/user/register", &json!({"username": "alice", "password": "short"})).await;
    let (status, _, body) = read(response).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, json!({"code": 400, "msg": "password must be at least 8 characters"}));
}

#[tokio::test]
async fn malformed_or_incomplete_json_is_400() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(app.url("/user/login"))
        .header("content-type", "application/json")
        .body("{\"username\": ")
        .send()
        .await
        .unwrap();
    let (status, _, body) = read(response).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], 400);
    assert!(body["msg"].as_str().unwrap().starts_with("Failed to parse the request body as JSON"), "{body}");

    let response = app.post_json("/user/register", &json!({"username": "alice"})).await;
    let (status, _, body) = read(response).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], 400);
    assert!(body["msg"].as_str().unwrap().contains("missing field `password`"), "{body}");

    let response = app.client.post(app.url("/user/login")).body("username=alice").send().await.unwrap();
    let (status, _, body) = read(response).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, json!({"code": 400, "msg": "Expected request with `Content-Type: application/json`"}));
}

#[tokio::test]
async fn login_returns_a_token_pair_that_caches_must_not_keep() {
    let app = spawn_app().await;
    app.register("alice", "secret123").await;
    let response = app.post_json("/user/login", &json!({"username": "alice", "password": "secret123"})).await;
    let (status, headers, body) = read(response).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&headers, "cache-control"), "no-store");
    let keys: Vec<_> = body.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["accessToken", "expiresIn", "refreshToken"]);
    assert!(is_jwt(body["accessToken"].as_str().unwrap()));
    assert!(is_jwt(body["refreshToken"].as_str().unwrap()));
    assert_eq!(body["expiresIn"], 900);
}

#[tokio::test]
async fn login_with_wrong_credentials_is_401_invalid_credentials() {
    let app = spawn_app().await;
    app.register("alice", "secret123").await;
    for (username, password) in [("alice", "wrong-password"), ("nobody", "secret123")] {
        let response = app.post_json("/user/login", &json!({"username": username, "password": password})).await;
        let (status, headers, body) = read(response).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(header(&headers, "www-authenticate"), "Bearer");
        assert_eq!(body, json!({"code": 401, "msg": "invalid credentials"}));
    }
}

#[tokio::test]
async fn refresh_rotates_the_pair() {
    let app = spawn_app().await;
    app.register("alice", "secret123").await;
    let (_, refresh) = app.login("alice", "secret123").await;
    let response = app.post_json("/user/refresh", &json!({"refreshToken": refresh})).await;
    let (status, headers, body) = read(response).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&headers, "cache-control"), "no-store");
    assert_eq!(body["expiresIn"], 900);
    let new_refresh = body["refreshToken"].as_str().unwrap();
    assert!(is_jwt(new_refresh));
    assert_ne!(new_refresh, refresh);
    let info = app.get_with_token("/user/info", body["accessToken"].as_str().unwrap()).await;
    assert_eq!(info.status(), StatusCode::OK);
}

#[tokio::test]
async fn refresh_with_a_bad_token_is_401() {
    let app = spawn_app().await;
    let response = app.post_json("/user/refresh", &json!({"refreshToken": "not.a.token"})).await;
    let (status, headers, body) = read(response).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(header(&headers, "www-authenticate"), "Bearer");
    assert_eq!(body, json!({"code": 401, "msg": "invalid refresh token"}));

    let response = app.post_json("/user/refresh", &json!({"refresh_token": "snake_case is not this family"})).await;
    let (status, _, body) = read(response).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["msg"].as_str().unwrap().contains("missing field `refreshToken`"), "{body}");
}

#[tokio::test]
async fn info_answers_the_account_behind_the_token() {
    let app = spawn_app().await;
    app.register("alice", "secret123").await;
    let (access, _) = app.login("alice", "secret123").await;
    let (status, _, body) = read(app.get_with_token("/user/info", &access).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"id": 1, "username": "alice", "role": "user"}));
}

#[tokio::test]
async fn info_without_a_valid_access_token_is_401() {
    let app = spawn_app().await;
    app.register("alice", "secret123").await;
    let (_, refresh) = app.login("alice", "secret123").await;

    let (status, headers, body) = read(app.client.get(app.url("/user/info")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(header(&headers, "www-authenticate"), "Bearer");
    assert_eq!(body, json!({"code": 401, "msg": "missing authorization: Bearer token"}));

    // A refresh token is signed with the other key, so it is simply not a valid access token.
    let (status, headers, body) = read(app.get_with_token("/user/info", &refresh).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(header(&headers, "www-authenticate"), "Bearer");
    assert_eq!(body, json!({"code": 401, "msg": "invalid access token"}));

    let (status, _, body) = read(app.get_with_token("/user/info", "garbage").await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body, json!({"code": 401, "msg": "invalid access token"}));
}

#[tokio::test]
async fn logout_ends_the_session() {
    let app = spawn_app().await;
    app.register("alice", "secret123").await;
    let (access, refresh) = app.login("alice", "secret123").await;

    let response = app.client.post(app.url("/user/logout")).bearer_auth(&access).send().await.unwrap();
    let (status, _, body) = read(response).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({}));

    let (status, _, body) = read(app.post_json("/user/refresh", &json!({"refreshToken": refresh})).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["code"], 401);

    let (status, headers, body) = read(app.client.post(app.url("/user/logout")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(header(&headers, "www-authenticate"), "Bearer");
    assert_eq!(body, json!({"code": 401, "msg": "missing authorization: Bearer token"}));
}
