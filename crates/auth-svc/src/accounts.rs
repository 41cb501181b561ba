//! Accounts: registration, password login and the profile behind an access token.

use std::sync::Arc;

use model::{DatabaseConnection, entity::users, query};
use secrecy::{ExposeSecret, SecretString};

use crate::{
    auth::{password::PasswordHasher, tokens::AccessClaims},
    error::AuthError,
    policy,
    sessions::{Sessions, TokenPair},
};

/// Role of every new account.
pub const DEFAULT_ROLE: &str = "user";

pub struct Accounts {
    db: DatabaseConnection,
    hasher: PasswordHasher,
    sessions: Arc<Sessions>,
    min_password_chars: usize,
}

impl Accounts {
    pub fn new(
        db: DatabaseConnection,
        hasher: PasswordHasher,
        sessions: Arc<Sessions>,
        min_password_chars: usize,
    ) -> Self {
        Self { db, hasher, sessions, min_password_chars }
    }

    pub async fn register(&self, username: &str, password: SecretString) -> Result<users::Model, AuthError> {
        let username = policy::normalize_username(username)?;
        policy::check_new_password(password.expose_secret(), self.min_password_chars)?;
        // Cheap early answer; the unique key still decides races between concurrent calls.
        if query::users::find_by_username(&self.db, &username).await?.is_some() {
            return Err(AuthError::AlreadyExists("username already exists"));
        }
        let hash = self.hasher.hash(password).await?;
        Ok(query::users::insert(&self.db, &username, &hash, DEFAULT_ROLE).await?)
    }

    /// Checks credentials and starts a session. Unknown user and wrong password take the
    /// same path (a hash verification) and give the same answer.
    pub async fn login(&self, username: &str, password: SecretString) -> Result<TokenPair, AuthError> {
        let username = policy::normalize_username(username)?;
        policy::check_password_size(password.expose_secret())?;
        let user = query::users::find_by_username(&self.db, &username).await?;
        let stored_hash = user.as_ref().map(|user| user.password_hash.clone());
        if !self.hasher.verify(password, stored_hash).await? {
            return Err(AuthError::Unauthenticated("invalid credentials"));
        }
        let user = user.ok_or(AuthError::Unauthenticated("invalid credentials"))?;
        self.sessions.start(&user).await
    }

    /// The account an access token speaks for; gone accounts are refused.
    pub async fn user_info(&self, claims: &AccessClaims) -> Result<users::Model, AuthError> {
        query::users::find_by_id(&self.db, claims.user_id)
            .await?
            .ok_or(AuthError::Unauthenticated("account no longer exists"))
    }
}
