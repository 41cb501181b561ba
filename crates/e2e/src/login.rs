use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use tonic::Code;

use crate::helpers::{ACCESS_SECRET, PASSWORD, REFRESH_SECRET, assert_status, spawn_app};

fn decode(token: &str, secret: &str) -> (jsonwebtoken::Header, Value) {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.validate_aud = false;
    let data = jsonwebtoken::decode::<Value>(token, &DecodingKey::from_secret(secret.as_bytes()), &validation)
        .expect("token verifies with its own secret");
    (data.header, data.claims)
}

#[tokio::test]
async fn login_returns_a_pair_with_the_documented_claims() {
    let app = spawn_app().await;
    let user = app.register("alice").await;
    let pair = app.login("alice", PASSWORD).await.unwrap();
    assert_eq!(pair.expires_in, 900, "the default access lifetime");

    let (header, claims) = decode(&pair.access_token, ACCESS_SECRET);
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    assert_eq!(claims["userId"], user.id);
    assert_eq!(claims["role"], "user");
    assert_eq!(claims["sub"], user.id.to_string());
    assert_eq!(claims["iss"], "auth-svc");
    assert_eq!(claims["token_type"], "access");
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 900);
    assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));

    let (header, claims) = decode(&pair.refresh_token, REFRESH_SECRET);
    assert_eq!(header.typ.as_deref(), Some("rt+jwt"));
    assert_eq!(claims["token_type"], "refresh");
    assert_eq!(claims["sid"], decode(&pair.access_token, ACCESS_SECRET).1["sid"], "both tokens name one session");
}

#[tokio::test]
async fn wrong_password_and_unknown_user_get_the_same_answer() {
    let app = spawn_app().await;
    app.register("alice").await;
    assert_status(app.login("alice", "wrong password").await, Code::Unauthenticated, "invalid credentials");
    assert_status(app.login("nobody", PASSWORD).await, Code::Unauthenticated, "invalid credentials");
}

#[tokio::test]
async fn login_with_a_surrounding_space_in_the_name_finds_the_user() {
    let app = spawn_app().await;
    app.register("alice").await;
    app.login(" alice ", PASSWORD).await.expect("trimmed like at registration");
}

#[tokio::test]
async fn login_refuses_malformed_input_before_hashing() {
    let app = spawn_app().await;
    assert_status(app.login("", PASSWORD).await, Code::InvalidArgument, "username must not be empty");
    assert_status(app.login("alice", "").await, Code::InvalidArgument, "password must not be empty");
    assert_status(
        app.login("alice", &"p".repeat(1025)).await,
        Code::InvalidArgument,
        "password must be at most 1024 bytes",
    );
}
