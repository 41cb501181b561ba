//! Traces over OTLP, shared by both binaries: the `otel` config section, the tracer provider
//! behind the `tracing` layer that turns spans into OpenTelemetry spans, and the W3C trace
//! context (`traceparent`/`tracestate`) read from a request's headers and written into an
//! outgoing call's.
//!
//! Off unless `otel.endpoint` (or the standard `OTEL_EXPORTER_OTLP_ENDPOINT` /
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set: then no provider, no exporter and no layer exist,
//! and [`set_parent_from`] / [`inject_context`] find no layer and do nothing.
//!
//! What a span carries is what its fields say: the spans of both services name the request id,
//! the route or method and the outcome, never a header, a password, a hash or a token.

use std::{fmt, time::Duration};

use opentelemetry::{KeyValue, propagation::TextMapPropagator as _, trace::TracerProvider as _};
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig as _};
use opentelemetry_sdk::{
    Resource,
    propagation::TraceContextPropagator,
    trace::{Sampler, SdkTracer, SdkTracerProvider},
};
use serde::{Deserialize, Deserializer};
use tracing::Subscriber;
use tracing_opentelemetry::{OpenTelemetryLayer, OpenTelemetrySpanExt as _};
use tracing_subscriber::registry::LookupSpan;

use crate::config::ConfigError;

/// The standard variables read when the matching `otel.*` key is unset.
pub const OTLP_ENDPOINT_ENV: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
pub const OTLP_TRACES_ENDPOINT_ENV: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
pub const OTLP_PROTOCOL_ENV: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
pub const OTLP_TRACES_PROTOCOL_ENV: &str = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL";
pub const SAMPLER_ARG_ENV: &str = "OTEL_TRACES_SAMPLER_ARG";
pub const SERVICE_NAME_ENV: &str = "OTEL_SERVICE_NAME";

/// The Downward API variables the manifests set, and the resource attributes they become.
pub const POD_ATTRIBUTES: [(&str, &str); 3] =
    [("POD_NAME", "k8s.pod.name"), ("POD_NAMESPACE", "k8s.namespace.name"), ("NODE_NAME", "k8s.node.name")];

/// The `otel` section of both binaries' config. Every key is optional: unset keys fall back to
/// the standard `OTEL_*` variables, then to the defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtelConfig {
    /// The collector's OTLP address, `http://host:4317` (gRPC) or `http://host:4318`
    /// (HTTP/protobuf, which adds `/v1/traces` when the path does not end in it). Unset or empty:
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` / `OTEL_EXPORTER_OTLP_ENDPOINT`; none of them: off.
    pub endpoint: Option<String>,
    /// `grpc` or `http/protobuf`; unset: `OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL`, else `grpc`.
    pub protocol: Option<OtlpProtocol>,
    /// Share of new traces recorded, 0.0 to 1.0; a request that arrives with a `traceparent`
    /// follows its caller's decision. Unset: `OTEL_TRACES_SAMPLER_ARG`, else 1.0.
    pub sample_ratio: Option<SampleRatio>,
    /// `service.name` of the spans; unset: `OTEL_SERVICE_NAME`, else the binary's name.
    pub service_name: Option<String>,
}

/// How spans travel to the collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum OtlpProtocol {
    #[serde(rename = "grpc")]
    Grpc,
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
}

impl OtlpProtocol {
    fn parse(text: &str) -> Option<Self> {
        match text.trim() {
            "grpc" => Some(Self::Grpc),
            "http/protobuf" => Some(Self::HttpProtobuf),
            _ => None,
        }
    }
}

/// A sampling ratio, 0.0 to 1.0 (serde refuses any other number, naming the key).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SampleRatio(f64);

// A ratio is never NaN (refused when read), so equality is total.
impl Eq for SampleRatio {}

impl SampleRatio {
    pub const ALL: Self = Self(1.0);

    pub fn new(ratio: f64) -> Option<Self> {
        (0.0..=1.0).contains(&ratio).then_some(Self(ratio))
    }

    pub fn get(self) -> f64 {
        self.0
    }
}

impl<'de> Deserialize<'de> for SampleRatio {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // An environment variable arrives as a number or, quoted, as a string.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Number {
            Float(f64),
            Text(String),
        }
        let ratio = match Number::deserialize(deserializer)? {
            Number::Float(ratio) => Some(ratio),
            Number::Text(text) => text.trim().parse().ok(),
        };
        ratio.and_then(Self::new).ok_or_else(|| serde::de::Error::custom("must be a number from 0.0 to 1.0"))
    }
}

/// What the binary says about itself: its name (the default `service.name`) and version.
#[derive(Debug, Clone, Copy)]
pub struct ServiceIdentity {
    pub name: &'static str,
    pub version: &'static str,
}

/// Everything [`Telemetry::start`] needs, resolved from the config and the environment.
#[derive(Debug, Clone, PartialEq)]
pub struct TelemetrySettings {
    /// `None`: the exporter reads the standard endpoint variables itself.
    pub endpoint: Option<String>,
    pub protocol: OtlpProtocol,
    pub sample_ratio: SampleRatio,
    pub service_name: String,
    pub service_version: String,
    /// `k8s.*` attributes from the Downward API variables that are set.
    pub pod_attributes: Vec<(&'static str, String)>,
}

impl OtelConfig {
    /// Checks what serde cannot: the endpoint's form. `env_prefix` names the variables in errors.
    pub fn validate(&self, env_prefix: &str) -> Result<(), ConfigError> {
        if let Some(endpoint) = self.endpoint() {
            check_endpoint(endpoint).map_err(|why| ConfigError::invalid(env_prefix, "otel.endpoint", why))?;
        }
        Ok(())
    }

    fn endpoint(&self) -> Option<&str> {
        self.endpoint.as_deref().map(str::trim).filter(|endpoint| !endpoint.is_empty())
    }

    /// The settings to start tracing with, or `None` when tracing is off. Reads the standard
    /// `OTEL_*` variables for unset keys; a bad one is an error naming it.
    pub fn resolve(
        &self,
        env_prefix: &str,
        service: ServiceIdentity,
    ) -> Result<Option<TelemetrySettings>, ConfigError> {
        self.resolve_with(env_prefix, service, |name| std::env::var(name).ok())
    }

    /// [`Self::resolve`] with `env` as the environment.
    pub fn resolve_with(
        &self,
        env_prefix: &str,
        service: ServiceIdentity,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<TelemetrySettings>, ConfigError> {
        self.validate(env_prefix)?;
        let env = |name: &str| env(name).map(|value| value.trim().to_owned()).filter(|value| !value.is_empty());
        let endpoint = self.endpoint().map(str::to_owned);
        if endpoint.is_none() && env(OTLP_TRACES_ENDPOINT_ENV).is_none() && env(OTLP_ENDPOINT_ENV).is_none() {
            return Ok(None);
        }
        let protocol = match self.protocol {
            Some(protocol) => protocol,
            None => match [OTLP_TRACES_PROTOCOL_ENV, OTLP_PROTOCOL_ENV].into_iter().find_map(|n| Some((n, env(n)?))) {
                Some((name, text)) => OtlpProtocol::parse(&text)
                    .ok_or_else(|| variable_error(name, "must be grpc or http/protobuf (http/json is not built in)"))?,
                None => OtlpProtocol::Grpc,
            },
        };
        let sample_ratio = match self.sample_ratio {
            Some(ratio) => ratio,
            None => match env(SAMPLER_ARG_ENV) {
                Some(text) => text
                    .parse()
                    .ok()
                    .and_then(SampleRatio::new)
                    .ok_or_else(|| variable_error(SAMPLER_ARG_ENV, "must be a number from 0.0 to 1.0"))?,
                None => SampleRatio::ALL,
            },
        };
        let service_name = self
            .service_name
            .as_deref()
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(str::to_owned)
            .or_else(|| env(SERVICE_NAME_ENV))
            .unwrap_or_else(|| service.name.to_owned());
        let pod_attributes =
            POD_ATTRIBUTES.iter().filter_map(|&(variable, attribute)| Some((attribute, env(variable)?))).collect();
        Ok(Some(TelemetrySettings {
            endpoint,
            protocol,
            sample_ratio,
            service_name,
            service_version: service.version.to_owned(),
            pod_attributes,
        }))
    }
}

fn variable_error(variable: &str, why: &str) -> ConfigError {
    ConfigError::message(format!("{variable} {why}"))
}

/// An endpoint is `http://host[:port][/path]`: this build has no TLS client for the collector
/// (a collector sidecar or node agent on the pod's network is the usual setup).
fn check_endpoint(endpoint: &str) -> Result<(), &'static str> {
    let uri: http::Uri = endpoint.parse().map_err(|_| "is not a URL")?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => return Err("must be http:// (this build has no TLS client for the collector)"),
        _ => return Err("must look like http://host:port"),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err("must name a host, like http://host:port");
    }
    Ok(())
}

/// The HTTP/protobuf exporter posts to the URL it is given: `/v1/traces` is added to a base
/// address, as the OTLP spec has it for `OTEL_EXPORTER_OTLP_ENDPOINT`.
fn http_traces_url(endpoint: &str) -> String {
    if endpoint.trim_end_matches('/').ends_with("/v1/traces") {
        endpoint.to_owned()
    } else {
        format!("{}/v1/traces", endpoint.trim_end_matches('/'))
    }
}

/// The tracer provider of a process that exports traces. Keep it until the process ends and
/// call [`Telemetry::shutdown`] then: it sends the spans still queued.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
    tracer: SdkTracer,
}

impl fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Telemetry").finish_non_exhaustive()
    }
}

/// Spans wait in the exporter's queue at most this long before they are sent.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

impl Telemetry {
    /// Builds the exporter and the provider. Call it within the Tokio runtime (the gRPC
    /// exporter's connection lives there); it connects lazily, so a collector that is down is
    /// not an error here: its spans are dropped and the exporter says so on the log.
    pub fn start(settings: &TelemetrySettings) -> anyhow::Result<Self> {
        let exporter = match settings.protocol {
            OtlpProtocol::Grpc => {
                let builder = SpanExporter::builder().with_tonic().with_timeout(EXPORT_TIMEOUT);
                match &settings.endpoint {
                    Some(endpoint) => builder.with_endpoint(endpoint.clone()).build()?,
                    None => builder.build()?,
                }
            }
            OtlpProtocol::HttpProtobuf => {
                let builder = SpanExporter::builder()
                    .with_http()
                    .with_protocol(Protocol::HttpBinary)
                    .with_timeout(EXPORT_TIMEOUT);
                match &settings.endpoint {
                    Some(endpoint) => builder.with_endpoint(http_traces_url(endpoint)).build()?,
                    None => builder.build()?,
                }
            }
        };
        let mut attributes = vec![KeyValue::new("service.version", settings.service_version.clone())];
        attributes.extend(settings.pod_attributes.iter().map(|(key, value)| KeyValue::new(*key, value.clone())));
        // `Resource::builder` also reads `OTEL_RESOURCE_ATTRIBUTES`; what is set here wins.
        let resource =
            Resource::builder().with_attributes(attributes).with_service_name(settings.service_name.clone()).build();
        let sampler = Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(settings.sample_ratio.get())));
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_sampler(sampler)
            .with_resource(resource)
            .build();
        let tracer = provider.tracer(settings.service_name.clone());
        Ok(Self { provider: Some(provider), tracer })
    }

    /// The `tracing` layer that records spans into this provider.
    pub fn layer<S>(&self) -> OpenTelemetryLayer<S, SdkTracer>
    where
        S: Subscriber + for<'span> LookupSpan<'span>,
    {
        tracing_opentelemetry::layer().with_tracer(self.tracer.clone())
    }

    /// Sends every finished span now (the exporter otherwise sends every few seconds). Runs on
    /// a blocking thread: the flush waits for the export, which needs this runtime.
    pub async fn flush(&self) {
        let Some(provider) = self.provider.clone() else { return };
        let _ = tokio::task::spawn_blocking(move || provider.force_flush()).await;
    }

    /// Sends the spans still queued and stops the exporter; on a blocking thread, as `flush`.
    pub async fn shutdown(mut self) {
        let Some(provider) = self.provider.take() else { return };
        match tokio::task::spawn_blocking(move || provider.shutdown()).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => eprintln!("telemetry: the last spans may be lost: {err}"),
            Err(err) => eprintln!("telemetry: the last spans may be lost: {err}"),
        }
    }
}

impl Drop for Telemetry {
    /// Without [`Telemetry::shutdown`]: the provider's shutdown blocks until the export is
    /// done, which on a current-thread runtime's own thread would wait for itself. So it runs
    /// where it cannot: in place on a multi-thread runtime, else on a thread of its own, not
    /// waited for.
    fn drop(&mut self) {
        let Some(provider) = self.provider.take() else { return };
        match tokio::runtime::Handle::try_current().map(|handle| handle.runtime_flavor()) {
            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => {
                let _ = tokio::task::block_in_place(|| provider.shutdown());
            }
            Ok(_) => {
                let _ =
                    std::thread::Builder::new().name("telemetry-shutdown".into()).spawn(move || provider.shutdown());
            }
            Err(_) => {
                let _ = provider.shutdown();
            }
        }
    }
}

/// The process's [`Telemetry`] from `settings` (`None`: tracing is off), or the end of the
/// process: a bad `otel` setting is a usage error, said as [`crate::config::loaded_or_exit`]
/// says it. Call it in `main` within the runtime, before the log is set up.
pub fn start_or_exit(program: &str, settings: Result<Option<TelemetrySettings>, ConfigError>) -> Option<Telemetry> {
    let settings = crate::config::loaded_or_exit(program, settings)?;
    let started = Telemetry::start(&settings).map_err(|err| format!("config: otel: {err:#}"));
    Some(crate::config::loaded_or_exit(program, started))
}

/// W3C trace context; used directly rather than through a global, so nothing else in the
/// process can change what the services read and send.
fn propagator() -> TraceContextPropagator {
    TraceContextPropagator::new()
}

/// Makes the remote span in `headers`' `traceparent` (and `tracestate`) the parent of `span`.
/// Call it before the span is entered. Without a `traceparent`, or with tracing off, nothing
/// happens; a malformed one is ignored (the span starts a trace of its own).
pub fn set_parent_from(span: &tracing::Span, headers: &http::HeaderMap) {
    if span.is_disabled() || !headers.contains_key("traceparent") {
        return;
    }
    let parent = propagator().extract(&HeaderExtractor(headers));
    let _ = span.set_parent(parent);
}

/// Writes `span`'s trace context into `headers` (a gRPC call's metadata: `MetadataMap` is
/// `AsMut<HeaderMap>`). With tracing off there is no context and nothing is written.
pub fn inject_context(span: &tracing::Span, headers: &mut http::HeaderMap) {
    if span.is_disabled() {
        return;
    }
    propagator().inject_context(&span.context(), &mut HeaderInjector(headers));
}

/// Sets an OpenTelemetry attribute on `span` without making it a `tracing` field, so it is in
/// the exported span but not in the log lines (which already name the same thing their way).
pub fn set_attribute(span: &tracing::Span, key: &'static str, value: impl Into<opentelemetry::Value>) {
    span.set_attribute(key, value);
}

/// Marks `span`'s OpenTelemetry status as an error (a 5xx answer, an INTERNAL status).
pub fn mark_failed(span: &tracing::Span) {
    span.set_status(opentelemetry::trace::Status::error(""));
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const PREFIX: &str = "KIT__";
    const SERVICE: ServiceIdentity = ServiceIdentity { name: "kit", version: "1.2.3" };

    fn resolve(config: &OtelConfig, env: &[(&str, &str)]) -> Result<Option<TelemetrySettings>, String> {
        let env: HashMap<String, String> = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        config.resolve_with(PREFIX, SERVICE, |name| env.get(name).cloned()).map_err(|err| err.to_string())
    }

    fn with_endpoint(endpoint: &str) -> OtelConfig {
        OtelConfig { endpoint: Some(endpoint.to_owned()), ..OtelConfig::default() }
    }

    #[test]
    fn off_without_an_endpoint_anywhere_whatever_else_is_set() {
        let config = OtelConfig {
            protocol: Some(OtlpProtocol::HttpProtobuf),
            sample_ratio: SampleRatio::new(0.5),
            service_name: Some("x".into()),
            endpoint: Some("  ".into()),
        };
        assert_eq!(resolve(&config, &[(SERVICE_NAME_ENV, "y"), (OTLP_PROTOCOL_ENV, "grpc")]), Ok(None));
        assert_eq!(resolve(&OtelConfig::default(), &[(OTLP_ENDPOINT_ENV, "")]), Ok(None));
    }

    #[test]
    fn the_key_gives_the_defaults_and_pod_attributes() {
        let settings = resolve(&with_endpoint("http://collector:4317"), &[("POD_NAME", "auth-0"), ("NODE_NAME", "n1")])
            .unwrap()
            .unwrap();
        assert_eq!(
            settings,
            TelemetrySettings {
                endpoint: Some("http://collector:4317".into()),
                protocol: OtlpProtocol::Grpc,
                sample_ratio: SampleRatio::ALL,
                service_name: "kit".into(),
                service_version: "1.2.3".into(),
                pod_attributes: vec![("k8s.pod.name", "auth-0".into()), ("k8s.node.name", "n1".into())],
            }
        );
    }

    #[test]
    fn standard_variables_fill_unset_keys_and_keys_win() {
        let env = [
            (OTLP_TRACES_ENDPOINT_ENV, "http://env:4318/v1/traces"),
            (OTLP_PROTOCOL_ENV, "http/protobuf"),
            (SAMPLER_ARG_ENV, "0.25"),
            (SERVICE_NAME_ENV, "from-env"),
        ];
        let settings = resolve(&OtelConfig::default(), &env).unwrap().unwrap();
        assert_eq!(settings.endpoint, None, "the exporter reads the endpoint variables itself");
        assert_eq!(settings.protocol, OtlpProtocol::HttpProtobuf);
        assert_eq!(settings.sample_ratio.get(), 0.25);
        assert_eq!(settings.service_name, "from-env");

        let config = OtelConfig {
            endpoint: Some("http://key:4317".into()),
            protocol: Some(OtlpProtocol::Grpc),
            sample_ratio: SampleRatio::new(0.0),
            service_name: Some("from-key".into()),
        };
        let settings = resolve(&config, &env).unwrap().unwrap();
        assert_eq!(settings.endpoint.as_deref(), Some("http://key:4317"));
        assert_eq!(settings.protocol, OtlpProtocol::Grpc);
        assert_eq!(settings.sample_ratio.get(), 0.0);
        assert_eq!(settings.service_name, "from-key");
        // The traces-specific protocol variable wins over the general one.
        let env = [
            (OTLP_ENDPOINT_ENV, "http://env:4317"),
            (OTLP_PROTOCOL_ENV, "http/protobuf"),
            (OTLP_TRACES_PROTOCOL_ENV, "grpc"),
        ];
        assert_eq!(resolve(&OtelConfig::default(), &env).unwrap().unwrap().protocol, OtlpProtocol::Grpc);
    }

    #[test]
    fn bad_values_name_the_key_or_the_variable() {
        let on = [(OTLP_ENDPOINT_ENV, "http://env:4317")];
        type Case<'a> = (OtelConfig, &'a [(&'a str, &'a str)], &'a str);
        let cases: &[Case] = &[
            (with_endpoint("collector:4317"), &[], "otel.endpoint (KIT__OTEL__ENDPOINT)"),
            (with_endpoint("https://collector:4317"), &[], "otel.endpoint (KIT__OTEL__ENDPOINT) must be http://"),
            (with_endpoint("http:///v1/traces"), &[], "otel.endpoint (KIT__OTEL__ENDPOINT)"),
            (OtelConfig::default(), &[on[0], (OTLP_PROTOCOL_ENV, "http/json")], OTLP_PROTOCOL_ENV),
            (OtelConfig::default(), &[on[0], (SAMPLER_ARG_ENV, "1.5")], SAMPLER_ARG_ENV),
            (OtelConfig::default(), &[on[0], (SAMPLER_ARG_ENV, "half")], SAMPLER_ARG_ENV),
        ];
        for (config, env, expected) in cases {
            let err = resolve(config, env).unwrap_err();
            assert!(err.contains(expected), "{config:?} {env:?}: {err}");
        }
    }

    #[test]
    // figment::Jail closures return figment::Error, which clippy finds large.
    #[allow(clippy::result_large_err)]
    fn the_ratio_and_protocol_keys_are_checked_as_they_are_read() {
        #[derive(Debug, Deserialize)]
        struct Sample {
            #[allow(dead_code)]
            otel: OtelConfig,
        }
        for (yaml, expected) in [
            ("otel:\n  sample_ratio: 1.01\n", "must be a number from 0.0 to 1.0"),
            ("otel:\n  sample_ratio: -0.1\n", "must be a number from 0.0 to 1.0"),
            ("otel:\n  protocol: http/json\n", "unknown variant"),
        ] {
            figment::Jail::expect_with(|jail| {
                jail.create_file("c.yaml", yaml)?;
                let err = crate::config::load::<Sample>(Some(std::path::Path::new("c.yaml")), PREFIX).unwrap_err();
                assert!(err.contains(expected), "{yaml}: {err}");
                assert!(err.contains("otel."), "{yaml}: names the key: {err}");
                Ok(())
            });
        }
        figment::Jail::expect_with(|jail| {
            jail.set_env("KIT__OTEL__SAMPLE_RATIO", "0.5");
            jail.set_env("KIT__OTEL__PROTOCOL", "http/protobuf");
            let sample: Sample = crate::config::load(None, PREFIX).map_err(|e| e.to_string())?;
            assert_eq!(sample.otel.sample_ratio, SampleRatio::new(0.5));
            assert_eq!(sample.otel.protocol, Some(OtlpProtocol::HttpProtobuf));
            Ok(())
        });
    }

    #[test]
    fn a_base_address_gets_the_traces_path_for_http() {
        assert_eq!(http_traces_url("http://c:4318"), "http://c:4318/v1/traces");
        assert_eq!(http_traces_url("http://c:4318/"), "http://c:4318/v1/traces");
        assert_eq!(http_traces_url("http://c:4318/v1/traces"), "http://c:4318/v1/traces");
        assert_eq!(http_traces_url("http://c:4318/otlp"), "http://c:4318/otlp/v1/traces");
    }

    #[test]
    fn without_a_layer_nothing_is_read_or_written() {
        // No OpenTelemetry layer: a span gets no parent and no context travels.
        let subscriber = tracing_subscriber::registry();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("http");
            let mut incoming = http::HeaderMap::new();
            incoming.insert("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".parse().unwrap());
            set_parent_from(&span, &incoming);
            let mut outgoing = http::HeaderMap::new();
            inject_context(&span, &mut outgoing);
            assert!(outgoing.is_empty(), "{outgoing:?}");
        });
    }
}
