//! The FastAPI tutorial's OAuth2 password flow: `/signup`, `/token`, `/protected`, errors as
//! `{"detail"}`. `/token` also takes the refresh grant (RFC 6749 section 6), the tutorial's
//! exercise, the client credentials grant of service accounts (section 4.4), and the second step
//! of a login for an account with a second factor (issue 19: the password grant answers 403
//! `mfa_required` with an `mfa_token`, exchanged by the [`MFA_OTP_GRANT`] or
//! [`MFA_RECOVERY_CODE_GRANT`]); its errors add RFC 6749 section 5.2's `error` and
//! `error_description` ([`Dialect::TokenEndpoint`]). Each handler makes exactly one
//! `UserService` call. The other OAuth 2.0 endpoints are `oauth2_server`'s.

use auth_api::user::v1::{
    ClientCredentialsRequest, LoginRequest, LoginResponse, MfaChallenge, RefreshRequest, RegisterRequest,
    VerifyMfaRequest,
};
use axum::{
    Json,
    body::{Body, Bytes},
    extract::{FromRequest, Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use tonic::Status;
use url::Url;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    error::{ApiError, Detail, Dialect, OAuthErrorCode, TokenError},
    extract::{ClientCredentials, FormFields, Forwarded, JsonBody, WithAuthorization, client_credentials, read_form},
    state::AppState,
};

pub const TAG: &str = "FastAPI";

/// `/signup` and `/protected`.
const DIALECT: Dialect = Dialect::FastApi;

/// `/token`.
const TOKEN_DIALECT: Dialect = Dialect::TokenEndpoint;

fn failed(status: Status) -> ApiError {
    ApiError::from_grpc(DIALECT, &status)
}

fn token_failed(status: Status) -> ApiError {
    ApiError::from_grpc(TOKEN_DIALECT, &status)
}

/// The second step of a login at `/token` with a code of the authenticator app: `mfa_token` (the
/// 403 `mfa_required` answer's) and `otp`. An extension grant (RFC 6749 section 4.5), named as
/// Auth0 names its own (`http://auth0.com/oauth/grant-type/mfa-otp`) but under our URN.
pub const MFA_OTP_GRANT: &str = "urn:auth-svc:params:oauth:grant-type:mfa-otp";

/// The second step with a recovery code: `mfa_token` and `recovery_code`.
pub const MFA_RECOVERY_CODE_GRANT: &str = "urn:auth-svc:params:oauth:grant-type:mfa-recovery-code";

/// Every `grant_type` `/token` takes, as the server metadata lists them.
pub const GRANT_TYPES: [&str; 5] =
    ["password", "refresh_token", "client_credentials", MFA_OTP_GRANT, MFA_RECOVERY_CODE_GRANT];

/// `/token`'s 422 (`invalid_request`) for a form it cannot use.
fn shape_error(message: impl Into<String>) -> ApiError {
    ApiError::new(TOKEN_DIALECT, TOKEN_DIALECT.unparsable_body(), message.into())
}

/// Body of `/signup` (no `Debug`: it holds a password).
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"username": "licat", "password": "correct horse"}))]
pub struct SignupRequest {
    pub username: String,
    #[schema(format = Password)]
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageResponse {
    pub message: String,
}

/// Body of `/token`, as a form: OAuth2's password grant (`grant_type` may be left out, as
/// FastAPI's `OAuth2PasswordRequestForm` allows), its refresh grant, or the client credentials
/// grant. The client credentials grant authenticates the client by HTTP Basic
/// (`client_secret_basic`) or by `client_id` and `client_secret` here (`client_secret_post`),
/// one or the other. The password and refresh grants ignore client credentials, however sent:
/// their clients (the tutorial's, FastAPI's form, OAuth 2.0 libraries) send a `client_id` of
/// their own, and auth-svc keeps no registry of such public clients to check it against. Any
/// other field is accepted and ignored; none may be sent twice but `audience` and `resource`.
#[derive(ToSchema)]
pub struct TokenForm {
    /// `password` (the default), `refresh_token`, `client_credentials`,
    /// `urn:auth-svc:params:oauth:grant-type:mfa-otp` or
    /// `urn:auth-svc:params:oauth:grant-type:mfa-recovery-code`.
    #[schema(example = "password")]
    pub grant_type: Option<String>,
    /// Password grant.
    pub username: Option<String>,
    /// Password grant.
    #[schema(format = Password)]
    pub password: Option<String>,
    /// Refresh grant.
    pub refresh_token: Option<String>,
    /// The two MFA grants: the `mfa_token` of the password grant's 403 `mfa_required` answer.
    #[schema(format = Password)]
    pub mfa_token: Option<String>,
    /// The mfa-otp grant: six digits from the authenticator app.
    #[schema(format = Password)]
    pub otp: Option<String>,
    /// The mfa-recovery-code grant: one of the account's unused recovery codes.
    #[schema(format = Password)]
    pub recovery_code: Option<String>,
    /// Client credentials grant: the scopes asked for, space-separated; absent, every scope the
    /// client may ask for. Ignored by the other grants.
    pub scope: Option<String>,
    /// Client credentials grant with `client_secret_post` (or beside HTTP Basic, naming the same
    /// client). Ignored by the other grants.
    pub client_id: Option<String>,
    /// Client credentials grant with `client_secret_post`. Ignored by the other grants.
    #[schema(format = Password)]
    pub client_secret: Option<String>,
    /// Client credentials grant: an audience the token is meant for (the `aud` claim); may repeat.
    #[schema(required = false)]
    pub audience: Vec<String>,
    /// Client credentials grant: RFC 8707's resource indicator, an absolute URI without a
    /// fragment, which becomes an audience as `audience` does; may repeat.
    #[schema(required = false)]
    pub resource: Vec<String>,
    /// The request's `Authorization` header, for HTTP Basic client authentication.
    #[schema(ignore)]
    authorization: Option<HeaderValue>,
}

/// What a `/token` form asks for, once checked (no `Debug`: it holds secrets).
pub enum Grant {
    Password {
        username: String,
        password: String,
    },
    RefreshToken {
        refresh_token: String,
    },
    /// The second step of a login: the challenge and exactly one of the two factors.
    Mfa {
        challenge: String,
        code: String,
        recovery_code: String,
    },
    ClientCredentials {
        client: ClientCredentials,
        scopes: Vec<String>,
        audiences: Vec<String>,
    },
}

impl TokenForm {
    /// The form of `fields`, with the request's `authorization` header.
    fn from_fields(fields: &FormFields, authorization: Option<HeaderValue>) -> Result<Self, ApiError> {
        Ok(Self {
            grant_type: fields.single("grant_type")?,
            username: fields.single("username")?,
            password: fields.single("password")?,
            refresh_token: fields.single("refresh_token")?,
            mfa_token: fields.single("mfa_token")?,
            otp: fields.single("otp")?,
            recovery_code: fields.single("recovery_code")?,
            scope: fields.single("scope")?,
            client_id: fields.single("client_id")?,
            client_secret: fields.single("client_secret")?,
            audience: fields.all("audience").map(str::to_owned).collect(),
            resource: fields.all("resource").map(str::to_owned).collect(),
            authorization,
        })
    }

    /// The grant the form asks for: `grant_type` absent or `password` needs `username` and
    /// `password` (else 422 `invalid_request`); `refresh_token` needs `refresh_token`; the
    /// mfa-otp grant `mfa_token` and `otp`, the mfa-recovery-code grant `mfa_token` and
    /// `recovery_code`; `client_credentials` needs client authentication (else 401 `invalid_client`; see
    /// [`client_credentials`] for the rest) and `resource`s that are absolute URIs (else 400
    /// `invalid_target`); any other grant type is 400 `unsupported_grant_type`.
    pub fn grant(self) -> Result<Grant, ApiError> {
        let required =
            |value: Option<String>, name: &str| value.ok_or_else(|| shape_error(format!("missing field `{name}`")));
        match self.grant_type.as_deref() {
            None | Some("password") => Ok(Grant::Password {
                username: required(self.username, "username")?,
                password: required(self.password, "password")?,
            }),
            Some("refresh_token") => {
                Ok(Grant::RefreshToken { refresh_token: required(self.refresh_token, "refresh_token")? })
            }
            Some("client_credentials") => self.client_credentials_grant(),
            Some(MFA_OTP_GRANT) => Ok(Grant::Mfa {
                challenge: required(self.mfa_token, "mfa_token")?,
                code: required(self.otp, "otp")?,
                recovery_code: String::new(),
            }),
            Some(MFA_RECOVERY_CODE_GRANT) => Ok(Grant::Mfa {
                challenge: required(self.mfa_token, "mfa_token")?,
                code: String::new(),
                recovery_code: required(self.recovery_code, "recovery_code")?,
            }),
            Some(_) => Err(ApiError::unsupported_grant_type(UNSUPPORTED_GRANT_TYPE)),
        }
    }

    /// The client credentials grant of [`TokenForm::grant`].
    fn client_credentials_grant(self) -> Result<Grant, ApiError> {
        let client =
            client_credentials(TOKEN_DIALECT, self.authorization.as_ref(), self.client_id, self.client_secret)?
                .ok_or_else(|| {
                    ApiError::oauth(
                        TOKEN_DIALECT,
                        OAuthErrorCode::InvalidClient,
                        "client authentication required: HTTP Basic, or client_id and client_secret",
                    )
                })?;
        if let Some(resource) = self.resource.iter().find(|resource| !is_resource_indicator(resource)) {
            return Err(ApiError::oauth(
                TOKEN_DIALECT,
                OAuthErrorCode::InvalidTarget,
                format!("resource `{resource}` is not an absolute URI without a fragment (RFC 8707)"),
            ));
        }
        // RFC 6749 section 3.3: space-delimited. Runs of spaces are read as one.
        let scopes = self.scope.iter().flat_map(|scope| scope.split(' ')).filter(|scope| !scope.is_empty());
        Ok(Grant::ClientCredentials {
            client,
            scopes: scopes.map(str::to_owned).collect(),
            audiences: self.audience.into_iter().chain(self.resource).collect(),
        })
    }
}

/// The `error_description` of a `grant_type` `/token` does not take.
const UNSUPPORTED_GRANT_TYPE: &str = "grant_type must be `password`, `refresh_token`, `client_credentials`, \
    `urn:auth-svc:params:oauth:grant-type:mfa-otp` or `urn:auth-svc:params:oauth:grant-type:mfa-recovery-code`";

/// RFC 8707 section 2: a resource indicator is an absolute URI with no fragment.
fn is_resource_indicator(resource: &str) -> bool {
    Url::parse(resource).is_ok_and(|url| url.fragment().is_none())
}

impl FromRequest<AppState> for TokenForm {
    type Rejection = ApiError;

    /// Reads `application/x-www-form-urlencoded` or `multipart/form-data`, like FastAPI's
    /// `Form(...)` parameters do; see [`decode_token_form`].
    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        read_token_form(request, state.body_limit).await
    }
}

/// The whole decoding of a `/token` request from its headers and body: `Content-Type` picks
/// `application/x-www-form-urlencoded` or `multipart/form-data` (with its boundary), the fields
/// fill a [`TokenForm`], and `Authorization` travels with it for HTTP Basic client
/// authentication; [`TokenForm::grant`] then checks which grant it is. The error is the route's
/// answer: 422 ([`TokenError`] with `invalid_request`) for anything unusable, a field sent twice
/// included, 413 past a size limit (`body_limit` only words its message: the server's limit is
/// enforced by its middleware before this runs, and a body given here is held to axum's default
/// of 2 MB). Never panics, whatever the bytes.
///
/// The future needs no runtime (the body is in memory): a fuzz target can drive it with
/// `futures::executor::block_on`.
pub async fn decode_token_form(headers: &HeaderMap, body: Bytes, body_limit: usize) -> Result<TokenForm, ApiError> {
    let mut request = Request::new(Body::from(body));
    *request.headers_mut() = headers.clone();
    read_token_form(request, body_limit).await
}

async fn read_token_form(request: Request, body_limit: usize) -> Result<TokenForm, ApiError> {
    let authorization = request.headers().get(header::AUTHORIZATION).cloned();
    let fields = read_form(request, TOKEN_DIALECT, body_limit).await?;
    TokenForm::from_fields(&fields, authorization)
}

/// `/token`'s answer: the tutorial's `access_token` and `token_type`, plus the pair's
/// `expires_in` and `refresh_token` (RFC 6749 section 5.1). No `Debug`: it holds tokens.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: TokenType,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// Single-use; send it back with `grant_type=refresh_token`.
    pub refresh_token: String,
}

/// RFC 6749's `token_type`: always `bearer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TokenType {
    Bearer,
}

/// `/token`'s answer to the client credentials grant: an access token alone (RFC 6749 section
/// 4.4.3: no refresh token). No `Debug`: it holds a token.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientTokenResponse {
    pub access_token: String,
    pub token_type: TokenType,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// The scopes granted, space-separated; absent when none was.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub scope: Option<String>,
}

impl From<auth_api::user::v1::ClientTokenResponse> for ClientTokenResponse {
    fn from(token: auth_api::user::v1::ClientTokenResponse) -> Self {
        let scope = token.scopes.join(" ");
        Self {
            access_token: token.access_token,
            token_type: TokenType::Bearer,
            expires_in: token.expires_in,
            scope: Some(scope).filter(|scope| !scope.is_empty()),
        }
    }
}

/// `/token`'s 200 body, by grant: a user's pair, or a client's access token.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum TokenAnswer {
    Pair(TokenResponse),
    Client(ClientTokenResponse),
}

/// The password grant's answer for an account with a second factor: 403 with Auth0's
/// `mfa_required` body, which OAuth 2.0 client libraries that support Auth0's MFA grants know,
/// beside the tutorial's `detail`. `mfa_token` goes back with the mfa-otp or mfa-recovery-code
/// grant. No `Debug`: the token stands in for the password.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"detail": "Multi-factor authentication required", "error": "mfa_required",
    "error_description": "Multi-factor authentication required", "mfa_token": "eyJ0eXAiOiJtZmErand0In0.e30.c2ln",
    "expires_in": 300, "mfa_methods": ["totp", "recovery_code"]}))]
pub struct MfaRequired {
    pub detail: &'static str,
    pub error: MfaRequiredCode,
    pub error_description: &'static str,
    /// Opaque and single use: the `mfa_token` of the second step.
    pub mfa_token: String,
    /// Seconds until `mfa_token` expires (then start again with the password grant).
    pub expires_in: i64,
    /// What the second step accepts: `totp` (the mfa-otp grant), `recovery_code` (the
    /// mfa-recovery-code grant).
    #[schema(example = json!(["totp", "recovery_code"]))]
    pub mfa_methods: Vec<String>,
}

/// [`MfaRequired`]'s `error`: Auth0's code, not one of RFC 6749's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MfaRequiredCode {
    MfaRequired,
}

const MFA_REQUIRED: &str = "Multi-factor authentication required";

impl From<MfaChallenge> for MfaRequired {
    fn from(challenge: MfaChallenge) -> Self {
        Self {
            detail: MFA_REQUIRED,
            error: MfaRequiredCode::MfaRequired,
            error_description: MFA_REQUIRED,
            mfa_token: challenge.challenge,
            expires_in: challenge.expires_in,
            mfa_methods: challenge.methods,
        }
    }
}

impl From<LoginResponse> for TokenResponse {
    fn from(pair: LoginResponse) -> Self {
        Self {
            access_token: pair.access_token,
            token_type: TokenType::Bearer,
            expires_in: pair.expires_in,
            refresh_token: pair.refresh_token,
        }
    }
}

/// Creates an account.
///
/// The FastAPI tutorial's sign-up, with role `user`: the username and password must pass
/// auth-svc's policy, and a taken username is a 400. Get tokens from `/token` next.
#[utoipa::path(post, path = "/signup", tag = TAG, request_body = SignupRequest,
    responses(
        (status = 200, description = "Account created", body = MessageResponse,
            example = json!({"message": "User created successfully"})),
        (status = 429, description = "Too many sign-ups from this client address, or auth-svc's hashing \
            queue is full", body = Detail),
        (status = 400, description = "Username taken, or the username/password policy is broken", body = Detail,
            example = json!({"detail": "Username already exists"})),
    ))]
pub async fn signup(
    State(state): State<AppState>,
    forwarded: Forwarded,
    JsonBody(SignupRequest { username, password }): JsonBody<SignupRequest>,
) -> Result<Json<MessageResponse>, ApiError> {
    let request = RegisterRequest { username, password };
    state.upstream.register(&forwarded, request).await.map_err(|status| {
        failed(status).reword(StatusCode::CONFLICT, StatusCode::BAD_REQUEST, "Username already exists")
    })?;
    Ok(Json(MessageResponse { message: "User created successfully".to_owned() }))
}

/// OAuth2 token endpoint: a user's token pair, or a service account's access token.
///
/// A form (urlencoded or multipart) with the password grant (`username` and `password`;
/// `grant_type` may be left out), the refresh grant (`grant_type=refresh_token`), or the client
/// credentials grant (`grant_type=client_credentials`, optional `scope`, `audience` and
/// `resource`), whose client authenticates by HTTP Basic or by `client_id` and `client_secret`
/// in the form, not both. For an account with a second factor the password grant answers 403
/// `mfa_required` with an `mfa_token`; the pair then comes from
/// `grant_type=urn:auth-svc:params:oauth:grant-type:mfa-otp` (`mfa_token`, `otp`) or
/// `grant_type=urn:auth-svc:params:oauth:grant-type:mfa-recovery-code` (`mfa_token`,
/// `recovery_code`). The grants of users ignore client credentials; other fields are ignored.
/// Errors carry RFC 6749's `error` and `error_description` beside the tutorial's `detail`.
#[utoipa::path(post, path = "/token", tag = TAG,
    request_body(content(
        (TokenForm = "application/x-www-form-urlencoded"),
        (TokenForm = "multipart/form-data"),
    )),
    responses(
        (status = 200, description = "A token pair (password, refresh and MFA grants), or an access token \
            alone (client credentials grant)", body = TokenAnswer,
            headers(("cache-control" = String, description = "no-store"))),
        (status = 400, description = "`unsupported_grant_type`: a grant_type `/token` does not take; \
            `invalid_request`: breaks the username/password policy, a client authenticated both ways, or the \
            second factor is not configured on this server; `invalid_scope`: a scope the client may not ask for; \
            `invalid_target`: an audience or resource it may not ask for; `unauthorized_client`: a grant the \
            client may not use", body = TokenError,
            example = json!({"detail": "grant_type must be `password`, `refresh_token`, `client_credentials`, \
                    `urn:auth-svc:params:oauth:grant-type:mfa-otp` or \
                    `urn:auth-svc:params:oauth:grant-type:mfa-recovery-code`",
                "error": "unsupported_grant_type",
                "error_description": "grant_type must be `password`, `refresh_token`, `client_credentials`, \
                    `urn:auth-svc:params:oauth:grant-type:mfa-otp` or \
                    `urn:auth-svc:params:oauth:grant-type:mfa-recovery-code`"})),
        (status = 401, description = "`invalid_grant` (`WWW-Authenticate: Bearer`): wrong credentials, a wrong \
            or already used code or recovery code, an unknown, expired or spent `mfa_token`, or an \
            unusable refresh token; `invalid_client` (`WWW-Authenticate: Basic realm=\"auth-svc\"`): the client \
            credentials grant without client authentication, or with a client that does not authenticate",
            body = TokenError,
            example = json!({"detail": "Incorrect username or password", "error": "invalid_grant",
                "error_description": "Incorrect username or password"})),
        (status = 403, description = "`mfa_required`: the password grant for an account with a second factor; \
            send `mfa_token` back with one of the MFA grants", body = MfaRequired,
            headers(("cache-control" = String, description = "no-store"))),
        (status = 422, description = "`invalid_request`: not a form, a missing field, or a field sent twice",
            body = TokenError),
        (status = 429, description = "`invalid_request`: too many failed logins (or wrong codes) for this \
            username or client address, or auth-svc's hashing queue is full", body = TokenError),
    ))]
pub async fn token(State(state): State<AppState>, forwarded: Forwarded, form: TokenForm) -> Result<Response, ApiError> {
    let answer = match form.grant()? {
        Grant::Password { username, password } => {
            let answer =
                state.upstream.login(&forwarded, LoginRequest { username, password }).await.map_err(|status| {
                    token_failed(status).reword(
                        StatusCode::UNAUTHORIZED,
                        StatusCode::UNAUTHORIZED,
                        "Incorrect username or password",
                    )
                })?;
            // user.proto: the challenge first; with it, the token fields are empty.
            if let Some(challenge) = answer.mfa_challenge {
                return Ok((StatusCode::FORBIDDEN, super::no_store(MfaRequired::from(challenge))).into_response());
            }
            TokenAnswer::Pair(answer.into())
        }
        Grant::Mfa { challenge, code, recovery_code } => {
            // auth-svc's own words ("invalid code", "invalid or expired mfa challenge") as the
            // 401 `invalid_grant`: a wrong code is refused as a wrong password is.
            let request = VerifyMfaRequest { challenge, code, recovery_code };
            let pair = state.upstream.verify_mfa(&forwarded, request).await.map_err(token_failed)?;
            TokenAnswer::Pair(pair.into())
        }
        Grant::RefreshToken { refresh_token } => {
            let pair =
                state.upstream.refresh(&forwarded, RefreshRequest { refresh_token }).await.map_err(token_failed)?;
            TokenAnswer::Pair(pair.into())
        }
        Grant::ClientCredentials { client, scopes, audiences } => {
            let request = ClientCredentialsRequest { client: Some(client.into()), scopes, audiences };
            let token = state
                .upstream
                .client_credentials(&forwarded, request)
                .await
                .map_err(|status| ApiError::from_client_call(TOKEN_DIALECT, &status))?;
            TokenAnswer::Client(token.into())
        }
    };
    Ok(super::no_store(answer).into_response())
}

/// A route only a bearer of a valid access token may call.
///
/// Greets the access token's user by name. `/protected/`, the trailing slash of the tutorial's
/// browser example, answers the same.
#[utoipa::path(get, path = "/protected", tag = TAG, security(("oauth2" = [])),
    responses(
        (status = 200, description = "Greeting", body = MessageResponse,
            example = json!({"message": "Hello licat! This is a protected route"})),
        (status = 401, description = "`Not authenticated` without a bearer token, `Invalid token` with a bad one",
            body = Detail),
    ))]
pub async fn protected(
    State(state): State<AppState>,
    WithAuthorization(forwarded): WithAuthorization,
) -> Result<Json<MessageResponse>, ApiError> {
    let user = state.upstream.user_info(&forwarded).await.map_err(|status| {
        // auth-svc decided; only the wording is FastAPI's.
        failed(status).reword(
            StatusCode::UNAUTHORIZED,
            StatusCode::UNAUTHORIZED,
            crate::error::fastapi_unauthorized(forwarded.bearer_presented()),
        )
    })?;
    Ok(Json(MessageResponse { message: format!("Hello {}! This is a protected route", user.username) }))
}

/// This module's routes, for `routes::api`.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default().routes(routes!(signup)).routes(routes!(token)).routes(routes!(protected))
}
