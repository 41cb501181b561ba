//! auth-svc: the gRPC `UserService` (accounts, argon2id passwords, JWT sessions).
//!
//! `grpc` is the thin edge; `accounts` and `sessions` hold the rules; `auth` holds hashing,
//! tokens and the bearer check; storage is the `model` crate.

pub mod accounts;
pub mod auth;
pub mod cache;
pub mod config;
pub mod error;
pub mod grpc;
pub mod introspection;
pub mod metrics;
pub mod policy;
/// The background loop of the database polls that keep revocations and the user cache current.
pub mod polling;
pub mod redis_store;
pub mod revocation;
pub mod server;
pub mod sessions;
pub mod throttle;
pub mod users;

pub use config::Config;
pub use server::App;
