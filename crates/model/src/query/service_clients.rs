//! Service-account (OAuth 2.0 machine client) lookups and writes, every one by `client_id`.
//!
//! A new row's times are this process's clock, as a new account's are; the writes after it
//! take the database's, as account writes do.

use super::traced;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set, TransactionTrait, UpdateMany,
    sea_query::{Expr, ExprTrait, Func},
};

use super::database_datetime_now;
use crate::{
    entity::service_clients::{self, Column, Entity as ServiceClients},
    error::{StoreError, retry_conflicts},
};

/// What the service decides about a new client. The secret arrives hashed; no `Debug`, so the
/// hash cannot reach a log through it.
#[derive(Clone, Copy)]
pub struct NewServiceClient<'a> {
    pub client_id: &'a str,
    pub name: &'a str,
    pub role: &'a str,
    /// Space-separated; may be empty.
    pub scopes: &'a str,
    /// Space-separated; may be empty.
    pub audiences: &'a str,
    /// Lowercase hex SHA-256 of the secret.
    pub secret_hash: &'a str,
    /// Tokens up to this one are refused from the start: those of an earlier client with the
    /// same id (see `revoke_tokens`).
    pub tokens_revoked_through: i64,
}

/// Inserts a client; its creation counts as the first secret rotation. The unique key is the
/// one arbiter of races: a `client_id` already there comes back as
/// [`StoreError::ClientIdTaken`], whoever checked first.
pub async fn insert(
    db: &impl ConnectionTrait,
    new: NewServiceClient<'_>,
) -> Result<service_clients::Model, StoreError> {
    traced(db, "service_clients.insert", async move {
        let now = chrono::Utc::now().naive_utc();
        let row = service_clients::ActiveModel {
            client_id: Set(new.client_id.to_owned()),
            name: Set(new.name.to_owned()),
            role: Set(new.role.to_owned()),
            scopes: Set(new.scopes.to_owned()),
            audiences: Set(new.audiences.to_owned()),
            secret_hash: Set(new.secret_hash.to_owned()),
            previous_secret_hash: Set(None),
            previous_secret_expires_at: Set(None),
            secret_rotated_at: Set(now),
            disabled_at: Set(None),
            tokens_revoked_through: Set(Some(new.tokens_revoked_through)),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        };
        // As for accounts: InnoDB may answer concurrent inserts of one key with a deadlock; retried,
        // the loser meets the winner's row as a unique violation.
        retry_conflicts(|| row.clone().insert(db))
            .await
            .map_err(|err| StoreError::classify(err, Some(StoreError::ClientIdTaken)))
    })
    .await
}

pub async fn find(db: &impl ConnectionTrait, client_id: &str) -> Result<Option<service_clients::Model>, StoreError> {
    traced(db, "service_clients.find", async move { Ok(find_row(db, client_id).await?) }).await
}

async fn find_row(db: &impl ConnectionTrait, client_id: &str) -> Result<Option<service_clients::Model>, DbErr> {
    ServiceClients::find().filter(Column::ClientId.eq(client_id)).one(db).await
}

/// One keyset page in `client_id` order: the clients after `after` (all when `None`), at most
/// `limit`. Served by the unique key. The order is the column's collation: bytes on SQLite and
/// MySQL (`utf8mb4_bin`), the database's collation on PostgreSQL; pages never skip or repeat a
/// row either way.
pub async fn list(
    db: &impl ConnectionTrait,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<service_clients::Model>, StoreError> {
    traced(db, "service_clients.list", async move {
        let mut select = ServiceClients::find().order_by_asc(Column::ClientId).limit(limit);
        if let Some(after) = after {
            select = select.filter(Column::ClientId.gt(after));
        }
        Ok(select.all(db).await?)
    })
    .await
}

/// Replaces the secret hash by `new_hash`; the replaced one becomes the previous hash, accepted
/// until `previous_valid_until` (UTC), and a previous hash before it is forgotten. One UPDATE,
/// so a concurrent rotation cannot interleave. `None` when no client has that id.
pub async fn rotate_secret(
    db: &DatabaseConnection,
    client_id: &str,
    new_hash: &str,
    previous_valid_until: chrono::NaiveDateTime,
) -> Result<Option<service_clients::Model>, StoreError> {
    traced(db, "service_clients.rotate_secret", async move {
        let now = database_datetime_now(db.get_database_backend());
        // The order matters on MySQL, which assigns left to right and lets later expressions read
        // the values already assigned: `previous_secret_hash` must read `secret_hash` before it is
        // replaced. (PostgreSQL and SQLite read the old row in every expression.)
        let update = ServiceClients::update_many()
            .col_expr(Column::PreviousSecretHash, Expr::col(Column::SecretHash))
            .col_expr(Column::PreviousSecretExpiresAt, Expr::value(previous_valid_until))
            .col_expr(Column::SecretHash, Expr::value(new_hash))
            .col_expr(Column::SecretRotatedAt, now.clone())
            .col_expr(Column::UpdatedAt, now)
            .filter(Column::ClientId.eq(client_id));
        Ok(update_and_read(db, update, client_id).await?)
    })
    .await
}

/// Disables the client (`disabled_at` := the database's clock; an already disabled client
/// keeps its first time) or enables it (`NULL`); `updated_at` moves either way. `None` when no
/// client has that id.
pub async fn set_disabled(
    db: &DatabaseConnection,
    client_id: &str,
    disabled: bool,
) -> Result<Option<service_clients::Model>, StoreError> {
    traced(db, "service_clients.set_disabled", async move {
        let now = database_datetime_now(db.get_database_backend());
        let disabled_at = if disabled {
            Func::coalesce([Expr::col(Column::DisabledAt), now.clone()]).into()
        } else {
            Expr::value(Option::<chrono::NaiveDateTime>::None)
        };
        let update = ServiceClients::update_many()
            .col_expr(Column::DisabledAt, disabled_at)
            .col_expr(Column::UpdatedAt, now)
            .filter(Column::ClientId.eq(client_id));
        Ok(update_and_read(db, update, client_id).await?)
    })
    .await
}

/// Revokes the client's tokens up to and including the one whose id prefix is `through`
/// (`tokens_revoked_through` only moves forward, so revoking an old token again spares the
/// newer ones). `true` when it moved.
pub async fn revoke_tokens(db: &impl ConnectionTrait, client_id: &str, through: i64) -> Result<bool, StoreError> {
    traced(db, "service_clients.revoke_tokens", async move {
        let updated = ServiceClients::update_many()
            .col_expr(Column::TokensRevokedThrough, Expr::value(through))
            .filter(Column::ClientId.eq(client_id))
            .filter(Column::TokensRevokedThrough.is_null().or(Column::TokensRevokedThrough.lt(through)))
            .exec(db)
            .await?;
        Ok(updated.rows_affected > 0)
    })
    .await
}

/// `true` when a row was deleted.
pub async fn delete(db: &impl ConnectionTrait, client_id: &str) -> Result<bool, StoreError> {
    traced(db, "service_clients.delete", async move {
        let deleted = ServiceClients::delete_many().filter(Column::ClientId.eq(client_id)).exec(db).await?;
        Ok(deleted.rows_affected > 0)
    })
    .await
}

/// Runs `update` of the row of `client_id` and reads that row back, in one transaction: the
/// UPDATE's row lock (SQLite's write lock) lasts until the read, so it returns what this
/// update wrote, not a later writer's row.
async fn update_and_read(
    db: &DatabaseConnection,
    update: UpdateMany<ServiceClients>,
    client_id: &str,
) -> Result<Option<service_clients::Model>, DbErr> {
    let txn = db.begin().await?;
    update.exec(&txn).await?;
    let row = find_row(&txn, client_id).await?;
    txn.commit().await?;
    Ok(row)
}
