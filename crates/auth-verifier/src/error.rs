//! Why a token was refused, or why it could not be checked. The messages are safe to show to
//! callers (they become the gRPC `grpc-message`); none of them ever contains the token.

/// The crate's one error type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// No `Authorization: Bearer` header (the layer's case; `verify` never returns it).
    #[error("missing bearer token")]
    MissingToken,
    /// More than one `Authorization` header, a non-ASCII value, an empty or oversized token, or
    /// anything but an RFC 6750 b64token after `Bearer ` (a trailing space included): the
    /// header rules are auth-svc's own (the `auth-token` crate).
    #[error("malformed authorization header")]
    MalformedHeader,
    /// Not a compact JWS, undecodable header, `alg: none`, or unsupported `crit` parameters.
    #[error("malformed token")]
    Malformed,
    /// The header's `alg` is not EdDSA or ES256, or not the algorithm of the key its `kid` names.
    #[error("token algorithm is not accepted")]
    UnsupportedAlgorithm,
    /// No `kid`, or one the published key set does not contain (as of a successful fetch).
    #[error("token signing key is unknown")]
    UnknownKey,
    /// A refresh token, or any JWT whose `typ`/`token_type` is not an access token's.
    #[error("not an access token")]
    NotAccessToken,
    #[error("invalid token signature")]
    InvalidSignature,
    #[error("token expired")]
    Expired,
    /// `iat` or `nbf` more than the tolerated clock skew in the future.
    #[error("token is not valid yet")]
    NotYetValid,
    #[error("token issuer is not trusted")]
    WrongIssuer,
    /// A required claim is missing or has the wrong type.
    #[error("token claims are invalid")]
    InvalidClaims,
    /// An audience is required (`VerifierBuilder::audience`, `BearerLayer::require_audience`)
    /// and the token names none: RFC 9068 section 4 has resource servers check `aud`.
    #[error("token names no audience")]
    MissingAudience,
    /// The token's `aud` does not list the required audience, or the token has an `aud` where
    /// no audience is configured: a token meant for someone must not pass a service that did
    /// not say who it is.
    #[error("token is meant for another audience")]
    WrongAudience,
    /// The token is valid but was not granted `scope`, which the route requires (the layer's
    /// case: HTTP 403 `insufficient_scope`, gRPC `PERMISSION_DENIED`). A user's token has no
    /// scopes at all.
    #[error("token lacks the scope {scope}")]
    InsufficientScope { scope: String },
    /// The token's session did not pass authentication method `method` (its `amr` claim,
    /// RFC 8176), which the route requires, e.g. `otp`: the user must log in again with it
    /// (RFC 9470's step-up: HTTP 401 `insufficient_user_authentication`, gRPC
    /// `UNAUTHENTICATED`). A service account's token has no `amr` at all.
    #[error("the session did not authenticate with {method}")]
    InsufficientUserAuthentication { method: String },
    /// The key set could not be fetched and no usable one is cached (none yet, or one stale for
    /// longer than `max_stale`), or the token's `kid` is not in the cached set and the latest
    /// fetch failed. The token may well be valid, so the layer answers 503 / `UNAVAILABLE`, not
    /// 401.
    #[error("signing keys are unavailable")]
    KeysUnavailable,
    /// The builder was given settings it cannot work with.
    #[error("invalid verifier configuration: {0}")]
    Config(String),
}
