//! Audit events: the records a scripted scenario writes, one per security event, each with the
//! caller's address and request id; none holds a password, hash or token; and the
//! `auth_audit_events_total` counter agrees with them.

use std::{collections::BTreeMap, net::IpAddr, num::NonZero};

use auth_api::user::v1::{
    ChangePasswordRequest, DeleteUserRequest, DisableUserRequest, EnableUserRequest, LoginRequest, LoginResponse,
    LogoutRequest, RefreshRequest, RegisterRequest, RevokeSessionRequest, SetUserRoleRequest,
};
use auth_svc::audit::{
    Actor::{self, Admin, Anonymous},
    AuditEvent,
    EventType::{self, *},
    Outcome::{self, Failure, Success, Throttled},
};
use tonic::Request;

use crate::{
    helpers::{PASSWORD, bearer, http_get_ok, token_payload},
    metrics::sample,
    roles::{bootstrap_admin, spawn_deployment},
};

const NEW_PASSWORD: &str = "a brand new passphrase";
const WRONG_PASSWORD: &str = "my wrong guess 123";

fn traced<T>(message: T, request_id: &str) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert("x-request-id", request_id.parse().unwrap());
    request
}

fn traced_as<T>(message: T, request_id: &str, access_token: &str) -> Request<T> {
    let mut request = traced(message, request_id);
    request.metadata_mut().insert("authorization", bearer(access_token).parse().unwrap());
    request
}

fn sid(pair: &LoginResponse) -> String {
    token_payload(&pair.access_token)["sid"].as_str().unwrap().to_owned()
}

/// What a test compares of an event: request id, type, outcome, actor, subject, session, username.
type Summary = (String, EventType, Outcome, Actor, Option<i64>, Option<String>, Option<String>);

fn summary(event: &AuditEvent) -> Summary {
    (
        event.request_id.clone().unwrap_or_default(),
        event.event_type,
        event.outcome,
        event.actor,
        event.subject,
        event.session_id.clone(),
        event.username.clone(),
    )
}

/// An expected event.
fn expect(
    request_id: &str,
    (event_type, outcome, actor): (EventType, Outcome, Actor),
    subject: Option<i64>,
    session: Option<&str>,
    username: Option<&str>,
) -> Summary {
    (request_id.into(), event_type, outcome, actor, subject, session.map(Into::into), username.map(Into::into))
}

#[tokio::test]
async fn a_scenario_writes_one_record_per_security_event_with_its_request_id_and_no_secret() {
    let (app, operator) = spawn_deployment(|config| {
        config.admin_listen = Some("127.0.0.1:0".parse().unwrap());
        config.throttle.max_failures_per_username = NonZero::new(2).unwrap();
        // A replayed refresh token is reuse at once.
        config.auth.refresh_reuse_interval = 0;
    })
    .await;
    let admin = bootstrap_admin(&app, &operator, "root").await;
    let root = app.user_info(&bearer(&admin)).await.unwrap().id;
    let before = app.audit.events().len();
    let mut client = app.client.clone();
    let login = |username: &str, password: &str, request_id: &str| {
        let request = traced(LoginRequest { username: username.into(), password: password.into() }, request_id);
        let mut client = app.client.clone();
        async move { client.login(request).await.map(|r| r.into_inner()) }
    };
    let register = |username: &str, request_id: &str| {
        let request = traced(RegisterRequest { username: username.into(), password: PASSWORD.into() }, request_id);
        let mut client = app.client.clone();
        async move { client.register(request).await.unwrap().into_inner().id }
    };

    let alice = register("alice", "r-register").await;
    let bob = register("bob", "r-register-bob").await;
    let first = login("alice", PASSWORD, "r-login").await.unwrap();
    login("alice", WRONG_PASSWORD, "r-login-wrong").await.unwrap_err();
    login("nobody", WRONG_PASSWORD, "r-login-unknown").await.unwrap_err();
    for guess in ["r-guess-1", "r-guess-2", "r-guess-3"] {
        login("mallory", WRONG_PASSWORD, guess).await.unwrap_err();
    }
    let second = client.refresh(traced(RefreshRequest { refresh_token: first.refresh_token.clone() }, "r-refresh"));
    let second = second.await.unwrap().into_inner();
    let replay = RefreshRequest { refresh_token: first.refresh_token.clone() };
    client.refresh(traced(replay, "r-reuse")).await.unwrap_err();
    let third = login("alice", PASSWORD, "r-login-2").await.unwrap();
    let fourth = login("alice", PASSWORD, "r-login-3").await.unwrap();
    client.logout(traced_as(LogoutRequest {}, "r-logout", &fourth.access_token)).await.unwrap();
    let fifth = login("alice", PASSWORD, "r-login-4").await.unwrap();
    let revoke = RevokeSessionRequest { session_id: sid(&fifth) };
    client.revoke_session(traced_as(revoke, "r-revoke", &third.access_token)).await.unwrap();
    let sixth = login("alice", PASSWORD, "r-login-5").await.unwrap();
    let change = ChangePasswordRequest { current_password: PASSWORD.into(), new_password: NEW_PASSWORD.into() };
    let changed = client.change_password(traced_as(change, "r-password", &third.access_token)).await.unwrap();
    let changed = changed.into_inner();
    let bob_first = login("bob", PASSWORD, "r-login-bob").await.unwrap();
    client.disable_user(traced_as(DisableUserRequest { id: bob }, "r-disable", &admin)).await.unwrap();
    login("bob", PASSWORD, "r-login-disabled").await.unwrap_err();
    client.enable_user(traced_as(EnableUserRequest { id: bob }, "r-enable", &admin)).await.unwrap();
    let bob_second = login("bob", PASSWORD, "r-login-bob-2").await.unwrap();
    let promote = SetUserRoleRequest { username: "bob".into(), role: "admin".into() };
    client.set_user_role(traced_as(promote, "r-role", &admin)).await.unwrap();
    client.delete_user(traced_as(DeleteUserRequest { id: bob }, "r-delete", &admin)).await.unwrap();

    let ok_login = (Login, Success, Anonymous);
    let mut ended = [sid(&third), sid(&sixth)];
    ended.sort();
    let user = Actor::User(alice);
    let expected = vec![
        expect("r-register", (AccountCreated, Success, Anonymous), Some(alice), None, Some("alice")),
        expect("r-register-bob", (AccountCreated, Success, Anonymous), Some(bob), None, Some("bob")),
        expect("r-login", ok_login, Some(alice), Some(&sid(&first)), Some("alice")),
        expect("r-login-wrong", (Login, Failure, Anonymous), Some(alice), None, Some("alice")),
        // A name that is no account is not recorded: it may be a password typed in the wrong field.
        expect("r-login-unknown", (Login, Failure, Anonymous), None, None, None),
        expect("r-guess-1", (Login, Failure, Anonymous), None, None, None),
        expect("r-guess-2", (Login, Failure, Anonymous), None, None, None),
        expect("r-guess-3", (Login, Throttled, Anonymous), None, None, None),
        expect("r-refresh", (Refresh, Success, user), Some(alice), Some(&sid(&first)), None),
        expect("r-reuse", (RefreshReuseDetected, Failure, Anonymous), Some(alice), Some(&sid(&first)), None),
        expect("r-login-2", ok_login, Some(alice), Some(&sid(&third)), Some("alice")),
        expect("r-login-3", ok_login, Some(alice), Some(&sid(&fourth)), Some("alice")),
        expect("r-logout", (Logout, Success, user), Some(alice), Some(&sid(&fourth)), None),
        expect("r-login-4", ok_login, Some(alice), Some(&sid(&fifth)), Some("alice")),
        expect("r-revoke", (SessionRevoked, Success, user), Some(alice), Some(&sid(&fifth)), None),
        expect("r-login-5", ok_login, Some(alice), Some(&sid(&sixth)), Some("alice")),
        // Every session ends, the caller's too (in session id order); the change is recorded on
        // the new session it continues in.
        expect("r-password", (SessionRevoked, Success, user), Some(alice), Some(&ended[0]), None),
        expect("r-password", (SessionRevoked, Success, user), Some(alice), Some(&ended[1]), None),
        expect("r-password", (PasswordChanged, Success, user), Some(alice), Some(&sid(&changed)), None),
        expect("r-login-bob", ok_login, Some(bob), Some(&sid(&bob_first)), Some("bob")),
        expect("r-disable", (SessionRevoked, Success, Admin(root)), Some(bob), Some(&sid(&bob_first)), None),
        expect("r-disable", (AccountDisabled, Success, Admin(root)), Some(bob), None, None),
        // Refused before any session starts: no session is opened and ended.
        expect("r-login-disabled", (Login, Failure, Anonymous), Some(bob), None, Some("bob")),
        expect("r-enable", (AccountEnabled, Success, Admin(root)), Some(bob), None, None),
        expect("r-login-bob-2", ok_login, Some(bob), Some(&sid(&bob_second)), Some("bob")),
        expect("r-role", (RoleChanged, Success, Admin(root)), Some(bob), None, None),
        expect("r-delete", (SessionRevoked, Success, Admin(root)), Some(bob), Some(&sid(&bob_second)), None),
        expect("r-delete", (AccountDeleted, Success, Admin(root)), Some(bob), None, None),
    ];
    let events = app.audit.events();
    let written: Vec<Summary> = events[before..].iter().map(summary).collect();
    assert_eq!(written, expected, "{:#?}", &events[before..]);
    let localhost: IpAddr = "127.0.0.1".parse().unwrap();
    for event in &events[before..] {
        assert_eq!(event.client_address, Some(localhost), "{event:?}");
        chrono::DateTime::parse_from_rfc3339(&event.time).unwrap_or_else(|err| panic!("{err}: {event:?}"));
    }

    // No secret of the scenario in any record, as a later sink would send them.
    let serialised = serde_json::to_string(&events).unwrap();
    let pairs = [&first, &second, &third, &fourth, &fifth, &sixth, &changed, &bob_first, &bob_second];
    let tokens = pairs.iter().flat_map(|pair| [pair.access_token.clone(), pair.refresh_token.clone()]);
    let hash = model::query::users::find_by_id(&app.db, alice).await.unwrap().unwrap().password_hash;
    for secret in [PASSWORD, NEW_PASSWORD, WRONG_PASSWORD, &admin, &hash].map(str::to_owned).into_iter().chain(tokens) {
        assert!(!serialised.contains(&secret), "an audit record holds a secret");
    }
    for part in ["argon2", "eyJ"] {
        assert!(!serialised.contains(part), "an audit record holds something like a hash or a JWT: {part}");
    }

    // The counter counts exactly these records, by type and outcome.
    let metrics = http_get_ok(&format!("http://{}/metrics", app.admin.unwrap())).await;
    let mut counted = BTreeMap::new();
    for event in &events {
        *counted.entry((event.event_type.as_str(), event.outcome.as_str())).or_insert(0.0) += 1.0;
    }
    assert_eq!(counted[&("login", "success")], 8.0, "root's and the scenario's");
    for ((event_type, outcome), count) in counted {
        let series = format!("auth_audit_events_total{{type=\"{event_type}\",outcome=\"{outcome}\"}}");
        assert_eq!(sample(&metrics, &series), count, "{series}\n{metrics}");
    }
}

#[tokio::test]
async fn an_event_without_a_request_id_has_none_and_one_through_a_trusted_forwarder_has_its_client() {
    let (app, _) = spawn_deployment(|config| {
        config.grpc.trusted_forwarders = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    app.register("alice").await;
    let mut request = Request::new(LoginRequest { username: "alice".into(), password: PASSWORD.into() });
    request.metadata_mut().insert("x-forwarded-for", "203.0.113.9".parse().unwrap());
    app.client.clone().login(request).await.unwrap();
    let events = app.audit.events();
    let [created, logged_in] = &events[..] else { panic!("{events:#?}") };
    assert_eq!((created.event_type, created.request_id.as_deref()), (AccountCreated, None));
    assert_eq!(created.client_address, Some("127.0.0.1".parse().unwrap()), "no forwarded header: the peer");
    assert_eq!((logged_in.event_type, logged_in.outcome), (Login, Success));
    assert_eq!(logged_in.client_address, Some("203.0.113.9".parse().unwrap()));
}
