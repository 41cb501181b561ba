//! The JSON request-body extractor, whose rejections speak the route's error dialect (axum's own
//! `Json` answers in plain text, with statuses the tutorials do not use), and the decoding behind
//! it as plain functions of (headers, bytes), which property tests and fuzz targets call directly.

use axum::{
    Json,
    body::Bytes,
    extract::{FromRequest, Request},
    http::{HeaderMap, header},
};
use serde::de::DeserializeOwned;

use crate::{
    error::{ApiError, Dialect},
    state::AppState,
};

/// A JSON body (`Content-Type: application/json`). A body that does not parse, misses a field
/// or has another content type answers 400 under `/user/…` and 422 elsewhere; an oversized one 413.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let dialect = Dialect::for_path(request.uri().path());
        // As axum's `Json`: the media type first, so a wrong one is refused without reading.
        check_json_content_type(dialect, request.headers())?;
        let body = Bytes::from_request(request, state).await.map_err(|rejection| {
            ApiError::unparsable(dialect, rejection.status(), rejection.body_text(), state.body_limit)
        })?;
        parse_json(dialect, &body).map(Self)
    }
}

/// A JSON body as [`JsonBody`] reads it, or `T::default()` when the request has no body at all
/// (zero bytes, whatever its `Content-Type`): for a route whose body only holds options, so that
/// it can be called as plainly as the body-less `/user/logout`.
pub struct OptionalJsonBody<T>(pub T);

impl<T: DeserializeOwned + Default> FromRequest<AppState> for OptionalJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let dialect = Dialect::for_path(request.uri().path());
        let headers = request.headers().clone();
        let body = Bytes::from_request(request, state).await.map_err(|rejection| {
            ApiError::unparsable(dialect, rejection.status(), rejection.body_text(), state.body_limit)
        })?;
        if body.is_empty() {
            return Ok(Self(T::default()));
        }
        decode_json(dialect, &headers, &body).map(Self)
    }
}

/// The whole decoding of a JSON request body, as [`JsonBody`] does it once the body is read
/// (within the size limit): `Content-Type` must be `application/json` or `application/*+json`
/// (parameters allowed, case-insensitive), and `body` must deserialize into `T`. The error is
/// the answer the route gives: the dialect's "does not parse" status (400 or 422) with axum's
/// explanation. Never panics, whatever the bytes.
pub fn decode_json<T: DeserializeOwned>(dialect: Dialect, headers: &HeaderMap, body: &[u8]) -> Result<T, ApiError> {
    check_json_content_type(dialect, headers)?;
    parse_json(dialect, body)
}

fn check_json_content_type(dialect: Dialect, headers: &HeaderMap) -> Result<(), ApiError> {
    if is_json_content_type(headers) {
        Ok(())
    } else {
        Err(ApiError::new(dialect, dialect.unparsable_body(), "Expected request with `Content-Type: application/json`"))
    }
}

fn parse_json<T: DeserializeOwned>(dialect: Dialect, body: &[u8]) -> Result<T, ApiError> {
    Json::<T>::from_bytes(body)
        .map(|Json(value)| value)
        .map_err(|rejection| ApiError::new(dialect, dialect.unparsable_body(), rejection.body_text()))
}

/// axum's own test (`axum::Json` keeps it private): a parseable media type of `application/json`
/// or with a `+json` suffix.
pub fn is_json_content_type(headers: &HeaderMap) -> bool {
    let Some(mime) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<mime::Mime>().ok())
    else {
        return false;
    };
    mime.type_() == "application" && (mime.subtype() == "json" || mime.suffix().is_some_and(|name| name == "json"))
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderValue, StatusCode};

    use super::*;
    use crate::routes::gozero::LoginReq;

    fn content_type(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn json_media_types_as_axum_reads_them() {
        for accepted in ["application/json", "Application/JSON; charset=utf-8", "application/cloudevents+json"] {
            assert!(is_json_content_type(&content_type(accepted)), "{accepted}");
        }
        for refused in ["text/json", "application/jsonx", "application/x-www-form-urlencoded", "json", ""] {
            assert!(!is_json_content_type(&content_type(refused)), "{refused}");
        }
        assert!(!is_json_content_type(&HeaderMap::new()));
    }

    #[test]
    fn decode_json_answers_in_the_dialect() {
        let json = content_type("application/json");
        let login: LoginReq = decode_json(Dialect::GoZero, &json, br#"{"username":"a","password":"b"}"#).unwrap();
        assert_eq!(login.username, "a");
        let error = decode_json::<LoginReq>(Dialect::GoZero, &json, br#"{"username":"a"}"#).err().unwrap();
        assert_eq!(error.status(), StatusCode::BAD_REQUEST);
        assert!(error.message().contains("missing field `password`"), "{}", error.message());
        let error = decode_json::<LoginReq>(Dialect::FastApi, &content_type("text/plain"), b"{}").err().unwrap();
        assert_eq!(error.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(error.message(), "Expected request with `Content-Type: application/json`");
    }
}
