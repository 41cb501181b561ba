//! gateway: the REST front of auth-svc. It serves the go-zero tutorial's `/user/…` paths and
//! the FastAPI tutorial's `/signup`, `/token`, `/protected`, the OAuth 2.0 endpoints of service
//! accounts (the client credentials grant at `/token`, `/oauth2/introspect`, `/oauth2/revoke`,
//! `/.well-known/oauth-authorization-server`), and the token verification keys at
//! `/.well-known/jwks.json`, turning each REST call into exactly one gRPC call on a single shared
//! channel to auth-svc. The gateway never verifies a token: auth-svc's bearer layer is the one
//! place that decides.
//!
//! The modules, each importing only from those above it:
//!
//! - `config`: the file schema and its `GATEWAY__…` overrides, validated once at start.
//! - `error`: the one gRPC-to-HTTP mapping and both error bodies; every HTTP error is made here.
//! - `upstream`: the tonic client of auth-svc and the metadata each call carries.
//! - `state`: `AppState`, what every handler can reach.
//! - `extract`: what handlers take from a request: JSON bodies, forms, client credentials,
//!   forwarded metadata, client address.
//! - `routes`: the thin handlers, one module per tutorial plus the OAuth 2.0 endpoints, the key
//!   set and the probes.
//! - `middleware`: the tower-http stack every request passes through.
//! - `listener`: the accept loop and its connection limits.
//! - `openapi`: the OpenAPI document, completed with the shared answers, and the docs UI.
//! - `metrics`: Prometheus counters of the REST requests, served on the admin port.
//! - `app`: start-up: builds the whole app from a `Config`, binds the ports and serves.

pub mod app;
pub mod config;
pub mod error;
pub mod extract;
pub mod listener;
pub mod metrics;
pub mod middleware;
pub mod openapi;
pub mod routes;
pub mod state;
pub mod upstream;

pub use app::App;
pub use config::Config;
