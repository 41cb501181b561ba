//! The rules an access token must pass, in two steps: what can be checked from the header
//! alone (before any key lookup, so a junk token never causes a JWKS fetch), then the signature
//! with the key its `kid` names, and the claims.

use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation, decode, decode_header, get_current_timestamp};
use serde::Deserialize;

use auth_token::{ACCESS_TYP, MAX_TOKEN_BYTES, TokenType};

use crate::{Claims, VerifyError, jwks::PublishedKey};

/// Tolerated clock difference for `iat`/`nbf` in the future (auth-svc allows the same).
const CLOCK_SKEW_SECONDS: i64 = 5;

/// What the header says, once it passed the header rules.
pub(crate) struct TokenHeader {
    pub(crate) algorithm: Algorithm,
    pub(crate) kid: String,
}

/// The claims as signed, with `nbf`, which auth-svc may set and `Claims` does not carry.
#[derive(Deserialize)]
struct SignedClaims {
    #[serde(flatten)]
    claims: Claims,
    nbf: Option<i64>,
}

pub(crate) struct TokenRules {
    eddsa: Validation,
    es256: Validation,
}

impl TokenRules {
    pub(crate) fn new(issuer: &str, leeway: Duration) -> Self {
        Self {
            eddsa: validation(Algorithm::EdDSA, issuer, leeway),
            es256: validation(Algorithm::ES256, issuer, leeway),
        }
    }

    /// The header rules: size, an asymmetric algorithm we publish keys for, `typ`, a `kid`.
    /// Keys embedded in the header (`jwk`, `jku`, `x5u`, `x5c`) are never looked at.
    pub(crate) fn read_header(&self, token: &str) -> Result<TokenHeader, VerifyError> {
        if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
            return Err(VerifyError::Malformed);
        }
        // `alg: none` and unknown algorithms already fail to decode here.
        let header = decode_header(token).map_err(|_| VerifyError::Malformed)?;
        if !matches!(header.alg, Algorithm::EdDSA | Algorithm::ES256) {
            return Err(VerifyError::UnsupportedAlgorithm);
        }
        // RFC 7515 4.1.11: extensions we do not understand must make the token invalid.
        if header.crit.is_some() {
            return Err(VerifyError::Malformed);
        }
        if header.typ.as_deref() != Some(ACCESS_TYP) {
            return Err(VerifyError::NotAccessToken);
        }
        let kid = header.kid.ok_or(VerifyError::UnknownKey)?;
        Ok(TokenHeader { algorithm: header.alg, kid })
    }

    /// The signature with `key`, then the claims.
    pub(crate) fn check(&self, token: &str, header: &TokenHeader, key: &PublishedKey) -> Result<Claims, VerifyError> {
        // Algorithm confusion: the key decides the algorithm, the token only has to agree.
        if key.algorithm != header.algorithm {
            return Err(VerifyError::UnsupportedAlgorithm);
        }
        let validation = match key.algorithm {
            Algorithm::EdDSA => &self.eddsa,
            Algorithm::ES256 => &self.es256,
            _ => return Err(VerifyError::UnsupportedAlgorithm),
        };
        let SignedClaims { claims, nbf } = decode::<SignedClaims>(token, &key.key, validation)
            .map_err(|error| match error.kind() {
                ErrorKind::Json(_) if names_another_kind(token, key, validation) => VerifyError::NotAccessToken,
                kind => refusal(kind),
            })?
            .claims;
        if claims.token_type != TokenType::Access {
            return Err(VerifyError::NotAccessToken);
        }
        let latest_start =
            i64::try_from(get_current_timestamp()).unwrap_or(i64::MAX).saturating_add(CLOCK_SKEW_SECONDS);
        if claims.iat > latest_start || nbf.is_some_and(|nbf| nbf > latest_start) {
            return Err(VerifyError::NotYetValid);
        }
        Ok(claims)
    }
}

/// The `token_type` claim alone, as signed.
#[derive(Deserialize)]
struct KindOnly {
    token_type: String,
}

/// Whether a signed token whose claims did not read names a kind other than `access` (say a
/// `token_type` that is no kind at all): that is "not an access token", as `typ` is, rather
/// than "invalid claims". Read only on that error path.
fn names_another_kind(token: &str, key: &PublishedKey, validation: &Validation) -> bool {
    decode::<KindOnly>(token, &key.key, validation).is_ok_and(|read| read.claims.token_type != "access")
}

fn validation(algorithm: Algorithm, issuer: &str, leeway: Duration) -> Validation {
    let mut validation = Validation::new(algorithm);
    validation.algorithms = vec![algorithm];
    validation.leeway = leeway.as_secs();
    validation.set_issuer(&[issuer]);
    // jsonwebtoken enforces exp, iss and sub from this list; `iat` and `jti` are enforced by
    // `Claims`, whose fields are not optional.
    validation.set_required_spec_claims(&["exp", "iat", "iss", "sub", "jti"]);
    // `nbf` gets the same clock skew as `iat`, which jsonwebtoken's leeway (also `exp`'s) is not.
    validation.validate_nbf = false;
    // `validate_aud` stays on with no audience configured: a token carrying `aud` is refused,
    // since this crate cannot tell whether it names us. auth-svc sets none.
    validation
}

fn refusal(kind: &ErrorKind) -> VerifyError {
    match kind {
        ErrorKind::ExpiredSignature => VerifyError::Expired,
        ErrorKind::InvalidIssuer => VerifyError::WrongIssuer,
        ErrorKind::InvalidSignature => VerifyError::InvalidSignature,
        ErrorKind::InvalidAlgorithm | ErrorKind::UnsupportedAlgorithm => VerifyError::UnsupportedAlgorithm,
        ErrorKind::Json(_)
        | ErrorKind::MissingRequiredClaim(_)
        | ErrorKind::InvalidClaimFormat(_)
        | ErrorKind::InvalidAudience
        | ErrorKind::InvalidSubject => VerifyError::InvalidClaims,
        _ => VerifyError::Malformed,
    }
}
