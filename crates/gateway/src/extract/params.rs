//! Path and query parameters with rejections in the route's dialect: axum's own `Path` and
//! `Query` answer in plain text, which would reach a go-zero client as a bare "Bad Request".

use std::{fmt::Display, str::FromStr};

use axum::{
    extract::{FromRequestParts, Path, Query},
    http::request::Parts,
};
use serde::de::DeserializeOwned;

use crate::error::{ApiError, Dialect};

/// The one `{…}` parameter of the route's path, parsed as `T` (`/admin/users/{id}` as an
/// `i64`). One that does not parse is the dialect's 400 (422 for FastAPI) naming the parameter,
/// and no call is made.
#[derive(Debug)]
pub struct PathParam<T>(pub T);

impl<T, S> FromRequestParts<S> for PathParam<T>
where
    T: FromStr,
    T::Err: Display,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let dialect = Dialect::for_path(parts.uri.path());
        let invalid = |why: String| ApiError::new(dialect, dialect.unparsable_body(), why);
        // Only a segment that is not UTF-8 once percent-decoded fails here.
        let Path(params) = Path::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| invalid(rejection.body_text()))?;
        let Some((name, value)) = params.into_iter().next() else {
            return Err(invalid("missing path parameter".to_owned()));
        };
        value.parse().map(Self).map_err(|why| invalid(format!("invalid `{name}` in the path: {why}")))
    }
}

/// The query string deserialized into `T` (camelCase names, unknown ones ignored). One that does
/// not deserialize (`pageSize=abc`, a negative number for an unsigned field) is the dialect's
/// 400 (422 for FastAPI) with serde's explanation, and no call is made.
#[derive(Debug)]
pub struct QueryParams<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let dialect = Dialect::for_path(parts.uri.path());
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| Self(value))
            .map_err(|rejection| ApiError::new(dialect, dialect.unparsable_body(), rejection.body_text()))
    }
}
