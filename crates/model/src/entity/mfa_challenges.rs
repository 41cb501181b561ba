//! `mfa_challenges`: one row per login that passed its password and waits for the second
//! factor. The challenge token names its row by `jti`; the row makes the token single-use and
//! counts the wrong codes given with it.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "mfa_challenges")]
pub struct Model {
    /// The challenge token's `jti` (UUID).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub user_id: i64,
    /// Unix seconds; the challenge token's `exp`.
    pub expires_at: i64,
    /// Unix seconds at which the challenge was used up: by a right code, or by too many wrong
    /// ones (`None`: still open).
    pub spent_at: Option<i64>,
    /// Wrong codes given with this challenge.
    pub failed_attempts: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::users::Entity",
        from = "Column::UserId",
        to = "super::users::Column::Id",
        on_delete = "Cascade"
    )]
    User,
}

impl Related<super::users::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::User.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
