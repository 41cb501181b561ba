//! `/healthz` and `/readyz` with auth-svc up (the down case is in `upstream_down`).

use reqwest::StatusCode;
use serde_json::json;

use crate::support::{auth_svc::spawn_app, read};

#[tokio::test]
async fn healthz_and_readyz_are_200_when_auth_svc_serves() {
    let app = spawn_app().await;
    let (status, _, body) = read(app.client.get(app.url("/healthz")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"status": "ok"}));
    let (status, _, body) = read(app.client.get(app.url("/readyz")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"status": "ready"}));
}
