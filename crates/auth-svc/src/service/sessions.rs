//! Sessions: a login starts a refresh-token family; Refresh rotates it; Logout ends it.
//!
//! Rotation with a grace window: a token exchanged less than `reuse_interval` seconds ago
//! returns the very same successor pair again (several tabs refreshing at once, or a lost
//! response, must not log the user out). The pair is re-signed from the successor's row, never
//! stored: byte for byte the same while the signing key and the account's role are unchanged;
//! across a key promotion or a role change it is an equivalent pair (same ids and times, the
//! new `kid` or role). Any other reuse of a spent token is taken as theft and revokes the whole family.
//! The interval is judged by the database's clock alone (it wrote `rotated_at` too), so replicas
//! whose clocks differ cannot widen it.
//!
//! A session ends `auth.session_max_lifetime_seconds` after its login however often it is
//! refreshed, and its rows are purged `sessions.retention_seconds` after it ended.

use std::{sync::Arc, time::Duration};

use model::{
    DatabaseConnection,
    entity::refresh_tokens,
    query::{
        self,
        refresh_tokens::{NewRefreshToken, PresentedRotation, SessionRow},
    },
};
use uuid::Uuid;

use crate::{
    audit::{Actor, Audit, AuditEvent, CallContext, EventType, Outcome},
    auth::tokens::{AccessClaims, PairSpec, TokenError, TokenKeys, now_unix},
    domain::User,
    error::AuthError,
    metrics::Metrics,
    service::users::Users,
    store::revocation::Revocations,
};

/// What Login and Refresh return.
#[derive(Debug, Clone)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
}

/// A live session as its user sees it (ListSessions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    pub session: SessionRow,
    /// The session of the token that asked.
    pub current: bool,
}

/// Where a new session was started from, and how it was authenticated, as recorded on its
/// rows.
#[derive(Debug, Clone, Default)]
struct Origin {
    client_address: Option<String>,
    user_agent: Option<String>,
    amr: Option<String>,
}

/// How a session was authenticated: RFC 8176 method names, as its rows store them and its
/// access tokens' `amr` claim lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethods {
    /// The password alone.
    Password,
    /// The password and a second factor (a TOTP code or a recovery code: both are one-time
    /// passwords).
    PasswordAndOtp,
}

impl AuthMethods {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Password => "pwd",
            Self::PasswordAndOtp => "pwd otp",
        }
    }

    /// The methods of a session whose access token says `amr` (a token without the claim is
    /// from before it was written: password only).
    pub fn of_claims(claims: &AccessClaims) -> Self {
        if claims.has_amr("otp") { Self::PasswordAndOtp } else { Self::Password }
    }
}

pub struct Sessions {
    db: DatabaseConnection,
    users: Arc<Users>,
    revocations: Arc<Revocations>,
    keys: Arc<TokenKeys>,
    metrics: Arc<Metrics>,
    audit: Audit,
    lifetimes: SessionLifetimes,
}

/// How long tokens and sessions live, in seconds (from `auth.*`).
#[derive(Debug, Clone, Copy)]
pub struct SessionLifetimes {
    pub refresh_ttl: u64,
    pub reuse_interval: u64,
    pub max_lifetime: u64,
}

impl SessionLifetimes {
    fn refresh_ttl(&self) -> i64 {
        i64::try_from(self.refresh_ttl).unwrap_or(i64::MAX)
    }

    fn reuse_interval(&self) -> i64 {
        i64::try_from(self.reuse_interval).unwrap_or(i64::MAX)
    }

    fn max_lifetime(&self) -> i64 {
        i64::try_from(self.max_lifetime).unwrap_or(i64::MAX)
    }
}

impl Sessions {
    pub fn new(
        db: DatabaseConnection,
        users: Arc<Users>,
        revocations: Arc<Revocations>,
        keys: Arc<TokenKeys>,
        metrics: Arc<Metrics>,
        audit: Audit,
        lifetimes: SessionLifetimes,
    ) -> Self {
        Self { db, users, revocations, keys, metrics, audit, lifetimes }
    }

    /// Starts a new family for `user` (a successful login from `call`); returns the pair and
    /// the new session's id.
    pub async fn start(
        &self,
        user: &User,
        methods: AuthMethods,
        call: &CallContext,
    ) -> Result<(TokenPair, String), AuthError> {
        let now = now_unix();
        let origin = Origin {
            client_address: call.client_address.map(|address| address.to_string()),
            user_agent: call.user_agent.clone(),
            amr: Some(methods.as_str().to_owned()),
        };
        // Time-ordered (v7), as every id here: inserts land at the end of the indexes instead of
        // all over them. A session id is shown to its user, and v7 tells when it was made;
        // ListSessions shows that time anyway.
        let first = self.new_token(user.id, Uuid::now_v7().to_string(), &origin, now, now);
        let row = query::refresh_tokens::insert(&self.db, first).await?;
        self.metrics.token("issued");
        Ok((self.sign(&row, &user.role, now)?, row.family_id))
    }

    /// Exchanges a refresh token for the next pair of its family.
    pub async fn refresh(&self, presented: &str, call: &CallContext) -> Result<TokenPair, AuthError> {
        let claims = self.keys.verify_refresh(presented).map_err(|err| {
            AuthError::Unauthenticated(match err {
                TokenError::Expired => "refresh token expired",
                TokenError::WrongType => "not a refresh token",
                TokenError::NotYetValid | TokenError::Invalid => "invalid refresh token",
            })
        })?;
        let now = now_unix();
        // The common case, a live token of a live session, is spent and succeeded by the
        // database in one step; every other case reads the row below and answers as before.
        let (successor_id, access_jti) = (Uuid::now_v7().to_string(), Uuid::now_v7().to_string());
        let rotation = PresentedRotation {
            spent_id: &claims.jti,
            family_id: &claims.sid,
            user_id: claims.user_id,
            successor_id: &successor_id,
            access_jti: &access_jti,
            now,
            refresh_ttl: self.lifetimes.refresh_ttl(),
            max_lifetime: self.lifetimes.max_lifetime(),
        };
        if let Some(successor) = query::refresh_tokens::rotate_presented(&self.db, &rotation).await? {
            return self.refreshed(successor, now, call).await;
        }
        let mut row = self.find_row(&claims.jti).await?;
        if row.family_id != claims.sid || row.user_id != claims.user_id {
            return Err(AuthError::Unauthenticated("invalid refresh token"));
        }
        let started_at = self.session_started_at(&row).await?;
        if now >= started_at.saturating_add(self.lifetimes.max_lifetime()) {
            return Err(AuthError::Unauthenticated("session expired"));
        }
        if row.revoked_at.is_none() && row.rotated_at.is_none() {
            // A row without `session_started_at` (written before it existed) comes here.
            let successor = self.new_token(row.user_id, row.family_id.clone(), &Origin::of(&row), now, started_at);
            if query::refresh_tokens::rotate(&self.db, &row.id, &successor).await? {
                return self.refreshed(successor.into_row(), now, call).await;
            }
            // Someone rotated or revoked it between our read and our write: read what won.
            row = self.find_row(&claims.jti).await?;
        }
        self.replay(row, now, call).await
    }

    /// The answer to a rotation that wrote `successor`: its pair, if its account may still
    /// have one.
    async fn refreshed(
        &self,
        successor: refresh_tokens::Model,
        now: i64,
        call: &CallContext,
    ) -> Result<TokenPair, AuthError> {
        let user = self.owner(successor.user_id).await?;
        self.metrics.token("refreshed");
        self.audit.record(
            AuditEvent::new(EventType::Refresh, Outcome::Success, Actor::User(user.id), call)
                .subject(user.id)
                .session(&successor.family_id),
        );
        self.sign(&successor, &user.role, now)
    }

    /// A spent or revoked token came back: within the grace window and with a still-live
    /// successor, answer with that successor; otherwise revoke the family.
    async fn replay(&self, row: refresh_tokens::Model, now: i64, call: &CallContext) -> Result<TokenPair, AuthError> {
        if row.revoked_at.is_some() {
            return Err(AuthError::Unauthenticated("session revoked"));
        }
        if self.within_reuse_interval(&row).await?
            && let Some(successor) = self.live_successor(&row).await?
        {
            let user = self.owner(successor.user_id).await?;
            return self.sign(&successor, &user.role, now);
        }
        let revoked = query::refresh_tokens::revoke_family(&self.db, &row.family_id).await?;
        self.revocations.revoke(&row.family_id).await;
        self.metrics.reuse_detected();
        self.metrics.token("revoked");
        tracing::warn!(
            user_id = row.user_id,
            session = %row.family_id,
            revoked,
            "refresh token reuse detected; session revoked"
        );
        self.audit.record(
            AuditEvent::new(EventType::RefreshReuseDetected, Outcome::Failure, Actor::Anonymous, call)
                .subject(row.user_id)
                .session(&row.family_id),
        );
        Err(AuthError::Unauthenticated("refresh token already used; session revoked"))
    }

    /// Whether `row` was rotated at most `reuse_interval` seconds ago by the database's clock.
    /// A rotation in the future (a clock stepped back, or a row written by a skewed replica
    /// before rotations took the database's time) is outside: doubt never extends the grace.
    async fn within_reuse_interval(&self, row: &refresh_tokens::Model) -> Result<bool, AuthError> {
        let (Some(rotated_at), interval @ 1..) = (row.rotated_at, self.lifetimes.reuse_interval()) else {
            return Ok(false);
        };
        let elapsed = query::refresh_tokens::database_now(&self.db).await?.saturating_sub(rotated_at);
        Ok((0..=interval).contains(&elapsed))
    }

    /// When the session of `row` began: as the row says, or for a row from before it said so,
    /// its family's first token's `issued_at`.
    async fn session_started_at(&self, row: &refresh_tokens::Model) -> Result<i64, AuthError> {
        if let Some(started) = row.session_started_at {
            return Ok(started);
        }
        query::refresh_tokens::family_started_at(&self.db, &row.family_id)
            .await?
            .ok_or(AuthError::Unauthenticated("invalid refresh token"))
    }

    /// The token that replaced `row`, if it has not been rotated or revoked itself.
    async fn live_successor(&self, row: &refresh_tokens::Model) -> Result<Option<refresh_tokens::Model>, AuthError> {
        let Some(successor_id) = &row.successor_id else { return Ok(None) };
        let successor = query::refresh_tokens::find(&self.db, successor_id).await?;
        Ok(successor.filter(|next| next.rotated_at.is_none() && next.revoked_at.is_none()))
    }

    /// Ends the session of an access token: its family's refresh tokens stop working.
    pub async fn logout(&self, claims: &AccessClaims, call: &CallContext) -> Result<(), AuthError> {
        self.end(&claims.sid).await?;
        self.audit.record(
            AuditEvent::new(EventType::Logout, Outcome::Success, Actor::User(claims.user_id), call)
                .subject(claims.user_id)
                .session(&claims.sid),
        );
        Ok(())
    }

    /// Ends a session just started, that must not stand (see `Accounts::start_session`).
    pub async fn end_one(&self, session_id: &str) -> Result<(), AuthError> {
        self.end(session_id).await
    }

    /// Revokes one family: in the database, then in the revocation list (this replica at
    /// once, the others through Redis or their next poll).
    async fn end(&self, session_id: &str) -> Result<(), AuthError> {
        query::refresh_tokens::revoke_family(&self.db, session_id).await?;
        self.revocations.revoke(session_id).await;
        self.metrics.token("revoked");
        Ok(())
    }

    /// The live sessions of the caller, newest first.
    pub async fn list(&self, claims: &AccessClaims) -> Result<Vec<SessionInfo>, AuthError> {
        let sessions = query::refresh_tokens::live_sessions(&self.db, claims.user_id, now_unix()).await?;
        Ok(sessions.into_iter().map(|session| SessionInfo { current: session.id == claims.sid, session }).collect())
    }

    /// Ends session `session_id` of account `user_id`, on behalf of `actor`. NOT_FOUND when it
    /// is not a live session of that account: another account's session gets the very same
    /// answer as one that never existed.
    pub async fn revoke_one(
        &self,
        user_id: i64,
        session_id: &str,
        actor: Actor,
        call: &CallContext,
    ) -> Result<(), AuthError> {
        let session_id = Uuid::try_parse(session_id)
            .map_err(|_| AuthError::InvalidArgument("session_id must be a session id (a UUID)".into()))?
            .to_string();
        if !query::refresh_tokens::family_is_live_for(&self.db, &session_id, user_id).await? {
            return Err(AuthError::NotFound("no such session"));
        }
        self.end(&session_id).await?;
        self.audit.record(
            AuditEvent::new(EventType::SessionRevoked, Outcome::Success, actor, call)
                .subject(user_id)
                .session(&session_id),
        );
        Ok(())
    }

    /// Ends every session of `user_id` but `keep`, on behalf of `actor`; returns how many ended.
    ///
    /// Repeated until no unrevoked family is left: a login or a rotation that commits while a
    /// pass runs is caught by the next one (and `revoke_family` itself loops for rotations).
    pub async fn revoke_all(
        &self,
        user_id: i64,
        keep: Option<&str>,
        actor: Actor,
        call: &CallContext,
    ) -> Result<usize, AuthError> {
        // A login waiting for its second factor would start a session after this call.
        query::mfa::spend_challenges_of(&self.db, user_id, now_unix()).await?;
        let mut ended = 0;
        loop {
            let families = query::refresh_tokens::unrevoked_families(&self.db, user_id, keep).await?;
            if families.is_empty() {
                return Ok(ended);
            }
            for family in families {
                self.end(&family).await?;
                self.audit.record(
                    AuditEvent::new(EventType::SessionRevoked, Outcome::Success, actor, call)
                        .subject(user_id)
                        .session(&family),
                );
                ended += 1;
            }
        }
    }

    async fn find_row(&self, jti: &str) -> Result<refresh_tokens::Model, AuthError> {
        query::refresh_tokens::find(&self.db, jti).await?.ok_or(AuthError::Unauthenticated("invalid refresh token"))
    }

    /// The account a refresh token speaks for; gone and disabled accounts are refused.
    async fn owner(&self, user_id: i64) -> Result<User, AuthError> {
        let user = self.users.by_id(user_id).await?.ok_or(AuthError::Unauthenticated("account no longer exists"))?;
        if user.disabled {
            return Err(AuthError::Unauthenticated("account disabled"));
        }
        Ok(user)
    }

    /// A token of `family_id`, the session that began at `session_started_at`; it expires
    /// with the session at the latest.
    fn new_token(
        &self,
        user_id: i64,
        family_id: String,
        origin: &Origin,
        now: i64,
        session_started_at: i64,
    ) -> NewRefreshToken {
        let session_ends_at = session_started_at.saturating_add(self.lifetimes.max_lifetime());
        NewRefreshToken {
            id: Uuid::now_v7().to_string(),
            family_id,
            user_id,
            access_jti: Uuid::now_v7().to_string(),
            issued_at: now,
            expires_at: now.saturating_add(self.lifetimes.refresh_ttl()).min(session_ends_at),
            client_address: origin.client_address.clone(),
            user_agent: origin.user_agent.clone(),
            amr: origin.amr.clone(),
            session_started_at,
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
                // Rows from before the second factor existed have none: password only.
                amr: row.amr.as_deref().unwrap_or(AuthMethods::Password.as_str()),
            })
            .map_err(AuthError::internal)?;
        Ok(TokenPair {
            access_token: signed.access_token,
            refresh_token: signed.refresh_token,
            expires_in: signed.access_expires_at.saturating_sub(now).max(0),
        })
    }
}

impl Origin {
    /// A successor is recorded as coming from where its session began, authenticated as it was.
    fn of(row: &refresh_tokens::Model) -> Self {
        Self { client_address: row.client_address.clone(), user_agent: row.user_agent.clone(), amr: row.amr.clone() }
    }
}

/// Deletes the rows of sessions that ended (revoked, or every token expired) more than
/// `retention` ago, in bounded batches. Every replica runs one; they cannot conflict, as each
/// only deletes rows no call can use any more.
pub struct SessionPurge {
    db: DatabaseConnection,
    metrics: Arc<Metrics>,
    retention: i64,
    batch: u64,
}

impl SessionPurge {
    pub fn new(db: DatabaseConnection, metrics: Arc<Metrics>, retention_seconds: u64, batch: u64) -> Self {
        Self { db, metrics, retention: i64::try_from(retention_seconds).unwrap_or(i64::MAX), batch }
    }

    /// One purge: batches until one comes back short; returns the refresh-token rows deleted.
    /// Login challenges (second factor) that expired go too: they are of no use once expired.
    pub async fn purge_once(&self) -> Result<u64, AuthError> {
        let cutoff = query::refresh_tokens::database_now(&self.db).await?.saturating_sub(self.retention);
        let mut total = 0;
        loop {
            let deleted = query::refresh_tokens::purge_dead_families(&self.db, cutoff, self.batch).await?;
            self.metrics.refresh_tokens_purged(deleted);
            total += deleted;
            if deleted < self.batch {
                break;
            }
            // Leave the database to the calls between two batches.
            tokio::task::yield_now().await;
        }
        while query::mfa::purge_expired_challenges(&self.db, now_unix(), self.batch).await? == self.batch {
            tokio::task::yield_now().await;
        }
        Ok(total)
    }

    /// Purges every `interval` (the first at once) until the task is dropped or aborted.
    pub async fn run(self, interval: Duration) {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match self.purge_once().await {
                Ok(0) => {}
                Ok(rows) => tracing::info!(rows, "purged refresh tokens of ended sessions"),
                // Retried at the next tick; nothing depends on a purge being on time.
                Err(err) => tracing::warn!(error = ?err, "session purge failed"),
            }
        }
    }
}
