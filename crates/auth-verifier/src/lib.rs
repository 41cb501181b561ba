//! Verifies auth-svc access tokens locally, against the JWKS the gateway serves at
//! `GET /.well-known/jwks.json`, with no shared secret; for other axum and tonic services.
//!
//! ```no_run
//! # async fn run() -> Result<(), auth_verifier::VerifyError> {
//! let verifier = auth_verifier::Verifier::builder("http://gateway:8888/.well-known/jwks.json").build()?;
//! verifier.prefetch().await?;
//! let claims = verifier.verify("eyJ…").await?;
//! # Ok(()) }
//! ```
//!
//! A token passes when: it is at most 4 KiB; its header has `alg` EdDSA or ES256, `typ: at+jwt`,
//! no `crit`, and a `kid` the key set publishes with that same algorithm; the signature checks;
//! `token_type` is `access`, `iss` the configured issuer, `exp` not past (plus the leeway),
//! `iat`/`nbf` at most 5 s ahead, `iss`, `sub`, `userId` (a user's token) or `client_id` (a
//! service account's), `role`, `iat`, `exp`, `jti`, `sid` are present, and `aud` lists the
//! required audience, or is absent when none is required. A layer can also require scopes.
//! The README says what local verification cannot see (logout, deleted users, role changes)
//! and how the key cache meets key rotation.

mod cache;
mod claims;
mod error;
mod fetch;
mod jwks;
mod layer;
mod tls;
mod token;
mod verifier;

pub use claims::{Audience, Claims, ClientClaims, TokenType, UserClaims};
pub use error::VerifyError;
pub use layer::{BearerLayer, BearerService};
pub use verifier::{Verifier, VerifierBuilder};

#[cfg(test)]
mod tests;

/// Compiles the README's examples, so they cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExamples;
