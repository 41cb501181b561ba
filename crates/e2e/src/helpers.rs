//! `spawn_app()`: a real auth-svc on 127.0.0.1:0 with its own SQLite file.

use std::num::NonZero;

use std::{
    future::Future,
    path::Path,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use auth_api::user::v1::{
    ChangePasswordRequest, DeleteAccountRequest, DeleteUserRequest, DisableUserRequest, EnableUserRequest,
    GetUserInfoRequest, GetUserRequest, ListSessionsRequest, ListUsersRequest, ListUsersResponse, LoginRequest,
    LoginResponse, LogoutAllRequest, LogoutRequest, RegisterRequest, RegisterResponse, RevokeSessionRequest,
    RevokeUserSessionsRequest, Session, UserInfo, UserRecord, ValidateTokenRequest, ValidateTokenResponse,
    get_user_request, user_service_client::UserServiceClient,
};
use auth_svc::{
    App, Config,
    audit::{AuditEvent, AuditSink},
    config::{HashProfile, RedisConfig},
    service::users::Users,
    store::RedisStore,
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use model::DatabaseConnection;
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio::{sync::oneshot, task::JoinHandle};
use tonic::{Code, Request, Status, transport::Channel};

use crate::proxy::TcpProxy;

/// The repository's root, where `deploy/` and `tests/fixtures/` are: two levels above this
/// crate (`crates/e2e`). Tests read files by this path, never by the working directory.
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2).expect("crates/e2e sits two levels below the root")
}

/// A test-only key in `tests/fixtures/keys` (shared with auth-svc's and auth-verifier's unit tests).
pub fn key_fixture(name: &str) -> std::path::PathBuf {
    repo_root().join("tests/fixtures/keys").join(name)
}

pub const ACCESS_SECRET: &str = "test-access-secret-0123456789abcdef-0123456789";
pub const REFRESH_SECRET: &str = "test-refresh-secret-0123456789abcdef-012345678";
pub const PASSWORD: &str = "correct horse battery";

/// The `kid` the service gives the HMAC key `secret` (forged tokens need it to get anywhere).
pub fn hmac_kid(secret: &str) -> String {
    auth_svc::auth::keys::hmac_kid(&secrecy::SecretString::from(secret))
}

/// Set to a PostgreSQL or MySQL/MariaDB URL (any existing database on the server) to run the
/// suite there: each test then creates and drops its own database. Unset = SQLite files.
pub const DATABASE_ENV: &str = "AUTH_TEST_DATABASE_URL";

/// Set to a Redis URL to run the suite with the Redis cache, throttle and revocation list;
/// each test gets its own key prefix. Unset = the in-process implementations.
pub const REDIS_ENV: &str = "AUTH_TEST_REDIS_URL";

/// `1` runs, `0` skips the slow tests whose outcome depends on neither the database nor
/// Redis (timing medians with the real hashing profile, floods against the in-process log):
/// another run on another store finds nothing new and costs minutes of CPU, so `.ci/run`
/// runs them in one variant only. Unset: they run when no database server is named
/// ([`DATABASE_ENV`]), so the README's `cargo test --workspace` runs them.
pub const SLOW_ENV: &str = "AUTH_TEST_SLOW";

/// Whether this run wants the slow test `test` (see [`SLOW_ENV`]); when not, says so in one
/// line and the test passes.
pub fn slow_test_wanted(test: &str) -> bool {
    let wanted = match std::env::var(SLOW_ENV).as_deref() {
        Ok("1") => true,
        Ok("0") => false,
        Ok(other) => panic!("{SLOW_ENV}={other:?}: set it to 1 (run the slow tests) or 0 (skip them)"),
        Err(_) => std::env::var(DATABASE_ENV).is_err(),
    };
    if !wanted {
        eprintln!("skipped {test}: slow and independent of the stores; set {SLOW_ENV}=1 to run it");
    }
    wanted
}

/// `1` (or unset) runs every round of the race sweeps (a race tried many times, each a little
/// differently); `0` runs every fourth, still spread over the whole sweep. `.ci/run` runs the
/// full sweeps once per database, with the in-process state, and the short ones in the variants
/// with Redis, where a race in the database is no likelier to show.
pub const SWEEPS_ENV: &str = "AUTH_TEST_FULL_SWEEPS";

/// The rounds a race sweep of `full` rounds runs in this run (see [`SWEEPS_ENV`]).
pub fn sweep_rounds(full: usize) -> impl Iterator<Item = usize> {
    let step = match std::env::var(SWEEPS_ENV).as_deref() {
        Ok("1") | Err(_) => 1,
        Ok("0") => 4,
        Ok(other) => panic!("{SWEEPS_ENV}={other:?}: set it to 1 (every round) or 0 (every fourth)"),
    };
    (0..full).step_by(step)
}

/// The Redis of this run, if any.
pub fn redis_url() -> Option<String> {
    std::env::var(REDIS_ENV).ok()
}

/// A test that needs Redis says so in one line and passes when there is none; `.ci/run` runs
/// the suite with Redis too, so these run there.
pub fn redis_or_skip(test: &str) -> Option<String> {
    let url = redis_url();
    if url.is_none() {
        eprintln!("skipped {test}: needs Redis; set {REDIS_ENV}=redis://127.0.0.1:6379 to run it");
    }
    url
}

/// A Redis store of its own on `url`, for tests of the stores themselves: a fresh key prefix,
/// so it sees nothing of other tests.
pub fn redis_store(url: &str, pool_size: usize, timeout_ms: u64) -> Arc<RedisStore> {
    let config = RedisConfig {
        pool_size: NonZero::new(pool_size).unwrap(),
        timeout_ms: NonZero::new(timeout_ms).unwrap(),
        key_prefix: format!("auth-e2e:{}:", uuid::Uuid::new_v4().simple()),
    };
    Arc::new(RedisStore::new(&SecretString::from(url.to_owned()), &config).unwrap())
}

/// Like [`redis_or_skip`], with a [`TcpProxy`] in front of that Redis for the test to cut, and
/// the Redis URL that goes through it.
pub async fn proxied_redis_or_skip(test: &str) -> Option<(TcpProxy, SecretString)> {
    let url = redis_or_skip(test)?;
    let (proxy, proxied_url) = TcpProxy::in_front_of(&url, 6379).await;
    Some((proxy, SecretString::from(proxied_url)))
}

/// How long after [`TcpProxy::restore`] an app uses Redis again: `RedisStore`'s breaker skips
/// Redis for 1 s after a failure; 100 ms more for the last failure to age out.
pub const REDIS_BREAKER_CLOSES: Duration = Duration::from_millis(1100);

/// Restores a Redis cut with `proxy` and waits until the apps behind it use Redis again.
pub async fn restore_redis(proxy: &TcpProxy) {
    proxy.restore();
    tokio::time::sleep(REDIS_BREAKER_CLOSES).await;
}

/// A test that needs a database server (not SQLite), likewise.
pub fn database_server_or_skip(test: &str) -> Option<String> {
    let url = std::env::var(DATABASE_ENV).ok();
    if url.is_none() {
        eprintln!("skipped {test}: needs a database server; set {DATABASE_ENV} to run it");
    }
    url
}

pub struct TestApp {
    /// The gRPC address the server listens on.
    pub addr: std::net::SocketAddr,
    pub client: UserServiceClient<Channel>,
    pub channel: Channel,
    pub db: DatabaseConnection,
    /// Statements the server sent to its database so far.
    pub queries: model::QueryCounter,
    pub users: Arc<Users>,
    pub redis: Option<Arc<RedisStore>>,
    /// The admin (metrics) address, when the config set `admin_listen`.
    pub admin: Option<std::net::SocketAddr>,
    /// Every audit event the server wrote (it also writes them to the log).
    pub audit: AuditLog,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
    _database: TestDatabase,
}

/// A database of one test: a file in a temporary directory, or on the server of
/// [`DATABASE_ENV`] a uniquely named database (MySQL) or schema (PostgreSQL), dropped with the
/// test.
pub struct TestDatabase {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    server: Option<(String, Namespace)>,
}

/// What a test got on a database server, and so what dropping it takes.
#[derive(Debug, Clone)]
enum Namespace {
    Database(String),
    /// PostgreSQL: a schema in the server URL's database, which the test's URL puts first on
    /// `search_path`. `DROP DATABASE` forces a checkpoint (over a second here, per test);
    /// `DROP SCHEMA` does not.
    Schema(String),
}

impl TestDatabase {
    pub async fn create() -> Self {
        let Ok(admin_url) = std::env::var(DATABASE_ENV) else { return Self::sqlite() };
        if admin_url.starts_with("postgres") {
            let name = unique_name();
            Self::execute(&admin_url, &format!("CREATE SCHEMA {name}")).await;
            let separator = if admin_url.contains('?') { '&' } else { '?' };
            let url = format!("{admin_url}{separator}options=-c%20search_path%3D{name}");
            return Self { url, _dir: None, server: Some((admin_url, Namespace::Schema(name))) };
        }
        Self::create_database().await
    }

    /// A database of its own on the server (for a test that looks at the server's per-database
    /// views); as [`create`](Self::create) without a server.
    pub async fn create_database() -> Self {
        let Ok(admin_url) = std::env::var(DATABASE_ENV) else { return Self::sqlite() };
        let name = unique_name();
        Self::execute(&admin_url, &format!("CREATE DATABASE {name}")).await;
        let base = admin_url.split('?').next().unwrap();
        let url = format!("{}/{name}", &base[..base.rfind('/').unwrap()]);
        Self { url, _dir: None, server: Some((admin_url, Namespace::Database(name))) }
    }

    fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("auth.db").display());
        Self { url, _dir: Some(dir), server: None }
    }

    async fn execute(admin_url: &str, sql: &str) {
        let admin = sea_orm::Database::connect(admin_url).await.expect("test database server reachable");
        sea_orm::ConnectionTrait::execute_unprepared(&admin, sql).await.unwrap();
        admin.close().await.ok();
    }
}

fn unique_name() -> String {
    format!("auth_e2e_{}", &uuid::Uuid::new_v4().simple().to_string()[..16])
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some((admin_url, namespace)) = self.server.take() else { return };
        // Drop runs inside the test's runtime; a fresh thread may block on its own runtime.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                let admin = sea_orm::Database::connect(&admin_url).await?;
                let sql = match &namespace {
                    Namespace::Schema(name) => format!("DROP SCHEMA IF EXISTS {name} CASCADE"),
                    Namespace::Database(name) if admin_url.starts_with("postgres") => {
                        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")
                    }
                    Namespace::Database(name) => format!("DROP DATABASE IF EXISTS {name}"),
                };
                sea_orm::ConnectionTrait::execute_unprepared(&admin, &sql).await.map(|_| ())
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
    // Every test registers from 127.0.0.1; the signup limit has tests of its own (abuse.rs).
    config.register.max_per_address = NonZero::new(1_000_000).unwrap();
    // Likewise many tests log in concurrently from 127.0.0.1; abuse.rs tests this cap.
    config.throttle.max_in_flight_per_address = NonZero::new(1_000_000).unwrap();
    if let Some(url) = redis_url() {
        config.redis_url = Some(SecretString::from(url));
        config.redis.key_prefix = format!("auth-e2e:{}:", uuid::Uuid::new_v4().simple());
    }
    config
}

/// Two configurations of one deployment on `database`: the same secrets and the same Redis key
/// prefix, as two replicas (or a server and an operator's CLI next to it) share them.
pub fn deployment_configs(database: &TestDatabase) -> (Config, Config) {
    let first = test_config(&database.url);
    let mut second = test_config(&database.url);
    second.redis.key_prefix.clone_from(&first.redis.key_prefix);
    (first, second)
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// With `AUTH_TEST_LOG_FILE` set, every server of this run logs at debug level into that file;
/// `.ci/run` then checks that no password, hash, secret or token reached it.
pub const LOG_FILE_ENV: &str = "AUTH_TEST_LOG_FILE";

fn capture_logs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let Ok(path) = std::env::var(LOG_FILE_ENV) else { return };
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path).expect("log file");
        let _ = tracing_subscriber::fmt()
            .with_env_filter("debug,h2=info,hyper=info,hyper_util=info,tower=info,sqlx=info")
            .with_writer(std::sync::Mutex::new(file))
            .with_ansi(false)
            .try_init();
    });
}

pub async fn spawn_app_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    let database = TestDatabase::create().await;
    let mut config = test_config(&database.url);
    adjust(&mut config);
    spawn_app_on(config, database).await
}

impl TestApp {
    /// Registers `username` with [`PASSWORD`].
    pub async fn register(&self, username: &str) -> RegisterResponse {
        self.try_register(username, PASSWORD).await.expect("register")
    }

    pub async fn try_register(&self, username: &str, password: &str) -> Result<RegisterResponse, Status> {
        self.client
            .clone()
            .register(RegisterRequest { username: username.into(), password: password.into() })
            .await
            .map(|r| r.into_inner())
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

    /// Logs out the session of `access_token` (sent as `Bearer <access_token>`).
    pub async fn logout(&self, access_token: &str) -> Result<(), Status> {
        self.client.clone().logout(with_authorization(LogoutRequest {}, &bearer(access_token))).await.map(|_| ())
    }

    /// ValidateToken on `token`, with no metadata (the method is public).
    pub async fn validate(&self, token: &str) -> Result<ValidateTokenResponse, Status> {
        self.client.clone().validate_token(ValidateTokenRequest { token: token.into() }).await.map(|r| r.into_inner())
    }

    /// Stops the server the way SIGTERM does and waits for it.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        self.server.take().unwrap().await.unwrap()
    }
}

/// The calls of a signed-in user on their own sessions and account, each sent with
/// `authorization: Bearer <access_token>`.
impl TestApp {
    pub async fn sessions(&self, access_token: &str) -> Result<Vec<Session>, Status> {
        let request = authorized(ListSessionsRequest {}, access_token);
        self.client.clone().list_sessions(request).await.map(|r| r.into_inner().sessions)
    }

    pub async fn revoke_session(&self, access_token: &str, session_id: &str) -> Result<(), Status> {
        let request = authorized(RevokeSessionRequest { session_id: session_id.into() }, access_token);
        self.client.clone().revoke_session(request).await.map(|_| ())
    }

    /// How many sessions ended.
    pub async fn logout_all(&self, access_token: &str, keep_current: bool) -> Result<i32, Status> {
        let request = authorized(LogoutAllRequest { keep_current }, access_token);
        self.client.clone().logout_all(request).await.map(|r| r.into_inner().revoked_sessions)
    }

    pub async fn change_password(&self, access_token: &str, current: &str, new: &str) -> Result<LoginResponse, Status> {
        let message = ChangePasswordRequest { current_password: current.into(), new_password: new.into() };
        self.client.clone().change_password(authorized(message, access_token)).await.map(|r| r.into_inner())
    }

    pub async fn delete_account(&self, access_token: &str, password: &str) -> Result<(), Status> {
        let request = authorized(DeleteAccountRequest { password: password.into() }, access_token);
        self.client.clone().delete_account(request).await.map(|_| ())
    }
}

/// The operators' calls, each sent with `authorization: Bearer <access_token>`.
impl TestApp {
    pub async fn list_users(&self, access_token: &str, query: ListUsersRequest) -> Result<ListUsersResponse, Status> {
        self.client.clone().list_users(authorized(query, access_token)).await.map(|r| r.into_inner())
    }

    pub async fn get_user(&self, access_token: &str, user: get_user_request::User) -> Result<UserRecord, Status> {
        let request = authorized(GetUserRequest { user: Some(user) }, access_token);
        self.client.clone().get_user(request).await.map(|r| r.into_inner())
    }

    pub async fn disable_user(&self, access_token: &str, id: i64) -> Result<UserRecord, Status> {
        self.client
            .clone()
            .disable_user(authorized(DisableUserRequest { id }, access_token))
            .await
            .map(|r| r.into_inner())
    }

    pub async fn enable_user(&self, access_token: &str, id: i64) -> Result<UserRecord, Status> {
        self.client
            .clone()
            .enable_user(authorized(EnableUserRequest { id }, access_token))
            .await
            .map(|r| r.into_inner())
    }

    pub async fn delete_user(&self, access_token: &str, id: i64) -> Result<(), Status> {
        self.client.clone().delete_user(authorized(DeleteUserRequest { id }, access_token)).await.map(|_| ())
    }

    /// How many sessions ended.
    pub async fn revoke_user_sessions(&self, access_token: &str, id: i64) -> Result<i32, Status> {
        let request = authorized(RevokeUserSessionsRequest { id }, access_token);
        self.client.clone().revoke_user_sessions(request).await.map(|r| r.into_inner().revoked_sessions)
    }
}

/// A collecting [`AuditSink`]: every event an app wrote, in order.
#[derive(Clone, Default)]
pub struct AuditLog(Arc<Mutex<Vec<AuditEvent>>>);

impl AuditSink for AuditLog {
    fn record(&self, event: &AuditEvent) {
        self.0.lock().unwrap().push(event.clone());
    }
}

impl AuditLog {
    pub fn events(&self) -> Vec<AuditEvent> {
        self.0.lock().unwrap().clone()
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

/// `message` with `authorization: Bearer <access_token>`.
pub fn authorized<T>(message: T, access_token: &str) -> Request<T> {
    with_authorization(message, &bearer(access_token))
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

impl TestDatabase {
    /// Another handle on the same database that does not drop it: for a second app sharing it.
    /// Keep the owning handle alive longer (declare its app first).
    pub fn handle(&self) -> Self {
        Self { url: self.url.clone(), _dir: None, server: None }
    }
}

/// Like [`spawn_app_with`], on a fully prepared `config`; `database` lives as long as the app.
/// `config.database_url` need not be `database.url` (the app may reach it through a proxy).
pub async fn spawn_app_on(config: Config, database: TestDatabase) -> TestApp {
    capture_logs();
    config.validate().expect("test config is valid");
    let audit = AuditLog::default();
    let app = App::build_with_audit_sinks(&config, vec![Box::new(audit.clone())]).await.expect("app builds");
    let addr = app.local_addr().unwrap();
    let db = app.database().clone();
    let (queries, users, redis, admin) = (app.query_counter(), app.users(), app.redis(), app.admin_addr());
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
        addr,
        client: UserServiceClient::new(channel.clone()),
        channel,
        db,
        queries,
        users,
        redis,
        admin,
        audit,
        shutdown: Some(shutdown),
        server: Some(server),
        _database: database,
    }
}

/// The claims of a JWT, read without checking its signature (what any holder of it can read).
pub fn token_payload(token: &str) -> Value {
    jsonwebtoken::dangerous::insecure_decode::<Value>(token).expect("a JWT").claims
}

/// Valid access-token claims for `user_id`, as the service would write them: the recipe of
/// forged tokens, which tests then spoil one field at a time.
pub fn access_claims(user_id: i64) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({"iss":"auth-svc","sub":user_id.to_string(),"userId":user_id,"role":"user","iat":now,"exp":now + 300,
           "jti":"jti-1","sid":uuid::Uuid::new_v4().to_string(),"token_type":"access"})
}

/// A JWT over `claims` with this header, signed by `key`: what only a holder of the key can
/// make (the service uses `typ` "at+jwt" for access tokens and names its keys by `kid`).
pub fn sign_jwt(alg: Algorithm, typ: &str, kid: Option<&str>, claims: &Value, key: &EncodingKey) -> String {
    let mut header = Header::new(alg);
    header.typ = Some(typ.into());
    header.kid = kid.map(Into::into);
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

/// The HS256/384/512 signing key of `secret`.
pub fn hmac_key(secret: &str) -> EncodingKey {
    EncodingKey::from_secret(secret.as_bytes())
}

/// One part of a JWT built by hand: `value` as JSON, base64url without padding.
pub fn jwt_part(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

/// Polls `check` every 100 ms until it holds or `bound` has passed; whether it held.
pub async fn eventually<F: Future<Output = bool>>(bound: Duration, mut check: impl FnMut() -> F) -> bool {
    let deadline = Instant::now() + bound;
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// The body of a GET of `url`, which must answer 200 OK.
pub async fn http_get_ok(url: &str) -> String {
    let response = reqwest::get(url).await.unwrap_or_else(|err| panic!("GET {url}: {err}"));
    let status = response.status();
    let body = response.text().await.unwrap();
    assert_eq!(status, reqwest::StatusCode::OK, "GET {url}: {body}");
    body
}

/// A gateway in front of an auth-svc address, stopped when the guard drops.
pub struct Gateway {
    /// `http://127.0.0.1:PORT`
    pub base_url: String,
    pub jwks_url: String,
    _stop: oneshot::Sender<()>,
}

pub async fn gateway_for(app: &TestApp) -> Gateway {
    gateway_for_addr(app.addr).await
}

pub async fn gateway_for_addr(upstream: std::net::SocketAddr) -> Gateway {
    let config = gateway::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        upstream: format!("http://{upstream}"),
        ..gateway::Config::default()
    };
    let gateway = gateway::App::build(&config).await.expect("gateway builds");
    let addr = gateway.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(gateway.serve(async move {
        let _ = stopped.await;
    }));
    Gateway {
        base_url: format!("http://{addr}"),
        jwks_url: format!("http://{addr}/.well-known/jwks.json"),
        _stop: stop,
    }
}
