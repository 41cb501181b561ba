//! The queries auth-svc runs, one module per table (`mfa`: the three tables of the second factor).

use sea_orm::{DatabaseBackend, sea_query::Expr};

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
