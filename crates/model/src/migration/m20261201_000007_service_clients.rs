//! `service_clients`: the service accounts, OAuth 2.0 machine clients that obtain tokens with
//! the client credentials grant.
//!
//! - `client_id`, unique (`uq_service_clients_client_id`): what a client authenticates as and
//!   every lookup is by.
//! - `scopes`, `audiences`: space-separated lists (empty for none), what its tokens may carry.
//! - `secret_hash`: SHA-256 of the secret, lowercase hex. After a rotation the previous hash
//!   keeps working until `previous_secret_expires_at`, so a client can be redeployed with the
//!   new secret without an outage.
//! - `tokens_revoked_at`: RFC 7009 revocation of a client's token refuses every token of the
//!   client issued at or before this time (the `iat` of the token revoked).
//!
//! One statement: the unique key is declared inside `CREATE TABLE IF NOT EXISTS`, so a run
//! that stopped (MySQL commits each DDL statement on its own) can only have left the whole
//! table, and the next run skips it.

use sea_orm_migration::{prelude::*, schema::*};

use super::new_table;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ServiceClients {
    Table,
    Id,
    ClientId,
    Name,
    Role,
    Scopes,
    Audiences,
    SecretHash,
    PreviousSecretHash,
    PreviousSecretExpiresAt,
    SecretRotatedAt,
    DisabledAt,
    TokensRevokedAt,
    CreatedAt,
    UpdatedAt,
}

const CLIENT_ID_UNIQUE: &str = "uq_service_clients_client_id";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                new_table(manager, ServiceClients::Table)
                    .col(big_pk_auto(ServiceClients::Id))
                    .col(string_len(ServiceClients::ClientId, 64))
                    .col(string_len(ServiceClients::Name, 128))
                    .col(string_len(ServiceClients::Role, 64))
                    .col(string_len(ServiceClients::Scopes, 2048))
                    .col(string_len(ServiceClients::Audiences, 2048))
                    .col(string_len(ServiceClients::SecretHash, 64))
                    .col(string_len_null(ServiceClients::PreviousSecretHash, 64))
                    .col(date_time_null(ServiceClients::PreviousSecretExpiresAt))
                    .col(date_time(ServiceClients::SecretRotatedAt))
                    .col(date_time_null(ServiceClients::DisabledAt))
                    .col(date_time_null(ServiceClients::TokensRevokedAt))
                    .col(date_time(ServiceClients::CreatedAt))
                    .col(date_time(ServiceClients::UpdatedAt))
                    .index(Index::create().name(CLIENT_ID_UNIQUE).col(ServiceClients::ClientId).unique())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(ServiceClients::Table).to_owned()).await
    }
}
