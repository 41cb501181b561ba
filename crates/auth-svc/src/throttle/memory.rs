//! In-process attempt log (one replica), bounded in size.

use std::{
    collections::{HashMap, VecDeque},
    sync::Mutex,
    time::{Duration, Instant},
};

use super::AttemptLog;

/// Keys kept at most; past it, keys with no attempt in their window are dropped first.
const MAX_KEYS: usize = 100_000;

#[derive(Default)]
pub struct MemoryAttemptLog {
    attempts: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl MemoryAttemptLog {
    fn attempts(&self) -> std::sync::MutexGuard<'_, HashMap<String, VecDeque<Instant>>> {
        self.attempts.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn prune(times: &mut VecDeque<Instant>, window: Duration, now: Instant) {
    while times.front().is_some_and(|oldest| now.duration_since(*oldest) >= window) {
        times.pop_front();
    }
}

#[tonic::async_trait]
impl AttemptLog for MemoryAttemptLog {
    async fn recent(&self, key: &str, window: Duration) -> Option<(u32, Duration)> {
        let now = Instant::now();
        let mut attempts = self.attempts();
        let Some(times) = attempts.get_mut(key) else { return Some((0, Duration::ZERO)) };
        prune(times, window, now);
        let leaves_in =
            times.front().map_or(Duration::ZERO, |oldest| window.saturating_sub(now.duration_since(*oldest)));
        Some((u32::try_from(times.len()).unwrap_or(u32::MAX), leaves_in))
    }

    async fn record(&self, key: &str, window: Duration) {
        let now = Instant::now();
        let mut attempts = self.attempts();
        if attempts.len() >= MAX_KEYS && !attempts.contains_key(key) {
            attempts.retain(|_, times| {
                prune(times, window, now);
                !times.is_empty()
            });
            if attempts.len() >= MAX_KEYS {
                attempts.clear();
            }
        }
        let times = attempts.entry(key.to_owned()).or_default();
        prune(times, window, now);
        times.push_back(now);
    }

    async fn clear(&self, key: &str) {
        self.attempts().remove(key);
    }
}
