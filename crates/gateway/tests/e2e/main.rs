//! End-to-end tests of the gateway: the real gateway on port 0 and a real HTTP client, in front
//! of one of two upstreams. One binary, a module per feature:
//!
//! - `with_auth_svc`: a real auth-svc (temp SQLite, cheap hashing) on an ephemeral port;
//! - `with_scripted_upstream`: a scripted fake of auth-svc that answers as the test says and
//!   records what it receives;
//! - `cli`: the `gateway` binary refusing a bad configuration (no upstream at all).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod cli;
mod with_auth_svc;
mod with_scripted_upstream;
