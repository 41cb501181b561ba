//! Revoked sessions, checked on every protected call so that Logout (and reuse detection)
//! stop the session's access tokens, not only its refresh tokens.
//!
//! The database (`refresh_tokens.revoked_at`) is the truth; everything else is a cache of it:
//!
//! - this replica's [`RecentRevocations`]: what it revoked itself (refused at once) and what
//!   its poll found. A background task asks the database every `revocation.poll_interval_ms`
//!   for the sessions revoked since its last poll (an indexed query, with an overlap for
//!   commit lag); a poll's results are added all at once, before the poll counts as done.
//! - the shared list (Redis with `redis_url`): a fast path by which a revocation reaches the
//!   other replicas before their next poll. Its "revoked" is believed, its "not revoked" never
//!   alone: Redis may have lost the entry (restart, eviction, failover) or never got it (cut
//!   off from the replica that revoked).
//!
//! "Not revoked" is answered only while the last successful poll began less than
//! `revocation.max_staleness_ms` ago. Past that, each call asks the database (UNAVAILABLE if
//! it cannot answer either). So every replica refuses a revoked session within
//! `max_staleness_ms`, whatever Redis does, and no call is answered from a half-done poll.

mod memory;
mod recent;
mod redis;

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

pub use memory::MemoryRevocationList;
use model::{DatabaseConnection, query};
pub use recent::RecentRevocations;
pub use redis::RedisRevocationList;

use crate::{
    error::AuthError,
    metrics::Metrics,
    store::polling::{self, PollLoop},
};

/// A revocation list shared by replicas (or this process's own, without Redis).
#[tonic::async_trait]
pub trait RevocationList: Send + Sync {
    /// `false` when the entry could not be recorded.
    async fn revoke(&self, session_id: &str, keep_for: Duration) -> bool;
    /// `None` when the list cannot answer.
    async fn is_revoked(&self, session_id: &str) -> Option<bool>;
}

/// How the set is kept current; from `revocation.*` and `auth.access_expire`.
#[derive(Debug, Clone, Copy)]
pub struct RevocationSettings {
    pub max_staleness: Duration,
    pub poll_interval: Duration,
    /// No access token outlives it, so neither need their entries.
    pub access_ttl: Duration,
}

impl RevocationSettings {
    fn keep_for(&self) -> Duration {
        self.access_ttl + Duration::from_secs(5)
    }
}

/// What the last successful poll established.
#[derive(Debug, Default)]
struct PollState {
    /// Until when "not revoked" may be answered without asking the database.
    trusted_until: Option<Instant>,
    /// The database's clock when the last successful poll read it.
    last_read_at: Option<i64>,
}

pub struct Revocations {
    shared: Arc<dyn RevocationList>,
    db: DatabaseConnection,
    recent: RecentRevocations,
    state: Mutex<PollState>,
    settings: RevocationSettings,
    metrics: Arc<Metrics>,
}

impl Revocations {
    /// `db` answers the per-call checks of a stale replica (the request pool).
    pub fn new(
        shared: Arc<dyn RevocationList>,
        db: DatabaseConnection,
        settings: RevocationSettings,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            shared,
            db,
            recent: RecentRevocations::new(settings.keep_for()),
            state: Mutex::new(PollState::default()),
            settings,
            metrics,
        }
    }

    /// Call after the session is revoked in the database.
    pub async fn revoke(&self, session_id: &str) {
        self.recent.insert(session_id);
        // Best effort: the other replicas' polls find it in the database anyway.
        self.shared.revoke(session_id, self.settings.keep_for()).await;
    }

    pub async fn is_revoked(&self, session_id: &str) -> Result<bool, AuthError> {
        if self.recent.contains(session_id) {
            return Ok(true);
        }
        if !self.is_current() {
            return self.ask_database(session_id).await;
        }
        if self.shared.is_revoked(session_id).await == Some(true) {
            self.recent.insert(session_id);
            return Ok(true);
        }
        Ok(false)
    }

    /// Whether the last successful poll is recent enough to answer "not revoked".
    pub fn is_current(&self) -> bool {
        self.lock_state().trusted_until.is_some_and(|until| Instant::now() < until)
    }

    async fn ask_database(&self, session_id: &str) -> Result<bool, AuthError> {
        self.metrics.revocation_database_check();
        let revoked = query::refresh_tokens::family_revoked(&self.db, session_id).await?;
        if revoked {
            self.recent.insert(session_id);
        }
        Ok(revoked)
    }

    /// One poll on `db`: adds the sessions revoked since the last successful poll (or, for
    /// the first, within one access-token lifetime) and then, only then, extends the trust.
    /// Returns how many sessions it read.
    pub async fn poll(&self, db: &DatabaseConnection) -> Result<usize, AuthError> {
        let started = Instant::now();
        let read_at = query::refresh_tokens::database_now(db).await?;
        let keep_seconds = i64::try_from(self.settings.keep_for().as_secs()).unwrap_or(i64::MAX);
        let oldest_needed = read_at.saturating_sub(keep_seconds);
        let since = polling::read_since(self.lock_state().last_read_at, oldest_needed);
        let sessions = query::refresh_tokens::families_revoked_since(db, since).await?;
        let count = sessions.len();
        self.recent.insert_all(sessions);
        self.recent.prune();
        let mut state = self.lock_state();
        state.last_read_at = Some(read_at);
        // From the poll's start: what was committed before it is in the set now.
        state.trusted_until = Some(started + self.settings.max_staleness);
        Ok(count)
    }

    /// Polls every `poll_interval` on `db` until the task is dropped or aborted.
    pub async fn keep_current(self: Arc<Self>, db: DatabaseConnection) {
        let polls = PollLoop {
            what: "revocation",
            interval: self.settings.poll_interval,
            deadline: self.settings.max_staleness,
            meanwhile: "calls check the database once the staleness bound passes",
        };
        polls.run(|| self.poll(&db), |outcome| self.metrics.revocation_poll(outcome)).await;
    }

    fn lock_state(&self) -> std::sync::MutexGuard<'_, PollState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
