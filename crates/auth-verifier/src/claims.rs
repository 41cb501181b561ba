//! The claims of a verified access token, as handlers see them: axum handlers take
//! `Extension<Claims>`, tonic methods read `request.extensions().get::<Claims>()`.
//!
//! They are auth-svc's own access-token claims (the `auth-token` crate), so the two cannot drift.

/// What a user's access token says; the content of [`Claims::User`].
pub use auth_token::AccessClaims as UserClaims;
/// The claims of a verified access token: a user's ([`Claims::User`]) or a service account's
/// ([`Claims::Client`], the client credentials grant). Match on it to tell them apart, or use
/// its accessors: `sub()`, `role()`, `user_id()` and `client_id()` (each `Some` for its own
/// kind only), `scopes()`, `has_scope(..)` and `audiences()` (empty for a user). Claims not
/// listed in either kind are ignored.
pub use auth_token::AnyAccessClaims as Claims;
/// The `aud` claim of a service account's token, one audience or several.
pub use auth_token::Audience;
/// What a service account's access token says; the content of [`Claims::Client`].
pub use auth_token::ClientClaims;
/// The `token_type` claim; always `Access` in verified [`Claims`].
pub use auth_token::TokenType;
