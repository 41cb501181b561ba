//! Service accounts' tokens (the client credentials grant) and the audience rules of a
//! verifier, with and without a configured audience.

use serde_json::json;

use super::support::*;
use crate::{Audience, Claims, ClientClaims, TokenType, Verifier, VerifyError};

#[tokio::test]
async fn a_service_accounts_token_verifies_and_says_which_client_and_scopes() {
    let key = ed_a();
    let (_server, verifier) = verifier_for(&[&key]).await;
    let signed = client_claims();

    let verified = verifier.verify(&key.sign(&signed)).await.unwrap();

    let expected = Claims::Client(ClientClaims {
        iss: ISSUER.to_owned(),
        sub: "billing".to_owned(),
        client_id: "billing".to_owned(),
        role: "service".to_owned(),
        scope: "orders:read stock:read".to_owned(),
        aud: Audience::default(),
        iat: signed["iat"].as_i64().unwrap(),
        exp: signed["exp"].as_i64().unwrap(),
        jti: "jti-2".to_owned(),
        sid: "sid-2".to_owned(),
        token_type: TokenType::Access,
    });
    assert_eq!(verified, expected);
    assert_eq!((verified.client_id(), verified.user_id(), verified.role()), (Some("billing"), None, "service"));
    assert_eq!(verified.scopes().collect::<Vec<_>>(), ["orders:read", "stock:read"]);
    assert!(verified.has_scope("stock:read") && !verified.has_scope("orders:write"));

    // A user's token, even one with a `scope` claim, is a user's and grants no scope.
    let user = verifier.verify(&key.sign(&claims_with(json!({"scope": "orders:read"})))).await.unwrap();
    assert_eq!((user.client_id(), user.user_id()), (None, Some(42)));
    assert!(!user.has_scope("orders:read"));
}

#[tokio::test]
async fn a_service_accounts_token_is_refused_by_the_same_rules_as_a_users() {
    let key = ed_a();
    let (_server, verifier) = verifier_for(&[&key]).await;
    for claim in ["exp", "iat", "iss", "sub", "client_id", "role", "jti", "sid", "token_type"] {
        let token = key.sign(&client_claims_with(json!({ claim: null })));
        assert_eq!(verifier.verify(&token).await, Err(VerifyError::InvalidClaims), "without {claim}");
    }
    let refresh_kind = key.sign(&client_claims_with(json!({"token_type": "refresh"})));
    assert_eq!(verifier.verify(&refresh_kind).await, Err(VerifyError::NotAccessToken));
    let expired = key.sign(&client_claims_with(json!({"exp": now() - 10})));
    assert_eq!(verifier.verify(&expired).await, Err(VerifyError::Expired));
    // `nbf` is read beside the claims of either kind (no `flatten` to lose it in).
    let not_before = key.sign(&client_claims_with(json!({"nbf": now() + 60})));
    assert_eq!(verifier.verify(&not_before).await, Err(VerifyError::NotYetValid));
    let early = key.sign(&client_claims_with(json!({"iat": now() + 60})));
    assert_eq!(verifier.verify(&early).await, Err(VerifyError::NotYetValid));
}

#[tokio::test]
async fn a_verifier_without_an_audience_refuses_every_token_that_names_one() {
    let key = ed_a();
    let (_server, verifier) = verifier_for(&[&key]).await;

    for aud in [json!("orders"), json!(["orders", "stock"]), json!([])] {
        let client = key.sign(&client_claims_with(json!({ "aud": aud.clone() })));
        assert_eq!(verifier.verify(&client).await, Err(VerifyError::WrongAudience), "client, aud {aud}");
        let user = key.sign(&claims_with(json!({ "aud": aud.clone() })));
        assert_eq!(verifier.verify(&user).await, Err(VerifyError::WrongAudience), "user, aud {aud}");
    }
    assert!(verifier.verify(&key.sign(&client_claims())).await.is_ok());
}

#[tokio::test]
async fn a_verifier_with_an_audience_wants_it_listed_in_aud() {
    let key = p256_a();
    let (server, _) = verifier_for(&[&key]).await;
    let verifier = Verifier::builder(&server.url).audience("orders").build().unwrap();
    let with_aud = |aud: serde_json::Value| key.sign(&client_claims_with(json!({ "aud": aud })));

    assert_eq!(verifier.verify(&key.sign(&client_claims())).await, Err(VerifyError::MissingAudience));
    // A user's token names no audience, so a service that requires one serves no user.
    assert_eq!(verifier.verify(&key.sign(&access_claims())).await, Err(VerifyError::MissingAudience));
    for other in [json!("stock"), json!(["stock", "billing"]), json!([]), json!("Orders")] {
        assert_eq!(verifier.verify(&with_aud(other.clone())).await, Err(VerifyError::WrongAudience), "aud {other}");
    }

    let one = verifier.verify(&with_aud(json!("orders"))).await.unwrap();
    assert_eq!(one.audiences(), ["orders"]);
    let several = verifier.verify(&with_aud(json!(["stock", "orders"]))).await.unwrap();
    assert_eq!(several.audiences(), ["stock", "orders"]);
}
