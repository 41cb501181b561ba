//! Signing and verification keys, each named by a key id (`kid`) that every token carries in
//! its header.
//!
//! Access tokens are signed by one key (HS256 with `auth.access_secret`, or an EdDSA/ES256 key
//! from `auth.keys` named by `auth.signing_key`) and verified by any key of the ring, so a key
//! can be rotated with no failed request (see "Key rotation" in the README). Refresh tokens are
//! verified by us alone and stay HS256 under `auth.refresh_secret`.
//!
//! Each verification key pins its own algorithm: a token's header `alg` must be the one of the
//! key its `kid` names, which rules out algorithm confusion (an HS256 token "signed" with a
//! public key's bytes names an EdDSA key and is refused).

use std::path::Path;

use jsonwebtoken::{
    Algorithm, DecodingKey, EncodingKey, Validation,
    jwk::{AlgorithmParameters, Jwk, PublicKeyUse},
};
use secrecy::{ExposeSecret, SecretString};

use rand::{Rng, distr::Alphanumeric};

use crate::config::{AuthConfig, KeyAlgorithm, KeyConfig, KeySource};

/// The HS256 keys after defaults are applied; `generated` says they are per-process. `access`
/// is `None` only when an asymmetric `signing_key` signs access tokens and no secret was set.
pub struct Secrets {
    pub access: Option<SecretString>,
    pub refresh: SecretString,
    pub generated: bool,
}

impl Secrets {
    /// The configured secrets, or fresh random ones for a development run.
    pub fn from_config(auth: &AuthConfig) -> Self {
        let asymmetric = auth.signing_key.is_some();
        match (&auth.access_secret, &auth.refresh_secret) {
            (access, Some(refresh)) => Self { access: access.clone(), refresh: refresh.clone(), generated: false },
            _ => Self { access: (!asymmetric).then(random_secret), refresh: random_secret(), generated: true },
        }
    }
}

fn random_secret() -> SecretString {
    let text: String = rand::rng().sample_iter(&Alphanumeric).take(64).map(char::from).collect();
    SecretString::from(text)
}

/// A key that signs tokens.
pub struct SigningKey {
    pub kid: String,
    pub algorithm: Algorithm,
    pub(super) encoding: EncodingKey,
}

/// A key that verifies tokens, with the rules that go with its algorithm.
pub struct VerifyingKey {
    pub kid: String,
    pub algorithm: Algorithm,
    pub(super) decoding: DecodingKey,
    /// Its public half as a JWK; `None` for HMAC keys, which are never published.
    pub jwk: Option<Jwk>,
}

/// An HMAC key under the id derived from it (see [`hmac_kid`]).
pub fn hmac_keys(secret: &SecretString) -> (SigningKey, VerifyingKey) {
    let bytes = secret.expose_secret().as_bytes();
    let kid = hmac_kid(secret);
    (
        SigningKey { kid: kid.clone(), algorithm: Algorithm::HS256, encoding: EncodingKey::from_secret(bytes) },
        VerifyingKey { kid, algorithm: Algorithm::HS256, decoding: DecodingKey::from_secret(bytes), jwk: None },
    )
}

/// The id of an HMAC key: "hs256-" and 16 characters of an HMAC of a fixed text under it. The
/// same secret gives the same id on every replica; the id tells nothing about the secret.
pub fn hmac_kid(secret: &SecretString) -> String {
    let key = EncodingKey::from_secret(secret.expose_secret().as_bytes());
    // HS256 over a fixed message cannot fail for any key length.
    let mac = jsonwebtoken::crypto::sign(b"auth-svc key id", &key, Algorithm::HS256).unwrap_or_default();
    format!("hs256-{}", mac.get(..16).unwrap_or(&mac))
}

/// A configured asymmetric key: always verifies, signs when its private half was given.
pub struct AsymmetricKey {
    pub verifying: VerifyingKey,
    pub signing: Option<SigningKey>,
}

/// Loads `auth.keys.<kid>`. Errors are one line naming the key, never showing key material.
pub fn load(kid: &str, config: &KeyConfig) -> Result<AsymmetricKey, String> {
    crate::config::check_kid(kid)?;
    let algorithm = match config.algorithm {
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        KeyAlgorithm::ES256 => Algorithm::ES256,
    };
    let source = config.source()?;
    let pem = match source {
        KeySource::PrivateFile(path) => read_pem(path, "private_key_file")?,
        KeySource::PublicFile(path) => read_pem(path, "public_key_file")?,
        KeySource::PrivatePem(pem) => pem.clone(),
        KeySource::PublicPem(pem) => SecretString::from(pem),
    };
    let pem = pem.expose_secret().as_bytes();
    if !source.is_private() {
        let decoding = match algorithm {
            Algorithm::EdDSA => DecodingKey::from_ed_pem(pem),
            _ => DecodingKey::from_ec_pem(pem),
        }
        .map_err(|_| format!("is not a {algorithm:?} public key in PEM (SubjectPublicKeyInfo)"))?;
        let jwk = Jwk::from_decoding_key(&decoding, Some(algorithm))
            .map_err(|_| format!("is not a {algorithm:?} public key in PEM (SubjectPublicKeyInfo)"))?;
        return Ok(AsymmetricKey { verifying: verifying_from_jwk(kid, algorithm, jwk)?, signing: None });
    }
    let wrong = || format!("is not a {algorithm:?} private key in PKCS#8 PEM (see the README: generating keys)");
    let encoding = match algorithm {
        Algorithm::EdDSA => EncodingKey::from_ed_pem(pem),
        _ => EncodingKey::from_ec_pem(pem),
    }
    .map_err(|_| wrong())?;
    let jwk = Jwk::from_encoding_key(&encoding, algorithm).map_err(|_| wrong())?;
    let verifying = verifying_from_jwk(kid, algorithm, jwk)?;
    let signing = SigningKey { kid: kid.to_owned(), algorithm, encoding };
    // A key that cannot verify its own signature must not start signing tokens.
    let probe = jsonwebtoken::crypto::sign(b"probe", &signing.encoding, algorithm).map_err(|_| wrong())?;
    if !jsonwebtoken::crypto::verify(&probe, b"probe", &verifying.decoding, algorithm).unwrap_or(false) {
        return Err(wrong());
    }
    Ok(AsymmetricKey { verifying, signing: Some(signing) })
}

fn verifying_from_jwk(kid: &str, algorithm: Algorithm, mut jwk: Jwk) -> Result<VerifyingKey, String> {
    jwk.common.key_id = Some(kid.to_owned());
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    let expected = match algorithm {
        Algorithm::EdDSA => matches!(jwk.algorithm, AlgorithmParameters::OctetKeyPair(_)),
        _ => matches!(jwk.algorithm, AlgorithmParameters::EllipticCurve(_)),
    };
    if !expected {
        return Err(format!("is not a {algorithm:?} key"));
    }
    let decoding = DecodingKey::from_jwk(&jwk).map_err(|_| format!("is not a usable {algorithm:?} key"))?;
    Ok(VerifyingKey { kid: kid.to_owned(), algorithm, decoding, jwk: Some(jwk) })
}

fn read_pem(path: &Path, key: &str) -> Result<SecretString, String> {
    std::fs::read_to_string(path)
        .map(SecretString::from)
        .map_err(|err| format!("{key}: cannot read {}: {err}", path.display()))
}

/// Verification rules shared by every key; the algorithm is pinned per key.
pub fn validation(algorithm: Algorithm, issuer: &str) -> Validation {
    let mut validation = Validation::new(algorithm);
    validation.leeway = 0;
    validation.validate_nbf = true;
    validation.validate_aud = false;
    validation.set_issuer(&[issuer]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "sub", "jti"]);
    validation
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/keys").join(name)
    }

    fn key(algorithm: KeyAlgorithm) -> KeyConfig {
        KeyConfig {
            algorithm,
            private_key_file: None,
            private_key_pem: None,
            public_key_file: None,
            public_key_pem: None,
        }
    }

    #[test]
    fn private_and_public_halves_load_to_the_same_jwk() {
        for (algorithm, name) in [(KeyAlgorithm::EdDSA, "ed25519-a"), (KeyAlgorithm::ES256, "p256-a")] {
            let private =
                load("k1", &KeyConfig { private_key_file: Some(fixture(&format!("{name}.pem"))), ..key(algorithm) })
                    .expect("private key loads");
            let public =
                load("k1", &KeyConfig { public_key_file: Some(fixture(&format!("{name}.pub.pem"))), ..key(algorithm) })
                    .expect("public key loads");
            assert!(private.signing.is_some() && public.signing.is_none());
            assert_eq!(private.verifying.jwk, public.verifying.jwk, "{name}");
        }
    }

    #[test]
    fn a_pem_of_the_other_algorithm_or_no_pem_is_refused_without_echoing_it() {
        let wrong = KeyConfig { private_key_file: Some(fixture("p256-a.pem")), ..key(KeyAlgorithm::EdDSA) };
        let err = load("k1", &wrong).err().expect("refused");
        assert!(err.contains("EdDSA") && !err.contains("BEGIN"), "{err}");
        let garbage = KeyConfig { private_key_pem: Some(SecretString::from("not a key")), ..key(KeyAlgorithm::ES256) };
        assert!(load("k1", &garbage).is_err());
        let missing = KeyConfig { private_key_file: Some(fixture("nope.pem")), ..key(KeyAlgorithm::ES256) };
        assert!(load("k1", &missing).err().expect("refused").contains("cannot read"));
        assert!(load("k1", &key(KeyAlgorithm::ES256)).err().expect("no source").contains("exactly one"));
    }

    #[test]
    fn hmac_key_ids_depend_on_the_secret_only() {
        let a = SecretString::from("a".repeat(40));
        assert_eq!(hmac_kid(&a), hmac_kid(&SecretString::from("a".repeat(40))));
        assert_ne!(hmac_kid(&a), hmac_kid(&SecretString::from("b".repeat(40))));
        assert!(hmac_kid(&a).starts_with("hs256-") && hmac_kid(&a).len() == 22);
    }
}
