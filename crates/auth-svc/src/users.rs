//! The user directory: account rows read through the cache (cache-aside, go-zero style) and
//! written to the database with the cache invalidated on every write.

use std::sync::Arc;

use model::{DatabaseConnection, entity::users, query};
use serde::{Deserialize, Serialize};

use crate::{
    cache::{Lookup, UserCache},
    error::AuthError,
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
}

impl Users {
    pub fn new(db: DatabaseConnection, cache: Arc<dyn UserCache>) -> Self {
        Self { db, cache }
    }

    pub async fn by_id(&self, id: i64) -> Result<Option<User>, AuthError> {
        match self.cache.by_id(id).await {
            Lookup::Hit(user) => return Ok(Some(user)),
            Lookup::KnownMissing => return Ok(None),
            Lookup::Miss => {}
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
        if let Some(id) = self.cache.id_of(username).await
            && let Lookup::Hit(user) = self.cache.by_id(id).await
            && user.username == username
        {
            return Ok(Some(user));
        }
        let user = query::users::find_by_username(&self.db, username).await?.map(User::from);
        if let Some(user) = &user {
            self.cache.store(user).await;
        }
        Ok(user)
    }

    pub async fn create(&self, username: &str, password_hash: &str, role: &str) -> Result<User, AuthError> {
        let user = User::from(query::users::insert(&self.db, username, password_hash, role).await?);
        // The new id may sit in the cache as "unknown" from an earlier probe.
        self.cache.forget(user.id, &user.username).await;
        Ok(user)
    }

    /// Deletes an account (its sessions go with it). No RPC does this yet; operators and tests do.
    pub async fn delete(&self, id: i64) -> Result<bool, AuthError> {
        let existing = query::users::find_by_id(&self.db, id).await?;
        let deleted = query::users::delete(&self.db, id).await?;
        if let Some(row) = existing {
            self.cache.forget(row.id, &row.username).await;
        }
        Ok(deleted)
    }
}
