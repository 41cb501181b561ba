//! Accounts: registration, password login and the profile behind an access token.

use std::{net::IpAddr, sync::Arc};

use secrecy::{ExposeSecret, SecretString};

use crate::{
    auth::{password::PasswordHasher, tokens::AccessClaims},
    error::AuthError,
    metrics::Metrics,
    policy,
    sessions::{Sessions, TokenPair},
    throttle::LoginThrottle,
    users::{User, Users},
};

/// Role of every new account.
pub const DEFAULT_ROLE: &str = "user";

pub struct Accounts {
    users: Arc<Users>,
    hasher: PasswordHasher,
    sessions: Arc<Sessions>,
    throttle: LoginThrottle,
    min_password_chars: usize,
    metrics: Arc<Metrics>,
}

impl Accounts {
    pub fn new(
        users: Arc<Users>,
        hasher: PasswordHasher,
        sessions: Arc<Sessions>,
        throttle: LoginThrottle,
        min_password_chars: usize,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self { users, hasher, sessions, throttle, min_password_chars, metrics }
    }

    pub async fn register(&self, username: &str, password: SecretString) -> Result<User, AuthError> {
        let username = policy::normalize_username(username)?;
        policy::check_new_password(password.expose_secret(), self.min_password_chars)?;
        // Cheap early answer; the unique key still decides races between concurrent calls.
        if self.users.by_username(&username).await?.is_some() {
            return Err(AuthError::AlreadyExists("username already exists"));
        }
        let hash = self.hasher.hash(password).await?;
        self.users.create(&username, &hash, DEFAULT_ROLE).await
    }

    /// Checks credentials and starts a session. Unknown user and wrong password take the
    /// same path (a hash verification) and give the same answer. `client` is the caller's
    /// address, for throttling.
    pub async fn login(
        &self,
        username: &str,
        password: SecretString,
        client: Option<IpAddr>,
    ) -> Result<TokenPair, AuthError> {
        let username = policy::normalize_username(username)?;
        policy::check_password_size(password.expose_secret())?;
        if let Err(throttled) = self.throttle.check(&username, client).await {
            self.metrics.login("throttled");
            return Err(throttled);
        }
        let user = self.users.by_username(&username).await?;
        let stored_hash = user.as_ref().map(|user| user.password_hash.clone());
        if !self.hasher.verify(password, stored_hash).await? {
            self.throttle.record_failure(&username, client).await;
            self.metrics.login("failure");
            return Err(AuthError::Unauthenticated("invalid credentials"));
        }
        let user = user.ok_or(AuthError::Unauthenticated("invalid credentials"))?;
        self.throttle.record_success(&username).await;
        self.metrics.login("success");
        self.sessions.start(&user).await
    }

    /// The account an access token speaks for; gone accounts are refused.
    pub async fn user_info(&self, claims: &AccessClaims) -> Result<User, AuthError> {
        self.users.by_id(claims.user_id).await?.ok_or(AuthError::Unauthenticated("account no longer exists"))
    }
}
