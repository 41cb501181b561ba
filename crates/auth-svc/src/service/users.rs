//! The user directory: account rows read through the cache (cache-aside, go-zero style) and
//! written to the database with the cache invalidated on every write.
//!
//! An invalidation the cache could not take (Redis down) is kept and retried before the next
//! cache read; until it succeeds, this process reads that account from the database.
//!
//! The database is the truth and every replica keeps its cache current from it, as revocation
//! does (`crate::store::revocation`): every `revocation.poll_interval_ms` a background task asks the
//! database which accounts were written or deleted since its last poll (an indexed query on
//! `users.updated_at` and `user_deletions`, with an overlap for commit lag) and forgets each
//! one in the cache. With Redis every replica repeats the forget, so one that a replica could
//! not deliver (its Redis cut off) is delivered by the others. A poll counts only once all its
//! forgets are done. The cache is read only while the last successful poll began less than
//! `revocation.max_staleness_ms` ago; past that every read goes to the database.
//!
//! A row read before a change committed may reach the cache after the change's forget (a read
//! racing the write). So a row is stored only if no invalidation (a poll starting, or a write
//! of this process) began while it was read; one stored just before that is forgotten by the
//! next poll. Either way no replica serves a changed account's old row past the bound.
//!
//! The cache holds [`User`], which has no password hash: Login reads the hash with
//! [`Users::credentials`], from the database every time, so a cache (Redis is shared and often
//! less guarded than the database) never holds one.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use model::{DatabaseConnection, query};

use crate::{
    domain::{AccountRecord, PasswordHash, User, Username},
    error::AuthError,
    metrics::Metrics,
    store::cache::{Lookup, UserCache},
    store::polling::{self, PollLoop},
};

/// How the cache is kept current; the bound and period are `revocation.*`'s.
#[derive(Debug, Clone, Copy)]
pub struct CacheSync {
    pub max_staleness: Duration,
    pub poll_interval: Duration,
    /// The longest a cache entry lives (TTL with jitter): a change older than that cannot sit
    /// in any cache, so the first poll (and one after long failures) looks back no further.
    pub longest_entry: Duration,
}

impl CacheSync {
    /// The user cache is kept current on the revocation poll's bound and period.
    pub fn from_config(config: &crate::config::Config) -> Self {
        let row_ttl = Duration::from_secs(config.cache.ttl_seconds);
        Self {
            max_staleness: config.revocation.max_staleness(),
            poll_interval: config.revocation.poll_interval(),
            longest_entry: (row_ttl + row_ttl / 10).max(Duration::from_secs(config.cache.negative_ttl_seconds)),
        }
    }
}

/// What the polls established.
#[derive(Debug, Default)]
struct SyncState {
    /// Until when the cache may be read.
    trusted_until: Option<Instant>,
    /// The database's clock when the last successful poll read it.
    last_read_at: Option<i64>,
    /// When the latest invalidation began (a poll starting, or a write here): a row read
    /// before it may be older than what that invalidation forgot, so it is not stored.
    invalidated_at: Option<Instant>,
}

pub struct Users {
    db: DatabaseConnection,
    cache: Arc<dyn UserCache>,
    /// Accounts (id, canonical username) whose invalidation has not reached the cache yet.
    unforgotten: Mutex<Vec<(i64, String)>>,
    sync: CacheSync,
    state: Mutex<SyncState>,
    metrics: Arc<Metrics>,
}

impl Users {
    /// The cache is not read until a [`poll`](Self::poll) succeeds.
    pub fn new(db: DatabaseConnection, cache: Arc<dyn UserCache>, sync: CacheSync, metrics: Arc<Metrics>) -> Self {
        Self { db, cache, unforgotten: Mutex::new(Vec::new()), sync, state: Mutex::new(SyncState::default()), metrics }
    }

    fn unforgotten(&self) -> std::sync::MutexGuard<'_, Vec<(i64, String)>> {
        self.unforgotten.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn lock_state(&self) -> std::sync::MutexGuard<'_, SyncState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn note_invalidation(&self) {
        self.lock_state().invalidated_at = Some(Instant::now());
    }

    /// Call after the account is written in the database.
    async fn forget(&self, user: &User) {
        self.note_invalidation();
        if !self.cache.forget(user.id, &user.username_canonical).await {
            self.unforgotten().push((user.id, user.username_canonical.clone()));
        }
    }

    /// The cache this directory reads through (tests reach it to plant entries).
    pub fn cache(&self) -> Arc<dyn UserCache> {
        self.cache.clone()
    }

    /// Whether the last successful poll is recent enough for the cache to be read.
    pub fn is_synced(&self) -> bool {
        self.lock_state().trusted_until.is_some_and(|until| Instant::now() < until)
    }

    /// The cache may answer: synced, and every invalidation of this process delivered.
    async fn cache_is_trusted(&self) -> bool {
        self.is_synced() && self.cache_is_current().await
    }

    /// Whether a row whose database read began at `read_started` may be stored.
    fn may_store(&self, read_started: Instant) -> bool {
        self.lock_state().invalidated_at.is_none_or(|at| at < read_started)
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
        if !self.cache_is_trusted().await {
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
        let read_started = Instant::now();
        let user = query::users::find_by_id(&self.db, id).await?.map(User::from);
        if !self.may_store(read_started) {
            return Ok(user);
        }
        match &user {
            Some(user) => self.cache.store(user).await,
            None => self.cache.store_missing(id).await,
        }
        Ok(user)
    }

    /// The account `username` names, compared by its canonical form (`ALICE` finds `alice`).
    pub async fn by_username(&self, username: &Username) -> Result<Option<User>, AuthError> {
        if !self.cache_is_trusted().await {
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
        let read_started = Instant::now();
        let user = query::users::find_by_username(&self.db, username.canonical()).await?.map(User::from);
        if let Some(user) = &user
            && self.may_store(read_started)
        {
            self.cache.store(user).await;
        }
        Ok(user)
    }

    /// The account and its password hash, for Login: always from the database, never cached.
    pub async fn credentials(&self, username: &Username) -> Result<Option<(User, PasswordHash)>, AuthError> {
        Ok(query::users::find_by_username(&self.db, username.canonical()).await?.map(with_hash))
    }

    /// As [`credentials`](Self::credentials), by id: what a new session is checked against.
    pub async fn credentials_by_id(&self, id: i64) -> Result<Option<(User, PasswordHash)>, AuthError> {
        Ok(query::users::find_by_id(&self.db, id).await?.map(with_hash))
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

    /// Disables or enables an account; `None` when no account has that id.
    pub async fn set_disabled(&self, id: i64, disabled: bool) -> Result<Option<AccountRecord>, AuthError> {
        let row = query::users::set_disabled(&self.db, id, disabled).await?;
        let record = row.map(AccountRecord::from);
        if let Some(record) = &record {
            self.forget(&record.user).await;
        }
        Ok(record)
    }

    /// Replaces an account's password hash; `false` when the account is gone.
    pub async fn set_password_hash(&self, user: &User, password_hash: &str) -> Result<bool, AuthError> {
        let changed = query::users::set_password_hash(&self.db, user.id, password_hash).await?;
        // The cache holds no hash; forgotten all the same, as after every write.
        self.forget(user).await;
        Ok(changed)
    }

    /// Notes a successful login (`last_login_at`); no cache holds it.
    pub async fn record_login(&self, id: i64) -> Result<(), AuthError> {
        Ok(query::users::record_login(&self.db, id).await?)
    }

    /// An account with its times, from the database (operators must see the truth).
    pub async fn record(&self, id: i64) -> Result<Option<AccountRecord>, AuthError> {
        Ok(query::users::find_by_id(&self.db, id).await?.map(AccountRecord::from))
    }

    /// An account with its times, by name, from the database.
    pub async fn record_by_username(&self, username: &Username) -> Result<Option<AccountRecord>, AuthError> {
        Ok(query::users::find_by_username(&self.db, username.canonical()).await?.map(AccountRecord::from))
    }

    /// One page of accounts, from the database.
    pub async fn list(&self, filter: &query::users::UserListFilter) -> Result<Vec<AccountRecord>, AuthError> {
        Ok(query::users::list(&self.db, filter).await?.into_iter().map(AccountRecord::from).collect())
    }

    /// Deletes an account (its sessions go with it); every replica's poll finds the deletion
    /// through `user_deletions`.
    pub async fn delete(&self, id: i64) -> Result<bool, AuthError> {
        let existing = query::users::find_by_id(&self.db, id).await?;
        let deleted = query::users::delete(&self.db, id).await?;
        if let Some(row) = existing {
            self.forget(&User::from(row)).await;
        }
        Ok(deleted)
    }
}

/// An account row as the profile and, apart, its hash (which no `User` ever holds).
fn with_hash(mut row: model::entity::users::Model) -> (User, PasswordHash) {
    let hash = PasswordHash::new(std::mem::take(&mut row.password_hash));
    (User::from(row), hash)
}

impl Users {
    /// One poll on `db`: forgets in the cache every account written or deleted since the last
    /// successful poll (less the overlap) and then, only then, extends the trust. Returns how
    /// many accounts it forgot.
    pub async fn poll(&self, db: &DatabaseConnection) -> Result<usize, AuthError> {
        let started = Instant::now();
        // Rows being read now may predate what this poll forgets.
        self.lock_state().invalidated_at = Some(started);
        let read_at = query::refresh_tokens::database_now(db).await?;
        let lookback = i64::try_from(self.sync.longest_entry.as_secs()).unwrap_or(i64::MAX);
        let oldest_needed = read_at.saturating_sub(lookback.saturating_add(polling::COMMIT_LAG_OVERLAP_SECONDS));
        let since = polling::read_since(self.lock_state().last_read_at, oldest_needed);
        let changed = query::users::users_changed_since(db, since).await?;
        if !self.cache.forget_all(&changed).await {
            // Not counted: the next poll reads from the same point and forgets them again.
            return Err(AuthError::Unavailable("the user cache could not forget changed accounts".into()));
        }
        let mut state = self.lock_state();
        state.last_read_at = Some(read_at);
        // From the poll's start: what was committed before it is forgotten now.
        state.trusted_until = Some(started + self.sync.max_staleness);
        Ok(changed.len())
    }

    /// Polls every `poll_interval` on `db` until the task is dropped or aborted.
    pub async fn keep_cache_current(self: Arc<Self>, db: DatabaseConnection) {
        let polls = PollLoop {
            what: "user cache",
            interval: self.sync.poll_interval,
            deadline: self.sync.max_staleness,
            meanwhile: "accounts are read from the database once the staleness bound passes",
        };
        polls.run(|| self.poll(&db), |outcome| self.metrics.user_cache_poll(outcome)).await;
    }
}
