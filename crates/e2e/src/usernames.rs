//! Usernames by RFC 8265 (issue 12, point 7) and a user cache without password hashes (point 8).
//!
//! Names are compared by their PRECIS UsernameCaseMapped form and shown as registered;
//! lookalikes are refused at Register; the migration that brought the comparison key to existing
//! databases keys their rows, and stops, naming them, on accounts that would merge.

use std::num::NonZero;

use deadpool_redis::redis;
use futures::future::join_all;
use model::migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectionTrait, DatabaseConnection, EntityTrait};
use tonic::Code;

use crate::helpers::{
    PASSWORD, TestDatabase, assert_status, bearer, gateway_for, redis_or_skip, spawn_app, spawn_app_with,
};

#[tokio::test]
async fn case_and_width_variants_are_one_account_shown_as_registered() {
    let app = spawn_app().await;
    let alice = app.register("Alice").await;
    assert_eq!(alice.username, "Alice", "the display form is kept");
    // Fullwidth A (U+FF21) maps to A before comparison.
    for variant in ["alice", "ALICE", " aLiCe", "\u{FF21}lice"] {
        assert_status(app.try_register(variant, PASSWORD).await, Code::AlreadyExists, "username already exists");
    }
    // Accents are not case: a different name.
    app.try_register("Alic\u{E9}", PASSWORD).await.expect("Alicé is another name");

    for spelling in ["alice", "ALICE", "Alice", "\u{FF21}LICE"] {
        let pair = app.login(spelling, PASSWORD).await.unwrap_or_else(|s| panic!("{spelling}: {s:?}"));
        let info = app.user_info(&bearer(&pair.access_token)).await.unwrap();
        assert_eq!((info.id, info.username.as_str()), (alice.id, "Alice"), "{spelling}");
    }
    assert_status(app.login("ALICE", "not the password").await, Code::Unauthenticated, "invalid credentials");
}

/// Same-script lookalikes (one Latin letter swapped for a rare one that looks alike) are not
/// new accounts beside the real ones: 400 through the gateway, INVALID_ARGUMENT over gRPC.
#[tokio::test]
async fn same_script_lookalikes_of_taken_names_are_refused() {
    let app = spawn_app().await;
    for taken in ["admin", "paypal", "google"] {
        app.register(taken).await;
    }
    let restricted = "a letter kept out of identifiers as a lookalike or rare form";
    let refused = [
        ("\u{251}dmin", format!("username must not contain U+0251, {restricted}")),
        ("adm\u{269}n", "username must not be a lookalike of a plain ASCII name".to_owned()),
        ("\u{1D00}dmin", format!("username must not contain U+1D00, {restricted}")),
        ("pay\u{1C0}pal", format!("username must not contain U+01C0, {restricted}")),
        ("\u{261}oogle", format!("username must not contain U+0261, {restricted}")),
    ];
    let gateway = gateway_for(&app).await;
    let http = reqwest::Client::new();
    for (name, message) in &refused {
        assert_status(app.try_register(name, PASSWORD).await, Code::InvalidArgument, message);
        let response = http
            .post(format!("{}/user/register", gateway.base_url))
            .json(&serde_json::json!({"username": name, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::BAD_REQUEST, "{name:?}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body, serde_json::json!({"code": 400, "msg": message}), "{name:?}");
    }
}

#[tokio::test]
async fn the_lookalikes_of_issue_12_are_refused_and_admin_in_capitals_is_taken() {
    let app = spawn_app().await;
    app.register("admin").await;
    let refused = [
        ("admin\u{200B}", "username must not contain U+200B"),
        ("\u{430}dmin", "username must not mix scripts (such as Latin and Cyrillic letters)"),
        ("ad\u{202E}min", "username must not contain U+202E"),
        ("admin\u{2060}", "username must not contain U+2060"),
        ("ad  min", "username must not contain two spaces in a row"),
        (
            "\u{5D0}\u{5D1}admin",
            "username breaks the bidi rule of RFC 8265 (right-to-left text must be a right-to-left word)",
        ),
    ];
    for (name, message) in refused {
        assert_status(app.try_register(name, PASSWORD).await, Code::InvalidArgument, message);
        // Login parses by the same rules: a lookalike names no account, it is bad input.
        assert_status(app.login(name, PASSWORD).await, Code::InvalidArgument, message);
    }
    assert_status(app.try_register("ADMIN", PASSWORD).await, Code::AlreadyExists, "username already exists");
    // One script is fine, whichever it is; digits, punctuation and single spaces are common to all.
    for allowed in ["\u{438}\u{432}\u{430}\u{43D}", "\u{5D0}\u{5D1}", "jane.doe_2@example.com", "Jane Doe"] {
        app.try_register(allowed, PASSWORD).await.unwrap_or_else(|s| panic!("{allowed:?}: {s:?}"));
    }
}

#[tokio::test]
async fn forty_eight_concurrent_registrations_of_case_variants_give_exactly_one_account() {
    let app = spawn_app().await;
    let variants = ["dave", "Dave", "DAVE", "dAvE", "\u{FF24}ave", "daVe"];
    let results = join_all((0..48).map(|i| app.try_register(variants[i % variants.len()], PASSWORD))).await;
    let created: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    let taken = results.iter().filter(|r| matches!(r, Err(s) if s.code() == Code::AlreadyExists)).count();
    assert_eq!(
        (created.len(), taken),
        (1, 47),
        "{:?}",
        results.iter().filter_map(|r| r.as_ref().err()).collect::<Vec<_>>()
    );
    let stored = model::query::users::find_by_username(&app.db, "DAVE").await.unwrap().unwrap();
    assert_eq!((stored.username.as_str(), stored.username_canonical.as_str()), (created[0].username.as_str(), "dave"));
}

#[tokio::test]
async fn failed_logins_under_every_spelling_count_against_one_account() {
    let app = spawn_app_with(|c| c.throttle.max_failures_per_username = NonZero::new(3).unwrap()).await;
    app.register("carol").await;
    for spelling in ["Carol", "CAROL", "\u{FF23}arol"] {
        assert_status(app.login(spelling, "wrong password").await, Code::Unauthenticated, "invalid credentials");
    }
    let status = app.login("carol", PASSWORD).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "three spellings, one account, one count: {status:?}");
}

#[tokio::test]
async fn through_the_gateway_a_lookalike_is_400_in_both_dialects() {
    let app = spawn_app().await;
    app.register("admin").await;
    let gateway = gateway_for(&app).await;
    let client = reqwest::Client::new();
    for path in ["/user/register", "/signup"] {
        let response = client
            .post(format!("{}{path}", gateway.base_url))
            .json(&serde_json::json!({"username": "admin\u{200B}", "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 400, "{path}");
        let body: serde_json::Value = response.json().await.unwrap();
        let message = if path == "/signup" { &body["detail"] } else { &body["msg"] };
        assert_eq!(message, "username must not contain U+200B", "{path}: {body}");
        if path == "/user/register" {
            assert_eq!(body["code"], 400, "{body}");
        }
    }
}

/// Login must see the hash the database holds now, not one a cache kept: the account's hash
/// is swapped underneath a warm cache, and the new password works at once.
#[tokio::test]
async fn login_checks_the_hash_in_the_database_even_with_the_account_cached() {
    let app = spawn_app().await;
    let alice = app.signed_in("alice").await;
    app.user_info(&bearer(&alice.access_token)).await.unwrap();
    app.login("alice", PASSWORD).await.expect("the account is cached by now");
    let other_password = "another password entirely";
    app.try_register("bob", other_password).await.unwrap();
    let bob = model::query::users::find_by_username(&app.db, "bob").await.unwrap().unwrap();
    let swap = format!("UPDATE users SET password_hash = '{}' WHERE username_canonical = 'alice'", bob.password_hash);
    app.db.execute_unprepared(&swap).await.unwrap();

    app.login("alice", other_password).await.expect("the hash now in the database");
    assert_status(app.login("alice", PASSWORD).await, Code::Unauthenticated, "invalid credentials");
}

/// Every value under the service's Redis prefix, whatever its type, as text.
pub async fn redis_values(app: &crate::helpers::TestApp) -> Vec<(String, String)> {
    let redis = app.redis.clone().expect("the app uses Redis");
    let pattern = format!("{}*", redis.key(""));
    let dump = redis
        .run("test dump", async |c| {
            let keys: Vec<String> = redis::cmd("KEYS").arg(&pattern).query_async(c).await?;
            let mut values = Vec::new();
            for key in keys {
                let kind: String = redis::cmd("TYPE").arg(&key).query_async(c).await?;
                let read = match kind.as_str() {
                    "string" => redis::cmd("GET").arg(&key).to_owned(),
                    "hash" => redis::cmd("HGETALL").arg(&key).to_owned(),
                    "zset" => redis::cmd("ZRANGE").arg(&key).arg(0).arg(-1).arg("WITHSCORES").to_owned(),
                    "list" => redis::cmd("LRANGE").arg(&key).arg(0).arg(-1).to_owned(),
                    "set" => redis::cmd("SMEMBERS").arg(&key).to_owned(),
                    other => panic!("{key}: unexpected Redis type {other}"),
                };
                let value: redis::Value = read.query_async(c).await?;
                values.push((key, format!("{value:?}")));
            }
            Ok(values)
        })
        .await;
    dump.expect("Redis answered")
}

#[tokio::test]
async fn no_redis_value_holds_a_password_hash_after_register_login_and_user_info() {
    if redis_or_skip("usernames::no_redis_value_holds_a_password_hash_after_register_login_and_user_info").is_none() {
        return;
    }
    let app = spawn_app().await;
    app.register("Alice").await;
    // A taken name is checked through the cache, and a failed login is throttled in Redis.
    assert_eq!(app.try_register("alice", PASSWORD).await.unwrap_err().code(), Code::AlreadyExists);
    assert_eq!(app.login("alice", "wrong password").await.unwrap_err().code(), Code::Unauthenticated);
    let pair = app.login("ALICE", PASSWORD).await.unwrap();
    app.user_info(&bearer(&pair.access_token)).await.unwrap();
    app.user_info(&bearer(&pair.access_token)).await.unwrap();

    let values = redis_values(&app).await;
    let profile = values.iter().find(|(key, _)| key.contains("user:id:")).expect("the profile is cached in Redis");
    assert!(profile.1.contains("Alice"), "{profile:?}");
    assert!(
        values.iter().any(|(key, _)| key.ends_with("user:name:alice")),
        "indexed by the canonical name: {values:?}"
    );
    for (key, value) in &values {
        // Not the value in the message: it would print the hash.
        assert!(!value.contains("$argon2"), "{key} holds a password hash");
    }
}

// The migration, on whichever database this run uses (SQLite, PostgreSQL or MariaDB).

/// A database at the schema before the username key (migrations 1 and 2), holding `names`
/// as accounts in id order, written as a release before it would have written them.
async fn database_before_the_key(names: &[&str]) -> (TestDatabase, DatabaseConnection) {
    let database = TestDatabase::create().await;
    let (db, _) = model::connect(&database.url, &model::PoolOptions::default()).await.unwrap();
    Migrator::up(&db, Some(2)).await.unwrap();
    for name in names {
        let insert = format!(
            "INSERT INTO users (username, password_hash, role, created_at, updated_at) \
             VALUES ('{name}', '$argon2id$v=19$unused', 'user', '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
        );
        db.execute_unprepared(&insert).await.unwrap();
    }
    (database, db)
}

async fn keys_by_id(db: &DatabaseConnection) -> Vec<(i64, String, String)> {
    let mut rows = model::entity::users::Entity::find().all(db).await.unwrap();
    rows.sort_by_key(|row| row.id);
    rows.into_iter().map(|row| (row.id, row.username, row.username_canonical)).collect()
}

#[tokio::test]
async fn the_migration_keys_existing_accounts_and_the_key_is_unique_from_then_on() {
    let legacy = ["Alice", "bob", "Jose\u{301}", "\u{418}\u{432}\u{430}\u{43D}", "admin\u{200B}", "Jane Doe"];
    let (_database, db) = database_before_the_key(&legacy).await;
    model::migration::run(&db).await.expect("no two names compare equal");
    assert_eq!(model::migration::pending(&db).await.unwrap(), 0);

    let expected = [
        (1, "Alice", "alice"),
        (2, "bob", "bob"),
        (3, "Jose\u{301}", "jos\u{E9}"),
        (4, "\u{418}\u{432}\u{430}\u{43D}", "\u{438}\u{432}\u{430}\u{43D}"),
        // PRECIS refuses it; the account is kept under its lowercased NFC text.
        (5, "admin\u{200B}", "admin\u{200B}"),
        (6, "Jane Doe", "jane doe"),
    ];
    let expected: Vec<_> = expected.iter().map(|(id, name, key)| (*id, name.to_string(), key.to_string())).collect();
    assert_eq!(keys_by_id(&db).await, expected);

    let taken = model::query::users::insert(&db, "ALICE", "$argon2id$v=19$unused", "user").await;
    assert!(matches!(taken, Err(model::StoreError::UsernameTaken)), "{taken:?}");
    let found = model::query::users::find_by_username(&db, "JOS\u{C9}").await.unwrap().unwrap();
    assert_eq!(found.id, 3, "the decomposed legacy name is found by its composed spelling");
    // The unique index itself refuses a duplicate key, whoever writes it.
    let raw = "INSERT INTO users (username, username_canonical, password_hash, role, created_at, updated_at) \
               VALUES ('x', 'bob', 'h', 'user', '2026-01-01 00:00:00', '2026-01-01 00:00:00')";
    assert!(db.execute_unprepared(raw).await.is_err(), "a second row keyed bob");
    if db.get_database_backend() != sea_orm::DatabaseBackend::Sqlite {
        let without_key = "INSERT INTO users (username, password_hash, role, created_at, updated_at) \
                           VALUES ('y', 'h', 'user', '2026-01-01 00:00:00', '2026-01-01 00:00:00')";
        assert!(db.execute_unprepared(without_key).await.is_err(), "the key is NOT NULL with no default");
    }
    // Reversible (the ones after it are rolled back first, then this one), and re-applied from
    // the rows as they are then.
    let from_it = Migrator::migrations().len() - 2;
    Migrator::down(&db, Some(u32::try_from(from_it).unwrap())).await.unwrap();
    assert_eq!(model::migration::pending(&db).await.unwrap(), from_it);
    model::migration::run(&db).await.unwrap();
    assert_eq!(keys_by_id(&db).await, expected);
}

#[tokio::test]
async fn a_conflict_stops_the_migration_naming_the_accounts_and_it_runs_once_one_is_renamed() {
    let (_database, db) = database_before_the_key(&["Alice", "bob", "alice", "\u{FF22}OB", "carol"]).await;
    let err = model::migration::run(&db).await.expect_err("Alice and alice would merge");
    let message = err.to_string();
    for named in
        ["2 group(s)", "\"alice\": id 1 \"Alice\", id 3 \"alice\"", "\"bob\": id 2 \"bob\", id 4 \"\u{FF22}OB\""]
    {
        assert!(message.contains(named), "{named:?} in {message}");
    }
    assert!(!message.contains("carol"), "{message}");
    // This one and every one after it.
    assert_eq!(model::migration::pending(&db).await.unwrap(), Migrator::migrations().len() - 2);
    // Nothing changed: the column the migration adds is not there.
    assert!(db.execute_unprepared("SELECT username_canonical FROM users").await.is_err());

    db.execute_unprepared("UPDATE users SET username = 'alice2' WHERE id = 3").await.unwrap();
    db.execute_unprepared("DELETE FROM users WHERE id = 4").await.unwrap();
    model::migration::run(&db).await.expect("no conflict left");
    let keys: Vec<String> = keys_by_id(&db).await.into_iter().map(|(_, _, key)| key).collect();
    assert_eq!(keys, ["alice", "bob", "alice2", "carol"]);
}
