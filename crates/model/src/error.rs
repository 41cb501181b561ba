//! The one place that turns database errors into what the service can act on.

use sea_orm::{DbErr, SqlErr};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique key on `users.username` refused the row.
    #[error("username already taken")]
    UsernameTaken,
    /// The database could not be reached or gave no connection in time; worth a retry.
    #[error("database unavailable")]
    Unavailable(#[source] DbErr),
    /// Anything else: a bug or a broken schema. Logged in full, never shown to clients.
    #[error("database error")]
    Database(#[source] DbErr),
}

impl StoreError {
    /// Classifies a sea-orm error; `unique_means_taken` says whether a unique-key violation on
    /// this statement can only be the username (true for user inserts).
    pub(crate) fn classify(err: DbErr, unique_means_taken: bool) -> Self {
        if unique_means_taken && matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) {
            return Self::UsernameTaken;
        }
        if is_transient(&err) {
            return Self::Unavailable(err);
        }
        Self::Database(err)
    }
}

impl From<DbErr> for StoreError {
    fn from(err: DbErr) -> Self {
        Self::classify(err, false)
    }
}

/// Connection-level failures, and SQLite's "busy/locked" after its busy timeout, are
/// conditions of the moment rather than bugs.
fn is_transient(err: &DbErr) -> bool {
    match err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(runtime) | DbErr::Query(runtime) => {
            let text = runtime.to_string();
            text.contains("database is locked")
                || text.contains("database is busy")
                || text.contains("PoolTimedOut")
                || text.contains("pool timed out")
                || text.contains("Io(")
                || text.contains("error communicating with database")
        }
        _ => false,
    }
}
