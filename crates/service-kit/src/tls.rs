//! TLS for the servers of both binaries (rustls, ring), with mutual TLS as an option and
//! certificates that are re-read when their files change.
//!
//! cert-manager (and most secret rotators) replace a mounted certificate in place. The files are
//! checked every `reload_interval_seconds`; when the certificate, key or client CA file changed
//! (modification time or length), a new rustls config is built from them and every later
//! handshake uses it. Connections already open keep theirs: nothing is dropped. A reload that
//! fails (a half-written file, a key that does not match) keeps the old config and says so in
//! the log, once per failing state. The client side ([`ClientTls`]) reloads the same way: its
//! next connection presents the new client certificate.

use std::{
    fs,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, PoisonError, RwLock},
    time::{Duration, SystemTime},
};

use rustls::{
    ClientConfig, RootCertStore, ServerConfig,
    crypto::ring,
    server::{WebPkiClientVerifier, danger::ClientCertVerifier},
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject};
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector, client, server::TlsStream};

/// `tls` of a server's config. Off unless `cert_file` and `key_file` are set.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM certificate chain the server presents (leaf first).
    pub cert_file: Option<PathBuf>,
    /// PEM private key of the leaf (PKCS#8, PKCS#1 or SEC1).
    pub key_file: Option<PathBuf>,
    /// PEM CA certificates: when set, every client must present a certificate one of them
    /// signed (mutual TLS), or the handshake fails.
    pub client_ca_file: Option<PathBuf>,
    /// Seconds between checks of the files for a rotated certificate.
    pub reload_interval_seconds: u64,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self { cert_file: None, key_file: None, client_ca_file: None, reload_interval_seconds: 10 }
    }
}

impl TlsConfig {
    /// Whether TLS is on; an error when it is half configured. `key` names the section in
    /// messages (e.g. `grpc.tls`).
    pub fn enabled(&self, key: &str) -> Result<bool, String> {
        match (&self.cert_file, &self.key_file) {
            (Some(_), Some(_)) => {}
            (None, None) if self.client_ca_file.is_none() => return Ok(false),
            (None, None) => return Err(format!("{key}.client_ca_file needs {key}.cert_file and {key}.key_file")),
            _ => return Err(format!("{key}.cert_file and {key}.key_file go together")),
        }
        if self.reload_interval_seconds == 0 {
            return Err(format!("{key}.reload_interval_seconds must be at least 1"));
        }
        Ok(true)
    }
}

/// What a client proved in the handshake, for the connection's service.
#[derive(Debug, Clone)]
pub struct PeerCertificate(pub CertificateDer<'static>);

impl PeerCertificate {
    /// Whether the certificate is valid for DNS name `name` (its subject alternative names). Its
    /// chain was verified in the handshake; this only reads whom it names.
    pub fn names(&self, name: &str) -> bool {
        let Ok(server_name) = ServerName::try_from(name) else { return false };
        webpki_names(&self.0, &server_name)
    }
}

fn webpki_names(certificate: &CertificateDer<'_>, name: &ServerName<'_>) -> bool {
    match webpki::EndEntityCert::try_from(certificate) {
        Ok(end_entity) => end_entity.verify_is_valid_for_subject_name(name).is_ok(),
        Err(_) => false,
    }
}

/// The files as last loaded: a change of any is a reason to reload.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamps(Vec<Option<(SystemTime, u64)>>);

impl Stamps {
    fn of(files: &[PathBuf]) -> Self {
        Self(
            files
                .iter()
                .map(|file| {
                    let metadata = fs::metadata(file).ok()?;
                    Some((metadata.modified().ok()?, metadata.len()))
                })
                .collect(),
        )
    }
}

/// Something built from files (a rustls acceptor or connector), rebuilt when they change. A
/// rebuild that fails keeps the previous value and warns once per failing state.
struct Reloading<T> {
    /// `key` of the config section, for log lines.
    section: String,
    files: Vec<PathBuf>,
    interval: Duration,
    build: Box<dyn Fn() -> Result<T, String> + Send + Sync>,
    current: RwLock<(T, Stamps)>,
    failing: Mutex<Option<String>>,
}

impl<T: Clone> Reloading<T> {
    fn load(
        section: &str,
        files: Vec<PathBuf>,
        interval: Duration,
        build: impl Fn() -> Result<T, String> + Send + Sync + 'static,
    ) -> Result<Self, String> {
        // Stamped before reading, so a change during the read is seen at the next check.
        let stamps = Stamps::of(&files);
        let value = build()?;
        Ok(Self {
            section: section.to_owned(),
            files,
            interval,
            build: Box::new(build),
            current: RwLock::new((value, stamps)),
            failing: Mutex::new(None),
        })
    }

    fn current(&self) -> T {
        self.current.read().unwrap_or_else(PoisonError::into_inner).0.clone()
    }

    fn reload_if_changed(&self) -> bool {
        let stamps = Stamps::of(&self.files);
        if self.current.read().unwrap_or_else(PoisonError::into_inner).1 == stamps {
            return false;
        }
        let mut failing = self.failing.lock().unwrap_or_else(PoisonError::into_inner);
        match (self.build)() {
            Ok(value) => {
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = (value, stamps);
                *failing = None;
                tracing::info!(section = %self.section, "TLS certificate reloaded");
                true
            }
            Err(why) => {
                // Maybe a rotation half done: keep the old certificate and look again next time.
                if failing.as_deref() != Some(why.as_str()) {
                    tracing::warn!(section = %self.section, error = %why, "TLS reload failed; keeping the previous certificate");
                    *failing = Some(why);
                }
                false
            }
        }
    }
}

/// Checks a [`Reloading`]'s files every interval until dropped (it stops with its server or
/// client).
#[derive(Debug)]
pub struct Watcher(tokio::task::JoinHandle<()>);

impl Watcher {
    /// Watches the files `owner` reloads (`files` finds them in it).
    fn spawn<O, T>(owner: Arc<O>, files: fn(&O) -> &Reloading<T>) -> Self
    where
        O: Send + Sync + 'static,
        T: Clone + Send + Sync + 'static,
    {
        Self(tokio::spawn(async move {
            let mut ticks = tokio::time::interval(files(&owner).interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                files(&owner).reload_if_changed();
            }
        }))
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The server side: the current rustls config, replaced when the files change.
pub struct ServerTls {
    config: TlsConfig,
    files: Reloading<TlsAcceptor>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls").field("config", &self.config).finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Loads the files of `config` (TLS must be enabled); errors name the file, never its
    /// content. `alpn`: the protocols offered (`h2`, and `http/1.1` for a REST server).
    pub fn load(config: &TlsConfig, section: &str, alpn: &[&[u8]]) -> Result<Arc<Self>, String> {
        let files = [&config.cert_file, &config.key_file, &config.client_ca_file].into_iter().flatten().cloned();
        let interval = Duration::from_secs(config.reload_interval_seconds);
        let alpn: Vec<Vec<u8>> = alpn.iter().map(|protocol| protocol.to_vec()).collect();
        let build = {
            let config = config.clone();
            move || acceptor(&config, &alpn)
        };
        let files = Reloading::load(section, files.collect(), interval, build)?;
        Ok(Arc::new(Self { config: config.clone(), files }))
    }

    /// The handshake of an accepted connection, with the current certificate.
    pub async fn accept(&self, stream: TcpStream) -> std::io::Result<(TlsStream<TcpStream>, Option<PeerCertificate>)> {
        let stream = self.files.current().accept(stream).await?;
        let peer = stream.get_ref().1.peer_certificates().and_then(|chain| chain.first()).cloned();
        Ok((stream, peer.map(PeerCertificate)))
    }

    /// Checks the files every `reload_interval_seconds` and reloads them when they changed,
    /// until the returned watcher is dropped.
    pub fn watch(self: &Arc<Self>) -> Watcher {
        Watcher::spawn(self.clone(), |tls| &tls.files)
    }

    /// Reloads when a file changed since the last load; returns whether a new config is in use.
    pub fn reload_if_changed(&self) -> bool {
        self.files.reload_if_changed()
    }
}

/// `tls` of a client's config (the gateway's calls to auth-svc): used when the server's URL is
/// `https://`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientTlsConfig {
    /// PEM CA certificates the server's certificate must chain to; unset: the OS trust store.
    pub ca_file: Option<PathBuf>,
    /// PEM certificate chain this client presents (mutual TLS); goes with `key_file`.
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`'s leaf.
    pub key_file: Option<PathBuf>,
    /// DNS name (or IP address) the server's certificate must be valid for; unset: the host of
    /// the server's URL.
    pub server_name: Option<String>,
    /// Seconds between checks of the files for a rotated certificate.
    pub reload_interval_seconds: u64,
}

impl Default for ClientTlsConfig {
    fn default() -> Self {
        Self { ca_file: None, cert_file: None, key_file: None, server_name: None, reload_interval_seconds: 10 }
    }
}

impl ClientTlsConfig {
    /// Whether any key is set (which only makes sense for an `https://` server).
    pub fn is_set(&self) -> bool {
        self.ca_file.is_some() || self.cert_file.is_some() || self.key_file.is_some() || self.server_name.is_some()
    }

    /// Checks what serde cannot; `key` names the section in messages (e.g. `grpc.tls`).
    pub fn check(&self, key: &str) -> Result<(), String> {
        if self.cert_file.is_some() != self.key_file.is_some() {
            return Err(format!("{key}.cert_file and {key}.key_file go together"));
        }
        if let Some(name) = &self.server_name
            && ServerName::try_from(name.as_str()).is_err()
        {
            return Err(format!("{key}.server_name is not a DNS name or IP address"));
        }
        if self.reload_interval_seconds == 0 {
            return Err(format!("{key}.reload_interval_seconds must be at least 1"));
        }
        Ok(())
    }
}

/// A connection [`ClientTls::connect`] made.
pub type ClientStream = client::TlsStream<TcpStream>;

/// The client side: a rustls connector for one server name, whose trusted CAs and client
/// certificate are re-read when their files change. Connections already open keep theirs;
/// the next connection made uses the new files.
pub struct ClientTls {
    server_name: ServerName<'static>,
    files: Reloading<TlsConnector>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls").field("server_name", &self.server_name).finish_non_exhaustive()
    }
}

impl ClientTls {
    /// Loads the files of `config` (checked); `host`: the server URL's host, the name verified
    /// unless `server_name` is set. `alpn` as for [`ServerTls::load`].
    pub fn load(config: &ClientTlsConfig, section: &str, host: &str, alpn: &[&[u8]]) -> Result<Arc<Self>, String> {
        config.check(section)?;
        let name = config.server_name.as_deref().unwrap_or(host);
        // A URL's IPv6 host comes in brackets; a certificate's IP address does not.
        let name = name.trim_start_matches('[').trim_end_matches(']');
        let server_name = ServerName::try_from(name.to_owned())
            .map_err(|_| format!("{section}: {name:?} is not a DNS name or IP address"))?;
        let files = [&config.ca_file, &config.cert_file, &config.key_file].into_iter().flatten().cloned();
        let interval = Duration::from_secs(config.reload_interval_seconds);
        let alpn: Vec<Vec<u8>> = alpn.iter().map(|protocol| protocol.to_vec()).collect();
        let build = {
            let config = config.clone();
            move || connector(&config, &alpn)
        };
        let files = Reloading::load(section, files.collect(), interval, build)?;
        Ok(Arc::new(Self { server_name, files }))
    }

    /// The handshake on a connected stream, with the current files.
    pub async fn connect(&self, stream: TcpStream) -> std::io::Result<ClientStream> {
        self.files.current().connect(self.server_name.clone(), stream).await
    }

    /// As [`ServerTls::watch`].
    pub fn watch(self: &Arc<Self>) -> Watcher {
        Watcher::spawn(self.clone(), |tls| &tls.files)
    }

    /// As [`ServerTls::reload_if_changed`].
    pub fn reload_if_changed(&self) -> bool {
        self.files.reload_if_changed()
    }
}

/// A rustls connector of `config`'s files.
fn connector(config: &ClientTlsConfig, alpn: &[Vec<u8>]) -> Result<TlsConnector, String> {
    let mut roots = RootCertStore::empty();
    match &config.ca_file {
        Some(ca_file) => {
            for certificate in certificates(ca_file)? {
                roots.add(certificate).map_err(|err| format!("{}: {err}", ca_file.display()))?;
            }
        }
        None => {
            // Unreadable entries of the OS store are skipped, as a browser would.
            let native = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
            if roots.is_empty() {
                return Err("the OS trust store holds no CA certificate; set ca_file".to_owned());
            }
        }
    }
    let builder = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|err| err.to_string())?
        .with_root_certificates(roots);
    let mut client = match (&config.cert_file, &config.key_file) {
        (Some(cert_file), Some(key_file)) => {
            let chain = certificates(cert_file)?;
            let key = PrivateKeyDer::from_pem_file(key_file)
                .map_err(|err| format!("{}: no private key ({err})", key_file.display()))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|err| format!("{} and {}: {err}", cert_file.display(), key_file.display()))?
        }
        _ => builder.with_no_client_auth(),
    };
    client.alpn_protocols = alpn.to_vec();
    Ok(TlsConnector::from(Arc::new(client)))
}

/// A rustls acceptor of `config`'s files.
fn acceptor(config: &TlsConfig, alpn: &[Vec<u8>]) -> Result<TlsAcceptor, String> {
    let (Some(cert_file), Some(key_file)) = (&config.cert_file, &config.key_file) else {
        return Err("TLS needs cert_file and key_file".to_owned());
    };
    let chain = certificates(cert_file)?;
    let key = PrivateKeyDer::from_pem_file(key_file)
        .map_err(|err| format!("{}: no private key ({err})", key_file.display()))?;
    let provider = Arc::new(ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|err| err.to_string())?;
    let builder = match &config.client_ca_file {
        Some(ca_file) => builder.with_client_cert_verifier(client_verifier(ca_file, provider)?),
        None => builder.with_no_client_auth(),
    };
    let mut server = builder
        .with_single_cert(chain, key)
        .map_err(|err| format!("{} and {}: {err}", cert_file.display(), key_file.display()))?;
    server.alpn_protocols = alpn.to_vec();
    Ok(TlsAcceptor::from(Arc::new(server)))
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let chain = CertificateDer::pem_file_iter(path)
        .and_then(|certificates| certificates.collect::<Result<Vec<_>, _>>())
        .map_err(|err| format!("{}: {err}", path.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no certificate", path.display()));
    }
    Ok(chain)
}

fn client_verifier(
    ca_file: &Path,
    provider: Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, String> {
    let mut roots = RootCertStore::empty();
    for certificate in certificates(ca_file)? {
        roots.add(certificate).map_err(|err| format!("{}: {err}", ca_file.display()))?;
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|err| format!("{}: {err}", ca_file.display()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    use tokio::{net::TcpListener, sync::mpsc};

    use super::*;

    struct Authority(CertifiedIssuer<'static, KeyPair>);

    impl Authority {
        fn new(name: &str) -> Self {
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.distinguished_name.push(DnType::CommonName, name);
            Self(CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap())
        }

        /// A certificate for `name` and its key, as PEM.
        fn issue(&self, name: &str) -> (String, String) {
            let key = KeyPair::generate().unwrap();
            let cert = CertificateParams::new(vec![name.to_owned()]).unwrap().signed_by(&key, &self.0).unwrap();
            (cert.pem(), key.serialize_pem())
        }
    }

    /// Writes `name.crt` and `name.key` as a rotation does: new files moved into place.
    fn install(dir: &Path, name: &str, (cert, key): &(String, String)) {
        for (extension, text) in [("crt", cert), ("key", key)] {
            let staging = dir.join(format!("{name}.{extension}.new"));
            fs::write(&staging, text).unwrap();
            fs::rename(staging, dir.join(format!("{name}.{extension}"))).unwrap();
        }
    }

    fn der(pem: &str) -> Vec<u8> {
        CertificateDer::from_pem_slice(pem.as_bytes()).unwrap().to_vec()
    }

    /// A mutual-TLS server (this module's `ServerTls`) on 127.0.0.1 that reports the client
    /// certificate of every handshake.
    async fn server(dir: &Path) -> (std::net::SocketAddr, mpsc::UnboundedReceiver<Vec<u8>>) {
        let config = TlsConfig {
            cert_file: Some(dir.join("server.crt")),
            key_file: Some(dir.join("server.key")),
            client_ca_file: Some(dir.join("clients-ca.crt")),
            reload_interval_seconds: 1,
        };
        let tls = ServerTls::load(&config, "test.tls", &[b"h2"]).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (seen, seen_rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                if let Ok((_, Some(peer))) = tls.accept(stream).await {
                    let _ = seen.send(peer.0.to_vec());
                }
            }
        });
        (addr, seen_rx)
    }

    async fn handshake(tls: &ClientTls, addr: std::net::SocketAddr) -> std::io::Result<()> {
        tls.connect(TcpStream::connect(addr).await?).await.map(drop)
    }

    /// The client side presents its certificate, verifies the server against `ca_file` and the
    /// name, and after a rotation presents the new certificate from the next connection on; a
    /// broken rotation keeps the one in use.
    #[tokio::test]
    async fn a_rotated_client_certificate_is_presented_from_the_next_connection() {
        let dir = tempfile::tempdir().unwrap();
        let (servers, clients) = (Authority::new("servers CA"), Authority::new("clients CA"));
        install(dir.path(), "server", &servers.issue("localhost"));
        fs::write(dir.path().join("clients-ca.crt"), clients.0.pem()).unwrap();
        fs::write(dir.path().join("servers-ca.crt"), servers.0.pem()).unwrap();
        let first = clients.issue("gateway.test");
        install(dir.path(), "client", &first);
        let (addr, mut seen) = server(dir.path()).await;
        let config = ClientTlsConfig {
            ca_file: Some(dir.path().join("servers-ca.crt")),
            cert_file: Some(dir.path().join("client.crt")),
            key_file: Some(dir.path().join("client.key")),
            server_name: None,
            reload_interval_seconds: 1,
        };
        let tls = ClientTls::load(&config, "grpc.tls", "localhost", &[b"h2"]).unwrap();
        handshake(&tls, addr).await.unwrap();
        assert_eq!(seen.recv().await.unwrap(), der(&first.0));
        assert!(!tls.reload_if_changed(), "nothing changed");

        let second = clients.issue("gateway.test");
        install(dir.path(), "client", &second);
        assert!(tls.reload_if_changed());
        handshake(&tls, addr).await.unwrap();
        assert_eq!(seen.recv().await.unwrap(), der(&second.0));

        // A key that does not match the certificate: the rotated certificate stays in use.
        fs::write(dir.path().join("client.key"), clients.issue("gateway.test").1).unwrap();
        assert!(!tls.reload_if_changed());
        handshake(&tls, addr).await.unwrap();
        assert_eq!(seen.recv().await.unwrap(), der(&second.0));

        // The server's certificate must carry the name checked.
        install(dir.path(), "client", &clients.issue("gateway.test"));
        let elsewhere = ClientTls::load(&config, "grpc.tls", "auth-svc.example", &[b"h2"]).unwrap();
        assert!(handshake(&elsewhere, addr).await.is_err(), "a certificate for another name was accepted");
        let named = ClientTlsConfig { server_name: Some("localhost".into()), ..config.clone() };
        let named = ClientTls::load(&named, "grpc.tls", "auth-svc.example", &[b"h2"]).unwrap();
        handshake(&named, addr).await.expect("server_name overrides the URL's host");
        // A server certificate from a CA not in ca_file is refused.
        let strangers = Authority::new("another CA");
        fs::write(dir.path().join("servers-ca.crt"), strangers.0.pem()).unwrap();
        let untrusting = ClientTls::load(&config, "grpc.tls", "localhost", &[b"h2"]).unwrap();
        assert!(handshake(&untrusting, addr).await.is_err(), "a server from an untrusted CA was accepted");
    }
}
