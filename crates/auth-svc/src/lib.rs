//! auth-svc: the gRPC `UserService` (accounts, argon2id passwords, JWT sessions).
//!
//! `grpc` is the thin edge; `accounts` and `sessions` hold the rules; `auth` holds hashing,
//! tokens and the bearer check; storage is the `model` crate.

#![deny(clippy::unwrap_used, clippy::expect_used)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

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
