//! The second factor over gRPC: TOTP enrolment, the login step (VerifyMfa), replay, recovery
//! codes, guessing under the throttle, the challenge as a token of its own kind, disabling,
//! an operator's reset, and how the secrets rest. Codes are computed here from the secret the
//! server showed, by `totp-rs` (checked against RFC 6238's vectors first), never by the
//! server's own code.

use std::time::Duration;

use auth_api::user::v1::{
    BeginTotpEnrolmentRequest, ConfirmTotpEnrolmentRequest, DisableTotpRequest, GetMfaStatusRequest, LoginResponse,
    MfaStatus, RecoveryCodes, RegenerateRecoveryCodesRequest, ResetMfaRequest, TotpEnrolment, VerifyMfaRequest,
};
use auth_svc::audit::{EventType, Outcome};
use base64::Engine as _;
use sea_orm::EntityTrait;
use tonic::{Code, Status};
use totp_rs::{Algorithm, Secret, TOTP};

use crate::{
    helpers::{PASSWORD, TestApp, authorized, bearer, spawn_app_with, token_payload},
    roles::{bootstrap_admin, spawn_deployment},
};

/// A sealing key for the tests' servers (32 bytes, base64).
const SEALING_KEY: [u8; 32] = [7; 32];

/// The second factor on: one sealing key, active.
pub fn with_mfa(config: &mut auth_svc::Config) {
    let key = base64::engine::general_purpose::STANDARD.encode(SEALING_KEY);
    config.mfa.keys.insert(
        "k1".into(),
        auth_svc::config::SealingKeyConfig { key_file: None, key: Some(secrecy::SecretString::from(key)) },
    );
    config.mfa.active_key = Some("k1".into());
}

/// The authenticator app of the test: RFC 6238's defaults, the secret as the server showed it.
pub struct Authenticator(TOTP);

impl Authenticator {
    pub fn new(base32_secret: &str) -> Self {
        let secret = Secret::Encoded(base32_secret.to_owned()).to_bytes().expect("base32 secret");
        assert_eq!(secret.len(), 20, "160-bit secret");
        Self(TOTP::new(Algorithm::SHA1, 6, 1, 30, secret).expect("totp"))
    }

    /// The code of the time step `offset` steps from now.
    pub fn code(&self, offset: i64) -> String {
        let now = chrono::Utc::now().timestamp() + offset * 30;
        self.0.generate(u64::try_from(now).unwrap())
    }
}

/// Waits until at least four seconds are left in the current 30-second step, so that a test's
/// "previous, current, next" codes all mean what they say while it runs.
pub async fn early_in_a_step() {
    let into_step = chrono::Utc::now().timestamp() % 30;
    if into_step > 25 {
        tokio::time::sleep(Duration::from_secs(u64::try_from(31 - into_step).unwrap())).await;
    }
}

pub async fn begin(app: &TestApp, access: &str) -> Result<TotpEnrolment, Status> {
    app.client
        .clone()
        .begin_totp_enrolment(authorized(BeginTotpEnrolmentRequest {}, access))
        .await
        .map(|r| r.into_inner())
}

pub async fn confirm(app: &TestApp, access: &str, code: &str) -> Result<Vec<String>, Status> {
    let request = ConfirmTotpEnrolmentRequest { code: code.into() };
    let codes = app.client.clone().confirm_totp_enrolment(authorized(request, access)).await?;
    Ok(codes.into_inner().recovery_codes)
}

pub async fn verify(app: &TestApp, challenge: &str, code: &str, recovery_code: &str) -> Result<LoginResponse, Status> {
    let request =
        VerifyMfaRequest { challenge: challenge.into(), code: code.into(), recovery_code: recovery_code.into() };
    app.client.clone().verify_mfa(request).await.map(|r| r.into_inner())
}

async fn status(app: &TestApp, access: &str) -> MfaStatus {
    app.client.clone().get_mfa_status(authorized(GetMfaStatusRequest {}, access)).await.unwrap().into_inner()
}

/// The challenge a login of `username` stops at (it must stop at one).
pub async fn challenge(app: &TestApp, username: &str) -> String {
    let response = app.login(username, PASSWORD).await.expect("password accepted");
    assert!(response.access_token.is_empty() && response.refresh_token.is_empty(), "no tokens before the code");
    let challenge = response.mfa_challenge.expect("a challenge");
    assert_eq!(challenge.methods, ["totp", "recovery_code"]);
    assert!(challenge.expires_in > 0 && challenge.expires_in <= 300);
    challenge.challenge
}

/// Registers `username`, enrols and confirms an authenticator (with the previous step's code,
/// so the current one is still fresh); returns its session's access token, the app and the
/// recovery codes.
pub async fn enrolled(app: &TestApp, username: &str) -> (String, Authenticator, Vec<String>) {
    let access = app.signed_in(username).await.access_token;
    let enrolment = begin(app, &access).await.expect("begin");
    let authenticator = Authenticator::new(&enrolment.secret);
    let codes = confirm(app, &access, &authenticator.code(-1)).await.expect("confirm");
    (access, authenticator, codes)
}

/// `result` is an error of `code` whose message contains `message`.
#[track_caller]
fn refused<T: std::fmt::Debug>(result: Result<T, Status>, code: Code, message: &str) {
    let status = result.expect_err("refused");
    assert_eq!(status.code(), code, "{status:?}");
    assert!(status.message().contains(message), "{status:?} does not say {message:?}");
}

fn amr(access_token: &str) -> serde_json::Value {
    token_payload(access_token)["amr"].clone()
}

#[test]
fn the_totp_crate_the_tests_use_computes_rfc_6238s_vectors() {
    // RFC 6238 appendix B, SHA-1: the ASCII secret "12345678901234567890", 8 digits.
    let totp = TOTP::new(Algorithm::SHA1, 8, 1, 30, b"12345678901234567890".to_vec()).unwrap();
    for (time, code) in [
        (59, "94287082"),
        (1_111_111_109, "07081804"),
        (1_111_111_111, "14050471"),
        (1_234_567_890, "89005924"),
        (2_000_000_000, "69279037"),
        (20_000_000_000, "65353130"),
    ] {
        assert_eq!(totp.generate(time), code, "at {time}");
    }
}

#[tokio::test]
async fn enrolment_shows_the_secret_once_and_activates_only_on_a_right_code() {
    let app = spawn_app_with(with_mfa).await;
    early_in_a_step().await;
    let first = app.signed_in("alice").await;
    let other_device = app.login("alice", PASSWORD).await.unwrap();
    assert_eq!(status(&app, &first.access_token).await, MfaStatus { totp_enabled: false, recovery_codes_left: 0 });

    let enrolment = begin(&app, &first.access_token).await.unwrap();
    assert_eq!(enrolment.secret.len(), 32, "160 bits of base32");
    assert!(enrolment.secret.bytes().all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)));
    assert_eq!(
        enrolment.otpauth_uri,
        format!(
            "otpauth://totp/auth-svc:alice?secret={}&issuer=auth-svc&algorithm=SHA1&digits=6&period=30",
            enrolment.secret
        )
    );
    assert_eq!(decode_qr(&enrolment.qr_svg), enrolment.otpauth_uri, "the QR code holds the URI");
    // Begun is not active: the password alone still logs in.
    let before = app.login("alice", PASSWORD).await.unwrap();
    assert!(before.mfa_challenge.is_none() && !before.access_token.is_empty());

    let authenticator = Authenticator::new(&enrolment.secret);
    refused(confirm(&app, &first.access_token, "000000").await, Code::Unauthenticated, "invalid code");
    refused(confirm(&app, &first.access_token, "12345").await, Code::InvalidArgument, "code must be 6 digits");
    let codes = confirm(&app, &first.access_token, &authenticator.code(-1)).await.unwrap();
    assert_eq!(codes.len(), 10);
    let distinct: std::collections::HashSet<_> = codes.iter().collect();
    assert_eq!(distinct.len(), 10);
    assert!(codes.iter().all(|code| code.len() == 11 && code.as_bytes()[5] == b'-'), "{codes:?}");
    assert_eq!(status(&app, &first.access_token).await, MfaStatus { totp_enabled: true, recovery_codes_left: 10 });

    // Every other session ended; the confirming one goes on.
    refused(app.user_info(&bearer(&other_device.access_token)).await, Code::Unauthenticated, "");
    refused(app.refresh(&other_device.refresh_token).await, Code::Unauthenticated, "session revoked");
    refused(app.refresh(&before.refresh_token).await, Code::Unauthenticated, "session revoked");
    app.user_info(&bearer(&first.access_token)).await.expect("the confirming session stays");

    // Enrolled: beginning again is refused, confirming again too.
    refused(begin(&app, &first.access_token).await, Code::AlreadyExists, "already enabled");
    refused(confirm(&app, &first.access_token, &authenticator.code(0)).await, Code::AlreadyExists, "");
}

#[tokio::test]
async fn login_stops_at_a_challenge_and_a_code_finishes_it_once() {
    let app = spawn_app_with(with_mfa).await;
    early_in_a_step().await;
    let (_, authenticator, _) = enrolled(&app, "alice").await;
    let challenge = challenge(&app, "alice").await;
    refused(verify(&app, &challenge, "000000", "").await, Code::Unauthenticated, "invalid code");
    let code = authenticator.code(0);
    let as_shown = format!("{} {}", &code[..3], &code[3..]);
    let pair = verify(&app, &challenge, &as_shown, "").await.expect("a code as the app shows it, 123 456");
    assert_eq!(amr(&pair.access_token), serde_json::json!(["pwd", "otp"]));
    app.user_info(&bearer(&pair.access_token)).await.unwrap();
    let validated = app.validate(&pair.access_token).await.unwrap();
    assert_eq!(validated.claims.unwrap().amr, ["pwd", "otp"]);
    // Refresh keeps how the session was authenticated.
    let refreshed = app.refresh(&pair.refresh_token).await.unwrap();
    assert_eq!(amr(&refreshed.access_token), serde_json::json!(["pwd", "otp"]));

    // The challenge is spent; the code is spent (replay), even with a new challenge.
    refused(verify(&app, &challenge, &authenticator.code(1), "").await, Code::Unauthenticated, "challenge");
    let again = self::challenge(&app, "alice").await;
    refused(verify(&app, &again, &authenticator.code(0), "").await, Code::Unauthenticated, "invalid code");
    // And an earlier step's code is older than the one used: refused too.
    refused(verify(&app, &again, &authenticator.code(-1), "").await, Code::Unauthenticated, "invalid code");
    // The next step's code (a phone clock 30 s ahead) is fresh.
    verify(&app, &again, &authenticator.code(1), "").await.expect("next step");

    // A password-only account's tokens say so.
    let bob = app.signed_in("bob").await;
    assert_eq!(amr(&bob.access_token), serde_json::json!(["pwd"]));
    refused(verify(&app, &again, "", "").await, Code::InvalidArgument, "exactly one");
    refused(verify(&app, &again, "123456", "abcde-fghij").await, Code::InvalidArgument, "exactly one");
}

#[tokio::test]
async fn a_recovery_code_works_once_in_any_spelling() {
    let app = spawn_app_with(with_mfa).await;
    let (access, _, codes) = enrolled(&app, "alice").await;
    let typed = codes[3].to_uppercase().replace('-', " ");
    let pair = verify(&app, &challenge(&app, "alice").await, "", &typed).await.expect("recovery code");
    assert_eq!(amr(&pair.access_token), serde_json::json!(["pwd", "otp"]));
    assert_eq!(status(&app, &access).await.recovery_codes_left, 9);
    let challenge = challenge(&app, "alice").await;
    refused(verify(&app, &challenge, "", &codes[3]).await, Code::Unauthenticated, "invalid code");
    refused(verify(&app, &challenge, "", "not a code").await, Code::InvalidArgument, "recovery code");
    verify(&app, &challenge, "", &codes[4]).await.expect("another code still works");
}

#[tokio::test]
async fn forty_wrong_codes_at_once_are_held_to_the_throttle() {
    // Five failures per account (the default); each guess on a challenge of its own, so only
    // the throttle can hold them.
    let app = spawn_app_with(with_mfa).await;
    early_in_a_step().await;
    let (_, authenticator, _) = enrolled(&app, "alice").await;
    let mut challenges = Vec::new();
    for _ in 0..40 {
        challenges.push(challenge(&app, "alice").await);
    }
    let right = authenticator.code(0);
    let wrong = if right == "000000" { "111111" } else { "000000" };
    let guesses = challenges.iter().map(|challenge| verify(&app, challenge, wrong, ""));
    let answers = futures::future::join_all(guesses).await;
    let checked = answers.iter().filter(|answer| matches!(answer, Err(s) if s.code() == Code::Unauthenticated)).count();
    let throttled =
        answers.iter().filter(|answer| matches!(answer, Err(s) if s.code() == Code::ResourceExhausted)).count();
    assert_eq!((checked, throttled), (5, 35), "{answers:?}");
    // The right code now waits for the window too: the account is at its limit.
    let last = challenges.last().unwrap();
    refused(verify(&app, last, &right, "").await, Code::ResourceExhausted, "");
    // ... and a right password does not clear the wrong codes.
    let fresh = challenge(&app, "alice").await;
    refused(verify(&app, &fresh, &right, "").await, Code::ResourceExhausted, "");
    let failures = app
        .audit
        .events()
        .into_iter()
        .filter(|event| event.event_type == EventType::MfaVerified && event.outcome == Outcome::Failure)
        .count();
    assert_eq!(failures, 5);
}

#[tokio::test]
async fn a_challenge_is_spent_after_its_wrong_codes_and_the_login_starts_over() {
    let app = spawn_app_with(|config| {
        with_mfa(config);
        config.throttle.max_failures_per_username = std::num::NonZeroU32::new(100).unwrap();
        config.mfa.max_failures = std::num::NonZeroU32::new(3).unwrap();
    })
    .await;
    early_in_a_step().await;
    let (_, authenticator, _) = enrolled(&app, "alice").await;
    let challenge = challenge(&app, "alice").await;
    let right = authenticator.code(0);
    let wrong = if right == "000000" { "111111" } else { "000000" };
    for _ in 0..3 {
        refused(verify(&app, &challenge, wrong, "").await, Code::Unauthenticated, "invalid code");
    }
    refused(verify(&app, &challenge, &right, "").await, Code::Unauthenticated, "invalid or expired mfa challenge");
    let fresh = self::challenge(&app, "alice").await;
    verify(&app, &fresh, &right, "").await.expect("a new login goes through");
}

#[tokio::test]
async fn a_challenge_is_no_access_or_refresh_token_and_they_are_no_challenge() {
    let app = spawn_app_with(with_mfa).await;
    let (access, _, codes) = enrolled(&app, "alice").await;
    let challenge = challenge(&app, "alice").await;
    assert_eq!(token_payload(&challenge)["token_type"], "mfa_challenge");
    refused(app.user_info(&bearer(&challenge)).await, Code::Unauthenticated, "");
    refused(app.refresh(&challenge).await, Code::Unauthenticated, "");
    assert!(!app.validate(&challenge).await.unwrap().active);
    let bob = app.signed_in("bob").await;
    for not_a_challenge in [access.as_str(), bob.refresh_token.as_str(), "", "garbage"] {
        refused(verify(&app, not_a_challenge, "", &codes[0]).await, Code::Unauthenticated, "challenge");
    }
    assert_eq!(status(&app, &access).await.recovery_codes_left, 10, "no code was spent on them");
}

#[tokio::test]
async fn disabling_needs_the_password_and_a_code_and_login_is_password_only_again() {
    let app = spawn_app_with(with_mfa).await;
    early_in_a_step().await;
    let (access, authenticator, codes) = enrolled(&app, "alice").await;
    let disable = |password: &str, code: &str, recovery_code: &str| {
        let request =
            DisableTotpRequest { password: password.into(), code: code.into(), recovery_code: recovery_code.into() };
        let mut client = app.client.clone();
        let request = authorized(request, &access);
        async move { client.disable_totp(request).await }
    };
    refused(disable("wrong password", &authenticator.code(0), "").await, Code::Unauthenticated, "invalid credentials");
    refused(disable(PASSWORD, "000000", "").await, Code::Unauthenticated, "");
    refused(disable(PASSWORD, "", "").await, Code::InvalidArgument, "exactly one");
    disable(PASSWORD, "", &codes[0]).await.expect("password and a recovery code");
    assert_eq!(status(&app, &access).await, MfaStatus { totp_enabled: false, recovery_codes_left: 0 });
    let pair = app.login("alice", PASSWORD).await.unwrap();
    assert!(pair.mfa_challenge.is_none() && !pair.access_token.is_empty());
    refused(disable(PASSWORD, &authenticator.code(0), "").await, Code::NotFound, "no second factor");
    // Enrolling again is possible, with a new secret.
    let again = begin(&app, &access).await.unwrap();
    assert_ne!(Authenticator::new(&again.secret).code(0), "", "a secret");
}

#[tokio::test]
async fn new_recovery_codes_replace_every_old_one() {
    let app = spawn_app_with(with_mfa).await;
    early_in_a_step().await;
    let (access, authenticator, old) = enrolled(&app, "alice").await;
    let regenerate = |code: String| {
        let mut client = app.client.clone();
        let request = authorized(RegenerateRecoveryCodesRequest { code }, &access);
        async move { client.regenerate_recovery_codes(request).await.map(|r| r.into_inner()) }
    };
    refused(regenerate("000000".into()).await, Code::Unauthenticated, "");
    let RecoveryCodes { recovery_codes: new } = regenerate(authenticator.code(0)).await.unwrap();
    assert_eq!(new.len(), 10);
    assert!(new.iter().all(|code| !old.contains(code)));
    let challenge = challenge(&app, "alice").await;
    refused(verify(&app, &challenge, "", &old[0]).await, Code::Unauthenticated, "invalid code");
    verify(&app, &challenge, "", &new[0]).await.expect("a new code");
}

#[tokio::test]
async fn an_operator_resets_a_locked_out_account() {
    let (app, operator) = spawn_deployment(with_mfa).await;
    let admin = bootstrap_admin(&app, &operator, "root").await;
    let (access, authenticator, _) = enrolled(&app, "alice").await;
    let alice = app.user_info(&bearer(&access)).await.unwrap().id;
    let pending = challenge(&app, "alice").await;
    let reset = |token: &str, id: i64| {
        let mut client = app.client.clone();
        let request = authorized(ResetMfaRequest { id }, token);
        async move { client.reset_mfa(request).await.map(|r| r.into_inner()) }
    };
    refused(reset(&access, alice).await, Code::PermissionDenied, "");
    refused(reset(&admin, 999_999).await, Code::NotFound, "no such user");
    assert_eq!(reset(&admin, alice).await.unwrap().username, "alice");
    // Every session and the pending login ended; the password alone logs in now.
    refused(app.user_info(&bearer(&access)).await, Code::Unauthenticated, "");
    refused(verify(&app, &pending, &authenticator.code(0), "").await, Code::Unauthenticated, "challenge");
    let pair = app.login("alice", PASSWORD).await.unwrap();
    assert!(pair.mfa_challenge.is_none());
    let resets: Vec<_> =
        app.audit.events().into_iter().filter(|event| event.event_type == EventType::MfaReset).collect();
    assert_eq!(resets.len(), 1);
    assert_eq!(resets[0].subject, Some(alice));
}

#[tokio::test]
async fn a_password_change_ends_pending_logins_and_keeps_the_second_factor_in_the_new_session() {
    let app = spawn_app_with(with_mfa).await;
    early_in_a_step().await;
    let (_, authenticator, codes) = enrolled(&app, "alice").await;
    let pending = challenge(&app, "alice").await;
    let pair = verify(&app, &challenge(&app, "alice").await, "", &codes[0]).await.unwrap();
    let changed = app.change_password(&pair.access_token, PASSWORD, "a brand new passphrase").await.unwrap();
    assert_eq!(amr(&changed.access_token), serde_json::json!(["pwd", "otp"]));
    refused(verify(&app, &pending, &authenticator.code(0), "").await, Code::Unauthenticated, "challenge");
}

#[tokio::test]
async fn without_sealing_keys_the_second_factor_is_refused_as_not_configured() {
    let app = spawn_app_with(|_| {}).await;
    let access = app.signed_in("alice").await.access_token;
    refused(begin(&app, &access).await, Code::FailedPrecondition, "not configured");
    assert_eq!(status(&app, &access).await, MfaStatus { totp_enabled: false, recovery_codes_left: 0 });
}

#[tokio::test]
async fn secrets_rest_sealed_and_codes_rest_hashed_and_neither_reaches_redis() {
    let app = spawn_app_with(with_mfa).await;
    let access = app.signed_in("alice").await.access_token;
    let enrolment = begin(&app, &access).await.unwrap();
    let codes = confirm(&app, &access, &Authenticator::new(&enrolment.secret).code(-1)).await.unwrap();
    let rows = model::entity::user_totp::Entity::find().all(&app.db).await.unwrap();
    let sealed = rows[0].secret_sealed.clone();
    assert!(sealed.starts_with("v1.k1."), "sealed under the active key");
    let raw = Secret::Encoded(enrolment.secret.clone()).to_bytes().unwrap();
    let raw_b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&raw);
    assert!(!sealed.contains(&enrolment.secret) && !sealed.contains(&raw_b64));
    let rows = model::entity::recovery_codes::Entity::find().all(&app.db).await.unwrap();
    assert_eq!(rows.len(), 10);
    for row in rows {
        assert_eq!(row.code_hash.len(), 64);
        assert!(codes.iter().all(|code| !row.code_hash.contains(&code.replace('-', ""))));
    }
    if app.redis.is_some() {
        for (key, value) in crate::usernames::redis_values(&app).await {
            assert!(!value.contains(&enrolment.secret) && !value.contains(&sealed), "{key}");
        }
    }
}

/// Reads the QR code of the SVG the server drew: its modules are `M{x} {y}h{w}v{h}…` rectangles
/// on a white field, rasterised here at one pixel per unit and decoded by `rqrr`.
fn decode_qr(svg: &str) -> String {
    let dimension = |name: &str| -> usize {
        let start = svg.find(&format!("{name}=\"")).expect(name) + name.len() + 2;
        svg[start..].split('"').next().unwrap().parse().unwrap()
    };
    let (width, height) = (dimension("width"), dimension("height"));
    let mut black = vec![false; width * height];
    let path = svg.split(" d=\"").nth(1).expect("a path").split('"').next().unwrap();
    for rectangle in path.split('M').filter(|part| !part.is_empty()) {
        let numbers: Vec<usize> = rectangle
            .split(|c: char| !c.is_ascii_digit())
            .filter(|part| !part.is_empty())
            .map(|part| part.parse().unwrap())
            .collect();
        let (left, top, w, h) = (numbers[0], numbers[1], numbers[2], numbers[3]);
        for y in top..top + h {
            for x in left..left + w {
                black[y * width + x] = true;
            }
        }
    }
    let mut image =
        rqrr::PreparedImage::prepare_from_greyscale(width, height, |x, y| if black[y * width + x] { 0 } else { 255 });
    let grids = image.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code in the image");
    grids[0].decode().expect("decodes").1
}
