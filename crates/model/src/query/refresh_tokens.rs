//! Refresh-token rows: issue, rotate, revoke.

use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, Set,
    TransactionTrait, sea_query::Expr,
};

use crate::{
    entity::refresh_tokens::{self, Entity as RefreshTokens},
    error::{StoreError, retry_conflicts},
};

/// What the service decides about a new refresh token; the row is built from it.
#[derive(Debug, Clone)]
pub struct NewRefreshToken {
    pub id: String,
    pub family_id: String,
    pub user_id: i64,
    pub access_jti: String,
    pub issued_at: i64,
    pub expires_at: i64,
}

impl NewRefreshToken {
    /// The row as it is written: what a successful [`insert`] or [`rotate`] stored, without
    /// reading it back.
    pub fn into_row(self) -> refresh_tokens::Model {
        refresh_tokens::Model {
            id: self.id,
            family_id: self.family_id,
            user_id: self.user_id,
            access_jti: self.access_jti,
            issued_at: self.issued_at,
            expires_at: self.expires_at,
            rotated_at: None,
            successor_id: None,
            revoked_at: None,
        }
    }

    fn into_active_model(self) -> refresh_tokens::ActiveModel {
        refresh_tokens::ActiveModel {
            id: Set(self.id),
            family_id: Set(self.family_id),
            user_id: Set(self.user_id),
            access_jti: Set(self.access_jti),
            issued_at: Set(self.issued_at),
            expires_at: Set(self.expires_at),
            rotated_at: Set(None),
            successor_id: Set(None),
            revoked_at: Set(None),
        }
    }
}

pub async fn insert(db: &impl ConnectionTrait, token: NewRefreshToken) -> Result<refresh_tokens::Model, StoreError> {
    Ok(token.into_active_model().insert(db).await?)
}

pub async fn find(db: &impl ConnectionTrait, id: &str) -> Result<Option<refresh_tokens::Model>, StoreError> {
    Ok(RefreshTokens::find_by_id(id.to_owned()).one(db).await?)
}

/// Marks `spent_id` rotated and inserts its successor, in one transaction, but only if
/// `spent_id` is still live. Returns `false` when another caller rotated (or someone revoked)
/// it first; nothing is written then.
///
/// The conditional UPDATE comes first so that every backend serialises racing callers on the
/// row itself: PostgreSQL and InnoDB re-check the WHERE after the row lock, SQLite takes its
/// write lock before reading.
pub async fn rotate(
    db: &DatabaseConnection,
    spent_id: &str,
    now: i64,
    successor: &NewRefreshToken,
) -> Result<bool, StoreError> {
    Ok(retry_conflicts(|| rotate_once(db, spent_id, now, successor)).await?)
}

async fn rotate_once(
    db: &DatabaseConnection,
    spent_id: &str,
    now: i64,
    successor: &NewRefreshToken,
) -> Result<bool, DbErr> {
    let txn = db.begin().await?;
    let claimed = RefreshTokens::update_many()
        .col_expr(refresh_tokens::Column::RotatedAt, Expr::value(now))
        .col_expr(refresh_tokens::Column::SuccessorId, Expr::value(successor.id.clone()))
        .filter(refresh_tokens::Column::Id.eq(spent_id))
        .filter(refresh_tokens::Column::RotatedAt.is_null())
        .filter(refresh_tokens::Column::RevokedAt.is_null())
        .exec(&txn)
        .await?
        .rows_affected
        == 1;
    if !claimed {
        txn.rollback().await?;
        return Ok(false);
    }
    successor.clone().into_active_model().insert(&txn).await?;
    txn.commit().await?;
    Ok(true)
}

/// Revokes every not yet revoked token of a family; returns how many rows changed.
///
/// Repeated until a pass changes nothing: under PostgreSQL's READ COMMITTED a rotation that
/// commits while the UPDATE waits on its row lock inserts a successor the UPDATE never sees.
/// A later pass does see it, and once a pass finds nothing, every further rotation of the
/// family fails on its `revoked_at IS NULL` condition.
pub async fn revoke_family(db: &impl ConnectionTrait, family_id: &str, now: i64) -> Result<u64, StoreError> {
    let mut total = 0;
    for _ in 0..5 {
        let changed = retry_conflicts(|| async {
            RefreshTokens::update_many()
                .col_expr(refresh_tokens::Column::RevokedAt, Expr::value(now))
                .filter(refresh_tokens::Column::FamilyId.eq(family_id))
                .filter(refresh_tokens::Column::RevokedAt.is_null())
                .exec(db)
                .await
                .map(|result| result.rows_affected)
        })
        .await?;
        if changed == 0 {
            break;
        }
        total += changed;
    }
    Ok(total)
}

/// Tokens of a family that could still be exchanged: not rotated, not revoked, not expired.
pub async fn live_in_family(
    db: &impl ConnectionTrait,
    family_id: &str,
    now: i64,
) -> Result<Vec<refresh_tokens::Model>, StoreError> {
    Ok(RefreshTokens::find()
        .filter(refresh_tokens::Column::FamilyId.eq(family_id))
        .filter(refresh_tokens::Column::RotatedAt.is_null())
        .filter(refresh_tokens::Column::RevokedAt.is_null())
        .filter(refresh_tokens::Column::ExpiresAt.gt(now))
        .all(db)
        .await?)
}

/// Whether the family (session) has been revoked: the durable answer behind the fast lists.
pub async fn family_revoked(db: &impl ConnectionTrait, family_id: &str) -> Result<bool, StoreError> {
    let revoked = RefreshTokens::find()
        .filter(refresh_tokens::Column::FamilyId.eq(family_id))
        .filter(refresh_tokens::Column::RevokedAt.is_not_null())
        .one(db)
        .await?;
    Ok(revoked.is_some())
}

/// Families revoked at or after `since` (Unix seconds): what a revocation list must hold.
pub async fn families_revoked_since(db: &impl ConnectionTrait, since: i64) -> Result<Vec<String>, StoreError> {
    use sea_orm::QuerySelect;
    Ok(RefreshTokens::find()
        .select_only()
        .column(refresh_tokens::Column::FamilyId)
        .filter(refresh_tokens::Column::RevokedAt.gte(since))
        .distinct()
        .into_tuple::<String>()
        .all(db)
        .await?)
}
