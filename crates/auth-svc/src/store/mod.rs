//! What the rules keep outside the database, each one trait with an in-process and a Redis
//! implementation: the user cache, the attempt logs of the throttles and the revocation list;
//! plus the shared Redis pool and the loop of the database polls that keep them current.

pub mod cache;
pub mod polling;
pub mod redis;
pub mod revocation;
pub mod throttle;

pub use redis::RedisStore;

use std::{sync::Arc, time::Duration};

use crate::config::Config;
use cache::{CacheTtl, MemoryUserCache, RedisUserCache, UserCache};
use revocation::{MemoryRevocationList, RedisRevocationList, RevocationList};
use throttle::{AttemptLog, RedisAttemptLog};

/// The cache, attempt log and revocation list: in Redis when `redis_url` is set (shared by
/// every replica), else in this process (one process is then one replica).
pub struct Stores {
    pub redis: Option<Arc<RedisStore>>,
    pub cache: Arc<dyn UserCache>,
    /// The shared attempt log; each throttle keeps its own in-process one beside it.
    pub attempts: Option<Arc<dyn AttemptLog>>,
    pub revocations: Arc<dyn RevocationList>,
}

impl Stores {
    pub fn new(config: &Config) -> anyhow::Result<Self> {
        let ttl = CacheTtl {
            row: Duration::from_secs(config.cache.ttl_seconds),
            missing: Duration::from_secs(config.cache.negative_ttl_seconds),
        };
        Ok(match &config.redis_url {
            Some(url) => {
                let redis = Arc::new(RedisStore::new(url, &config.redis)?);
                tracing::info!("user cache, login throttle and revocation list in Redis");
                Self {
                    cache: Arc::new(RedisUserCache::new(redis.clone(), ttl)),
                    attempts: Some(Arc::new(RedisAttemptLog::new(redis.clone()))),
                    revocations: Arc::new(RedisRevocationList::new(redis.clone())),
                    redis: Some(redis),
                }
            }
            None => {
                tracing::info!("no redis_url: user cache, login throttle and revocation list in this process");
                Self {
                    redis: None,
                    cache: Arc::new(MemoryUserCache::new(ttl)),
                    attempts: None,
                    revocations: Arc::new(MemoryRevocationList::default()),
                }
            }
        })
    }
}
