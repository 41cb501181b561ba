//! End-to-end tests of the gateway: a real auth-svc (temp SQLite, cheap hashing) on an ephemeral
//! port, the real gateway on port 0, and a real HTTP client. One binary, a module per feature.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod cli;
mod connections;
mod cors;
mod decoding;
mod docs;
mod fake_upstream;
mod gozero;
mod health;
mod jwks;
mod limits;
mod metrics;
mod oauth2;
mod request_id;
mod shutdown;
mod upstream_down;
mod user_role;
