//! The user directory: account rows read through the cache (cache-aside, go-zero style) and
//! written to the database with the cache invalidated on every write.
//!
//! An invalidation the cache could not take (Redis down) is kept and retried before the next
//! cache read; until it succeeds, this process reads that account from the database.
//!
//! The cache holds [`User`], which has no password hash: Login reads the hash with
//! [`Users::credentials`], from the database every time, so a cache (Redis is shared and often
//! less guarded than the database) never holds one.

use std::sync::{Arc, Mutex};

use model::{DatabaseConnection, entity::users, query};
use serde::{Deserialize, Serialize};

use crate::{
    cache::{Lookup, UserCache},
    error::AuthError,
    metrics::Metrics,
    policy::Username,
};

/// An account's profile: what GetUserInfo answers and tokens carry, and all a cache holds.
/// No password hash, by construction (see [`Users::credentials`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: i64,
    /// The display form, as registered.
    pub username: String,
    /// The form names are compared by (`model::username`); the cache's name index uses it.
    pub username_canonical: String,
    pub role: String,
}

impl From<users::Model> for User {
    fn from(row: users::Model) -> Self {
        Self { id: row.id, username: row.username, username_canonical: row.username_canonical, role: row.role }
    }
}

/// An account's argon2id PHC string; never printed.
pub struct PasswordHash(String);

impl PasswordHash {
    pub fn into_phc(self) -> String {
        self.0
    }
}

impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordHash(..)")
    }
}

pub struct Users {
    db: DatabaseConnection,
    cache: Arc<dyn UserCache>,
    /// Accounts (id, canonical username) whose invalidation has not reached the cache yet.
    unforgotten: Mutex<Vec<(i64, String)>>,
    metrics: Arc<Metrics>,
}

impl Users {
    pub fn new(db: DatabaseConnection, cache: Arc<dyn UserCache>, metrics: Arc<Metrics>) -> Self {
        Self { db, cache, unforgotten: Mutex::new(Vec::new()), metrics }
    }

    fn unforgotten(&self) -> std::sync::MutexGuard<'_, Vec<(i64, String)>> {
        self.unforgotten.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    async fn forget(&self, user: &User) {
        if !self.cache.forget(user.id, &user.username_canonical).await {
            self.unforgotten().push((user.id, user.username_canonical.clone()));
        }
    }

    /// An account read from the database, never the cache: for decisions that must see a
    /// change made elsewhere at once (is the caller still an admin?).
    pub async fn by_id_uncached(&self, id: i64) -> Result<Option<User>, AuthError> {
        Ok(query::users::find_by_id(&self.db, id).await?.map(User::from))
    }

    /// Retries the invalidations the cache missed; true when none is left.
    pub async fn cache_is_current(&self) -> bool {
        let pending = std::mem::take(&mut *self.unforgotten());
        if pending.is_empty() {
            return true;
        }
        let mut failed = Vec::new();
        for (id, canonical) in pending {
            if !self.cache.forget(id, &canonical).await {
                failed.push((id, canonical));
            }
        }
        let current = failed.is_empty();
        self.unforgotten().extend(failed);
        current
    }

    pub async fn by_id(&self, id: i64) -> Result<Option<User>, AuthError> {
        if !self.cache_is_current().await {
            return Ok(query::users::find_by_id(&self.db, id).await?.map(User::from));
        }
        match self.cache.by_id(id).await {
            Lookup::Hit(user) => {
                self.metrics.cache(true);
                return Ok(Some(user));
            }
            Lookup::KnownMissing => {
                self.metrics.cache(true);
                return Ok(None);
            }
            Lookup::Miss => self.metrics.cache(false),
        }
        let user = query::users::find_by_id(&self.db, id).await?.map(User::from);
        match &user {
            Some(user) => self.cache.store(user).await,
            None => self.cache.store_missing(id).await,
        }
        Ok(user)
    }

    /// The account `username` names, compared by its canonical form (`ALICE` finds `alice`).
    pub async fn by_username(&self, username: &Username) -> Result<Option<User>, AuthError> {
        if !self.cache_is_current().await {
            return Ok(query::users::find_by_username(&self.db, username.canonical()).await?.map(User::from));
        }
        if let Some(id) = self.cache.id_of(username.canonical()).await
            && let Lookup::Hit(user) = self.cache.by_id(id).await
            && user.username_canonical == username.canonical()
        {
            self.metrics.cache(true);
            return Ok(Some(user));
        }
        self.metrics.cache(false);
        let user = query::users::find_by_username(&self.db, username.canonical()).await?.map(User::from);
        if let Some(user) = &user {
            self.cache.store(user).await;
        }
        Ok(user)
    }

    /// The account and its password hash, for Login: always from the database, never cached.
    pub async fn credentials(&self, username: &Username) -> Result<Option<(User, PasswordHash)>, AuthError> {
        let row = query::users::find_by_username(&self.db, username.canonical()).await?;
        Ok(row.map(|mut row| {
            let hash = PasswordHash(std::mem::take(&mut row.password_hash));
            (User::from(row), hash)
        }))
    }

    /// Creates an account under the display form of `username`; a name equal to a taken one
    /// under RFC 8265 comparison is `ALREADY_EXISTS` (the unique key decides races).
    pub async fn create(&self, username: &Username, password_hash: &str, role: &str) -> Result<User, AuthError> {
        let user = User::from(query::users::insert(&self.db, username.display(), password_hash, role).await?);
        // The new id may sit in the cache as "unknown" from an earlier probe.
        self.forget(&user).await;
        Ok(user)
    }

    /// Sets an account's role; `None` when no account has that username.
    pub async fn set_role(&self, username: &Username, role: &str) -> Result<Option<User>, AuthError> {
        let user = query::users::set_role(&self.db, username.canonical(), role).await?.map(User::from);
        if let Some(user) = &user {
            self.forget(user).await;
        }
        Ok(user)
    }

    /// Deletes an account (its sessions go with it). No RPC does this yet; operators and tests do.
    pub async fn delete(&self, id: i64) -> Result<bool, AuthError> {
        let existing = query::users::find_by_id(&self.db, id).await?;
        let deleted = query::users::delete(&self.db, id).await?;
        if let Some(row) = existing {
            self.forget(&User::from(row)).await;
        }
        Ok(deleted)
    }
}
