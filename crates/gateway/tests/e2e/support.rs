//! `spawn_app()`: auth-svc and the gateway on ephemeral ports, each test with its own database.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use reqwest::{Client, Response, StatusCode, header::HeaderMap};
use secrecy::SecretString;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::{sync::oneshot, task::JoinHandle};

/// The origin the test gateway lets browsers call from.
pub const ALLOWED_ORIGIN: &str = "http://app.example.test";

/// A running auth-svc; stopped through its shutdown future by `stop` (or when dropped).
pub struct AuthSvc {
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl AuthSvc {
    /// Starts auth-svc on `listen` (port 0 for any) with the SQLite database at `db`.
    pub async fn start(listen: SocketAddr, db: &Path) -> Self {
        Self::start_with(listen, db, |_| {}).await
    }

    /// Like [`AuthSvc::start`], with the test configuration changed by `adjust` first.
    pub async fn start_with(listen: SocketAddr, db: &Path, adjust: impl FnOnce(&mut auth_svc::Config)) -> Self {
        let mut config = auth_svc::Config {
            listen,
            database_url: format!("sqlite://{}?mode=rwc", db.display()),
            ..Default::default()
        };
        config.password.hash_profile = auth_svc::config::HashProfile::Test;
        config.auth.access_secret = Some(SecretString::from("a".repeat(40)));
        config.auth.refresh_secret = Some(SecretString::from("r".repeat(40)));
        config.grpc.shutdown_grace_seconds = 1;
        adjust(&mut config);
        let app = auth_svc::App::build(&config).await.expect("auth-svc builds");
        let addr = app.local_addr().expect("auth-svc address");
        let (shutdown, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(app.serve(async move {
            let _ = stopped.await;
        }));
        Self { addr, shutdown: Some(shutdown), task }
    }

    /// Triggers the shutdown future and waits until the server is gone.
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        (&mut self.task).await.expect("auth-svc task").expect("auth-svc stops cleanly");
    }
}

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

/// auth-svc and the gateway in front of it, plus a client.
pub struct TestApp {
    pub base: String,
    pub client: Client,
    // Held so that auth-svc, the gateway and the database live as long as the test.
    _auth: AuthSvc,
    _gateway: Gateway,
    _dir: TempDir,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(adjust: impl FnOnce(&mut gateway::Config)) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let auth = AuthSvc::start("127.0.0.1:0".parse().unwrap(), &db_path(&dir)).await;
    let mut config = gateway_config(auth.addr);
    adjust(&mut config);
    let gateway = Gateway::start(&config).await;
    TestApp { base: format!("http://{}", gateway.addr), client: client(), _auth: auth, _gateway: gateway, _dir: dir }
}

pub fn db_path(dir: &TempDir) -> PathBuf {
    dir.path().join("auth.db")
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.client.post(self.url(path)).json(body).send().await.unwrap()
    }

    pub async fn get_with_token(&self, path: &str, token: &str) -> Response {
        self.client.get(self.url(path)).bearer_auth(token).send().await.unwrap()
    }

    /// Registers through the go-zero route and returns the answer.
    pub async fn register(&self, username: &str, password: &str) -> Value {
        let response = self.post_json("/user/register", &json!({"username": username, "password": password})).await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    /// Logs in through the go-zero route: (access, refresh).
    pub async fn login(&self, username: &str, password: &str) -> (String, String) {
        let response = self.post_json("/user/login", &json!({"username": username, "password": password})).await;
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        (body["accessToken"].as_str().unwrap().to_owned(), body["refreshToken"].as_str().unwrap().to_owned())
    }
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
