//! `refresh_tokens.session_started_at` (issue 17): when the row's session (family) began, on
//! every row, so Refresh can judge `session_max_lifetime` from the presented row alone and
//! spend it with one conditional UPDATE instead of first reading the family's smallest
//! `issued_at`.
//!
//! Existing rows are backfilled from their family's first `issued_at`. The column stays
//! nullable: a row written by a replica that predates it has none, and Refresh then takes the
//! path that reads the family (which also gives the row's successor the column).
//!
//! The column is added after a probe (MySQL commits each DDL statement on its own, so a run that
//! stopped halfway must be able to run again), and the backfill only touches rows without it.

use sea_orm::{ConnectionTrait, DatabaseBackend};
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum RefreshTokens {
    Table,
    SessionStartedAt,
}

/// PostgreSQL and SQLite: a correlated subquery on the `(family_id, issued_at)` index.
const BACKFILL: &str = "UPDATE refresh_tokens SET session_started_at = (SELECT MIN(family.issued_at) \
     FROM refresh_tokens AS family WHERE family.family_id = refresh_tokens.family_id) \
     WHERE session_started_at IS NULL";

/// MySQL cannot read the table it updates in a subquery; a derived table is materialised first.
const BACKFILL_MYSQL: &str = "UPDATE refresh_tokens AS token JOIN (SELECT family_id, MIN(issued_at) AS started_at \
     FROM refresh_tokens GROUP BY family_id) AS family ON family.family_id = token.family_id \
     SET token.session_started_at = family.started_at WHERE token.session_started_at IS NULL";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let column = RefreshTokens::SessionStartedAt.to_string();
        if !manager.has_column(RefreshTokens::Table.to_string(), column).await? {
            let started = big_integer_null(RefreshTokens::SessionStartedAt);
            manager.alter_table(Table::alter().table(RefreshTokens::Table).add_column(started).to_owned()).await?;
        }
        let backfill = match manager.get_database_backend() {
            DatabaseBackend::MySql => BACKFILL_MYSQL,
            _ => BACKFILL,
        };
        manager.get_connection().execute_unprepared(backfill).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter().table(RefreshTokens::Table).drop_column(RefreshTokens::SessionStartedAt).to_owned(),
            )
            .await
    }
}
