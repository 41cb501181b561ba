//! Login throttling: failed logins counted per username and per client address in a sliding
//! window. Over either limit, Login answers RESOURCE_EXHAUSTED with `retry-after` (seconds)
//! without checking the password. A successful login clears the username's count (not the
//! address's: one address guessing many accounts stays throttled).
//!
//! The attempt log is one trait with an in-process and a Redis implementation. When Redis
//! cannot answer, the throttle lets the attempt through (fails open): logins keep working
//! during a Redis outage, and hashing stays bounded by the password hasher's own limit.

mod memory;
mod redis;

use std::{net::IpAddr, sync::Arc, time::Duration};

pub use memory::MemoryAttemptLog;
pub use redis::RedisAttemptLog;

use crate::{config::ThrottleConfig, error::AuthError};

#[tonic::async_trait]
pub trait AttemptLog: Send + Sync {
    /// Failures of `key` within the last `window`, and how long until the oldest of them
    /// leaves it. `None` when the log cannot answer.
    async fn recent(&self, key: &str, window: Duration) -> Option<(u32, Duration)>;
    async fn record(&self, key: &str, window: Duration);
    async fn clear(&self, key: &str);
}

pub struct LoginThrottle {
    log: Arc<dyn AttemptLog>,
    window: Duration,
    per_username: u32,
    per_address: u32,
}

impl LoginThrottle {
    pub fn new(log: Arc<dyn AttemptLog>, config: &ThrottleConfig) -> Self {
        Self {
            log,
            window: Duration::from_secs(config.window_seconds),
            per_username: config.max_failures_per_username,
            per_address: config.max_failures_per_address,
        }
    }

    /// Refuses the attempt if the username or the address is over its limit.
    pub async fn check(&self, username: &str, address: Option<IpAddr>) -> Result<(), AuthError> {
        let mut limits = vec![(username_key(username), self.per_username)];
        if let Some(address) = address {
            limits.push((address_key(address), self.per_address));
        }
        for (key, limit) in limits {
            if let Some((failures, oldest_leaves_in)) = self.log.recent(&key, self.window).await
                && failures >= limit
            {
                tracing::info!(key_kind = key.split(':').next().unwrap_or(""), "login throttled");
                return Err(AuthError::Throttled { retry_after_seconds: oldest_leaves_in.as_secs().max(1) });
            }
        }
        Ok(())
    }

    pub async fn record_failure(&self, username: &str, address: Option<IpAddr>) {
        self.log.record(&username_key(username), self.window).await;
        if let Some(address) = address {
            self.log.record(&address_key(address), self.window).await;
        }
    }

    pub async fn record_success(&self, username: &str) {
        self.log.clear(&username_key(username)).await;
    }
}

fn username_key(username: &str) -> String {
    format!("user:{username}")
}

fn address_key(address: IpAddr) -> String {
    // IPv4-mapped IPv6 and plain IPv4 are one client.
    format!("addr:{}", address.to_canonical())
}
