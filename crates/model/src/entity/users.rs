//! `users`: one row per account.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// As registered (PRECIS UsernameCasePreserved); shown to the user.
    #[sea_orm(unique)]
    pub username: String,
    /// `username::storage_key(username)`: what names are compared and unique by.
    #[sea_orm(unique)]
    pub username_canonical: String,
    /// argon2id PHC string. Never logged: `Debug` of this model is only used in tests.
    pub password_hash: String,
    pub role: String,
    /// UTC.
    pub created_at: DateTime,
    /// UTC.
    pub updated_at: DateTime,
    /// UTC; when an operator disabled the account (`None`: enabled). A disabled account cannot
    /// log in or refresh.
    pub disabled_at: Option<DateTime>,
    /// UTC; the last successful login (`None`: never since this column exists).
    pub last_login_at: Option<DateTime>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::refresh_tokens::Entity")]
    RefreshTokens,
}

impl Related<super::refresh_tokens::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::RefreshTokens.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
