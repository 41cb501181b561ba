//! What every replica's user-cache poll reads: "which accounts changed since …".
//!
//! - `users.updated_at`, indexed: every write to an account sets it (from the database's
//!   clock), and every replica asks for the rows changed since its last poll every few hundred
//!   milliseconds.
//! - `user_deletions`: a deleted row cannot answer "changed since", so deleting an account
//!   leaves its id, compared name and time here (one small row per deleted account), indexed
//!   by time for the same poll.

use sea_orm_migration::{prelude::*, schema::*};

use super::{drop_index, index, new_table};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum UserDeletions {
    Table,
    UserId,
    UsernameCanonical,
    DeletedAt,
}

const USERS_UPDATED_AT: &str = "idx_users_updated_at";
const DELETIONS_DELETED_AT: &str = "idx_user_deletions_deleted_at";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.create_index(index(USERS_UPDATED_AT, Users::Table, [Users::UpdatedAt])).await?;
        manager
            .create_table(
                new_table(manager, UserDeletions::Table)
                    // No foreign key: the account is gone. Ids are never reused.
                    .col(big_integer(UserDeletions::UserId).primary_key())
                    .col(string_len(UserDeletions::UsernameCanonical, 255))
                    .col(date_time(UserDeletions::DeletedAt))
                    .to_owned(),
            )
            .await?;
        manager.create_index(index(DELETIONS_DELETED_AT, UserDeletions::Table, [UserDeletions::DeletedAt])).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(UserDeletions::Table).to_owned()).await?;
        manager.drop_index(drop_index(USERS_UPDATED_AT, Users::Table)).await
    }
}
