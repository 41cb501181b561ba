//! The body limit (413 in the route's dialect), JSON answers for unknown paths and methods, and
//! the header read timeout that closes slowloris connections.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
};

use crate::support::{
    Gateway,
    auth_svc::{spawn_app, spawn_app_with},
    gateway_config, read,
};

fn oversized() -> serde_json::Value {
    json!({"username": "alice", "password": "p".repeat(70 * 1024)})
}

#[tokio::test]
async fn an_oversized_body_is_413_in_each_dialect() {
    let app = spawn_app().await;
    let (status, _, body) = read(app.post_json("/user/register", &oversized()).await).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body, json!({"code": 413, "msg": "request body too large (limit 65536 bytes)"}));

    let (status, _, body) = read(app.post_json("/signup", &oversized()).await).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body, json!({"detail": "request body too large (limit 65536 bytes)"}));

    let big = "p".repeat(70 * 1024);
    let response =
        app.client.post(app.url("/token")).form(&[("username", "alice"), ("password", &big)]).send().await.unwrap();
    let (status, _, body) = read(response).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let too_large = "request body too large (limit 65536 bytes)";
    assert_eq!(body, json!({"detail": too_large, "error": "invalid_request", "error_description": too_large}));
}

#[tokio::test]
async fn the_body_limit_is_configurable() {
    let app = spawn_app_with(|config| config.http.body_limit_bytes = 1024).await;
    let body = json!({"username": "alice", "password": "p".repeat(2000)});
    let (status, _, body) = read(app.post_json("/user/login", &body).await).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body, json!({"code": 413, "msg": "request body too large (limit 1024 bytes)"}));
}

#[tokio::test]
async fn unknown_paths_and_methods_answer_json() {
    let app = spawn_app().await;
    let (status, _, body) = read(app.client.get(app.url("/nowhere")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, json!({"detail": "Not Found"}));

    let (status, headers, body) = read(app.client.get(app.url("/user/login")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(headers.get("allow").unwrap(), "POST");
    assert_eq!(body, json!({"code": 405, "msg": "Method Not Allowed"}));
}

/// Reads until the gateway closes the connection; panics if it is still open after `within`.
async fn assert_closed_by_gateway(stream: &mut TcpStream, within: Duration, what: &str) -> Duration {
    let started = Instant::now();
    let mut buf = [0_u8; 1024];
    loop {
        match tokio::time::timeout(within, stream.read(&mut buf)).await {
            Err(_) => panic!("{what}: the connection was still open after {within:?}"),
            Ok(Ok(0) | Err(_)) => return started.elapsed(),
            Ok(Ok(_)) => {}
        }
    }
}

/// Slowloris: a client that sends nothing, half a request head, or half an HTTP/2 preface is
/// disconnected after `http.header_read_timeout_ms`; a prompt client is served as usual.
#[tokio::test]
async fn slow_request_heads_are_cut_off() {
    let mut config = gateway_config("127.0.0.1:9".parse().unwrap());
    config.http.header_read_timeout_ms = 300;
    let gateway = Gateway::start(&config).await;
    for (what, sent) in [
        ("silent", &b""[..]),
        ("half a request head", &b"GET /healthz HTTP/1.1\r\nHost: gateway\r\nX-Slow: "[..]),
        ("half an HTTP/2 preface", &b"PRI * HTTP/2.0\r\n"[..]),
    ] {
        let mut stream = TcpStream::connect(gateway.addr).await.unwrap();
        stream.write_all(sent).await.unwrap();
        let took = assert_closed_by_gateway(&mut stream, Duration::from_secs(5), what).await;
        assert!(took >= Duration::from_millis(200), "{what}: closed after {took:?}, before the timeout");
    }

    // A keep-alive connection is served, then closed once idle for as long.
    let mut stream = TcpStream::connect(gateway.addr).await.unwrap();
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n").await.unwrap();
    let mut answer = vec![0_u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut answer)).await.unwrap().unwrap();
    let answer = String::from_utf8_lossy(&answer[..read]);
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert_closed_by_gateway(&mut stream, Duration::from_secs(5), "idle keep-alive").await;
}

/// A 10 MB body is refused from its Content-Length, before it is read: the client here sends
/// only its first kilobyte and still gets the 413.
#[tokio::test]
async fn a_10_mb_body_is_413_before_the_gateway_reads_it() {
    let app = spawn_app().await;
    let address = app.base.trim_start_matches("http://").to_owned();
    for (path, content_type) in [("/user/login", "application/json"), ("/token", "application/x-www-form-urlencoded")] {
        let mut stream = TcpStream::connect(&address).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
            10 * 1024 * 1024
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(&[b'a'; 1024]).await.unwrap();
        let mut response = vec![0u8; 4096];
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut response))
            .await
            .expect("answered without waiting for the other 10 MB")
            .unwrap();
        let text = String::from_utf8_lossy(&response[..read]);
        assert!(text.starts_with("HTTP/1.1 413"), "{path}: {text}");
    }
}
