//! The `auth-svc` binary as an operator runs it: exit codes, one-line config errors,
//! `migrate`, and SIGTERM.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

const BIN: &str = env!("CARGO_BIN_EXE_auth-svc");

fn command(dir: &tempfile::TempDir) -> Command {
    let mut command = Command::new(BIN);
    command
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .env("AUTH_SVC__LISTEN", "127.0.0.1:0")
        .env("AUTH_SVC__PASSWORD__HASH_PROFILE", "test");
    command
}

#[test]
fn a_bad_key_stops_the_start_with_one_line_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let output = command(&dir).env("AUTH_SVC__AUTH__ACCESS_SECRET", "too-short").output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("AUTH_SVC__AUTH__ACCESS_SECRET"), "{stderr}");
    assert!(!stderr.contains("too-short"), "the secret itself is never echoed: {stderr}");
}

#[test]
fn a_missing_config_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let output = command(&dir).args(["-f", "nope.yaml"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("nope.yaml not found"));
}

#[test]
fn migrate_creates_the_default_sqlite_database_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let output = command(&dir).arg("migrate").output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stdout));
    assert!(dir.path().join("data/auth-svc.db").is_file(), "the embedded default lives under ./data/");
}

#[test]
fn serve_warns_about_generated_secrets_and_exits_0_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = command(&dir).stdout(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let line = lines.next().expect("log line").unwrap();
        let serving = line.contains("serving user.v1.UserService");
        seen.push(line);
        if serving {
            break;
        }
    }
    assert!(seen.iter().any(|l| l.contains("WARN") && l.contains("random")), "{seen:#?}");
    assert!(seen.last().unwrap().contains("address=127.0.0.1:"), "{seen:#?}");

    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(rest.iter().any(|l| l.contains("stopped")), "{rest:#?}");
}

#[test]
fn a_database_password_never_reaches_the_output() {
    let dir = tempfile::tempdir().unwrap();
    // Unparsable (port out of range): the driver's error quotes the URL it was given.
    let output = command(&dir)
        .env("AUTH_SVC__DATABASE_URL", "postgres://app:S3cretPw@127.0.0.1:99999/auth")
        .arg("migrate")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let everything = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(everything.contains("cannot open the database (postgres://app:***@127.0.0.1:99999/auth)"), "{everything}");
    assert!(!everything.contains("S3cretPw"), "{everything}");
}

#[test]
fn serve_without_migrate_on_start_refuses_a_schema_that_is_behind_until_migrate_ran() {
    let dir = tempfile::tempdir().unwrap();
    let output = command(&dir).env("AUTH_SVC__DATABASE__MIGRATE_ON_START", "false").output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Every migration, on a database that has none.
    let all = <model::migration::Migrator as model::migration::MigratorTrait>::migrations().len();
    assert!(stderr.contains(&format!("{all} database migration(s) pending")), "{stderr}");
    assert!(stderr.contains("run `auth-svc migrate` first"), "{stderr}");

    assert!(command(&dir).arg("migrate").output().unwrap().status.success());
    let mut child =
        command(&dir).env("AUTH_SVC__DATABASE__MIGRATE_ON_START", "false").stdout(Stdio::piped()).spawn().unwrap();
    // If it never serves, the watchdog ends it so the read below cannot hang.
    let pid = child.id().to_string();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(30));
        let _ = Command::new("kill").args(["-KILL", &pid]).status();
    });
    let serving = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .take(50)
        .any(|line| line.contains("serving user.v1.UserService"));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(serving, "serves once the schema is current");
}

#[test]
fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let output = command(&dir).env("AUTH_SVC__LOG__FORMAT", "json").arg("migrate").output().unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<serde_json::Value> =
        stdout.lines().map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"))).collect();
    assert!(lines.iter().any(|l| l["message"] == "migrations applied" && l["level"] == "INFO"), "{stdout}");
}

/// `auth-svc user set-role` runs against the default database, `./data/auth-svc.db` in `dir`.
fn database_url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}?mode=rwc", dir.path().join("data/auth-svc.db").display())
}

/// Runs `f` on a fresh connection to the database of `dir` (the test's view, not the binary's).
fn on_database<T>(dir: &tempfile::TempDir, f: impl AsyncFnOnce(&model::DatabaseConnection) -> T) -> T {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let (db, _) = model::connect(&database_url(dir), &model::PoolOptions::default()).await.unwrap();
        let result = f(&db).await;
        db.close().await.unwrap();
        result
    })
}

/// A database migrated by `auth-svc migrate`, holding the account `alice` with role "user" as
/// Register stores it (the hash is never read here).
fn database_with_alice(dir: &tempfile::TempDir) {
    let migrate = command(dir).arg("migrate").output().unwrap();
    assert!(migrate.status.success(), "{}", String::from_utf8_lossy(&migrate.stderr));
    on_database(dir, async |db| {
        model::query::users::insert(db, "alice", "$argon2id$v=19$unused", "user").await.unwrap()
    });
}

fn stored_role(dir: &tempfile::TempDir, username: &str) -> Option<String> {
    on_database(dir, async |db| model::query::users::find_by_username(db, username).await.unwrap().map(|u| u.role))
}

/// `user set-role` at its default log filter: stderr holds its answer and nothing else.
fn set_role(dir: &tempfile::TempDir, username: &str, role: &str) -> std::process::Output {
    command(dir).env_remove("RUST_LOG").args(["user", "set-role", username, role]).output().unwrap()
}

#[test]
fn set_role_makes_an_admin_and_prints_the_new_role() {
    let dir = tempfile::tempdir().unwrap();
    database_with_alice(&dir);
    assert_eq!(stored_role(&dir, "alice").as_deref(), Some("user"));

    let output = set_role(&dir, "alice", "admin");
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert_eq!(output.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.lines().any(|line| line == "alice (id 1) now has role admin"), "{stdout}");
    assert_eq!(stored_role(&dir, "alice").as_deref(), Some("admin"));
    // Running servers learn it from their database poll; the operator is told how soon.
    assert!(stderr.contains("revocation.max_staleness_ms"), "{stderr}");
}

#[test]
fn set_role_of_an_unknown_user_fails_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    database_with_alice(&dir);

    let output = set_role(&dir, "nobody", "admin");
    assert_eq!(output.status.code(), Some(3), "the exit code of an unknown user");
    assert_eq!(String::from_utf8_lossy(&output.stderr), "auth-svc: no user named \"nobody\"\n");
    assert!(!String::from_utf8_lossy(&output.stdout).contains("now has role"));
    assert_eq!(stored_role(&dir, "nobody"), None, "nothing was created");
    // Names are parsed as at Register: a lookalike is refused with the reason, not looked up.
    let lookalike = set_role(&dir, "alice\u{200B}", "admin");
    assert_eq!(lookalike.status.code(), Some(64), "the exit code of bad input");
    assert_eq!(String::from_utf8_lossy(&lookalike.stderr), "auth-svc: username must not contain U+200B\n");
    assert_eq!(stored_role(&dir, "alice").as_deref(), Some("user"));
}

#[test]
fn set_role_finds_the_account_under_any_case_and_prints_its_registered_name() {
    let dir = tempfile::tempdir().unwrap();
    database_with_alice(&dir);
    let output = set_role(&dir, " ALICE ", "admin");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.lines().any(|line| line == "alice (id 1) now has role admin"), "{stdout}");
    assert_eq!(stored_role(&dir, "alice").as_deref(), Some("admin"));
}

#[test]
fn migrate_stops_on_accounts_whose_names_now_compare_equal_and_names_them() {
    use model::migration::{Migrator, MigratorTrait};
    use sea_orm::ConnectionTrait;

    let dir = tempfile::tempdir().unwrap();
    on_database(&dir, async |db| {
        Migrator::up(db, Some(2)).await.unwrap();
        for name in ["Alice", "alice"] {
            let insert = format!(
                "INSERT INTO users (username, password_hash, role, created_at, updated_at) \
                 VALUES ('{name}', 'h', 'user', '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
            );
            db.execute_unprepared(&insert).await.unwrap();
        }
    });
    let output = command(&dir).arg("migrate").output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(r#""alice": id 1 "Alice", id 2 "alice""#), "{stderr}");
    assert!(stderr.contains("Nothing was changed") && stderr.contains("then migrate again"), "{stderr}");

    on_database(&dir, async |db| {
        db.execute_unprepared("UPDATE users SET username = 'alice2' WHERE id = 2").await.unwrap()
    });
    let output = command(&dir).arg("migrate").output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(stored_role(&dir, "ALICE2").as_deref(), Some("user"));
}

#[test]
fn set_role_with_an_unknown_role_fails_naming_the_allowed_ones() {
    let dir = tempfile::tempdir().unwrap();
    database_with_alice(&dir);

    for role in ["root", "Admin"] {
        let output = set_role(&dir, "alice", role);
        assert_eq!(output.status.code(), Some(64), "{role}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr, format!("auth-svc: unknown role {role:?}; auth.roles allows: user, admin\n"));
    }
    assert_eq!(stored_role(&dir, "alice").as_deref(), Some("user"));

    // A role added through `auth.roles` (here its env override) is allowed.
    let output = command(&dir)
        .env("AUTH_SVC__AUTH__ROLES", "[user, admin, auditor]")
        .args(["user", "set-role", "alice", "auditor"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(stored_role(&dir, "alice").as_deref(), Some("auditor"));
}

#[test]
fn set_role_on_a_database_that_was_never_migrated_asks_for_migrate() {
    let dir = tempfile::tempdir().unwrap();
    let output = set_role(&dir, "alice", "admin");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("run `auth-svc migrate` first"), "{stderr}");
}
