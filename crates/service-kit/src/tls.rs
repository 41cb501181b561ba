//! TLS for the servers of both binaries (rustls, ring), with mutual TLS as an option and
//! certificates that are re-read when their files change.
//!
//! cert-manager (and most secret rotators) replace a mounted certificate in place. The files are
//! checked every `reload_interval_seconds`; when the certificate, key or client CA file changed
//! (modification time or length), a new rustls config is built from them and every later
//! handshake uses it. Connections already open keep theirs: nothing is dropped. A reload that
//! fails (a half-written file, a key that does not match) keeps the old config and says so in
//! the log, once per failing state.

use std::{
    fs,
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
    time::{Duration, SystemTime},
};

use rustls::{
    RootCertStore, ServerConfig,
    crypto::ring,
    server::{WebPkiClientVerifier, danger::ClientCertVerifier},
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject};
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, server::TlsStream};

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
    fn of(config: &TlsConfig) -> Self {
        let files = [&config.cert_file, &config.key_file, &config.client_ca_file];
        Self(
            files
                .into_iter()
                .map(|file| {
                    let metadata = fs::metadata(file.as_ref()?).ok()?;
                    Some((metadata.modified().ok()?, metadata.len()))
                })
                .collect(),
        )
    }
}

/// The server side: the current rustls config, replaced when the files change.
pub struct ServerTls {
    config: TlsConfig,
    /// `key` of the config section, for log lines.
    section: String,
    current: RwLock<(TlsAcceptor, Stamps)>,
    /// Whether the last reload failed (one warning per failing state).
    failing: RwLock<Option<String>>,
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
        let stamps = Stamps::of(config);
        let acceptor = acceptor(config, alpn)?;
        Ok(Arc::new(Self {
            config: config.clone(),
            section: section.to_owned(),
            current: RwLock::new((acceptor, stamps)),
            failing: RwLock::new(None),
        }))
    }

    fn acceptor(&self) -> TlsAcceptor {
        #[allow(clippy::unwrap_used, reason = "the lock is never held across a panic")]
        self.current.read().unwrap().0.clone()
    }

    /// The handshake of an accepted connection, with the current certificate.
    pub async fn accept(&self, stream: TcpStream) -> std::io::Result<(TlsStream<TcpStream>, Option<PeerCertificate>)> {
        let stream = self.acceptor().accept(stream).await?;
        let peer = stream.get_ref().1.peer_certificates().and_then(|chain| chain.first()).cloned();
        Ok((stream, peer.map(PeerCertificate)))
    }

    /// Checks the files every `reload_interval_seconds` and reloads them when they changed,
    /// until the task is dropped. `alpn` as for [`load`](Self::load).
    pub async fn watch(self: Arc<Self>, alpn: Vec<Vec<u8>>) {
        let mut ticks = tokio::time::interval(Duration::from_secs(self.config.reload_interval_seconds));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            self.reload_if_changed(&alpn.iter().map(Vec::as_slice).collect::<Vec<_>>());
        }
    }

    /// Reloads when a file changed since the last load; returns whether a new config is in use.
    pub fn reload_if_changed(&self, alpn: &[&[u8]]) -> bool {
        let stamps = Stamps::of(&self.config);
        #[allow(clippy::unwrap_used, reason = "the lock is never held across a panic")]
        if self.current.read().unwrap().1 == stamps {
            return false;
        }
        #[allow(clippy::unwrap_used, reason = "the lock is never held across a panic")]
        let mut failing = self.failing.write().unwrap();
        match acceptor(&self.config, alpn) {
            Ok(acceptor) => {
                #[allow(clippy::unwrap_used, reason = "the lock is never held across a panic")]
                let mut current = self.current.write().unwrap();
                *current = (acceptor, stamps);
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

/// A rustls acceptor of `config`'s files.
fn acceptor(config: &TlsConfig, alpn: &[&[u8]]) -> Result<TlsAcceptor, String> {
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
    server.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
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
