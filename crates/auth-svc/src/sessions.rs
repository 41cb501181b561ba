//! Sessions: a login starts a refresh-token family; Refresh rotates it; Logout ends it.
//!
//! Rotation with a grace window: a token exchanged less than `reuse_interval` seconds ago
//! returns the very same successor pair again (several tabs refreshing at once, or a lost
//! response, must not log the user out). The pair is re-signed from the successor's row, never
//! stored: byte for byte the same while the signing key and the account's role are unchanged;
//! across a key promotion or a role change it is an equivalent pair (same ids and times, the
//! new `kid` or role). Any other reuse of a spent token is taken as theft and revokes the whole family.

use std::sync::Arc;

use model::{
    DatabaseConnection,
    entity::refresh_tokens,
    query::{self, refresh_tokens::NewRefreshToken},
};
use uuid::Uuid;

use crate::{
    auth::tokens::{AccessClaims, PairSpec, TokenError, TokenKeys, now_unix},
    error::AuthError,
    metrics::Metrics,
    revocation::Revocations,
    users::{User, Users},
};

/// What Login and Refresh return.
#[derive(Debug, Clone)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
}

pub struct Sessions {
    db: DatabaseConnection,
    users: Arc<Users>,
    revocations: Arc<Revocations>,
    keys: Arc<TokenKeys>,
    metrics: Arc<Metrics>,
    refresh_ttl: i64,
    reuse_interval: i64,
}

impl Sessions {
    pub fn new(
        db: DatabaseConnection,
        users: Arc<Users>,
        revocations: Arc<Revocations>,
        keys: Arc<TokenKeys>,
        metrics: Arc<Metrics>,
        refresh_ttl: u64,
        reuse_interval: u64,
    ) -> Self {
        Self {
            db,
            users,
            revocations,
            keys,
            metrics,
            refresh_ttl: i64::try_from(refresh_ttl).unwrap_or(i64::MAX),
            reuse_interval: i64::try_from(reuse_interval).unwrap_or(i64::MAX),
        }
    }

    /// Starts a new family for `user` (a successful login).
    pub async fn start(&self, user: &User) -> Result<TokenPair, AuthError> {
        let now = now_unix();
        let first = self.new_token(user.id, Uuid::new_v4().to_string(), now);
        let row = query::refresh_tokens::insert(&self.db, first).await?;
        self.metrics.token("issued");
        self.sign(&row, &user.role, now)
    }

    /// Exchanges a refresh token for the next pair of its family.
    pub async fn refresh(&self, presented: &str) -> Result<TokenPair, AuthError> {
        let claims = self.keys.verify_refresh(presented).map_err(|err| {
            AuthError::Unauthenticated(match err {
                TokenError::Expired => "refresh token expired",
                TokenError::WrongType => "not a refresh token",
                TokenError::NotYetValid | TokenError::Invalid => "invalid refresh token",
            })
        })?;
        let mut row = self.find_row(&claims.jti).await?;
        if row.family_id != claims.sid || row.user_id != claims.user_id {
            return Err(AuthError::Unauthenticated("invalid refresh token"));
        }
        let now = now_unix();
        if row.revoked_at.is_none() && row.rotated_at.is_none() {
            let successor = self.new_token(row.user_id, row.family_id.clone(), now);
            if query::refresh_tokens::rotate(&self.db, &row.id, now, &successor).await? {
                let user = self.owner(successor.user_id).await?;
                self.metrics.token("refreshed");
                return self.sign(&successor.into_row(), &user.role, now);
            }
            // Someone rotated or revoked it between our read and our write: read what won.
            row = self.find_row(&claims.jti).await?;
        }
        self.replay(row, now).await
    }

    /// A spent or revoked token came back: within the grace window and with a still-live
    /// successor, answer with that successor; otherwise revoke the family.
    async fn replay(&self, row: refresh_tokens::Model, now: i64) -> Result<TokenPair, AuthError> {
        if row.revoked_at.is_some() {
            return Err(AuthError::Unauthenticated("session revoked"));
        }
        let within_grace =
            self.reuse_interval > 0 && row.rotated_at.is_some_and(|at| now.saturating_sub(at) <= self.reuse_interval);
        if within_grace && let Some(successor) = self.live_successor(&row).await? {
            let user = self.owner(successor.user_id).await?;
            return self.sign(&successor, &user.role, now);
        }
        let revoked = query::refresh_tokens::revoke_family(&self.db, &row.family_id, now).await?;
        self.revocations.revoke(&row.family_id).await;
        self.metrics.reuse_detected();
        self.metrics.token("revoked");
        tracing::warn!(
            user_id = row.user_id,
            session = %row.family_id,
            revoked,
            "refresh token reuse detected; session revoked"
        );
        Err(AuthError::Unauthenticated("refresh token already used; session revoked"))
    }

    /// The token that replaced `row`, if it has not been rotated or revoked itself.
    async fn live_successor(&self, row: &refresh_tokens::Model) -> Result<Option<refresh_tokens::Model>, AuthError> {
        let Some(successor_id) = &row.successor_id else { return Ok(None) };
        let successor = query::refresh_tokens::find(&self.db, successor_id).await?;
        Ok(successor.filter(|next| next.rotated_at.is_none() && next.revoked_at.is_none()))
    }

    /// Ends the session of an access token: its family's refresh tokens stop working.
    pub async fn logout(&self, claims: &AccessClaims) -> Result<(), AuthError> {
        query::refresh_tokens::revoke_family(&self.db, &claims.sid, now_unix()).await?;
        self.revocations.revoke(&claims.sid).await;
        self.metrics.token("revoked");
        Ok(())
    }

    async fn find_row(&self, jti: &str) -> Result<refresh_tokens::Model, AuthError> {
        query::refresh_tokens::find(&self.db, jti).await?.ok_or(AuthError::Unauthenticated("invalid refresh token"))
    }

    async fn owner(&self, user_id: i64) -> Result<User, AuthError> {
        self.users.by_id(user_id).await?.ok_or(AuthError::Unauthenticated("account no longer exists"))
    }

    fn new_token(&self, user_id: i64, family_id: String, now: i64) -> NewRefreshToken {
        NewRefreshToken {
            id: Uuid::new_v4().to_string(),
            family_id,
            user_id,
            access_jti: Uuid::new_v4().to_string(),
            issued_at: now,
            expires_at: now.saturating_add(self.refresh_ttl),
        }
    }

    /// Signs the pair a row stands for. Deterministic: the same row gives the same tokens.
    fn sign(&self, row: &refresh_tokens::Model, role: &str, now: i64) -> Result<TokenPair, AuthError> {
        let signed = self
            .keys
            .sign_pair(&PairSpec {
                user_id: row.user_id,
                role,
                session_id: &row.family_id,
                refresh_jti: &row.id,
                access_jti: &row.access_jti,
                issued_at: row.issued_at,
                refresh_expires_at: row.expires_at,
            })
            .map_err(AuthError::internal)?;
        Ok(TokenPair {
            access_token: signed.access_token,
            refresh_token: signed.refresh_token,
            expires_in: signed.access_expires_at.saturating_sub(now).max(0),
        })
    }
}
