//! The token rules: what verifies, and every way a token is refused.

use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::json;

use super::support::*;
use crate::{Claims, UserClaims, VerifyError};

#[tokio::test]
async fn eddsa_token_verifies_and_yields_its_claims() {
    let key = ed_a();
    let (server, verifier) = verifier_for(&[&key, &p256_a()]).await;
    let claims = access_claims();

    let verified = verifier.verify(&key.sign(&claims)).await.unwrap();

    let expected = Claims::User(UserClaims {
        iss: ISSUER.to_owned(),
        sub: "42".to_owned(),
        user_id: 42,
        role: "user".to_owned(),
        iat: claims["iat"].as_i64().unwrap(),
        exp: claims["exp"].as_i64().unwrap(),
        jti: "jti-1".to_owned(),
        sid: "sid-1".to_owned(),
        token_type: crate::TokenType::Access,
        amr: Vec::new(),
    });
    assert_eq!(verified, expected);
    assert_eq!(server.fetches(), 1, "fetched lazily, once");
}

#[tokio::test]
async fn es256_token_verifies() {
    let key = p256_a();
    let (_server, verifier) = verifier_for(&[&ed_a(), &key]).await;

    let verified = verifier.verify(&key.sign(&claims_with(json!({"sub": "7", "userId": 7})))).await.unwrap();

    assert_eq!((verified.sub(), verified.user_id()), ("7", Some(7)));
}

#[tokio::test]
async fn verified_keys_are_reused_without_refetching() {
    let key = ed_a();
    let (server, verifier) = verifier_for(&[&key]).await;
    for _ in 0..5 {
        verifier.clone().verify(&key.sign(&access_claims())).await.unwrap();
    }
    assert_eq!(server.fetches(), 1);
}

#[tokio::test]
async fn a_signature_by_another_key_is_refused() {
    let (_server, verifier) = verifier_for(&[&ed_a(), &ed_b()]).await;
    // Signed by ed-b, claims to be ed-a.
    let forged = ed_b().sign_with_kid("ed-a", &access_claims());
    assert_eq!(verifier.verify(&forged).await, Err(VerifyError::InvalidSignature));

    let p256 = p256_a();
    let (_server, verifier) = verifier_for(&[&p256]).await;
    let mut token = p256.sign(&access_claims());
    let tampered = claims_with(json!({"role": "admin"}));
    let payload = token.split('.').nth(1).unwrap().to_owned();
    let forged_payload = unsigned(&json!({}), &tampered, b"").split('.').nth(1).unwrap().to_owned();
    token = token.replace(&payload, &forged_payload);
    assert_eq!(verifier.verify(&token).await, Err(VerifyError::InvalidSignature));
}

#[tokio::test]
async fn hs256_signed_with_the_public_key_is_refused() {
    let key = ed_a();
    let (server, verifier) = verifier_for(&[&key]).await;
    verifier.prefetch().await.unwrap();
    let hs256 = header(Algorithm::HS256, Some(key.kid));

    // The classic algorithm confusion: the published key used as an HMAC secret, both as the raw
    // key bytes (the JWK's `x`) and as the PEM text.
    let with_raw_bytes = sign(&hs256, &access_claims(), &EncodingKey::from_secret(&key.public_x()));
    let with_pem_text = sign(&hs256, &access_claims(), &EncodingKey::from_secret(key.public_pem));

    assert_eq!(verifier.verify(&with_raw_bytes).await, Err(VerifyError::UnsupportedAlgorithm));
    assert_eq!(verifier.verify(&with_pem_text).await, Err(VerifyError::UnsupportedAlgorithm));
    assert_eq!(server.fetches(), 1, "refused from the header alone, no refetch");
}

#[tokio::test]
async fn an_algorithm_other_than_the_keys_is_refused() {
    let (ed, p256) = (ed_a(), p256_a());
    let (_server, verifier) = verifier_for(&[&ed, &p256]).await;
    // Validly signed by a published P-256 key, but naming the Ed25519 key's kid.
    let token = p256.sign_with_kid(ed.kid, &access_claims());
    assert_eq!(verifier.verify(&token).await, Err(VerifyError::UnsupportedAlgorithm));
}

#[tokio::test]
async fn alg_none_is_refused() {
    let key = ed_a();
    let (server, verifier) = verifier_for(&[&key]).await;
    for alg in ["none", "None", "NONE"] {
        let token = unsigned(&json!({"alg": alg, "typ": "at+jwt", "kid": key.kid}), &access_claims(), b"");
        assert_eq!(verifier.verify(&token).await, Err(VerifyError::Malformed), "alg {alg}");
    }
    assert_eq!(server.fetches(), 0);
}

#[tokio::test]
async fn header_rules_refuse_before_any_fetch() {
    let key = ed_a();
    let (server, verifier) = verifier_for(&[&key]).await;
    let claims = access_claims();

    let mut no_kid = header(Algorithm::EdDSA, None);
    assert_eq!(verifier.verify(&sign(&no_kid, &claims, &key.encoding)).await, Err(VerifyError::UnknownKey));
    no_kid.typ = None;
    no_kid.kid = Some(key.kid.to_owned());
    assert_eq!(verifier.verify(&sign(&no_kid, &claims, &key.encoding)).await, Err(VerifyError::NotAccessToken));
    let mut critical = header(Algorithm::EdDSA, Some(key.kid));
    critical.crit = Some(vec!["exp".to_owned()]);
    assert_eq!(verifier.verify(&sign(&critical, &claims, &key.encoding)).await, Err(VerifyError::Malformed));
    for junk in ["", "not-a-jwt", "a.b", "a.b.c.d"] {
        assert_eq!(verifier.verify(junk).await, Err(VerifyError::Malformed), "{junk:?}");
    }
    let oversized = format!("{}{}", key.sign(&claims), "A".repeat(4096));
    assert_eq!(verifier.verify(&oversized).await, Err(VerifyError::Malformed));

    assert_eq!(server.fetches(), 0);
}

#[tokio::test]
async fn refresh_tokens_are_refused() {
    let key = ed_a();
    let (_server, verifier) = verifier_for(&[&key]).await;
    let refresh_claims = claims_with(json!({"token_type": "refresh", "role": null}));
    let mut refresh_header = header(Algorithm::EdDSA, Some(key.kid));
    refresh_header.typ = Some("rt+jwt".to_owned());

    let refresh = sign(&refresh_header, &refresh_claims, &key.encoding);
    assert_eq!(verifier.verify(&refresh).await, Err(VerifyError::NotAccessToken));
    // Either half alone is enough to refuse.
    let access_typ_refresh_claim = key.sign(&claims_with(json!({"token_type": "refresh"})));
    assert_eq!(verifier.verify(&access_typ_refresh_claim).await, Err(VerifyError::NotAccessToken));
    // A `token_type` that names no kind at all is no access token either.
    let unknown_kind = key.sign(&claims_with(json!({"token_type": "bogus"})));
    assert_eq!(verifier.verify(&unknown_kind).await, Err(VerifyError::NotAccessToken));
    let refresh_typ_access_claims = sign(&refresh_header, &access_claims(), &key.encoding);
    assert_eq!(verifier.verify(&refresh_typ_access_claims).await, Err(VerifyError::NotAccessToken));
}

#[tokio::test]
async fn expired_tokens_are_refused_unless_within_the_leeway() {
    let key = ed_a();
    let (server, strict) = verifier_for(&[&key]).await;
    let expired = key.sign(&claims_with(json!({"exp": now() - 10})));

    assert_eq!(strict.verify(&expired).await, Err(VerifyError::Expired));

    let lenient = crate::Verifier::builder(&server.url).leeway(Duration::from_secs(60)).build().unwrap();
    assert!(lenient.verify(&expired).await.is_ok());
}

#[tokio::test]
async fn wrong_issuer_is_refused() {
    let key = ed_a();
    let (server, verifier) = verifier_for(&[&key]).await;
    let elsewhere = key.sign(&claims_with(json!({"iss": "someone-else"})));

    assert_eq!(verifier.verify(&elsewhere).await, Err(VerifyError::WrongIssuer));
    let theirs = crate::Verifier::builder(&server.url).issuer("someone-else").build().unwrap();
    assert!(matches!(theirs.verify(&elsewhere).await, Ok(Claims::User(user)) if user.iss == "someone-else"));
    assert_eq!(theirs.verify(&key.sign(&access_claims())).await, Err(VerifyError::WrongIssuer));
}

#[tokio::test]
async fn tokens_from_the_future_are_refused_beyond_five_seconds() {
    let key = ed_a();
    let (_server, verifier) = verifier_for(&[&key]).await;
    let now = now();

    let early = key.sign(&claims_with(json!({"iat": now + 60})));
    assert_eq!(verifier.verify(&early).await, Err(VerifyError::NotYetValid));
    let not_before = key.sign(&claims_with(json!({"nbf": now + 60})));
    assert_eq!(verifier.verify(&not_before).await, Err(VerifyError::NotYetValid));
    let skewed = key.sign(&claims_with(json!({"iat": now + 3, "nbf": now + 3})));
    assert!(verifier.verify(&skewed).await.is_ok());
}

#[tokio::test]
async fn missing_or_mistyped_claims_are_refused() {
    let key = ed_a();
    let (_server, verifier) = verifier_for(&[&key]).await;
    for claim in ["exp", "iat", "iss", "sub", "jti", "userId", "role", "sid", "token_type"] {
        let token = key.sign(&claims_with(json!({ claim: null })));
        assert_eq!(verifier.verify(&token).await, Err(VerifyError::InvalidClaims), "without {claim}");
    }
    let mistyped = key.sign(&claims_with(json!({"userId": "42"})));
    assert_eq!(verifier.verify(&mistyped).await, Err(VerifyError::InvalidClaims));
    for registered in [json!({"nbf": "soon"}), json!({"aud": 7})] {
        let mistyped = key.sign(&claims_with(registered.clone()));
        assert_eq!(verifier.verify(&mistyped).await, Err(VerifyError::InvalidClaims), "{registered}");
    }
}

#[tokio::test]
async fn symmetric_and_foreign_jwks_entries_are_ignored() {
    let key = ed_a();
    let secret = b"a-shared-secret-nobody-should-publish";
    let k = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, secret);
    let mut set = jwks(&[&key]);
    let keys = set["keys"].as_array_mut().unwrap();
    keys.push(json!({"kty": "oct", "k": k, "kid": "shared", "alg": "HS256", "use": "sig"}));
    // An HMAC secret dressed up as an EdDSA key: `DecodingKey::from_jwk` would build an HMAC key.
    keys.push(json!({"kty": "oct", "k": k, "kid": "sneaky", "alg": "EdDSA", "use": "sig"}));
    let server = JwksServer::start(set).await;
    let verifier = server.verifier(DEFAULT_INTERVAL);

    let hs256 = sign(&header(Algorithm::HS256, Some("shared")), &access_claims(), &EncodingKey::from_secret(secret));
    assert_eq!(verifier.verify(&hs256).await, Err(VerifyError::UnsupportedAlgorithm));
    let sneaky = key.sign_with_kid("sneaky", &access_claims());
    assert_eq!(verifier.verify(&sneaky).await, Err(VerifyError::UnknownKey));
    // The real key in the same set still works.
    assert!(verifier.verify(&key.sign(&access_claims())).await.is_ok());
}
