//! The second factor (issue 19): TOTP with recovery codes, and the login step between them.
//!
//! - `user_totp`: at most one authenticator per account (`user_id` is the key). The secret is
//!   stored sealed (AEAD, `v1.<kid>.<…>`, at most 256 characters); `confirmed_at` NULL means
//!   enrolment has begun but no code has confirmed it yet, so the factor is not active.
//!   `last_used_step` is the TOTP time step of the last accepted code: the replay guard.
//! - `recovery_codes`: single-use codes, stored only as a keyed hash (`code_hash`, 64 hex
//!   characters) beside the id of the key that made it (`key_id`), so a code outlives a
//!   rotation of the active key. Unique per account (`uq_recovery_codes_user_code`); that key
//!   also serves every lookup by `user_id` and MySQL's foreign key.
//! - `mfa_challenges`: one row per login waiting for its second factor, keyed by the
//!   challenge token's `jti`. Times are Unix seconds, as for refresh tokens (they are copied
//!   into and compared with token claims). `idx_mfa_challenges_user` serves the cascade when an
//!   account goes, `idx_mfa_challenges_expires_at` the purge.
//! - `refresh_tokens.amr`: how the session was authenticated (`pwd`, or `pwd otp`), copied
//!   into the access tokens of the session.
//!
//! Every step is skipped when already done: the tables are `CREATE TABLE IF NOT EXISTS` with
//! their keys inside, and the indexes and the column are added after a probe, because MySQL
//! commits each DDL statement on its own and a run that stopped halfway must be able to run
//! again.

use sea_orm_migration::{prelude::*, schema::*};

use super::{index, m20261122_000001_create_users::Users, new_table};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum UserTotp {
    Table,
    UserId,
    SecretSealed,
    CreatedAt,
    ConfirmedAt,
    LastUsedStep,
}

#[derive(DeriveIden)]
enum RecoveryCodes {
    Table,
    Id,
    UserId,
    CodeHash,
    KeyId,
    CreatedAt,
    UsedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum MfaChallenges {
    Table,
    Id,
    UserId,
    ExpiresAt,
    SpentAt,
    FailedAttempts,
}

#[derive(DeriveIden, Clone, Copy)]
enum RefreshTokens {
    Table,
    Amr,
}

const RECOVERY_CODES_USER_CODE: &str = "uq_recovery_codes_user_code";
const CHALLENGES_USER: &str = "idx_mfa_challenges_user";
const CHALLENGES_EXPIRES_AT: &str = "idx_mfa_challenges_expires_at";

/// A foreign key from `table.user_id` to `users.id`, deleted with the account.
fn owned_by_user(name: &str, table: impl IntoTableRef, column: impl IntoIden) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(name)
        .from(table, column)
        .to(Users::Table, Users::Id)
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                new_table(manager, UserTotp::Table)
                    .col(big_integer(UserTotp::UserId).primary_key())
                    .col(string_len(UserTotp::SecretSealed, 256))
                    .col(date_time(UserTotp::CreatedAt))
                    .col(date_time_null(UserTotp::ConfirmedAt))
                    .col(big_integer_null(UserTotp::LastUsedStep))
                    .foreign_key(&mut owned_by_user("fk_user_totp_user", UserTotp::Table, UserTotp::UserId))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                new_table(manager, RecoveryCodes::Table)
                    .col(big_pk_auto(RecoveryCodes::Id))
                    .col(big_integer(RecoveryCodes::UserId))
                    .col(string_len(RecoveryCodes::CodeHash, 64))
                    .col(string_len(RecoveryCodes::KeyId, 64))
                    .col(date_time(RecoveryCodes::CreatedAt))
                    .col(date_time_null(RecoveryCodes::UsedAt))
                    .index(
                        Index::create()
                            .name(RECOVERY_CODES_USER_CODE)
                            .col(RecoveryCodes::UserId)
                            .col(RecoveryCodes::CodeHash)
                            .unique(),
                    )
                    .foreign_key(&mut owned_by_user(
                        "fk_recovery_codes_user",
                        RecoveryCodes::Table,
                        RecoveryCodes::UserId,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                new_table(manager, MfaChallenges::Table)
                    .col(string_len(MfaChallenges::Id, 36).primary_key())
                    .col(big_integer(MfaChallenges::UserId))
                    .col(big_integer(MfaChallenges::ExpiresAt))
                    .col(big_integer_null(MfaChallenges::SpentAt))
                    .col(integer(MfaChallenges::FailedAttempts).default(0))
                    .foreign_key(&mut owned_by_user(
                        "fk_mfa_challenges_user",
                        MfaChallenges::Table,
                        MfaChallenges::UserId,
                    ))
                    .to_owned(),
            )
            .await?;
        add_index(manager, CHALLENGES_USER, MfaChallenges::Table, [MfaChallenges::UserId]).await?;
        add_index(manager, CHALLENGES_EXPIRES_AT, MfaChallenges::Table, [MfaChallenges::ExpiresAt]).await?;
        if !manager.has_column(RefreshTokens::Table.to_string(), RefreshTokens::Amr.to_string()).await? {
            let amr = string_len_null(RefreshTokens::Amr, 32);
            manager.alter_table(Table::alter().table(RefreshTokens::Table).add_column(amr).to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(Table::alter().table(RefreshTokens::Table).drop_column(RefreshTokens::Amr).to_owned())
            .await?;
        manager.drop_table(Table::drop().table(MfaChallenges::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(RecoveryCodes::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(UserTotp::Table).to_owned()).await
    }
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
