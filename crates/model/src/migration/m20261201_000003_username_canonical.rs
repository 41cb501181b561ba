//! `users.username_canonical`: the RFC 8265 comparison key of every name, unique.
//!
//! Existing rows are keyed in Rust with [`crate::username::storage_key`], the function every
//! later insert uses. Names that then compare equal (`Alice` and `alice`) were two accounts;
//! merging them silently would hand one person's account to the other, so the migration stops
//! before changing anything and names them, for the operator to rename or delete all but one
//! and run it again. Names today's rules refuse (`admin` + U+200B, Cyrillic `аdmin`) keep
//! their account and are logged by id: no login reaches them until they are renamed.

use std::collections::BTreeMap;

use sea_orm::{ConnectionTrait, DatabaseBackend, TransactionTrait};
use sea_orm_migration::{prelude::*, schema::*};

use super::{drop_index, index};
use crate::username::{forms, storage_key};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Username,
    UsernameCanonical,
}

const CANONICAL_INDEX: &str = "uq_users_username_canonical";

/// Conflict groups spelled out in the error; the rest are counted.
const CONFLICTS_LISTED: usize = 20;

/// An existing account and the key the migration gives it.
struct KeyedRow {
    id: i64,
    username: String,
    key: String,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let rows = keyed_rows(manager).await?;
        refuse_conflicts(&rows)?;
        warn_about_names_now_refused(&rows);

        // Re-runnable: a run that stopped after this step (MySQL cannot roll DDL back) left it.
        if !manager.has_column("users", "username_canonical").await? {
            // NOT NULL needs a value for existing rows; the default is dropped below where the
            // backend can (SQLite cannot alter a column; every insert sets it).
            let column = string_len(Users::UsernameCanonical, 255).default("").to_owned();
            manager.alter_table(Table::alter().table(Users::Table).add_column(column).to_owned()).await?;
        }
        fill_keys(manager, &rows).await?;
        if manager.get_database_backend() != DatabaseBackend::Sqlite {
            manager
                .get_connection()
                .execute_unprepared("ALTER TABLE users ALTER COLUMN username_canonical DROP DEFAULT")
                .await?;
        }
        manager.create_index(index(CANONICAL_INDEX, Users::Table, [Users::UsernameCanonical]).unique().to_owned()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_index(drop_index(CANONICAL_INDEX, Users::Table)).await?;
        manager.alter_table(Table::alter().table(Users::Table).drop_column(Users::UsernameCanonical).to_owned()).await
    }
}

async fn keyed_rows(manager: &SchemaManager<'_>) -> Result<Vec<KeyedRow>, DbErr> {
    let select = Query::select()
        .columns([Users::Id, Users::Username])
        .from(Users::Table)
        .order_by(Users::Id, Order::Asc)
        .to_owned();
    let rows = manager.get_connection().query_all(&select).await?;
    rows.iter()
        .map(|row| {
            let username: String = row.try_get("", "username")?;
            Ok(KeyedRow { id: row.try_get("", "id")?, key: storage_key(&username), username })
        })
        .collect()
}

/// Fails, naming the accounts, when two rows share a key.
fn refuse_conflicts(rows: &[KeyedRow]) -> Result<(), DbErr> {
    let mut by_key: BTreeMap<&str, Vec<&KeyedRow>> = BTreeMap::new();
    for row in rows {
        by_key.entry(&row.key).or_default().push(row);
    }
    let conflicts: Vec<String> = by_key
        .iter()
        .filter(|(_, group)| group.len() > 1)
        .map(|(key, group)| {
            let accounts: Vec<String> = group.iter().map(|row| format!("id {} {:?}", row.id, row.username)).collect();
            format!("{key:?}: {}", accounts.join(", "))
        })
        .collect();
    if conflicts.is_empty() {
        return Ok(());
    }
    let mut listed = conflicts.iter().take(CONFLICTS_LISTED).cloned().collect::<Vec<_>>().join("; ");
    if conflicts.len() > CONFLICTS_LISTED {
        listed.push_str(&format!("; and {} more", conflicts.len() - CONFLICTS_LISTED));
    }
    Err(DbErr::Migration(format!(
        "{} group(s) of accounts have usernames that RFC 8265 compares as one (case, width or \
         normalisation differ): {listed}. Nothing was changed. Rename or delete all but one account of \
         each group (UPDATE users SET username = '…' WHERE id = …), then migrate again",
        conflicts.len()
    )))
}

/// Names today's rules refuse keep their rows, but Login parses names by those rules: the
/// operator learns which accounts cannot log in until renamed.
fn warn_about_names_now_refused(rows: &[KeyedRow]) {
    let refused: Vec<String> = rows
        .iter()
        .filter_map(|row| forms(&row.username).err().map(|why| format!("id {} {:?} ({why})", row.id, row.username)))
        .collect();
    if !refused.is_empty() {
        tracing::warn!(
            accounts = %refused.join(", "),
            "usernames that RFC 8265 or UTS #39 refuse: these accounts are kept but cannot log in until renamed"
        );
    }
}

/// Writes every row's key, in one transaction (one commit instead of one per row).
async fn fill_keys(manager: &SchemaManager<'_>, rows: &[KeyedRow]) -> Result<(), DbErr> {
    let transaction = manager.get_connection().begin().await?;
    for row in rows {
        let update = Query::update()
            .table(Users::Table)
            .value(Users::UsernameCanonical, row.key.clone())
            .and_where(Expr::col(Users::Id).eq(row.id))
            .to_owned();
        transaction.execute(&update).await?;
    }
    transaction.commit().await
}
