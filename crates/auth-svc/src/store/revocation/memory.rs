//! In-process revocation list (one replica): session id → until when it is kept.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use super::RevocationList;

#[derive(Default)]
pub struct MemoryRevocationList {
    revoked: Mutex<HashMap<String, Instant>>,
}

#[tonic::async_trait]
impl RevocationList for MemoryRevocationList {
    async fn revoke(&self, session_id: &str, keep_for: Duration) -> bool {
        let now = Instant::now();
        let mut revoked = self.revoked.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // Entries die with the last token they could stop; dropping them keeps the map small.
        revoked.retain(|_, until| *until > now);
        revoked.insert(session_id.to_owned(), now + keep_for);
        true
    }

    async fn is_revoked(&self, session_id: &str) -> Option<bool> {
        let revoked = self.revoked.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        Some(revoked.get(session_id).is_some_and(|until| *until > Instant::now()))
    }
}
