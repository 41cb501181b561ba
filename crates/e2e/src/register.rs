use futures::future::join_all;
use tonic::Code;

use crate::helpers::{PASSWORD, assert_status, bearer, spawn_app, spawn_app_with};

#[tokio::test]
async fn register_creates_a_user_with_role_user_and_a_trimmed_name() {
    let app = spawn_app().await;
    let created = app.try_register("  alice ", PASSWORD).await.unwrap();
    assert!(created.id > 0);
    assert_eq!((created.username.as_str(), created.role.as_str()), ("alice", "user"));

    let stored = model::query::users::find_by_username(&app.db, "alice").await.unwrap().unwrap();
    assert!(stored.password_hash.starts_with("$argon2id$"), "stored as a PHC string");
    assert!(!stored.password_hash.contains(PASSWORD));
}

#[tokio::test]
async fn register_refuses_bad_input_with_invalid_argument() {
    let app = spawn_app_with(|c| c.password.min_length = 10).await;
    let (long_name, long_password) = ("x".repeat(65), "p".repeat(1025));
    let cases = [
        ("", PASSWORD, "username must not be empty"),
        ("   ", PASSWORD, "username must not be empty"),
        ("bob\u{7}", PASSWORD, "username must not contain control characters"),
        (&long_name, PASSWORD, "username must be at most 64 characters"),
        ("bob", "123456789", "password must be at least 10 characters"),
        ("bob", "", "password must not be empty"),
        ("bob", &long_password, "password must be at most 1024 bytes"),
    ];
    for (username, password, message) in cases {
        assert_status(app.try_register(username, password).await, Code::InvalidArgument, message);
    }
    // At the cap exactly is fine.
    app.try_register("bob", &"p".repeat(1024)).await.expect("1024 bytes is allowed");
}

#[tokio::test]
async fn a_taken_username_is_already_exists() {
    let app = spawn_app().await;
    app.register("carol").await;
    assert_status(app.try_register(" carol", PASSWORD).await, Code::AlreadyExists, "username already exists");
}

#[tokio::test]
async fn fifty_concurrent_registrations_of_one_name_give_exactly_one_account() {
    let app = spawn_app().await;
    let results = join_all((0..50).map(|_| app.try_register("dave", PASSWORD))).await;
    let created = results.iter().filter(|r| r.is_ok()).count();
    let taken = results.iter().filter(|r| matches!(r, Err(s) if s.code() == Code::AlreadyExists)).count();
    assert_eq!((created, taken), (1, 49), "{:?}", results.iter().filter_map(|r| r.as_ref().err()).collect::<Vec<_>>());
}

#[tokio::test]
async fn usernames_compare_by_rfc_8265_on_every_backend() {
    let app = spawn_app().await;
    app.register("alice").await;
    // Case is not a new name (RFC 8265 UsernameCaseMapped); accents are, on every backend
    // (MySQL's default collation would merge them; see usernames.rs for the whole rule).
    for same in ["Alice", "ALICE"] {
        assert_status(app.try_register(same, PASSWORD).await, Code::AlreadyExists, "username already exists");
    }
    app.try_register("alic\u{e9}", PASSWORD).await.expect("alicé is another name");
    let status = app.login("ALICE", "not the password").await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let alice = app.login("ALICE", PASSWORD).await.unwrap();
    let info = app.user_info(&bearer(&alice.access_token)).await.unwrap();
    assert_eq!(info.username, "alice");
}
