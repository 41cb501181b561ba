//! Service accounts over gRPC: the admin calls (CreateClient … DeleteClient), the client
//! credentials grant, introspection and revocation (RFC 7662, RFC 7009), ValidateToken under
//! `introspection.require_client`, and what a client's token may not do.

use auth_api::user::v1::{
    ClientAuthentication, ClientCredentialsRequest, ClientSecretResponse, ClientTokenResponse, CreateClientRequest,
    DeleteClientRequest, DisableClientRequest, EnableClientRequest, GetServerMetadataRequest, IntrospectTokenRequest,
    ListClientsRequest, RevokeTokenRequest, RotateClientSecretRequest, ValidateTokenRequest, ValidateTokenResponse,
};
use auth_svc::audit::{EventType, Outcome};
use tonic::{Code, Request, Status};

use crate::{
    helpers::{TestApp, assert_status, authorized, bearer, token_payload},
    roles::{bootstrap_admin, spawn_deployment},
};

/// A server whose clients may be given `orders:read` and `introspect`, with an admin.
async fn with_admin(adjust: impl Fn(&mut auth_svc::Config)) -> (TestApp, String) {
    let (app, operator) = spawn_deployment(|config| {
        config.clients.scopes = vec!["introspect".into(), "orders:read".into(), "orders:write".into()];
        adjust(config);
    })
    .await;
    let admin = bootstrap_admin(&app, &operator, "root").await;
    (app, admin)
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|item| item.to_string()).collect()
}

async fn create(
    app: &TestApp,
    admin: &str,
    client_id: &str,
    scopes: &[&str],
    audiences: &[&str],
) -> ClientSecretResponse {
    try_create(app, admin, client_id, scopes, audiences).await.expect("create client")
}

async fn try_create(
    app: &TestApp,
    admin: &str,
    client_id: &str,
    scopes: &[&str],
    audiences: &[&str],
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

fn auth(client_id: &str, secret: &str) -> Option<ClientAuthentication> {
    Some(ClientAuthentication { client_id: client_id.into(), client_secret: secret.into() })
}

async fn token(
    app: &TestApp,
    client_id: &str,
    secret: &str,
    scopes: &[&str],
    audiences: &[&str],
) -> Result<ClientTokenResponse, Status> {
    let request = ClientCredentialsRequest {
        client: auth(client_id, secret),
        scopes: strings(scopes),
        audiences: strings(audiences),
    };
    app.client.clone().client_credentials(request).await.map(|r| r.into_inner())
}

async fn introspect(
    app: &TestApp,
    client_id: &str,
    secret: &str,
    token: &str,
) -> Result<ValidateTokenResponse, Status> {
    let request =
        IntrospectTokenRequest { client: auth(client_id, secret), token: token.into(), token_type_hint: String::new() };
    app.client.clone().introspect_token(request).await.map(|r| r.into_inner())
}

async fn revoke(app: &TestApp, client: Option<ClientAuthentication>, token: &str, hint: &str) -> Result<(), Status> {
    let request = RevokeTokenRequest { client, token: token.into(), token_type_hint: hint.into() };
    app.client.clone().revoke_token(request).await.map(|_| ())
}

#[track_caller]
fn assert_oauth<T: std::fmt::Debug>(result: Result<T, Status>, code: Code, oauth_error: &str) {
    let status = result.expect_err("refused");
    assert_eq!(status.code(), code, "{status:?}");
    let error = status.metadata().get(auth_api::metadata::OAUTH_ERROR).map(|value| value.to_str().unwrap().to_owned());
    assert_eq!(error.as_deref(), Some(oauth_error), "{status:?}");
}

#[tokio::test]
async fn an_admin_creates_a_client_whose_secret_gets_a_token_that_says_who_it_is() {
    let (app, admin) = with_admin(|_| {}).await;
    let created = create(&app, &admin, "billing", &["orders:read", "introspect"], &["orders", "stock"]).await;
    let client = created.client.clone().unwrap();
    assert_eq!((client.client_id.as_str(), client.role.as_str(), client.disabled), ("billing", "service", false));
    assert_eq!(client.scopes, ["orders:read", "introspect"]);
    assert_eq!(created.client_secret.len(), 48);
    assert!(created.client_secret.starts_with("ascs_"), "secrets are recognisable to scanners");

    let issued = token(&app, "billing", &created.client_secret, &["orders:read"], &["orders"]).await.unwrap();
    assert_eq!(
        (issued.token_type.as_str(), issued.expires_in, issued.scopes.clone()),
        ("Bearer", 900, strings(&["orders:read"]))
    );
    let claims = token_payload(&issued.access_token);
    assert_eq!(claims["sub"], "billing");
    assert_eq!(claims["client_id"], "billing");
    assert_eq!(claims["scope"], "orders:read");
    assert_eq!(claims["aud"], "orders");
    assert_eq!(claims["role"], "service");
    assert!(claims.get("userId").is_none(), "{claims}");
    let header = token_payload_header(&issued.access_token);
    assert_eq!(header["typ"], "at+jwt");

    // No scope asked: every allowed one; no audience asked: no `aud`.
    let all = token(&app, "billing", &created.client_secret, &[], &[]).await.unwrap();
    let claims = token_payload(&all.access_token);
    assert_eq!(claims["scope"], "orders:read introspect");
    assert!(claims.get("aud").is_none(), "{claims}");

    // ValidateToken knows it, and says whose it is.
    let validated = app.validate(&issued.access_token).await.unwrap();
    let claims = validated.claims.unwrap();
    assert!(validated.active);
    assert_eq!((claims.client_id.as_str(), claims.user_id, claims.username.as_str()), ("billing", 0, ""));
    assert_eq!((claims.scopes, claims.audiences), (strings(&["orders:read"]), strings(&["orders"])));

    // The list shows it, and never a secret.
    let list = app.client.clone().list_clients(authorized(ListClientsRequest::default(), &admin)).await.unwrap();
    let listed = list.into_inner().clients;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0], client);
    assert!(!format!("{listed:?}").contains(&created.client_secret));

    let types: Vec<_> = app.audit.events().iter().map(|e| (e.event_type, e.outcome, e.client_id.clone())).collect();
    assert!(types.contains(&(EventType::ClientCreated, Outcome::Success, Some("billing".into()))), "{types:?}");
    assert!(types.contains(&(EventType::ClientToken, Outcome::Success, Some("billing".into()))), "{types:?}");
}

fn token_payload_header(token: &str) -> serde_json::Value {
    let header = jsonwebtoken::decode_header(token).unwrap();
    serde_json::to_value(header).unwrap()
}

#[tokio::test]
async fn a_wrong_secret_an_unknown_or_disabled_client_are_all_invalid_client_and_scopes_are_checked() {
    let (app, admin) = with_admin(|_| {}).await;
    let created = create(&app, &admin, "billing", &["orders:read"], &["orders"]).await;
    let secret = created.client_secret;
    assert_oauth(token(&app, "billing", "not-the-secret", &[], &[]).await, Code::Unauthenticated, "invalid_client");
    assert_oauth(token(&app, "nobody", &secret, &[], &[]).await, Code::Unauthenticated, "invalid_client");
    assert_oauth(token(&app, "", "", &[], &[]).await, Code::Unauthenticated, "invalid_client");
    assert_oauth(token(&app, "a b/..", &secret, &[], &[]).await, Code::Unauthenticated, "invalid_client");
    assert_oauth(token(&app, "billing", &secret, &["orders:write"], &[]).await, Code::InvalidArgument, "invalid_scope");
    assert_oauth(token(&app, "billing", &secret, &["bad scope"], &[]).await, Code::InvalidArgument, "invalid_scope");
    assert_oauth(token(&app, "billing", &secret, &[], &["payroll"]).await, Code::InvalidArgument, "invalid_target");

    let disabled = app
        .client
        .clone()
        .disable_client(authorized(DisableClientRequest { client_id: "billing".into() }, &admin))
        .await;
    assert!(disabled.unwrap().into_inner().disabled);
    assert_oauth(token(&app, "billing", &secret, &[], &[]).await, Code::Unauthenticated, "invalid_client");
    let enabled =
        app.client.clone().enable_client(authorized(EnableClientRequest { client_id: "billing".into() }, &admin)).await;
    assert!(!enabled.unwrap().into_inner().disabled);
    token(&app, "billing", &secret, &[], &[]).await.unwrap();

    let failures = app
        .audit
        .events()
        .iter()
        .filter(|e| e.event_type == EventType::ClientToken && e.outcome == Outcome::Failure)
        .count();
    assert_eq!(failures, 5, "one failure event per failed authentication");
}

#[tokio::test]
async fn only_admins_manage_clients_and_the_inputs_are_checked() {
    let (app, admin) = with_admin(|_| {}).await;
    let bob = app.signed_in("bob").await.access_token;
    assert_status(
        try_create(&app, &bob, "x", &[], &[]).await,
        Code::PermissionDenied,
        "only admins may call this method",
    );
    let unauthenticated = app.client.clone().list_clients(Request::new(ListClientsRequest::default())).await;
    assert_eq!(unauthenticated.unwrap_err().code(), Code::Unauthenticated);

    create(&app, &admin, "billing", &[], &[]).await;
    assert_status(try_create(&app, &admin, "billing", &[], &[]).await, Code::AlreadyExists, "client id already exists");
    for (client_id, scopes, audiences) in [
        ("has space", &[][..], &[][..]),
        ("ok", &["not-configured"][..], &[][..]),
        ("ok", &["two words"][..], &[][..]),
        ("ok", &[][..], &["a\"b"][..]),
    ] {
        let refused = try_create(&app, &admin, client_id, scopes, audiences).await;
        assert_eq!(refused.unwrap_err().code(), Code::InvalidArgument, "{client_id} {scopes:?} {audiences:?}");
    }
    // An empty id is generated.
    let generated = create(&app, &admin, "", &[], &[]).await.client.unwrap();
    assert!(generated.client_id.starts_with("svc-"), "{}", generated.client_id);

    let missing =
        app.client.clone().delete_client(authorized(DeleteClientRequest { client_id: "nope".into() }, &admin)).await;
    assert_status(missing, Code::NotFound, "no such client");
    let missing = app
        .client
        .clone()
        .rotate_client_secret(authorized(RotateClientSecretRequest { client_id: "nope".into() }, &admin))
        .await;
    assert_status(missing, Code::NotFound, "no such client");
}

#[tokio::test]
async fn clients_are_listed_in_pages() {
    let (app, admin) = with_admin(|_| {}).await;
    for n in 0..5 {
        create(&app, &admin, &format!("client-{n}"), &[], &[]).await;
    }
    let (mut seen, mut page_token) = (Vec::new(), String::new());
    loop {
        let request = ListClientsRequest { page_size: 2, page_token: page_token.clone() };
        let page = app.client.clone().list_clients(authorized(request, &admin)).await.unwrap().into_inner();
        assert!(page.clients.len() <= 2);
        seen.extend(page.clients.into_iter().map(|c| c.client_id));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert_eq!(seen, (0..5).map(|n| format!("client-{n}")).collect::<Vec<_>>());
    let bad = app
        .client
        .clone()
        .list_clients(authorized(ListClientsRequest { page_size: 2, page_token: "junk".into() }, &admin))
        .await;
    assert_eq!(bad.unwrap_err().code(), Code::InvalidArgument);
    let big = app
        .client
        .clone()
        .list_clients(authorized(ListClientsRequest { page_size: 101, page_token: String::new() }, &admin))
        .await;
    assert_eq!(big.unwrap_err().code(), Code::InvalidArgument);
}

#[tokio::test]
async fn a_rotated_secret_works_through_the_overlap_only() {
    let (app, admin) = with_admin(|_| {}).await;
    let old = create(&app, &admin, "billing", &[], &[]).await.client_secret;
    let rotate = |admin: String| {
        let mut client = app.client.clone();
        async move {
            let request = authorized(RotateClientSecretRequest { client_id: "billing".into() }, &admin);
            client.rotate_client_secret(request).await.unwrap().into_inner()
        }
    };
    let rotated = rotate(admin.clone()).await;
    assert_ne!(rotated.client_secret, old);
    assert!(rotated.client.unwrap().previous_secret_expires_at.is_some());
    token(&app, "billing", &old, &[], &[]).await.expect("the old secret works in the overlap");
    token(&app, "billing", &rotated.client_secret, &[], &[]).await.expect("the new one works");
    // A second rotation ends the oldest at once; the one before still overlaps.
    let again = rotate(admin.clone()).await;
    assert_oauth(token(&app, "billing", &old, &[], &[]).await, Code::Unauthenticated, "invalid_client");
    token(&app, "billing", &rotated.client_secret, &[], &[]).await.unwrap();
    token(&app, "billing", &again.client_secret, &[], &[]).await.unwrap();
}

#[tokio::test]
async fn with_no_overlap_the_old_secret_stops_at_once() {
    let (app, admin) = with_admin(|config| config.clients.secret_overlap_seconds = 0).await;
    let old = create(&app, &admin, "billing", &[], &[]).await.client_secret;
    let request = authorized(RotateClientSecretRequest { client_id: "billing".into() }, &admin);
    let rotated = app.client.clone().rotate_client_secret(request).await.unwrap().into_inner();
    assert!(rotated.client.unwrap().previous_secret_expires_at.is_none());
    assert_oauth(token(&app, "billing", &old, &[], &[]).await, Code::Unauthenticated, "invalid_client");
    token(&app, "billing", &rotated.client_secret, &[], &[]).await.unwrap();
}

#[tokio::test]
async fn a_client_token_is_not_a_user_token() {
    let (app, admin) = with_admin(|_| {}).await;
    let secret = create(&app, &admin, "billing", &[], &[]).await.client_secret;
    let issued = token(&app, "billing", &secret, &[], &[]).await.unwrap();
    for refused in [
        app.user_info(&bearer(&issued.access_token)).await.map(|_| ()),
        app.sessions(&issued.access_token).await.map(|_| ()),
        app.refresh(&issued.access_token).await.map(|_| ()),
    ] {
        assert_eq!(refused.unwrap_err().code(), Code::Unauthenticated);
    }
    let admin_call =
        app.client.clone().list_clients(authorized(ListClientsRequest::default(), &issued.access_token)).await;
    assert_eq!(admin_call.unwrap_err().code(), Code::Unauthenticated);
}

#[tokio::test]
async fn introspection_needs_a_client_with_scope_introspect_and_answers_for_every_kind_of_token() {
    let (app, admin) = with_admin(|_| {}).await;
    let gate = create(&app, &admin, "gate", &["introspect"], &[]).await.client_secret;
    let plain = create(&app, &admin, "plain", &["orders:read"], &[]).await.client_secret;
    let alice = app.signed_in("alice").await;
    let plain_token = token(&app, "plain", &plain, &[], &[]).await.unwrap().access_token;

    assert_oauth(
        introspect(&app, "plain", &plain, &alice.access_token).await,
        Code::PermissionDenied,
        "unauthorized_client",
    );
    assert_oauth(introspect(&app, "gate", "wrong", &alice.access_token).await, Code::Unauthenticated, "invalid_client");

    let user = introspect(&app, "gate", &gate, &alice.access_token).await.unwrap();
    assert!(user.active);
    assert_eq!(user.claims.unwrap().username, "alice");
    let client = introspect(&app, "gate", &gate, &plain_token).await.unwrap();
    assert_eq!(client.claims.unwrap().client_id, "plain");
    for inactive in [alice.refresh_token.as_str(), "garbage", ""] {
        assert_eq!(
            introspect(&app, "gate", &gate, inactive).await.unwrap(),
            ValidateTokenResponse { active: false, claims: None }
        );
    }

    // A deleted client's tokens are inactive at once.
    let deleted =
        app.client.clone().delete_client(authorized(DeleteClientRequest { client_id: "plain".into() }, &admin)).await;
    deleted.unwrap();
    assert!(!introspect(&app, "gate", &gate, &plain_token).await.unwrap().active);
    assert!(!app.validate(&plain_token).await.unwrap().active);
}

#[tokio::test]
async fn a_disabled_clients_tokens_are_inactive() {
    let (app, admin) = with_admin(|_| {}).await;
    let secret = create(&app, &admin, "billing", &[], &[]).await.client_secret;
    let issued = token(&app, "billing", &secret, &[], &[]).await.unwrap().access_token;
    assert!(app.validate(&issued).await.unwrap().active);
    let request = authorized(DisableClientRequest { client_id: "billing".into() }, &admin);
    app.client.clone().disable_client(request).await.unwrap();
    assert!(!app.validate(&issued).await.unwrap().active);
}

#[tokio::test]
async fn revocation_ends_a_refresh_tokens_session_a_user_tokens_session_and_a_clients_tokens() {
    let (app, admin) = with_admin(|_| {}).await;
    let secret = create(&app, &admin, "billing", &[], &[]).await.client_secret;

    let first = app.signed_in("alice").await;
    revoke(&app, None, &first.refresh_token, "refresh_token").await.unwrap();
    assert_eq!(app.refresh(&first.refresh_token).await.unwrap_err().code(), Code::Unauthenticated);
    assert!(!app.validate(&first.access_token).await.unwrap().active);

    // The hint is only a hint: an access token sent as "refresh_token" still ends its session.
    let second = app.login("alice", crate::helpers::PASSWORD).await.unwrap();
    revoke(&app, auth("billing", &secret), &second.access_token, "refresh_token").await.unwrap();
    assert!(!app.validate(&second.access_token).await.unwrap().active);
    assert_eq!(app.refresh(&second.refresh_token).await.unwrap_err().code(), Code::Unauthenticated);

    let issued = token(&app, "billing", &secret, &[], &[]).await.unwrap().access_token;
    revoke(&app, None, &issued, "").await.unwrap();
    assert!(!app.validate(&issued).await.unwrap().active);
    // The client gets a new token with its secret at once; that one stands, and revoking the
    // old one again does not touch it.
    let fresh = token(&app, "billing", &secret, &[], &[]).await.unwrap().access_token;
    assert!(app.validate(&fresh).await.unwrap().active);

    // Unknown, garbage and already revoked tokens are OK; wrong credentials are not.
    for token in ["garbage", "", first.refresh_token.as_str(), issued.as_str()] {
        revoke(&app, None, token, "access_token").await.unwrap();
    }
    assert_oauth(revoke(&app, auth("billing", "wrong"), &fresh, "").await, Code::Unauthenticated, "invalid_client");
    assert!(app.validate(&fresh).await.unwrap().active, "a refused revocation revokes nothing");
}

#[tokio::test]
async fn validate_token_can_require_a_client_with_scope_introspect() {
    let (app, admin) = with_admin(|config| config.introspection.require_client = true).await;
    let gate = create(&app, &admin, "gate", &["introspect"], &[]).await.client_secret;
    let plain = create(&app, &admin, "plain", &["orders:read"], &[]).await.client_secret;
    let alice = app.signed_in("alice").await.access_token;
    let ask = |caller: Option<String>| {
        let mut client = app.client.clone();
        let token = alice.clone();
        async move {
            let request = match caller {
                Some(caller) => authorized(ValidateTokenRequest { token }, &caller),
                None => Request::new(ValidateTokenRequest { token }),
            };
            client.validate_token(request).await.map(|r| r.into_inner())
        }
    };
    assert_eq!(ask(None).await.unwrap_err().code(), Code::Unauthenticated);
    assert_eq!(
        ask(Some(alice.clone())).await.unwrap_err().code(),
        Code::Unauthenticated,
        "a user's token is no client's"
    );
    let plain_token = token(&app, "plain", &plain, &[], &[]).await.unwrap().access_token;
    assert_eq!(ask(Some(plain_token)).await.unwrap_err().code(), Code::PermissionDenied);
    let gate_token = token(&app, "gate", &gate, &[], &[]).await.unwrap().access_token;
    assert!(ask(Some(gate_token)).await.unwrap().active);
}

#[tokio::test]
async fn server_metadata_names_the_issuer_scopes_and_algorithms() {
    let (app, _admin) = with_admin(|_| {}).await;
    let metadata = app.client.clone().get_server_metadata(GetServerMetadataRequest {}).await.unwrap().into_inner();
    assert_eq!(metadata.issuer, "auth-svc");
    assert_eq!(metadata.scopes_supported, ["introspect", "orders:read", "orders:write"]);
    assert_eq!(metadata.signing_algs, ["HS256"]);
}
