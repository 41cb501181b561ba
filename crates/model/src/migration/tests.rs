//! A released migration must keep running the SQL it ran when it was applied: every
//! statement of every migration, up and down, on each backend, is pinned in `applied_sql.txt`.
//! A new migration appends its statements there; a diff in the lines of a released one is a bug.

use std::collections::BTreeMap;

use sea_orm::{DatabaseBackend, MockDatabase, MockExecResult, Value};
use sea_orm_migration::{MigrationTrait, MigratorTrait, SchemaManager};

use super::Migrator;

const BACKENDS: [(&str, DatabaseBackend); 3] =
    [("sqlite", DatabaseBackend::Sqlite), ("postgres", DatabaseBackend::Postgres), ("mysql", DatabaseBackend::MySql)];

/// A connection that answers every statement: the reads of the username migration find no
/// accounts and no `username_canonical` column yet.
fn recording_connection(backend: DatabaseBackend) -> sea_orm::DatabaseConnection {
    let no_accounts: Vec<BTreeMap<String, Value>> = Vec::new();
    let no_column = vec![BTreeMap::from([("has_column".to_owned(), Value::from(false))])];
    MockDatabase::new(backend)
        .append_query_results([no_accounts, no_column])
        .append_exec_results(std::iter::repeat_with(MockExecResult::default).take(16))
        .into_connection()
}

/// The statements one direction of `migration` runs on `backend`, one a line.
async fn statements(migration: &dyn MigrationTrait, backend: DatabaseBackend, up: bool) -> Vec<String> {
    let db = recording_connection(backend);
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
