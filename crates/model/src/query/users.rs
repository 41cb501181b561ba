//! Account lookups and writes.
//!
//! Every write to an account sets `updated_at`, and deleting one leaves a row in
//! `user_deletions`: that is what [`users_changed_since`] (each replica's user-cache poll)
//! reads. Times that replicas compare are taken from the database's clock where the statement
//! allows it; [`insert`] uses this process's, within the poll's overlap margin.

use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseBackend, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, QuerySelect, Set, TransactionTrait,
    sea_query::{Alias, Expr, ExprTrait, Query},
};

use crate::{
    entity::users::{self, Entity as Users},
    error::{StoreError, retry_conflicts},
    username::storage_key,
};

pub async fn find_by_id(db: &impl ConnectionTrait, id: i64) -> Result<Option<users::Model>, StoreError> {
    Ok(Users::find_by_id(id).one(db).await?)
}

/// The account whose name compares equal to `username` under RFC 8265 (`Alice` finds `alice`).
pub async fn find_by_username(db: &impl ConnectionTrait, username: &str) -> Result<Option<users::Model>, StoreError> {
    let key = storage_key(username);
    Ok(Users::find().filter(users::Column::UsernameCanonical.eq(key)).one(db).await?)
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
        ..Default::default()
    };
    // A deadlock among concurrent inserts of one key (InnoDB locks duplicate keys shared, then
    // exclusive) is not an outage: retried, it meets the winner's row as a unique violation.
    retry_conflicts(|| row.clone().insert(db)).await.map_err(|err| StoreError::classify(err, true))
}

/// Deletes an account; its refresh tokens go with it (foreign key cascade). In the same
/// transaction a `user_deletions` row records it, so every replica's poll finds the deletion
/// (a deleted row cannot say it changed).
pub async fn delete(db: &DatabaseConnection, id: i64) -> Result<bool, StoreError> {
    Ok(retry_conflicts(|| delete_once(db, id)).await?)
}

async fn delete_once(db: &DatabaseConnection, id: i64) -> Result<bool, DbErr> {
    let txn = db.begin().await?;
    let Some(row) = Users::find_by_id(id).one(&txn).await? else {
        txn.rollback().await?;
        return Ok(false);
    };
    // The DELETE decides between racing deleters (row lock, or SQLite's write lock): only the
    // one that removed the row records it.
    if Users::delete_by_id(id).exec(&txn).await?.rows_affected == 0 {
        txn.rollback().await?;
        return Ok(false);
    }
    let record = Query::insert()
        .into_table(Alias::new(DELETIONS))
        .columns([Alias::new("user_id"), Alias::new("username_canonical"), Alias::new("deleted_at")])
        .values_panic([Expr::value(id), Expr::value(row.username_canonical), database_now(txn.get_database_backend())])
        .to_owned();
    txn.execute(&record).await?;
    txn.commit().await?;
    Ok(true)
}

/// Accounts deleted are recorded here (see the migration `m20261201_000005`).
const DELETIONS: &str = "user_deletions";

/// The database's clock as a UTC `DATETIME`/`TIMESTAMP` value, stored as `updated_at` is: replica
/// clocks may differ, the database has one.
fn database_now(backend: DatabaseBackend) -> Expr {
    Expr::cust(match backend {
        DatabaseBackend::Postgres => "(CURRENT_TIMESTAMP AT TIME ZONE 'UTC')",
        DatabaseBackend::MySql => "UTC_TIMESTAMP(6)",
        // The text form sqlx writes for a `NaiveDateTime` ("%F %T%.f"), so the two compare.
        _ => "strftime('%Y-%m-%d %H:%M:%f', 'now')",
    })
}

/// Accounts (id, canonical username) written or deleted at or after `since` (Unix seconds,
/// the database's clock: `refresh_tokens::database_now`). Served by `idx_users_updated_at` and
/// `idx_user_deletions_deleted_at`.
pub async fn users_changed_since(db: &impl ConnectionTrait, since: i64) -> Result<Vec<(i64, String)>, StoreError> {
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
}

/// Sets the role of the account named `username` (compared as [`find_by_username`] does);
/// `None` when there is no such account.
pub async fn set_role(
    db: &impl ConnectionTrait,
    username: &str,
    role: &str,
) -> Result<Option<users::Model>, StoreError> {
    Users::update_many()
        .col_expr(users::Column::Role, Expr::value(role))
        .col_expr(users::Column::UpdatedAt, database_now(db.get_database_backend()))
        .filter(users::Column::UsernameCanonical.eq(storage_key(username)))
        .exec(db)
        .await?;
    // Not `rows_affected`: MySQL counts only changed rows, so 0 may mean "already that role".
    // The unique key makes this read the row just written.
    find_by_username(db, username).await
}
