//! What every suite shares: the gateway on port 0 (`Gateway`, `gateway_config`), an HTTP client,
//! and exact-assertion helpers. The upstream a gateway talks to is one of two kinds:
//! [`auth_svc`] starts the real auth-svc (temp SQLite, cheap hashing) and `spawn_app()` puts a
//! gateway in front of it; [`scripted_upstream`] is a fake `UserService` that answers what a
//! test scripts and records the metadata it receives. [`cases`] runs table-driven requests;
//! [`authenticator`] computes TOTP codes as an authenticator app does.

use std::net::SocketAddr;

use reqwest::{Client, Response, StatusCode, header::HeaderMap};
use serde_json::Value;
use tokio::sync::oneshot;

pub mod auth_svc;
pub mod authenticator;
pub mod cases;
pub mod scripted_upstream;

/// The origin the test gateway lets browsers call from.
pub const ALLOWED_ORIGIN: &str = "http://app.example.test";

/// A running gateway; stopped when dropped.
pub struct Gateway {
    pub addr: SocketAddr,
    _shutdown: oneshot::Sender<()>,
}

impl Gateway {
    pub async fn start(config: &gateway::Config) -> Self {
        let app = gateway::App::build(config).await.expect("gateway builds");
        let addr = app.local_addr().expect("gateway address");
        let (shutdown, stopped) = oneshot::channel::<()>();
        tokio::spawn(app.serve(async move {
            let _ = stopped.await;
        }));
        Self { addr, _shutdown: shutdown }
    }
}

/// The gateway configuration every test starts from, pointing at `upstream`.
pub fn gateway_config(upstream: SocketAddr) -> gateway::Config {
    let mut config = gateway::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        upstream: format!("http://{upstream}"),
        ..Default::default()
    };
    config.cors.allowed_origins = vec![ALLOWED_ORIGIN.to_owned()];
    config.grpc.connect_timeout_ms = 1_000;
    config
}

pub fn client() -> Client {
    // No proxy: every request goes to 127.0.0.1. No redirects: tests see exactly what is sent.
    Client::builder().no_proxy().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// Status, headers and JSON body, for exact assertions.
pub async fn read(response: Response) -> (StatusCode, HeaderMap, Value) {
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text:?}"));
    (status, headers, body)
}

/// Asserts a header's exact value.
pub fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers.get(name).unwrap_or_else(|| panic!("missing header {name}")).to_str().unwrap()
}

/// A JWT is three non-empty base64url parts.
pub fn is_jwt(token: &str) -> bool {
    let parts: Vec<_> = token.split('.').collect();
    parts.len() == 3 && parts.iter().all(|part| !part.is_empty())
}
