//! ValidateToken and IntrospectToken: the authoritative answer to "is this access token
//! active?" for services that need more than local verification (JWKS) can tell: revocation
//! by Logout, whether the account still exists and is not disabled, and for a service
//! account's token whether the client still exists, is enabled, and had its tokens revoked.

use std::sync::Arc;

use secrecy::SecretString;

use crate::{
    audit::CallContext,
    auth::tokens::{AccessClaims, AnyAccessClaims, ClientClaims, TokenKeys},
    config::SCOPE_INTROSPECT,
    error::{AuthError, OAuthError},
    service::{clients::Clients, users::Users},
    store::revocation::Revocations,
};

/// An access token that passed every check, with the key that signed it.
#[derive(Debug, Clone)]
pub enum ActiveToken {
    User {
        claims: AccessClaims,
        kid: String,
        /// The account's current username.
        username: String,
    },
    Client {
        claims: ClientClaims,
        kid: String,
    },
}

pub struct Introspection {
    keys: Arc<TokenKeys>,
    revocations: Arc<Revocations>,
    users: Arc<Users>,
    clients: Arc<Clients>,
}

impl Introspection {
    pub fn new(keys: Arc<TokenKeys>, revocations: Arc<Revocations>, users: Arc<Users>, clients: Arc<Clients>) -> Self {
        Self { keys, revocations, users, clients }
    }

    /// `None` for any inactive token, whatever the reason (RFC 7662 section 2.2: the answer
    /// must not help probe why). Only a store outage is an error.
    pub async fn check(&self, token: &str) -> Result<Option<ActiveToken>, AuthError> {
        let Ok((claims, kid)) = self.keys.verify_any_access(token) else {
            return Ok(None);
        };
        let kid = kid.to_owned();
        match claims {
            AnyAccessClaims::User(claims) => {
                if self.revocations.is_revoked(&claims.sid).await? {
                    return Ok(None);
                }
                let Some(user) = self.users.by_id(claims.user_id).await?.filter(|user| !user.disabled) else {
                    return Ok(None);
                };
                Ok(Some(ActiveToken::User { claims, kid, username: user.username }))
            }
            AnyAccessClaims::Client(claims) => {
                if !self.clients.token_stands(&claims).await? {
                    return Ok(None);
                }
                Ok(Some(ActiveToken::Client { claims, kid }))
            }
        }
    }

    /// A caller of ValidateToken under `introspection.require_client`: the bearer of a
    /// standing service-account token with scope `introspect`.
    pub async fn require_introspector_token(&self, bearer: Option<&str>) -> Result<(), AuthError> {
        let missing =
            || AuthError::Unauthenticated("a service account's access token with scope introspect is required");
        let token = bearer.ok_or_else(missing)?;
        let Ok((AnyAccessClaims::Client(claims), _)) = self.keys.verify_any_access(token) else {
            return Err(missing());
        };
        if !self.clients.token_stands(&claims).await? {
            return Err(missing());
        }
        if !claims.has_scope(SCOPE_INTROSPECT) {
            return Err(AuthError::PermissionDenied("the token lacks scope introspect"));
        }
        Ok(())
    }

    /// IntrospectToken (RFC 7662): the client authenticates with its secret and must be
    /// allowed scope `introspect`.
    pub async fn introspect_for_client(
        &self,
        client_id: &str,
        secret: &SecretString,
        token: &str,
        call: &CallContext,
    ) -> Result<Option<ActiveToken>, AuthError> {
        let client = self.clients.authenticate(client_id, secret, call).await?;
        if !crate::domain::client::split(&client.scopes).iter().any(|scope| scope == SCOPE_INTROSPECT) {
            return Err(AuthError::oauth(OAuthError::UnauthorizedClient, "this client may not introspect tokens"));
        }
        self.check(token).await
    }
}
