//! Service accounts end to end, through the gateway in front of the real auth-svc: the client
//! credentials grant at `/token` (HTTP Basic and form authentication, scopes and audiences, and
//! auth-svc's refusals as RFC 6749 errors), introspection of users' and clients' tokens,
//! revocation, and the server metadata document.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{
    auth_svc::{TestApp, spawn_app},
    cases::{
        Auth,
        Call::{Form, FormWith},
        Message::OAuth,
        check,
    },
    header, is_jwt, read,
};

/// The service that gets tokens, and the one that checks them.
const BILLING: &str = "billing-svc";
const ORDERS: &str = "orders-svc";
const ORDERS_API: &str = "https://orders.example.com";

/// An app with two service accounts: `billing-svc` (may ask for the `orders:*` scopes and the
/// orders API as audience) and `orders-svc` (may introspect); their secrets.
async fn app_with_clients() -> (TestApp, String, String) {
    let app = spawn_app().await;
    let billing = app.create_client(BILLING, &["orders:read", "orders:write"], &[ORDERS_API]).await;
    let orders = app.create_client(ORDERS, &["introspect"], &[]).await;
    (app, billing, orders)
}

/// The client credentials grant by HTTP Basic; the 200 body.
async fn client_token(app: &TestApp, id: &str, secret: &str, form: &[(&str, &str)]) -> Value {
    let mut fields = vec![("grant_type", "client_credentials")];
    fields.extend_from_slice(form);
    let request = app.client.post(app.url("/token")).basic_auth(id, Some(secret)).form(&fields);
    let (status, headers, body) = read(request.send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(header(&headers, "cache-control"), "no-store");
    body
}

/// Introspects `token` as `orders-svc`; the 200 body.
async fn introspect(app: &TestApp, orders_secret: &str, token: &str) -> Value {
    let request = app.client.post(app.url("/oauth2/introspect")).basic_auth(ORDERS, Some(orders_secret));
    let (status, _, body) = read(request.form(&[("token", token)]).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

#[tokio::test]
async fn a_service_gets_a_token_and_another_introspects_it() {
    let (app, billing, orders) = app_with_clients().await;
    let body = client_token(&app, BILLING, &billing, &[("scope", "orders:read"), ("resource", ORDERS_API)]).await;
    let keys: Vec<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["access_token", "expires_in", "scope", "token_type"], "no refresh token: {body}");
    assert_eq!(
        (&body["token_type"], &body["expires_in"], &body["scope"]),
        (&json!("bearer"), &json!(900), &json!("orders:read"))
    );
    let token = body["access_token"].as_str().unwrap();
    assert!(is_jwt(token));

    let answer = introspect(&app, &orders, token).await;
    let (iat, exp, jti) = (answer["iat"].as_i64().unwrap(), answer["exp"].as_i64().unwrap(), answer["jti"].clone());
    assert_eq!(exp - iat, 900);
    // A client's token has a `sid` of its own (auth-svc's token id); no `username`, no `userId`.
    let sid = answer["sid"].clone();
    assert!(sid.as_str().is_some_and(|sid| !sid.is_empty()), "{answer}");
    assert_eq!(
        answer,
        json!({"active": true, "scope": "orders:read", "client_id": BILLING, "token_type": "Bearer", "exp": exp,
            "iat": iat, "sub": BILLING, "aud": ORDERS_API, "iss": "auth-svc", "jti": jti, "role": "service",
            "sid": sid})
    );

    // Form authentication, and no scope asked: every scope the client may ask for, no `aud`.
    let form = [("grant_type", "client_credentials"), ("client_id", BILLING), ("client_secret", billing.as_str())];
    let (status, _, body) = read(app.client.post(app.url("/token")).form(&form).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], "orders:read orders:write");
    let answer = introspect(&app, &orders, body["access_token"].as_str().unwrap()).await;
    assert!(answer.get("aud").is_none(), "{answer}");
}

/// auth-svc's refusals, as the gateway answers them.
#[tokio::test]
async fn refusals_of_the_client_credentials_grant() {
    let (app, billing, _) = app_with_clients().await;
    let grant = ("grant_type", "client_credentials");
    let failed = "client authentication failed";
    let cases = [
        (FormWith("/token", Auth::Basic(BILLING, "wrong"), &[grant]), 401, OAuth("invalid_client", failed)),
        (FormWith("/token", Auth::Basic("nobody", "x"), &[grant]), 401, OAuth("invalid_client", failed)),
        (Form("/token", &[grant, ("client_id", BILLING)]), 401, OAuth("invalid_client", failed)),
        (
            FormWith("/token", Auth::Basic(BILLING, &billing), &[grant, ("scope", "introspect")]),
            400,
            OAuth("invalid_scope", "not granted to this client: introspect"),
        ),
        (
            FormWith("/token", Auth::Basic(BILLING, &billing), &[grant, ("audience", "https://payroll.example.com")]),
            400,
            OAuth("invalid_target", "not granted to this client: https://payroll.example.com"),
        ),
    ];
    check(&app, &cases).await;
}

#[tokio::test]
async fn introspection_of_users_tokens_and_of_what_is_not_active() {
    let (app, billing, orders) = app_with_clients().await;
    app.register("licat", "licat-password").await;
    let (access, refresh) = app.login("licat", "licat-password").await;
    let answer = introspect(&app, &orders, &access).await;
    assert_eq!(
        (&answer["active"], &answer["username"], &answer["userId"], &answer["sub"], &answer["role"]),
        (&json!(true), &json!("licat"), &json!(1), &json!("1"), &json!("user"))
    );
    assert!(answer["sid"].as_str().is_some_and(|sid| sid.len() == 36), "{answer}");
    assert!(answer.get("client_id").is_none() && answer.get("scope").is_none(), "{answer}");

    for inactive in [refresh.as_str(), "garbage", ""] {
        assert_eq!(introspect(&app, &orders, inactive).await, json!({"active": false}), "{inactive:?}");
    }

    // A client without the `introspect` scope, and one that does not authenticate.
    let cases = [
        (
            FormWith("/oauth2/introspect", Auth::Basic(BILLING, &billing), &[("token", access.as_str())]),
            403,
            OAuth("unauthorized_client", "this client may not introspect tokens: it lacks the `introspect` scope"),
        ),
        (
            FormWith("/oauth2/introspect", Auth::Basic(ORDERS, "wrong"), &[("token", access.as_str())]),
            401,
            OAuth("invalid_client", "client authentication failed"),
        ),
    ];
    check(&app, &cases).await;
}

#[tokio::test]
async fn revocation_ends_a_session_and_a_client_token() {
    let (app, billing, orders) = app_with_clients().await;
    app.register("licat", "licat-password").await;
    let (access, refresh) = app.login("licat", "licat-password").await;

    // A refresh token, with no client authentication: its session ends, its access token too.
    let form = [("token", refresh.as_str()), ("token_type_hint", "refresh_token")];
    let response = app.client.post(app.url("/oauth2/revoke")).form(&form).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.bytes().await.unwrap().is_empty());
    let refreshed = app
        .client
        .post(app.url("/token"))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", refresh.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(refreshed.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(introspect(&app, &orders, &access).await, json!({"active": false}));

    // A client's own token, revoked by the client: refused from then on.
    let token = client_token(&app, BILLING, &billing, &[]).await["access_token"].as_str().unwrap().to_owned();
    let response = app
        .client
        .post(app.url("/oauth2/revoke"))
        .basic_auth(BILLING, Some(&billing))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(introspect(&app, &orders, &token).await, json!({"active": false}));

    // Unknown tokens answer 200 too; client credentials that fail do not.
    let unknown = app.client.post(app.url("/oauth2/revoke")).form(&[("token", "not.a.token")]).send().await.unwrap();
    assert_eq!(unknown.status(), StatusCode::OK);
    let cases = [(
        FormWith("/oauth2/revoke", Auth::Basic(BILLING, "wrong"), &[("token", "not.a.token")]),
        401,
        OAuth("invalid_client", "client authentication failed"),
    )];
    check(&app, &cases).await;
}

#[tokio::test]
async fn the_metadata_document_describes_this_server() {
    let app = spawn_app().await;
    let (status, headers, body) =
        read(app.client.get(app.url("/.well-known/oauth-authorization-server")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(header(&headers, "cache-control"), "public, max-age=60");
    // The test auth-svc's issuer is `auth-svc`, no URL: the endpoints are named by the Host.
    let base = &app.base;
    assert_eq!(
        body,
        json!({
            "issuer": "auth-svc",
            "token_endpoint": format!("{base}/token"),
            "introspection_endpoint": format!("{base}/oauth2/introspect"),
            "revocation_endpoint": format!("{base}/oauth2/revoke"),
            "jwks_uri": format!("{base}/.well-known/jwks.json"),
            "scopes_supported": ["introspect", "orders:read", "orders:write"],
            "response_types_supported": [],
            "grant_types_supported": ["password", "refresh_token", "client_credentials",
                "urn:auth-svc:params:oauth:grant-type:mfa-otp",
                "urn:auth-svc:params:oauth:grant-type:mfa-recovery-code"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "access_token_signing_alg_values_supported": ["HS256"],
        })
    );
    // Each endpoint it names answers.
    let jwks = app.client.get(body["jwks_uri"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(jwks.status(), StatusCode::OK);
}
