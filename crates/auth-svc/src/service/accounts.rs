//! Accounts: registration, password login and the profile behind an access token.

use std::{net::IpAddr, sync::Arc};

use secrecy::{ExposeSecret, SecretString};

use crate::{
    auth::{password::PasswordHasher, tokens::AccessClaims},
    domain::{
        self, password,
        role::{ROLE_ADMIN, ROLE_USER},
    },
    domain::{PasswordHash, User},
    error::AuthError,
    metrics::Metrics,
    service::sessions::{Sessions, TokenPair},
    service::users::Users,
    store::throttle::{LoginThrottle, SignupThrottle},
};

pub struct Accounts {
    users: Arc<Users>,
    hasher: PasswordHasher,
    sessions: Arc<Sessions>,
    throttle: Arc<LoginThrottle>,
    signups: Arc<SignupThrottle>,
    min_password_chars: usize,
    /// Roles SetUserRole accepts (`auth.roles`).
    roles: Vec<String>,
    metrics: Arc<Metrics>,
}

/// A verdict on presented credentials: the account, when the password matched.
type Verdict = Result<Option<User>, AuthError>;

impl Accounts {
    pub fn new(
        users: Arc<Users>,
        hasher: PasswordHasher,
        sessions: Arc<Sessions>,
        throttles: (LoginThrottle, SignupThrottle),
        min_password_chars: usize,
        roles: Vec<String>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let (throttle, signups) = throttles;
        Self {
            users,
            hasher,
            sessions,
            throttle: Arc::new(throttle),
            signups: Arc::new(signups),
            min_password_chars,
            roles,
            metrics,
        }
    }

    /// Creates an account. A taken name and a free one cost the same: both are counted by the
    /// signup throttle, both hash the password, and the database's unique key decides (there is
    /// no cheaper "is it taken?" look-up first to time). `client` is the caller's address.
    pub async fn register(
        &self,
        username: &str,
        password: SecretString,
        client: Option<IpAddr>,
    ) -> Result<User, AuthError> {
        let username = domain::Username::parse(username)?;
        password::check_new_password(password.expose_secret(), self.min_password_chars)?;
        let (signups, hasher) = (self.signups.clone(), self.hasher.clone());
        // Counted and hashed to the end even if the caller goes away (see `login`).
        let hash = run_to_completion(async move {
            let attempt = signups.reserve(client).await?;
            match hasher.hash(password).await {
                Ok(hash) => {
                    signups.attempted(attempt).await;
                    Ok(hash)
                }
                Err(err) => {
                    signups.cancelled(attempt).await;
                    Err(err)
                }
            }
        })
        .await?;
        self.users.create(&username, &hash, ROLE_USER).await
    }

    /// Checks credentials and starts a session. Unknown user and wrong password take the
    /// same path (a hash verification) and give the same answer. `client` is the caller's
    /// address, for throttling. The attempt is counted before the password is checked, so
    /// concurrent guesses cannot all slip past the limit.
    pub async fn login(
        &self,
        username: &str,
        password: SecretString,
        client: Option<IpAddr>,
    ) -> Result<TokenPair, AuthError> {
        let username = domain::Username::parse(username)?;
        password::check_password_size(password.expose_secret())?;
        let check = check_password(
            self.users.clone(),
            self.hasher.clone(),
            self.throttle.clone(),
            self.metrics.clone(),
            (username, password, client),
        );
        let user = run_to_completion(check).await?;
        let user = user.ok_or(AuthError::Unauthenticated("invalid credentials"))?;
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
        let username = domain::Username::parse(username)?;
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

/// Runs `work` on its own task and waits for it. A caller that goes away (a cancelled call, a
/// client deadline) no longer stops it halfway: a reservation is always settled, so a guess
/// cut short still counts as what it was, and a pending entry never outlives its hash.
async fn run_to_completion<T: Send + 'static>(
    work: impl std::future::Future<Output = Result<T, AuthError>> + Send + 'static,
) -> Result<T, AuthError> {
    tokio::spawn(work).await.map_err(AuthError::internal)?
}

/// Reserves a password check, makes it, and settles the reservation by its outcome.
async fn check_password(
    users: Arc<Users>,
    hasher: PasswordHasher,
    throttle: Arc<LoginThrottle>,
    metrics: Arc<Metrics>,
    (username, password, client): (domain::Username, SecretString, Option<IpAddr>),
) -> Verdict {
    let attempt = match throttle.reserve(&username, client).await {
        Ok(attempt) => attempt,
        Err(throttled) => {
            metrics.login("throttled");
            return Err(throttled);
        }
    };
    // The hash comes from the database, never the cache.
    let (user, stored_hash) = match users.credentials(&username).await {
        Ok(found) => found.unzip(),
        Err(err) => {
            throttle.cancelled(attempt).await;
            return Err(err);
        }
    };
    let stored_hash = stored_hash.map(PasswordHash::into_phc);
    match hasher.verify(password, stored_hash).await {
        Ok(true) => {
            throttle.succeeded(attempt).await;
            metrics.login("success");
            Ok(user)
        }
        Ok(false) => {
            throttle.failed(attempt).await;
            metrics.login("failure");
            Err(AuthError::Unauthenticated("invalid credentials"))
        }
        // No password was checked: the attempt does not count.
        Err(overloaded @ AuthError::Overloaded { .. }) => {
            throttle.cancelled(attempt).await;
            metrics.login("overloaded");
            Err(overloaded)
        }
        Err(err) => {
            throttle.failed(attempt).await;
            Err(err)
        }
    }
}
