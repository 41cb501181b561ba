//! `service_clients`: one row per service account, an OAuth 2.0 client that obtains tokens
//! with its own credentials (client credentials grant) rather than a user's.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "service_clients")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// What the client authenticates as (at most 64 characters); compared exactly.
    #[sea_orm(unique)]
    pub client_id: String,
    /// Shown to operators (at most 128 characters).
    pub name: String,
    pub role: String,
    /// Space-separated scopes its tokens may carry; empty for none.
    pub scopes: String,
    /// Space-separated audiences its tokens may name; empty for none.
    pub audiences: String,
    /// SHA-256 of the secret, lowercase hex. Never logged: `Debug` of this model is only used
    /// in tests.
    pub secret_hash: String,
    /// The hash the last rotation replaced; never logged either. It still authenticates until
    /// `previous_secret_expires_at`.
    pub previous_secret_hash: Option<String>,
    /// UTC; until when `previous_secret_hash` is accepted.
    pub previous_secret_expires_at: Option<DateTime>,
    /// UTC; the last rotation (creation counts as the first).
    pub secret_rotated_at: DateTime,
    /// UTC; when an operator disabled the client (`None`: enabled).
    pub disabled_at: Option<DateTime>,
    /// UTC; tokens of this client issued at or before it are revoked (RFC 7009).
    pub tokens_revoked_at: Option<DateTime>,
    /// UTC.
    pub created_at: DateTime,
    /// UTC.
    pub updated_at: DateTime,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
