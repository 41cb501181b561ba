//! Throttles by reservation: an attempt is counted *before* its password is checked.
//!
//! Each throttled call (a Login, a Register) first reserves a slot under every key it is
//! counted by (the username, the client address), atomically: if any key already holds its
//! limit of attempts within the sliding window, the call is refused with `retry-after` and no
//! hashing is done; otherwise a pending entry is added under every key. So with N guesses in
//! flight at once, at most `limit` reach argon2, however they interleave. When the attempt ends:
//! - a failure stays counted (its entry becomes a recorded failure);
//! - a success drops its own entry and, for the username, the failures *recorded before it
//!   began*, never those of attempts still in flight (those may be guesses that fail next);
//! - an attempt that never reached the password check (the hashing queue was full) is cancelled.
//!
//! Every reservation is made in this process's bounded log, and also in Redis when it is
//! configured (shared by the replicas). While Redis cannot answer, the process's own log still
//! throttles (degraded, never open), and a log line and `auth_throttle_degraded_total` say so.
//! A Redis that loses its data forgets nothing this replica saw.

mod memory;
mod redis;

use std::{
    net::IpAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

pub use memory::MemoryAttemptLog;
pub use redis::RedisAttemptLog;

use crate::{error::AuthError, metrics::Metrics};

/// One key an attempt is counted under, the most attempts it may hold in the window, and
/// optionally the most it may have in flight at once (pending, successes included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyLimit {
    pub key: String,
    pub limit: u32,
    pub max_in_flight: Option<u32>,
}

impl KeyLimit {
    pub fn new(key: impl Into<String>, limit: u32) -> Self {
        Self { key: key.into(), limit, max_in_flight: None }
    }

    pub fn with_max_in_flight(self, max_in_flight: u32) -> Self {
        Self { max_in_flight: Some(max_in_flight), ..self }
    }
}

/// A granted reservation in one log: its entry's member and when it began, in microseconds of
/// the log's clock (fine enough that a failure recorded just before a success began is
/// "before" it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    pub member: String,
    pub started_us: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reserved {
    Granted(Ticket),
    /// A key is at its limit; the count falls below it after this long (at most a second when
    /// attempts still in flight are among those counted: they may settle as successes).
    /// `in_flight`: the key has its `max_in_flight` attempts running.
    Refused {
        retry_after: Duration,
        in_flight: bool,
    },
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It counts as a failure for the rest of the window.
    Failed,
    /// Drop the attempt's own entry, and the failures of `clear_failures_of` (a key of the
    /// reservation) recorded before the attempt began.
    Succeeded { clear_failures_of: Option<usize> },
    /// It never reached the check: drop its entry, as if it never happened.
    Cancelled,
}

/// A log of attempts per key, counted in a sliding window. `None` from a method: the log
/// could not answer (only Redis can fail).
#[tonic::async_trait]
pub trait AttemptLog: Send + Sync {
    /// Atomically over all `keys`: refuse if one holds `limit` or more attempts (pending or
    /// failed) within `window`, else add a pending entry under every key.
    async fn reserve(&self, keys: &[KeyLimit], window: Duration) -> Option<Reserved>;
    /// Settles the attempt `ticket` reserved under `keys`.
    async fn settle(&self, keys: &[KeyLimit], ticket: &Ticket, outcome: Outcome, window: Duration) -> Option<()>;
}

/// Local and (optionally) shared logs with one window; the limits come with each call.
pub struct Throttle {
    local: Arc<MemoryAttemptLog>,
    shared: Option<Arc<dyn AttemptLog>>,
    window: Duration,
    /// Whether the last shared reservation failed (for one log line per outage).
    degraded: AtomicBool,
    metrics: Arc<Metrics>,
    /// Names the throttle in logs and metrics (`login`, `register`).
    name: &'static str,
}

/// Why a reservation was refused, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub retry_after: Duration,
    pub in_flight: bool,
}

/// What a granted reservation holds until the attempt is settled.
#[must_use = "settle the reservation with Throttle::settle"]
pub struct Reservation {
    keys: Vec<KeyLimit>,
    local: Ticket,
    shared: Option<Ticket>,
}

impl Throttle {
    pub fn new(
        name: &'static str,
        local: Arc<MemoryAttemptLog>,
        shared: Option<Arc<dyn AttemptLog>>,
        window: Duration,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self { local, shared, window, degraded: AtomicBool::new(false), metrics, name }
    }

    /// Reserves one attempt under every key, or says how long until one is allowed.
    pub async fn reserve(&self, keys: Vec<KeyLimit>) -> Result<Reservation, Refusal> {
        let local = match self.local.reserve(&keys, self.window).await {
            Some(Reserved::Granted(ticket)) => ticket,
            Some(Reserved::Refused { retry_after, in_flight }) => return Err(Refusal { retry_after, in_flight }),
            // The in-process log always answers; were it not to, refusing is the safe side.
            None => return Err(Refusal { retry_after: self.window, in_flight: false }),
        };
        let Some(shared) = &self.shared else { return Ok(Reservation { keys, local, shared: None }) };
        match shared.reserve(&keys, self.window).await {
            Some(Reserved::Granted(ticket)) => {
                if self.degraded.swap(false, Ordering::Relaxed) {
                    tracing::info!(throttle = self.name, "Redis answers again: throttle shared by every replica");
                }
                Ok(Reservation { keys, local, shared: Some(ticket) })
            }
            Some(Reserved::Refused { retry_after, in_flight }) => {
                let _ = self.local.settle(&keys, &local, Outcome::Cancelled, self.window).await;
                Err(Refusal { retry_after, in_flight })
            }
            None => {
                self.metrics.throttle_degraded(self.name);
                if !self.degraded.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        throttle = self.name,
                        "Redis cannot answer: throttling with this replica's own counts until it does"
                    );
                }
                Ok(Reservation { keys, local, shared: None })
            }
        }
    }

    /// Settles a reservation in every log that granted it.
    pub async fn settle(&self, reservation: Reservation, outcome: Outcome) {
        let Reservation { keys, local, shared } = reservation;
        let _ = self.local.settle(&keys, &local, outcome, self.window).await;
        if let (Some(log), Some(ticket)) = (&self.shared, shared) {
            // A settle Redis missed leaves a pending entry that expires with the window: the
            // attempt then counts as a failure, the safe side.
            let _ = log.settle(&keys, &ticket, outcome, self.window).await;
        }
    }
}

/// Seconds for `retry-after`: at least 1, rounded up.
pub fn retry_after_seconds(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

/// Failed logins per username and per client address, and logins in flight per address
/// (`throttle.*`).
pub struct LoginThrottle {
    throttle: Throttle,
    per_username: u32,
    per_address: u32,
    in_flight_per_address: u32,
}

/// The reservation of one login attempt.
pub struct LoginAttempt(Reservation);

impl LoginThrottle {
    pub fn new(throttle: Throttle, per_username: u32, per_address: u32, in_flight_per_address: u32) -> Self {
        Self { throttle, per_username, per_address, in_flight_per_address }
    }

    /// Reserves a password check for `username` (its canonical form) from `address`.
    pub async fn reserve(&self, username: &str, address: Option<IpAddr>) -> Result<LoginAttempt, AuthError> {
        let mut keys = vec![KeyLimit::new(username_key(username), self.per_username)];
        if let Some(address) = address {
            // Successful logins hash too: one address may not hold the whole hashing queue.
            let key = KeyLimit::new(address_key("addr", address), self.per_address);
            keys.push(key.with_max_in_flight(self.in_flight_per_address));
        }
        self.refused_as_login(self.throttle.reserve(keys).await)
    }

    /// Reserves a check of a second-factor code for account `user_id` from `address`. Its own
    /// per-account key, as many attempts as a username gets: a right password clears the
    /// username's failures, and must not clear the wrong codes guessed after it. The address
    /// key is the one passwords count under, so one address guessing both shares one limit.
    pub async fn reserve_code(&self, user_id: i64, address: Option<IpAddr>) -> Result<LoginAttempt, AuthError> {
        let mut keys = vec![KeyLimit::new(format!("otp:{user_id}"), self.per_username)];
        if let Some(address) = address {
            let key = KeyLimit::new(address_key("addr", address), self.per_address);
            keys.push(key.with_max_in_flight(self.in_flight_per_address));
        }
        self.refused_as_login(self.throttle.reserve(keys).await)
    }

    fn refused_as_login(&self, reserved: Result<Reservation, Refusal>) -> Result<LoginAttempt, AuthError> {
        match reserved {
            Ok(reservation) => Ok(LoginAttempt(reservation)),
            Err(Refusal { retry_after, in_flight: true }) => {
                tracing::info!("login refused: too many in flight from one address");
                Err(AuthError::TooManyInFlight { retry_after_seconds: retry_after_seconds(retry_after).max(1) })
            }
            Err(Refusal { retry_after, in_flight: false }) => {
                tracing::info!("login throttled");
                Err(AuthError::LoginThrottled { retry_after_seconds: retry_after_seconds(retry_after).max(1) })
            }
        }
    }

    pub async fn failed(&self, attempt: LoginAttempt) {
        self.throttle.settle(attempt.0, Outcome::Failed).await;
    }

    /// Clears the username's earlier failures (not the address's: one address guessing many
    /// accounts stays throttled).
    pub async fn succeeded(&self, attempt: LoginAttempt) {
        self.throttle.settle(attempt.0, Outcome::Succeeded { clear_failures_of: Some(0) }).await;
    }

    pub async fn cancelled(&self, attempt: LoginAttempt) {
        self.throttle.settle(attempt.0, Outcome::Cancelled).await;
    }
}

/// Registrations per client address (`register.*`). Every attempt counts, taken names too: a
/// free and a taken name must be equally expensive to probe.
pub struct SignupThrottle {
    throttle: Throttle,
    per_address: u32,
}

pub struct SignupAttempt(Option<Reservation>);

impl SignupThrottle {
    pub fn new(throttle: Throttle, per_address: u32) -> Self {
        Self { throttle, per_address }
    }

    /// Reserves one registration from `address`; callers with no address are not limited here.
    pub async fn reserve(&self, address: Option<IpAddr>) -> Result<SignupAttempt, AuthError> {
        let Some(address) = address else { return Ok(SignupAttempt(None)) };
        let keys = vec![KeyLimit::new(address_key("signup", address), self.per_address)];
        match self.throttle.reserve(keys).await {
            Ok(reservation) => Ok(SignupAttempt(Some(reservation))),
            Err(refusal) => {
                tracing::info!("registration throttled");
                Err(AuthError::SignupThrottled { retry_after_seconds: retry_after_seconds(refusal.retry_after).max(1) })
            }
        }
    }

    /// The attempt reached the database (whatever it answered): it stays counted.
    pub async fn attempted(&self, attempt: SignupAttempt) {
        if let Some(reservation) = attempt.0 {
            self.throttle.settle(reservation, Outcome::Failed).await;
        }
    }

    /// The attempt never got to work (the hashing queue was full).
    pub async fn cancelled(&self, attempt: SignupAttempt) {
        if let Some(reservation) = attempt.0 {
            self.throttle.settle(reservation, Outcome::Cancelled).await;
        }
    }
}

fn username_key(username: &str) -> String {
    format!("user:{username}")
}

/// IPv4 (and IPv4-mapped IPv6) per address; IPv6 per /64, the block one subscriber gets, so
/// hopping through the addresses of one's own prefix gains nothing.
fn address_key(kind: &str, address: IpAddr) -> String {
    match address.to_canonical() {
        IpAddr::V4(v4) => format!("{kind}:{v4}"),
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            format!("{kind}:{}/64", std::net::Ipv6Addr::from(prefix))
        }
    }
}

#[cfg(test)]
mod tests;
