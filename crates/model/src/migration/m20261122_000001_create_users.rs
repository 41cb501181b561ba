use sea_orm_migration::{prelude::*, schema::*};

use super::new_table;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
pub(super) enum Users {
    Table,
    Id,
    Username,
    PasswordHash,
    Role,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                new_table(manager, Users::Table)
                    .col(big_pk_auto(Users::Id))
                    // 64 characters is the policy; 255 leaves room for multi-byte characters
                    // on backends that count bytes.
                    .col(string_len_uniq(Users::Username, 255))
                    .col(string_len(Users::PasswordHash, 255))
                    .col(string_len(Users::Role, 32).default("user"))
                    .col(date_time(Users::CreatedAt))
                    .col(date_time(Users::UpdatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Users::Table).to_owned()).await
    }
}
