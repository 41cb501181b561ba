//! When the key set is fetched: lazily, single-flight, on unknown kids (rate-limited), when
//! stale; and what happens when the gateway cannot be reached.

use std::time::Duration;

use tokio::task::JoinSet;

use super::support::*;
use crate::verifier::DEFAULT_MAX_STALE;
use crate::{Verifier, VerifyError};

/// Runs `count` verifications of `token` at once and returns their results.
async fn verify_concurrently(
    verifier: &Verifier,
    token: &str,
    count: usize,
) -> Vec<Result<crate::Claims, VerifyError>> {
    let mut tasks = JoinSet::new();
    for _ in 0..count {
        let (verifier, token) = (verifier.clone(), token.to_owned());
        tasks.spawn(async move { verifier.verify(&token).await });
    }
    tasks.join_all().await
}

/// Sleeps until just past `period`. The cache measures freshness and its rate limits on the
/// real clock, so waiting them out is the behaviour under test.
async fn sleep_past(period: Duration) {
    tokio::time::sleep(period + Duration::from_millis(50)).await;
}

/// How soon the set of [`prefetched_stale_soon`] goes stale, and its verifier's retry delay.
const STALE_AFTER: Duration = Duration::from_millis(100);

/// One key; a server whose set goes stale `STALE_AFTER` after each fetch (`max-age=0` is clamped
/// up to `min_refresh_interval`, which is `STALE_AFTER`); and a verifier with `max_stale` that
/// has fetched it once.
async fn prefetched_stale_soon(max_stale: Duration) -> (TestKey, JwksServer, Verifier) {
    let key = ed_a();
    let server = JwksServer::start(jwks(&[&key])).await;
    server.set_cache_control("max-age=0");
    let verifier =
        Verifier::builder(&server.url).min_refresh_interval(STALE_AFTER).max_stale(max_stale).build().unwrap();
    verifier.prefetch().await.unwrap();
    (key, server, verifier)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_use_shares_one_fetch() {
    let key = ed_a();
    let (server, verifier) = verifier_for(&[&key]).await;

    let results = verify_concurrently(&verifier, &key.sign(&access_claims()), 32).await;

    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(server.fetches(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_unknown_kids_causes_one_refetch() {
    let key = ed_a();
    let (server, verifier) = verifier_for(&[&key]).await;
    verifier.prefetch().await.unwrap();
    let stranger = p256_b().sign(&access_claims());

    let results = verify_concurrently(&verifier, &stranger, 32).await;

    assert!(results.iter().all(|result| *result == Err(VerifyError::UnknownKey)), "{results:?}");
    assert_eq!(server.fetches(), 2, "the prefetch and exactly one refetch");
    // Still within the window: other unknown kids are refused without asking again.
    let another = key.sign_with_kid("made-up", &access_claims());
    assert_eq!(verifier.verify(&another).await, Err(VerifyError::UnknownKey));
    assert_eq!(server.fetches(), 2);
    // Known kids are unaffected.
    assert!(verifier.verify(&key.sign(&access_claims())).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_kids_on_a_cold_cache_share_the_first_fetch() {
    let (server, verifier) = verifier_for(&[&ed_a()]).await;

    let results = verify_concurrently(&verifier, &p256_b().sign(&access_claims()), 32).await;

    assert!(results.iter().all(|result| *result == Err(VerifyError::UnknownKey)), "{results:?}");
    // Requests that waited for the first fetch use its answer. One that starts after it finished
    // may spend the window's one unknown-kid refetch, so two is allowed; 32 would be a stampede.
    assert!((1..=2).contains(&server.fetches()), "{} fetches", server.fetches());
}

#[tokio::test]
async fn unknown_kids_may_refetch_again_once_the_window_has_passed() {
    let key = ed_a();
    let server = JwksServer::start(jwks(&[&key])).await;
    let window = Duration::from_millis(200);
    let verifier = server.verifier(window);
    verifier.prefetch().await.unwrap();
    let stranger = p256_b().sign(&access_claims());

    assert_eq!(verifier.verify(&stranger).await, Err(VerifyError::UnknownKey));
    assert_eq!(server.fetches(), 2);
    sleep_past(window).await;
    assert_eq!(verifier.verify(&stranger).await, Err(VerifyError::UnknownKey));
    assert_eq!(server.fetches(), 3);
}

#[tokio::test]
async fn a_key_published_later_is_picked_up_on_first_sight_of_its_kid() {
    let (old, new) = (ed_a(), p256_b());
    let server = JwksServer::start(jwks(&[&old])).await;
    let verifier = server.verifier(DEFAULT_INTERVAL);
    verifier.prefetch().await.unwrap();

    server.set_jwks(jwks(&[&old, &new]));
    let verified = verifier.verify(&new.sign(&access_claims())).await;

    assert!(verified.is_ok(), "{verified:?}");
    assert_eq!(server.fetches(), 2);
    assert!(verifier.verify(&old.sign(&access_claims())).await.is_ok());
    assert_eq!(server.fetches(), 2);
}

#[tokio::test]
async fn a_retired_key_is_dropped_once_the_set_goes_stale() {
    let (retired, current) = (ed_a(), ed_b());
    let server = JwksServer::start(jwks(&[&retired, &current])).await;
    // max-age=0 is clamped up to min_refresh_interval.
    server.set_cache_control("public, max-age=0");
    // Long enough that the second verification below surely falls inside it, even on a busy machine.
    let fresh_for = Duration::from_millis(500);
    let verifier = server.verifier(fresh_for);
    let old_token = retired.sign(&access_claims());
    assert!(verifier.verify(&old_token).await.is_ok());

    server.set_jwks(jwks(&[&current]));
    assert!(verifier.verify(&old_token).await.is_ok(), "still fresh: the cached set is used");
    assert_eq!(server.fetches(), 1);
    sleep_past(fresh_for).await;

    assert_eq!(verifier.verify(&old_token).await, Err(VerifyError::UnknownKey));
    assert_eq!(server.fetches(), 2, "one refresh; its answer is not asked for again for the unknown kid");
}

#[tokio::test]
async fn jwks_down_at_start_means_keys_unavailable() {
    let verifier = Verifier::builder(dead_url().await).build().unwrap();
    let token = ed_a().sign(&access_claims());

    assert_eq!(verifier.verify(&token).await, Err(VerifyError::KeysUnavailable));
    assert_eq!(verifier.prefetch().await, Err(VerifyError::KeysUnavailable));
}

#[tokio::test]
async fn failed_fetches_are_not_retried_until_the_window_passes_except_by_prefetch() {
    let key = ed_a();
    let (server, verifier) = verifier_for(&[&key]).await;
    server.set_failing(true);
    let token = key.sign(&access_claims());

    assert_eq!(verifier.verify(&token).await, Err(VerifyError::KeysUnavailable));
    assert_eq!(verifier.verify(&token).await, Err(VerifyError::KeysUnavailable));
    assert_eq!(server.fetches(), 1, "a gateway in trouble is not hammered");

    server.set_failing(false);
    verifier.prefetch().await.unwrap();
    assert_eq!(server.fetches(), 2);
    assert!(verifier.verify(&token).await.is_ok());
}

#[tokio::test]
async fn cached_keys_keep_verifying_when_the_gateway_goes_down() {
    let (key, mut server, verifier) = prefetched_stale_soon(DEFAULT_MAX_STALE).await;

    server.stop().await;
    let token = key.sign(&access_claims());
    assert!(verifier.verify(&token).await.is_ok(), "fresh cached set");
    // Past its freshness the set is refetched, which fails, and the stale keys stay in use.
    sleep_past(STALE_AFTER).await;
    assert_eq!(verifier.verify(&token).await.map(|claims| claims.sub().to_owned()), Ok("42".to_owned()));
    assert_eq!(verifier.prefetch().await, Err(VerifyError::KeysUnavailable));
    assert!(verifier.verify(&token).await.is_ok(), "a failed prefetch keeps the cached keys too");
}

#[tokio::test]
async fn an_oversized_or_invalid_jwks_is_a_failed_fetch() {
    let key = ed_a();
    let server = JwksServer::start(jwks(&[&key])).await;
    let token = key.sign(&access_claims());

    let padded = format!("{}{}", " ".repeat(64 * 1024), jwks(&[&key]));
    server.set_body(padded);
    assert_eq!(server.verifier(DEFAULT_INTERVAL).verify(&token).await, Err(VerifyError::KeysUnavailable));

    server.set_body("<html>gateway error</html>".to_owned());
    assert_eq!(server.verifier(DEFAULT_INTERVAL).verify(&token).await, Err(VerifyError::KeysUnavailable));

    server.set_body(jwks(&[&key]).to_string());
    assert!(server.verifier(DEFAULT_INTERVAL).verify(&token).await.is_ok());
}

#[tokio::test]
async fn a_stale_set_is_used_within_max_stale_while_the_gateway_answers_500() {
    let (key, server, verifier) = prefetched_stale_soon(Duration::from_secs(60)).await;
    server.set_failing(true);
    let token = key.sign(&access_claims());

    sleep_past(STALE_AFTER).await;
    assert!(verifier.verify(&token).await.is_ok(), "stale, the refresh got a 500, within max_stale");
    assert_eq!(server.fetches(), 2, "the stale set was refreshed, and that failed");
    // Past the retry delay: tried again, failed again, the stale set still serves.
    sleep_past(STALE_AFTER).await;
    assert!(verifier.verify(&token).await.is_ok());
    assert_eq!(server.fetches(), 3);
}

#[tokio::test]
async fn a_stale_set_is_dropped_after_max_stale_and_tokens_get_keys_unavailable() {
    let key = ed_a();
    let server = JwksServer::start(jwks(&[&key])).await;
    server.set_cache_control("public, max-age=1");
    let (retry, max_stale) = (Duration::from_millis(100), Duration::from_millis(500));
    let verifier = Verifier::builder(&server.url).min_refresh_interval(retry).max_stale(max_stale).build().unwrap();
    verifier.prefetch().await.unwrap();
    server.set_failing(true);
    let token = key.sign(&access_claims());

    // Past max-age (1 s), within max_stale: the stale set serves while the refresh fails.
    sleep_past(Duration::from_secs(1)).await;
    assert!(verifier.verify(&token).await.is_ok(), "within max_stale");
    assert_eq!(server.fetches(), 2);
    // Past max-age + max_stale: the refresh fails again and the set is dropped.
    tokio::time::sleep(max_stale).await;
    assert_eq!(verifier.verify(&token).await, Err(VerifyError::KeysUnavailable));
    assert_eq!(server.fetches(), 3);
    // Dropped for good: not brought back by a rate-limited request, nor by a failed prefetch.
    assert_eq!(verifier.verify(&token).await, Err(VerifyError::KeysUnavailable));
    assert_eq!(verifier.prefetch().await, Err(VerifyError::KeysUnavailable));
    assert_eq!(verifier.verify(&token).await, Err(VerifyError::KeysUnavailable));

    // Once the gateway answers again, the next attempt after the retry delay recovers.
    server.set_failing(false);
    sleep_past(retry).await;
    assert!(verifier.verify(&token).await.is_ok());
}

#[tokio::test]
async fn max_stale_zero_never_uses_a_stale_set() {
    let (key, server, verifier) = prefetched_stale_soon(Duration::ZERO).await;
    let token = key.sign(&access_claims());
    assert!(verifier.verify(&token).await.is_ok(), "fresh");

    server.set_failing(true);
    sleep_past(STALE_AFTER).await;
    assert_eq!(verifier.verify(&token).await, Err(VerifyError::KeysUnavailable));
    assert_eq!(server.fetches(), 2);
}

#[tokio::test]
async fn an_unknown_kid_while_the_gateway_fails_is_keys_unavailable_not_unknown_key() {
    let key = ed_a();
    let server = JwksServer::start(jwks(&[&key])).await;
    let retry = Duration::from_millis(100);
    let verifier = server.verifier(retry);
    verifier.prefetch().await.unwrap();
    server.set_failing(true);
    let stranger = p256_b().sign(&access_claims());

    // The refetch the unknown kid triggers fails: the key may have been published meanwhile.
    assert_eq!(verifier.verify(&stranger).await, Err(VerifyError::KeysUnavailable));
    assert_eq!(server.fetches(), 2);
    // Within the retry delay no fetch is made, but the latest one failed: still unavailable.
    let made_up = key.sign_with_kid("made-up", &access_claims());
    assert_eq!(verifier.verify(&made_up).await, Err(VerifyError::KeysUnavailable));
    assert_eq!(server.fetches(), 2);
    // Known kids of the (fresh) cached set are unaffected.
    assert!(verifier.verify(&key.sign(&access_claims())).await.is_ok());

    // Once a fetch succeeds and the kid is really not published, it is an unknown key again.
    server.set_failing(false);
    sleep_past(retry).await;
    assert_eq!(verifier.verify(&stranger).await, Err(VerifyError::UnknownKey));
    assert_eq!(server.fetches(), 3);
}

#[tokio::test]
async fn an_unknown_kid_with_the_gateway_stopped_and_a_stale_set_is_keys_unavailable() {
    let (key, mut server, verifier) = prefetched_stale_soon(DEFAULT_MAX_STALE).await;
    server.stop().await;

    sleep_past(STALE_AFTER).await;
    assert_eq!(verifier.verify(&p256_b().sign(&access_claims())).await, Err(VerifyError::KeysUnavailable));
    assert!(verifier.verify(&key.sign(&access_claims())).await.is_ok(), "the stale set still serves known kids");
}
