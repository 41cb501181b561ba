//! `user_totp`: an account's authenticator (RFC 6238 TOTP), at most one per account. Begun
//! (`confirmed_at` NULL) it does nothing; confirmed, every login of the account needs a code.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "user_totp")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: i64,
    /// The TOTP secret sealed with the AEAD key ring of auth-svc (`v1.<kid>.<…>`, the user id
    /// as associated data), at most 256 characters. Never the secret itself.
    pub secret_sealed: String,
    /// UTC; when this enrolment began (a new enrolment before confirmation starts it again).
    pub created_at: DateTime,
    /// UTC; when a code confirmed the enrolment (`None`: begun, not active).
    pub confirmed_at: Option<DateTime>,
    /// The TOTP time step of the last accepted code; a code of this step or an earlier one is
    /// refused (replay).
    pub last_used_step: Option<i64>,
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
