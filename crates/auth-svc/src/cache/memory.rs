//! In-process user cache: exact within one process (one replica), bounded in size.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use super::{CacheTtl, Lookup, UserCache};
use crate::users::User;

/// Entries kept at most; past it, expired ones go, then everything (a cache may forget).
const MAX_ENTRIES: usize = 100_000;

#[derive(Default)]
struct Entries {
    by_id: HashMap<i64, (Option<User>, Instant)>,
    by_name: HashMap<String, (i64, Instant)>,
}

pub struct MemoryUserCache {
    ttl: CacheTtl,
    entries: Mutex<Entries>,
}

impl MemoryUserCache {
    pub fn new(ttl: CacheTtl) -> Self {
        Self { ttl, entries: Mutex::new(Entries::default()) }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn insert_id(&self, id: i64, user: Option<User>, ttl: Duration) {
        let now = Instant::now();
        let mut entries = self.entries();
        if entries.by_id.len() >= MAX_ENTRIES {
            entries.by_id.retain(|_, (_, until)| *until > now);
            entries.by_name.retain(|_, (_, until)| *until > now);
            if entries.by_id.len() >= MAX_ENTRIES {
                *entries = Entries::default();
            }
        }
        if let Some(user) = &user {
            entries.by_name.insert(user.username_canonical.clone(), (user.id, now + ttl));
        }
        entries.by_id.insert(id, (user, now + ttl));
    }
}

#[tonic::async_trait]
impl UserCache for MemoryUserCache {
    async fn by_id(&self, id: i64) -> Lookup {
        match self.entries().by_id.get(&id) {
            Some((user, until)) if *until > Instant::now() => match user {
                Some(user) => Lookup::Hit(user.clone()),
                None => Lookup::KnownMissing,
            },
            _ => Lookup::Miss,
        }
    }

    async fn id_of(&self, canonical: &str) -> Option<i64> {
        match self.entries().by_name.get(canonical) {
            Some((id, until)) if *until > Instant::now() => Some(*id),
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
        let mut entries = self.entries();
        entries.by_id.remove(&id);
        entries.by_name.remove(canonical);
        true
    }
}
