//! Indexes behind the revocation poll, the purge and the session-lifetime check.
//!
//! - `revoked_at`: every replica asks "which sessions were revoked since …" every few hundred
//!   milliseconds, and the purge finds long-revoked rows by it.
//! - `expires_at`: the purge finds expired rows by it.
//! - `(family_id, issued_at)`: a family's start (its smallest `issued_at`) is read on every
//!   Refresh; the pair also serves every lookup by `family_id` alone, so the single-column
//!   family index goes (one index less to maintain on each insert).

use sea_orm_migration::prelude::*;

use super::{drop_index, index};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum RefreshTokens {
    Table,
    FamilyId,
    IssuedAt,
    ExpiresAt,
    RevokedAt,
}

const REVOKED_AT: &str = "idx_refresh_tokens_revoked_at";
const EXPIRES_AT: &str = "idx_refresh_tokens_expires_at";
const FAMILY_ISSUED: &str = "idx_refresh_tokens_family_issued";
const FAMILY: &str = "idx_refresh_tokens_family";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.create_index(index(REVOKED_AT, RefreshTokens::Table, [RefreshTokens::RevokedAt])).await?;
        manager.create_index(index(EXPIRES_AT, RefreshTokens::Table, [RefreshTokens::ExpiresAt])).await?;
        manager
            .create_index(index(
                FAMILY_ISSUED,
                RefreshTokens::Table,
                [RefreshTokens::FamilyId, RefreshTokens::IssuedAt],
            ))
            .await?;
        manager.drop_index(drop_index(FAMILY, RefreshTokens::Table)).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.create_index(index(FAMILY, RefreshTokens::Table, [RefreshTokens::FamilyId])).await?;
        for name in [FAMILY_ISSUED, EXPIRES_AT, REVOKED_AT] {
            manager.drop_index(drop_index(name, RefreshTokens::Table)).await?;
        }
        Ok(())
    }
}
