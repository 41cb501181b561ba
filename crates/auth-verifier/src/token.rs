//! The rules an access token must pass, in two steps: what can be checked from the header
//! alone (before any key lookup, so a junk token never causes a JWKS fetch), then the signature
//! with the key its `kid` names, and the claims.

use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation, decode, decode_header, get_current_timestamp};
use serde::Deserialize;
use serde_json::Value;

use auth_token::{ACCESS_TYP, Audience, MAX_TOKEN_BYTES, TokenType};

use crate::{Claims, VerifyError, jwks::PublishedKey};

/// Tolerated clock difference for `iat`/`nbf` in the future (auth-svc allows the same).
const CLOCK_SKEW_SECONDS: i64 = 5;

/// What the header says, once it passed the header rules.
pub(crate) struct TokenHeader {
    pub(crate) algorithm: Algorithm,
    pub(crate) kid: String,
}

/// The registered claims checked here that `Claims` does not carry for every kind of token:
/// `nbf` (auth-svc may set it), and `aud` as signed (a user's claims have no place for it).
/// Read from the same JSON as `Claims` rather than around it with `#[serde(flatten)]`, which
/// would hand `aud` to this struct only and leave a client's own `aud` empty.
#[derive(Deserialize)]
struct CheckedHere {
    nbf: Option<i64>,
    aud: Option<Audience>,
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

    /// The signature with `key`, then the claims; `audience` is the one `aud` must list, or
    /// `None` when the token must carry no `aud` at all.
    pub(crate) fn check(
        &self,
        token: &str,
        header: &TokenHeader,
        key: &PublishedKey,
        audience: Option<&str>,
    ) -> Result<Claims, VerifyError> {
        // Algorithm confusion: the key decides the algorithm, the token only has to agree.
        if key.algorithm != header.algorithm {
            return Err(VerifyError::UnsupportedAlgorithm);
        }
        let validation = match key.algorithm {
            Algorithm::EdDSA => &self.eddsa,
            Algorithm::ES256 => &self.es256,
            _ => return Err(VerifyError::UnsupportedAlgorithm),
        };
        let signed = decode::<Value>(token, &key.key, validation).map_err(|error| refusal(error.kind()))?.claims;
        let claims = Claims::deserialize(&signed).map_err(|_| {
            if names_another_kind(&signed) { VerifyError::NotAccessToken } else { VerifyError::InvalidClaims }
        })?;
        if claims.token_type() != TokenType::Access {
            return Err(VerifyError::NotAccessToken);
        }
        let CheckedHere { nbf, aud } = CheckedHere::deserialize(&signed).map_err(|_| VerifyError::InvalidClaims)?;
        let latest_start =
            i64::try_from(get_current_timestamp()).unwrap_or(i64::MAX).saturating_add(CLOCK_SKEW_SECONDS);
        if claims.iat() > latest_start || nbf.is_some_and(|nbf| nbf > latest_start) {
            return Err(VerifyError::NotYetValid);
        }
        check_audience(aud.as_ref(), audience)?;
        Ok(claims)
    }
}

/// Whether signed claims that did not read as `Claims` name a kind other than `access` (say a
/// `token_type` that is no kind at all): that is "not an access token", as `typ` is, rather
/// than "invalid claims".
fn names_another_kind(signed: &Value) -> bool {
    signed.get("token_type").and_then(Value::as_str).is_some_and(|kind| kind != "access")
}

/// `aud` against the audience required, if any. Without one, any `aud` is refused: this
/// service cannot tell whether the token names it. With one, a token naming no audience is
/// refused too (RFC 9068 section 4: resource servers must check `aud`).
fn check_audience(signed: Option<&Audience>, required: Option<&str>) -> Result<(), VerifyError> {
    match (signed, required) {
        (None, None) => Ok(()),
        (Some(_), None) => Err(VerifyError::WrongAudience),
        (None, Some(_)) => Err(VerifyError::MissingAudience),
        (Some(signed), Some(required)) if signed.contains(required) => Ok(()),
        (Some(_), Some(_)) => Err(VerifyError::WrongAudience),
    }
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
    // `aud` is checked by `check_audience`: the audience differs per route (one `Validation`
    // per route would be needed), and jsonwebtoken lets an `aud` it cannot parse pass.
    validation.validate_aud = false;
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
        | ErrorKind::InvalidSubject => VerifyError::InvalidClaims,
        _ => VerifyError::Malformed,
    }
}
