//! ValidateToken: the authoritative answer to "is this access token active?" for services that
//! need more than local verification (JWKS) can tell: revocation by Logout, and whether the
//! account still exists and is not disabled.

use std::sync::Arc;

use crate::{
    auth::tokens::{AccessClaims, TokenKeys},
    error::AuthError,
    service::users::Users,
    store::revocation::Revocations,
};

/// An access token that passed every check.
#[derive(Debug, Clone)]
pub struct ActiveToken {
    pub claims: AccessClaims,
    /// The key that signed it.
    pub kid: String,
    /// The account's current username.
    pub username: String,
}

pub struct Introspection {
    keys: Arc<TokenKeys>,
    revocations: Arc<Revocations>,
    users: Arc<Users>,
}

impl Introspection {
    pub fn new(keys: Arc<TokenKeys>, revocations: Arc<Revocations>, users: Arc<Users>) -> Self {
        Self { keys, revocations, users }
    }

    /// `None` for any inactive token, whatever the reason (RFC 7662 section 2.2: the answer
    /// must not help probe why). Only a store outage is an error.
    pub async fn check(&self, token: &str) -> Result<Option<ActiveToken>, AuthError> {
        let Ok((claims, kid)) = self.keys.verify_access_with_kid(token) else {
            return Ok(None);
        };
        if self.revocations.is_revoked(&claims.sid).await? {
            return Ok(None);
        }
        let Some(user) = self.users.by_id(claims.user_id).await?.filter(|user| !user.disabled) else {
            return Ok(None);
        };
        Ok(Some(ActiveToken { claims, kid: kid.to_owned(), username: user.username }))
    }
}
