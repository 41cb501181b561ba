use auth_api::user::v1::{GetUserInfoRequest, LogoutRequest};
use jsonwebtoken::Algorithm;
use serde_json::json;
use tonic::{Code, Request, metadata::MetadataValue};

use crate::helpers::{
    ACCESS_SECRET, REFRESH_SECRET, access_claims, assert_status, bearer, hmac_key, hmac_kid, sign_jwt, spawn_app,
};

#[tokio::test]
async fn user_info_returns_the_bearer_s_account() {
    let app = spawn_app().await;
    let user = app.register("alice").await;
    let pair = app.login("alice", crate::helpers::PASSWORD).await.unwrap();
    let info = app.user_info(&bearer(&pair.access_token)).await.unwrap();
    assert_eq!((info.id, info.username.as_str(), info.role.as_str()), (user.id, "alice", "user"));
}

#[tokio::test]
async fn user_info_without_a_token_is_unauthenticated() {
    let app = spawn_app().await;
    assert_status(
        app.client.clone().get_user_info(GetUserInfoRequest {}).await,
        Code::Unauthenticated,
        "missing authorization: Bearer token",
    );
}

#[tokio::test]
async fn malformed_authorization_values_are_unauthenticated() {
    let app = spawn_app().await;
    let pair = app.signed_in("alice").await;
    let cases = [
        ("Bearer".to_owned(), "authorization header must be `Bearer <token>`"),
        ("Bearer ".to_owned(), "missing bearer token"),
        (format!("Basic {}", pair.access_token), "authorization scheme must be Bearer"),
        (format!("Bearer {} extra", pair.access_token), "malformed bearer token"),
        ("Bearer not-a-jwt".to_owned(), "invalid access token"),
        ("Bearer a.b.c".to_owned(), "invalid access token"),
        (format!("Bearer {}", "x".repeat(5000)), "bearer token too long"),
    ];
    for (value, message) in cases {
        assert_status(app.user_info(&value).await, Code::Unauthenticated, message);
    }
}

#[tokio::test]
async fn authorization_that_is_not_ascii_is_unauthenticated() {
    let app = spawn_app().await;
    let mut request = Request::new(GetUserInfoRequest {});
    let value = unsafe { MetadataValue::from_shared_unchecked(bytes::Bytes::from_static(b"Bearer \xff\xfe")) };
    request.metadata_mut().insert("authorization", value);
    assert_status(
        app.client.clone().get_user_info(request).await,
        Code::Unauthenticated,
        "authorization header is not valid ASCII",
    );
}

#[tokio::test]
async fn a_refresh_token_is_not_a_bearer_token() {
    let app = spawn_app().await;
    let pair = app.signed_in("alice").await;
    assert_status(app.user_info(&bearer(&pair.refresh_token)).await, Code::Unauthenticated, "invalid access token");
}

#[tokio::test]
async fn forged_and_mistyped_tokens_are_refused() {
    let app = spawn_app().await;
    let user = app.register("alice").await;
    let now = chrono::Utc::now().timestamp();
    let claims = |token_type: &str, exp: i64| {
        let mut claims = access_claims(user.id);
        claims["role"] = json!("admin");
        claims["token_type"] = json!(token_type);
        claims["exp"] = json!(exp);
        claims
    };
    let kid = hmac_kid(ACCESS_SECRET);
    let sign = |typ: &str, claims: &serde_json::Value, secret: &str| {
        sign_jwt(Algorithm::HS256, typ, Some(&kid), claims, &hmac_key(secret))
    };
    let cases = [
        (sign("at+jwt", &claims("access", now + 60), REFRESH_SECRET), "invalid access token"),
        (sign("at+jwt", &claims("access", now + 60), "another-secret-of-enough-length-000000"), "invalid access token"),
        (sign("JWT", &claims("access", now + 60), ACCESS_SECRET), "not an access token"),
        (sign("at+jwt", &claims("refresh", now + 60), ACCESS_SECRET), "not an access token"),
        (sign("at+jwt", &claims("access", now - 1), ACCESS_SECRET), "access token expired"),
    ];
    for (token, message) in cases {
        assert_status(app.user_info(&bearer(&token)).await, Code::Unauthenticated, message);
    }
    // The control: the same recipe with everything right is accepted.
    let good = sign("at+jwt", &claims("access", now + 60), ACCESS_SECRET);
    assert_eq!(app.user_info(&bearer(&good)).await.unwrap().username, "alice");
}

#[tokio::test]
async fn the_token_of_a_deleted_user_is_refused() {
    let app = spawn_app().await;
    let pair = app.signed_in("alice").await;
    let user = model::query::users::find_by_username(&app.db, "alice").await.unwrap().unwrap();
    assert!(app.users.delete(user.id).await.unwrap());
    assert_status(app.user_info(&bearer(&pair.access_token)).await, Code::Unauthenticated, "account no longer exists");
}

#[tokio::test]
async fn logout_needs_a_token_and_ends_the_session() {
    let app = spawn_app().await;
    let pair = app.signed_in("alice").await;
    assert_status(
        app.client.clone().logout(LogoutRequest {}).await,
        Code::Unauthenticated,
        "missing authorization: Bearer token",
    );
    app.logout(&pair.access_token).await.unwrap();
    assert_status(app.refresh(&pair.refresh_token).await, Code::Unauthenticated, "session revoked");
}
