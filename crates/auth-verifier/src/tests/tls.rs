//! `https://` JWKS URLs: a test CA made here (rcgen), a JWKS served over TLS by a tokio-rustls
//! listener on 127.0.0.1:0, and which certificates the verifier trusts and presents.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::RootCertStore;
use rustls::crypto::ring;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use super::support::{access_claims, ed_a, jwks};
use crate::{Verifier, VerifierBuilder, VerifyError};

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

    fn issue(&self, name: &str) -> Issued {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec![name.to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Issued { cert_pem: cert.pem(), key_pem: key.serialize_pem() }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }
}

/// A JWKS over TLS (HTTP/1.1, one request per connection) that counts the requests it answered,
/// so a test can tell a refused handshake from a fetch that failed later.
struct TlsJwksServer {
    url: String,
    answered: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl TlsJwksServer {
    /// Serves the ed-a key set with `server` for `localhost`; `client_ca` requires a client
    /// certificate it signed.
    async fn start(server: &Issued, client_ca: Option<&Authority>) -> Self {
        let provider = Arc::new(ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = match client_ca {
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                roots.add(CertificateDer::from_pem_slice(ca.pem().as_bytes()).unwrap()).unwrap();
                let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider).build().unwrap();
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let config = builder
            .with_single_cert(
                vec![CertificateDer::from_pem_slice(server.cert_pem.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(server.key_pem.as_bytes()).unwrap(),
            )
            .unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://localhost:{}/.well-known/jwks.json", listener.local_addr().unwrap().port());
        let answered = Arc::new(AtomicUsize::new(0));
        let body = jwks(&[&ed_a()]).to_string();
        let task = tokio::spawn({
            let answered = Arc::clone(&answered);
            async move {
                loop {
                    let Ok((tcp, _)) = listener.accept().await else { return };
                    let (acceptor, answered, body) = (acceptor.clone(), Arc::clone(&answered), body.clone());
                    tokio::spawn(async move {
                        // A refused handshake is the point of some tests: nothing to answer.
                        let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                        if read_request_head(&mut tls).await.is_none() {
                            return;
                        }
                        let response = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                             connection: close\r\n\r\n{body}",
                            body.len()
                        );
                        if tls.write_all(response.as_bytes()).await.is_ok() {
                            answered.fetch_add(1, Ordering::SeqCst);
                        }
                        let _ = tls.shutdown().await;
                    });
                }
            }
        });
        Self { url, answered, task }
    }

    fn answered(&self) -> usize {
        self.answered.load(Ordering::SeqCst)
    }

    fn builder(&self) -> VerifierBuilder {
        Verifier::builder(&self.url)
    }
}

impl Drop for TlsJwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads up to the blank line ending a GET's head; `None` if the peer went away first.
async fn read_request_head(stream: &mut (impl AsyncReadExt + Unpin)) -> Option<()> {
    let mut head = Vec::new();
    let mut buffer = [0u8; 1024];
    while !head.windows(4).any(|window| window == b"\r\n\r\n") {
        let read = stream.read(&mut buffer).await.ok()?;
        if read == 0 || head.len() > 16 * 1024 {
            return None;
        }
        head.extend_from_slice(&buffer[..read]);
    }
    Some(())
}

/// Whether `verifier` accepts a valid ed-a token (fetching the key set over TLS to know).
async fn accepts_a_token(verifier: &Verifier) -> Result<(), VerifyError> {
    verifier.verify(&ed_a().sign(&access_claims())).await.map(drop)
}

#[tokio::test]
async fn a_token_verifies_against_an_https_jwks_of_a_trusted_ca() {
    let ca = Authority::new("test CA");
    let server = TlsJwksServer::start(&ca.issue("localhost"), None).await;

    let verifier = server.builder().tls_ca_pem(ca.pem()).build().unwrap();
    assert_eq!(accepts_a_token(&verifier).await, Ok(()));
    assert_eq!(server.answered(), 1);

    // The same CA from a file.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ca.crt");
    std::fs::write(&path, ca.pem()).unwrap();
    let verifier = server.builder().tls_ca_file(&path).build().unwrap();
    assert_eq!(accepts_a_token(&verifier).await, Ok(()));
    assert_eq!(server.answered(), 2);
}

#[tokio::test]
async fn a_server_certificate_the_verifier_does_not_trust_is_refused() {
    let ca = Authority::new("test CA");
    let other_ca = Authority::new("another CA");
    let server = TlsJwksServer::start(&ca.issue("localhost"), None).await;

    let trusting_another_ca = server.builder().tls_ca_pem(other_ca.pem()).build().unwrap();
    assert_eq!(trusting_another_ca.prefetch().await, Err(VerifyError::KeysUnavailable));
    assert_eq!(accepts_a_token(&trusting_another_ca).await, Err(VerifyError::KeysUnavailable));
    // The system's store (the default) does not hold a CA made a moment ago either. Skipped
    // where there is no store at all: then `build` refuses, as the bad-input test shows.
    if let Ok(trusting_the_system) = server.builder().build() {
        assert_eq!(trusting_the_system.prefetch().await, Err(VerifyError::KeysUnavailable));
    }
    assert_eq!(server.answered(), 0, "no request got past the handshake");
}

#[tokio::test]
async fn a_server_certificate_for_another_host_name_is_refused() {
    let ca = Authority::new("test CA");
    let server = TlsJwksServer::start(&ca.issue("gateway.elsewhere.test"), None).await;

    let verifier = server.builder().tls_ca_pem(ca.pem()).build().unwrap();
    assert_eq!(accepts_a_token(&verifier).await, Err(VerifyError::KeysUnavailable));
    assert_eq!(server.answered(), 0);
}

#[tokio::test]
async fn under_mutual_tls_only_a_verifier_with_a_client_certificate_of_the_client_ca_fetches() {
    let ca = Authority::new("test CA");
    let client_ca = Authority::new("client CA");
    let server = TlsJwksServer::start(&ca.issue("localhost"), Some(&client_ca)).await;

    let without_identity = server.builder().tls_ca_pem(ca.pem()).build().unwrap();
    assert_eq!(accepts_a_token(&without_identity).await, Err(VerifyError::KeysUnavailable));

    let stranger = Authority::new("another CA").issue("orders");
    let with_a_stranger_identity = server
        .builder()
        .tls_ca_pem(ca.pem())
        .tls_client_identity_pem(stranger.cert_pem, stranger.key_pem)
        .build()
        .unwrap();
    assert_eq!(accepts_a_token(&with_a_stranger_identity).await, Err(VerifyError::KeysUnavailable));
    assert_eq!(server.answered(), 0);

    let identity = client_ca.issue("orders");
    let with_identity = server
        .builder()
        .tls_ca_pem(ca.pem())
        .tls_client_identity_pem(identity.cert_pem, identity.key_pem)
        .build()
        .unwrap();
    assert_eq!(accepts_a_token(&with_identity).await, Ok(()));
    assert_eq!(server.answered(), 1);
}

#[test]
fn bad_tls_input_is_a_config_error() {
    let url = "https://gateway/.well-known/jwks.json";
    let config_error = |builder: VerifierBuilder| match builder.build() {
        Err(VerifyError::Config(message)) => message,
        other => panic!("expected a Config error, got {other:?}"),
    };
    let ca = Authority::new("test CA").pem();
    let identity = Authority::new("client CA").issue("orders");

    assert!(config_error(Verifier::builder(url).tls_ca_pem("not PEM at all")).contains("no PEM CERTIFICATE"));
    assert!(config_error(Verifier::builder(url).tls_ca_pem("")).contains("tls_ca_pem"));
    let truncated = &ca[..ca.len() / 2];
    assert!(config_error(Verifier::builder(url).tls_ca_pem(truncated)).contains("not PEM"));
    let garbled = ca.replace("-----BEGIN CERTIFICATE-----\n", "-----BEGIN CERTIFICATE-----\n!!!!");
    assert!(config_error(Verifier::builder(url).tls_ca_pem(garbled)).contains("tls_ca_pem"));
    // A key is not a certificate.
    assert!(config_error(Verifier::builder(url).tls_ca_pem(identity.key_pem.clone())).contains("no PEM CERTIFICATE"));
    let missing = std::env::temp_dir().join("auth-verifier-no-such-ca.crt");
    assert!(config_error(Verifier::builder(url).tls_ca_file(&missing)).contains("tls_ca_file"));

    let key_error = config_error(
        Verifier::builder(url).tls_ca_pem(ca.clone()).tls_client_identity_pem(identity.cert_pem.clone(), "garbage"),
    );
    assert!(key_error.contains("tls_client_identity_pem key"), "{key_error}");
    let chain_error = config_error(
        Verifier::builder(url).tls_ca_pem(ca.clone()).tls_client_identity_pem("garbage", identity.key_pem.clone()),
    );
    assert!(chain_error.contains("certificate chain"), "{chain_error}");
    // A key that is not the certificate's.
    let other_key = KeyPair::generate().unwrap().serialize_pem();
    let mismatch = config_error(
        Verifier::builder(url).tls_ca_pem(ca.clone()).tls_client_identity_pem(identity.cert_pem.clone(), other_key),
    );
    assert!(mismatch.contains("tls_client_identity_pem"), "{mismatch}");

    // TLS settings with an http:// URL protect nothing, so they are refused, not ignored.
    assert!(config_error(Verifier::builder("http://gateway/jwks").tls_ca_pem(ca.clone())).contains("https://"));

    // The private key never shows, in errors or in the builder's Debug.
    let key_body = identity.key_pem.lines().nth(1).unwrap().to_owned();
    let corrupted_key = identity.key_pem.replace(&key_body, &format!("{key_body}!"));
    let message = config_error(
        Verifier::builder(url).tls_ca_pem(ca.clone()).tls_client_identity_pem(identity.cert_pem.clone(), corrupted_key),
    );
    assert!(!message.contains(&key_body), "{message}");
    let builder = Verifier::builder(url).tls_client_identity_pem(identity.cert_pem, identity.key_pem);
    assert!(!format!("{builder:?}").contains(&key_body));
}
