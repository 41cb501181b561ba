//! Accounts: registration, password login, the profile behind an access token, and what a
//! signed-in user does to their own account (change the password, delete it).

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};

use crate::{
    audit::{Actor, Audit, AuditEvent, CallContext, EventType, Outcome},
    auth::{password::PasswordHasher, tokens::AccessClaims},
    domain::{
        self, password,
        role::{ROLE_ADMIN, ROLE_USER},
    },
    domain::{PasswordHash, User},
    error::AuthError,
    metrics::Metrics,
    service::run_to_completion,
    service::second_factor::{Challenge, Enrolment, SecondFactor, SecondStep},
    service::sessions::{AuthMethods, Sessions, TokenPair},
    service::users::Users,
    store::throttle::{LoginThrottle, SignupThrottle},
};

pub struct Accounts {
    users: Arc<Users>,
    hasher: PasswordHasher,
    sessions: Arc<Sessions>,
    second_factor: Arc<SecondFactor>,
    throttle: Arc<LoginThrottle>,
    signups: Arc<SignupThrottle>,
    min_password_chars: usize,
    /// Roles SetUserRole accepts (`auth.roles`).
    roles: Vec<String>,
    metrics: Arc<Metrics>,
    audit: Audit,
}

/// The configured rules of accounts.
#[derive(Debug, Clone)]
pub struct AccountPolicy {
    /// `password.min_length`.
    pub min_password_chars: usize,
    /// Roles SetUserRole accepts (`auth.roles`).
    pub roles: Vec<String>,
}

/// A verdict on presented credentials: the account and its hash, when the password matched.
type Verdict = Result<Option<(User, String)>, AuthError>;

/// What a right password gets at Login.
#[derive(Debug, Clone)]
pub enum LoginOutcome {
    /// A new session.
    Session(TokenPair),
    /// The account has a second factor: the challenge to answer with VerifyMfa.
    SecondFactorRequired(Challenge),
}

impl Accounts {
    #[allow(clippy::too_many_arguments, reason = "the services it works with, each named")]
    pub fn new(
        users: Arc<Users>,
        hasher: PasswordHasher,
        sessions: Arc<Sessions>,
        second_factor: Arc<SecondFactor>,
        throttles: (Arc<LoginThrottle>, SignupThrottle),
        policy: AccountPolicy,
        metrics: Arc<Metrics>,
        audit: Audit,
    ) -> Self {
        let AccountPolicy { min_password_chars, roles } = policy;
        let (throttle, signups) = throttles;
        Self {
            users,
            hasher,
            sessions,
            second_factor,
            throttle,
            signups: Arc::new(signups),
            min_password_chars,
            roles,
            metrics,
            audit,
        }
    }

    /// Creates an account. A taken name and a free one cost the same: both are counted by the
    /// signup throttle, both hash the password, and the database's unique key decides (there is
    /// no cheaper "is it taken?" look-up first to time). `client` is the caller's address.
    pub async fn register(
        &self,
        username: &str,
        password: SecretString,
        call: &CallContext,
    ) -> Result<User, AuthError> {
        let username = domain::Username::parse(username)?;
        password::check_new_password(password.expose_secret(), self.min_password_chars)?;
        let (signups, hasher, client) = (self.signups.clone(), self.hasher.clone(), call.client_address);
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
        let user = self.users.create(&username, &hash, ROLE_USER).await?;
        self.audit.record(
            AuditEvent::new(EventType::AccountCreated, Outcome::Success, Actor::Anonymous, call)
                .subject(user.id)
                .username(&user.username),
        );
        Ok(user)
    }

    /// Checks credentials and starts a session. Unknown user and wrong password take the
    /// same path (a hash verification) and give the same answer. `client` is the caller's
    /// address, for throttling. The attempt is counted before the password is checked, so
    /// concurrent guesses cannot all slip past the limit.
    ///
    /// A disabled account's right password is answered "account disabled" (after the check,
    /// so the answer tells nothing to someone without the password). An account with a second
    /// factor gets a challenge instead of a session.
    pub async fn login(
        &self,
        username: &str,
        password: SecretString,
        call: &CallContext,
    ) -> Result<LoginOutcome, AuthError> {
        let username = domain::Username::parse(username)?;
        password::check_password_size(password.expose_secret())?;
        // The name is recorded only when it names an account: a password typed into the
        // username field must not reach the audit log.
        let event = |outcome, user: Option<&User>| {
            let event = AuditEvent::new(EventType::Login, outcome, Actor::Anonymous, call);
            match user {
                Some(user) => event.subject(user.id).username(&user.username),
                None => event,
            }
        };
        let (user, verified_hash) = match self.verify_password(&username, password, call).await {
            Ok(verified) => verified,
            Err(err) => {
                let known = self.users.by_username(&username).await.ok().flatten();
                self.audit.record(event(Outcome::of_refusal(&err), known.as_ref()));
                return Err(err);
            }
        };
        if user.disabled {
            self.audit.record(event(Outcome::Failure, Some(&user)));
            return Err(AuthError::Unauthenticated("account disabled"));
        }
        if let Some(challenge) = self.second_factor.challenge_for(&user).await? {
            // Kept only if the account is still as checked, as a session is (see
            // `start_session`): the end of every session also spends pending challenges.
            if let Some(refusal) = self.changed_since_check(&user, &verified_hash).await? {
                self.second_factor.withdraw(&challenge).await?;
                self.audit.record(event(Outcome::Failure, Some(&user)));
                return Err(AuthError::Unauthenticated(refusal));
            }
            self.audit.record(
                AuditEvent::new(EventType::MfaChallengeIssued, Outcome::Success, Actor::Anonymous, call)
                    .subject(user.id)
                    .username(&user.username),
            );
            return Ok(LoginOutcome::SecondFactorRequired(challenge));
        }
        let (pair, session) = match self.start_session(&user, &verified_hash, AuthMethods::Password, call).await {
            Ok(started) => started,
            Err(err) => {
                self.audit.record(event(Outcome::Failure, Some(&user)));
                return Err(err);
            }
        };
        self.users.record_login(user.id).await?;
        self.audit.record(event(Outcome::Success, Some(&user)).session(&session));
        Ok(LoginOutcome::Session(pair))
    }

    /// Starts a session for `user`, whose password was just found to be `verified_hash`, and
    /// keeps it only if the account is still as checked: there, enabled, with that password.
    /// A DisableUser or ChangePassword racing this call ends every session it can see; this
    /// one may have begun after. Read after our insert, so one of the two sees the other.
    async fn start_session(
        &self,
        user: &User,
        verified_hash: &str,
        methods: AuthMethods,
        call: &CallContext,
    ) -> Result<(TokenPair, String), AuthError> {
        let (pair, session) = self.sessions.start(user, methods, call).await?;
        if let Some(refusal) = self.changed_since_check(user, verified_hash).await? {
            self.sessions.end_one(&session).await?;
            return Err(AuthError::Unauthenticated(refusal));
        }
        Ok((pair, session))
    }

    /// Why `user`, whose password was found to be `verified_hash`, may no longer get in:
    /// disabled, deleted or its password changed since; `None` when it is as checked.
    async fn changed_since_check(&self, user: &User, verified_hash: &str) -> Result<Option<&'static str>, AuthError> {
        Ok(match self.users.credentials_by_id(user.id).await? {
            Some((now, _)) if now.disabled => Some("account disabled"),
            Some((_, hash)) if hash.is(verified_hash) => None,
            // Deleted, or its password changed meanwhile.
            _ => Some("invalid credentials"),
        })
    }

    /// The throttled password check of Login, ChangePassword and DeleteAccount; the account
    /// and the hash it matched.
    async fn verify_password(
        &self,
        username: &domain::Username,
        password: SecretString,
        call: &CallContext,
    ) -> Result<(User, String), AuthError> {
        let check = check_password(
            self.users.clone(),
            self.hasher.clone(),
            self.throttle.clone(),
            self.metrics.clone(),
            (username.clone(), password, call.client_address),
        );
        run_to_completion(check).await?.ok_or(AuthError::Unauthenticated("invalid credentials"))
    }

    /// The bearer's account, checked: an access token of an account deleted or disabled since
    /// it was issued gets no further (the cache learns of either within
    /// `revocation.max_staleness_ms`, and both also revoke the account's sessions).
    pub async fn caller(&self, claims: &AccessClaims) -> Result<User, AuthError> {
        let user =
            self.users.by_id(claims.user_id).await?.ok_or(AuthError::Unauthenticated("account no longer exists"))?;
        if user.disabled {
            return Err(AuthError::Unauthenticated("account disabled"));
        }
        Ok(user)
    }

    /// Checks the current password (throttled as Login), sets the new one, ends every session
    /// and returns the pair of a new one for the caller (their device stays signed in).
    pub async fn change_password(
        &self,
        claims: &AccessClaims,
        current: SecretString,
        new: SecretString,
        call: &CallContext,
    ) -> Result<TokenPair, AuthError> {
        let user = self.caller(claims).await?;
        password::check_password_size(current.expose_secret())?;
        password::check_new_password(new.expose_secret(), self.min_password_chars)?;
        let event = |outcome| {
            AuditEvent::new(EventType::PasswordChanged, outcome, Actor::User(user.id), call)
                .subject(user.id)
                .session(&claims.sid)
        };
        let username = domain::Username::parse(&user.username)?;
        if let Err(err) = self.verify_password(&username, current, call).await {
            self.audit.record(event(Outcome::of_refusal(&err)));
            return Err(err);
        }
        let hash = self.hasher.hash(new).await?;
        if !self.users.set_password_hash(&user, &hash).await? {
            return Err(AuthError::Unauthenticated("account no longer exists"));
        }
        // Every session ends, this one too: whoever held any of its tokens (the reason to change
        // a password) is out, even within the refresh reuse interval. The caller goes on in a
        // new session started from here (kept only if no disabling or other change raced it).
        self.sessions.revoke_all(user.id, None, Actor::User(user.id), call).await?;
        // The new session was authenticated as the caller's was (the password, and the second
        // factor if the caller's session passed it).
        let methods = AuthMethods::of_claims(claims);
        let (pair, session) = self.start_session(&user, &hash, methods, call).await?;
        self.audit.record(event(Outcome::Success).session(&session));
        Ok(pair)
    }

    /// The bearer's account, once `password` is checked again (throttled as Login): the calls
    /// a stolen access token alone must not make. A refusal is audited as `event_type`.
    async fn reauthenticated(
        &self,
        claims: &AccessClaims,
        password: SecretString,
        event_type: EventType,
        call: &CallContext,
    ) -> Result<User, AuthError> {
        let user = self.caller(claims).await?;
        password::check_password_size(password.expose_secret())?;
        let username = domain::Username::parse(&user.username)?;
        if let Err(err) = self.verify_password(&username, password, call).await {
            self.audit.record(
                AuditEvent::new(event_type, Outcome::of_refusal(&err), Actor::User(user.id), call).subject(user.id),
            );
            return Err(err);
        }
        Ok(user)
    }

    /// Re-checks the password, then begins an enrolment: whoever holds an access token but not
    /// the password cannot bind their own authenticator to the account.
    pub async fn begin_totp_enrolment(
        &self,
        claims: &AccessClaims,
        password: SecretString,
        call: &CallContext,
    ) -> Result<Enrolment, AuthError> {
        let user = self.reauthenticated(claims, password, EventType::MfaEnrolmentBegun, call).await?;
        self.second_factor.begin(&user, call).await
    }

    /// Re-checks the password and the second factor, then removes the factor.
    pub async fn disable_totp(
        &self,
        claims: &AccessClaims,
        password: SecretString,
        step: SecondStep,
        call: &CallContext,
    ) -> Result<(), AuthError> {
        let user = self.reauthenticated(claims, password, EventType::MfaDisabled, call).await?;
        self.second_factor.disable(&user, step, call).await
    }

    /// Re-checks the password, then deletes the account and its sessions.
    pub async fn delete_account(
        &self,
        claims: &AccessClaims,
        password: SecretString,
        call: &CallContext,
    ) -> Result<(), AuthError> {
        let user = self.reauthenticated(claims, password, EventType::AccountDeleted, call).await?;
        delete_with_sessions(&self.users, &self.sessions, &self.audit, user.id, Actor::User(user.id), call).await?;
        Ok(())
    }

    /// Sets `username`'s role on behalf of `caller`, whose token said "admin" (the bearer layer
    /// checked that). The caller's account is read again from the database: a demoted admin's
    /// token, still saying "admin" until it expires, gets no further.
    pub async fn set_role(
        &self,
        caller: &AccessClaims,
        username: &str,
        role: &str,
        call: &CallContext,
    ) -> Result<User, AuthError> {
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
        self.audit.record(
            AuditEvent::new(EventType::RoleChanged, Outcome::Success, Actor::Admin(caller.id), call).subject(user.id),
        );
        Ok(user)
    }
}

/// Deletes an account after ending its sessions, so that their access tokens are refused at
/// once (the revocation list, with Redis shared by every replica) rather than only once each
/// replica's user cache learns of the deletion. A login racing the deletion starts a session
/// whose rows the deletion's cascade removes.
pub async fn delete_with_sessions(
    users: &Users,
    sessions: &Sessions,
    audit: &Audit,
    user_id: i64,
    actor: Actor,
    call: &CallContext,
) -> Result<bool, AuthError> {
    sessions.revoke_all(user_id, None, actor, call).await?;
    let deleted = users.delete(user_id).await?;
    if deleted {
        audit.record(AuditEvent::new(EventType::AccountDeleted, Outcome::Success, actor, call).subject(user_id));
    }
    Ok(deleted)
}

/// Reserves a password check, makes it, and settles the reservation by its outcome.
async fn check_password(
    users: Arc<Users>,
    hasher: PasswordHasher,
    throttle: Arc<LoginThrottle>,
    metrics: Arc<Metrics>,
    (username, password, client): (domain::Username, SecretString, Option<std::net::IpAddr>),
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
    // What a session started on this check is kept against (see `Accounts::start_session`).
    let verified = stored_hash.clone();
    match hasher.verify(password, stored_hash).await {
        Ok(true) => {
            throttle.succeeded(attempt).await;
            metrics.login("success");
            Ok(user.zip(verified))
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
