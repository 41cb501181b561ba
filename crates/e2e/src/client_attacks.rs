//! A hostile client's and a careless operator's tries at the service-account code: what must
//! hold (client tokens stay out of UserService, secrets and ids are compared exactly, rotation
//! keeps one previous secret, revocation ends what it should) and what does not.

use std::time::{Duration, Instant};

use auth_api::user::v1::{
    ClientAuthentication, ClientCredentialsRequest, ClientSecretResponse, ClientTokenResponse, CreateClientRequest,
    DeleteClientRequest, DisableClientRequest, EnableClientRequest, IntrospectTokenRequest, ListClientsRequest,
    ListUsersRequest, RevokeTokenRequest, RotateClientSecretRequest, ValidateTokenRequest,
    user_service_client::UserServiceClient,
};
use futures::future::join_all;
use jsonwebtoken::Algorithm;
use tonic::{Code, Request, Status, transport::Channel};

use crate::{
    helpers::{ACCESS_SECRET, PASSWORD, TestApp, authorized, bearer, hmac_key, hmac_kid, sign_jwt, token_payload},
    roles::{bootstrap_admin, spawn_deployment},
};

async fn with_admin(adjust: impl Fn(&mut auth_svc::Config)) -> (TestApp, String) {
    let (app, operator) = spawn_deployment(|config| {
        config.clients.scopes = vec!["introspect".into(), "orders:read".into(), "orders:write".into()];
        adjust(config);
    })
    .await;
    let admin = bootstrap_admin(&app, &operator, "root").await;
    (app, admin)
}

fn strings<S: AsRef<str>>(items: &[S]) -> Vec<String> {
    items.iter().map(|item| item.as_ref().to_owned()).collect()
}

async fn try_create<S: AsRef<str>>(
    app: &TestApp,
    admin: &str,
    client_id: &str,
    scopes: &[S],
    audiences: &[S],
) -> Result<ClientSecretResponse, Status> {
    let request = CreateClientRequest {
        client_id: client_id.into(),
        name: format!("{client_id} service"),
        role: String::new(),
        scopes: strings(scopes),
        audiences: strings(audiences),
    };
    app.client.clone().create_client(authorized(request, admin)).await.map(|r| r.into_inner())
}

async fn create(app: &TestApp, admin: &str, client_id: &str, scopes: &[&str]) -> String {
    try_create(app, admin, client_id, scopes, &[]).await.expect("create client").client_secret
}

fn auth(client_id: &str, secret: &str) -> Option<ClientAuthentication> {
    Some(ClientAuthentication { client_id: client_id.into(), client_secret: secret.into() })
}

async fn token_on(
    mut client: UserServiceClient<Channel>,
    client_id: &str,
    secret: &str,
    scopes: &[String],
    audiences: &[String],
) -> Result<ClientTokenResponse, Status> {
    let request = ClientCredentialsRequest {
        client: auth(client_id, secret),
        scopes: scopes.to_vec(),
        audiences: audiences.to_vec(),
    };
    client.client_credentials(request).await.map(|r| r.into_inner())
}

async fn token(app: &TestApp, client_id: &str, secret: &str) -> Result<String, Status> {
    token_on(app.client.clone(), client_id, secret, &[], &[]).await.map(|issued| issued.access_token)
}

async fn revoke(app: &TestApp, token: &str) -> Result<(), Status> {
    let request = RevokeTokenRequest { client: None, token: token.into(), token_type_hint: String::new() };
    app.client.clone().revoke_token(request).await.map(|_| ())
}

async fn active(app: &TestApp, token: &str) -> bool {
    app.validate(token).await.expect("ValidateToken answers").active
}

async fn admin_call<T, F, Fut>(app: &TestApp, admin: &str, message: T, call: F) -> Result<(), Status>
where
    F: FnOnce(UserServiceClient<Channel>, Request<T>) -> Fut,
    Fut: std::future::Future<Output = Result<(), Status>>,
{
    call(app.client.clone(), authorized(message, admin)).await
}

async fn disable(app: &TestApp, admin: &str, client_id: &str) -> Result<(), Status> {
    admin_call(app, admin, DisableClientRequest { client_id: client_id.into() }, |mut c, r| async move {
        c.disable_client(r).await.map(|_| ())
    })
    .await
}

async fn enable(app: &TestApp, admin: &str, client_id: &str) -> Result<(), Status> {
    admin_call(app, admin, EnableClientRequest { client_id: client_id.into() }, |mut c, r| async move {
        c.enable_client(r).await.map(|_| ())
    })
    .await
}

async fn delete(app: &TestApp, admin: &str, client_id: &str) -> Result<(), Status> {
    admin_call(app, admin, DeleteClientRequest { client_id: client_id.into() }, |mut c, r| async move {
        c.delete_client(r).await.map(|_| ())
    })
    .await
}

async fn rotate(mut client: UserServiceClient<Channel>, admin: String, client_id: &str) -> ClientSecretResponse {
    let request = authorized(RotateClientSecretRequest { client_id: client_id.into() }, &admin);
    client.rotate_client_secret(request).await.expect("rotate").into_inner()
}

async fn listed_ids(app: &TestApp, admin: &str) -> Vec<String> {
    let list = app.client.clone().list_clients(authorized(ListClientsRequest::default(), admin)).await.unwrap();
    list.into_inner().clients.into_iter().map(|client| client.client_id).collect()
}

#[track_caller]
fn assert_invalid_client<T: std::fmt::Debug>(result: Result<T, Status>, what: &str) {
    let status = result.expect_err(what);
    assert_eq!(status.code(), Code::Unauthenticated, "{what}: {status:?}");
    let error = status.metadata().get(auth_api::metadata::OAUTH_ERROR).map(|value| value.to_str().unwrap().to_owned());
    assert_eq!(error.as_deref(), Some("invalid_client"), "{what}: {status:?}");
}

fn iat(token: &str) -> i64 {
    token_payload(token)["iat"].as_i64().unwrap()
}

// ---------------------------------------------------------------------------------------------
// Findings: these fail on the code as it is.
// ---------------------------------------------------------------------------------------------

/// SECURITY.md's answer to a leaked secret is "disable or delete the client to stop its
/// tokens"; the natural next step, rotate and enable again, must not bring the leaked tokens
/// back for the rest of their 15 minutes.
#[tokio::test]
async fn enabling_a_client_again_does_not_revive_the_tokens_it_had_when_disabled() {
    let (app, admin) = with_admin(|_| {}).await;
    let secret = create(&app, &admin, "billing", &["introspect"]).await;
    let leaked = token(&app, "billing", &secret).await.unwrap();
    disable(&app, &admin, "billing").await.unwrap();
    assert!(!active(&app, &leaked).await);
    let fresh_secret = rotate(app.client.clone(), admin.clone(), "billing").await.client_secret;
    enable(&app, &admin, "billing").await.unwrap();
    token(&app, "billing", &fresh_secret).await.expect("the client works again with its new secret");
    assert!(!active(&app, &leaked).await, "a token from before the disable is alive again after enable");
}

/// An operator who deletes a compromised client and creates it again under the same id (so the
/// services' configuration need not change) must not find the old client's tokens accepted as
/// the new one's, with the old client's scopes (here `introspect`, which the new one lacks).
#[tokio::test]
async fn a_client_created_again_under_a_deleted_ones_id_does_not_inherit_its_tokens() {
    let (app, admin) = with_admin(|config| config.introspection.require_client = true).await;
    let secret = create(&app, &admin, "billing", &["introspect", "orders:read"]).await;
    let leaked = token(&app, "billing", &secret).await.unwrap();
    delete(&app, &admin, "billing").await.unwrap();
    create(&app, &admin, "billing", &["orders:read"]).await;

    let gate_secret = create(&app, &admin, "gate", &["introspect"]).await;
    let gate = token(&app, "gate", &gate_secret).await.unwrap();
    let asked = app
        .client
        .clone()
        .validate_token(authorized(ValidateTokenRequest { token: leaked.clone() }, &gate))
        .await
        .unwrap()
        .into_inner();
    assert!(!asked.active, "the deleted client's token passes as the new client's: {asked:?}");
    let as_introspector =
        app.client.clone().validate_token(authorized(ValidateTokenRequest { token: gate.clone() }, &leaked)).await;
    assert!(as_introspector.is_err(), "the deleted client's `introspect` token still opens ValidateToken");
}

/// RFC 7009 on a client's token: tokens the client gets *after* the revocation must stand,
/// even in the same second (revocation keeps only the revoked token's `iat`, in seconds).
#[tokio::test]
async fn a_token_issued_right_after_a_revocation_stands() {
    let (app, admin) = with_admin(|_| {}).await;
    let secret = create(&app, &admin, "billing", &[]).await;
    for _attempt in 0..5 {
        // Start just after a second boundary, so all three calls share one second.
        let into_second = chrono::Utc::now().timestamp_subsec_millis();
        tokio::time::sleep(Duration::from_millis(u64::from(1010 - into_second))).await;
        let leaked = token(&app, "billing", &secret).await.unwrap();
        revoke(&app, &leaked).await.unwrap();
        let fresh = token(&app, "billing", &secret).await.unwrap();
        if iat(&fresh) != iat(&leaked) {
            continue;
        }
        assert!(!active(&app, &leaked).await);
        assert!(active(&app, &fresh).await, "ClientCredentials answered OK with a token that is already revoked");
        return;
    }
    panic!("never got both tokens within one second");
}

/// The columns hold 2048 characters; the rules allow 16 audiences of 128 (2063 stored). The
/// answer must be OK or INVALID_ARGUMENT, never INTERNAL, and nothing half-written.
#[tokio::test]
async fn the_longest_audiences_the_rules_allow_are_stored_or_refused_never_internal() {
    let (app, admin) = with_admin(|_| {}).await;
    let audiences: Vec<String> = (0..16).map(|n| format!("{n:02}{}", "a".repeat(126))).collect();
    let result = try_create(&app, &admin, "wide", &[] as &[String], &audiences).await;
    match result {
        Ok(created) => {
            let issued = token_on(app.client.clone(), "wide", &created.client_secret, &[], &audiences).await.unwrap();
            assert!(active(&app, &issued.access_token).await);
        }
        Err(status) => {
            assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
            assert!(listed_ids(&app, &admin).await.is_empty());
        }
    }
}

/// Likewise 32 configured scopes of 128 characters (4127 stored).
#[tokio::test]
async fn the_longest_scopes_the_rules_allow_are_stored_or_refused_never_internal() {
    let scopes: Vec<String> = (0..32).map(|n| format!("{n:02}{}", "s".repeat(126))).collect();
    let configured = scopes.clone();
    let (app, admin) = with_admin(move |config| config.clients.scopes = configured.clone()).await;
    match try_create(&app, &admin, "wide", &scopes, &[]).await {
        Ok(_) => {}
        Err(status) => assert_eq!(status.code(), Code::InvalidArgument, "{status:?}"),
    }
}

/// Scopes and audiences that fit every column would make a token longer than any verifier
/// accepts (MAX_TOKEN_BYTES, 4096): such a client is refused, and the largest one the rules
/// allow gets tokens the verifiers take.
#[tokio::test]
async fn a_granted_token_is_one_the_verifiers_accept() {
    let scopes: Vec<String> = (0..20).map(|n| format!("https://api.example/{n:02}/{}", "r".repeat(76))).collect();
    let audiences: Vec<String> = (0..16).map(|n| format!("https://svc{n:02}.example/{}", "x".repeat(77))).collect();
    assert!(scopes.join(" ").len() <= 2048 && audiences.join(" ").len() <= 2048);
    // The largest lists allowed: 8 of 127 characters each, 1023 in all.
    let widest_scopes: Vec<String> = (0..8).map(|n| format!("{n}{}", "s".repeat(126))).collect();
    let widest_audiences: Vec<String> = (0..8).map(|n| format!("{n}{}", "a".repeat(126))).collect();
    let configured: Vec<String> = scopes.iter().chain(&widest_scopes).cloned().collect();
    let (app, admin) = with_admin(move |config| config.clients.scopes = configured.clone()).await;
    let refused = try_create(&app, &admin, "too-wide", &scopes, &audiences).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");

    let secret = try_create(&app, &admin, "wide", &widest_scopes, &widest_audiences).await.unwrap().client_secret;
    let issued = token_on(app.client.clone(), "wide", &secret, &[], &widest_audiences).await.unwrap();
    let length = issued.access_token.len();
    assert!(length <= auth_svc::auth::tokens::MAX_TOKEN_BYTES, "issued a {length}-byte token");
    assert!(active(&app, &issued.access_token).await);
}

/// The admin calls take the client id as given. On MariaDB `utf8mb4_bin` pads with spaces, so
/// `"billing "` names `billing` there and nothing elsewhere; a NUL byte is an error on
/// PostgreSQL. Each must be NOT_FOUND (or INVALID_ARGUMENT) on every database.
#[tokio::test]
async fn admin_calls_name_a_client_exactly_on_every_database() {
    let (app, admin) = with_admin(|_| {}).await;
    create(&app, &admin, "billing", &[]).await;
    let mut wrong = Vec::new();
    for near in ["billing ", "billing   ", "billing\0", "BILLING", "billing\u{a0}"] {
        let rotated = app
            .client
            .clone()
            .rotate_client_secret(authorized(RotateClientSecretRequest { client_id: near.into() }, &admin))
            .await
            .map(|_| ());
        for (call, result) in [
            ("rotate", rotated),
            ("disable", disable(&app, &admin, near).await),
            ("enable", enable(&app, &admin, near).await),
            ("delete", delete(&app, &admin, near).await),
        ] {
            match result {
                Err(status) if matches!(status.code(), Code::NotFound | Code::InvalidArgument) => {}
                other => wrong.push(format!("{call} {near:?}: {:?}", other.map_err(|status| status.code()))),
            }
        }
        if !listed_ids(&app, &admin).await.contains(&"billing".to_owned()) {
            create(&app, &admin, "billing", &[]).await;
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// RFC 9068 section 5: a client's `sub` must not collide with a user's. An id of digits (the
/// rules allow it) gives a token whose `sub` is a user's id.
#[tokio::test]
async fn a_clients_sub_is_never_a_users_sub() {
    let (app, admin) = with_admin(|_| {}).await;
    let admin_sub = token_payload(&admin)["sub"].as_str().unwrap().to_owned();
    match try_create(&app, &admin, &admin_sub, &[] as &[&str], &[]).await {
        Ok(created) => {
            let issued = token(&app, &admin_sub, &created.client_secret).await.unwrap();
            let validated = app.validate(&issued).await.unwrap().claims.unwrap();
            assert_ne!(validated.sub, admin_sub, "a service account's token says it is the admin");
        }
        Err(status) => assert_eq!(status.code(), Code::InvalidArgument, "{status:?}"),
    }
}

/// `clients.secret_overlap_seconds` has no upper bound in `Config::validate`. A value past
/// chrono's range must be refused there, not panic at start (`TimeDelta::seconds`) or in
/// RotateClientSecret (`NaiveDateTime + TimeDelta`), nor overflow a DATETIME column.
#[tokio::test]
async fn an_overlap_past_the_calendar_is_refused_by_validation_or_rotates_cleanly() {
    let mut failures = Vec::new();
    for overlap in [u64::MAX, 10u64.pow(13), 10u64.pow(12)] {
        let mut config = crate::helpers::test_config("sqlite::memory:");
        config.clients.secret_overlap_seconds = overlap;
        if config.validate().is_err() {
            continue;
        }
        let started = tokio::spawn(with_admin(move |config| config.clients.secret_overlap_seconds = overlap)).await;
        let Ok((app, admin)) = started else {
            failures.push(format!("{overlap}: the server panicked at start"));
            continue;
        };
        let old = create(&app, &admin, "billing", &[]).await;
        let request = authorized(RotateClientSecretRequest { client_id: "billing".into() }, &admin);
        match app.client.clone().rotate_client_secret(request).await {
            Err(status) => failures.push(format!("{overlap}: rotation answered {:?}", status.code())),
            Ok(rotated) => {
                let until = rotated.into_inner().client.unwrap().previous_secret_expires_at;
                if token(&app, "billing", &old).await.is_err() {
                    failures.push(format!("{overlap}: the previous secret stopped at once (until {until:?})"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

// ---------------------------------------------------------------------------------------------
// What held.
// ---------------------------------------------------------------------------------------------

/// A client cannot have a user's role ("admin" included), and its token opens no UserService
/// call.
#[tokio::test]
async fn a_client_token_with_role_admin_opens_no_user_or_admin_call() {
    let (app, admin) = with_admin(|_| {}).await;
    let request = |role: &str| CreateClientRequest {
        client_id: "ops".into(),
        name: "ops".into(),
        role: role.into(),
        scopes: vec![],
        audiences: vec![],
    };
    for user_role in ["admin", "user"] {
        let refused = app.client.clone().create_client(authorized(request(user_role), &admin)).await;
        assert_eq!(refused.unwrap_err().code(), Code::InvalidArgument, "{user_role}");
    }
    let secret = app
        .client
        .clone()
        .create_client(authorized(request("operator"), &admin))
        .await
        .unwrap()
        .into_inner()
        .client_secret;
    let client_token = token(&app, "ops", &secret).await.unwrap();
    assert_eq!(token_payload(&client_token)["role"], "operator");
    let results = [
        app.user_info(&bearer(&client_token)).await.map(|_| ()),
        app.logout(&client_token).await,
        app.logout_all(&client_token, false).await.map(|_| ()),
        app.change_password(&client_token, PASSWORD, "another long password").await.map(|_| ()),
        app.delete_account(&client_token, PASSWORD).await,
        app.revoke_session(&client_token, &uuid::Uuid::new_v4().to_string()).await,
        app.list_users(&client_token, ListUsersRequest::default()).await.map(|_| ()),
        app.revoke_user_sessions(&client_token, 1).await.map(|_| ()),
        try_create(&app, &client_token, "x", &[] as &[&str], &[]).await.map(|_| ()),
    ];
    for (n, result) in results.into_iter().enumerate() {
        assert_eq!(result.unwrap_err().code(), Code::Unauthenticated, "call {n}");
    }
    assert_eq!(listed_ids(&app, &admin).await, ["ops"]);
}

/// A forged token with both `userId` and `client_id` is a client's everywhere: the bearer
/// layer refuses it, ValidateToken answers for the client (never the user), RevokeToken
/// touches the client, not the user's session.
#[tokio::test]
async fn a_token_with_both_user_id_and_client_id_is_a_clients_on_every_path() {
    let (app, admin) = with_admin(|_| {}).await;
    create(&app, &admin, "billing", &["introspect"]).await;
    let admin_claims = token_payload(&admin);
    let mut hybrid = admin_claims.clone();
    hybrid["client_id"] = "billing".into();
    hybrid["scope"] = "introspect".into();
    // A token id of after the client's creation: as a client's token, one minted before it
    // (the admin's session id is time-ordered, and older) would already count as revoked.
    hybrid["sid"] = uuid::Uuid::now_v7().to_string().into();
    let forged =
        sign_jwt(Algorithm::HS256, "at+jwt", Some(&hmac_kid(ACCESS_SECRET)), &hybrid, &hmac_key(ACCESS_SECRET));

    assert_eq!(app.user_info(&bearer(&forged)).await.unwrap_err().message(), "not an access token");
    assert_eq!(app.list_users(&forged, ListUsersRequest::default()).await.unwrap_err().code(), Code::Unauthenticated);
    let validated = app.validate(&forged).await.unwrap();
    let claims = validated.claims.expect("active as the client");
    assert_eq!((claims.client_id.as_str(), claims.user_id, claims.username.as_str()), ("billing", 0, ""));

    revoke(&app, &forged).await.unwrap();
    assert!(active(&app, &admin).await, "revoking the hybrid ended the admin's session");
    assert!(!active(&app, &forged).await);

    // Naming no client: inactive, not the user.
    hybrid["client_id"] = "nobody".into();
    let orphan =
        sign_jwt(Algorithm::HS256, "at+jwt", Some(&hmac_kid(ACCESS_SECRET)), &hybrid, &hmac_key(ACCESS_SECRET));
    assert!(!active(&app, &orphan).await);
}

/// Hostile credentials: oversized, NUL, unicode, trailing spaces, case variants: every one
/// `invalid_client` (or refused by the message limit), never INTERNAL, on every database.
#[tokio::test]
async fn hostile_client_credentials_are_all_invalid_client() {
    let (app, admin) = with_admin(|_| {}).await;
    let secret = create(&app, &admin, "billing", &[]).await;
    let big = "x".repeat(60 * 1024);
    let cases = [
        ("billing".to_owned(), format!("{secret} ")),
        ("billing".to_owned(), format!(" {secret}")),
        ("billing".to_owned(), format!("{secret}\0")),
        ("billing".to_owned(), secret.to_uppercase()),
        ("billing".to_owned(), big.clone()),
        ("billing ".to_owned(), secret.clone()),
        ("BILLING".to_owned(), secret.clone()),
        ("Billing".to_owned(), secret.clone()),
        ("billing\0".to_owned(), secret.clone()),
        ("bïlling".to_owned(), secret.clone()),
        (big.clone(), secret.clone()),
        ("".to_owned(), secret.clone()),
    ];
    for (client_id, presented) in &cases {
        let what = format!("{:?}/{} bytes", &client_id[..client_id.len().min(12)], presented.len());
        assert_invalid_client(token(&app, client_id, presented).await, &what);
        let introspected = app
            .client
            .clone()
            .introspect_token(IntrospectTokenRequest {
                client: auth(client_id, presented),
                token: admin.clone(),
                token_type_hint: String::new(),
            })
            .await;
        assert_invalid_client(introspected, &what);
    }
    // 1 MB is past the message limit: refused before any of it is read.
    let huge = "y".repeat(1024 * 1024);
    let status = token(&app, "billing", &huge).await.unwrap_err();
    assert_ne!(status.code(), Code::Internal, "{status:?}");
    assert_ne!(status.code(), Code::Ok);
    token(&app, "billing", &secret).await.expect("the real secret still works");
}

/// Ten rotations at once: of the eleven secrets exactly two work (the last and the one before
/// it), on every database.
#[tokio::test]
async fn ten_concurrent_rotations_leave_exactly_one_previous_secret() {
    let (app, admin) = with_admin(|_| {}).await;
    let original = create(&app, &admin, "billing", &[]).await;
    let rotations = (0..10).map(|_| rotate(app.client.clone(), admin.clone(), "billing"));
    let mut secrets: Vec<String> = join_all(rotations).await.into_iter().map(|r| r.client_secret).collect();
    secrets.push(original);
    let mut working = 0;
    for secret in &secrets {
        if token(&app, "billing", secret).await.is_ok() {
            working += 1;
        }
    }
    assert_eq!(working, 2, "secrets that still work after 10 concurrent rotations");
}

/// Rotate, disable, enable: while disabled no secret works; enabled again, the new one and the
/// previous one (still in its overlap) do, and the one before neither.
#[tokio::test]
async fn rotate_disable_enable_keeps_the_overlap_and_nothing_older() {
    let (app, admin) = with_admin(|_| {}).await;
    let first = create(&app, &admin, "billing", &[]).await;
    let second = rotate(app.client.clone(), admin.clone(), "billing").await.client_secret;
    let third = rotate(app.client.clone(), admin.clone(), "billing").await.client_secret;
    disable(&app, &admin, "billing").await.unwrap();
    for secret in [&first, &second, &third] {
        assert_invalid_client(token(&app, "billing", secret).await, "disabled");
    }
    enable(&app, &admin, "billing").await.unwrap();
    assert_invalid_client(token(&app, "billing", &first).await, "the oldest secret");
    token(&app, "billing", &second).await.expect("the previous secret, in its overlap");
    token(&app, "billing", &third).await.expect("the current secret");
}

/// Ten CreateClient calls for one id at once: one client, nine ALREADY_EXISTS, on every database.
#[tokio::test]
async fn concurrent_creates_of_one_id_make_one_client() {
    let (app, admin) = with_admin(|_| {}).await;
    let creates = (0..10).map(|_| try_create(&app, &admin, "billing", &[] as &[&str], &[]));
    let results = join_all(creates).await;
    let created = results.iter().filter(|result| result.is_ok()).count();
    let taken = results.iter().filter(|r| r.as_ref().is_err_and(|s| s.code() == Code::AlreadyExists)).count();
    assert_eq!((created, taken), (1, 9), "{results:?}");
    assert_eq!(listed_ids(&app, &admin).await, ["billing"]);
}

/// Revoking one client's token touches no other client's tokens and no user's session.
#[tokio::test]
async fn revoking_a_clients_token_ends_only_that_clients_tokens() {
    let (app, admin) = with_admin(|_| {}).await;
    let billing = create(&app, &admin, "billing", &[]).await;
    let stock = create(&app, &admin, "stock", &[]).await;
    let billing_token = token(&app, "billing", &billing).await.unwrap();
    let stock_token = token(&app, "stock", &stock).await.unwrap();
    let request = RevokeTokenRequest {
        client: auth("stock", &stock),
        token: billing_token.clone(),
        token_type_hint: "refresh_token".into(),
    };
    app.client.clone().revoke_token(request).await.unwrap();
    assert!(!active(&app, &billing_token).await);
    assert!(active(&app, &stock_token).await);
    assert!(active(&app, &admin).await);
}

/// A refresh token of a deleted account, and one of a session already revoked: OK, nothing
/// else happens.
#[tokio::test]
async fn revoking_refresh_tokens_of_gone_accounts_and_ended_sessions_is_ok() {
    let (app, admin) = with_admin(|_| {}).await;
    let alice = app.signed_in("alice").await;
    let alice_id = app.user_info(&bearer(&alice.access_token)).await.unwrap().id;
    app.delete_user(&admin, alice_id).await.unwrap();
    revoke(&app, &alice.refresh_token).await.unwrap();
    revoke(&app, &alice.access_token).await.unwrap();

    let bob = app.signed_in("bob").await;
    app.logout(&bob.access_token).await.unwrap();
    revoke(&app, &bob.refresh_token).await.unwrap();
    assert_eq!(app.refresh(&bob.refresh_token).await.unwrap_err().code(), Code::Unauthenticated);
    assert!(active(&app, &admin).await);
}

/// RevokeToken racing a chain of Refreshes of the same session: once both are done, no token
/// of the family works.
#[tokio::test]
async fn revocation_racing_refreshes_leaves_no_live_token() {
    let (app, _admin) = with_admin(|_| {}).await;
    for round in 0..8 {
        let username = format!("racer{round}");
        let first = app.signed_in(&username).await;
        let chain = async {
            let mut pairs = vec![first.clone()];
            while let Ok(next) = app.refresh(&pairs.last().unwrap().refresh_token).await {
                pairs.push(next);
                if pairs.len() > 50 {
                    break;
                }
            }
            pairs
        };
        let revocation = async {
            tokio::time::sleep(Duration::from_millis(5 * round)).await;
            revoke(&app, &first.refresh_token).await.unwrap();
        };
        let (pairs, ()) = tokio::join!(chain, revocation);
        assert!(pairs.len() <= 50, "round {round}: the chain outran the revocation");
        for (n, pair) in pairs.iter().enumerate() {
            assert!(!active(&app, &pair.access_token).await, "round {round}: access token {n} still active");
            assert!(app.refresh(&pair.refresh_token).await.is_err(), "round {round}: refresh token {n} still works");
        }
    }
}

/// Scope and audience lists an attacker or a careless operator sends: duplicates, empty
/// strings, a thousand entries, forbidden characters, an audience that is a scope. Each is OK
/// or INVALID_ARGUMENT, and nothing refused is stored.
#[tokio::test]
async fn odd_scope_and_audience_lists_are_answered_cleanly() {
    let (app, admin) = with_admin(|_| {}).await;
    let thousand: Vec<String> = (0..1000).map(|n| format!("s{n}")).collect();
    let refused_creates: Vec<(Vec<String>, Vec<String>)> = vec![
        (strings(&[""]), vec![]),
        (vec![], strings(&[""])),
        (thousand.clone(), vec![]),
        (vec![], thousand.clone()),
        (strings(&["orders:read\u{7f}"]), vec![]),
        (strings(&["é"]), vec![]),
        (vec![], strings(&["a b"])),
        (vec![], strings(&["a\\b"])),
    ];
    for (n, (scopes, audiences)) in refused_creates.iter().enumerate() {
        let status = try_create(&app, &admin, &format!("c{n}"), scopes, audiences).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "case {n}: {status:?}");
    }
    assert!(listed_ids(&app, &admin).await.is_empty(), "a refused create left a row");

    let dupes = strings(&["orders:read", "orders:read", "introspect"]);
    let created = try_create(&app, &admin, "dupes", &dupes, &strings(&["orders:read", "orders:read"])).await.unwrap();
    let client = created.client.unwrap();
    assert_eq!((client.scopes, client.audiences), (strings(&["orders:read", "introspect"]), strings(&["orders:read"])));
    let secret = created.client_secret;
    let asked = token_on(app.client.clone(), "dupes", &secret, &dupes, &strings(&["orders:read"])).await.unwrap();
    assert_eq!(asked.scopes, ["orders:read", "introspect"]);
    assert_eq!(token_payload(&asked.access_token)["aud"], "orders:read");
    for (scopes, audiences) in [(thousand.clone(), vec![]), (vec![], thousand.clone()), (strings(&[""]), vec![])] {
        let status = token_on(app.client.clone(), "dupes", &secret, &scopes, &audiences).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    }
    // As many distinct scopes as a message holds: refused quickly, not after a quadratic scan.
    let many: Vec<String> = (0..10_000).map(|n| format!("{n:x}")).collect();
    let started = Instant::now();
    let status = token_on(app.client.clone(), "dupes", &secret, &many, &[]).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
}

/// 200 wrong-secret token requests at once: every one `invalid_client`, and logins of other
/// users in the middle of them are served in time.
#[tokio::test]
async fn a_flood_of_wrong_secrets_does_not_starve_logins() {
    let (app, admin) = with_admin(|_| {}).await;
    create(&app, &admin, "billing", &[]).await;
    for n in 0..5 {
        app.register(&format!("user{n}")).await;
    }
    let mut channels = Vec::new();
    for _ in 0..4 {
        let channel = Channel::from_shared(format!("http://{}", app.addr)).unwrap().connect().await.unwrap();
        channels.push(UserServiceClient::new(channel));
    }
    let started = Instant::now();
    let flood = (0..200).map(|n| {
        let client = channels[n % channels.len()].clone();
        async move { token_on(client, "billing", &format!("guess-{n}"), &[], &[]).await }
    });
    let app_ref = &app;
    let logins = async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let logins = (0..5).map(|n| async move {
            let began = Instant::now();
            let result = app_ref.login(&format!("user{n}"), PASSWORD).await;
            (result, began.elapsed())
        });
        join_all(logins).await
    };
    let (answers, logins) = tokio::join!(join_all(flood), logins);
    let elapsed = started.elapsed();
    for answer in answers {
        assert_invalid_client(answer, "a guessed secret");
    }
    for (n, (login, took)) in logins.into_iter().enumerate() {
        login.unwrap_or_else(|status| panic!("login {n} during the flood: {status:?}"));
        assert!(took < Duration::from_secs(2), "login {n} took {took:?} during the flood");
    }
    assert!(elapsed < Duration::from_secs(10), "the flood took {elapsed:?}");
    let failures =
        app.audit.events().iter().filter(|e| e.event_type == auth_svc::audit::EventType::ClientToken).count();
    assert_eq!(failures, 200);
}

/// No secret, secret hash or whole token in the audit events (and, with AUTH_TEST_LOG_FILE,
/// in the logs) after every client call and its failures.
#[tokio::test]
async fn no_secret_hash_or_token_reaches_the_audit_events_or_logs() {
    let (app, admin) = with_admin(|_| {}).await;
    let first = create(&app, &admin, "billing", &["introspect"]).await;
    let second = rotate(app.client.clone(), admin.clone(), "billing").await.client_secret;
    let issued = token(&app, "billing", &second).await.unwrap();
    let _ = token(&app, "billing", &format!("{second}x")).await;
    let _ = app
        .client
        .clone()
        .introspect_token(IntrospectTokenRequest {
            client: auth("billing", &first),
            token: issued.clone(),
            token_type_hint: String::new(),
        })
        .await
        .unwrap();
    revoke(&app, &issued).await.unwrap();
    disable(&app, &admin, "billing").await.unwrap();
    let _ = token(&app, "billing", &second).await;
    delete(&app, &admin, "billing").await.unwrap();

    let hash = |secret: &str| auth_svc::domain::client::hash_secret(secret);
    let signature = issued.rsplit('.').next().unwrap().to_owned();
    let forbidden = [first.clone(), second.clone(), hash(&first), hash(&second), issued.clone(), signature];
    let events = format!("{:?}", app.audit.events());
    for needle in &forbidden {
        assert!(!events.contains(needle.as_str()), "an audit event carries {}…", &needle[..8]);
    }
    if let Ok(path) = std::env::var(crate::helpers::LOG_FILE_ENV) {
        let logs = std::fs::read_to_string(path).unwrap();
        for needle in &forbidden {
            assert!(!logs.contains(needle.as_str()), "the logs carry {}…", &needle[..8]);
        }
    }
}
