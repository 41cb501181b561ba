//! Accounts: registration, password login and the profile behind an access token.

use std::{net::IpAddr, sync::Arc};

use secrecy::{ExposeSecret, SecretString};

use crate::{
    auth::{password::PasswordHasher, tokens::AccessClaims},
    config::{ROLE_ADMIN, ROLE_USER},
    error::AuthError,
    metrics::Metrics,
    policy,
    sessions::{Sessions, TokenPair},
    throttle::LoginThrottle,
    users::{PasswordHash, User, Users},
};

pub struct Accounts {
    users: Arc<Users>,
    hasher: PasswordHasher,
    sessions: Arc<Sessions>,
    throttle: LoginThrottle,
    min_password_chars: usize,
    /// Roles SetUserRole accepts (`auth.roles`).
    roles: Vec<String>,
    metrics: Arc<Metrics>,
}

impl Accounts {
    pub fn new(
        users: Arc<Users>,
        hasher: PasswordHasher,
        sessions: Arc<Sessions>,
        throttle: LoginThrottle,
        min_password_chars: usize,
        roles: Vec<String>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self { users, hasher, sessions, throttle, min_password_chars, roles, metrics }
    }

    pub async fn register(&self, username: &str, password: SecretString) -> Result<User, AuthError> {
        let username = policy::Username::parse(username)?;
        policy::check_new_password(password.expose_secret(), self.min_password_chars)?;
        // Cheap early answer; the unique key still decides races between concurrent calls.
        if self.users.by_username(&username).await?.is_some() {
            return Err(AuthError::AlreadyExists("username already exists"));
        }
        let hash = self.hasher.hash(password).await?;
        self.users.create(&username, &hash, ROLE_USER).await
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
        let username = policy::Username::parse(username)?;
        policy::check_password_size(password.expose_secret())?;
        if let Err(throttled) = self.throttle.check(&username, client).await {
            self.metrics.login("throttled");
            return Err(throttled);
        }
        let (user, stored_hash) = self.users.credentials(&username).await?.unzip();
        let stored_hash = stored_hash.map(PasswordHash::into_phc);
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

    /// Sets `username`'s role on behalf of `caller`, whose token said "admin" (the bearer layer
    /// checked that). The caller's account is read again from the database: a demoted admin's
    /// token, still saying "admin" until it expires, gets no further.
    pub async fn set_role(&self, caller: &AccessClaims, username: &str, role: &str) -> Result<User, AuthError> {
        let caller = self.users.by_id_uncached(caller.user_id).await?;
        let caller = caller.ok_or(AuthError::Unauthenticated("account no longer exists"))?;
        if caller.role != ROLE_ADMIN {
            return Err(AuthError::PermissionDenied("only admins may set roles"));
        }
        let username = policy::Username::parse(username)?;
        if !self.roles.iter().any(|known| known == role) {
            return Err(AuthError::InvalidArgument(format!("unknown role; known roles: {}", self.roles.join(", "))));
        }
        let user = self.users.set_role(&username, role).await?.ok_or(AuthError::NotFound("no such user"))?;
        tracing::info!(user_id = user.id, role, "role set");
        Ok(user)
    }

    /// The account an access token speaks for; gone accounts are refused.
    pub async fn user_info(&self, claims: &AccessClaims) -> Result<User, AuthError> {
        self.users.by_id(claims.user_id).await?.ok_or(AuthError::Unauthenticated("account no longer exists"))
    }
}
