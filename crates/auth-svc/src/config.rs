//! Configuration: an optional YAML file (`-f/--config`) overridden by `AUTH_SVC__…` environment
//! variables (the key path joined with `__`, e.g. `AUTH_SVC__AUTH__ACCESS_SECRET`). Validated
//! once at start; every error names the key. `crates/auth-svc/auth-svc.yaml` documents every key.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    num::{NonZeroU32, NonZeroU64, NonZeroUsize},
    path::{Path, PathBuf},
    time::Duration,
};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::domain::{
    password::MAX_PASSWORD_BYTES,
    role::{self, ROLE_ADMIN, ROLE_USER},
};

/// The default of a key that must not be zero (serde refuses a 0 in the file or environment),
/// checked when the program is compiled.
macro_rules! nonzero {
    ($n:expr) => {
        const {
            match std::num::NonZero::new($n) {
                Some(n) => n,
                None => panic!("the default of a non-zero key is 0"),
            }
        }
    };
}

/// Prefix of every environment override.
pub const ENV_PREFIX: &str = "AUTH_SVC__";

/// Default database: an SQLite file created on first run, so nothing needs installing.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://./data/auth-svc.db?mode=rwc";

/// Smallest accepted HS256 secret, in bytes (RFC 7518 section 3.2: at least the hash size).
pub const MIN_SECRET_BYTES: usize = 32;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Admin HTTP address serving Prometheus `/metrics`; unset = no admin port.
    #[serde(default)]
    pub admin_listen: Option<SocketAddr>,
    #[serde(default = "default_database_url")]
    pub database_url: String,
    /// Redis for the shared cache, throttle and revocation list; unset = in-process.
    #[serde(default)]
    pub redis_url: Option<SecretString>,
    #[serde(default)]
    pub database: DatabaseConfig,
    #[serde(default)]
    pub auth: AuthConfig,
    #[serde(default)]
    pub password: PasswordConfig,
    #[serde(default)]
    pub grpc: GrpcConfig,
    #[serde(default)]
    pub redis: RedisConfig,
    #[serde(default)]
    pub cache: CacheConfig,
    #[serde(default)]
    pub throttle: ThrottleConfig,
    #[serde(default)]
    pub register: RegisterConfig,
    #[serde(default)]
    pub log: LogConfig,
    /// Traces over OTLP; off unless an endpoint is set.
    #[serde(default)]
    pub otel: service_kit::telemetry::OtelConfig,
    #[serde(default)]
    pub revocation: RevocationConfig,
    #[serde(default)]
    pub sessions: SessionsConfig,
    #[serde(default)]
    pub clients: ClientsConfig,
    #[serde(default)]
    pub introspection: IntrospectionConfig,
    #[serde(default)]
    pub mfa: MfaConfig,
}

/// Service accounts (OAuth 2.0 clients).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientsConfig {
    /// Seconds a client's previous secret keeps working after RotateClientSecret, so the new
    /// one can be rolled out first (0: it stops at once).
    pub secret_overlap_seconds: u64,
    /// The scopes a client may be given (RFC 6749 scope tokens). `introspect` lets a client
    /// call token introspection; the others mean what the services reading the tokens decide.
    pub scopes: Vec<String>,
    /// Lifetime of a client's access token, seconds.
    pub access_expire: NonZeroU64,
}

impl Default for ClientsConfig {
    fn default() -> Self {
        Self { secret_overlap_seconds: 86_400, scopes: vec![SCOPE_INTROSPECT.to_owned()], access_expire: nonzero!(900) }
    }
}

/// Longest `clients.secret_overlap_seconds`: a rollout takes days, not months.
pub const MAX_SECRET_OVERLAP_SECONDS: u64 = 90 * 86_400;
/// Longest `clients.access_expire`.
pub const MAX_CLIENT_ACCESS_EXPIRE: u64 = 86_400;

/// The scope that lets a client introspect tokens.
pub const SCOPE_INTROSPECT: &str = "introspect";

/// Who may ask ValidateToken.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IntrospectionConfig {
    /// ValidateToken answers only a caller with a service account's access token carrying
    /// scope `introspect` (`authorization: Bearer …`). Off by default: the services that call
    /// it today have no client yet, and the NetworkPolicy already limits who reaches the port.
    pub require_client: bool,
}

/// The second factor: TOTP (RFC 6238) with recovery codes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MfaConfig {
    /// Shown in authenticator apps beside the account name (the otpauth URI's issuer).
    pub issuer: String,
    /// AEAD keys that seal TOTP secrets at rest, by key id; each opens what it sealed and
    /// checks the recovery codes hashed under it.
    pub keys: BTreeMap<String, SealingKeyConfig>,
    /// Id of the key in `keys` that seals new secrets and hashes new recovery codes. Unset
    /// (with no keys): the second factor is unavailable and enrolment is refused.
    pub active_key: Option<String>,
    /// Seconds a login challenge (password accepted, code awaited) stays usable.
    pub challenge_ttl_seconds: NonZeroU64,
    /// Recovery codes made when an enrolment is confirmed, and by each regeneration.
    pub recovery_codes: NonZeroU32,
    /// Wrong codes one login challenge takes before it is spent and the login starts over
    /// (the login throttle counts them too, per account and address).
    pub max_failures: NonZeroU32,
}

impl Default for MfaConfig {
    fn default() -> Self {
        Self {
            issuer: "auth-svc".to_owned(),
            keys: BTreeMap::new(),
            active_key: None,
            challenge_ttl_seconds: nonzero!(300),
            recovery_codes: nonzero!(10),
            max_failures: nonzero!(5),
        }
    }
}

/// Longest `mfa.challenge_ttl_seconds`: the code is typed within minutes of the password.
pub const MAX_CHALLENGE_TTL_SECONDS: u64 = 3600;
/// Most `mfa.max_failures`: each wrong code is a guess at a one-in-a-million-ish secret.
pub const MAX_MFA_FAILURES: u32 = 20;
/// Most `mfa.recovery_codes`.
pub const MAX_RECOVERY_CODES: u32 = 100;
/// Longest `mfa.issuer`, in characters.
pub const MAX_MFA_ISSUER_CHARS: usize = 64;

/// One sealing key, 32 bytes in base64: exactly one of the two sources.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealingKeyConfig {
    /// A file holding the base64 text, e.g. a mounted Kubernetes Secret.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    #[serde(default)]
    pub key: Option<SecretString>,
}

/// Where a sealing key's base64 text comes from: exactly one of [`SealingKeyConfig`]'s fields.
pub enum SealingKeySource<'a> {
    File(&'a Path),
    Inline(&'a SecretString),
}

impl SealingKeyConfig {
    /// The one source set, or why the key is misconfigured.
    pub fn source(&self) -> Result<SealingKeySource<'_>, &'static str> {
        match (&self.key_file, &self.key) {
            (Some(path), None) => Ok(SealingKeySource::File(path)),
            (None, Some(key)) => Ok(SealingKeySource::Inline(key)),
            _ => Err("needs exactly one of key_file, key"),
        }
    }
}

/// How every replica learns of revocations made on the others (README, "Logout and revocation").
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RevocationConfig {
    /// The promise: a revoked session is refused by every replica within this many
    /// milliseconds, whatever Redis does. A replica whose last successful database poll is
    /// older than this checks the database on every call instead.
    pub max_staleness_ms: u64,
    /// Milliseconds between two "revoked since" polls of the database; at most half of
    /// `max_staleness_ms`, so one failed poll does not yet cost the per-call checks.
    pub poll_interval_ms: u64,
}

/// Retention of ended sessions.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionsConfig {
    /// Seconds a revoked or expired session's refresh-token rows are kept before the purge
    /// deletes them.
    pub retention_seconds: u64,
    /// Seconds between two purges (each replica runs its own; they do not conflict).
    pub purge_interval_seconds: NonZeroU64,
    /// Rows deleted per statement; a purge repeats batches until nothing is left.
    pub purge_batch_size: u64,
}

impl Default for RevocationConfig {
    fn default() -> Self {
        Self { max_staleness_ms: 2000, poll_interval_ms: 500 }
    }
}

impl Default for SessionsConfig {
    fn default() -> Self {
        Self { retention_seconds: 604_800, purge_interval_seconds: nonzero!(600), purge_batch_size: 1000 }
    }
}

impl RevocationConfig {
    pub fn max_staleness(&self) -> Duration {
        Duration::from_millis(self.max_staleness_ms)
    }

    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` (the default) or `json` (one object per line).
    pub format: service_kit::logging::LogFormat,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// Connections in the Redis pool.
    pub pool_size: NonZeroUsize,
    /// Milliseconds one Redis operation (connection included) may take before Redis counts
    /// as down for a second and the service carries on without it.
    pub timeout_ms: NonZeroU64,
    /// Prefix of every key, so several deployments (or tests) can share one Redis.
    pub key_prefix: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Seconds a user row stays cached (plus up to 10% random jitter).
    pub ttl_seconds: u64,
    /// Seconds an "unknown user id" answer stays cached.
    pub negative_ttl_seconds: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ThrottleConfig {
    /// Sliding window in which failed logins are counted, seconds.
    pub window_seconds: NonZeroU64,
    /// Failed logins for one username within the window before Login answers
    /// RESOURCE_EXHAUSTED. A successful login resets it.
    pub max_failures_per_username: NonZeroU32,
    /// Failed logins from one client address (IPv6: one /64) within the window.
    pub max_failures_per_address: NonZeroU32,
    /// Logins (successful ones too) one client address may have being checked at once: one
    /// address cannot hold the whole hashing queue.
    pub max_in_flight_per_address: NonZeroU32,
    /// Usernames and addresses this process keeps counts for (and for registrations, the
    /// same again); past it the least recently used go one by one.
    pub max_tracked_keys: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegisterConfig {
    /// Sliding window in which registrations are counted per client address, seconds.
    pub window_seconds: NonZeroU64,
    /// Registrations (taken names included) from one client address (IPv6: one /64) within
    /// the window before Register answers RESOURCE_EXHAUSTED.
    pub max_per_address: NonZeroU32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    pub max_connections: NonZeroU32,
    /// Milliseconds a call waits for a database connection before answering UNAVAILABLE.
    pub acquire_timeout_ms: u64,
    /// Apply pending migrations when serving starts. Turn off where replicas start together
    /// (Kubernetes) and run `auth-svc migrate` once instead; `serve` then refuses to start on
    /// a schema that is behind.
    pub migrate_on_start: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// HS256 key of access tokens; unset = random per process (with a warning). With
    /// `signing_key` set it only verifies (tokens signed before the switch), and may be unset.
    pub access_secret: Option<SecretString>,
    /// HS256 key of refresh tokens; must differ from `access_secret`.
    pub refresh_secret: Option<SecretString>,
    /// Id of the key in `keys` that signs access tokens; unset = HS256 with `access_secret`.
    pub signing_key: Option<String>,
    /// Asymmetric keys by key id: every one verifies access tokens and is published in the
    /// JWKS; the one named by `signing_key` also signs.
    pub keys: BTreeMap<String, KeyConfig>,
    /// Seconds verifiers may cache the JWKS (`Cache-Control: max-age`).
    pub jwks_max_age: u64,
    /// Roles an account may have; SetUserRole refuses others. `user` (every new account) and
    /// `admin` (may call SetUserRole) are always among them.
    pub roles: Vec<String>,
    /// Access-token lifetime in seconds.
    pub access_expire: NonZeroU64,
    /// Refresh-token lifetime in seconds (each rotation starts a new one).
    pub refresh_expire: u64,
    /// Seconds in which a just-rotated refresh token still returns the same successor.
    pub refresh_reuse_interval: u64,
    /// Seconds a session (refresh-token family) may last from its login, however often it
    /// is refreshed; past it Refresh answers UNAUTHENTICATED and the user logs in again.
    pub session_max_lifetime_seconds: NonZeroU64,
    /// `iss` of every token, checked on every verification.
    pub issuer: String,
}

/// Algorithms of configured keys (JOSE names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum KeyAlgorithm {
    /// Ed25519 (RFC 8037).
    EdDSA,
    /// ECDSA on P-256 with SHA-256.
    ES256,
}

/// One asymmetric key: exactly one of the four sources. A private key signs and verifies; a
/// public key only verifies (the first and last steps of a rotation).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    pub algorithm: KeyAlgorithm,
    /// PKCS#8 PEM file, e.g. a mounted Kubernetes Secret.
    #[serde(default)]
    pub private_key_file: Option<PathBuf>,
    #[serde(default)]
    pub private_key_pem: Option<SecretString>,
    /// SubjectPublicKeyInfo PEM file.
    #[serde(default)]
    pub public_key_file: Option<PathBuf>,
    #[serde(default)]
    pub public_key_pem: Option<String>,
}

/// Where a key's PEM text comes from: exactly one of [`KeyConfig`]'s four fields.
pub enum KeySource<'a> {
    PrivateFile(&'a Path),
    PrivatePem(&'a SecretString),
    PublicFile(&'a Path),
    PublicPem(&'a str),
}

impl KeySource<'_> {
    /// A private key signs as well as verifies.
    pub fn is_private(&self) -> bool {
        matches!(self, Self::PrivateFile(_) | Self::PrivatePem(_))
    }
}

impl KeyConfig {
    /// The one source set, or why the key is misconfigured.
    pub fn source(&self) -> Result<KeySource<'_>, &'static str> {
        match (&self.private_key_file, &self.private_key_pem, &self.public_key_file, &self.public_key_pem) {
            (Some(path), None, None, None) => Ok(KeySource::PrivateFile(path)),
            (None, Some(pem), None, None) => Ok(KeySource::PrivatePem(pem)),
            (None, None, Some(path), None) => Ok(KeySource::PublicFile(path)),
            (None, None, None, Some(pem)) => Ok(KeySource::PublicPem(pem)),
            _ => Err("needs exactly one of private_key_file, private_key_pem, public_key_file, public_key_pem"),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PasswordConfig {
    /// Minimum password length in characters.
    pub min_length: usize,
    /// `owasp` (the default) or `test` (cheap, for test suites only).
    pub hash_profile: HashProfile,
    /// Hashes computed at once; 0 = one per CPU core.
    pub max_concurrent_hashes: usize,
    /// Hashes that may wait for a hashing thread; past it Login and Register answer
    /// RESOURCE_EXHAUSTED at once.
    pub max_queued_hashes: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HashProfile {
    /// argon2id, m = 19456 KiB, t = 2, p = 1 (OWASP password storage cheat sheet).
    Owasp,
    /// argon2id at its minimum cost. Never for real passwords.
    Test,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GrpcConfig {
    /// Largest request message accepted, in bytes.
    pub max_message_bytes: usize,
    /// Seconds in-flight calls get to finish after SIGTERM/SIGINT.
    pub shutdown_grace_seconds: u64,
    /// Peers (CIDRs) whose `x-forwarded-for` names the client: the gateway. Any other caller
    /// is counted by its own TCP address, whatever it sends.
    pub trusted_forwarders: Vec<ipnet::IpNet>,
    /// HTTP/2 streams (calls) one connection may have open at once.
    pub max_concurrent_streams: NonZeroU32,
    /// Seconds between HTTP/2 keepalive pings to a client; 0 sends none.
    pub keepalive_interval_seconds: u64,
    /// Seconds a client has to answer a keepalive ping before its connection is dropped.
    pub keepalive_timeout_seconds: u64,
    /// Milliseconds a new connection may take to finish its HTTP/2 handshake and send its first
    /// call's headers before it is closed.
    pub header_read_timeout_ms: NonZeroU64,
    /// Seconds a connection may stay open with no call in flight before it is closed.
    pub idle_timeout_seconds: NonZeroU64,
    /// Seconds a call may take until its response starts, whatever its client's `grpc-timeout`
    /// says (the shorter wins): a request body that never ends cannot hold its stream.
    pub max_call_seconds: NonZeroU64,
    /// gRPC over TLS (and mutual TLS with `client_ca_file`); off unless a certificate is set.
    pub tls: service_kit::tls::TlsConfig,
    /// Under mutual TLS: `x-forwarded-for` is believed only from a peer in
    /// `trusted_forwarders` whose certificate names one of these DNS names (the gateway's).
    pub trusted_forwarder_names: Vec<String>,
}

impl Default for Config {
    /// Every key at its documented default (what an empty file and no environment give).
    fn default() -> Self {
        Self {
            listen: default_listen(),
            admin_listen: None,
            database_url: default_database_url(),
            redis_url: None,
            database: DatabaseConfig::default(),
            auth: AuthConfig::default(),
            password: PasswordConfig::default(),
            grpc: GrpcConfig::default(),
            redis: RedisConfig::default(),
            cache: CacheConfig::default(),
            throttle: ThrottleConfig::default(),
            register: RegisterConfig::default(),
            log: LogConfig::default(),
            otel: service_kit::telemetry::OtelConfig::default(),
            revocation: RevocationConfig::default(),
            sessions: SessionsConfig::default(),
            clients: ClientsConfig::default(),
            introspection: IntrospectionConfig::default(),
            mfa: MfaConfig::default(),
        }
    }
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self { pool_size: nonzero!(16), timeout_ms: nonzero!(250), key_prefix: "auth-svc:".to_owned() }
    }
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self { ttl_seconds: 300, negative_ttl_seconds: 5 }
    }
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            window_seconds: nonzero!(300),
            max_failures_per_username: nonzero!(5),
            max_failures_per_address: nonzero!(50),
            max_in_flight_per_address: nonzero!(8),
            max_tracked_keys: 100_000,
        }
    }
}

impl Default for RegisterConfig {
    fn default() -> Self {
        Self { window_seconds: nonzero!(3600), max_per_address: nonzero!(50) }
    }
}

/// IPv4 and IPv6 loopback: a gateway on the same host (`scripts/dev.sh`, a sidecar).
fn loopback() -> Vec<ipnet::IpNet> {
    vec![
        ipnet::IpNet::from(ipnet::Ipv4Net::new_assert(std::net::Ipv4Addr::new(127, 0, 0, 0), 8)),
        ipnet::IpNet::from(ipnet::Ipv6Net::new_assert(std::net::Ipv6Addr::LOCALHOST, 128)),
    ]
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 50051))
}

fn default_database_url() -> String {
    DEFAULT_DATABASE_URL.to_owned()
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self { max_connections: nonzero!(10), acquire_timeout_ms: 3000, migrate_on_start: true }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            access_secret: None,
            refresh_secret: None,
            access_expire: nonzero!(900),
            refresh_expire: 1_209_600,
            refresh_reuse_interval: 10,
            session_max_lifetime_seconds: nonzero!(2_592_000),
            issuer: "auth-svc".to_owned(),
            signing_key: None,
            keys: BTreeMap::new(),
            jwks_max_age: 300,
            roles: vec![ROLE_USER.to_owned(), ROLE_ADMIN.to_owned()],
        }
    }
}

impl Default for PasswordConfig {
    fn default() -> Self {
        Self { min_length: 8, hash_profile: HashProfile::Owasp, max_concurrent_hashes: 0, max_queued_hashes: 128 }
    }
}

impl Default for GrpcConfig {
    fn default() -> Self {
        Self {
            max_message_bytes: 64 * 1024,
            shutdown_grace_seconds: 20,
            max_concurrent_streams: nonzero!(128),
            keepalive_interval_seconds: 60,
            keepalive_timeout_seconds: 20,
            header_read_timeout_ms: nonzero!(10_000),
            idle_timeout_seconds: nonzero!(300),
            max_call_seconds: nonzero!(30),
            trusted_forwarders: loopback(),
            tls: service_kit::tls::TlsConfig::default(),
            trusted_forwarder_names: Vec::new(),
        }
    }
}

pub use service_kit::config::ConfigError;

/// Longest accepted key id; ids travel in every token header.
pub const MAX_KID_CHARS: usize = 64;

/// Key ids are printable, short, and safe in headers, logs and file names.
pub fn check_kid(kid: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if kid.is_empty() || kid.chars().count() > MAX_KID_CHARS || !kid.chars().all(allowed) {
        return Err(format!("key id must be 1..={MAX_KID_CHARS} characters of A-Z a-z 0-9 - _ ."));
    }
    if kid.starts_with("hs256-") {
        return Err("key ids starting with hs256- are reserved for the HMAC keys".to_owned());
    }
    Ok(())
}

impl Config {
    /// Reads the YAML file (if given), then the environment, then validates.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        service_kit::config::load_validated(file, ENV_PREFIX, Self::validate)
    }

    /// Checks what serde cannot: ranges and relations between keys. (Keys that must not be 0
    /// are `NonZero*`, refused by serde.)
    pub fn validate(&self) -> Result<(), ConfigError> {
        let auth = &self.auth;
        for (key, secret) in [("access_secret", &auth.access_secret), ("refresh_secret", &auth.refresh_secret)] {
            if let Some(secret) = secret
                && secret.expose_secret().len() < MIN_SECRET_BYTES
            {
                return Err(invalid(
                    &format!("auth.{key}"),
                    &format!("must be at least {MIN_SECRET_BYTES} bytes (try `openssl rand -base64 48`)"),
                ));
            }
        }
        // With an asymmetric signing key the access secret only verifies old tokens; it may go.
        let access_secret_optional = auth.signing_key.is_some() && auth.refresh_secret.is_some();
        if auth.access_secret.is_some() != auth.refresh_secret.is_some() && !access_secret_optional {
            return Err(invalid("auth.access_secret", "set both access_secret and refresh_secret, or neither"));
        }
        for (kid, key) in &auth.keys {
            check_kid(kid).map_err(|why| invalid(&format!("auth.keys.{kid}"), &why))?;
            key.source().map_err(|why| invalid(&format!("auth.keys.{kid}"), why))?;
        }
        if let Some(kid) = &auth.signing_key {
            match auth.keys.get(kid).map(KeyConfig::source) {
                None => return Err(invalid("auth.signing_key", &format!("names no key in auth.keys: {kid}"))),
                Some(Ok(source)) if !source.is_private() => {
                    return Err(invalid("auth.signing_key", &format!("names a key with no private half: {kid}")));
                }
                Some(_) => {}
            }
        }
        for role in &auth.roles {
            role::check_role_name(role).map_err(|why| invalid("auth.roles", &why))?;
        }
        if !auth.roles.iter().any(|role| role == ROLE_USER) || !auth.roles.iter().any(|role| role == ROLE_ADMIN) {
            return Err(invalid("auth.roles", "must include user and admin"));
        }
        if let (Some(access), Some(refresh)) = (&auth.access_secret, &auth.refresh_secret)
            && access.expose_secret() == refresh.expose_secret()
        {
            return Err(invalid("auth.refresh_secret", "must differ from auth.access_secret"));
        }
        if auth.refresh_expire <= auth.refresh_reuse_interval {
            return Err(invalid("auth.refresh_expire", "must be longer than auth.refresh_reuse_interval"));
        }
        if auth.issuer.trim().is_empty() {
            return Err(invalid("auth.issuer", "must not be empty"));
        }
        if !(1..=MAX_PASSWORD_BYTES).contains(&self.password.min_length) {
            return Err(invalid("password.min_length", &format!("must be between 1 and {MAX_PASSWORD_BYTES}")));
        }
        if self.grpc.max_message_bytes < 1024 {
            return Err(invalid("grpc.max_message_bytes", "must be at least 1024"));
        }
        if self.grpc.keepalive_interval_seconds > 0 && self.grpc.keepalive_timeout_seconds == 0 {
            return Err(invalid("grpc.keepalive_timeout_seconds", "must be at least 1 while keepalive pings are on"));
        }
        self.grpc.tls.enabled("grpc.tls").map_err(|why| invalid("grpc.tls", &why))?;
        if !self.grpc.trusted_forwarder_names.is_empty() && self.grpc.tls.client_ca_file.is_none() {
            return Err(invalid(
                "grpc.trusted_forwarder_names",
                "needs grpc.tls.client_ca_file: names are only proven by client certificates",
            ));
        }
        if let Some(url) = &self.redis_url
            && !["redis://", "rediss://", "redis+unix://", "unix://"].iter().any(|s| url.expose_secret().starts_with(s))
        {
            return Err(invalid("redis_url", "must start with redis://, rediss:// or unix://"));
        }
        if self.throttle.max_tracked_keys < 1000 {
            return Err(invalid("throttle.max_tracked_keys", "must be at least 1000"));
        }
        if !["sqlite:", "postgres://", "postgresql://", "mysql://"]
            .iter()
            .any(|scheme| self.database_url.starts_with(scheme))
        {
            return Err(invalid("database_url", "must start with sqlite:, postgres:// or mysql://"));
        }
        self.otel.validate(ENV_PREFIX)?;
        self.validate_sessions()?;
        self.validate_mfa()
    }

    /// The trace export settings (`otel.*`, else the standard `OTEL_*` variables); `None`: off.
    pub fn telemetry(&self) -> Result<Option<service_kit::telemetry::TelemetrySettings>, ConfigError> {
        let service = service_kit::telemetry::ServiceIdentity { name: "auth-svc", version: env!("CARGO_PKG_VERSION") };
        self.otel.resolve(ENV_PREFIX, service)
    }

    fn validate_sessions(&self) -> Result<(), ConfigError> {
        let revocation = &self.revocation;
        if revocation.poll_interval_ms < 50 {
            return Err(invalid("revocation.poll_interval_ms", "must be at least 50"));
        }
        if revocation.max_staleness_ms < revocation.poll_interval_ms.saturating_mul(2) {
            return Err(invalid("revocation.max_staleness_ms", "must be at least twice revocation.poll_interval_ms"));
        }
        let sessions = &self.sessions;
        if !(1..=10_000).contains(&sessions.purge_batch_size) {
            return Err(invalid("sessions.purge_batch_size", "must be between 1 and 10000"));
        }
        if self.clients.secret_overlap_seconds > MAX_SECRET_OVERLAP_SECONDS {
            return Err(invalid("clients.secret_overlap_seconds", "must be at most 7776000 (90 days)"));
        }
        if self.clients.access_expire.get() > MAX_CLIENT_ACCESS_EXPIRE {
            return Err(invalid("clients.access_expire", "must be at most 86400 (a day)"));
        }
        for scope in &self.clients.scopes {
            crate::domain::client::check_scope(scope).map_err(|why| invalid("clients.scopes", &why))?;
        }
        Ok(())
    }

    fn validate_mfa(&self) -> Result<(), ConfigError> {
        let mfa = &self.mfa;
        let issuer_chars = mfa.issuer.chars().count();
        if mfa.issuer.trim().is_empty() || issuer_chars > MAX_MFA_ISSUER_CHARS || mfa.issuer.contains(':') {
            // Authenticator apps split the otpauth label `issuer:account` at its colon.
            return Err(invalid("mfa.issuer", "must be 1..=64 characters, without a colon"));
        }
        for (kid, key) in &mfa.keys {
            check_kid(kid).map_err(|why| invalid(&format!("mfa.keys.{kid}"), &why))?;
            key.source().map_err(|why| invalid(&format!("mfa.keys.{kid}"), why))?;
        }
        match &mfa.active_key {
            Some(kid) if !mfa.keys.contains_key(kid) => {
                return Err(invalid("mfa.active_key", &format!("names no key in mfa.keys: {kid}")));
            }
            None if !mfa.keys.is_empty() => {
                return Err(invalid("mfa.active_key", "must name the key of mfa.keys that seals new secrets"));
            }
            _ => {}
        }
        if mfa.challenge_ttl_seconds.get() > MAX_CHALLENGE_TTL_SECONDS {
            return Err(invalid("mfa.challenge_ttl_seconds", "must be at most 3600 (an hour)"));
        }
        if mfa.recovery_codes.get() > MAX_RECOVERY_CODES {
            return Err(invalid("mfa.recovery_codes", "must be at most 100"));
        }
        if mfa.max_failures.get() > MAX_MFA_FAILURES {
            return Err(invalid("mfa.max_failures", "must be at most 20"));
        }
        Ok(())
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.grpc.shutdown_grace_seconds)
    }

    pub fn hashing_concurrency(&self) -> usize {
        match self.password.max_concurrent_hashes {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        }
    }
}

/// An invalid value at `key`, with the environment variable that sets it.
pub(crate) fn invalid(key: &str, why: &str) -> ConfigError {
    ConfigError::invalid(ENV_PREFIX, key, why)
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closures return figment::Error
mod tests {
    use super::*;
    use crate::auth::{keys::Secrets, tokens::TokenKeys};

    #[test]
    fn key_ids_are_checked() {
        for bad in ["", "a b", "x/y", "hs256-mine", &"k".repeat(65), "é"] {
            assert!(check_kid(bad).is_err(), "{bad:?}");
        }
        check_kid("2026-11.ed25519_a").expect("a plain id is fine");
    }

    #[test]
    fn env_overrides_reach_nested_keys_and_numeric_looking_secrets_stay_strings() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("AUTH_SVC__AUTH__ACCESS_SECRET", "11111111111111111111111111111111111");
            jail.set_env("AUTH_SVC__AUTH__REFRESH_SECRET", "b".repeat(40));
            jail.set_env("AUTH_SVC__AUTH__REFRESH_REUSE_INTERVAL", "0");
            jail.set_env("AUTH_SVC__PASSWORD__MIN_LENGTH", "12");
            jail.set_env("AUTH_SVC__LISTEN", "127.0.0.1:6000");
            jail.set_env("AUTH_SVC__OTEL__ENDPOINT", "http://collector:4317");
            jail.set_env("AUTH_SVC__OTEL__SAMPLE_RATIO", "0.1");
            let config = Config::load(None).map_err(|e| e.to_string())?;
            let telemetry = config.telemetry().map_err(|e| e.to_string())?.ok_or("tracing is on")?;
            assert_eq!(telemetry.endpoint.as_deref(), Some("http://collector:4317"));
            assert_eq!(telemetry.sample_ratio.get(), 0.1);
            assert_eq!(telemetry.service_name, "auth-svc");
            assert_eq!(config.auth.refresh_reuse_interval, 0);
            assert_eq!(config.password.min_length, 12);
            assert_eq!(config.listen, "127.0.0.1:6000".parse().map_err(|_| "addr")?);
            assert_eq!(
                config.auth.access_secret.as_ref().map(|s| s.expose_secret().to_owned()),
                Some("11111111111111111111111111111111111".to_owned())
            );
            Ok(())
        });
    }

    #[test]
    fn revocation_and_session_keys_take_env_overrides_and_are_checked() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("AUTH_SVC__REVOCATION__MAX_STALENESS_MS", "1000");
            jail.set_env("AUTH_SVC__REVOCATION__POLL_INTERVAL_MS", "250");
            jail.set_env("AUTH_SVC__SESSIONS__RETENTION_SECONDS", "60");
            jail.set_env("AUTH_SVC__AUTH__SESSION_MAX_LIFETIME_SECONDS", "3600");
            let config = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(config.revocation.max_staleness(), Duration::from_secs(1));
            assert_eq!(config.revocation.poll_interval(), Duration::from_millis(250));
            assert_eq!(config.sessions.retention_seconds, 60);
            assert_eq!(config.auth.session_max_lifetime_seconds.get(), 3600);
            jail.set_env("AUTH_SVC__REVOCATION__POLL_INTERVAL_MS", "600");
            let err = Config::load(None).err().ok_or("a poll slower than half the staleness")?.to_string();
            assert!(err.contains("revocation.max_staleness_ms"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn yaml_file_is_read_and_env_wins_over_it() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("auth.yaml", "listen: 127.0.0.1:7000\nauth:\n  access_expire: 60\n")?;
            jail.set_env("AUTH_SVC__AUTH__ACCESS_EXPIRE", "120");
            let config = Config::load(Some(Path::new("auth.yaml"))).map_err(|e| e.to_string())?;
            assert_eq!(config.listen.port(), 7000);
            assert_eq!(config.auth.access_expire.get(), 120);
            Ok(())
        });
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases: &[(&str, &str, &str)] = &[
            ("AUTH_SVC__AUTH__ACCESS_SECRET", "short", "auth.access_secret"),
            ("AUTH_SVC__PASSWORD__MIN_LENGTH", "0", "password.min_length"),
            ("AUTH_SVC__AUTH__ACCESS_EXPIRE", "soon", "access_expire"),
            ("AUTH_SVC__NO_SUCH_KEY", "1", "no_such_key"),
            ("AUTH_SVC__DATABASE_URL", "oracle://x", "database_url"),
            ("AUTH_SVC__GRPC__MAX_CALL_SECONDS", "0", "grpc.max_call_seconds"),
            ("AUTH_SVC__OTEL__ENDPOINT", "https://collector:4317", "otel.endpoint (auth_svc__otel__endpoint)"),
            ("AUTH_SVC__OTEL__PROTOCOL", "http/json", "otel.protocol (auth_svc__otel__protocol)"),
            ("AUTH_SVC__OTEL__SAMPLE_RATIO", "-1", "otel.sample_ratio (auth_svc__otel__sample_ratio)"),
        ];
        for (var, value, key) in cases {
            figment::Jail::expect_with(|jail| {
                jail.set_env(var, value);
                if var.contains("SECRET") {
                    jail.set_env("AUTH_SVC__AUTH__REFRESH_SECRET", "r".repeat(40));
                }
                let err = Config::load(None).err().ok_or("expected an error")?.to_string();
                assert!(err.to_lowercase().contains(key), "{var}={value}: {err}");
                assert!(!err.contains('\n'), "one line: {err}");
                Ok(())
            });
        }
    }

    #[test]
    fn a_zero_for_a_key_that_must_not_be_zero_says_the_rule() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("AUTH_SVC__THROTTLE__MAX_FAILURES_PER_USERNAME", "0");
            let err = Config::load(None).err().ok_or("expected an error")?.to_string();
            assert_eq!(
                err,
                "config: throttle.max_failures_per_username (AUTH_SVC__THROTTLE__MAX_FAILURES_PER_USERNAME) \
                 must be at least 1, from `AUTH_SVC__` environment variable(s)"
            );
            Ok(())
        });
    }

    #[test]
    fn the_documented_example_file_matches_the_defaults() {
        figment::Jail::expect_with(|_| {
            let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/auth-svc.yaml"));
            let documented = Config::load(Some(path)).map_err(|e| e.to_string())?;
            let defaults = Config::default();
            assert_eq!(format!("{documented:?}"), format!("{defaults:?}"));
            Ok(())
        });
    }

    #[test]
    fn key_settings_are_checked_and_name_their_key() {
        let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/keys");
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("AUTH_SVC__AUTH__SIGNING_KEY", "nope")], "auth.signing_key"),
            (&[("AUTH_SVC__AUTH__KEYS__K1__ALGORITHM", "EdDSA")], "auth.keys.k1"),
            (&[("AUTH_SVC__AUTH__KEYS__K1__ALGORITHM", "HS512")], "algorithm"),
            (&[("AUTH_SVC__AUTH__ROLES", "[user]")], "auth.roles"),
            (&[("AUTH_SVC__AUTH__ROLES", "[user, admin, Root]")], "auth.roles"),
        ];
        for (vars, key) in cases {
            figment::Jail::expect_with(|jail| {
                for (name, value) in *vars {
                    jail.set_env(name, value);
                }
                let err = Config::load(None).err().ok_or("expected an error")?.to_string();
                assert!(err.to_lowercase().contains(key), "{vars:?}: {err}");
                Ok(())
            });
        }
        figment::Jail::expect_with(|jail| {
            jail.set_env("AUTH_SVC__AUTH__KEYS__K1__ALGORITHM", "EdDSA");
            jail.set_env("AUTH_SVC__AUTH__KEYS__K1__PUBLIC_KEY_FILE", format!("{fixtures}/ed25519-a.pub.pem"));
            jail.set_env("AUTH_SVC__AUTH__SIGNING_KEY", "k1");
            let err = Config::load(None).err().ok_or("a public key cannot sign")?.to_string();
            assert!(err.contains("no private half"), "{err}");
            Ok(())
        });
        figment::Jail::expect_with(|jail| {
            jail.set_env("AUTH_SVC__AUTH__KEYS__K1__ALGORITHM", "ES256");
            jail.set_env("AUTH_SVC__AUTH__KEYS__K1__PRIVATE_KEY_FILE", format!("{fixtures}/ed25519-a.pem"));
            jail.set_env("AUTH_SVC__AUTH__SIGNING_KEY", "k1");
            jail.set_env("AUTH_SVC__AUTH__REFRESH_SECRET", "r".repeat(40));
            let config = Config::load(None).map_err(|e| e.to_string())?;
            let err = TokenKeys::from_config(&config.auth, &Secrets::from_config(&config.auth))
                .err()
                .ok_or("wrong algorithm")?
                .to_string();
            assert!(err.contains("auth.keys.k1") && err.contains("ES256"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn an_asymmetric_signing_key_needs_no_access_secret() {
        figment::Jail::expect_with(|jail| {
            let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/keys");
            jail.set_env("AUTH_SVC__AUTH__KEYS__K1__ALGORITHM", "EdDSA");
            jail.set_env("AUTH_SVC__AUTH__KEYS__K1__PRIVATE_KEY_FILE", format!("{fixtures}/ed25519-a.pem"));
            jail.set_env("AUTH_SVC__AUTH__SIGNING_KEY", "k1");
            jail.set_env("AUTH_SVC__AUTH__REFRESH_SECRET", "r".repeat(40));
            let config = Config::load(None).map_err(|e| e.to_string())?;
            let secrets = Secrets::from_config(&config.auth);
            assert!(secrets.access.is_none() && !secrets.generated);
            let keys = TokenKeys::from_config(&config.auth, &secrets).map_err(|e| e.to_string())?;
            assert_eq!(keys.access_signing_key().0, "k1");
            assert_eq!(keys.jwks().len(), 1);
            Ok(())
        });
    }

    #[test]
    fn mfa_keys_take_env_overrides_and_are_checked() {
        figment::Jail::expect_with(|jail| {
            let config = Config::load(None).map_err(|e| e.to_string())?;
            assert!(config.mfa.keys.is_empty() && config.mfa.active_key.is_none(), "no keys by default");
            jail.set_env("AUTH_SVC__MFA__ISSUER", "ACME Staging");
            jail.set_env("AUTH_SVC__MFA__CHALLENGE_TTL_SECONDS", "120");
            jail.set_env("AUTH_SVC__MFA__RECOVERY_CODES", "12");
            jail.set_env("AUTH_SVC__MFA__KEYS__K1__KEY_FILE", "/run/secrets/k1");
            jail.set_env("AUTH_SVC__MFA__ACTIVE_KEY", "k1");
            let config = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(config.mfa.issuer, "ACME Staging");
            assert_eq!(config.mfa.challenge_ttl_seconds.get(), 120);
            assert_eq!(config.mfa.recovery_codes.get(), 12);
            assert_eq!(config.mfa.active_key.as_deref(), Some("k1"));
            let key = config.mfa.keys.get("k1").ok_or("key k1")?;
            assert!(matches!(key.source(), Ok(SealingKeySource::File(path)) if path == Path::new("/run/secrets/k1")));
            Ok(())
        });
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("AUTH_SVC__MFA__ACTIVE_KEY", "k1")], "mfa.active_key"),
            (&[("AUTH_SVC__MFA__KEYS__K1__KEY", "AAAA")], "mfa.active_key"),
            (&[("AUTH_SVC__MFA__KEYS__K1__KEY", "AAAA"), ("AUTH_SVC__MFA__ACTIVE_KEY", "k2")], "mfa.active_key"),
            (
                &[
                    ("AUTH_SVC__MFA__KEYS__K1__KEY", "AAAA"),
                    ("AUTH_SVC__MFA__KEYS__K1__KEY_FILE", "/k1"),
                    ("AUTH_SVC__MFA__ACTIVE_KEY", "k1"),
                ],
                "mfa.keys.k1",
            ),
            (&[("AUTH_SVC__MFA__ISSUER", "")], "mfa.issuer"),
            (&[("AUTH_SVC__MFA__ISSUER", "ACME: Staging")], "mfa.issuer"),
            (&[("AUTH_SVC__MFA__CHALLENGE_TTL_SECONDS", "0")], "mfa.challenge_ttl_seconds"),
            (&[("AUTH_SVC__MFA__CHALLENGE_TTL_SECONDS", "3601")], "mfa.challenge_ttl_seconds"),
            (&[("AUTH_SVC__MFA__RECOVERY_CODES", "0")], "mfa.recovery_codes"),
            (&[("AUTH_SVC__MFA__RECOVERY_CODES", "101")], "mfa.recovery_codes"),
            (&[("AUTH_SVC__MFA__MAX_FAILURES", "0")], "mfa.max_failures"),
            (&[("AUTH_SVC__MFA__MAX_FAILURES", "21")], "mfa.max_failures"),
        ];
        for (vars, key) in cases {
            figment::Jail::expect_with(|jail| {
                for (name, value) in *vars {
                    jail.set_env(name, value);
                }
                let err = Config::load(None).err().ok_or("expected an error")?.to_string();
                assert!(err.contains(key), "{vars:?}: {err}");
                assert!(!err.contains("AAAA"), "no key material in errors: {err}");
                Ok(())
            });
        }
    }

    #[test]
    fn equal_secrets_are_refused() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("AUTH_SVC__AUTH__ACCESS_SECRET", "s".repeat(40));
            jail.set_env("AUTH_SVC__AUTH__REFRESH_SECRET", "s".repeat(40));
            let err = Config::load(None).err().ok_or("expected an error")?.to_string();
            assert!(err.contains("must differ"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn missing_secrets_are_generated_per_process() {
        figment::Jail::expect_with(|_| {
            let config = Config::load(None).map_err(|e| e.to_string())?;
            let secrets = Secrets::from_config(&config.auth);
            assert!(secrets.generated);
            let access = secrets.access.ok_or("an access secret")?;
            assert!(access.expose_secret().len() >= MIN_SECRET_BYTES);
            assert_ne!(access.expose_secret(), secrets.refresh.expose_secret());
            Ok(())
        });
    }
}
