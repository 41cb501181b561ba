//! The operators' calls (role "admin"): ListUsers, GetUser, DisableUser, EnableUser, DeleteUser
//! and RevokeUserSessions, who may make them, and what a disabled or deleted account's tokens
//! do on two replicas and under a race with logins. The first admin is made the operator's way
//! (`set_role_offline`, see roles.rs).

use std::{
    num::NonZero,
    sync::Mutex,
    time::{Duration, Instant},
};

use auth_api::user::v1::{
    DeleteUserRequest, DisableUserRequest, EnableUserRequest, GetUserRequest, ListUsersRequest, LoginResponse,
    RevokeUserSessionsRequest, get_user_request::User,
};
use futures::{StreamExt, stream::FuturesUnordered};
use jsonwebtoken::Algorithm;
use tokio::sync::Notify;
use tonic::{Code, Status};

use crate::{
    helpers::{
        ACCESS_SECRET, PASSWORD, TestApp, TestDatabase, assert_status, authorized, bearer, deployment_configs,
        eventually, hmac_key, hmac_kid, sign_jwt, spawn_app_on, test_config, token_payload,
    },
    roles::{bootstrap_admin, spawn_deployment},
};

/// `revocation.max_staleness_ms` at its default: how soon every replica refuses the tokens.
const PROMISE: Duration = Duration::from_millis(2000);
const NO_SUCH_USER: &str = "no such user";

/// A server with an admin "root"; the admin's access token.
async fn with_admin() -> (TestApp, String) {
    let (app, operator) = spawn_deployment(|_| {}).await;
    let admin = bootstrap_admin(&app, &operator, "root").await;
    (app, admin)
}

fn query(page_size: i32, page_token: &str, username_prefix: &str, role: &str) -> ListUsersRequest {
    ListUsersRequest {
        page_size,
        page_token: page_token.into(),
        username_prefix: username_prefix.into(),
        role: role.into(),
    }
}

/// Every page of `query`, walked with its tokens: the usernames of each page.
async fn walk(app: &TestApp, admin: &str, mut query: ListUsersRequest) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    loop {
        let page = app.list_users(admin, query.clone()).await.unwrap();
        pages.push(page.users.iter().map(|u| u.username.clone()).collect());
        if page.next_page_token.is_empty() {
            return pages;
        }
        assert!(pages.len() < 20, "the pages never end");
        query.page_token = page.next_page_token;
    }
}

/// Whether `app` refuses every token of `pair` (GetUserInfo, ValidateToken, Refresh).
async fn refuses_pair(app: &TestApp, pair: &LoginResponse) -> bool {
    let access_refused =
        app.user_info(&bearer(&pair.access_token)).await.is_err_and(|s| s.code() == Code::Unauthenticated);
    let inactive = !app.validate(&pair.access_token).await.unwrap().active;
    let refresh_refused = app.refresh(&pair.refresh_token).await.is_err_and(|s| s.code() == Code::Unauthenticated);
    access_refused && inactive && refresh_refused
}

#[tokio::test]
async fn a_non_admin_is_refused_on_every_admin_call_and_nobody_without_a_token() {
    let (app, admin) = with_admin().await;
    let bob = app.signed_in("bob").await.access_token;
    let root_id = app.user_info(&bearer(&admin)).await.unwrap().id;
    let denied = "only admins may call this method";
    assert_status(app.list_users(&bob, query(0, "", "", "")).await, Code::PermissionDenied, denied);
    assert_status(app.get_user(&bob, User::Id(root_id)).await, Code::PermissionDenied, denied);
    assert_status(app.disable_user(&bob, root_id).await, Code::PermissionDenied, denied);
    assert_status(app.enable_user(&bob, root_id).await, Code::PermissionDenied, denied);
    assert_status(app.delete_user(&bob, root_id).await, Code::PermissionDenied, denied);
    assert_status(app.revoke_user_sessions(&bob, root_id).await, Code::PermissionDenied, denied);

    // A token saying "admin" for a user account (only a holder of the key can make one) gets
    // past the bearer layer and is stopped by the account check.
    let mut claims = token_payload(&bob);
    claims["role"] = "admin".into();
    let forged =
        sign_jwt(Algorithm::HS256, "at+jwt", Some(&hmac_kid(ACCESS_SECRET)), &claims, &hmac_key(ACCESS_SECRET));
    let by_account = "only admins may manage accounts";
    assert_status(app.list_users(&forged, query(0, "", "", "")).await, Code::PermissionDenied, by_account);
    assert_status(app.disable_user(&forged, root_id).await, Code::PermissionDenied, by_account);
    assert_status(app.delete_user(&forged, root_id).await, Code::PermissionDenied, by_account);
    assert_status(app.revoke_user_sessions(&forged, root_id).await, Code::PermissionDenied, by_account);

    let missing = "missing authorization: Bearer token";
    let mut client = app.client.clone();
    assert_status(client.list_users(query(0, "", "", "")).await, Code::Unauthenticated, missing);
    let get = GetUserRequest { user: Some(User::Id(root_id)) };
    assert_status(client.get_user(get).await, Code::Unauthenticated, missing);
    assert_status(client.disable_user(DisableUserRequest { id: root_id }).await, Code::Unauthenticated, missing);
    assert_status(client.enable_user(EnableUserRequest { id: root_id }).await, Code::Unauthenticated, missing);
    assert_status(client.delete_user(DeleteUserRequest { id: root_id }).await, Code::Unauthenticated, missing);
    let revoke = RevokeUserSessionsRequest { id: root_id };
    assert_status(client.revoke_user_sessions(revoke).await, Code::Unauthenticated, missing);

    // Nothing happened to root; the control: the admin's own token does it.
    let root = app.get_user(&admin, User::Id(root_id)).await.unwrap();
    assert_eq!((root.username.as_str(), root.role.as_str(), root.disabled), ("root", "admin", false));
}

#[tokio::test]
async fn list_users_walks_every_page_in_id_order_with_filters() {
    let (app, admin) = with_admin().await;
    for name in ["alice", "Albert", "bob", "alfred", "carol", "dave", "erin"] {
        app.register(name).await;
    }
    let everyone = ["root", "alice", "Albert", "bob", "alfred", "carol", "dave", "erin"];

    let pages = walk(&app, &admin, query(3, "", "", "")).await;
    assert_eq!(pages, [&everyone[..3], &everyone[3..6], &everyone[6..]]);
    let one_page = app.list_users(&admin, query(0, "", "", "")).await.unwrap();
    assert_eq!(one_page.users.iter().map(|u| u.username.as_str()).collect::<Vec<_>>(), everyone);
    assert!(one_page.next_page_token.is_empty(), "everything fits the default page of 50");
    let ids: Vec<i64> = one_page.users.iter().map(|u| u.id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "id order: {ids:?}");
    // Exactly one full page: no empty page after it.
    assert_eq!(walk(&app, &admin, query(8, "", "", "")).await.len(), 1);

    // The prefix compares as usernames do; its pages have their own tokens.
    assert_eq!(walk(&app, &admin, query(2, "", "AL", "")).await, [vec!["alice", "Albert"], vec!["alfred"]]);
    assert_eq!(walk(&app, &admin, query(0, "", "alf", "")).await, [vec!["alfred"]]);
    assert_eq!(walk(&app, &admin, query(0, "", "zz", "")).await, [Vec::<String>::new()]);
    assert_eq!(walk(&app, &admin, query(0, "", "%", "")).await, [Vec::<String>::new()], "no LIKE wildcard");
    assert_eq!(walk(&app, &admin, query(0, "", "", "admin")).await, [vec!["root"]]);
    assert_eq!(walk(&app, &admin, query(3, "", "", "user")).await.concat(), &everyone[1..]);
    assert_eq!(walk(&app, &admin, query(0, "", "", "nobody")).await, [Vec::<String>::new()]);
    assert_eq!(walk(&app, &admin, query(0, "", "r", "admin")).await, [vec!["root"]]);

    let entry = &one_page.users[1];
    assert_eq!((entry.role.as_str(), entry.disabled, entry.last_login_at), ("user", false, None));
    assert!(entry.created_at.unwrap().seconds > 0);
    assert!(one_page.users[0].last_login_at.is_some(), "root logged in");
}

#[tokio::test]
async fn list_users_refuses_bad_page_sizes_and_page_tokens() {
    let (app, admin) = with_admin().await;
    for name in ["alice", "alfred", "bob"] {
        app.register(name).await;
    }
    let invalid = |result: Result<_, Status>, message: &str| assert_status(result, Code::InvalidArgument, message);
    invalid(app.list_users(&admin, query(101, "", "", "")).await, "page_size must be at most 100");
    invalid(app.list_users(&admin, query(i32::MAX, "", "", "")).await, "page_size must be at most 100");
    invalid(app.list_users(&admin, query(-1, "", "", "")).await, "page_size must not be negative");
    invalid(app.list_users(&admin, query(i32::MIN, "", "", "")).await, "page_size must not be negative");
    let not_ours = "page_token is not one this call returned";
    for garbage in ["garbage", "v1.1", "v1.x.0", "v2.1.0000000000000000", "v1.1.0.0", "\u{1F600}"] {
        invalid(app.list_users(&admin, query(1, garbage, "", "")).await, not_ours);
    }
    invalid(
        app.list_users(&admin, query(0, "", &"a".repeat(65), "")).await,
        "username_prefix is longer than any username",
    );
    assert_eq!(app.list_users(&admin, query(100, "", "", "")).await.unwrap().users.len(), 4, "100 is allowed");

    let by_prefix = app.list_users(&admin, query(1, "", "al", "")).await.unwrap();
    assert!(!by_prefix.next_page_token.is_empty());
    let other_filters = "page_token was returned for other filters";
    let token = &by_prefix.next_page_token;
    invalid(app.list_users(&admin, query(1, token, "", "")).await, other_filters);
    invalid(app.list_users(&admin, query(1, token, "al", "user")).await, other_filters);
    invalid(app.list_users(&admin, query(1, token, "b", "")).await, other_filters);
    // The control: with its own filters the token gives the next page (another size is fine).
    let next = app.list_users(&admin, query(5, token, "al", "")).await.unwrap();
    assert_eq!(next.users.iter().map(|u| u.username.as_str()).collect::<Vec<_>>(), ["alfred"]);
}

#[tokio::test]
async fn get_user_by_id_or_username_and_last_login() {
    let (app, admin) = with_admin().await;
    let alice_id = app.register("alice").await.id;

    let by_id = app.get_user(&admin, User::Id(alice_id)).await.unwrap();
    let by_name = app.get_user(&admin, User::Username(" ALICE ".into())).await.unwrap();
    assert_eq!(by_id, by_name);
    assert_eq!((by_id.id, by_id.username.as_str(), by_id.role.as_str()), (alice_id, "alice", "user"));
    assert_eq!((by_id.disabled, by_id.last_login_at), (false, None), "never logged in");

    let before = chrono::Utc::now().timestamp();
    app.login("alice", PASSWORD).await.unwrap();
    let after = chrono::Utc::now().timestamp();
    let logged_in = app.get_user(&admin, User::Id(alice_id)).await.unwrap().last_login_at.expect("set by the login");
    // The database's clock wrote it; a second either way for its rounding.
    assert!((before - 1..=after + 1).contains(&logged_in.seconds), "{before}..{after}: {logged_in:?}");
    // A failed login is no login.
    app.login("alice", "wrong password").await.unwrap_err();
    assert_eq!(app.get_user(&admin, User::Id(alice_id)).await.unwrap().last_login_at, Some(logged_in));

    assert_status(app.get_user(&admin, User::Id(alice_id + 100)).await, Code::NotFound, NO_SUCH_USER);
    assert_status(app.get_user(&admin, User::Id(-1)).await, Code::NotFound, NO_SUCH_USER);
    assert_status(app.get_user(&admin, User::Username("nobody".into())).await, Code::NotFound, NO_SUCH_USER);
    let empty = app.get_user(&admin, User::Username("  ".into())).await;
    assert_status(empty, Code::InvalidArgument, "username must not be empty");
    let neither = app.client.clone().get_user(authorized(GetUserRequest { user: None }, &admin)).await;
    assert_status(neither, Code::InvalidArgument, "give the user's id or username");
}

#[tokio::test]
async fn a_disabled_account_cannot_log_in_or_refresh_and_its_tokens_stop_at_once() {
    let (app, admin) = with_admin().await;
    let alice = app.signed_in("alice").await;
    let alice_id = app.user_info(&bearer(&alice.access_token)).await.unwrap().id;
    let bob = app.signed_in("bob").await;
    assert!(app.validate(&alice.access_token).await.unwrap().active, "the control: active before");

    let disabled = app.disable_user(&admin, alice_id).await.unwrap();
    assert_eq!((disabled.id, disabled.username.as_str(), disabled.disabled), (alice_id, "alice", true));
    assert_status(app.login("alice", PASSWORD).await, Code::Unauthenticated, "account disabled");
    // Without the password nothing tells that the account is disabled.
    assert_status(app.login("alice", "wrong password").await, Code::Unauthenticated, "invalid credentials");
    assert_status(app.user_info(&bearer(&alice.access_token)).await, Code::Unauthenticated, "session revoked");
    assert!(!app.validate(&alice.access_token).await.unwrap().active);
    assert_status(app.refresh(&alice.refresh_token).await, Code::Unauthenticated, "session revoked");
    assert!(app.get_user(&admin, User::Id(alice_id)).await.unwrap().disabled);
    let listed = app.list_users(&admin, query(0, "", "alice", "")).await.unwrap().users;
    assert!(listed[0].disabled);
    app.user_info(&bearer(&bob.access_token)).await.expect("another account is untouched");

    // Idempotent.
    assert!(app.disable_user(&admin, alice_id).await.unwrap().disabled);
    let root_id = app.user_info(&bearer(&admin)).await.unwrap().id;
    let own = app.disable_user(&admin, root_id).await;
    assert_status(own, Code::InvalidArgument, "an admin cannot disable their own account");
    assert_status(app.disable_user(&admin, alice_id + 100).await, Code::NotFound, NO_SUCH_USER);
    assert!(!app.get_user(&admin, User::Id(root_id)).await.unwrap().disabled);

    // Enabled: she logs in again; the sessions that ended stay ended.
    let enabled = app.enable_user(&admin, alice_id).await.unwrap();
    assert!(!enabled.disabled);
    assert!(!app.enable_user(&admin, alice_id).await.unwrap().disabled, "idempotent");
    let again = app.login("alice", PASSWORD).await.expect("logs in again");
    app.user_info(&bearer(&again.access_token)).await.unwrap();
    assert_status(app.refresh(&alice.refresh_token).await, Code::Unauthenticated, "session revoked");
    assert_status(app.user_info(&bearer(&alice.access_token)).await, Code::Unauthenticated, "session revoked");
    assert_status(app.enable_user(&admin, alice_id + 100).await, Code::NotFound, NO_SUCH_USER);
}

#[tokio::test]
async fn delete_user_ends_the_account_and_its_tokens_and_frees_the_name() {
    let (app, admin) = with_admin().await;
    let alice = app.signed_in("alice").await;
    let other = app.login("alice", PASSWORD).await.unwrap();
    let alice_id = app.user_info(&bearer(&alice.access_token)).await.unwrap().id;
    let root_id = app.user_info(&bearer(&admin)).await.unwrap().id;

    app.delete_user(&admin, alice_id).await.unwrap();
    for pair in [&alice, &other] {
        assert_status(app.user_info(&bearer(&pair.access_token)).await, Code::Unauthenticated, "session revoked");
        assert!(refuses_pair(&app, pair).await);
    }
    assert_status(app.get_user(&admin, User::Id(alice_id)).await, Code::NotFound, NO_SUCH_USER);
    assert_status(app.delete_user(&admin, alice_id).await, Code::NotFound, NO_SUCH_USER);
    assert_status(app.login("alice", PASSWORD).await, Code::Unauthenticated, "invalid credentials");
    let own = app.delete_user(&admin, root_id).await;
    assert_status(own, Code::InvalidArgument, "an admin cannot delete their own account here; use DeleteAccount");
    app.user_info(&bearer(&admin)).await.expect("root is still there");
    assert_ne!(app.register("alice").await.id, alice_id, "the name is free again");
}

#[tokio::test]
async fn revoke_user_sessions_ends_every_session_and_counts_them() {
    let (app, admin) = with_admin().await;
    let first = app.signed_in("alice").await;
    let rest = [app.login("alice", PASSWORD).await.unwrap(), app.login("alice", PASSWORD).await.unwrap()];
    let alice_id = app.user_info(&bearer(&first.access_token)).await.unwrap().id;
    // A rotated session is one session.
    let first = app.refresh(&first.refresh_token).await.unwrap();
    let bob = app.signed_in("bob").await;

    assert_eq!(app.revoke_user_sessions(&admin, alice_id).await.unwrap(), 3);
    for pair in rest.iter().chain([&first]) {
        assert_status(app.user_info(&bearer(&pair.access_token)).await, Code::Unauthenticated, "session revoked");
        assert!(refuses_pair(&app, pair).await);
    }
    assert_eq!(app.revoke_user_sessions(&admin, alice_id).await.unwrap(), 0);
    app.user_info(&bearer(&bob.access_token)).await.expect("another account is untouched");
    let again = app.login("alice", PASSWORD).await.expect("she may log in again");
    app.user_info(&bearer(&again.access_token)).await.unwrap();
    assert_status(app.revoke_user_sessions(&admin, alice_id + 100).await, Code::NotFound, NO_SUCH_USER);
}

/// What the admin does to alice on replica A while she uses replica B.
#[derive(Debug, Clone, Copy)]
enum Change {
    Disable,
    Delete,
}

/// Two replicas on one database (and one Redis with `AUTH_TEST_REDIS_URL`), an admin "root"
/// signed in on A: its access token.
async fn admin_replicas() -> (TestApp, TestApp, String) {
    let database = TestDatabase::create().await;
    let (config_a, config_b) = deployment_configs(&database);
    let mut operator = test_config(&database.url);
    operator.redis.key_prefix.clone_from(&config_a.redis.key_prefix);
    let shared = database.handle();
    let a = spawn_app_on(config_a, database).await;
    let b = spawn_app_on(config_b, shared).await;
    let admin = bootstrap_admin(&a, &operator, "root").await;
    (a, b, admin)
}

/// Whether `app` refuses the access token of `pair` (GetUserInfo and ValidateToken).
async fn refuses_access(app: &TestApp, pair: &LoginResponse) -> bool {
    let refused = app.user_info(&bearer(&pair.access_token)).await.is_err_and(|s| s.code() == Code::Unauthenticated);
    refused && !app.validate(&pair.access_token).await.unwrap().active
}

/// Alice calls GetUserInfo and refreshes on B in a loop while the admin changes her account on
/// A: within the bound B refuses every access token she was given, and no refresh works.
async fn tokens_stop_on_the_other_replica(change: Change) {
    let (a, b, admin) = admin_replicas().await;
    let first = b.signed_in("alice").await;
    let alice_id = b.user_info(&bearer(&first.access_token)).await.unwrap().id;
    let (in_use, issued) = (Notify::new(), Mutex::new(vec![first.clone()]));

    let use_on_b = async {
        let mut pair = first.clone();
        let give_up = Instant::now() + PROMISE * 5;
        for round in 1.. {
            let next = match b.user_info(&bearer(&pair.access_token)).await {
                Ok(_) => b.refresh(&pair.refresh_token).await,
                Err(status) => Err(status),
            };
            match next {
                Ok(next) => {
                    pair = next;
                    issued.lock().unwrap().push(pair.clone());
                }
                // The first refusal (a refresh, usually: it reads the database).
                Err(status) => {
                    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
                    break;
                }
            }
            if round == 3 {
                in_use.notify_one();
            }
            assert!(Instant::now() < give_up, "{change:?}: B never refused alice");
        }
        // Also when the loop ended early: the change must not wait forever.
        in_use.notify_one();
    };
    let change_on_a = async {
        in_use.notified().await;
        match change {
            Change::Disable => assert!(a.disable_user(&admin, alice_id).await.unwrap().disabled),
            Change::Delete => a.delete_user(&admin, alice_id).await.unwrap(),
        }
        Instant::now()
    };
    let ((), changed) = tokio::join!(use_on_b, change_on_a);
    let issued = issued.into_inner().unwrap();
    assert!(issued.len() >= 4, "the loop ran before the change");
    let every_access_refused = || async {
        for pair in &issued {
            if !refuses_access(&b, pair).await {
                return false;
            }
        }
        true
    };
    // The rest of the bound, plus one poll of `eventually`.
    let left = PROMISE.saturating_sub(changed.elapsed()) + Duration::from_millis(100);
    assert!(eventually(left, every_access_refused).await, "{change:?}: B still serves alice past the bound");
    eprintln!("{change:?}: B refused all {} of alice's pairs {:?} after the change", issued.len(), changed.elapsed());
    for pair in &issued {
        for replica in [&b, &a] {
            assert!(refuses_pair(replica, pair).await, "{change:?}: a token of alice still works");
        }
    }
    let live = model::query::refresh_tokens::unrevoked_families(&a.db, alice_id, None).await.unwrap();
    assert!(live.is_empty(), "{change:?}: live sessions left: {live:?}");
}

#[tokio::test]
async fn disabling_on_one_replica_stops_the_tokens_in_use_on_the_other_within_the_bound() {
    tokens_stop_on_the_other_replica(Change::Disable).await;
}

#[tokio::test]
async fn deleting_on_one_replica_stops_the_tokens_in_use_on_the_other_within_the_bound() {
    tokens_stop_on_the_other_replica(Change::Delete).await;
}

/// Logins at once, with the disable landing among them (after 0 to 3 have finished): afterwards
/// the account has no live session, and no pair any login returned works.
#[tokio::test]
async fn logins_racing_a_disable_leave_no_live_session() {
    const LOGINS: usize = 12;
    // Logins in flight count against the attempt limits (see abuse.rs); these are all right.
    // The real hashing cost: a login that read the account before the disable is still
    // hashing (or queued for it) when the disable has ended every session it could see.
    let (app, operator) = spawn_deployment(|config| {
        config.password.hash_profile = auth_svc::config::HashProfile::Owasp;
        config.throttle.max_failures_per_username = NonZero::new(1000).unwrap();
        config.throttle.max_failures_per_address = NonZero::new(1000).unwrap();
    })
    .await;
    let admin = bootstrap_admin(&app, &operator, "root").await;
    let alice_id = app.register("alice").await.id;
    for round in 0..4 {
        let mut logins: FuturesUnordered<_> = (0..LOGINS).map(|_| app.login("alice", PASSWORD)).collect();
        let mut results = Vec::new();
        while results.len() < round % 4 {
            results.push(logins.next().await.unwrap());
        }
        let (disabled, rest) = tokio::join!(app.disable_user(&admin, alice_id), logins.collect::<Vec<_>>());
        assert!(disabled.unwrap().disabled);
        results.extend(rest);

        let live = model::query::refresh_tokens::unrevoked_families(&app.db, alice_id, None).await.unwrap();
        assert!(live.is_empty(), "round {round}: sessions left live by the race: {live:?}");
        for result in &results {
            match result {
                Ok(pair) => assert!(refuses_pair(&app, pair).await, "round {round}: a login's pair still works"),
                Err(status) => assert_eq!(
                    (status.code(), status.message()),
                    (Code::Unauthenticated, "account disabled"),
                    "round {round}"
                ),
            }
        }
        assert_eq!(app.revoke_user_sessions(&admin, alice_id).await.unwrap(), 0, "round {round}");
        app.enable_user(&admin, alice_id).await.unwrap();
    }
}

/// A disabling whose caller goes away mid-way is finished all the same: no session of the
/// account survives it to come back when the account is enabled again.
#[tokio::test]
async fn a_disable_cut_short_by_its_deadline_still_ends_every_session() {
    let (app, admin) = with_admin().await;
    for (round, deadline_ms) in [1_u64, 3, 9, 27].into_iter().enumerate() {
        let name = format!("cut{round}");
        let id = app.register(&name).await.id;
        let mut sessions = Vec::new();
        for _ in 0..12 {
            sessions.push(app.login(&name, PASSWORD).await.unwrap());
        }
        let mut request = authorized(DisableUserRequest { id }, &admin);
        request.set_timeout(Duration::from_millis(deadline_ms));
        let _ = app.client.clone().disable_user(request).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let lookup = authorized(GetUserRequest { user: Some(User::Id(id)) }, &admin);
        let disabled = app.client.clone().get_user(lookup).await.unwrap().into_inner().disabled;
        app.client.clone().enable_user(authorized(EnableUserRequest { id }, &admin)).await.unwrap();
        for session in &sessions {
            let works = app.user_info(&bearer(&session.access_token)).await.is_ok();
            assert_eq!(
                works, !disabled,
                "deadline {deadline_ms} ms: disabled {disabled}, a session still works {works}"
            );
        }
    }
}

#[tokio::test]
async fn list_users_refuses_control_characters_and_malformed_roles_before_the_database() {
    let (app, admin) = with_admin().await;
    for (prefix, role) in
        [("\0", ""), ("a\0b", ""), ("a\u{7}", ""), ("", "\0"), ("", "admin\0"), ("", "Admin"), ("", &*"r".repeat(33))]
    {
        let result = app.list_users(&admin, query(0, "", prefix, role)).await;
        assert_eq!(result.unwrap_err().code(), Code::InvalidArgument, "{prefix:?} {role:?}");
    }
}
