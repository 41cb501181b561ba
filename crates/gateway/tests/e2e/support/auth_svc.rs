//! `spawn_app()`: the real auth-svc and a gateway in front of it, on ephemeral ports, each test
//! with its own database.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use auth_svc::service::clients::NewClient;
use reqwest::{Client, Response, StatusCode};
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::{sync::oneshot, task::JoinHandle};

use super::{Gateway, client, gateway_config};

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
        let mut config = test_config(listen, db);
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

/// The scopes the test auth-svc may give service accounts (`clients.scopes`).
pub const CLIENT_SCOPES: [&str; 3] = ["introspect", "orders:read", "orders:write"];

/// The configuration every test's auth-svc starts from: the SQLite database at `db`, cheap
/// hashing, fixed secrets, the service-account scopes [`CLIENT_SCOPES`].
pub fn test_config(listen: SocketAddr, db: &Path) -> auth_svc::Config {
    let mut config =
        auth_svc::Config { listen, database_url: format!("sqlite://{}?mode=rwc", db.display()), ..Default::default() };
    config.password.hash_profile = auth_svc::config::HashProfile::Test;
    config.auth.access_secret = Some(SecretString::from("a".repeat(40)));
    config.auth.refresh_secret = Some(SecretString::from("r".repeat(40)));
    config.grpc.shutdown_grace_seconds = 1;
    config.clients.scopes = CLIENT_SCOPES.map(str::to_owned).to_vec();
    config
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
    spawn_app_configured(|_| {}, adjust).await
}

/// [`spawn_app`] with the second factor available: a sealing key in `mfa.keys`, named by
/// `mfa.active_key` (without them auth-svc answers FAILED_PRECONDITION).
pub async fn spawn_app_with_mfa() -> TestApp {
    spawn_app_configured(enable_mfa, |_| {}).await
}

/// The test sealing key of `mfa.keys`: 32 bytes (of 0x07) in base64.
const MFA_TEST_KEY: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";

pub fn enable_mfa(config: &mut auth_svc::Config) {
    let key = auth_svc::config::SealingKeyConfig { key_file: None, key: Some(SecretString::from(MFA_TEST_KEY)) };
    config.mfa.keys.insert("t1".to_owned(), key);
    config.mfa.active_key = Some("t1".to_owned());
}

/// auth-svc configured by `adjust_auth` and a gateway in front of it configured by `adjust`.
pub async fn spawn_app_configured(
    adjust_auth: impl FnOnce(&mut auth_svc::Config),
    adjust: impl FnOnce(&mut gateway::Config),
) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let auth = AuthSvc::start_with("127.0.0.1:0".parse().unwrap(), &db_path(&dir), adjust_auth).await;
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

    /// Makes `username` an admin the operator's way (`auth-svc user set-role`, straight on the
    /// database). Call it before the account logs in: without Redis, auth-svc keeps serving the
    /// account it cached at login for a while.
    pub async fn make_admin(&self, username: &str) {
        let config = test_config("127.0.0.1:0".parse().unwrap(), &db_path(&self._dir));
        let (user, _) = auth_svc::cli::set_role_offline(&config, username, "admin").await.expect("set-role");
        assert_eq!(user.role, "admin");
    }

    /// Creates service account `client_id` the operator's way (`auth-svc client create`, straight
    /// on the database), allowed `scopes` and `audiences`, and returns its secret.
    pub async fn create_client(&self, client_id: &str, scopes: &[&str], audiences: &[&str]) -> String {
        let config = test_config("127.0.0.1:0".parse().unwrap(), &db_path(&self._dir));
        let clients = auth_svc::cli::offline_clients(&config).await.expect("client store");
        let (actor, call) = auth_svc::cli::operator_call();
        let owned = |items: &[&str]| items.iter().map(|item| (*item).to_owned()).collect();
        let new = NewClient {
            client_id: client_id.to_owned(),
            name: format!("{client_id} (test)"),
            role: String::new(),
            scopes: owned(scopes),
            audiences: owned(audiences),
        };
        let (_, secret) = clients.create(new, actor, &call).await.expect("client created");
        secret.expose_secret().to_owned()
    }

    /// Logs in through the go-zero route: (access, refresh).
    pub async fn login(&self, username: &str, password: &str) -> (String, String) {
        let response = self.post_json("/user/login", &json!({"username": username, "password": password})).await;
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        (body["accessToken"].as_str().unwrap().to_owned(), body["refreshToken"].as_str().unwrap().to_owned())
    }
}
