//! The second factor end to end (issue 19), against a real auth-svc with `mfa.keys`: enrolment
//! through `/user/mfa/totp`, codes computed from the shown secret as an authenticator app
//! computes them (`support::authenticator`), the two-step login in both dialects
//! (`/user/login` then `/user/mfa/verify`; `/token`'s 403 `mfa_required` then its MFA grants),
//! the replay guard, single-use recovery codes, new recovery codes, removal, the operators'
//! reset, and the 400 of a server without `mfa.keys`.
//!
//! auth-svc accepts a code of one step either side of now, each step at most once and only
//! later than the last accepted: a test that confirms with the code of step `T` logs in with the
//! code of `T + 1` (still inside the window), and has no third code to spend.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{
    auth_svc::{TestApp, spawn_app, spawn_app_with_mfa},
    authenticator::{code_at, current_step},
    header, is_jwt, read,
};

const PASSWORD: &str = "correct horse";
const MFA_OTP: &str = "urn:auth-svc:params:oauth:grant-type:mfa-otp";
const MFA_RECOVERY_CODE: &str = "urn:auth-svc:params:oauth:grant-type:mfa-recovery-code";

/// What enrolling showed: the secret, the recovery codes, and the step of the code that
/// confirmed it (spent: only later steps are accepted from now on).
struct Enrolled {
    secret: String,
    recovery_codes: Vec<String>,
    confirmed_step: u64,
}

async fn send(app: &TestApp, method: Method, path: &str, token: &str, body: Option<Value>) -> (StatusCode, Value) {
    let mut request = app.client.request(method, app.url(path)).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let (status, _, body) = read(request.send().await.unwrap()).await;
    (status, body)
}

/// Registers `username` and logs in (no second factor yet): its access token.
async fn account(app: &TestApp, username: &str) -> String {
    app.register(username, PASSWORD).await;
    app.login(username, PASSWORD).await.0
}

/// Enrols an authenticator app for the bearer of `token` through the REST routes.
async fn enrol(app: &TestApp, token: &str) -> Enrolled {
    let password = Some(json!({"password": PASSWORD}));
    let (status, enrolment) = send(app, Method::POST, "/user/mfa/totp", token, password).await;
    assert_eq!(status, StatusCode::OK, "{enrolment}");
    let keys: Vec<_> = enrolment.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["otpauthUri", "qrSvg", "secret"]);
    let secret = enrolment["secret"].as_str().unwrap().to_owned();
    assert_eq!(secret.len(), 32, "160 bits in unpadded base32: {secret}");
    let uri = enrolment["otpauthUri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/") && uri.contains(&format!("secret={secret}")), "{uri}");
    assert!(enrolment["qrSvg"].as_str().unwrap().contains("<svg"), "{enrolment}");

    let (status, body) = send(app, Method::GET, "/user/mfa", token, None).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"totpEnabled": false, "recoveryCodesLeft": 0})), "begun only");

    let step = current_step();
    let confirm = json!({"code": code_at(&secret, step)});
    let (status, body) = send(app, Method::POST, "/user/mfa/totp/confirm", token, Some(confirm)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let recovery_codes: Vec<String> =
        body["recoveryCodes"].as_array().unwrap().iter().map(|code| code.as_str().unwrap().to_owned()).collect();
    assert_eq!(recovery_codes.len(), 10, "{body}");

    let (status, body) = send(app, Method::GET, "/user/mfa", token, None).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"totpEnabled": true, "recoveryCodesLeft": 10})));
    Enrolled { secret, recovery_codes, confirmed_step: step }
}

/// `/user/login` for an account with a second factor: its challenge, after checking the shape.
async fn challenge(app: &TestApp, username: &str) -> String {
    let response = app.post_json("/user/login", &json!({"username": username, "password": PASSWORD})).await;
    let (status, headers, body) = read(response).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(header(&headers, "cache-control"), "no-store");
    let challenge = body["mfaChallenge"]["challenge"].as_str().unwrap().to_owned();
    assert_eq!(
        body,
        json!({"mfaChallenge": {"challenge": challenge, "expiresIn": 300, "methods": ["totp", "recovery_code"]}}),
        "no token fields"
    );
    assert!(!challenge.is_empty());
    challenge
}

async fn verify(app: &TestApp, body: Value) -> (StatusCode, Value) {
    let (status, _, body) = read(app.post_json("/user/mfa/verify", &body).await).await;
    (status, body)
}

/// The `amr` claim of an access token (read, not verified: auth-svc signed it).
fn amr(access_token: &str) -> Value {
    let payload = access_token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    claims["amr"].clone()
}

async fn assert_pair_works(app: &TestApp, pair: &Value, access: &str, username: &str) {
    let token = pair[access].as_str().unwrap();
    assert!(is_jwt(token), "{pair}");
    let (status, _, info) = read(app.get_with_token("/user/info", token).await).await;
    assert_eq!((status, &info["username"]), (StatusCode::OK, &json!(username)), "{info}");
}

#[tokio::test]
async fn the_go_zero_login_asks_for_a_code_and_refuses_its_replay() {
    let app = spawn_app_with_mfa().await;
    let token = account(&app, "alice").await;
    let enrolled = enrol(&app, &token).await;
    let next = code_at(&enrolled.secret, enrolled.confirmed_step + 1);

    let first = challenge(&app, "alice").await;
    let (status, pair) = verify(&app, json!({"challenge": first, "code": next})).await;
    assert_eq!(status, StatusCode::OK, "{pair}");
    let keys: Vec<_> = pair.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["accessToken", "expiresIn", "refreshToken"]);
    assert_pair_works(&app, &pair, "accessToken", "alice").await;
    assert_eq!(amr(pair["accessToken"].as_str().unwrap()), json!(["pwd", "otp"]));

    // The challenge is single use.
    let (status, body) = verify(&app, json!({"challenge": first, "code": next})).await;
    assert_eq!(
        (status, body),
        (StatusCode::UNAUTHORIZED, json!({"code": 401, "msg": "invalid or expired mfa challenge"}))
    );
    // The same code on a fresh challenge is a replay; so is the confirming one, which is older.
    for replayed in [next.clone(), code_at(&enrolled.secret, enrolled.confirmed_step)] {
        let fresh = challenge(&app, "alice").await;
        let (status, body) = verify(&app, json!({"challenge": fresh, "code": replayed})).await;
        assert_eq!((status, body), (StatusCode::UNAUTHORIZED, json!({"code": 401, "msg": "invalid code"})));
    }
    let (status, body) = verify(&app, json!({"challenge": "not.a.challenge", "code": next})).await;
    assert_eq!(
        (status, body),
        (StatusCode::UNAUTHORIZED, json!({"code": 401, "msg": "invalid or expired mfa challenge"}))
    );
}

#[tokio::test]
async fn a_recovery_code_logs_in_once() {
    let app = spawn_app_with_mfa().await;
    let token = account(&app, "bob").await;
    let enrolled = enrol(&app, &token).await;
    let recovery_code = &enrolled.recovery_codes[0];

    let (status, pair) =
        verify(&app, json!({"challenge": challenge(&app, "bob").await, "recoveryCode": recovery_code})).await;
    assert_eq!(status, StatusCode::OK, "{pair}");
    assert_pair_works(&app, &pair, "accessToken", "bob").await;
    let (status, body) =
        verify(&app, json!({"challenge": challenge(&app, "bob").await, "recoveryCode": recovery_code})).await;
    assert_eq!((status, body), (StatusCode::UNAUTHORIZED, json!({"code": 401, "msg": "invalid code"})), "spent");

    let (status, body) = send(&app, Method::GET, "/user/mfa", &token, None).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"totpEnabled": true, "recoveryCodesLeft": 9})));
}

/// The password grant for an account with a second factor: 403 `mfa_required`; its `mfa_token`.
async fn mfa_required(app: &TestApp, username: &str) -> String {
    let response = app.client.post(app.url("/token")).form(&[("username", username), ("password", PASSWORD)]);
    let (status, headers, body) = read(response.send().await.unwrap()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(header(&headers, "cache-control"), "no-store");
    let mfa_token = body["mfa_token"].as_str().unwrap().to_owned();
    assert_eq!(
        body,
        json!({
            "detail": "Multi-factor authentication required",
            "error": "mfa_required",
            "error_description": "Multi-factor authentication required",
            "mfa_token": mfa_token,
            "expires_in": 300,
            "mfa_methods": ["totp", "recovery_code"]
        })
    );
    assert!(!mfa_token.is_empty());
    mfa_token
}

#[tokio::test]
async fn the_token_endpoint_answers_mfa_required_then_takes_the_mfa_grants() {
    let app = spawn_app_with_mfa().await;
    let token = account(&app, "carol").await;
    let enrolled = enrol(&app, &token).await;
    let next = code_at(&enrolled.secret, enrolled.confirmed_step + 1);
    let mfa_token = || mfa_required(&app, "carol");
    let grant = |fields: Vec<(&'static str, String)>| {
        let request = app.client.post(app.url("/token")).form(&fields);
        async move { read(request.send().await.unwrap()).await }
    };

    let (status, headers, pair) =
        grant(vec![("grant_type", MFA_OTP.into()), ("mfa_token", mfa_token().await), ("otp", next.clone())]).await;
    assert_eq!(status, StatusCode::OK, "{pair}");
    assert_eq!(header(&headers, "cache-control"), "no-store");
    let keys: Vec<_> = pair.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["access_token", "expires_in", "refresh_token", "token_type"]);
    assert_eq!(pair["token_type"], "bearer");
    assert_pair_works(&app, &pair, "access_token", "carol").await;

    // A replayed code: 401 invalid_grant, as a wrong password.
    let (status, headers, body) =
        grant(vec![("grant_type", MFA_OTP.into()), ("mfa_token", mfa_token().await), ("otp", next)]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(header(&headers, "www-authenticate"), "Bearer");
    assert_eq!(body, json!({"detail": "invalid code", "error": "invalid_grant", "error_description": "invalid code"}));

    let recovery_code = enrolled.recovery_codes[3].clone();
    let recovery = |mfa_token: String| {
        vec![
            ("grant_type", MFA_RECOVERY_CODE.into()),
            ("mfa_token", mfa_token),
            ("recovery_code", recovery_code.clone()),
        ]
    };
    let (status, _, pair) = grant(recovery(mfa_token().await)).await;
    assert_eq!(status, StatusCode::OK, "{pair}");
    assert_pair_works(&app, &pair, "access_token", "carol").await;
    let (status, _, body) = grant(recovery(mfa_token().await)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "spent: {body}");
    assert_eq!(body["error"], "invalid_grant");

    let (status, _, body) =
        grant(vec![("grant_type", MFA_OTP.into()), ("mfa_token", "forged".into()), ("otp", "123456".into())]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        body,
        json!({"detail": "invalid or expired mfa challenge", "error": "invalid_grant",
            "error_description": "invalid or expired mfa challenge"})
    );
}

#[tokio::test]
async fn new_recovery_codes_replace_the_old_and_removing_the_factor_ends_the_second_step() {
    let app = spawn_app_with_mfa().await;
    let token = account(&app, "dave").await;
    let enrolled = enrol(&app, &token).await;
    let code = json!({"code": code_at(&enrolled.secret, enrolled.confirmed_step + 1)});
    let (status, body) = send(&app, Method::POST, "/user/mfa/recovery-codes", &token, Some(code)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let fresh: Vec<String> =
        body["recoveryCodes"].as_array().unwrap().iter().map(|code| code.as_str().unwrap().to_owned()).collect();
    assert_eq!(fresh.len(), 10);
    assert!(fresh.iter().all(|code| !enrolled.recovery_codes.contains(code)), "all new");

    // An old recovery code no longer removes the factor; a new one (with the password) does.
    let old = json!({"password": PASSWORD, "recoveryCode": enrolled.recovery_codes[0]});
    let (status, body) = send(&app, Method::DELETE, "/user/mfa/totp", &token, Some(old)).await;
    assert_eq!((status, body), (StatusCode::UNAUTHORIZED, json!({"code": 401, "msg": "invalid code"})));
    let wrong_password = json!({"password": "wrong password", "recoveryCode": fresh[0]});
    let (status, _) = send(&app, Method::DELETE, "/user/mfa/totp", &token, Some(wrong_password)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let new = json!({"password": PASSWORD, "recoveryCode": fresh[1]});
    let (status, body) = send(&app, Method::DELETE, "/user/mfa/totp", &token, Some(new)).await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));

    let (status, body) = send(&app, Method::GET, "/user/mfa", &token, None).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"totpEnabled": false, "recoveryCodesLeft": 0})));
    // The password alone logs in again.
    let (token, _) = app.login("dave", PASSWORD).await;
    let (status, body) =
        send(&app, Method::POST, "/user/mfa/recovery-codes", &token, Some(json!({"code": "123456"}))).await;
    assert_eq!((status, body), (StatusCode::NOT_FOUND, json!({"code": 404, "msg": "no second factor"})));
}

#[tokio::test]
async fn enrolment_is_refused_twice_and_confirmation_needs_a_begun_one() {
    let app = spawn_app_with_mfa().await;
    let token = account(&app, "erin").await;
    let (status, body) =
        send(&app, Method::POST, "/user/mfa/totp/confirm", &token, Some(json!({"code": "123456"}))).await;
    assert_eq!((status, body), (StatusCode::NOT_FOUND, json!({"code": 404, "msg": "no enrolment begun"})));
    enrol(&app, &token).await;
    let (status, body) = send(&app, Method::POST, "/user/mfa/totp", &token, Some(json!({"password": PASSWORD}))).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["code"], 409);
    let wrong = Some(json!({"password": "not the password"}));
    let (status, body) = send(&app, Method::POST, "/user/mfa/totp", &token, wrong).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a stolen token alone cannot enrol: {body}");
}

#[tokio::test]
async fn an_operator_resets_a_lost_second_factor() {
    let app = spawn_app_with_mfa().await;
    app.register("root", PASSWORD).await;
    app.make_admin("root").await;
    let (admin, _) = app.login("root", PASSWORD).await;
    let user = app.register("frank", PASSWORD).await;
    let (token, _) = app.login("frank", PASSWORD).await;
    enrol(&app, &token).await;
    challenge(&app, "frank").await;

    let id = user["id"].as_i64().unwrap();
    let (status, body) = send(&app, Method::POST, &format!("/admin/users/{id}/reset-mfa"), &admin, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!((&body["id"], &body["username"], &body["disabled"]), (&json!(id), &json!("frank"), &json!(false)));
    // The reset ended frank's sessions; the password alone logs in again.
    let (status, _, _) = read(app.get_with_token("/user/info", &token).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (token, _) = app.login("frank", PASSWORD).await;

    let (status, body) = send(&app, Method::POST, "/admin/users/999999/reset-mfa", &admin, None).await;
    assert_eq!((status, body), (StatusCode::NOT_FOUND, json!({"code": 404, "msg": "user not found"})));
    let (status, body) = send(&app, Method::POST, &format!("/admin/users/{id}/reset-mfa"), &token, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "not an admin: {body}");
}

/// Without `mfa.keys`, auth-svc answers FAILED_PRECONDITION: 400, with its words.
#[tokio::test]
async fn a_server_without_mfa_keys_answers_400() {
    let app = spawn_app().await;
    let token = account(&app, "gina").await;
    let (status, body) = send(&app, Method::POST, "/user/mfa/totp", &token, Some(json!({"password": PASSWORD}))).await;
    assert_eq!(
        (status, body),
        (StatusCode::BAD_REQUEST, json!({"code": 400, "msg": "second factor not configured on this server"}))
    );
}
