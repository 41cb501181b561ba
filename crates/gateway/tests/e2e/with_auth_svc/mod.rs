//! Suites against the real auth-svc (temp SQLite, cheap hashing; `support::auth_svc`): the
//! routes of both tutorials end to end, and what the gateway does around them.

mod accounts;
mod connections;
mod cors;
mod docs;
mod gozero;
mod health;
mod limits;
mod metrics;
mod mfa;
mod oauth2;
mod request_id;
mod service_accounts;
mod upstream_down;
