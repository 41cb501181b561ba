//! The shared Redis connection pool, with the one rule every Redis user here follows: Redis
//! is a help, never a requirement. Each operation has a deadline; a failure opens a one-second
//! breaker during which Redis is skipped outright (no pile-up of timeouts), is logged once per
//! outage and counted. Callers treat `None` as "Redis could not say".

use std::{
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use deadpool_redis::TimeoutType;
use deadpool_redis::{Connection, Pool, PoolError, Runtime, redis::RedisResult};
use secrecy::{ExposeSecret, SecretString};
use tracing::Instrument as _;

use crate::config::RedisConfig;

/// How long Redis is left alone after a failure before the next try.
const BREAKER_OPEN_FOR: Duration = Duration::from_secs(1);

pub struct RedisStore {
    pool: Pool,
    timeout: Duration,
    prefix: String,
    /// Until when Redis is skipped; `None` while healthy.
    breaker: Mutex<Option<Instant>>,
    failures: AtomicU64,
    pool_waits: AtomicU64,
}

impl RedisStore {
    pub fn new(url: &SecretString, config: &RedisConfig) -> anyhow::Result<Self> {
        let timeout = Duration::from_millis(config.timeout_ms.get());
        let mut pool_config = deadpool_redis::Config::from_url(url.expose_secret());
        let mut pool = deadpool_redis::PoolConfig::new(config.pool_size.get());
        pool.timeouts.wait = Some(timeout);
        pool.timeouts.create = Some(timeout);
        pool.timeouts.recycle = Some(timeout);
        pool_config.pool = Some(pool);
        // Lazy: no connection is opened here, so a Redis that is down at start-up only means
        // running without it until it comes up.
        let pool = pool_config
            .create_pool(Some(Runtime::Tokio1))
            .map_err(|err| anyhow::anyhow!("redis_url: {}", scrub(&err.to_string(), url)))?;
        Ok(Self {
            pool,
            timeout,
            prefix: config.key_prefix.clone(),
            breaker: Mutex::new(None),
            failures: AtomicU64::new(0),
            pool_waits: AtomicU64::new(0),
        })
    }

    /// `prefix` + `key`: every key this service writes.
    pub fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// (open, idle) connections of the pool.
    pub fn pool_usage(&self) -> (i64, i64) {
        let status = self.pool.status();
        (i64::try_from(status.size).unwrap_or(i64::MAX), i64::try_from(status.available).unwrap_or(i64::MAX))
    }

    /// Redis operations that failed or were skipped since start (for metrics and tests).
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Runs `operation` on a pooled connection within the deadline; `None` if Redis is down,
    /// or if every pooled connection stayed busy for the whole deadline. The latter is load, not
    /// an outage: it does not open the breaker (a flood of calls must not switch Redis off for
    /// everybody).
    pub async fn run<T>(
        &self,
        what: &'static str,
        operation: impl AsyncFnOnce(&mut Connection) -> RedisResult<T>,
    ) -> Option<T> {
        self.run_in_span(what, operation).instrument(call_span(what)).await
    }

    async fn run_in_span<T>(
        &self,
        what: &'static str,
        operation: impl AsyncFnOnce(&mut Connection) -> RedisResult<T>,
    ) -> Option<T> {
        if self.breaker_open() {
            self.failures.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        // The pool's own wait, create and recycle timeouts bound this step.
        let mut connection = match self.pool.get().await {
            Ok(connection) => connection,
            Err(PoolError::Timeout(TimeoutType::Wait)) => {
                self.pool_waits.fetch_add(1, Ordering::Relaxed);
                return None;
            }
            Err(error) => {
                self.trip(what, &error.to_string());
                return None;
            }
        };
        match tokio::time::timeout(self.timeout, operation(&mut connection)).await {
            Ok(Ok(value)) => Some(value),
            Ok(Err(error)) => {
                self.trip(what, &error.to_string());
                None
            }
            Err(_) => {
                self.trip(what, "timed out");
                None
            }
        }
    }

    /// Calls that found every pooled connection busy for the whole deadline.
    pub fn pool_waits(&self) -> u64 {
        self.pool_waits.load(Ordering::Relaxed)
    }

    fn breaker_open(&self) -> bool {
        let mut breaker = self.breaker.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match *breaker {
            Some(until) if Instant::now() < until => true,
            Some(_) => {
                *breaker = None;
                false
            }
            None => false,
        }
    }

    fn trip(&self, what: &str, error: &str) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        let mut breaker = self.breaker.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if breaker.is_none() {
            tracing::warn!(operation = what, error, "Redis unavailable; carrying on without it");
        }
        *breaker = Some(Instant::now() + BREAKER_OPEN_FOR);
    }
}

/// An error text without the Redis URL's password.
/// One Redis call's span, a child of the caller's (the gRPC call's), named by what the call is
/// for (`cache get`), never by its keys or values; none outside a span (background work).
fn call_span(what: &'static str) -> tracing::Span {
    if tracing::Span::current().is_none() {
        return tracing::Span::none();
    }
    tracing::info_span!(
        "redis",
        otel.name = what,
        otel.kind = "client",
        db.system.name = "redis",
        db.operation.name = what,
    )
}

fn scrub(text: &str, url: &SecretString) -> String {
    text.replace(url.expose_secret(), "redis://***")
}
