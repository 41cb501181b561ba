//! The REST routes, one module per tutorial plus the key set, probes and docs. Routes are registered through
//! `utoipa_axum`, which records each one in the OpenAPI document as it adds it to the router.

pub mod docs;
pub mod gozero;
pub mod health;
pub mod jwks;
pub mod oauth2;

use axum::{Json, Router, http::header, response::IntoResponse};
use serde::Serialize;
use utoipa::OpenApi as _;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::app::AppState;

/// A token response, which no cache may keep (RFC 6749 section 5.1).
fn no_store(body: impl Serialize) -> impl IntoResponse {
    ([(header::CACHE_CONTROL, "no-store"), (header::PRAGMA, "no-cache")], Json(body))
}

/// Every route, with the OpenAPI document and the docs UI mounted beside them.
pub fn router() -> Router<AppState> {
    let (api, openapi) = api();
    api.merge(docs::router(openapi))
}

/// The OpenAPI document `/openapi.json` serves.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api().1
}

/// The API routes and the document describing them, completed by [`docs::complete`].
fn api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (api, mut openapi) = OpenApiRouter::with_openapi(docs::ApiDoc::openapi())
        .routes(routes!(gozero::register))
        .routes(routes!(gozero::login))
        .routes(routes!(gozero::refresh))
        .routes(routes!(gozero::info))
        .routes(routes!(gozero::logout))
        .routes(routes!(gozero::set_role))
        .routes(routes!(oauth2::signup))
        .routes(routes!(oauth2::token))
        .routes(routes!(oauth2::protected))
        .routes(routes!(jwks::jwks))
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .split_for_parts();
    docs::complete(&mut openapi);
    (api, openapi)
}
