//! The one place that turns database errors into what the service can act on.

use std::future::Future;

use sea_orm::{DbErr, RuntimeErr, SqlErr};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique key on `users.username` or `users.username_canonical` refused the row.
    #[error("username already taken")]
    UsernameTaken,
    /// The unique key on `service_clients.client_id` refused the row.
    #[error("client id already taken")]
    ClientIdTaken,
    /// A row refers to a user that no longer exists (deleted meanwhile).
    #[error("the owning user no longer exists")]
    OwnerGone,
    /// The database could not be reached, gave no connection in time, or kept refusing a
    /// transaction for conflicts; worth a retry.
    #[error("database unavailable")]
    Unavailable(#[source] DbErr),
    /// Anything else: a bug or a broken schema. Logged in full, never shown to clients.
    #[error("database error")]
    Database(#[source] DbErr),
}

impl StoreError {
    /// Classifies a sea-orm error; `taken` is what a unique-key violation on this statement can
    /// only mean (`UsernameTaken` for user inserts), `None` where none is expected.
    pub(crate) fn classify(err: DbErr, taken: Option<Self>) -> Self {
        match (err.sql_err(), taken) {
            (Some(SqlErr::UniqueConstraintViolation(_)), Some(taken)) => return taken,
            (Some(SqlErr::ForeignKeyConstraintViolation(_)), _) => return Self::OwnerGone,
            _ => {}
        }
        if is_transient(&err) || is_conflict(&err) {
            return Self::Unavailable(err);
        }
        Self::Database(err)
    }
}

impl From<DbErr> for StoreError {
    fn from(err: DbErr) -> Self {
        Self::classify(err, None)
    }
}

/// Runs `transaction` again (up to 3 tries in all) when the database aborted it for a
/// serialization failure or a deadlock, which InnoDB's gap locks produce under honest load.
pub(crate) async fn retry_conflicts<T, F, Fut>(mut transaction: F) -> Result<T, DbErr>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, DbErr>>,
{
    let mut tries = 1;
    loop {
        match transaction().await {
            Err(err) if tries < 3 && is_conflict(&err) => {
                tracing::debug!(error = %err, tries, "transaction conflict; retrying");
                tries += 1;
            }
            result => return result,
        }
    }
}

/// The SQLSTATE of a database error, if the driver gave one.
fn sqlstate(err: &DbErr) -> Option<String> {
    match err {
        DbErr::Exec(RuntimeErr::SqlxError(sqlx_err))
        | DbErr::Query(RuntimeErr::SqlxError(sqlx_err))
        | DbErr::Conn(RuntimeErr::SqlxError(sqlx_err)) => {
            sqlx_err.as_database_error().and_then(|db_err| db_err.code()).map(|code| code.into_owned())
        }
        _ => None,
    }
}

/// Serialization failure (40001: also MySQL's deadlock) or PostgreSQL's deadlock (40P01).
fn is_conflict(err: &DbErr) -> bool {
    matches!(sqlstate(err).as_deref(), Some("40001" | "40P01"))
}

/// Connection-level failures, a server shutting down or starting, and SQLite's busy/locked
/// after its busy timeout: conditions of the moment rather than bugs.
fn is_transient(err: &DbErr) -> bool {
    if matches!(err, DbErr::ConnectionAcquire(_) | DbErr::Conn(_)) {
        return true;
    }
    if let Some(code) = sqlstate(err) {
        // 08xxx connection exceptions; 57P01/57P02/57P03 PostgreSQL shutting down or starting;
        // SQLite's numeric SQLITE_BUSY (5, and BUSY_RECOVERY 261, BUSY_SNAPSHOT 517,
        // BUSY_TIMEOUT 773) and SQLITE_LOCKED (6): sqlx gives SQLite's code, so the message
        // check below never sees those.
        return code.starts_with("08")
            || matches!(code.as_str(), "57P01" | "57P02" | "57P03" | "5" | "261" | "517" | "773" | "6");
    }
    match err {
        DbErr::Exec(runtime) | DbErr::Query(runtime) => {
            let text = runtime.to_string();
            ["database is locked", "database is busy", "pool timed out", "error communicating with database"]
                .iter()
                .any(|needle| text.contains(needle))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::time::Duration;

    use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, TransactionTrait};

    use super::StoreError;

    async fn sqlite(url: &str) -> DatabaseConnection {
        let mut options = ConnectOptions::new(url.to_owned());
        options.max_connections(1).sqlx_logging(false).map_sqlx_sqlite_opts(|opts| {
            opts.create_if_missing(true)
                .journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .busy_timeout(Duration::ZERO)
        });
        Database::connect(options).await.unwrap()
    }

    /// SQLite's "database is locked" (SQLITE_BUSY, which sqlx reports by its numeric code) is a
    /// condition of the moment: UNAVAILABLE to the client, never an internal error.
    #[tokio::test]
    async fn a_busy_sqlite_database_is_unavailable() {
        let path = std::env::temp_dir().join(format!("model-busy-{}.db", std::process::id()));
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let (holder, other) = (sqlite(&url).await, sqlite(&url).await);
        holder.execute_unprepared("CREATE TABLE t (x INTEGER)").await.unwrap();
        let txn = holder.begin().await.unwrap();
        txn.execute_unprepared("INSERT INTO t VALUES (1)").await.unwrap();
        let err = other.execute_unprepared("INSERT INTO t VALUES (2)").await.expect_err("the write lock is held");
        let classified = StoreError::from(err);
        assert!(matches!(classified, StoreError::Unavailable(_)), "{classified:?}");
        txn.rollback().await.unwrap();
        drop((holder, other));
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }
}
