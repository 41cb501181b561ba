//! Request-body extractors whose rejections speak the route's error dialect (axum's own answer
//! in plain text, with statuses the tutorials do not use).

use axum::{
    Json,
    extract::{FromRequest, Request},
};
use serde::de::DeserializeOwned;

use crate::{
    app::AppState,
    error::{ApiError, Dialect},
};

/// A JSON body (`Content-Type: application/json`). A body that does not parse, misses a field
/// or has another content type answers 400 under `/user/…` and 422 elsewhere; an oversized one 413.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let dialect = Dialect::for_path(request.uri().path());
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(rejection) => {
                Err(ApiError::unparsable(dialect, rejection.status(), rejection.body_text(), state.body_limit))
            }
        }
    }
}
