//! Refresh-token rows: issue, rotate, revoke, and purge once their session is long over.

use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseBackend, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, QuerySelect, Set, TransactionTrait,
    sea_query::{Alias, Expr, ExprTrait, Query},
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
/// it first; nothing is written then. `rotated_at` is the database's clock (see [`database_now`]).
///
/// The conditional UPDATE comes first so that every backend serialises racing callers on the
/// row itself: PostgreSQL and InnoDB re-check the WHERE after the row lock, SQLite takes its
/// write lock before reading.
pub async fn rotate(db: &DatabaseConnection, spent_id: &str, successor: &NewRefreshToken) -> Result<bool, StoreError> {
    Ok(retry_conflicts(|| rotate_once(db, spent_id, successor)).await?)
}

async fn rotate_once(db: &DatabaseConnection, spent_id: &str, successor: &NewRefreshToken) -> Result<bool, DbErr> {
    let txn = db.begin().await?;
    let claimed = RefreshTokens::update_many()
        .col_expr(refresh_tokens::Column::RotatedAt, database_now_expr(db.get_database_backend()))
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
/// `revoked_at` is the database's clock, so replicas polling "revoked since" need no margin
/// for each other's clocks.
///
/// Repeated until a pass changes nothing, however many passes that takes: under READ
/// COMMITTED a rotation that commits while the UPDATE waits on its row lock inserts a
/// successor the UPDATE never sees, and a client refreshing in a tight loop can do that on
/// every pass. Each pass still revokes every row committed before it began, and once a pass
/// finds nothing, every further rotation fails on its `revoked_at IS NULL` condition; so the
/// loop ends as soon as the client's chain does, which the revoked rows end at once.
pub async fn revoke_family(db: &impl ConnectionTrait, family_id: &str) -> Result<u64, StoreError> {
    let now = database_now_expr(db.get_database_backend());
    let mut total = 0;
    loop {
        let changed = retry_conflicts(|| async {
            RefreshTokens::update_many()
                .col_expr(refresh_tokens::Column::RevokedAt, now.clone())
                .filter(refresh_tokens::Column::FamilyId.eq(family_id))
                .filter(refresh_tokens::Column::RevokedAt.is_null())
                .exec(db)
                .await
                .map(|result| result.rows_affected)
        })
        .await?;
        if changed == 0 {
            return Ok(total);
        }
        total += changed;
    }
}

/// The database's clock in Unix seconds, as an SQL expression. Times that replicas compare
/// with each other (`rotated_at`, `revoked_at`) are taken from it: replica clocks may differ,
/// the database has one.
fn database_now_expr(backend: DatabaseBackend) -> Expr {
    Expr::cust(match backend {
        DatabaseBackend::Postgres => "CAST(FLOOR(EXTRACT(EPOCH FROM CURRENT_TIMESTAMP)) AS BIGINT)",
        DatabaseBackend::MySql => "UNIX_TIMESTAMP()",
        _ => "CAST(strftime('%s', 'now') AS INTEGER)",
    })
}

/// The database's clock now, Unix seconds.
pub async fn database_now(db: &impl ConnectionTrait) -> Result<i64, StoreError> {
    let backend = db.get_database_backend();
    let select = Query::select().expr_as(database_now_expr(backend), Alias::new("now")).to_owned();
    let row = db.query_one(&select).await?.ok_or_else(|| DbErr::RecordNotFound("the database's clock".into()))?;
    Ok(row.try_get::<i64>("", "now")?)
}

/// When the family (session) began: the `issued_at` of its first token. `None` for an unknown
/// family. Served by the `(family_id, issued_at)` index.
pub async fn family_started_at(db: &impl ConnectionTrait, family_id: &str) -> Result<Option<i64>, StoreError> {
    Ok(RefreshTokens::find()
        .select_only()
        .column_as(refresh_tokens::Column::IssuedAt.min(), "started_at")
        .filter(refresh_tokens::Column::FamilyId.eq(family_id))
        .into_tuple::<Option<i64>>()
        .one(db)
        .await?
        .flatten())
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

/// Families revoked at or after `since` (Unix seconds, the database's clock): what a
/// revocation list must hold. Served by the `revoked_at` index.
pub async fn families_revoked_since(db: &impl ConnectionTrait, since: i64) -> Result<Vec<String>, StoreError> {
    Ok(RefreshTokens::find()
        .select_only()
        .column(refresh_tokens::Column::FamilyId)
        .filter(refresh_tokens::Column::RevokedAt.gte(since))
        .distinct()
        .into_tuple::<String>()
        .all(db)
        .await?)
}

/// Deletes up to `batch` rows of dead families, the long-revoked first; returns how many went.
///
/// A row goes when its family was revoked before `cutoff`, or when its family has no token
/// left that expires at or after `cutoff` (Unix seconds). A live family keeps even its old
/// rotated rows: its first row says when the session began (the lifetime check needs it).
/// Rows are chosen by id, then deleted by id, which every backend can bound (MySQL has no
/// LIMIT in an IN subquery; PostgreSQL has no DELETE … LIMIT). Replicas purging at once may
/// pick the same rows; the second DELETE simply finds them gone.
pub async fn purge_dead_families(db: &impl ConnectionTrait, cutoff: i64, batch: u64) -> Result<u64, StoreError> {
    let mut doomed: Vec<String> = RefreshTokens::find()
        .select_only()
        .column(refresh_tokens::Column::Id)
        .filter(refresh_tokens::Column::RevokedAt.lt(cutoff))
        .limit(batch)
        .into_tuple()
        .all(db)
        .await?;
    let room = batch.saturating_sub(u64::try_from(doomed.len()).unwrap_or(u64::MAX));
    if room > 0 {
        doomed.extend(expired_family_rows(db, cutoff, room).await?);
    }
    if doomed.is_empty() {
        return Ok(0);
    }
    let deleted = retry_conflicts(|| async {
        RefreshTokens::delete_many().filter(refresh_tokens::Column::Id.is_in(doomed.clone())).exec(db).await
    })
    .await?;
    Ok(deleted.rows_affected)
}

/// Ids of up to `limit` rows that expired before `cutoff` in families none of whose tokens
/// expires at or after it. Found by the `expires_at` index; each candidate's family is checked
/// through the `(family_id, …)` index.
async fn expired_family_rows(db: &impl ConnectionTrait, cutoff: i64, limit: u64) -> Result<Vec<String>, StoreError> {
    let later = Alias::new("later");
    let still_valid = Query::select()
        .expr(Expr::val(1))
        .from_as(RefreshTokens, later.clone())
        .and_where(
            Expr::col((later.clone(), refresh_tokens::Column::FamilyId))
                .equals((RefreshTokens, refresh_tokens::Column::FamilyId)),
        )
        .and_where(Expr::col((later, refresh_tokens::Column::ExpiresAt)).gte(cutoff))
        .to_owned();
    Ok(RefreshTokens::find()
        .select_only()
        .column(refresh_tokens::Column::Id)
        .filter(refresh_tokens::Column::ExpiresAt.lt(cutoff))
        .filter(Expr::exists(still_valid).not())
        .limit(limit)
        .into_tuple()
        .all(db)
        .await?)
}
