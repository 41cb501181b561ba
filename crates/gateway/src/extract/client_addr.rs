//! Which client a request comes from: the middleware that records it as a [`ClientIp`], which
//! the `Forwarded` extractor and the log span read. auth-svc throttles failed logins per client
//! address, read from the `x-forwarded-for` metadata the gateway always sets (see
//! `upstream::Forwarded`), so the address must be one the client cannot choose: the TCP peer,
//! or, when the gateway sits behind a trusted proxy (`http.trusted_proxy_header`), the entry
//! that proxy added to its header.

use std::net::{IpAddr, SocketAddr};

use axum::{
    extract::{ConnectInfo, Request, State},
    http::{HeaderMap, HeaderName},
};

/// The address of the client a request came from, as resolved by [`resolve_client_ip`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

/// Middleware: puts the request's [`ClientIp`] in its extensions. `trusted` is the header a
/// trusted proxy in front of the gateway writes; `None` takes the TCP peer. Without either (a
/// request not served over TCP, as in-process tests make) no address is recorded.
pub async fn resolve_client_ip(State(trusted): State<Option<HeaderName>>, mut request: Request) -> Request {
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(peer)| peer.ip());
    if let Some(ip) = client_ip(request.headers(), peer, trusted.as_ref()) {
        request.extensions_mut().insert(ClientIp(ip));
    }
    request
}

/// The trusted proxy's entry if there is a usable one, else the TCP peer.
pub fn client_ip(headers: &HeaderMap, peer: Option<IpAddr>, trusted: Option<&HeaderName>) -> Option<IpAddr> {
    let proxied = trusted.and_then(|name| {
        let ip = from_proxy_header(headers, name);
        if ip.is_none() {
            tracing::debug!(header = %name, "no usable client address in the trusted proxy header; using the peer");
        }
        ip
    });
    proxied.or(peer).map(|ip| ip.to_canonical())
}

/// The last non-empty entry of the last `name` header: a proxy appends the address it saw (to
/// `x-forwarded-for`) or writes the only one (`x-real-ip`); whatever stands before that entry
/// came from the client and proves nothing.
fn from_proxy_header(headers: &HeaderMap, name: &HeaderName) -> Option<IpAddr> {
    let value = headers.get_all(name).iter().next_back()?.to_str().ok()?;
    let entry = value.rsplit(',').map(str::trim).find(|entry| !entry.is_empty())?;
    parse_address(entry)
}

/// `192.0.2.1`, `2001:db8::1`, and the same with a port (`192.0.2.1:4711`, `[2001:db8::1]:4711`)
/// or in brackets (`[2001:db8::1]`), as proxies write them.
fn parse_address(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|address| address.ip()))
        .or_else(|| entry.strip_prefix('[')?.strip_suffix(']')?.parse().ok())
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    const PEER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(HeaderName::from_static(name), HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn without_a_trusted_header_the_peer_counts_whatever_the_client_sends() {
        let sent = headers(&[("x-forwarded-for", "6.6.6.6"), ("x-real-ip", "7.7.7.7")]);
        assert_eq!(client_ip(&sent, Some(PEER), None), Some(PEER));
        assert_eq!(client_ip(&sent, None, None), None);
    }

    #[test]
    fn x_forwarded_for_takes_the_entry_the_proxy_appended() {
        let xff = HeaderName::from_static("x-forwarded-for");
        let one = headers(&[("x-forwarded-for", "6.6.6.6, 203.0.113.9")]);
        assert_eq!(client_ip(&one, Some(PEER), Some(&xff)), Some("203.0.113.9".parse().unwrap()));
        let two_lines = headers(&[("x-forwarded-for", "6.6.6.6"), ("x-forwarded-for", "203.0.113.9 ,")]);
        assert_eq!(client_ip(&two_lines, Some(PEER), Some(&xff)), Some("203.0.113.9".parse().unwrap()));
        let with_ports = headers(&[("x-forwarded-for", "[2001:db8::7]:4711")]);
        assert_eq!(client_ip(&with_ports, Some(PEER), Some(&xff)), Some("2001:db8::7".parse().unwrap()));
        let v4_port = headers(&[("x-forwarded-for", "198.51.100.4:80")]);
        assert_eq!(client_ip(&v4_port, Some(PEER), Some(&xff)), Some("198.51.100.4".parse().unwrap()));
    }

    #[test]
    fn x_real_ip_and_fallbacks() {
        let real = HeaderName::from_static("x-real-ip");
        let sent = headers(&[("x-real-ip", "[2001:db8::1]")]);
        assert_eq!(client_ip(&sent, Some(PEER), Some(&real)), Some("2001:db8::1".parse().unwrap()));
        for unusable in [headers(&[]), headers(&[("x-real-ip", "unknown")]), headers(&[("x-real-ip", " , ")])] {
            assert_eq!(client_ip(&unusable, Some(PEER), Some(&real)), Some(PEER));
        }
    }

    #[test]
    fn ipv4_mapped_peers_read_as_ipv4() {
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert_eq!(client_ip(&HeaderMap::new(), Some(mapped), None), Some("127.0.0.1".parse().unwrap()));
    }
}
