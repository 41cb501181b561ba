//! The body limit (413 in the route's dialect) and JSON answers for unknown paths and methods.

use reqwest::StatusCode;
use serde_json::json;

use crate::support::{read, spawn_app, spawn_app_with};

fn oversized() -> serde_json::Value {
    json!({"username": "alice", "password": "p".repeat(70 * 1024)})
}

#[tokio::test]
async fn an_oversized_body_is_413_in_each_dialect() {
    let app = spawn_app().await;
    let (status, _, body) = read(app.post_json("/user/register", &oversized()).await).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body, json!({"code": 413, "msg": "request body too large (limit 65536 bytes)"}));

    let (status, _, body) = read(app.post_json("/signup", &oversized()).await).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body, json!({"detail": "request body too large (limit 65536 bytes)"}));

    let big = "p".repeat(70 * 1024);
    let response =
        app.client.post(app.url("/token")).form(&[("username", "alice"), ("password", &big)]).send().await.unwrap();
    let (status, _, body) = read(response).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body, json!({"detail": "request body too large (limit 65536 bytes)"}));
}

#[tokio::test]
async fn the_body_limit_is_configurable() {
    let app = spawn_app_with(|config| config.http.body_limit_bytes = 1024).await;
    let body = json!({"username": "alice", "password": "p".repeat(2000)});
    let (status, _, body) = read(app.post_json("/user/login", &body).await).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body, json!({"code": 413, "msg": "request body too large (limit 1024 bytes)"}));
}

#[tokio::test]
async fn unknown_paths_and_methods_answer_json() {
    let app = spawn_app().await;
    let (status, _, body) = read(app.client.get(app.url("/nowhere")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, json!({"detail": "Not Found"}));

    let (status, headers, body) = read(app.client.get(app.url("/user/login")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(headers.get("allow").unwrap(), "POST");
    assert_eq!(body, json!({"code": 405, "msg": "Method Not Allowed"}));
}
