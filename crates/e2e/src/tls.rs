//! gRPC over TLS and mutual TLS (`grpc.tls`), with certificates made here (rcgen): a plain
//! client refused by a TLS server, a client without a certificate refused under mutual TLS,
//! `x-forwarded-for` believed only from the certificate that names the gateway, and a rotated
//! certificate taken up live, without a restart and without dropping an open connection. The
//! gateway: HTTPS on its REST port, and mutual TLS (its own client certificate) to auth-svc.

use std::{path::Path, sync::Arc, time::Duration};

use auth_api::user::v1::{RegisterRequest, user_service_client::UserServiceClient};
use auth_svc::audit::EventType;
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::{ClientConfig, RootCertStore, crypto::ring};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::helpers::{AuditLog, PASSWORD, TestDatabase, test_config};

/// The gateway's name in its client certificate, as `grpc.trusted_forwarder_names` lists it.
const GATEWAY_NAME: &str = "gateway.auth.test";

/// A test CA and what it signs.
struct Authority {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate and its key, as PEM.
struct Issued {
    cert_pem: String,
    key_pem: String,
}

impl Authority {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        Self { issuer: CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap() }
    }

    fn issue(&self, names: &[&str]) -> Issued {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(names.iter().map(|name| name.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(DnType::CommonName, names[0]);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Issued { cert_pem: cert.pem(), key_pem: key.serialize_pem() }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }
}

/// A server on a fresh database with `grpc.tls` from the files in `dir`; `mutual` adds the
/// client CA and the gateway's name.
async fn tls_server(
    dir: &Path,
    mutual: bool,
) -> (std::net::SocketAddr, AuditLog, tokio::sync::oneshot::Sender<()>, TestDatabase) {
    let database = TestDatabase::create().await;
    let mut config = test_config(&database.url);
    config.grpc.tls.cert_file = Some(dir.join("server.crt"));
    config.grpc.tls.key_file = Some(dir.join("server.key"));
    config.grpc.tls.reload_interval_seconds = 1;
    if mutual {
        config.grpc.tls.client_ca_file = Some(dir.join("clients-ca.crt"));
        config.grpc.trusted_forwarder_names = vec![GATEWAY_NAME.to_owned()];
    }
    config.validate().expect("valid");
    let audit = AuditLog::default();
    let app = auth_svc::App::build_with_audit_sinks(&config, vec![Box::new(audit.clone())]).await.unwrap();
    let addr = app.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.serve(async move {
        let _ = stopped.await;
    }));
    (addr, audit, stop, database)
}

/// A rustls client trusting `ca_pem`, presenting `identity` if given, speaking h2.
fn client_config(ca_pem: &str, identity: Option<&Issued>) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap()).unwrap();
    let builder = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match identity {
        Some(identity) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(identity.cert_pem.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(identity.key_pem.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(config)
}

/// A gRPC channel to `addr` over TLS with `config` (server name `localhost`).
async fn tls_channel(
    addr: std::net::SocketAddr,
    config: Arc<ClientConfig>,
) -> Result<Channel, tonic::transport::Error> {
    let connector = TlsConnector::from(config);
    Endpoint::from_static("http://localhost")
        .connect_timeout(Duration::from_secs(5))
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let connector = connector.clone();
            async move {
                let tcp = TcpStream::connect(addr).await?;
                let tls = connector.connect(ServerName::try_from("localhost").unwrap(), tcp).await?;
                Ok::<_, std::io::Error>(TokioIo::new(tls))
            }
        }))
        .await
}

async fn register(channel: Channel, username: &str, forwarded_for: Option<&str>) -> Result<(), tonic::Status> {
    let mut request = tonic::Request::new(RegisterRequest { username: username.into(), password: PASSWORD.into() });
    if let Some(address) = forwarded_for {
        request.metadata_mut().insert("x-forwarded-for", address.parse().unwrap());
    }
    UserServiceClient::new(channel).register(request).await.map(|_| ())
}

/// The certificate the server at `addr` presents in a new handshake.
async fn presented(addr: std::net::SocketAddr, config: Arc<ClientConfig>) -> Vec<u8> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = TlsConnector::from(config).connect(ServerName::try_from("localhost").unwrap(), tcp).await.unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

fn der(pem: &str) -> Vec<u8> {
    CertificateDer::from_pem_slice(pem.as_bytes()).unwrap().to_vec()
}

/// Writes `server` as the server's files (as a rotation does: a new file moved into place).
fn install(dir: &Path, server: &Issued) {
    install_as(dir, "server", server);
}

/// Whether new handshakes with the server at `addr` get `expected` within `bound`.
async fn presents_within(
    addr: std::net::SocketAddr,
    config: &Arc<ClientConfig>,
    expected: &Issued,
    bound: Duration,
) -> bool {
    let deadline = tokio::time::Instant::now() + bound;
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if presented(addr, config.clone()).await == der(&expected.cert_pem) {
            return true;
        }
    }
    false
}

#[tokio::test]
async fn a_plain_client_is_refused_by_a_tls_server_and_a_tls_client_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Authority::new("servers CA");
    install(dir.path(), &ca.issue(&["localhost", "127.0.0.1"]));
    let (addr, _, _stop, _db) = tls_server(dir.path(), false).await;

    let plain = Endpoint::from_shared(format!("http://{addr}")).unwrap().connect_timeout(Duration::from_secs(2));
    let refused = match plain.connect().await {
        Err(_) => true,
        Ok(channel) => register(channel, "plain", None).await.is_err(),
    };
    assert!(refused, "a plain-text client got through");

    let channel = tls_channel(addr, client_config(&ca.pem(), None)).await.unwrap();
    register(channel, "alice", None).await.expect("served over TLS");
    // A client that does not trust the server's CA does not get through either.
    let stranger = Authority::new("another CA");
    let untrusting = tls_channel(addr, client_config(&stranger.pem(), None)).await;
    assert!(untrusting.is_err() || register(untrusting.unwrap(), "bob", None).await.is_err());
}

#[tokio::test]
async fn under_mutual_tls_a_client_needs_a_certificate_and_only_the_gateways_speaks_for_others() {
    let dir = tempfile::tempdir().unwrap();
    let servers = Authority::new("servers CA");
    let clients = Authority::new("clients CA");
    install(dir.path(), &servers.issue(&["localhost"]));
    std::fs::write(dir.path().join("clients-ca.crt"), clients.pem()).unwrap();
    let (addr, audit, _stop, _db) = tls_server(dir.path(), true).await;

    let anonymous = tls_channel(addr, client_config(&servers.pem(), None)).await;
    let refused = match anonymous {
        Err(_) => true,
        Ok(channel) => register(channel, "anonymous", None).await.is_err(),
    };
    assert!(refused, "a client without a certificate got through under mutual TLS");
    let forged = Authority::new("not the clients CA").issue(&[GATEWAY_NAME]);
    let forged = tls_channel(addr, client_config(&servers.pem(), Some(&forged))).await;
    assert!(forged.is_err() || register(forged.unwrap(), "forged", None).await.is_err());

    let gateway =
        tls_channel(addr, client_config(&servers.pem(), Some(&clients.issue(&[GATEWAY_NAME])))).await.unwrap();
    register(gateway, "via-gateway", Some("203.0.113.7")).await.unwrap();
    let other = clients.issue(&["billing.auth.test"]);
    let billing = tls_channel(addr, client_config(&servers.pem(), Some(&other))).await.unwrap();
    register(billing, "via-billing", Some("203.0.113.8")).await.unwrap();

    let address_of = |username: &str| {
        audit
            .events()
            .into_iter()
            .find(|event| event.event_type == EventType::AccountCreated && event.username.as_deref() == Some(username))
            .and_then(|event| event.client_address)
            .map(|address| address.to_string())
    };
    assert_eq!(address_of("via-gateway").as_deref(), Some("203.0.113.7"), "the gateway speaks for its client");
    assert_eq!(address_of("via-billing").as_deref(), Some("127.0.0.1"), "another certificate speaks for itself");
}

#[tokio::test]
async fn a_rotated_certificate_is_taken_up_live_and_open_connections_stay() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Authority::new("servers CA");
    let first = ca.issue(&["localhost"]);
    install(dir.path(), &first);
    let (addr, _, _stop, _db) = tls_server(dir.path(), false).await;
    let config = client_config(&ca.pem(), None);
    assert_eq!(presented(addr, config.clone()).await, der(&first.cert_pem));
    let open = tls_channel(addr, config.clone()).await.unwrap();
    register(open.clone(), "before", None).await.unwrap();

    let second = ca.issue(&["localhost"]);
    install(dir.path(), &second);
    assert!(
        presents_within(addr, &config, &second, Duration::from_secs(4)).await,
        "the new certificate was not used within 4 s (reload interval 1 s)"
    );
    register(open, "after", None).await.expect("the connection opened before the rotation still works");

    // A broken rotation (a key that does not match) keeps the certificate in use.
    std::fs::write(dir.path().join("server.key"), ca.issue(&["localhost"]).key_pem).unwrap();
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(presented(addr, config).await, der(&second.cert_pem));
}

// ---- The gateway: HTTPS on its REST port, and TLS (with its client certificate) to auth-svc.

/// A gateway on 127.0.0.1 with the test's changes to its config; stopped when the sender drops.
async fn gateway(
    adjust: impl FnOnce(&mut gateway::Config),
) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let mut config = gateway::Config { listen: "127.0.0.1:0".parse().unwrap(), ..gateway::Config::default() };
    adjust(&mut config);
    let app = gateway::App::build(&config).await.expect("gateway builds");
    let addr = app.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.serve(async move {
        let _ = stopped.await;
    }));
    (addr, stop)
}

/// One HTTP/1.1 request over TLS (trusting `ca_pem`, server name `localhost`): the status and
/// the body. Raw, so the test needs no TLS-capable HTTP client.
async fn https_request(
    addr: std::net::SocketAddr,
    ca_pem: &str,
    request_line: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut config = (*client_config(ca_pem, None)).clone();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = TcpStream::connect(addr).await?;
    let mut tls = TlsConnector::from(Arc::new(config)).connect(ServerName::try_from("localhost").unwrap(), tcp).await?;
    let mut request = format!("{request_line} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!("content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}", body.len()));
    tls.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    // A TLS peer that closes without close_notify is an error after the response was read.
    let _ = tls.read_to_end(&mut response).await;
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response.get(9..12).and_then(|code| code.parse().ok()).ok_or(std::io::ErrorKind::InvalidData)?;
    let body = response.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default();
    Ok((status, body))
}

/// Writes `issued` as `name.crt` and `name.key` in `dir` (moved into place, as a rotation does).
fn install_as(dir: &Path, name: &str, issued: &Issued) {
    for (extension, text) in [("crt", &issued.cert_pem), ("key", &issued.key_pem)] {
        let staging = dir.join(format!("{name}.{extension}.new"));
        std::fs::write(&staging, text).unwrap();
        std::fs::rename(staging, dir.join(format!("{name}.{extension}"))).unwrap();
    }
}

/// The REST client talks HTTPS to the gateway, which calls auth-svc over mutual TLS with its
/// own certificate: auth-svc believes the client address the gateway forwards because that
/// certificate names the gateway. A plain-HTTP client is refused by the HTTPS port, and a
/// gateway without a client certificate gets nothing from auth-svc (503).
#[tokio::test]
async fn the_gateway_serves_https_and_calls_auth_svc_over_mutual_tls() {
    let dir = tempfile::tempdir().unwrap();
    let servers = Authority::new("servers CA");
    let clients = Authority::new("clients CA");
    install(dir.path(), &servers.issue(&["localhost"]));
    install_as(dir.path(), "https", &servers.issue(&["localhost"]));
    install_as(dir.path(), "gateway-client", &clients.issue(&[GATEWAY_NAME]));
    std::fs::write(dir.path().join("clients-ca.crt"), clients.pem()).unwrap();
    std::fs::write(dir.path().join("servers-ca.crt"), servers.pem()).unwrap();
    let (auth_addr, audit, _stop_auth, _db) = tls_server(dir.path(), true).await;

    let https = |config: &mut gateway::Config| {
        config.http.tls.cert_file = Some(dir.path().join("https.crt"));
        config.http.tls.key_file = Some(dir.path().join("https.key"));
        // The test plays the proxy in front of the gateway, so it chooses the client address.
        config.http.trusted_proxy_header = "x-real-ip".into();
        // An IP in the URL, the certificate's DNS name checked.
        config.upstream = format!("https://{auth_addr}");
        config.grpc.tls.server_name = Some("localhost".into());
        config.grpc.tls.ca_file = Some(dir.path().join("servers-ca.crt"));
    };
    let (gateway_addr, _stop_gateway) = gateway(|config| {
        https(config);
        config.grpc.tls.cert_file = Some(dir.path().join("gateway-client.crt"));
        config.grpc.tls.key_file = Some(dir.path().join("gateway-client.key"));
    })
    .await;
    let body = format!(r#"{{"username":"over-https","password":"{PASSWORD}"}}"#);
    let (status, answer) =
        https_request(gateway_addr, &servers.pem(), "POST /user/register", &[("x-real-ip", "203.0.113.9")], &body)
            .await
            .unwrap();
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains(r#""username":"over-https""#), "{answer}");
    let forwarded = audit
        .events()
        .into_iter()
        .find(|event| event.event_type == EventType::AccountCreated && event.username.as_deref() == Some("over-https"))
        .and_then(|event| event.client_address)
        .map(|address| address.to_string());
    assert_eq!(forwarded.as_deref(), Some("203.0.113.9"), "auth-svc took the gateway's word for the client");

    // Plain HTTP to the HTTPS port gets no HTTP answer.
    {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let mut plain = TcpStream::connect(gateway_addr).await.unwrap();
        plain.write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n").await.unwrap();
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut answer)).await;
        assert!(!answer.starts_with(b"HTTP/1.1 200"), "plain HTTP was served on the HTTPS port");
    }
    // A client that does not trust the gateway's CA does not get through.
    let stranger = Authority::new("another CA");
    assert!(https_request(gateway_addr, &stranger.pem(), "GET /healthz", &[], "").await.is_err());

    // Without a client certificate the gateway cannot reach auth-svc under mutual TLS.
    let (anonymous_addr, _stop_anonymous) = gateway(https).await;
    let body = format!(r#"{{"username":"no-client-cert","password":"{PASSWORD}"}}"#);
    let (status, answer) =
        https_request(anonymous_addr, &servers.pem(), "POST /user/register", &[], &body).await.unwrap();
    assert_eq!(status, 503, "{answer}");
}

/// The gateway's HTTPS certificate is re-read when its files change; connections opened after
/// that get the new one, and a broken rotation keeps the one in use.
#[tokio::test]
async fn a_rotated_gateway_certificate_is_taken_up_live() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Authority::new("servers CA");
    let first = ca.issue(&["localhost"]);
    install_as(dir.path(), "https", &first);
    let (addr, _stop) = gateway(|config| {
        config.http.tls.cert_file = Some(dir.path().join("https.crt"));
        config.http.tls.key_file = Some(dir.path().join("https.key"));
        config.http.tls.reload_interval_seconds = 1;
    })
    .await;
    let config = client_config(&ca.pem(), None);
    assert_eq!(presented(addr, config.clone()).await, der(&first.cert_pem));
    let (status, _) = https_request(addr, &ca.pem(), "GET /healthz", &[], "").await.unwrap();
    assert_eq!(status, 200);

    let second = ca.issue(&["localhost"]);
    install_as(dir.path(), "https", &second);
    assert!(
        presents_within(addr, &config, &second, Duration::from_secs(4)).await,
        "the new certificate was not used within 4 s (reload interval 1 s)"
    );

    std::fs::write(dir.path().join("https.key"), ca.issue(&["localhost"]).key_pem).unwrap();
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(presented(addr, config).await, der(&second.cert_pem));
    let (status, _) = https_request(addr, &ca.pem(), "GET /healthz", &[], "").await.unwrap();
    assert_eq!(status, 200);
}
