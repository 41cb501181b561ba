//! Abuse limits attacked the way attackers attack them: many calls at once, floods bounded in
//! count and time, a Redis that cannot answer, two replicas side by side. The suite runs on
//! SQLite, PostgreSQL and MariaDB, each with the in-process logs and again with Redis.

use std::num::NonZero;

use std::time::{Duration, Instant};

use auth_api::user::v1::{LoginRequest, RegisterRequest};
use auth_svc::{Config, config::HashProfile};
use futures::{StreamExt, future::join_all, stream};
use tonic::{Code, Request, Status};

use crate::{
    helpers::{
        PASSWORD, TestApp, http_get_ok, proxied_redis_or_skip, redis_or_skip, redis_store, slow_test_wanted,
        spawn_app_with,
    },
    pressure::median,
    replicas::two_replicas,
};

const BUSY: &str = "server busy, retry later";
const SIGNUP_THROTTLED: &str = "too many registrations from this address, retry later";

fn login_request(username: &str, password: &str, forwarded_for: Option<&str>) -> Request<LoginRequest> {
    let mut request = Request::new(LoginRequest { username: username.into(), password: password.into() });
    if let Some(address) = forwarded_for {
        request.metadata_mut().insert("x-forwarded-for", address.parse().unwrap());
    }
    request
}

async fn login_from(app: &TestApp, username: &str, password: &str, forwarded_for: Option<&str>) -> Result<(), Status> {
    app.client.clone().login(login_request(username, password, forwarded_for)).await.map(|_| ())
}

fn retry_after(status: &Status) -> u64 {
    status.metadata().get("retry-after").expect("retry-after").to_str().unwrap().parse().unwrap()
}

/// How many answers had each outcome: (password checked, throttled, other).
fn tally(results: &[Result<(), Status>]) -> (usize, usize, Vec<String>) {
    let mut checked = 0;
    let mut throttled = 0;
    let mut other = Vec::new();
    for result in results {
        match result {
            Ok(()) => checked += 1,
            Err(status) if status.code() == Code::Unauthenticated => checked += 1,
            Err(status) if status.code() == Code::ResourceExhausted => throttled += 1,
            Err(status) => other.push(format!("{status:?}")),
        }
    }
    (checked, throttled, other)
}

/// 5 login attempts per username and window, from any number of addresses.
fn five_guesses_per_username(config: &mut Config) {
    config.throttle.max_failures_per_username = NonZero::new(5).unwrap();
    config.throttle.max_failures_per_address = NonZero::new(10_000).unwrap();
    // One hashing thread keeps the guesses in flight together.
    config.password.max_concurrent_hashes = 1;
}

/// An app where alice may have 5 login attempts per window, from any number of addresses.
async fn guessable_app() -> TestApp {
    let app = spawn_app_with(five_guesses_per_username).await;
    app.register("alice").await;
    app
}

/// The answers to 40 guesses at a limit of 5 (`where_` says where they went): at most 5
/// reached the password check, every other one was throttled.
#[track_caller]
fn assert_forty_guesses_got_at_most_five_checks(results: &[Result<(), Status>], where_: &str) {
    let (checked, throttled, other) = tally(results);
    assert!(other.is_empty(), "{other:?}");
    assert!(checked <= 5, "{checked} password checks{where_} for a limit of 5");
    assert_eq!(checked + throttled, 40);
}

/// 39 wrong passwords, and the right one in the middle.
fn guesses() -> impl Iterator<Item = String> {
    (0..40).map(|n| if n == 20 { PASSWORD.to_owned() } else { format!("wrong guess {n}") })
}

/// 39 wrong guesses and the right password, all at once: the throttle reserves each attempt
/// before hashing, so no more than the limit reach the password check.
#[tokio::test]
async fn forty_guesses_at_once_get_at_most_the_limit_of_password_checks() {
    let app = guessable_app().await;
    let guesses = guesses().map(|password| {
        let app = &app;
        async move { login_from(app, "alice", &password, None).await }
    });
    assert_forty_guesses_got_at_most_five_checks(&join_all(guesses).await, "");
}

/// Two replicas on one Redis share one limit: 40 guesses split between them still get at most
/// the limit of password checks (each replica's own log alone would allow the limit each).
#[tokio::test]
async fn guesses_spread_over_two_replicas_share_one_limit() {
    if redis_or_skip("abuse::guesses_spread_over_two_replicas_share_one_limit").is_none() {
        return;
    }
    let (a, b) = two_replicas(five_guesses_per_username).await;
    a.register("alice").await;
    let guesses = (0..40).map(|n| {
        let replica = if n % 2 == 0 { &a } else { &b };
        async move { login_from(replica, "alice", &format!("wrong guess {n}"), None).await }
    });
    assert_forty_guesses_got_at_most_five_checks(&join_all(guesses).await, " across both replicas");
}

/// Under a flood, waiting for a pooled connection is load, not an outage: it must not switch
/// Redis off (which used to open the throttle for everybody).
#[tokio::test]
async fn waiting_for_a_pooled_connection_does_not_open_the_breaker() {
    let Some(url) = redis_or_skip("abuse::waiting_for_a_pooled_connection_does_not_open_the_breaker") else {
        return;
    };
    // Roomy next to the 30 ms each call holds the connection, yet far below the 1.5 s that 50
    // calls need in turn: some calls get the connection, the others wait past the deadline.
    let store = redis_store(&url, 1, 300);
    let key = store.key("nothing-here");
    // The one connection is made before the flood, so that a slow connect on a busy machine is
    // not what the calls wait for.
    let warm: Option<String> =
        store.run("ping", async |c| deadpool_redis::redis::cmd("PING").query_async(c).await).await;
    assert_eq!(warm.as_deref(), Some("PONG"));
    // Fifty calls share one connection; each holds it for 30 ms (a blocking pop that times out).
    let calls = (0..50).map(|_| {
        let (store, key) = (store.clone(), key.clone());
        async move {
            store
                .run("slow", async |c| {
                    deadpool_redis::redis::cmd("BLPOP").arg(&key).arg(0.03).query_async::<Option<Vec<String>>>(c).await
                })
                .await
        }
    });
    let answers = join_all(calls).await;
    assert!(answers.iter().any(Option::is_some), "some calls got the connection");
    assert!(store.pool_waits() > 0, "the pool was exhausted");
    assert_eq!(store.failures(), 0, "pool waits are not Redis failures");
    let pong: Option<String> =
        store.run("ping", async |c| deadpool_redis::redis::cmd("PING").query_async(c).await).await;
    assert_eq!(pong.as_deref(), Some("PONG"), "Redis is still used");
}

/// With Redis cut, each replica keeps throttling with its own counts: degraded, never open.
#[tokio::test]
async fn with_redis_cut_the_throttle_still_holds() {
    let Some((proxy, redis_url)) = proxied_redis_or_skip("abuse::with_redis_cut_the_throttle_still_holds").await else {
        return;
    };
    let app = spawn_app_with(|c| {
        c.redis_url = Some(redis_url);
        c.admin_listen = Some("127.0.0.1:0".parse().unwrap());
        c.throttle.max_failures_per_username = NonZero::new(3).unwrap();
    })
    .await;
    app.register("alice").await;
    proxy.sever().await;
    for _ in 0..3 {
        let status = login_from(&app, "alice", "wrong password", None).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    }
    let status = login_from(&app, "alice", PASSWORD, None).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    let metrics = http_get_ok(&format!("http://{}/metrics", app.admin.unwrap())).await;
    assert!(metrics.contains("auth_throttle_degraded_total{throttle=\"login\"}"), "{metrics}");
    proxy.restore();
}

/// 3,000 failed logins with one-off usernames, three times the in-process capacity, do not
/// unlock an account that was locked before them.
#[tokio::test]
async fn a_flood_of_other_names_does_not_unlock_a_locked_account() {
    if !slow_test_wanted("abuse::a_flood_of_other_names_does_not_unlock_a_locked_account") {
        return;
    }
    let app = spawn_app_with(|c| {
        c.redis_url = None; // the in-process log is the one under test
        c.throttle.max_tracked_keys = 1000;
        c.throttle.max_failures_per_username = NonZero::new(3).unwrap();
        c.throttle.max_failures_per_address = NonZero::new(1_000_000).unwrap();
    })
    .await;
    app.register("victim").await;
    for _ in 0..3 {
        login_from(&app, "victim", "wrong password", None).await.unwrap_err();
    }
    let started = Instant::now();
    let flood: Vec<_> = stream::iter(0..3000)
        .map(|n| {
            let app = &app;
            async move { login_from(app, &format!("flood-{n}"), "wrong password", None).await }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    assert!(flood.iter().all(|r| r.as_ref().is_err_and(|s| s.code() == Code::Unauthenticated)));
    assert!(started.elapsed() < Duration::from_secs(120), "bounded flood");
    let status = login_from(&app, "victim", PASSWORD, None).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "the victim is still locked: {status:?}");
}

/// Only a trusted forwarder (the gateway; loopback by default) may name the client address.
#[tokio::test]
async fn x_forwarded_for_is_believed_only_from_trusted_forwarders() {
    let untrusting = spawn_app_with(|c| {
        c.grpc.trusted_forwarders = Vec::new();
        c.throttle.max_failures_per_address = NonZero::new(3).unwrap();
        c.throttle.max_failures_per_username = NonZero::new(1000).unwrap();
    })
    .await;
    for (n, claimed) in ["198.51.100.1", "198.51.100.2", "198.51.100.3"].into_iter().enumerate() {
        let status = login_from(&untrusting, &format!("user-{n}"), "wrong", Some(claimed)).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated);
    }
    let status = login_from(&untrusting, "user-x", "wrong", Some("198.51.100.4")).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "all counted against the TCP peer: {status:?}");

    let trusting = spawn_app_with(|c| {
        c.throttle.max_failures_per_address = NonZero::new(3).unwrap();
        c.throttle.max_failures_per_username = NonZero::new(1000).unwrap();
    })
    .await;
    for (n, claimed) in ["198.51.100.1", "198.51.100.2", "198.51.100.3", "198.51.100.4"].into_iter().enumerate() {
        let status = login_from(&trusting, &format!("user-{n}"), "wrong", Some(claimed)).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "loopback is a trusted forwarder by default");
    }
}

/// IPv6 clients are counted per /64: the addresses of one subscriber's prefix are one client.
#[tokio::test]
async fn ipv6_clients_are_counted_per_64() {
    let app = spawn_app_with(|c| {
        c.throttle.max_failures_per_address = NonZero::new(3).unwrap();
        c.throttle.max_failures_per_username = NonZero::new(1000).unwrap();
    })
    .await;
    for (n, address) in ["2001:db8:0:1::1", "2001:db8:0:1::2", "2001:db8:0:1:ab::3"].into_iter().enumerate() {
        login_from(&app, &format!("user-{n}"), "wrong", Some(address)).await.unwrap_err();
    }
    let status = login_from(&app, "user-x", "wrong", Some("2001:db8:0:1:ffff::9")).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    let status = login_from(&app, "user-y", "wrong", Some("2001:db8:0:2::1")).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "another /64 is another client");
}

/// Past `password.max_queued_hashes` waiting hashes, Login and Register are refused at once
/// instead of queueing past every deadline; the refused logins are not counted as failures.
#[tokio::test]
async fn a_full_hashing_queue_answers_resource_exhausted_at_once() {
    let app = spawn_app_with(|c| {
        c.password.hash_profile = HashProfile::Owasp;
        c.password.max_concurrent_hashes = 1;
        c.password.max_queued_hashes = 2;
        c.throttle.max_failures_per_username = NonZero::new(1000).unwrap();
        c.throttle.max_failures_per_address = NonZero::new(1_000_000).unwrap();
    })
    .await;
    app.register("alice").await;
    let logins = (0..40).map(|n| {
        let app = &app;
        async move {
            let started = Instant::now();
            (login_from(app, &format!("someone-{n}"), "wrong password", None).await, started.elapsed())
        }
    });
    let results = join_all(logins).await;
    let busy: Vec<_> = results.iter().filter(|(r, _)| r.as_ref().is_err_and(|s| s.message() == BUSY)).collect();
    assert!(busy.len() >= 20, "{} of 40 refused", busy.len());
    for (result, _) in &busy {
        let status = result.as_ref().unwrap_err();
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert_eq!(retry_after(status), 1);
    }
    for (result, _) in &results {
        if let Err(status) = result {
            assert!(status.code() == Code::Unauthenticated || status.message() == BUSY, "{status:?}");
        }
    }

    let registrations = (0..40).map(|n| {
        let mut client = app.client.clone();
        async move { client.register(RegisterRequest { username: format!("new-{n}"), password: PASSWORD.into() }).await }
    });
    let refused = join_all(registrations)
        .await
        .into_iter()
        .filter(|r| r.as_ref().is_err_and(|s| s.code() == Code::ResourceExhausted && s.message() == BUSY))
        .count();
    assert!(refused >= 20, "{refused} of 40 registrations refused");
    app.login("alice", PASSWORD).await.expect("the queue drains and logins work again");
}

/// Register is limited per client address, taken names included (else probing names would be free).
#[tokio::test]
async fn registrations_from_one_address_are_limited() {
    let app = spawn_app_with(|c| c.register.max_per_address = NonZero::new(3).unwrap()).await;
    let register_from = |username: &str, address: &str| {
        let mut request = Request::new(RegisterRequest { username: username.into(), password: PASSWORD.into() });
        request.metadata_mut().insert("x-forwarded-for", address.parse().unwrap());
        let mut client = app.client.clone();
        async move { client.register(request).await.map(|_| ()) }
    };
    register_from("alice", "203.0.113.5").await.unwrap();
    let taken = register_from("alice", "203.0.113.5").await.unwrap_err();
    assert_eq!(taken.code(), Code::AlreadyExists);
    register_from("bob", "203.0.113.5").await.unwrap();
    let status = register_from("carol", "203.0.113.5").await.unwrap_err();
    assert_eq!((status.code(), status.message()), (Code::ResourceExhausted, SIGNUP_THROTTLED));
    assert!((1..=3600).contains(&retry_after(&status)));
    register_from("carol", "203.0.113.6").await.expect("another address is not affected");
}

/// A taken name and a free one take the same time (medians of 200 each within 20%), so
/// Register does not tell which names exist.
#[tokio::test]
async fn register_answers_a_taken_and_a_free_name_in_the_same_time() {
    if !slow_test_wanted("abuse::register_answers_a_taken_and_a_free_name_in_the_same_time") {
        return;
    }
    let app = spawn_app_with(|c| c.password.hash_profile = HashProfile::Owasp).await;
    app.register("alice").await;
    let (mut taken, mut free) = (Vec::new(), Vec::new());
    for round in 0..200 {
        for taken_first in [round % 2 == 0, round % 2 == 1] {
            let username = if taken_first { "alice".to_owned() } else { format!("fresh-{round}") };
            let started = Instant::now();
            let result = app.try_register(&username, PASSWORD).await;
            let elapsed = started.elapsed().as_secs_f64();
            if taken_first {
                assert_eq!(result.unwrap_err().code(), Code::AlreadyExists);
                taken.push(elapsed);
            } else {
                result.unwrap();
                free.push(elapsed);
            }
        }
    }
    let (taken, free) = (median(taken), median(free));
    let ratio = taken / free;
    assert!((0.8..=1.25).contains(&ratio), "taken {taken:.4}s vs free {free:.4}s (ratio {ratio:.2})");
}

/// The same 40 guesses through the gateway's REST path, from one address: at most the limit
/// are answered 401/200, every other one 429 with `Retry-After`.
#[tokio::test]
async fn forty_guesses_at_once_through_the_gateway_get_at_most_the_limit_of_password_checks() {
    let app = guessable_app().await;
    let gateway = crate::helpers::gateway_for(&app).await;
    let http = reqwest::Client::new();
    let url = format!("{}/user/login", gateway.base_url);
    let guesses = guesses().map(|password| {
        let request = http.post(&url).json(&serde_json::json!({"username": "alice", "password": password}));
        async move { request.send().await.unwrap() }
    });
    let responses = join_all(guesses).await;
    let mut checked = 0;
    for response in &responses {
        match response.status().as_u16() {
            200 | 401 => checked += 1,
            429 => assert!(response.headers().contains_key("retry-after"), "{response:?}"),
            other => panic!("unexpected {other}: {response:?}"),
        }
    }
    assert!(checked <= 5, "{checked} password checks for a limit of 5");
}

/// A login cut short by its caller (a client deadline, a dropped connection) still runs to its
/// end and is settled as what it was: three right-password logins cancelled mid-hash do not
/// leave "attempts in flight" behind that lock the account for the window.
#[tokio::test]
async fn cancelled_logins_are_settled_not_left_pending() {
    let app = spawn_app_with(|c| {
        c.password.hash_profile = HashProfile::Owasp;
        c.password.max_concurrent_hashes = 1;
        c.throttle.max_failures_per_username = NonZero::new(3).unwrap();
    })
    .await;
    app.register("alice").await;
    for _ in 0..3 {
        let mut request = login_request("alice", PASSWORD, None);
        request.set_timeout(Duration::from_millis(1));
        let status = app.client.clone().login(request).await.unwrap_err();
        assert!(matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled), "{status:?}");
    }
    // The three hashes finish on their own; meanwhile at most a second's retry is asked for.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match login_from(&app, "alice", PASSWORD, None).await {
            Ok(()) => break,
            Err(status) if status.code() == Code::ResourceExhausted && Instant::now() < deadline => {
                assert_eq!(retry_after(&status), 1, "attempts in flight, not failures: {status:?}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(status) => panic!("the cancelled logins locked the account: {status:?}"),
        }
    }
}

/// One address cannot fill the hashing queue with logins, even with passwords that are right:
/// past `throttle.max_in_flight_per_address` it is refused at once, and another address's
/// user still logs in meanwhile.
#[tokio::test]
async fn one_address_cannot_hold_the_whole_hashing_queue() {
    if !slow_test_wanted("abuse::one_address_cannot_hold_the_whole_hashing_queue") {
        return;
    }
    let app = spawn_app_with(|c| {
        c.password.hash_profile = HashProfile::Owasp;
        c.password.max_concurrent_hashes = 1;
        c.throttle.max_in_flight_per_address = NonZero::new(4).unwrap();
        c.throttle.max_failures_per_username = NonZero::new(1000).unwrap();
    })
    .await;
    for n in 0..40 {
        app.register(&format!("member-{n}")).await;
    }
    app.register("bystander").await;
    let flood = (0..40).map(|n| {
        let app = &app;
        async move { login_from(app, &format!("member-{n}"), PASSWORD, Some("203.0.113.50")).await }
    });
    let bystander = async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        login_from(&app, "bystander", PASSWORD, Some("198.51.100.77")).await
    };
    let (results, bystander) = tokio::join!(join_all(flood), bystander);
    bystander.expect("a user at another address logs in during the flood");
    let refused: Vec<_> =
        results.iter().filter_map(|r| r.as_ref().err()).filter(|s| s.code() == Code::ResourceExhausted).collect();
    assert!(refused.len() >= 20, "{} of 40 refused", refused.len());
    for status in refused {
        assert_eq!(status.message(), "too many logins at once from this address, retry later");
        assert_eq!(retry_after(status), 1);
    }
}
