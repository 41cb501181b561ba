//! CORS from `cors.allowed_origins`: a browser on an allowed origin may call `/protected` with a
//! bearer token; any other origin gets no `Access-Control-Allow-Origin`.

use reqwest::{Method, StatusCode};

use crate::support::{
    ALLOWED_ORIGIN,
    auth_svc::{TestApp, spawn_app},
    header,
};

async fn preflight(app: &TestApp, origin: &str) -> reqwest::Response {
    app.client
        .request(Method::OPTIONS, app.url("/protected"))
        .header("origin", origin)
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn preflight_from_an_allowed_origin_passes() {
    let app = spawn_app().await;
    let response = preflight(&app, ALLOWED_ORIGIN).await;
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers();
    assert_eq!(header(headers, "access-control-allow-origin"), ALLOWED_ORIGIN);
    assert_eq!(header(headers, "access-control-allow-methods"), "GET,POST,DELETE");
    assert_eq!(header(headers, "access-control-allow-headers"), "authorization,content-type,x-request-id");
    assert_eq!(header(headers, "access-control-max-age"), "600");
    assert!(headers.get("access-control-allow-credentials").is_none());
}

#[tokio::test]
async fn preflight_from_another_origin_is_refused() {
    let app = spawn_app().await;
    let response = preflight(&app, "http://evil.example.test").await;
    assert!(response.headers().get("access-control-allow-origin").is_none());
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_actual_request_exposes_the_useful_headers() {
    let app = spawn_app().await;
    let response = app.client.get(app.url("/protected")).header("origin", ALLOWED_ORIGIN).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let headers = response.headers();
    assert_eq!(header(headers, "access-control-allow-origin"), ALLOWED_ORIGIN);
    assert_eq!(header(headers, "access-control-expose-headers"), "x-request-id,retry-after,www-authenticate");

    let response =
        app.client.get(app.url("/protected")).header("origin", "http://evil.example.test").send().await.unwrap();
    assert!(response.headers().get("access-control-allow-origin").is_none());
}
