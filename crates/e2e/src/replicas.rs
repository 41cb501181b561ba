//! Two auth-svc instances sharing one database and one Redis (same secrets, same key prefix)
//! behave as one service: tokens, refresh rotation, throttling and logout cross between them.

use std::num::NonZero;

use auth_api::user::v1::LoginResponse;
use auth_svc::Config;
use tonic::Code;

use crate::helpers::{
    PASSWORD, TestApp, TestDatabase, assert_status, bearer, deployment_configs, redis_or_skip, spawn_app_on,
};

/// Replicas `a` and `b`. `adjust` applies to both configurations.
pub async fn two_replicas(adjust: impl Fn(&mut Config)) -> (TestApp, TestApp) {
    two_replicas_each(|config_a, config_b| {
        adjust(config_a);
        adjust(config_b);
    })
    .await
}

/// Replicas `a` and `b` of one deployment, configured by `adjust(config_a, config_b)`; `a` owns
/// the database, so it is declared (and dropped) last.
pub async fn two_replicas_each(adjust: impl FnOnce(&mut Config, &mut Config)) -> (TestApp, TestApp) {
    let database = TestDatabase::create().await;
    let (mut config_a, mut config_b) = deployment_configs(&database);
    adjust(&mut config_a, &mut config_b);
    let shared = database.handle();
    let a = spawn_app_on(config_a, database).await;
    let b = spawn_app_on(config_b, shared).await;
    (a, b)
}

/// Two sessions of alice, signed in on A: `session`, which B has seen (and cached her row
/// for), and `other`.
pub async fn two_sessions_seen_by_b(a: &TestApp, b: &TestApp) -> (LoginResponse, LoginResponse) {
    let session = a.signed_in("alice").await;
    let other = a.login("alice", PASSWORD).await.unwrap();
    b.user_info(&bearer(&session.access_token)).await.unwrap();
    (session, other)
}

#[tokio::test]
async fn a_token_issued_by_one_replica_is_accepted_by_the_other() {
    if redis_or_skip("replicas::a_token_issued_by_one_replica_is_accepted_by_the_other").is_none() {
        return;
    }
    let (a, b) = two_replicas(|_| {}).await;
    let alice = a.register("alice").await;
    let pair = a.login("alice", PASSWORD).await.unwrap();
    let info = b.user_info(&bearer(&pair.access_token)).await.unwrap();
    assert_eq!((info.id, info.username.as_str(), info.role.as_str()), (alice.id, "alice", "user"));
    // And the other way round; the account registered on A is known to B.
    let on_b = b.login("alice", PASSWORD).await.unwrap();
    assert_eq!(a.user_info(&bearer(&on_b.access_token)).await.unwrap().id, alice.id);
    let bob = b.register("bob").await;
    a.login("bob", PASSWORD).await.unwrap();
    assert_ne!(bob.id, alice.id);
}

#[tokio::test]
async fn a_refresh_replayed_on_the_other_replica_within_the_interval_gets_the_same_pair() {
    if redis_or_skip("replicas::a_refresh_replayed_on_the_other_replica_within_the_interval_gets_the_same_pair")
        .is_none()
    {
        return;
    }
    let (a, b) = two_replicas(|config| config.auth.refresh_reuse_interval = 10).await;
    let first = a.signed_in("alice").await;
    let next = a.refresh(&first.refresh_token).await.unwrap();
    let replayed = b.refresh(&first.refresh_token).await.unwrap();
    assert_eq!(replayed.access_token, next.access_token);
    assert_eq!(replayed.refresh_token, next.refresh_token);
    // The successor is live on both: rotating it on B works, and B's successor is new.
    let third = b.refresh(&next.refresh_token).await.unwrap();
    assert_ne!(third.refresh_token, next.refresh_token);
    a.user_info(&bearer(&third.access_token)).await.unwrap();
}

#[tokio::test]
async fn a_refresh_token_rotated_on_one_replica_is_spent_on_the_other() {
    if redis_or_skip("replicas::a_refresh_token_rotated_on_one_replica_is_spent_on_the_other").is_none() {
        return;
    }
    let (a, b) = two_replicas(|config| config.auth.refresh_reuse_interval = 0).await;
    let first = a.signed_in("alice").await;
    let next = a.refresh(&first.refresh_token).await.unwrap();
    assert_status(
        b.refresh(&first.refresh_token).await,
        Code::Unauthenticated,
        "refresh token already used; session revoked",
    );
    // Reuse revoked the whole session, on both replicas.
    assert_status(a.refresh(&next.refresh_token).await, Code::Unauthenticated, "session revoked");
    assert_status(a.user_info(&bearer(&next.access_token)).await, Code::Unauthenticated, "session revoked");
    assert_status(b.user_info(&bearer(&next.access_token)).await, Code::Unauthenticated, "session revoked");
}

#[tokio::test]
async fn throttling_counts_failures_across_replicas() {
    if redis_or_skip("replicas::throttling_counts_failures_across_replicas").is_none() {
        return;
    }
    let (a, b) = two_replicas(|config| config.throttle.max_failures_per_username = NonZero::new(3).unwrap()).await;
    a.register("alice").await;
    for replica in [&a, &a, &b] {
        assert_status(replica.login("alice", "wrong password").await, Code::Unauthenticated, "invalid credentials");
    }
    // Three failures in all, though neither replica saw three: both refuse, even the right password.
    for replica in [&a, &b] {
        let status = replica.login("alice", PASSWORD).await.expect_err("throttled");
        assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
        assert_eq!(status.message(), "too many failed login attempts, retry later");
        let retry_after = status.metadata().get("retry-after").expect("retry-after metadata").to_str().unwrap();
        let seconds: u64 = retry_after.parse().unwrap_or_else(|_| panic!("retry-after {retry_after:?}"));
        assert!((1..=300).contains(&seconds), "retry-after {seconds}");
    }
    // Another username from the same address is not throttled (the address limit is 50).
    b.register("bob").await;
    a.login("bob", PASSWORD).await.unwrap();
}

#[tokio::test]
async fn logout_on_one_replica_revokes_the_access_token_on_the_other_at_once() {
    if redis_or_skip("replicas::logout_on_one_replica_revokes_the_access_token_on_the_other_at_once").is_none() {
        return;
    }
    let (a, b) = two_replicas(|_| {}).await;
    // B has seen the token (and cached the user) before the logout.
    let (session, other) = two_sessions_seen_by_b(&a, &b).await;
    a.logout(&session.access_token).await.unwrap();
    assert_status(b.user_info(&bearer(&session.access_token)).await, Code::Unauthenticated, "session revoked");
    assert_status(b.refresh(&session.refresh_token).await, Code::Unauthenticated, "session revoked");
    // Only that session: the other one still works on B.
    b.user_info(&bearer(&other.access_token)).await.unwrap();
}
