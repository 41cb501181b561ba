//! Assembles and runs the gRPC server: UserService behind the bearer layer, health, reflection,
//! and a graceful shutdown bounded by the configured grace period.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context as _;
use auth_api::user::v1::{FILE_DESCRIPTOR_SET, user_service_server::UserServiceServer};
use model::DatabaseConnection;
use service_kit::http_server::{self, ConnectionInfo, ConnectionLimits, Incoming};
use tokio::{net::TcpListener, sync::Notify};
use tonic::{Status, service::Routes, transport::server::TcpConnectInfo};
use tonic_health::{ServingStatus, server::HealthReporter};
use tower::{Layer as _, Service, ServiceExt as _};
use tracing::Instrument as _;

use crate::{
    accounts::Accounts,
    auth::{interceptor::BearerAuthLayer, password::PasswordHasher, tokens::TokenKeys},
    cache::{CacheTtl, MemoryUserCache, RedisUserCache, UserCache},
    config::{Config, GrpcConfig},
    grpc::{self, UserGrpc},
    introspection::Introspection,
    metrics::{self, Metrics},
    redis_store::RedisStore,
    revocation::{MemoryRevocationList, RedisRevocationList, RevocationList, RevocationSettings, Revocations},
    sessions::{SessionLifetimes, SessionPurge, Sessions},
    throttle::{AttemptLog, LoginThrottle, MemoryAttemptLog, RedisAttemptLog, SignupThrottle, Throttle},
    users::{CacheSync, User, Users},
};

/// A server whose database is migrated and whose port is bound, ready to serve.
pub struct App {
    listener: TcpListener,
    admin_listener: Option<TcpListener>,
    metrics: Arc<Metrics>,
    db: DatabaseConnection,
    queries: model::QueryCounter,
    redis: Option<Arc<RedisStore>>,
    users: Arc<Users>,
    user_service: UserGrpc,
    keys: Arc<TokenKeys>,
    revocations: Arc<Revocations>,
    max_message_bytes: usize,
    shutdown_grace: Duration,
    connection_limits: ConnectionLimits,
    max_call: Duration,
    /// The revocation poll and the session purge; they stop when the app is dropped (at the
    /// end of `serve`).
    _background: BackgroundTasks,
}

/// Tasks that live as long as the [`App`] that owns them: aborted on drop.
struct BackgroundTasks(Vec<tokio::task::JoinHandle<()>>);

impl Drop for BackgroundTasks {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

impl App {
    /// Connects and migrates the database, builds the services and binds `config.listen`.
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        let secrets = config.secrets();
        if secrets.generated {
            tracing::warn!(
                "AUTH_SVC__AUTH__REFRESH_SECRET (and ACCESS_SECRET) are not set: using random \
                 secrets for this process only. Tokens die with it and other replicas will not accept them. \
                 Set both (e.g. `openssl rand -base64 48`) for any real deployment."
            );
        }
        let (db, queries) = if config.database.migrate_on_start {
            connect_and_migrate(config).await?
        } else {
            connect_migrated(config).await?
        };
        let keys = Arc::new(config.token_keys(&secrets)?);
        let (kid, algorithm) = keys.access_signing_key();
        tracing::info!(kid, ?algorithm, published_keys = keys.jwks().len(), "access-token signing key");
        if config.auth.signing_key.is_some() && config.auth.access_secret.is_some() {
            // Whoever holds the HS256 secret can still mint access tokens we accept.
            tracing::warn!(
                "auth.access_secret is set beside auth.signing_key: HS256 access tokens are still accepted. \
                 Remove it once auth.access_expire seconds have passed since the switch."
            );
        }
        let metrics = Arc::new(Metrics::new());
        metrics.probe_database(database_pool_probe(&db));
        let hasher = PasswordHasher::new(
            config.password.hash_profile,
            config.hashing_concurrency(),
            config.password.max_queued_hashes,
            metrics.clone(),
        )
        .context("setting up password hashing")?;
        let shared = SharedState::new(config)?;
        if let Some(redis) = &shared.redis {
            let (usage, failures) = (redis.clone(), redis.clone());
            metrics.probe_redis(
                Box::new(move || usage.pool_usage()),
                Box::new(move || i64::try_from(failures.failures()).unwrap_or(i64::MAX)),
            );
        }
        let users = Arc::new(Users::new(db.clone(), shared.cache, cache_sync(config), metrics.clone()));
        let revocation_settings = RevocationSettings {
            max_staleness: config.revocation.max_staleness(),
            poll_interval: config.revocation.poll_interval(),
            access_ttl: Duration::from_secs(config.auth.access_expire),
        };
        let revocations =
            Arc::new(Revocations::new(shared.revocations, db.clone(), revocation_settings, metrics.clone()));
        let background = start_background_tasks(config, &revocations, &users, &metrics).await?;
        let sessions = Arc::new(Sessions::new(
            db.clone(),
            users.clone(),
            revocations.clone(),
            keys.clone(),
            metrics.clone(),
            SessionLifetimes {
                refresh_ttl: config.auth.refresh_expire,
                reuse_interval: config.auth.refresh_reuse_interval,
                max_lifetime: config.auth.session_max_lifetime_seconds,
            },
        ));
        let throttles = throttles(config, shared.attempts.clone(), &metrics);
        let accounts = Arc::new(Accounts::new(
            users.clone(),
            hasher,
            sessions.clone(),
            throttles,
            config.password.min_length,
            config.auth.roles.clone(),
            metrics.clone(),
        ));
        let introspection = Introspection::new(keys.clone(), revocations.clone(), users.clone());
        let listener = service_kit::bind(config.listen, "listen").await?;
        let admin_listener = service_kit::bind_admin(config.admin_listen).await?;
        Ok(Self {
            listener,
            admin_listener,
            metrics: metrics.clone(),
            db,
            queries,
            redis: shared.redis,
            users,
            user_service: UserGrpc {
                accounts,
                sessions,
                introspection,
                metrics,
                trusted_forwarders: config.grpc.trusted_forwarders.clone(),
                jwks: grpc::jwks_response(&keys, config.auth.jwks_max_age),
            },
            keys,
            revocations,
            max_message_bytes: config.grpc.max_message_bytes,
            shutdown_grace: config.shutdown_grace(),
            _background: background,
            connection_limits: connection_limits(&config.grpc),
            max_call: Duration::from_secs(config.grpc.max_call_seconds),
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The bound admin (metrics) address, when `admin_listen` is set.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_listener.as_ref().and_then(|listener| listener.local_addr().ok())
    }

    /// The database pool, for tests that inspect what the service wrote.
    pub fn database(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Statements sent to the database so far.
    pub fn query_counter(&self) -> model::QueryCounter {
        self.queries.clone()
    }

    /// The user directory (with its cache), for operators' tasks and tests.
    pub fn users(&self) -> Arc<Users> {
        self.users.clone()
    }

    /// The Redis store when `redis_url` is set.
    pub fn redis(&self) -> Option<Arc<RedisStore>> {
        self.redis.clone()
    }

    /// Serves until `shutdown` completes, then reports NOT_SERVING, stops accepting, and gives
    /// in-flight calls the grace period to finish.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
        let (health, health_service) = tonic_health::server::health_reporter();
        set_status(&health, ServingStatus::Serving).await;

        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()?;
        let user_service = BearerAuthLayer::new(self.keys.clone(), self.revocations.clone(), self.metrics.clone())
            .layer(UserServiceServer::new(self.user_service).max_decoding_message_size(self.max_message_bytes));

        // The admin port stays up through the drain (scrapes see it) and stops with the process.
        let admin_stop = Arc::new(Notify::new());
        if let Some(listener) = self.admin_listener {
            let stop = admin_stop.clone();
            let metrics = self.metrics.clone();
            tokio::spawn(service_kit::serve_metrics(listener, move || metrics.render(), async move {
                stop.notified().await
            }));
        }
        let signal = async move {
            shutdown.await;
            tracing::info!("shutting down: NOT_SERVING, finishing in-flight calls");
            set_status(&health, ServingStatus::NotServing).await;
            // Health/Watch streams only end when their status entry goes away; without this
            // one watching client would hold every shutdown for the whole grace period.
            let mut health = health;
            for service in HEALTH_SERVICE_NAMES {
                health.clear_service_status(service).await;
            }
        };
        let routes = Routes::new(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(user_service)
            .prepare();
        let max_call = self.max_call;
        let make_service = |connection| grpc_service(routes.clone(), connection, max_call);
        http_server::serve(self.listener, make_service, self.connection_limits, signal, self.shutdown_grace).await;
        admin_stop.notify_one();
        // A connection stuck on a lock must not hold the exit past the grace period.
        let _ = tokio::time::timeout(Duration::from_secs(1), self.db.close_by_ref()).await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// The login and signup throttles: counted in this process always, and in Redis (`shared`) too
/// when it is configured.
fn throttles(
    config: &Config,
    shared: Option<Arc<dyn AttemptLog>>,
    metrics: &Arc<Metrics>,
) -> (LoginThrottle, SignupThrottle) {
    let capacity = config.throttle.max_tracked_keys;
    let login_window = Duration::from_secs(config.throttle.window_seconds);
    let signup_window = Duration::from_secs(config.register.window_seconds);
    let login = Throttle::new(
        "login",
        Arc::new(MemoryAttemptLog::new(capacity, login_window)),
        shared.clone(),
        login_window,
        metrics.clone(),
    );
    let signup = Throttle::new(
        "register",
        Arc::new(MemoryAttemptLog::new(capacity, signup_window)),
        shared,
        signup_window,
        metrics.clone(),
    );
    (
        LoginThrottle::new(
            login,
            config.throttle.max_failures_per_username,
            config.throttle.max_failures_per_address,
            config.throttle.max_in_flight_per_address,
        ),
        SignupThrottle::new(signup, config.register.max_per_address),
    )
}

/// The gRPC services as one connection's service: each call gets the connection's addresses
/// (tonic's `Request::remote_addr` reads them), a span with its method and request id, and a
/// deadline: the client's `grpc-timeout`, capped at `max_call`.
///
/// The deadline bounds the time until the response starts, as tonic's own does. A unary call
/// has read its whole request body by then, so one whose body never ends is answered CANCELLED
/// and dropped with its stream; a streaming response (Health/Watch, reflection) starts at once
/// and may then last as long as its client wants.
fn grpc_service(
    routes: Routes,
    connection: ConnectionInfo,
    max_call: Duration,
) -> impl Service<
    http::Request<Incoming>,
    Response = http::Response<tonic::body::Body>,
    Error = std::convert::Infallible,
    Future = impl Future<Output = Result<http::Response<tonic::body::Body>, std::convert::Infallible>> + Send,
> + Clone
+ Send
+ 'static {
    let addresses = TcpConnectInfo { local_addr: connection.local_addr, remote_addr: Some(connection.remote_addr) };
    tower::service_fn(move |mut request: http::Request<Incoming>| {
        request.extensions_mut().insert(addresses.clone());
        let request_id =
            request.headers().get(auth_api::metadata::REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("");
        let span = tracing::info_span!("grpc", method = %request.uri().path(), request_id);
        let deadline = client_deadline(request.headers()).map_or(max_call, |client| client.min(max_call));
        let call = routes.clone().oneshot(request).instrument(span);
        async move {
            // As tonic's own server answers a call past its deadline.
            tokio::time::timeout(deadline, call)
                .await
                .unwrap_or_else(|_| Ok(Status::cancelled("Timeout expired").into_http()))
        }
    })
}

/// The deadline a client set with `grpc-timeout` (gRPC over HTTP/2: 1 to 8 digits and a unit,
/// `H` `M` `S` `m` `u` `n`); `None` when absent or malformed, which tonic also ignores.
fn client_deadline(headers: &http::HeaderMap) -> Option<Duration> {
    let value = headers.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if !(1..=8).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount * 3600),
        "M" => Duration::from_secs(amount * 60),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

/// The `grpc.*` connection limits: HTTP/2 only, with room in the header list for an oversized
/// `authorization` to reach the bearer check and get a clear UNAUTHENTICATED, instead of h2
/// tearing down the whole shared connection.
fn connection_limits(grpc: &GrpcConfig) -> ConnectionLimits {
    ConnectionLimits {
        accept_http1: false,
        header_read_timeout: Duration::from_millis(grpc.header_read_timeout_ms),
        idle_timeout: Duration::from_secs(grpc.idle_timeout_seconds),
        max_concurrent_streams: grpc.max_concurrent_streams,
        keepalive_interval: (grpc.keepalive_interval_seconds > 0)
            .then(|| Duration::from_secs(grpc.keepalive_interval_seconds)),
        keepalive_timeout: Duration::from_secs(grpc.keepalive_timeout_seconds),
        max_header_list_bytes: MAX_HEADER_LIST_BYTES,
    }
}

/// Largest request header block accepted (h2's default is 16 KiB).
const MAX_HEADER_LIST_BYTES: u32 = 256 * 1024;

/// Fills the revocation set and syncs the user cache once (so the replica trusts both from its
/// first call), then keeps them current and purges ended sessions in the background. All run
/// on a pool of their own: they never wait behind calls for a connection, and calls' query
/// counts stay theirs.
async fn start_background_tasks(
    config: &Config,
    revocations: &Arc<Revocations>,
    users: &Arc<Users>,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<BackgroundTasks> {
    let pool = model::PoolOptions {
        max_connections: 2,
        min_connections: 0,
        acquire_timeout: Duration::from_millis(config.database.acquire_timeout_ms),
    };
    let (background_db, _) = model::connect(&config.database_url, &pool).await.map_err(|err| {
        anyhow::anyhow!("cannot open the database ({}): {}", redact_url(&config.database_url), scrub(config, &err))
    })?;
    match revocations.poll(&background_db).await {
        Ok(sessions) => tracing::info!(sessions, "revocation set filled from the database"),
        // Not fatal: until a poll succeeds, every call checks the database.
        Err(err) => tracing::warn!(error = ?err, "first revocation poll failed"),
    }
    match users.poll(&background_db).await {
        Ok(accounts) => tracing::info!(accounts, "user cache synced with the database"),
        // Not fatal: until a poll succeeds, accounts are read from the database.
        Err(err) => tracing::warn!(error = ?err, "first user cache poll failed"),
    }
    let purge = SessionPurge::new(
        background_db.clone(),
        metrics.clone(),
        config.sessions.retention_seconds,
        config.sessions.purge_batch_size,
    );
    Ok(BackgroundTasks(vec![
        tokio::spawn(revocations.clone().keep_current(background_db.clone())),
        tokio::spawn(users.clone().keep_cache_current(background_db)),
        tokio::spawn(purge.run(Duration::from_secs(config.sessions.purge_interval_seconds))),
    ]))
}

/// The user cache is kept current on the revocation poll's bound and period.
fn cache_sync(config: &Config) -> CacheSync {
    let row_ttl = Duration::from_secs(config.cache.ttl_seconds);
    CacheSync {
        max_staleness: config.revocation.max_staleness(),
        poll_interval: config.revocation.poll_interval(),
        longest_entry: (row_ttl + row_ttl / 10).max(Duration::from_secs(config.cache.negative_ttl_seconds)),
    }
}

/// The whole server ("") and the user service, as health checks name them.
const HEALTH_SERVICE_NAMES: [&str; 2] = ["", "user.v1.UserService"];

async fn set_status(health: &HealthReporter, status: ServingStatus) {
    for service in HEALTH_SERVICE_NAMES {
        health.set_service_status(service, status).await;
    }
}

/// (open, idle) connections of the database pool, whichever backend it is.
fn database_pool_probe(db: &DatabaseConnection) -> metrics::PoolProbe {
    use sea_orm::DatabaseBackend;
    fn usage(size: u32, idle: usize) -> (i64, i64) {
        (i64::from(size), i64::try_from(idle).unwrap_or(i64::MAX))
    }
    let db = db.clone();
    Box::new(move || match db.get_database_backend() {
        DatabaseBackend::Postgres => {
            let pool = db.get_postgres_connection_pool();
            usage(pool.size(), pool.num_idle())
        }
        DatabaseBackend::MySql => {
            let pool = db.get_mysql_connection_pool();
            usage(pool.size(), pool.num_idle())
        }
        _ => {
            let pool = db.get_sqlite_connection_pool();
            usage(pool.size(), pool.num_idle())
        }
    })
}

/// The cache, attempt log and revocation list: in Redis when `redis_url` is set (shared by
/// every replica), else in this process (one process is then one replica).
/// `auth-svc user set-role NAME ROLE`: sets a role straight in the database, with no token
/// needed (how the first admin comes to be), and drops the account from the Redis cache.
/// Returns the account and whether the cache is known to be current.
pub async fn set_role_offline(config: &Config, username: &str, role: &str) -> anyhow::Result<(User, bool)> {
    let username = crate::policy::Username::parse(username)?;
    if !config.auth.roles.iter().any(|known| known == role) {
        anyhow::bail!("unknown role {role:?}; auth.roles allows: {}", config.auth.roles.join(", "));
    }
    let (db, _) = connect_migrated(config).await?;
    let shared = SharedState::new(config)?;
    // Never polled, so it reads the database only: right for one command.
    let users = Users::new(db, shared.cache, cache_sync(config), Arc::new(Metrics::new()));
    let user = users.set_role(&username, role).await?.with_context(|| format!("no user named {username:?}"))?;
    let cache_current = shared.redis.is_none() || users.cache_is_current().await;
    Ok((user, cache_current))
}

struct SharedState {
    redis: Option<Arc<RedisStore>>,
    cache: Arc<dyn UserCache>,
    /// The shared attempt log; each throttle keeps its own in-process one beside it.
    attempts: Option<Arc<dyn AttemptLog>>,
    revocations: Arc<dyn RevocationList>,
}

impl SharedState {
    fn new(config: &Config) -> anyhow::Result<Self> {
        let ttl = CacheTtl {
            row: Duration::from_secs(config.cache.ttl_seconds),
            missing: Duration::from_secs(config.cache.negative_ttl_seconds),
        };
        Ok(match &config.redis_url {
            Some(url) => {
                let redis = Arc::new(RedisStore::new(url, &config.redis)?);
                tracing::info!("user cache, login throttle and revocation list in Redis");
                Self {
                    cache: Arc::new(RedisUserCache::new(redis.clone(), ttl)),
                    attempts: Some(Arc::new(RedisAttemptLog::new(redis.clone()))),
                    revocations: Arc::new(RedisRevocationList::new(redis.clone())),
                    redis: Some(redis),
                }
            }
            None => {
                tracing::info!("no redis_url: user cache, login throttle and revocation list in this process");
                Self {
                    redis: None,
                    cache: Arc::new(MemoryUserCache::new(ttl)),
                    attempts: None,
                    revocations: Arc::new(MemoryRevocationList::default()),
                }
            }
        })
    }
}

/// Opens the pool and checks that no migration is pending (someone else runs them).
async fn connect_migrated(config: &Config) -> anyhow::Result<(DatabaseConnection, model::QueryCounter)> {
    let (db, queries) = connect(config).await?;
    let pending = model::migration::pending(&db).await.map_err(|err| anyhow::anyhow!("reading migrations: {err}"))?;
    if pending > 0 {
        anyhow::bail!(
            "{pending} database migration(s) pending and database.migrate_on_start is off: run `auth-svc migrate` first"
        );
    }
    Ok((db, queries))
}

/// Opens the pool and applies pending migrations.
pub async fn connect_and_migrate(config: &Config) -> anyhow::Result<(DatabaseConnection, model::QueryCounter)> {
    let (db, queries) = connect(config).await?;
    model::migration::run(&db).await.map_err(|err| anyhow::anyhow!("applying migrations: {}", scrub(config, &err)))?;
    Ok((db, queries))
}

async fn connect(config: &Config) -> anyhow::Result<(DatabaseConnection, model::QueryCounter)> {
    let pool = model::PoolOptions {
        max_connections: config.database.max_connections,
        min_connections: 0,
        acquire_timeout: Duration::from_millis(config.database.acquire_timeout_ms),
    };
    model::connect(&config.database_url, &pool).await.map_err(|err| {
        anyhow::anyhow!("cannot open the database ({}): {}", redact_url(&config.database_url), scrub(config, &err))
    })
}

/// Driver errors quote the URL they were given; only the redacted form may be printed.
fn scrub(config: &Config, err: &dyn std::fmt::Display) -> String {
    err.to_string().replace(&config.database_url, &redact_url(&config.database_url))
}

/// A database URL without its password, for messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            let user = credentials.split(':').next().unwrap_or_default();
            format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn grpc_timeout_headers_are_read_as_the_protocol_defines_them() {
        use std::time::Duration;
        let deadline = |value: &str| {
            let mut headers = http::HeaderMap::new();
            headers.insert("grpc-timeout", value.parse().unwrap());
            super::client_deadline(&headers)
        };
        assert_eq!(deadline("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(deadline("3M"), Some(Duration::from_secs(180)));
        assert_eq!(deadline("99999999S"), Some(Duration::from_secs(99_999_999)));
        assert_eq!(deadline("250m"), Some(Duration::from_millis(250)));
        assert_eq!(deadline("7u"), Some(Duration::from_micros(7)));
        assert_eq!(deadline("1n"), Some(Duration::from_nanos(1)));
        for malformed in ["", "S", "100000000S", "10s", "-1S", "1.5S", "10"] {
            assert_eq!(deadline(malformed), None, "{malformed:?}");
        }
        assert_eq!(super::client_deadline(&http::HeaderMap::new()), None);
    }

    #[test]
    fn urls_lose_their_password() {
        assert_eq!(redact_url("postgres://app:hunter2@db:5432/auth"), "postgres://app:***@db:5432/auth");
        assert_eq!(redact_url("sqlite://./data/auth.db?mode=rwc"), "sqlite://./data/auth.db?mode=rwc");
    }
}
