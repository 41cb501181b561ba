//! `/metrics` on the admin port after a fixed sequence of calls: requests counted by route template
//! and the status the client got.

use serde_json::json;

use crate::support::{
    auth_svc::{AuthSvc, db_path},
    client, gateway_config,
};

fn sample(text: &str, series: &str) -> f64 {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok()).unwrap_or(0.0)
}

#[tokio::test]
async fn requests_are_counted_by_route_and_status() {
    let dir = tempfile::tempdir().unwrap();
    let auth = AuthSvc::start("127.0.0.1:0".parse().unwrap(), &db_path(&dir)).await;
    let mut config = gateway_config(auth.addr);
    config.admin_listen = Some("127.0.0.1:0".parse().unwrap());
    let app = gateway::App::build(&config).await.unwrap();
    let (base, admin) = (format!("http://{}", app.local_addr().unwrap()), app.admin_addr().expect("admin port"));
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.serve(async move {
        let _ = stopped.await;
    }));
    let http = client();

    for _ in 0..2 {
        assert_eq!(http.get(format!("{base}/healthz")).send().await.unwrap().status(), 200);
    }
    let credentials = json!({"username": "alice", "password": "secret123"});
    assert_eq!(http.post(format!("{base}/user/register")).json(&credentials).send().await.unwrap().status(), 200);
    let wrong = json!({"username": "alice", "password": "wrong-password"});
    assert_eq!(http.post(format!("{base}/user/login")).json(&wrong).send().await.unwrap().status(), 401);
    assert_eq!(http.get(format!("{base}/protected")).send().await.unwrap().status(), 401);
    assert_eq!(http.get(format!("{base}/no/such/path")).send().await.unwrap().status(), 404);

    let text = http.get(format!("http://{admin}/metrics")).send().await.unwrap().text().await.unwrap();
    let expect = [
        ("gateway_http_requests_total{route=\"/healthz\",status=\"200\"}", 2.0),
        ("gateway_http_requests_total{route=\"/user/register\",status=\"200\"}", 1.0),
        ("gateway_http_requests_total{route=\"/user/login\",status=\"401\"}", 1.0),
        ("gateway_http_requests_total{route=\"/protected\",status=\"401\"}", 1.0),
        ("gateway_http_requests_total{route=\"unmatched\",status=\"404\"}", 1.0),
        ("gateway_http_request_duration_seconds_count{route=\"/healthz\"}", 2.0),
    ];
    for (series, value) in expect {
        assert_eq!(sample(&text, series), value, "{series}\n{text}");
    }
    auth.stop().await;
}
