//! What account management and the session list need (issue 14).
//!
//! - `users.disabled_at`: when an operator disabled the account (NULL: enabled).
//! - `users.last_login_at`: the last successful login, shown to operators.
//! - `idx_users_role_id (role, id)`: the operator's account list filtered by role, in id order
//!   (keyset pages).
//! - `refresh_tokens.client_address`, `refresh_tokens.user_agent`: recorded at login and copied
//!   to every successor, so a session can be recognised in the user's list.
//! - `idx_refresh_tokens_user_revoked (user_id, revoked_at)`: a user's unrevoked rows (the
//!   session list, "log out everywhere"). It also serves every lookup by `user_id` alone (and
//!   MySQL's foreign key), so the single-column user index goes, as the family one did in
//!   `m20261201_000004`.
//!
//! Every step is skipped when already done: MySQL commits each DDL statement on its own, so a
//! run that stopped halfway (a lock wait on a busy `users` table) must be able to run again.

use sea_orm_migration::{prelude::*, schema::*};

use super::{drop_index, index};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Users {
    Table,
    Id,
    Role,
    DisabledAt,
    LastLoginAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum RefreshTokens {
    Table,
    UserId,
    RevokedAt,
    ClientAddress,
    UserAgent,
}

const USERS_ROLE_ID: &str = "idx_users_role_id";
const REFRESH_TOKENS_USER_REVOKED: &str = "idx_refresh_tokens_user_revoked";
/// Created by `m20261122_000002`; replaced by the pair above.
const REFRESH_TOKENS_USER: &str = "idx_refresh_tokens_user";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One ALTER TABLE per column: SQLite takes no more.
        add_column(manager, Users::Table, date_time_null(Users::DisabledAt)).await?;
        add_column(manager, Users::Table, date_time_null(Users::LastLoginAt)).await?;
        add_index(manager, USERS_ROLE_ID, Users::Table, [Users::Role, Users::Id]).await?;

        add_column(manager, RefreshTokens::Table, string_len_null(RefreshTokens::ClientAddress, 64)).await?;
        add_column(manager, RefreshTokens::Table, string_len_null(RefreshTokens::UserAgent, 256)).await?;
        let user_revoked = [RefreshTokens::UserId, RefreshTokens::RevokedAt];
        add_index(manager, REFRESH_TOKENS_USER_REVOKED, RefreshTokens::Table, user_revoked).await?;
        if manager.has_index(RefreshTokens::Table.to_string(), REFRESH_TOKENS_USER).await? {
            manager.drop_index(drop_index(REFRESH_TOKENS_USER, RefreshTokens::Table)).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Indexes first: SQLite cannot drop an indexed column. The user index comes back before
        // its replacement goes (MySQL's foreign key needs one of them).
        manager.create_index(index(REFRESH_TOKENS_USER, RefreshTokens::Table, [RefreshTokens::UserId])).await?;
        manager.drop_index(drop_index(REFRESH_TOKENS_USER_REVOKED, RefreshTokens::Table)).await?;
        for column in [RefreshTokens::UserAgent, RefreshTokens::ClientAddress] {
            manager.alter_table(Table::alter().table(RefreshTokens::Table).drop_column(column).to_owned()).await?;
        }
        manager.drop_index(drop_index(USERS_ROLE_ID, Users::Table)).await?;
        for column in [Users::LastLoginAt, Users::DisabledAt] {
            manager.alter_table(Table::alter().table(Users::Table).drop_column(column).to_owned()).await?;
        }
        Ok(())
    }
}

/// `ALTER TABLE table ADD COLUMN column`, unless a stopped run already added it.
async fn add_column(manager: &SchemaManager<'_>, table: impl Iden + 'static, column: ColumnDef) -> Result<(), DbErr> {
    if manager.has_column(table.to_string(), column.get_column_name()).await? {
        return Ok(());
    }
    manager.alter_table(Table::alter().table(table).add_column(column).to_owned()).await
}

/// `CREATE INDEX name ON table (columns…)`, unless it exists (MySQL has no `IF NOT EXISTS`
/// for indexes).
async fn add_index<C: IntoIndexColumn>(
    manager: &SchemaManager<'_>,
    name: &str,
    table: impl Iden + 'static,
    columns: impl IntoIterator<Item = C>,
) -> Result<(), DbErr> {
    if manager.has_index(table.to_string(), name).await? {
        return Ok(());
    }
    manager.create_index(index(name, table, columns)).await
}
