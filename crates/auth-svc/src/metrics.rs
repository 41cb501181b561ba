//! Prometheus metrics of one auth-svc instance, served on the admin port at `/metrics`.
//!
//! One registry per instance (not a process-global recorder), so two instances in one test
//! process count separately. Pool gauges are sampled when `/metrics` is scraped.

use std::time::Instant;

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RpcLabels {
    pub method: &'static str,
    pub code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabels {
    pub method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ThrottleLabels {
    pub throttle: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AuditLabels {
    pub r#type: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

/// Something that can report pool usage when scraped: (open connections, idle connections).
pub type PoolProbe = Box<dyn Fn() -> (i64, i64) + Send + Sync>;

pub struct Metrics {
    registry: Registry,
    rpc_requests: Family<RpcLabels, Counter>,
    rpc_seconds: Family<MethodLabels, Histogram>,
    logins: Family<OutcomeLabels, Counter>,
    tokens: Family<OutcomeLabels, Counter>,
    reuse_detections: Counter,
    cache_lookups: Family<OutcomeLabels, Counter>,
    hashes_waiting: Gauge,
    hashes_running: Gauge,
    db_connections: Family<OutcomeLabels, Gauge>,
    redis_connections: Family<OutcomeLabels, Gauge>,
    redis_failures: Gauge,
    throttle_degraded: Family<ThrottleLabels, Counter>,
    hashes_refused: Counter,
    revocation_polls: Family<OutcomeLabels, Counter>,
    revocation_database_checks: Counter,
    user_cache_polls: Family<OutcomeLabels, Counter>,
    refresh_tokens_purged: Counter,
    audit_events: Family<AuditLabels, Counter>,
    probes: std::sync::Mutex<Probes>,
}

#[derive(Default)]
struct Probes {
    db: Option<PoolProbe>,
    redis: Option<PoolProbe>,
    redis_failures: Option<Box<dyn Fn() -> i64 + Send + Sync>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("auth");
        let rpc_requests = Family::<RpcLabels, Counter>::default();
        let rpc_seconds = Family::<MethodLabels, Histogram>::new_with_constructor(|| {
            // 0.25 ms … ~8 s: signatures sit at the bottom, argon2 hashes in the middle.
            Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(0.00025, 2.0, 16))
        });
        let logins = Family::<OutcomeLabels, Counter>::default();
        let tokens = Family::<OutcomeLabels, Counter>::default();
        let reuse_detections = Counter::default();
        let cache_lookups = Family::<OutcomeLabels, Counter>::default();
        let hashes_waiting = Gauge::default();
        let hashes_running = Gauge::default();
        let db_connections = Family::<OutcomeLabels, Gauge>::default();
        let redis_connections = Family::<OutcomeLabels, Gauge>::default();
        let redis_failures = Gauge::default();
        let throttle_degraded = Family::<ThrottleLabels, Counter>::default();
        let hashes_refused = Counter::default();
        let revocation_polls = Family::<OutcomeLabels, Counter>::default();
        let revocation_database_checks = Counter::default();
        let user_cache_polls = Family::<OutcomeLabels, Counter>::default();
        let refresh_tokens_purged = Counter::default();
        let audit_events = Family::<AuditLabels, Counter>::default();
        registry.register("audit_events", "Audit events by type and outcome", audit_events.clone());
        registry.register("rpc_requests", "gRPC calls by method and status code", rpc_requests.clone());
        registry.register("rpc_duration_seconds", "gRPC call latency by method", rpc_seconds.clone());
        registry.register("logins", "Login attempts by outcome (success, failure, throttled)", logins.clone());
        registry.register("tokens", "Token pairs by event (issued, refreshed) and sessions revoked", tokens.clone());
        registry.register(
            "refresh_reuse_detections",
            "Refresh tokens presented again after rotation",
            reuse_detections.clone(),
        );
        registry.register("cache_lookups", "User cache lookups by result (hit, miss)", cache_lookups.clone());
        registry.register("password_hashes_waiting", "Hash jobs queued for a hashing slot", hashes_waiting.clone());
        registry.register("password_hashes_running", "Hash jobs running", hashes_running.clone());
        registry.register(
            "db_pool_connections",
            "Database pool connections by state (open, idle)",
            db_connections.clone(),
        );
        registry.register(
            "redis_pool_connections",
            "Redis pool connections by state (open, idle)",
            redis_connections.clone(),
        );
        registry.register("redis_failures", "Redis operations failed or skipped since start", redis_failures.clone());
        registry.register(
            "throttle_degraded",
            "Throttle reservations made in this replica only, because Redis could not answer",
            throttle_degraded.clone(),
        );
        registry.register(
            "password_hashes_refused",
            "Logins and registrations refused at once because the hashing queue was full",
            hashes_refused.clone(),
        );
        registry.register(
            "revocation_polls",
            "Database polls for revoked sessions by outcome (ok, failed)",
            revocation_polls.clone(),
        );
        registry.register(
            "user_cache_polls",
            "Database polls for changed accounts, applied to the user cache, by outcome (ok, failed)",
            user_cache_polls.clone(),
        );
        registry.register(
            "revocation_database_checks",
            "Protected calls whose revocation check asked the database (the poll was stale)",
            revocation_database_checks.clone(),
        );
        registry.register(
            "refresh_tokens_purged",
            "Refresh-token rows of ended sessions deleted by the retention purge",
            refresh_tokens_purged.clone(),
        );
        Self {
            registry,
            rpc_requests,
            rpc_seconds,
            logins,
            tokens,
            reuse_detections,
            cache_lookups,
            hashes_waiting,
            hashes_running,
            db_connections,
            redis_connections,
            redis_failures,
            throttle_degraded,
            hashes_refused,
            revocation_polls,
            revocation_database_checks,
            user_cache_polls,
            refresh_tokens_purged,
            audit_events,
            probes: std::sync::Mutex::new(Probes::default()),
        }
    }

    pub fn rpc(&self, method: &'static str, code: tonic::Code, started: Instant) {
        self.rpc_requests.get_or_create(&RpcLabels { method, code: code_name(code) }).inc();
        self.rpc_seconds.get_or_create(&MethodLabels { method }).observe(started.elapsed().as_secs_f64());
    }

    pub fn login(&self, outcome: &'static str) {
        self.logins.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    pub fn token(&self, event: &'static str) {
        self.tokens.get_or_create(&OutcomeLabels { outcome: event }).inc();
    }

    pub fn reuse_detected(&self) {
        self.reuse_detections.inc();
    }

    pub fn revocation_poll(&self, outcome: &'static str) {
        self.revocation_polls.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    pub fn user_cache_poll(&self, outcome: &'static str) {
        self.user_cache_polls.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    pub fn revocation_database_check(&self) {
        self.revocation_database_checks.inc();
    }

    pub fn audit_event(&self, r#type: &'static str, outcome: &'static str) {
        self.audit_events.get_or_create(&AuditLabels { r#type, outcome }).inc();
    }

    pub fn refresh_tokens_purged(&self, rows: u64) {
        self.refresh_tokens_purged.inc_by(rows);
    }

    pub fn cache(&self, hit: bool) {
        self.cache_lookups.get_or_create(&OutcomeLabels { outcome: if hit { "hit" } else { "miss" } }).inc();
    }

    pub fn throttle_degraded(&self, throttle: &'static str) {
        self.throttle_degraded.get_or_create(&ThrottleLabels { throttle }).inc();
    }

    pub fn hash_refused(&self) {
        self.hashes_refused.inc();
    }

    pub fn hash_queue(&self) -> (&Gauge, &Gauge) {
        (&self.hashes_waiting, &self.hashes_running)
    }

    pub fn probe_database(&self, probe: PoolProbe) {
        self.probes().db = Some(probe);
    }

    pub fn probe_redis(&self, probe: PoolProbe, failures: Box<dyn Fn() -> i64 + Send + Sync>) {
        let mut probes = self.probes();
        probes.redis = Some(probe);
        probes.redis_failures = Some(failures);
    }

    fn probes(&self) -> std::sync::MutexGuard<'_, Probes> {
        self.probes.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The text exposition format, pool gauges sampled now.
    pub fn render(&self) -> String {
        {
            let probes = self.probes();
            for (probe, family) in [(&probes.db, &self.db_connections), (&probes.redis, &self.redis_connections)] {
                if let Some(probe) = probe {
                    let (open, idle) = probe();
                    family.get_or_create(&OutcomeLabels { outcome: "open" }).set(open);
                    family.get_or_create(&OutcomeLabels { outcome: "idle" }).set(idle);
                }
            }
            if let Some(failures) = &probes.redis_failures {
                self.redis_failures.set(failures());
            }
        }
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}

fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}
