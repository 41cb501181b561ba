//! In-process attempt log (one replica), with a fixed capacity.
//!
//! Keys live in two moka caches of `capacity` entries each, which evict one entry at a time
//! (never all at once) and drop keys idle for a whole window (nothing in them counts any more):
//! - `recent`: every key with attempts in the window;
//! - `locked`: the keys whose failures reached their limit, kept apart so that a flood of
//!   other names, each failing once or twice, cannot push a locked account out. Pushing one
//!   out takes locking `capacity` other keys within one window, each with `limit` real
//!   password checks (500,000 at the defaults).

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use moka::sync::Cache;

use super::{AttemptLog, KeyLimit, Outcome, Reserved, Ticket};

/// Attempts under one key, as microseconds on the log's clock.
#[derive(Default)]
struct Attempts {
    /// (member, started) of attempts in flight.
    pending: Vec<(u64, i64)>,
    /// When each recorded failure was recorded, oldest first.
    failed: VecDeque<i64>,
}

impl Attempts {
    fn prune(&mut self, now: i64, window_us: i64) {
        self.pending.retain(|&(_, started)| now - started < window_us);
        while self.failed.front().is_some_and(|&at| now - at >= window_us) {
            self.failed.pop_front();
        }
    }

    fn count(&self) -> usize {
        self.pending.len() + self.failed.len()
    }

    /// Why `key` refuses one more attempt now, if it does.
    fn refusal(&self, key: &KeyLimit, now: i64, window_us: i64) -> Option<Reserved> {
        let in_flight_cap = key.max_in_flight.map(|cap| usize::try_from(cap).unwrap_or(usize::MAX));
        if in_flight_cap.is_some_and(|cap| self.pending.len() >= cap) {
            return Some(Reserved::Refused { retry_after: IN_FLIGHT_RETRY, in_flight: true });
        }
        let limit = usize::try_from(key.limit).unwrap_or(usize::MAX);
        (self.count() >= limit)
            .then(|| Reserved::Refused { retry_after: self.wait_below(limit, now, window_us), in_flight: false })
    }

    /// How long until fewer than `limit` attempts remain in the window.
    fn wait_below(&self, limit: usize, now: i64, window_us: i64) -> Duration {
        let mut times: Vec<i64> =
            self.pending.iter().map(|&(_, started)| started).chain(self.failed.iter().copied()).collect();
        times.sort_unstable();
        // The (count - limit + 1)th oldest must leave for the count to drop below the limit.
        let must_leave = self.count().saturating_sub(limit);
        let leaves_at = times.get(must_leave).map_or(now, |&at| at + window_us);
        let wait = Duration::from_micros(u64::try_from(leaves_at - now).unwrap_or(0));
        if self.pending.is_empty() { wait } else { wait.min(IN_FLIGHT_RETRY) }
    }
}

/// The longest `retry-after` while attempts are in flight: they settle within a hash or two.
const IN_FLIGHT_RETRY: Duration = Duration::from_secs(1);

pub struct MemoryAttemptLog {
    recent: Cache<String, Arc<Mutex<Attempts>>>,
    locked: Cache<String, Arc<Mutex<Attempts>>>,
    /// Makes a reservation over several keys one step: no other attempt sees half of it.
    one_at_a_time: Mutex<()>,
    clock: Instant,
    /// The last time handed out: the clock never gives the same microsecond twice.
    last_tick: std::sync::atomic::AtomicI64,
    next_member: std::sync::atomic::AtomicU64,
}

impl MemoryAttemptLog {
    /// `capacity`: keys kept at most; `window`: the longest window it is used with.
    pub fn new(capacity: u64, window: Duration) -> Self {
        Self {
            recent: Cache::builder().max_capacity(capacity).time_to_idle(window).build(),
            locked: Cache::builder().max_capacity(capacity).time_to_idle(window).build(),
            one_at_a_time: Mutex::new(()),
            clock: Instant::now(),
            last_tick: std::sync::atomic::AtomicI64::new(0),
            next_member: std::sync::atomic::AtomicU64::new(1),
        }
    }

    /// Microseconds since the log began, strictly increasing (called under `one_at_a_time`).
    fn now_us(&self) -> i64 {
        let elapsed = i64::try_from(self.clock.elapsed().as_micros()).unwrap_or(i64::MAX);
        let previous = self.last_tick.load(std::sync::atomic::Ordering::Relaxed);
        let now = elapsed.max(previous + 1);
        self.last_tick.store(now, std::sync::atomic::Ordering::Relaxed);
        now
    }

    fn attempts(&self, key: &str) -> Arc<Mutex<Attempts>> {
        self.locked.get(key).unwrap_or_else(|| self.recent.get_with_by_ref(key, Arc::default))
    }

    fn existing(&self, key: &str) -> Option<Arc<Mutex<Attempts>>> {
        self.locked.get(key).or_else(|| self.recent.get(key))
    }

    /// Keys held now (moka settles its counts lazily; this brings them up to date).
    pub fn len(&self) -> u64 {
        self.recent.run_pending_tasks();
        self.locked.run_pending_tasks();
        self.recent.entry_count() + self.locked.entry_count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn window_us(window: Duration) -> i64 {
    i64::try_from(window.as_micros()).unwrap_or(i64::MAX)
}

#[tonic::async_trait]
impl AttemptLog for MemoryAttemptLog {
    async fn reserve(&self, keys: &[KeyLimit], window: Duration) -> Option<Reserved> {
        let window = window_us(window);
        let _one_at_a_time = lock(&self.one_at_a_time);
        let now = self.now_us();
        // Look before creating anything: a refused call adds no key (else a flood of refused
        // calls with one-off names would push real counts out of the cache for free).
        for key in keys {
            let Some(entry) = self.existing(&key.key) else { continue };
            let mut attempts = lock(&entry);
            attempts.prune(now, window);
            if let Some(refusal) = attempts.refusal(key, now, window) {
                return Some(refusal);
            }
        }
        let member = self.next_member.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        for key in keys {
            lock(&self.attempts(&key.key)).pending.push((member, now));
        }
        Some(Reserved::Granted(Ticket { member: member.to_string(), started_us: now }))
    }

    async fn settle(&self, keys: &[KeyLimit], ticket: &Ticket, outcome: Outcome, window: Duration) -> Option<()> {
        let Ok(member) = ticket.member.parse::<u64>() else { return Some(()) };
        let _one_at_a_time = lock(&self.one_at_a_time);
        let now = self.now_us();
        for (index, key) in keys.iter().enumerate() {
            let entry = self.attempts(&key.key);
            let mut attempts = lock(&entry);
            attempts.prune(now, window_us(window));
            attempts.pending.retain(|&(pending, _)| pending != member);
            match outcome {
                Outcome::Failed => {
                    attempts.failed.push_back(now);
                    if attempts.failed.len() >= usize::try_from(key.limit).unwrap_or(usize::MAX) {
                        self.locked.insert(key.key.clone(), entry.clone());
                    }
                }
                Outcome::Succeeded { clear_failures_of: Some(cleared) } if cleared == index => {
                    attempts.failed.retain(|&at| at >= ticket.started_us);
                }
                Outcome::Succeeded { .. } | Outcome::Cancelled => {}
            }
        }
        Some(())
    }
}
