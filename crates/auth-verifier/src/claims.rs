//! The claims of a verified access token, as handlers see them: axum handlers take
//! `Extension<Claims>`, tonic methods read `request.extensions().get::<Claims>()`.
//!
//! They are auth-svc's own access-token claims (the `auth-token` crate), so the two cannot drift.

/// The claims of an access token issued by auth-svc. Claims not listed here are ignored.
pub use auth_token::AccessClaims as Claims;
/// The `token_type` claim; always `Access` in verified [`Claims`].
pub use auth_token::TokenType;
