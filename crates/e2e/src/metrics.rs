//! `/metrics` on the admin port after a scripted scenario: the counters moved by exactly what
//! the scenario did.

use std::num::NonZero;

use auth_api::user::v1::GetUserInfoRequest;

use crate::helpers::{PASSWORD, bearer, http_get_ok, spawn_app_with};

/// The value of the sample `name{labels}` (labels exactly as exposed), 0 when absent.
pub fn sample(text: &str, series: &str) -> f64 {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok()).unwrap_or(0.0)
}

#[tokio::test]
async fn counters_move_by_what_a_scripted_scenario_did() {
    let app = spawn_app_with(|c| {
        c.admin_listen = Some("127.0.0.1:0".parse().unwrap());
        c.throttle.max_failures_per_username = NonZero::new(3).unwrap();
    })
    .await;
    let admin = app.admin.expect("admin port bound");

    app.register("alice").await;
    let first = app.login("alice", PASSWORD).await.unwrap(); // login success 1, issued 1
    for _ in 0..3 {
        app.login("alice", "wrong password").await.unwrap_err(); // failures 3
    }
    app.login("alice", PASSWORD).await.unwrap_err(); // throttled 1
    let second = app.refresh(&first.refresh_token).await.unwrap(); // refreshed 1
    let _third = app.refresh(&second.refresh_token).await.unwrap(); // refreshed 2
    app.refresh(&first.refresh_token).await.unwrap_err(); // reuse 1, revoked 1
    app.register("bob").await;
    let bob = app.login("bob", PASSWORD).await.unwrap(); // success 2, issued 2
    app.user_info(&bearer(&bob.access_token)).await.unwrap();
    app.user_info(&bearer(&bob.access_token)).await.unwrap();
    app.client.clone().get_user_info(GetUserInfoRequest {}).await.unwrap_err(); // refused by the bearer check
    app.logout(&bob.access_token).await.unwrap(); // revoked 2

    let text = http_get_ok(&format!("http://{admin}/metrics")).await;
    let expect = [
        ("auth_logins_total{outcome=\"success\"}", 2.0),
        ("auth_logins_total{outcome=\"failure\"}", 3.0),
        ("auth_logins_total{outcome=\"throttled\"}", 1.0),
        ("auth_tokens_total{outcome=\"issued\"}", 2.0),
        ("auth_tokens_total{outcome=\"refreshed\"}", 2.0),
        ("auth_tokens_total{outcome=\"revoked\"}", 2.0),
        ("auth_refresh_reuse_detections_total", 1.0),
        ("auth_rpc_requests_total{method=\"Register\",code=\"OK\"}", 2.0),
        ("auth_rpc_requests_total{method=\"Login\",code=\"OK\"}", 2.0),
        ("auth_rpc_requests_total{method=\"Login\",code=\"UNAUTHENTICATED\"}", 3.0),
        ("auth_rpc_requests_total{method=\"Login\",code=\"RESOURCE_EXHAUSTED\"}", 1.0),
        ("auth_rpc_requests_total{method=\"Refresh\",code=\"OK\"}", 2.0),
        ("auth_rpc_requests_total{method=\"Refresh\",code=\"UNAUTHENTICATED\"}", 1.0),
        ("auth_rpc_requests_total{method=\"GetUserInfo\",code=\"OK\"}", 2.0),
        ("auth_rpc_requests_total{method=\"GetUserInfo\",code=\"UNAUTHENTICATED\"}", 1.0),
        ("auth_rpc_requests_total{method=\"Logout\",code=\"OK\"}", 1.0),
        ("auth_rpc_duration_seconds_count{method=\"Login\"}", 6.0),
        ("auth_password_hashes_waiting", 0.0),
        ("auth_password_hashes_running", 0.0),
    ];
    for (series, value) in expect {
        assert_eq!(sample(&text, series), value, "{series}\n{text}");
    }
    assert!(sample(&text, "auth_cache_lookups_total{outcome=\"hit\"}") >= 1.0, "{text}");
    assert!(sample(&text, "auth_db_pool_connections{outcome=\"open\"}") >= 1.0, "{text}");
}
