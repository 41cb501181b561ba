//! Opening the database pool with the settings each backend needs.

use std::{
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr};

/// Pool sizing and timeouts, from the service's config.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    pub max_connections: u32,
    pub min_connections: u32,
    /// How long a call waits for a connection (or a new one to open) before giving up.
    pub acquire_timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self { max_connections: 10, min_connections: 0, acquire_timeout: Duration::from_secs(3) }
    }
}

/// Counts the statements a connection pool sent (for metrics, and for tests that prove a
/// cached path makes no query).
#[derive(Clone, Debug, Default)]
pub struct QueryCounter(Arc<AtomicU64>);

impl QueryCounter {
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Connects to `url` (`sqlite://…`, `postgres://…` or `mysql://…`).
///
/// For SQLite the file and its directory are created when missing, and the database runs in
/// WAL mode with a busy timeout so concurrent writers queue instead of failing at once.
pub async fn connect(url: &str, pool: &PoolOptions) -> Result<(DatabaseConnection, QueryCounter), DbErr> {
    let sqlite_dir = sqlite_file_path(url).and_then(|path| Path::new(path).parent());
    if let Some(dir) = sqlite_dir.filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|err| DbErr::Custom(format!("cannot create {}: {err}", dir.display())))?;
    }
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(pool.max_connections)
        .min_connections(pool.min_connections)
        .acquire_timeout(pool.acquire_timeout)
        .connect_timeout(pool.acquire_timeout)
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(|opts| {
            use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
            opts.create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(5))
                .foreign_keys(true)
        });
    let mut db = Database::connect(options).await?;
    let queries = QueryCounter::default();
    let counter = queries.clone();
    db.set_metric_callback(move |_| {
        counter.0.fetch_add(1, Ordering::Relaxed);
    });
    Ok((db, queries))
}

/// The file part of a `sqlite://` URL, or `None` for other backends and in-memory databases.
fn sqlite_file_path(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && path != ":memory:").then_some(path)
}

#[cfg(test)]
mod tests {
    use super::sqlite_file_path;

    #[test]
    fn finds_the_file_of_sqlite_urls_only() {
        assert_eq!(sqlite_file_path("sqlite://./data/auth.db?mode=rwc"), Some("./data/auth.db"));
        assert_eq!(sqlite_file_path("sqlite:/tmp/x.db"), Some("/tmp/x.db"));
        assert_eq!(sqlite_file_path("sqlite::memory:"), None);
        assert_eq!(sqlite_file_path("postgres://localhost/test"), None);
    }
}
