//! `/.well-known/jwks.json`: the public keys that verify auth-svc's access tokens, as a JSON Web
//! Key Set (RFC 7517), for services that verify tokens themselves. Each request makes one
//! `GetJwks` call. The answer may be cached for as long as auth-svc says (`Cache-Control:
//! max-age`), and revalidated with its `ETag` (`If-None-Match` answers 304), so verifiers that
//! poll the set cost one gRPC call and no body.

use auth_api::user::v1::GetJwksResponse;
use axum::{
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    error::{ApiError, Dialect},
    extract::Forwarded,
    state::AppState,
};

pub const TAG: &str = "JWKS";

/// Not under `/user/`: errors are `{"detail"}` (see `Dialect::for_path`).
const DIALECT: Dialect = Dialect::FastApi;

/// A JSON Web Key Set. Empty when auth-svc signs with HMAC only (its default), whose keys are
/// secret.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"keys": [
    {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
     "kid": "ed-2025-01", "alg": "EdDSA", "use": "sig"},
    {"kty": "EC", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
     "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0", "kid": "ec-2025-01", "alg": "ES256", "use": "sig"},
]}))]
pub struct JwkSet {
    pub keys: Vec<Jwk>,
}

/// One public key; the members are RFC 7517's (RFC 8037 for `OKP`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Jwk {
    /// Key type: `OKP` (Ed25519) or `EC` (P-256).
    pub kty: String,
    /// Curve: `Ed25519` or `P-256`.
    pub crv: String,
    /// base64url: the public key (`OKP`) or its x coordinate (`EC`).
    pub x: String,
    /// base64url y coordinate; `EC` keys only.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub y: Option<String>,
    /// Key id, as in the `kid` header of the tokens it verifies.
    pub kid: String,
    /// `EdDSA` or `ES256`.
    pub alg: String,
    /// Always `sig`.
    #[serde(rename = "use")]
    pub public_key_use: String,
}

impl From<auth_api::user::v1::Jwk> for Jwk {
    fn from(key: auth_api::user::v1::Jwk) -> Self {
        Self {
            kty: key.kty,
            crv: key.crv,
            x: key.x,
            y: Some(key.y).filter(|y| !y.is_empty()),
            kid: key.kid,
            alg: key.alg,
            public_key_use: key.r#use,
        }
    }
}

/// The public keys that verify access tokens (RFC 7517).
///
/// The key set auth-svc publishes, for services that verify access tokens themselves; empty
/// while auth-svc signs with HMAC only. Keep it for `Cache-Control: max-age` seconds, then
/// revalidate with `If-None-Match`: an unchanged set answers 304 with no body.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = TAG,
    params(
        ("if-none-match" = Option<String>, Header, nullable = false,
            description = "`ETag`s of sets the client holds (or `*`): if one is the current set's, the \
                answer is 304 with no body"),
    ),
    responses(
        (status = 200, description = "The key set; empty when auth-svc signs with HMAC only", body = JwkSet,
            headers(
                ("cache-control" = String, description = "`public, max-age=<seconds>`, the seconds auth-svc \
                    allows verifiers to cache the set"),
                ("etag" = String, description = "Strong validator: the SHA-256 of the body, in hex, quoted"),
            )),
        (status = 304, description = "`If-None-Match` names the current set: keep using it",
            headers(
                ("cache-control" = String, description = "As the 200 would carry"),
                ("etag" = String, description = "As the 200 would carry"),
            )),
    ))]
pub async fn jwks(
    State(state): State<AppState>,
    forwarded: Forwarded,
    request: HeaderMap,
) -> Result<Response, ApiError> {
    let answer = state.upstream.jwks(&forwarded).await.map_err(|status| ApiError::from_grpc(DIALECT, &status))?;
    Ok(conditional_answer(answer, &request))
}

/// The 200 with the set, or the 304 if `request`'s `If-None-Match` names it; both carry the
/// same `Cache-Control` and `ETag` (RFC 9110 section 15.4.5).
fn conditional_answer(answer: GetJwksResponse, request: &HeaderMap) -> Response {
    let set = JwkSet { keys: answer.keys.into_iter().map(Jwk::from).collect() };
    #[allow(clippy::expect_used, reason = "a struct of strings always serializes into a Vec")]
    let body = serde_json::to_vec(&set).expect("a JWK set serializes");
    let etag = format!("\"{:x}\"", Sha256::digest(&body));
    let validators = [
        (header::CACHE_CONTROL, format!("public, max-age={}", answer.max_age_seconds.max(0))),
        (header::ETAG, etag.clone()),
    ];
    if if_none_match_names(request, &etag) {
        return (StatusCode::NOT_MODIFIED, validators).into_response();
    }
    (validators, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Whether an `If-None-Match` of `request` is `*` or lists `etag`, compared weakly as RFC 9110
/// section 13.1.2 asks (`W/"x"` names `"x"`).
fn if_none_match_names(request: &HeaderMap, etag: &str) -> bool {
    request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .flat_map(|value| value.as_bytes().split(|&byte| byte == b','))
        .map(<[u8]>::trim_ascii)
        .any(|tag| tag == b"*" || tag.strip_prefix(b"W/").unwrap_or(tag) == etag.as_bytes())
}

/// This module's routes, for `routes::api`.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default().routes(routes!(jwks))
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn if_none_match(values: &[&'static str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(header::IF_NONE_MATCH, HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn if_none_match_takes_lists_wildcards_and_weak_tags() {
        let etag = "\"abc\"";
        for matching in [&["\"abc\""][..], &["*"], &["\"x\", W/\"abc\""], &["\"x\"", " \"abc\" "], &["\"x\",\"abc\""]] {
            assert!(if_none_match_names(&if_none_match(matching), etag), "{matching:?}");
        }
        for other in [&[][..], &["\"abcd\""], &["abc"], &["\"ab\", \"c\""], &["W/\"x\""], &[""]] {
            assert!(!if_none_match_names(&if_none_match(other), etag), "{other:?}");
        }
    }

    #[test]
    fn a_negative_max_age_is_zero() {
        let answer = GetJwksResponse { keys: Vec::new(), max_age_seconds: -5 };
        let response = conditional_answer(answer, &HeaderMap::new());
        assert_eq!(response.headers()[header::CACHE_CONTROL], "public, max-age=0");
    }
}
