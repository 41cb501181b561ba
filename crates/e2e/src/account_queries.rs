//! The store queries behind account management and the session list (issue 14), run on the
//! database of `AUTH_TEST_DATABASE_URL` (SQLite when unset): listing and filtering accounts,
//! disabling, password and login writes and what they do to `updated_at`, and a user's live
//! sessions. On every backend, the plans of the session list and of the role filter use the
//! indexes made for them.

use model::{
    DatabaseConnection, PoolOptions,
    entity::{refresh_tokens, users},
    migration,
    query::{
        refresh_tokens::{
            NewRefreshToken, SessionRow, family_is_live_for, find, insert, live_sessions, live_sessions_query,
            revoke_family, rotate, unrevoked_families,
        },
        users::{UserListFilter, find_by_id, list, list_query, record_login, set_disabled, set_password_hash},
    },
};
use sea_orm::{ConnectionTrait, DatabaseBackend, QueryTrait, Statement};

use crate::helpers::TestDatabase;

/// A migrated database of one test (kept alive by the returned guard).
async fn store() -> (DatabaseConnection, TestDatabase) {
    let database = TestDatabase::create().await;
    let (db, _) = model::connect(&database.url, &PoolOptions::default()).await.unwrap();
    migration::run(&db).await.unwrap();
    (db, database)
}

async fn account(db: &DatabaseConnection, username: &str, role: &str) -> users::Model {
    model::query::users::insert(db, username, "$argon2id$not-a-real-hash", role).await.unwrap()
}

fn names(rows: &[users::Model]) -> Vec<&str> {
    rows.iter().map(|row| row.username.as_str()).collect()
}

fn filter(prefix: Option<&str>, role: Option<&str>) -> UserListFilter {
    UserListFilter {
        after_id: None,
        username_prefix: prefix.map(str::to_owned),
        role: role.map(str::to_owned),
        limit: 100,
    }
}

/// A time long past, written straight into a `DATETIME` column on every backend.
const LONG_AGO: &str = "2001-02-03 04:05:06";

fn long_ago() -> chrono::NaiveDateTime {
    chrono::NaiveDateTime::parse_from_str(LONG_AGO, "%Y-%m-%d %H:%M:%S").unwrap()
}

async fn backdate(db: &DatabaseConnection, id: i64, column: &str) {
    db.execute_unprepared(&format!("UPDATE users SET {column} = '{LONG_AGO}' WHERE id = {id}")).await.unwrap();
}

#[tokio::test]
async fn a_username_prefix_is_compared_canonically_and_its_wildcards_match_only_themselves() {
    let (db, _guard) = store().await;
    for name in ["Alice", "alina", "al%x", "al_y", r"al\z", "ALBERT", "bob", "xal"] {
        account(&db, name, "user").await;
    }
    let listed = |prefix: &'static str| {
        let db = db.clone();
        async move { names(&list(&db, &filter(Some(prefix), None)).await.unwrap()).join(" ") }
    };
    // Case and width do not matter: the prefix is keyed as names are. Id order.
    assert_eq!(listed("AL").await, r"Alice alina al%x al_y al\z ALBERT");
    assert_eq!(listed("ali").await, "Alice alina");
    // LIKE's wildcards and escape character in the prefix are literals.
    assert_eq!(listed("al%").await, "al%x");
    assert_eq!(listed("al_").await, "al_y");
    assert_eq!(listed(r"al\").await, r"al\z");
    assert_eq!(listed("%").await, "");
    // A prefix, not a substring.
    assert_eq!(listed("b").await, "bob");
    assert_eq!(listed("alicia").await, "");
}

#[tokio::test]
async fn accounts_are_filtered_by_role_and_paged_in_id_order() {
    let (db, _guard) = store().await;
    let mut ids = Vec::new();
    for (name, role) in
        [("u1", "user"), ("a1", "admin"), ("u2", "user"), ("a2", "admin"), ("u3", "user"), ("a3", "admin")]
    {
        ids.push(account(&db, name, role).await.id);
    }
    assert_eq!(names(&list(&db, &filter(None, Some("admin"))).await.unwrap()), ["a1", "a2", "a3"]);
    assert_eq!(names(&list(&db, &filter(None, Some("user"))).await.unwrap()), ["u1", "u2", "u3"]);
    assert!(list(&db, &filter(None, Some("auditor"))).await.unwrap().is_empty());
    // Both filters at once.
    assert_eq!(names(&list(&db, &filter(Some("A"), Some("admin"))).await.unwrap()), ["a1", "a2", "a3"]);
    assert!(list(&db, &filter(Some("u"), Some("admin"))).await.unwrap().is_empty());

    // Pages of 4, then of 2 within a role, each starting after the last id of the one before.
    let page = |after_id: Option<i64>, role: Option<&str>, limit: u64| {
        let mut filter = filter(None, role);
        filter.after_id = after_id;
        filter.limit = limit;
        let db = db.clone();
        async move { list(&db, &filter).await.unwrap() }
    };
    let first = page(None, None, 4).await;
    assert_eq!(names(&first), ["u1", "a1", "u2", "a2"]);
    let second = page(Some(first[3].id), None, 4).await;
    assert_eq!(names(&second), ["u3", "a3"]);
    assert!(page(Some(second[1].id), None, 4).await.is_empty());
    let admins = page(None, Some("admin"), 2).await;
    assert_eq!(names(&admins), ["a1", "a2"]);
    assert_eq!(names(&page(Some(admins[1].id), Some("admin"), 2).await), ["a3"]);
    // `after_id` need not be an id of the filtered set.
    assert_eq!(names(&page(Some(ids[2]), Some("admin"), 2).await), ["a2", "a3"]);
    assert!(page(None, None, 0).await.is_empty());
}

#[tokio::test]
async fn disabling_keeps_the_first_time_and_enabling_clears_it() {
    let (db, _guard) = store().await;
    let alice = account(&db, "alice", "user").await;
    let bob = account(&db, "bob", "user").await;
    assert_eq!(alice.disabled_at, None);
    assert_eq!(alice.last_login_at, None);

    let disabled = set_disabled(&db, alice.id, true).await.unwrap().unwrap();
    let when = disabled.disabled_at.expect("disabled");
    assert!((chrono::Utc::now().naive_utc() - when).num_seconds().abs() < 60, "the database's clock: {when}");
    // Disabling again keeps the first time (backdated, so a rewrite would show).
    backdate(&db, alice.id, "disabled_at").await;
    let again = set_disabled(&db, alice.id, true).await.unwrap().unwrap();
    assert_eq!(again.disabled_at, Some(long_ago()));
    // Only that account.
    assert_eq!(find_by_id(&db, bob.id).await.unwrap().unwrap().disabled_at, None);

    let enabled = set_disabled(&db, alice.id, false).await.unwrap().unwrap();
    assert_eq!(enabled.disabled_at, None);
    assert_eq!(set_disabled(&db, alice.id, false).await.unwrap().unwrap().disabled_at, None);
    assert_eq!(set_disabled(&db, bob.id + 1000, true).await.unwrap(), None);
}

#[tokio::test]
async fn disabling_and_a_new_password_move_updated_at_and_a_login_does_not() {
    let (db, _guard) = store().await;
    let alice = account(&db, "alice", "user").await;
    let updated_at =
        |db: DatabaseConnection| async move { find_by_id(&db, alice.id).await.unwrap().unwrap().updated_at };

    backdate(&db, alice.id, "updated_at").await;
    set_disabled(&db, alice.id, true).await.unwrap();
    assert!(updated_at(db.clone()).await > long_ago(), "set_disabled(true) moves updated_at");
    backdate(&db, alice.id, "updated_at").await;
    set_disabled(&db, alice.id, false).await.unwrap();
    assert!(updated_at(db.clone()).await > long_ago(), "set_disabled(false) moves updated_at");

    backdate(&db, alice.id, "updated_at").await;
    assert!(set_password_hash(&db, alice.id, "$argon2id$another").await.unwrap());
    let row = find_by_id(&db, alice.id).await.unwrap().unwrap();
    assert_eq!(row.password_hash, "$argon2id$another");
    assert!(row.updated_at > long_ago(), "set_password_hash moves updated_at");
    // The same hash again, within the same second, still finds the account (MySQL reports
    // matched rows, not changed ones).
    assert!(set_password_hash(&db, alice.id, "$argon2id$another").await.unwrap());
    assert!(set_password_hash(&db, alice.id, "$argon2id$another").await.unwrap());
    assert!(!set_password_hash(&db, alice.id + 1000, "$argon2id$x").await.unwrap());

    backdate(&db, alice.id, "updated_at").await;
    record_login(&db, alice.id).await.unwrap();
    let row = find_by_id(&db, alice.id).await.unwrap().unwrap();
    assert_eq!(row.updated_at, long_ago(), "record_login leaves updated_at");
    let login = row.last_login_at.expect("login recorded");
    assert!((chrono::Utc::now().naive_utc() - login).num_seconds().abs() < 60, "the database's clock: {login}");
    record_login(&db, alice.id + 1000).await.unwrap();
}

/// A token row of `family` for `user_id`.
fn token(id: &str, family: &str, user_id: i64, issued_at: i64, expires_at: i64) -> NewRefreshToken {
    NewRefreshToken {
        id: id.to_owned(),
        family_id: family.to_owned(),
        user_id,
        access_jti: format!("access-{id}"),
        issued_at,
        expires_at,
        client_address: None,
        user_agent: None,
        amr: None,
        // The queries tested here take a family's start from its rows' `issued_at`.
        session_started_at: issued_at,
    }
}

const NOW: i64 = 1_000_000;

/// Alice's families: `rotated` (started at 100, its live head issued at 2,000, client recorded
/// and carried over), `single` (one live token issued at 3,000), `revoked`, `expired` (its
/// head expires exactly at NOW), and `mallory`, Bob's.
async fn sessions_fixture(db: &DatabaseConnection) -> (i64, i64, refresh_tokens::Model) {
    let alice = account(db, "alice", "user").await.id;
    let bob = account(db, "bob", "user").await.id;
    let recorded = |mut token: NewRefreshToken| {
        token.client_address = Some("203.0.113.7".into());
        token.user_agent = Some("curl/8.5.0".into());
        token
    };
    insert(db, recorded(token("r1", "rotated", alice, 100, NOW + 50))).await.unwrap();
    let head = recorded(token("r2", "rotated", alice, 2_000, NOW + 500));
    assert!(rotate(db, "r1", &head).await.unwrap());
    insert(db, token("s1", "single", alice, 3_000, NOW + 10)).await.unwrap();
    insert(db, token("v1", "revoked", alice, 4_000, NOW + 500)).await.unwrap();
    assert_eq!(revoke_family(db, "revoked").await.unwrap(), 1);
    insert(db, token("e1", "expired", alice, 5_000, NOW)).await.unwrap();
    insert(db, token("m1", "mallory", bob, 6_000, NOW + 500)).await.unwrap();
    (alice, bob, head.into_row())
}

#[tokio::test]
async fn live_sessions_are_the_unrotated_unrevoked_unexpired_heads_newest_first() {
    let (db, _guard) = store().await;
    let (alice, bob, _) = sessions_fixture(&db).await;
    let sessions = live_sessions(&db, alice, NOW).await.unwrap();
    assert_eq!(
        sessions,
        [
            SessionRow {
                id: "single".into(),
                created_at: 3_000,
                last_used_at: 3_000,
                expires_at: NOW + 10,
                client_address: None,
                user_agent: None,
            },
            SessionRow {
                id: "rotated".into(),
                created_at: 100,
                last_used_at: 2_000,
                expires_at: NOW + 500,
                client_address: Some("203.0.113.7".into()),
                user_agent: Some("curl/8.5.0".into()),
            },
        ]
    );
    // The expired one was live a second earlier; Bob sees only his own.
    let earlier: Vec<String> = live_sessions(&db, alice, NOW - 1).await.unwrap().into_iter().map(|s| s.id).collect();
    assert_eq!(earlier, ["expired", "single", "rotated"]);
    let bobs: Vec<String> = live_sessions(&db, bob, NOW).await.unwrap().into_iter().map(|s| s.id).collect();
    assert_eq!(bobs, ["mallory"]);
    assert!(live_sessions(&db, bob + 1000, NOW).await.unwrap().is_empty());
}

#[tokio::test]
async fn unrevoked_families_and_liveness_for_a_user() {
    let (db, _guard) = store().await;
    let (alice, bob, _rotated_head) = sessions_fixture(&db).await;

    // Expired but unrevoked families count: revoking them is what ends them everywhere.
    assert_eq!(unrevoked_families(&db, alice, None).await.unwrap(), ["expired", "rotated", "single"]);
    assert_eq!(unrevoked_families(&db, alice, Some("rotated")).await.unwrap(), ["expired", "single"]);
    assert_eq!(unrevoked_families(&db, alice, Some("mallory")).await.unwrap(), ["expired", "rotated", "single"]);
    assert_eq!(unrevoked_families(&db, bob, None).await.unwrap(), ["mallory"]);

    assert!(family_is_live_for(&db, "rotated", alice).await.unwrap());
    assert!(family_is_live_for(&db, "expired", alice).await.unwrap());
    assert!(!family_is_live_for(&db, "revoked", alice).await.unwrap());
    // Another user's family is not the caller's, live or not.
    assert!(!family_is_live_for(&db, "mallory", alice).await.unwrap());
    assert!(!family_is_live_for(&db, "rotated", bob).await.unwrap());
    assert!(!family_is_live_for(&db, "unknown", alice).await.unwrap());

    // Revoking ends the family in every answer.
    revoke_family(&db, "rotated").await.unwrap();
    assert_eq!(unrevoked_families(&db, alice, None).await.unwrap(), ["expired", "single"]);
    assert!(!family_is_live_for(&db, "rotated", alice).await.unwrap());
    let left: Vec<String> = live_sessions(&db, alice, NOW).await.unwrap().into_iter().map(|s| s.id).collect();
    assert_eq!(left, ["single"]);
}

/// The plan of `statement` on `db`, as text: PostgreSQL's plan lines, MySQL's keys per table,
/// SQLite's query-plan details.
async fn plan(db: &DatabaseConnection, statement: &Statement) -> String {
    let backend = db.get_database_backend();
    let explain = match backend {
        DatabaseBackend::Sqlite => "EXPLAIN QUERY PLAN",
        _ => "EXPLAIN",
    };
    let sql = format!("{explain} {statement}");
    let rows = db.query_all_raw(Statement::from_string(backend, sql)).await.unwrap();
    let lines: Vec<String> = rows
        .iter()
        .map(|row| match backend {
            DatabaseBackend::Postgres => row.try_get::<String>("", "QUERY PLAN").unwrap(),
            DatabaseBackend::MySql => format!(
                "{}: {}",
                row.try_get::<Option<String>>("", "table").unwrap().unwrap_or_default(),
                row.try_get::<Option<String>>("", "key").unwrap().unwrap_or_default()
            ),
            _ => row.try_get::<String>("", "detail").unwrap(),
        })
        .collect();
    lines.join("\n")
}

/// Enough rows that a planner prefers an index to a scan: 1,500 accounts of which 30 are
/// admins; 60 users with 25 token rows each, most of them revoked.
async fn planner_fixture(db: &DatabaseConnection) {
    let values: Vec<String> = (1..=1500)
        .map(|n| {
            let role = if n % 50 == 0 { "admin" } else { "user" };
            format!("('user{n}', 'user{n}', 'x', '{role}', '{LONG_AGO}', '{LONG_AGO}')")
        })
        .collect();
    db.execute_unprepared(&format!(
        "INSERT INTO users (username, username_canonical, password_hash, role, created_at, updated_at) VALUES {}",
        values.join(", ")
    ))
    .await
    .unwrap();
    let tokens: Vec<String> = (1..=60)
        .flat_map(|user| {
            (0..25).map(move |n| {
                let revoked = if n < 22 { "100" } else { "NULL" };
                format!(
                    "('t{user}-{n}', 'f{user}-{n}', {user}, 'a{user}-{n}', {n}, {NOW} + 100, NULL, NULL, {revoked})"
                )
            })
        })
        .collect();
    db.execute_unprepared(&format!(
        "INSERT INTO refresh_tokens (id, family_id, user_id, access_jti, issued_at, expires_at, rotated_at, \
         successor_id, revoked_at) VALUES {}",
        tokens.join(", ")
    ))
    .await
    .unwrap();
    let analyze = match db.get_database_backend() {
        DatabaseBackend::Postgres => "ANALYZE users, refresh_tokens",
        DatabaseBackend::MySql => "ANALYZE TABLE users, refresh_tokens",
        _ => "ANALYZE",
    };
    db.query_all_raw(Statement::from_string(db.get_database_backend(), analyze)).await.unwrap();
}

#[tokio::test]
async fn the_session_list_and_the_role_filter_are_served_by_their_indexes() {
    let (db, _guard) = store().await;
    planner_fixture(&db).await;
    let backend = db.get_database_backend();

    let sessions = plan(&db, &backend.build(&live_sessions_query(7, NOW))).await;
    assert!(sessions.contains("idx_refresh_tokens_user_revoked"), "the live heads by user: {sessions}");
    assert!(sessions.contains("idx_refresh_tokens_family_issued"), "each family's start: {sessions}");
    // The rows are right too: three live sessions, the newest first.
    let listed: Vec<String> = live_sessions(&db, 7, NOW).await.unwrap().into_iter().map(|s| s.id).collect();
    assert_eq!(listed, ["f7-24", "f7-23", "f7-22"]);

    let mut admins = filter(None, Some("admin"));
    admins.after_id = Some(500);
    admins.limit = 10;
    let by_role = plan(&db, &list_query(&admins).build(backend)).await;
    assert!(by_role.contains("idx_users_role_id"), "accounts by role: {by_role}");
    let page = list(&db, &admins).await.unwrap();
    assert_eq!(names(&page).first(), Some(&"user550"));
    assert_eq!(page.len(), 10);
}

/// A run of the accounts migration that stopped halfway (MySQL commits each DDL statement on its
/// own) left its first column and its session index: the next run completes it. Then it rolls
/// back to the schema before it, and applies again.
#[tokio::test]
async fn the_accounts_migration_completes_a_run_that_stopped_halfway_and_rolls_back() {
    use model::migration::{Migrator, MigratorTrait};
    use sea_orm_migration::SchemaManager;

    let database = TestDatabase::create().await;
    let (db, _) = model::connect(&database.url, &PoolOptions::default()).await.unwrap();
    // The migrations before it; it and the ones after it are rolled back below.
    let migrations = Migrator::migrations();
    let before = migrations.iter().position(|m| m.name() == "m20261201_000006_accounts_and_sessions").unwrap();
    let from_it = u32::try_from(migrations.len() - before).unwrap();
    Migrator::up(&db, Some(u32::try_from(before).unwrap())).await.unwrap();
    let datetime = match db.get_database_backend() {
        DatabaseBackend::Postgres => "timestamp",
        DatabaseBackend::MySql => "datetime",
        _ => "datetime_text",
    };
    db.execute_unprepared(&format!("ALTER TABLE users ADD COLUMN disabled_at {datetime} NULL")).await.unwrap();
    db.execute_unprepared("CREATE INDEX idx_refresh_tokens_user_revoked ON refresh_tokens (user_id, revoked_at)")
        .await
        .unwrap();

    migration::run(&db).await.expect("the stopped run is completed");
    assert_eq!(migration::pending(&db).await.unwrap(), 0);
    let alice = account(&db, "alice", "user").await;
    assert!(set_disabled(&db, alice.id, true).await.unwrap().unwrap().disabled_at.is_some());
    let mut recorded = token("r1", "f1", alice.id, 100, NOW);
    recorded.client_address = Some("2001:db8::1".into());
    recorded.user_agent = Some("x".repeat(256));
    insert(&db, recorded.clone()).await.unwrap();
    assert_eq!(find(&db, "r1").await.unwrap(), Some(recorded.into_row()));

    let manager = SchemaManager::new(&db);
    let has_index = |name: &'static str| {
        let manager = &manager;
        async move { manager.has_index("refresh_tokens", name).await.unwrap() }
    };
    assert!(has_index("idx_refresh_tokens_user_revoked").await);
    assert!(!has_index("idx_refresh_tokens_user").await, "replaced by (user_id, revoked_at)");

    Migrator::down(&db, Some(from_it)).await.unwrap();
    assert_eq!(migration::pending(&db).await.unwrap(), usize::try_from(from_it).unwrap());
    assert!(db.execute_unprepared("SELECT disabled_at FROM users").await.is_err());
    assert!(db.execute_unprepared("SELECT client_address FROM refresh_tokens").await.is_err());
    assert!(has_index("idx_refresh_tokens_user").await);
    assert!(!has_index("idx_refresh_tokens_user_revoked").await);
    migration::run(&db).await.unwrap();
    assert_eq!(migration::pending(&db).await.unwrap(), 0);
}

/// The session-start migration gives every existing row its family's first `issued_at`.
#[tokio::test]
async fn the_session_start_migration_backfills_every_row_from_its_family() {
    use model::migration::{Migrator, MigratorTrait};

    let database = TestDatabase::create().await;
    let (db, _) = model::connect(&database.url, &PoolOptions::default()).await.unwrap();
    let migrations = Migrator::migrations();
    let before = migrations.iter().position(|m| m.name() == "m20261202_000009_session_started_at").unwrap();
    Migrator::up(&db, Some(u32::try_from(before).unwrap())).await.unwrap();
    let alice = account(&db, "alice", "user").await;
    // Written as a replica from before the column wrote them (the entity has it now).
    for (id, family, issued_at) in [("a2", "fa", 200), ("a1", "fa", 100), ("a3", "fa", 300), ("b1", "fb", 250)] {
        db.execute_unprepared(&format!(
            "INSERT INTO refresh_tokens (id, family_id, user_id, access_jti, issued_at, expires_at) \
             VALUES ('{id}', '{family}', {}, 'access-{id}', {issued_at}, {NOW})",
            alice.id
        ))
        .await
        .unwrap();
    }

    migration::run(&db).await.unwrap();
    for (id, started) in [("a1", 100), ("a2", 100), ("a3", 100), ("b1", 250)] {
        assert_eq!(find(&db, id).await.unwrap().unwrap().session_started_at, Some(started), "row {id}");
    }
}
