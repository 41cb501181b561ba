//! The one connection server of both binaries (HTTP/1 and HTTP/2 for the gateway, HTTP/2 only
//! for auth-svc's gRPC), on hyper-util. Neither `axum::serve` nor tonic's server bounds what a
//! connection may cost before or between requests, so this one does, per connection:
//!
//! - a deadline for the first complete request head ([`ConnectionLimits::header_read_timeout`]),
//!   which also covers a client that connects and stays silent, sends only the HTTP/2 preface,
//!   or trickles its first HEADERS frame (hyper's own header timeout covers HTTP/1 only);
//! - an idle timeout: no request in flight (response bodies included) for
//!   [`ConnectionLimits::idle_timeout`] closes the connection gracefully (HTTP/2 GOAWAY), and a
//!   client that ignores the GOAWAY loses the connection [`CLOSE_BACKSTOP`] later;
//! - HTTP/2 `SETTINGS_MAX_CONCURRENT_STREAMS`, keepalive pings (a peer that stops answering them
//!   is dropped) and the header-list limit; `TCP_NODELAY`;
//! - graceful shutdown: stop accepting, let in-flight requests finish within the grace period,
//!   then close whatever is left.

use std::{
    future::Future,
    net::SocketAddr,
    pin::{Pin, pin},
    sync::{Arc, OnceLock},
    task::{Context, Poll},
    time::Duration,
};

use http::{Request, Response};
/// The request body type of the services [`serve`] runs.
pub use hyper::body::Incoming;
use hyper::body::{Body, Frame, SizeHint};
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto,
};
use tokio::{net::TcpListener, sync::watch, task::JoinSet};
use tower::{Service, ServiceExt as _};

use crate::tls::{PeerCertificate, ServerTls};

/// Errors services and bodies may fail with (hyper's own bound).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What serves the requests of a connection: a tower service that each connection clones and
/// whose responses hyper can write from any thread (the bounds hyper-util's builder asks for,
/// written once).
pub trait ConnectionService:
    Service<Request<Incoming>, Response = Response<Self::Body>, Future: Send + 'static, Error: Into<BoxError>>
    + Clone
    + Send
    + 'static
{
    type Body: ResponseBody;
}

impl<S, B: ResponseBody> ConnectionService for S
where
    S: Service<Request<Incoming>, Response = Response<B>, Future: Send + 'static, Error: Into<BoxError>>
        + Clone
        + Send
        + 'static,
{
    type Body = B;
}

/// A response body hyper can send from any thread.
pub trait ResponseBody: Body<Data: Send, Error: Into<BoxError>> + Send + 'static {}

impl<B> ResponseBody for B where B: Body<Data: Send, Error: Into<BoxError>> + Send + 'static {}

/// How long a connection that was asked to close (idle, or no request in time), and has nothing
/// in flight, may stay open waiting for the client's part of the HTTP/2 goodbye.
pub const CLOSE_BACKSTOP: Duration = Duration::from_secs(1);

/// hyper refuses an HTTP/1 read buffer smaller than this.
const MIN_HTTP1_BUFFER_BYTES: usize = 8192;

/// What one connection may hold and for how long.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// HTTP/1.1 as well as HTTP/2 (prior knowledge); false: HTTP/2 only.
    pub accept_http1: bool,
    /// Longest wait for the first complete request head after accepting; for HTTP/1 also the
    /// longest wait for each later request head.
    pub header_read_timeout: Duration,
    /// A connection with no request in flight this long is closed.
    pub idle_timeout: Duration,
    /// HTTP/2 streams a client may have open at once on one connection.
    pub max_concurrent_streams: u32,
    /// Interval of HTTP/2 keepalive pings; `None` sends none.
    pub keepalive_interval: Option<Duration>,
    /// A peer that does not answer a keepalive ping within this is dropped.
    pub keepalive_timeout: Duration,
    /// Largest request head: the HTTP/2 header list, and the HTTP/1 read buffer.
    pub max_header_list_bytes: u32,
}

/// The two ends of an accepted connection, for the service of that connection.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    pub local_addr: Option<SocketAddr>,
    pub remote_addr: SocketAddr,
    /// The client's certificate under mutual TLS; set once the handshake is done, before the
    /// first request reaches the service.
    pub peer_certificate: Arc<OnceLock<PeerCertificate>>,
}

/// Serves `listener` until `shutdown` completes: each accepted connection gets the service
/// `make_service` builds for it, behind a TLS handshake when `tls` is given (within the header
/// timeout, in the connection's own task, so a slow handshake holds up no other). Then stops
/// accepting (the port is closed at once), asks every connection to finish its requests and
/// close, waits at most `grace` for that, and closes what is left.
pub async fn serve<M, S>(
    listener: TcpListener,
    tls: Option<Arc<ServerTls>>,
    mut make_service: M,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) where
    M: FnMut(ConnectionInfo) -> S,
    S: ConnectionService,
{
    let builder = Arc::new(connection_builder(&limits));
    let limits = Arc::new(limits);
    // Dropping `stop` tells every connection to shut down gracefully.
    let (stop, stopping) = watch::channel(());
    let mut connections = JoinSet::new();
    let mut shutdown = pin!(shutdown);
    loop {
        let (stream, remote_addr) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    accept_failed(err).await;
                    continue;
                }
            },
        };
        // Reap finished connections so the set holds live ones only.
        while connections.try_join_next().is_some() {}
        let _ = stream.set_nodelay(true);
        let info =
            ConnectionInfo { local_addr: stream.local_addr().ok(), remote_addr, peer_certificate: Arc::default() };
        let peer_certificate = info.peer_certificate.clone();
        let service = make_service(info);
        let (builder, limits, stopping) = (builder.clone(), limits.clone(), stopping.clone());
        match &tls {
            None => connections.spawn(serve_connection(TokioIo::new(stream), service, builder, limits, stopping)),
            Some(tls) => {
                let tls = tls.clone();
                connections.spawn(async move {
                    match tokio::time::timeout(limits.header_read_timeout, tls.accept(stream)).await {
                        Ok(Ok((stream, peer))) => {
                            if let Some(peer) = peer {
                                let _ = peer_certificate.set(peer);
                            }
                            serve_connection(TokioIo::new(stream), service, builder, limits, stopping).await;
                        }
                        // A plain-text client, a certificate refused, a client that went away.
                        Ok(Err(err)) => tracing::debug!(error = %err, "TLS handshake failed"),
                        Err(_) => tracing::debug!("TLS handshake timed out"),
                    }
                })
            }
        };
    }
    drop(listener);
    tracing::info!(connections = connections.len(), "shutting down: finishing in-flight requests");
    drop((stop, stopping));
    let drained = tokio::time::timeout(grace, async { while connections.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(
            grace_seconds = grace.as_secs_f64(),
            connections = connections.len(),
            "grace period over; closing remaining connections"
        );
        connections.shutdown().await;
    }
}

/// The hyper-util builder with every limit of `limits`.
fn connection_builder(limits: &ConnectionLimits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    if !limits.accept_http1 {
        builder = builder.http2_only();
    }
    let head_bytes = usize::try_from(limits.max_header_list_bytes).unwrap_or(usize::MAX);
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(head_bytes.max(MIN_HTTP1_BUFFER_BYTES));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(limits.max_header_list_bytes)
        .max_concurrent_streams(limits.max_concurrent_streams)
        .keep_alive_interval(limits.keepalive_interval)
        .keep_alive_timeout(limits.keepalive_timeout);
    builder
}

/// Why the watchdog of a connection wants it closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Closing {
    /// No complete request head within the header timeout.
    NoRequest,
    /// Nothing in flight for the idle timeout.
    Idle,
    /// Asked to close before, and still open with nothing in flight.
    Lingering,
}

/// Serves one connection until it ends, is closed by its watchdog, or shutdown (`stopping`
/// changes or closes) and its in-flight requests are answered.
async fn serve_connection<S, I>(
    io: TokioIo<I>,
    service: S,
    builder: Arc<auto::Builder<TokioExecutor>>,
    limits: Arc<ConnectionLimits>,
    mut stopping: watch::Receiver<()>,
) where
    S: ConnectionService,
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (activity, watched) = watch::channel(Activity::default());
    let service = Tracked { inner: service, activity: Arc::new(activity) };
    let mut connection = pin!(builder.serve_connection(io, service));
    let mut watchdog: Pin<Box<dyn Future<Output = Closing> + Send>> =
        Box::pin(watch_activity(watched.clone(), limits.header_read_timeout, limits.idle_timeout));
    let mut draining = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(err) = result {
                    // Header timeouts, 431s, dropped keepalives, clients that went away.
                    tracing::debug!(error = %err, "connection closed with an error");
                }
                return;
            }
            closing = &mut watchdog => {
                if closing == Closing::Lingering {
                    tracing::debug!("closing a connection that did not finish its goodbye");
                    return;
                }
                tracing::debug!(?closing, "closing a connection");
                connection.as_mut().graceful_shutdown();
                watchdog = Box::pin(lingering(watched.clone()));
            }
            _ = stopping.changed(), if !draining => {
                draining = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

/// What a connection is doing, as its watchdog sees it.
#[derive(Debug, Default, Clone, Copy)]
struct Activity {
    /// A complete request head has arrived.
    started: bool,
    /// Requests whose response (body included) is not finished.
    in_flight: usize,
}

/// Resolves when the connection should close: no request head within `header_read_timeout`
/// of the start, or later nothing in flight for `idle_timeout`.
async fn watch_activity(
    mut activity: watch::Receiver<Activity>,
    header_read_timeout: Duration,
    idle_timeout: Duration,
) -> Closing {
    let first_request = async {
        while !activity.borrow_and_update().started {
            if activity.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    };
    if tokio::time::timeout(header_read_timeout, first_request).await.is_err() {
        return Closing::NoRequest;
    }
    idle_for(&mut activity, idle_timeout).await;
    Closing::Idle
}

/// After a graceful close was asked for: resolves once nothing has been in flight for
/// [`CLOSE_BACKSTOP`].
async fn lingering(mut activity: watch::Receiver<Activity>) -> Closing {
    idle_for(&mut activity, CLOSE_BACKSTOP).await;
    Closing::Lingering
}

/// Resolves once no request has been in flight for `timeout` without a break.
async fn idle_for(activity: &mut watch::Receiver<Activity>, timeout: Duration) {
    loop {
        let in_flight = activity.borrow_and_update().in_flight;
        let changed = async {
            if activity.changed().await.is_err() {
                // The service is gone with its connection; nothing will change any more.
                std::future::pending::<()>().await;
            }
        };
        if in_flight > 0 {
            changed.await;
        } else if tokio::time::timeout(timeout, changed).await.is_err() {
            return;
        }
    }
}

/// A connection's service, reporting to the watchdog when requests start and finish.
#[derive(Clone)]
struct Tracked<S> {
    inner: S,
    activity: Arc<watch::Sender<Activity>>,
}

impl<S> hyper::service::Service<Request<Incoming>> for Tracked<S>
where
    S: ConnectionService,
{
    type Response = Response<TrackedBody<S::Body>>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let in_flight = InFlight::begin(self.activity.clone());
        let service = self.inner.clone();
        Box::pin(async move {
            let response = service.oneshot(request).await.map_err(Into::into)?;
            Ok(response.map(|body| TrackedBody { inner: Box::pin(body), _in_flight: in_flight }))
        })
    }
}

/// One request in flight, until dropped (with its response body).
struct InFlight(Arc<watch::Sender<Activity>>);

impl InFlight {
    fn begin(activity: Arc<watch::Sender<Activity>>) -> Self {
        activity.send_modify(|activity| {
            activity.started = true;
            activity.in_flight += 1;
        });
        Self(activity)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.send_modify(|activity| activity.in_flight = activity.in_flight.saturating_sub(1));
    }
}

/// A response body that keeps its request counted as in flight until it is finished or dropped.
pub struct TrackedBody<B> {
    inner: Pin<Box<B>>,
    _in_flight: InFlight,
}

impl<B: Body> Body for TrackedBody<B>
where
    B::Error: Into<BoxError>,
{
    type Data = B::Data;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<B::Data>, BoxError>>> {
        self.inner.as_mut().poll_frame(cx).map_err(Into::into)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// As axum::serve does: a failed accept of one connection is skipped; any other failure (such
/// as running out of file descriptors) is logged and retried after a pause.
async fn accept_failed(err: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(err.kind(), ConnectionAborted | ConnectionRefused | ConnectionReset) {
        return;
    }
    tracing::error!(error = %err, "accepting a connection failed");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::{convert::Infallible, net::SocketAddr, time::Instant};

    use http_body_util::{BodyExt as _, Empty, Full};
    use hyper::body::Bytes;
    use tokio::{
        io::{AsyncReadExt as _, AsyncWriteExt as _},
        net::TcpStream,
        sync::oneshot,
    };

    use super::*;

    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

    fn limits(header_read_timeout: Duration, idle_timeout: Duration) -> ConnectionLimits {
        ConnectionLimits {
            accept_http1: true,
            header_read_timeout,
            idle_timeout,
            max_concurrent_streams: 16,
            keepalive_interval: None,
            keepalive_timeout: Duration::from_secs(10),
            max_header_list_bytes: 16 * 1024,
        }
    }

    /// A server whose one route answers after the number of milliseconds in its path
    /// (`/250`), on 127.0.0.1; stopped by the returned sender, joined by the handle.
    async fn start(
        limits: ConnectionLimits,
        grace: Duration,
    ) -> (SocketAddr, oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let service = tower::service_fn(|request: Request<Incoming>| async move {
            let millis: u64 = request.uri().path().trim_start_matches('/').parse().unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(millis)).await;
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"done"))))
        });
        let (stop, stopped) = oneshot::channel::<()>();
        let server =
            tokio::spawn(serve(listener, None, move |_| service, limits, async move { drop(stopped.await) }, grace));
        (addr, stop, server)
    }

    /// Reads until the server closes the connection (or resets it); how long that took.
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

    /// An HTTP/2 client connection; the handle resolves when the server closes it.
    async fn h2_client(
        addr: SocketAddr,
    ) -> (hyper::client::conn::http2::SendRequest<Empty<Bytes>>, tokio::task::JoinHandle<Instant>) {
        let stream = TcpStream::connect(addr).await.unwrap();
        let (sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await.unwrap();
        let closed = tokio::spawn(async move {
            let _ = connection.await;
            Instant::now()
        });
        (sender, closed)
    }

    async fn get(sender: &mut hyper::client::conn::http2::SendRequest<Empty<Bytes>>, path: &str) -> Bytes {
        let request = Request::get(format!("http://localhost{path}")).body(Empty::new()).unwrap();
        let response = sender.send_request(request).await.unwrap();
        response.into_body().collect().await.unwrap().to_bytes()
    }

    /// 240 connections at once that never send a complete request head (nothing, the HTTP/2
    /// preface alone, the preface and SETTINGS, half an HTTP/1 request line) are all closed
    /// within the header timeout and the close backstop.
    #[tokio::test]
    async fn connections_that_never_send_a_request_are_closed_after_the_header_timeout() {
        let header_read_timeout = Duration::from_millis(300);
        let (addr, _stop, _server) = start(limits(header_read_timeout, Duration::from_secs(60)), Duration::ZERO).await;
        // The preface, then an empty SETTINGS frame (length 0, type 4, no flags, stream 0).
        let preface_and_settings = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0";
        let openings: [&'static [u8]; 4] = [b"", PREFACE, preface_and_settings, b"GET / HT"];
        let started = Instant::now();
        let clients: Vec<_> = (0..240)
            .map(|i| {
                let opening = openings[i % openings.len()];
                tokio::spawn(async move {
                    let mut stream = TcpStream::connect(addr).await.unwrap();
                    stream.write_all(opening).await.unwrap();
                    closed_within(&mut stream, Duration::from_secs(5)).await
                })
            })
            .collect();
        let bound = header_read_timeout + CLOSE_BACKSTOP + Duration::from_millis(700);
        for client in clients {
            let after = client.await.unwrap();
            assert!(after >= header_read_timeout / 2, "closed after {after:?}");
            assert!(after <= bound, "closed after {after:?}");
        }
        assert!(started.elapsed() >= header_read_timeout);
        // The server still serves prompt clients.
        let (mut sender, _) = h2_client(addr).await;
        assert_eq!(get(&mut sender, "/0").await, "done");
    }

    #[tokio::test]
    async fn an_idle_http2_connection_is_closed_after_the_idle_timeout() {
        let idle_timeout = Duration::from_millis(400);
        let (addr, _stop, _server) = start(limits(Duration::from_secs(5), idle_timeout), Duration::ZERO).await;
        let (mut sender, closed) = h2_client(addr).await;
        assert_eq!(get(&mut sender, "/0").await, "done");
        let answered = Instant::now();
        let closed_at = tokio::time::timeout(Duration::from_secs(5), closed).await.expect("closed").unwrap();
        let idle = closed_at - answered;
        assert!(idle >= idle_timeout / 2, "closed after {idle:?}");
        assert!(idle <= idle_timeout + CLOSE_BACKSTOP + Duration::from_millis(500), "closed after {idle:?}");
    }

    #[tokio::test]
    async fn a_request_in_flight_longer_than_the_idle_timeout_is_not_cut() {
        let idle_timeout = Duration::from_millis(200);
        let (addr, _stop, _server) = start(limits(Duration::from_secs(5), idle_timeout), Duration::ZERO).await;
        let (mut sender, closed) = h2_client(addr).await;
        // Five idle timeouts in flight; a second call starts meanwhile on the same connection.
        let mut first = sender.clone();
        let slow = get(&mut first, "/1000");
        let later = async {
            tokio::time::sleep(Duration::from_millis(600)).await;
            get(&mut sender, "/0").await
        };
        let (slow, later) = tokio::join!(slow, later);
        assert_eq!((slow.as_ref(), later.as_ref()), (&b"done"[..], &b"done"[..]));
        assert!(!closed.is_finished(), "the connection was cut while busy");
    }

    /// A client that stops answering keepalive pings is dropped after interval + timeout, even
    /// with a request in flight (which keeps the idle timeout away).
    #[tokio::test]
    async fn a_client_that_ignores_keepalive_pings_is_dropped() {
        let mut limits = limits(Duration::from_secs(5), Duration::from_secs(60));
        limits.keepalive_interval = Some(Duration::from_millis(300));
        limits.keepalive_timeout = Duration::from_millis(300);
        let (addr, _stop, _server) = start(limits, Duration::ZERO).await;
        let mut stream = TcpStream::connect(addr).await.unwrap();
        // Preface, empty SETTINGS, then stream 1: GET /60000 (HPACK: GET, http, :path and
        // :authority as literals without indexing), END_HEADERS | END_STREAM.
        let mut block = vec![0x82, 0x86, 0x04, 6];
        block.extend_from_slice(b"/60000");
        block.extend([0x01, 9]);
        block.extend_from_slice(b"localhost");
        let mut opening = [PREFACE, b"\0\0\0\x04\0\0\0\0\0"].concat();
        opening.extend_from_slice(&[0, 0, u8::try_from(block.len()).unwrap(), 0x1, 0x5, 0, 0, 0, 1]);
        opening.extend_from_slice(&block);
        stream.write_all(&opening).await.unwrap();
        let after = closed_within(&mut stream, Duration::from_secs(5)).await;
        assert!(after >= Duration::from_millis(300), "closed after {after:?}");
        assert!(after <= Duration::from_millis(2_000), "closed after {after:?}");
    }

    /// Shutdown lets calls in flight finish, refuses new connections, and closes a call that
    /// outlives the grace period when the grace period ends.
    #[tokio::test]
    async fn shutdown_drains_in_flight_calls_within_the_grace_period() {
        let grace = Duration::from_millis(800);
        let (addr, stop, server) = start(limits(Duration::from_secs(5), Duration::from_secs(60)), grace).await;
        let (mut sender, _closed) = h2_client(addr).await;
        let finishing = tokio::spawn({
            let mut sender = sender.clone();
            async move { get(&mut sender, "/300").await }
        });
        let stuck = {
            let request = Request::get("http://localhost/60000").body(Empty::new()).unwrap();
            sender.send_request(request)
        };
        let stuck = tokio::spawn(stuck);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let stopping = Instant::now();
        stop.send(()).unwrap();
        assert_eq!(finishing.await.unwrap(), "done");
        tokio::time::timeout(grace + Duration::from_secs(1), server).await.expect("server stopped").unwrap();
        let stopped_after = stopping.elapsed();
        assert!(stopped_after >= grace, "stopped after {stopped_after:?}");
        assert!(stuck.await.unwrap().is_err(), "the stuck call was answered");
        assert!(TcpStream::connect(addr).await.is_err(), "still accepting");
    }
}
