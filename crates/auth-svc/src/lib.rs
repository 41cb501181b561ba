//! auth-svc: the gRPC `UserService` (accounts, argon2id passwords, JWT sessions).
//!
//! The layers, each importing only from those below it:
//! - `startup` builds the app from `config` in one pass and runs it; `cli` holds the operator
//!   commands; `db` opens the database.
//! - `edge`: the tonic service, the bearer layer and the per-connection service.
//! - `service`: the rules (accounts, sessions, introspection, the user directory).
//! - `auth` (hashing, keys, tokens) and `store` (cache, throttles, revocation list, Redis).
//! - `domain`: the types the rules work on (user, username, password and role rules).
//! - `config`, `metrics`, `audit` (the audit events), `error`; tables and queries are the `model` crate.

pub mod audit;
pub mod auth;
pub mod cli;
pub mod config;
pub mod db;
pub mod domain;
pub mod edge;
pub mod error;
pub mod metrics;
pub mod service;
pub mod startup;
pub mod store;

pub use config::Config;
pub use startup::App;
