//! The signed-in user's own sessions and account through the generated client: ListSessions,
//! RevokeSession, LogoutAll, ChangePassword and DeleteAccount, with the proto comments of each
//! as the reference.

use std::num::NonZero;

use auth_api::user::v1::{
    ChangePasswordRequest, DeleteAccountRequest, ListSessionsRequest, LoginRequest, LoginResponse, LogoutAllRequest,
    RevokeSessionRequest, Session,
};
use tonic::{Code, Request};

use crate::helpers::{PASSWORD, TestApp, assert_status, bearer, spawn_app, spawn_app_with, token_payload};

const NEW_PASSWORD: &str = "a brand new passphrase";
const NO_SUCH_SESSION: &str = "no such session";

/// Logs in as a client whose `user-agent` starts with `agent` (tonic appends its own).
async fn login_from(app: &TestApp, username: &str, agent: &str) -> LoginResponse {
    let mut request = Request::new(LoginRequest { username: username.into(), password: PASSWORD.into() });
    request.metadata_mut().insert("user-agent", agent.parse().unwrap());
    app.client.clone().login(request).await.unwrap().into_inner()
}

/// The session id (`sid`) of a token.
fn session_of(token: &str) -> String {
    token_payload(token)["sid"].as_str().expect("a sid claim").to_owned()
}

fn find<'a>(sessions: &'a [Session], id: &str) -> &'a Session {
    sessions.iter().find(|s| s.id == id).unwrap_or_else(|| panic!("session {id} not listed: {sessions:#?}"))
}

fn ids(sessions: &[Session]) -> Vec<String> {
    let mut ids: Vec<String> = sessions.iter().map(|s| s.id.clone()).collect();
    ids.sort();
    ids
}

/// Whether `app` refuses `pair` entirely: its access token at GetUserInfo, and its refresh token.
async fn assert_pair_refused(app: &TestApp, pair: &LoginResponse, access_message: &str) {
    assert_status(app.user_info(&bearer(&pair.access_token)).await, Code::Unauthenticated, access_message);
    assert!(!app.validate(&pair.access_token).await.unwrap().active, "ValidateToken says inactive");
    let refresh = app.refresh(&pair.refresh_token).await;
    assert_eq!(refresh.expect_err("refresh refused").code(), Code::Unauthenticated);
}

#[tokio::test]
async fn list_sessions_shows_each_login_with_its_device_and_marks_the_current_one() {
    let app = spawn_app().await;
    app.register("alice").await;
    let before = chrono::Utc::now().timestamp();
    let phone = login_from(&app, "alice", "phone-app/1.0").await;
    let laptop = login_from(&app, "alice", "laptop-browser/2.0").await;
    let after = chrono::Utc::now().timestamp();
    let (phone_id, laptop_id) = (session_of(&phone.access_token), session_of(&laptop.access_token));
    assert_ne!(phone_id, laptop_id);
    // Someone else's session is never listed.
    app.signed_in("bob").await;

    let seen_from_laptop = app.sessions(&laptop.access_token).await.unwrap();
    let mut expected = vec![phone_id.clone(), laptop_id.clone()];
    expected.sort();
    assert_eq!(ids(&seen_from_laptop), expected);
    for (id, agent, current) in [(&phone_id, "phone-app/1.0 ", false), (&laptop_id, "laptop-browser/2.0 ", true)] {
        let session = find(&seen_from_laptop, id);
        assert_eq!(session.current, current, "{session:?}");
        assert!(session.user_agent.starts_with(agent), "{session:?}");
        assert_eq!(session.client_address, "127.0.0.1", "{session:?}");
        let created = session.created_at.unwrap().seconds;
        assert!((before..=after).contains(&created), "{before}..={after}: {session:?}");
        assert_eq!(session.last_used_at.unwrap().seconds, created, "never refreshed");
        // `auth.refresh_expire` (14 days) after the login, within the 30-day session lifetime.
        assert_eq!(session.expires_at.unwrap().seconds, created + 1_209_600, "{session:?}");
    }
    let seen_from_phone = app.sessions(&phone.access_token).await.unwrap();
    assert!(find(&seen_from_phone, &phone_id).current && !find(&seen_from_phone, &laptop_id).current);

    // A refresh continues the session: still listed once, same start, its device kept.
    let phone_next = app.refresh(&phone.refresh_token).await.unwrap();
    let phone_third = app.refresh(&phone_next.refresh_token).await.unwrap();
    let rotated = app.sessions(&phone_third.access_token).await.unwrap();
    assert_eq!(ids(&rotated), expected, "{rotated:#?}");
    let phone_now = find(&rotated, &phone_id);
    let phone_before = find(&seen_from_phone, &phone_id);
    assert_eq!((phone_now.created_at, phone_now.current), (phone_before.created_at, true));
    assert!(phone_now.last_used_at.unwrap().seconds >= phone_before.last_used_at.unwrap().seconds);
    assert_eq!(phone_now.user_agent, phone_before.user_agent);
    // Newest first (by the second of the last use, so ties are in any order).
    let used: Vec<i64> = rotated.iter().map(|s| s.last_used_at.unwrap().seconds).collect();
    assert!(used.windows(2).all(|w| w[0] >= w[1]), "{rotated:#?}");

    // A logged-out session is gone from the list.
    app.logout(&laptop.access_token).await.unwrap();
    let remaining = app.sessions(&phone_third.access_token).await.unwrap();
    assert_eq!(ids(&remaining), vec![phone_id], "{remaining:#?}");
}

#[tokio::test]
async fn revoke_session_ends_another_session_of_the_caller_at_once() {
    let app = spawn_app().await;
    let current = app.signed_in("alice").await;
    let other = app.login("alice", PASSWORD).await.unwrap();
    let other_id = session_of(&other.access_token);
    app.user_info(&bearer(&other.access_token)).await.expect("the control: it works before");

    app.revoke_session(&current.access_token, &other_id).await.unwrap();
    assert_pair_refused(&app, &other, "session revoked").await;
    let listed = app.sessions(&current.access_token).await.unwrap();
    assert_eq!(ids(&listed), vec![session_of(&current.access_token)]);
    app.user_info(&bearer(&current.access_token)).await.expect("the caller's own session goes on");
    // Ended is ended: a second revoke finds no live session.
    assert_status(app.revoke_session(&current.access_token, &other_id).await, Code::NotFound, NO_SUCH_SESSION);
}

#[tokio::test]
async fn another_user_s_session_is_not_found_exactly_like_one_that_never_existed() {
    let app = spawn_app().await;
    let alice = app.signed_in("alice").await;
    let bob = app.signed_in("bob").await;
    let bob_session = session_of(&bob.access_token);

    let theirs = app.revoke_session(&alice.access_token, &bob_session).await;
    let random = app.revoke_session(&alice.access_token, &uuid::Uuid::new_v4().to_string()).await;
    let (theirs, random) = (theirs.unwrap_err(), random.unwrap_err());
    assert_eq!((theirs.code(), theirs.message()), (Code::NotFound, NO_SUCH_SESSION));
    assert_eq!((random.code(), random.message()), (theirs.code(), theirs.message()));
    // In upper case it is the same id, and the same answer.
    let upper = app.revoke_session(&alice.access_token, &bob_session.to_uppercase()).await;
    assert_status(upper, Code::NotFound, NO_SUCH_SESSION);
    app.user_info(&bearer(&bob.access_token)).await.expect("bob's session is untouched");
    app.refresh(&bob.refresh_token).await.expect("bob's session is untouched");

    for malformed in ["", "not-a-session", "1", "' OR 1=1 --", &format!("{bob_session}0")] {
        let result = app.revoke_session(&alice.access_token, malformed).await;
        assert_status(result, Code::InvalidArgument, "session_id must be a session id (a UUID)");
    }
}

#[tokio::test]
async fn revoking_the_current_session_is_allowed_and_ends_it() {
    let app = spawn_app().await;
    let alice = app.signed_in("alice").await;
    app.revoke_session(&alice.access_token, &session_of(&alice.access_token)).await.unwrap();
    assert_pair_refused(&app, &alice, "session revoked").await;
}

#[tokio::test]
async fn logout_all_keeping_the_current_session_ends_only_the_others() {
    let app = spawn_app().await;
    let current = app.signed_in("alice").await;
    let others = [app.login("alice", PASSWORD).await.unwrap(), app.login("alice", PASSWORD).await.unwrap()];
    let bob = app.signed_in("bob").await;

    assert_eq!(app.logout_all(&current.access_token, true).await.unwrap(), 2);
    for other in &others {
        assert_pair_refused(&app, other, "session revoked").await;
    }
    app.user_info(&bearer(&current.access_token)).await.expect("the current session is kept");
    let listed = app.sessions(&current.access_token).await.unwrap();
    assert_eq!(ids(&listed), vec![session_of(&current.access_token)]);
    app.user_info(&bearer(&bob.access_token)).await.expect("another user is untouched");
    assert_eq!(app.logout_all(&current.access_token, true).await.unwrap(), 0, "nothing left to end");

    let current = app.refresh(&current.refresh_token).await.expect("the kept session still refreshes");
    assert_eq!(app.logout_all(&current.access_token, false).await.unwrap(), 1);
    assert_pair_refused(&app, &current, "session revoked").await;
    app.user_info(&bearer(&bob.access_token)).await.expect("another user is untouched");
}

#[tokio::test]
async fn change_password_with_a_wrong_current_password_is_refused_and_counted_by_the_login_throttle() {
    let app = spawn_app_with(|config| config.throttle.max_failures_per_username = NonZero::new(3).unwrap()).await;
    let alice = app.signed_in("alice").await;
    let stored_hash = async || model::query::users::find_by_id(&app.db, 1).await.unwrap().unwrap().password_hash;
    let hash_before = stored_hash().await;
    for _ in 0..3 {
        let wrong = app.change_password(&alice.access_token, "not my password", NEW_PASSWORD).await;
        assert_status(wrong, Code::Unauthenticated, "invalid credentials");
    }
    // Three failures, as three failed logins would be: Login and ChangePassword are throttled.
    let throttled = "too many failed login attempts, retry later";
    assert_status(app.login("alice", PASSWORD).await, Code::ResourceExhausted, throttled);
    let right = app.change_password(&alice.access_token, PASSWORD, NEW_PASSWORD).await;
    assert_status(right, Code::ResourceExhausted, throttled);
    // Nothing changed.
    app.user_info(&bearer(&alice.access_token)).await.expect("the session goes on");
    assert_eq!(stored_hash().await, hash_before, "the password is unchanged");
}

#[tokio::test]
async fn change_password_applies_the_password_policy_to_the_new_one() {
    let app = spawn_app().await;
    let alice = app.signed_in("alice").await;
    for (new, message) in [
        ("short", "password must be at least 8 characters".to_owned()),
        ("", "password must not be empty".to_owned()),
        (&"x".repeat(1025), "password must be at most 1024 bytes".to_owned()),
    ] {
        let result = app.change_password(&alice.access_token, PASSWORD, new).await;
        assert_status(result, Code::InvalidArgument, &message);
    }
    app.login("alice", PASSWORD).await.expect("the old password still works");
    app.user_info(&bearer(&alice.access_token)).await.expect("the session goes on");
}

#[tokio::test]
async fn change_password_ends_every_session_and_continues_the_caller_in_a_new_one() {
    // The default reuse interval: even within it, no token held before the change works.
    let app = spawn_app().await;
    let this = app.signed_in("alice").await;
    let other = app.login("alice", PASSWORD).await.unwrap();
    let bob = app.signed_in("bob").await;

    let fresh = app.change_password(&this.access_token, PASSWORD, NEW_PASSWORD).await.unwrap();
    assert_ne!(session_of(&fresh.access_token), session_of(&this.access_token), "a new session");
    assert!(fresh.expires_in > 0);

    assert_status(app.login("alice", PASSWORD).await, Code::Unauthenticated, "invalid credentials");
    app.login("alice", NEW_PASSWORD).await.expect("the new password works");
    assert_pair_refused(&app, &other, "session revoked").await;
    // The caller's own old pair too, within the reuse interval: whoever else held it is out.
    assert_pair_refused(&app, &this, "session revoked").await;
    app.user_info(&bearer(&bob.access_token)).await.expect("another user is untouched");

    app.user_info(&bearer(&fresh.access_token)).await.expect("the returned access token works");
    let listed = app.sessions(&fresh.access_token).await.unwrap();
    assert!(find(&listed, &session_of(&fresh.access_token)).current);
    assert!(listed.iter().all(|session| session.id != session_of(&this.access_token)), "the old one is gone");
    app.refresh(&fresh.refresh_token).await.expect("the returned refresh token works");
}

#[tokio::test]
async fn delete_account_needs_the_password_then_ends_everything_and_frees_the_name() {
    let app = spawn_app().await;
    let this = app.signed_in("alice").await;
    let other = app.login("alice", PASSWORD).await.unwrap();
    let alice_id = app.user_info(&bearer(&this.access_token)).await.unwrap().id;

    let wrong = app.delete_account(&this.access_token, "not my password").await;
    assert_status(wrong, Code::Unauthenticated, "invalid credentials");
    let empty = app.delete_account(&this.access_token, "").await;
    assert_status(empty, Code::InvalidArgument, "password must not be empty");
    app.user_info(&bearer(&this.access_token)).await.expect("still there after wrong passwords");
    assert_status(app.try_register("alice", PASSWORD).await, Code::AlreadyExists, "username already exists");

    app.delete_account(&this.access_token, PASSWORD).await.unwrap();
    assert_pair_refused(&app, &this, "session revoked").await;
    assert_pair_refused(&app, &other, "session revoked").await;
    assert_status(app.login("alice", PASSWORD).await, Code::Unauthenticated, "invalid credentials");
    assert!(model::query::users::find_by_id(&app.db, alice_id).await.unwrap().is_none());

    let again = app.register("alice").await;
    assert_ne!(again.id, alice_id, "a new account under the freed name");
    let new_alice = app.login("alice", PASSWORD).await.unwrap();
    assert_eq!(app.user_info(&bearer(&new_alice.access_token)).await.unwrap().id, again.id);
    assert_status(app.user_info(&bearer(&this.access_token)).await, Code::Unauthenticated, "session revoked");
}

#[tokio::test]
async fn every_call_on_the_own_account_needs_an_access_token() {
    let app = spawn_app().await;
    let alice = app.signed_in("alice").await;
    let missing = "missing authorization: Bearer token";
    let mut client = app.client.clone();
    assert_status(client.list_sessions(ListSessionsRequest {}).await, Code::Unauthenticated, missing);
    let revoke = RevokeSessionRequest { session_id: session_of(&alice.access_token) };
    assert_status(client.revoke_session(revoke).await, Code::Unauthenticated, missing);
    assert_status(client.logout_all(LogoutAllRequest { keep_current: false }).await, Code::Unauthenticated, missing);
    let change = ChangePasswordRequest { current_password: PASSWORD.into(), new_password: NEW_PASSWORD.into() };
    assert_status(client.change_password(change).await, Code::Unauthenticated, missing);
    let delete = DeleteAccountRequest { password: PASSWORD.into() };
    assert_status(client.delete_account(delete).await, Code::Unauthenticated, missing);

    // A refresh token is no access token.
    let invalid = "invalid access token";
    assert_status(app.sessions(&alice.refresh_token).await, Code::Unauthenticated, invalid);
    assert_status(app.logout_all(&alice.refresh_token, false).await, Code::Unauthenticated, invalid);
    assert_status(app.delete_account(&alice.refresh_token, PASSWORD).await, Code::Unauthenticated, invalid);
    // None of it touched the account: the control.
    assert_eq!(app.sessions(&alice.access_token).await.unwrap().len(), 1);
    app.login("alice", PASSWORD).await.expect("the password is unchanged and the account there");
}

/// A password change whose caller goes away (a deadline shorter than the change, a client that
/// hangs up) is finished all the same: never the new password with old sessions still working.
#[tokio::test]
async fn a_password_change_cut_short_by_its_deadline_is_all_or_nothing() {
    let app = spawn_app().await;
    for (round, deadline_ms) in [1_u64, 2, 4, 8, 16, 32, 64].into_iter().enumerate() {
        let name = format!("cut{round}");
        let this = app.signed_in(&name).await;
        let mut others = Vec::new();
        for _ in 0..6 {
            others.push(app.login(&name, PASSWORD).await.unwrap());
        }
        let change = ChangePasswordRequest { current_password: PASSWORD.into(), new_password: NEW_PASSWORD.into() };
        let mut request = crate::helpers::with_authorization(change, &bearer(&this.access_token));
        request.set_timeout(std::time::Duration::from_millis(deadline_ms));
        let _ = app.client.clone().change_password(request).await;
        // Whatever the call answered, the work it began ends soon after: within a few seconds
        // on a loaded machine (a hash and the revocations), at once on a quiet one.
        let settle_by = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            let changed = app.login(&name, NEW_PASSWORD).await.is_ok();
            let mut working = 0;
            for other in &others {
                working += usize::from(app.user_info(&bearer(&other.access_token)).await.is_ok());
            }
            let settled = if changed { working == 0 } else { working == others.len() };
            if settled {
                break;
            }
            assert!(
                std::time::Instant::now() < settle_by,
                "deadline {deadline_ms} ms: password changed {changed}, {working} of {} old sessions work",
                others.len()
            );
        }
    }
}
