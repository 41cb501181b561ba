//! gateway: the REST front of auth-svc. It serves the go-zero tutorial's `/user/…` paths and
//! the FastAPI tutorial's `/signup`, `/token`, `/protected`, and the token verification keys at
//! `/.well-known/jwks.json`, turning each REST call into exactly one gRPC call on a single shared
//! channel to auth-svc.
//!
//! `routes` holds the thin handlers; `upstream` the channel and what travels over it;
//! `client` which address a request comes from (auth-svc throttles logins by it);
//! `error` the one gRPC-to-HTTP mapping; `app` the tower-http stack and the server.
//! The gateway never verifies a token: auth-svc's interceptor is the one place that decides.

pub mod app;
pub mod client;
pub mod config;
pub mod error;
pub mod extract;
pub mod metrics;
pub mod routes;
pub mod upstream;

pub use app::App;
pub use config::Config;
