//! What a connection may cost, on both servers: the real auth-svc and the real gateway, talked
//! to by raw TCP clients (HTTP/2 frames written by hand, so a client can misbehave) and by the
//! `h2` client. Connections that never send a request are closed after the header timeout, idle
//! ones after the idle timeout, busy ones are not cut; auth-svc advertises and enforces its
//! stream limit; the gateway's channel survives auth-svc closing idle connections; an oversized
//! request message is 413 and a throttle is still 429.

use std::num::NonZero;

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use hyper::body::Bytes;
use reqwest::StatusCode;
use serde_json::json;
use service_kit::http_server::CLOSE_BACKSTOP;
use tempfile::TempDir;
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
};

use crate::support::{
    Gateway,
    auth_svc::{AuthSvc, db_path},
    client, gateway_config, header, read,
};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const SETTINGS: u8 = 0x4;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const END_HEADERS: u8 = 0x4;
const ACK: u8 = 0x1;
const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 0x3;
const REFUSED_STREAM: u32 = 0x7;

/// One HTTP/2 frame: 24-bit length, type, flags, stream id, payload.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let length = u32::try_from(payload.len()).unwrap().to_be_bytes();
    let mut frame = vec![length[1], length[2], length[3], kind, flags];
    frame.extend_from_slice(&stream.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// HPACK "literal without indexing" of a header whose name is static-table entry `index` (< 15).
fn literal(index: u8, value: &str) -> Vec<u8> {
    let mut field = vec![index, u8::try_from(value.len()).unwrap()];
    field.extend_from_slice(value.as_bytes());
    field
}

/// The header block of a gRPC call to `path`: POST, http, :path, :authority, content-type, te.
fn grpc_request_head(path: &str) -> Vec<u8> {
    let mut block = vec![0x83, 0x86]; // :method POST, :scheme http (static table 3 and 6)
    block.extend(literal(0x04, path));
    block.extend(literal(0x01, "localhost"));
    // content-type is static entry 31: a 4-bit prefix of 15, then 16.
    block.extend([0x0f, 0x10, 16]);
    block.extend_from_slice(b"application/grpc");
    block.extend([0x00, 2]);
    block.extend_from_slice(b"te");
    block.push(8);
    block.extend_from_slice(b"trailers");
    block
}

/// The frames of a connection, read until the server closes it.
struct FrameReader {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl FrameReader {
    /// The next frame (type, flags, stream, payload), or `None` once the server closed.
    async fn next(&mut self) -> Option<(u8, u8, u32, Vec<u8>)> {
        loop {
            if self.buffer.len() >= 9 {
                let length =
                    usize::from(self.buffer[0]) << 16 | usize::from(self.buffer[1]) << 8 | usize::from(self.buffer[2]);
                if self.buffer.len() >= 9 + length {
                    let head: Vec<u8> = self.buffer.drain(..9 + length).collect();
                    let stream = u32::from_be_bytes(head[5..9].try_into().unwrap()) & 0x7fff_ffff;
                    return Some((head[3], head[4], stream, head[9..].to_vec()));
                }
            }
            let mut chunk = [0_u8; 16 * 1024];
            match self.stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(read) => self.buffer.extend_from_slice(&chunk[..read]),
            }
        }
    }
}

/// Reads until the server closes `stream`; how long that took. Panics past `bound`.
async fn closed_within(stream: &mut TcpStream, bound: Duration) -> Duration {
    let started = Instant::now();
    let mut buffer = [0_u8; 4096];
    loop {
        match tokio::time::timeout(bound, stream.read(&mut buffer)).await {
            Ok(Ok(0) | Err(_)) => return started.elapsed(),
            Ok(Ok(_)) => {}
            Err(_) => panic!("connection still open after {bound:?}"),
        }
    }
}

/// auth-svc on SQLite in `dir`, with `adjust` applied to its test configuration.
async fn auth_svc(dir: &TempDir, adjust: impl FnOnce(&mut auth_svc::Config)) -> AuthSvc {
    AuthSvc::start_with("127.0.0.1:0".parse().unwrap(), &db_path(dir), adjust).await
}

/// What a misbehaving client sends before it goes quiet: nothing, the preface alone, the
/// preface and SETTINGS, or a HEADERS frame whose block never ends (no END_HEADERS, and no
/// CONTINUATION follows).
fn openings() -> [Vec<u8>; 4] {
    let settings = frame(SETTINGS, 0, 0, &[]);
    let unfinished_head = frame(HEADERS, 0, 1, &grpc_request_head("/grpc.health.v1.Health/Check"));
    [Vec::new(), PREFACE.to_vec(), [PREFACE, &settings].concat(), [PREFACE, &settings, &unfinished_head].concat()]
}

/// 240 connections at once to `addr` that never complete a request head are all closed within
/// `header_timeout` and the close backstop (and none before the timeout).
async fn assert_silent_connections_are_closed(addr: SocketAddr, header_timeout: Duration, server: &str) {
    let openings = openings();
    let clients: Vec<_> = (0..240)
        .map(|i| {
            let opening = openings[i % openings.len()].clone();
            tokio::spawn(async move {
                let mut stream = TcpStream::connect(addr).await.unwrap();
                stream.write_all(&opening).await.unwrap();
                (i % 4, closed_within(&mut stream, Duration::from_secs(10)).await)
            })
        })
        .collect();
    let bound = header_timeout + CLOSE_BACKSTOP + Duration::from_millis(1_500);
    for client in clients {
        let (opening, after) = client.await.unwrap();
        assert!(after <= bound, "{server}, opening {opening}: closed after {after:?}");
        assert!(after >= header_timeout / 2, "{server}, opening {opening}: closed after {after:?}");
    }
}

#[tokio::test]
async fn both_servers_close_connections_that_never_send_a_request() {
    let header_timeout = Duration::from_millis(500);
    let dir = tempfile::tempdir().unwrap();
    let auth = auth_svc(&dir, |config| config.grpc.header_read_timeout_ms = NonZero::new(500).unwrap()).await;
    let mut config = gateway_config(auth.addr);
    config.http.header_read_timeout_ms = 500;
    let gateway = Gateway::start(&config).await;
    let (_, _) = tokio::join!(
        assert_silent_connections_are_closed(auth.addr, header_timeout, "auth-svc"),
        assert_silent_connections_are_closed(gateway.addr, header_timeout, "gateway"),
    );
    // Both still serve prompt clients.
    let (status, _, _) = read(client().get(format!("http://{}/readyz", gateway.addr)).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
}

/// An HTTP/2 connection to `addr`, driven in the background; the handle resolves when the
/// server has closed it.
async fn h2_connection(addr: SocketAddr) -> (h2::client::SendRequest<Bytes>, tokio::task::JoinHandle<Instant>) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, connection) = h2::client::handshake(stream).await.unwrap();
    let closed = tokio::spawn(async move {
        let _ = connection.await;
        Instant::now()
    });
    (sender.ready().await.unwrap(), closed)
}

/// Sends a gRPC call's head on `sender`; the caller sends the message.
fn start_grpc_call(
    sender: &mut h2::client::SendRequest<Bytes>,
    path: &str,
) -> (h2::client::ResponseFuture, h2::SendStream<Bytes>) {
    let request = http::Request::post(format!("http://localhost{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap();
    sender.send_request(request, false).unwrap()
}

/// A gRPC message frame: uncompressed, 4-byte length, the protobuf bytes.
fn grpc_message(protobuf: &[u8]) -> Bytes {
    let mut message = vec![0];
    message.extend_from_slice(&u32::try_from(protobuf.len()).unwrap().to_be_bytes());
    message.extend_from_slice(protobuf);
    Bytes::from(message)
}

/// The `grpc-status` of a finished call (from the trailers, or a trailers-only head).
async fn grpc_status(response: h2::client::ResponseFuture) -> String {
    let response = response.await.unwrap();
    if let Some(status) = response.headers().get("grpc-status") {
        return status.to_str().unwrap().to_owned();
    }
    let mut body = response.into_body();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    let trailers = body.trailers().await.unwrap().expect("trailers");
    trailers.get("grpc-status").unwrap().to_str().unwrap().to_owned()
}

#[tokio::test]
async fn an_idle_auth_svc_connection_is_closed_after_the_idle_timeout_and_a_busy_one_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let auth = auth_svc(&dir, |config| config.grpc.idle_timeout_seconds = NonZero::new(1).unwrap()).await;
    let idle_timeout = Duration::from_secs(1);

    // Busy: a Login whose message arrives after three idle timeouts is still answered.
    let (mut sender, closed) = h2_connection(auth.addr).await;
    let (response, mut body) = start_grpc_call(&mut sender, "/user.v1.UserService/Login");
    tokio::time::sleep(idle_timeout * 3).await;
    assert!(!closed.is_finished(), "a connection with a call in flight was closed");
    // LoginRequest { username: "nobody", password: "whatever1" }: 401's UNAUTHENTICATED (16).
    let login = [&[0x0a, 6][..], b"nobody", &[0x12, 9], b"whatever1"].concat();
    body.send_data(grpc_message(&login), true).unwrap();
    assert_eq!(grpc_status(response).await, "16");

    // Idle: closed between one idle timeout and that plus the backstop after the answer.
    let answered = Instant::now();
    let closed_at = tokio::time::timeout(Duration::from_secs(10), closed).await.expect("closed").unwrap();
    let idle = closed_at - answered;
    assert!(idle >= idle_timeout / 2, "closed after {idle:?}");
    assert!(idle <= idle_timeout + CLOSE_BACKSTOP + Duration::from_millis(1_000), "closed after {idle:?}");
}

#[tokio::test]
async fn an_idle_gateway_connection_is_closed_after_the_idle_timeout_and_a_busy_one_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let auth = auth_svc(&dir, |_| {}).await;
    let mut config = gateway_config(auth.addr);
    config.http.idle_timeout_seconds = 1;
    let gateway = Gateway::start(&config).await;
    let idle_timeout = Duration::from_secs(1);

    // Busy: a login whose body arrives after two idle timeouts is still answered.
    let (mut sender, closed) = h2_connection(gateway.addr).await;
    let request = http::Request::post(format!("http://{}/user/login", gateway.addr))
        .header("content-type", "application/json")
        .body(())
        .unwrap();
    let (response, mut body) = sender.send_request(request, false).unwrap();
    tokio::time::sleep(idle_timeout * 2).await;
    assert!(!closed.is_finished(), "a connection with a request in flight was closed");
    body.send_data(Bytes::from_static(br#"{"username":"nobody","password":"whatever1"}"#), true).unwrap();
    let response = response.await.unwrap();
    assert_eq!(response.status(), http::StatusCode::UNAUTHORIZED);
    let mut body = response.into_body();
    while let Some(chunk) = body.data().await {
        let _ = body.flow_control().release_capacity(chunk.unwrap().len());
    }

    let answered = Instant::now();
    let closed_at = tokio::time::timeout(Duration::from_secs(10), closed).await.expect("closed").unwrap();
    let idle = closed_at - answered;
    assert!(idle >= idle_timeout / 2, "closed after {idle:?}");
    assert!(idle <= idle_timeout + CLOSE_BACKSTOP + Duration::from_millis(1_000), "closed after {idle:?}");
}

/// The SETTINGS_MAX_CONCURRENT_STREAMS a server sends first on a fresh connection, and a reader
/// on that connection (the client has sent the preface, empty SETTINGS, and its ACK).
async fn advertised_stream_limit(addr: SocketAddr) -> (Option<u32>, FrameReader) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(&[PREFACE, &frame(SETTINGS, 0, 0, &[])].concat()).await.unwrap();
    let mut reader = FrameReader { stream, buffer: Vec::new() };
    let (kind, flags, _, payload) = reader.next().await.expect("the server's SETTINGS");
    assert_eq!((kind, flags & ACK), (SETTINGS, 0), "the server speaks first with SETTINGS");
    let limit = payload.chunks(6).find_map(|setting| {
        (u16::from_be_bytes([setting[0], setting[1]]) == SETTINGS_MAX_CONCURRENT_STREAMS)
            .then(|| u32::from_be_bytes(setting[2..6].try_into().unwrap()))
    });
    reader.stream.write_all(&frame(SETTINGS, ACK, 0, &[])).await.unwrap();
    (limit, reader)
}

/// A client that ignores the advertised limit and opens 48 calls at once on one connection
/// gets every stream past the limit refused, and the first ones served.
#[tokio::test]
async fn auth_svc_advertises_and_enforces_its_stream_limit() {
    let dir = tempfile::tempdir().unwrap();
    let auth = auth_svc(&dir, |config| config.grpc.max_concurrent_streams = NonZero::new(8).unwrap()).await;
    let (limit, mut reader) = advertised_stream_limit(auth.addr).await;
    assert_eq!(limit, Some(8));

    // 48 calls whose messages never come: each stays open.
    let head = grpc_request_head("/user.v1.UserService/Login");
    let opened: Vec<u8> = (0..48_u32).flat_map(|i| frame(HEADERS, END_HEADERS, 1 + 2 * i, &head)).collect();
    reader.stream.write_all(&opened).await.unwrap();
    let mut refused = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while refused.len() < 40 && Instant::now() < deadline {
        let Ok(Some((kind, _, stream, payload))) = tokio::time::timeout(Duration::from_secs(10), reader.next()).await
        else {
            break;
        };
        assert_ne!(kind, GOAWAY, "the server gave up the connection");
        if kind == RST_STREAM {
            assert_eq!(u32::from_be_bytes(payload[..4].try_into().unwrap()), REFUSED_STREAM, "stream {stream}");
            refused.push(stream);
        }
    }
    let expected: Vec<u32> = (8..48).map(|i| 1 + 2 * i).collect();
    assert_eq!(refused, expected, "the streams past the limit of 8");
    // The gateway's own stream limit is advertised too.
    let mut config = gateway_config(auth.addr);
    config.http.max_concurrent_streams = 12;
    let gateway = Gateway::start(&config).await;
    assert_eq!(advertised_stream_limit(gateway.addr).await.0, Some(12));
}

/// auth-svc closes the gateway's idle connection; the gateway's channel reconnects on its next
/// call, and 40 calls at once after that are all served.
#[tokio::test]
async fn the_gateway_reconnects_after_auth_svc_closes_its_idle_connection() {
    let dir = tempfile::tempdir().unwrap();
    let auth = auth_svc(&dir, |config| {
        config.grpc.idle_timeout_seconds = NonZero::new(1).unwrap();
        // 40 logins of one account at once, from one address: the login throttle counts those
        // in flight too.
        config.throttle.max_failures_per_username = NonZero::new(1000).unwrap();
        config.throttle.max_in_flight_per_address = NonZero::new(1000).unwrap();
    })
    .await;
    let gateway = Gateway::start(&gateway_config(auth.addr)).await;
    let base = format!("http://{}", gateway.addr);
    let client = client();
    let credentials = json!({"username": "idler", "password": "correct horse"});
    let (status, _, _) =
        read(client.post(format!("{base}/user/register")).json(&credentials).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    tokio::time::sleep(Duration::from_secs(1) + CLOSE_BACKSTOP + Duration::from_millis(500)).await;
    let logins = (0..40).map(|_| client.post(format!("{base}/user/login")).json(&credentials).send());
    for response in futures::future::join_all(logins).await {
        assert_eq!(response.unwrap().status(), StatusCode::OK);
    }
}

/// With the gateway's body limit above auth-svc's `grpc.max_message_bytes`, an oversized
/// message is refused by auth-svc (tonic's OUT_OF_RANGE) and answered 413 in each dialect; the
/// login throttle's RESOURCE_EXHAUSTED is still 429 with `Retry-After`.
#[tokio::test]
async fn a_message_over_auth_svc_s_limit_is_413_and_a_throttle_is_still_429() {
    let dir = tempfile::tempdir().unwrap();
    let auth = auth_svc(&dir, |config| config.grpc.max_message_bytes = 4096).await;
    let mut config = gateway_config(auth.addr);
    config.http.body_limit_bytes = 1024 * 1024;
    let gateway = Gateway::start(&config).await;
    let base = format!("http://{}", gateway.addr);
    let client = client();
    let huge = "u".repeat(100 * 1024);
    let oversized = json!({"username": huge, "password": "correct horse"});
    let gozero = json!({"code": 413, "msg": "request too large"});
    let fastapi = json!({"detail": "request too large"});
    for (path, expected) in [("/user/register", &gozero), ("/user/login", &gozero), ("/signup", &fastapi)] {
        let (status, _, body) = read(client.post(format!("{base}{path}")).json(&oversized).send().await.unwrap()).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{path}");
        assert_eq!(&body, expected, "{path}");
    }
    let form = [("username", huge.as_str()), ("password", "correct horse")];
    let (status, _, body) = read(client.post(format!("{base}/token")).form(&form).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "/token");
    let too_large = "request too large";
    assert_eq!(body, json!({"detail": too_large, "error": "invalid_request", "error_description": too_large}));

    // Past the per-username limit (5 failures), both dialects answer 429 + Retry-After.
    let wrong = json!({"username": "victim", "password": "wrong password"});
    for _ in 0..5 {
        let response = client.post(format!("{base}/user/login")).json(&wrong).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let (status, headers, body) =
        read(client.post(format!("{base}/user/login")).json(&wrong).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(header(&headers, "retry-after").parse::<u64>().unwrap() > 0);
    assert_eq!(body, json!({"code": 429, "msg": "too many failed login attempts, retry later"}));
    let form = [("username", "victim"), ("password", "wrong password")];
    let (status, headers, body) = read(client.post(format!("{base}/token")).form(&form).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(header(&headers, "retry-after").parse::<u64>().unwrap() > 0);
    let throttled = "too many failed login attempts, retry later";
    assert_eq!(body, json!({"detail": throttled, "error": "invalid_request", "error_description": throttled}));
}

/// A client that stops answering auth-svc's keepalive pings is dropped after interval +
/// timeout, though its call is still in flight (so the idle timeout never comes).
#[tokio::test]
async fn auth_svc_drops_a_client_that_ignores_its_keepalive_pings() {
    let dir = tempfile::tempdir().unwrap();
    let auth = auth_svc(&dir, |config| {
        config.grpc.keepalive_interval_seconds = 1;
        config.grpc.keepalive_timeout_seconds = 1;
    })
    .await;
    let (_, mut reader) = advertised_stream_limit(auth.addr).await;
    // A Login whose message never comes; the client reads every frame and answers none.
    let head = grpc_request_head("/user.v1.UserService/Login");
    reader.stream.write_all(&frame(HEADERS, END_HEADERS, 1, &head)).await.unwrap();
    let started = Instant::now();
    let mut pinged = false;
    while let Ok(Some((kind, _, _, _))) = tokio::time::timeout(Duration::from_secs(10), reader.next()).await {
        pinged |= kind == PING;
    }
    let after = started.elapsed();
    assert!(pinged, "auth-svc sent no PING");
    assert!(after >= Duration::from_secs(1), "dropped after {after:?}");
    assert!(after <= Duration::from_secs(4), "dropped after {after:?}");
}

/// Calls still learn their TCP peer (`Request::remote_addr`) through the new server: a client
/// that sends no `x-forwarded-for` is throttled by its own address.
#[tokio::test]
async fn auth_svc_still_counts_failed_logins_by_the_tcp_peer() {
    use auth_api::user::v1::{LoginRequest, user_service_client::UserServiceClient};
    let dir = tempfile::tempdir().unwrap();
    let auth = auth_svc(&dir, |config| config.throttle.max_failures_per_address = NonZero::new(3).unwrap()).await;
    let mut client = UserServiceClient::connect(format!("http://{}", auth.addr)).await.unwrap();
    for attempt in 0..4 {
        let request = LoginRequest { username: format!("guess{attempt}"), password: "wrong password".into() };
        let status = client.login(request).await.unwrap_err();
        let expected = if attempt < 3 { tonic::Code::Unauthenticated } else { tonic::Code::ResourceExhausted };
        assert_eq!(status.code(), expected, "attempt {attempt}: {status:?}");
    }
}

/// A client's `grpc-timeout` still bounds its call on the server, as under tonic's server: a
/// Login that must hash (the production profile) past a 1 ms deadline is CANCELLED. (The `h2`
/// client, because tonic's own client would enforce the deadline itself.)
#[tokio::test]
async fn auth_svc_still_honours_the_client_s_grpc_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let auth = auth_svc(&dir, |config| config.password.hash_profile = auth_svc::config::HashProfile::Owasp).await;
    let (mut sender, _closed) = h2_connection(auth.addr).await;
    // LoginRequest { username: "nobody", password: "whatever1" }
    let login = grpc_message(&[&[0x0a, 6][..], b"nobody", &[0x12, 9], b"whatever1"].concat());
    for (deadline, expected) in [(Some("1m"), "1"), (None, "16")] {
        let mut request = http::Request::post("http://localhost/user.v1.UserService/Login")
            .header("content-type", "application/grpc")
            .header("te", "trailers");
        if let Some(deadline) = deadline {
            request = request.header("grpc-timeout", deadline);
        }
        let (response, mut body) = sender.send_request(request.body(()).unwrap(), false).unwrap();
        body.send_data(login.clone(), true).unwrap();
        // CANCELLED (1) past the deadline, UNAUTHENTICATED (16) without one.
        assert_eq!(grpc_status(response).await, expected, "grpc-timeout {deadline:?}");
    }
}

/// Calls whose request body never ends (a head alone, or a whole message with no END_STREAM),
/// 4 connections × 40 at once, are all answered CANCELLED at `grpc.max_call_seconds`; their
/// connections then go idle and are closed. A Health/Watch stream and a reflection stream
/// opened beside them outlive that deadline.
#[tokio::test]
async fn auth_svc_ends_calls_whose_body_never_ends_at_max_call_seconds() {
    let max_call = Duration::from_secs(1);
    let idle_timeout = Duration::from_secs(1);
    let dir = tempfile::tempdir().unwrap();
    let auth = auth_svc(&dir, |config| {
        config.grpc.max_call_seconds = NonZero::new(1).unwrap();
        config.grpc.idle_timeout_seconds = NonZero::new(1).unwrap();
    })
    .await;

    // The long-lived streams: each has its first answer before the stuck calls start.
    let (mut watcher, watcher_closed) = h2_connection(auth.addr).await;
    let (watch, mut watch_request) = start_grpc_call(&mut watcher, "/grpc.health.v1.Health/Watch");
    watch_request.send_data(grpc_message(&[]), true).unwrap();
    let mut watch = watch.await.unwrap().into_body();
    assert!(watch.data().await.unwrap().is_ok(), "Watch sends the current status");
    let (reflection, mut reflection_request) =
        start_grpc_call(&mut watcher, "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo");
    // ServerReflectionRequest { list_services: "" }; the request stream stays open.
    reflection_request.send_data(grpc_message(&[0x3a, 0]), false).unwrap();
    let mut reflection = reflection.await.unwrap().into_body();
    assert!(reflection.data().await.unwrap().is_ok(), "reflection lists the services");

    let started = Instant::now();
    let mut connections = Vec::new();
    let mut calls = Vec::new();
    for _ in 0..4 {
        let (mut sender, closed) = h2_connection(auth.addr).await;
        for i in 0..40 {
            let (response, mut body) = start_grpc_call(&mut sender, "/user.v1.UserService/Login");
            if i % 2 == 1 {
                let login = [&[0x0a, 6][..], b"nobody", &[0x12, 9], b"whatever1"].concat();
                body.send_data(grpc_message(&login), false).unwrap();
            }
            // The body is kept open (not dropped, which would end the stream) until answered.
            calls.push(tokio::spawn(async move {
                let status = grpc_status(response).await;
                drop(body);
                (status, Instant::now())
            }));
        }
        connections.push((sender, closed));
    }
    let mut last_answer = started;
    for call in calls {
        let (status, answered) = tokio::time::timeout(max_call * 5, call)
            .await
            .expect("a call whose body never ends was not answered")
            .unwrap();
        assert_eq!(status, "1", "CANCELLED past the server's deadline");
        let after = answered - started;
        assert!(after >= max_call / 2, "answered after {after:?}");
        assert!(after <= max_call + Duration::from_millis(1_500), "answered after {after:?}");
        last_answer = last_answer.max(answered);
    }
    for (_sender, closed) in connections {
        let closed_at = tokio::time::timeout(Duration::from_secs(10), closed).await.expect("closed").unwrap();
        let idle = closed_at - last_answer;
        assert!(idle <= idle_timeout + CLOSE_BACKSTOP + Duration::from_millis(1_000), "closed after {idle:?}");
    }

    // Both long-lived streams are still open, past several deadlines.
    assert!(started.elapsed() >= max_call * 2);
    assert!(!watcher_closed.is_finished(), "the connection with the long-lived streams was closed");
    let quiet = tokio::time::timeout(max_call, watch.data()).await;
    assert!(quiet.is_err(), "the Watch stream ended: {quiet:?}");
    let quiet = tokio::time::timeout(Duration::from_millis(100), reflection.data()).await;
    assert!(quiet.is_err(), "the reflection stream ended: {quiet:?}");
    // And the reflection stream still answers.
    reflection_request.send_data(grpc_message(&[0x3a, 0]), false).unwrap();
    assert!(reflection.data().await.unwrap().is_ok(), "reflection answers after the deadline");
}
