//! JWT access and refresh tokens (HS256, separate keys), signed and verified with rules that
//! exclude each other (RFC 8725 section 3.11): each kind has its own key, its own JOSE `typ`
//! header and its own `token_type` claim, and verification checks all three.
//!
//! Verification pins HS256, requires `exp`, `iat`, `iss`, `sub` and `jti`, checks the issuer,
//! allows no leeway on `exp`, and refuses an `iat` or `nbf` more than [`CLOCK_SKEW_SECONDS`]
//! in the future.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use crate::config::Secrets;

/// JOSE `typ` of access tokens (RFC 9068).
pub const ACCESS_TYP: &str = "at+jwt";
/// JOSE `typ` of refresh tokens; ours, so that no access-token verifier accepts them.
pub const REFRESH_TYP: &str = "rt+jwt";
/// Tolerated clock difference between replicas for `iat`/`nbf` in the future. `exp` gets none.
pub const CLOCK_SKEW_SECONDS: i64 = 5;
/// Longer tokens are refused before any parsing; ours are a few hundred bytes.
pub const MAX_TOKEN_BYTES: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenType {
    Access,
    Refresh,
}

/// Claims of an access token. `userId` and `role` keep the go-zero seed's names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    /// The user id as a string (JWT `sub` is a string).
    pub sub: String,
    #[serde(rename = "userId")]
    pub user_id: i64,
    pub role: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    /// The session (refresh-token family) this token was issued in; Logout ends it.
    pub sid: String,
    pub token_type: TokenType,
}

/// Claims of a refresh token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshClaims {
    pub iss: String,
    pub sub: String,
    #[serde(rename = "userId")]
    pub user_id: i64,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    pub sid: String,
    pub token_type: TokenType,
}

/// Why a token was refused. The messages are what callers see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token expired")]
    Expired,
    #[error("token is not valid yet")]
    NotYetValid,
    #[error("wrong kind of token")]
    WrongType,
    #[error("invalid token")]
    Invalid,
}

/// What the service needs to know to issue a pair; timestamps are Unix seconds.
#[derive(Debug, Clone)]
pub struct PairSpec<'a> {
    pub user_id: i64,
    pub role: &'a str,
    pub session_id: &'a str,
    pub refresh_jti: &'a str,
    pub access_jti: &'a str,
    pub issued_at: i64,
    pub refresh_expires_at: i64,
}

pub struct SignedPair {
    pub access_token: String,
    pub refresh_token: String,
    pub access_expires_at: i64,
}

/// Keys and rules for both token kinds.
pub struct TokenKeys {
    issuer: String,
    access_ttl: i64,
    access_encoding: EncodingKey,
    access_decoding: DecodingKey,
    refresh_encoding: EncodingKey,
    refresh_decoding: DecodingKey,
    validation: Validation,
}

impl TokenKeys {
    pub fn new(secrets: &Secrets, issuer: &str, access_ttl_seconds: u64) -> Self {
        let access = secrets.access.expose_secret().as_bytes();
        let refresh = secrets.refresh.expose_secret().as_bytes();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.validate_nbf = true;
        validation.validate_aud = false;
        validation.set_issuer(&[issuer]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "sub", "jti"]);
        Self {
            issuer: issuer.to_owned(),
            access_ttl: i64::try_from(access_ttl_seconds).unwrap_or(i64::MAX),
            access_encoding: EncodingKey::from_secret(access),
            access_decoding: DecodingKey::from_secret(access),
            refresh_encoding: EncodingKey::from_secret(refresh),
            refresh_decoding: DecodingKey::from_secret(refresh),
            validation,
        }
    }

    pub fn access_ttl(&self) -> i64 {
        self.access_ttl
    }

    /// Signs both tokens of a pair. HS256 over the same claims gives the same bytes, so a
    /// pair re-signed from the same database row is identical to the first one.
    pub fn sign_pair(&self, spec: &PairSpec<'_>) -> Result<SignedPair, jsonwebtoken::errors::Error> {
        let access = AccessClaims {
            iss: self.issuer.clone(),
            sub: spec.user_id.to_string(),
            user_id: spec.user_id,
            role: spec.role.to_owned(),
            iat: spec.issued_at,
            exp: spec.issued_at.saturating_add(self.access_ttl),
            jti: spec.access_jti.to_owned(),
            sid: spec.session_id.to_owned(),
            token_type: TokenType::Access,
        };
        let refresh = RefreshClaims {
            iss: self.issuer.clone(),
            sub: spec.user_id.to_string(),
            user_id: spec.user_id,
            iat: spec.issued_at,
            exp: spec.refresh_expires_at,
            jti: spec.refresh_jti.to_owned(),
            sid: spec.session_id.to_owned(),
            token_type: TokenType::Refresh,
        };
        Ok(SignedPair {
            access_token: jsonwebtoken::encode(&header(ACCESS_TYP), &access, &self.access_encoding)?,
            refresh_token: jsonwebtoken::encode(&header(REFRESH_TYP), &refresh, &self.refresh_encoding)?,
            access_expires_at: access.exp,
        })
    }

    pub fn verify_access(&self, token: &str) -> Result<AccessClaims, TokenError> {
        let claims: AccessClaims = self.verify(token, &self.access_decoding, ACCESS_TYP)?;
        check_kind_and_times(claims.token_type, TokenType::Access, claims.iat)?;
        Ok(claims)
    }

    pub fn verify_refresh(&self, token: &str) -> Result<RefreshClaims, TokenError> {
        let claims: RefreshClaims = self.verify(token, &self.refresh_decoding, REFRESH_TYP)?;
        check_kind_and_times(claims.token_type, TokenType::Refresh, claims.iat)?;
        Ok(claims)
    }

    fn verify<T: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        key: &DecodingKey,
        expected_typ: &str,
    ) -> Result<T, TokenError> {
        if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Invalid);
        }
        let data = jsonwebtoken::decode::<T>(token, key, &self.validation).map_err(|err| match err.kind() {
            ErrorKind::ExpiredSignature => TokenError::Expired,
            ErrorKind::ImmatureSignature => TokenError::NotYetValid,
            _ => TokenError::Invalid,
        })?;
        // jsonwebtoken does not look at `typ`; the header check is ours.
        if data.header.typ.as_deref() != Some(expected_typ) {
            return Err(TokenError::WrongType);
        }
        Ok(data.claims)
    }
}

fn header(typ: &str) -> Header {
    let mut header = Header::new(Algorithm::HS256);
    header.typ = Some(typ.to_owned());
    header
}

fn check_kind_and_times(found: TokenType, expected: TokenType, iat: i64) -> Result<(), TokenError> {
    if found != expected {
        return Err(TokenError::WrongType);
    }
    if iat > now_unix().saturating_add(CLOCK_SKEW_SECONDS) {
        return Err(TokenError::NotYetValid);
    }
    Ok(())
}

/// Current Unix time in seconds.
pub fn now_unix() -> i64 {
    chrono::Utc::now().timestamp()
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use super::*;

    fn keys() -> TokenKeys {
        let secrets = Secrets {
            access: SecretString::from("a".repeat(40)),
            refresh: SecretString::from("r".repeat(40)),
            generated: false,
        };
        TokenKeys::new(&secrets, "auth-svc", 900)
    }

    fn spec(issued_at: i64) -> PairSpec<'static> {
        PairSpec {
            user_id: 7,
            role: "user",
            session_id: "fam",
            refresh_jti: "r1",
            access_jti: "a1",
            issued_at,
            refresh_expires_at: issued_at + 3600,
        }
    }

    #[test]
    fn a_pair_verifies_each_token_only_as_its_own_kind() {
        let keys = keys();
        let pair = keys.sign_pair(&spec(now_unix())).expect("sign");
        let access = keys.verify_access(&pair.access_token).expect("access verifies");
        assert_eq!((access.user_id, access.role.as_str(), access.sid.as_str()), (7, "user", "fam"));
        assert_eq!(keys.verify_refresh(&pair.refresh_token).expect("refresh verifies").jti, "r1");
        assert!(keys.verify_access(&pair.refresh_token).is_err());
        assert!(keys.verify_refresh(&pair.access_token).is_err());
    }

    #[test]
    fn signing_the_same_row_twice_gives_the_same_tokens() {
        let keys = keys();
        let now = now_unix();
        let first = keys.sign_pair(&spec(now)).expect("sign");
        let second = keys.sign_pair(&spec(now)).expect("sign");
        assert_eq!(first.access_token, second.access_token);
        assert_eq!(first.refresh_token, second.refresh_token);
    }

    #[test]
    fn expired_and_future_tokens_are_refused() {
        let keys = keys();
        let expired = keys.sign_pair(&spec(now_unix() - 901)).expect("sign");
        assert_eq!(keys.verify_access(&expired.access_token), Err(TokenError::Expired));
        let future = keys.sign_pair(&spec(now_unix() + 60)).expect("sign");
        assert_eq!(keys.verify_access(&future.access_token), Err(TokenError::NotYetValid));
    }

    #[test]
    fn garbage_is_invalid_not_a_panic() {
        let keys = keys();
        for token in ["", "a", "a.b", "a.b.c", "....", &"x".repeat(100_000)] {
            assert_eq!(keys.verify_access(token), Err(TokenError::Invalid), "{token:.20}");
        }
    }
}
