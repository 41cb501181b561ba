//! `refresh_tokens`: one row per issued refresh token. Rows of one login share a `family_id`;
//! rotation marks a row spent and points it at its successor. Only ids are stored, never
//! token text: a token is re-derived from its row when it must be returned again.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "refresh_tokens")]
pub struct Model {
    /// The refresh token's `jti` (UUID).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// The session (login) this token belongs to (UUID); the access token's `sid`.
    pub family_id: String,
    pub user_id: i64,
    /// `jti` of the access token issued together with this refresh token.
    pub access_jti: String,
    /// Unix seconds; the `iat` of both tokens of the pair.
    pub issued_at: i64,
    /// Unix seconds; the refresh token's `exp`.
    pub expires_at: i64,
    /// Unix seconds at which this token was exchanged for `successor_id`.
    pub rotated_at: Option<i64>,
    pub successor_id: Option<String>,
    /// Unix seconds at which the family was revoked (logout or reuse detection).
    pub revoked_at: Option<i64>,
    /// The client's address at login (at most 64 characters), copied to every successor by
    /// rotation, so the user can recognise the session.
    pub client_address: Option<String>,
    /// The client's `user-agent` at login (at most 256 characters), copied likewise.
    pub user_agent: Option<String>,
    /// How the session was authenticated (at most 32 characters): `pwd`, or `pwd otp` after a
    /// second factor; copied to every successor and into the access tokens' `amr` claim.
    /// `None` for sessions begun before this column existed (password only).
    pub amr: Option<String>,
    /// Unix seconds; when the session began (its first token's `issued_at`), copied to every
    /// successor, so the session's end is known from any of its rows. `None` on rows written
    /// by a replica from before this column (their family's first row still says it).
    pub session_started_at: Option<i64>,
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
