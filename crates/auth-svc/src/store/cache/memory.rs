//! In-process user cache: exact within one process (one replica), with a fixed capacity.
//!
//! Both maps are moka caches: past `MAX_ENTRIES` they evict one entry at a time (never
//! everything at once), and drop entries after the longest TTL. Each entry also carries its own
//! deadline (the row TTL with jitter, or the short "unknown id" TTL), checked on every read.

use std::time::{Duration, Instant};

use moka::sync::Cache;

use super::{CacheTtl, Lookup, UserCache};
use crate::domain::User;

/// Entries kept at most per map.
const MAX_ENTRIES: u64 = 100_000;

pub struct MemoryUserCache {
    ttl: CacheTtl,
    by_id: Cache<i64, (Option<User>, Instant)>,
    by_name: Cache<String, (i64, Instant)>,
}

impl MemoryUserCache {
    pub fn new(ttl: CacheTtl) -> Self {
        Self::with_capacity(ttl, MAX_ENTRIES)
    }

    pub fn with_capacity(ttl: CacheTtl, capacity: u64) -> Self {
        // The longest an entry can live: the row TTL plus its 10% jitter.
        let longest = (ttl.row + ttl.row / 10).max(ttl.missing).max(Duration::from_millis(1));
        Self {
            ttl,
            by_id: Cache::builder().max_capacity(capacity).time_to_live(longest).build(),
            by_name: Cache::builder().max_capacity(capacity).time_to_live(longest).build(),
        }
    }

    fn insert_id(&self, id: i64, user: Option<User>, ttl: Duration) {
        let until = Instant::now() + ttl;
        if let Some(user) = &user {
            self.by_name.insert(user.username_canonical.clone(), (user.id, until));
        }
        self.by_id.insert(id, (user, until));
    }

    /// Entries held now, in both maps (moka settles its counts lazily; this brings them up to date).
    pub fn len(&self) -> u64 {
        self.by_id.run_pending_tasks();
        self.by_name.run_pending_tasks();
        self.by_id.entry_count() + self.by_name.entry_count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[tonic::async_trait]
impl UserCache for MemoryUserCache {
    async fn by_id(&self, id: i64) -> Lookup {
        match self.by_id.get(&id) {
            Some((user, until)) if until > Instant::now() => match user {
                Some(user) => Lookup::Hit(user),
                None => Lookup::KnownMissing,
            },
            _ => Lookup::Miss,
        }
    }

    async fn id_of(&self, canonical: &str) -> Option<i64> {
        match self.by_name.get(canonical) {
            Some((id, until)) if until > Instant::now() => Some(id),
            _ => None,
        }
    }

    async fn store(&self, user: &User) {
        self.insert_id(user.id, Some(user.clone()), self.ttl.row_with_jitter());
    }

    async fn store_missing(&self, id: i64) {
        self.insert_id(id, None, self.ttl.missing);
    }

    async fn forget(&self, id: i64, canonical: &str) -> bool {
        self.by_id.invalidate(&id);
        self.by_name.invalidate(canonical);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: i64) -> User {
        User {
            id,
            username: format!("User{id}"),
            username_canonical: format!("user{id}"),
            role: "user".into(),
            disabled: false,
        }
    }

    const TTL: CacheTtl = CacheTtl { row: Duration::from_secs(300), missing: Duration::from_secs(5) };

    #[tokio::test]
    async fn past_its_capacity_the_cache_evicts_entries_one_by_one_not_all_at_once() {
        let cache = MemoryUserCache::with_capacity(TTL, 1000);
        let hot = user(1);
        cache.store(&hot).await;
        for id in 2..=5000 {
            cache.store(&user(id)).await;
            // The hot account is read between the writes, as a busy user's calls would.
            assert!(matches!(cache.by_id(1).await, Lookup::Hit(_)), "after {id} writes");
        }
        assert!(cache.len() <= 2 * 1000 + 100, "bounded: {}", cache.len());
        let kept = {
            let mut kept = 0;
            for id in 2..=5000 {
                kept += usize::from(matches!(cache.by_id(id).await, Lookup::Hit(_)));
            }
            kept
        };
        assert!(kept > 100, "entries went one by one, not all at once ({kept} kept)");
    }

    #[tokio::test]
    async fn entries_expire_with_their_own_ttl_and_forget_drops_both_keys() {
        let ttl = CacheTtl { row: Duration::from_secs(300), missing: Duration::from_millis(50) };
        let cache = MemoryUserCache::new(ttl);
        cache.store_missing(9).await;
        assert!(matches!(cache.by_id(9).await, Lookup::KnownMissing));
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert!(matches!(cache.by_id(9).await, Lookup::Miss));
        cache.store(&user(3)).await;
        assert_eq!(cache.id_of("user3").await, Some(3));
        cache.forget(3, "user3").await;
        assert!(matches!(cache.by_id(3).await, Lookup::Miss));
        assert_eq!(cache.id_of("user3").await, None);
    }
}
