//! The sessions this replica knows to be revoked: filled by its own revocations, by the
//! shared list's "revoked" answers and by the database poll. Entries are kept for one
//! access-token lifetime (no token of the session outlives that), so the set stays small.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

pub struct RecentRevocations {
    keep_for: Duration,
    /// Session id → until when it is kept.
    until: Mutex<HashMap<String, Instant>>,
}

impl RecentRevocations {
    pub fn new(keep_for: Duration) -> Self {
        Self { keep_for, until: Mutex::new(HashMap::new()) }
    }

    pub fn contains(&self, session_id: &str) -> bool {
        self.lock().get(session_id).is_some_and(|until| *until > Instant::now())
    }

    pub fn insert(&self, session_id: &str) {
        let until = Instant::now() + self.keep_for;
        self.lock().insert(session_id.to_owned(), until);
    }

    /// Adds every session of one poll under one lock: a call sees all of them or none.
    pub fn insert_all(&self, session_ids: Vec<String>) {
        let until = Instant::now() + self.keep_for;
        let mut known = self.lock();
        for session_id in session_ids {
            known.insert(session_id, until);
        }
    }

    /// Drops entries that can no longer stop a token.
    pub fn prune(&self) {
        let now = Instant::now();
        self.lock().retain(|_, until| *until > now);
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.until.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_kept_for_their_window_then_pruned() {
        let recent = RecentRevocations::new(Duration::from_millis(30));
        recent.insert("a");
        recent.insert_all(vec!["b".into(), "c".into()]);
        assert!(recent.contains("a") && recent.contains("b") && recent.contains("c"));
        assert!(!recent.contains("d"));
        std::thread::sleep(Duration::from_millis(40));
        assert!(!recent.contains("a"), "expired entries do not answer");
        recent.prune();
        assert!(recent.is_empty());
    }
}
