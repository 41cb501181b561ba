//! Contract tests of auth-svc's three store traits: each trait's behaviours are written once,
//! as a function over `&dyn Trait`, and every implementation runs them: the in-process one
//! always, the Redis one when `AUTH_TEST_REDIS_URL` is set (the with-Redis variants of
//! `.ci/run`). So the two cannot drift apart. The behaviours are those the traits' docs
//! promise and the in-process unit tests check; what only one implementation has (the
//! in-process capacity and eviction) stays in that implementation's unit tests.
//!
//! Each behaviour uses keys (ids, names) of its own, so they share one store without
//! seeing each other; a Redis store gets a fresh key prefix per test.

use std::{sync::Arc, time::Duration};

use auth_svc::{
    domain::User,
    store::{
        cache::{CacheTtl, Lookup, MemoryUserCache, RedisUserCache, UserCache},
        revocation::{MemoryRevocationList, RedisRevocationList, RevocationList},
        throttle::{AttemptLog, KeyLimit, MemoryAttemptLog, Outcome, RedisAttemptLog, Reserved, Ticket},
    },
};
use futures::future::join_all;

use crate::helpers::{redis_or_skip, redis_store};

/// Redis pool for these tests: roomy, so that 64 reservations at once wait for a connection
/// rather than time out (a timeout would read as "Redis cannot answer").
const POOL_SIZE: usize = 8;
const TIMEOUT_MS: u64 = 2000;

/// Redis keeps TTLs in whole seconds, at least one: the shortest lifetime both
/// implementations honour alike. Entries given it are checked again after [`PAST_ONE_SECOND`].
const ONE_SECOND: Duration = Duration::from_secs(1);
const PAST_ONE_SECOND: Duration = Duration::from_millis(1500);

// --- auth_svc::store::cache::UserCache -----------------------------------------------------------

const CACHE_TTL: CacheTtl = CacheTtl { row: Duration::from_secs(300), missing: Duration::from_secs(300) };
const SHORT_CACHE_TTL: CacheTtl = CacheTtl { row: ONE_SECOND, missing: ONE_SECOND };

fn user(id: i64, role: &str) -> User {
    User {
        id,
        username: format!("User{id}"),
        username_canonical: format!("user{id}"),
        role: role.into(),
        disabled: false,
    }
}

/// What `cache` holds for `id`: `None` a miss, `Some(None)` known missing, `Some(Some(row))` a hit.
async fn lookup(cache: &dyn UserCache, id: i64) -> Option<Option<User>> {
    match cache.by_id(id).await {
        Lookup::Hit(user) => Some(Some(user)),
        Lookup::KnownMissing => Some(None),
        Lookup::Miss => None,
    }
}

/// Every behaviour of a user cache. `new_cache(ttl)` makes a cache with these lifetimes.
async fn user_cache_contract(new_cache: impl Fn(CacheTtl) -> Arc<dyn UserCache>) {
    let cache = new_cache(CACHE_TTL);
    let cache = cache.as_ref();
    an_empty_cache_misses(cache).await;
    a_stored_row_is_found_by_id_and_by_canonical_name(cache).await;
    an_unknown_id_is_remembered_as_missing_until_a_row_is_stored(cache).await;
    a_stored_row_replaces_the_one_before(cache).await;
    forget_drops_both_keys_of_one_account_only(cache).await;
    forget_all_drops_every_account_it_names(cache).await;
    entries_expire_with_their_ttl(new_cache(SHORT_CACHE_TTL).as_ref()).await;
}

async fn an_empty_cache_misses(cache: &dyn UserCache) {
    assert_eq!(lookup(cache, 100).await, None, "an id never stored is a miss");
    assert_eq!(cache.id_of("user100").await, None, "a name never stored has no id");
}

async fn a_stored_row_is_found_by_id_and_by_canonical_name(cache: &dyn UserCache) {
    let row = user(200, "user");
    cache.store(&row).await;
    assert_eq!(lookup(cache, 200).await, Some(Some(row)), "the very row, every field");
    assert_eq!(cache.id_of("user200").await, Some(200));
    assert_eq!(cache.id_of("User200").await, None, "the index is by canonical name only");
}

async fn an_unknown_id_is_remembered_as_missing_until_a_row_is_stored(cache: &dyn UserCache) {
    cache.store_missing(300).await;
    assert_eq!(lookup(cache, 300).await, Some(None), "known missing");
    assert_eq!(cache.id_of("user300").await, None, "a missing id names no one");
    let row = user(300, "user");
    cache.store(&row).await;
    assert_eq!(lookup(cache, 300).await, Some(Some(row)), "a row stored later wins over the missing entry");
}

async fn a_stored_row_replaces_the_one_before(cache: &dyn UserCache) {
    cache.store(&user(400, "user")).await;
    cache.store(&user(400, "admin")).await;
    assert_eq!(lookup(cache, 400).await, Some(Some(user(400, "admin"))));
}

async fn forget_drops_both_keys_of_one_account_only(cache: &dyn UserCache) {
    cache.store(&user(500, "user")).await;
    cache.store(&user(501, "user")).await;
    assert!(cache.forget(500, "user500").await, "forget says it was done");
    assert_eq!(lookup(cache, 500).await, None);
    assert_eq!(cache.id_of("user500").await, None);
    assert_eq!(lookup(cache, 501).await, Some(Some(user(501, "user"))), "another account is kept");
    assert_eq!(cache.id_of("user501").await, Some(501));
    assert!(cache.forget(502, "user502").await, "forgetting what was never cached is done too");
    cache.store_missing(503).await;
    assert!(cache.forget(503, "user503").await);
    assert_eq!(lookup(cache, 503).await, None, "forget drops a missing entry too");
}

async fn forget_all_drops_every_account_it_names(cache: &dyn UserCache) {
    for id in 600..610 {
        cache.store(&user(id, "user")).await;
    }
    let forgotten: Vec<(i64, String)> = (600..609).map(|id| (id, format!("user{id}"))).collect();
    assert!(cache.forget_all(&forgotten).await, "forget_all says every one was done");
    for (id, canonical) in &forgotten {
        assert_eq!(lookup(cache, *id).await, None, "{canonical}");
        assert_eq!(cache.id_of(canonical).await, None, "{canonical}");
    }
    assert_eq!(lookup(cache, 609).await, Some(Some(user(609, "user"))), "an account not named is kept");
    assert!(cache.forget_all(&[]).await, "nothing to forget is done");
}

async fn entries_expire_with_their_ttl(cache: &dyn UserCache) {
    cache.store(&user(700, "user")).await;
    cache.store_missing(701).await;
    assert!(lookup(cache, 700).await.is_some() && lookup(cache, 701).await.is_some(), "held at first");
    tokio::time::sleep(PAST_ONE_SECOND).await;
    assert_eq!(lookup(cache, 700).await, None, "the row expired");
    assert_eq!(cache.id_of("user700").await, None, "its name index expired with it");
    assert_eq!(lookup(cache, 701).await, None, "the missing entry expired");
}

#[tokio::test]
async fn the_memory_user_cache_keeps_the_contract() {
    user_cache_contract(|ttl| Arc::new(MemoryUserCache::new(ttl))).await;
}

#[tokio::test]
async fn the_redis_user_cache_keeps_the_contract() {
    let Some(url) = redis_or_skip("store_contracts::the_redis_user_cache_keeps_the_contract") else { return };
    user_cache_contract(|ttl| Arc::new(RedisUserCache::new(redis_store(&url, POOL_SIZE, TIMEOUT_MS), ttl))).await;
}

// --- auth_svc::store::throttle::AttemptLog -------------------------------------------------------

const WINDOW: Duration = Duration::from_secs(60);

fn key(name: &str, limit: u32) -> Vec<KeyLimit> {
    vec![KeyLimit::new(name, limit)]
}

#[track_caller]
fn granted(reserved: Option<Reserved>) -> Ticket {
    match reserved {
        Some(Reserved::Granted(ticket)) => ticket,
        other => panic!("expected a grant, got {other:?}"),
    }
}

fn is_refused(reserved: &Option<Reserved>) -> bool {
    matches!(reserved, Some(Reserved::Refused { .. }))
}

/// Records one failed attempt under `keys`.
async fn fail_once(log: &dyn AttemptLog, keys: &[KeyLimit], window: Duration) {
    let failed = granted(log.reserve(keys, window).await);
    log.settle(keys, &failed, Outcome::Failed, window).await.expect("settled");
}

/// Every behaviour of an attempt log.
async fn attempt_log_contract(log: &dyn AttemptLog) {
    concurrent_reservations_never_exceed_the_limit(log).await;
    the_reservation_rules_step_by_step(log).await;
    pending_attempts_count_and_a_cancelled_one_does_not(log).await;
    a_key_may_have_only_so_many_attempts_in_flight(log).await;
    keys_are_counted_apart(log).await;
    attempts_leave_the_window_and_retry_after_says_when(log).await;
}

async fn concurrent_reservations_never_exceed_the_limit(log: &dyn AttemptLog) {
    let victim = key("user:victim", 5);
    let results = join_all((0..64).map(|_| log.reserve(&victim, WINDOW))).await;
    let grants = results.iter().filter(|r| matches!(r, Some(Reserved::Granted(_)))).count();
    assert_eq!(grants, 5, "64 reservations at once, a limit of 5");
    assert!(results.iter().all(|r| r.is_some()), "every reservation was answered");
}

/// Atomic over two keys, pending attempts count, a success clears only the failures recorded
/// before it began, a cancelled attempt leaves nothing.
async fn the_reservation_rules_step_by_step(log: &dyn AttemptLog) {
    let user = key("user:alice", 4);
    for _ in 0..2 {
        fail_once(log, &user, WINDOW).await;
    }
    // No pause: a failure recorded just before a success began is "before" it.
    let in_flight = granted(log.reserve(&user, WINDOW).await);
    let success = granted(log.reserve(&user, WINDOW).await);
    assert!(success.started_us > in_flight.started_us);
    log.settle(&user, &success, Outcome::Succeeded { clear_failures_of: Some(0) }, WINDOW).await.unwrap();
    log.settle(&user, &in_flight, Outcome::Failed, WINDOW).await.unwrap();
    for _ in 0..3 {
        granted(log.reserve(&user, WINDOW).await);
    }
    match log.reserve(&user, WINDOW).await {
        Some(Reserved::Refused { retry_after, in_flight: false }) => assert!(retry_after <= WINDOW, "{retry_after:?}"),
        other => panic!("the in-flight failure still counts: {other:?}"),
    }

    // All or nothing over two keys.
    let address = key("addr:203.0.113.9", 1);
    let taken = granted(log.reserve(&address, WINDOW).await);
    let both = vec![KeyLimit::new("user:bob", 1), address[0].clone()];
    assert!(is_refused(&log.reserve(&both, WINDOW).await));
    let bob = vec![both[0].clone()];
    let cancelled = granted(log.reserve(&bob, WINDOW).await);
    log.settle(&bob, &cancelled, Outcome::Cancelled, WINDOW).await.unwrap();
    granted(log.reserve(&bob, WINDOW).await);
    log.settle(&address, &taken, Outcome::Cancelled, WINDOW).await.unwrap();
}

async fn pending_attempts_count_and_a_cancelled_one_does_not(log: &dyn AttemptLog) {
    let keys = key("user:carol", 1);
    let cancelled = granted(log.reserve(&keys, WINDOW).await);
    assert!(is_refused(&log.reserve(&keys, WINDOW).await), "pending attempts count");
    log.settle(&keys, &cancelled, Outcome::Cancelled, WINDOW).await.unwrap();
    granted(log.reserve(&keys, WINDOW).await);
}

async fn a_key_may_have_only_so_many_attempts_in_flight(log: &dyn AttemptLog) {
    let capped = vec![KeyLimit::new("addr:198.51.100.2", 100).with_max_in_flight(2)];
    let first = granted(log.reserve(&capped, WINDOW).await);
    granted(log.reserve(&capped, WINDOW).await);
    match log.reserve(&capped, WINDOW).await {
        Some(Reserved::Refused { retry_after, in_flight: true }) => assert!(retry_after <= Duration::from_secs(1)),
        other => panic!("expected an in-flight refusal, got {other:?}"),
    }
    log.settle(&capped, &first, Outcome::Succeeded { clear_failures_of: None }, WINDOW).await.unwrap();
    granted(log.reserve(&capped, WINDOW).await);
}

async fn keys_are_counted_apart(log: &dyn AttemptLog) {
    let locked = key("user:dave", 2);
    for _ in 0..2 {
        fail_once(log, &locked, WINDOW).await;
    }
    assert!(is_refused(&log.reserve(&locked, WINDOW).await), "dave is at his limit");
    granted(log.reserve(&key("user:erin", 2), WINDOW).await);
}

async fn attempts_leave_the_window_and_retry_after_says_when(log: &dyn AttemptLog) {
    let window = Duration::from_millis(300);
    let keys = key("user:frank", 1);
    fail_once(log, &keys, window).await;
    match log.reserve(&keys, window).await {
        Some(Reserved::Refused { retry_after, in_flight: false }) => {
            assert!(retry_after <= window && retry_after > Duration::ZERO, "{retry_after:?}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    tokio::time::sleep(window + Duration::from_millis(50)).await;
    granted(log.reserve(&keys, window).await);
}

#[tokio::test]
async fn the_memory_attempt_log_keeps_the_contract() {
    attempt_log_contract(&MemoryAttemptLog::new(1000, WINDOW)).await;
}

#[tokio::test]
async fn the_redis_attempt_log_keeps_the_contract() {
    let Some(url) = redis_or_skip("store_contracts::the_redis_attempt_log_keeps_the_contract") else { return };
    attempt_log_contract(&RedisAttemptLog::new(redis_store(&url, POOL_SIZE, TIMEOUT_MS))).await;
}

// --- auth_svc::store::revocation::RevocationList -------------------------------------------------

const KEEP_FOR: Duration = Duration::from_secs(300);

/// Every behaviour of a revocation list.
async fn revocation_list_contract(list: &dyn RevocationList) {
    a_session_never_revoked_is_not_revoked(list).await;
    a_revoked_session_is_revoked_and_no_other(list).await;
    revoking_twice_keeps_it_revoked(list).await;
    an_entry_is_kept_for_as_long_as_asked(list).await;
}

async fn a_session_never_revoked_is_not_revoked(list: &dyn RevocationList) {
    assert_eq!(list.is_revoked("session-never-revoked").await, Some(false));
}

async fn a_revoked_session_is_revoked_and_no_other(list: &dyn RevocationList) {
    assert!(list.revoke("session-a", KEEP_FOR).await, "revoke says it was recorded");
    assert_eq!(list.is_revoked("session-a").await, Some(true));
    assert_eq!(list.is_revoked("session-b").await, Some(false), "only that session");
}

async fn revoking_twice_keeps_it_revoked(list: &dyn RevocationList) {
    assert!(list.revoke("session-twice", KEEP_FOR).await);
    assert!(list.revoke("session-twice", KEEP_FOR).await);
    assert_eq!(list.is_revoked("session-twice").await, Some(true));
}

/// An entry lives `keep_for` (no token outlives it), then goes; one kept longer stays, also
/// when a later revocation comes in after the first has gone.
async fn an_entry_is_kept_for_as_long_as_asked(list: &dyn RevocationList) {
    assert!(list.revoke("session-short", ONE_SECOND).await);
    assert!(list.revoke("session-long", KEEP_FOR).await);
    assert_eq!(list.is_revoked("session-short").await, Some(true), "kept at first");
    tokio::time::sleep(PAST_ONE_SECOND).await;
    assert_eq!(list.is_revoked("session-short").await, Some(false), "gone after its keep_for");
    assert!(list.revoke("session-later", KEEP_FOR).await);
    assert_eq!(list.is_revoked("session-long").await, Some(true), "the longer entry is kept");
    assert_eq!(list.is_revoked("session-later").await, Some(true));
}

#[tokio::test]
async fn the_memory_revocation_list_keeps_the_contract() {
    revocation_list_contract(&MemoryRevocationList::default()).await;
}

#[tokio::test]
async fn the_redis_revocation_list_keeps_the_contract() {
    let Some(url) = redis_or_skip("store_contracts::the_redis_revocation_list_keeps_the_contract") else { return };
    revocation_list_contract(&RedisRevocationList::new(redis_store(&url, POOL_SIZE, TIMEOUT_MS))).await;
}
