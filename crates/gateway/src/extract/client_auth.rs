//! Client authentication at the OAuth 2.0 endpoints (RFC 6749 section 2.3.1): a client sends its
//! id and secret either by HTTP Basic (`client_secret_basic`) or as the form's `client_id` and
//! `client_secret` (`client_secret_post`), never both (section 2.3). The gateway only reads them;
//! auth-svc checks them (ClientCredentials, IntrospectToken, RevokeToken).
//!
//! For Basic, section 2.3.1 has the client form-urlencode the id and the secret before joining
//! them with `:` and base64-encoding the result, so both are form-decoded here. Clients that skip
//! that step (curl's `-u`, most HTTP libraries) still work with auth-svc's clients: their ids
//! (`A-Z a-z 0-9 . _ -`) and secrets (base64url) hold no character that decoding changes.

use auth_api::user::v1::ClientAuthentication;
use axum::http::HeaderValue;
use base64::{
    Engine as _, alphabet,
    engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig},
};

use crate::error::{ApiError, Dialect, OAuthErrorCode};

/// A client's id and secret, as it sent them (no `Debug`: it holds the secret).
pub struct ClientCredentials {
    pub client_id: String,
    pub client_secret: String,
}

impl From<ClientCredentials> for ClientAuthentication {
    fn from(ClientCredentials { client_id, client_secret }: ClientCredentials) -> Self {
        Self { client_id, client_secret }
    }
}

/// The client's credentials from the `Authorization` header (when its scheme is Basic; any
/// other scheme is not client authentication, and is ignored) and the form's `client_id` and
/// `client_secret`; `None` when the client sent neither. Errors, in `dialect`:
///
/// - 401 `invalid_client` for a Basic header that does not decode into `id:secret`;
/// - 400 `invalid_request` for Basic and a form `client_secret` at once, Basic and a form
///   `client_id` naming another client (the same one is allowed: some libraries add it), or a
///   `client_secret` without a `client_id`.
///
/// A form `client_id` without `client_secret` is a client whose secret is empty, which section
/// 2.3.1 lets it leave out (auth-svc then refuses it: its secrets are never empty).
pub fn client_credentials(
    dialect: Dialect,
    authorization: Option<&HeaderValue>,
    form_client_id: Option<String>,
    form_client_secret: Option<String>,
) -> Result<Option<ClientCredentials>, ApiError> {
    let invalid_request = |why: &'static str| ApiError::oauth(dialect, OAuthErrorCode::InvalidRequest, why);
    match authorization.and_then(basic_credentials) {
        Some(Err(Malformed)) => Err(ApiError::oauth(
            dialect,
            OAuthErrorCode::InvalidClient,
            "malformed HTTP Basic client credentials: expected base64 of client_id:client_secret",
        )),
        Some(Ok(basic)) => {
            if form_client_secret.is_some() {
                return Err(invalid_request(
                    "client authenticated both by HTTP Basic and by client_secret in the form; use one",
                ));
            }
            if form_client_id.is_some_and(|id| id != basic.client_id) {
                return Err(invalid_request("client_id in the form is not the client of HTTP Basic"));
            }
            Ok(Some(basic))
        }
        None => match (form_client_id, form_client_secret) {
            (Some(client_id), secret) => {
                Ok(Some(ClientCredentials { client_id, client_secret: secret.unwrap_or_default() }))
            }
            (None, Some(_)) => Err(invalid_request("client_secret without client_id")),
            (None, None) => Ok(None),
        },
    }
}

/// A Basic header that does not decode into `id:secret`.
struct Malformed;

/// `None` unless `authorization` uses the Basic scheme (RFC 7617, case-insensitive); else its
/// credentials, each form-decoded.
fn basic_credentials(authorization: &HeaderValue) -> Option<Result<ClientCredentials, Malformed>> {
    let value = authorization.to_str().ok()?;
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    Some(decode_basic(token.trim_start_matches(' ')))
}

fn decode_basic(token: &str) -> Result<ClientCredentials, Malformed> {
    // Padding is optional: some clients leave it out, and it adds nothing.
    const BASE64: GeneralPurpose = GeneralPurpose::new(
        &alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let decoded = BASE64.decode(token.trim_end_matches(' ')).map_err(|_| Malformed)?;
    let text = String::from_utf8(decoded).map_err(|_| Malformed)?;
    // A raw `:` cannot be part of the id: the client encoded it (RFC 7617 section 2).
    let (client_id, client_secret) = text.split_once(':').ok_or(Malformed)?;
    Ok(ClientCredentials { client_id: form_decode(client_id)?, client_secret: form_decode(client_secret)? })
}

/// `application/x-www-form-urlencoded` decoding of one value: `+` is a space, `%XX` a byte; the
/// result must be UTF-8.
fn form_decode(encoded: &str) -> Result<String, Malformed> {
    let spaced = encoded.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced).decode_utf8().map(|text| text.into_owned()).map_err(|_| Malformed)
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use super::*;

    fn basic(user_pass: &str) -> HeaderValue {
        HeaderValue::from_str(&format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(user_pass)))
            .unwrap()
    }

    fn read(
        authorization: Option<&HeaderValue>,
        id: Option<&str>,
        secret: Option<&str>,
    ) -> Result<Option<(String, String)>, ApiError> {
        client_credentials(Dialect::OAuth2, authorization, id.map(str::to_owned), secret.map(str::to_owned))
            .map(|found| found.map(|client| (client.client_id, client.client_secret)))
    }

    fn pair(id: &str, secret: &str) -> Option<(String, String)> {
        Some((id.to_owned(), secret.to_owned()))
    }

    #[test]
    fn basic_credentials_are_form_decoded_after_base64() {
        let encoded = basic("svc%3Aa+b%C3%A9:se%2Fcr+et%25");
        assert_eq!(read(Some(&encoded), None, None).ok().unwrap(), pair("svc:a bé", "se/cr et%"));
        // Unencoded, as most libraries send it, and with an empty secret or no padding.
        assert_eq!(
            read(Some(&basic("billing-svc:s3cr3t_-")), None, None).ok().unwrap(),
            pair("billing-svc", "s3cr3t_-")
        );
        assert_eq!(read(Some(&basic("svc:")), None, None).ok().unwrap(), pair("svc", ""));
        let unpadded = HeaderValue::from_static("basic  c3ZjOng");
        assert_eq!(read(Some(&unpadded), None, None).ok().unwrap(), pair("svc", "x"));
        // The same client named in the form too.
        assert_eq!(read(Some(&basic("svc:x")), Some("svc"), None).ok().unwrap(), pair("svc", "x"));
    }

    #[test]
    fn form_credentials_and_none() {
        assert_eq!(read(None, Some("svc"), Some("x")).ok().unwrap(), pair("svc", "x"));
        assert_eq!(read(None, Some("svc"), None).ok().unwrap(), pair("svc", ""));
        assert!(read(None, None, None).ok().unwrap().is_none());
        // Another scheme is not client authentication.
        let bearer = HeaderValue::from_static("Bearer a.b.c");
        assert!(read(Some(&bearer), None, None).ok().unwrap().is_none());
        assert_eq!(read(Some(&bearer), Some("svc"), Some("x")).ok().unwrap(), pair("svc", "x"));
    }

    #[test]
    fn one_method_only() {
        let cases = [
            (Some(basic("svc:x")), Some("svc"), Some("x")),
            (Some(basic("svc:x")), None, Some("y")),
            (Some(basic("svc:x")), Some("other"), None),
            (None, None, Some("x")),
        ];
        for (authorization, id, secret) in cases {
            let error = read(authorization.as_ref(), id, secret).err().unwrap();
            assert_eq!(
                (error.status(), error.oauth_error()),
                (StatusCode::BAD_REQUEST, OAuthErrorCode::InvalidRequest)
            );
        }
    }

    #[test]
    fn malformed_basic_is_invalid_client() {
        for value in ["Basic", "Basic ", "Basic !!!", "Basic c3Zj", "Basic /w==", "Basic c3Zj%3Ax"] {
            let error = read(Some(&HeaderValue::from_static(value)), None, None).err().unwrap();
            assert_eq!(
                (error.status(), error.oauth_error()),
                (StatusCode::UNAUTHORIZED, OAuthErrorCode::InvalidClient)
            );
        }
        // A percent-encoded byte sequence that is not UTF-8.
        let error = read(Some(&basic("svc:%FF")), None, None).err().unwrap();
        assert_eq!(error.oauth_error(), OAuthErrorCode::InvalidClient);
    }
}
