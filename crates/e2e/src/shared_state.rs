//! The cache, the login throttle and the revocation list. The suite runs these against the
//! in-process implementations, and again with `AUTH_TEST_REDIS_URL` against Redis.

use std::num::NonZero;

use auth_api::user::v1::LoginRequest;
use jsonwebtoken::Algorithm;
use tonic::{Code, Request};

use crate::helpers::{
    ACCESS_SECRET, PASSWORD, access_claims, assert_status, bearer, hmac_key, hmac_kid, sign_jwt, spawn_app,
    spawn_app_with,
};

#[tokio::test]
async fn a_second_user_info_on_a_hot_user_makes_no_database_query() {
    let app = spawn_app().await;
    let pair = app.signed_in("alice").await;
    app.user_info(&bearer(&pair.access_token)).await.unwrap();
    let before = app.queries.get();
    let info = app.user_info(&bearer(&pair.access_token)).await.unwrap();
    assert_eq!(info.username, "alice");
    assert_eq!(app.queries.get(), before, "served from the cache");
}

#[tokio::test]
async fn deleting_a_user_invalidates_the_cached_row() {
    let app = spawn_app().await;
    let pair = app.signed_in("alice").await;
    app.user_info(&bearer(&pair.access_token)).await.unwrap();
    let id = app.user_info(&bearer(&pair.access_token)).await.unwrap().id;
    assert!(app.users.delete(id).await.unwrap());
    assert_status(app.user_info(&bearer(&pair.access_token)).await, Code::Unauthenticated, "account no longer exists");
}

/// An access token for any user id, as only the service (or a test with its key) can make.
fn access_token_for(user_id: i64) -> String {
    let claims = access_claims(user_id);
    sign_jwt(Algorithm::HS256, "at+jwt", Some(&hmac_kid(ACCESS_SECRET)), &claims, &hmac_key(ACCESS_SECRET))
}

#[tokio::test]
async fn an_unknown_id_is_cached_briefly_and_forgotten_when_the_id_is_created() {
    let app = spawn_app().await;
    let first = app.register("alice").await;
    let next_id = first.id + 1;
    let token = access_token_for(next_id);
    assert_status(app.user_info(&bearer(&token)).await, Code::Unauthenticated, "account no longer exists");
    let before = app.queries.get();
    assert_status(app.user_info(&bearer(&token)).await, Code::Unauthenticated, "account no longer exists");
    assert_eq!(app.queries.get(), before, "the negative entry answered");

    let created = app.register("bob").await;
    assert_eq!(created.id, next_id, "ids are sequential in a fresh database");
    assert_eq!(
        app.user_info(&bearer(&token)).await.unwrap().username,
        "bob",
        "registration dropped the negative entry"
    );
}

#[tokio::test]
async fn failed_logins_for_one_user_are_throttled_with_retry_after() {
    let app = spawn_app_with(|c| c.throttle.max_failures_per_username = NonZero::new(3).unwrap()).await;
    app.register("alice").await;
    app.register("bob").await;
    for _ in 0..3 {
        assert_status(app.login("alice", "wrong password").await, Code::Unauthenticated, "invalid credentials");
    }
    let throttled = app.login("alice", PASSWORD).await.unwrap_err();
    assert_eq!(throttled.code(), Code::ResourceExhausted, "{throttled:?}");
    assert_eq!(throttled.message(), "too many failed login attempts, retry later");
    let retry_after: u64 = throttled.metadata().get("retry-after").unwrap().to_str().unwrap().parse().unwrap();
    assert!((1..=300).contains(&retry_after), "{retry_after}");
    app.login("bob", PASSWORD).await.expect("a user not under attack still logs in");
}

#[tokio::test]
async fn a_successful_login_resets_the_username_count() {
    let app = spawn_app_with(|c| c.throttle.max_failures_per_username = NonZero::new(3).unwrap()).await;
    app.register("alice").await;
    for _ in 0..2 {
        app.login("alice", "wrong password").await.unwrap_err();
    }
    app.login("alice", PASSWORD).await.expect("under the limit");
    for _ in 0..2 {
        assert_status(app.login("alice", "wrong password").await, Code::Unauthenticated, "invalid credentials");
    }
    app.login("alice", PASSWORD).await.expect("the success reset the count");
}

#[tokio::test]
async fn one_address_guessing_many_accounts_is_throttled() {
    let app = spawn_app_with(|c| {
        c.throttle.max_failures_per_address = NonZero::new(4).unwrap();
        c.throttle.max_failures_per_username = NonZero::new(100).unwrap();
        // A proxy in 10/8 in front of the client, as in "203.0.113.7, 10.0.0.1" below.
        c.grpc.trusted_forwarders.push("10.0.0.0/8".parse().unwrap());
    })
    .await;
    app.register("victim").await;
    let login_from = |username: &str, address: &str| {
        let mut request = Request::new(LoginRequest { username: username.into(), password: "wrong password".into() });
        request.metadata_mut().insert("x-forwarded-for", address.parse().unwrap());
        let mut client = app.client.clone();
        async move { client.login(request).await }
    };
    for name in ["a", "b", "c", "d"] {
        assert_eq!(login_from(name, "203.0.113.7").await.unwrap_err().code(), Code::Unauthenticated);
    }
    assert_eq!(login_from("victim", "203.0.113.7, 10.0.0.1").await.unwrap_err().code(), Code::ResourceExhausted);
    assert_eq!(
        login_from("victim", "198.51.100.1").await.unwrap_err().code(),
        Code::Unauthenticated,
        "another address is not affected"
    );
}

#[tokio::test]
async fn logout_stops_the_access_token_at_once() {
    let app = spawn_app().await;
    let pair = app.signed_in("alice").await;
    app.logout(&pair.access_token).await.unwrap();
    assert_status(app.user_info(&bearer(&pair.access_token)).await, Code::Unauthenticated, "session revoked");
}

#[tokio::test]
async fn reuse_detection_stops_the_session_s_access_tokens_too() {
    let app = spawn_app_with(|c| c.auth.refresh_reuse_interval = 0).await;
    let first = app.signed_in("alice").await;
    let second = app.refresh(&first.refresh_token).await.unwrap();
    app.refresh(&first.refresh_token).await.unwrap_err();
    assert_status(app.user_info(&bearer(&second.access_token)).await, Code::Unauthenticated, "session revoked");
    let fresh = app.login("alice", PASSWORD).await.unwrap();
    app.user_info(&bearer(&fresh.access_token)).await.expect("a new session is unaffected");
}
