//! Opening the database pool: migrated or checked to be, with errors that never show the
//! URL's password; and the pool's gauges for `/metrics`.

use std::time::Duration;

use model::DatabaseConnection;

use crate::{config::Config, metrics};

/// Opens the pool and checks that no migration is pending (someone else runs them).
pub async fn connect_migrated(config: &Config) -> anyhow::Result<(DatabaseConnection, model::QueryCounter)> {
    let (db, queries) = connect(config).await?;
    let pending = model::migration::pending(&db)
        .await
        .map_err(|err| ConnectError(format!("reading migrations: {}", scrub(config, &err))))?;
    if pending > 0 {
        anyhow::bail!(
            "{pending} database migration(s) pending and database.migrate_on_start is off: run `auth-svc migrate` first"
        );
    }
    Ok((db, queries))
}

/// Opens the pool and applies pending migrations.
pub async fn connect_and_migrate(config: &Config) -> anyhow::Result<(DatabaseConnection, model::QueryCounter)> {
    let (db, queries) = connect(config).await?;
    model::migration::run(&db).await.map_err(|err| anyhow::anyhow!("applying migrations: {}", scrub(config, &err)))?;
    Ok((db, queries))
}

/// Opens the pool the calls use (`database.max_connections`).
async fn connect(config: &Config) -> anyhow::Result<(DatabaseConnection, model::QueryCounter)> {
    open(config, config.database.max_connections.get()).await
}

/// Opens the small pool of the background tasks (polls and purge): they never wait behind
/// calls for a connection, and calls' query counts stay theirs.
pub async fn connect_background(config: &Config) -> anyhow::Result<DatabaseConnection> {
    Ok(open(config, 2).await?.0)
}

async fn open(config: &Config, max_connections: u32) -> anyhow::Result<(DatabaseConnection, model::QueryCounter)> {
    let pool = model::PoolOptions {
        max_connections,
        min_connections: 0,
        acquire_timeout: Duration::from_millis(config.database.acquire_timeout_ms),
    };
    model::connect(&config.database_url, &pool).await.map_err(|err| {
        ConnectError(format!(
            "cannot open the database ({}): {}",
            redact_url(&config.database_url),
            scrub(config, &err)
        ))
        .into()
    })
}

/// The database could not be reached (the CLI exits with its "unavailable" code for it).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConnectError(String);

/// Driver errors quote the URL they were given; only the redacted form may be printed.
fn scrub(config: &Config, err: &dyn std::fmt::Display) -> String {
    err.to_string().replace(&config.database_url, &redact_url(&config.database_url))
}

/// A database URL without its password, for messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            let user = credentials.split(':').next().unwrap_or_default();
            format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// (open, idle) connections of the database pool, whichever backend it is.
pub fn pool_probe(db: &DatabaseConnection) -> metrics::PoolProbe {
    use sea_orm::DatabaseBackend;
    fn usage(size: u32, idle: usize) -> (i64, i64) {
        (i64::from(size), i64::try_from(idle).unwrap_or(i64::MAX))
    }
    let db = db.clone();
    Box::new(move || match db.get_database_backend() {
        DatabaseBackend::Postgres => {
            let pool = db.get_postgres_connection_pool();
            usage(pool.size(), pool.num_idle())
        }
        DatabaseBackend::MySql => {
            let pool = db.get_mysql_connection_pool();
            usage(pool.size(), pool.num_idle())
        }
        _ => {
            let pool = db.get_sqlite_connection_pool();
            usage(pool.size(), pool.num_idle())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn urls_lose_their_password() {
        assert_eq!(redact_url("postgres://app:hunter2@db:5432/auth"), "postgres://app:***@db:5432/auth");
        assert_eq!(redact_url("sqlite://./data/auth.db?mode=rwc"), "sqlite://./data/auth.db?mode=rwc");
    }
}
