//! The FastAPI routes: OAuth2 password flow, errors as {"detail"}.

use reqwest::{StatusCode, multipart};
use serde_json::{Value, json};

use crate::support::{TestApp, header, is_jwt, read, spawn_app};

async fn signup(app: &TestApp, username: &str, password: &str) -> reqwest::Response {
    app.post_json("/signup", &json!({"username": username, "password": password})).await
}

async fn token_form(app: &TestApp, form: &[(&str, &str)]) -> reqwest::Response {
    app.client.post(app.url("/token")).form(form).send().await.unwrap()
}

/// Checks a successful `/token` answer and returns its body.
async fn assert_token_response(response: reqwest::Response) -> Value {
    let (status, headers, body) = read(response).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(header(&headers, "cache-control"), "no-store");
    assert_eq!(header(&headers, "pragma"), "no-cache");
    let keys: Vec<_> = body.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["access_token", "expires_in", "refresh_token", "token_type"]);
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 900);
    assert!(is_jwt(body["access_token"].as_str().unwrap()));
    assert!(is_jwt(body["refresh_token"].as_str().unwrap()));
    body
}

#[tokio::test]
async fn signup_creates_the_account() {
    let app = spawn_app().await;
    let (status, _, body) = read(signup(&app, "licat", "licat-password").await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"message": "User created successfully"}));
}

#[tokio::test]
async fn signup_with_a_taken_username_is_400_as_the_tutorial_says() {
    let app = spawn_app().await;
    signup(&app, "licat", "licat-password").await;
    let (status, _, body) = read(signup(&app, "licat", "another-password").await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, json!({"detail": "Username already exists"}));
}

#[tokio::test]
async fn signup_breaking_the_policy_is_400_and_a_bad_body_is_422() {
    let app = spawn_app().await;
    let (status, _, body) = read(signup(&app, "licat", "1234").await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, json!({"detail": "password must be at least 8 characters"}));

    let response = app
        .client
        .post(app.url("/signup"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let (status, _, body) = read(response).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body["detail"].as_str().unwrap().starts_with("Failed to parse the request body as JSON"), "{body}");

    let (status, _, body) = read(app.post_json("/signup", &json!({"username": "licat"})).await).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body["detail"].as_str().unwrap().contains("missing field `password`"), "{body}");
}

#[tokio::test]
async fn token_takes_a_urlencoded_password_grant() {
    let app = spawn_app().await;
    signup(&app, "licat", "licat-password").await;
    let response = token_form(&app, &[("username", "licat"), ("password", "licat-password")]).await;
    assert_token_response(response).await;
    let response =
        token_form(&app, &[("grant_type", "password"), ("username", "licat"), ("password", "licat-password")]).await;
    assert_token_response(response).await;
}

#[tokio::test]
async fn token_takes_a_multipart_password_grant() {
    let app = spawn_app().await;
    signup(&app, "licat", "licat-password").await;
    let form = multipart::Form::new().text("username", "licat").text("password", "licat-password");
    let response = app.client.post(app.url("/token")).multipart(form).send().await.unwrap();
    assert_token_response(response).await;
}

#[tokio::test]
async fn token_with_wrong_credentials_is_401_incorrect_username_or_password() {
    let app = spawn_app().await;
    signup(&app, "licat", "licat-password").await;
    for (username, password) in [("licat", "wrong-password"), ("nobody", "licat-password")] {
        let (status, headers, body) =
            read(token_form(&app, &[("username", username), ("password", password)]).await).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(header(&headers, "www-authenticate"), "Bearer");
        assert_eq!(body, json!({"detail": "Incorrect username or password"}));
    }
    let form = multipart::Form::new().text("username", "licat").text("password", "wrong-password");
    let (status, _, body) = read(app.client.post(app.url("/token")).multipart(form).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body, json!({"detail": "Incorrect username or password"}));
}

#[tokio::test]
async fn token_with_a_bad_form_is_422() {
    let app = spawn_app().await;
    let (status, _, body) = read(token_form(&app, &[("username", "licat")]).await).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body, json!({"detail": "missing field `password`"}));

    let (status, _, body) = read(token_form(&app, &[("grant_type", "client_credentials")]).await).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body, json!({"detail": "grant_type must be `password` or `refresh_token`"}));

    let (status, _, body) = read(token_form(&app, &[("grant_type", "refresh_token")]).await).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body, json!({"detail": "missing field `refresh_token`"}));

    let response = app.post_json("/token", &json!({"username": "licat", "password": "licat-password"})).await;
    let (status, _, body) = read(response).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body, json!({"detail": "expected a form: application/x-www-form-urlencoded or multipart/form-data"}));
}

#[tokio::test]
async fn token_takes_the_refresh_grant() {
    let app = spawn_app().await;
    signup(&app, "licat", "licat-password").await;
    let first =
        assert_token_response(token_form(&app, &[("username", "licat"), ("password", "licat-password")]).await).await;
    let refresh = first["refresh_token"].as_str().unwrap();
    let second =
        assert_token_response(token_form(&app, &[("grant_type", "refresh_token"), ("refresh_token", refresh)]).await)
            .await;
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    let (status, _, body) =
        read(app.get_with_token("/protected", second["access_token"].as_str().unwrap()).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"message": "Hello licat! This is a protected route"}));

    let response = token_form(&app, &[("grant_type", "refresh_token"), ("refresh_token", "not.a.token")]).await;
    let (status, headers, body) = read(response).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(header(&headers, "www-authenticate"), "Bearer");
    assert_eq!(body, json!({"detail": "invalid refresh token"}));
}

#[tokio::test]
async fn protected_greets_the_bearer() {
    let app = spawn_app().await;
    signup(&app, "licat", "licat-password").await;
    let body =
        assert_token_response(token_form(&app, &[("username", "licat"), ("password", "licat-password")]).await).await;
    let (status, _, body) = read(app.get_with_token("/protected", body["access_token"].as_str().unwrap()).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"message": "Hello licat! This is a protected route"}));
}

#[tokio::test]
async fn protected_without_a_token_is_not_authenticated() {
    let app = spawn_app().await;
    let (status, headers, body) = read(app.client.get(app.url("/protected")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(header(&headers, "www-authenticate"), "Bearer");
    assert_eq!(body, json!({"detail": "Not authenticated"}));

    let response = app.client.get(app.url("/protected")).basic_auth("licat", Some("pw")).send().await.unwrap();
    let (status, _, body) = read(response).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body, json!({"detail": "Not authenticated"}));
}

#[tokio::test]
async fn protected_with_a_bad_token_is_invalid_token() {
    let app = spawn_app().await;
    signup(&app, "licat", "licat-password").await;
    let pair =
        assert_token_response(token_form(&app, &[("username", "licat"), ("password", "licat-password")]).await).await;
    for token in ["garbage", "a.b.c", pair["refresh_token"].as_str().unwrap()] {
        let (status, headers, body) = read(app.get_with_token("/protected", token).await).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{token}");
        assert_eq!(header(&headers, "www-authenticate"), "Bearer");
        assert_eq!(body, json!({"detail": "Invalid token"}));
    }
}

#[tokio::test]
async fn both_families_share_accounts_and_tokens() {
    let app = spawn_app().await;
    signup(&app, "licat", "licat-password").await;
    let (access, _) = app.login("licat", "licat-password").await;
    let (status, _, body) = read(app.get_with_token("/protected", &access).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"message": "Hello licat! This is a protected route"}));
    let (status, _, body) = read(app.get_with_token("/user/info", &access).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"id": 1, "username": "licat", "role": "user"}));
}
