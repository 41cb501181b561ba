//! The OAuth 2.0 endpoints beside `/token` that the service accounts' clients and the services
//! they call use: token introspection (RFC 7662) at `/oauth2/introspect`, revocation (RFC 7009)
//! at `/oauth2/revoke`, and the authorization server metadata document (RFC 8414) at
//! `/.well-known/oauth-authorization-server`. Introspection and revocation take a form and client
//! authentication (`extract::client_credentials`), and answer errors as RFC 6749 section 5.2's
//! `{"error","error_description"}` ([`Dialect::OAuth2`]); the metadata document, beside the JWKS,
//! answers in FastAPI's `{"detail"}` as `jwks` does. Each handler makes exactly one `UserService`
//! call (the metadata one, at most one a minute: `Upstream::server_metadata`).

use auth_api::user::v1::{
    ClientAuthentication, GetServerMetadataResponse, IntrospectTokenRequest, RevokeTokenRequest, ValidateTokenResponse,
};
use axum::{
    extract::{FromRequest, Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, Uri, header, uri::Authority},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use url::Url;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    error::{ApiError, Detail, Dialect, OAuthError, OAuthErrorCode, TOKEN_PATH},
    extract::{Forwarded, client_credentials, read_form},
    state::AppState,
    upstream::SERVER_METADATA_TTL,
};

pub const TAG: &str = "OAuth 2.0";

/// `/oauth2/introspect` and `/oauth2/revoke`.
const DIALECT: Dialect = Dialect::OAuth2;

/// `/.well-known/oauth-authorization-server`, which `Dialect::for_path` gives FastAPI's dialect.
const METADATA_DIALECT: Dialect = Dialect::FastApi;

pub const INTROSPECTION_PATH: &str = "/oauth2/introspect";
pub const REVOCATION_PATH: &str = "/oauth2/revoke";
pub const JWKS_PATH: &str = "/.well-known/jwks.json";

/// The client authentication methods every endpoint takes (RFC 8414 section 2; RFC 7591's
/// names). RFC 8414's default is `client_secret_basic` alone, so both are listed.
const CLIENT_AUTH_METHODS: &[&str] = &["client_secret_basic", "client_secret_post"];

/// Revocation also takes a token with no client authentication at all (`none`): holding the
/// token is what allows revoking it.
const REVOCATION_AUTH_METHODS: &[&str] = &["client_secret_basic", "client_secret_post", "none"];

/// The grants `/token` takes, the two MFA extension grants included.
const GRANT_TYPES: &[&str] = &super::oauth2::GRANT_TYPES;

/// Body of `/oauth2/introspect` and `/oauth2/revoke`, as a form: the token, and the client's
/// credentials when it sends them in the form (`client_secret_post`) rather than by HTTP Basic
/// (`client_secret_basic`), never both. Any other field is accepted and ignored; none may be sent
/// twice.
#[derive(ToSchema)]
pub struct PresentedTokenForm {
    /// The token, as issued (an access token or a refresh token).
    pub token: String,
    /// `access_token` or `refresh_token`: only a hint, which auth-svc need not follow. Any other
    /// value is accepted and ignored.
    pub token_type_hint: Option<String>,
    /// `client_secret_post` (or beside HTTP Basic, naming the same client).
    pub client_id: Option<String>,
    /// `client_secret_post`.
    #[schema(format = Password)]
    pub client_secret: Option<String>,
    /// The request's `Authorization` header, for HTTP Basic client authentication.
    #[schema(ignore)]
    authorization: Option<HeaderValue>,
}

impl PresentedTokenForm {
    /// The client that sent the form, if it authenticated (see `extract::client_credentials`).
    fn client(&mut self) -> Result<Option<ClientAuthentication>, ApiError> {
        let (id, secret) = (self.client_id.take(), self.client_secret.take());
        Ok(client_credentials(DIALECT, self.authorization.as_ref(), id, secret)?.map(Into::into))
    }

    /// The client of a revocation: as [`client`](Self::client), except that a `client_id` alone
    /// (no secret, no HTTP Basic) is a public client naming itself (RFC 6749 section 2.3,
    /// authentication method `none`; authlib always sends it), not a client with an empty
    /// secret. There is no registry of public clients to check it against, and holding the
    /// token is what allows revoking it.
    fn revoking_client(&mut self) -> Result<Option<ClientAuthentication>, ApiError> {
        let basic = self
            .authorization
            .as_ref()
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.get(..6).is_some_and(|scheme| scheme.eq_ignore_ascii_case("basic ")));
        if !basic && self.client_secret.is_none() {
            self.client_id = None;
        }
        self.client()
    }

    /// `token_type_hint` if it is one of RFC 7009's two, else empty: an unknown hint is ignored
    /// (RFC 7662 section 2.1, RFC 7009 section 2.1).
    fn hint(&self) -> String {
        match self.token_type_hint.as_deref() {
            Some(hint @ ("access_token" | "refresh_token")) => hint.to_owned(),
            _ => String::new(),
        }
    }
}

impl FromRequest<AppState> for PresentedTokenForm {
    type Rejection = ApiError;

    /// A form of either encoding, as `/token` reads it; no `token` is 400 `invalid_request`.
    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let authorization = request.headers().get(header::AUTHORIZATION).cloned();
        let fields = read_form(request, DIALECT, state.body_limit).await?;
        let token = fields
            .single("token")?
            .ok_or_else(|| ApiError::oauth(DIALECT, OAuthErrorCode::InvalidRequest, "missing field `token`"))?;
        Ok(Self {
            token,
            token_type_hint: fields.single("token_type_hint")?,
            client_id: fields.single("client_id")?,
            client_secret: fields.single("client_secret")?,
            authorization,
        })
    }
}

/// An introspection answer (RFC 7662 section 2.2): `{"active": false}` alone for a token that is
/// not active, whatever the reason; for an active one, the members that apply to it, and the
/// token's own `role`, `sid` and (a user's) `userId` claims as extensions.
#[derive(Debug, Default, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"active": true, "scope": "orders:read", "client_id": "billing-svc",
    "token_type": "Bearer", "exp": 1_796_133_600, "iat": 1_796_132_700, "sub": "billing-svc",
    "aud": "https://orders.example.com", "iss": "auth-svc", "jti": "0193a6a4-7c1e-7d52-9f3a-2b8c4d5e6f70",
    "role": "service"}))]
pub struct Introspection {
    pub active: bool,
    /// The scopes granted, space-separated.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub scope: Option<String>,
    /// A service account's token: its client id.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub client_id: Option<String>,
    /// A user's token: the account's current username.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub token_type: Option<IntrospectedTokenType>,
    /// Expiry, seconds since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub exp: Option<i64>,
    /// Issue time, seconds since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub iat: Option<i64>,
    /// The user id (as a string) or the client id.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub sub: Option<String>,
    /// The audiences the token is meant for: a string if one, an array if several.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub aud: Option<Audience>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub jti: Option<String>,
    /// The role the token was issued with.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub role: Option<String>,
    /// The token's `sid` claim: for a user's token, the session it belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub sid: Option<String>,
    /// A user's token: the user id, as the token's `userId` claim has it.
    #[serde(rename = "userId", skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub user_id: Option<i64>,
}

/// RFC 7662's `token_type`, as RFC 6749 section 7.1 names it: every access token is a bearer token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub enum IntrospectedTokenType {
    Bearer,
}

/// A JWT `aud`: one audience as a string, several as an array (RFC 7519 section 4.1.3).
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Several(Vec<String>),
}

impl Audience {
    fn of(mut audiences: Vec<String>) -> Option<Self> {
        match audiences.len() {
            0 => None,
            1 => audiences.pop().map(Self::One),
            _ => Some(Self::Several(audiences)),
        }
    }
}

impl From<ValidateTokenResponse> for Introspection {
    /// An answer that says active but carries no claims (which auth-svc never sends) reads as
    /// inactive: a resource server must not act on a token nothing is known of.
    fn from(answer: ValidateTokenResponse) -> Self {
        let Some(claims) = answer.claims.filter(|_| answer.active) else {
            return Self::default();
        };
        let present = |text: String| Some(text).filter(|text| !text.is_empty());
        let user_token = claims.client_id.is_empty();
        Self {
            active: true,
            scope: present(claims.scopes.join(" ")),
            client_id: present(claims.client_id),
            username: present(claims.username),
            token_type: Some(IntrospectedTokenType::Bearer),
            exp: Some(claims.exp),
            iat: Some(claims.iat),
            sub: present(claims.sub),
            aud: Audience::of(claims.audiences),
            iss: present(claims.iss),
            jti: present(claims.jti),
            role: present(claims.role),
            sid: present(claims.sid),
            user_id: user_token.then_some(claims.user_id),
        }
    }
}

/// Token introspection (RFC 7662): whether a token is active, and what it says.
///
/// For service accounts with the `introspect` scope, authenticated by HTTP Basic or by
/// `client_id` and `client_secret` in the form. Access tokens of users and of service accounts
/// can be active; refresh tokens never are. An inactive token, whatever the reason, answers
/// `{"active": false}` and nothing else.
#[utoipa::path(post, path = "/oauth2/introspect", tag = TAG, security(("clientBasic" = [])),
    request_body(content(
        (PresentedTokenForm = "application/x-www-form-urlencoded"),
        (PresentedTokenForm = "multipart/form-data"),
    )),
    responses(
        (status = 200, description = "What is known of the token; `{\"active\": false}` alone when it is not \
            an active access token (refresh tokens never are)", body = Introspection,
            headers(("cache-control" = String, description = "no-store"))),
        (status = 400, description = "`invalid_request`: not a form, no `token`, a field sent twice, or a \
            client that authenticated both by HTTP Basic and in the form", body = OAuthError),
        (status = 401, description = "`invalid_client`: no client authentication, or a client that does not \
            authenticate", body = OAuthError,
            example = json!({"error": "invalid_client", "error_description": "client authentication required"})),
        (status = 403, description = "`unauthorized_client`: the client lacks the `introspect` scope",
            body = OAuthError),
    ))]
pub async fn introspect(
    State(state): State<AppState>,
    forwarded: Forwarded,
    mut form: PresentedTokenForm,
) -> Result<Response, ApiError> {
    let client = form
        .client()?
        .ok_or_else(|| ApiError::oauth(DIALECT, OAuthErrorCode::InvalidClient, "client authentication required"))?;
    let request = IntrospectTokenRequest { client: Some(client), token_type_hint: form.hint(), token: form.token };
    let answer = state.upstream.introspect_token(&forwarded, request).await.map_err(|status| {
        ApiError::from_client_call(DIALECT, &status).reword(
            StatusCode::FORBIDDEN,
            StatusCode::FORBIDDEN,
            "this client may not introspect tokens: it lacks the `introspect` scope",
        )
    })?;
    Ok(super::no_store(Introspection::from(answer)).into_response())
}

/// Token revocation (RFC 7009): ends what a token allows.
///
/// A refresh token ends its session (its whole family); a user's access token ends its session;
/// a service account's access token is refused from then on. An unknown, expired or already
/// revoked token answers 200 too. Client authentication is optional; when sent (HTTP Basic, or
/// `client_id` and `client_secret` in the form), it must succeed.
#[utoipa::path(post, path = "/oauth2/revoke", tag = TAG, security((), ("clientBasic" = [])),
    request_body(content(
        (PresentedTokenForm = "application/x-www-form-urlencoded"),
        (PresentedTokenForm = "multipart/form-data"),
    )),
    responses(
        (status = 200, description = "Revoked, or nothing to revoke (an unknown, expired or already revoked \
            token); no body"),
        (status = 400, description = "`invalid_request`: not a form, no `token`, a field sent twice, or a \
            client that authenticated both by HTTP Basic and in the form", body = OAuthError),
        (status = 401, description = "`invalid_client`: client credentials that do not authenticate",
            body = OAuthError),
    ))]
pub async fn revoke(
    State(state): State<AppState>,
    forwarded: Forwarded,
    mut form: PresentedTokenForm,
) -> Result<StatusCode, ApiError> {
    let request =
        RevokeTokenRequest { client: form.revoking_client()?, token_type_hint: form.hint(), token: form.token };
    state
        .upstream
        .revoke_token(&forwarded, request)
        .await
        .map_err(|status| ApiError::from_client_call(DIALECT, &status))?;
    Ok(StatusCode::OK)
}

/// The authorization server metadata document (RFC 8414 section 2). Only the members that
/// describe what the server does; those of endpoints it does not have (authorization,
/// registration) are left out.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerMetadata {
    /// auth-svc's `auth.issuer`: the `iss` of its tokens.
    pub issuer: String,
    pub token_endpoint: String,
    pub introspection_endpoint: String,
    pub revocation_endpoint: String,
    /// The keys that verify access tokens (empty with HMAC signing: those keys are secret).
    pub jwks_uri: String,
    /// The scopes clients may be given (auth-svc's `clients.scopes`).
    pub scopes_supported: Vec<String>,
    /// Always empty: RFC 8414 requires the member, and there is no authorization endpoint, so no
    /// response type is supported.
    pub response_types_supported: Vec<String>,
    pub grant_types_supported: &'static [&'static str],
    pub token_endpoint_auth_methods_supported: &'static [&'static str],
    pub introspection_endpoint_auth_methods_supported: &'static [&'static str],
    pub revocation_endpoint_auth_methods_supported: &'static [&'static str],
    /// The JWS algorithms that sign access tokens (`HS256`, `EdDSA`, `ES256`). Not an RFC 8414
    /// member: no registered one names access-token algorithms (`token_endpoint_auth_signing_…`
    /// is for client assertions, OpenID's `id_token_signing_…` for ID tokens, which this server
    /// does not issue), so this one follows RFC 8414's `…_signing_alg_values_supported` pattern,
    /// as section 2 lets a server add members.
    pub access_token_signing_alg_values_supported: Vec<String>,
}

impl ServerMetadata {
    /// The document for auth-svc's `answer`, with endpoints under `base` (no trailing slash).
    fn new(answer: GetServerMetadataResponse, base: &str) -> Self {
        Self {
            issuer: answer.issuer,
            token_endpoint: format!("{base}{TOKEN_PATH}"),
            introspection_endpoint: format!("{base}{INTROSPECTION_PATH}"),
            revocation_endpoint: format!("{base}{REVOCATION_PATH}"),
            jwks_uri: format!("{base}{JWKS_PATH}"),
            scopes_supported: answer.scopes_supported,
            response_types_supported: Vec::new(),
            grant_types_supported: GRANT_TYPES,
            token_endpoint_auth_methods_supported: CLIENT_AUTH_METHODS,
            introspection_endpoint_auth_methods_supported: CLIENT_AUTH_METHODS,
            revocation_endpoint_auth_methods_supported: REVOCATION_AUTH_METHODS,
            access_token_signing_alg_values_supported: answer.signing_algs,
        }
    }
}

/// The authorization server metadata (RFC 8414).
///
/// The issuer, the endpoints, the grant types, client authentication methods, scopes and
/// access-token signing algorithms this server supports. Endpoint URLs are built on the
/// gateway's `public_url`; when it is unset, on the issuer if that is an http(s) URL, else on
/// `http://` and the request's `Host`. Cacheable for a minute.
#[utoipa::path(get, path = "/.well-known/oauth-authorization-server", tag = TAG,
    responses(
        (status = 200, description = "The metadata document", body = ServerMetadata,
            headers(("cache-control" = String, description = "`public, max-age=60`"))),
        (status = 400, description = "No `public_url` is configured, the issuer is not an http(s) URL, and the \
            request names no usable host", body = Detail),
    ))]
pub async fn server_metadata(
    State(state): State<AppState>,
    forwarded: Forwarded,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    let answer = state
        .upstream
        .server_metadata(&forwarded)
        .await
        .map_err(|status| ApiError::from_grpc(METADATA_DIALECT, &status))?;
    let host = request_host(&headers, &uri);
    let base = endpoint_base(state.public_url.as_deref(), &answer.issuer, host).ok_or_else(|| {
        ApiError::new(METADATA_DIALECT, StatusCode::BAD_REQUEST, "no Host header to name the endpoints by")
    })?;
    let cache_control = format!("public, max-age={}", SERVER_METADATA_TTL.as_secs());
    Ok(([(header::CACHE_CONTROL, cache_control)], axum::Json(ServerMetadata::new(answer, &base))).into_response())
}

/// The host the client addressed: `Host` (HTTP/1.1), else the request target's authority
/// (HTTP/2's `:authority`); only a plain `host[:port]`.
fn request_host(headers: &HeaderMap, uri: &Uri) -> Option<Authority> {
    let from_header = headers.get(header::HOST).and_then(|value| value.to_str().ok()?.parse::<Authority>().ok());
    from_header.or_else(|| uri.authority().cloned()).filter(|authority| !authority.as_str().contains('@'))
}

/// Where the endpoints live, without a trailing slash: `public_url`, else an http(s) issuer, else
/// `http://` and the request's host. `None` when none of them applies.
fn endpoint_base(public_url: Option<&Url>, issuer: &str, host: Option<Authority>) -> Option<String> {
    let usable_issuer = Url::parse(issuer).ok().filter(|url| {
        matches!(url.scheme(), "http" | "https")
            && url.has_host()
            && url.query().is_none()
            && url.fragment().is_none()
            && url.username().is_empty()
            && url.password().is_none()
    });
    match public_url.cloned().or(usable_issuer) {
        Some(url) => Some(url.as_str().trim_end_matches('/').to_owned()),
        None => host.map(|host| format!("http://{host}")),
    }
}

/// This module's routes, for `routes::api`.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default().routes(routes!(introspect)).routes(routes!(revoke)).routes(routes!(server_metadata))
}

#[cfg(test)]
mod tests {
    use auth_api::user::v1::AccessTokenClaims;

    use super::*;

    fn authority(host: &str) -> Option<Authority> {
        Some(host.parse().unwrap())
    }

    #[test]
    fn the_base_is_public_url_then_an_http_issuer_then_the_host() {
        let public = Url::parse("https://auth.example.com/gw/").unwrap();
        let host = || authority("gateway:8888");
        assert_eq!(endpoint_base(Some(&public), "auth-svc", host()).unwrap(), "https://auth.example.com/gw");
        assert_eq!(endpoint_base(None, "https://issuer.example.com", host()).unwrap(), "https://issuer.example.com");
        for unusable in ["auth-svc", "urn:auth", "ftp://x.test", "https://x.test/?a=1", "https://x.test/#f"] {
            assert_eq!(endpoint_base(None, unusable, host()).unwrap(), "http://gateway:8888", "{unusable}");
        }
        assert_eq!(endpoint_base(None, "auth-svc", None), None);
    }

    #[test]
    fn the_host_is_a_plain_authority() {
        let mut headers = HeaderMap::new();
        let h2 = Uri::from_static("http://h2.test:8443/.well-known/oauth-authorization-server");
        assert_eq!(request_host(&headers, &h2).unwrap(), "h2.test:8443");
        headers.insert(header::HOST, HeaderValue::from_static("gw.test:8888"));
        assert_eq!(request_host(&headers, &Uri::from_static("/")).unwrap(), "gw.test:8888");
        for bad in ["evil.test/path", "me@gw.test", "", "a b"] {
            headers.insert(header::HOST, HeaderValue::from_static(bad));
            assert!(request_host(&headers, &Uri::from_static("/")).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn an_active_answer_without_claims_is_inactive() {
        let answer = ValidateTokenResponse { active: true, claims: None };
        assert_eq!(serde_json::to_value(Introspection::from(answer)).unwrap(), serde_json::json!({"active": false}));
        let answer = ValidateTokenResponse { active: false, claims: Some(AccessTokenClaims::default()) };
        assert_eq!(serde_json::to_value(Introspection::from(answer)).unwrap(), serde_json::json!({"active": false}));
    }

    #[test]
    fn the_paths_named_in_the_document_are_the_routes() {
        let paths = crate::routes::api().into_openapi().paths.paths;
        for path in [TOKEN_PATH, INTROSPECTION_PATH, REVOCATION_PATH, JWKS_PATH] {
            assert!(paths.contains_key(path), "{path}");
        }
    }
}
