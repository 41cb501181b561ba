//! SIGTERM while 200 calls are in flight through the real `gateway` binary (issue 5,
//! "Shutdown"): every accepted call completes with its normal answer, a new connection is
//! refused, and the process exits 0 within `http.shutdown_grace_seconds`.
//!
//! The calls are held at a gate in a scripted auth-svc, so "in flight" is a fact the test
//! observes (auth-svc has received all 200) rather than a timing guess; the gate opens only
//! after the signal, once the gateway has said it stopped accepting.

use std::{
    io::{BufRead as _, BufReader},
    net::SocketAddr,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use tonic_health::ServingStatus;

use crate::support::scripted_upstream::{Behavior, ScriptedUpstream};

const CALLS: usize = 200;
const GRACE_SECONDS: u64 = 5;

/// The `gateway` binary, its log lines (stdout) arriving on `lines`; killed when dropped.
struct GatewayProcess {
    child: Child,
    lines: mpsc::Receiver<String>,
    log: Vec<String>,
}

impl GatewayProcess {
    fn spawn(upstream: SocketAddr) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_gateway"))
            .env("GATEWAY__LISTEN", "127.0.0.1:0")
            .env("GATEWAY__UPSTREAM", format!("http://{upstream}"))
            .env("GATEWAY__HTTP__SHUTDOWN_GRACE_SECONDS", GRACE_SECONDS.to_string())
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the gateway binary starts");
        let stdout = child.stdout.take().unwrap();
        let (sender, lines) = mpsc::channel();
        // Drained to the end, so the gateway never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, lines, log: Vec::new() }
    }

    /// The first log line containing `needle`, waiting at most `within`.
    fn wait_for_line(&mut self, needle: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let line = strip_ansi(&line);
                    self.log.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!("no log line with {needle:?} within {within:?}; log so far:\n{}", self.log.join("\n")),
            }
        }
    }

    /// The address from the `serving REST address=…` line.
    fn address(&mut self) -> SocketAddr {
        let line = self.wait_for_line("serving REST", Duration::from_secs(20));
        let value = line
            .split_whitespace()
            .find_map(|field| field.strip_prefix("address="))
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        value.parse().unwrap_or_else(|_| panic!("not an address: {value:?}"))
    }

    fn terminate(&self) {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success(), "kill -TERM failed");
    }

    /// Waits for the process to exit, at most `within`; its exit code.
    fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(Instant::now() < deadline, "the gateway was still running {within:?} after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters final-letter
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// One call of the four kinds the tutorials make, and the answer it must get.
async fn call(client: Client, base: String, i: usize) -> Result<(StatusCode, Value, Value), String> {
    let (request, expected) = match i % 4 {
        0 => (
            client.post(format!("{base}/user/login")).json(&json!({"username": "alice", "password": "secret123"})),
            json!({"accessToken": "a.b.c", "refreshToken": "d.e.f", "expiresIn": 60}),
        ),
        1 => (
            client.post(format!("{base}/token")).form(&[("username", "licat"), ("password", "licat-password")]),
            json!({"access_token": "a.b.c", "token_type": "bearer", "expires_in": 60, "refresh_token": "d.e.f"}),
        ),
        2 => (
            client.get(format!("{base}/user/info")).bearer_auth("a.b.c"),
            json!({"id": 7, "username": "fake", "role": "admin"}),
        ),
        _ => (
            client.get(format!("{base}/protected")).bearer_auth("a.b.c"),
            json!({"message": "Hello fake! This is a protected route"}),
        ),
    };
    let response = request.send().await.map_err(|err| format!("call {i}: {err:?}"))?;
    let status = response.status();
    let body = response.json::<Value>().await.map_err(|err| format!("call {i}: body: {err:?}"))?;
    Ok((status, body, expected))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_accepted_calls_refuses_new_ones_and_exits_0_within_the_grace_period() {
    let upstream = ScriptedUpstream::start(Behavior::Gated, ServingStatus::Serving, None).await;
    let mut gateway = GatewayProcess::spawn(upstream.addr);
    // The process is watched with blocking calls; `block_in_place` keeps the runtime's other
    // worker serving the calls and the scripted auth-svc meanwhile.
    let addr = tokio::task::block_in_place(|| gateway.address());
    let base = format!("http://{addr}");
    // HTTP/1 only (no `http2` feature): each concurrent call has a connection of its own.
    let client = Client::builder().no_proxy().timeout(Duration::from_secs(30)).build().unwrap();

    let calls: Vec<_> = (0..CALLS).map(|i| tokio::spawn(call(client.clone(), base.clone(), i))).collect();
    let started = Instant::now();
    while upstream.calls() < CALLS {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "only {} of {CALLS} calls reached auth-svc",
            upstream.calls()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // All 200 accepted and waiting on auth-svc.
    gateway.terminate();
    let signalled = Instant::now();
    tokio::task::block_in_place(|| gateway.wait_for_line("shutting down", Duration::from_secs(5)));
    match tokio::net::TcpStream::connect(addr).await {
        Err(err) => assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}"),
        Ok(_) => panic!("a new connection was accepted after SIGTERM"),
    }
    // The calls stay in flight a while after the signal, then auth-svc answers them.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(gateway.child.try_wait().unwrap().is_none(), "the gateway exited with {CALLS} calls in flight");
    upstream.open_gate();

    for (i, call) in calls.into_iter().enumerate() {
        let (status, body, expected) = call.await.unwrap().unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(status, StatusCode::OK, "call {i}: {body}");
        assert_eq!(body, expected, "call {i}");
    }
    let code = tokio::task::block_in_place(|| gateway.wait_exit(Duration::from_secs(GRACE_SECONDS + 5)));
    let took = signalled.elapsed();
    assert_eq!(code, Some(0), "exit code after SIGTERM");
    assert!(took < Duration::from_secs(GRACE_SECONDS), "exited {took:?} after SIGTERM; grace is {GRACE_SECONDS} s");
    assert_eq!(upstream.calls(), CALLS);
}
