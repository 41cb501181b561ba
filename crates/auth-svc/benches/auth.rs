//! Micro-benchmarks of the credential work on the request path: signing a token pair (Login,
//! Refresh), verifying an access token, the bearer check in front of every protected call, and
//! one argon2id hash at the OWASP profile (the cost of a Login or Register).
//!
//! `cargo bench -p auth-svc --bench auth`; docs/benchmarks.md records the numbers next to the
//! load-test table.

// Bench code, like test code, may unwrap (the workspace lints deny it elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use auth_svc::{
    auth::{
        keys::Secrets,
        password::PasswordHasher,
        tokens::{PairSpec, TokenKeys, now_unix},
    },
    config::{HashProfile, KeyAlgorithm, KeyConfig},
    edge::bearer::authenticate,
};
use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue, header::AUTHORIZATION};
use secrecy::SecretString;

fn keys() -> TokenKeys {
    let secrets = Secrets {
        access: Some(SecretString::from("bench-access-secret-0123456789-abcdefghijklmnop")),
        refresh: SecretString::from("bench-refresh-secret-0123456789-abcdefghijklmnop"),
        generated: false,
    };
    TokenKeys::new(&secrets, "auth-svc", 900).expect("HS256 keys")
}

fn spec(issued_at: i64) -> PairSpec<'static> {
    PairSpec {
        user_id: 42,
        role: "user",
        session_id: "0b5e4f7a-3c1d-4f8e-9a6b-2d7c8e1f0a3b",
        refresh_jti: "6f1c2d3e-4b5a-4c7d-8e9f-0a1b2c3d4e5f",
        access_jti: "9a8b7c6d-5e4f-4a3b-2c1d-0e9f8a7b6c5d",
        issued_at,
        refresh_expires_at: issued_at + 1_209_600,
        amr: "pwd",
    }
}

fn tokens(c: &mut Criterion) {
    let keys = keys();
    let spec = spec(now_unix());
    c.bench_function("tokens/sign_pair", |b| b.iter(|| keys.sign_pair(black_box(&spec))));

    let pair = keys.sign_pair(&spec).expect("signing works");
    c.bench_function("tokens/verify_access", |b| b.iter(|| keys.verify_access(black_box(&pair.access_token))));

    let mut headers = HeaderMap::new();
    let bearer = HeaderValue::from_str(&format!("Bearer {}", pair.access_token)).expect("a valid header value");
    headers.insert(AUTHORIZATION, bearer);
    c.bench_function("bearer/authenticate", |b| b.iter(|| authenticate(&keys, black_box(&headers))));
}

/// The same pair signed and verified with each asymmetric access-token algorithm (the refresh
/// token stays HS256), to weigh a switch away from the default HS256.
fn asymmetric(c: &mut Criterion) {
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/keys");
    for (name, algorithm, file) in
        [("eddsa", KeyAlgorithm::EdDSA, "ed25519-a.pem"), ("es256", KeyAlgorithm::ES256, "p256-a.pem")]
    {
        let config = KeyConfig {
            algorithm,
            private_key_file: Some(format!("{fixtures}/{file}").into()),
            private_key_pem: None,
            public_key_file: None,
            public_key_pem: None,
        };
        let key = auth_svc::auth::keys::load("bench", &config).expect("the fixture key loads");
        let secrets = Secrets {
            access: None,
            refresh: SecretString::from("bench-refresh-secret-0123456789-abcdefghijklmnop"),
            generated: false,
        };
        let keys = TokenKeys::with_keys(&secrets, vec![key], Some("bench"), "auth-svc", 900).expect("a key ring");
        let spec = spec(now_unix());
        c.bench_function(&format!("tokens/sign_pair_{name}"), |b| b.iter(|| keys.sign_pair(black_box(&spec))));
        let pair = keys.sign_pair(&spec).expect("signing works");
        c.bench_function(&format!("tokens/verify_access_{name}"), |b| {
            b.iter(|| keys.verify_access(black_box(&pair.access_token)))
        });
    }
}

fn password(c: &mut Criterion) {
    // The service's own hasher (a blocking thread behind a semaphore), driven to completion.
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("a tokio runtime");
    let hasher = PasswordHasher::new(HashProfile::Owasp, 1, 64, Default::default()).expect("the OWASP profile");
    let mut group = c.benchmark_group("password");
    // Tens of milliseconds per hash: ten samples are plenty and keep the run short.
    group.sample_size(10);
    group.bench_function("hash_owasp", |b| {
        b.iter(|| runtime.block_on(hasher.hash(SecretString::from("correct horse battery staple"))))
    });
    group.finish();
}

criterion_group!(benches, tokens, asymmetric, password);
criterion_main!(benches);
