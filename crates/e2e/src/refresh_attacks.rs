//! A hostile client's tries at Refresh's one-transaction path (`rotate_presented`): one token
//! presented 50 times at once on two replicas, Refresh racing every call that ends sessions,
//! sessions at the edge of their maximum lifetime, forged and edited refresh tokens, rows from
//! before `session_started_at` existed, and the database cut while 50 clients refresh. On every
//! database (`AUTH_TEST_DATABASE_URL` unset = two replicas on one SQLite file).

use std::{
    num::NonZero,
    sync::{
        Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use auth_api::user::v1::LoginResponse;
use futures::future::join_all;
use jsonwebtoken::Algorithm;
use model::query::refresh_tokens;
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};
use tonic::{Code, Status};

use crate::{
    helpers::{
        ACCESS_SECRET, PASSWORD, REFRESH_SECRET, TestApp, TestDatabase, assert_status, bearer, database_server_or_skip,
        eventually, hmac_key, hmac_kid, jwt_part, spawn_app_on, spawn_app_with, sweep_rounds, test_config,
        token_payload,
    },
    proxy::TcpProxy,
    replicas::two_replicas,
};

/// Clients presenting one token at once.
const AT_ONCE: usize = 50;
/// `revocation.max_staleness_ms` at its default, plus a margin: how soon the other replica
/// refuses an access token of an ended session when there is no Redis.
const PROMISE: Duration = Duration::from_millis(3000);
const REUSED: &str = "refresh token already used; session revoked";

/// Many calls of one account at once are all right here; the throttle has tests of its own.
fn lenient(config: &mut auth_svc::Config) {
    config.throttle.max_failures_per_username = NonZero::new(100_000).unwrap();
    config.throttle.max_failures_per_address = NonZero::new(100_000).unwrap();
}

fn claim(token: &str, name: &str) -> String {
    token_payload(token)[name].as_str().unwrap_or_else(|| panic!("a {name} claim")).to_owned()
}

async fn live_tokens(app: &TestApp, session: &str) -> Vec<model::entity::refresh_tokens::Model> {
    refresh_tokens::live_in_family(&app.db, session, chrono::Utc::now().timestamp()).await.unwrap()
}

async fn rows_of(app: &TestApp, session: &str) -> Vec<model::entity::refresh_tokens::Model> {
    use model::entity::refresh_tokens::{Column, Entity};
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    Entity::find().filter(Column::FamilyId.eq(session)).all(&app.db).await.unwrap()
}

async fn execute(app: &TestApp, sql: &str) {
    app.db.execute_unprepared(sql).await.unwrap();
}

/// `AT_ONCE` Refresh calls of `token`, alternating between the replicas.
async fn all_at_once(replicas: [&TestApp; 2], token: &str) -> Vec<Result<LoginResponse, Status>> {
    join_all((0..AT_ONCE).map(|i| replicas[i % 2].refresh(token))).await
}

/// Within the reuse interval, 50 presentations of one token on two replicas, round after round
/// along the chain, all get the very same successor, and the session has one live token: the
/// database let exactly one of them spend it.
#[tokio::test]
async fn fifty_refreshes_of_one_token_on_two_replicas_get_one_successor_round_after_round() {
    let (a, b) = two_replicas(|config| {
        lenient(config);
        config.auth.refresh_reuse_interval = 10;
    })
    .await;
    let first = a.signed_in("alice").await;
    let session = claim(&first.refresh_token, "sid");
    let mut token = first.refresh_token.clone();
    let mut rounds = 0;
    for round in sweep_rounds(8) {
        let results = all_at_once([&a, &b], &token).await;
        let pairs: Vec<_> = results.into_iter().map(|r| r.unwrap_or_else(|s| panic!("round {round}: {s:?}"))).collect();
        for pair in &pairs {
            assert_eq!(
                (&pair.refresh_token, &pair.access_token),
                (&pairs[0].refresh_token, &pairs[0].access_token),
                "round {round}: two different successors came back"
            );
        }
        assert_ne!(pairs[0].refresh_token, token);
        let live = live_tokens(&a, &session).await;
        assert_eq!(live.len(), 1, "round {round}: live tokens {live:?}");
        assert_eq!(live[0].id, claim(&pairs[0].refresh_token, "jti"), "round {round}");
        token.clone_from(&pairs[0].refresh_token);
        rounds += 1;
    }
    assert_eq!(rows_of(&a, &session).await.len(), rounds + 1, "one row per rotation, none per replay");
    b.user_info(&bearer(&a.refresh(&token).await.unwrap().access_token)).await.expect("the chain goes on");
}

/// With no reuse interval, 50 presentations of one token on two replicas: exactly one gets a
/// pair, the others are reuse, and the reuse ends the session, the winner's pair included, on
/// both replicas.
#[tokio::test]
async fn fifty_refreshes_with_no_reuse_interval_let_one_win_and_then_end_the_session() {
    let (a, b) = two_replicas(|config| {
        lenient(config);
        config.auth.refresh_reuse_interval = 0;
    })
    .await;
    a.register("alice").await;
    for round in sweep_rounds(4) {
        let first = a.login("alice", PASSWORD).await.unwrap();
        let session = claim(&first.refresh_token, "sid");
        let results = all_at_once([&a, &b], &first.refresh_token).await;
        let winners: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(winners.len(), 1, "round {round}: {} pairs came back", winners.len());
        for refused in results.iter().filter_map(|r| r.as_ref().err()) {
            assert_eq!(refused.code(), Code::Unauthenticated, "round {round}: {refused:?}");
            assert!([REUSED, "session revoked"].contains(&refused.message()), "round {round}: {refused:?}");
        }
        assert!(live_tokens(&a, &session).await.is_empty(), "round {round}: the reuse left a live token");
        let winner = winners[0];
        for replica in [&a, &b] {
            assert_status(replica.refresh(&winner.refresh_token).await, Code::Unauthenticated, "session revoked");
            let access = bearer(&winner.access_token);
            assert!(
                eventually(PROMISE, || async { replica.user_info(&access).await.is_err() }).await,
                "round {round}: the winner's access token outlived the reuse"
            );
            assert_status(replica.user_info(&access).await, Code::Unauthenticated, "session revoked");
        }
    }
}

/// The calls that end a session, each of which a refresh chain races.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ender {
    Logout,
    LogoutAllKeepingAnother,
    RevokeSession,
    ChangePassword,
    DeleteAccount,
    DisableUser,
    RevokeUserSessions,
}

/// Who is racing: the two replicas, an admin's access token, the account.
struct Race<'a> {
    a: &'a TestApp,
    b: &'a TestApp,
    admin: &'a str,
}

/// Refreshes in a chain (four presentations of each token at once, on both replicas) race
/// `ender`, which lands `delay_ms` in on replica A. A refresh that began after `ender` returned
/// must fail; afterwards the session has no live token, and no pair any refresh returned works
/// on either replica (access tokens on B within the revocation promise).
async fn refresh_chain_racing(race: &Race<'_>, ender: Ender, round: usize, delay_ms: u64) {
    let Race { a, b, admin } = *race;
    let username = format!("r{round}e{}", ender as u8);
    let user_id = a.register(&username).await.id;
    let victim = a.login(&username, PASSWORD).await.unwrap();
    let other = a.login(&username, PASSWORD).await.unwrap();
    let session = claim(&victim.refresh_token, "sid");
    let ended = AtomicBool::new(false);
    let returned = Mutex::new(vec![victim.clone()]);

    let chain = async {
        let mut token = victim.refresh_token.clone();
        for step in 0..400 {
            let after_the_end = ended.load(Ordering::SeqCst);
            let results = join_all((0..4).map(|i| [a, b][(i + step) % 2].refresh(&token))).await;
            let mut next = None;
            for result in results {
                match result {
                    Ok(pair) => {
                        assert!(!after_the_end, "{ender:?} round {round}: a refresh begun after it returned succeeded");
                        if let Some(next) = &next {
                            assert_eq!(next, &pair.refresh_token, "{ender:?} round {round}: two successors");
                        }
                        next = Some(pair.refresh_token.clone());
                        returned.lock().unwrap().push(pair);
                    }
                    Err(status) => assert_eq!(status.code(), Code::Unauthenticated, "{ender:?}: {status:?}"),
                }
            }
            match next {
                Some(next) => token = next,
                None => return,
            }
        }
        panic!("{ender:?} round {round}: a chain of 400 refreshes outlived it");
    };
    let end = async {
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        match ender {
            Ender::Logout => a.logout(&victim.access_token).await.unwrap(),
            Ender::LogoutAllKeepingAnother => {
                a.logout_all(&other.access_token, true).await.unwrap();
            }
            Ender::RevokeSession => a.revoke_session(&other.access_token, &session).await.unwrap(),
            Ender::ChangePassword => {
                let fresh = a.change_password(&victim.access_token, PASSWORD, "another horse battery").await;
                a.user_info(&bearer(&fresh.unwrap().access_token)).await.expect("the new session works");
            }
            Ender::DeleteAccount => a.delete_account(&victim.access_token, PASSWORD).await.unwrap(),
            Ender::DisableUser => {
                a.disable_user(admin, user_id).await.unwrap();
            }
            Ender::RevokeUserSessions => {
                a.revoke_user_sessions(admin, user_id).await.unwrap();
            }
        }
        ended.store(true, Ordering::SeqCst);
    };
    tokio::join!(chain, end);

    let live = live_tokens(a, &session).await;
    assert!(live.is_empty(), "{ender:?} round {round}: live tokens after it: {live:?}");
    let returned = returned.into_inner().unwrap();
    for pair in &returned {
        for replica in [a, b] {
            let refused = replica.refresh(&pair.refresh_token).await.expect_err("a refresh token outlived the end");
            assert_eq!(refused.code(), Code::Unauthenticated, "{ender:?} round {round}: {refused:?}");
        }
        assert!(a.user_info(&bearer(&pair.access_token)).await.is_err(), "{ender:?} round {round}: access on A");
    }
    let last = bearer(&returned.last().unwrap().access_token);
    assert!(
        eventually(PROMISE, || async { b.user_info(&last).await.is_err() }).await,
        "{ender:?} round {round}: the last access token still works on B"
    );
    if ender == Ender::LogoutAllKeepingAnother {
        a.refresh(&other.refresh_token).await.expect("the kept session lives on");
    }
}

/// Every round of `ender`'s race, each with its own account and a different delay.
async fn sweep_enders(ender: Ender) {
    let (a, b) = two_replicas(lenient).await;
    a.register("root").await;
    model::query::users::set_role(&a.db, "root", "admin").await.unwrap().expect("the admin exists");
    let admin = a.login("root", PASSWORD).await.unwrap().access_token;
    let race = Race { a: &a, b: &b, admin: &admin };
    for round in sweep_rounds(8) {
        refresh_chain_racing(&race, ender, round, u64::try_from(round * 3).unwrap()).await;
    }
}

#[tokio::test]
async fn refreshes_racing_logout_leave_nothing_that_works() {
    sweep_enders(Ender::Logout).await;
}

#[tokio::test]
async fn refreshes_racing_logout_all_leave_nothing_that_works() {
    sweep_enders(Ender::LogoutAllKeepingAnother).await;
}

#[tokio::test]
async fn refreshes_racing_revoke_session_leave_nothing_that_works() {
    sweep_enders(Ender::RevokeSession).await;
}

#[tokio::test]
async fn refreshes_racing_change_password_leave_nothing_that_works() {
    sweep_enders(Ender::ChangePassword).await;
}

#[tokio::test]
async fn refreshes_racing_delete_account_leave_nothing_that_works() {
    sweep_enders(Ender::DeleteAccount).await;
}

#[tokio::test]
async fn refreshes_racing_disable_user_leave_nothing_that_works() {
    sweep_enders(Ender::DisableUser).await;
}

#[tokio::test]
async fn refreshes_racing_revoke_user_sessions_leave_nothing_that_works() {
    sweep_enders(Ender::RevokeUserSessions).await;
}

/// Near the end of its maximum lifetime a session's successor expires exactly when the session
/// does (the database's CASE in the one-transaction path, and the older path for a row without
/// `session_started_at`), and 50 presentations at once still write one successor.
#[tokio::test]
async fn a_successor_near_the_session_s_end_expires_with_it_on_both_paths() {
    const MAX_LIFETIME: i64 = 3600;
    let app = spawn_app_with(|config| {
        lenient(config);
        config.auth.session_max_lifetime_seconds = NonZero::new(MAX_LIFETIME.unsigned_abs()).unwrap();
        config.auth.refresh_expire = 1800;
    })
    .await;
    let young = app.signed_in("alice").await;
    let next = app.refresh(&young.refresh_token).await.unwrap();
    let (issued, expires) = (
        token_payload(&next.refresh_token)["iat"].as_i64().unwrap(),
        token_payload(&next.refresh_token)["exp"].as_i64().unwrap(),
    );
    assert_eq!(expires - issued, 1800, "a young session's successor lives refresh_expire");

    for (path, forget_start) in [("one transaction", false), ("the older path", true)] {
        let first = app.login("alice", PASSWORD).await.unwrap();
        let session = claim(&first.refresh_token, "sid");
        // The session began 3,590 s ago: 10 s are left.
        let mut backdate = "issued_at = issued_at - 3590, session_started_at = session_started_at - 3590".to_owned();
        if forget_start {
            backdate = "issued_at = issued_at - 3590, session_started_at = NULL".to_owned();
        }
        execute(&app, &format!("UPDATE refresh_tokens SET {backdate} WHERE family_id = '{session}'")).await;
        let started = rows_of(&app, &session).await[0].issued_at;
        let results = join_all((0..AT_ONCE).map(|_| app.refresh(&first.refresh_token))).await;
        let pairs: Vec<_> = results.into_iter().map(|r| r.unwrap_or_else(|s| panic!("{path}: {s:?}"))).collect();
        assert!(pairs.iter().all(|pair| pair.refresh_token == pairs[0].refresh_token), "{path}: two successors");
        let exp = token_payload(&pairs[0].refresh_token)["exp"].as_i64().unwrap();
        assert_eq!(exp, started + MAX_LIFETIME, "{path}: the successor outlives its session");
        let rows = rows_of(&app, &session).await;
        assert_eq!(rows.len(), 2, "{path}: {rows:?}");
        let successor = rows.iter().find(|row| row.rotated_at.is_none()).unwrap();
        assert_eq!(
            (successor.expires_at, successor.session_started_at),
            (started + MAX_LIFETIME, Some(started)),
            "{path}: the successor's row"
        );
        // Past the end (rows backdated once more): refused, and the replay of the spent one too.
        execute(&app, &format!("UPDATE refresh_tokens SET session_started_at = session_started_at - 20, issued_at = issued_at - 20 WHERE family_id = '{session}'")).await;
        if forget_start {
            execute(
                &app,
                &format!("UPDATE refresh_tokens SET session_started_at = NULL WHERE family_id = '{session}'"),
            )
            .await;
        }
        assert_status(app.refresh(&pairs[0].refresh_token).await, Code::Unauthenticated, "session expired");
        assert_status(app.refresh(&first.refresh_token).await, Code::Unauthenticated, "session expired");
        assert_eq!(rows_of(&app, &session).await.len(), 2, "{path}: an expired session's refusal wrote a row");
    }
}

/// A session that reaches its real end: the successor's token expires with it, and afterwards
/// Refresh answers UNAUTHENTICATED.
#[tokio::test]
async fn a_session_at_its_real_end_refreshes_no_more() {
    let app = spawn_app_with(|config| {
        config.auth.session_max_lifetime_seconds = NonZero::new(2).unwrap();
    })
    .await;
    let first = app.signed_in("alice").await;
    let started = token_payload(&first.refresh_token)["iat"].as_i64().unwrap();
    assert_eq!(token_payload(&first.refresh_token)["exp"].as_i64().unwrap(), started + 2);
    let next = app.refresh(&first.refresh_token).await.unwrap();
    assert_eq!(token_payload(&next.refresh_token)["exp"].as_i64().unwrap(), started + 2);
    while chrono::Utc::now().timestamp() <= started + 2 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_status(app.refresh(&next.refresh_token).await, Code::Unauthenticated, "refresh token expired");
    assert_status(app.refresh(&first.refresh_token).await, Code::Unauthenticated, "refresh token expired");
}

/// A refresh token over `claims` as the service signs them (`rt+jwt`, the refresh key's `kid`),
/// here with the secret `secret` and `alg`.
fn sign_refresh(alg: Algorithm, claims: &Value, secret: &str) -> String {
    crate::helpers::sign_jwt(alg, "rt+jwt", Some(&hmac_kid(REFRESH_SECRET)), claims, &hmac_key(secret))
}

/// `result` is UNAUTHENTICATED with `message`; `what` names the try.
#[track_caller]
fn refused_as<T: std::fmt::Debug>(result: Result<T, Status>, message: &str, what: &str) {
    let status = result.expect_err(what);
    assert_eq!((status.code(), status.message()), (Code::Unauthenticated, message), "{what}: {status:?}");
}

/// Refresh tokens edited by someone holding the refresh key (the worst case): another account's
/// session with one's own token id, one's own session under another account, a random session;
/// and tokens not signed as the service signs them. Each is refused as invalid and spends
/// nothing: with no reuse interval, the genuine claims, re-signed, still rotate once afterwards
/// (a spend by any of the forgeries would have made that reuse and ended the session).
#[tokio::test]
async fn edited_and_misissued_refresh_tokens_are_refused_and_spend_nothing() {
    let app = spawn_app_with(|config| config.auth.refresh_reuse_interval = 0).await;
    let alice = app.signed_in("alice").await;
    let bob = app.signed_in("bob").await;
    let genuine = token_payload(&alice.refresh_token);
    let bobs = token_payload(&bob.refresh_token);
    let edit = |changes: &[(&str, &Value)]| {
        let mut claims = genuine.clone();
        for (name, value) in changes {
            claims[*name] = (*value).clone();
        }
        claims
    };
    let random_sid = json!(uuid::Uuid::now_v7().to_string());
    let edited = [
        ("bob's session, alice's token id", edit(&[("sid", &bobs["sid"])])),
        ("alice's session, bob as subject", edit(&[("sub", &bobs["sub"]), ("userId", &bobs["userId"])])),
        ("bob's token id, alice's session", edit(&[("jti", &bobs["jti"])])),
        ("bob's token id and session, alice's account", edit(&[("jti", &bobs["jti"]), ("sid", &bobs["sid"])])),
        ("a session that never was", edit(&[("sid", &random_sid)])),
        ("alice's access token id", edit(&[("jti", &token_payload(&alice.access_token)["jti"])])),
    ];
    for (what, claims) in &edited {
        let forged = sign_refresh(Algorithm::HS256, claims, REFRESH_SECRET);
        refused_as(app.refresh(&forged).await, "invalid refresh token", what);
    }
    let misissued = [
        ("HS384", sign_refresh(Algorithm::HS384, &genuine, REFRESH_SECRET)),
        ("HS512", sign_refresh(Algorithm::HS512, &genuine, REFRESH_SECRET)),
        ("the access secret", sign_refresh(Algorithm::HS256, &genuine, ACCESS_SECRET)),
        (
            "the access key's kid and secret",
            crate::helpers::sign_jwt(
                Algorithm::HS256,
                "rt+jwt",
                Some(&hmac_kid(ACCESS_SECRET)),
                &genuine,
                &hmac_key(ACCESS_SECRET),
            ),
        ),
        (
            "alg none",
            format!(
                "{}.{}.",
                jwt_part(&json!({"alg":"none","typ":"rt+jwt","kid":hmac_kid(REFRESH_SECRET)})),
                jwt_part(&genuine)
            ),
        ),
    ];
    for (what, token) in &misissued {
        refused_as(app.refresh(token).await, "invalid refresh token", what);
    }
    let wrong_kind = [
        (
            "typ at+jwt",
            crate::helpers::sign_jwt(
                Algorithm::HS256,
                "at+jwt",
                Some(&hmac_kid(REFRESH_SECRET)),
                &genuine,
                &hmac_key(REFRESH_SECRET),
            ),
        ),
        (
            "token_type access",
            sign_refresh(Algorithm::HS256, &edit(&[("token_type", &json!("access"))]), REFRESH_SECRET),
        ),
    ];
    for (what, token) in &wrong_kind {
        refused_as(app.refresh(token).await, "not a refresh token", what);
    }
    // An access token names the access key, which the refresh check does not know.
    refused_as(app.refresh(&alice.access_token).await, "invalid refresh token", "the access token");
    // A refresh token is no access token, not even to the interceptor.
    assert_status(app.user_info(&bearer(&alice.refresh_token)).await, Code::Unauthenticated, "invalid access token");

    // Nothing was spent: the genuine claims, re-signed, rotate once; bob's session is whole.
    let control = sign_refresh(Algorithm::HS256, &genuine, REFRESH_SECRET);
    let next = app.refresh(&control).await.expect("the forgeries spent alice's token");
    app.user_info(&bearer(&next.access_token)).await.unwrap();
    app.refresh(&bob.refresh_token).await.expect("the forgeries touched bob's session");
}

/// A row from before `session_started_at` (the column NULL, as an older replica still writes
/// it during a rolling upgrade) takes the older path: 50 presentations at once get one
/// successor, which carries the session's start; with no reuse interval exactly one wins.
#[tokio::test]
async fn a_row_without_a_session_start_is_rotated_exactly_once() {
    for interval in [10, 0] {
        let (a, b) = two_replicas(|config| {
            lenient(config);
            config.auth.refresh_reuse_interval = interval;
        })
        .await;
        let first = a.signed_in("alice").await;
        let session = claim(&first.refresh_token, "sid");
        execute(&a, &format!("UPDATE refresh_tokens SET session_started_at = NULL WHERE family_id = '{session}'"))
            .await;
        let started = rows_of(&a, &session).await[0].issued_at;
        let results = all_at_once([&a, &b], &first.refresh_token).await;
        let pairs: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        if interval == 0 {
            assert_eq!(pairs.len(), 1, "interval 0: {} pairs", pairs.len());
            assert!(live_tokens(&a, &session).await.is_empty(), "interval 0: the reuse left a live token");
            continue;
        }
        assert_eq!(pairs.len(), AT_ONCE, "{results:?}");
        assert!(pairs.iter().all(|pair| pair.refresh_token == pairs[0].refresh_token), "two successors");
        let rows = rows_of(&a, &session).await;
        assert_eq!(rows.len(), 2, "{rows:?}");
        let live = live_tokens(&a, &session).await;
        assert_eq!(live.len(), 1);
        assert_eq!(
            (live[0].id.clone(), live[0].session_started_at),
            (claim(&pairs[0].refresh_token, "jti"), Some(started))
        );
        // The successor's own successor carries the start on.
        let third = a.refresh(&pairs[0].refresh_token).await.unwrap();
        let live = live_tokens(&a, &session).await;
        assert_eq!(
            (live[0].id.clone(), live[0].session_started_at),
            (claim(&third.refresh_token, "jti"), Some(started))
        );
    }
}

/// `call`'s answer within `bound`.
async fn within<T>(bound: Duration, what: &str, call: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(bound, call).await.unwrap_or_else(|_| panic!("{what}: no answer within {bound:?}"))
}

/// The database cut for a second while 50 clients refresh as fast as they can, each retrying
/// its token after an UNAVAILABLE as a client would: every answer is a pair or UNAVAILABLE
/// (never INTERNAL, never UNAUTHENTICATED: nobody is logged out by the cut), and afterwards
/// each client's token refreshes and its session has exactly one live token.
#[tokio::test]
async fn the_database_cut_while_fifty_clients_refresh_logs_nobody_out() {
    if database_server_or_skip("refresh_attacks::the_database_cut_while_fifty_clients_refresh_logs_nobody_out")
        .is_none()
    {
        return;
    }
    let database = TestDatabase::create().await;
    let (proxy, proxied_url) = TcpProxy::in_front_of_database(&database.url).await;
    let mut config = test_config(&proxied_url);
    lenient(&mut config);
    config.database.acquire_timeout_ms = 500;
    let app = spawn_app_on(config, database.handle()).await;
    let mut sessions = Vec::new();
    for client in 0..AT_ONCE {
        sessions.push(app.signed_in(&format!("client{client}")).await);
    }
    let unavailable = std::sync::atomic::AtomicUsize::new(0);
    let until = Instant::now() + Duration::from_secs(4);
    let client = |first: LoginResponse| {
        let unavailable = &unavailable;
        let app = &app;
        async move {
            let mut token = first.refresh_token;
            let mut refreshed = 0;
            while Instant::now() < until {
                match within(Duration::from_secs(5), "a Refresh", app.refresh(&token)).await {
                    Ok(pair) => {
                        token = pair.refresh_token;
                        refreshed += 1;
                    }
                    Err(status) => {
                        assert_eq!(
                            (status.code(), status.message()),
                            (Code::Unavailable, "service temporarily unavailable, retry later"),
                            "{status:?}"
                        );
                        unavailable.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
            (token, refreshed)
        }
    };
    let cut = async {
        tokio::time::sleep(Duration::from_millis(800)).await;
        proxy.sever().await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        proxy.restore();
    };
    let (finals, ()) = tokio::join!(join_all(sessions.iter().cloned().map(client)), cut);
    assert!(unavailable.load(Ordering::Relaxed) > 0, "the cut met no call");
    for (index, (token, refreshed)) in finals.iter().enumerate() {
        assert!(*refreshed > 0, "client {index} never refreshed");
        let deadline = Instant::now() + Duration::from_secs(5);
        let next = loop {
            match app.refresh(token).await {
                Ok(next) => break next,
                Err(status) if status.code() == Code::Unavailable && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(status) => panic!("client {index} after the cut: {status:?}"),
            }
        };
        let live = live_tokens(&app, &claim(token, "sid")).await;
        assert_eq!(live.len(), 1, "client {index}: {live:?}");
        assert_eq!(live[0].id, claim(&next.refresh_token, "jti"), "client {index}");
    }
}
