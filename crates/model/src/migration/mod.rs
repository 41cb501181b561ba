//! Schema migrations, applied at start-up and by `auth-svc migrate`.
//! Never edit a released migration: add a new one.

// Public so tests of one migration can start from the schema before it (`Migrator::up(db, Some(n))`).
pub use sea_orm_migration::MigratorTrait;
use sea_orm_migration::prelude::*;

mod m20261122_000001_create_users;
mod m20261122_000002_create_refresh_tokens;
mod m20261201_000003_username_canonical;
mod m20261201_000004_refresh_token_indexes;
mod m20261201_000005_users_updated_at_index;

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
        ]
    }
}

/// Applies every pending migration.
pub async fn run(db: &sea_orm::DatabaseConnection) -> Result<(), DbErr> {
    Migrator::up(db, None).await
}

/// How many migrations have not been applied yet.
pub async fn pending(db: &sea_orm::DatabaseConnection) -> Result<usize, DbErr> {
    Ok(Migrator::get_pending_migrations(db).await?.len())
}
