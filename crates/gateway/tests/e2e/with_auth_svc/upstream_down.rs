//! auth-svc down: the gateway starts anyway, answers 503 with a clear body, and serves again as
//! soon as auth-svc is back on the same address, without being restarted.

use std::net::SocketAddr;

use reqwest::StatusCode;
use serde_json::json;

use crate::support::{
    Gateway,
    auth_svc::{AuthSvc, db_path},
    client, gateway_config, read,
};

/// A port nobody listens on right now (bound on port 0, then released).
fn free_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

#[tokio::test]
async fn gateway_rides_out_an_auth_svc_outage() {
    let dir = tempfile::tempdir().unwrap();
    let auth_addr = free_port();
    let gateway = Gateway::start(&gateway_config(auth_addr)).await;
    let client = client();
    let url = |path: &str| format!("http://{}{path}", gateway.addr);
    let login = json!({"username": "alice", "password": "secret123"});

    let assert_down = || async {
        let (status, _, body) = read(client.post(url("/user/login")).json(&login).send().await.unwrap()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body, json!({"code": 503, "msg": "auth service unavailable, retry later"}));
        let form = [("username", "alice"), ("password", "secret123")];
        let (status, _, body) = read(client.post(url("/token")).form(&form).send().await.unwrap()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        let unavailable = "auth service unavailable, retry later";
        let expected =
            json!({"detail": unavailable, "error": "temporarily_unavailable", "error_description": unavailable});
        assert_eq!(body, expected);
        let (status, _, body) = read(client.get(url("/readyz")).send().await.unwrap()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body, json!({"status": "unavailable"}));
        let (status, _, _) = read(client.get(url("/healthz")).send().await.unwrap()).await;
        assert_eq!(status, StatusCode::OK);
    };

    // Started before auth-svc ever ran.
    assert_down().await;

    let auth = AuthSvc::start(auth_addr, &db_path(&dir)).await;
    let (status, _, _) = read(client.get(url("/readyz")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let response = client.post(url("/user/register")).json(&login).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let response = client.post(url("/user/login")).json(&login).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    // Stopped while the gateway holds a connection to it.
    auth.stop().await;
    assert_down().await;

    // Back on the same address with the same database: the account is still there.
    let auth = AuthSvc::start(auth_addr, &db_path(&dir)).await;
    let (status, _, body) = read(client.post(url("/user/login")).json(&login).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["expiresIn"], 900);
    let (status, _, body) = read(client.get(url("/readyz")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"status": "ready"}));
    auth.stop().await;
}
