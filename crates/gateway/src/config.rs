//! Configuration: an optional YAML file (`-f/--config`) overridden by `GATEWAY__…` environment
//! variables (the key path joined with `__`, e.g. `GATEWAY__CORS__ALLOWED_ORIGINS`). Validated
//! once at start; every error is one line that names the key. `gateway.yaml` beside this crate's
//! `Cargo.toml` documents every key.

use std::{net::SocketAddr, num::NonZeroUsize, path::Path, time::Duration};

use http::{HeaderName, HeaderValue, Uri};
use serde::{Deserialize, Deserializer};
pub use service_kit::logging::LogFormat;
use service_kit::{
    telemetry::{OtelConfig, ServiceIdentity, TelemetrySettings},
    tls::{ClientTlsConfig, TlsConfig},
};
use url::Url;

/// Prefix of every environment override.
pub const ENV_PREFIX: &str = "GATEWAY__";

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// REST listen address.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Admin HTTP address serving Prometheus `/metrics`; unset = no admin port.
    #[serde(default)]
    pub admin_listen: Option<SocketAddr>,
    /// gRPC endpoint of auth-svc (`http://host:port`, or `https://host:port` for TLS).
    #[serde(default = "default_upstream")]
    pub upstream: String,
    #[serde(default)]
    pub grpc: GrpcConfig,
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default)]
    pub cors: CorsConfig,
    #[serde(default)]
    pub log: LogConfig,
    /// Traces over OTLP; off unless an endpoint is set.
    #[serde(default)]
    pub otel: OtelConfig,
    /// The gateway's own base URL as its clients reach it (`https://auth.example.com`), which the
    /// OAuth 2.0 server metadata document builds its endpoint URLs on; unset or empty: the
    /// issuer's, if it is an http(s) URL, else `http://` and the request's `Host`.
    #[serde(default)]
    pub public_url: Option<String>,
}

/// How log lines are written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` (the default) or `json` (one object per line, for log collectors).
    pub format: LogFormat,
}

/// How the gateway talks to auth-svc.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GrpcConfig {
    /// Milliseconds to open a connection to auth-svc before the call answers 503.
    pub connect_timeout_ms: u64,
    /// Milliseconds one gRPC call may take before the REST call answers 504.
    pub request_timeout_ms: u64,
    /// HTTP/2 connections to auth-svc, used in turn.
    pub connections: NonZeroUsize,
    /// TLS of the calls to an `https://` upstream: the CAs to trust, and the client certificate
    /// auth-svc's mutual TLS asks for.
    pub tls: ClientTlsConfig,
}

/// The REST side.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Milliseconds a whole REST request (body upload included) may take before it answers 408.
    pub request_timeout_ms: u64,
    /// Largest request body accepted, in bytes; larger ones answer 413.
    pub body_limit_bytes: usize,
    /// Seconds in-flight requests get to finish after SIGTERM/SIGINT.
    pub shutdown_grace_seconds: u64,
    /// Milliseconds a client may take to send a request's headers (and the longest an idle
    /// keep-alive connection stays open) before the connection is closed: slowloris protection.
    pub header_read_timeout_ms: u64,
    /// Seconds a connection may stay open with no request in flight before it is closed.
    pub idle_timeout_seconds: u64,
    /// HTTP/2 streams (requests) one client connection may have open at once.
    pub max_concurrent_streams: u32,
    /// Seconds between HTTP/2 keepalive pings to a client; 0 sends none.
    pub keepalive_interval_seconds: u64,
    /// Seconds a client has to answer a keepalive ping before its connection is dropped.
    pub keepalive_timeout_seconds: u64,
    /// Empty: the client address sent to auth-svc is the TCP peer. Otherwise the header a
    /// trusted proxy in front of the gateway sets (`x-forwarded-for`, `x-real-ip`); its last
    /// entry, the one that proxy appended, is taken.
    pub trusted_proxy_header: String,
    /// HTTPS on `listen` when a certificate and key are set (HTTP/1.1 and HTTP/2 by ALPN).
    pub tls: TlsConfig,
}

/// Which browser origins may call the gateway.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorsConfig {
    /// Origins such as `https://app.example.com`; `*` allows any. Empty: no cross-origin calls.
    #[serde(deserialize_with = "comma_separated_or_list")]
    pub allowed_origins: Vec<String>,
    /// Seconds a browser may cache a preflight answer.
    pub max_age_seconds: u64,
}

impl Default for Config {
    /// Every key at its documented default (what an empty file and no environment give).
    fn default() -> Self {
        Self {
            listen: default_listen(),
            admin_listen: None,
            upstream: default_upstream(),
            grpc: GrpcConfig::default(),
            http: HttpConfig::default(),
            cors: CorsConfig::default(),
            log: LogConfig::default(),
            otel: OtelConfig::default(),
            public_url: None,
        }
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 8888))
}

fn default_upstream() -> String {
    "http://127.0.0.1:50051".to_owned()
}

/// `grpc.connections` by default: two, so the calls do not all wait on one connection's task
/// (issue 17; its effect on CPU per request is still to be measured).
const DEFAULT_GRPC_CONNECTIONS: NonZeroUsize = match NonZeroUsize::new(2) {
    Some(connections) => connections,
    None => unreachable!(),
};

impl Default for GrpcConfig {
    fn default() -> Self {
        Self {
            connect_timeout_ms: 2_000,
            request_timeout_ms: 5_000,
            connections: DEFAULT_GRPC_CONNECTIONS,
            tls: ClientTlsConfig::default(),
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            request_timeout_ms: 10_000,
            body_limit_bytes: 64 * 1024,
            shutdown_grace_seconds: 20,
            header_read_timeout_ms: 10_000,
            idle_timeout_seconds: 60,
            max_concurrent_streams: 100,
            keepalive_interval_seconds: 30,
            keepalive_timeout_seconds: 10,
            trusted_proxy_header: String::new(),
            tls: TlsConfig::default(),
        }
    }
}

impl Default for CorsConfig {
    fn default() -> Self {
        Self { allowed_origins: Vec::new(), max_age_seconds: 600 }
    }
}

/// Largest accepted `http.body_limit_bytes`: the gateway only ever receives small credentials.
const MAX_BODY_LIMIT_BYTES: usize = 16 * 1024 * 1024;

pub use service_kit::config::ConfigError;

impl Config {
    /// Reads the YAML file (if given), then the environment, then validates.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        service_kit::config::load_validated(file, ENV_PREFIX, Self::validate)
    }

    /// Checks what serde cannot: ranges, URLs and relations between keys.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.upstream_uri()?;
        if self.grpc.connect_timeout_ms == 0 {
            return Err(invalid("grpc.connect_timeout_ms", "must be at least 1"));
        }
        if self.grpc.request_timeout_ms == 0 {
            return Err(invalid("grpc.request_timeout_ms", "must be at least 1"));
        }
        // The gRPC deadline must fire first, so a slow auth-svc reads as 504 rather than 408.
        if self.http.request_timeout_ms <= self.grpc.request_timeout_ms {
            return Err(invalid("http.request_timeout_ms", "must be longer than grpc.request_timeout_ms"));
        }
        if !(1024..=MAX_BODY_LIMIT_BYTES).contains(&self.http.body_limit_bytes) {
            return Err(invalid("http.body_limit_bytes", &format!("must be between 1024 and {MAX_BODY_LIMIT_BYTES}")));
        }
        if self.http.header_read_timeout_ms == 0 {
            return Err(invalid("http.header_read_timeout_ms", "must be at least 1"));
        }
        if self.http.idle_timeout_seconds == 0 {
            return Err(invalid("http.idle_timeout_seconds", "must be at least 1"));
        }
        if self.http.max_concurrent_streams == 0 {
            return Err(invalid("http.max_concurrent_streams", "must be at least 1"));
        }
        if self.http.keepalive_interval_seconds > 0 && self.http.keepalive_timeout_seconds == 0 {
            return Err(invalid("http.keepalive_timeout_seconds", "must be at least 1 while keepalive pings are on"));
        }
        self.trusted_proxy_header()?;
        self.http_tls_enabled()?;
        self.public_url()?;
        self.otel.validate(ENV_PREFIX)?;
        for origin in &self.cors.allowed_origins {
            check_origin(origin, self.cors.allowed_origins.len())
                .map_err(|why| invalid("cors.allowed_origins", &format!("{origin:?} {why}")))?;
        }
        Ok(())
    }

    /// `upstream` as a URI: `http://` (cleartext HTTP/2), or `https://` (TLS as `grpc.tls` says).
    pub fn upstream_uri(&self) -> Result<Uri, ConfigError> {
        let uri: Uri = self.upstream.parse().map_err(|_| invalid("upstream", "is not a URL"))?;
        match uri.scheme_str() {
            Some("https") => {}
            Some("http") if self.grpc.tls.is_set() => {
                return Err(invalid("grpc.tls", "is only used with an https:// upstream"));
            }
            Some("http") => {}
            _ => return Err(invalid("upstream", "must look like http://host:port or https://host:port")),
        }
        if uri.host().is_none_or(str::is_empty) {
            return Err(invalid("upstream", "must name a host, like http://host:port"));
        }
        if uri.path_and_query().is_some_and(|path| path.as_str() != "/") {
            return Err(invalid("upstream", "must have no path, like http://host:port"));
        }
        self.grpc.tls.check("grpc.tls").map_err(|why| invalid("grpc.tls", &why))?;
        Ok(uri)
    }

    /// Whether `http.tls` turns HTTPS on; an error when it is half configured.
    pub fn http_tls_enabled(&self) -> Result<bool, ConfigError> {
        self.http.tls.enabled("http.tls").map_err(|why| invalid("http.tls", &why))
    }

    /// `http.trusted_proxy_header` as a header name; `None` when empty (use the TCP peer).
    pub fn trusted_proxy_header(&self) -> Result<Option<HeaderName>, ConfigError> {
        let name = self.http.trusted_proxy_header.trim();
        if name.is_empty() {
            return Ok(None);
        }
        let name = HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
            .map_err(|_| invalid("http.trusted_proxy_header", "is not a header name"))?;
        Ok(Some(name))
    }

    /// `public_url` as a URL; `None` when unset or empty. Only an http(s) URL with a host, and
    /// no credentials, query or fragment, can be the base of endpoint URLs (RFC 8414 section 2).
    pub fn public_url(&self) -> Result<Option<Url>, ConfigError> {
        let Some(text) = self.public_url.as_deref().map(str::trim).filter(|text| !text.is_empty()) else {
            return Ok(None);
        };
        let url = Url::parse(text).map_err(|_| invalid("public_url", "is not a URL"))?;
        if !matches!(url.scheme(), "http" | "https") || !url.has_host() {
            return Err(invalid("public_url", "must look like https://host[:port][/path]"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid("public_url", "must have no query or fragment"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid("public_url", "must hold no credentials"));
        }
        Ok(Some(url))
    }

    /// The trace export settings (`otel.*`, else the standard `OTEL_*` variables); `None`: off.
    pub fn telemetry(&self) -> Result<Option<TelemetrySettings>, ConfigError> {
        self.otel.resolve(ENV_PREFIX, ServiceIdentity { name: "gateway", version: env!("CARGO_PKG_VERSION") })
    }

    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_millis(self.http.header_read_timeout_ms)
    }

    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.http.idle_timeout_seconds)
    }

    /// `None` when `http.keepalive_interval_seconds` is 0 (no pings).
    pub fn keepalive_interval(&self) -> Option<Duration> {
        (self.http.keepalive_interval_seconds > 0).then(|| Duration::from_secs(self.http.keepalive_interval_seconds))
    }

    pub fn keepalive_timeout(&self) -> Duration {
        Duration::from_secs(self.http.keepalive_timeout_seconds)
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.grpc.connect_timeout_ms)
    }

    pub fn grpc_timeout(&self) -> Duration {
        Duration::from_millis(self.grpc.request_timeout_ms)
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.http.request_timeout_ms)
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.http.shutdown_grace_seconds)
    }
}

/// A browser origin is `scheme://host[:port]` exactly: no path, no trailing slash (the
/// `Origin` header never has one, so such an entry could never match).
fn check_origin(origin: &str, count: usize) -> Result<(), &'static str> {
    if origin == "*" {
        return if count == 1 { Ok(()) } else { Err("must be the only entry when used") };
    }
    if HeaderValue::from_str(origin).is_err() {
        return Err("is not a valid header value");
    }
    let (scheme, rest) = origin.split_once("://").ok_or("must look like https://host[:port]")?;
    if !matches!(scheme, "http" | "https") {
        return Err("must start with http:// or https://");
    }
    if rest.is_empty() || rest.contains(['/', '?', '#', ' ']) {
        return Err("must be scheme://host[:port] with no path or trailing slash");
    }
    Ok(())
}

/// Accepts a YAML list or one comma-separated string (the form an environment variable has).
fn comma_separated_or_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Origins {
        One(String),
        Many(Vec<String>),
    }
    let items = match Origins::deserialize(deserializer)? {
        Origins::One(text) => text.split(',').map(str::to_owned).collect(),
        Origins::Many(items) => items,
    };
    Ok(items.into_iter().map(|item| item.trim().to_owned()).filter(|item| !item.is_empty()).collect())
}

/// An invalid value at `key`, with the environment variable that sets it.
fn invalid(key: &str, why: &str) -> ConfigError {
    ConfigError::invalid(ENV_PREFIX, key, why)
}

#[cfg(test)]
// figment::Jail's closures must return figment's own error type, which is large.
#[allow(clippy::result_large_err)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn example_file() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("gateway.yaml")
    }

    #[test]
    fn the_documented_keys_come_from_the_environment() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("GATEWAY__LISTEN", "127.0.0.1:9999");
            jail.set_env("GATEWAY__UPSTREAM", "http://auth-svc:50051");
            jail.set_env("GATEWAY__CORS__ALLOWED_ORIGINS", "http://localhost:3000, https://app.example.com");
            jail.set_env("GATEWAY__HTTP__BODY_LIMIT_BYTES", "2048");
            jail.set_env("GATEWAY__GRPC__REQUEST_TIMEOUT_MS", "750");
            jail.set_env("GATEWAY__GRPC__CONNECTIONS", "3");
            jail.set_env("GATEWAY__HTTP__HEADER_READ_TIMEOUT_MS", "2500");
            jail.set_env("GATEWAY__HTTP__TRUSTED_PROXY_HEADER", "X-Forwarded-For");
            jail.set_env("GATEWAY__HTTP__IDLE_TIMEOUT_SECONDS", "7");
            jail.set_env("GATEWAY__HTTP__MAX_CONCURRENT_STREAMS", "12");
            jail.set_env("GATEWAY__HTTP__KEEPALIVE_INTERVAL_SECONDS", "0");
            jail.set_env("GATEWAY__PUBLIC_URL", "https://auth.example.com/gw/");
            jail.set_env("GATEWAY__OTEL__ENDPOINT", "http://collector:4318");
            jail.set_env("GATEWAY__OTEL__PROTOCOL", "http/protobuf");
            jail.set_env("GATEWAY__OTEL__SAMPLE_RATIO", "0.5");
            jail.set_env("GATEWAY__OTEL__SERVICE_NAME", "edge");
            let config = Config::load(None).map_err(|e| e.to_string())?;
            let telemetry = config.telemetry().map_err(|e| e.to_string())?.expect("tracing is on");
            assert_eq!(telemetry.endpoint.as_deref(), Some("http://collector:4318"));
            assert_eq!(telemetry.protocol, service_kit::telemetry::OtlpProtocol::HttpProtobuf);
            assert_eq!(telemetry.sample_ratio.get(), 0.5);
            assert_eq!(telemetry.service_name, "edge");
            assert_eq!(telemetry.service_version, env!("CARGO_PKG_VERSION"));
            assert_eq!(config.public_url().unwrap().unwrap().as_str(), "https://auth.example.com/gw/");
            assert_eq!(config.idle_timeout(), Duration::from_secs(7));
            assert_eq!(config.http.max_concurrent_streams, 12);
            assert_eq!(config.keepalive_interval(), None);
            assert_eq!(config.listen, SocketAddr::from(([127, 0, 0, 1], 9999)));
            assert_eq!(config.upstream, "http://auth-svc:50051");
            assert_eq!(config.cors.allowed_origins, ["http://localhost:3000", "https://app.example.com"]);
            assert_eq!(config.http.body_limit_bytes, 2048);
            assert_eq!(config.grpc.request_timeout_ms, 750);
            assert_eq!(config.grpc.connections.get(), 3);
            assert_eq!(config.header_read_timeout(), Duration::from_millis(2500));
            assert_eq!(config.trusted_proxy_header().unwrap().unwrap(), "x-forwarded-for");
            Ok(())
        });
    }

    #[test]
    fn tls_keys_come_from_the_environment() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("GATEWAY__UPSTREAM", "https://auth-svc.auth.svc:50051");
            jail.set_env("GATEWAY__GRPC__TLS__CA_FILE", "/etc/gateway-tls/ca.crt");
            jail.set_env("GATEWAY__GRPC__TLS__CERT_FILE", "/etc/gateway-tls/tls.crt");
            jail.set_env("GATEWAY__GRPC__TLS__KEY_FILE", "/etc/gateway-tls/tls.key");
            jail.set_env("GATEWAY__GRPC__TLS__SERVER_NAME", "auth-svc");
            jail.set_env("GATEWAY__HTTP__TLS__CERT_FILE", "/etc/https/tls.crt");
            jail.set_env("GATEWAY__HTTP__TLS__KEY_FILE", "/etc/https/tls.key");
            jail.set_env("GATEWAY__HTTP__TLS__RELOAD_INTERVAL_SECONDS", "30");
            let config = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(config.upstream_uri().unwrap().scheme_str(), Some("https"));
            assert_eq!(config.grpc.tls.ca_file.as_deref(), Some(Path::new("/etc/gateway-tls/ca.crt")));
            assert_eq!(config.grpc.tls.cert_file.as_deref(), Some(Path::new("/etc/gateway-tls/tls.crt")));
            assert_eq!(config.grpc.tls.key_file.as_deref(), Some(Path::new("/etc/gateway-tls/tls.key")));
            assert_eq!(config.grpc.tls.server_name.as_deref(), Some("auth-svc"));
            assert!(config.http_tls_enabled().unwrap());
            assert_eq!(config.http.tls.reload_interval_seconds, 30);
            // A name no certificate can carry is refused.
            jail.set_env("GATEWAY__GRPC__TLS__SERVER_NAME", "not a name");
            let err = Config::load(None).err().ok_or("expected an error")?.to_string();
            assert!(err.contains("grpc.tls.server_name"), "{err}");
            Ok(())
        });
        // Half a client identity is refused.
        figment::Jail::expect_with(|jail| {
            jail.set_env("GATEWAY__UPSTREAM", "https://auth-svc:50051");
            jail.set_env("GATEWAY__GRPC__TLS__CERT_FILE", "/etc/gateway-tls/tls.crt");
            let err = Config::load(None).err().ok_or("expected an error")?.to_string();
            assert!(err.contains("grpc.tls.cert_file and grpc.tls.key_file go together"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn a_single_origin_in_the_environment_is_a_list_of_one() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("GATEWAY__CORS__ALLOWED_ORIGINS", "http://localhost:5173");
            let config = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(config.cors.allowed_origins, ["http://localhost:5173"]);
            Ok(())
        });
    }

    #[test]
    fn yaml_takes_a_list_and_env_wins_over_it() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "gw.yaml",
                "listen: 127.0.0.1:7000\ncors:\n  allowed_origins:\n    - http://a.test\n    - http://b.test\n",
            )?;
            jail.set_env("GATEWAY__LISTEN", "127.0.0.1:7001");
            let config = Config::load(Some(Path::new("gw.yaml"))).map_err(|e| e.to_string())?;
            assert_eq!(config.listen.port(), 7001);
            assert_eq!(config.cors.allowed_origins, ["http://a.test", "http://b.test"]);
            Ok(())
        });
    }

    #[test]
    fn the_example_file_is_valid_and_holds_the_defaults() {
        figment::Jail::expect_with(|_| {
            let config = Config::load(Some(&example_file())).map_err(|e| e.to_string())?;
            assert_eq!(config, Config::default());
            Ok(())
        });
    }

    #[test]
    fn bad_values_name_their_key_on_one_line() {
        let cases: &[(&str, &str, &str)] = &[
            ("GATEWAY__LISTEN", "nowhere", "listen (GATEWAY__LISTEN) invalid socket address"),
            (
                "GATEWAY__GRPC__REQUEST_TIMEOUT_MS",
                "soon",
                "grpc.request_timeout_ms (GATEWAY__GRPC__REQUEST_TIMEOUT_MS)",
            ),
            ("GATEWAY__UPSTREAM", "auth-svc:50051", "GATEWAY__UPSTREAM"),
            ("GATEWAY__UPSTREAM", "ftp://auth-svc:50051", "GATEWAY__UPSTREAM"),
            ("GATEWAY__UPSTREAM", "http://auth-svc:50051/v1", "GATEWAY__UPSTREAM"),
            ("GATEWAY__GRPC__TLS__CA_FILE", "/etc/ca.crt", "grpc.tls (GATEWAY__GRPC__TLS)"),
            ("GATEWAY__GRPC__TLS__CERT_FILE", "/etc/tls.crt", "grpc.tls (GATEWAY__GRPC__TLS)"),
            ("GATEWAY__HTTP__TLS__CERT_FILE", "/etc/tls.crt", "http.tls (GATEWAY__HTTP__TLS)"),
            ("GATEWAY__HTTP__TLS__CLIENT_CA_FILE", "/etc/ca.crt", "http.tls (GATEWAY__HTTP__TLS)"),
            ("GATEWAY__NO_SUCH_KEY", "1", "no_such_key"),
            ("GATEWAY__HTTP__BODY_LIMIT_BYTES", "10", "GATEWAY__HTTP__BODY_LIMIT_BYTES"),
            ("GATEWAY__HTTP__REQUEST_TIMEOUT_MS", "100", "GATEWAY__HTTP__REQUEST_TIMEOUT_MS"),
            ("GATEWAY__GRPC__CONNECT_TIMEOUT_MS", "0", "GATEWAY__GRPC__CONNECT_TIMEOUT_MS"),
            ("GATEWAY__GRPC__CONNECTIONS", "0", "GATEWAY__GRPC__CONNECTIONS"),
            ("GATEWAY__HTTP__HEADER_READ_TIMEOUT_MS", "0", "GATEWAY__HTTP__HEADER_READ_TIMEOUT_MS"),
            ("GATEWAY__HTTP__IDLE_TIMEOUT_SECONDS", "0", "GATEWAY__HTTP__IDLE_TIMEOUT_SECONDS"),
            ("GATEWAY__HTTP__MAX_CONCURRENT_STREAMS", "0", "GATEWAY__HTTP__MAX_CONCURRENT_STREAMS"),
            ("GATEWAY__HTTP__KEEPALIVE_TIMEOUT_SECONDS", "0", "GATEWAY__HTTP__KEEPALIVE_TIMEOUT_SECONDS"),
            ("GATEWAY__HTTP__TRUSTED_PROXY_HEADER", "x forwarded", "GATEWAY__HTTP__TRUSTED_PROXY_HEADER"),
            ("GATEWAY__CORS__ALLOWED_ORIGINS", "http://app.test/", "GATEWAY__CORS__ALLOWED_ORIGINS"),
            ("GATEWAY__CORS__ALLOWED_ORIGINS", "app.test", "GATEWAY__CORS__ALLOWED_ORIGINS"),
            ("GATEWAY__CORS__ALLOWED_ORIGINS", "*,http://app.test", "GATEWAY__CORS__ALLOWED_ORIGINS"),
            ("GATEWAY__PUBLIC_URL", "auth.example.com", "public_url (GATEWAY__PUBLIC_URL)"),
            ("GATEWAY__PUBLIC_URL", "ftp://auth.example.com", "GATEWAY__PUBLIC_URL"),
            ("GATEWAY__PUBLIC_URL", "https://auth.example.com/?x=1", "GATEWAY__PUBLIC_URL"),
            ("GATEWAY__PUBLIC_URL", "https://auth.example.com/#top", "GATEWAY__PUBLIC_URL"),
            ("GATEWAY__PUBLIC_URL", "https://me:pw@auth.example.com", "GATEWAY__PUBLIC_URL"),
            ("GATEWAY__OTEL__ENDPOINT", "collector:4317", "otel.endpoint (GATEWAY__OTEL__ENDPOINT)"),
            ("GATEWAY__OTEL__PROTOCOL", "http/json", "otel.protocol (GATEWAY__OTEL__PROTOCOL)"),
            ("GATEWAY__OTEL__SAMPLE_RATIO", "2", "otel.sample_ratio (GATEWAY__OTEL__SAMPLE_RATIO)"),
        ];
        for (var, value, key) in cases {
            figment::Jail::expect_with(|jail| {
                jail.set_env(var, value);
                let err = Config::load(None).err().ok_or("expected an error")?.to_string();
                assert!(err.contains(key), "{var}={value}: {err}");
                assert!(!err.contains('\n'), "one line: {err}");
                Ok(())
            });
        }
    }

    #[test]
    fn a_missing_file_is_an_error() {
        let err = Config::load(Some(Path::new("/no/such/gateway.yaml"))).err().map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("config: file /no/such/gateway.yaml not found"));
    }
}
