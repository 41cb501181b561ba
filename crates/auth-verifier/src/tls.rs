//! TLS of the JWKS fetch: which CAs the client trusts (the OS store, or the one CA given) and,
//! for mutual TLS, the certificate it presents. rustls with the ring provider, handed to
//! reqwest ready-made, so no aws-lc (cmake and a C build) is ever compiled. Everything is
//! checked in `VerifierBuilder::build`, so bad PEM is a `Config` error at start.

use std::fmt;
use std::path::PathBuf;

use crate::VerifyError;

/// Where the CA certificates to trust come from.
#[derive(Debug, Clone)]
// Without the `tls` feature the builder keeps the settings only to refuse them.
#[cfg_attr(not(feature = "tls"), allow(dead_code))]
pub(crate) enum TrustedCa {
    Pem(Vec<u8>),
    File(PathBuf),
}

/// A client certificate chain and its private key, as PEM. `Debug` shows neither.
#[derive(Clone)]
#[cfg_attr(not(feature = "tls"), allow(dead_code))]
pub(crate) struct ClientIdentity {
    pub(crate) cert_chain_pem: Vec<u8>,
    pub(crate) key_pem: Vec<u8>,
}

impl fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientIdentity").finish_non_exhaustive()
    }
}

/// The TLS settings of a builder; the defaults trust the OS store and present no certificate.
#[derive(Debug, Clone, Default)]
pub(crate) struct TlsSettings {
    pub(crate) ca: Option<TrustedCa>,
    pub(crate) identity: Option<ClientIdentity>,
}

impl TlsSettings {
    pub(crate) fn is_default(&self) -> bool {
        self.ca.is_none() && self.identity.is_none()
    }
}

/// Gives `client` its TLS: `https` is `Some` for an `https://` URL, `None` for `http://`.
#[cfg(feature = "tls")]
pub(crate) fn configure(
    client: reqwest::ClientBuilder,
    https: Option<&TlsSettings>,
) -> Result<reqwest::ClientBuilder, VerifyError> {
    // Always a preconfigured config: with `rustls-no-provider`, reqwest would otherwise look for
    // a process-wide provider and panic without one. For http:// it trusts nothing.
    let config = match https {
        Some(settings) => enabled::client_config(settings)?,
        None => enabled::client_config_trusting(rustls::RootCertStore::empty(), None)?,
    };
    Ok(client.tls_backend_preconfigured(config))
}

#[cfg(not(feature = "tls"))]
pub(crate) fn configure(
    client: reqwest::ClientBuilder,
    https: Option<&TlsSettings>,
) -> Result<reqwest::ClientBuilder, VerifyError> {
    match https {
        Some(_) => Err(VerifyError::Config("https:// JWKS URLs need auth-verifier's `tls` feature".to_owned())),
        None => Ok(client),
    }
}

#[cfg(feature = "tls")]
mod enabled {
    use std::sync::Arc;

    use rustls::{ClientConfig, RootCertStore};
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};

    use super::{ClientIdentity, TlsSettings, TrustedCa};
    use crate::VerifyError;

    fn config_error(message: String) -> VerifyError {
        VerifyError::Config(message)
    }

    pub(super) fn client_config(settings: &TlsSettings) -> Result<ClientConfig, VerifyError> {
        let roots = match &settings.ca {
            Some(TrustedCa::Pem(pem)) => ca_roots(pem, "tls_ca_pem")?,
            Some(TrustedCa::File(path)) => {
                let pem = std::fs::read(path)
                    .map_err(|error| config_error(format!("tls_ca_file {}: {error}", path.display())))?;
                ca_roots(&pem, &format!("tls_ca_file {}", path.display()))?
            }
            None => system_roots()?,
        };
        client_config_trusting(roots, settings.identity.as_ref())
    }

    pub(super) fn client_config_trusting(
        roots: RootCertStore,
        identity: Option<&ClientIdentity>,
    ) -> Result<ClientConfig, VerifyError> {
        let builder = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|error| config_error(format!("TLS: {error}")))?
            .with_root_certificates(roots);
        let mut config = match identity {
            Some(identity) => {
                let (chain, key) = parse_identity(identity)?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|error| config_error(format!("tls_client_identity_pem: {error}")))?
            }
            None => builder.with_no_client_auth(),
        };
        // reqwest is built without HTTP/2; say so, for servers that insist on ALPN.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }

    fn certificates(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, VerifyError> {
        let certs = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| config_error(format!("{what}: not PEM: {error}")))?;
        if certs.is_empty() {
            return Err(config_error(format!("{what}: no PEM CERTIFICATE block")));
        }
        Ok(certs)
    }

    /// Only the given CA: a cluster's or cert-manager's CA is meant to replace the public ones.
    fn ca_roots(pem: &[u8], what: &str) -> Result<RootCertStore, VerifyError> {
        let mut roots = RootCertStore::empty();
        for cert in certificates(pem, what)? {
            roots.add(cert).map_err(|error| config_error(format!("{what}: not a usable CA certificate: {error}")))?;
        }
        Ok(roots)
    }

    /// The OS store (rustls-native-certs), not webpki-roots' bundle baked in at build time: the
    /// store is what operators update, and where an image's extra CAs (a company's, a cluster's)
    /// are installed; a binary's baked-in list only changes with a rebuild.
    fn system_roots() -> Result<RootCertStore, VerifyError> {
        let found = rustls_native_certs::load_native_certs();
        let mut roots = RootCertStore::empty();
        // Stores carry odd certificates; skipping the ones rustls cannot use is what browsers do.
        roots.add_parsable_certificates(found.certs);
        if roots.is_empty() {
            let cause = found.errors.first().map(|error| format!(" ({error})")).unwrap_or_default();
            return Err(config_error(format!(
                "TLS: no CA certificates in the system store{cause}; install them (ca-certificates) \
                 or give tls_ca_pem / tls_ca_file"
            )));
        }
        Ok(roots)
    }

    fn parse_identity(
        identity: &ClientIdentity,
    ) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), VerifyError> {
        let chain = certificates(&identity.cert_chain_pem, "tls_client_identity_pem certificate chain")?;
        // The parser's error is left out: it could quote a line of the key.
        let key = PrivateKeyDer::from_pem_slice(&identity.key_pem).map_err(|_| {
            config_error("tls_client_identity_pem key: no PEM private key (PKCS#8, PKCS#1 or SEC1)".to_owned())
        })?;
        Ok((chain, key))
    }
}
