//! The second factor's routes (issue 19) against the scripted auth-svc: a login that answers a
//! challenge (go-zero's `{"mfaChallenge"}`, `/token`'s 403 `mfa_required`), the second step
//! (`/user/mfa/verify`, `/token`'s two MFA grants), the caller's factor under `/user/mfa…` and
//! the operators' reset: the request message each sends, the exact body it answers, the statuses
//! of the calls' failures (FAILED_PRECONDITION among them), and the 400/422 of a body that does
//! not fit, which never reaches auth-svc.

use auth_api::user::v1::{
    BeginTotpEnrolmentRequest, ConfirmTotpEnrolmentRequest, DisableTotpRequest, GetMfaStatusRequest, LoginRequest,
    RegenerateRecoveryCodesRequest, ResetMfaRequest, VerifyMfaRequest,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tonic::Code;
use tonic_health::ServingStatus;

use crate::support::{
    cases::{
        Auth::{self, Bearer},
        Call::{self, Form, Json, Raw, Send},
        Case,
        Message::{Contains, Is, OAuth},
        check,
    },
    header, read,
    scripted_upstream::{Behavior, Fixture, start},
};

const TOKEN: &str = "acc.ess.token";
const MFA_OTP: &str = "urn:auth-svc:params:oauth:grant-type:mfa-otp";
const MFA_RECOVERY_CODE: &str = "urn:auth-svc:params:oauth:grant-type:mfa-recovery-code";

async fn scripted() -> Fixture {
    start(Behavior::Answer, ServingStatus::Serving, 5_000).await
}

async fn failing(code: Code, message: &'static str) -> Fixture {
    start(Behavior::Fail { code, message, retry_after: Some("17") }, ServingStatus::Serving, 5_000).await
}

fn bearer() -> Auth<'static> {
    Bearer(TOKEN)
}

/// Sends `method path` with the bearer token (and `body` as JSON if given): status, headers, body.
async fn send(
    fixture: &Fixture,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut request = fixture.client.request(method, fixture.url(path)).bearer_auth(TOKEN);
    if let Some(body) = body {
        request = request.json(&body);
    }
    read(request.send().await.unwrap()).await
}

async fn post_form(fixture: &Fixture, fields: &[(&str, &str)]) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    read(fixture.client.post(fixture.url("/token")).form(fields).send().await.unwrap()).await
}

fn assert_bearer_forwarded(fixture: &Fixture) {
    assert_eq!(fixture.last_metadata().get("authorization").unwrap(), format!("Bearer {TOKEN}").as_str());
}

#[tokio::test]
async fn a_login_with_a_second_factor_answers_the_challenge_alone() {
    let fixture = scripted().await;
    fixture.upstream.answer_login_with_challenge();
    let response =
        fixture.client.post(fixture.url("/user/login")).json(&json!({"username": "alice", "password": "pw"}));
    let (status, headers, body) = read(response.send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"mfaChallenge": {"challenge": "mfa.chal.lenge", "expiresIn": 300, "methods": ["totp", "recovery_code"]}})
    );
    assert_eq!(header(&headers, "cache-control"), "no-store");
    let sent: LoginRequest = fixture.last_request();
    assert_eq!((sent.username.as_str(), sent.password.as_str()), ("alice", "pw"));
}

#[tokio::test]
async fn the_password_grant_with_a_second_factor_is_403_mfa_required() {
    let fixture = scripted().await;
    fixture.upstream.answer_login_with_challenge();
    let (status, headers, body) = post_form(&fixture, &[("username", "alice"), ("password", "pw")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(
        body,
        json!({
            "detail": "Multi-factor authentication required",
            "error": "mfa_required",
            "error_description": "Multi-factor authentication required",
            "mfa_token": "mfa.chal.lenge",
            "expires_in": 300,
            "mfa_methods": ["totp", "recovery_code"]
        })
    );
    assert_eq!(header(&headers, "cache-control"), "no-store");
    assert!(headers.get("www-authenticate").is_none(), "not a 401");
}

/// Without a challenge the login answers are the contract's, unchanged.
#[tokio::test]
async fn a_login_without_a_second_factor_is_unchanged() {
    let fixture = scripted().await;
    let response = fixture.client.post(fixture.url("/user/login")).json(&json!({"username": "a", "password": "b"}));
    let (status, _, body) = read(response.send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"accessToken": "a.b.c", "refreshToken": "d.e.f", "expiresIn": 60}));
    let (status, _, body) = post_form(&fixture, &[("username", "a"), ("password", "b")]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"access_token": "a.b.c", "token_type": "bearer", "expires_in": 60, "refresh_token": "d.e.f"})
    );
}

#[tokio::test]
async fn the_second_step_sends_the_challenge_and_one_factor() {
    let fixture = scripted().await;
    let pair = json!({"accessToken": "a.b.c", "refreshToken": "d.e.f", "expiresIn": 60});
    for (body, code, recovery_code) in [
        (json!({"challenge": "ch", "code": "123456"}), "123456", ""),
        (json!({"challenge": "ch", "recoveryCode": "aaaaa-bbbbb"}), "", "aaaaa-bbbbb"),
    ] {
        let (status, headers, answer) =
            read(fixture.client.post(fixture.url("/user/mfa/verify")).json(&body).send().await.unwrap()).await;
        assert_eq!((status, answer), (StatusCode::OK, pair.clone()), "{body}");
        assert_eq!(header(&headers, "cache-control"), "no-store");
        let sent: VerifyMfaRequest = fixture.last_request();
        assert_eq!(
            (sent.challenge.as_str(), sent.code.as_str(), sent.recovery_code.as_str()),
            ("ch", code, recovery_code)
        );
        assert!(fixture.last_metadata().get("authorization").is_none(), "a public call");
    }
}

#[tokio::test]
async fn the_token_endpoints_mfa_grants_answer_the_pair() {
    let fixture = scripted().await;
    let pair = json!({"access_token": "a.b.c", "token_type": "bearer", "expires_in": 60, "refresh_token": "d.e.f"});
    for (fields, code, recovery_code) in [
        (&[("grant_type", MFA_OTP), ("mfa_token", "ch"), ("otp", "123456")][..], "123456", ""),
        (
            &[("grant_type", MFA_RECOVERY_CODE), ("mfa_token", "ch"), ("recovery_code", "aaaaa-bbbbb")],
            "",
            "aaaaa-bbbbb",
        ),
        // The other factor's field is ignored, as other fields are.
        (&[("grant_type", MFA_OTP), ("mfa_token", "ch"), ("otp", "1"), ("recovery_code", "x")], "1", ""),
    ] {
        let (status, headers, body) = post_form(&fixture, fields).await;
        assert_eq!((status, body), (StatusCode::OK, pair.clone()), "{fields:?}");
        assert_eq!(header(&headers, "cache-control"), "no-store");
        let sent: VerifyMfaRequest = fixture.last_request();
        assert_eq!(
            (sent.challenge.as_str(), sent.code.as_str(), sent.recovery_code.as_str()),
            ("ch", code, recovery_code)
        );
    }
}

/// A wrong code (or a spent challenge) is refused as a wrong password is: 401 `invalid_grant`
/// on `/token`, the go-zero 401 on `/user/mfa/verify`, with auth-svc's words.
#[tokio::test]
async fn a_wrong_code_is_401() {
    for message in ["invalid code", "invalid or expired mfa challenge"] {
        let fixture = failing(Code::Unauthenticated, message).await;
        let otp = [("grant_type", MFA_OTP), ("mfa_token", "ch"), ("otp", "000000")];
        let recovery = [("grant_type", MFA_RECOVERY_CODE), ("mfa_token", "ch"), ("recovery_code", "x")];
        let cases = [
            (Form("/token", &otp), 401, OAuth("invalid_grant", message)),
            (Form("/token", &recovery), 401, OAuth("invalid_grant", message)),
            (Json("/user/mfa/verify", json!({"challenge": "ch", "code": "000000"})), 401, Is(message)),
        ];
        check(&fixture, &cases).await;
        assert_eq!(fixture.calls(), 3);
    }
}

#[tokio::test]
async fn second_steps_that_miss_a_field_are_refused_without_a_call() {
    let fixture = scripted().await;
    let one_factor = "send exactly one of `code` and `recoveryCode`";
    let cases = [
        (
            Form("/token", &[("grant_type", MFA_OTP), ("otp", "1")]),
            422,
            OAuth("invalid_request", "missing field `mfa_token`"),
        ),
        (
            Form("/token", &[("grant_type", MFA_OTP), ("mfa_token", "ch")]),
            422,
            OAuth("invalid_request", "missing field `otp`"),
        ),
        (
            Form("/token", &[("grant_type", MFA_OTP), ("mfa_token", "ch"), ("recovery_code", "x")]),
            422,
            OAuth("invalid_request", "missing field `otp`"),
        ),
        (
            Form("/token", &[("grant_type", MFA_RECOVERY_CODE), ("mfa_token", "ch"), ("otp", "1")]),
            422,
            OAuth("invalid_request", "missing field `recovery_code`"),
        ),
        (
            Form("/token", &[("grant_type", MFA_OTP), ("mfa_token", "a"), ("mfa_token", "b"), ("otp", "1")]),
            422,
            OAuth("invalid_request", "duplicate field `mfa_token`"),
        ),
        (Json("/user/mfa/verify", json!({"code": "1"})), 400, Contains("missing field `challenge`")),
        (Json("/user/mfa/verify", json!({"challenge": "ch"})), 400, Is(one_factor)),
        (Json("/user/mfa/verify", json!({"challenge": "ch", "code": "1", "recoveryCode": "x"})), 400, Is(one_factor)),
        (Json("/user/mfa/verify", json!({"challenge": "ch", "code": 123456})), 400, Contains("code")),
        (Raw("/user/mfa/verify", Some("application/json"), "{\"challenge\":"), 400, Contains("Failed to parse")),
        (
            Raw("/user/mfa/verify", None, "challenge=ch&code=1"),
            400,
            Is("Expected request with `Content-Type: application/json`"),
        ),
    ];
    check(&fixture, &cases).await;
    assert_eq!(fixture.calls(), 0);
}

#[tokio::test]
async fn the_status_route_answers_the_callers_factor() {
    let fixture = scripted().await;
    let (status, _, body) = send(&fixture, Method::GET, "/user/mfa", None).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"totpEnabled": true, "recoveryCodesLeft": 9})));
    let _: GetMfaStatusRequest = fixture.last_request();
    assert_bearer_forwarded(&fixture);
}

#[tokio::test]
async fn an_enrolment_begins_with_the_password() {
    let fixture = scripted().await;
    let enrolment = json!({
        "secret": "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP",
        "otpauthUri": "otpauth://totp/auth-svc:fake?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=auth-svc",
        "qrSvg": "<svg xmlns=\"http://www.w3.org/2000/svg\"></svg>"
    });
    let body = Some(json!({"password": "pw"}));
    let (status, headers, answer) = send(&fixture, Method::POST, "/user/mfa/totp", body).await;
    assert_eq!((status, answer), (StatusCode::OK, enrolment.clone()));
    assert_eq!(header(&headers, "cache-control"), "no-store", "the secret is not cached");
    let sent: BeginTotpEnrolmentRequest = fixture.last_request();
    assert_eq!(sent.password, "pw");
    assert_bearer_forwarded(&fixture);
    for body in [None, Some(json!({}))] {
        let (status, _, answer) = send(&fixture, Method::POST, "/user/mfa/totp", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body:?}: {answer}");
    }
}

#[tokio::test]
async fn confirming_and_regenerating_send_the_code_and_answer_the_recovery_codes() {
    let fixture = scripted().await;
    let codes = json!({"recoveryCodes": ["aaaaa-bbbbb", "ccccc-ddddd"]});
    let (status, headers, body) =
        send(&fixture, Method::POST, "/user/mfa/totp/confirm", Some(json!({"code": "123456"}))).await;
    assert_eq!((status, body), (StatusCode::OK, codes.clone()));
    assert_eq!(header(&headers, "cache-control"), "no-store");
    assert_eq!(fixture.last_request::<ConfirmTotpEnrolmentRequest>().code, "123456");
    assert_bearer_forwarded(&fixture);

    let (status, headers, body) =
        send(&fixture, Method::POST, "/user/mfa/recovery-codes", Some(json!({"code": "654321"}))).await;
    assert_eq!((status, body), (StatusCode::OK, codes));
    assert_eq!(header(&headers, "cache-control"), "no-store");
    assert_eq!(fixture.last_request::<RegenerateRecoveryCodesRequest>().code, "654321");
    assert_bearer_forwarded(&fixture);
}

#[tokio::test]
async fn removing_the_factor_sends_the_password_and_one_factor() {
    let fixture = scripted().await;
    for (body, code, recovery_code) in [
        (json!({"password": "pw", "code": "123456"}), "123456", ""),
        (json!({"password": "pw", "recoveryCode": "aaaaa-bbbbb"}), "", "aaaaa-bbbbb"),
    ] {
        let (status, _, answer) = send(&fixture, Method::DELETE, "/user/mfa/totp", Some(body.clone())).await;
        assert_eq!((status, answer), (StatusCode::OK, json!({})), "{body}");
        let sent: DisableTotpRequest = fixture.last_request();
        assert_eq!(
            (sent.password.as_str(), sent.code.as_str(), sent.recovery_code.as_str()),
            ("pw", code, recovery_code)
        );
        assert_bearer_forwarded(&fixture);
    }
}

#[tokio::test]
async fn an_operator_resets_an_accounts_factor_by_its_id() {
    let fixture = scripted().await;
    let (status, _, body) = send(&fixture, Method::POST, "/admin/users/5/reset-mfa", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"id": 5, "username": "user5", "role": "user", "createdAt": "2026-12-01T13:45:00Z", "disabled": false,
            "lastLoginAt": "2026-12-01T13:46:00.000500Z"})
    );
    assert_eq!(fixture.last_request::<ResetMfaRequest>().id, 5);
    assert_bearer_forwarded(&fixture);
}

/// Every bearer route of the second factor, with a body that fits it.
fn bearer_routes(auth: fn() -> Auth<'static>) -> Vec<Call<'static>> {
    vec![
        Send(Method::GET, "/user/mfa", auth(), None),
        Send(Method::POST, "/user/mfa/totp", auth(), Some(json!({"password": "pw"}))),
        Send(Method::POST, "/user/mfa/totp/confirm", auth(), Some(json!({"code": "1"}))),
        Send(Method::DELETE, "/user/mfa/totp", auth(), Some(json!({"password": "pw", "code": "1"}))),
        Send(Method::POST, "/user/mfa/recovery-codes", auth(), Some(json!({"code": "1"}))),
        Send(Method::POST, "/admin/users/5/reset-mfa", auth(), None),
    ]
}

#[tokio::test]
async fn without_a_token_every_bearer_route_is_401() {
    let fixture = scripted().await;
    let cases: Vec<Case> = bearer_routes(|| Auth::None)
        .into_iter()
        .map(|call| (call, 401, Is("missing authorization: Bearer token")))
        .collect();
    check(&fixture, &cases).await;
}

#[tokio::test]
async fn bad_bodies_are_400_without_a_call() {
    let fixture = scripted().await;
    let one_factor = "send exactly one of `code` and `recoveryCode`";
    let json_only = "Expected request with `Content-Type: application/json`";
    let cases = [
        (
            Send(Method::POST, "/user/mfa/totp/confirm", bearer(), Some(json!({}))),
            400,
            Contains("missing field `code`"),
        ),
        (Send(Method::POST, "/user/mfa/totp/confirm", bearer(), None), 400, Is(json_only)),
        (Send(Method::POST, "/user/mfa/recovery-codes", bearer(), Some(json!({"code": 1}))), 400, Contains("code")),
        (Send(Method::POST, "/user/mfa/recovery-codes", bearer(), None), 400, Is(json_only)),
        (
            Send(Method::DELETE, "/user/mfa/totp", bearer(), Some(json!({"code": "1"}))),
            400,
            Contains("missing field `password`"),
        ),
        (Send(Method::DELETE, "/user/mfa/totp", bearer(), Some(json!({"password": "pw"}))), 400, Is(one_factor)),
        (
            Send(
                Method::DELETE,
                "/user/mfa/totp",
                bearer(),
                Some(json!({"password": "pw", "code": "1", "recoveryCode": "x"})),
            ),
            400,
            Is(one_factor),
        ),
        (Send(Method::POST, "/user/mfa/totp", bearer(), Some(json!("x"))), 400, Contains("invalid type")),
        (Send(Method::POST, "/user/mfa/totp", bearer(), Some(json!([]))), 400, Contains("expected struct")),
        (
            Send(Method::POST, "/admin/users/x/reset-mfa", bearer(), None),
            400,
            Is("invalid `id` in the path: invalid digit found in string"),
        ),
    ];
    check(&fixture, &cases).await;
    // A body that is not JSON, on the route whose body is optional.
    let response = fixture.client.post(fixture.url("/user/mfa/totp")).bearer_auth(TOKEN).body("x=1").send().await;
    let (status, _, body) = read(response.unwrap()).await;
    assert_eq!((status, body), (StatusCode::BAD_REQUEST, json!({"code": 400, "msg": json_only})));
    assert_eq!(fixture.calls(), 0);
}

/// An auth-svc without `mfa.keys` answers FAILED_PRECONDITION: 400 with its words in every
/// dialect (not the 500 of an unmapped status).
#[tokio::test]
async fn a_server_without_the_second_factor_is_400_everywhere() {
    let message = "second factor not configured on this server";
    let fixture = failing(Code::FailedPrecondition, message).await;
    let mut cases: Vec<Case> = bearer_routes(bearer).into_iter().map(|call| (call, 400, Is(message))).collect();
    cases.push((Json("/user/mfa/verify", json!({"challenge": "ch", "code": "1"})), 400, Is(message)));
    let otp = [("grant_type", MFA_OTP), ("mfa_token", "ch"), ("otp", "1")];
    cases.push((Form("/token", &otp), 400, OAuth("invalid_request", message)));
    check(&fixture, &cases).await;
    assert_eq!(fixture.calls(), 8);
}

#[tokio::test]
async fn the_calls_failures_answer_their_go_zero_statuses() {
    // NOT_FOUND: the route's own words, not the bare "not found" of an unknown path.
    let fixture = failing(Code::NotFound, "").await;
    let cases = [
        (
            Send(Method::POST, "/user/mfa/totp/confirm", bearer(), Some(json!({"code": "1"}))),
            404,
            Is("no enrolment begun"),
        ),
        (
            Send(Method::DELETE, "/user/mfa/totp", bearer(), Some(json!({"password": "pw", "code": "1"}))),
            404,
            Is("no second factor"),
        ),
        (
            Send(Method::POST, "/user/mfa/recovery-codes", bearer(), Some(json!({"code": "1"}))),
            404,
            Is("no second factor"),
        ),
        (Send(Method::POST, "/admin/users/5/reset-mfa", bearer(), None), 404, Is("user not found")),
    ];
    check(&fixture, &cases).await;

    let fixture = failing(Code::AlreadyExists, "second factor already enabled").await;
    let cases = [
        (
            Send(Method::POST, "/user/mfa/totp", bearer(), Some(json!({"password": "pw"}))),
            409,
            Is("second factor already enabled"),
        ),
        (
            Send(Method::POST, "/user/mfa/totp/confirm", bearer(), Some(json!({"code": "1"}))),
            409,
            Is("second factor already enabled"),
        ),
    ];
    check(&fixture, &cases).await;

    let fixture = failing(Code::PermissionDenied, "not an admin").await;
    let cases = [(Send(Method::POST, "/admin/users/5/reset-mfa", bearer(), None), 403, Is("permission denied"))];
    check(&fixture, &cases).await;

    // Throttled: 429 with auth-svc's Retry-After, on the second steps too.
    let fixture = failing(Code::ResourceExhausted, "too many attempts").await;
    for response in [
        fixture.client.post(fixture.url("/user/mfa/verify")).json(&json!({"challenge": "ch", "code": "1"})),
        fixture.client.post(fixture.url("/token")).form(&[("grant_type", MFA_OTP), ("mfa_token", "ch"), ("otp", "1")]),
        fixture.client.post(fixture.url("/user/mfa/totp/confirm")).bearer_auth(TOKEN).json(&json!({"code": "1"})),
    ] {
        let (status, headers, body) = read(response.send().await.unwrap()).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
        assert_eq!(header(&headers, "retry-after"), "17");
    }
}
