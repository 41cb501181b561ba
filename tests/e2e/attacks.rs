//! Token forgery and misuse, built here from scratch: every one is refused with
//! UNAUTHENTICATED and a clear message, never INTERNAL.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tonic::Code;

use crate::helpers::{ACCESS_SECRET, REFRESH_SECRET, TestApp, bearer, hmac_kid, spawn_app};

/// Valid access-token claims for `user_id`, as the service would write them.
fn claims(user_id: i64) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({"iss":"auth-svc","sub":user_id.to_string(),"userId":user_id,"role":"user","iat":now,"exp":now + 300,
           "jti":"jti-1","sid":uuid::Uuid::new_v4().to_string(),"token_type":"access"})
}

fn sign(alg: Algorithm, claims: &Value, secret: &str) -> String {
    let mut header = Header::new(alg);
    header.typ = Some("at+jwt".into());
    header.kid = Some(hmac_kid(ACCESS_SECRET));
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
}

fn part(value: &Value) -> String {
    B64.encode(serde_json::to_vec(value).unwrap())
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
    let header = part(&json!({"alg":"none","typ":"at+jwt"}));
    let payload = part(&claims(id));
    for token in [format!("{header}.{payload}."), format!("{header}.{payload}.c2lnbmF0dXJl")] {
        assert_eq!(refused(app.user_info(&bearer(&token)).await), "invalid access token", "{token}");
    }
}

#[tokio::test]
async fn other_algorithms_with_the_same_secret_are_refused() {
    let app = spawn_app().await;
    let (id, token) = user_and_token(&app).await;
    for alg in [Algorithm::HS384, Algorithm::HS512] {
        let forged = sign(alg, &claims(id), ACCESS_SECRET);
        assert_eq!(refused(app.user_info(&bearer(&forged)).await), "invalid access token", "{alg:?}");
    }
    // RS256 in the header over the genuine HS256 signature bytes.
    let mut parts: Vec<&str> = token.split('.').collect();
    let rs256 = part(&json!({"alg":"RS256","typ":"at+jwt"}));
    parts[0] = &rs256;
    assert_eq!(refused(app.user_info(&bearer(&parts.join("."))).await), "invalid access token");
}

#[tokio::test]
async fn a_changed_payload_under_the_old_signature_is_refused() {
    let app = spawn_app().await;
    let (id, token) = user_and_token(&app).await;
    let bob = app.register("bob").await;
    let [header, payload, signature]: [&str; 3] = token.split('.').collect::<Vec<_>>().try_into().unwrap();
    let mut original: Value = serde_json::from_slice(&B64.decode(payload).unwrap()).unwrap();
    assert_eq!(original["userId"], id);
    for (field, value) in [("role", json!("admin")), ("userId", json!(bob.id)), ("sub", json!(bob.id.to_string()))] {
        let saved = original[field].clone();
        original[field] = value;
        let forged = format!("{header}.{}.{signature}", part(&original));
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
        let mut c = claims(id);
        c[field] = value;
        c
    };
    let cases = [
        (sign(Algorithm::HS256, &claims(id), REFRESH_SECRET), "invalid access token"),
        (sign(Algorithm::HS256, &claims(id), "some-other-key-that-is-long-enough-0000"), "invalid access token"),
        (sign(Algorithm::HS256, &with("exp", json!(now - 1)), ACCESS_SECRET), "access token expired"),
        (sign(Algorithm::HS256, &with("iat", json!(now + 60)), ACCESS_SECRET), "access token is not valid yet"),
        (sign(Algorithm::HS256, &with("nbf", json!(now + 60)), ACCESS_SECRET), "access token is not valid yet"),
        (sign(Algorithm::HS256, &with("iss", json!("someone-else")), ACCESS_SECRET), "invalid access token"),
        (sign(Algorithm::HS256, &with("exp", json!("tomorrow")), ACCESS_SECRET), "invalid access token"),
    ];
    for (token, message) in cases {
        assert_eq!(refused(app.user_info(&bearer(&token)).await), message);
    }
    let mut no_exp = claims(id);
    no_exp.as_object_mut().unwrap().remove("exp");
    assert_eq!(
        refused(app.user_info(&bearer(&sign(Algorithm::HS256, &no_exp, ACCESS_SECRET))).await),
        "invalid access token"
    );
    // The control: the same recipe, untouched, is accepted.
    app.user_info(&bearer(&sign(Algorithm::HS256, &claims(id), ACCESS_SECRET))).await.expect("a genuine token passes");
}

#[tokio::test]
async fn malformed_tokens_are_refused() {
    let app = spawn_app().await;
    let header = part(&json!({"alg":"HS256","typ":"at+jwt"}));
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
