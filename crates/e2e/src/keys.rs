//! Asymmetric signing keys end to end: tokens of each algorithm verified by `auth-verifier`
//! through the JWKS a live gateway serves, a rotation from key A (EdDSA) to key B (ES256) walked
//! with two replicas live at every step, and the refusals (unknown `kid`, algorithm confusion).

use std::time::Duration;

use auth_api::user::v1::GetJwksRequest;
use auth_svc::config::{Config, KeyAlgorithm, KeyConfig};
use auth_verifier::Verifier;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use tonic::Code;

use crate::{
    helpers::{
        Gateway, PASSWORD, TestApp, TestDatabase, bearer, eventually, gateway_for, gateway_for_addr, http_get_ok,
        jwt_part, key_fixture, sign_jwt, spawn_app_on, test_config, token_payload,
    },
    proxy::TcpProxy,
};

const JWKS_MAX_AGE: u64 = 1;

/// Key A is Ed25519, key B is P-256; `Half::Public` gives a key that only verifies.
#[derive(Clone, Copy)]
enum Half {
    Private,
    Public,
}

fn key_a(half: Half) -> (String, KeyConfig) {
    key("a", KeyAlgorithm::EdDSA, "ed25519-a", half)
}

fn key_b(half: Half) -> (String, KeyConfig) {
    key("b", KeyAlgorithm::ES256, "p256-b", half)
}

fn key(kid: &str, algorithm: KeyAlgorithm, file: &str, half: Half) -> (String, KeyConfig) {
    let (private_key_file, public_key_file) = match half {
        Half::Private => (Some(key_fixture(&format!("{file}.pem"))), None),
        Half::Public => (None, Some(key_fixture(&format!("{file}.pub.pem")))),
    };
    (
        kid.to_owned(),
        KeyConfig { algorithm, private_key_file, private_key_pem: None, public_key_file, public_key_pem: None },
    )
}

/// A replica's config: the shared database, these keys, this signing key.
fn replica_config(database: &TestDatabase, keys: Vec<(String, KeyConfig)>, signing: &str) -> Config {
    let mut config = test_config(&database.url);
    config.auth.keys = keys.into_iter().collect();
    config.auth.signing_key = Some(signing.to_owned());
    config.auth.jwks_max_age = JWKS_MAX_AGE;
    config
}

async fn replica(database: &TestDatabase, keys: Vec<(String, KeyConfig)>, signing: &str) -> TestApp {
    spawn_app_on(replica_config(database, keys, signing), database.handle()).await
}

fn verifier(gateway: &Gateway) -> Verifier {
    Verifier::builder(&gateway.jwks_url)
        .issuer("auth-svc")
        .min_refresh_interval(Duration::from_millis(200))
        .build()
        .expect("verifier builds")
}

fn header_of(token: &str) -> Header {
    jsonwebtoken::decode_header(token).unwrap()
}

async fn access_token(app: &TestApp, username: &str) -> String {
    app.login(username, PASSWORD).await.expect("login").access_token
}

async fn active(app: &TestApp, token: &str) -> bool {
    app.validate(token).await.expect("ValidateToken answers").active
}

/// Every replica accepts every token, through GetUserInfo and ValidateToken; so does the verifier.
async fn accepted_everywhere(replicas: &[&TestApp], verifier: &Verifier, tokens: &[&str], step: &str) {
    for token in tokens {
        let kid = header_of(token).kid.unwrap();
        for (n, app) in replicas.iter().enumerate() {
            let info = app.user_info(&bearer(token)).await;
            assert!(info.is_ok(), "{step}: replica {n} refused a token of key {kid}: {info:?}");
            assert!(active(app, token).await, "{step}: replica {n} calls a token of key {kid} inactive");
        }
        let verified = verifier.verify(token).await;
        assert!(verified.is_ok(), "{step}: the verifier refused a token of key {kid}: {verified:?}");
    }
}

/// Waits out the JWKS max-age the replicas advertise, so verifiers must refetch.
async fn jwks_cache_expires() {
    tokio::time::sleep(Duration::from_millis(JWKS_MAX_AGE * 1000 + 300)).await;
}

/// The JWKS the gateway serves, as JSON.
async fn served_jwks(gateway: &Gateway) -> serde_json::Value {
    serde_json::from_str(&http_get_ok(&gateway.jwks_url).await).unwrap()
}

#[tokio::test]
async fn each_algorithm_verifies_through_the_gateway_jwks_and_hmac_keys_stay_private() {
    for (signing, keys) in [("a", vec![key_a(Half::Private)]), ("b", vec![key_b(Half::Private)])] {
        let database = TestDatabase::create().await;
        let app = replica(&database, keys, signing).await;
        let gateway = gateway_for(&app).await;
        let pair = app.signed_in("alice").await;
        let header = header_of(&pair.access_token);
        let expected = if signing == "a" { Algorithm::EdDSA } else { Algorithm::ES256 };
        assert_eq!((header.alg, header.kid.as_deref()), (expected, Some(signing)));

        let claims = verifier(&gateway).verify(&pair.access_token).await.expect("verified through the JWKS");
        let info = app.user_info(&bearer(&pair.access_token)).await.unwrap();
        assert_eq!((claims.user_id(), claims.role(), claims.token_type().as_str()), (Some(info.id), "user", "access"));
        // The refresh token is HS256 under a secret the verifier never sees.
        assert!(verifier(&gateway).verify(&pair.refresh_token).await.is_err());

        // The JWKS holds the one public key, and no HMAC key, by gRPC and through the gateway.
        let jwks = app.client.clone().get_jwks(GetJwksRequest {}).await.unwrap().into_inner();
        assert_eq!(jwks.keys.iter().map(|k| k.kid.as_str()).collect::<Vec<_>>(), [signing]);
        assert_eq!(jwks.max_age_seconds, i64::try_from(JWKS_MAX_AGE).unwrap());
        let body = served_jwks(&gateway).await;
        assert_eq!(body["keys"].as_array().map(Vec::len), Some(1), "{body}");
        assert!(body["keys"][0].get("d").is_none() && body["keys"][0].get("k").is_none(), "no private part: {body}");
        assert_eq!(body["keys"][0]["kid"], signing);
    }
}

/// The rotation of the README: A signs; add B (verify only); B signs; A retired. Two replicas
/// overlap at every step, as in a rolling update, and every token issued so far is checked on
/// both, and by one verifier reading the JWKS through a gateway in front of the newest replica
/// (a retargeted proxy standing in for the Kubernetes Service).
#[tokio::test]
async fn rotation_from_eddsa_to_es256_fails_no_request_and_retires_the_old_key() {
    let database = TestDatabase::create().await;
    let step0 = replica(&database, vec![key_a(Half::Private)], "a").await;
    let service = TcpProxy::start(step0.addr).await;
    let gateway = gateway_for_addr(service.addr()).await;
    let verifier = verifier(&gateway);
    step0.register("alice").await;
    let by_a = access_token(&step0, "alice").await;
    assert_eq!(header_of(&by_a).kid.as_deref(), Some("a"));
    accepted_everywhere(&[&step0], &verifier, &[&by_a], "step 0").await;
    // Verifiers that cache a set for a minute, with their one unknown-kid refetch spent on junk:
    // whether they accept B once it signs depends only on whether their cached set held B.
    let cached_at_step0 = slow_verifier(&gateway, &by_a).await;

    // Step 1: B added, A still signs. Old and new replicas side by side.
    let step1 = replica(&database, vec![key_a(Half::Private), key_b(Half::Private)], "a").await;
    service.retarget(step1.addr).await;
    let by_a_again = access_token(&step1, "alice").await;
    assert_eq!(header_of(&by_a_again).kid.as_deref(), Some("a"), "step 1 still signs with A");
    accepted_everywhere(&[&step0, &step1], &verifier, &[&by_a, &by_a_again], "step 1").await;
    drop(step0);
    let cached_at_step1 = slow_verifier(&gateway, &by_a).await;

    // Step 2 (after the JWKS max-age): B signs, A verifies by its public half. Step-1 and step-2
    // replicas overlap: each accepts the other's tokens.
    jwks_cache_expires().await;
    let step2 = replica(&database, vec![key_a(Half::Public), key_b(Half::Private)], "b").await;
    service.retarget(step2.addr).await;
    let by_b = access_token(&step2, "alice").await;
    let header = header_of(&by_b);
    assert_eq!((header.alg, header.kid.as_deref()), (Algorithm::ES256, Some("b")));
    accepted_everywhere(&[&step1, &step2], &verifier, &[&by_a, &by_a_again, &by_b], "step 2").await;
    // This is what step 1 is for: a set cached after it already holds B...
    assert!(cached_at_step1.verify(&by_b).await.is_ok(), "a set cached in step 1 verifies B");
    // ...while one cached before it cannot learn B until its cache expires (skipping step 1).
    assert!(cached_at_step0.verify(&by_b).await.is_err(), "a set cached before step 1 cannot know B");
    drop(step1);

    // Step 3: A retired. Tokens by B go on; tokens by A are refused by auth-svc at once...
    let step3 = replica(&database, vec![key_b(Half::Private)], "b").await;
    service.retarget(step3.addr).await;
    accepted_everywhere(&[&step2, &step3], &verifier, &[&by_b], "step 3").await;
    let refused = step3.user_info(&bearer(&by_a)).await.expect_err("a retired key's token is refused");
    assert_eq!(refused.code(), Code::Unauthenticated);
    assert!(!active(&step3, &by_a).await);
    // ...and by the verifier once the JWKS it cached has expired: never later than the max-age.
    jwks_cache_expires().await;
    assert!(
        eventually(Duration::from_secs(3), || {
            let (verifier, token) = (verifier.clone(), by_a.clone());
            async move { verifier.verify(&token).await.is_err() }
        })
        .await,
        "the verifier still accepts A after the JWKS max-age"
    );
    assert!(verifier.verify(&by_b).await.is_ok(), "and B as before");
}

/// A verifier that caches the set for a minute, has fetched it now, and has spent its one
/// unknown-kid refetch of that minute on a junk kid (`token` re-labelled).
async fn slow_verifier(gateway: &Gateway, token: &str) -> Verifier {
    let verifier = Verifier::builder(&gateway.jwks_url)
        .issuer("auth-svc")
        .min_refresh_interval(Duration::from_secs(60))
        .build()
        .unwrap();
    verifier.prefetch().await.unwrap();
    assert!(verifier.verify(&with_kid(token, "junk")).await.is_err());
    verifier
}

/// `token` with its header's `kid` replaced (the signature no longer matters: no key has it).
fn with_kid(token: &str, kid: &str) -> String {
    let mut header = header_of(token);
    header.kid = Some(kid.to_owned());
    let header = jwt_part(&serde_json::to_value(header).unwrap());
    let rest = token.split_once('.').unwrap().1;
    format!("{header}.{rest}")
}

#[tokio::test]
async fn unknown_kids_and_algorithm_confusion_are_refused_by_the_service_and_the_verifier() {
    let database = TestDatabase::create().await;
    let app = replica(&database, vec![key_a(Half::Private)], "a").await;
    let gateway = gateway_for(&app).await;
    let verifier = verifier(&gateway);
    let good = app.signed_in("alice").await.access_token;
    let claims = token_payload(&good);
    let sign = |alg: Algorithm, kid: &str, key: &EncodingKey| sign_jwt(alg, "at+jwt", Some(kid), &claims, key);
    let other_ed = EncodingKey::from_ed_pem(&std::fs::read(key_fixture("ed25519-b.pem")).unwrap()).unwrap();
    let a_private = EncodingKey::from_ed_pem(&std::fs::read(key_fixture("ed25519-a.pem")).unwrap()).unwrap();
    let a_public_pem = std::fs::read(key_fixture("ed25519-a.pub.pem")).unwrap();
    let jwk_x = served_jwks(&gateway).await["keys"][0]["x"].as_str().unwrap().to_owned();
    let forged = [
        ("a key nobody configured, under its own kid", sign(Algorithm::EdDSA, "c", &other_ed)),
        ("a key nobody configured, under A's kid", sign(Algorithm::EdDSA, "a", &other_ed)),
        ("A's key under an unknown kid", sign(Algorithm::EdDSA, "a2", &a_private)),
        ("HS256 keyed with A's public PEM", sign(Algorithm::HS256, "a", &EncodingKey::from_secret(&a_public_pem))),
        ("HS256 keyed with A's JWK x", sign(Algorithm::HS256, "a", &EncodingKey::from_secret(jwk_x.as_bytes()))),
    ];
    for (what, token) in &forged {
        let refused = app.user_info(&bearer(token)).await.expect_err(what);
        assert_eq!(refused.code(), Code::Unauthenticated, "{what}");
        assert!(!active(&app, token).await, "{what}");
        assert!(verifier.verify(token).await.is_err(), "{what}");
    }
    // The control: the same recipe with A's key and kid passes everywhere.
    let genuine = sign(Algorithm::EdDSA, "a", &a_private);
    assert!(app.user_info(&bearer(&genuine)).await.is_ok());
    assert!(verifier.verify(&genuine).await.is_ok());
}

/// A second Rust service, an axum app behind the verifier's layer, sees the claims of a token
/// auth-svc issued and refuses a missing or forged one.
#[tokio::test]
async fn an_axum_service_behind_the_verifier_layer_gets_the_claims() {
    use axum::{Extension, Router, routing::get};
    use tower::ServiceExt as _;

    let database = TestDatabase::create().await;
    let app = replica(&database, vec![key_b(Half::Private)], "b").await;
    let gateway = gateway_for(&app).await;
    let token = app.signed_in("alice").await.access_token;
    let service: Router = Router::new()
        .route(
            "/whoami",
            get(|Extension(claims): Extension<auth_verifier::Claims>| async move { claims.sub().to_owned() }),
        )
        .layer(verifier(&gateway).layer());
    let call = |authorization: Option<String>| {
        let service = service.clone();
        async move {
            let mut request = http::Request::get("/whoami");
            if let Some(value) = authorization {
                request = request.header(http::header::AUTHORIZATION, value);
            }
            let response = service.oneshot(request.body(axum::body::Body::empty()).unwrap()).await.unwrap();
            let status = response.status();
            let body = axum::body::to_bytes(response.into_body(), 1024).await.unwrap();
            (status, String::from_utf8_lossy(&body).into_owned())
        }
    };
    let info = app.user_info(&bearer(&token)).await.unwrap();
    assert_eq!(call(Some(bearer(&token))).await, (http::StatusCode::OK, info.id.to_string()));
    assert_eq!(call(None).await.0, http::StatusCode::UNAUTHORIZED);
    let tampered = format!("{}x", &token[..token.len() - 1]);
    assert_eq!(call(Some(bearer(&tampered))).await.0, http::StatusCode::UNAUTHORIZED);
}
