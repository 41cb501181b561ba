//! The REST routes, one module per tutorial plus the OAuth 2.0 endpoints, the key set and the
//! probes. Routes are
//! registered through `utoipa_axum`, which records each one (with the schemas it uses) in an
//! OpenAPI document as it adds it to the router; `openapi` completes that document.

pub mod gozero;
/// The caller's sessions, password and account deletion (`/user/sessions`, `DELETE /user`, …).
pub mod gozero_accounts;
/// The operators' account management under `/admin/users`.
pub mod gozero_admin;
/// The second factor: the login's second step and the caller's TOTP and recovery codes (`/user/mfa…`).
pub mod gozero_mfa;
pub mod health;
pub mod jwks;
pub mod oauth2;
/// Introspection, revocation and the server metadata document: the OAuth 2.0 endpoints beside `/token`.
pub mod oauth2_server;
/// Protobuf timestamps as RFC 3339 strings, for the answers that carry times.
mod timestamp;

use axum::{Json, http::header, response::IntoResponse, routing::get};
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

/// A token response, which no cache may keep (RFC 6749 section 5.1).
fn no_store(body: impl Serialize) -> impl IntoResponse {
    ([(header::CACHE_CONTROL, "no-store"), (header::PRAGMA, "no-cache")], Json(body))
}

/// Every API route, and the paths and schemas of the OpenAPI document that describe them.
pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .merge(gozero::routes())
        .merge(gozero_accounts::routes())
        .merge(gozero_mfa::routes())
        .merge(gozero_admin::routes())
        .merge(oauth2::routes())
        .merge(oauth2_server::routes())
        .merge(jwks::routes())
        .merge(health::routes())
        // CONTRACT.md: `/protected/`, the trailing slash of the FastAPI tutorial's browser
        // example, reaches `/protected`. Answered the same rather than redirected as FastAPI does
        // (307): a redirect costs a round trip, and a client that does not follow redirects (curl
        // without -L) would get the 307 instead of the greeting. Only this path: the contract
        // names no other. Plain `route`, so the document lists `/protected` alone.
        .route("/protected/", get(oauth2::protected))
}
