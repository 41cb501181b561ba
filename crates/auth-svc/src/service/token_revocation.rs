//! RevokeToken (RFC 7009): whoever holds a token may end it. A refresh token or a user's
//! access token ends its session (the whole refresh-token family, as Logout); a service
//! account's access token ends that client's tokens (see `Clients::revoke_tokens`). A token
//! that is unknown, malformed, expired or already ended is answered OK all the same (section
//! 2.2): the answer must not tell a probe anything.

use std::sync::Arc;

use secrecy::SecretString;

use crate::{
    audit::{Actor, CallContext},
    auth::tokens::{AnyAccessClaims, TokenKeys},
    error::AuthError,
    service::{clients::Clients, sessions::Sessions},
};

pub struct TokenRevocation {
    keys: Arc<TokenKeys>,
    sessions: Arc<Sessions>,
    clients: Arc<Clients>,
}

/// Client authentication presented with a revocation request, when there was one.
pub struct PresentedClient<'a> {
    pub client_id: &'a str,
    pub secret: SecretString,
}

impl TokenRevocation {
    pub fn new(keys: Arc<TokenKeys>, sessions: Arc<Sessions>, clients: Arc<Clients>) -> Self {
        Self { keys, sessions, clients }
    }

    /// `hint` is only a hint (section 2.1): both kinds are tried, the hinted one first.
    pub async fn revoke(
        &self,
        client: Option<PresentedClient<'_>>,
        token: &str,
        hint: &str,
        call: &CallContext,
    ) -> Result<(), AuthError> {
        if let Some(client) = client {
            // Credentials that were sent must be right, even though they are not needed.
            self.clients.authenticate(client.client_id, &client.secret, call).await?;
        }
        if hint == "refresh_token" {
            if self.revoke_refresh(token, call).await? {
                return Ok(());
            }
            self.revoke_access(token, call).await?;
        } else if !self.revoke_access(token, call).await? {
            self.revoke_refresh(token, call).await?;
        }
        Ok(())
    }

    /// Whether `token` was a valid refresh token (its session is ended now, if it was not).
    async fn revoke_refresh(&self, token: &str, call: &CallContext) -> Result<bool, AuthError> {
        let Ok(claims) = self.keys.verify_refresh(token) else { return Ok(false) };
        self.end_session(claims.user_id, &claims.sid, call).await?;
        Ok(true)
    }

    /// Whether `token` was a valid access token (of either kind), now ended.
    async fn revoke_access(&self, token: &str, call: &CallContext) -> Result<bool, AuthError> {
        match self.keys.verify_any_access(token) {
            Ok((AnyAccessClaims::User(claims), _)) => self.end_session(claims.user_id, &claims.sid, call).await?,
            Ok((AnyAccessClaims::Client(claims), _)) => self.clients.revoke_tokens(&claims, call).await?,
            Err(_) => return Ok(false),
        }
        Ok(true)
    }

    async fn end_session(&self, user_id: i64, session_id: &str, call: &CallContext) -> Result<(), AuthError> {
        match self.sessions.revoke_one(user_id, session_id, Actor::User(user_id), call).await {
            // Already ended (or its account is gone): nothing left to do.
            Err(AuthError::NotFound(_)) => Ok(()),
            other => other,
        }
    }
}
