//! `Verifier`: the configured rules plus the cached key set, shared behind one `Arc`.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::cache::KeyCache;
use crate::tls::{ClientIdentity, TlsSettings, TrustedCa};
use crate::token::TokenRules;
use crate::{BearerLayer, Claims, VerifyError};

const DEFAULT_ISSUER: &str = "auth-svc";
const DEFAULT_MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
pub(crate) const DEFAULT_MAX_STALE: Duration = Duration::from_secs(60 * 60);
/// Upper bound of `max_stale`: past a week, a set nobody could refresh is not worth trusting.
const MAX_MAX_STALE: Duration = Duration::from_secs(7 * 24 * 60 * 60);
/// Upper bound of `min_refresh_interval` and `leeway`: an hour is already far past sensible.
const MAX_SETTING: Duration = Duration::from_secs(60 * 60);

/// Verifies auth-svc access tokens against the JWKS the gateway publishes. Cheap to clone: all
/// clones share one key cache.
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

struct Inner {
    jwks_url: reqwest::Url,
    rules: TokenRules,
    keys: KeyCache,
    audience: Option<String>,
}

impl Verifier {
    /// Starts a verifier for the JWKS at `jwks_url`, e.g.
    /// `http://gateway:8888/.well-known/jwks.json`; `https://` needs the `tls` feature.
    pub fn builder(jwks_url: impl Into<String>) -> VerifierBuilder {
        VerifierBuilder {
            jwks_url: jwks_url.into(),
            issuer: DEFAULT_ISSUER.to_owned(),
            min_refresh_interval: DEFAULT_MIN_REFRESH_INTERVAL,
            leeway: Duration::ZERO,
            timeout: DEFAULT_TIMEOUT,
            max_stale: DEFAULT_MAX_STALE,
            audience: None,
            tls: TlsSettings::default(),
        }
    }

    /// Verifies an access token (without the `Bearer ` prefix) and returns its claims. Its
    /// `aud` must list the configured audience ([`VerifierBuilder::audience`]), or be absent
    /// when none is configured.
    pub async fn verify(&self, token: &str) -> Result<Claims, VerifyError> {
        self.verify_for(token, self.audience()).await
    }

    /// `verify` with `audience` in place of the configured one (a layer's `require_audience`).
    pub(crate) async fn verify_for(&self, token: &str, audience: Option<&str>) -> Result<Claims, VerifyError> {
        let header = self.inner.rules.read_header(token)?;
        let key = self.inner.keys.key(&header.kid).await?;
        self.inner.rules.check(token, &header, &key, audience)
    }

    /// The audience configured with [`VerifierBuilder::audience`].
    pub(crate) fn audience(&self) -> Option<&str> {
        self.inner.audience.as_deref()
    }

    /// Fetches the key set now. Call it at start to fail fast (or just to log) when the gateway
    /// cannot be reached; without it the first request fetches. Not rate-limited.
    pub async fn prefetch(&self) -> Result<(), VerifyError> {
        self.inner.keys.prefetch().await
    }

    /// A tower layer that verifies the `Authorization: Bearer` header of every request and puts
    /// the `Claims` into the request's extensions. [`BearerLayer::require_scopes`] and
    /// [`BearerLayer::require_audience`] add per-route needs; layers of one verifier share its
    /// key cache.
    pub fn layer(&self) -> BearerLayer {
        BearerLayer::new(self.clone())
    }
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier").field("jwks_url", &self.inner.jwks_url.as_str()).finish_non_exhaustive()
    }
}

/// Settings of a [`Verifier`]; every one has a default but the JWKS URL.
#[derive(Debug, Clone)]
#[must_use]
pub struct VerifierBuilder {
    jwks_url: String,
    issuer: String,
    min_refresh_interval: Duration,
    leeway: Duration,
    timeout: Duration,
    max_stale: Duration,
    audience: Option<String>,
    tls: TlsSettings,
}

impl VerifierBuilder {
    /// The `iss` tokens must carry. Default `auth-svc`.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = issuer.into();
        self
    }

    /// The audience this service is: tokens must list it in `aud`, and a token without `aud`
    /// is refused ([`VerifyError::MissingAudience`]; RFC 9068 section 4), which includes every
    /// user's token (auth-svc gives those no audience). Without it, the default, a token
    /// carrying any `aud` is refused ([`VerifyError::WrongAudience`]). A layer's
    /// [`require_audience`](crate::BearerLayer::require_audience) replaces it for its routes.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// The least time between two fetches caused by unknown `kid`s, and after a failed fetch;
    /// also the shortest freshness a key set gets. Default 30 s; more than zero, at most an hour.
    pub fn min_refresh_interval(mut self, interval: Duration) -> Self {
        self.min_refresh_interval = interval;
        self
    }

    /// Clock skew allowed past `exp`, in whole seconds. Default zero, at most an hour.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Timeout of one JWKS request, connection included. Default 5 s.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long past its freshness a cached key set may still be used while refreshing it fails
    /// (gateway unreachable, 5xx, bad body). Past that the set is dropped and tokens get
    /// [`VerifyError::KeysUnavailable`] (503 / `UNAVAILABLE`) until a fetch succeeds. It bounds
    /// how long a retired or leaked key stays accepted during an outage. Default 1 h; zero
    /// means a stale set is never used; at most 7 days.
    pub fn max_stale(mut self, max_stale: Duration) -> Self {
        self.max_stale = max_stale;
        self
    }

    /// For an `https://` URL: trust only the CA certificates in `pem` (one or more PEM
    /// `CERTIFICATE` blocks, e.g. a Kubernetes cluster's or cert-manager's CA) instead of the
    /// system's. Replaces an earlier `tls_ca_pem` or `tls_ca_file`.
    pub fn tls_ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls.ca = Some(TrustedCa::Pem(pem.into()));
        self
    }

    /// `tls_ca_pem` with the PEM read from `path` by `build`.
    pub fn tls_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.tls.ca = Some(TrustedCa::File(path.into()));
        self
    }

    /// For an `https://` URL: the client certificate (its chain, leaf first, as PEM) and its
    /// private key (PEM: PKCS#8, PKCS#1 or SEC1) to present when the gateway requires mutual
    /// TLS. Neither shows in `Debug`.
    pub fn tls_client_identity_pem(mut self, cert_chain_pem: impl Into<Vec<u8>>, key_pem: impl Into<Vec<u8>>) -> Self {
        self.tls.identity = Some(ClientIdentity { cert_chain_pem: cert_chain_pem.into(), key_pem: key_pem.into() });
        self
    }

    /// Checks the settings and builds the verifier. No request is made yet.
    pub fn build(self) -> Result<Verifier, VerifyError> {
        let jwks_url = reqwest::Url::parse(&self.jwks_url)
            .map_err(|error| VerifyError::Config(format!("JWKS URL {:?}: {error}", self.jwks_url)))?;
        let https = match jwks_url.scheme() {
            "https" => Some(&self.tls),
            // A CA or client certificate with http:// protects nothing: say so rather than ignore it.
            "http" if !self.tls.is_default() => {
                return Err(VerifyError::Config(format!(
                    "JWKS URL {:?}: TLS settings need an https:// URL",
                    self.jwks_url
                )));
            }
            "http" => None,
            _ => {
                return Err(VerifyError::Config(format!(
                    "JWKS URL {:?}: only http:// and https:// are supported",
                    self.jwks_url
                )));
            }
        };
        if self.min_refresh_interval.is_zero() || self.min_refresh_interval > MAX_SETTING {
            return Err(VerifyError::Config(
                "min_refresh_interval must be more than zero and at most an hour".to_owned(),
            ));
        }
        // jsonwebtoken subtracts the leeway from the current time in u64 arithmetic.
        if self.leeway > MAX_SETTING {
            return Err(VerifyError::Config("leeway must be at most an hour".to_owned()));
        }
        if self.max_stale > MAX_MAX_STALE {
            return Err(VerifyError::Config("max_stale must be at most 7 days".to_owned()));
        }
        if self.issuer.is_empty() {
            return Err(VerifyError::Config("issuer must not be empty".to_owned()));
        }
        if self.audience.as_deref().is_some_and(str::is_empty) {
            return Err(VerifyError::Config("audience must not be empty".to_owned()));
        }
        let client = reqwest::Client::builder()
            .timeout(self.timeout)
            .connect_timeout(self.timeout)
            // The gateway answers the JWKS itself; a redirect elsewhere is not followed.
            .redirect(reqwest::redirect::Policy::none());
        let client = crate::tls::configure(client, https)?
            .build()
            .map_err(|error| VerifyError::Config(format!("HTTP client: {error}")))?;
        let keys = KeyCache::new(client, jwks_url.clone(), self.min_refresh_interval, self.max_stale);
        let rules = TokenRules::new(&self.issuer, self.leeway);
        Ok(Verifier { inner: Arc::new(Inner { jwks_url, rules, keys, audience: self.audience }) })
    }
}
