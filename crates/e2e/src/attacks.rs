//! Token forgery and misuse, built here from scratch: every one is refused with
//! UNAUTHENTICATED and a clear message, never INTERNAL.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};
use tonic::Code;

use crate::helpers::{
    ACCESS_SECRET, REFRESH_SECRET, TestApp, access_claims, bearer, hmac_key, hmac_kid, jwt_part, sign_jwt, spawn_app,
    token_payload,
};

/// A token with the service's header (`at+jwt`, the access key's `kid`) signed with `secret`.
fn sign(alg: Algorithm, claims: &Value, secret: &str) -> String {
    sign_jwt(alg, "at+jwt", Some(&hmac_kid(ACCESS_SECRET)), claims, &hmac_key(secret))
}

async fn user_and_token(app: &TestApp) -> (i64, String) {
    let pair = app.signed_in("alice").await;
    let id = app.user_info(&bearer(&pair.access_token)).await.unwrap().id;
    (id, pair.access_token)
}

#[track_caller]
fn refused(result: Result<auth_api::user::v1::UserInfo, tonic::Status>) -> String {
    let status = result.expect_err("the token must be refused");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    status.message().to_owned()
}

#[tokio::test]
async fn alg_none_is_refused_with_and_without_a_signature() {
    let app = spawn_app().await;
    let (id, _) = user_and_token(&app).await;
    let header = jwt_part(&json!({"alg":"none","typ":"at+jwt"}));
    let payload = jwt_part(&access_claims(id));
    for token in [format!("{header}.{payload}."), format!("{header}.{payload}.c2lnbmF0dXJl")] {
        assert_eq!(refused(app.user_info(&bearer(&token)).await), "invalid access token", "{token}");
    }
}

#[tokio::test]
async fn other_algorithms_with_the_same_secret_are_refused() {
    let app = spawn_app().await;
    let (id, token) = user_and_token(&app).await;
    for alg in [Algorithm::HS384, Algorithm::HS512] {
        let forged = sign(alg, &access_claims(id), ACCESS_SECRET);
        assert_eq!(refused(app.user_info(&bearer(&forged)).await), "invalid access token", "{alg:?}");
    }
    // RS256 in the header over the genuine HS256 signature bytes.
    let mut parts: Vec<&str> = token.split('.').collect();
    let rs256 = jwt_part(&json!({"alg":"RS256","typ":"at+jwt"}));
    parts[0] = &rs256;
    assert_eq!(refused(app.user_info(&bearer(&parts.join("."))).await), "invalid access token");
}

#[tokio::test]
async fn a_changed_payload_under_the_old_signature_is_refused() {
    let app = spawn_app().await;
    let (id, token) = user_and_token(&app).await;
    let bob = app.register("bob").await;
    let [header, _, signature]: [&str; 3] = token.split('.').collect::<Vec<_>>().try_into().unwrap();
    let mut original = token_payload(&token);
    assert_eq!(original["userId"], id);
    for (field, value) in [("role", json!("admin")), ("userId", json!(bob.id)), ("sub", json!(bob.id.to_string()))] {
        let saved = original[field].clone();
        original[field] = value;
        let forged = format!("{header}.{}.{signature}", jwt_part(&original));
        assert_eq!(refused(app.user_info(&bearer(&forged)).await), "invalid access token", "{field}");
        original[field] = saved;
    }
}

#[tokio::test]
async fn keys_issuers_and_times_are_all_checked() {
    let app = spawn_app().await;
    let (id, _) = user_and_token(&app).await;
    let now = chrono::Utc::now().timestamp();
    let with = |field: &str, value: Value| {
        let mut c = access_claims(id);
        c[field] = value;
        c
    };
    let cases = [
        (sign(Algorithm::HS256, &access_claims(id), REFRESH_SECRET), "invalid access token"),
        (sign(Algorithm::HS256, &access_claims(id), "some-other-key-that-is-long-enough-0000"), "invalid access token"),
        (sign(Algorithm::HS256, &with("exp", json!(now - 1)), ACCESS_SECRET), "access token expired"),
        (sign(Algorithm::HS256, &with("iat", json!(now + 60)), ACCESS_SECRET), "access token is not valid yet"),
        (sign(Algorithm::HS256, &with("nbf", json!(now + 60)), ACCESS_SECRET), "access token is not valid yet"),
        (sign(Algorithm::HS256, &with("iss", json!("someone-else")), ACCESS_SECRET), "invalid access token"),
        (sign(Algorithm::HS256, &with("exp", json!("tomorrow")), ACCESS_SECRET), "invalid access token"),
    ];
    for (token, message) in cases {
        assert_eq!(refused(app.user_info(&bearer(&token)).await), message);
    }
    let mut no_exp = access_claims(id);
    no_exp.as_object_mut().unwrap().remove("exp");
    assert_eq!(
        refused(app.user_info(&bearer(&sign(Algorithm::HS256, &no_exp, ACCESS_SECRET))).await),
        "invalid access token"
    );
    // The control: the same recipe, untouched, is accepted.
    app.user_info(&bearer(&sign(Algorithm::HS256, &access_claims(id), ACCESS_SECRET)))
        .await
        .expect("a genuine token passes");
}

#[tokio::test]
async fn malformed_tokens_are_refused() {
    let app = spawn_app().await;
    let header = jwt_part(&json!({"alg":"HS256","typ":"at+jwt"}));
    let cases = [
        "a.b".to_owned(),
        "a.b.c.d".to_owned(),
        "!!!.???.***".to_owned(),
        format!("{header}.{}.sig", B64.encode("not json")),
        format!("{header}.%%%.sig"),
        format!("{}.{}.sig", B64.encode("{\"alg\":"), B64.encode("{}")),
    ];
    for token in cases {
        let message = refused(app.user_info(&bearer(&token)).await);
        assert!(["invalid access token", "malformed bearer token"].contains(&message.as_str()), "{token}: {message}");
    }
    let huge = "A".repeat(100 * 1024);
    assert_eq!(refused(app.user_info(&bearer(&huge)).await), "bearer token too long");
}
