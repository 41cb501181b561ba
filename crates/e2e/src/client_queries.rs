//! The store queries of service accounts (OAuth 2.0 machine clients), run on the database of
//! `AUTH_TEST_DATABASE_URL` (SQLite when unset): insert and lookup, the unique client id under
//! racing inserts, keyset pages, secret rotation (the old hash becomes the previous one on
//! every backend, MySQL's left-to-right SET included), disabling, deletion, and the migration
//! that makes the table.

use model::{
    DatabaseConnection, PoolOptions, StoreError,
    entity::service_clients,
    migration::{self, Migrator, MigratorTrait},
    query::service_clients::{
        NewServiceClient, delete, find, insert, list, revoke_tokens, rotate_secret, set_disabled,
    },
};
use sea_orm::ConnectionTrait;

use crate::helpers::TestDatabase;

/// A migrated database of one test (kept alive by the returned guard).
async fn store() -> (DatabaseConnection, TestDatabase) {
    let database = TestDatabase::create().await;
    let (db, _) = model::connect(&database.url, &PoolOptions::default()).await.unwrap();
    migration::run(&db).await.unwrap();
    (db, database)
}

/// A distinct stand-in for a SHA-256 hex digest.
fn hash(n: u32) -> String {
    format!("{n:064x}")
}

fn client<'a>(client_id: &'a str, secret_hash: &'a str) -> NewServiceClient<'a> {
    NewServiceClient {
        client_id,
        name: "Billing exporter",
        role: "service",
        scopes: "orders:read invoices:write",
        audiences: "orders billing",
        secret_hash,
        tokens_revoked_through: 0,
    }
}

fn client_ids(rows: &[service_clients::Model]) -> Vec<&str> {
    rows.iter().map(|row| row.client_id.as_str()).collect()
}

/// A time long past, written straight into a `DATETIME` column on every backend.
const LONG_AGO: &str = "2001-02-03 04:05:06";

fn datetime(text: &str) -> chrono::NaiveDateTime {
    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S").unwrap()
}

async fn backdate(db: &DatabaseConnection, client_id: &str, column: &str) {
    let sql = format!("UPDATE service_clients SET {column} = '{LONG_AGO}' WHERE client_id = '{client_id}'");
    db.execute_unprepared(&sql).await.unwrap();
}

/// `when` is the database's clock of a moment ago (within a minute: clocks of one machine).
fn assert_recent(when: chrono::NaiveDateTime, what: &str) {
    let age = chrono::Utc::now().naive_utc() - when;
    assert!(age.num_seconds().abs() < 60, "{what} is now: {when}");
}

#[tokio::test]
async fn an_inserted_client_is_found_by_its_exact_client_id() {
    let (db, _guard) = store().await;
    let before = chrono::Utc::now().naive_utc();
    let inserted = insert(&db, client("billing-exporter", &hash(1))).await.unwrap();
    assert_eq!(inserted.client_id, "billing-exporter");
    assert_eq!(inserted.name, "Billing exporter");
    assert_eq!(inserted.role, "service");
    assert_eq!(inserted.scopes, "orders:read invoices:write");
    assert_eq!(inserted.audiences, "orders billing");
    assert_eq!(inserted.secret_hash, hash(1));
    assert_eq!((inserted.previous_secret_hash.as_deref(), inserted.previous_secret_expires_at), (None, None));
    assert_eq!(inserted.disabled_at, None);
    // Creation is the first rotation; one clock reading for all three.
    assert_eq!(inserted.secret_rotated_at, inserted.created_at);
    assert_eq!(inserted.updated_at, inserted.created_at);
    // MySQL's DATETIME rounds to the second, up as well as down.
    let rounding = chrono::Duration::seconds(1);
    assert!(
        inserted.created_at + rounding >= before && inserted.created_at <= chrono::Utc::now().naive_utc() + rounding
    );

    // What insert returned is the row as stored.
    assert_eq!(find(&db, "billing-exporter").await.unwrap(), Some(inserted));
    assert_eq!(find(&db, "billing").await.unwrap(), None);
    // Compared exactly, on MySQL too (utf8mb4_bin): another case is another client.
    assert_eq!(find(&db, "Billing-Exporter").await.unwrap(), None);
    let other_case = insert(&db, client("Billing-Exporter", &hash(2))).await.unwrap();
    assert_eq!(find(&db, "Billing-Exporter").await.unwrap().unwrap().id, other_case.id);

    // No scopes and no audiences are empty strings; the longest lists fit whole.
    let bare_hash = hash(3);
    let bare = NewServiceClient { scopes: "", audiences: "", ..client("bare", &bare_hash) };
    let bare = insert(&db, bare).await.unwrap();
    assert_eq!((bare.scopes.as_str(), bare.audiences.as_str()), ("", ""));
    let scopes = format!("{} {}", "a".repeat(1023), "b".repeat(1024));
    let (longest_id, full_hash) = ("c".repeat(64), hash(4));
    let full = NewServiceClient { scopes: &scopes, audiences: &scopes, ..client(&longest_id, &full_hash) };
    insert(&db, full).await.unwrap();
    let stored = find(&db, &longest_id).await.unwrap().unwrap();
    assert_eq!((stored.scopes.as_str(), stored.audiences.as_str()), (scopes.as_str(), scopes.as_str()));
}

#[tokio::test]
async fn a_client_id_is_taken_once_even_by_racing_inserts() {
    let (db, _guard) = store().await;
    let first = insert(&db, client("reporter", &hash(1))).await.unwrap();
    let again = insert(&db, client("reporter", &hash(2))).await;
    assert!(matches!(again, Err(StoreError::ClientIdTaken)), "{again:?}");
    // The first row is untouched.
    assert_eq!(find(&db, "reporter").await.unwrap(), Some(first));

    // Two inserts of one id at once, on two connections of the pool: exactly one wins,
    // whichever, and the other learns the id is taken.
    for round in 0..10 {
        let (client_id, first_hash, second_hash) = (format!("racer-{round}"), hash(1), hash(2));
        let (one, two) =
            tokio::join!(insert(&db, client(&client_id, &first_hash)), insert(&db, client(&client_id, &second_hash)));
        let (won, lost) = match (one, two) {
            (Ok(won), Err(lost)) | (Err(lost), Ok(won)) => (won, lost),
            other => panic!("round {round}: not exactly one winner: {other:?}"),
        };
        assert!(matches!(lost, StoreError::ClientIdTaken), "round {round}: {lost:?}");
        assert_eq!(find(&db, &client_id).await.unwrap(), Some(won));
    }
    assert_eq!(list(&db, None, 100).await.unwrap().len(), 11);
}

#[tokio::test]
async fn clients_are_listed_in_client_id_order_one_keyset_page_at_a_time() {
    let (db, _guard) = store().await;
    for (n, client_id) in ["svc-c", "svc-a", "svc-e", "svc-b", "svc-d"].into_iter().enumerate() {
        insert(&db, client(client_id, &hash(u32::try_from(n).unwrap()))).await.unwrap();
    }
    let page = |after: Option<&'static str>, limit: u64| {
        let db = db.clone();
        async move { client_ids(&list(&db, after, limit).await.unwrap()).join(" ") }
    };
    assert_eq!(page(None, 100).await, "svc-a svc-b svc-c svc-d svc-e");
    assert_eq!(page(None, 2).await, "svc-a svc-b");
    assert_eq!(page(Some("svc-b"), 2).await, "svc-c svc-d");
    assert_eq!(page(Some("svc-d"), 2).await, "svc-e");
    assert_eq!(page(Some("svc-e"), 2).await, "");
    // `after` need not be a client id; a limit of 0 lists nothing.
    assert_eq!(page(Some("svc-bb"), 2).await, "svc-c svc-d");
    assert_eq!(page(Some(""), 1).await, "svc-a");
    assert_eq!(page(None, 0).await, "");
}

#[tokio::test]
async fn a_rotation_keeps_the_replaced_hash_as_the_previous_one_until_the_given_time() {
    let (db, _guard) = store().await;
    let exporter = insert(&db, client("exporter", &hash(1))).await.unwrap();
    let bystander = insert(&db, client("bystander", &hash(1))).await.unwrap();
    backdate(&db, "exporter", "secret_rotated_at").await;
    backdate(&db, "exporter", "updated_at").await;

    let until = datetime("2030-01-02 03:04:05");
    let rotated = rotate_secret(&db, "exporter", &hash(2), until).await.unwrap().unwrap();
    assert_eq!(rotated.secret_hash, hash(2));
    // The hash before the UPDATE, not the one it wrote (MySQL assigns left to right).
    assert_eq!(rotated.previous_secret_hash, Some(hash(1)));
    assert_eq!(rotated.previous_secret_expires_at, Some(until));
    assert_recent(rotated.secret_rotated_at, "secret_rotated_at");
    assert_recent(rotated.updated_at, "updated_at");
    assert_eq!(
        (&rotated.name, &rotated.scopes, rotated.created_at),
        (&exporter.name, &exporter.scopes, exporter.created_at)
    );
    // What rotate_secret returned is the row as stored.
    assert_eq!(find(&db, "exporter").await.unwrap().as_ref(), Some(&rotated));

    // A second rotation forgets the first hash: only the one it replaced stays, with its own time.
    let later = datetime("2030-02-03 04:05:06");
    let again = rotate_secret(&db, "exporter", &hash(3), later).await.unwrap().unwrap();
    assert_eq!(again.secret_hash, hash(3));
    assert_eq!(again.previous_secret_hash, Some(hash(2)));
    assert_eq!(again.previous_secret_expires_at, Some(later));
    assert_eq!(again.created_at, exporter.created_at);

    // Only that client.
    assert_eq!(find(&db, "bystander").await.unwrap(), Some(bystander));
    assert_eq!(rotate_secret(&db, "nobody", &hash(4), until).await.unwrap(), None);
    assert_eq!(find(&db, "nobody").await.unwrap(), None);
}

#[tokio::test]
async fn disabling_keeps_the_first_time_and_enabling_clears_it() {
    let (db, _guard) = store().await;
    insert(&db, client("exporter", &hash(1))).await.unwrap();
    let bystander = insert(&db, client("bystander", &hash(1))).await.unwrap();

    backdate(&db, "exporter", "updated_at").await;
    let disabled = set_disabled(&db, "exporter", true).await.unwrap().unwrap();
    assert_recent(disabled.disabled_at.expect("disabled"), "disabled_at");
    assert_recent(disabled.updated_at, "updated_at");
    assert_eq!(find(&db, "exporter").await.unwrap().as_ref(), Some(&disabled));

    // Disabling again keeps the first time (backdated, so a rewrite would show), and still
    // moves updated_at.
    backdate(&db, "exporter", "disabled_at").await;
    backdate(&db, "exporter", "updated_at").await;
    let again = set_disabled(&db, "exporter", true).await.unwrap().unwrap();
    assert_eq!(again.disabled_at, Some(datetime(LONG_AGO)));
    assert_recent(again.updated_at, "updated_at");

    backdate(&db, "exporter", "updated_at").await;
    let enabled = set_disabled(&db, "exporter", false).await.unwrap().unwrap();
    assert_eq!(enabled.disabled_at, None);
    assert_recent(enabled.updated_at, "updated_at");
    assert_eq!(set_disabled(&db, "exporter", false).await.unwrap().unwrap().disabled_at, None);
    // The secret is not touched.
    assert_eq!((enabled.secret_hash, enabled.previous_secret_hash), (hash(1), None));

    assert_eq!(find(&db, "bystander").await.unwrap(), Some(bystander));
    assert_eq!(set_disabled(&db, "nobody", true).await.unwrap(), None);
    assert_eq!(set_disabled(&db, "nobody", false).await.unwrap(), None);
}

#[tokio::test]
async fn delete_says_whether_there_was_a_client() {
    let (db, _guard) = store().await;
    insert(&db, client("exporter", &hash(1))).await.unwrap();
    let bystander = insert(&db, client("bystander", &hash(1))).await.unwrap();
    assert!(delete(&db, "exporter").await.unwrap());
    assert_eq!(find(&db, "exporter").await.unwrap(), None);
    assert!(!delete(&db, "exporter").await.unwrap());
    assert!(!delete(&db, "nobody").await.unwrap());
    assert_eq!(list(&db, None, 10).await.unwrap(), [bystander]);
    // The id is free again.
    insert(&db, client("exporter", &hash(2))).await.unwrap();
}

/// The name the migration of this table records in `seaql_migrations`.
const MIGRATION: &str = "m20261201_000007_service_clients";

/// A run that made the table and stopped before it was recorded (MySQL commits each DDL
/// statement on its own) runs again without harm and keeps the rows; `down` then `up` drops
/// and remakes the table.
#[tokio::test]
async fn the_migration_runs_again_over_its_table_and_rolls_back() {
    let (db, _guard) = store().await;
    let kept = insert(&db, client("exporter", &hash(1))).await.unwrap();

    db.execute_unprepared(&format!("DELETE FROM seaql_migrations WHERE version = '{MIGRATION}'")).await.unwrap();
    assert_eq!(migration::pending(&db).await.unwrap(), 1, "{MIGRATION} is the name recorded");
    migration::run(&db).await.expect("the table is there already");
    assert_eq!(migration::pending(&db).await.unwrap(), 0);
    assert_eq!(find(&db, "exporter").await.unwrap(), Some(kept));
    // Its unique key is still the one the table was made with.
    assert!(matches!(insert(&db, client("exporter", &hash(2))).await, Err(StoreError::ClientIdTaken)));

    // It and the migrations after it are rolled back.
    let migrations = Migrator::migrations();
    let from_it = migrations.len() - migrations.iter().position(|m| m.name() == MIGRATION).unwrap();
    Migrator::down(&db, Some(u32::try_from(from_it).unwrap())).await.unwrap();
    assert_eq!(migration::pending(&db).await.unwrap(), from_it);
    assert!(db.execute_unprepared("SELECT client_id FROM service_clients").await.is_err(), "the table is gone");
    migration::run(&db).await.unwrap();
    assert_eq!(migration::pending(&db).await.unwrap(), 0);
    assert_eq!(find(&db, "exporter").await.unwrap(), None, "a new, empty table");
    insert(&db, client("exporter", &hash(3))).await.unwrap();
    assert!(matches!(insert(&db, client("exporter", &hash(4))).await, Err(StoreError::ClientIdTaken)));
}

#[tokio::test]
async fn tokens_revoked_through_only_moves_forward() {
    let (db, _database) = store().await;
    insert(&db, client("billing", &hash(1))).await.unwrap();
    assert!(revoke_tokens(&db, "billing", 100).await.unwrap());
    assert!(!revoke_tokens(&db, "billing", 50).await.unwrap(), "an older token spares newer ones");
    assert!(!revoke_tokens(&db, "billing", 100).await.unwrap());
    assert!(revoke_tokens(&db, "billing", 101).await.unwrap());
    let row = find(&db, "billing").await.unwrap().unwrap();
    assert_eq!(row.tokens_revoked_through, Some(101));
    assert!(!revoke_tokens(&db, "nobody", 200).await.unwrap());
}
