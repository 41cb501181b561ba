//! Which JWKS entries become verification keys.

use jsonwebtoken::Algorithm;
use serde_json::json;

use super::support::*;
use crate::jwks::KeySet;

fn parse(keys: serde_json::Value) -> KeySet {
    KeySet::from_json(json!({ "keys": keys }).to_string().as_bytes()).unwrap()
}

#[test]
fn ed25519_and_p256_signing_keys_are_kept_with_their_algorithm() {
    let set = parse(json!([ed_a().jwk(), p256_a().jwk()]));
    assert_eq!(set.len(), 2);
    assert_eq!(set.get("ed-a").unwrap().algorithm, Algorithm::EdDSA);
    assert_eq!(set.get("p256-a").unwrap().algorithm, Algorithm::ES256);
}

#[test]
fn everything_else_is_skipped_without_losing_the_good_keys() {
    let with = |changes: serde_json::Value| {
        let mut jwk = serde_json::to_value(ed_a().jwk()).unwrap();
        for (name, value) in changes.as_object().unwrap() {
            jwk[name] = value.clone();
        }
        jwk
    };
    let mut no_use = serde_json::to_value(ed_b().jwk()).unwrap();
    no_use.as_object_mut().unwrap().remove("use");
    let set = parse(json!([
        {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac", "alg": "HS256", "use": "sig"},
        {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac-as-eddsa", "alg": "EdDSA", "use": "sig"},
        {"kty": "RSA", "n": "AQAB", "e": "AQAB", "kid": "rsa", "alg": "RS256", "use": "sig"},
        {"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA", "kid": "p384", "alg": "ES384"},
        {"kty": "XYZ", "kid": "unknown-kty"},
        with(json!({"kid": "for-encryption", "use": "enc"})),
        with(json!({"kid": "wrong-alg", "alg": "ES256"})),
        with(json!({"kid": "hs-alg", "alg": "HS256"})),
        with(json!({"kid": "sign-only", "key_ops": ["sign"]})),
        with(json!({"kid": "short", "x": "AAAA"})),
        with(json!({"kid": "not-base64", "x": "!!!"})),
        with(json!({"kid": null})),
        "not even an object",
        ed_a().jwk(),
        no_use,
    ]));

    assert_eq!(set.len(), 2, "only ed-a and ed-b (no `use` is accepted) survive");
    assert!(set.get("ed-a").is_some());
    assert!(set.get("ed-b").is_some());
}

#[test]
fn a_document_that_is_not_a_jwks_is_an_error() {
    assert!(KeySet::from_json(b"{}").is_err());
    assert!(KeySet::from_json(b"[]").is_err());
    assert!(KeySet::from_json(b"{\"keys\": {}}").is_err());
}

#[test]
fn a_duplicate_kid_keeps_the_first_key() {
    let mut second = serde_json::to_value(p256_a().jwk()).unwrap();
    second["kid"] = json!("ed-a");
    let set = parse(json!([ed_a().jwk(), second]));
    assert_eq!(set.get("ed-a").unwrap().algorithm, Algorithm::EdDSA);
}
