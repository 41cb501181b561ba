use sea_orm_migration::{prelude::*, schema::*};

use super::{index, m20261122_000001_create_users::Users, new_table};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum RefreshTokens {
    Table,
    Id,
    FamilyId,
    UserId,
    AccessJti,
    IssuedAt,
    ExpiresAt,
    RotatedAt,
    SuccessorId,
    RevokedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                new_table(manager, RefreshTokens::Table)
                    .col(string_len(RefreshTokens::Id, 36).primary_key())
                    .col(string_len(RefreshTokens::FamilyId, 36))
                    .col(big_integer(RefreshTokens::UserId))
                    .col(string_len(RefreshTokens::AccessJti, 36))
                    .col(big_integer(RefreshTokens::IssuedAt))
                    .col(big_integer(RefreshTokens::ExpiresAt))
                    .col(big_integer_null(RefreshTokens::RotatedAt))
                    .col(string_len_null(RefreshTokens::SuccessorId, 36))
                    .col(big_integer_null(RefreshTokens::RevokedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_refresh_tokens_user")
                            .from(RefreshTokens::Table, RefreshTokens::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // Revoking a family and listing a user's sessions are the two lookups besides the key.
        for (name, column) in
            [("idx_refresh_tokens_family", RefreshTokens::FamilyId), ("idx_refresh_tokens_user", RefreshTokens::UserId)]
        {
            manager.create_index(index(name, RefreshTokens::Table, [column])).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(RefreshTokens::Table).to_owned()).await
    }
}
