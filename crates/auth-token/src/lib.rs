//! The access-token contract, written once for everyone who reads a token: auth-svc (which
//! issues and checks them), the gateway (which forwards them) and `auth-verifier` (which checks
//! them in other services).
//!
//! - [`bearer_token`]: how a token travels (`authorization: Bearer <token>`, RFC 6750).
//! - [`AccessClaims`]: what a user's access token says; [`ClientClaims`]: what a service
//!   account's says (client credentials grant); [`AnyAccessClaims`]: either, for readers that
//!   accept both.
//! - [`MAX_TOKEN_BYTES`], [`ACCESS_TYP`]: the limits and names every reader checks.

use http::{HeaderMap, header::AUTHORIZATION};
use serde::{Deserialize, Serialize};

/// Longest token (access or refresh) accepted; longer ones are refused before any parsing.
/// Ours are a few hundred bytes.
pub const MAX_TOKEN_BYTES: usize = 4096;

/// JOSE `typ` of access tokens (RFC 9068).
pub const ACCESS_TYP: &str = "at+jwt";

/// The `token_type` claim: access and refresh tokens must never pass for each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenType {
    Access,
    Refresh,
}

impl TokenType {
    /// The claim's value as it is signed: `access` or `refresh`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Access => "access",
            Self::Refresh => "refresh",
        }
    }
}

/// Claims of an access token. `userId` and `role` keep the go-zero tutorial's names; claims
/// not listed here are ignored when reading.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Issuer; always the configured one once verified.
    pub iss: String,
    /// The user id as a string (JWT `sub` is a string).
    pub sub: String,
    /// The user id as a number.
    #[serde(rename = "userId")]
    pub user_id: i64,
    /// The user's role when the token was issued (a later change shows only in new tokens).
    pub role: String,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Expires at, Unix seconds.
    pub exp: i64,
    /// The token's unique id.
    pub jti: String,
    /// The session (refresh-token family) the token was issued in; Logout ends it.
    pub sid: String,
    /// Always [`TokenType::Access`] once verified.
    pub token_type: TokenType,
    /// How the session was authenticated (RFC 8176): `pwd`, then `otp` when a second factor
    /// was checked. Absent in tokens issued before it was written: read that as `pwd`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amr: Vec<String>,
}

impl AccessClaims {
    /// Whether the session passed authentication method `method` (e.g. `otp`).
    pub fn has_amr(&self, method: &str) -> bool {
        self.amr.iter().any(|named| named == method)
    }
}

/// Claims of a service account's access token (the client credentials grant, RFC 6749
/// section 4.4, in RFC 9068's profile). Same `typ` and keys as a user's token; it has
/// `client_id` where a user's token has `userId`, which is how readers tell them apart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientClaims {
    pub iss: String,
    /// The client id (RFC 9068 section 2.2: `sub` is the client when no user is involved).
    pub sub: String,
    pub client_id: String,
    /// The client's role when the token was issued.
    pub role: String,
    /// The scopes granted, space-separated (RFC 6749 section 3.3); empty when none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scope: String,
    /// The audiences asked for (RFC 8707); absent when none was.
    #[serde(default, skip_serializing_if = "Audience::is_empty")]
    pub aud: Audience,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    /// One id per issued token, so that revocation (RFC 7009) works as for a user's session.
    pub sid: String,
    /// Always [`TokenType::Access`] once verified.
    pub token_type: TokenType,
}

impl ClientClaims {
    /// The granted scopes, one by one.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.split(' ').filter(|scope| !scope.is_empty())
    }

    pub fn has_scope(&self, wanted: &str) -> bool {
        self.scopes().any(|scope| scope == wanted)
    }
}

/// The `aud` claim: JWT allows one string or an array (RFC 7519 section 4.1.3); it is written
/// as a string when there is one audience.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Audience(pub Vec<String>);

impl Audience {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, audience: &str) -> bool {
        self.0.iter().any(|named| named == audience)
    }
}

impl Serialize for Audience {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [one] => serializer.serialize_str(one),
            many => many.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Audience {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(String),
            Many(Vec<String>),
        }
        Ok(Self(match OneOrMany::deserialize(deserializer)? {
            OneOrMany::One(one) => vec![one],
            OneOrMany::Many(many) => many,
        }))
    }
}

/// A verified access token of either kind. A token with `client_id` is a service account's
/// (whatever else it carries); any other must be a user's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AnyAccessClaims {
    Client(ClientClaims),
    User(AccessClaims),
}

impl AnyAccessClaims {
    pub fn token_type(&self) -> TokenType {
        match self {
            Self::Client(claims) => claims.token_type,
            Self::User(claims) => claims.token_type,
        }
    }

    pub fn iat(&self) -> i64 {
        match self {
            Self::Client(claims) => claims.iat,
            Self::User(claims) => claims.iat,
        }
    }

    /// The session (user) or the token's own id (client) that revocation names.
    pub fn sid(&self) -> &str {
        match self {
            Self::Client(claims) => &claims.sid,
            Self::User(claims) => &claims.sid,
        }
    }

    /// The user id as a string, or the client id.
    pub fn sub(&self) -> &str {
        match self {
            Self::Client(claims) => &claims.sub,
            Self::User(claims) => &claims.sub,
        }
    }

    /// The user's or the client's role when the token was issued.
    pub fn role(&self) -> &str {
        match self {
            Self::Client(claims) => &claims.role,
            Self::User(claims) => &claims.role,
        }
    }

    /// The user id; `None` for a service account.
    pub fn user_id(&self) -> Option<i64> {
        match self {
            Self::Client(_) => None,
            Self::User(claims) => Some(claims.user_id),
        }
    }

    /// The client id; `None` for a user.
    pub fn client_id(&self) -> Option<&str> {
        match self {
            Self::Client(claims) => Some(&claims.client_id),
            Self::User(_) => None,
        }
    }

    /// The granted scopes; none for a user (a user's token carries no `scope`).
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        let client = match self {
            Self::Client(claims) => Some(claims),
            Self::User(_) => None,
        };
        client.into_iter().flat_map(ClientClaims::scopes)
    }

    /// Whether `wanted` was granted; never for a user.
    pub fn has_scope(&self, wanted: &str) -> bool {
        self.scopes().any(|scope| scope == wanted)
    }

    /// The audiences the token names; none for a user (a user's token carries no `aud`).
    pub fn audiences(&self) -> &[String] {
        match self {
            Self::Client(claims) => &claims.aud.0,
            Self::User(_) => &[],
        }
    }

    /// How a user's session was authenticated (RFC 8176); none for a service account.
    pub fn amr(&self) -> &[String] {
        match self {
            Self::Client(_) => &[],
            Self::User(claims) => &claims.amr,
        }
    }
}

/// Why an `authorization` header carries no usable bearer token. The messages are what
/// auth-svc's callers see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BearerError {
    #[error("missing authorization: Bearer token")]
    Missing,
    #[error("more than one authorization header")]
    Repeated,
    #[error("authorization header is not valid ASCII")]
    NotAscii,
    /// A single word: `Bearer` with no token after it, or some other scheme's name alone.
    #[error("authorization header must be `Bearer <token>`")]
    NoCredentials { bearer: bool },
    /// Credentials of another scheme (`Basic …`): no bearer token at all (RFC 6750 section 3.1).
    #[error("authorization scheme must be Bearer")]
    OtherScheme,
    #[error("missing bearer token")]
    Empty,
    #[error("bearer token too long")]
    TooLong,
    #[error("malformed bearer token")]
    Malformed,
}

impl BearerError {
    /// Whether the caller presented no bearer credentials at all (as opposed to broken ones):
    /// RFC 6750 answers that with a bare `WWW-Authenticate: Bearer`, without `invalid_token`.
    pub fn is_absent(&self) -> bool {
        matches!(self, Self::Missing | Self::OtherScheme | Self::NoCredentials { bearer: false })
    }
}

/// The token of `authorization: Bearer <token>` (RFC 6750 section 2.1), strictly: one header,
/// scheme `Bearer` in any case, one or more spaces, then a b64token with nothing after it.
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, BearerError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let value = values.next().ok_or(BearerError::Missing)?;
    if values.next().is_some() {
        return Err(BearerError::Repeated);
    }
    let value = value.to_str().map_err(|_| BearerError::NotAscii)?;
    let Some((scheme, rest)) = value.split_once(' ') else {
        return Err(BearerError::NoCredentials { bearer: value.eq_ignore_ascii_case("bearer") });
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(BearerError::OtherScheme);
    }
    let token = rest.trim_start_matches(' ');
    if token.is_empty() {
        return Err(BearerError::Empty);
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Err(BearerError::TooLong);
    }
    if !is_b64token(token) {
        return Err(BearerError::Malformed);
    }
    Ok(token)
}

/// Whether a header value claims the Bearer scheme (`Bearer ` in any case), however broken
/// what follows is. The gateway words its refusals by it.
pub fn claims_bearer_scheme(value: &[u8]) -> bool {
    value.get(..BEARER_PREFIX.len()).is_some_and(|scheme| scheme.eq_ignore_ascii_case(BEARER_PREFIX.as_bytes()))
}

/// The scheme and the one space before the token.
pub const BEARER_PREFIX: &str = "Bearer ";

/// Longest `authorization` header worth reading: the prefix and the largest token accepted.
/// (More spaces after the scheme are allowed, but no real client sends them.)
pub const MAX_AUTHORIZATION_BYTES: usize = BEARER_PREFIX.len() + MAX_TOKEN_BYTES;

/// RFC 6750's b64token: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/'))
}

#[cfg(test)]
mod tests;
