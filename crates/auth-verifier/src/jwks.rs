//! Turns a JWKS document into the keys this crate will verify with: one `DecodingKey` per
//! `kid`, each kept with the one algorithm it may verify.
//!
//! Only Ed25519 (`OKP`, EdDSA) and P-256 (`EC`, ES256) signing keys are kept. Everything else is
//! skipped, above all `kty: "oct"`: `DecodingKey::from_jwk` would happily turn one into an HMAC
//! secret, and a published symmetric key would let anyone mint tokens.

use std::collections::HashMap;
use std::sync::Arc;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, KeyOperations, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;

/// A published verification key and the only algorithm it is accepted with. Not `Clone`: cloning
/// a `DecodingKey` copies its bytes, so the set shares each key behind an `Arc` instead, and a
/// lookup per verified token costs no allocation.
pub(crate) struct PublishedKey {
    pub(crate) algorithm: Algorithm,
    pub(crate) key: DecodingKey,
}

/// The usable keys of one JWKS document, by `kid`.
#[derive(Clone, Default)]
pub(crate) struct KeySet {
    keys: HashMap<String, Arc<PublishedKey>>,
}

/// The document's shape, with each key left raw so that one key this crate cannot read does not
/// make it drop the whole set.
#[derive(Deserialize)]
struct RawJwkSet {
    keys: Vec<serde_json::Value>,
}

impl KeySet {
    /// Parses a JWKS document. Fails only when the document itself is not a JWKS; keys that
    /// are unusable are skipped (logged at debug level).
    pub(crate) fn from_json(body: &[u8]) -> Result<Self, serde_json::Error> {
        let raw: RawJwkSet = serde_json::from_slice(body)?;
        let mut keys = HashMap::new();
        for value in raw.keys {
            let Ok(jwk) = serde_json::from_value::<Jwk>(value) else {
                tracing::debug!("skipping a JWK that does not parse");
                continue;
            };
            let Some((kid, key)) = usable_key(&jwk) else {
                tracing::debug!(kid = ?jwk.common.key_id, "skipping a JWK that is not an EdDSA or ES256 signing key");
                continue;
            };
            if keys.contains_key(&kid) {
                // Two keys under one kid: keep the first, as `JwkSet::find` would.
                tracing::warn!(%kid, "JWKS lists a kid twice; keeping the first key");
                continue;
            }
            keys.insert(kid, Arc::new(key));
        }
        Ok(Self { keys })
    }

    pub(crate) fn get(&self, kid: &str) -> Option<&Arc<PublishedKey>> {
        self.keys.get(kid)
    }

    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// The `kid` and key of a JWK this crate verifies with, or `None` to skip it.
fn usable_key(jwk: &Jwk) -> Option<(String, PublishedKey)> {
    let kid = jwk.common.key_id.clone()?;
    if jwk.common.public_key_use.as_ref().is_some_and(|usage| *usage != PublicKeyUse::Signature) {
        return None;
    }
    if jwk.common.key_operations.as_ref().is_some_and(|ops| !ops.contains(&KeyOperations::Verify)) {
        return None;
    }
    // The algorithm follows from the key type and curve, never from the token.
    let (algorithm, key_len) = match &jwk.algorithm {
        AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => (Algorithm::EdDSA, 32),
        // SEC1 uncompressed point: 0x04 || x || y.
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => (Algorithm::ES256, 65),
        _ => return None,
    };
    // A key that names an algorithm must name the one its type implies.
    if jwk.common.key_algorithm.is_some_and(|named| named != KeyAlgorithm::from(algorithm)) {
        return None;
    }
    let key = DecodingKey::from_jwk(jwk).ok()?;
    if key.try_get_as_bytes().ok()?.len() != key_len {
        return None;
    }
    Some((kid, PublishedKey { algorithm, key }))
}
