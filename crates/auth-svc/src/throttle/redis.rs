//! Attempt log in Redis, shared by every replica: one sorted set per key (`throttle:<key>`),
//! scored by the attempt time in milliseconds, expiring with its window.

use std::{
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use deadpool_redis::redis::{self, AsyncCommands};

use super::AttemptLog;
use crate::redis_store::RedisStore;

pub struct RedisAttemptLog {
    redis: Arc<RedisStore>,
}

impl RedisAttemptLog {
    pub fn new(redis: Arc<RedisStore>) -> Self {
        Self { redis }
    }

    fn key(&self, key: &str) -> String {
        self.redis.key(&format!("throttle:{key}"))
    }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn millis(window: Duration) -> i64 {
    i64::try_from(window.as_millis()).unwrap_or(i64::MAX)
}

#[tonic::async_trait]
impl AttemptLog for RedisAttemptLog {
    async fn recent(&self, key: &str, window: Duration) -> Option<(u32, Duration)> {
        let key = self.key(key);
        let now = now_ms();
        let mut pipe = redis::pipe();
        pipe.atomic()
            .zrembyscore(&key, "-inf", now - millis(window))
            .ignore()
            .zcard(&key)
            .zrange_withscores(&key, 0, 0);
        let (count, oldest): (u32, Vec<(String, i64)>) =
            self.redis.run("throttle count", async |c| pipe.query_async(c).await).await?;
        let leaves_in = oldest.first().map_or(0, |(_, at)| (at + millis(window) - now).max(0));
        Some((count, Duration::from_millis(u64::try_from(leaves_in).unwrap_or(0))))
    }

    async fn record(&self, key: &str, window: Duration) {
        let key = self.key(key);
        // Unique members: two failures in the same millisecond are two failures.
        let member = format!("{}-{}", now_ms(), uuid::Uuid::new_v4().simple());
        let mut pipe = redis::pipe();
        pipe.atomic().zadd(&key, member, now_ms()).ignore().pexpire(&key, millis(window)).ignore();
        let _: Option<()> = self.redis.run("throttle record", async |c| pipe.query_async(c).await).await;
    }

    async fn clear(&self, key: &str) {
        let key = self.key(key);
        let _: Option<()> = self.redis.run("throttle clear", async |c| c.del(&key).await).await;
    }
}
