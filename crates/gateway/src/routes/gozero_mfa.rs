//! The second factor (TOTP and recovery codes), in the go-zero dialect (issue 19): the login's
//! second step `/user/mfa/verify`, and the caller's own factor under `/user/mfa…` (status,
//! enrolment, removal, new recovery codes). Every route but the second step needs the bearer
//! token, which travels to auth-svc untouched; each handler makes exactly one `UserService` call.
//!
//! What these routes carry is secret (a TOTP secret, recovery codes, a challenge, codes): no body
//! type here has `Debug`, and every answer holding a secret is `Cache-Control: no-store`. The
//! access log records the method and path only (`middleware::request_span`), never a body.

use auth_api::user::v1::{
    ConfirmTotpEnrolmentRequest, DisableTotpRequest, MfaStatus, RecoveryCodes, RegenerateRecoveryCodesRequest,
    TotpEnrolment, VerifyMfaRequest,
};
use axum::{Json, extract::State, http::StatusCode, response::IntoResponse};
use serde::{Deserialize, Serialize};
use tonic::Status;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    gozero::{LoginResp, TAG, failed},
    gozero_accounts::EmptyResp,
};
use crate::{
    error::{ApiError, CodeError, Dialect},
    extract::{Forwarded, JsonBody, WithAuthorization},
    state::AppState,
};

/// Body of `/user/mfa/verify`: the challenge `/user/login` answered and exactly one of a current
/// code and a recovery code.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"challenge": "eyJ0eXAiOiJtZmErand0In0.e30.c2ln", "code": "123456"}))]
pub struct MfaVerifyReq {
    /// `mfaChallenge.challenge` of the `/user/login` answer.
    #[schema(format = Password)]
    pub challenge: String,
    /// Six digits from the authenticator app; or send `recoveryCode`.
    #[schema(format = Password)]
    pub code: Option<String>,
    /// One of the account's unused recovery codes (`xxxxx-xxxxx`); or send `code`.
    #[schema(format = Password)]
    pub recovery_code: Option<String>,
}

/// Body of `/user/mfa/totp/confirm` and `/user/mfa/recovery-codes`: a current code.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"code": "123456"}))]
pub struct MfaCodeReq {
    /// Six digits from the authenticator app.
    #[schema(format = Password)]
    pub code: String,
}

/// Body of `DELETE /user/mfa/totp`: the password and exactly one of a current code and a
/// recovery code.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"password": "secret123", "code": "123456"}))]
pub struct DisableTotpReq {
    #[schema(format = Password)]
    pub password: String,
    /// Six digits from the authenticator app; or send `recoveryCode`.
    #[schema(format = Password)]
    pub code: Option<String>,
    /// One of the account's unused recovery codes; or send `code`.
    #[schema(format = Password)]
    pub recovery_code: Option<String>,
}

/// Body of `POST /user/mfa/totp`: the account's password (a stolen access token alone must not
/// bind the thief's authenticator).
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"password": "secret123"}))]
pub struct BeginTotpEnrolmentReq {
    #[schema(format = Password)]
    pub password: String,
}

/// Whether the caller has a second factor.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"totpEnabled": true, "recoveryCodesLeft": 9}))]
pub struct MfaStatusResp {
    /// An authenticator app is confirmed: logins ask for a code.
    pub totp_enabled: bool,
    /// Unused recovery codes; 0 without a second factor.
    pub recovery_codes_left: i32,
}

/// A begun enrolment, shown this once (no `Debug`: it holds the secret).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({
    "secret": "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP",
    "otpauthUri": "otpauth://totp/auth-svc:alice?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=auth-svc&algorithm=SHA1&digits=6&period=30",
    "qrSvg": "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 41 41\">…</svg>"
}))]
pub struct TotpEnrolmentResp {
    /// The shared secret, RFC 4648 base32 without padding, for typing into an app.
    pub secret: String,
    /// The same as an `otpauth://totp/` URI.
    pub otpauth_uri: String,
    /// The URI as a QR code, an SVG document.
    pub qr_svg: String,
}

/// Recovery codes, shown this once (no `Debug`: they are secrets).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"recoveryCodes": ["k3v9q-7mxw2", "p4hzt-c8rn5"]}))]
pub struct RecoveryCodesResp {
    /// Each works once, in place of a code; case and dashes do not matter.
    pub recovery_codes: Vec<String>,
}

impl From<MfaStatus> for MfaStatusResp {
    fn from(status: MfaStatus) -> Self {
        Self { totp_enabled: status.totp_enabled, recovery_codes_left: status.recovery_codes_left }
    }
}

impl From<TotpEnrolment> for TotpEnrolmentResp {
    fn from(enrolment: TotpEnrolment) -> Self {
        Self { secret: enrolment.secret, otpauth_uri: enrolment.otpauth_uri, qr_svg: enrolment.qr_svg }
    }
}

impl From<RecoveryCodes> for RecoveryCodesResp {
    fn from(codes: RecoveryCodes) -> Self {
        Self { recovery_codes: codes.recovery_codes }
    }
}

/// A second factor as a body names it: exactly one of `code` and `recoveryCode`.
enum SecondFactor {
    Code(String),
    RecoveryCode(String),
}

impl SecondFactor {
    /// The one of the two the body sent; both or neither is a body that does not fit the route
    /// (400, as a missing field is), refused here without a call.
    fn parse(code: Option<String>, recovery_code: Option<String>) -> Result<Self, ApiError> {
        match (code, recovery_code) {
            (Some(code), None) => Ok(Self::Code(code)),
            (None, Some(recovery_code)) => Ok(Self::RecoveryCode(recovery_code)),
            _ => Err(ApiError::new(
                Dialect::GoZero,
                Dialect::GoZero.unparsable_body(),
                "send exactly one of `code` and `recoveryCode`",
            )),
        }
    }

    /// The `(code, recovery_code)` fields of the gRPC requests, the unused one empty.
    fn into_fields(self) -> (String, String) {
        match self {
            Self::Code(code) => (code, String::new()),
            Self::RecoveryCode(recovery_code) => (String::new(), recovery_code),
        }
    }
}

/// A failed call on the caller's factor: the mapper's bare "not found" would read like an
/// unknown path.
fn failed_without(what: &'static str) -> impl FnOnce(Status) -> ApiError {
    move |status| failed(status).reword(StatusCode::NOT_FOUND, StatusCode::NOT_FOUND, what)
}

/// Logs in, second step: the challenge and a code for a token pair.
///
/// For an account with a second factor, `/user/login` answers a challenge instead of tokens;
/// this exchanges it, with a current code of the authenticator app (`code`) or one of the
/// account's recovery codes (`recoveryCode`), for the pair of a new session. A code is accepted
/// once; a recovery code works once. Wrong codes are throttled as failed logins are, and after a
/// few the challenge is spent: log in again.
#[utoipa::path(post, path = "/user/mfa/verify", tag = TAG, request_body = MfaVerifyReq,
    responses(
        (status = 200, description = "Token pair", body = LoginResp,
            headers(("cache-control" = String, description = "no-store"))),
        (status = 400, description = "Body does not parse, misses `challenge`, or has neither or both of `code` \
            and `recoveryCode`", body = CodeError,
            example = json!({"code": 400, "msg": "send exactly one of `code` and `recoveryCode`"})),
        (status = 401, description = "Wrong or already used code, or a challenge that is unknown, expired or \
            spent", body = CodeError, example = json!({"code": 401, "msg": "invalid code"})),
        (status = 429, description = "Too many wrong codes for this account or client address", body = CodeError),
    ))]
pub async fn verify(
    State(state): State<AppState>,
    forwarded: Forwarded,
    JsonBody(body): JsonBody<MfaVerifyReq>,
) -> Result<impl IntoResponse, ApiError> {
    let (code, recovery_code) = SecondFactor::parse(body.code, body.recovery_code)?.into_fields();
    let request = VerifyMfaRequest { challenge: body.challenge, code, recovery_code };
    let pair = state.upstream.verify_mfa(&forwarded, request).await.map_err(failed)?;
    Ok(super::no_store(LoginResp::from(pair)))
}

/// The caller's second factor.
///
/// Whether an authenticator app is confirmed for the caller's account, and how many unused
/// recovery codes are left.
#[utoipa::path(get, path = "/user/mfa", tag = TAG, security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's second factor", body = MfaStatusResp),
        (status = 400, description = "The second factor is not configured on this server", body = CodeError,
            example = json!({"code": 400, "msg": "second factor not configured on this server"})),
    ))]
pub async fn status(
    State(state): State<AppState>,
    WithAuthorization(forwarded): WithAuthorization,
) -> Result<Json<MfaStatusResp>, ApiError> {
    let status = state.upstream.mfa_status(&forwarded).await.map_err(failed)?;
    Ok(Json(status.into()))
}

/// Starts enrolling an authenticator app.
///
/// A new secret, shown this once: as base32, as an `otpauth://` URI and as a QR code of it.
/// Nothing changes until `/user/mfa/totp/confirm` gets a code of it; starting again replaces a
/// begun enrolment. Needs the password.
#[utoipa::path(post, path = "/user/mfa/totp", tag = TAG, security(("bearer" = [])),
    request_body = BeginTotpEnrolmentReq,
    responses(
        (status = 200, description = "The new secret", body = TotpEnrolmentResp,
            headers(("cache-control" = String, description = "no-store"))),
        (status = 400, description = "Body does not parse or misses `password`, or the second factor is not \
            configured on this server", body = CodeError,
            example = json!({"code": 400, "msg": "second factor not configured on this server"})),
        (status = 401, description = "Wrong password, or a missing, invalid or expired access token",
            body = CodeError, example = json!({"code": 401, "msg": "invalid credentials"})),
        (status = 409, description = "A second factor is enabled already: remove it first", body = CodeError),
        (status = 429, description = "Too many wrong passwords; retry after `Retry-After` seconds", body = CodeError),
    ))]
pub async fn begin_enrolment(
    State(state): State<AppState>,
    WithAuthorization(forwarded): WithAuthorization,
    JsonBody(body): JsonBody<BeginTotpEnrolmentReq>,
) -> Result<impl IntoResponse, ApiError> {
    let enrolment = state.upstream.begin_totp_enrolment(&forwarded, body.password).await.map_err(failed)?;
    Ok(super::no_store(TotpEnrolmentResp::from(enrolment)))
}

/// Confirms the authenticator app being enrolled.
///
/// With a current code of the begun enrolment the second factor is on: logins ask for a code
/// from now on. Answers the recovery codes, shown this once. Every other session of the account
/// ends, as a password change does; the caller's goes on.
#[utoipa::path(post, path = "/user/mfa/totp/confirm", tag = TAG, security(("bearer" = [])),
    request_body = MfaCodeReq,
    responses(
        (status = 200, description = "The second factor is on; its recovery codes", body = RecoveryCodesResp,
            headers(("cache-control" = String, description = "no-store"))),
        (status = 400, description = "Body does not parse or misses `code`, or the second factor is not \
            configured on this server", body = CodeError),
        (status = 401, description = "Wrong code, or a missing, invalid or expired access token", body = CodeError,
            example = json!({"code": 401, "msg": "invalid code"})),
        (status = 404, description = "No enrolment begun", body = CodeError,
            example = json!({"code": 404, "msg": "no enrolment begun"})),
        (status = 409, description = "Confirmed already", body = CodeError),
        (status = 429, description = "Too many wrong codes for this account or client address", body = CodeError),
    ))]
pub async fn confirm_enrolment(
    State(state): State<AppState>,
    WithAuthorization(forwarded): WithAuthorization,
    JsonBody(body): JsonBody<MfaCodeReq>,
) -> Result<impl IntoResponse, ApiError> {
    let request = ConfirmTotpEnrolmentRequest { code: body.code };
    let codes = state
        .upstream
        .confirm_totp_enrolment(&forwarded, request)
        .await
        .map_err(failed_without("no enrolment begun"))?;
    Ok(super::no_store(RecoveryCodesResp::from(codes)))
}

/// Removes the caller's second factor.
///
/// Needs the password and a current code (`code`) or a recovery code (`recoveryCode`); removes
/// the authenticator and every recovery code. Logins ask for the password alone afterwards.
#[utoipa::path(delete, path = "/user/mfa/totp", tag = TAG, security(("bearer" = [])),
    request_body = DisableTotpReq,
    responses(
        (status = 200, description = "Second factor removed", body = EmptyResp),
        (status = 400, description = "Body does not parse, misses `password`, or has neither or both of `code` \
            and `recoveryCode`; or the second factor is not configured on this server", body = CodeError),
        (status = 401, description = "Wrong password or code, or a missing, invalid or expired access token",
            body = CodeError, example = json!({"code": 401, "msg": "invalid code"})),
        (status = 404, description = "The caller has no second factor", body = CodeError,
            example = json!({"code": 404, "msg": "no second factor"})),
        (status = 429, description = "Too many failed checks for this account or client address", body = CodeError),
    ))]
pub async fn disable(
    State(state): State<AppState>,
    WithAuthorization(forwarded): WithAuthorization,
    JsonBody(body): JsonBody<DisableTotpReq>,
) -> Result<Json<EmptyResp>, ApiError> {
    let (code, recovery_code) = SecondFactor::parse(body.code, body.recovery_code)?.into_fields();
    let request = DisableTotpRequest { password: body.password, code, recovery_code };
    state.upstream.disable_totp(&forwarded, request).await.map_err(failed_without("no second factor"))?;
    Ok(Json(EmptyResp {}))
}

/// Replaces the caller's recovery codes.
///
/// Needs a current code. Answers new recovery codes, shown this once; every old one, used or
/// not, stops working.
#[utoipa::path(post, path = "/user/mfa/recovery-codes", tag = TAG, security(("bearer" = [])),
    request_body = MfaCodeReq,
    responses(
        (status = 200, description = "The new recovery codes", body = RecoveryCodesResp,
            headers(("cache-control" = String, description = "no-store"))),
        (status = 400, description = "Body does not parse or misses `code`, or the second factor is not \
            configured on this server", body = CodeError),
        (status = 401, description = "Wrong code, or a missing, invalid or expired access token", body = CodeError,
            example = json!({"code": 401, "msg": "invalid code"})),
        (status = 404, description = "The caller has no second factor", body = CodeError,
            example = json!({"code": 404, "msg": "no second factor"})),
        (status = 429, description = "Too many wrong codes for this account or client address", body = CodeError),
    ))]
pub async fn regenerate_recovery_codes(
    State(state): State<AppState>,
    WithAuthorization(forwarded): WithAuthorization,
    JsonBody(body): JsonBody<MfaCodeReq>,
) -> Result<impl IntoResponse, ApiError> {
    let request = RegenerateRecoveryCodesRequest { code: body.code };
    let codes = state
        .upstream
        .regenerate_recovery_codes(&forwarded, request)
        .await
        .map_err(failed_without("no second factor"))?;
    Ok(super::no_store(RecoveryCodesResp::from(codes)))
}

/// This module's routes, for `routes::api`.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(verify))
        .routes(routes!(status))
        .routes(routes!(begin_enrolment, disable))
        .routes(routes!(confirm_enrolment))
        .routes(routes!(regenerate_recovery_codes))
}
