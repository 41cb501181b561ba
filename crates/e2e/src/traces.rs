//! Traces across both services: a real OTLP receiver (the `TraceService` of the OpenTelemetry
//! protos over gRPC, or `POST /v1/traces` with a protobuf body) in the test, auth-svc and the
//! gateway exporting to it, one `/user/login` and one `/user/info` sent with the test's own
//! `traceparent`. Asserted: the span tree across the two processes, parent links included, the
//! resources, and that no span carries a password, a hash, a token or a secret.
//!
//! A process has one `tracing` subscriber, and in production each service is its own process:
//! here too. Each service runs in a process of its own (this test binary again, running one
//! ignored test that starts the service), configured through its environment variables and set
//! up as its `main` sets itself up: the binary's `otel` config, `service_kit::telemetry` and the
//! log setup with the OpenTelemetry layer. (Both in the test's process, with a subscriber per
//! thread, the call spans now and then never ended while other tests ran beside them.)

use std::{
    io::{BufRead as _, BufReader, Read as _},
    net::SocketAddr,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{Router, body::Bytes, extract::State, routing::post};
use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
    common::v1::{KeyValue, any_value},
    trace::v1::Span,
};
use prost::Message as _;
use service_kit::telemetry::OtlpProtocol;
use tokio::runtime::Runtime;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status};

use crate::helpers::{
    ACCESS_SECRET, PASSWORD, REFRESH_SECRET, eventually, gateway_for_addr, redis_url, spawn_app_with,
};

/// One span as the receiver got it, with its resource's `service.name`.
#[derive(Debug, Clone)]
struct Received {
    service: String,
    resource: Vec<KeyValue>,
    span: Span,
}

/// What the receiver has been sent so far.
#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Vec<Received>>>);

impl Collector {
    fn take_in(&self, request: ExportTraceServiceRequest) {
        let mut received = self.0.lock().unwrap();
        for resource_spans in request.resource_spans {
            let resource = resource_spans.resource.map(|resource| resource.attributes).unwrap_or_default();
            let service = text_attribute(&resource, "service.name").unwrap_or_default();
            for scope_spans in resource_spans.scope_spans {
                for span in scope_spans.spans {
                    received.push(Received { service: service.clone(), resource: resource.clone(), span });
                }
            }
        }
    }

    fn spans(&self) -> Vec<Received> {
        self.0.lock().unwrap().clone()
    }
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        self.take_in(request.into_inner());
        Ok(Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

/// OTLP/HTTP with a protobuf body: the request decoded as the collector would.
async fn http_export(State(collector): State<Collector>, body: Bytes) -> ([(&'static str, &'static str); 1], Vec<u8>) {
    let request = ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf body");
    collector.take_in(request);
    ([("content-type", "application/x-protobuf")], ExportTraceServiceResponse { partial_success: None }.encode_to_vec())
}

/// Serves a receiver for `protocol` on 127.0.0.1:0, on the current runtime; its base address.
async fn serve_collector(protocol: OtlpProtocol, collector: Collector) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    match protocol {
        OtlpProtocol::Grpc => {
            let server = tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(collector))
                .serve_with_incoming(TcpListenerStream::new(listener));
            tokio::spawn(server);
        }
        OtlpProtocol::HttpProtobuf => {
            let app = Router::new().route("/v1/traces", post(http_export)).with_state(collector);
            tokio::spawn(async move { axum::serve(listener, app).await });
        }
    }
    address
}

fn text_attribute(attributes: &[KeyValue], key: &str) -> Option<String> {
    attributes.iter().find(|kv| kv.key == key).and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
        any_value::Value::StringValue(text) => Some(text.clone()),
        _ => None,
    })
}

fn int_attribute(attributes: &[KeyValue], key: &str) -> Option<i64> {
    attributes.iter().find(|kv| kv.key == key).and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
        any_value::Value::IntValue(value) => Some(*value),
        _ => None,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// What a service process prints once it serves: this, a space and its address, then a newline.
const SERVING: &str = "TRACES-SERVING";

/// Which service a [`traced_service_process`] runs: `auth-svc`, or `gateway` in front of
/// [`UPSTREAM_ENV`].
const ROLE_ENV: &str = "AUTH_E2E_TRACES_ROLE";
const UPSTREAM_ENV: &str = "AUTH_E2E_TRACES_UPSTREAM";

/// One service in a process of its own (this test binary again, running only
/// [`traced_service_process`]), as in production: its global subscriber is what `main` installs.
/// Killed when dropped; it also stops when its stdin closes.
struct ServiceProcess {
    child: Child,
    address: SocketAddr,
}

impl ServiceProcess {
    fn start(role: &str, env: &[(String, String)]) -> Self {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["traces::traced_service_process", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
            .env(ROLE_ENV, role)
            .envs(env.iter().cloned())
            // The level `main` defaults to, whatever this run's RUST_LOG; spans sent within 100 ms.
            .env("RUST_LOG", "info,sqlx=warn")
            .env("OTEL_BSP_SCHEDULE_DELAY", "100")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (serving, address) = std::sync::mpsc::channel();
        // Reads the address, then drains the log lines for the process's whole life.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                // Anywhere in the line: the test harness's `test … ...` has no newline of its own.
                if let Some(address) = line.split_once(SERVING).map(|(_, address)| address.trim()) {
                    let _ = serving.send(address.parse::<SocketAddr>().unwrap());
                }
            }
        });
        let address = address.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|_| panic!("{role} did not start"));
        Self { child, address }
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The service process of [`ServiceProcess`]: run by the traces tests, not on its own.
#[test]
#[ignore = "a service process that the traces tests start themselves"]
fn traced_service_process() {
    let runtime = Runtime::new().unwrap();
    runtime.block_on(async {
        let role = std::env::var(ROLE_ENV).expect("started by a traces test");
        // Each binary's config from its environment, then what its `main` does with `otel`.
        let settings = match role.as_str() {
            "auth-svc" => auth_svc::Config::load(None).unwrap().telemetry(),
            _ => gateway::Config::load(None).unwrap().telemetry(),
        };
        let telemetry = service_kit::telemetry::start_or_exit(&role, settings).expect("tracing is on");
        service_kit::logging::init(service_kit::logging::LogFormat::Text, "info", Some(&telemetry));
        let stop = tokio::task::spawn_blocking(|| std::io::stdin().read_to_end(&mut Vec::new()));
        if role == "auth-svc" {
            let app = spawn_app_with(|_| {}).await;
            println!("{SERVING} {}", app.addr);
            let _ = stop.await;
            drop(app);
        } else {
            let upstream = std::env::var(UPSTREAM_ENV).unwrap().parse().unwrap();
            let gateway = gateway_for_addr(upstream).await;
            println!("{SERVING} {}", gateway.base_url.trim_start_matches("http://"));
            let _ = stop.await;
            drop(gateway);
        }
        telemetry.shutdown().await;
    });
}

/// Runs the scenario with both services exporting over `protocol`; every span the receiver got,
/// and the token pair the login answered.
fn login_and_info_traced(protocol: OtlpProtocol, trace_id: &str, parents: [&str; 2]) -> (Vec<Received>, [String; 2]) {
    let driver = Runtime::new().unwrap();
    let collector = Collector::default();
    let endpoint = driver.block_on(serve_collector(protocol, collector.clone()));
    let protocol_name = match protocol {
        OtlpProtocol::Grpc => "grpc",
        OtlpProtocol::HttpProtobuf => "http/protobuf",
    };
    let otel = |prefix: &str| {
        vec![
            (format!("{prefix}OTEL__ENDPOINT"), endpoint.clone()),
            (format!("{prefix}OTEL__PROTOCOL"), protocol_name.to_owned()),
        ]
    };
    let auth = ServiceProcess::start("auth-svc", &otel(auth_svc::config::ENV_PREFIX));
    let mut gateway_env = otel(gateway::config::ENV_PREFIX);
    gateway_env.push((UPSTREAM_ENV.to_owned(), auth.address.to_string()));
    let gateway = ServiceProcess::start("gateway", &gateway_env);

    let tokens = driver.block_on(async {
        let http = reqwest::Client::new();
        let base = format!("http://{}", gateway.address);
        let credentials = serde_json::json!({"username": "alice", "password": PASSWORD});
        let registered = http.post(format!("{base}/user/register")).json(&credentials).send().await.unwrap();
        assert_eq!(registered.status(), 200);
        let traceparent = |parent: &str| format!("00-{trace_id}-{parent}-01");
        let login = http
            .post(format!("{base}/user/login"))
            .header("traceparent", traceparent(parents[0]))
            .json(&credentials)
            .send()
            .await
            .unwrap();
        assert_eq!(login.status(), 200);
        let pair: serde_json::Value = login.json().await.unwrap();
        let access = pair["accessToken"].as_str().unwrap().to_owned();
        let refresh = pair["refreshToken"].as_str().unwrap().to_owned();
        let info = http
            .get(format!("{base}/user/info"))
            .header("traceparent", traceparent(parents[1]))
            .bearer_auth(&access)
            .send()
            .await
            .unwrap();
        assert_eq!(info.status(), 200);

        // Both services' outer spans of both requests (each ends after its children).
        let arrived = eventually(Duration::from_secs(15), || async {
            let spans = collector.spans();
            ["POST /user/login", "GET /user/info", "user.v1.UserService/Login", "user.v1.UserService/GetUserInfo"]
                .iter()
                .all(|name| spans.iter().any(|r| r.span.name == *name && hex(&r.span.trace_id) == trace_id))
        })
        .await;
        assert!(arrived, "spans did not arrive: {:#?}", names(&collector.spans()));
        [access, refresh]
    });
    drop(gateway);
    drop(auth);
    (collector.spans(), tokens)
}

fn names(spans: &[Received]) -> Vec<String> {
    spans.iter().map(|r| format!("{}: {} in {}", r.service, r.span.name, hex(&r.span.trace_id))).collect()
}

/// A random id of `bytes` bytes, in hex.
fn random_id(bytes: usize) -> String {
    uuid::Uuid::new_v4().simple().to_string()[..bytes * 2].to_owned()
}

/// The one span of `service` named `name` in `trace_id`.
fn one<'a>(spans: &'a [Received], service: &str, name: &str, trace_id: &str) -> &'a Received {
    let found: Vec<_> = spans
        .iter()
        .filter(|r| r.service == service && r.span.name == name && hex(&r.span.trace_id) == trace_id)
        .collect();
    assert_eq!(found.len(), 1, "{service} {name}: {:#?}", names(spans));
    found[0]
}

/// Whether `span` descends from `ancestor` within the spans of one service.
fn descends_from(spans: &[Received], span: &Received, ancestor: &Received) -> bool {
    let mut parent = span.span.parent_span_id.clone();
    for _ in 0..16 {
        if parent.is_empty() {
            return false;
        }
        if parent == ancestor.span.span_id {
            return true;
        }
        match spans.iter().find(|r| r.service == span.service && r.span.span_id == parent) {
            Some(next) => parent = next.span.parent_span_id.clone(),
            None => return false,
        }
    }
    false
}

fn assert_span_tree(protocol: OtlpProtocol) {
    let trace_id = random_id(16);
    let parents = [random_id(8), random_id(8)];
    let (spans, [access, refresh]) = login_and_info_traced(protocol, &trace_id, [&parents[0], &parents[1]]);

    for (route, method, parent) in
        [("POST /user/login", "Login", &parents[0]), ("GET /user/info", "GetUserInfo", &parents[1])]
    {
        let http = one(&spans, "gateway", route, &trace_id);
        assert_eq!(hex(&http.span.parent_span_id), *parent, "{route}: the caller's span is the parent");
        let attributes = &http.span.attributes;
        assert_eq!(text_attribute(attributes, "http.request.method").as_deref(), route.split(' ').next());
        assert_eq!(text_attribute(attributes, "http.route").as_deref(), route.split(' ').nth(1));
        assert_eq!(int_attribute(attributes, "http.response.status_code"), Some(200), "{route}");
        let request_id = text_attribute(attributes, "request_id").unwrap_or_default();
        assert!(!request_id.is_empty(), "{route}: the request id is an attribute");

        let grpc = one(&spans, "auth-svc", &format!("user.v1.UserService/{method}"), &trace_id);
        assert_eq!(grpc.span.parent_span_id, http.span.span_id, "{method}: the gateway's span is the parent");
        assert_eq!(text_attribute(&grpc.span.attributes, "rpc.method").as_deref(), Some(method));
        assert_eq!(text_attribute(&grpc.span.attributes, "request_id"), Some(request_id), "{method}");
    }

    // Inside the login call: the password check and the database.
    let login = one(&spans, "auth-svc", "user.v1.UserService/Login", &trace_id);
    let inside = |prefix: &str| {
        spans.iter().filter(|r| r.span.name.starts_with(prefix) && descends_from(&spans, r, login)).count()
    };
    assert_eq!(inside("argon2 verify"), 1, "{:#?}", names(&spans));
    assert!(inside("users.") + inside("refresh_tokens.") >= 1, "no database span: {:#?}", names(&spans));
    assert_eq!(inside("refresh_tokens.insert"), 1, "{:#?}", names(&spans));
    if redis_url().is_some() {
        assert!(inside("cache ") + inside("throttle ") >= 1, "no Redis span: {:#?}", names(&spans));
    }
    for received in spans.iter().filter(|r| r.span.name.starts_with("refresh_tokens.")) {
        assert_eq!(
            text_attribute(&received.span.attributes, "db.operation.name").as_deref(),
            Some(&*received.span.name)
        );
    }

    for received in &spans {
        let expected = if received.service == "gateway" { "gateway" } else { "auth-svc" };
        assert_eq!(received.service, expected, "{}", received.span.name);
        assert!(text_attribute(&received.resource, "service.version").is_some_and(|v| !v.is_empty()));
    }
    assert!(spans.iter().any(|r| r.service == "gateway") && spans.iter().any(|r| r.service == "auth-svc"));

    // Nothing secret anywhere: names, attributes, events, resources.
    let everything = format!("{spans:?}");
    let mut secrets = vec![PASSWORD, "$argon2", ACCESS_SECRET, REFRESH_SECRET, &access, &refresh];
    // Each signed part of each token on its own, too (a leak need not be the whole token).
    secrets.extend(access.split('.').skip(1).chain(refresh.split('.').skip(1)));
    for secret in secrets {
        assert!(!everything.contains(secret), "a span carries a secret ({} characters)", secret.len());
    }
}

#[test]
fn one_trace_runs_from_the_caller_through_the_gateway_into_auth_svc_over_grpc() {
    assert_span_tree(OtlpProtocol::Grpc);
}

#[test]
fn the_same_trace_arrives_over_http_protobuf() {
    assert_span_tree(OtlpProtocol::HttpProtobuf);
}

#[test]
fn without_an_endpoint_tracing_is_off() {
    // The defaults (and the example files) name no endpoint: `main` starts no exporter and
    // installs no layer. (The standard variables are not set in the test environment; if
    // they were, this would say so rather than pass by accident.)
    for variable in [service_kit::telemetry::OTLP_ENDPOINT_ENV, service_kit::telemetry::OTLP_TRACES_ENDPOINT_ENV] {
        assert!(std::env::var_os(variable).is_none(), "{variable} is set in the test environment");
    }
    assert!(auth_svc::Config::default().telemetry().unwrap().is_none());
    assert!(gateway::Config::default().telemetry().unwrap().is_none());
}
