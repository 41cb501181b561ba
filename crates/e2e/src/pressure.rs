//! Promises under pressure: no user enumeration by timing, consistent sessions under
//! concurrent logins and refreshes.

use std::num::NonZero;

use std::{collections::HashMap, time::Instant};

use futures::future::join_all;
use model::entity::refresh_tokens;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use tonic::Code;

use crate::helpers::{PASSWORD, slow_test_wanted, spawn_app_with};

pub fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

#[tokio::test]
async fn unknown_user_and_wrong_password_take_the_same_time_and_answer_alike() {
    if !slow_test_wanted("pressure::unknown_user_and_wrong_password_take_the_same_time_and_answer_alike") {
        return;
    }
    // The real hashing profile: with a cheap one, the few hundred microseconds of a database
    // lookup would dominate, and they are not what an attacker sees in production.
    let app = spawn_app_with(|c| {
        c.password.hash_profile = auth_svc::config::HashProfile::Owasp;
        c.throttle.max_failures_per_username = NonZero::new(10_000).unwrap();
        c.throttle.max_failures_per_address = NonZero::new(10_000).unwrap();
    })
    .await;
    app.register("alice").await;
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for round in 0..200 {
        // Alternate the order so drift in machine load hits both sides alike.
        for known_first in [round % 2 == 0, round % 2 == 1] {
            let username = if known_first { "alice".to_owned() } else { format!("nobody-{round}") };
            let started = Instant::now();
            let status = app.login(&username, "wrong password").await.unwrap_err();
            let elapsed = started.elapsed().as_secs_f64();
            assert_eq!((status.code(), status.message()), (Code::Unauthenticated, "invalid credentials"));
            if known_first { known.push(elapsed) } else { unknown.push(elapsed) }
        }
    }
    let (known, unknown) = (median(known), median(unknown));
    let difference = (known - unknown).abs() / known.min(unknown);
    assert!(
        difference < 0.20,
        "median known {known:.4}s vs unknown {unknown:.4}s differ by {:.0}%",
        difference * 100.0
    );
}

#[tokio::test]
async fn concurrent_logins_and_refreshes_leave_at_most_one_live_token_per_session() {
    let app = spawn_app_with(|c| c.throttle.max_failures_per_username = NonZero::new(1000).unwrap()).await;
    let first = app.signed_in("alice").await;
    let logins = (0..20).map(|_| async { app.login("alice", PASSWORD).await.map(|_| ()) });
    let refreshes = (0..20).map(|_| async { app.refresh(&first.refresh_token).await.map(|_| ()) });
    let (logins, refreshes) = futures::join!(join_all(logins), join_all(refreshes));
    assert!(logins.iter().chain(&refreshes).all(Result::is_ok), "{logins:?} {refreshes:?}");

    let now = chrono::Utc::now().timestamp();
    let rows = refresh_tokens::Entity::find().all(&app.db).await.unwrap();
    let mut live_per_session: HashMap<String, usize> = HashMap::new();
    for row in &rows {
        let live = row.rotated_at.is_none() && row.revoked_at.is_none() && row.expires_at > now;
        *live_per_session.entry(row.family_id.clone()).or_default() += usize::from(live);
    }
    assert_eq!(live_per_session.len(), 21, "one session per login");
    assert!(live_per_session.values().all(|live| *live == 1), "{live_per_session:?}");
    let first_session = refresh_tokens::Entity::find()
        .filter(
            refresh_tokens::Column::FamilyId.eq(rows
                .iter()
                .find(|r| r.rotated_at.is_some())
                .unwrap()
                .family_id
                .clone()),
        )
        .all(&app.db)
        .await
        .unwrap();
    assert_eq!(first_session.len(), 2, "twenty refreshes of one token rotated it once");
}
