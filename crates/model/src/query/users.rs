//! Account lookups and inserts.

use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set, sea_query::Expr};

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

/// Deletes an account; its refresh tokens go with it (foreign key cascade).
pub async fn delete(db: &impl ConnectionTrait, id: i64) -> Result<bool, StoreError> {
    Ok(Users::delete_by_id(id).exec(db).await?.rows_affected > 0)
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
        .col_expr(users::Column::UpdatedAt, Expr::value(chrono::Utc::now().naive_utc()))
        .filter(users::Column::UsernameCanonical.eq(storage_key(username)))
        .exec(db)
        .await?;
    // Not `rows_affected`: MySQL counts only changed rows, so 0 may mean "already that role".
    // The unique key makes this read the row just written.
    find_by_username(db, username).await
}
