//! Audit events: one structured record per security-relevant event (logins, sessions, account
//! changes), for whoever must answer "who did what to which account, from where, and when".
//!
//! An [`AuditEvent`] is plain data (serde-serialisable, no secrets by construction: it has no
//! field that could hold a password, hash or token), handed to every [`AuditSink`]. Today the one
//! sink is the log: target `audit`, one line per event (a JSON line under `log.format: json`),
//! and every event is counted in `auth_audit_events_total{type,outcome}`. A later sink (a webhook,
//! a gRPC stream) implements [`AuditSink`] and takes the same events.

use std::{net::IpAddr, sync::Arc};

use serde::Serialize;

use crate::metrics::Metrics;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    Login,
    Refresh,
    /// A spent refresh token came back outside the reuse interval: the session was revoked.
    RefreshReuseDetected,
    Logout,
    /// One session ended by its user (RevokeSession, LogoutAll) or an operator.
    SessionRevoked,
    PasswordChanged,
    AccountCreated,
    AccountDeleted,
    AccountDisabled,
    AccountEnabled,
    RoleChanged,
    ClientCreated,
    ClientSecretRotated,
    ClientDisabled,
    ClientEnabled,
    ClientDeleted,
    /// The client credentials grant: a token issued, or a client authentication that failed.
    ClientToken,
    /// RFC 7009 revocation of a token (a refresh token's session, or a client's tokens).
    TokenRevoked,
    /// A right password of an account with a second factor: the login awaits its code.
    MfaChallengeIssued,
    /// A TOTP enrolment begun (a secret made, not yet active).
    MfaEnrolmentBegun,
    /// A TOTP enrolment confirmed with a code: the second factor is on.
    MfaEnabled,
    /// The second step of a login (VerifyMfa) with an authenticator code.
    MfaVerified,
    /// The second step of a login with a recovery code.
    MfaRecoveryCodeUsed,
    /// The account's own removal of its second factor.
    MfaDisabled,
    /// An operator's removal of an account's second factor.
    MfaReset,
    RecoveryCodesRegenerated,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Login => "login",
            Self::Refresh => "refresh",
            Self::RefreshReuseDetected => "refresh_reuse_detected",
            Self::Logout => "logout",
            Self::SessionRevoked => "session_revoked",
            Self::PasswordChanged => "password_changed",
            Self::AccountCreated => "account_created",
            Self::AccountDeleted => "account_deleted",
            Self::AccountDisabled => "account_disabled",
            Self::AccountEnabled => "account_enabled",
            Self::RoleChanged => "role_changed",
            Self::ClientCreated => "client_created",
            Self::ClientSecretRotated => "client_secret_rotated",
            Self::ClientDisabled => "client_disabled",
            Self::ClientEnabled => "client_enabled",
            Self::ClientDeleted => "client_deleted",
            Self::ClientToken => "client_token",
            Self::TokenRevoked => "token_revoked",
            Self::MfaChallengeIssued => "mfa_challenge_issued",
            Self::MfaEnrolmentBegun => "mfa_enrolment_begun",
            Self::MfaEnabled => "mfa_enabled",
            Self::MfaVerified => "mfa_verified",
            Self::MfaRecoveryCodeUsed => "mfa_recovery_code_used",
            Self::MfaDisabled => "mfa_disabled",
            Self::MfaReset => "mfa_reset",
            Self::RecoveryCodesRegenerated => "recovery_codes_regenerated",
        }
    }
}

/// How it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    /// Wrong credentials, or a refused token.
    Failure,
    /// Refused by the attempt throttle before any password was checked.
    Throttled,
}

impl Outcome {
    /// How a refused check of a password or a code shows: throttled, or a plain failure.
    pub fn of_refusal(err: &crate::error::AuthError) -> Self {
        use crate::error::AuthError;
        match err {
            AuthError::LoginThrottled { .. } | AuthError::TooManyInFlight { .. } => Self::Throttled,
            _ => Self::Failure,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Throttled => "throttled",
        }
    }
}

/// Who did it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Actor {
    /// Not signed in (a login attempt, a registration, a refresh token's bearer).
    Anonymous,
    /// A signed-in account acting on itself.
    User(i64),
    /// An account with role admin acting on another.
    Admin(i64),
    /// The `auth-svc user …` and `auth-svc client …` command line.
    Operator,
    /// A service account, named in the event's `client_id`.
    Client,
}

impl std::fmt::Display for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Anonymous => f.write_str("anonymous"),
            Self::User(id) => write!(f, "user:{id}"),
            Self::Admin(id) => write!(f, "admin:{id}"),
            Self::Operator => f.write_str("operator"),
            Self::Client => f.write_str("client"),
        }
    }
}

/// Where a call came from, as the edge saw it; every event of the call carries it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallContext {
    pub client_address: Option<IpAddr>,
    /// The client's `user-agent` (through the gateway: the HTTP client's), at most
    /// [`MAX_USER_AGENT_CHARS`].
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
}

/// Longest user agent recorded (the column's size).
pub const MAX_USER_AGENT_CHARS: usize = 256;

/// One audit record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEvent {
    /// RFC 3339, UTC.
    pub time: String,
    #[serde(rename = "type")]
    pub event_type: EventType,
    pub outcome: Outcome,
    pub actor: Actor,
    /// The account acted on, when known.
    pub subject: Option<i64>,
    /// The username given (a login attempt names an account that may not exist).
    pub username: Option<String>,
    pub session_id: Option<String>,
    /// The service account acted on or acting (given, for a failed authentication).
    pub client_id: Option<String>,
    pub client_address: Option<IpAddr>,
    pub request_id: Option<String>,
}

impl AuditEvent {
    /// An event of this call, now; fill in the rest with the builder methods.
    pub fn new(event_type: EventType, outcome: Outcome, actor: Actor, call: &CallContext) -> Self {
        Self {
            time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            event_type,
            outcome,
            actor,
            subject: None,
            username: None,
            session_id: None,
            client_id: None,
            client_address: call.client_address,
            request_id: call.request_id.clone(),
        }
    }

    pub fn subject(mut self, user_id: i64) -> Self {
        self.subject = Some(user_id);
        self
    }

    pub fn username(mut self, username: &str) -> Self {
        self.username = Some(username.to_owned());
        self
    }

    pub fn session(mut self, session_id: &str) -> Self {
        self.session_id = Some(session_id.to_owned());
        self
    }

    pub fn client(mut self, client_id: &str) -> Self {
        self.client_id = Some(client_id.to_owned());
        self
    }
}

/// Somewhere audit events go. Called inline on the request path: a sink that talks to the
/// network must queue and return at once.
pub trait AuditSink: Send + Sync {
    fn record(&self, event: &AuditEvent);
}

/// The log sink: target `audit`, the event's fields as the line's fields.
pub struct LogSink;

impl AuditSink for LogSink {
    fn record(&self, event: &AuditEvent) {
        tracing::info!(
            target: "audit",
            time = %event.time,
            r#type = event.event_type.as_str(),
            outcome = event.outcome.as_str(),
            actor = %event.actor,
            subject = event.subject,
            username = event.username.as_deref(),
            session_id = event.session_id.as_deref(),
            client_id = event.client_id.as_deref(),
            client_address = event.client_address.map(tracing::field::display),
            request_id = event.request_id.as_deref(),
            "audit event"
        );
    }
}

/// Counts every event and hands it to each sink.
#[derive(Clone)]
pub struct Audit {
    sinks: Arc<Vec<Box<dyn AuditSink>>>,
    metrics: Arc<Metrics>,
}

impl Audit {
    /// Events go to the log.
    pub fn to_log(metrics: Arc<Metrics>) -> Self {
        Self::with_sinks(vec![Box::new(LogSink)], metrics)
    }

    pub fn with_sinks(sinks: Vec<Box<dyn AuditSink>>, metrics: Arc<Metrics>) -> Self {
        Self { sinks: Arc::new(sinks), metrics }
    }

    pub fn record(&self, event: AuditEvent) {
        self.metrics.audit_event(event.event_type.as_str(), event.outcome.as_str());
        for sink in self.sinks.iter() {
            sink.record(&event);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    struct Collect(Arc<Mutex<Vec<AuditEvent>>>);

    impl AuditSink for Collect {
        fn record(&self, event: &AuditEvent) {
            self.0.lock().unwrap().push(event.clone());
        }
    }

    #[test]
    fn an_event_reaches_every_sink_and_is_counted_by_type_and_outcome() {
        let metrics = Arc::new(Metrics::new());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let audit = Audit::with_sinks(vec![Box::new(Collect(seen.clone())), Box::new(LogSink)], metrics.clone());
        let call = CallContext {
            client_address: Some("192.0.2.7".parse().unwrap()),
            user_agent: Some("curl/8".into()),
            request_id: Some("req-1".into()),
        };
        audit.record(AuditEvent::new(EventType::Login, Outcome::Failure, Actor::Anonymous, &call).username("alice"));
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].client_address, call.client_address);
        assert_eq!(seen[0].request_id.as_deref(), Some("req-1"));
        assert!(metrics.render().contains(r#"auth_audit_events_total{type="login",outcome="failure"} 1"#));
    }

    #[test]
    fn the_serialised_form_is_what_a_later_sink_would_send() {
        let event = AuditEvent {
            time: "2026-12-01T00:00:00.000Z".into(),
            event_type: EventType::AccountDisabled,
            outcome: Outcome::Success,
            actor: Actor::Admin(1),
            subject: Some(2),
            username: None,
            session_id: None,
            client_id: None,
            client_address: None,
            request_id: Some("r".into()),
        };
        assert_eq!(
            serde_json::to_value(&event).unwrap(),
            serde_json::json!({
                "time": "2026-12-01T00:00:00.000Z", "type": "account_disabled", "outcome": "success",
                "actor": {"kind": "admin", "id": 1}, "subject": 2, "username": null, "session_id": null,
                "client_id": null, "client_address": null, "request_id": "r"
            })
        );
    }
}
