//! Account lookups and writes.
//!
//! Every write to an account sets `updated_at`, and deleting one leaves a row in
//! `user_deletions`: that is what [`users_changed_since`] (each replica's user-cache poll)
//! reads. Times that replicas compare are taken from the database's clock where the statement
//! allows it; [`insert`] uses this process's, within the poll's overlap margin.

use super::traced;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Select, Set, TransactionTrait,
    sea_query::{Alias, Expr, ExprTrait, Func, LikeExpr, Query},
};

use super::database_datetime_now;
use crate::{
    entity::users::{self, Entity as Users},
    error::{StoreError, retry_conflicts},
    username::storage_key,
};

pub async fn find_by_id(db: &impl ConnectionTrait, id: i64) -> Result<Option<users::Model>, StoreError> {
    traced(db, "users.find_by_id", async move { Ok(Users::find_by_id(id).one(db).await?) }).await
}

/// The account whose name compares equal to `username` under RFC 8265 (`Alice` finds `alice`).
pub async fn find_by_username(db: &impl ConnectionTrait, username: &str) -> Result<Option<users::Model>, StoreError> {
    traced(db, "users.find_by_username", async move {
        let key = storage_key(username);
        Ok(Users::find().filter(users::Column::UsernameCanonical.eq(key)).one(db).await?)
    })
    .await
}

/// Inserts an account under the display form `username`; its comparison key is derived here,
/// so no caller can store one that disagrees. The unique keys are the one arbiter of races: a
/// name taken in any case or width comes back as [`StoreError::UsernameTaken`], whoever
/// checked first.
pub async fn insert(
    db: &impl ConnectionTrait,
    username: &str,
    password_hash: &str,
    role: &str,
) -> Result<users::Model, StoreError> {
    traced(db, "users.insert", async move {
        // This process's clock: a new account is in no other replica's cache (only, at most, as a
        // short-lived "unknown id"), so the poll's overlap margin is all it needs.
        let now = chrono::Utc::now().naive_utc();
        let row = users::ActiveModel {
            username: Set(username.to_owned()),
            username_canonical: Set(storage_key(username)),
            password_hash: Set(password_hash.to_owned()),
            role: Set(role.to_owned()),
            created_at: Set(now),
            updated_at: Set(now),
            disabled_at: Set(None),
            last_login_at: Set(None),
            ..Default::default()
        };
        // A deadlock among concurrent inserts of one key (InnoDB locks duplicate keys shared, then
        // exclusive) is not an outage: retried, it meets the winner's row as a unique violation.
        retry_conflicts(|| row.clone().insert(db))
            .await
            .map_err(|err| StoreError::classify(err, Some(StoreError::UsernameTaken)))
    })
    .await
}

/// Deletes an account; its refresh tokens go with it (foreign key cascade). In the same
/// transaction a `user_deletions` row records it, so every replica's poll finds the deletion
/// (a deleted row cannot say it changed).
pub async fn delete(db: &DatabaseConnection, id: i64) -> Result<bool, StoreError> {
    traced(db, "users.delete", async move { Ok(retry_conflicts(|| delete_once(db, id)).await?) }).await
}

async fn delete_once(db: &DatabaseConnection, id: i64) -> Result<bool, DbErr> {
    let backend = db.get_database_backend();
    let txn = db.begin().await?;
    // A write first, as in every transaction here: SQLite takes its write lock (waiting out its
    // busy timeout) instead of failing the upgrade of a read when another connection writes (a
    // Refresh of this very account, say); PostgreSQL and InnoDB lock the row, which decides
    // between racing deleters: the later one finds it gone.
    let claimed = Users::update_many()
        .col_expr(users::Column::UpdatedAt, database_datetime_now(backend))
        .filter(users::Column::Id.eq(id))
        .exec(&txn)
        .await?
        .rows_affected
        == 1;
    let row = if claimed { Users::find_by_id(id).one(&txn).await? } else { None };
    let Some(row) = row else {
        txn.rollback().await?;
        return Ok(false);
    };
    Users::delete_by_id(id).exec(&txn).await?;
    let record = Query::insert()
        .into_table(Alias::new(DELETIONS))
        .columns([Alias::new("user_id"), Alias::new("username_canonical"), Alias::new("deleted_at")])
        .values_panic([Expr::value(id), Expr::value(row.username_canonical), database_datetime_now(backend)])
        .to_owned();
    txn.execute(&record).await?;
    txn.commit().await?;
    Ok(true)
}

/// Accounts deleted are recorded here (see the migration `m20261201_000005`).
const DELETIONS: &str = "user_deletions";

/// Accounts (id, canonical username) written or deleted at or after `since` (Unix seconds,
/// the database's clock: `refresh_tokens::database_now`). Served by `idx_users_updated_at` and
/// `idx_user_deletions_deleted_at`.
pub async fn users_changed_since(db: &impl ConnectionTrait, since: i64) -> Result<Vec<(i64, String)>, StoreError> {
    traced(db, "users.users_changed_since", async move {
        let since = chrono::DateTime::from_timestamp(since, 0).unwrap_or_default().naive_utc();
        let mut changed: Vec<(i64, String)> = Users::find()
            .select_only()
            .column(users::Column::Id)
            .column(users::Column::UsernameCanonical)
            .filter(users::Column::UpdatedAt.gte(since))
            .into_tuple()
            .all(db)
            .await?;
        let deletions = Query::select()
            .columns([Alias::new("user_id"), Alias::new("username_canonical")])
            .from(Alias::new(DELETIONS))
            .and_where(Expr::col(Alias::new("deleted_at")).gte(since))
            .to_owned();
        for row in db.query_all(&deletions).await? {
            changed.push((row.try_get::<i64>("", "user_id")?, row.try_get::<String>("", "username_canonical")?));
        }
        Ok(changed)
    })
    .await
}

/// Sets the role of the account named `username` (compared as [`find_by_username`] does);
/// `None` when there is no such account.
pub async fn set_role(
    db: &impl ConnectionTrait,
    username: &str,
    role: &str,
) -> Result<Option<users::Model>, StoreError> {
    traced(db, "users.set_role", async move {
        Users::update_many()
            .col_expr(users::Column::Role, Expr::value(role))
            .col_expr(users::Column::UpdatedAt, database_datetime_now(db.get_database_backend()))
            .filter(users::Column::UsernameCanonical.eq(storage_key(username)))
            .exec(db)
            .await?;
        // Not `rows_affected`: MySQL counts only changed rows, so 0 may mean "already that role".
        // The unique key makes this read the row just written.
        find_by_username(db, username).await
    })
    .await
}

/// Sets or clears `disabled_at` (database clock; an already disabled account keeps its first
/// time) and `updated_at`. `None` when no account has that id.
pub async fn set_disabled(
    db: &impl ConnectionTrait,
    id: i64,
    disabled: bool,
) -> Result<Option<users::Model>, StoreError> {
    traced(db, "users.set_disabled", async move {
        let now = database_datetime_now(db.get_database_backend());
        let disabled_at = if disabled {
            Func::coalesce([Expr::col(users::Column::DisabledAt), now.clone()]).into()
        } else {
            Expr::value(Option::<chrono::NaiveDateTime>::None)
        };
        Users::update_many()
            .col_expr(users::Column::DisabledAt, disabled_at)
            .col_expr(users::Column::UpdatedAt, now)
            .filter(users::Column::Id.eq(id))
            .exec(db)
            .await?;
        // Read back rather than trust `rows_affected`, as `set_role` does; the key finds the row
        // just written.
        find_by_id(db, id).await
    })
    .await
}

/// Replaces the password hash (and `updated_at`). `false` when no account has that id.
pub async fn set_password_hash(db: &impl ConnectionTrait, id: i64, password_hash: &str) -> Result<bool, StoreError> {
    traced(db, "users.set_password_hash", async move {
        let updated = Users::update_many()
            .col_expr(users::Column::PasswordHash, Expr::value(password_hash))
            .col_expr(users::Column::UpdatedAt, database_datetime_now(db.get_database_backend()))
            .filter(users::Column::Id.eq(id))
            .exec(db)
            .await?;
        // sqlx asks MySQL for matched rather than changed rows (CLIENT_FOUND_ROWS), so the same hash
        // set twice within one second still counts.
        Ok(updated.rows_affected > 0)
    })
    .await
}

/// Sets `last_login_at` to the database's clock. Not `updated_at`: no cache holds it.
pub async fn record_login(db: &impl ConnectionTrait, id: i64) -> Result<(), StoreError> {
    traced(db, "users.record_login", async move {
        Users::update_many()
            .col_expr(users::Column::LastLoginAt, database_datetime_now(db.get_database_backend()))
            .filter(users::Column::Id.eq(id))
            .exec(db)
            .await?;
        Ok(())
    })
    .await
}

/// Which accounts [`list`] returns: one keyset page of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserListFilter {
    /// Only ids greater than this: the last id of the previous page.
    pub after_id: Option<i64>,
    /// Compared with `username_canonical` after `storage_key(prefix)` (so `AL` finds `alice`);
    /// `%`, `_` and `\` in it match only themselves.
    pub username_prefix: Option<String>,
    pub role: Option<String>,
    pub limit: u64,
}

/// One page of accounts in id order: ids greater than `filter.after_id`, at most `filter.limit`.
/// With a role, served by `idx_users_role_id (role, id)`; otherwise by the primary key (the
/// prefix is checked on the rows read in id order).
pub async fn list(db: &impl ConnectionTrait, filter: &UserListFilter) -> Result<Vec<users::Model>, StoreError> {
    traced(db, "users.list", async move { Ok(list_query(filter).all(db).await?) }).await
}

/// The statement of [`list`] (public for the tests that check its plan).
pub fn list_query(filter: &UserListFilter) -> Select<Users> {
    let mut select = Users::find().order_by_asc(users::Column::Id).limit(filter.limit);
    if let Some(after_id) = filter.after_id {
        select = select.filter(users::Column::Id.gt(after_id));
    }
    if let Some(prefix) = &filter.username_prefix {
        let pattern = format!("{}%", escape_like(&storage_key(prefix)));
        select = select.filter(users::Column::UsernameCanonical.like(LikeExpr::new(pattern).escape(LIKE_ESCAPE)));
    }
    if let Some(role) = &filter.role {
        select = select.filter(users::Column::Role.eq(role.as_str()));
    }
    select
}

/// The escape character of [`list`]'s LIKE pattern, declared with `ESCAPE` on every backend
/// (MySQL's default is also `\`, PostgreSQL's too, SQLite has none).
const LIKE_ESCAPE: char = '\\';

/// `text` as a LIKE pattern that matches only itself.
fn escape_like(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len());
    for character in text.chars() {
        if matches!(character, '%' | '_' | LIKE_ESCAPE) {
            pattern.push(LIKE_ESCAPE);
        }
        pattern.push(character);
    }
    pattern
}

#[cfg(test)]
mod tests {
    use super::escape_like;

    #[test]
    fn like_wildcards_and_the_escape_character_are_escaped() {
        assert_eq!(escape_like(r"a%b_c\d"), r"a\%b\_c\\d");
        assert_eq!(escape_like("alice"), "alice");
    }
}
