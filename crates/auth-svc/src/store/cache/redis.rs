//! User cache in Redis, shared by every replica. Keys: `user:id:<id>` (the [`User`] profile as
//! JSON, never a password hash; or "-" for an unknown id) and `user:name:<canonical username>`
//! (the id).

use std::{sync::Arc, time::Duration};

use deadpool_redis::redis::{self, AsyncCommands};

use super::{CacheTtl, Lookup, UserCache};
use crate::{domain::User, store::RedisStore};

/// Stored for an id the database does not know.
const MISSING: &str = "-";

pub struct RedisUserCache {
    redis: Arc<RedisStore>,
    ttl: CacheTtl,
}

impl RedisUserCache {
    pub fn new(redis: Arc<RedisStore>, ttl: CacheTtl) -> Self {
        Self { redis, ttl }
    }

    fn id_key(&self, id: i64) -> String {
        self.redis.key(&format!("user:id:{id}"))
    }

    fn name_key(&self, canonical: &str) -> String {
        self.redis.key(&format!("user:name:{canonical}"))
    }
}

fn seconds(ttl: Duration) -> u64 {
    ttl.as_secs().max(1)
}

#[tonic::async_trait]
impl UserCache for RedisUserCache {
    async fn by_id(&self, id: i64) -> Lookup {
        let key = self.id_key(id);
        let value: Option<Option<String>> = self.redis.run("cache get", async |c| c.get(&key).await).await;
        match value.flatten().as_deref() {
            Some(MISSING) => Lookup::KnownMissing,
            Some(json) => serde_json::from_str(json).map_or(Lookup::Miss, Lookup::Hit),
            None => Lookup::Miss,
        }
    }

    async fn id_of(&self, canonical: &str) -> Option<i64> {
        let key = self.name_key(canonical);
        self.redis.run("cache index get", async |c| c.get(&key).await).await.flatten()
    }

    async fn store(&self, user: &User) {
        let Ok(json) = serde_json::to_string(user) else { return };
        let ttl = seconds(self.ttl.row_with_jitter());
        let (id_key, name_key) = (self.id_key(user.id), self.name_key(&user.username_canonical));
        let mut pipe = redis::pipe();
        pipe.set_ex(&id_key, json, ttl).ignore().set_ex(&name_key, user.id, ttl).ignore();
        let _: Option<()> = self.redis.run("cache set", async |c| pipe.query_async(c).await).await;
    }

    async fn store_missing(&self, id: i64) {
        let key = self.id_key(id);
        let ttl = seconds(self.ttl.missing);
        let _: Option<()> = self.redis.run("cache set", async |c| c.set_ex(&key, MISSING, ttl).await).await;
    }

    async fn forget(&self, id: i64, canonical: &str) -> bool {
        let keys = [self.id_key(id), self.name_key(canonical)];
        let deleted: Option<()> = self.redis.run("cache delete", async |c| c.del(&keys).await).await;
        deleted.is_some()
    }

    /// Pipelined, so a poll that found thousands of changed accounts costs a few round trips.
    async fn forget_all(&self, accounts: &[(i64, String)]) -> bool {
        for chunk in accounts.chunks(FORGET_CHUNK) {
            let keys: Vec<String> =
                chunk.iter().flat_map(|(id, canonical)| [self.id_key(*id), self.name_key(canonical)]).collect();
            let deleted: Option<()> = self.redis.run("cache delete", async |c| c.del(&keys).await).await;
            if deleted.is_none() {
                return false;
            }
        }
        true
    }
}

/// Accounts per DEL of [`RedisUserCache::forget_all`].
const FORGET_CHUNK: usize = 500;
