//! `spawn_app()`: a real auth-svc on 127.0.0.1:0 with its own SQLite file.

use std::time::Duration;

use auth_api::user::v1::{
    GetUserInfoRequest, LoginRequest, LoginResponse, RegisterRequest, RegisterResponse, UserInfo,
    user_service_client::UserServiceClient,
};
use auth_svc::{App, Config, config::HashProfile};
use model::DatabaseConnection;
use secrecy::SecretString;
use tokio::{sync::oneshot, task::JoinHandle};
use tonic::{Code, Request, Status, transport::Channel};

pub const ACCESS_SECRET: &str = "test-access-secret-0123456789abcdef-0123456789";
pub const REFRESH_SECRET: &str = "test-refresh-secret-0123456789abcdef-012345678";
pub const PASSWORD: &str = "correct horse battery";

/// Set to a PostgreSQL or MySQL/MariaDB URL (any existing database on the server) to run the
/// suite there: each test then creates and drops its own database. Unset = SQLite files.
pub const DATABASE_ENV: &str = "AUTH_TEST_DATABASE_URL";

pub struct TestApp {
    pub client: UserServiceClient<Channel>,
    pub channel: Channel,
    pub db: DatabaseConnection,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
    _database: TestDatabase,
}

/// A database of one test: a file in a temporary directory, or a uniquely named database on
/// the server of [`DATABASE_ENV`], dropped with the test.
pub struct TestDatabase {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    server: Option<(String, String)>,
}

impl TestDatabase {
    pub async fn create() -> Self {
        let Ok(admin_url) = std::env::var(DATABASE_ENV) else {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}?mode=rwc", dir.path().join("auth.db").display());
            return Self { url, _dir: Some(dir), server: None };
        };
        let name = format!("auth_e2e_{}", &uuid::Uuid::new_v4().simple().to_string()[..16]);
        let admin = sea_orm::Database::connect(&admin_url).await.expect("test database server reachable");
        sea_orm::ConnectionTrait::execute_unprepared(&admin, &format!("CREATE DATABASE {name}")).await.unwrap();
        admin.close().await.ok();
        let base = admin_url.split('?').next().unwrap();
        let url = format!("{}/{name}", &base[..base.rfind('/').unwrap()]);
        Self { url, _dir: None, server: Some((admin_url, name)) }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some((admin_url, name)) = self.server.take() else { return };
        // Drop runs inside the test's runtime; a fresh thread may block on its own runtime.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                let admin = sea_orm::Database::connect(&admin_url).await?;
                let force = if admin_url.starts_with("postgres") { " WITH (FORCE)" } else { "" };
                sea_orm::ConnectionTrait::execute_unprepared(&admin, &format!("DROP DATABASE IF EXISTS {name}{force}"))
                    .await
                    .map(|_| ())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop a test database: {dropped:?}");
        }
    }
}

/// The default test configuration: cheap hashing, fixed secrets, the given database.
pub fn test_config(database_url: &str) -> Config {
    let mut config =
        Config { listen: "127.0.0.1:0".parse().unwrap(), database_url: database_url.into(), ..Config::default() };
    config.password.hash_profile = HashProfile::Test;
    config.auth.access_secret = Some(SecretString::from(ACCESS_SECRET));
    config.auth.refresh_secret = Some(SecretString::from(REFRESH_SECRET));
    config
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    let database = TestDatabase::create().await;
    let mut config = test_config(&database.url);
    adjust(&mut config);
    config.validate().expect("test config is valid");
    let app = App::build(&config).await.expect("app builds");
    let addr = app.local_addr().unwrap();
    let db = app.database().clone();
    let (shutdown, stop) = oneshot::channel::<()>();
    let server = tokio::spawn(app.serve(async move {
        let _ = stop.await;
    }));
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .expect("connects");
    TestApp {
        client: UserServiceClient::new(channel.clone()),
        channel,
        db,
        shutdown: Some(shutdown),
        server: Some(server),
        _database: database,
    }
}

impl TestApp {
    pub async fn register(&self, username: &str) -> RegisterResponse {
        self.client
            .clone()
            .register(RegisterRequest { username: username.into(), password: PASSWORD.into() })
            .await
            .expect("register")
            .into_inner()
    }

    pub async fn login(&self, username: &str, password: &str) -> Result<LoginResponse, Status> {
        self.client
            .clone()
            .login(LoginRequest { username: username.into(), password: password.into() })
            .await
            .map(|r| r.into_inner())
    }

    /// Registers `username` and logs in.
    pub async fn signed_in(&self, username: &str) -> LoginResponse {
        self.register(username).await;
        self.login(username, PASSWORD).await.expect("login")
    }

    pub async fn refresh(&self, token: &str) -> Result<LoginResponse, Status> {
        self.client
            .clone()
            .refresh(auth_api::user::v1::RefreshRequest { refresh_token: token.into() })
            .await
            .map(|r| r.into_inner())
    }

    pub async fn user_info(&self, authorization: &str) -> Result<UserInfo, Status> {
        self.client
            .clone()
            .get_user_info(with_authorization(GetUserInfoRequest {}, authorization))
            .await
            .map(|r| r.into_inner())
    }

    /// Stops the server the way SIGTERM does and waits for it.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        self.server.take().unwrap().await.unwrap()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(server) = &self.server {
            server.abort();
        }
    }
}

pub fn with_authorization<T>(message: T, authorization: &str) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert("authorization", authorization.parse().unwrap());
    request
}

pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[track_caller]
pub fn assert_status<T: std::fmt::Debug>(result: Result<T, Status>, code: Code, message: &str) {
    let status = result.expect_err("expected an error status");
    assert_eq!(status.code(), code, "{status:?}");
    assert_eq!(status.message(), message, "{status:?}");
}
