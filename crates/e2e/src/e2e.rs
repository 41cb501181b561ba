//! End-to-end tests of auth-svc: the real server on an ephemeral port, a temporary SQLite
//! database, and the generated gRPC client. One binary, a module per feature.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod abuse;
mod attacks;
mod deploy;
mod faults;
mod helpers;
mod introspection;
mod keys;
mod login;
mod metrics;
mod pressure;
mod proxy;
mod refresh;
mod register;
mod replicas;
mod retention;
mod revocation;
mod roles;
mod server;
mod shared_state;
mod store_contracts;
mod user_info;
mod user_sync;
mod usernames;
