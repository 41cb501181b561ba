//! A released migration must keep running the SQL it ran when it was applied: every
//! statement of every migration, up and down, on each backend, is pinned in `applied_sql.txt`.
//! A new migration appends its statements there; a diff in the lines of a released one is a bug.

use std::collections::BTreeMap;

use sea_orm::{DatabaseBackend, MockDatabase, MockExecResult, Value};
use sea_orm_migration::{MigrationTrait, MigratorTrait, SchemaManager};

use super::Migrator;

const BACKENDS: [(&str, DatabaseBackend); 3] =
    [("sqlite", DatabaseBackend::Sqlite), ("postgres", DatabaseBackend::Postgres), ("mysql", DatabaseBackend::MySql)];

/// A connection that answers every statement of `migration` as a first run sees it: the
/// username migration finds no accounts and no `username_canonical` column yet; the accounts
/// migration finds none of its columns and indexes, and the index it replaces; the second-factor
/// migration finds neither of its indexes nor its column; the session-start migration finds no
/// column.
fn recording_connection(migration: &str, backend: DatabaseBackend) -> sea_orm::DatabaseConnection {
    let no_accounts: Vec<BTreeMap<String, Value>> = Vec::new();
    let absent = |probe: &str| vec![BTreeMap::from([(probe.to_owned(), Value::from(false))])];
    let reads = match migration {
        "m20261201_000003_username_canonical" => vec![no_accounts, absent("has_column")],
        "m20261201_000006_accounts_and_sessions" => {
            let (column, index) = (absent("has_column"), absent("has_index"));
            // The single-column user index, replaced, is found to be there.
            let replaced = vec![BTreeMap::from([("has_index".to_owned(), Value::from(true))])];
            vec![column.clone(), column.clone(), index.clone(), column.clone(), column, index, replaced]
        }
        "m20261201_000008_second_factor" => {
            let index = absent("has_index");
            vec![index.clone(), index, absent("has_column")]
        }
        "m20261202_000009_session_started_at" => vec![absent("has_column")],
        _ => Vec::new(),
    };
    MockDatabase::new(backend)
        .append_query_results(reads)
        .append_exec_results(std::iter::repeat_with(MockExecResult::default).take(16))
        .into_connection()
}

/// The statements one direction of `migration` runs on `backend`, one a line.
async fn statements(migration: &dyn MigrationTrait, backend: DatabaseBackend, up: bool) -> Vec<String> {
    let db = recording_connection(migration.name(), backend);
    let manager = SchemaManager::new(&db);
    let run = if up { migration.up(&manager).await } else { migration.down(&manager).await };
    if let Err(err) = run {
        panic!("{} {}: {err}", migration.name(), if up { "up" } else { "down" });
    }
    db.into_transaction_log()
        .iter()
        .flat_map(|transaction| transaction.statements().iter().map(ToString::to_string).collect::<Vec<_>>())
        .collect()
}

#[tokio::test]
async fn released_migrations_run_the_sql_they_were_applied_with() {
    let mut emitted = String::new();
    for (backend_name, backend) in BACKENDS {
        for migration in Migrator::migrations() {
            for up in [true, false] {
                let direction = if up { "up" } else { "down" };
                emitted.push_str(&format!("-- {backend_name} {} {direction}\n", migration.name()));
                for statement in statements(migration.as_ref(), backend, up).await {
                    emitted.push_str(&statement);
                    emitted.push_str(";\n");
                }
            }
        }
    }
    let pinned = include_str!("applied_sql.txt");
    if emitted != pinned {
        // The whole text, for a new migration to append from.
        println!("{emitted}");
    }
    assert_eq!(emitted, pinned, "a migration's SQL changed; see the printed text");
}
