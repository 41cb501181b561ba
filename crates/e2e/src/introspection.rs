//! ValidateToken: public, and the authoritative answer about an access token. An active token
//! comes back with exactly the claims it carries; anything else (expired, logged out, account
//! gone, not an access token, not ours) is `active: false` with no claims, never an error status.

use std::num::NonZero;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use auth_api::user::v1::{AccessTokenClaims, GetUserInfoRequest, ValidateTokenRequest, ValidateTokenResponse};
use jsonwebtoken::Algorithm;
use secrecy::SecretString;
use serde_json::{Value, json};
use tonic::{Code, Request};

use crate::helpers::{
    ACCESS_SECRET, PASSWORD, REFRESH_SECRET, TestApp, assert_status, bearer, hmac_key, hmac_kid, jwt_part, sign_jwt,
    spawn_app, spawn_app_with, token_payload, with_authorization,
};

const OTHER_SECRET: &str = "another-access-secret-0123456789abcdef-0123456";

async fn validate(app: &TestApp, token: &str) -> ValidateTokenResponse {
    validate_request(app, Request::new(ValidateTokenRequest { token: token.into() })).await
}

/// ValidateToken answers every token; an error status would be a fault.
async fn validate_request(app: &TestApp, request: Request<ValidateTokenRequest>) -> ValidateTokenResponse {
    match app.client.clone().validate_token(request).await {
        Ok(response) => response.into_inner(),
        Err(status) => panic!("ValidateToken must answer active: false, not an error status: {status:?}"),
    }
}

/// The whole answer for an inactive token: the flag and nothing else.
#[track_caller]
fn assert_inactive(response: &ValidateTokenResponse, case: &str) {
    assert_eq!(response, &ValidateTokenResponse { active: false, claims: None }, "{case}");
}

#[track_caller]
fn active_claims(response: ValidateTokenResponse, case: &str) -> AccessTokenClaims {
    assert!(response.active, "{case}: {response:?}");
    response.claims.unwrap_or_else(|| panic!("{case}: an active token comes with its claims"))
}

/// An access token signed with `secret` and naming `kid`, as the service would write it
/// otherwise.
fn sign(claims: &Value, secret: &str, kid: Option<String>) -> String {
    sign_jwt(Algorithm::HS256, "at+jwt", kid.as_deref(), claims, &hmac_key(secret))
}

/// Sleeps until the clock is past `exp`: no leeway is allowed, so the token is then expired.
async fn wait_past(exp: i64) {
    let expired_at = Duration::from_secs(u64::try_from(exp + 1).unwrap()) + Duration::from_millis(50);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    tokio::time::sleep(expired_at.saturating_sub(now)).await;
}

#[tokio::test]
async fn an_active_token_comes_back_with_exactly_its_claims() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let pair = app.login("alice", PASSWORD).await.unwrap();
    let bobs = app.login("bob", PASSWORD).await.unwrap();

    let claims = active_claims(validate(&app, &pair.access_token).await, "alice's token");
    let said = token_payload(&pair.access_token);
    let kid = jsonwebtoken::decode_header(&pair.access_token).unwrap().kid.expect("tokens name their key");
    assert_eq!(
        claims,
        AccessTokenClaims {
            iss: "auth-svc".into(),
            sub: alice.id.to_string(),
            user_id: alice.id,
            role: "user".into(),
            iat: said["iat"].as_i64().unwrap(),
            exp: said["exp"].as_i64().unwrap(),
            jti: said["jti"].as_str().unwrap().into(),
            sid: said["sid"].as_str().unwrap().into(),
            kid,
            username: "alice".into(),
            amr: vec!["pwd".into()],
            ..AccessTokenClaims::default()
        }
    );
    // What the token says, field by field, in the token's own names.
    assert_eq!((said["iss"].as_str(), said["sub"].as_str()), (Some("auth-svc"), Some(&*alice.id.to_string())));
    assert_eq!((said["userId"].as_i64(), said["role"].as_str()), (Some(alice.id), Some("user")));
    assert_eq!(claims.kid, hmac_kid(ACCESS_SECRET), "the HS256 key of the test config signed it");
    let now = chrono::Utc::now().timestamp();
    assert!((now - 60..=now).contains(&claims.iat), "iat {} vs now {now}", claims.iat);
    assert_eq!(claims.exp - claims.iat, 900, "the default auth.access_expire");
    assert_eq!(pair.expires_in, 900);
    assert!(!claims.jti.is_empty() && !claims.sid.is_empty(), "{claims:?}");

    // The control: another user's token is answered for that user, not from the last answer.
    let other = active_claims(validate(&app, &bobs.access_token).await, "bob's token");
    assert_eq!((other.user_id, other.sub.as_str(), other.username.as_str()), (bob.id, &*bob.id.to_string(), "bob"));
    assert_ne!(other.sid, claims.sid);
    assert_ne!(other.jti, claims.jti);
}

#[tokio::test]
async fn an_expired_token_is_inactive() {
    // 2 s rather than 1: the first check below must see the token still valid, even on a busy
    // machine where the login and that check straddle a second boundary.
    let app = spawn_app_with(|config| config.auth.access_expire = NonZero::new(2).unwrap()).await;
    let pair = app.signed_in("alice").await;
    let claims = active_claims(validate(&app, &pair.access_token).await, "before expiry");
    assert_eq!(claims.exp - claims.iat, 2);

    wait_past(claims.exp).await;
    assert_inactive(&validate(&app, &pair.access_token).await, "after expiry");
    // Expiry, and nothing else, is what changed.
    assert_status(app.user_info(&bearer(&pair.access_token)).await, Code::Unauthenticated, "access token expired");
    let fresh = app.login("alice", PASSWORD).await.unwrap();
    active_claims(validate(&app, &fresh.access_token).await, "a new login's token");
}

#[tokio::test]
async fn a_logged_out_session_s_token_is_inactive_while_another_session_stays_active() {
    let app = spawn_app().await;
    let first = app.signed_in("alice").await;
    let second = app.login("alice", PASSWORD).await.unwrap();
    let first_sid = active_claims(validate(&app, &first.access_token).await, "before logout").sid;

    app.logout(&first.access_token).await.expect("logout");
    assert_inactive(&validate(&app, &first.access_token).await, "the logged-out session");
    let still = active_claims(validate(&app, &second.access_token).await, "the other session");
    assert_eq!(still.username, "alice");
    assert_eq!(still.sid, token_payload(&second.access_token)["sid"].as_str().unwrap());
    assert_ne!(still.sid, first_sid);
}

#[tokio::test]
async fn the_token_of_a_deleted_account_is_inactive() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let pair = app.login("alice", PASSWORD).await.unwrap();
    let bob = app.signed_in("bob").await;
    // Asked once before: a cached answer must not outlive the account.
    active_claims(validate(&app, &pair.access_token).await, "before the deletion");

    assert!(app.users.delete(alice.id).await.unwrap());
    assert_inactive(&validate(&app, &pair.access_token).await, "after the deletion");
    active_claims(validate(&app, &bob.access_token).await, "another account's token");
}

#[tokio::test]
async fn anything_but_one_of_our_access_tokens_is_inactive_and_never_an_error() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let pair = app.login("alice", PASSWORD).await.unwrap();
    let genuine = token_payload(&pair.access_token);
    let with = |field: &str, value: Value| {
        let mut claims = genuine.clone();
        claims[field] = value;
        claims
    };
    let our_kid = || Some(hmac_kid(ACCESS_SECRET));
    // The control: the recipe of the forgeries below, with our key and kid, is active.
    let claims = active_claims(validate(&app, &sign(&genuine, ACCESS_SECRET, our_kid())).await, "re-signed genuine");
    assert_eq!(claims.user_id, alice.id);

    let mut unknown_kid = hmac_kid(ACCESS_SECRET);
    unknown_kid.replace_range(unknown_kid.len() - 4.., "zzzz");
    let plain_jwt = sign_jwt(Algorithm::HS256, "JWT", our_kid().as_deref(), &genuine, &hmac_key(ACCESS_SECRET));
    let [head, _, signature]: [&str; 3] = pair.access_token.split('.').collect::<Vec<_>>().try_into().unwrap();
    let promoted = jwt_part(&with("role", json!("admin")));
    let tampered = format!("{head}.{promoted}.{signature}");
    let cases = [
        ("the refresh token", pair.refresh_token.clone()),
        ("garbage", "not a token".to_owned()),
        ("an empty string", String::new()),
        ("three dots", "a.b.c".to_owned()),
        ("oversized", format!("{}.{}.{}", "a".repeat(3000), "b".repeat(3000), "c".repeat(100))),
        ("another secret under our kid", sign(&genuine, OTHER_SECRET, our_kid())),
        ("another secret under its own kid", sign(&genuine, OTHER_SECRET, Some(hmac_kid(OTHER_SECRET)))),
        ("the refresh secret under its kid", sign(&genuine, REFRESH_SECRET, Some(hmac_kid(REFRESH_SECRET)))),
        ("our secret under an unknown kid", sign(&genuine, ACCESS_SECRET, Some(unknown_kid))),
        ("our secret without a kid", sign(&genuine, ACCESS_SECRET, None)),
        ("another issuer", sign(&with("iss", json!("someone-else")), ACCESS_SECRET, our_kid())),
        ("token_type refresh", sign(&with("token_type", json!("refresh")), ACCESS_SECRET, our_kid())),
        ("typ JWT", plain_jwt),
        ("a changed payload under the genuine signature", tampered),
    ];
    for (case, token) in cases {
        assert_inactive(&validate(&app, &token).await, case);
    }
}

#[tokio::test]
async fn a_genuine_token_of_another_deployment_is_inactive_here() {
    let app = spawn_app().await;
    app.register("alice").await;
    let elsewhere = spawn_app_with(|config| config.auth.access_secret = Some(SecretString::from(OTHER_SECRET))).await;
    let theirs = elsewhere.signed_in("alice").await;
    // The control: it is a perfectly good token where it was issued.
    active_claims(validate(&elsewhere, &theirs.access_token).await, "at home");
    assert_inactive(&validate(&app, &theirs.access_token).await, "elsewhere");
}

#[tokio::test]
async fn validate_token_is_public_and_judges_only_the_token_in_its_body() {
    let app = spawn_app().await;
    let alice = app.signed_in("alice").await;
    // The bearer layer is on: a protected method without metadata is refused...
    assert_status(
        app.client.clone().get_user_info(GetUserInfoRequest {}).await,
        Code::Unauthenticated,
        "missing authorization: Bearer token",
    );
    // ...while ValidateToken needs none.
    let claims = active_claims(validate(&app, &alice.access_token).await, "no metadata");
    assert_eq!(claims.username, "alice");

    // A bad `authorization` header is not checked here, and does not spoil the answer.
    let request = with_authorization(ValidateTokenRequest { token: alice.access_token.clone() }, "Bearer garbage");
    active_claims(validate_request(&app, request).await, "a bad authorization header");

    // A good `authorization` header does not vouch for the token in the body.
    for token in ["garbage", alice.refresh_token.as_str(), ""] {
        let request = with_authorization(ValidateTokenRequest { token: token.into() }, &bearer(&alice.access_token));
        assert_inactive(&validate_request(&app, request).await, token);
    }

    // "Bearer <token>" in the body is not the token: the field holds the token alone.
    assert_inactive(&validate(&app, &bearer(&alice.access_token)).await, "with the Bearer prefix");
}
