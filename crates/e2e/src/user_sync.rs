//! Account changes reach every replica's user cache within `revocation.max_staleness_ms` (the
//! bound of the revocation promise), whatever Redis does: each replica polls the database for
//! accounts changed since its last poll and forgets them, and reads the database instead of
//! its cache while its poll is stale. Two replicas on one database, with Redis
//! (`AUTH_TEST_REDIS_URL`) or each with its own in-process cache; on SQLite, PostgreSQL and
//! MariaDB (`AUTH_TEST_DATABASE_URL`).

use std::time::{Duration, Instant};

use auth_api::user::v1::SetUserRoleRequest;
use auth_svc::{domain::User, store::cache::Lookup};
use sea_orm::ConnectionTrait;
use tonic::{Code, Status};

use crate::{
    helpers::{PASSWORD, TestApp, assert_status, bearer, proxied_redis_or_skip, with_authorization},
    replicas::two_replicas_each,
};

/// `revocation.max_staleness_ms` at its default: the bound every case below checks.
const BOUND: Duration = Duration::from_millis(2000);

/// A replica stops trusting its cache exactly at the bound; the probe sees it at its next tick.
const PROBE_TICK: Duration = Duration::from_millis(50);

/// Two replicas with two admins: `root` (who demotes) and `boss` (demoted), made admins in the
/// database before any cache saw them. B has `boss`'s admin row cached. Returns the replicas,
/// root's and boss's access tokens (boss's from B) and boss's id.
struct Deployment {
    b: TestApp,
    a: TestApp,
    root: String,
    boss: String,
    boss_id: i64,
}

async fn deployment(adjust: impl FnOnce(&mut auth_svc::Config, &mut auth_svc::Config)) -> Deployment {
    let (a, b) = two_replicas_each(adjust).await;
    a.register("root").await;
    let boss_id = a.register("boss").await.id;
    for name in ["root", "boss"] {
        model::query::users::set_role(&a.db, name, "admin").await.unwrap().unwrap();
    }
    let root = a.login("root", PASSWORD).await.unwrap().access_token;
    let boss = b.login("boss", PASSWORD).await.unwrap().access_token;
    // B's first read may fall across one of its polls (and is then not stored): read again.
    let cached = crate::helpers::eventually(Duration::from_secs(3), || async {
        assert_eq!(b.user_info(&bearer(&boss)).await.unwrap().role, "admin");
        matches!(b.users.cache().by_id(boss_id).await, Lookup::Hit(user) if user.role == "admin")
    })
    .await;
    assert!(cached, "B caches boss's admin row");
    Deployment { b, a, root, boss, boss_id }
}

async fn set_role(app: &TestApp, access_token: &str, username: &str, role: &str) -> Result<(), Status> {
    let request = SetUserRoleRequest { username: username.into(), role: role.into() };
    app.client.clone().set_user_role(with_authorization(request, &bearer(access_token))).await.map(|_| ())
}

/// How long after `since` B's GetUserInfo for `token` first satisfied `shows` (probing every
/// 50 ms), or `None` if it did not within a few times the bound. Once it does, it keeps doing so.
async fn seen_after(
    app: &TestApp,
    token: &str,
    since: Instant,
    shows: impl Fn(&Result<auth_api::user::v1::UserInfo, Status>) -> bool,
) -> Option<Duration> {
    while since.elapsed() < 3 * BOUND {
        if shows(&app.user_info(&bearer(token)).await) {
            let took = since.elapsed();
            for _ in 0..5 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                assert!(shows(&app.user_info(&bearer(token)).await), "seen once, then the old row again");
            }
            return Some(took);
        }
        tokio::time::sleep(PROBE_TICK).await;
    }
    None
}

fn demoted(info: &Result<auth_api::user::v1::UserInfo, Status>) -> bool {
    info.as_ref().expect("GetUserInfo answers").role == "user"
}

#[track_caller]
fn assert_within_bound(case: &str, took: Option<Duration>) {
    assert_within(case, took, BOUND);
}

#[track_caller]
fn assert_within(case: &str, took: Option<Duration>, bound: Duration) {
    let took = took.unwrap_or_else(|| panic!("{case}: replica B still serves the old row"));
    eprintln!("{case}: replica B served the new row {took:?} after the change");
    assert!(took <= bound, "{case}: only after {took:?}");
}

/// Demotes boss on A and checks B: its SetUserRole refusal holds at once (it reads uncached),
/// and its GetUserInfo shows the new role within the bound.
async fn demote_on_a_and_watch_b(deployment: &Deployment, case: &str) {
    let Deployment { a, b, root, boss, .. } = deployment;
    let changed = Instant::now();
    set_role(a, root, "boss", "user").await.unwrap();
    assert_status(set_role(b, boss, "root", "user").await, Code::PermissionDenied, "only admins may set roles");
    assert_within_bound(case, seen_after(b, boss, changed, demoted).await);
}

#[tokio::test]
async fn a_role_change_on_one_replica_reaches_the_other_replicas_cache_within_the_bound() {
    let deployment = deployment(|_, _| {}).await;
    demote_on_a_and_watch_b(&deployment, "demoted on A").await;
}

#[tokio::test]
async fn a_role_change_on_a_replica_cut_off_from_redis_reaches_the_other_within_the_bound() {
    let Some((proxy, proxied)) = proxied_redis_or_skip(
        "user_sync::a_role_change_on_a_replica_cut_off_from_redis_reaches_the_other_within_the_bound",
    )
    .await
    else {
        return;
    };
    let deployment = deployment(|a, _| a.redis_url = Some(proxied)).await;
    // A's forget cannot reach Redis: only B's poll can drop the shared entry.
    proxy.sever().await;
    demote_on_a_and_watch_b(&deployment, "demoted on A, A's Redis cut").await;
    proxy.restore();
}

#[tokio::test]
async fn a_stale_row_stored_right_after_the_change_is_healed_within_the_bound() {
    let deployment = deployment(|_, _| {}).await;
    let Deployment { a, b, root, boss, boss_id } = &deployment;
    let changed = Instant::now();
    set_role(a, root, "boss", "user").await.unwrap();
    // What a read that began before the change and stored after its forget would leave.
    let old = User {
        id: *boss_id,
        username: "boss".into(),
        username_canonical: "boss".into(),
        role: "admin".into(),
        disabled: false,
    };
    b.users.cache().store(&old).await;
    assert_within_bound("stale row stored after the change", seen_after(b, boss, changed, demoted).await);
}

#[tokio::test]
async fn a_deleted_account_is_refused_by_every_replica_within_the_bound() {
    let deployment = deployment(|_, _| {}).await;
    let Deployment { a, b, boss, boss_id, .. } = &deployment;
    let deleted = Instant::now();
    assert!(a.users.delete(*boss_id).await.unwrap());
    let gone = |info: &Result<_, Status>| match info {
        Ok(_) => false,
        Err(status) => {
            assert_eq!((status.code(), status.message()), (Code::Unauthenticated, "account no longer exists"));
            true
        }
    };
    assert_within_bound("deleted on A", seen_after(b, boss, deleted, gone).await);
}

#[tokio::test]
async fn a_replica_whose_poll_fails_reads_the_database_once_the_bound_passes() {
    let deployment = deployment(|_, _| {}).await;
    let Deployment { a, b, boss, .. } = &deployment;
    // Every replica's poll fails from now on (it reads this table); calls do not read it. B's
    // last successful poll began before this instant, so its cache is trusted until at most
    // the bound after it.
    let polls_fail = Instant::now();
    a.db.execute_unprepared("ALTER TABLE user_deletions RENAME TO user_deletions_away").await.unwrap();
    // A change whose invalidation reaches no cache: written past the service.
    model::query::users::set_role(&a.db, "boss", "user").await.unwrap().unwrap();
    let took = seen_after(b, boss, polls_fail, demoted).await;
    assert_within("changed in the database, polls failing", took, BOUND + PROBE_TICK);
    let still = b.user_info(&bearer(boss)).await.unwrap();
    assert_eq!(still.role, "user", "answered from the database, not refused");
}
