use std::time::Duration;

use futures::future::join_all;
use tonic::Code;

use crate::helpers::{assert_status, bearer, spawn_app, spawn_app_with, token_payload};

/// The session id (`sid`) of a token, read without verification (the test only needs the id).
fn session_of(token: &str) -> String {
    token_payload(token)["sid"].as_str().unwrap().to_owned()
}

async fn live_tokens(app: &crate::helpers::TestApp, session: &str) -> usize {
    let now = chrono::Utc::now().timestamp();
    model::query::refresh_tokens::live_in_family(&app.db, session, now).await.unwrap().len()
}

#[tokio::test]
async fn refresh_rotates_to_a_new_working_pair() {
    let app = spawn_app().await;
    let first = app.signed_in("alice").await;
    let second = app.refresh(&first.refresh_token).await.unwrap();
    assert_ne!(second.refresh_token, first.refresh_token);
    assert_ne!(second.access_token, first.access_token);
    assert!(second.expires_in > 890 && second.expires_in <= 900, "{}", second.expires_in);
    assert_eq!(app.user_info(&bearer(&second.access_token)).await.unwrap().username, "alice");
    let third = app.refresh(&second.refresh_token).await.unwrap();
    assert_eq!(live_tokens(&app, &session_of(&third.refresh_token)).await, 1);
}

#[tokio::test]
async fn a_just_rotated_token_returns_the_very_same_successor() {
    let app = spawn_app().await;
    let first = app.signed_in("alice").await;
    let second = app.refresh(&first.refresh_token).await.unwrap();
    let again = app.refresh(&first.refresh_token).await.unwrap();
    assert_eq!((again.access_token, again.refresh_token), (second.access_token, second.refresh_token.clone()));
    // The successor still works: the grace answer did not spend or revoke anything.
    app.refresh(&second.refresh_token).await.expect("successor still live");
}

#[tokio::test]
async fn twenty_concurrent_refreshes_get_one_identical_successor() {
    let app = spawn_app().await;
    let first = app.signed_in("alice").await;
    let calls = (0..20).map(|_| app.refresh(&first.refresh_token));
    let results: Vec<_> = join_all(calls).await.into_iter().map(|r| r.expect("every refresh succeeds")).collect();
    for result in &results {
        assert_eq!(result.refresh_token, results[0].refresh_token);
        assert_eq!(result.access_token, results[0].access_token);
    }
    assert_ne!(results[0].refresh_token, first.refresh_token);
    assert_eq!(live_tokens(&app, &session_of(&first.refresh_token)).await, 1);
}

#[tokio::test]
async fn reuse_after_the_interval_revokes_the_family() {
    let app = spawn_app_with(|c| c.auth.refresh_reuse_interval = 1).await;
    let first = app.signed_in("alice").await;
    let second = app.refresh(&first.refresh_token).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_status(
        app.refresh(&first.refresh_token).await,
        Code::Unauthenticated,
        "refresh token already used; session revoked",
    );
    assert_status(app.refresh(&second.refresh_token).await, Code::Unauthenticated, "session revoked");
    assert_eq!(live_tokens(&app, &session_of(&first.refresh_token)).await, 0);
}

#[tokio::test]
async fn an_older_token_of_the_family_revokes_it_even_within_the_interval() {
    let app = spawn_app().await;
    let first = app.signed_in("alice").await;
    let second = app.refresh(&first.refresh_token).await.unwrap();
    let third = app.refresh(&second.refresh_token).await.unwrap();
    assert_status(
        app.refresh(&first.refresh_token).await,
        Code::Unauthenticated,
        "refresh token already used; session revoked",
    );
    assert_status(app.refresh(&third.refresh_token).await, Code::Unauthenticated, "session revoked");
}

#[tokio::test]
async fn with_interval_zero_exactly_one_concurrent_refresh_succeeds() {
    let app = spawn_app_with(|c| c.auth.refresh_reuse_interval = 0).await;
    let first = app.signed_in("alice").await;
    let results = join_all((0..20).map(|_| app.refresh(&first.refresh_token))).await;
    let succeeded = results.iter().filter(|r| r.is_ok()).count();
    let refused = results.iter().filter(|r| matches!(r, Err(s) if s.code() == Code::Unauthenticated)).count();
    assert_eq!((succeeded, refused), (1, 19));
}

#[tokio::test]
async fn an_access_token_is_not_a_refresh_token() {
    let app = spawn_app().await;
    let pair = app.signed_in("alice").await;
    assert_status(app.refresh(&pair.access_token).await, Code::Unauthenticated, "invalid refresh token");
    assert_status(app.refresh("").await, Code::Unauthenticated, "invalid refresh token");
    assert_status(app.refresh("a.b.c").await, Code::Unauthenticated, "invalid refresh token");
}

#[tokio::test]
async fn sessions_are_independent() {
    let app = spawn_app().await;
    let laptop = app.signed_in("alice").await;
    let phone = app.login("alice", crate::helpers::PASSWORD).await.unwrap();
    app.logout(&laptop.access_token).await.unwrap();
    assert_status(app.refresh(&laptop.refresh_token).await, Code::Unauthenticated, "session revoked");
    app.refresh(&phone.refresh_token).await.expect("the other session lives on");
}

#[tokio::test]
async fn logout_racing_a_chain_of_refreshes_leaves_no_live_token() {
    let app = spawn_app().await;
    let first = app.signed_in("alice").await;
    let session = session_of(&first.refresh_token);
    let refresher = async {
        let mut token = first.refresh_token.clone();
        for _ in 0..40 {
            match app.refresh(&token).await {
                Ok(pair) => token = pair.refresh_token,
                Err(status) => {
                    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
                    break;
                }
            }
        }
    };
    let logout = async {
        tokio::time::sleep(Duration::from_millis(5)).await;
        app.logout(&first.access_token).await.expect("logout succeeds while refreshes run");
    };
    tokio::join!(refresher, logout);
    assert_eq!(live_tokens(&app, &session).await, 0, "a refresh slipped past the logout");
}
