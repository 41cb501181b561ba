//! JWT access and refresh tokens, signed and verified with rules that exclude each other
//! (RFC 8725 section 3.11): each kind has its own keys, its own JOSE `typ` header and its own
//! `token_type` claim, and verification checks all three.
//!
//! Every token names its key in the header `kid`; verification looks the key up (an unknown or
//! missing `kid` is refused) and pins that key's algorithm. Access tokens are HS256 by default,
//! or EdDSA/ES256 (see `keys`); refresh tokens are always HS256. Verification requires `exp`,
//! `iat`, `iss`, `sub` and `jti`, checks the issuer,
//! allows no leeway on `exp`, and refuses an `iat` or `nbf` more than [`CLOCK_SKEW_SECONDS`]
//! in the future.

use std::collections::HashMap;

use jsonwebtoken::{Algorithm, Header, Validation, errors::ErrorKind, jwk::Jwk};
use serde::{Deserialize, Serialize};

use super::keys::Secrets;
use super::keys::{self, AsymmetricKey, SigningKey, VerifyingKey};
use crate::config::{self, AuthConfig, ConfigError};

/// JOSE `typ` of refresh tokens; ours, so that no access-token verifier accepts them.
pub const REFRESH_TYP: &str = "rt+jwt";
/// JOSE `typ` of login challenges (password accepted, second factor awaited): refused by the
/// access and refresh checks as the wrong kind, as they refuse each other.
pub const MFA_CHALLENGE_TYP: &str = "mfa+jwt";
/// Tolerated clock difference between replicas for `iat`/`nbf` in the future. `exp` gets none.
pub const CLOCK_SKEW_SECONDS: i64 = 5;
/// The access-token contract every reader shares (see the `auth-token` crate).
pub use auth_token::{ACCESS_TYP, AccessClaims, AnyAccessClaims, Audience, ClientClaims, MAX_TOKEN_BYTES, TokenType};

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

/// Claims of a login challenge (VerifyMfa). Signed with the refresh-token key, which only this
/// service holds; `jti` is the challenge's row, which makes it single use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChallengeClaims {
    pub iss: String,
    pub sub: String,
    #[serde(rename = "userId")]
    pub user_id: i64,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    pub token_type: ChallengeTokenType,
}

/// The `token_type` claim of a challenge: neither `access` nor `refresh`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChallengeTokenType {
    MfaChallenge,
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
    /// How the session was authenticated, as its rows store it: RFC 8176 method names,
    /// space-separated (`pwd`, `pwd otp`).
    pub amr: &'a str,
}

/// A service account's access token to issue (the client credentials grant).
#[derive(Debug, Clone)]
pub struct ClientTokenSpec<'a> {
    pub client_id: &'a str,
    pub role: &'a str,
    pub scopes: &'a [String],
    pub audiences: &'a [String],
    pub token_id: &'a str,
    pub issued_at: i64,
    pub ttl_seconds: i64,
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
    access_signing: SigningKey,
    /// The JOSE headers of each kind (algorithm, `typ`, `kid`), built once.
    access_header: Header,
    refresh_header: Header,
    challenge_header: Header,
    /// Every key that verifies access tokens, by key id.
    access_verifying: HashMap<String, Verifier>,
    refresh_signing: SigningKey,
    refresh_verifying: Verifier,
    /// Public keys of `access_verifying`, the signing key first.
    jwks: Vec<Jwk>,
}

/// A verification key with the rules pinned to its algorithm.
struct Verifier {
    key: VerifyingKey,
    validation: Validation,
}

impl Verifier {
    fn new(key: VerifyingKey, issuer: &str) -> Self {
        let validation = keys::validation(key.algorithm, issuer);
        Self { key, validation }
    }
}

impl TokenKeys {
    /// Every key of `auth.keys`, loaded (files read, PEM parsed), with `secrets` for the HMAC
    /// keys; errors name the key.
    pub fn from_config(auth: &AuthConfig, secrets: &Secrets) -> Result<Self, ConfigError> {
        let mut loaded = Vec::new();
        for (kid, key) in &auth.keys {
            let key = keys::load(kid, key).map_err(|why| config::invalid(&format!("auth.keys.{kid}"), &why))?;
            loaded.push(key);
        }
        Self::with_keys(secrets, loaded, auth.signing_key.as_deref(), &auth.issuer, auth.access_expire.get())
            .map_err(|why| config::invalid("auth.signing_key", &why))
    }

    /// HS256 only: `secrets.access` signs access tokens (it must be set), `secrets.refresh`
    /// refresh tokens.
    pub fn new(secrets: &Secrets, issuer: &str, access_ttl_seconds: u64) -> Result<Self, String> {
        Self::with_keys(secrets, Vec::new(), None, issuer, access_ttl_seconds)
    }

    /// The ring: `asymmetric` keys verify (and are published); `signing_kid` names the one that
    /// signs access tokens, or `None` for HS256 under `secrets.access`. The access secret, when
    /// set, always verifies, so tokens signed before a switch to an asymmetric key live on.
    pub fn with_keys(
        secrets: &Secrets,
        asymmetric: Vec<AsymmetricKey>,
        signing_kid: Option<&str>,
        issuer: &str,
        access_ttl_seconds: u64,
    ) -> Result<Self, String> {
        let mut access_verifying = HashMap::new();
        let mut access_signing = None;
        if let Some(secret) = &secrets.access {
            let (signing, verifying) = keys::hmac_keys(secret);
            access_verifying.insert(verifying.kid.clone(), Verifier::new(verifying, issuer));
            access_signing = signing_kid.is_none().then_some(signing);
        }
        let mut jwks = Vec::new();
        for key in asymmetric {
            if signing_kid == Some(key.verifying.kid.as_str()) {
                access_signing = key.signing;
            }
            jwks.extend(key.verifying.jwk.clone());
            access_verifying.insert(key.verifying.kid.clone(), Verifier::new(key.verifying, issuer));
        }
        let access_signing = access_signing.ok_or_else(|| match signing_kid {
            Some(kid) => format!("names no key with a private half: {kid}"),
            None => "no access secret and no signing key".to_owned(),
        })?;
        jwks.sort_by_key(|jwk| jwk.common.key_id.as_deref() != Some(access_signing.kid.as_str()));
        let (refresh_signing, refresh_verifying) = keys::hmac_keys(&secrets.refresh);
        if access_verifying.contains_key(&refresh_verifying.kid) {
            return Err("the access and refresh secrets must differ".to_owned());
        }
        Ok(Self {
            issuer: issuer.to_owned(),
            access_ttl: i64::try_from(access_ttl_seconds).unwrap_or(i64::MAX),
            access_header: header(ACCESS_TYP, &access_signing),
            refresh_header: header(REFRESH_TYP, &refresh_signing),
            challenge_header: header(MFA_CHALLENGE_TYP, &refresh_signing),
            access_signing,
            access_verifying,
            refresh_signing,
            refresh_verifying: Verifier::new(refresh_verifying, issuer),
            jwks,
        })
    }

    pub fn access_ttl(&self) -> i64 {
        self.access_ttl
    }

    /// Key id and algorithm of the key signing access tokens.
    pub fn access_signing_key(&self) -> (&str, Algorithm) {
        (&self.access_signing.kid, self.access_signing.algorithm)
    }

    /// The JWS names of the algorithms that verify access tokens, the signing one first.
    pub fn access_algorithms(&self) -> Vec<&'static str> {
        let name = |algorithm: Algorithm| match algorithm {
            Algorithm::HS256 => "HS256",
            Algorithm::EdDSA => "EdDSA",
            Algorithm::ES256 => "ES256",
            _ => "other",
        };
        let mut names = vec![name(self.access_signing.algorithm)];
        for verifier in self.access_verifying.values() {
            let algorithm = name(verifier.key.algorithm);
            if !names.contains(&algorithm) {
                names.push(algorithm);
            }
        }
        names
    }

    /// The public keys verifying access tokens (the JWKS); HMAC keys are never among them.
    pub fn jwks(&self) -> &[Jwk] {
        &self.jwks
    }

    /// Signs both tokens of a pair. HS256, EdDSA (RFC 8032) and our ES256 (RFC 6979 nonces)
    /// are deterministic, so a pair re-signed from the same database row with the same signing
    /// key (and role) is identical to the first one.
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
            amr: spec.amr.split(' ').filter(|method| !method.is_empty()).map(str::to_owned).collect(),
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
            access_token: jsonwebtoken::encode(&self.access_header, &access, &self.access_signing.encoding)?,
            refresh_token: jsonwebtoken::encode(&self.refresh_header, &refresh, &self.refresh_signing.encoding)?,
            access_expires_at: access.exp,
        })
    }

    /// Signs a service account's access token with the access-token key; its `sid` is its own
    /// id, so revocation (RFC 7009) lists it like a session. Returns the token and its `exp`.
    pub fn sign_client_access(&self, spec: &ClientTokenSpec<'_>) -> Result<(String, i64), jsonwebtoken::errors::Error> {
        let claims = ClientClaims {
            iss: self.issuer.clone(),
            sub: spec.client_id.to_owned(),
            client_id: spec.client_id.to_owned(),
            role: spec.role.to_owned(),
            scope: spec.scopes.join(" "),
            aud: Audience(spec.audiences.to_vec()),
            iat: spec.issued_at,
            exp: spec.issued_at.saturating_add(spec.ttl_seconds),
            jti: spec.token_id.to_owned(),
            sid: spec.token_id.to_owned(),
            token_type: TokenType::Access,
        };
        let token = jsonwebtoken::encode(&self.access_header, &claims, &self.access_signing.encoding)?;
        Ok((token, claims.exp))
    }

    /// Verifies an access token of either kind (a user's or a service account's) and names the
    /// key that signed it.
    pub fn verify_any_access(&self, token: &str) -> Result<(AnyAccessClaims, &str), TokenError> {
        let (claims, kid): (AnyAccessClaims, _) = verify(token, ACCESS_TYP, |kid| self.access_verifying.get(kid))?;
        check_kind_and_times(claims.token_type(), TokenType::Access, claims.iat())?;
        Ok((claims, kid))
    }

    /// A user's access token only: a service account's is refused as the wrong kind.
    pub fn verify_access(&self, token: &str) -> Result<AccessClaims, TokenError> {
        self.verify_access_with_kid(token).map(|(claims, _)| claims)
    }

    /// Verifies a user's access token and names the key that signed it.
    pub fn verify_access_with_kid(&self, token: &str) -> Result<(AccessClaims, &str), TokenError> {
        match self.verify_any_access(token)? {
            (AnyAccessClaims::User(claims), kid) => Ok((claims, kid)),
            (AnyAccessClaims::Client(_), _) => Err(TokenError::WrongType),
        }
    }

    /// Signs the login challenge `challenge_id` of `user_id`, open until `expires_at`.
    pub fn sign_challenge(
        &self,
        user_id: i64,
        challenge_id: &str,
        issued_at: i64,
        expires_at: i64,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let claims = ChallengeClaims {
            iss: self.issuer.clone(),
            sub: user_id.to_string(),
            user_id,
            iat: issued_at,
            exp: expires_at,
            jti: challenge_id.to_owned(),
            token_type: ChallengeTokenType::MfaChallenge,
        };
        jsonwebtoken::encode(&self.challenge_header, &claims, &self.refresh_signing.encoding)
    }

    pub fn verify_challenge(&self, token: &str) -> Result<ChallengeClaims, TokenError> {
        let refresh = &self.refresh_verifying;
        let (claims, _): (ChallengeClaims, _) =
            verify(token, MFA_CHALLENGE_TYP, |kid| (kid == refresh.key.kid).then_some(refresh))?;
        if claims.iat > now_unix().saturating_add(CLOCK_SKEW_SECONDS) {
            return Err(TokenError::NotYetValid);
        }
        Ok(claims)
    }

    pub fn verify_refresh(&self, token: &str) -> Result<RefreshClaims, TokenError> {
        let refresh = &self.refresh_verifying;
        let (claims, _): (RefreshClaims, _) =
            verify(token, REFRESH_TYP, |kid| (kid == refresh.key.kid).then_some(refresh))?;
        check_kind_and_times(claims.token_type, TokenType::Refresh, claims.iat)?;
        Ok(claims)
    }
}

/// Checks a token against the key its header's `kid` names (a token without one, or naming a
/// key not in the ring, is refused) under that key's pinned algorithm.
fn verify<'k, T: serde::de::DeserializeOwned>(
    token: &str,
    expected_typ: &str,
    key_for: impl FnOnce(&str) -> Option<&'k Verifier>,
) -> Result<(T, &'k str), TokenError> {
    if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::Invalid);
    }
    let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
    let verifier = header.kid.as_deref().and_then(key_for).ok_or(TokenError::Invalid)?;
    if header.alg != verifier.key.algorithm {
        return Err(TokenError::Invalid);
    }
    let data =
        jsonwebtoken::decode::<T>(token, &verifier.key.decoding, &verifier.validation).map_err(|err| {
            match err.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::ImmatureSignature => TokenError::NotYetValid,
                _ => TokenError::Invalid,
            }
        })?;
    // jsonwebtoken does not look at `typ`; the header check is ours.
    if data.header.typ.as_deref() != Some(expected_typ) {
        return Err(TokenError::WrongType);
    }
    Ok((data.claims, &verifier.key.kid))
}

fn header(typ: &str, key: &SigningKey) -> Header {
    let mut header = Header::new(key.algorithm);
    header.typ = Some(typ.to_owned());
    header.kid = Some(key.kid.clone());
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
mod tests;
