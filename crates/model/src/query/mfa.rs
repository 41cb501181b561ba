//! The second factor's rows (issue 19): an account's authenticator (`user_totp`), its recovery
//! codes, and the login challenges waiting for a code.
//!
//! Every "once only" rule is one conditional UPDATE whose WHERE says "not yet", so the
//! database decides between racing replicas and the caller learns from the affected-row count
//! whether it was the one: PostgreSQL and InnoDB re-check the WHERE after taking the row lock,
//! SQLite takes its write lock before reading. (sqlx asks MySQL for matched rather than
//! changed rows, so the count means the same on every backend.)
//!
//! Times of new rows are this process's clock; later writes of `DATETIME`s take the database's,
//! as for accounts. Challenge times are Unix seconds given by the caller, who compares them
//! with the challenge token's `exp`.

use super::traced;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr, EntityTrait,
    QueryFilter, QuerySelect, Set, SqlErr, TransactionTrait,
    sea_query::{Condition, Expr, ExprTrait},
};

use super::database_datetime_now;
use crate::{
    entity::{
        mfa_challenges::{self, Entity as MfaChallenges},
        recovery_codes::{self, Entity as RecoveryCodes},
        user_totp::{self, Entity as UserTotp},
    },
    error::{StoreError, retry_conflicts},
};

/// A recovery code as stored: its keyed hash and the id of the key that made it. No `Debug`,
/// so a hash cannot reach a log through it.
#[derive(Clone)]
pub struct RecoveryCodeHash {
    /// The sealing key the hash was derived under (at most 64 characters).
    pub key_id: String,
    /// Lowercase hex HMAC-SHA256 of the code (64 characters).
    pub code_hash: String,
}

/// Begins (or begins again) the enrolment of an authenticator whose secret is `secret_sealed`:
/// the account's unconfirmed row is created or replaced, its last used step forgotten.
/// `false` when the account already has a confirmed factor; nothing is written then (it must
/// be disabled first). [`StoreError::OwnerGone`] when the account does not exist.
pub async fn begin_enrolment(db: &DatabaseConnection, user_id: i64, secret_sealed: &str) -> Result<bool, StoreError> {
    traced(db, "mfa.begin_enrolment", async move {
        Ok(retry_conflicts(|| begin_enrolment_once(db, user_id, secret_sealed)).await?)
    })
    .await
}

async fn begin_enrolment_once(db: &DatabaseConnection, user_id: i64, secret_sealed: &str) -> Result<bool, DbErr> {
    if restart_enrolment(db, user_id, secret_sealed).await? {
        return Ok(true);
    }
    let now = chrono::Utc::now().naive_utc();
    let row = user_totp::ActiveModel {
        user_id: Set(user_id),
        secret_sealed: Set(secret_sealed.to_owned()),
        created_at: Set(now),
        confirmed_at: Set(None),
        last_used_step: Set(None),
    };
    match row.insert(db).await {
        Ok(_) => Ok(true),
        // A row appeared since the UPDATE looked: a racing enrolment (this one replaces it, the
        // last one wins) or a confirmed factor (refused).
        Err(err) if is_unique_violation(&err) => restart_enrolment(db, user_id, secret_sealed).await,
        Err(err) => Err(err),
    }
}

/// Replaces the secret of the account's unconfirmed row; `false` when it has none.
async fn restart_enrolment(db: &DatabaseConnection, user_id: i64, secret_sealed: &str) -> Result<bool, DbErr> {
    let restarted = UserTotp::update_many()
        .col_expr(user_totp::Column::SecretSealed, Expr::value(secret_sealed))
        .col_expr(user_totp::Column::CreatedAt, database_datetime_now(db.get_database_backend()))
        .col_expr(user_totp::Column::LastUsedStep, Expr::value(Option::<i64>::None))
        .filter(user_totp::Column::UserId.eq(user_id))
        .filter(user_totp::Column::ConfirmedAt.is_null())
        .exec(db)
        .await?;
    Ok(restarted.rows_affected == 1)
}

/// Activates the account's begun enrolment, in one transaction: `confirmed_at` is set,
/// `used_step` (the step of the code that confirmed it) becomes the last used step, and the
/// account's recovery codes become `codes`. Only if the unconfirmed row still holds
/// `secret_sealed`, the secret the code was checked against: `false` when an enrolment begun
/// meanwhile replaced it, or the factor is confirmed already; nothing is written then.
pub async fn confirm(
    db: &DatabaseConnection,
    user_id: i64,
    secret_sealed: &str,
    used_step: i64,
    codes: &[RecoveryCodeHash],
) -> Result<bool, StoreError> {
    traced(db, "mfa.confirm", async move {
        Ok(retry_conflicts(|| confirm_once(db, user_id, secret_sealed, used_step, codes)).await?)
    })
    .await
}

async fn confirm_once(
    db: &DatabaseConnection,
    user_id: i64,
    secret_sealed: &str,
    used_step: i64,
    codes: &[RecoveryCodeHash],
) -> Result<bool, DbErr> {
    let txn = db.begin().await?;
    let confirmed = UserTotp::update_many()
        .col_expr(user_totp::Column::ConfirmedAt, database_datetime_now(db.get_database_backend()))
        .col_expr(user_totp::Column::LastUsedStep, Expr::value(used_step))
        .filter(user_totp::Column::UserId.eq(user_id))
        .filter(user_totp::Column::SecretSealed.eq(secret_sealed))
        .filter(user_totp::Column::ConfirmedAt.is_null())
        .exec(&txn)
        .await?
        .rows_affected
        == 1;
    if !confirmed {
        txn.rollback().await?;
        return Ok(false);
    }
    let written = write_recovery_codes(&txn, user_id, codes).await;
    finish(txn, written).await.map(|()| true)
}

/// The account's authenticator, confirmed or only begun.
pub async fn find(db: &impl ConnectionTrait, user_id: i64) -> Result<Option<user_totp::Model>, StoreError> {
    traced(db, "mfa.find", async move { Ok(UserTotp::find_by_id(user_id).one(db).await?) }).await
}

/// Records that a code of time step `step` was accepted for the account's confirmed factor,
/// if no code of this step or a later one was: `false` means a replay (or no confirmed
/// factor), and the code must be refused. One statement, so of replicas racing with the same
/// code exactly one gets `true`.
pub async fn record_step(db: &impl ConnectionTrait, user_id: i64, step: i64) -> Result<bool, StoreError> {
    traced(db, "mfa.record_step", async move {
        let recorded = UserTotp::update_many()
            .col_expr(user_totp::Column::LastUsedStep, Expr::value(step))
            .filter(user_totp::Column::UserId.eq(user_id))
            .filter(user_totp::Column::ConfirmedAt.is_not_null())
            .filter(user_totp::Column::LastUsedStep.is_null().or(user_totp::Column::LastUsedStep.lt(step)))
            .exec(db)
            .await?;
        Ok(recorded.rows_affected == 1)
    })
    .await
}

/// Removes the account's authenticator, confirmed or begun, and its recovery codes, in one
/// transaction (disabling the second factor, or an operator's reset). `true` when there was
/// an authenticator.
pub async fn delete(db: &DatabaseConnection, user_id: i64) -> Result<bool, StoreError> {
    traced(db, "mfa.delete", async move { Ok(retry_conflicts(|| delete_once(db, user_id)).await?) }).await
}

async fn delete_once(db: &DatabaseConnection, user_id: i64) -> Result<bool, DbErr> {
    let txn = db.begin().await?;
    let deleted = async {
        RecoveryCodes::delete_many().filter(recovery_codes::Column::UserId.eq(user_id)).exec(&txn).await?;
        Ok(UserTotp::delete_by_id(user_id).exec(&txn).await?.rows_affected == 1)
    }
    .await;
    finish(txn, deleted).await
}

/// Replaces every recovery code of the account, used or not, by `codes`, in one transaction.
pub async fn replace_recovery_codes(
    db: &DatabaseConnection,
    user_id: i64,
    codes: &[RecoveryCodeHash],
) -> Result<(), StoreError> {
    traced(db, "mfa.replace_recovery_codes", async move {
        Ok(retry_conflicts(|| async {
            let txn = db.begin().await?;
            let written = write_recovery_codes(&txn, user_id, codes).await;
            finish(txn, written).await
        })
        .await?)
    })
    .await
}

async fn write_recovery_codes(
    txn: &impl ConnectionTrait,
    user_id: i64,
    codes: &[RecoveryCodeHash],
) -> Result<(), DbErr> {
    RecoveryCodes::delete_many().filter(recovery_codes::Column::UserId.eq(user_id)).exec(txn).await?;
    if codes.is_empty() {
        return Ok(());
    }
    let now = chrono::Utc::now().naive_utc();
    let rows = codes.iter().map(|code| recovery_codes::ActiveModel {
        user_id: Set(user_id),
        code_hash: Set(code.code_hash.clone()),
        key_id: Set(code.key_id.clone()),
        created_at: Set(now),
        used_at: Set(None),
        ..Default::default()
    });
    RecoveryCodes::insert_many(rows).exec(txn).await?;
    Ok(())
}

/// Uses up the account's unused recovery code that is one of `candidates` (the code given,
/// hashed under each key of the ring, since the stored hash may be under an older one).
/// `false` when none matches: a wrong code, or one used already. One statement, so of
/// replicas racing with the same code exactly one gets `true`.
pub async fn use_recovery_code(
    db: &impl ConnectionTrait,
    user_id: i64,
    candidates: &[RecoveryCodeHash],
) -> Result<bool, StoreError> {
    traced(db, "mfa.use_recovery_code", async move {
        if candidates.is_empty() {
            return Ok(false);
        }
        let any_candidate = candidates.iter().fold(Condition::any(), |any, candidate| {
            any.add(
                recovery_codes::Column::KeyId
                    .eq(candidate.key_id.as_str())
                    .and(recovery_codes::Column::CodeHash.eq(candidate.code_hash.as_str())),
            )
        });
        let used = RecoveryCodes::update_many()
            .col_expr(recovery_codes::Column::UsedAt, database_datetime_now(db.get_database_backend()))
            .filter(recovery_codes::Column::UserId.eq(user_id))
            .filter(recovery_codes::Column::UsedAt.is_null())
            .filter(any_candidate)
            .exec(db)
            .await?;
        Ok(used.rows_affected > 0)
    })
    .await
}

/// Records a login challenge of the account, open until `expires_at` (Unix seconds).
/// [`StoreError::OwnerGone`] when the account is gone.
pub async fn create_challenge(
    db: &impl ConnectionTrait,
    id: &str,
    user_id: i64,
    expires_at: i64,
) -> Result<(), StoreError> {
    traced(db, "mfa.create_challenge", async move {
        let row = mfa_challenges::ActiveModel {
            id: Set(id.to_owned()),
            user_id: Set(user_id),
            expires_at: Set(expires_at),
            spent_at: Set(None),
            failed_attempts: Set(0),
        };
        row.insert(db).await?;
        Ok(())
    })
    .await
}

pub async fn find_challenge(db: &impl ConnectionTrait, id: &str) -> Result<Option<mfa_challenges::Model>, StoreError> {
    traced(db, "mfa.find_challenge", async move { Ok(MfaChallenges::find_by_id(id.to_owned()).one(db).await?) }).await
}

/// Uses up the challenge at `now` (Unix seconds) if it is open: neither spent nor expired.
/// `false` otherwise. One statement, so of replicas racing with one challenge exactly one
/// gets `true`.
pub async fn spend_challenge(db: &impl ConnectionTrait, id: &str, now: i64) -> Result<bool, StoreError> {
    traced(db, "mfa.spend_challenge", async move {
        let spent = MfaChallenges::update_many()
            .col_expr(mfa_challenges::Column::SpentAt, Expr::value(now))
            .filter(mfa_challenges::Column::Id.eq(id))
            .filter(mfa_challenges::Column::SpentAt.is_null())
            .filter(mfa_challenges::Column::ExpiresAt.gt(now))
            .exec(db)
            .await?;
        Ok(spent.rows_affected == 1)
    })
    .await
}

/// Counts a wrong code given with the challenge, unless it is spent already; the
/// `max_failures`-th one also spends it (at `now`, Unix seconds), so the user starts over.
/// Returns the row as this call left it (`None`: no such challenge). One UPDATE, then the read
/// in the same transaction, under the UPDATE's row lock: racing wrong codes are each counted
/// once, and no more than `max_failures` are.
pub async fn count_failure(
    db: &DatabaseConnection,
    id: &str,
    max_failures: u32,
    now: i64,
) -> Result<Option<mfa_challenges::Model>, StoreError> {
    traced(db, "mfa.count_failure", async move {
        Ok(retry_conflicts(|| count_failure_once(db, id, max_failures, now)).await?)
    })
    .await
}

async fn count_failure_once(
    db: &DatabaseConnection,
    id: &str,
    max_failures: u32,
    now: i64,
) -> Result<Option<mfa_challenges::Model>, DbErr> {
    let attempts = mfa_challenges::Column::FailedAttempts;
    // `spent_at` first: MySQL assigns left to right and lets later expressions read the values
    // already assigned, so both expressions must read `failed_attempts` before it grows (as
    // PostgreSQL and SQLite always do).
    let spent_at = Expr::case(Expr::col(attempts).add(1).gte(max_failures), Expr::value(now))
        .finally(Expr::col(mfa_challenges::Column::SpentAt));
    let txn = db.begin().await?;
    let row = async {
        MfaChallenges::update_many()
            .col_expr(mfa_challenges::Column::SpentAt, spent_at.into())
            .col_expr(attempts, Expr::col(attempts).add(1))
            .filter(mfa_challenges::Column::Id.eq(id))
            .filter(mfa_challenges::Column::SpentAt.is_null())
            .exec(&txn)
            .await?;
        MfaChallenges::find_by_id(id.to_owned()).one(&txn).await
    }
    .await;
    finish(txn, row).await
}

/// Deletes up to `batch` challenges that expired before `cutoff` (Unix seconds); returns how
/// many went. Chosen by the `expires_at` index, then deleted by id, which every backend can
/// bound (as the refresh-token purge does).
pub async fn purge_expired_challenges(db: &impl ConnectionTrait, cutoff: i64, batch: u64) -> Result<u64, StoreError> {
    traced(db, "mfa.purge_expired_challenges", async move {
        let doomed: Vec<String> = MfaChallenges::find()
            .select_only()
            .column(mfa_challenges::Column::Id)
            .filter(mfa_challenges::Column::ExpiresAt.lt(cutoff))
            .limit(batch)
            .into_tuple()
            .all(db)
            .await?;
        if doomed.is_empty() {
            return Ok(0);
        }
        let deleted = retry_conflicts(|| async {
            MfaChallenges::delete_many().filter(mfa_challenges::Column::Id.is_in(doomed.clone())).exec(db).await
        })
        .await?;
        Ok(deleted.rows_affected)
    })
    .await
}

/// Commits `txn` after `work` succeeded, or rolls it back at once. A rollback left to the
/// transaction's drop runs only when the pool next tests the connection, in a task of its own,
/// and until then the transaction keeps its locks (InnoDB's gap locks too).
async fn finish<T>(txn: DatabaseTransaction, work: Result<T, DbErr>) -> Result<T, DbErr> {
    match work {
        Ok(value) => txn.commit().await.map(|()| value),
        Err(err) => {
            // The statement's error is the one to report; a rollback that fails too leaves a
            // broken connection, which the pool discards.
            txn.rollback().await.ok();
            Err(err)
        }
    }
}

fn is_unique_violation(err: &DbErr) -> bool {
    matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
}

/// Spends every open challenge of the account at `now` (Unix seconds): a login waiting for its
/// code must not outlive the end of the account's sessions (a password change, a disabling, an
/// operator's reset), or it would start a session after them. Returns how many were open.
pub async fn spend_challenges_of(db: &impl ConnectionTrait, user_id: i64, now: i64) -> Result<u64, StoreError> {
    traced(db, "mfa.spend_challenges_of", async move {
        let spent = MfaChallenges::update_many()
            .col_expr(mfa_challenges::Column::SpentAt, Expr::value(now))
            .filter(mfa_challenges::Column::UserId.eq(user_id))
            .filter(mfa_challenges::Column::SpentAt.is_null())
            .exec(db)
            .await?;
        Ok(spent.rows_affected)
    })
    .await
}

/// How many recovery codes of the account are still unused.
pub async fn unused_recovery_codes(db: &impl ConnectionTrait, user_id: i64) -> Result<u64, StoreError> {
    traced(db, "mfa.unused_recovery_codes", async move {
        use sea_orm::PaginatorTrait;
        Ok(RecoveryCodes::find()
            .filter(recovery_codes::Column::UserId.eq(user_id))
            .filter(recovery_codes::Column::UsedAt.is_null())
            .count(db)
            .await?)
    })
    .await
}
