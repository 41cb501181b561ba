//! The second factor: TOTP (RFC 6238) with recovery codes.
//!
//! - Enrolment: [`SecondFactor::begin`] makes a secret and seals it into the account's row,
//!   inactive; [`SecondFactor::confirm`] activates it on a current code, hands out recovery
//!   codes and ends the account's other sessions.
//! - Login: for an account with an active factor, Login stops at a challenge
//!   ([`SecondFactor::challenge_for`]); [`SecondFactor::verify`] takes the challenge and a code
//!   (or a recovery code) and starts the session, `amr` "pwd otp".
//! - Every code check is reserved in the login throttle first, under a key of its own per
//!   account and under the address's key passwords share ([`LoginThrottle::reserve_code`]), so
//!   concurrent guesses cannot outrun the limit. A challenge also counts its own wrong codes
//!   and is spent at `mfa.max_failures`.
//! - Replay: an accepted code's time step is recorded by one conditional UPDATE ("only if no
//!   later step was"), so a code works once, whichever replica sees it; a recovery code is
//!   marked used the same way; a challenge is spent the same way.
//!
//! Callers run these to completion (`service::run_to_completion`): a reservation is always
//! settled, and a confirmation is never left without its recovery codes.

use std::sync::Arc;

use model::{DatabaseConnection, entity::user_totp, query};
use secrecy::ExposeSecret;
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::{
    audit::{Actor, Audit, AuditEvent, CallContext, EventType, Outcome},
    auth::{
        sealed::SealingKeys,
        tokens::{TokenKeys, now_unix},
    },
    config::MfaConfig,
    domain::{
        User, recovery_code,
        totp::{self, TotpSecret},
    },
    error::AuthError,
    service::{
        sessions::{AuthMethods, Sessions, TokenPair},
        users::Users,
    },
    store::throttle::LoginThrottle,
};

/// What the second step of a login (and the calls that re-check the factor) accepts.
pub enum SecondStep {
    /// Six digits from the authenticator app.
    Code(Zeroizing<String>),
    /// A recovery code in its canonical form (see `domain::recovery_code`).
    RecoveryCode(Zeroizing<String>),
}

impl SecondStep {
    /// Exactly one of the two request fields, checked for form (not yet for being right).
    pub fn from_fields(code: String, recovery_code: String) -> Result<Self, AuthError> {
        let (code, recovery_code) = (Zeroizing::new(code), Zeroizing::new(recovery_code));
        match (code.is_empty(), recovery_code.is_empty()) {
            (false, true) => Self::code(code),
            (true, false) => recovery_code::canonical(&recovery_code).map(Self::RecoveryCode).ok_or_else(|| {
                AuthError::InvalidArgument("recovery_code must be a recovery code (xxxxx-xxxxx)".into())
            }),
            _ => Err(AuthError::InvalidArgument("give exactly one of code and recovery_code".into())),
        }
    }

    /// An authenticator code alone (RegenerateRecoveryCodes, ConfirmTotpEnrolment). Spaces are
    /// dropped: apps show `123 456`, and people type what they see.
    pub fn code(typed: Zeroizing<String>) -> Result<Self, AuthError> {
        let code = Zeroizing::new(typed.chars().filter(|c| *c != ' ').collect::<String>());
        if code.len() == totp::DIGITS as usize && code.bytes().all(|byte| byte.is_ascii_digit()) {
            Ok(Self::Code(code))
        } else {
            Err(AuthError::InvalidArgument(format!("code must be {} digits", totp::DIGITS)))
        }
    }

    fn is_recovery_code(&self) -> bool {
        matches!(self, Self::RecoveryCode(_))
    }
}

/// A login stopped at its second step.
#[derive(Debug, Clone)]
pub struct Challenge {
    /// The signed challenge (`typ` "mfa+jwt") for VerifyMfa.
    pub token: String,
    /// Its row's id.
    pub id: String,
    pub expires_in: i64,
}

/// What a begun enrolment shows, once.
pub struct Enrolment {
    pub secret_base32: Zeroizing<String>,
    pub otpauth_uri: Zeroizing<String>,
    pub qr_svg: Zeroizing<String>,
}

/// GetMfaStatus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MfaStatus {
    pub totp_enabled: bool,
    pub recovery_codes_left: u64,
}

/// `mfa.*` as the service uses it.
#[derive(Debug, Clone)]
pub struct MfaSettings {
    pub issuer: String,
    pub challenge_ttl: i64,
    pub recovery_codes: usize,
    pub max_failures: u32,
}

impl MfaSettings {
    pub fn from_config(mfa: &MfaConfig) -> Self {
        Self {
            issuer: mfa.issuer.clone(),
            challenge_ttl: i64::try_from(mfa.challenge_ttl_seconds.get()).unwrap_or(i64::MAX),
            recovery_codes: usize::try_from(mfa.recovery_codes.get()).unwrap_or(usize::MAX),
            max_failures: mfa.max_failures.get(),
        }
    }
}

pub struct SecondFactor {
    db: DatabaseConnection,
    /// `None`: no `mfa.keys`, so no secret can be sealed or opened.
    sealing: Option<Arc<SealingKeys>>,
    tokens: Arc<TokenKeys>,
    users: Arc<Users>,
    sessions: Arc<Sessions>,
    throttle: Arc<LoginThrottle>,
    audit: Audit,
    settings: MfaSettings,
}

const INVALID_CODE: AuthError = AuthError::Unauthenticated("invalid code");
const INVALID_CHALLENGE: AuthError = AuthError::Unauthenticated("invalid or expired mfa challenge");

/// The associated data a secret is sealed under: the account's id, so a sealed secret copied
/// into another account's row does not open.
fn sealed_for(user_id: i64) -> String {
    user_id.to_string()
}

impl SecondFactor {
    #[allow(clippy::too_many_arguments, reason = "the services it works with, each named")]
    pub fn new(
        db: DatabaseConnection,
        sealing: Option<Arc<SealingKeys>>,
        tokens: Arc<TokenKeys>,
        users: Arc<Users>,
        sessions: Arc<Sessions>,
        throttle: Arc<LoginThrottle>,
        audit: Audit,
        settings: MfaSettings,
    ) -> Self {
        Self { db, sealing, tokens, users, sessions, throttle, audit, settings }
    }

    fn sealing(&self) -> Result<&SealingKeys, AuthError> {
        self.sealing.as_deref().ok_or(AuthError::FailedPrecondition("second factor not configured on this server"))
    }

    /// The challenge a login of `user` must answer, when the account has an active factor;
    /// `None` when the password is enough. An account keeps needing its factor when the server
    /// lost its keys (it fails closed: an operator's ResetMfa lets it in).
    pub async fn challenge_for(&self, user: &User) -> Result<Option<Challenge>, AuthError> {
        let enrolled = query::mfa::find(&self.db, user.id).await?.is_some_and(|row| row.confirmed_at.is_some());
        if !enrolled {
            return Ok(None);
        }
        let (id, now) = (Uuid::new_v4().to_string(), now_unix());
        let expires_at = now.saturating_add(self.settings.challenge_ttl);
        query::mfa::create_challenge(&self.db, &id, user.id, expires_at).await?;
        let token = self.tokens.sign_challenge(user.id, &id, now, expires_at).map_err(AuthError::internal)?;
        Ok(Some(Challenge { token, id, expires_in: self.settings.challenge_ttl }))
    }

    /// Spends a challenge that must not be answered (its login was refused after all).
    pub async fn withdraw(&self, challenge: &Challenge) -> Result<(), AuthError> {
        query::mfa::spend_challenge(&self.db, &challenge.id, now_unix()).await?;
        Ok(())
    }

    /// The second step of a login: the challenge and a code start the session.
    pub async fn verify(&self, token: &str, step: SecondStep, call: &CallContext) -> Result<TokenPair, AuthError> {
        let claims = self.tokens.verify_challenge(token).map_err(|_| INVALID_CHALLENGE)?;
        let now = now_unix();
        let challenge = query::mfa::find_challenge(&self.db, &claims.jti).await?;
        let open = challenge
            .is_some_and(|row| row.user_id == claims.user_id && row.spent_at.is_none() && row.expires_at > now);
        if !open {
            return Err(INVALID_CHALLENGE);
        }
        let user = self.users.by_id_uncached(claims.user_id).await?.ok_or(INVALID_CHALLENGE)?;
        if user.disabled {
            return Err(AuthError::Unauthenticated("account disabled"));
        }
        // Removed since the password step (disabled, or an operator's reset): start over.
        let row = self.active_factor(user.id).await?.ok_or(INVALID_CHALLENGE)?;
        let event_type = if step.is_recovery_code() { EventType::MfaRecoveryCodeUsed } else { EventType::MfaVerified };
        let event = |outcome| {
            AuditEvent::new(event_type, outcome, Actor::Anonymous, call).subject(user.id).username(&user.username)
        };
        if let Err(err) = self.check(&user, &row, &step, call).await {
            if matches!(err, AuthError::Unauthenticated(_)) {
                query::mfa::count_failure(&self.db, &claims.jti, self.settings.max_failures, now).await?;
            }
            self.audit.record(event(Outcome::of_refusal(&err)));
            return Err(err);
        }
        // The session first, then the challenge is spent: ending every session of the account
        // (a password change, a reset, a disabling) spends open challenges before it looks for
        // sessions, so it either finds this session or spent the challenge first, and then the
        // spend below fails and the session ends here. Spent the other way round, the session
        // could be inserted after such a change had looked, and outlive it. Also one session per
        // challenge: of right codes racing, one spends it, the others end theirs.
        let (pair, session) = self.sessions.start(&user, AuthMethods::PasswordAndOtp, call).await?;
        if !query::mfa::spend_challenge(&self.db, &claims.jti, now).await? {
            self.sessions.end_one(&session).await?;
            return Err(INVALID_CHALLENGE);
        }
        // Read after the insert, as Login does: a disabling or deletion racing this call either
        // saw the session (and ended it) or is seen here.
        match self.users.by_id_uncached(user.id).await? {
            Some(now) if !now.disabled => {}
            gone_or_disabled => {
                self.sessions.end_one(&session).await?;
                let why = if gone_or_disabled.is_some() { "account disabled" } else { "account no longer exists" };
                return Err(AuthError::Unauthenticated(why));
            }
        }
        self.users.record_login(user.id).await?;
        self.audit.record(event(Outcome::Success).session(&session));
        Ok(pair)
    }

    /// Makes a new secret for `user` and seals it into an inactive row (replacing a begun one).
    pub async fn begin(&self, user: &User, call: &CallContext) -> Result<Enrolment, AuthError> {
        let keys = self.sealing()?;
        let secret = TotpSecret::generate().map_err(AuthError::internal)?;
        let sealed = keys.seal(secret.expose_bytes(), sealed_for(user.id).as_bytes()).map_err(AuthError::internal)?;
        if !query::mfa::begin_enrolment(&self.db, user.id, &sealed).await? {
            return Err(AuthError::AlreadyExists("a second factor is already enabled; disable it first"));
        }
        let otpauth_uri = Zeroizing::new(secret.otpauth_uri(&self.settings.issuer, &user.username));
        let qr_svg = Zeroizing::new(totp::qr_svg(&otpauth_uri).map_err(AuthError::internal)?);
        self.audit.record(
            AuditEvent::new(EventType::MfaEnrolmentBegun, Outcome::Success, Actor::User(user.id), call)
                .subject(user.id),
        );
        Ok(Enrolment { secret_base32: Zeroizing::new(secret.to_base32()), otpauth_uri, qr_svg })
    }

    /// Activates the begun enrolment on a current `code`; returns the recovery codes, and ends
    /// every session of the account but `current_session`.
    pub async fn confirm(
        &self,
        user: &User,
        current_session: &str,
        code: SecondStep,
        call: &CallContext,
    ) -> Result<Vec<Zeroizing<String>>, AuthError> {
        let keys = self.sealing()?;
        let event = |outcome| {
            AuditEvent::new(EventType::MfaEnabled, outcome, Actor::User(user.id), call)
                .subject(user.id)
                .session(current_session)
        };
        let row = query::mfa::find(&self.db, user.id).await?.ok_or(AuthError::NotFound("no enrolment begun"))?;
        if row.confirmed_at.is_some() {
            return Err(AuthError::AlreadyExists("the second factor is already enabled"));
        }
        let SecondStep::Code(code) = code else {
            return Err(AuthError::InvalidArgument("an enrolment is confirmed with a code".into()));
        };
        let secret = self.open_secret(user.id, &row)?;
        let attempt = self.throttle.reserve_code(user.id, call.client_address).await;
        let attempt = attempt.inspect_err(|err| self.audit.record(event(Outcome::of_refusal(err))))?;
        let Some(step) = secret.verify(&code, unix_now_unsigned(), None) else {
            self.throttle.failed(attempt).await;
            self.audit.record(event(Outcome::Failure));
            return Err(INVALID_CODE);
        };
        self.throttle.succeeded(attempt).await;
        let (codes, hashes) = self.new_recovery_codes(keys)?;
        let step = i64::try_from(step).map_err(AuthError::internal)?;
        if !query::mfa::confirm(&self.db, user.id, &row.secret_sealed, step, &hashes).await? {
            // Begun again (a new secret) or confirmed by a racing call since we read it.
            return Err(AuthError::NotFound("no enrolment begun (it was begun again meanwhile)"));
        }
        self.sessions.revoke_all(user.id, Some(current_session), Actor::User(user.id), call).await?;
        self.audit.record(event(Outcome::Success));
        Ok(codes)
    }

    /// Removes the account's factor after `step` checked out (the caller checked the password).
    pub async fn disable(&self, user: &User, step: SecondStep, call: &CallContext) -> Result<(), AuthError> {
        let event =
            |outcome| AuditEvent::new(EventType::MfaDisabled, outcome, Actor::User(user.id), call).subject(user.id);
        let row = self.active_factor(user.id).await?.ok_or(AuthError::NotFound("no second factor"))?;
        if let Err(err) = self.check(user, &row, &step, call).await {
            self.audit.record(event(Outcome::of_refusal(&err)));
            return Err(err);
        }
        query::mfa::delete(&self.db, user.id).await?;
        self.audit.record(event(Outcome::Success));
        Ok(())
    }

    /// New recovery codes in place of all the old ones, on a current code.
    pub async fn regenerate_recovery_codes(
        &self,
        user: &User,
        code: SecondStep,
        call: &CallContext,
    ) -> Result<Vec<Zeroizing<String>>, AuthError> {
        let keys = self.sealing()?;
        let event = |outcome| {
            AuditEvent::new(EventType::RecoveryCodesRegenerated, outcome, Actor::User(user.id), call).subject(user.id)
        };
        let row = self.active_factor(user.id).await?.ok_or(AuthError::NotFound("no second factor"))?;
        if code.is_recovery_code() {
            return Err(AuthError::InvalidArgument("new recovery codes need a code from the authenticator".into()));
        }
        if let Err(err) = self.check(user, &row, &code, call).await {
            self.audit.record(event(Outcome::of_refusal(&err)));
            return Err(err);
        }
        let (codes, hashes) = self.new_recovery_codes(keys)?;
        query::mfa::replace_recovery_codes(&self.db, user.id, &hashes).await?;
        self.audit.record(event(Outcome::Success));
        Ok(codes)
    }

    pub async fn status(&self, user: &User) -> Result<MfaStatus, AuthError> {
        let totp_enabled = self.active_factor(user.id).await?.is_some();
        let recovery_codes_left =
            if totp_enabled { query::mfa::unused_recovery_codes(&self.db, user.id).await? } else { 0 };
        Ok(MfaStatus { totp_enabled, recovery_codes_left })
    }

    /// The account's confirmed authenticator, if any.
    async fn active_factor(&self, user_id: i64) -> Result<Option<user_totp::Model>, AuthError> {
        Ok(query::mfa::find(&self.db, user_id).await?.filter(|row| row.confirmed_at.is_some()))
    }

    /// Checks `step` against the account's active factor, reserved in the login throttle first
    /// and settled by the outcome. A right code is used up here (its step recorded, or the
    /// recovery code marked used). Wrong: UNAUTHENTICATED "invalid code".
    async fn check(
        &self,
        user: &User,
        row: &user_totp::Model,
        step: &SecondStep,
        call: &CallContext,
    ) -> Result<(), AuthError> {
        // Opened before the reservation: a server without its keys counts no attempt.
        let secret = match step {
            SecondStep::Code(_) => Some(self.open_secret(user.id, row)?),
            SecondStep::RecoveryCode(_) => None,
        };
        let attempt = self.throttle.reserve_code(user.id, call.client_address).await?;
        let right = match (step, secret) {
            (SecondStep::Code(code), Some(secret)) => {
                let last_used = row.last_used_step.and_then(|step| u64::try_from(step).ok());
                match secret.verify(code, unix_now_unsigned(), last_used).map(i64::try_from) {
                    Some(Ok(step)) => query::mfa::record_step(&self.db, user.id, step).await,
                    _ => Ok(false),
                }
            }
            (SecondStep::RecoveryCode(code), _) => match self.sealing() {
                Ok(keys) => {
                    query::mfa::use_recovery_code(&self.db, user.id, &keys.recovery_code_candidates(code)).await
                }
                Err(err) => {
                    self.throttle.cancelled(attempt).await;
                    return Err(err);
                }
            },
            (SecondStep::Code(_), None) => Ok(false),
        };
        match right {
            Ok(true) => {
                self.throttle.succeeded(attempt).await;
                Ok(())
            }
            Ok(false) => {
                self.throttle.failed(attempt).await;
                Err(INVALID_CODE)
            }
            // Nothing was decided: the attempt does not count.
            Err(err) => {
                self.throttle.cancelled(attempt).await;
                Err(err.into())
            }
        }
    }

    fn open_secret(&self, user_id: i64, row: &user_totp::Model) -> Result<TotpSecret, AuthError> {
        // A key removed from `mfa.keys` too soon, or a row tampered with: an operator's matter,
        // logged once (as every INTERNAL is) with the account id and the reason. `SealError`
        // names at most a key id, never key material or the sealed text.
        let opened = self.sealing()?.open(&row.secret_sealed, sealed_for(user_id).as_bytes()).map_err(|err| {
            AuthError::internal(std::io::Error::other(format!("the authenticator of account {user_id}: {err}")))
        })?;
        TotpSecret::from_bytes(opened.expose_secret())
            .ok_or_else(|| AuthError::internal(std::io::Error::other("a sealed TOTP secret has the wrong length")))
    }

    /// Fresh codes as shown, and their hashes as stored.
    fn new_recovery_codes(
        &self,
        keys: &SealingKeys,
    ) -> Result<(Vec<Zeroizing<String>>, Vec<query::mfa::RecoveryCodeHash>), AuthError> {
        let codes = recovery_code::generate(self.settings.recovery_codes).map_err(AuthError::internal)?;
        let hashes = codes
            .iter()
            .filter_map(|code| recovery_code::canonical(code))
            .map(|canonical| keys.recovery_code_hash(&canonical))
            .collect();
        Ok((codes, hashes))
    }
}

fn unix_now_unsigned() -> u64 {
    u64::try_from(now_unix()).unwrap_or(0)
}
