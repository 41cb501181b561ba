//! `/openapi.json` documents every route; `/docs` serves a browsable page over it.

use std::collections::BTreeMap;

use reqwest::StatusCode;

use crate::support::{auth_svc::spawn_app, header, read};

#[tokio::test]
async fn openapi_lists_every_route_with_its_method() {
    let app = spawn_app().await;
    let (status, _, doc) = read(app.client.get(app.url("/openapi.json")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{}", doc["openapi"]);

    let routes: BTreeMap<&str, Vec<&str>> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(path, item)| (path.as_str(), item.as_object().unwrap().keys().map(String::as_str).collect()))
        .collect();
    let expected: BTreeMap<&str, Vec<&str>> = [
        ("/.well-known/jwks.json", vec!["get"]),
        ("/.well-known/oauth-authorization-server", vec!["get"]),
        ("/admin/users", vec!["get"]),
        ("/admin/users/{id}", vec!["delete", "get"]),
        ("/admin/users/{id}/disable", vec!["post"]),
        ("/admin/users/{id}/enable", vec!["post"]),
        ("/admin/users/{id}/reset-mfa", vec!["post"]),
        ("/admin/users/{id}/revoke-sessions", vec!["post"]),
        ("/healthz", vec!["get"]),
        ("/oauth2/introspect", vec!["post"]),
        ("/oauth2/revoke", vec!["post"]),
        ("/protected", vec!["get"]),
        ("/readyz", vec!["get"]),
        ("/signup", vec!["post"]),
        ("/token", vec!["post"]),
        ("/user", vec!["delete"]),
        ("/user/info", vec!["get"]),
        ("/user/login", vec!["post"]),
        ("/user/logout", vec!["post"]),
        ("/user/logout-all", vec!["post"]),
        ("/user/mfa", vec!["get"]),
        ("/user/mfa/recovery-codes", vec!["post"]),
        ("/user/mfa/totp", vec!["delete", "post"]),
        ("/user/mfa/totp/confirm", vec!["post"]),
        ("/user/mfa/verify", vec!["post"]),
        ("/user/password", vec!["post"]),
        ("/user/refresh", vec!["post"]),
        ("/user/register", vec!["post"]),
        ("/user/role", vec!["post"]),
        ("/user/sessions", vec!["get"]),
        ("/user/sessions/{id}", vec!["delete"]),
    ]
    .into();
    assert_eq!(routes, expected);
}

#[tokio::test]
async fn openapi_schemas_are_the_handlers_types() {
    let app = spawn_app().await;
    let (_, _, doc) = read(app.client.get(app.url("/openapi.json")).send().await.unwrap()).await;
    let schemas = &doc["components"]["schemas"];
    let mut login: Vec<&str> =
        schemas["LoginResp"]["properties"].as_object().unwrap().keys().map(String::as_str).collect();
    login.sort_unstable();
    assert_eq!(login, ["accessToken", "expiresIn", "refreshToken"]);
    let token = doc["paths"]["/token"]["post"]["requestBody"]["content"].as_object().unwrap();
    let mut content_types: Vec<&str> = token.keys().map(String::as_str).collect();
    content_types.sort_unstable();
    assert_eq!(content_types, ["application/x-www-form-urlencoded", "multipart/form-data"]);
    assert_eq!(doc["components"]["securitySchemes"]["oauth2"]["flows"]["password"]["tokenUrl"], "/token");
}

#[tokio::test]
async fn docs_serves_a_page() {
    let app = spawn_app().await;
    let response = app.client.get(app.url("/docs")).send().await.unwrap();
    assert!(response.status().is_redirection(), "{}", response.status());
    assert_eq!(header(response.headers(), "location"), "/docs/");

    let response = app.client.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(header(response.headers(), "content-type").starts_with("text/html"));
    let page = response.text().await.unwrap();
    assert!(page.contains("swagger-ui"), "{page}");

    let config = app.client.get(app.url("/docs/swagger-initializer.js")).send().await.unwrap();
    assert_eq!(config.status(), StatusCode::OK);
    assert!(config.text().await.unwrap().contains("/openapi.json"));
}
