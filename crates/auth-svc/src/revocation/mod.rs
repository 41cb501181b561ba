//! Revoked sessions, checked on every protected call so that Logout (and reuse detection)
//! stop the session's access tokens at once, not only its refresh tokens.
//!
//! Entries are session ids (`sid`, the refresh-token family), which covers every access token
//! of the session, kept for one access-token lifetime. The durable truth stays in the database
//! (`refresh_tokens.revoked_at`): when Redis cannot answer, the check asks the database, so a
//! Redis outage costs a query per call, never a revoked token accepted. Revocations made during
//! an outage reach only the database; so the first time the list answers again, it is refilled
//! from the database (sessions revoked within one access-token lifetime) before it is believed.

mod memory;
mod redis;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

pub use memory::MemoryRevocationList;
use model::{DatabaseConnection, query};
pub use redis::RedisRevocationList;

use crate::{auth::tokens::now_unix, error::AuthError};

#[tonic::async_trait]
pub trait RevocationList: Send + Sync {
    /// `false` when the entry could not be recorded.
    async fn revoke(&self, session_id: &str, keep_for: Duration) -> bool;
    /// `None` when the list cannot answer.
    async fn is_revoked(&self, session_id: &str) -> Option<bool>;
}

pub struct Revocations {
    list: Arc<dyn RevocationList>,
    db: DatabaseConnection,
    keep_for: Duration,
    /// Set when the list failed to answer or to record; cleared by a refill.
    needs_refill: AtomicBool,
}

impl Revocations {
    /// `access_ttl`: no access token outlives it, so neither needs its entry.
    pub fn new(list: Arc<dyn RevocationList>, db: DatabaseConnection, access_ttl: Duration) -> Self {
        Self { list, db, keep_for: access_ttl + Duration::from_secs(5), needs_refill: AtomicBool::new(false) }
    }

    /// Call after the session is revoked in the database.
    pub async fn revoke(&self, session_id: &str) {
        if !self.list.revoke(session_id, self.keep_for).await {
            self.needs_refill.store(true, Ordering::SeqCst);
        }
    }

    pub async fn is_revoked(&self, session_id: &str) -> Result<bool, AuthError> {
        match self.list.is_revoked(session_id).await {
            Some(revoked) if !self.needs_refill.load(Ordering::SeqCst) => Ok(revoked),
            Some(_) => {
                self.refill().await?;
                self.db_says_revoked(session_id).await
            }
            None => {
                self.needs_refill.store(true, Ordering::SeqCst);
                self.db_says_revoked(session_id).await
            }
        }
    }

    async fn db_says_revoked(&self, session_id: &str) -> Result<bool, AuthError> {
        Ok(query::refresh_tokens::family_revoked(&self.db, session_id).await?)
    }

    /// Copies the sessions revoked within the keep window from the database into the list.
    async fn refill(&self) -> Result<(), AuthError> {
        if !self.needs_refill.swap(false, Ordering::SeqCst) {
            return Ok(());
        }
        let since = now_unix().saturating_sub(i64::try_from(self.keep_for.as_secs()).unwrap_or(i64::MAX));
        let sessions = match query::refresh_tokens::families_revoked_since(&self.db, since).await {
            Ok(sessions) => sessions,
            Err(err) => {
                self.needs_refill.store(true, Ordering::SeqCst);
                return Err(err.into());
            }
        };
        for session in &sessions {
            if !self.list.revoke(session, self.keep_for).await {
                self.needs_refill.store(true, Ordering::SeqCst);
                return Ok(());
            }
        }
        tracing::info!(sessions = sessions.len(), "revocation list refilled from the database after an outage");
        Ok(())
    }
}
