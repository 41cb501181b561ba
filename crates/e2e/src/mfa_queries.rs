//! The store queries of the second factor (issue 19), run on the database of
//! `AUTH_TEST_DATABASE_URL` (SQLite when unset): enrolment and its confirmation, the replay
//! guard, single-use recovery codes and login challenges (each once only under racing callers,
//! as replicas would race), disabling, what goes with a deleted account, the purge, the
//! session's `amr` column, and the migration that makes it all.

use futures::future::join_all;
use model::{
    DatabaseConnection, PoolOptions, StoreError,
    entity::{recovery_codes, refresh_tokens, users},
    migration::{self, Migrator, MigratorTrait},
    query::{
        mfa::{
            RecoveryCodeHash, begin_enrolment, confirm, count_failure, create_challenge, delete, find, find_challenge,
            purge_expired_challenges, record_step, replace_recovery_codes, spend_challenge, use_recovery_code,
        },
        refresh_tokens::NewRefreshToken,
    },
};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};

use crate::helpers::TestDatabase;

/// A migrated database of one test (kept alive by the returned guard).
async fn store() -> (DatabaseConnection, TestDatabase) {
    let database = TestDatabase::create().await;
    let (db, _) = model::connect(&database.url, &PoolOptions::default()).await.unwrap();
    migration::run(&db).await.unwrap();
    (db, database)
}

async fn account(db: &DatabaseConnection, username: &str) -> users::Model {
    model::query::users::insert(db, username, "$argon2id$not-a-real-hash", "user").await.unwrap()
}

/// A stand-in for a sealed secret (the store never opens one).
fn sealed(n: u32) -> String {
    format!("v1.k1.{}", "s".repeat(70 + usize::try_from(n).unwrap()))
}

/// Stand-ins for keyed hashes of recovery codes: `count` codes numbered from `first`.
fn code_hashes(key_id: &str, first: u32, count: u32) -> Vec<RecoveryCodeHash> {
    (first..first + count).map(|n| code_hash(key_id, n)).collect()
}

fn code_hash(key_id: &str, n: u32) -> RecoveryCodeHash {
    RecoveryCodeHash { key_id: key_id.to_owned(), code_hash: format!("{n:064x}") }
}

/// The account's recovery codes in id order: (hash, key id, used).
async fn stored_codes(db: &DatabaseConnection, user_id: i64) -> Vec<(String, String, bool)> {
    recovery_codes::Entity::find()
        .filter(recovery_codes::Column::UserId.eq(user_id))
        .order_by_asc(recovery_codes::Column::Id)
        .all(db)
        .await
        .unwrap()
        .into_iter()
        .map(|row| (row.code_hash, row.key_id, row.used_at.is_some()))
        .collect()
}

fn hashes_of(codes: &[RecoveryCodeHash]) -> Vec<String> {
    codes.iter().map(|code| code.code_hash.clone()).collect()
}

/// Within a minute of now (the database's clock or this process's: one machine).
fn assert_recent(when: chrono::NaiveDateTime, what: &str) {
    let age = chrono::Utc::now().naive_utc() - when;
    assert!(age.num_seconds().abs() < 60, "{what} is now: {when}");
}

/// An account whose factor is confirmed (at step 100), with three recovery codes under `k1`.
async fn enrolled(db: &DatabaseConnection, username: &str) -> users::Model {
    let user = account(db, username).await;
    assert!(begin_enrolment(db, user.id, &sealed(1)).await.unwrap());
    assert!(confirm(db, user.id, &sealed(1), 100, &code_hashes("k1", 1, 3)).await.unwrap());
    user
}

#[tokio::test]
async fn an_enrolment_is_begun_again_until_it_is_confirmed_and_then_refused() {
    let (db, _guard) = store().await;
    let alice = account(&db, "alice").await;
    let bob = account(&db, "bob").await;

    assert!(begin_enrolment(&db, alice.id, &sealed(1)).await.unwrap());
    let begun = find(&db, alice.id).await.unwrap().unwrap();
    assert_eq!((begun.secret_sealed.as_str(), begun.confirmed_at, begun.last_used_step), (&*sealed(1), None, None));
    assert_recent(begun.created_at, "created_at");
    // Begun is not active: no step can be recorded on it.
    assert!(!record_step(&db, alice.id, 5).await.unwrap());

    // Beginning again replaces the secret of the unconfirmed row.
    assert!(begin_enrolment(&db, alice.id, &sealed(2)).await.unwrap());
    assert_eq!(find(&db, alice.id).await.unwrap().unwrap().secret_sealed, sealed(2));
    // A code checked against the replaced secret cannot confirm the new one.
    assert!(!confirm(&db, alice.id, &sealed(1), 100, &code_hashes("k1", 1, 3)).await.unwrap());
    assert_eq!(find(&db, alice.id).await.unwrap().unwrap().confirmed_at, None);
    assert!(stored_codes(&db, alice.id).await.is_empty(), "a refused confirmation writes no codes");

    let codes = code_hashes("k1", 1, 10);
    assert!(confirm(&db, alice.id, &sealed(2), 100, &codes).await.unwrap());
    let active = find(&db, alice.id).await.unwrap().unwrap();
    assert_recent(active.confirmed_at.expect("confirmed"), "confirmed_at");
    assert_eq!(active.last_used_step, Some(100), "the confirming code's step is used");
    let stored = stored_codes(&db, alice.id).await;
    assert_eq!(stored.iter().map(|(hash, _, _)| hash.clone()).collect::<Vec<_>>(), hashes_of(&codes));
    assert!(stored.iter().all(|(_, key_id, used)| key_id == "k1" && !used));

    // Once confirmed, neither a new enrolment nor a second confirmation touches it.
    assert!(!begin_enrolment(&db, alice.id, &sealed(3)).await.unwrap());
    assert!(!confirm(&db, alice.id, &sealed(2), 200, &code_hashes("k1", 50, 2)).await.unwrap());
    assert_eq!(find(&db, alice.id).await.unwrap().unwrap(), active);
    assert_eq!(stored_codes(&db, alice.id).await, stored);

    // Another account is untouched; an account that does not exist cannot enrol.
    assert_eq!(find(&db, bob.id).await.unwrap(), None);
    let missing = begin_enrolment(&db, bob.id + 1000, &sealed(1)).await;
    assert!(matches!(missing, Err(StoreError::OwnerGone)), "{missing:?}");
}

#[tokio::test]
async fn racing_enrolments_of_one_account_leave_one_unconfirmed_row() {
    let (db, _guard) = store().await;
    let alice = account(&db, "alice").await;
    let secrets: Vec<String> = (0..8).map(sealed).collect();
    let begun = join_all(secrets.iter().map(|secret| begin_enrolment(&db, alice.id, secret))).await;
    assert!(begun.iter().all(|result| matches!(result, Ok(true))), "{begun:?}");
    let row = find(&db, alice.id).await.unwrap().unwrap();
    assert!(secrets.contains(&row.secret_sealed));
    assert_eq!(row.confirmed_at, None);
}

#[tokio::test]
async fn a_step_is_recorded_only_forward_and_once_under_racing_replicas() {
    let (db, _guard) = store().await;
    let alice = enrolled(&db, "alice").await;
    // The confirming code's step (100) and older ones are spent.
    assert!(!record_step(&db, alice.id, 100).await.unwrap());
    assert!(!record_step(&db, alice.id, 99).await.unwrap());
    assert!(record_step(&db, alice.id, 101).await.unwrap());
    assert!(!record_step(&db, alice.id, 101).await.unwrap(), "the same code twice");
    assert!(record_step(&db, alice.id, 103).await.unwrap());
    assert!(!record_step(&db, alice.id, 102).await.unwrap(), "an older code after a newer one");
    assert_eq!(find(&db, alice.id).await.unwrap().unwrap().last_used_step, Some(103));

    // Eight replicas accept the same code at once: exactly one may use it.
    for (round, step) in (104..114).enumerate() {
        let results = join_all((0..8).map(|_| record_step(&db, alice.id, step))).await;
        let winners = results.iter().filter(|result| matches!(result, Ok(true))).count();
        assert_eq!(winners, 1, "round {round}: {results:?}");
        assert!(results.iter().all(Result::is_ok), "round {round}: {results:?}");
    }
    assert_eq!(find(&db, alice.id).await.unwrap().unwrap().last_used_step, Some(113));
    // No account, no factor.
    assert!(!record_step(&db, alice.id + 1000, 500).await.unwrap());
}

#[tokio::test]
async fn a_recovery_code_is_used_once_and_only_by_its_account() {
    let (db, _guard) = store().await;
    let alice = enrolled(&db, "alice").await;
    let bob = enrolled(&db, "bob").await;

    assert!(use_recovery_code(&db, alice.id, &[code_hash("k1", 2)]).await.unwrap());
    assert!(!use_recovery_code(&db, alice.id, &[code_hash("k1", 2)]).await.unwrap(), "used already");
    let stored = stored_codes(&db, alice.id).await;
    assert_eq!(stored.iter().map(|(_, _, used)| *used).collect::<Vec<_>>(), [false, true, false]);
    let used_at = recovery_codes::Entity::find()
        .filter(recovery_codes::Column::UserId.eq(alice.id))
        .filter(recovery_codes::Column::UsedAt.is_not_null())
        .one(&db)
        .await
        .unwrap()
        .unwrap()
        .used_at
        .unwrap();
    assert_recent(used_at, "used_at");

    // Bob has a code with the same hash; Alice's use left it alone, and hers is not his.
    assert_eq!(stored_codes(&db, bob.id).await.iter().filter(|(_, _, used)| *used).count(), 0);
    assert!(!use_recovery_code(&db, bob.id, &[code_hash("k1", 9)]).await.unwrap());
    // The hash must be the one recorded under its key: the same hash under another key id is
    // another code.
    assert!(!use_recovery_code(&db, alice.id, &[code_hash("k2", 1)]).await.unwrap());
    // Candidates under several keys (a key ring after a rotation): the stored one matches.
    assert!(use_recovery_code(&db, alice.id, &[code_hash("k2", 3), code_hash("k1", 3)]).await.unwrap());
    assert!(!use_recovery_code(&db, alice.id, &[]).await.unwrap());

    // Eight replicas given the same code at once: exactly one may use it.
    let code = [code_hash("k1", 1)];
    let results = join_all((0..8).map(|_| use_recovery_code(&db, bob.id, &code))).await;
    let winners = results.iter().filter(|result| matches!(result, Ok(true))).count();
    assert_eq!(winners, 1, "{results:?}");
    assert!(results.iter().all(Result::is_ok), "{results:?}");
}

#[tokio::test]
async fn regenerating_recovery_codes_replaces_used_and_unused_ones() {
    let (db, _guard) = store().await;
    let alice = enrolled(&db, "alice").await;
    assert!(use_recovery_code(&db, alice.id, &[code_hash("k1", 1)]).await.unwrap());

    let fresh = code_hashes("k2", 10, 10);
    replace_recovery_codes(&db, alice.id, &fresh).await.unwrap();
    let stored = stored_codes(&db, alice.id).await;
    assert_eq!(stored.iter().map(|(hash, _, _)| hash.clone()).collect::<Vec<_>>(), hashes_of(&fresh));
    assert!(stored.iter().all(|(_, key_id, used)| key_id == "k2" && !used));
    assert!(!use_recovery_code(&db, alice.id, &[code_hash("k1", 2)]).await.unwrap(), "an old code is gone");
    assert!(use_recovery_code(&db, alice.id, &[code_hash("k2", 15)]).await.unwrap());

    replace_recovery_codes(&db, alice.id, &[]).await.unwrap();
    assert!(stored_codes(&db, alice.id).await.is_empty());
    let missing = replace_recovery_codes(&db, alice.id + 1000, &fresh).await;
    assert!(matches!(missing, Err(StoreError::OwnerGone)), "{missing:?}");
}

#[tokio::test]
async fn disabling_removes_the_factor_and_its_codes_and_a_deleted_account_takes_everything() {
    let (db, _guard) = store().await;
    let alice = enrolled(&db, "alice").await;
    let bob = enrolled(&db, "bob").await;

    assert!(delete(&db, alice.id).await.unwrap());
    assert_eq!(find(&db, alice.id).await.unwrap(), None);
    assert!(stored_codes(&db, alice.id).await.is_empty());
    assert!(!delete(&db, alice.id).await.unwrap());
    assert!(!record_step(&db, alice.id, 500).await.unwrap());
    // Enrolment can begin again.
    assert!(begin_enrolment(&db, alice.id, &sealed(4)).await.unwrap());
    // A begun enrolment is removed the same way.
    assert!(delete(&db, alice.id).await.unwrap());
    assert_eq!(find(&db, alice.id).await.unwrap(), None);

    // Bob's rows are his own.
    assert!(find(&db, bob.id).await.unwrap().is_some());
    assert_eq!(stored_codes(&db, bob.id).await.len(), 3);

    // Deleting the account deletes its factor, codes and challenges (foreign keys, cascading).
    create_challenge(&db, "c-bob", bob.id, 2_000_000_000).await.unwrap();
    assert!(model::query::users::delete(&db, bob.id).await.unwrap());
    assert_eq!(find(&db, bob.id).await.unwrap(), None);
    assert!(stored_codes(&db, bob.id).await.is_empty());
    assert_eq!(find_challenge(&db, "c-bob").await.unwrap(), None);
}

#[tokio::test]
async fn a_challenge_is_spent_once_and_never_after_it_expires() {
    let (db, _guard) = store().await;
    let alice = account(&db, "alice").await;
    let now = 1_800_000_000;
    create_challenge(&db, "c-1", alice.id, now + 300).await.unwrap();
    let open = find_challenge(&db, "c-1").await.unwrap().unwrap();
    assert_eq!((open.user_id, open.expires_at, open.spent_at, open.failed_attempts), (alice.id, now + 300, None, 0));

    assert!(spend_challenge(&db, "c-1", now).await.unwrap());
    assert_eq!(find_challenge(&db, "c-1").await.unwrap().unwrap().spent_at, Some(now));
    assert!(!spend_challenge(&db, "c-1", now + 1).await.unwrap(), "single use");
    assert!(!spend_challenge(&db, "nope", now).await.unwrap());

    // At its expiry second it is over.
    create_challenge(&db, "c-2", alice.id, now + 300).await.unwrap();
    assert!(!spend_challenge(&db, "c-2", now + 300).await.unwrap());
    assert!(spend_challenge(&db, "c-2", now + 299).await.unwrap());

    // One id is one challenge; an unknown account has none.
    assert!(create_challenge(&db, "c-2", alice.id, now + 300).await.is_err());
    let missing = create_challenge(&db, "c-3", alice.id + 1000, now + 300).await;
    assert!(matches!(missing, Err(StoreError::OwnerGone)), "{missing:?}");

    // Eight replicas given the same challenge at once: exactly one may spend it.
    for round in 0..10 {
        let id = format!("race-{round}");
        create_challenge(&db, &id, alice.id, now + 300).await.unwrap();
        let results = join_all((0..8).map(|_| spend_challenge(&db, &id, now))).await;
        let winners = results.iter().filter(|result| matches!(result, Ok(true))).count();
        assert_eq!(winners, 1, "round {round}: {results:?}");
        assert!(results.iter().all(Result::is_ok), "round {round}: {results:?}");
    }
}

#[tokio::test]
async fn wrong_codes_are_counted_and_the_last_allowed_one_spends_the_challenge() {
    let (db, _guard) = store().await;
    let alice = account(&db, "alice").await;
    let now = 1_800_000_000;
    create_challenge(&db, "c-1", alice.id, now + 300).await.unwrap();
    for expected in 1..=2 {
        let row = count_failure(&db, "c-1", 3, now).await.unwrap().unwrap();
        assert_eq!((row.failed_attempts, row.spent_at), (expected, None));
    }
    let third = count_failure(&db, "c-1", 3, now + 5).await.unwrap().unwrap();
    assert_eq!((third.failed_attempts, third.spent_at), (3, Some(now + 5)), "the third spends it");
    let after = count_failure(&db, "c-1", 3, now + 6).await.unwrap().unwrap();
    assert_eq!((after.failed_attempts, after.spent_at), (3, Some(now + 5)), "a spent one counts no more");
    assert!(!spend_challenge(&db, "c-1", now + 7).await.unwrap(), "the right code comes too late");
    assert_eq!(count_failure(&db, "nope", 3, now).await.unwrap(), None);

    // Forty wrong codes at once with a limit of five: five are counted, each once (each call
    // reads back its own count), and the fifth spends the challenge.
    create_challenge(&db, "c-2", alice.id, now + 300).await.unwrap();
    let rows: Vec<_> = join_all((0..40).map(|_| count_failure(&db, "c-2", 5, now)))
        .await
        .into_iter()
        .map(|row| row.unwrap().unwrap())
        .collect();
    let mut open: Vec<i32> = rows.iter().filter(|row| row.spent_at.is_none()).map(|row| row.failed_attempts).collect();
    open.sort_unstable();
    assert_eq!(open, [1, 2, 3, 4], "{rows:?}");
    assert!(rows.iter().all(|row| row.spent_at.is_none() || (row.failed_attempts, row.spent_at) == (5, Some(now))));
    let row = find_challenge(&db, "c-2").await.unwrap().unwrap();
    assert_eq!((row.failed_attempts, row.spent_at), (5, Some(now)));
}

#[tokio::test]
async fn the_purge_removes_expired_challenges_in_batches() {
    let (db, _guard) = store().await;
    let alice = account(&db, "alice").await;
    for n in 0..5 {
        create_challenge(&db, &format!("old-{n}"), alice.id, 1_000 + n).await.unwrap();
    }
    create_challenge(&db, "edge", alice.id, 2_000).await.unwrap();
    create_challenge(&db, "live", alice.id, 3_000).await.unwrap();
    assert_eq!(purge_expired_challenges(&db, 2_000, 3).await.unwrap(), 3);
    assert_eq!(purge_expired_challenges(&db, 2_000, 3).await.unwrap(), 2);
    assert_eq!(purge_expired_challenges(&db, 2_000, 3).await.unwrap(), 0);
    // Expiring at the cutoff is not before it.
    assert!(find_challenge(&db, "edge").await.unwrap().is_some());
    assert!(find_challenge(&db, "live").await.unwrap().is_some());
    assert_eq!(purge_expired_challenges(&db, 3_001, 10).await.unwrap(), 2);
}

#[tokio::test]
async fn a_session_row_carries_how_it_was_authenticated() {
    let (db, _guard) = store().await;
    let alice = account(&db, "alice").await;
    let token = NewRefreshToken {
        id: "r-1".into(),
        family_id: "f-1".into(),
        user_id: alice.id,
        access_jti: "a-1".into(),
        issued_at: 1_800_000_000,
        expires_at: 1_800_086_400,
        client_address: None,
        user_agent: None,
        amr: Some("pwd otp".into()),
        session_started_at: 1_800_000_000,
    };
    let inserted = model::query::refresh_tokens::insert(&db, token).await.unwrap();
    assert_eq!(inserted.amr.as_deref(), Some("pwd otp"));
    let row = refresh_tokens::Entity::find_by_id("r-1".to_owned()).one(&db).await.unwrap().unwrap();
    assert_eq!(row.amr.as_deref(), Some("pwd otp"), "as written, read back");
}

/// The name the migration of these tables records in `seaql_migrations`.
const MIGRATION: &str = "m20261201_000008_second_factor";

/// A run that did its work and stopped before it was recorded (MySQL commits each DDL
/// statement on its own) runs again without harm and keeps the rows; `down` then `up` drops and
/// remakes the tables and the column.
#[tokio::test]
async fn the_migration_runs_again_over_its_tables_and_rolls_back() {
    let (db, _guard) = store().await;
    let alice = enrolled(&db, "alice").await;
    create_challenge(&db, "c-1", alice.id, 2_000_000_000).await.unwrap();

    db.execute_unprepared(&format!("DELETE FROM seaql_migrations WHERE version = '{MIGRATION}'")).await.unwrap();
    assert_eq!(migration::pending(&db).await.unwrap(), 1, "{MIGRATION} is the name recorded");
    migration::run(&db).await.expect("the tables, indexes and column are there already");
    assert_eq!(migration::pending(&db).await.unwrap(), 0);
    assert_eq!(find(&db, alice.id).await.unwrap().unwrap().last_used_step, Some(100));
    assert_eq!(stored_codes(&db, alice.id).await.len(), 3);
    assert!(find_challenge(&db, "c-1").await.unwrap().is_some());
    // The unique key is still the one the table was made with.
    let twice = [code_hash("k1", 7), code_hash("k1", 7)];
    assert!(replace_recovery_codes(&db, alice.id, &twice).await.is_err());
    assert_eq!(stored_codes(&db, alice.id).await.len(), 3, "the failed replacement rolled back");

    // It and the migrations after it are rolled back.
    let migrations = Migrator::migrations();
    let from_it = migrations.len() - migrations.iter().position(|m| m.name() == MIGRATION).unwrap();
    Migrator::down(&db, Some(u32::try_from(from_it).unwrap())).await.unwrap();
    assert_eq!(migration::pending(&db).await.unwrap(), from_it);
    for probe in [
        "SELECT user_id FROM user_totp",
        "SELECT id FROM recovery_codes",
        "SELECT id FROM mfa_challenges",
        "SELECT amr FROM refresh_tokens",
    ] {
        assert!(db.execute_unprepared(probe).await.is_err(), "gone: {probe}");
    }
    migration::run(&db).await.unwrap();
    assert_eq!(migration::pending(&db).await.unwrap(), 0);
    assert_eq!(find(&db, alice.id).await.unwrap(), None, "new, empty tables");
    assert!(begin_enrolment(&db, alice.id, &sealed(1)).await.unwrap());
}
