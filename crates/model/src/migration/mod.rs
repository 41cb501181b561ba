//! Schema migrations, applied at start-up and by `auth-svc migrate`.
//! Never change what a released migration runs: add a new one. Its SQL is pinned per backend
//! in `applied_sql.txt` (see `tests.rs`), so the builders below may serve them all.

// Public so tests of one migration can start from the schema before it (`Migrator::up(db, Some(n))`).
pub use sea_orm_migration::MigratorTrait;
use sea_orm_migration::prelude::*;

mod m20261122_000001_create_users;
mod m20261122_000002_create_refresh_tokens;
mod m20261201_000003_username_canonical;
mod m20261201_000004_refresh_token_indexes;
mod m20261201_000005_users_updated_at_index;
mod m20261201_000006_accounts_and_sessions;
mod m20261201_000007_service_clients;
mod m20261201_000008_second_factor;
mod m20261202_000009_session_started_at;

#[cfg(test)]
mod tests;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261122_000001_create_users::Migration),
            Box::new(m20261122_000002_create_refresh_tokens::Migration),
            Box::new(m20261201_000003_username_canonical::Migration),
            Box::new(m20261201_000004_refresh_token_indexes::Migration),
            Box::new(m20261201_000005_users_updated_at_index::Migration),
            Box::new(m20261201_000006_accounts_and_sessions::Migration),
            Box::new(m20261201_000007_service_clients::Migration),
            Box::new(m20261201_000008_second_factor::Migration),
            Box::new(m20261202_000009_session_started_at::Migration),
        ]
    }
}

/// `CREATE TABLE IF NOT EXISTS table`, its text columns comparing exactly, byte for byte:
/// MySQL's default collations ignore case and accents, so there the table is `utf8mb4_bin`;
/// SQLite and PostgreSQL already compare exactly. (Usernames must, and the tables that hold
/// them or refer to them follow.)
fn new_table(manager: &SchemaManager, table: impl IntoTableRef) -> TableCreateStatement {
    let mut statement = Table::create();
    statement.table(table).if_not_exists();
    if manager.get_database_backend() == sea_orm::DatabaseBackend::MySql {
        statement.character_set("utf8mb4").collate("utf8mb4_bin");
    }
    statement
}

/// `CREATE INDEX IF NOT EXISTS name ON table (columns…)`, the form of every index here.
fn index<C: IntoIndexColumn>(
    name: &str,
    table: impl IntoTableRef,
    columns: impl IntoIterator<Item = C>,
) -> IndexCreateStatement {
    let mut index = Index::create();
    index.name(name).table(table).if_not_exists();
    for column in columns {
        index.col(column);
    }
    index
}

/// `DROP INDEX name` (MySQL also needs the table).
fn drop_index(name: &str, table: impl IntoTableRef) -> IndexDropStatement {
    Index::drop().name(name).table(table).to_owned()
}

/// Applies every pending migration.
pub async fn run(db: &sea_orm::DatabaseConnection) -> Result<(), DbErr> {
    Migrator::up(db, None).await
}

/// How many migrations have not been applied yet.
pub async fn pending(db: &sea_orm::DatabaseConnection) -> Result<usize, DbErr> {
    Ok(Migrator::get_pending_migrations(db).await?.len())
}
