//! The claims of a verified access token, as handlers see them: axum handlers take
//! `Extension<Claims>`, tonic methods read `request.extensions().get::<Claims>()`.

use serde::{Deserialize, Serialize};

/// The claims of an access token issued by auth-svc. Claims not listed here are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
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
    /// The session the token was issued in; Logout ends it (which this crate cannot see).
    pub sid: String,
    /// Always `"access"` once verified.
    pub token_type: String,
}
