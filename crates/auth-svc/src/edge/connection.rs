//! One gRPC connection as the server sees it: the per-call span, addresses and deadline, and
//! the `grpc.*` connection limits.

use std::{future::Future, time::Duration};

use service_kit::{
    http_server::{ConnectionInfo, ConnectionLimits, Incoming},
    telemetry,
};
use tonic::{Status, service::Routes, transport::server::TcpConnectInfo};
use tower::{Service, ServiceExt as _};
use tracing::Instrument as _;

use crate::config::GrpcConfig;

/// The gRPC services as one connection's service: each call gets the connection's addresses
/// (tonic's `Request::remote_addr` reads them), a span with its method and request id, and a
/// deadline: the client's `grpc-timeout`, capped at `max_call`.
///
/// The deadline bounds the time until the response starts, as tonic's own does. A unary call
/// has read its whole request body by then, so one whose body never ends is answered CANCELLED
/// and dropped with its stream; a streaming response (Health/Watch, reflection) starts at once
/// and may then last as long as its client wants.
pub fn grpc_service(
    routes: Routes,
    connection: ConnectionInfo,
    max_call: Duration,
) -> impl Service<
    http::Request<Incoming>,
    Response = http::Response<tonic::body::Body>,
    Error = std::convert::Infallible,
    Future = impl Future<Output = Result<http::Response<tonic::body::Body>, std::convert::Infallible>> + Send,
> + Clone
+ Send
+ 'static {
    let addresses = TcpConnectInfo { local_addr: connection.local_addr, remote_addr: Some(connection.remote_addr) };
    let peer_certificate = connection.peer_certificate;
    tower::service_fn(move |mut request: http::Request<Incoming>| {
        request.extensions_mut().insert(addresses.clone());
        // Set by the TLS handshake, which is over before the first request.
        if let Some(certificate) = peer_certificate.get() {
            request.extensions_mut().insert(certificate.clone());
        }
        let request_id =
            request.headers().get(auth_api::metadata::REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("");
        let span = call_span(&request, request_id);
        let deadline = client_deadline(request.headers()).map_or(max_call, |client| client.min(max_call));
        let call = routes.clone().oneshot(request).instrument(span);
        async move {
            // As tonic's own server answers a call past its deadline.
            tokio::time::timeout(deadline, call)
                .await
                .unwrap_or_else(|_| Ok(Status::cancelled("Timeout expired").into_http()))
        }
    })
}

/// The call's span: its method and request id. With tracing on it continues the caller's trace
/// (the gateway's `traceparent` metadata) and carries the OpenTelemetry RPC attributes.
fn call_span(request: &http::Request<Incoming>, request_id: &str) -> tracing::Span {
    let path = request.uri().path();
    // `/user.v1.UserService/Login`: service and method.
    let (service, method) = path.trim_start_matches('/').split_once('/').unwrap_or(("", path));
    let span = tracing::info_span!(
        "grpc",
        method = %path,
        request_id,
        otel.name = path.trim_start_matches('/'),
        otel.kind = "server",
    );
    telemetry::set_parent_from(&span, request.headers());
    telemetry::set_attribute(&span, "rpc.system", "grpc");
    telemetry::set_attribute(&span, "rpc.service", service.to_owned());
    telemetry::set_attribute(&span, "rpc.method", method.to_owned());
    span
}

/// The deadline a client set with `grpc-timeout` (gRPC over HTTP/2: 1 to 8 digits and a unit,
/// `H` `M` `S` `m` `u` `n`); `None` when absent or malformed, which tonic also ignores.
fn client_deadline(headers: &http::HeaderMap) -> Option<Duration> {
    let value = headers.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if !(1..=8).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount * 3600),
        "M" => Duration::from_secs(amount * 60),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

/// The `grpc.*` connection limits: HTTP/2 only, with room in the header list for an oversized
/// `authorization` to reach the bearer check and get a clear UNAUTHENTICATED, instead of h2
/// tearing down the whole shared connection.
pub fn connection_limits(grpc: &GrpcConfig) -> ConnectionLimits {
    ConnectionLimits {
        accept_http1: false,
        header_read_timeout: Duration::from_millis(grpc.header_read_timeout_ms.get()),
        idle_timeout: Duration::from_secs(grpc.idle_timeout_seconds.get()),
        max_concurrent_streams: grpc.max_concurrent_streams.get(),
        keepalive_interval: (grpc.keepalive_interval_seconds > 0)
            .then(|| Duration::from_secs(grpc.keepalive_interval_seconds)),
        keepalive_timeout: Duration::from_secs(grpc.keepalive_timeout_seconds),
        max_header_list_bytes: MAX_HEADER_LIST_BYTES,
    }
}

/// Largest request header block accepted (h2's default is 16 KiB).
const MAX_HEADER_LIST_BYTES: u32 = 256 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeout_headers_are_read_as_the_protocol_defines_them() {
        let deadline = |value: &str| {
            let mut headers = http::HeaderMap::new();
            headers.insert("grpc-timeout", value.parse().unwrap());
            client_deadline(&headers)
        };
        assert_eq!(deadline("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(deadline("3M"), Some(Duration::from_secs(180)));
        assert_eq!(deadline("99999999S"), Some(Duration::from_secs(99_999_999)));
        assert_eq!(deadline("250m"), Some(Duration::from_millis(250)));
        assert_eq!(deadline("7u"), Some(Duration::from_micros(7)));
        assert_eq!(deadline("1n"), Some(Duration::from_nanos(1)));
        for malformed in ["", "S", "100000000S", "10s", "-1S", "1.5S", "10"] {
            assert_eq!(deadline(malformed), None, "{malformed:?}");
        }
        assert_eq!(client_deadline(&http::HeaderMap::new()), None);
    }
}
