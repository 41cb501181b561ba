//! The revocation promise (README, "Logout and revocation"): a logged-out session is refused
//! at once by the replica that revoked it and by every other replica within
//! `revocation.max_staleness_ms`, whatever Redis does. Two replicas on one database and one
//! Redis, with a [`TcpProxy`] cutting one replica's Redis (or database); run on PostgreSQL and
//! MariaDB with `AUTH_TEST_DATABASE_URL`, and Redis with `AUTH_TEST_REDIS_URL`.
//!
//! Also here: `revoke_family` finishing against a fast chain of refreshes, and the reuse
//! interval judged by the database's clock.

use std::num::NonZero;

use std::time::{Duration, Instant};

use futures::{StreamExt, stream};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use tonic::Code;

use crate::{
    helpers::{
        PASSWORD, TestApp, TestDatabase, assert_status, bearer, deployment_configs, proxied_redis_or_skip,
        redis_or_skip, restore_redis, spawn_app_on, spawn_app_with, token_payload,
    },
    proxy::TcpProxy,
    replicas::{two_replicas_each, two_sessions_seen_by_b},
};

/// `revocation.max_staleness_ms` at its default: the bound every case below checks.
const PROMISE: Duration = Duration::from_millis(2000);

/// Calls at once in the floods below.
const CONCURRENCY: usize = 40;

/// Deletes every key of `prefix` from the Redis at `url`: what a restart without persistence,
/// an eviction or a failover to an empty replica does to this deployment (the shared Redis
/// of other tests is left alone). A minimal RESP exchange; the test Redis has no password.
async fn forget_redis_keys(url: &str, prefix: &str) {
    let host_port = url.trim_start_matches("redis://").split('/').next().unwrap();
    let mut redis = TcpStream::connect(host_port).await.unwrap();
    let script = "for _, key in ipairs(redis.call('KEYS', ARGV[1])) do redis.call('DEL', key) end return 1";
    let pattern = format!("{prefix}*");
    let mut command = String::from("*4\r\n");
    for part in ["EVAL", script, "0", &pattern] {
        command.push_str(&format!("${}\r\n{part}\r\n", part.len()));
    }
    redis.write_all(command.as_bytes()).await.unwrap();
    let mut reply = [0_u8; 64];
    let read = redis.read(&mut reply).await.unwrap();
    assert_eq!(&reply[..read], b":1\r\n", "EVAL answered {:?}", String::from_utf8_lossy(&reply[..read]));
}

/// Whether `app` refuses `access_token` as a revoked session, on both GetUserInfo and
/// ValidateToken. Panics on any other refusal: the check must not fail for another reason.
async fn refuses(app: &TestApp, access_token: &str) -> bool {
    match app.user_info(&bearer(access_token)).await {
        Ok(_) => false,
        Err(status) => {
            assert_eq!((status.code(), status.message()), (Code::Unauthenticated, "session revoked"), "{status:?}");
            let validation = app.validate(access_token).await.expect("ValidateToken answers");
            assert!(!validation.active, "GetUserInfo refused but ValidateToken said active");
            true
        }
    }
}

/// How long after `since` `app` began refusing `access_token` (probing every 50 ms), or
/// `None` if it still accepted it `bound` after `since`. Once refused, it must stay refused.
async fn refused_after(app: &TestApp, access_token: &str, since: Instant, bound: Duration) -> Option<Duration> {
    loop {
        if refuses(app, access_token).await {
            let took = since.elapsed();
            for _ in 0..5 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                assert!(refuses(app, access_token).await, "refused once, then accepted again");
            }
            return Some(took);
        }
        if since.elapsed() > bound {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[track_caller]
fn assert_within_promise(replica: &str, took: Option<Duration>) {
    let took = took.unwrap_or_else(|| panic!("replica {replica} still accepts the logged-out token"));
    eprintln!("replica {replica} refused the logged-out token {took:?} after the Logout");
    assert!(took <= PROMISE, "replica {replica} refused it only after {took:?}");
}

/// Case 1: Redis forgets a logout (its entry deleted right after the Logout).
#[tokio::test]
async fn a_logout_holds_on_both_replicas_when_redis_forgets_it() {
    let Some(redis_url) = redis_or_skip("revocation::a_logout_holds_on_both_replicas_when_redis_forgets_it") else {
        return;
    };
    let mut prefix = String::new();
    let (a, b) = two_replicas_each(|config_a, _| prefix.clone_from(&config_a.redis.key_prefix)).await;
    let session = a.signed_in("alice").await;
    let other = a.login("alice", PASSWORD).await.unwrap();
    for replica in [&a, &b] {
        replica.user_info(&bearer(&session.access_token)).await.unwrap();
    }

    a.logout(&session.access_token).await.unwrap();
    let logged_out = Instant::now();
    forget_redis_keys(&redis_url, &prefix).await;

    assert!(refuses(&a, &session.access_token).await, "the replica that revoked refuses at once");
    assert_within_promise("A", refused_after(&a, &session.access_token, logged_out, PROMISE * 3).await);
    assert_within_promise("B", refused_after(&b, &session.access_token, logged_out, PROMISE * 3).await);
    for replica in [&a, &b] {
        replica.user_info(&bearer(&other.access_token)).await.expect("another session is untouched");
    }
}

/// Case 2: A's Redis is cut during the Logout (only the database hears of it), then restored:
/// both refuse the logged-out session and serve the other one once Redis is back.
#[tokio::test]
async fn a_logout_on_a_replica_cut_off_from_redis_reaches_the_other_within_the_promise() {
    let Some((proxy, proxied_url)) = proxied_redis_or_skip(
        "revocation::a_logout_on_a_replica_cut_off_from_redis_reaches_the_other_within_the_promise",
    )
    .await
    else {
        return;
    };
    // Only A goes through the proxy: cutting it leaves B's Redis up.
    let (a, b) = two_replicas_each(|config_a, _| config_a.redis_url = Some(proxied_url)).await;
    let (session, other) = two_sessions_seen_by_b(&a, &b).await;

    proxy.sever().await;
    a.logout(&session.access_token).await.unwrap();
    let logged_out = Instant::now();
    assert!(refuses(&a, &session.access_token).await, "the replica that revoked refuses at once");
    assert_within_promise("B", refused_after(&b, &session.access_token, logged_out, PROMISE * 3).await);

    restore_redis(&proxy).await;
    for replica in [&a, &b] {
        assert!(refuses(replica, &session.access_token).await, "still refused after Redis came back");
        replica.user_info(&bearer(&other.access_token)).await.expect("another session is untouched");
    }
}

/// Live-session probes that made the replica ask the database (its poll was stale).
async fn database_checks(app: &TestApp) -> f64 {
    let admin = app.admin.expect("admin port");
    let text = crate::helpers::http_get_ok(&format!("http://{admin}/metrics")).await;
    let series = "auth_revocation_database_checks_total ";
    text.lines().find_map(|line| line.strip_prefix(series)?.trim().parse().ok()).unwrap_or(0.0)
}

/// Case 3: thousands of sessions revoked while B cannot poll (its database cut) and A cannot
/// tell Redis (its Redis cut); then Redis forgets everything and B's database comes back, so
/// B's first poll has thousands of sessions to catch up on. No probe of a logged-out token may
/// be accepted on either replica: not during the outage, not during the catch-up, not after.
#[tokio::test]
async fn thousands_of_logouts_during_an_outage_are_never_accepted_while_a_replica_catches_up() {
    let Some((redis_proxy, proxied_redis)) = proxied_redis_or_skip(
        "revocation::thousands_of_logouts_during_an_outage_are_never_accepted_while_a_replica_catches_up",
    )
    .await
    else {
        return;
    };
    let redis_url = crate::helpers::redis_url().unwrap();
    let database = TestDatabase::create().await;
    let (mut config_a, mut config_b) = deployment_configs(&database);
    let prefix = config_a.redis.key_prefix.clone();
    let (database_proxy, proxied_database) = if database.url.starts_with("sqlite") {
        // SQLite is a file: B cannot be cut from it. The Redis half of the case still runs.
        (None, database.url.clone())
    } else {
        let (proxy, url) = TcpProxy::in_front_of_database(&database.url).await;
        (Some(proxy), url)
    };
    config_a.redis_url = Some(proxied_redis);
    config_b.database_url = proxied_database;
    config_b.database.acquire_timeout_ms = 1000;
    config_b.admin_listen = Some("127.0.0.1:0".parse().unwrap());
    // 400 logins of one account, 40 at once: the login throttle counts those in flight too.
    config_a.throttle.max_failures_per_username = NonZero::new(1_000_000).unwrap();
    let shared = database.handle();
    let a = spawn_app_on(config_a, database).await;
    let b = spawn_app_on(config_b, shared).await;

    a.register("alice").await;
    let probed: Vec<_> = stream::iter(0..400)
        .map(|_| async { a.login("alice", PASSWORD).await.unwrap() })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let witness = a.login("alice", PASSWORD).await.unwrap();
    b.user_info(&bearer(&witness.access_token)).await.unwrap();

    redis_proxy.sever().await;
    if let Some(proxy) = &database_proxy {
        proxy.sever().await;
    }
    // 400 real logouts, plus 2,600 sessions revoked in the database as logouts leave them.
    stream::iter(&probed)
        .for_each_concurrent(CONCURRENCY, |pair| async { a.logout(&pair.access_token).await.unwrap() })
        .await;
    insert_revoked_sessions(&a, 2600).await;
    let logged_out = Instant::now();

    // The outage, past the promise: B cannot know (Redis never heard of these logouts), so it
    // must not answer "not revoked". Alice's row is still in the Redis cache: what refuses
    // here is the revocation check, not a failed user lookup.
    tokio::time::sleep(PROMISE.saturating_sub(logged_out.elapsed())).await;
    let accepted = accepted_count(&b, &probed[..CONCURRENCY * 2]).await;
    assert_eq!(accepted, 0, "B accepted logged-out tokens while it could not poll");

    // Redis forgets everything; B's database is back: its poll catches up on 3,000 sessions
    // while the probes run.
    forget_redis_keys(&redis_url, &prefix).await;
    let checks_before = database_checks(&b).await;
    if let Some(proxy) = &database_proxy {
        proxy.restore();
    }
    redis_proxy.restore();
    let restored = Instant::now();
    for replica in [&b, &a] {
        assert_eq!(accepted_count(replica, &probed).await, 0, "logged-out tokens accepted during the catch-up");
    }
    eprintln!(
        "{} of B's probes checked the database during the catch-up ({:?})",
        database_checks(&b).await - checks_before,
        restored.elapsed()
    );
    // Caught up: B answers from its set again, with no per-call database check.
    let deadline = restored + PROMISE * 3;
    loop {
        let before = database_checks(&b).await;
        b.user_info(&bearer(&witness.access_token)).await.expect("a live session works on B");
        if database_checks(&b).await == before {
            eprintln!("B trusted its set again {:?} after its database came back", restored.elapsed());
            break;
        }
        assert!(Instant::now() < deadline, "B still checks the database per call after its database came back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(accepted_count(&b, &probed).await, 0, "logged-out tokens accepted after the catch-up");
}

/// How many of `pairs`' access tokens `app` accepts, probed `CONCURRENCY` at once. Refusals
/// are "session revoked" or, while a store is down, UNAVAILABLE; nothing else.
async fn accepted_count(app: &TestApp, pairs: &[auth_api::user::v1::LoginResponse]) -> usize {
    stream::iter(pairs)
        .map(|pair| async move {
            match app.user_info(&bearer(&pair.access_token)).await {
                Ok(_) => 1,
                Err(status) => {
                    let expected = matches!(
                        (status.code(), status.message()),
                        (Code::Unauthenticated, "session revoked") | (Code::Unavailable, _)
                    );
                    assert!(expected, "{status:?}");
                    0
                }
            }
        })
        .buffer_unordered(CONCURRENCY)
        .fold(0, |total, accepted| async move { total + accepted })
        .await
}

/// `count` revoked one-token sessions of the first user, written in a few multi-row INSERTs.
async fn insert_revoked_sessions(app: &TestApp, count: usize) {
    use sea_orm::ConnectionTrait;
    let now = chrono::Utc::now().timestamp();
    for chunk in (0..count).collect::<Vec<_>>().chunks(500) {
        let rows: Vec<String> = chunk
            .iter()
            .map(|_| {
                let (id, family, access) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
                format!("('{id}', '{family}', 1, '{access}', {now}, {}, {now})", now + 3600)
            })
            .collect();
        let sql = format!(
            "INSERT INTO refresh_tokens (id, family_id, user_id, access_jti, issued_at, expires_at, revoked_at) \
             VALUES {}",
            rows.join(", ")
        );
        app.db.execute_unprepared(&sql).await.unwrap();
    }
}

/// Logout racing a client that refreshes as fast as it can, 40 sessions at once, 10 rounds:
/// afterwards no token of any of them can be exchanged (`revoke_family` chased every
/// successor). The race that matters is rare per session (the Logout's UPDATE must meet a
/// rotation between its row lock and its commit), hence 400 of them.
#[tokio::test]
async fn logout_racing_a_fast_refresh_chain_leaves_no_live_token() {
    let app = spawn_app_with(|config| {
        config.auth.refresh_reuse_interval = 0;
        // 40 logins of one account at once: the throttle counts those in flight too.
        config.throttle.max_failures_per_username = NonZero::new(1000).unwrap();
    })
    .await;
    app.register("alice").await;
    for round in crate::helpers::sweep_rounds(10) {
        let sessions: Vec<_> = stream::iter(0..CONCURRENCY)
            .map(|_| async { app.login("alice", PASSWORD).await.unwrap() })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let races = sessions
            .iter()
            .zip(u64::try_from(round).unwrap()..)
            .map(|(first, delay)| race_logout_against_refreshes(&app, first, delay % 20));
        futures::future::join_all(races).await;
        let now = chrono::Utc::now().timestamp();
        for first in &sessions {
            let session = token_payload(&first.access_token)["sid"].as_str().unwrap().to_owned();
            let live = model::query::refresh_tokens::live_in_family(&app.db, &session, now).await.unwrap();
            assert!(
                live.is_empty(),
                "round {round}: session {session} has {} live token(s) after its Logout",
                live.len()
            );
        }
    }
}

/// Refreshes `first`'s session in a loop while its Logout lands `delay_ms` in; the chain must
/// end (UNAUTHENTICATED) soon after.
async fn race_logout_against_refreshes(app: &TestApp, first: &auth_api::user::v1::LoginResponse, delay_ms: u64) {
    let chain = async {
        let mut current = first.refresh_token.clone();
        for _ in 0..500 {
            match app.refresh(&current).await {
                Ok(next) => current = next.refresh_token,
                Err(status) => {
                    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
                    return;
                }
            }
        }
        panic!("a chain of 500 refreshes outlived its Logout");
    };
    let logout = async {
        tokio::time::sleep(Duration::from_millis(10 + delay_ms)).await;
        app.logout(&first.access_token).await.unwrap();
    };
    tokio::join!(chain, logout);
}

/// A rotation time ahead of the database's clock (written by a replica whose clock ran fast,
/// or before a clock stepped back) gives a negative elapsed time: that is outside the reuse
/// interval, so the replay is reuse and revokes the session.
#[tokio::test]
async fn a_rotation_in_the_future_does_not_widen_the_reuse_interval() {
    use sea_orm::ConnectionTrait;
    let app = spawn_app_with(|config| config.auth.refresh_reuse_interval = 10).await;
    let first = app.signed_in("alice").await;
    let next = app.refresh(&first.refresh_token).await.unwrap();
    let replayed = app.refresh(&first.refresh_token).await.unwrap();
    assert_eq!(replayed.refresh_token, next.refresh_token, "within the interval: the same successor");

    let spent = token_payload(&first.refresh_token)["jti"].as_str().unwrap().to_owned();
    let sql = format!("UPDATE refresh_tokens SET rotated_at = rotated_at + 3600 WHERE id = '{spent}'");
    app.db.execute_unprepared(&sql).await.unwrap();
    assert_status(
        app.refresh(&first.refresh_token).await,
        Code::Unauthenticated,
        "refresh token already used; session revoked",
    );
    assert_status(app.user_info(&bearer(&next.access_token)).await, Code::Unauthenticated, "session revoked");
}

/// The revocation poll and the purge run on their own pool; once the server has stopped,
/// neither holds a connection to the database (the tasks ended with it).
#[tokio::test]
async fn the_background_tasks_stop_with_the_server() {
    use sea_orm::ConnectionTrait;
    let Some(server_url) =
        crate::helpers::database_server_or_skip("revocation::the_background_tasks_stop_with_the_server")
    else {
        return;
    };
    // Its own database: the connections are counted per database.
    let database = TestDatabase::create_database().await;
    let name = database.url.rsplit('/').next().unwrap().to_owned();
    let mut config = crate::helpers::test_config(&database.url);
    config.revocation.poll_interval_ms = 50;
    config.revocation.max_staleness_ms = 100;
    config.sessions.purge_interval_seconds = NonZero::new(1).unwrap();
    let app = spawn_app_on(config, database.handle()).await;
    app.signed_in("alice").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    app.stop().await.unwrap();

    let observer = sea_orm::Database::connect(server_url).await.unwrap();
    let sql = if database.url.starts_with("postgres") {
        format!("SELECT COUNT(*) AS n FROM pg_stat_activity WHERE datname = '{name}'")
    } else {
        format!("SELECT COUNT(*) AS n FROM information_schema.processlist WHERE db = '{name}'")
    };
    let connections = || async {
        let row = observer.query_one_raw(sea_orm::Statement::from_string(observer.get_database_backend(), sql.clone()));
        row.await.unwrap().unwrap().try_get::<i64>("", "n").unwrap()
    };
    let closed = crate::helpers::eventually(Duration::from_secs(3), || async { connections().await == 0 }).await;
    assert!(closed, "{} connection(s) to the database 3 s after the server stopped", connections().await);
}
