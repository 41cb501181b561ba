//! End-to-end tests of auth-svc: the real server on an ephemeral port, a temporary SQLite
//! database, and the generated gRPC client. One binary, a module per feature.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;
mod login;
mod refresh;
mod register;
mod server;
mod user_info;
