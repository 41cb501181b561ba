//! Assembles and runs the gRPC server: UserService behind the bearer layer, health, reflection,
//! and a graceful shutdown bounded by the configured grace period.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context as _;
use auth_api::user::v1::{FILE_DESCRIPTOR_SET, user_service_server::UserServiceServer};
use model::DatabaseConnection;
use service_kit::{
    http_server::{self, ConnectionLimits},
    tls::ServerTls,
};
use tokio::{net::TcpListener, sync::Notify};
use tonic::service::Routes;
use tonic_health::{ServingStatus, server::HealthReporter};
use tower::Layer as _;

use crate::{
    audit::{Audit, AuditSink, LogSink},
    auth::{keys::Secrets, password::PasswordHasher, sealed::SealingKeys, tokens::TokenKeys},
    config::Config,
    db,
    edge::{
        bearer::BearerAuthLayer,
        connection,
        grpc::{self, UserGrpc},
    },
    metrics::Metrics,
    service::{
        accounts::{AccountPolicy, Accounts},
        admin::Admin,
        clients::Clients,
        introspection::Introspection,
        second_factor::{MfaSettings, SecondFactor},
        sessions::{SessionLifetimes, SessionPurge, Sessions},
        token_revocation::TokenRevocation,
        users::{CacheSync, Users},
    },
    store::{
        RedisStore, Stores,
        revocation::{RevocationSettings, Revocations},
        throttle::{AttemptLog, LoginThrottle, MemoryAttemptLog, SignupThrottle, Throttle},
    },
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
    /// TLS of the gRPC port (`grpc.tls`), re-read when its files change.
    tls: Option<Arc<ServerTls>>,
    /// The revocation poll and the session purge; they stop when the app is dropped (at the
    /// end of `serve`).
    _background: BackgroundTasks,
}

pub(crate) fn revocation_settings(config: &Config) -> RevocationSettings {
    RevocationSettings {
        max_staleness: config.revocation.max_staleness(),
        poll_interval: config.revocation.poll_interval(),
        access_ttl: Duration::from_secs(config.auth.access_expire.get()),
    }
}

pub(crate) fn session_lifetimes(config: &Config) -> SessionLifetimes {
    SessionLifetimes {
        refresh_ttl: config.auth.refresh_expire,
        reuse_interval: config.auth.refresh_reuse_interval,
        max_lifetime: config.auth.session_max_lifetime_seconds.get(),
    }
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
    /// Audit events go to the log.
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        Self::build_with_audit_sinks(config, Vec::new()).await
    }

    /// As [`build`](Self::build), with audit events also handed to `sinks` (a webhook, a
    /// stream, a test's collector).
    pub async fn build_with_audit_sinks(config: &Config, sinks: Vec<Box<dyn AuditSink>>) -> anyhow::Result<Self> {
        let secrets = Secrets::from_config(&config.auth);
        if secrets.generated {
            tracing::warn!(
                "AUTH_SVC__AUTH__REFRESH_SECRET (and ACCESS_SECRET) are not set: using random \
                 secrets for this process only. Tokens die with it and other replicas will not accept them. \
                 Set both (e.g. `openssl rand -base64 48`) for any real deployment."
            );
        }
        let (db, queries) = if config.database.migrate_on_start {
            db::connect_and_migrate(config).await?
        } else {
            db::connect_migrated(config).await?
        };
        let keys = Arc::new(TokenKeys::from_config(&config.auth, &secrets)?);
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
        metrics.probe_database(db::pool_probe(&db));
        let hasher = PasswordHasher::new(
            config.password.hash_profile,
            config.hashing_concurrency(),
            config.password.max_queued_hashes,
            metrics.clone(),
        )
        .context("setting up password hashing")?;
        let shared = Stores::new(config)?;
        if let Some(redis) = &shared.redis {
            let (usage, failures) = (redis.clone(), redis.clone());
            metrics.probe_redis(
                Box::new(move || usage.pool_usage()),
                Box::new(move || i64::try_from(failures.failures()).unwrap_or(i64::MAX)),
            );
        }
        let users = Arc::new(Users::new(db.clone(), shared.cache, CacheSync::from_config(config), metrics.clone()));
        let revocations =
            Arc::new(Revocations::new(shared.revocations, db.clone(), revocation_settings(config), metrics.clone()));
        let background = start_background_tasks(config, &revocations, &users, &metrics).await?;
        let audit = Audit::with_sinks(
            std::iter::once(Box::new(LogSink) as Box<dyn AuditSink>).chain(sinks).collect(),
            metrics.clone(),
        );
        let sessions = Arc::new(Sessions::new(
            db.clone(),
            users.clone(),
            revocations.clone(),
            keys.clone(),
            metrics.clone(),
            audit.clone(),
            session_lifetimes(config),
        ));
        let (login_throttle, signup_throttle) = throttles(config, shared.attempts.clone(), &metrics);
        let login_throttle = Arc::new(login_throttle);
        let sealing = SealingKeys::from_config(&config.mfa)?.map(Arc::new);
        match &sealing {
            Some(keys) => tracing::info!(active_key = keys.active_key_id(), "second factor available"),
            None => tracing::info!("second factor unavailable: no mfa.keys"),
        }
        let second_factor = Arc::new(SecondFactor::new(
            db.clone(),
            sealing,
            keys.clone(),
            users.clone(),
            sessions.clone(),
            login_throttle.clone(),
            audit.clone(),
            MfaSettings::from_config(&config.mfa),
        ));
        let accounts = Arc::new(Accounts::new(
            users.clone(),
            hasher,
            sessions.clone(),
            second_factor.clone(),
            (login_throttle, signup_throttle),
            AccountPolicy { min_password_chars: config.password.min_length, roles: config.auth.roles.clone() },
            metrics.clone(),
            audit.clone(),
        ));
        let clients =
            Arc::new(Clients::new(db.clone(), keys.clone(), audit.clone(), &config.clients, &config.auth.roles));
        let token_revocation = Arc::new(TokenRevocation::new(keys.clone(), sessions.clone(), clients.clone()));
        let admin = Arc::new(Admin::new(users.clone(), sessions.clone(), db.clone(), audit));
        let introspection = Introspection::new(keys.clone(), revocations.clone(), users.clone(), clients.clone());
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
                second_factor,
                admin,
                introspection,
                server_metadata: grpc::server_metadata(&config.auth.issuer, &keys, clients.scopes_supported()),
                clients,
                token_revocation,
                require_client: config.introspection.require_client,
                forwarders: grpc::Forwarders {
                    networks: config.grpc.trusted_forwarders.clone(),
                    names: config.grpc.trusted_forwarder_names.clone(),
                },
                jwks: grpc::jwks_response(&keys, config.auth.jwks_max_age),
            },
            keys,
            revocations,
            max_message_bytes: config.grpc.max_message_bytes,
            shutdown_grace: config.shutdown_grace(),
            _background: background,
            connection_limits: connection::connection_limits(&config.grpc),
            tls: grpc_tls(config)?,
            max_call: Duration::from_secs(config.grpc.max_call_seconds.get()),
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The bound admin (metrics) address, when `admin_listen` is set.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_listener.as_ref().and_then(|listener| listener.local_addr().ok())
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
        let make_service = |info| connection::grpc_service(routes.clone(), info, max_call);
        let _reload = self.tls.as_ref().map(ServerTls::watch);
        http_server::serve(self.listener, self.tls, make_service, self.connection_limits, signal, self.shutdown_grace)
            .await;
        admin_stop.notify_one();
        // A connection stuck on a lock must not hold the exit past the grace period.
        let _ = tokio::time::timeout(Duration::from_secs(1), self.db.close_by_ref()).await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// What the end-to-end suite inspects in a running app (the service itself needs none of it).
impl App {
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
}

/// The login and signup throttles: counted in this process always, and in Redis (`shared`) too
/// when it is configured.
fn throttles(
    config: &Config,
    shared: Option<Arc<dyn AttemptLog>>,
    metrics: &Arc<Metrics>,
) -> (LoginThrottle, SignupThrottle) {
    let capacity = config.throttle.max_tracked_keys;
    let login_window = Duration::from_secs(config.throttle.window_seconds.get());
    let signup_window = Duration::from_secs(config.register.window_seconds.get());
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
            config.throttle.max_failures_per_username.get(),
            config.throttle.max_failures_per_address.get(),
            config.throttle.max_in_flight_per_address.get(),
        ),
        SignupThrottle::new(signup, config.register.max_per_address.get()),
    )
}

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
    let background_db = db::connect_background(config).await?;
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
        tokio::spawn(purge.run(Duration::from_secs(config.sessions.purge_interval_seconds.get()))),
    ]))
}

/// gRPC is HTTP/2 only.
const GRPC_ALPN: [&[u8]; 1] = [b"h2"];

/// The gRPC port's TLS, when `grpc.tls` sets a certificate.
fn grpc_tls(config: &Config) -> anyhow::Result<Option<Arc<ServerTls>>> {
    if !config.grpc.tls.enabled("grpc.tls").map_err(anyhow::Error::msg)? {
        return Ok(None);
    }
    let tls = ServerTls::load(&config.grpc.tls, "grpc.tls", &GRPC_ALPN).map_err(anyhow::Error::msg)?;
    let mutual = config.grpc.tls.client_ca_file.is_some();
    tracing::info!(mutual, "gRPC over TLS");
    Ok(Some(tls))
}

/// The whole server ("") and the user service, as health checks name them.
const HEALTH_SERVICE_NAMES: [&str; 2] = ["", "user.v1.UserService"];

async fn set_status(health: &HealthReporter, status: ServingStatus) {
    for service in HEALTH_SERVICE_NAMES {
        health.set_service_status(service, status).await;
    }
}
