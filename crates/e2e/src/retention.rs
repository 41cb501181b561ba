//! Sessions end: after `auth.session_max_lifetime_seconds` a family cannot be refreshed, and
//! `sessions.retention_seconds` after a session ended its rows are purged. On every database
//! (`AUTH_TEST_DATABASE_URL` unset = SQLite, or PostgreSQL / MariaDB).

use std::num::NonZero;

use std::time::Duration;

use model::entity::refresh_tokens;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter};
use tonic::Code;

use crate::helpers::{
    PASSWORD, TestApp, TestDatabase, assert_status, eventually, http_get_ok, spawn_app_on, spawn_app_with, test_config,
    token_payload,
};

fn session_of(access_token: &str) -> String {
    token_payload(access_token)["sid"].as_str().unwrap().to_owned()
}

async fn rows_of(app: &TestApp, session: &str) -> u64 {
    refresh_tokens::Entity::find().filter(refresh_tokens::Column::FamilyId.eq(session)).count(&app.db).await.unwrap()
}

async fn execute(app: &TestApp, sql: &str) {
    app.db.execute_unprepared(sql).await.unwrap();
}

#[tokio::test]
async fn a_session_older_than_its_maximum_lifetime_cannot_be_refreshed() {
    let app = spawn_app_with(|config| {
        config.auth.session_max_lifetime_seconds = NonZero::new(3600).unwrap();
        config.auth.refresh_reuse_interval = 10;
    })
    .await;
    let first = app.signed_in("alice").await;
    let next = app.refresh(&first.refresh_token).await.expect("a young session refreshes");
    // Each refresh token expires with the session at the latest.
    let started = token_payload(&first.refresh_token)["iat"].as_i64().unwrap();
    assert!(token_payload(&next.refresh_token)["exp"].as_i64().unwrap() <= started + 3600);

    // The session began 3,601 s ago (its rows backdated), though it was just rotated.
    let session = session_of(&first.access_token);
    let backdate = "issued_at = issued_at - 3601, session_started_at = session_started_at - 3601";
    execute(&app, &format!("UPDATE refresh_tokens SET {backdate} WHERE family_id = '{session}'")).await;
    assert_status(app.refresh(&next.refresh_token).await, Code::Unauthenticated, "session expired");
    // The replay of the just-rotated token too, though within the reuse interval.
    assert_status(app.refresh(&first.refresh_token).await, Code::Unauthenticated, "session expired");
    // A new login starts a new session.
    let fresh = app.login("alice", PASSWORD).await.unwrap();
    app.refresh(&fresh.refresh_token).await.expect("a new session refreshes");

    // Rows written before `session_started_at` existed: their family's first row says when the
    // session began, and a successor is given the column.
    let older = app.login("alice", PASSWORD).await.unwrap();
    let session = session_of(&older.access_token);
    let forget = format!("UPDATE refresh_tokens SET session_started_at = NULL WHERE family_id = '{session}'");
    execute(&app, &forget).await;
    let next = app.refresh(&older.refresh_token).await.expect("a young session without the column refreshes");
    let rows = refresh_tokens::Entity::find().filter(refresh_tokens::Column::FamilyId.eq(&session)).all(&app.db);
    assert!(rows.await.unwrap().iter().any(|row| row.session_started_at.is_some()), "the successor has the column");
    execute(&app, &forget).await;
    execute(&app, &format!("UPDATE refresh_tokens SET issued_at = issued_at - 3601 WHERE family_id = '{session}'"))
        .await;
    assert_status(app.refresh(&next.refresh_token).await, Code::Unauthenticated, "session expired");
}

/// `auth_refresh_tokens_purged_total` of one app.
async fn purged(app: &TestApp) -> u64 {
    let text = http_get_ok(&format!("http://{}/metrics", app.admin.unwrap())).await;
    let series = "auth_refresh_tokens_purged_total ";
    text.lines().find_map(|line| line.strip_prefix(series)?.trim().parse().ok()).unwrap_or(0)
}

/// A login refreshed `refreshes` times: its session id, its first token's id, the last pair.
async fn session_with_rows(app: &TestApp, refreshes: usize) -> (String, String, auth_api::user::v1::LoginResponse) {
    let mut pair = app.login("alice", PASSWORD).await.unwrap();
    let first = token_payload(&pair.refresh_token)["jti"].as_str().unwrap().to_owned();
    for _ in 0..refreshes {
        pair = app.refresh(&pair.refresh_token).await.unwrap();
    }
    (session_of(&pair.access_token), first, pair)
}

/// Two replicas purge the same database at once, in batches of 2: the long-revoked and the
/// long-expired sessions go, row count exact; a live session keeps even its long-expired
/// rotated rows; a recently revoked one stays for its retention.
#[tokio::test]
async fn ended_sessions_are_purged_in_batches_by_several_replicas_and_live_ones_kept() {
    let database = TestDatabase::create().await;
    let configure = || {
        let mut config = test_config(&database.url);
        config.admin_listen = Some("127.0.0.1:0".parse().unwrap());
        config.sessions.retention_seconds = 60;
        config.sessions.purge_interval_seconds = NonZero::new(1).unwrap();
        config.sessions.purge_batch_size = 2;
        config
    };
    let (config_a, config_b) = (configure(), configure());
    let shared = database.handle();
    let a = spawn_app_on(config_a, database).await;
    let b = spawn_app_on(config_b, shared).await;
    a.register("alice").await;

    let (revoked_long_ago, _, revoked_pair) = session_with_rows(&a, 2).await;
    a.logout(&revoked_pair.access_token).await.unwrap();
    let (expired_long_ago, _, _) = session_with_rows(&a, 2).await;
    let (live, live_first, live_pair) = session_with_rows(&a, 2).await;
    let (revoked_recently, _, recent_pair) = session_with_rows(&a, 0).await;
    a.logout(&recent_pair.access_token).await.unwrap();
    let before = (purged(&a).await, purged(&b).await);

    // Ended more than the retention ago: 3 + 3 rows. The live session's first row expired too.
    let gone = chrono::Utc::now().timestamp() - 120;
    execute(&a, &format!("UPDATE refresh_tokens SET revoked_at = {gone} WHERE family_id = '{revoked_long_ago}'")).await;
    execute(&a, &format!("UPDATE refresh_tokens SET expires_at = {gone} WHERE family_id = '{expired_long_ago}'")).await;
    execute(&a, &format!("UPDATE refresh_tokens SET expires_at = {gone} WHERE id = '{live_first}'")).await;

    let all_gone = eventually(Duration::from_secs(10), || async {
        rows_of(&a, &revoked_long_ago).await == 0 && rows_of(&a, &expired_long_ago).await == 0
    })
    .await;
    assert!(all_gone, "ended sessions still have rows 10 s later");
    let counted = eventually(Duration::from_secs(5), || async {
        (purged(&a).await - before.0) + (purged(&b).await - before.1) == 6
    })
    .await;
    let after = (purged(&a).await - before.0, purged(&b).await - before.1);
    assert!(counted, "the purged-rows metrics of both replicas add up to the 6 rows deleted: {after:?}");
    assert_eq!(rows_of(&a, &live).await, 3, "a live session keeps all its rows");
    assert_eq!(rows_of(&a, &revoked_recently).await, 1, "a session revoked within the retention stays");
    a.refresh(&live_pair.refresh_token).await.expect("the live session still refreshes");
}
