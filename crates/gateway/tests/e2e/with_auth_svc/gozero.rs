//! The go-zero routes: camelCase JSON, errors as {"code","msg"}.

use reqwest::StatusCode;
use serde_json::json;

use crate::support::{
    auth_svc::spawn_app,
    cases::{
        Auth,
        Call::{Get, Json, Raw},
        Message::{Contains, Is, Starts},
        check, credentials,
    },
    header, is_jwt, read,
};

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
async fn info_answers_the_account_behind_the_token() {
    let app = spawn_app().await;
    app.register("alice", "secret123").await;
    let (access, _) = app.login("alice", "secret123").await;
    let (status, _, body) = read(app.get_with_token("/user/info", &access).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"id": 1, "username": "alice", "role": "user"}));
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

/// Every refusal of the go-zero routes: its status and `{"code","msg"}` body (every 401 with
/// `WWW-Authenticate: Bearer`). alice is registered and logged in.
#[tokio::test]
async fn refusals_answer_in_the_go_zero_dialect() {
    let app = spawn_app().await;
    app.register("alice", "secret123").await;
    let (_, refresh) = app.login("alice", "secret123").await;
    let cases = [
        // A taken username, then the password policy.
        (Json("/user/register", credentials("alice", "other-secret")), 409, Is("username already exists")),
        (Json("/user/register", credentials("bob", "short")), 400, Is("password must be at least 8 characters")),
        // Malformed JSON, a missing field, and a body that is not JSON.
        (
            Raw("/user/login", Some("application/json"), "{\"username\": "),
            400,
            Starts("Failed to parse the request body as JSON"),
        ),
        (Json("/user/register", json!({"username": "alice"})), 400, Contains("missing field `password`")),
        (Raw("/user/login", None, "username=alice"), 400, Is("Expected request with `Content-Type: application/json`")),
        // Wrong credentials.
        (Json("/user/login", credentials("alice", "wrong-password")), 401, Is("invalid credentials")),
        (Json("/user/login", credentials("nobody", "secret123")), 401, Is("invalid credentials")),
        // A bad refresh token, and the other family's field name.
        (Json("/user/refresh", json!({"refreshToken": "not.a.token"})), 401, Is("invalid refresh token")),
        (
            Json("/user/refresh", json!({"refresh_token": "snake_case is not this family"})),
            400,
            Contains("missing field `refreshToken`"),
        ),
        // No token; a refresh token (signed with the other key, so simply not a valid access
        // token); garbage.
        (Get("/user/info", Auth::None), 401, Is("missing authorization: Bearer token")),
        (Get("/user/info", Auth::Bearer(&refresh)), 401, Is("invalid access token")),
        (Get("/user/info", Auth::Bearer("garbage")), 401, Is("invalid access token")),
    ];
    check(&app, &cases).await;
}
