//! The crate's tests: real tokens signed with the fixture keys, a real JWKS server on
//! 127.0.0.1:0, and the layer driven through axum and tonic. The
//! `https://` tests (`tls`) need the `tls` feature: `cargo test -p auth-verifier --features tls`.

mod cache;
mod config;
mod jwks;
mod layer;
mod route_rules;
mod service_accounts;
mod support;
#[cfg(feature = "tls")]
mod tls;
mod verify;
