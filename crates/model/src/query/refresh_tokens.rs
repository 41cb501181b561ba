//! Refresh-token rows: issue, rotate, revoke, and purge once their session is long over.

use super::traced;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set, TransactionTrait, UpdateMany,
    sea_query::{Alias, Expr, ExprTrait, Order, Query},
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
    /// Recorded at login; a successor carries its predecessor's (see the entity).
    pub client_address: Option<String>,
    pub user_agent: Option<String>,
    /// How the session was authenticated (see the entity); a successor carries its
    /// predecessor's.
    pub amr: Option<String>,
    /// When the session began (Unix seconds); a successor carries its predecessor's.
    pub session_started_at: i64,
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
            client_address: self.client_address,
            user_agent: self.user_agent,
            amr: self.amr,
            session_started_at: Some(self.session_started_at),
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
            client_address: Set(self.client_address),
            user_agent: Set(self.user_agent),
            amr: Set(self.amr),
            session_started_at: Set(Some(self.session_started_at)),
        }
    }
}

/// Writes `token`'s row and returns it as written. Not read back: every column is known, and
/// SQLite and MySQL would read it back with a SELECT of their own (no RETURNING there).
pub async fn insert(db: &impl ConnectionTrait, token: NewRefreshToken) -> Result<refresh_tokens::Model, StoreError> {
    traced(db, "refresh_tokens.insert", async move {
        RefreshTokens::insert(token.clone().into_active_model()).exec_without_returning(db).await?;
        Ok(token.into_row())
    })
    .await
}

pub async fn find(db: &impl ConnectionTrait, id: &str) -> Result<Option<refresh_tokens::Model>, StoreError> {
    traced(db, "refresh_tokens.find", async move { Ok(RefreshTokens::find_by_id(id.to_owned()).one(db).await?) }).await
}

/// Marks `spent_id` rotated and inserts its successor, in one transaction, but only if
/// `spent_id` is still live. Returns `false` when another caller rotated (or someone revoked)
/// it first; nothing is written then. `rotated_at` is the database's clock (see [`database_now`]).
///
/// The conditional UPDATE comes first so that every backend serialises racing callers on the
/// row itself: PostgreSQL and InnoDB re-check the WHERE after the row lock, SQLite takes its
/// write lock before reading.
pub async fn rotate(db: &DatabaseConnection, spent_id: &str, successor: &NewRefreshToken) -> Result<bool, StoreError> {
    traced(
        db,
        "refresh_tokens.rotate",
        async move { Ok(retry_conflicts(|| rotate_once(db, spent_id, successor)).await?) },
    )
    .await
}

async fn rotate_once(db: &DatabaseConnection, spent_id: &str, successor: &NewRefreshToken) -> Result<bool, DbErr> {
    let txn = db.begin().await?;
    let claimed =
        spend_if_live(db.get_database_backend(), spent_id, &successor.id).exec(&txn).await?.rows_affected == 1;
    if !claimed {
        txn.rollback().await?;
        return Ok(false);
    }
    // Not read back (see `insert`).
    RefreshTokens::insert(successor.clone().into_active_model()).exec_without_returning(&txn).await?;
    txn.commit().await?;
    Ok(true)
}

/// The UPDATE both rotations start with: marks `spent_id` rotated (the database's clock) with its
/// successor, if it is neither rotated nor revoked yet. Callers add their own conditions.
fn spend_if_live(backend: DatabaseBackend, spent_id: &str, successor_id: &str) -> UpdateMany<RefreshTokens> {
    RefreshTokens::update_many()
        .col_expr(refresh_tokens::Column::RotatedAt, database_now_expr(backend))
        .col_expr(refresh_tokens::Column::SuccessorId, Expr::value(successor_id))
        .filter(refresh_tokens::Column::Id.eq(spent_id))
        .filter(refresh_tokens::Column::RotatedAt.is_null())
        .filter(refresh_tokens::Column::RevokedAt.is_null())
}

/// A rotation of a presented token that is checked and written by the database alone: see
/// [`rotate_presented`].
#[derive(Debug, Clone, Copy)]
pub struct PresentedRotation<'a> {
    /// The presented token's `jti`, `sid` and `sub`: the row must have all three.
    pub spent_id: &'a str,
    pub family_id: &'a str,
    pub user_id: i64,
    /// The successor's ids.
    pub successor_id: &'a str,
    pub access_jti: &'a str,
    /// The replica's clock (Unix seconds): the successor's `issued_at`, and what the session's
    /// end is judged against.
    pub now: i64,
    pub refresh_ttl: i64,
    pub max_lifetime: i64,
}

/// Refresh's common case in two statements of one transaction: a conditional UPDATE spends the
/// presented row if it is live, belongs to the presented family and user, and its session has
/// not reached `max_lifetime`; an `INSERT … SELECT` then writes the successor from the spent
/// row (origin, `amr` and session start are copied in the database) and returns it. Its
/// `expires_at` is `now + refresh_ttl`, capped at the session's end.
///
/// `None` when the UPDATE changed no row; nothing is written then, and the caller reads the row
/// to find out why (expired session, revoked, replayed, unknown, or a row without
/// `session_started_at`). Racing callers serialise on the spent row as in [`rotate`].
///
/// RETURNING is in SQLite (3.35), PostgreSQL and MariaDB (10.5) for INSERT; sea-query omits it
/// for MySQL, so it is written here.
pub async fn rotate_presented(
    db: &DatabaseConnection,
    rotation: &PresentedRotation<'_>,
) -> Result<Option<refresh_tokens::Model>, StoreError> {
    traced(db, "refresh_tokens.rotate_presented", async move {
        Ok(retry_conflicts(|| rotate_presented_once(db, rotation)).await?)
    })
    .await
}

async fn rotate_presented_once(
    db: &DatabaseConnection,
    rotation: &PresentedRotation<'_>,
) -> Result<Option<refresh_tokens::Model>, DbErr> {
    use refresh_tokens::Column;
    let backend = db.get_database_backend();
    let txn = db.begin().await?;
    let spent = spend_if_live(backend, rotation.spent_id, rotation.successor_id)
        .filter(Column::FamilyId.eq(rotation.family_id))
        .filter(Column::UserId.eq(rotation.user_id))
        // started + max_lifetime > now, written so that neither side can overflow.
        .filter(Column::SessionStartedAt.gt(rotation.now.saturating_sub(rotation.max_lifetime)))
        .exec(&txn)
        .await?
        .rows_affected
        == 1;
    if !spent {
        txn.rollback().await?;
        return Ok(None);
    }
    let mut insert = backend.build(&successor_of(rotation)?);
    insert.sql.push_str(" RETURNING ");
    insert.sql.push_str(&RETURNED.join(", "));
    let row = txn.query_one_raw(insert).await?.ok_or(DbErr::RecordNotInserted)?;
    let successor = refresh_tokens::Model {
        id: row.try_get("", "id")?,
        family_id: row.try_get("", "family_id")?,
        user_id: row.try_get("", "user_id")?,
        access_jti: row.try_get("", "access_jti")?,
        issued_at: row.try_get("", "issued_at")?,
        expires_at: row.try_get("", "expires_at")?,
        rotated_at: None,
        successor_id: None,
        revoked_at: None,
        client_address: row.try_get("", "client_address")?,
        user_agent: row.try_get("", "user_agent")?,
        amr: row.try_get("", "amr")?,
        session_started_at: row.try_get("", "session_started_at")?,
    };
    txn.commit().await?;
    Ok(Some(successor))
}

/// The successor's columns the INSERT returns (none is a reserved word on any backend).
const RETURNED: [&str; 10] = [
    "id",
    "family_id",
    "user_id",
    "access_jti",
    "issued_at",
    "expires_at",
    "client_address",
    "user_agent",
    "amr",
    "session_started_at",
];

/// `INSERT INTO refresh_tokens (…) SELECT … FROM refresh_tokens WHERE id = spent`.
fn successor_of(rotation: &PresentedRotation<'_>) -> Result<sea_orm::sea_query::InsertStatement, DbErr> {
    use refresh_tokens::Column;
    let fresh_until = rotation.now.saturating_add(rotation.refresh_ttl);
    // started + max_lifetime < now + ttl, rearranged so that neither side can overflow; the
    // sum in the ELSE branch is then at most `fresh_until`.
    let capped = Expr::col(Column::SessionStartedAt).lte(fresh_until.saturating_sub(rotation.max_lifetime));
    let expires_at = Expr::case(capped, Expr::col(Column::SessionStartedAt).add(rotation.max_lifetime))
        .finally(Expr::val(fresh_until));
    let select = Query::select()
        .expr(Expr::val(rotation.successor_id))
        .column(Column::FamilyId)
        .column(Column::UserId)
        .expr(Expr::val(rotation.access_jti))
        .expr(Expr::val(rotation.now))
        .expr(expires_at)
        .columns([Column::ClientAddress, Column::UserAgent, Column::Amr, Column::SessionStartedAt])
        .from(RefreshTokens)
        .and_where(Expr::col(Column::Id).eq(rotation.spent_id))
        .to_owned();
    Query::insert()
        .into_table(RefreshTokens)
        .columns([
            Column::Id,
            Column::FamilyId,
            Column::UserId,
            Column::AccessJti,
            Column::IssuedAt,
            Column::ExpiresAt,
            Column::ClientAddress,
            Column::UserAgent,
            Column::Amr,
            Column::SessionStartedAt,
        ])
        .select_from(select)
        .map(|insert| insert.to_owned())
        .map_err(|err| DbErr::Custom(err.to_string()))
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
    traced(db, "refresh_tokens.revoke_family", async move {
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
    })
    .await
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
    traced(db, "refresh_tokens.database_now", async move {
        let backend = db.get_database_backend();
        let select = Query::select().expr_as(database_now_expr(backend), Alias::new("now")).to_owned();
        let row = db.query_one(&select).await?.ok_or_else(|| DbErr::RecordNotFound("the database's clock".into()))?;
        Ok(row.try_get::<i64>("", "now")?)
    })
    .await
}

/// When the family (session) began: the `issued_at` of its first token. `None` for an unknown
/// family. Served by the `(family_id, issued_at)` index.
pub async fn family_started_at(db: &impl ConnectionTrait, family_id: &str) -> Result<Option<i64>, StoreError> {
    traced(db, "refresh_tokens.family_started_at", async move {
        Ok(RefreshTokens::find()
            .select_only()
            .column_as(refresh_tokens::Column::IssuedAt.min(), "started_at")
            .filter(refresh_tokens::Column::FamilyId.eq(family_id))
            .into_tuple::<Option<i64>>()
            .one(db)
            .await?
            .flatten())
    })
    .await
}

/// Tokens of a family that could still be exchanged: not rotated, not revoked, not expired.
pub async fn live_in_family(
    db: &impl ConnectionTrait,
    family_id: &str,
    now: i64,
) -> Result<Vec<refresh_tokens::Model>, StoreError> {
    traced(db, "refresh_tokens.live_in_family", async move {
        Ok(RefreshTokens::find()
            .filter(refresh_tokens::Column::FamilyId.eq(family_id))
            .filter(refresh_tokens::Column::RotatedAt.is_null())
            .filter(refresh_tokens::Column::RevokedAt.is_null())
            .filter(refresh_tokens::Column::ExpiresAt.gt(now))
            .all(db)
            .await?)
    })
    .await
}

/// Whether the family (session) has been revoked: the durable answer behind the fast lists.
pub async fn family_revoked(db: &impl ConnectionTrait, family_id: &str) -> Result<bool, StoreError> {
    traced(db, "refresh_tokens.family_revoked", async move {
        let revoked = RefreshTokens::find()
            .filter(refresh_tokens::Column::FamilyId.eq(family_id))
            .filter(refresh_tokens::Column::RevokedAt.is_not_null())
            .one(db)
            .await?;
        Ok(revoked.is_some())
    })
    .await
}

/// Families revoked at or after `since` (Unix seconds, the database's clock): what a
/// revocation list must hold. Served by the `revoked_at` index.
pub async fn families_revoked_since(db: &impl ConnectionTrait, since: i64) -> Result<Vec<String>, StoreError> {
    traced(db, "refresh_tokens.families_revoked_since", async move {
        Ok(RefreshTokens::find()
            .select_only()
            .column(refresh_tokens::Column::FamilyId)
            .filter(refresh_tokens::Column::RevokedAt.gte(since))
            .distinct()
            .into_tuple::<String>()
            .all(db)
            .await?)
    })
    .await
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
    traced(db, "refresh_tokens.purge_dead_families", async move {
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
    })
    .await
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

/// A live session of a user: its family, read from the family's live (not rotated, not revoked,
/// not expired at `now`) token, plus when the family started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// The `family_id`.
    pub id: String,
    /// When the family started: the smallest `issued_at` of its rows (Unix seconds).
    pub created_at: i64,
    /// The `issued_at` of the live token: the last login or refresh (Unix seconds).
    pub last_used_at: i64,
    /// The `expires_at` of the live token (Unix seconds).
    pub expires_at: i64,
    pub client_address: Option<String>,
    pub user_agent: Option<String>,
}

/// Every live session of `user_id` at `now` (Unix seconds), newest `last_used_at` first.
///
/// One statement: the live heads are found by `idx_refresh_tokens_user_revoked (user_id,
/// revoked_at)`, and each one's family start by a subquery on `idx_refresh_tokens_family_issued
/// (family_id, issued_at)`, so no list of ids is sent back (a user may have many sessions).
pub async fn live_sessions(db: &impl ConnectionTrait, user_id: i64, now: i64) -> Result<Vec<SessionRow>, StoreError> {
    traced(db, "refresh_tokens.live_sessions", async move {
        let rows = db.query_all(&live_sessions_query(user_id, now)).await?;
        let mut sessions: Vec<SessionRow> = Vec::with_capacity(rows.len());
        let mut families = std::collections::HashSet::with_capacity(rows.len());
        for row in rows {
            let session = SessionRow {
                id: row.try_get("", "family_id")?,
                created_at: row.try_get("", "created_at")?,
                last_used_at: row.try_get("", "issued_at")?,
                expires_at: row.try_get("", "expires_at")?,
                client_address: row.try_get("", "client_address")?,
                user_agent: row.try_get("", "user_agent")?,
            };
            // A family has one live token; should a race ever leave two, the newest (read first)
            // stands for it.
            if families.insert(session.id.clone()) {
                sessions.push(session);
            }
        }
        Ok(sessions)
    })
    .await
}

/// The statement of [`live_sessions`] (public for the tests that check its plan).
pub fn live_sessions_query(user_id: i64, now: i64) -> sea_orm::sea_query::SelectStatement {
    let (head, family) = (Alias::new("head"), Alias::new("family"));
    let family_start = Query::select()
        .expr(Expr::col((family.clone(), refresh_tokens::Column::IssuedAt)).min())
        .from_as(RefreshTokens, family.clone())
        .and_where(
            Expr::col((family, refresh_tokens::Column::FamilyId))
                .equals((head.clone(), refresh_tokens::Column::FamilyId)),
        )
        .to_owned();
    let column = |name: refresh_tokens::Column| Expr::col((head.clone(), name));
    Query::select()
        .exprs([
            column(refresh_tokens::Column::FamilyId),
            column(refresh_tokens::Column::IssuedAt),
            column(refresh_tokens::Column::ExpiresAt),
            column(refresh_tokens::Column::ClientAddress),
            column(refresh_tokens::Column::UserAgent),
        ])
        .expr_as(family_start, Alias::new("created_at"))
        .from_as(RefreshTokens, head.clone())
        .and_where(column(refresh_tokens::Column::UserId).eq(user_id))
        .and_where(column(refresh_tokens::Column::RevokedAt).is_null())
        .and_where(column(refresh_tokens::Column::RotatedAt).is_null())
        .and_where(column(refresh_tokens::Column::ExpiresAt).gt(now))
        .order_by((head.clone(), refresh_tokens::Column::IssuedAt), Order::Desc)
        .order_by((head, refresh_tokens::Column::FamilyId), Order::Asc)
        .to_owned()
}

/// The families of `user_id` that still have an unrevoked row (distinct), except `except`.
/// Served by `idx_refresh_tokens_user_revoked`.
pub async fn unrevoked_families(
    db: &impl ConnectionTrait,
    user_id: i64,
    except: Option<&str>,
) -> Result<Vec<String>, StoreError> {
    traced(db, "refresh_tokens.unrevoked_families", async move {
        let mut select = RefreshTokens::find()
            .select_only()
            .column(refresh_tokens::Column::FamilyId)
            .filter(refresh_tokens::Column::UserId.eq(user_id))
            .filter(refresh_tokens::Column::RevokedAt.is_null())
            .distinct()
            .order_by_asc(refresh_tokens::Column::FamilyId);
        if let Some(except) = except {
            select = select.filter(refresh_tokens::Column::FamilyId.ne(except));
        }
        Ok(select.into_tuple::<String>().all(db).await?)
    })
    .await
}

/// Whether `family_id` belongs to `user_id` and has an unrevoked row. Served by the
/// `(family_id, issued_at)` index.
pub async fn family_is_live_for(db: &impl ConnectionTrait, family_id: &str, user_id: i64) -> Result<bool, StoreError> {
    traced(db, "refresh_tokens.family_is_live_for", async move {
        let found = RefreshTokens::find()
            .select_only()
            .column(refresh_tokens::Column::Id)
            .filter(refresh_tokens::Column::FamilyId.eq(family_id))
            .filter(refresh_tokens::Column::UserId.eq(user_id))
            .filter(refresh_tokens::Column::RevokedAt.is_null())
            .into_tuple::<String>()
            .one(db)
            .await?;
        Ok(found.is_some())
    })
    .await
}
