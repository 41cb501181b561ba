//! `/oauth2/introspect`, `/oauth2/revoke` and `/.well-known/oauth-authorization-server`
//! against the scripted auth-svc: what travels to IntrospectToken, RevokeToken and
//! GetServerMetadata, the answers built from theirs (an inactive token is `{"active": false}`
//! and nothing else), the gateway's own refusals, and errors as `{"error","error_description"}`.

use auth_api::user::v1::{
    AccessTokenClaims, ClientAuthentication, GetServerMetadataResponse, IntrospectTokenRequest, RevokeTokenRequest,
    ValidateTokenResponse,
};
use reqwest::StatusCode;
use serde_json::json;
use tonic::Code;
use tonic_health::ServingStatus;

use crate::support::{
    cases::{
        Auth,
        Call::{Form, FormWith, Get, Json, Multipart},
        Message::OAuth,
        check,
    },
    header, read,
    scripted_upstream::{Behavior, Fixture, sample_server_metadata, start, start_with},
};

const INTROSPECT: &str = "/oauth2/introspect";
const REVOKE: &str = "/oauth2/revoke";
const METADATA: &str = "/.well-known/oauth-authorization-server";

async fn fixture() -> Fixture {
    start(Behavior::Answer, ServingStatus::Serving, 5_000).await
}

fn client(id: &str, secret: &str) -> Option<ClientAuthentication> {
    Some(ClientAuthentication { client_id: id.into(), client_secret: secret.into() })
}

/// Introspects `token` as client `svc` (HTTP Basic); status, headers and body.
async fn introspect(
    fixture: &Fixture,
    form: &[(&str, &str)],
) -> (StatusCode, reqwest::header::HeaderMap, serde_json::Value) {
    let request = fixture.client.post(fixture.url(INTROSPECT)).basic_auth("svc", Some("s3cr3t")).form(form);
    read(request.send().await.unwrap()).await
}

fn user_claims() -> AccessTokenClaims {
    AccessTokenClaims {
        iss: "auth-svc".into(),
        sub: "7".into(),
        user_id: 7,
        role: "user".into(),
        iat: 1_796_132_700,
        exp: 1_796_133_600,
        jti: "jti-1".into(),
        sid: "0193a6a4-7c1e-7d52-9f3a-2b8c4d5e6f70".into(),
        kid: "hs-1".into(),
        username: "licat".into(),
        ..Default::default()
    }
}

fn client_claims(audiences: &[&str]) -> AccessTokenClaims {
    AccessTokenClaims {
        iss: "auth-svc".into(),
        sub: "billing-svc".into(),
        role: "service".into(),
        iat: 1_796_132_700,
        exp: 1_796_133_600,
        jti: "jti-2".into(),
        kid: "hs-1".into(),
        client_id: "billing-svc".into(),
        scopes: vec!["orders:read".into(), "orders:write".into()],
        audiences: audiences.iter().map(|audience| (*audience).to_owned()).collect(),
        ..Default::default()
    }
}

#[tokio::test]
async fn an_inactive_token_is_active_false_and_nothing_else() {
    let fixture = fixture().await;
    let (status, headers, body) =
        introspect(&fixture, &[("token", "d.e.f"), ("token_type_hint", "refresh_token")]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"active": false}));
    assert_eq!(header(&headers, "cache-control"), "no-store");
    assert_eq!(
        fixture.last_request::<IntrospectTokenRequest>(),
        IntrospectTokenRequest {
            client: client("svc", "s3cr3t"),
            token: "d.e.f".into(),
            token_type_hint: "refresh_token".into()
        }
    );
}

#[tokio::test]
async fn an_active_user_token_shows_its_claims() {
    let fixture = fixture().await;
    fixture.upstream.set_introspection(ValidateTokenResponse { active: true, claims: Some(user_claims()) });
    // An unknown hint is ignored (RFC 7662 section 2.1), not refused.
    let (status, _, body) = introspect(&fixture, &[("token", "a.b.c"), ("token_type_hint", "id_token")]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"active": true, "username": "licat", "token_type": "Bearer", "exp": 1_796_133_600,
            "iat": 1_796_132_700, "sub": "7", "iss": "auth-svc", "jti": "jti-1", "role": "user",
            "sid": "0193a6a4-7c1e-7d52-9f3a-2b8c4d5e6f70", "userId": 7})
    );
    assert_eq!(fixture.last_request::<IntrospectTokenRequest>().token_type_hint, "");
}

#[tokio::test]
async fn an_active_client_token_shows_its_client_scopes_and_audiences() {
    let fixture = fixture().await;
    for (audiences, aud) in [
        (&["https://orders.example.com"][..], Some(json!("https://orders.example.com"))),
        (&["orders", "invoices"], Some(json!(["orders", "invoices"]))),
        (&[], None),
    ] {
        fixture
            .upstream
            .set_introspection(ValidateTokenResponse { active: true, claims: Some(client_claims(audiences)) });
        let form = [("token", "c.d.e"), ("client_id", "svc"), ("client_secret", "s3cr3t")];
        let response = fixture.client.post(fixture.url(INTROSPECT)).form(&form).send().await.unwrap();
        let (status, _, body) = read(response).await;
        assert_eq!(status, StatusCode::OK);
        let mut expected = json!({"active": true, "scope": "orders:read orders:write", "client_id": "billing-svc",
            "token_type": "Bearer", "exp": 1_796_133_600, "iat": 1_796_132_700, "sub": "billing-svc",
            "iss": "auth-svc", "jti": "jti-2", "role": "service"});
        if let Some(aud) = aud {
            expected["aud"] = aud;
        }
        assert_eq!(body, expected, "{audiences:?}");
        assert_eq!(fixture.last_request::<IntrospectTokenRequest>().client, client("svc", "s3cr3t"));
    }
}

/// The refusals the gateway makes itself, as `{"error","error_description"}`.
#[tokio::test]
async fn introspection_and_revocation_refusals_before_auth_svc() {
    let fixture = fixture().await;
    let not_a_form = "expected a form: application/x-www-form-urlencoded or multipart/form-data";
    let cases = [
        (
            Form(INTROSPECT, &[("client_id", "svc"), ("client_secret", "x")]),
            400,
            OAuth("invalid_request", "missing field `token`"),
        ),
        (Form(INTROSPECT, &[("token", "a.b.c")]), 401, OAuth("invalid_client", "client authentication required")),
        (
            Form(INTROSPECT, &[("token", "a"), ("token", "b"), ("client_id", "svc")]),
            400,
            OAuth("invalid_request", "duplicate field `token`"),
        ),
        (
            Multipart(INTROSPECT, &[("token", "a"), ("client_secret", "x")]),
            400,
            OAuth("invalid_request", "client_secret without client_id"),
        ),
        (Json(INTROSPECT, json!({"token": "a"})), 400, OAuth("invalid_request", not_a_form)),
        (
            FormWith(INTROSPECT, Auth::Basic("svc", "x"), &[("token", "a"), ("client_secret", "x")]),
            400,
            OAuth(
                "invalid_request",
                "client authenticated both by HTTP Basic and by client_secret in the form; use one",
            ),
        ),
        (
            FormWith(INTROSPECT, Auth::Raw("Basic c3Zj"), &[("token", "a")]),
            401,
            OAuth(
                "invalid_client",
                "malformed HTTP Basic client credentials: expected base64 of client_id:client_secret",
            ),
        ),
        // A bearer token is no client authentication.
        (
            FormWith(INTROSPECT, Auth::Bearer("a.b.c"), &[("token", "a")]),
            401,
            OAuth("invalid_client", "client authentication required"),
        ),
        (Form(REVOKE, &[("token_type_hint", "access_token")]), 400, OAuth("invalid_request", "missing field `token`")),
        (Json(REVOKE, json!({"token": "a"})), 400, OAuth("invalid_request", not_a_form)),
        // Middleware answers speak the dialect too.
        (Get(INTROSPECT, Auth::None), 405, OAuth("invalid_request", "Method Not Allowed")),
        (Get("/oauth2/nothing", Auth::None), 404, OAuth("invalid_request", "Not Found")),
    ];
    check(&fixture, &cases).await;

    assert_eq!(fixture.calls(), 0, "every refusal was the gateway's own");
}

#[tokio::test]
async fn auth_svc_refusals_of_introspection() {
    let cases = [
        (Code::Unauthenticated, "invalid_client", "invalid client credentials", 401, "invalid client credentials"),
        (
            Code::PermissionDenied,
            "unauthorized_client",
            "missing scope",
            403,
            "this client may not introspect tokens: it lacks the `introspect` scope",
        ),
    ];
    for (code, oauth_error, message, http, description) in cases {
        let fixture = start(Behavior::FailOAuth { code, oauth_error, message }, ServingStatus::Serving, 5_000).await;
        let (status, headers, body) = introspect(&fixture, &[("token", "a.b.c")]).await;
        assert_eq!(status.as_u16(), http, "{body}");
        assert_eq!(body, json!({"error": oauth_error, "error_description": description}));
        if http == 401 {
            assert_eq!(header(&headers, "www-authenticate"), "Basic realm=\"auth-svc\"");
        }
    }
    let unavailable = Behavior::Fail { code: Code::Unavailable, message: "db down", retry_after: None };
    let fixture = start(unavailable, ServingStatus::Serving, 5_000).await;
    let (status, _, body) = introspect(&fixture, &[("token", "a.b.c")]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        body,
        json!({"error": "temporarily_unavailable", "error_description": "auth service unavailable, retry later"})
    );
}

#[tokio::test]
async fn revocation_answers_200_with_no_body_and_passes_the_client_on_if_any() {
    let fixture = fixture().await;
    let response = fixture.client.post(fixture.url(REVOKE)).form(&[("token", "d.e.f")]).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().get("content-type").is_none());
    assert!(response.bytes().await.unwrap().is_empty());
    assert_eq!(
        fixture.last_request::<RevokeTokenRequest>(),
        RevokeTokenRequest { client: None, token: "d.e.f".into(), token_type_hint: String::new() }
    );

    let request = fixture.client.post(fixture.url(REVOKE)).basic_auth("svc", Some("s3cr3t"));
    let response = request.form(&[("token", "a.b.c"), ("token_type_hint", "access_token")]).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        fixture.last_request::<RevokeTokenRequest>(),
        RevokeTokenRequest {
            client: client("svc", "s3cr3t"),
            token: "a.b.c".into(),
            token_type_hint: "access_token".into()
        }
    );

    // A public client names itself with `client_id` alone (authlib always does): no client
    // authentication goes upstream, so auth-svc does not refuse it as a wrong secret.
    let form = [("token", "g.h.i"), ("client_id", "tutorial-frontend")];
    let response = fixture.client.post(fixture.url(REVOKE)).form(&form).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        fixture.last_request::<RevokeTokenRequest>(),
        RevokeTokenRequest { client: None, token: "g.h.i".into(), token_type_hint: String::new() }
    );
    // With its secret in the form, it is a confidential client again.
    let form = [("token", "g.h.i"), ("client_id", "svc"), ("client_secret", "s3cr3t")];
    fixture.client.post(fixture.url(REVOKE)).form(&form).send().await.unwrap();
    assert_eq!(fixture.last_request::<RevokeTokenRequest>().client, client("svc", "s3cr3t"));

    let behavior = Behavior::FailOAuth {
        code: Code::Unauthenticated,
        oauth_error: "invalid_client",
        message: "invalid client credentials",
    };
    let fixture = start(behavior, ServingStatus::Serving, 5_000).await;
    let request = fixture.client.post(fixture.url(REVOKE)).basic_auth("svc", Some("wrong"));
    let (status, headers, body) = read(request.form(&[("token", "a.b.c")]).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(header(&headers, "www-authenticate"), "Basic realm=\"auth-svc\"");
    assert_eq!(body, json!({"error": "invalid_client", "error_description": "invalid client credentials"}));
}

/// The document of the sample metadata with endpoints under `base`.
fn expected_metadata(issuer: &str, base: &str) -> serde_json::Value {
    json!({
        "issuer": issuer,
        "token_endpoint": format!("{base}/token"),
        "introspection_endpoint": format!("{base}/oauth2/introspect"),
        "revocation_endpoint": format!("{base}/oauth2/revoke"),
        "jwks_uri": format!("{base}/.well-known/jwks.json"),
        "scopes_supported": ["introspect", "orders:read"],
        "response_types_supported": [],
        "grant_types_supported": ["password", "refresh_token", "client_credentials",
            "urn:auth-svc:params:oauth:grant-type:mfa-otp", "urn:auth-svc:params:oauth:grant-type:mfa-recovery-code"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "access_token_signing_alg_values_supported": ["HS256", "EdDSA"],
    })
}

#[tokio::test]
async fn metadata_names_the_endpoints_by_the_host_when_the_issuer_is_no_url() {
    let fixture = fixture().await;
    let (status, headers, body) = read(fixture.client.get(fixture.url(METADATA)).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(header(&headers, "cache-control"), "public, max-age=60");
    assert_eq!(body, expected_metadata("auth-svc", &fixture.base));
    let response = fixture.client.get(fixture.url(METADATA)).header("host", "auth.internal:8080").send().await.unwrap();
    assert_eq!(read(response).await.2, expected_metadata("auth-svc", "http://auth.internal:8080"));
}

#[tokio::test]
async fn metadata_builds_on_public_url_then_on_an_http_issuer() {
    let fixture = start_with(Behavior::Answer, ServingStatus::Serving, None, |config| {
        config.public_url = Some("https://auth.example.com/gw/".into());
    })
    .await;
    fixture.upstream.set_server_metadata(Some(GetServerMetadataResponse {
        issuer: "https://issuer.example.com".into(),
        ..sample_server_metadata()
    }));
    let (_, _, body) = read(fixture.client.get(fixture.url(METADATA)).send().await.unwrap()).await;
    assert_eq!(body, expected_metadata("https://issuer.example.com", "https://auth.example.com/gw"));

    let fixture = fixture_with_issuer("https://issuer.example.com/").await;
    let (_, _, body) = read(fixture.client.get(fixture.url(METADATA)).send().await.unwrap()).await;
    assert_eq!(body, expected_metadata("https://issuer.example.com/", "https://issuer.example.com"));
}

async fn fixture_with_issuer(issuer: &str) -> Fixture {
    let fixture = fixture().await;
    fixture
        .upstream
        .set_server_metadata(Some(GetServerMetadataResponse { issuer: issuer.into(), ..sample_server_metadata() }));
    fixture
}

/// One GetServerMetadata call serves a minute of requests; a failed one is not remembered.
#[tokio::test]
async fn metadata_is_cached_but_failures_are_not() {
    let fixture = fixture().await;
    fixture.upstream.set_server_metadata(None);
    let (status, _, body) = read(fixture.client.get(fixture.url(METADATA)).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body, json!({"detail": "auth service unavailable, retry later"}));

    fixture.upstream.set_server_metadata(Some(sample_server_metadata()));
    let (status, _, body) = read(fixture.client.get(fixture.url(METADATA)).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["issuer"], "auth-svc");
    assert_eq!(fixture.calls(), 2);

    fixture
        .upstream
        .set_server_metadata(Some(GetServerMetadataResponse { issuer: "changed".into(), ..sample_server_metadata() }));
    let (_, _, body) = read(fixture.client.get(fixture.url(METADATA)).send().await.unwrap()).await;
    assert_eq!(body["issuer"], "auth-svc", "served from the cache");
    assert_eq!(fixture.calls(), 2);
}
