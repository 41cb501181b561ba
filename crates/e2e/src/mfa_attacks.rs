//! A hostile client's tries at the second factor (issue 19): replays across replicas, guesses
//! spread over every call that checks a code, misused and forged challenges, enrolment races,
//! hostile input, leaks in answers, audit events and logs, and how `amr` can be earned.
//!
//! Each test says what an attacker tries and what must hold. Codes are computed here from the
//! secret the server showed ([`Authenticator`]), never by the server's own code.

use std::{num::NonZero, time::Duration};

use auth_api::user::v1::{
    BeginTotpEnrolmentRequest, ChangePasswordRequest, ConfirmTotpEnrolmentRequest, DeleteAccountRequest,
    DisableTotpRequest, DisableUserRequest, GetMfaStatusRequest, GetUserInfoRequest, ListSessionsRequest,
    ListUsersRequest, LogoutAllRequest, LogoutRequest, RefreshRequest, RegenerateRecoveryCodesRequest, ResetMfaRequest,
    RevokeSessionRequest, SetUserRoleRequest, VerifyMfaRequest,
};
use deadpool_redis::redis;
use jsonwebtoken::Algorithm;
use serde_json::json;
use tonic::{Code, Status};

use crate::{
    helpers::{
        ACCESS_SECRET, PASSWORD, REFRESH_SECRET, TestApp, authorized, bearer, hmac_key, hmac_kid, jwt_part,
        redis_or_skip, sign_jwt, spawn_app_with, token_payload,
    },
    replicas::two_replicas,
    roles::{bootstrap_admin, spawn_deployment},
    second_factor::{
        Authenticator, begin, begin_with, challenge, confirm, early_in_a_step, enrolled, verify, with_mfa,
    },
};

/// `result` is an error of `code`.
#[track_caller]
fn refused_as<T: std::fmt::Debug>(result: Result<T, Status>, code: Code, what: &str) -> Status {
    let status = result.expect_err(what);
    assert_eq!(status.code(), code, "{what}: {status:?}");
    status
}

/// A six-digit code that is not `right` (nor any code of its neighbours, for the tests that
/// need a wrong one whatever the step).
fn wrong_code(authenticator: &Authenticator) -> String {
    let taken = [authenticator.code(-1), authenticator.code(0), authenticator.code(1)];
    (0..10).map(|digit| digit.to_string().repeat(6)).find(|code| !taken.contains(code)).unwrap()
}

async fn mfa_enabled(app: &TestApp, access: &str) -> bool {
    app.client
        .clone()
        .get_mfa_status(authorized(GetMfaStatusRequest {}, access))
        .await
        .unwrap()
        .into_inner()
        .totp_enabled
}

async fn disable_totp(app: &TestApp, access: &str, password: &str, code: &str, recovery: &str) -> Result<(), Status> {
    let request = DisableTotpRequest { password: password.into(), code: code.into(), recovery_code: recovery.into() };
    app.client.clone().disable_totp(authorized(request, access)).await.map(|_| ())
}

async fn regenerate(app: &TestApp, access: &str, code: &str) -> Result<Vec<String>, Status> {
    let request = authorized(RegenerateRecoveryCodesRequest { code: code.into() }, access);
    app.client.clone().regenerate_recovery_codes(request).await.map(|r| r.into_inner().recovery_codes)
}

/// How many of `answers` succeeded, and that every other one is `refusal`.
#[track_caller]
fn successes<T: std::fmt::Debug>(answers: &[Result<T, Status>], refusal: Code) -> usize {
    for answer in answers {
        if let Err(status) = answer {
            assert_eq!(status.code(), refusal, "{answers:?}");
        }
    }
    answers.iter().filter(|answer| answer.is_ok()).count()
}

// --- Replay across replicas ---

#[tokio::test]
async fn one_code_sent_to_two_replicas_at_once_opens_one_session() {
    let (a, b) = two_replicas(with_mfa).await;
    early_in_a_step().await;
    let (_, authenticator, _) = enrolled(&a, "alice").await;
    let (on_a, on_b) = (challenge(&a, "alice").await, challenge(&b, "alice").await);
    let code = authenticator.code(0);
    let answers: Vec<_> = {
        let (first, second) = tokio::join!(verify(&a, &on_a, &code, ""), verify(&b, &on_b, &code, ""));
        vec![first, second]
    };
    assert_eq!(successes(&answers, Code::Unauthenticated), 1, "{answers:?}");
}

#[tokio::test]
async fn one_challenge_with_two_right_codes_on_two_replicas_starts_one_session() {
    let (a, b) = two_replicas(with_mfa).await;
    early_in_a_step().await;
    // Several accounts: each race is one try at the window between the check and the spend.
    for name in ["alice", "bob", "carol", "dave", "erin"] {
        let (_, authenticator, _) = enrolled(&a, name).await;
        let pending = challenge(&a, name).await;
        let (now, next) = (authenticator.code(0), authenticator.code(1));
        let (first, second) = tokio::join!(verify(&a, &pending, &now, ""), verify(&b, &pending, &next, ""));
        let answers = vec![first, second];
        assert_eq!(successes(&answers, Code::Unauthenticated), 1, "{name}: {answers:?}");
    }
}

#[tokio::test]
async fn one_recovery_code_sent_to_two_replicas_at_once_works_once() {
    let (a, b) = two_replicas(with_mfa).await;
    let (access, _, codes) = enrolled(&a, "alice").await;
    let (on_a, on_b) = (challenge(&a, "alice").await, challenge(&b, "alice").await);
    let (first, second) = tokio::join!(verify(&a, &on_a, "", &codes[0]), verify(&b, &on_b, "", &codes[0]));
    let answers = vec![first, second];
    assert_eq!(successes(&answers, Code::Unauthenticated), 1, "{answers:?}");
    let left = a.client.clone().get_mfa_status(authorized(GetMfaStatusRequest {}, &access)).await.unwrap();
    assert_eq!(left.into_inner().recovery_codes_left, 9);
}

#[tokio::test]
async fn a_code_spent_on_one_call_is_spent_for_every_other() {
    let app = spawn_app_with(with_mfa).await;
    early_in_a_step().await;
    let (access, authenticator, _) = enrolled(&app, "alice").await;
    // The confirming code (the previous step's) is spent for logins.
    let pending = challenge(&app, "alice").await;
    refused_as(verify(&app, &pending, &authenticator.code(-1), "").await, Code::Unauthenticated, "confirming code");
    // A code spent on new recovery codes neither logs in nor disables.
    let now = authenticator.code(0);
    let codes = regenerate(&app, &access, &now).await.unwrap();
    refused_as(verify(&app, &pending, &now, "").await, Code::Unauthenticated, "code of the regeneration");
    refused_as(disable_totp(&app, &access, PASSWORD, &now, "").await, Code::Unauthenticated, "and again");
    refused_as(regenerate(&app, &access, &now).await, Code::Unauthenticated, "regenerating twice");
    // A recovery code spent on a login does not disable the factor.
    verify(&app, &pending, "", &codes[0]).await.unwrap();
    refused_as(disable_totp(&app, &access, PASSWORD, "", &codes[0]).await, Code::Unauthenticated, "recovery code");
    assert!(mfa_enabled(&app, &access).await);
}

// --- Throttle bypasses ---

#[tokio::test]
async fn wrong_codes_spread_over_every_call_that_checks_one_share_one_limit() {
    // Six wrong codes per account in the window; each challenge could take 20.
    let app = spawn_app_with(|config| {
        with_mfa(config);
        config.throttle.max_failures_per_username = NonZero::new(6).unwrap();
        config.mfa.max_failures = NonZero::new(20).unwrap();
    })
    .await;
    early_in_a_step().await;
    let (access, authenticator, codes) = enrolled(&app, "alice").await;
    let wrong = wrong_code(&authenticator);
    // Two on one challenge, one on another, with right passwords in between (Login and
    // DisableTotp's password check succeed, and must not clear the codes' count).
    let first = challenge(&app, "alice").await;
    refused_as(verify(&app, &first, &wrong, "").await, Code::Unauthenticated, "verify 1");
    refused_as(verify(&app, &first, &wrong, "").await, Code::Unauthenticated, "verify 2");
    let second = challenge(&app, "alice").await;
    refused_as(verify(&app, &second, "", "aaaaa-aaaaa").await, Code::Unauthenticated, "recovery guess");
    refused_as(disable_totp(&app, &access, PASSWORD, &wrong, "").await, Code::Unauthenticated, "disable 1");
    refused_as(disable_totp(&app, &access, PASSWORD, "", "bbbbb-bbbbb").await, Code::Unauthenticated, "disable 2");
    refused_as(regenerate(&app, &access, &wrong).await, Code::Unauthenticated, "regenerate");
    // Six: every call that checks a code is held now, right code or not.
    let third = challenge(&app, "alice").await;
    refused_as(verify(&app, &third, &authenticator.code(0), "").await, Code::ResourceExhausted, "verify right");
    refused_as(verify(&app, &third, "", &codes[0]).await, Code::ResourceExhausted, "verify recovery");
    refused_as(regenerate(&app, &access, &authenticator.code(0)).await, Code::ResourceExhausted, "regenerate");
    refused_as(
        disable_totp(&app, &access, PASSWORD, "", &codes[0]).await,
        Code::ResourceExhausted,
        "disable with a right recovery code",
    );
    assert!(mfa_enabled(&app, &access).await);
}

#[tokio::test]
async fn wrong_codes_at_confirmation_are_throttled_too() {
    let app = spawn_app_with(with_mfa).await;
    early_in_a_step().await;
    let access = app.signed_in("alice").await.access_token;
    let authenticator = Authenticator::new(&begin(&app, &access).await.unwrap().secret);
    let wrong = wrong_code(&authenticator);
    for attempt in 0..5 {
        refused_as(confirm(&app, &access, &wrong).await, Code::Unauthenticated, &format!("wrong code {attempt}"));
    }
    refused_as(confirm(&app, &access, &authenticator.code(0)).await, Code::ResourceExhausted, "right code, held");
    assert!(!mfa_enabled(&app, &access).await);
}

#[tokio::test]
async fn two_replicas_sharing_redis_share_the_code_limit() {
    if redis_or_skip("mfa_attacks::two_replicas_sharing_redis_share_the_code_limit").is_none() {
        return;
    }
    let (a, b) = two_replicas(|config| {
        with_mfa(config);
        config.mfa.max_failures = NonZero::new(20).unwrap();
    })
    .await;
    early_in_a_step().await;
    let (_, authenticator, _) = enrolled(&a, "alice").await;
    let wrong = wrong_code(&authenticator);
    let (on_a, on_b) = (challenge(&a, "alice").await, challenge(&b, "alice").await);
    let guesses =
        (0..20).map(|i| if i % 2 == 0 { verify(&a, &on_a, &wrong, "") } else { verify(&b, &on_b, &wrong, "") });
    let answers = futures::future::join_all(guesses).await;
    let checked = answers.iter().filter(|answer| matches!(answer, Err(s) if s.code() == Code::Unauthenticated)).count();
    let held = answers.iter().filter(|answer| matches!(answer, Err(s) if s.code() == Code::ResourceExhausted)).count();
    assert_eq!((checked, held), (5, 15), "{answers:?}");
}

/// Deletes every key of the app's Redis prefix: what a Redis restarted without persistence,
/// or an operator's FLUSHDB, does mid-attack.
async fn flush_redis(app: &TestApp) {
    let redis = app.redis.clone().expect("the app uses Redis");
    let pattern = format!("{}*", redis.key(""));
    let flushed = redis
        .run("test flush", async |c| {
            let keys: Vec<String> = redis::cmd("KEYS").arg(&pattern).query_async(c).await?;
            for key in keys {
                let _deleted: i64 = redis::cmd("DEL").arg(&key).query_async(c).await?;
            }
            Ok(())
        })
        .await;
    flushed.expect("Redis answered");
}

/// Redis loses the throttle's counts: a challenge's own count (in the database) still spends
/// it at `mfa.max_failures`, so the guesses left to an attacker are bounded per login.
#[tokio::test]
async fn a_challenge_keeps_its_wrong_code_count_when_redis_loses_the_throttles() {
    if redis_or_skip("mfa_attacks::a_challenge_keeps_its_wrong_code_count_when_redis_loses_the_throttles").is_none() {
        return;
    }
    let app = spawn_app_with(|config| {
        with_mfa(config);
        config.mfa.max_failures = NonZero::new(3).unwrap();
    })
    .await;
    early_in_a_step().await;
    let (_, authenticator, _) = enrolled(&app, "alice").await;
    let wrong = wrong_code(&authenticator);
    let pending = challenge(&app, "alice").await;
    refused_as(verify(&app, &pending, &wrong, "").await, Code::Unauthenticated, "wrong 1");
    refused_as(verify(&app, &pending, &wrong, "").await, Code::Unauthenticated, "wrong 2");
    flush_redis(&app).await;
    refused_as(verify(&app, &pending, &wrong, "").await, Code::Unauthenticated, "wrong 3, after the flush");
    let status = refused_as(verify(&app, &pending, &authenticator.code(0), "").await, Code::Unauthenticated, "spent");
    assert!(status.message().contains("challenge"), "{status:?}");
}

// --- Challenge misuse ---

#[tokio::test]
async fn one_accounts_challenge_does_not_take_another_accounts_code() {
    let app = spawn_app_with(with_mfa).await;
    early_in_a_step().await;
    let (_, _, alice_codes) = enrolled(&app, "alice").await;
    let (_, bob, bob_codes) = enrolled(&app, "bob").await;
    let alices = challenge(&app, "alice").await;
    refused_as(verify(&app, &alices, &bob.code(0), "").await, Code::Unauthenticated, "bob's code");
    refused_as(verify(&app, &alices, "", &bob_codes[0]).await, Code::Unauthenticated, "bob's recovery code");
    // Neither of bob's was spent on alice's challenge; alice's is still open.
    let bobs = challenge(&app, "bob").await;
    let pair = verify(&app, &bobs, &bob.code(0), "").await.expect("bob's code is still his");
    assert_eq!(app.user_info(&bearer(&pair.access_token)).await.unwrap().username, "bob");
    let pair = verify(&app, &alices, "", &alice_codes[0]).await.expect("alice's challenge still open");
    assert_eq!(app.user_info(&bearer(&pair.access_token)).await.unwrap().username, "alice");
    let bobs = challenge(&app, "bob").await;
    verify(&app, &bobs, "", &bob_codes[0]).await.expect("bob's recovery code is unused");
}

#[tokio::test]
async fn an_expired_challenge_is_refused_and_spends_no_code() {
    let app = spawn_app_with(|config| {
        with_mfa(config);
        config.mfa.challenge_ttl_seconds = NonZero::new(1).unwrap();
    })
    .await;
    let (_, _, codes) = enrolled(&app, "alice").await;
    let response = app.login("alice", PASSWORD).await.unwrap();
    let stale = response.mfa_challenge.unwrap();
    assert_eq!(stale.expires_in, 1);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let status = refused_as(verify(&app, &stale.challenge, "", &codes[0]).await, Code::Unauthenticated, "expired");
    assert!(status.message().contains("challenge"), "{status:?}");
    // A fresh challenge lives 1 s too: on a loaded machine it can expire before its own verify
    // is judged, which is refused as a challenge, never as a code. A spent code would be
    // "invalid code" on every attempt.
    let mut attempts = 0;
    loop {
        let fresh = app.login("alice", PASSWORD).await.unwrap().mfa_challenge.unwrap().challenge;
        match verify(&app, &fresh, "", &codes[0]).await {
            Ok(_) => break,
            Err(status) if status.message().contains("challenge") && attempts < 5 => attempts += 1,
            Err(status) => panic!("the code was not spent on the expired challenge: {status:?}"),
        }
    }
}

#[tokio::test]
async fn a_pending_login_dies_when_the_account_is_disabled_deleted_or_loses_its_factor() {
    let (app, operator) = spawn_deployment(with_mfa).await;
    early_in_a_step().await;
    let admin = bootstrap_admin(&app, &operator, "root").await;
    // Disabled, then enabled again: the login begun before must not come back to life.
    let (access, authenticator, codes) = enrolled(&app, "alice").await;
    let alice = app.user_info(&bearer(&access)).await.unwrap().id;
    let pending = challenge(&app, "alice").await;
    app.disable_user(&admin, alice).await.unwrap();
    refused_as(verify(&app, &pending, "", &codes[0]).await, Code::Unauthenticated, "disabled");
    app.enable_user(&admin, alice).await.unwrap();
    refused_as(verify(&app, &pending, "", &codes[1]).await, Code::Unauthenticated, "enabled again");
    refused_as(verify(&app, &pending, &authenticator.code(0), "").await, Code::Unauthenticated, "enabled again");
    // Deleted: the challenge of a deleted account, whose id nobody else has.
    let (bob_access, _, bob_codes) = enrolled(&app, "bob").await;
    let pending = challenge(&app, "bob").await;
    app.delete_account(&bob_access, PASSWORD).await.unwrap();
    refused_as(verify(&app, &pending, "", &bob_codes[0]).await, Code::Unauthenticated, "deleted");
    // The factor disabled by its owner, then enrolled again: the old challenge stays dead.
    let (carol_access, carol, carol_codes) = enrolled(&app, "carol").await;
    let pending = challenge(&app, "carol").await;
    disable_totp(&app, &carol_access, PASSWORD, "", &carol_codes[0]).await.unwrap();
    let again = Authenticator::new(&begin(&app, &carol_access).await.unwrap().secret);
    let new_codes = confirm(&app, &carol_access, &again.code(0)).await.unwrap();
    refused_as(verify(&app, &pending, "", &new_codes[0]).await, Code::Unauthenticated, "re-enrolled");
    refused_as(verify(&app, &pending, &carol.code(0), "").await, Code::Unauthenticated, "old secret");
}

#[tokio::test]
async fn forged_and_altered_challenges_are_refused() {
    let app = spawn_app_with(with_mfa).await;
    let (_, _, codes) = enrolled(&app, "alice").await;
    let bob = app.signed_in("bob").await;
    let bob_id = app.user_info(&bearer(&bob.access_token)).await.unwrap().id;
    let real = challenge(&app, "alice").await;
    let claims = token_payload(&real);
    let header: serde_json::Value = {
        let part = real.split('.').next().unwrap();
        use base64::Engine as _;
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    };
    assert_eq!(header["typ"], "mfa+jwt");
    let (access_kid, refresh_kid) = (hmac_kid(ACCESS_SECRET), hmac_kid(REFRESH_SECRET));
    let with = |field: &str, value: serde_json::Value| {
        let mut changed = claims.clone();
        changed[field] = value;
        changed
    };
    let refresh_key = hmac_key(REFRESH_SECRET);
    let access_key = hmac_key(ACCESS_SECRET);
    let signature = real.rsplit('.').next().unwrap();
    let forgeries = [
        ("access secret, access kid", sign_jwt(Algorithm::HS256, "mfa+jwt", Some(&access_kid), &claims, &access_key)),
        ("access secret, refresh kid", sign_jwt(Algorithm::HS256, "mfa+jwt", Some(&refresh_kid), &claims, &access_key)),
        ("no kid", sign_jwt(Algorithm::HS256, "mfa+jwt", None, &claims, &refresh_key)),
        ("HS512", sign_jwt(Algorithm::HS512, "mfa+jwt", Some(&refresh_kid), &claims, &refresh_key)),
        ("typ at+jwt", sign_jwt(Algorithm::HS256, "at+jwt", Some(&refresh_kid), &claims, &refresh_key)),
        ("typ refresh", sign_jwt(Algorithm::HS256, "rt+jwt", Some(&refresh_kid), &claims, &refresh_key)),
        (
            "token_type refresh",
            sign_jwt(
                Algorithm::HS256,
                "mfa+jwt",
                Some(&refresh_kid),
                &with("token_type", json!("refresh")),
                &refresh_key,
            ),
        ),
        (
            "token_type access",
            sign_jwt(
                Algorithm::HS256,
                "mfa+jwt",
                Some(&refresh_kid),
                &with("token_type", json!("access")),
                &refresh_key,
            ),
        ),
        (
            "alg none",
            format!("{}.{}.", jwt_part(&json!({"alg":"none","typ":"mfa+jwt","kid":refresh_kid})), jwt_part(&claims)),
        ),
        (
            "payload altered, signature kept",
            format!("{}.{}.{signature}", real.split('.').next().unwrap(), jwt_part(&with("userId", json!(bob_id)))),
        ),
        (
            "expired",
            sign_jwt(Algorithm::HS256, "mfa+jwt", Some(&refresh_kid), &with("exp", json!(1_000_000_000)), &refresh_key),
        ),
    ];
    for (what, forged) in &forgeries {
        refused_as(verify(&app, forged, "", &codes[0]).await, Code::Unauthenticated, what);
    }
    // Even signed with the service's own key: the row of alice's challenge is not bob's.
    let as_bob = with("userId", json!(bob_id));
    let as_bob = sign_jwt(Algorithm::HS256, "mfa+jwt", Some(&refresh_kid), &with_sub(as_bob, bob_id), &refresh_key);
    refused_as(verify(&app, &as_bob, "", &codes[0]).await, Code::Unauthenticated, "another account's id");
    // None of that spent the challenge or the code.
    verify(&app, &real, "", &codes[0]).await.expect("the real challenge is untouched");
}

fn with_sub(mut claims: serde_json::Value, user_id: i64) -> serde_json::Value {
    claims["sub"] = json!(user_id.to_string());
    claims
}

#[tokio::test]
async fn a_challenge_opens_no_protected_call_and_refreshes_nothing() {
    let (app, operator) = spawn_deployment(with_mfa).await;
    // An admin's challenge is the one worth trying on operators' calls.
    let root_access = bootstrap_admin(&app, &operator, "root").await;
    let root_app = Authenticator::new(&begin(&app, &root_access).await.unwrap().secret);
    let root_codes = confirm(&app, &root_access, &root_app.code(-1)).await.unwrap();
    let (access, _, codes) = enrolled(&app, "alice").await;
    let alice = app.user_info(&bearer(&access)).await.unwrap().id;
    let pending = challenge(&app, "root").await;
    let sessions = app.sessions(&access).await.unwrap();
    let mut c = app.client.clone();
    let t = pending.as_str();
    let answers: Vec<(&str, Result<(), Status>)> = vec![
        ("GetUserInfo", c.get_user_info(authorized(GetUserInfoRequest {}, t)).await.map(|_| ())),
        ("Logout", c.logout(authorized(LogoutRequest {}, t)).await.map(|_| ())),
        ("ListSessions", c.list_sessions(authorized(ListSessionsRequest {}, t)).await.map(|_| ())),
        (
            "RevokeSession",
            c.revoke_session(authorized(RevokeSessionRequest { session_id: sessions[0].id.clone() }, t))
                .await
                .map(|_| ()),
        ),
        ("LogoutAll", c.logout_all(authorized(LogoutAllRequest { keep_current: false }, t)).await.map(|_| ())),
        (
            "ChangePassword",
            c.change_password(authorized(
                ChangePasswordRequest { current_password: PASSWORD.into(), new_password: "another passphrase".into() },
                t,
            ))
            .await
            .map(|_| ()),
        ),
        (
            "DeleteAccount",
            c.delete_account(authorized(DeleteAccountRequest { password: PASSWORD.into() }, t)).await.map(|_| ()),
        ),
        (
            "BeginTotpEnrolment",
            c.begin_totp_enrolment(authorized(BeginTotpEnrolmentRequest::default(), t)).await.map(|_| ()),
        ),
        (
            "ConfirmTotpEnrolment",
            c.confirm_totp_enrolment(authorized(ConfirmTotpEnrolmentRequest { code: "123456".into() }, t))
                .await
                .map(|_| ()),
        ),
        (
            "DisableTotp",
            c.disable_totp(authorized(
                DisableTotpRequest {
                    password: PASSWORD.into(),
                    code: String::new(),
                    recovery_code: root_codes[0].clone(),
                },
                t,
            ))
            .await
            .map(|_| ()),
        ),
        (
            "RegenerateRecoveryCodes",
            c.regenerate_recovery_codes(authorized(RegenerateRecoveryCodesRequest { code: "123456".into() }, t))
                .await
                .map(|_| ()),
        ),
        ("GetMfaStatus", c.get_mfa_status(authorized(GetMfaStatusRequest {}, t)).await.map(|_| ())),
        ("ListUsers", c.list_users(authorized(ListUsersRequest::default(), t)).await.map(|_| ())),
        (
            "SetUserRole",
            c.set_user_role(authorized(SetUserRoleRequest { username: "alice".into(), role: "admin".into() }, t))
                .await
                .map(|_| ()),
        ),
        ("DisableUser", c.disable_user(authorized(DisableUserRequest { id: alice }, t)).await.map(|_| ())),
        ("ResetMfa", c.reset_mfa(authorized(ResetMfaRequest { id: alice }, t)).await.map(|_| ())),
        ("Refresh", c.refresh(RefreshRequest { refresh_token: pending.clone() }).await.map(|_| ())),
    ];
    for (call, answer) in answers {
        refused_as(answer, Code::Unauthenticated, call);
    }
    assert!(!app.validate(&pending).await.unwrap().active);
    // Nothing happened: alice is an enabled user with her factor; root's factor and codes stand.
    let info = app.user_info(&bearer(&access)).await.unwrap();
    assert_eq!(info.role, "user");
    assert!(mfa_enabled(&app, &access).await && mfa_enabled(&app, &root_access).await);
    let root = verify(&app, &pending, "", &root_codes[0]).await.expect("root's challenge and code untouched");
    assert_eq!(token_payload(&root.access_token)["role"], "admin");
    verify(&app, &challenge(&app, "alice").await, "", &codes[0]).await.unwrap();
}

// --- Enrolment races ---

#[tokio::test]
async fn two_enrolments_begun_at_once_leave_one_secret_and_only_it_confirms() {
    let app = spawn_app_with(with_mfa).await;
    early_in_a_step().await;
    let access = app.signed_in("alice").await.access_token;
    let (first, second) = tokio::join!(begin(&app, &access), begin(&app, &access));
    let secrets = [Authenticator::new(&first.unwrap().secret), Authenticator::new(&second.unwrap().secret)];
    let mut confirmed = Vec::new();
    for (which, authenticator) in secrets.iter().enumerate() {
        match confirm(&app, &access, &authenticator.code(-1)).await {
            Ok(_) => confirmed.push(which),
            // The other secret's code: wrong before the confirmation, too late after it.
            Err(status) if confirmed.is_empty() => assert_eq!(status.code(), Code::Unauthenticated, "{status:?}"),
            Err(status) => assert_eq!(status.code(), Code::AlreadyExists, "{status:?}"),
        }
    }
    assert_eq!(confirmed.len(), 1, "exactly one of the two secrets is the account's");
    let winner = &secrets[confirmed[0]];
    let loser = &secrets[1 - confirmed[0]];
    let pending = challenge(&app, "alice").await;
    refused_as(verify(&app, &pending, &loser.code(0), "").await, Code::Unauthenticated, "the other secret");
    verify(&app, &pending, &winner.code(0), "").await.expect("the confirmed secret");
    // Begun while enrolled: refused, and the factor stays.
    refused_as(begin(&app, &access).await, Code::AlreadyExists, "begin while enrolled");
    assert!(mfa_enabled(&app, &access).await);
}

#[tokio::test]
async fn a_confirmation_racing_a_new_beginning_activates_only_the_secret_it_checked() {
    let app = spawn_app_with(with_mfa).await;
    early_in_a_step().await;
    for name in ["alice", "bob", "carol", "dave", "erin"] {
        let access = app.signed_in(name).await.access_token;
        let shown = Authenticator::new(&begin(&app, &access).await.unwrap().secret);
        let code = shown.code(-1);
        let (confirmed, begun) = tokio::join!(confirm(&app, &access, &code), begin(&app, &access));
        match (&confirmed, &begun) {
            (Ok(_), Err(status)) => {
                assert_eq!(status.code(), Code::AlreadyExists, "{name}: {status:?}");
                let pending = challenge(&app, name).await;
                verify(&app, &pending, &shown.code(0), "").await.expect("the checked secret is the one active");
            }
            (Err(status), Ok(_)) => {
                assert!(matches!(status.code(), Code::NotFound | Code::Unauthenticated), "{name}: {status:?}");
                assert!(!mfa_enabled(&app, &access).await, "{name}");
            }
            _ => panic!("{name}: {confirmed:?} and {:?}", begun.as_ref().map(|_| "a new secret")),
        }
    }
}

#[tokio::test]
async fn disabling_racing_a_login_leaves_a_consistent_account() {
    let app = spawn_app_with(with_mfa).await;
    early_in_a_step().await;
    let (access, authenticator, codes) = enrolled(&app, "alice").await;
    let pending = challenge(&app, "alice").await;
    let code = authenticator.code(0);
    let (disabled, verified) =
        tokio::join!(disable_totp(&app, &access, PASSWORD, "", &codes[0]), verify(&app, &pending, &code, ""));
    disabled.expect("password and a recovery code disable");
    if let Err(status) = &verified {
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    }
    assert!(!mfa_enabled(&app, &access).await);
    let pair = app.login("alice", PASSWORD).await.unwrap();
    assert!(pair.mfa_challenge.is_none());
}

/// Tries at a race: each round is one account, one login and one change racing it, the
/// change started a little later each round (0 to 2.3 ms), to cross the login's steps.
const ROUNDS: usize = 24;

fn offset_micros(round: usize) -> u64 {
    u64::try_from(round).unwrap() * 100
}

/// Waits `micros` without blocking the runtime the servers share (tokio's timer has 1 ms
/// granularity).
async fn pause_micros(micros: u64) {
    let until = std::time::Instant::now() + Duration::from_micros(micros);
    while std::time::Instant::now() < until {
        tokio::task::yield_now().await;
    }
}

/// An operator's reset (or a password change) ends every session of the account; a VerifyMfa
/// racing it must not start one that outlives it. Tried on several accounts, as any race.
#[tokio::test]
async fn a_reset_racing_a_login_leaves_no_session_behind() {
    let (app, operator) = spawn_deployment(with_mfa).await;
    early_in_a_step().await;
    let admin = bootstrap_admin(&app, &operator, "root").await;
    for round in crate::helpers::sweep_rounds(ROUNDS) {
        let name = format!("user{round}");
        let (access, authenticator, _) = enrolled(&app, &name).await;
        let id = app.user_info(&bearer(&access)).await.unwrap().id;
        let pending = challenge(&app, &name).await;
        let reset = async {
            pause_micros(offset_micros(round)).await;
            let request = authorized(ResetMfaRequest { id }, &admin);
            app.client.clone().reset_mfa(request).await
        };
        let code = authenticator.code(0);
        let (reset, verified) = tokio::join!(reset, verify(&app, &pending, &code, ""));
        reset.expect("reset");
        if let Ok(pair) = verified {
            let refreshed = app.refresh(&pair.refresh_token).await.map(|_| "a new pair");
            refused_as(refreshed, Code::Unauthenticated, &format!("{name}: the session survived"));
        }
    }
}

#[tokio::test]
async fn a_password_change_racing_a_login_leaves_no_session_behind() {
    let app = spawn_app_with(with_mfa).await;
    early_in_a_step().await;
    for round in crate::helpers::sweep_rounds(ROUNDS) {
        let name = format!("user{round}");
        let (access, authenticator, _) = enrolled(&app, &name).await;
        let pending = challenge(&app, &name).await;
        let code = authenticator.code(0);
        let change = async {
            pause_micros(offset_micros(round)).await;
            app.change_password(&access, PASSWORD, "a brand new passphrase").await
        };
        let (changed, verified) = tokio::join!(change, verify(&app, &pending, &code, ""));
        changed.expect("password changed");
        if let Ok(pair) = verified {
            let refreshed = app.refresh(&pair.refresh_token).await.map(|_| "a new pair");
            refused_as(refreshed, Code::Unauthenticated, &format!("{name}: the session survived"));
        }
    }
}

// --- Input ---

#[tokio::test]
async fn hostile_codes_and_challenges_are_refused_as_input_never_internal() {
    let app = spawn_app_with(with_mfa).await;
    let (access, _, codes) = enrolled(&app, "alice").await;
    let pending = challenge(&app, "alice").await;
    // Over the 64 KiB message limit: refused by size before any logic (OUT_OF_RANGE, what
    // server.rs promises); under it, by the service as input.
    let over_limit = "1".repeat(1 << 20);
    let status = verify(&app, &pending, &over_limit, "").await.expect_err("a MiB code");
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    let status = verify(&app, &over_limit, "", &codes[2]).await.expect_err("a MiB challenge");
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    let huge = "1".repeat(60 * 1024);
    let huge_letters = "a".repeat(60 * 1024);
    // The right recovery code with its letters written in other scripts (fullwidth, Cyrillic
    // and Greek look-alikes, a Kelvin sign).
    let fullwidth: String = codes[1]
        .chars()
        .map(|c| if c.is_ascii_lowercase() { char::from_u32(u32::from(c) + 0xFEE0).unwrap() } else { c })
        .collect();
    let lookalike = codes[1].replace('a', "а").replace('o', "ο").replace('k', "\u{212A}").replace('e', "е");
    let hostile_codes = [
        huge.as_str(),
        "١٢٣٤٥٦",
        "１２３４５６",
        "123 456",
        " 123456",
        "12345\0",
        "\0\0\0\0\0\0",
        "-12345",
        "+12345",
        "1234567",
        "0x1234",
    ];
    for code in hostile_codes {
        let status = verify(&app, &pending, code, "").await.expect_err("hostile code");
        assert!(matches!(status.code(), Code::InvalidArgument | Code::Unauthenticated), "{status:?}");
        assert!(status.message().len() < 200, "the answer does not echo the input");
        let status = confirm(&app, &access, code).await.expect_err("hostile code at confirm");
        assert!(
            matches!(status.code(), Code::InvalidArgument | Code::Unauthenticated | Code::AlreadyExists),
            "{status:?}"
        );
        let status = regenerate(&app, &access, code).await.expect_err("hostile code at regenerate");
        assert!(matches!(status.code(), Code::InvalidArgument | Code::Unauthenticated), "{status:?}");
    }
    let lookalike_is_different = lookalike != codes[1];
    for recovery in [huge_letters.as_str(), "\0\0\0\0\0-\0\0\0\0\0", fullwidth.as_str()]
        .into_iter()
        .chain(lookalike_is_different.then_some(lookalike.as_str()))
    {
        let status = verify(&app, &pending, "", recovery).await.expect_err("hostile recovery code");
        assert!(matches!(status.code(), Code::InvalidArgument | Code::Unauthenticated), "{status:?}");
        let status = disable_totp(&app, &access, PASSWORD, "", recovery).await.expect_err("hostile at disable");
        assert!(matches!(status.code(), Code::InvalidArgument | Code::Unauthenticated), "{status:?}");
    }
    for challenge in [huge_letters.as_str(), "a.b.c", "\0", "..", "eyJ.eyJ.", "🦀.🦀.🦀"] {
        let status = verify(&app, challenge, "", &codes[2]).await.expect_err("hostile challenge");
        assert!(matches!(status.code(), Code::InvalidArgument | Code::Unauthenticated), "{status:?}");
    }
    // The service still answers, and nothing above used up a code.
    assert!(mfa_enabled(&app, &access).await);
    verify(&app, &challenge(&app, "alice").await, "", &codes[2]).await.expect("the code is still good");
}

// --- Leaks ---

#[tokio::test]
async fn no_answer_audit_event_or_log_line_carries_a_secret_a_code_or_a_challenge() {
    let app = spawn_app_with(with_mfa).await;
    early_in_a_step().await;
    let access = app.signed_in("alice").await.access_token;
    let enrolment = begin(&app, &access).await.unwrap();
    let authenticator = Authenticator::new(&enrolment.secret);
    let mut answers = Vec::new();
    let wrong = wrong_code(&authenticator);
    answers.push(confirm(&app, &access, &wrong).await.map(|_| ()));
    let codes = confirm(&app, &access, &authenticator.code(-1)).await.unwrap();
    let pending = challenge(&app, "alice").await;
    answers.push(verify(&app, &pending, &wrong, "").await.map(|_| ()));
    answers.push(verify(&app, &pending, "", "zzzzz-zzzzz").await.map(|_| ()));
    answers.push(verify(&app, &format!("{pending}x"), "", &codes[0]).await.map(|_| ()));
    let pair = verify(&app, &pending, "", &codes[0]).await.unwrap();
    answers.push(verify(&app, &pending, "", &codes[1]).await.map(|_| ()));
    answers.push(verify(&app, &challenge(&app, "alice").await, "", &codes[0]).await.map(|_| ()));
    answers.push(regenerate(&app, &pair.access_token, &wrong).await.map(|_| ()));
    answers.push(disable_totp(&app, &pair.access_token, "wrong password", "", &codes[1]).await);
    answers.push(disable_totp(&app, &pair.access_token, PASSWORD, "", "zzzzz-zzzzz").await);
    answers.push(begin(&app, &pair.access_token).await.map(|_| ()));
    let secret_lower = enrolment.secret.to_lowercase();
    let mut needles: Vec<String> = vec![
        enrolment.secret.clone(),
        secret_lower,
        enrolment.otpauth_uri.clone(),
        pending.clone(),
        pending.rsplit('.').next().unwrap().to_owned(),
        pair.refresh_token.clone(),
    ];
    for code in &codes {
        needles.push(code.clone());
        needles.push(code.replace('-', ""));
    }
    let audit: Vec<String> = app.audit.events().iter().map(|event| serde_json::to_string(event).unwrap()).collect();
    for needle in &needles {
        for answer in &answers {
            let status = answer.as_ref().expect_err("each of these is refused");
            assert!(!status.message().contains(needle.as_str()), "{status:?}");
            assert!(!format!("{:?}", status.metadata()).contains(needle.as_str()), "{status:?}");
        }
        for event in &audit {
            assert!(!event.contains(needle.as_str()), "an audit event carries a secret: {event}");
        }
    }
    if let Ok(path) = std::env::var(crate::helpers::LOG_FILE_ENV) {
        let log = std::fs::read_to_string(path).unwrap();
        for needle in &needles {
            assert!(!log.contains(needle.as_str()), "the log carries a secret, a code or a challenge");
        }
    }
}

#[tokio::test]
async fn without_the_password_an_account_with_a_factor_looks_like_any_other() {
    let app = spawn_app_with(with_mfa).await;
    enrolled(&app, "alice").await;
    app.register("bob").await;
    let refusal = |result: Result<_, Status>| {
        let status = result.expect_err("wrong password");
        (status.code(), status.message().to_owned())
    };
    let with_factor = refusal(app.login("alice", "wrong password").await);
    let without = refusal(app.login("bob", "wrong password").await);
    let nobody = refusal(app.login("nobody", "wrong password").await);
    assert_eq!(with_factor, without);
    assert_eq!(with_factor, nobody);
    // Held alike once the limit is reached.
    for _ in 0..5 {
        let _ = app.login("alice", "wrong password").await;
        let _ = app.login("bob", "wrong password").await;
    }
    let with_factor = refusal(app.login("alice", "wrong password").await);
    let without = refusal(app.login("bob", "wrong password").await);
    assert_eq!(with_factor.0, Code::ResourceExhausted);
    assert_eq!(with_factor, without);
}

// --- amr ---

#[tokio::test]
async fn a_session_without_the_second_factor_never_gets_otp_in_its_tokens() {
    let app = spawn_app_with(with_mfa).await;
    early_in_a_step().await;
    // The session that confirmed the enrolment authenticated with the password only.
    let (access, _, _) = enrolled(&app, "alice").await;
    assert_eq!(token_payload(&access)["amr"], json!(["pwd"]));
    let changed = app.change_password(&access, PASSWORD, "a brand new passphrase").await.unwrap();
    assert_eq!(token_payload(&changed.access_token)["amr"], json!(["pwd"]));
    let refreshed = app.refresh(&changed.refresh_token).await.unwrap();
    assert_eq!(token_payload(&refreshed.access_token)["amr"], json!(["pwd"]));
    let claims = app.validate(&refreshed.access_token).await.unwrap().claims.unwrap();
    assert_eq!(claims.amr, ["pwd"]);
}

#[tokio::test]
async fn sessions_from_before_the_enrolment_die_even_within_the_reuse_interval() {
    let app = spawn_app_with(|config| {
        with_mfa(config);
        config.auth.refresh_reuse_interval = 30;
    })
    .await;
    early_in_a_step().await;
    let old = app.signed_in("alice").await;
    let rotated = app.refresh(&old.refresh_token).await.unwrap();
    // Within the interval the old token still answers with its successor.
    assert_eq!(app.refresh(&old.refresh_token).await.unwrap().refresh_token, rotated.refresh_token);
    let current = app.login("alice", PASSWORD).await.unwrap();
    let authenticator = Authenticator::new(&begin(&app, &current.access_token).await.unwrap().secret);
    confirm(&app, &current.access_token, &authenticator.code(-1)).await.unwrap();
    refused_as(app.refresh(&old.refresh_token).await, Code::Unauthenticated, "the rotated token");
    refused_as(app.refresh(&rotated.refresh_token).await, Code::Unauthenticated, "its successor");
    refused_as(app.user_info(&bearer(&rotated.access_token)).await, Code::Unauthenticated, "its access token");
    refused_as(app.user_info(&bearer(&old.access_token)).await, Code::Unauthenticated, "the first access token");
}

/// Someone holding only a stolen access token (no password, no code) must not be able to put
/// their own authenticator on the account: that ends the owner's other sessions and makes
/// every later login of the owner need the thief's code. Every other change of how one signs
/// in (ChangePassword, DisableTotp, DeleteAccount) re-checks the password.
#[tokio::test]
async fn a_stolen_access_token_alone_cannot_put_an_authenticator_on_the_account() {
    let app = spawn_app_with(with_mfa).await;
    early_in_a_step().await;
    let owner = app.signed_in("alice").await;
    let stolen = app.login("alice", PASSWORD).await.unwrap().access_token;
    // The thief has the token, not the password.
    let thiefs_try = begin_with(&app, &stolen, "").await;
    assert_eq!(thiefs_try.as_ref().map_err(Status::code).err(), Some(Code::InvalidArgument), "{thiefs_try:?}");
    let thiefs_guess = begin_with(&app, &stolen, "hunter2hunter2").await;
    assert_eq!(thiefs_guess.as_ref().map_err(Status::code).err(), Some(Code::Unauthenticated));
    if let Ok(enrolment) = thiefs_guess {
        let thiefs = Authenticator::new(&enrolment.secret);
        #[allow(
            clippy::field_reassign_with_default,
            reason = "a fix may add fields (a password) the thief leaves empty"
        )]
        let request = {
            let mut request = ConfirmTotpEnrolmentRequest::default();
            request.code = thiefs.code(-1);
            request
        };
        let _ = app.client.clone().confirm_totp_enrolment(authorized(request, &stolen)).await;
    }
    let login = app.login("alice", PASSWORD).await.unwrap();
    assert!(
        login.mfa_challenge.is_none(),
        "the thief's authenticator is on the account: the owner's password alone no longer logs in"
    );
    app.user_info(&bearer(&owner.access_token)).await.expect("the owner's session was ended by the thief");
    assert!(!mfa_enabled(&app, &owner.access_token).await);
}

/// A VerifyMfa answered for a request message the client never sends whole: the request is
/// checked for form before anything is counted.
#[tokio::test]
async fn a_verify_with_both_or_neither_field_counts_no_attempt() {
    let app = spawn_app_with(|config| {
        with_mfa(config);
        config.throttle.max_failures_per_username = NonZero::new(2).unwrap();
    })
    .await;
    early_in_a_step().await;
    let (_, authenticator, codes) = enrolled(&app, "alice").await;
    let pending = challenge(&app, "alice").await;
    for _ in 0..5 {
        let both =
            VerifyMfaRequest { challenge: pending.clone(), code: "123456".into(), recovery_code: codes[0].clone() };
        refused_as(app.client.clone().verify_mfa(both).await, Code::InvalidArgument, "both");
        let neither = VerifyMfaRequest { challenge: pending.clone(), ..Default::default() };
        refused_as(app.client.clone().verify_mfa(neither).await, Code::InvalidArgument, "neither");
    }
    verify(&app, &pending, &authenticator.code(0), "").await.expect("no attempt was counted");
}
