//! `/token`'s client credentials grant against the scripted auth-svc: what travels to
//! ClientCredentials (HTTP Basic credentials form-decoded, form credentials, scopes, repeated
//! `audience` and `resource`), the refusals the gateway makes itself (no client authentication,
//! both methods at once), and the answer each RFC 6749 code in auth-svc's `x-oauth-error`
//! metadata becomes.

use auth_api::user::v1::{ClientAuthentication, ClientCredentialsRequest, LoginRequest};
use base64::Engine as _;
use reqwest::{StatusCode, multipart};
use serde_json::json;
use tonic::Code;
use tonic_health::ServingStatus;

use crate::support::{
    cases::{
        Auth,
        Call::{Form, FormWith, Multipart},
        Message::OAuth,
        check,
    },
    header, read,
    scripted_upstream::{Behavior, Fixture, start},
};

async fn fixture() -> Fixture {
    start(Behavior::Answer, ServingStatus::Serving, 5_000).await
}

/// `Basic` and the base64 of `user_pass`, as given (already form-encoded, or not).
fn basic(user_pass: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(user_pass))
}

const CLIENT_CREDENTIALS: (&str, &str) = ("grant_type", "client_credentials");

fn client(id: &str, secret: &str) -> Option<ClientAuthentication> {
    Some(ClientAuthentication { client_id: id.into(), client_secret: secret.into() })
}

#[tokio::test]
async fn basic_credentials_are_form_decoded_and_the_token_comes_alone() {
    let fixture = fixture().await;
    // RFC 6749 section 2.3.1: `svc:a b` and `se/cr+et` form-encoded, then base64.
    let response = fixture
        .client
        .post(fixture.url("/token"))
        .header("authorization", basic("svc%3Aa+b:se%2Fcr%2Bet"))
        .form(&[CLIENT_CREDENTIALS, ("scope", "orders:read  orders:write")])
        .send()
        .await
        .unwrap();
    let (status, headers, body) = read(response).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(header(&headers, "cache-control"), "no-store");
    assert_eq!(header(&headers, "pragma"), "no-cache");
    // No refresh token (RFC 6749 section 4.4.3); the granted scopes space-separated.
    assert_eq!(
        body,
        json!({"access_token": "c.d.e", "token_type": "bearer", "expires_in": 300, "scope": "orders:read orders:write"})
    );
    assert_eq!(
        fixture.last_request::<ClientCredentialsRequest>(),
        ClientCredentialsRequest {
            client: client("svc:a b", "se/cr+et"),
            scopes: vec!["orders:read".into(), "orders:write".into()],
            audiences: vec![],
        }
    );
    // The credentials travel in the message, never as metadata.
    assert!(fixture.last_metadata().get("authorization").is_none());
}

#[tokio::test]
async fn form_credentials_and_repeated_audiences_and_resources_travel_in_order() {
    let fixture = fixture().await;
    let form = [
        CLIENT_CREDENTIALS,
        ("client_id", "billing-svc"),
        ("client_secret", "s3cr3t"),
        ("audience", "orders"),
        ("resource", "https://orders.example.com/api"),
        ("audience", "invoices"),
        ("resource", "urn:example:ledger"),
    ];
    let (status, _, body) = read(fixture.client.post(fixture.url("/token")).form(&form).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // No scope asked: auth-svc grants every scope the client may ask for.
    assert_eq!(body["scope"], "introspect orders:read");
    assert_eq!(
        fixture.last_request::<ClientCredentialsRequest>(),
        ClientCredentialsRequest {
            client: client("billing-svc", "s3cr3t"),
            scopes: vec![],
            audiences: vec![
                "orders".into(),
                "invoices".into(),
                "https://orders.example.com/api".into(),
                "urn:example:ledger".into(),
            ],
        }
    );

    // Multipart keeps repeated fields too; Basic beside the same client_id in the form is one method.
    let multipart = multipart::Form::new()
        .text("grant_type", "client_credentials")
        .text("client_id", "svc")
        .text("audience", "a")
        .text("audience", "b");
    let response = fixture
        .client
        .post(fixture.url("/token"))
        .header("authorization", basic("svc:x"))
        .multipart(multipart)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let sent = fixture.last_request::<ClientCredentialsRequest>();
    assert_eq!((sent.client, sent.audiences), (client("svc", "x"), vec!["a".into(), "b".into()]));
}

/// The refusals the gateway makes without calling auth-svc.
#[tokio::test]
async fn refusals_before_auth_svc() {
    let fixture = fixture().await;
    let required = "client authentication required: HTTP Basic, or client_id and client_secret";
    let both = "client authenticated both by HTTP Basic and by client_secret in the form; use one";
    let cases = [
        (Form("/token", &[CLIENT_CREDENTIALS]), 401, OAuth("invalid_client", required)),
        (
            Form("/token", &[CLIENT_CREDENTIALS, ("client_secret", "x")]),
            400,
            OAuth("invalid_request", "client_secret without client_id"),
        ),
        (
            Form("/token", &[CLIENT_CREDENTIALS, ("client_id", "a"), ("client_id", "b")]),
            422,
            OAuth("invalid_request", "duplicate field `client_id`"),
        ),
        (
            Multipart("/token", &[CLIENT_CREDENTIALS, ("client_id", "a"), ("scope", "x"), ("scope", "y")]),
            422,
            OAuth("invalid_request", "duplicate field `scope`"),
        ),
        (
            Form("/token", &[CLIENT_CREDENTIALS, ("client_id", "a"), ("resource", "orders")]),
            400,
            OAuth("invalid_target", "resource `orders` is not an absolute URI without a fragment (RFC 8707)"),
        ),
        (
            Form("/token", &[CLIENT_CREDENTIALS, ("client_id", "a"), ("resource", "https://o.test/#x")]),
            400,
            OAuth(
                "invalid_target",
                "resource `https://o.test/#x` is not an absolute URI without a fragment (RFC 8707)",
            ),
        ),
        (
            FormWith(
                "/token",
                Auth::Basic("svc", "x"),
                &[CLIENT_CREDENTIALS, ("client_id", "svc"), ("client_secret", "x")],
            ),
            400,
            OAuth("invalid_request", both),
        ),
        (
            FormWith("/token", Auth::Basic("svc", "x"), &[CLIENT_CREDENTIALS, ("client_id", "other")]),
            400,
            OAuth("invalid_request", "client_id in the form is not the client of HTTP Basic"),
        ),
        (
            FormWith("/token", Auth::Raw("Basic not-base64!"), &[CLIENT_CREDENTIALS]),
            401,
            OAuth(
                "invalid_client",
                "malformed HTTP Basic client credentials: expected base64 of client_id:client_secret",
            ),
        ),
    ];
    check(&fixture, &cases).await;

    assert_eq!(fixture.calls(), 0, "every refusal was the gateway's own");
}

/// auth-svc's code in `x-oauth-error` decides `error` and the status (RFC 6749 section 5.2), and
/// its message reaches the client.
#[tokio::test]
async fn auth_svc_codes_become_rfc_6749_errors() {
    let cases = [
        (Code::Unauthenticated, "invalid_client", "invalid client credentials", 401),
        (Code::InvalidArgument, "invalid_scope", "scope `admin` is not allowed for this client", 400),
        (Code::InvalidArgument, "invalid_target", "audience `payroll` is not allowed for this client", 400),
        (Code::InvalidArgument, "invalid_request", "at most 32 scopes", 400),
        (Code::PermissionDenied, "unauthorized_client", "permission denied", 400),
    ];
    for (code, oauth_error, message, http) in cases {
        let fixture = start(Behavior::FailOAuth { code, oauth_error, message }, ServingStatus::Serving, 5_000).await;
        let request = fixture.client.post(fixture.url("/token")).basic_auth("svc", Some("wrong"));
        let (status, headers, body) = read(request.form(&[CLIENT_CREDENTIALS]).send().await.unwrap()).await;
        assert_eq!(status.as_u16(), http, "{oauth_error}: {body}");
        assert_eq!(body, json!({"detail": message, "error": oauth_error, "error_description": message}));
        let challenge = headers.get("www-authenticate").map(|value| value.to_str().unwrap());
        assert_eq!(challenge, (http == 401).then_some("Basic realm=\"auth-svc\""), "{oauth_error}");
        assert_eq!(fixture.calls(), 1);
    }
}

/// The password grant ignores client credentials however sent (the tutorial's clients send
/// their own `client_id`), Basic and form at once included.
#[tokio::test]
async fn the_password_grant_ignores_client_credentials() {
    let fixture = fixture().await;
    let form = [("username", "licat"), ("password", "pw"), ("client_id", "app"), ("client_secret", "x")];
    let request = fixture.client.post(fixture.url("/token")).header("authorization", basic("other:y")).form(&form);
    let (status, _, body) = read(request.send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["refresh_token"], "d.e.f");
    let login = fixture.last_request::<LoginRequest>();
    assert_eq!((login.username.as_str(), login.password.as_str()), ("licat", "pw"));
}
