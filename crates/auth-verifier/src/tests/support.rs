//! Test keys, token minting, and a real JWKS server on 127.0.0.1:0 whose key set, body and
//! `Cache-Control` a test can change, and which counts its fetches.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::IntoResponse;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header, get_current_timestamp};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::Verifier;

pub(crate) const ISSUER: &str = "auth-svc";

/// A signing key of the fixtures and its published JWK.
pub(crate) struct TestKey {
    pub(crate) kid: &'static str,
    pub(crate) algorithm: Algorithm,
    pub(crate) encoding: EncodingKey,
    pub(crate) public_pem: &'static [u8],
}

impl TestKey {
    fn new(kid: &'static str, algorithm: Algorithm, private_pem: &[u8], public_pem: &'static [u8]) -> Self {
        let encoding = match algorithm {
            Algorithm::EdDSA => EncodingKey::from_ed_pem(private_pem),
            _ => EncodingKey::from_ec_pem(private_pem),
        }
        .expect("fixture key");
        Self { kid, algorithm, encoding, public_pem }
    }

    pub(crate) fn jwk(&self) -> Jwk {
        let mut jwk = Jwk::from_encoding_key(&self.encoding, self.algorithm).expect("JWK of a fixture key");
        jwk.common.key_id = Some(self.kid.to_owned());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        jwk
    }

    /// The raw public key bytes, as the JWK's `x` (Ed25519) carries them.
    pub(crate) fn public_x(&self) -> Vec<u8> {
        let jwk = serde_json::to_value(self.jwk()).expect("JWK serialises");
        URL_SAFE_NO_PAD.decode(jwk["x"].as_str().expect("x")).expect("x is base64url")
    }

    /// A token signed by this key with its own `alg` and `kid`.
    pub(crate) fn sign(&self, claims: &Value) -> String {
        self.sign_with_kid(self.kid, claims)
    }

    /// A token signed by this key with its own `alg` but naming `kid` (another key's, or one
    /// nobody publishes).
    pub(crate) fn sign_with_kid(&self, kid: &str, claims: &Value) -> String {
        sign(&header(self.algorithm, Some(kid)), claims, &self.encoding)
    }
}

pub(crate) fn ed_a() -> TestKey {
    TestKey::new(
        "ed-a",
        Algorithm::EdDSA,
        include_bytes!("../../../../tests/fixtures/keys/ed25519-a.pem"),
        include_bytes!("../../../../tests/fixtures/keys/ed25519-a.pub.pem"),
    )
}

pub(crate) fn ed_b() -> TestKey {
    TestKey::new(
        "ed-b",
        Algorithm::EdDSA,
        include_bytes!("../../../../tests/fixtures/keys/ed25519-b.pem"),
        include_bytes!("../../../../tests/fixtures/keys/ed25519-b.pub.pem"),
    )
}

pub(crate) fn p256_a() -> TestKey {
    TestKey::new(
        "p256-a",
        Algorithm::ES256,
        include_bytes!("../../../../tests/fixtures/keys/p256-a.pem"),
        include_bytes!("../../../../tests/fixtures/keys/p256-a.pub.pem"),
    )
}

pub(crate) fn p256_b() -> TestKey {
    TestKey::new(
        "p256-b",
        Algorithm::ES256,
        include_bytes!("../../../../tests/fixtures/keys/p256-b.pem"),
        include_bytes!("../../../../tests/fixtures/keys/p256-b.pub.pem"),
    )
}

pub(crate) fn now() -> i64 {
    i64::try_from(get_current_timestamp()).expect("a sane clock")
}

/// The claims auth-svc puts in an access token, valid for five minutes, plus one extra claim
/// that `Claims` does not know.
pub(crate) fn access_claims() -> Value {
    let now = now();
    json!({
        "iss": ISSUER, "sub": "42", "userId": 42, "role": "user", "iat": now, "exp": now + 300,
        "jti": "jti-1", "sid": "sid-1", "token_type": "access", "scope": "extra, ignored"
    })
}

/// The claims auth-svc puts in a service account's access token (the client credentials
/// grant), valid for five minutes, with two scopes and no audience.
pub(crate) fn client_claims() -> Value {
    let now = now();
    json!({
        "iss": ISSUER, "sub": "billing", "client_id": "billing", "role": "service",
        "scope": "orders:read stock:read", "iat": now, "exp": now + 300, "jti": "jti-2", "sid": "sid-2",
        "token_type": "access"
    })
}

/// `access_claims` with `changes` merged in (a `null` removes the claim).
pub(crate) fn claims_with(changes: Value) -> Value {
    merged(access_claims(), changes)
}

/// `client_claims` with `changes` merged in (a `null` removes the claim).
pub(crate) fn client_claims_with(changes: Value) -> Value {
    merged(client_claims(), changes)
}

fn merged(mut claims: Value, changes: Value) -> Value {
    let object = claims.as_object_mut().expect("object");
    for (name, value) in changes.as_object().expect("object") {
        if value.is_null() {
            object.remove(name);
        } else {
            object.insert(name.clone(), value.clone());
        }
    }
    claims
}

pub(crate) fn header(algorithm: Algorithm, kid: Option<&str>) -> Header {
    let mut header = Header::new(algorithm);
    header.typ = Some("at+jwt".to_owned());
    header.kid = kid.map(str::to_owned);
    header
}

pub(crate) fn sign(header: &Header, claims: &Value, key: &EncodingKey) -> String {
    jsonwebtoken::encode(header, claims, key).expect("signing")
}

/// A token put together by hand, for headers jsonwebtoken refuses to produce (`alg: none`).
pub(crate) fn unsigned(header: &Value, claims: &Value, signature: &[u8]) -> String {
    let part = |value: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).expect("JSON"));
    format!("{}.{}.{}", part(header), part(claims), URL_SAFE_NO_PAD.encode(signature))
}

pub(crate) fn jwks(keys: &[&TestKey]) -> Value {
    json!({ "keys": keys.iter().map(|key| key.jwk()).collect::<Vec<_>>() })
}

struct Served {
    failing: AtomicBool,
    body: Mutex<String>,
    cache_control: Mutex<String>,
    fetches: AtomicUsize,
}

/// A gateway stand-in that serves `GET /.well-known/jwks.json`.
pub(crate) struct JwksServer {
    pub(crate) url: String,
    served: Arc<Served>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl JwksServer {
    pub(crate) async fn start(jwks: Value) -> Self {
        let served = Arc::new(Served {
            failing: AtomicBool::new(false),
            body: Mutex::new(jwks.to_string()),
            cache_control: Mutex::new("public, max-age=300".to_owned()),
            fetches: AtomicUsize::new(0),
        });
        let app = axum::Router::new().route("/.well-known/jwks.json", get(serve_jwks)).with_state(Arc::clone(&served));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/.well-known/jwks.json", listener.local_addr().expect("address"));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
                .expect("JWKS server");
        });
        Self { url, served, stop: Some(stop), task: Some(task) }
    }

    pub(crate) fn set_jwks(&self, jwks: Value) {
        self.set_body(jwks.to_string());
    }

    pub(crate) fn set_body(&self, body: String) {
        *self.served.body.lock().expect("lock") = body;
    }

    /// Answers 500 while `failing`.
    pub(crate) fn set_failing(&self, failing: bool) {
        self.served.failing.store(failing, Ordering::SeqCst);
    }

    pub(crate) fn set_cache_control(&self, value: &str) {
        value.clone_into(&mut self.served.cache_control.lock().expect("lock"));
    }

    pub(crate) fn fetches(&self) -> usize {
        self.served.fetches.load(Ordering::SeqCst)
    }

    /// Stops accepting and closes every connection, so the next fetch is refused.
    pub(crate) async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("JWKS server task");
        }
    }

    /// A verifier for this server with the default settings but `min_refresh_interval`.
    pub(crate) fn verifier(&self, min_refresh_interval: Duration) -> Verifier {
        Verifier::builder(&self.url).min_refresh_interval(min_refresh_interval).build().expect("verifier")
    }
}

async fn serve_jwks(State(served): State<Arc<Served>>) -> axum::response::Response {
    served.fetches.fetch_add(1, Ordering::SeqCst);
    if served.failing.load(Ordering::SeqCst) {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    let body = served.body.lock().expect("lock").clone();
    let cache_control = served.cache_control.lock().expect("lock").clone();
    ([(CONTENT_TYPE, "application/json".to_owned()), (CACHE_CONTROL, cache_control)], body).into_response()
}

/// A server publishing `keys`, and a verifier for it with the default settings.
pub(crate) async fn verifier_for(keys: &[&TestKey]) -> (JwksServer, Verifier) {
    let server = JwksServer::start(jwks(keys)).await;
    let verifier = server.verifier(DEFAULT_INTERVAL);
    (server, verifier)
}

/// A JWKS URL where nothing listens: the port was bound and released.
pub(crate) async fn dead_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    drop(listener);
    format!("http://{address}/.well-known/jwks.json")
}

pub(crate) const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
