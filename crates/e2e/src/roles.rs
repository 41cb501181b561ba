//! Roles: the first admin made by an operator (`set_role_offline`, what `auth-svc user set-role`
//! runs; the binary itself is tested in auth-svc's `tests/cli.rs`), SetUserRole and who may call
//! it, and when a new role reaches tokens.

use auth_api::user::v1::{SetUserRoleRequest, UserInfo};
use auth_svc::{Config, cli::set_role_offline};
use jsonwebtoken::Algorithm;
use tonic::{Code, Status};

use crate::helpers::{
    ACCESS_SECRET, PASSWORD, TestApp, TestDatabase, assert_status, bearer, deployment_configs, gateway_for, hmac_key,
    hmac_kid, redis_or_skip, sign_jwt, spawn_app_on, token_payload, with_authorization,
};

const ADMINS_ONLY: &str = "only admins may call this method";
const KNOWN_ROLES: &str = "unknown role; known roles: user, admin";

/// A running server, and the configuration an operator's `auth-svc user set-role` would run
/// with next to it: the same database and the same Redis key prefix.
pub async fn spawn_deployment(adjust: impl Fn(&mut Config)) -> (TestApp, Config) {
    let database = TestDatabase::create().await;
    let (mut config, mut operator) = deployment_configs(&database);
    adjust(&mut config);
    adjust(&mut operator);
    (spawn_app_on(config, database).await, operator)
}

/// Registers `username` and makes it an admin the operator's way, before it ever logs in (a
/// server without Redis would otherwise keep serving its cached "user" row for a while).
pub async fn bootstrap_admin(app: &TestApp, operator: &Config, username: &str) -> String {
    app.register(username).await;
    let (user, cache_current) = set_role_offline(operator, username, "admin").await.expect("set-role");
    assert_eq!((user.username.as_str(), user.role.as_str(), cache_current), (username, "admin", true));
    let pair = app.login(username, PASSWORD).await.unwrap();
    assert_eq!(role_in(&pair.access_token), "admin");
    pair.access_token
}

async fn set_role(app: &TestApp, access_token: &str, username: &str, role: &str) -> Result<UserInfo, Status> {
    let request = SetUserRoleRequest { username: username.into(), role: role.into() };
    app.client.clone().set_user_role(with_authorization(request, &bearer(access_token))).await.map(|r| r.into_inner())
}

fn role_in(token: &str) -> String {
    token_payload(token)["role"].as_str().expect("a role claim").to_owned()
}

/// The role in the database, read past every cache.
async fn stored_role(app: &TestApp, username: &str) -> String {
    model::query::users::find_by_username(&app.db, username).await.unwrap().expect("account exists").role
}

#[tokio::test]
async fn an_operator_makes_the_first_admin_who_can_then_set_roles() {
    let (app, operator) = spawn_deployment(|_| {}).await;
    let bob = app.signed_in("bob").await;
    app.register("carol").await;
    // Before: nobody is an admin, so nobody may set roles.
    assert_status(set_role(&app, &bob.access_token, "carol", "admin").await, Code::PermissionDenied, ADMINS_ONLY);

    let alice = bootstrap_admin(&app, &operator, "alice").await;
    let carol = set_role(&app, &alice, "carol", "admin").await.unwrap();
    assert_eq!((carol.username.as_str(), carol.role.as_str()), ("carol", "admin"));
    assert_eq!(stored_role(&app, "carol").await, "admin");

    let unknown_user = set_role_offline(&operator, "nobody", "admin").await.unwrap_err();
    assert_eq!(format!("{unknown_user:#}"), r#"no user named "nobody""#);
    let unknown_role = set_role_offline(&operator, "bob", "root").await.unwrap_err();
    assert_eq!(format!("{unknown_role:#}"), r#"unknown role "root"; auth.roles allows: user, admin"#);
    assert_eq!(stored_role(&app, "bob").await, "user");
}

#[tokio::test]
async fn a_new_role_reaches_tokens_at_the_next_refresh_or_login() {
    let (app, operator) = spawn_deployment(|_| {}).await;
    let alice = bootstrap_admin(&app, &operator, "alice").await;
    let bob = app.signed_in("bob").await;
    let bob_id = app.user_info(&bearer(&bob.access_token)).await.unwrap().id;
    assert_eq!(role_in(&bob.access_token), "user");
    app.register("carol").await;

    let promoted = set_role(&app, &alice, "bob", "admin").await.unwrap();
    assert_eq!(promoted, UserInfo { id: bob_id, username: "bob".into(), role: "admin".into() });

    // Issued tokens keep the role they were issued with...
    assert_eq!(role_in(&bob.access_token), "user");
    let validated = app.validate(&bob.access_token).await.unwrap();
    assert_eq!(validated.claims.expect("still active").role, "user", "ValidateToken reports the issued role");
    assert_status(set_role(&app, &bob.access_token, "carol", "admin").await, Code::PermissionDenied, ADMINS_ONLY);
    // ...while the account has the new one at once.
    assert_eq!(app.user_info(&bearer(&bob.access_token)).await.unwrap().role, "admin");

    let refreshed = app.refresh(&bob.refresh_token).await.unwrap();
    assert_eq!(role_in(&refreshed.access_token), "admin");
    let fresh = app.login("bob", PASSWORD).await.unwrap();
    assert_eq!(role_in(&fresh.access_token), "admin");
    // And the new token works as an admin's.
    assert_eq!(set_role(&app, &refreshed.access_token, "carol", "admin").await.unwrap().role, "admin");
}

#[tokio::test]
async fn a_non_admin_is_refused_and_changes_nothing() {
    let (app, operator) = spawn_deployment(|_| {}).await;
    let alice = bootstrap_admin(&app, &operator, "alice").await;
    let bob = app.signed_in("bob").await;
    app.register("carol").await;

    assert_status(set_role(&app, &bob.access_token, "carol", "admin").await, Code::PermissionDenied, ADMINS_ONLY);
    assert_status(set_role(&app, &bob.access_token, "bob", "admin").await, Code::PermissionDenied, ADMINS_ONLY);
    assert_status(set_role(&app, &bob.access_token, "alice", "user").await, Code::PermissionDenied, ADMINS_ONLY);
    assert_eq!(stored_role(&app, "carol").await, "user");
    assert_eq!(stored_role(&app, "bob").await, "user");
    assert_eq!(stored_role(&app, "alice").await, "admin");
    assert_eq!(role_in(&app.refresh(&bob.refresh_token).await.unwrap().access_token), "user");

    // The control: the same call from an admin goes through.
    assert_eq!(set_role(&app, &alice, "carol", "admin").await.unwrap().role, "admin");
}

#[tokio::test]
async fn a_token_claiming_admin_for_a_user_account_is_refused_by_the_account_check() {
    let (app, operator) = spawn_deployment(|_| {}).await;
    let alice = bootstrap_admin(&app, &operator, "alice").await;
    let bob = app.signed_in("bob").await;
    app.register("carol").await;
    // Only someone holding the signing key can make this; it gets past the bearer layer.
    let mut claims = token_payload(&bob.access_token);
    claims["role"] = "admin".into();
    let forged =
        sign_jwt(Algorithm::HS256, "at+jwt", Some(&hmac_kid(ACCESS_SECRET)), &claims, &hmac_key(ACCESS_SECRET));
    assert_eq!(app.user_info(&bearer(&forged)).await.unwrap().username, "bob", "the token is valid");

    assert_status(set_role(&app, &forged, "carol", "admin").await, Code::PermissionDenied, "only admins may set roles");
    assert_eq!(stored_role(&app, "carol").await, "user");
    assert_eq!(set_role(&app, &alice, "carol", "admin").await.unwrap().role, "admin", "the control");
}

#[tokio::test]
async fn set_user_role_needs_an_access_token() {
    let (app, operator) = spawn_deployment(|_| {}).await;
    let alice = bootstrap_admin(&app, &operator, "alice").await;
    let alice_pair = app.login("alice", PASSWORD).await.unwrap();
    app.register("bob").await;
    let request = || SetUserRoleRequest { username: "bob".into(), role: "admin".into() };

    assert_status(
        app.client.clone().set_user_role(request()).await,
        Code::Unauthenticated,
        "missing authorization: Bearer token",
    );
    assert_status(
        set_role(&app, &alice_pair.refresh_token, "bob", "admin").await,
        Code::Unauthenticated,
        "invalid access token",
    );
    assert_status(set_role(&app, "garbage", "bob", "admin").await, Code::Unauthenticated, "invalid access token");
    assert_eq!(stored_role(&app, "bob").await, "user");

    // The control: alice's access token of the same login does it.
    assert_eq!(set_role(&app, &alice_pair.access_token, "bob", "admin").await.unwrap().role, "admin");
    // A logged-out admin session is refused like any other.
    app.logout(&alice).await.unwrap();
    assert_status(set_role(&app, &alice, "bob", "user").await, Code::Unauthenticated, "session revoked");
    assert_eq!(stored_role(&app, "bob").await, "admin");
    // So is a logged-out non-admin: UNAUTHENTICATED (the session), not PERMISSION_DENIED (the role).
    let dave = app.signed_in("dave").await.access_token;
    assert_status(
        set_role(&app, &dave, "bob", "user").await,
        Code::PermissionDenied,
        "only admins may call this method",
    );
    app.logout(&dave).await.unwrap();
    assert_status(set_role(&app, &dave, "bob", "user").await, Code::Unauthenticated, "session revoked");
}

#[tokio::test]
async fn a_demoted_admin_s_token_still_says_admin_but_sets_no_roles() {
    let (app, operator) = spawn_deployment(|_| {}).await;
    let alice = bootstrap_admin(&app, &operator, "alice").await;
    let carol = bootstrap_admin(&app, &operator, "carol").await;
    app.register("bob").await;
    app.register("dave").await;
    // The control: alice's token works while she is an admin.
    assert_eq!(set_role(&app, &alice, "dave", "admin").await.unwrap().role, "admin");

    assert_eq!(set_role(&app, &carol, "alice", "user").await.unwrap().role, "user");
    assert_eq!(role_in(&alice), "admin", "her token is unchanged");
    assert_status(set_role(&app, &alice, "bob", "admin").await, Code::PermissionDenied, "only admins may set roles");
    assert_status(set_role(&app, &alice, "alice", "admin").await, Code::PermissionDenied, "only admins may set roles");
    assert_eq!(stored_role(&app, "bob").await, "user");
    assert_eq!(stored_role(&app, "alice").await, "user");
    assert_eq!(app.user_info(&bearer(&alice)).await.unwrap().role, "user");
}

#[tokio::test]
async fn unknown_roles_are_invalid_and_unknown_users_not_found() {
    let (app, operator) = spawn_deployment(|_| {}).await;
    let alice = bootstrap_admin(&app, &operator, "alice").await;
    app.register("bob").await;

    for role in ["root", "Admin", "ADMIN", "admin ", "", "superuser"] {
        let result = set_role(&app, &alice, "bob", role).await;
        assert_status(result, Code::InvalidArgument, KNOWN_ROLES);
    }
    assert_eq!(stored_role(&app, "bob").await, "user");
    // Not "BOB": case is no new name under RFC 8265, so it is bob (see usernames.rs).
    for username in ["nobody", "bobby", "b\u{F8}b"] {
        assert_status(set_role(&app, &alice, username, "admin").await, Code::NotFound, "no such user");
    }
    assert_status(set_role(&app, &alice, "  ", "admin").await, Code::InvalidArgument, "username must not be empty");
    assert_eq!(stored_role(&app, "bob").await, "user");

    // The controls: the known role on the known name, surrounding spaces trimmed as at Register.
    assert_eq!(set_role(&app, &alice, " bob ", "admin").await.unwrap().username, "bob");
    assert_eq!(stored_role(&app, "bob").await, "admin");
    assert_eq!(set_role(&app, &alice, "bob", "user").await.unwrap().role, "user");
}

#[tokio::test]
async fn a_role_added_in_config_is_accepted() {
    let add_auditor = |config: &mut Config| config.auth.roles.push("auditor".into());
    let (app, operator) = spawn_deployment(add_auditor).await;
    let alice = bootstrap_admin(&app, &operator, "alice").await;
    let bob = app.signed_in("bob").await;

    let bob_now = set_role(&app, &alice, "bob", "auditor").await.unwrap();
    assert_eq!(bob_now.role, "auditor");
    assert_eq!(role_in(&app.refresh(&bob.refresh_token).await.unwrap().access_token), "auditor");
    assert_status(
        set_role(&app, &alice, "bob", "root").await,
        Code::InvalidArgument,
        "unknown role; known roles: user, admin, auditor",
    );
    // An auditor is not an admin.
    let auditor = app.login("bob", PASSWORD).await.unwrap().access_token;
    assert_status(set_role(&app, &auditor, "alice", "user").await, Code::PermissionDenied, ADMINS_ONLY);

    // The control: without the config entry the same role is refused.
    let (plain, plain_operator) = spawn_deployment(|_| {}).await;
    let admin = bootstrap_admin(&plain, &plain_operator, "alice").await;
    plain.register("bob").await;
    assert_status(set_role(&plain, &admin, "bob", "auditor").await, Code::InvalidArgument, KNOWN_ROLES);
    assert!(set_role_offline(&plain_operator, "bob", "auditor").await.is_err());
    assert_eq!(stored_role(&plain, "bob").await, "user");
}

#[tokio::test]
async fn with_redis_an_operator_s_role_change_reaches_a_running_server_at_once() {
    if redis_or_skip("roles::with_redis_an_operator_s_role_change_reaches_a_running_server_at_once").is_none() {
        return;
    }
    let (app, operator) = spawn_deployment(|_| {}).await;
    let bob = app.signed_in("bob").await;
    assert_eq!(role_in(&bob.access_token), "user");

    // The control: a write that skips the invalidation is not seen, the cached row answers
    // GetUserInfo. (Login reads the account from the database, so it is no control.)
    assert_eq!(app.user_info(&bearer(&bob.access_token)).await.unwrap().role, "user");
    model::query::users::set_role(&app.db, "bob", "admin").await.unwrap();
    assert_eq!(app.user_info(&bearer(&bob.access_token)).await.unwrap().role, "user", "served from the cache");

    let (_, cache_current) = set_role_offline(&operator, "bob", "admin").await.unwrap();
    assert!(cache_current);
    let fresh = app.login("bob", PASSWORD).await.unwrap();
    assert_eq!(role_in(&fresh.access_token), "admin");
    assert_eq!(app.user_info(&bearer(&bob.access_token)).await.unwrap().role, "admin");
    assert_eq!(role_in(&app.refresh(&bob.refresh_token).await.unwrap().access_token), "admin");
}

/// The same rule through the REST gateway, with the real auth-svc behind it: 403 for a user,
/// 200 for an admin, 404 for nobody.
#[tokio::test]
async fn through_the_gateway_a_user_gets_403_and_an_admin_200() {
    let (app, operator) = spawn_deployment(|_| {}).await;
    let alice = bootstrap_admin(&app, &operator, "alice").await;
    let bob = app.signed_in("bob").await.access_token;
    let gateway = gateway_for(&app).await;
    let client = reqwest::Client::new();
    let set_role = |token: String, username: &'static str| {
        let request = client
            .post(format!("{}/user/role", gateway.base_url))
            .bearer_auth(token)
            .json(&serde_json::json!({"username": username, "role": "admin"}));
        async move {
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.json::<serde_json::Value>().await.unwrap())
        }
    };
    let (status, body) = set_role(bob.clone(), "bob").await;
    assert_eq!((status, &body["code"]), (403, &serde_json::json!(403)), "{body}");
    assert_eq!(stored_role(&app, "bob").await, "user");
    let (status, body) = set_role(alice.clone(), "bob").await;
    assert_eq!((status, &body["role"]), (200, &serde_json::json!("admin")), "{body}");
    assert_eq!(set_role(alice, "nobody").await.0, 404);
}
