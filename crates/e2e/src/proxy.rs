//! A TCP proxy the fault tests put between the service and a store, to cut the connection
//! without disturbing the shared server: `sever()` closes every forwarded connection and makes
//! new ones fail at once (accepted, then closed), `restore()` forwards again on the same port.
//! `retarget()` stands in for a Kubernetes Service whose pods are replaced: new connections go
//! to the new target, open ones are closed so clients reconnect.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::watch,
    task::{JoinHandle, JoinSet},
};

#[derive(Clone, Copy, Debug)]
struct State {
    /// Where new connections are forwarded.
    target: SocketAddr,
    severed: bool,
    /// Bumped by every `sever()` and `retarget()`: a connection forwarded in an earlier epoch
    /// is closed.
    epoch: u64,
}

pub struct TcpProxy {
    addr: SocketAddr,
    state: Arc<watch::Sender<State>>,
    /// Connections being forwarded now.
    live: Arc<watch::Sender<usize>>,
    /// Owns the listener and (in a `JoinSet`) every connection task: aborting it ends them all.
    accept: JoinHandle<()>,
}

impl TcpProxy {
    /// Listens on 127.0.0.1:0 and forwards every connection to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy binds");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(watch::Sender::new(State { target, severed: false, epoch: 0 }));
        let live = Arc::new(watch::Sender::new(0_usize));
        let accept = tokio::spawn(accept_loop(listener, state.clone(), live.clone()));
        Self { addr, state, live, accept }
    }

    /// As [`in_front_of`](Self::in_front_of) for a database URL, with its scheme's default port
    /// (MySQL/MariaDB 3306, PostgreSQL 5432).
    pub async fn in_front_of_database(url: &str) -> (Self, String) {
        let default_port = if url.starts_with("mysql") { 3306 } else { 5432 };
        Self::in_front_of(url, default_port).await
    }

    /// Starts a proxy to the `host:port` of `url` (`default_port` when it names none) and
    /// returns it with `url` rewritten to go through it.
    pub async fn in_front_of(url: &str, default_port: u16) -> (Self, String) {
        let (before, host_port, after) = split_authority(url);
        let with_port = if host_port.rsplit_once(':').is_some_and(|(_, port)| port.parse::<u16>().is_ok()) {
            host_port.to_owned()
        } else {
            format!("{host_port}:{default_port}")
        };
        let target = tokio::net::lookup_host(&with_port)
            .await
            .unwrap_or_else(|err| panic!("cannot resolve {with_port}: {err}"))
            .next()
            .unwrap_or_else(|| panic!("{with_port} resolves to nothing"));
        let proxy = Self::start(target).await;
        let proxied = format!("{before}{}{after}", proxy.addr());
        (proxy, proxied)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Closes every forwarded connection (returning once they are all closed) and refuses new
    /// ones until [`restore`](Self::restore).
    pub async fn sever(&self) {
        self.state.send_modify(|state| {
            state.severed = true;
            state.epoch += 1;
        });
        let mut live = self.live.subscribe();
        tokio::time::timeout(Duration::from_secs(5), live.wait_for(|n| *n == 0))
            .await
            .expect("severed connections close promptly")
            .expect("proxy is running");
    }

    /// Forwards new connections again, on the same port.
    pub fn restore(&self) {
        self.state.send_if_modified(|state| std::mem::replace(&mut state.severed, false));
    }

    /// Forwards new connections to `target` and closes the open ones, so clients reconnect
    /// (to `target`); returns after giving them a moment to notice.
    pub async fn retarget(&self, target: SocketAddr) {
        self.state.send_modify(|state| {
            state.target = target;
            state.epoch += 1;
        });
        // Let clients see the closed connections before their next request.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    /// Connections being forwarded now.
    pub fn live_connections(&self) -> usize {
        *self.live.borrow()
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<watch::Sender<State>>, live: Arc<watch::Sender<usize>>) {
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let Ok((client, _)) = listener.accept().await else {
            // Out of descriptors or the like: do not spin.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        // Subscribing marks the current state seen: a sever from now on wakes the connection.
        let mut watch = state.subscribe();
        let at_accept = *watch.borrow_and_update();
        if at_accept.severed {
            drop(client);
            continue;
        }
        let guard = LiveGuard::new(live.clone());
        connections.spawn(async move {
            let _guard = guard;
            tokio::select! {
                () = forward(client, at_accept.target) => {}
                _ = watch.wait_for(|now| now.epoch != at_accept.epoch) => {}
            }
            // Both sockets drop here: the client and the store see the connection close.
        });
    }
}

async fn forward(mut client: TcpStream, target: SocketAddr) {
    let Ok(mut upstream) = TcpStream::connect(target).await else { return };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}

/// Counts a connection as live from accept until its task ends (or is aborted).
struct LiveGuard(Arc<watch::Sender<usize>>);

impl LiveGuard {
    fn new(live: Arc<watch::Sender<usize>>) -> Self {
        live.send_modify(|n| *n += 1);
        Self(live)
    }
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

/// `scheme://[user@]host:port/rest` → (`scheme://[user@]`, `host:port`, `/rest`).
fn split_authority(url: &str) -> (&str, &str, &str) {
    let start = url.find("://").map_or(0, |i| i + 3);
    let end = url[start..].find(['/', '?', '#']).map_or(url.len(), |i| start + i);
    let host_start = url[start..end].rfind('@').map_or(start, |i| start + i + 1);
    (&url[..host_start], &url[host_start..end], &url[end..])
}

// Tests of the proxy itself (`cargo test -p e2e -- proxy`).

/// An echo server: what the proxy forwards to.
async fn echo_server() -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut connections = JoinSet::new();
        while let Ok((mut socket, _)) = listener.accept().await {
            connections.spawn(async move {
                let (mut read, mut write) = socket.split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
            });
        }
    });
    (addr, task)
}

async fn echoes(stream: &mut TcpStream) -> bool {
    if stream.write_all(b"ping").await.is_err() {
        return false;
    }
    let mut answer = [0_u8; 4];
    matches!(tokio::time::timeout(Duration::from_secs(2), stream.read_exact(&mut answer)).await, Ok(Ok(4)))
        && &answer == b"ping"
}

/// EOF or an error within a second: the connection is closed.
async fn closed(stream: &mut TcpStream) -> bool {
    let mut byte = [0_u8; 1];
    matches!(tokio::time::timeout(Duration::from_secs(1), stream.read(&mut byte)).await, Ok(Ok(0) | Err(_)))
}

#[tokio::test]
async fn severs_live_and_new_connections_and_restores_on_the_same_port() {
    let (echo, echo_task) = echo_server().await;
    let proxy = TcpProxy::start(echo).await;
    let mut first = TcpStream::connect(proxy.addr()).await.unwrap();
    assert!(echoes(&mut first).await, "forwards");
    assert_eq!(proxy.live_connections(), 1);

    proxy.sever().await;
    assert_eq!(proxy.live_connections(), 0);
    assert!(closed(&mut first).await, "a live connection is closed by sever");
    let mut during = TcpStream::connect(proxy.addr()).await.unwrap();
    assert!(closed(&mut during).await, "a new connection is closed at once while severed");

    proxy.restore();
    let mut after = TcpStream::connect(proxy.addr()).await.unwrap();
    assert!(echoes(&mut after).await, "forwards again on the same port");
    drop(proxy);
    assert!(closed(&mut after).await, "dropping the proxy closes its connections");
    echo_task.abort();
}

#[tokio::test]
async fn retarget_closes_open_connections_and_forwards_new_ones_to_the_new_target() {
    let (old, old_task) = echo_server().await;
    let (new, new_task) = echo_server().await;
    let proxy = TcpProxy::start(old).await;
    let mut before = TcpStream::connect(proxy.addr()).await.unwrap();
    assert!(echoes(&mut before).await, "forwards to the first target");

    proxy.retarget(new).await;
    assert!(closed(&mut before).await, "an open connection is closed by retarget");
    // With the old target gone, only the new one can answer.
    old_task.abort();
    let _ = old_task.await;
    let mut after = TcpStream::connect(proxy.addr()).await.unwrap();
    assert!(echoes(&mut after).await, "a new connection reaches the new target");
    new_task.abort();
}

#[test]
fn authorities_are_found_in_store_urls() {
    assert_eq!(split_authority("redis://127.0.0.1:6379"), ("redis://", "127.0.0.1:6379", ""));
    assert_eq!(split_authority("redis://:pw@localhost/2"), ("redis://:pw@", "localhost", "/2"));
    assert_eq!(
        split_authority("postgres://postgres@127.0.0.1:5432/test?sslmode=disable"),
        ("postgres://postgres@", "127.0.0.1:5432", "/test?sslmode=disable")
    );
}
