//! The user-row cache: one trait, an in-process and a Redis implementation.
//!
//! Profiles ([`User`]: id, username, role; never the password hash) are cached by id, with a
//! canonical username → id index beside them (as go-zero's model cache does), a TTL with up
//! to 10% jitter so entries written together do not expire together, and a
//! short "unknown id" entry so probing absent ids does not reach the database every time.
//! Failures never surface: a cache that cannot answer answers `Miss`.

mod memory;
mod redis;

use std::time::Duration;

pub use memory::MemoryUserCache;
use rand::Rng;
pub use redis::RedisUserCache;

use crate::domain::User;

pub enum Lookup {
    Hit(User),
    /// The database said recently that no user has this id.
    KnownMissing,
    Miss,
}

#[tonic::async_trait]
pub trait UserCache: Send + Sync {
    async fn by_id(&self, id: i64) -> Lookup;
    /// The id cached for a canonical username (`domain::Username::canonical`).
    async fn id_of(&self, canonical: &str) -> Option<i64>;
    async fn store(&self, user: &User);
    async fn store_missing(&self, id: i64);
    /// Drops everything cached about this account (after any write to it); `false` when that
    /// could not be done.
    async fn forget(&self, id: i64, canonical: &str) -> bool;
    /// [`forget`](Self::forget) for many accounts (id, canonical username); `false` unless
    /// every one was done.
    async fn forget_all(&self, accounts: &[(i64, String)]) -> bool {
        let mut all = true;
        for (id, canonical) in accounts {
            all &= self.forget(*id, canonical).await;
        }
        all
    }
}

/// Lifetimes of cache entries.
#[derive(Debug, Clone, Copy)]
pub struct CacheTtl {
    pub row: Duration,
    pub missing: Duration,
}

impl CacheTtl {
    /// The row TTL plus up to 10% random jitter.
    pub fn row_with_jitter(&self) -> Duration {
        let jitter_ms = u64::try_from(self.row.as_millis() / 10).unwrap_or(0);
        self.row + Duration::from_millis(rand::rng().random_range(0..=jitter_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a cache can hold is `User`. The exhaustive pattern stops compiling when a field is
    /// added (a password hash would need one), and the JSON pins what Redis receives.
    #[test]
    fn a_cached_user_is_its_id_names_role_and_disabled_flag_and_nothing_else() {
        let user = User {
            id: 7,
            username: "Alice".into(),
            username_canonical: "alice".into(),
            role: "user".into(),
            disabled: false,
        };
        let User { id: _, username: _, username_canonical: _, role: _, disabled: _ } = &user;
        let json = serde_json::to_value(&user).unwrap();
        let mut keys: Vec<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["disabled", "id", "role", "username", "username_canonical"]);
    }

    /// Entries an older release wrote hold the hash; they must read as a miss, never a user.
    #[test]
    fn an_entry_of_the_old_shape_does_not_parse() {
        let old =
            r#"{"id":7,"username":"alice","role":"user","password_hash":"$argon2id$v=19$m=8,t=1,p=1$c2FsdA$aGFzaA"}"#;
        assert!(serde_json::from_str::<User>(old).is_err());
    }
}
