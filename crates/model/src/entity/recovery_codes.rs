//! `recovery_codes`: an account's single-use recovery codes, for when its authenticator is
//! lost. Only a keyed hash of each code is stored; the codes are shown once.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "recovery_codes")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub user_id: i64,
    /// HMAC-SHA256 of the code under a key derived from the sealing key `key_id`, lowercase
    /// hex; unique per account. Never logged: `Debug` of this model is only used in tests.
    pub code_hash: String,
    /// The id of the sealing key the hash was made under (at most 64 characters): the key must
    /// stay in the ring while unused codes hashed under it exist.
    pub key_id: String,
    /// UTC.
    pub created_at: DateTime,
    /// UTC; when the code was used (`None`: still usable).
    pub used_at: Option<DateTime>,
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
