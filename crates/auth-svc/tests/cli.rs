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

/// As the manifests run it: secrets are files of a mounted Secret, named by `…_FILE` variables.
#[test]
fn file_variables_give_the_keys_the_files_text() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("from-file.db");
    std::fs::write(dir.path().join("database-url"), format!("sqlite://{}?mode=rwc\n", database.display())).unwrap();
    let output = command(&dir).env("AUTH_SVC__DATABASE_URL_FILE", "database-url").arg("migrate").output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(database.is_file(), "migrated the database the file names");
    assert!(!dir.path().join("data").exists(), "not the default one");

    // The file's text is checked like the variable's value, and not echoed either.
    std::fs::write(dir.path().join("access-secret"), "too-short\n").unwrap();
    let output = command(&dir).env("AUTH_SVC__AUTH__ACCESS_SECRET_FILE", "access-secret").output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("auth.access_secret (AUTH_SVC__AUTH__ACCESS_SECRET)"), "{stderr}");
    assert!(!stderr.contains("too-short"), "{stderr}");
}

#[test]
fn a_file_variable_that_cannot_be_read_or_doubles_its_key_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let output = command(&dir).env("AUTH_SVC__AUTH__REFRESH_SECRET_FILE", "/run/secrets/none").output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("auth-svc: config: AUTH_SVC__AUTH__REFRESH_SECRET_FILE: cannot read /run/secrets/none: "),
        "{stderr}"
    );

    std::fs::write(dir.path().join("redis-url"), "redis://:S3cretPw@127.0.0.1:6379").unwrap();
    let output = command(&dir)
        .env("AUTH_SVC__REDIS_URL", "redis://127.0.0.1:6379")
        .env("AUTH_SVC__REDIS_URL_FILE", "redis-url")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(
        stderr,
        "auth-svc: config: AUTH_SVC__REDIS_URL and AUTH_SVC__REDIS_URL_FILE are both set; set one of them\n"
    );
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

/// With the commands' own log filter (no `RUST_LOG`): stderr holds the answer and audit lines.
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
        assert_eq!(output.status.code(), Some(64), "{role}: the exit code of bad input");
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

/// `auth-svc user ARGS…` on the database of `dir` (named in `AUTH_SVC__DATABASE_URL`), with
/// JSON logs and the commands' own log filter: stdout is the answer, stderr the audit lines
/// and any error.
fn user(dir: &tempfile::TempDir, args: &[&str]) -> (Option<i32>, String, String) {
    let output = command(dir)
        .env_remove("RUST_LOG")
        .env("AUTH_SVC__DATABASE_URL", database_url(dir))
        .env("AUTH_SVC__LOG__FORMAT", "json")
        .arg("user")
        .args(args)
        .output()
        .unwrap();
    let text = |bytes: Vec<u8>| String::from_utf8(bytes).unwrap();
    (output.status.code(), text(output.stdout), text(output.stderr))
}

/// Two sessions of account `user_id`, as Login writes them.
fn sessions_of(dir: &tempfile::TempDir, user_id: i64, count: usize) {
    on_database(dir, async |db| {
        let now = chrono::Utc::now().timestamp();
        for _ in 0..count {
            let token = model::query::refresh_tokens::NewRefreshToken {
                id: uuid::Uuid::new_v4().to_string(),
                family_id: uuid::Uuid::new_v4().to_string(),
                user_id,
                access_jti: uuid::Uuid::new_v4().to_string(),
                issued_at: now,
                expires_at: now + 3600,
                client_address: None,
                user_agent: None,
                amr: None,
                session_started_at: now,
            };
            model::query::refresh_tokens::insert(db, token).await.unwrap();
        }
    });
}

fn live_sessions(dir: &tempfile::TempDir, user_id: i64) -> usize {
    on_database(dir, async |db| {
        model::query::refresh_tokens::unrevoked_families(db, user_id, None).await.unwrap().len()
    })
}

/// The JSON log lines of `stderr` with target "audit".
fn audit_lines(stderr: &str) -> Vec<serde_json::Value> {
    stderr
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|line| line["target"] == "audit")
        .collect()
}

#[test]
fn user_list_and_show_print_one_tab_separated_line_per_account() {
    let dir = tempfile::tempdir().unwrap();
    database_with_alice(&dir);
    on_database(&dir, async |db| {
        model::query::users::insert(db, "Bob", "$argon2id$v=19$unused", "admin").await.unwrap()
    });

    let (code, stdout, stderr) = user(&dir, &["list"]);
    assert_eq!(code, Some(0), "{stderr}");
    let lines: Vec<Vec<&str>> = stdout.lines().map(|line| line.split('\t').collect()).collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert_eq!(lines[0][..3], ["1", "alice", "user"]);
    assert_eq!(lines[1][..3], ["2", "Bob", "admin"]);
    for line in &lines {
        assert_eq!(line.len(), 6, "id, username, role, created, disabled, last login: {line:?}");
        chrono::DateTime::parse_from_rfc3339(line[3]).unwrap_or_else(|err| panic!("{err}: {line:?}"));
        assert_eq!(line[4..], ["enabled", "never"]);
    }
    assert!(!stderr.contains("audit"), "reading is not audited: {stderr}");

    assert_eq!(user(&dir, &["list", "--prefix", "BO"]).1.lines().count(), 1);
    assert!(user(&dir, &["list", "--prefix", "BO"]).1.starts_with("2\tBob\t"));
    assert!(user(&dir, &["list", "--role", "admin"]).1.starts_with("2\tBob\t"));
    assert_eq!(user(&dir, &["list", "--role", "auditor"]).1, "");

    let (code, by_name, _) = user(&dir, &["show", "ALICE"]);
    assert_eq!((code, by_name.lines().count()), (Some(0), 1));
    assert_eq!(by_name.lines().next(), stdout.lines().next(), "the same line as in the list");
    let (code, by_id, _) = user(&dir, &["show", "--id", "2"]);
    assert_eq!(code, Some(0));
    assert_eq!(by_id.lines().next(), stdout.lines().nth(1));
}

#[test]
fn user_disable_enable_revoke_sessions_and_delete_change_the_account_and_say_so() {
    let dir = tempfile::tempdir().unwrap();
    database_with_alice(&dir);
    sessions_of(&dir, 1, 2);

    let (code, stdout, stderr) = user(&dir, &["disable", "alice"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout, "alice (id 1) is disabled; its sessions ended\n", "no log line on stdout");
    let audit = audit_lines(&stderr);
    let disabled: Vec<_> = audit.iter().filter(|line| line["type"] == "account_disabled").collect();
    assert_eq!(disabled.len(), 1, "{stderr}");
    assert_eq!((&disabled[0]["actor"], &disabled[0]["subject"]), (&"operator".into(), &1.into()), "{stderr}");
    assert_eq!(audit.iter().filter(|line| line["type"] == "session_revoked").count(), 2, "{stderr}");
    assert_eq!(live_sessions(&dir, 1), 0);
    assert!(user(&dir, &["show", "alice"]).1.contains("\tdisabled\t"));
    // Idempotent.
    assert_eq!(user(&dir, &["disable", "--id", "1"]).0, Some(0));

    let (code, stdout, stderr) = user(&dir, &["enable", "alice"]);
    assert_eq!((code, stdout.as_str()), (Some(0), "alice (id 1) is enabled\n"), "{stderr}");
    assert_eq!(audit_lines(&stderr).iter().filter(|line| line["type"] == "account_enabled").count(), 1);
    assert!(user(&dir, &["show", "alice"]).1.contains("\tenabled\t"));

    sessions_of(&dir, 1, 3);
    let (code, stdout, _) = user(&dir, &["revoke-sessions", "alice"]);
    assert_eq!((code, stdout.as_str()), (Some(0), "alice (id 1): 3 session(s) ended\n"));
    assert_eq!(live_sessions(&dir, 1), 0);
    assert_eq!(user(&dir, &["revoke-sessions", "--id", "1"]).1, "alice (id 1): 0 session(s) ended\n");

    let (code, stdout, stderr) = user(&dir, &["delete", "alice"]);
    assert_eq!((code, stdout.as_str()), (Some(0), "alice (id 1) is deleted\n"), "{stderr}");
    assert_eq!(audit_lines(&stderr).iter().filter(|line| line["type"] == "account_deleted").count(), 1);
    assert_eq!(stored_role(&dir, "alice"), None);
}

#[test]
fn user_reset_mfa_removes_the_factor_and_its_codes_and_ends_the_sessions() {
    let dir = tempfile::tempdir().unwrap();
    database_with_alice(&dir);
    sessions_of(&dir, 1, 2);
    on_database(&dir, async |db| {
        model::query::mfa::begin_enrolment(db, 1, "v1.k1.sealed").await.unwrap();
        let codes = [model::query::mfa::RecoveryCodeHash { key_id: "k1".into(), code_hash: "ab".repeat(32) }];
        assert!(model::query::mfa::confirm(db, 1, "v1.k1.sealed", 7, &codes).await.unwrap());
        model::query::mfa::create_challenge(db, "pending", 1, chrono::Utc::now().timestamp() + 300).await.unwrap();
    });

    let (code, stdout, stderr) = user(&dir, &["reset-mfa", "alice"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout, "alice (id 1): second factor removed; its sessions ended\n");
    let audit = audit_lines(&stderr);
    let resets: Vec<_> = audit.iter().filter(|line| line["type"] == "mfa_reset").collect();
    assert_eq!(resets.len(), 1, "{stderr}");
    assert_eq!((&resets[0]["actor"], &resets[0]["subject"]), (&"operator".into(), &1.into()));
    assert_eq!(live_sessions(&dir, 1), 0);
    on_database(&dir, async |db| {
        assert!(model::query::mfa::find(db, 1).await.unwrap().is_none(), "the factor is gone");
        assert_eq!(model::query::mfa::unused_recovery_codes(db, 1).await.unwrap(), 0);
        let pending = model::query::mfa::find_challenge(db, "pending").await.unwrap().unwrap();
        assert!(pending.spent_at.is_some(), "the pending login ended too");
    });
    // Idempotent; an unknown account exits 3.
    assert_eq!(user(&dir, &["reset-mfa", "--id", "1"]).0, Some(0));
    assert_eq!(user(&dir, &["reset-mfa", "nobody"]).0, Some(3));
}

#[test]
fn user_commands_on_an_unknown_account_exit_3_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    database_with_alice(&dir);
    for (args, named) in [
        (&["show", "nobody"][..], r#"no user named "nobody""#),
        (&["show", "--id", "42"], "no user with id 42"),
        (&["disable", "nobody"], r#"no user named "nobody""#),
        (&["enable", "--id", "42"], "no user with id 42"),
        (&["delete", "nobody"], r#"no user named "nobody""#),
        (&["revoke-sessions", "--id", "42"], "no user with id 42"),
    ] {
        let (code, stdout, stderr) = user(&dir, args);
        assert_eq!(code, Some(3), "{args:?}: {stderr}");
        assert_eq!(stderr, format!("auth-svc: {named}\n"), "{args:?}");
        assert_eq!(stdout, "", "{args:?}");
    }
    // Nothing happened to alice.
    assert!(user(&dir, &["show", "alice"]).1.starts_with("1\talice\tuser\t"));
    assert!(user(&dir, &["show", "alice"]).1.contains("\tenabled\t"));
}

#[test]
fn user_commands_on_an_unreachable_database_exit_69() {
    let dir = tempfile::tempdir().unwrap();
    for args in [&["list"][..], &["disable", "alice"]] {
        let output = command(&dir)
            .env("AUTH_SVC__DATABASE_URL", "postgres://postgres@127.0.0.1:1/none")
            .env("AUTH_SVC__DATABASE__ACQUIRE_TIMEOUT_MS", "1000")
            .arg("user")
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(69), "{args:?}: {stderr}");
        assert!(stderr.starts_with("auth-svc: "), "{stderr}");
        assert!(output.stdout.is_empty());
    }
}

/// `auth-svc client ARGS…` on the database of `dir`: exit code, stdout, stderr.
fn client(dir: &tempfile::TempDir, args: &[&str]) -> (Option<i32>, String, String) {
    let output = command(dir).env_remove("RUST_LOG").arg("client").args(args).output().unwrap();
    let text = |bytes: Vec<u8>| String::from_utf8(bytes).unwrap();
    (output.status.code(), text(output.stdout), text(output.stderr))
}

#[test]
fn client_commands_create_list_rotate_disable_and_delete_and_print_a_secret_only_when_made() {
    let dir = tempfile::tempdir().unwrap();
    let migrate = command(&dir).arg("migrate").output().unwrap();
    assert!(migrate.status.success());
    let (code, stdout, stderr) = client(&dir, &["create", "Billing", "--id", "billing", "--scope", "introspect"]);
    assert_eq!(code, Some(0), "{stderr}");
    let (id, secret) = stdout.trim_end().split_once('\t').expect("id TAB secret");
    assert_eq!((id, secret.len(), &secret[..5]), ("billing", 48, "ascs_"));
    let stored =
        on_database(&dir, async |db| model::query::service_clients::find(db, "billing").await.unwrap().unwrap());
    assert_ne!(stored.secret_hash, secret, "only a hash is stored");
    assert!(stderr.contains("client_created") && !stderr.contains(secret), "audited, secret unlogged: {stderr}");

    let (code, listed, _) = client(&dir, &["list"]);
    assert_eq!(code, Some(0));
    assert!(listed.starts_with("billing\tBilling\tservice\tintrospect\t-\tenabled\t"), "{listed}");
    assert!(!listed.contains(secret));

    let (code, rotated, _) = client(&dir, &["rotate-secret", "billing"]);
    assert_eq!(code, Some(0));
    let new_secret = rotated.trim_end().split_once('\t').unwrap().1;
    assert_ne!(new_secret, secret);
    assert_eq!(client(&dir, &["disable", "billing"]).1, "client billing is disabled\n");
    assert!(client(&dir, &["list"]).1.contains("\tdisabled\t"));
    assert_eq!(client(&dir, &["enable", "billing"]).1, "client billing is enabled\n");
    assert_eq!(client(&dir, &["delete", "billing"]).1, "client billing is deleted\n");
    assert_eq!(client(&dir, &["list"]).1, "");
}

#[test]
fn client_commands_exit_3_on_an_unknown_client_and_64_on_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    assert!(command(&dir).arg("migrate").output().unwrap().status.success());
    for args in [&["rotate-secret", "nope"][..], &["disable", "nope"], &["enable", "nope"], &["delete", "nope"]] {
        let (code, stdout, stderr) = client(&dir, args);
        assert_eq!(code, Some(3), "{args:?}: {stderr}");
        assert_eq!(stderr, "auth-svc: no client with id \"nope\"\n", "{args:?}");
        assert_eq!(stdout, "");
    }
    for args in [&["create", "X", "--id", "has space"][..], &["create", "X", "--scope", "unknown-scope"]] {
        let (code, stdout, stderr) = client(&dir, args);
        assert_eq!(code, Some(64), "{args:?}: {stderr}");
        assert_eq!(stdout, "", "no secret is printed for a client that was not made");
    }
    let (code, _, _) = client(&dir, &["create", "X", "--id", "dup"]);
    assert_eq!(code, Some(0));
    let (code, _, stderr) = client(&dir, &["create", "Y", "--id", "dup"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("client id already exists"), "{stderr}");
}
