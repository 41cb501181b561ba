//! Form bodies, as the OAuth 2.0 endpoints (`/token`, `/oauth2/…`) take them:
//! `application/x-www-form-urlencoded` or `multipart/form-data`, read into their fields in the
//! order sent ([`FormFields`]). Repeated names are kept, for the parameters RFC 8707 lets a
//! client repeat (`resource`, `audience`); any other parameter sent twice is refused, as RFC
//! 6749 section 3.2 says none may be.

use axum::{
    body::Bytes,
    extract::{FromRequest, Multipart, Request},
    http::{HeaderMap, StatusCode, header},
};

use crate::error::{ApiError, Dialect};

/// A form's fields, in order, repeated names included (no `Debug`: they hold secrets).
pub struct FormFields {
    dialect: Dialect,
    fields: Vec<(String, String)>,
}

impl FormFields {
    /// The value of `name`, a parameter sent at most once: a second one is the dialect's
    /// "does not parse" answer (`invalid_request`).
    pub fn single(&self, name: &str) -> Result<Option<String>, ApiError> {
        let mut values = self.all(name);
        let first = values.next();
        if values.next().is_some() {
            return Err(ApiError::new(
                self.dialect,
                self.dialect.unparsable_body(),
                format!("duplicate field `{name}`"),
            ));
        }
        Ok(first.map(str::to_owned))
    }

    /// Every value of `name`, in the order sent.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> {
        self.fields.iter().filter(move |(field, _)| field == name).map(|(_, value)| value.as_str())
    }
}

/// Reads the body of `request` as a form, answering in `dialect`: the dialect's "does not
/// parse" status for anything but one of the two form encodings or for a multipart body that
/// does not parse, 413 past a size limit (`body_limit` only words its message: the server's
/// limit is enforced by its middleware before this runs). Never panics, whatever the bytes.
pub async fn read_form(request: Request, dialect: Dialect, body_limit: usize) -> Result<FormFields, ApiError> {
    let rejected = |status: StatusCode, text: String| ApiError::unparsable(dialect, status, text, body_limit);
    let fields = match form_media_type(request.headers()) {
        Some(URLENCODED) => {
            // Parsed here rather than with axum's `Form`, which matches the media type
            // case-sensitively and keeps only the last of repeated fields.
            let body = Bytes::from_request(request, &())
                .await
                .map_err(|rejection| rejected(rejection.status(), rejection.body_text()))?;
            // Invalid UTF-8 and stray `%` are decoded leniently (replacement characters), never refused.
            form_urlencoded::parse(&body).map(|(name, value)| (name.into_owned(), value.into_owned())).collect()
        }
        Some(_) => {
            let mut multipart = Multipart::from_request(request, &())
                .await
                .map_err(|rejection| rejected(rejection.status(), rejection.body_text()))?;
            let mut fields = Vec::new();
            while let Some(field) =
                multipart.next_field().await.map_err(|err| rejected(err.status(), err.body_text()))?
            {
                let name = field.name().unwrap_or_default().to_owned();
                let value = field.text().await.map_err(|err| rejected(err.status(), err.body_text()))?;
                fields.push((name, value));
            }
            fields
        }
        None => {
            let why = "expected a form: application/x-www-form-urlencoded or multipart/form-data";
            return Err(ApiError::new(dialect, dialect.unparsable_body(), why));
        }
    };
    Ok(FormFields { dialect, fields })
}

/// Which form encoding `headers` announce: the media type of `Content-Type`, lowercased, if it
/// is one of the two read here. Matched case-insensitively, as RFC 9110 (and FastAPI) do.
fn form_media_type(headers: &HeaderMap) -> Option<&'static str> {
    let media_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .map(|mime| mime.trim().to_ascii_lowercase())?;
    [URLENCODED, MULTIPART].into_iter().find(|known| *known == media_type)
}

const URLENCODED: &str = "application/x-www-form-urlencoded";
const MULTIPART: &str = "multipart/form-data";

#[cfg(test)]
mod tests {
    use axum::{body::Body, http::HeaderValue};

    use super::*;

    async fn urlencoded(body: &'static str) -> FormFields {
        let mut request = Request::new(Body::from(body));
        request
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("Application/X-WWW-Form-Urlencoded"));
        read_form(request, Dialect::OAuth2, 1024).await.ok().unwrap()
    }

    #[tokio::test]
    async fn repeated_fields_are_kept_in_order_and_single_ones_refuse_a_second() {
        let form = urlencoded("resource=https%3A%2F%2Fa.test&token=x&resource=b+c&token_type_hint=").await;
        assert_eq!(form.all("resource").collect::<Vec<_>>(), ["https://a.test", "b c"]);
        assert_eq!(form.single("token").ok().unwrap().as_deref(), Some("x"));
        assert_eq!(form.single("token_type_hint").ok().unwrap().as_deref(), Some(""));
        assert!(form.single("client_id").ok().unwrap().is_none());
        let error = form.single("resource").err().unwrap();
        assert_eq!((error.status(), error.message()), (StatusCode::BAD_REQUEST, "duplicate field `resource`"));
    }

    #[tokio::test]
    async fn anything_but_a_form_is_refused_in_the_dialect() {
        let mut request = Request::new(Body::from("{}"));
        request.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let error = read_form(request, Dialect::TokenEndpoint, 1024).await.err().unwrap();
        assert_eq!(error.status(), StatusCode::UNPROCESSABLE_ENTITY);
    }
}
