//! `x-request-id`: generated when absent, echoed when present (forwarding to auth-svc is
//! checked against the scripted upstream in `with_scripted_upstream::forwarded_metadata`).

use reqwest::StatusCode;
use serde_json::json;

use crate::support::{auth_svc::spawn_app, header};

#[tokio::test]
async fn a_request_id_is_generated_when_absent() {
    let app = spawn_app().await;
    let first = app.client.get(app.url("/healthz")).send().await.unwrap();
    let second = app.client.get(app.url("/healthz")).send().await.unwrap();
    let first = header(first.headers(), "x-request-id").to_owned();
    let second = header(second.headers(), "x-request-id").to_owned();
    for id in [&first, &second] {
        assert_eq!(id.len(), 36, "{id}");
        assert_eq!(id.matches('-').count(), 4, "{id}");
    }
    assert_ne!(first, second);
}

#[tokio::test]
async fn a_given_request_id_is_echoed_on_success_and_error() {
    let app = spawn_app().await;
    let response = app.client.get(app.url("/healthz")).header("x-request-id", "trace-abc-123").send().await.unwrap();
    assert_eq!(header(response.headers(), "x-request-id"), "trace-abc-123");

    let response = app
        .client
        .post(app.url("/user/login"))
        .header("x-request-id", "trace-def-456")
        .json(&json!({"username": "nobody", "password": "whatever1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(header(response.headers(), "x-request-id"), "trace-def-456");

    let response = app.client.get(app.url("/nowhere")).header("x-request-id", "trace-404").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(header(response.headers(), "x-request-id"), "trace-404");
}
