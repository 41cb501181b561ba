//! The queries auth-svc runs, one module per table (`mfa`: the three tables of the second factor).

use sea_orm::{ConnectionTrait, DatabaseBackend, sea_query::Expr};
use tracing::Instrument as _;

use crate::error::StoreError;

pub mod mfa;
pub mod refresh_tokens;
pub mod service_clients;
pub mod users;

/// The database's clock as a UTC `DATETIME`/`TIMESTAMP` value, stored as `updated_at` is: replica
/// clocks may differ, the database has one.
fn database_datetime_now(backend: DatabaseBackend) -> Expr {
    Expr::cust(match backend {
        DatabaseBackend::Postgres => "(CURRENT_TIMESTAMP AT TIME ZONE 'UTC')",
        DatabaseBackend::MySql => "UTC_TIMESTAMP(6)",
        // The text form sqlx writes for a `NaiveDateTime` ("%F %T%.f"), so the two compare.
        _ => "strftime('%Y-%m-%d %H:%M:%f', 'now')",
    })
}

/// Runs one store call in a span of its own, a child of the caller's (the gRPC call's): what
/// the traces show as the call's database time. Outside any span (the background polls and
/// purges) there is none, so they start no traces of their own. The span is named by the
/// operation alone: never a statement or its values (hashes, token ids, usernames).
async fn traced<T>(
    db: &impl ConnectionTrait,
    operation: &'static str,
    call: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    let span = if tracing::Span::current().is_none() {
        tracing::Span::none()
    } else {
        let system = match db.get_database_backend() {
            DatabaseBackend::Postgres => "postgresql",
            DatabaseBackend::MySql => "mysql",
            _ => "sqlite",
        };
        tracing::info_span!(
            "db",
            otel.name = operation,
            otel.kind = "client",
            db.operation.name = operation,
            db.system.name = system,
        )
    };
    call.instrument(span).await
}
