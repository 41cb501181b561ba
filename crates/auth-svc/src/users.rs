//! The user directory: account rows read through the cache (cache-aside, go-zero style) and
//! written to the database with the cache invalidated on every write.
//!
//! An invalidation the cache could not take (Redis down) is kept and retried before the next
//! cache read; until it succeeds, this process reads that account from the database.

use std::sync::{Arc, Mutex};

use model::{DatabaseConnection, entity::users, query};
use serde::{Deserialize, Serialize};

use crate::{
    cache::{Lookup, UserCache},
    error::AuthError,
    metrics::Metrics,
};

/// An account as the service uses it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub role: String,
    /// argon2id PHC string; never printed (see the `Debug` impl).
    pub password_hash: String,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

impl From<users::Model> for User {
    fn from(row: users::Model) -> Self {
        Self { id: row.id, username: row.username, role: row.role, password_hash: row.password_hash }
    }
}

pub struct Users {
    db: DatabaseConnection,
    cache: Arc<dyn UserCache>,
    /// Accounts (id, username) whose invalidation has not reached the cache yet.
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

    async fn forget(&self, id: i64, username: &str) {
        if !self.cache.forget(id, username).await {
            self.unforgotten().push((id, username.to_owned()));
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
        for (id, username) in pending {
            if !self.cache.forget(id, &username).await {
                failed.push((id, username));
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

    /// `username` must already be normalised (see `policy`).
    pub async fn by_username(&self, username: &str) -> Result<Option<User>, AuthError> {
        if !self.cache_is_current().await {
            return Ok(query::users::find_by_username(&self.db, username).await?.map(User::from));
        }
        if let Some(id) = self.cache.id_of(username).await
            && let Lookup::Hit(user) = self.cache.by_id(id).await
            && user.username == username
        {
            self.metrics.cache(true);
            return Ok(Some(user));
        }
        self.metrics.cache(false);
        let user = query::users::find_by_username(&self.db, username).await?.map(User::from);
        if let Some(user) = &user {
            self.cache.store(user).await;
        }
        Ok(user)
    }

    pub async fn create(&self, username: &str, password_hash: &str, role: &str) -> Result<User, AuthError> {
        let user = User::from(query::users::insert(&self.db, username, password_hash, role).await?);
        // The new id may sit in the cache as "unknown" from an earlier probe.
        self.forget(user.id, &user.username).await;
        Ok(user)
    }

    /// Sets an account's role; `None` when no account has that (normalised) username.
    pub async fn set_role(&self, username: &str, role: &str) -> Result<Option<User>, AuthError> {
        let user = query::users::set_role(&self.db, username, role).await?.map(User::from);
        if let Some(user) = &user {
            self.forget(user.id, &user.username).await;
        }
        Ok(user)
    }

    /// Deletes an account (its sessions go with it). No RPC does this yet; operators and tests do.
    pub async fn delete(&self, id: i64) -> Result<bool, AuthError> {
        let existing = query::users::find_by_id(&self.db, id).await?;
        let deleted = query::users::delete(&self.db, id).await?;
        if let Some(row) = existing {
            self.forget(row.id, &row.username).await;
        }
        Ok(deleted)
    }
}
