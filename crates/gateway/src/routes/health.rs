//! Probes: `/healthz` says the process answers; `/readyz` says auth-svc answers too, so a load
//! balancer stops sending traffic that could only get 503s.

use axum::{Json, extract::State, http::StatusCode};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::state::AppState;

pub const TAG: &str = "health";

#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Health {
    pub status: HealthStatus,
}

/// `ok` (`/healthz`), `ready` or `unavailable` (`/readyz`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    Ok,
    Ready,
    Unavailable,
}

/// Liveness probe.
///
/// 200 while the gateway process serves HTTP, whatever the state of auth-svc.
#[utoipa::path(get, path = "/healthz", tag = TAG,
    responses((status = 200, description = "Alive", body = Health, example = json!({"status": "ok"}))))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: HealthStatus::Ok })
}

/// Readiness probe.
///
/// 200 only if auth-svc's gRPC health check reports `user.v1.UserService` SERVING, else 503, so
/// a load balancer stops sending traffic that could only fail.
#[utoipa::path(get, path = "/readyz", tag = TAG,
    responses(
        (status = 200, description = "auth-svc is SERVING", body = Health, example = json!({"status": "ready"})),
        (status = 503, description = "auth-svc is down or not serving", body = Health,
            example = json!({"status": "unavailable"})),
    ))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    match state.upstream.is_serving().await {
        Ok(true) => (StatusCode::OK, Json(Health { status: HealthStatus::Ready })),
        Ok(false) => {
            tracing::warn!("auth-svc reports NOT_SERVING");
            (StatusCode::SERVICE_UNAVAILABLE, Json(Health { status: HealthStatus::Unavailable }))
        }
        Err(status) => {
            tracing::warn!(code = ?status.code(), message = status.message(), "auth-svc health check failed");
            (StatusCode::SERVICE_UNAVAILABLE, Json(Health { status: HealthStatus::Unavailable }))
        }
    }
}

/// This module's routes, for `routes::api`.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default().routes(routes!(healthz)).routes(routes!(readyz))
}
