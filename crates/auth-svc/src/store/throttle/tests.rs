//! The in-process log and the reservation rules. The same rules on Redis are checked by the
//! end-to-end suite (`crates/e2e/src/store_contracts.rs`), which runs with a real Redis in CI.

use std::{net::IpAddr, sync::Arc, time::Duration};

use super::*;

const WINDOW: Duration = Duration::from_secs(300);

fn key(name: &str, limit: u32) -> Vec<KeyLimit> {
    vec![KeyLimit::new(name, limit)]
}

fn granted(reserved: Option<Reserved>) -> Ticket {
    match reserved {
        Some(Reserved::Granted(ticket)) => ticket,
        other => panic!("expected a grant, got {other:?}"),
    }
}

fn is_refused(reserved: Option<Reserved>) -> bool {
    matches!(reserved, Some(Reserved::Refused { .. }))
}

#[tokio::test]
async fn concurrent_reservations_never_exceed_the_limit() {
    let log = Arc::new(MemoryAttemptLog::new(1000, WINDOW));
    let attempts = (0..64).map(|_| {
        let log = log.clone();
        tokio::spawn(async move { log.reserve(&key("user:victim", 5), WINDOW).await })
    });
    let results = futures::future::join_all(attempts).await;
    let grants = results.into_iter().filter(|r| matches!(r, Ok(Some(Reserved::Granted(_))))).count();
    assert_eq!(grants, 5);
}

#[tokio::test]
async fn a_reservation_over_two_keys_is_all_or_nothing() {
    let log = MemoryAttemptLog::new(1000, WINDOW);
    let full = key("addr:1", 1);
    granted(log.reserve(&full, WINDOW).await);
    let both = vec![KeyLimit::new("user:a", 5), KeyLimit::new("addr:1", 1)];
    assert!(is_refused(log.reserve(&both, WINDOW).await));
    // The refused reservation left nothing under the username.
    for _ in 0..5 {
        granted(log.reserve(&key("user:a", 5), WINDOW).await);
    }
}

#[tokio::test]
async fn a_success_clears_failures_recorded_before_it_began_but_not_attempts_in_flight() {
    let log = MemoryAttemptLog::new(1000, WINDOW);
    let keys = key("user:alice", 4);
    for _ in 0..2 {
        let failed = granted(log.reserve(&keys, WINDOW).await);
        log.settle(&keys, &failed, Outcome::Failed, WINDOW).await;
    }
    // No pause: a failure recorded just before a success began is "before" it.
    let in_flight = granted(log.reserve(&keys, WINDOW).await);
    let success = granted(log.reserve(&keys, WINDOW).await);
    log.settle(&keys, &success, Outcome::Succeeded { clear_failures_of: Some(0) }, WINDOW).await;
    log.settle(&keys, &in_flight, Outcome::Failed, WINDOW).await;
    // The two old failures are gone; the one in flight during the success still counts.
    for _ in 0..3 {
        granted(log.reserve(&keys, WINDOW).await);
    }
    assert!(is_refused(log.reserve(&keys, WINDOW).await));
}

#[tokio::test]
async fn a_cancelled_attempt_does_not_count() {
    let log = MemoryAttemptLog::new(1000, WINDOW);
    let keys = key("user:bob", 1);
    let cancelled = granted(log.reserve(&keys, WINDOW).await);
    assert!(is_refused(log.reserve(&keys, WINDOW).await), "pending attempts count");
    log.settle(&keys, &cancelled, Outcome::Cancelled, WINDOW).await;
    granted(log.reserve(&keys, WINDOW).await);
}

#[tokio::test]
async fn attempts_leave_the_window_and_retry_after_says_when() {
    let window = Duration::from_millis(300);
    let log = MemoryAttemptLog::new(1000, window);
    let keys = key("user:carol", 1);
    let failed = granted(log.reserve(&keys, window).await);
    log.settle(&keys, &failed, Outcome::Failed, window).await;
    match log.reserve(&keys, window).await {
        Some(Reserved::Refused { retry_after, in_flight: false }) => {
            assert!(retry_after <= window && retry_after > Duration::ZERO)
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    tokio::time::sleep(window + Duration::from_millis(50)).await;
    granted(log.reserve(&keys, window).await);
}

#[tokio::test]
async fn a_flood_of_other_names_does_not_unlock_a_locked_account() {
    let capacity = 1000;
    let log = MemoryAttemptLog::new(capacity, WINDOW);
    let victim = key("user:victim", 5);
    for _ in 0..5 {
        let failed = granted(log.reserve(&victim, WINDOW).await);
        log.settle(&victim, &failed, Outcome::Failed, WINDOW).await;
    }
    assert!(is_refused(log.reserve(&victim, WINDOW).await));
    // Twenty times the capacity in one-off names, each failing once, as a flood would.
    for n in 0..20 * capacity {
        let name = key(&format!("user:flood-{n}"), 5);
        let failed = granted(log.reserve(&name, WINDOW).await);
        log.settle(&name, &failed, Outcome::Failed, WINDOW).await;
    }
    assert!(log.len() <= 2 * capacity + capacity / 10, "bounded: {} keys", log.len());
    assert!(is_refused(log.reserve(&victim, WINDOW).await), "the victim is still locked");
}

#[tokio::test]
async fn a_refused_reservation_adds_no_key() {
    let log = MemoryAttemptLog::new(1000, WINDOW);
    let address = key("addr:1", 1);
    let failed = granted(log.reserve(&address, WINDOW).await);
    log.settle(&address, &failed, Outcome::Failed, WINDOW).await;
    let before = log.len();
    for n in 0..500 {
        let keys = vec![KeyLimit::new(format!("user:one-off-{n}"), 5), address[0].clone()];
        assert!(is_refused(log.reserve(&keys, WINDOW).await));
    }
    assert_eq!(log.len(), before, "refused calls with one-off names created keys");
}

#[tokio::test]
async fn an_address_may_have_only_so_many_attempts_in_flight() {
    let log = MemoryAttemptLog::new(1000, WINDOW);
    let capped = vec![KeyLimit::new("addr:2", 100).with_max_in_flight(2)];
    let first = granted(log.reserve(&capped, WINDOW).await);
    granted(log.reserve(&capped, WINDOW).await);
    match log.reserve(&capped, WINDOW).await {
        Some(Reserved::Refused { retry_after, in_flight: true }) => assert!(retry_after <= Duration::from_secs(1)),
        other => panic!("expected an in-flight refusal, got {other:?}"),
    }
    log.settle(&capped, &first, Outcome::Succeeded { clear_failures_of: None }, WINDOW).await;
    granted(log.reserve(&capped, WINDOW).await);
}

#[test]
fn ipv6_clients_are_counted_per_64_and_mapped_ipv4_as_ipv4() {
    let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
    let b: IpAddr = "2001:db8:1:2:ffff:ffff:ffff:ffff".parse().unwrap();
    let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
    assert_eq!(address_key("addr", a), address_key("addr", b));
    assert_ne!(address_key("addr", a), address_key("addr", other));
    assert_eq!(address_key("addr", a), "addr:2001:db8:1:2::/64");
    let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
    assert_eq!(address_key("addr", mapped), "addr:192.0.2.7");
}

#[test]
fn retry_after_rounds_up() {
    assert_eq!(retry_after_seconds(Duration::from_millis(1)), 1);
    assert_eq!(retry_after_seconds(Duration::from_secs(3)), 3);
    assert_eq!(retry_after_seconds(Duration::from_millis(3001)), 4);
}

/// A log that cannot answer, like Redis while it is down.
struct Unreachable;

#[tonic::async_trait]
impl AttemptLog for Unreachable {
    async fn reserve(&self, _: &[KeyLimit], _: Duration) -> Option<Reserved> {
        None
    }
    async fn settle(&self, _: &[KeyLimit], _: &Ticket, _: Outcome, _: Duration) -> Option<()> {
        None
    }
}

#[tokio::test]
async fn with_the_shared_log_unreachable_the_local_log_still_throttles() {
    let metrics = Arc::new(Metrics::new());
    let throttle = Throttle::new(
        "login",
        Arc::new(MemoryAttemptLog::new(1000, WINDOW)),
        Some(Arc::new(Unreachable)),
        WINDOW,
        metrics.clone(),
    );
    let login = LoginThrottle::new(throttle, 3, 100, 10);
    for _ in 0..3 {
        let attempt = login.reserve("mallory", None).await.expect("under the limit");
        login.failed(attempt).await;
    }
    assert!(matches!(login.reserve("mallory", None).await, Err(AuthError::LoginThrottled { .. })));
    assert!(metrics.render().contains("auth_throttle_degraded_total{throttle=\"login\"} 3"), "{}", metrics.render());
}
