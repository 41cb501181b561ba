//! Revocation list in Redis, shared by every replica: `revoked:<session id>` with a TTL.

use std::{sync::Arc, time::Duration};

use deadpool_redis::redis::AsyncCommands;

use super::RevocationList;
use crate::store::RedisStore;

pub struct RedisRevocationList {
    redis: Arc<RedisStore>,
}

impl RedisRevocationList {
    pub fn new(redis: Arc<RedisStore>) -> Self {
        Self { redis }
    }

    fn key(&self, session_id: &str) -> String {
        self.redis.key(&format!("revoked:{session_id}"))
    }
}

#[tonic::async_trait]
impl RevocationList for RedisRevocationList {
    async fn revoke(&self, session_id: &str, keep_for: Duration) -> bool {
        let key = self.key(session_id);
        let seconds = keep_for.as_secs().max(1);
        let stored: Option<()> = self.redis.run("revoke", async |c| c.set_ex(&key, 1, seconds).await).await;
        stored.is_some()
    }

    async fn is_revoked(&self, session_id: &str) -> Option<bool> {
        let key = self.key(session_id);
        self.redis.run("revocation check", async |c| c.exists(&key).await).await
    }
}
