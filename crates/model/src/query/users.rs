//! Account lookups and inserts.

use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set, sea_query::Expr};

use crate::{
    entity::users::{self, Entity as Users},
    error::StoreError,
};

pub async fn find_by_id(db: &impl ConnectionTrait, id: i64) -> Result<Option<users::Model>, StoreError> {
    Ok(Users::find_by_id(id).one(db).await?)
}

pub async fn find_by_username(db: &impl ConnectionTrait, username: &str) -> Result<Option<users::Model>, StoreError> {
    Ok(Users::find().filter(users::Column::Username.eq(username)).one(db).await?)
}

/// Inserts an account. The unique key on `username` is the one arbiter of races: a taken
/// name comes back as [`StoreError::UsernameTaken`], whoever checked first.
pub async fn insert(
    db: &impl ConnectionTrait,
    username: &str,
    password_hash: &str,
    role: &str,
) -> Result<users::Model, StoreError> {
    let now = chrono::Utc::now().naive_utc();
    users::ActiveModel {
        username: Set(username.to_owned()),
        password_hash: Set(password_hash.to_owned()),
        role: Set(role.to_owned()),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(db)
    .await
    .map_err(|err| StoreError::classify(err, true))
}

/// Deletes an account; its refresh tokens go with it (foreign key cascade).
pub async fn delete(db: &impl ConnectionTrait, id: i64) -> Result<bool, StoreError> {
    Ok(Users::delete_by_id(id).exec(db).await?.rows_affected > 0)
}

/// Sets the role of the account named `username`; `None` when there is no such account.
pub async fn set_role(
    db: &impl ConnectionTrait,
    username: &str,
    role: &str,
) -> Result<Option<users::Model>, StoreError> {
    Users::update_many()
        .col_expr(users::Column::Role, Expr::value(role))
        .col_expr(users::Column::UpdatedAt, Expr::value(chrono::Utc::now().naive_utc()))
        .filter(users::Column::Username.eq(username))
        .exec(db)
        .await?;
    // Not `rows_affected`: MySQL counts only changed rows, so 0 may mean "already that role".
    // The unique username makes this read the row just written.
    find_by_username(db, username).await
}
