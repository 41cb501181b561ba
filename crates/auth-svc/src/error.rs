//! `AuthError`, the one error of the logic layer, and its one mapping to a gRPC `Status`.

use model::StoreError;
use tonic::{Code, Status};

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Bad input; the message tells the caller what to fix.
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    AlreadyExists(&'static str),
    /// Wrong credentials or an unusable token; the message never says which secret part failed.
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// A valid token whose role may not do this.
    #[error("{0}")]
    PermissionDenied(&'static str),
    #[error("{0}")]
    NotFound(&'static str),
    /// The server is not set up for the call (the second factor without `mfa.keys`).
    #[error("{0}")]
    FailedPrecondition(&'static str),
    /// Too many login attempts for the username or from the address; retry after the seconds.
    #[error("too many failed login attempts, retry later")]
    LoginThrottled { retry_after_seconds: u64 },
    /// The address already has `throttle.max_in_flight_per_address` logins being checked.
    #[error("too many logins at once from this address, retry later")]
    TooManyInFlight { retry_after_seconds: u64 },
    /// Too many registrations from the address.
    #[error("too many registrations from this address, retry later")]
    SignupThrottled { retry_after_seconds: u64 },
    /// The password-hashing queue is full: refused at once rather than queued past any deadline.
    #[error("server busy, retry later")]
    Overloaded { retry_after_seconds: u64 },
    /// A backing store is down; worth a retry.
    #[error("service temporarily unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A refusal of the OAuth 2.0 client calls, with its RFC 6749 section 5.2 code.
    #[error("{message}")]
    OAuth { code: OAuthError, message: String },
    /// A fault of ours. Logged with its whole chain, answered with a generic message.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// The RFC 6749 section 5.2 (and RFC 8707) error codes auth-svc decides itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OAuthError {
    /// Unknown client, wrong secret, or a disabled client.
    InvalidClient,
    InvalidRequest,
    InvalidScope,
    /// RFC 8707: an audience (resource) the client may not ask for.
    InvalidTarget,
    /// Authenticated, but not allowed this call (introspection without scope `introspect`).
    UnauthorizedClient,
}

impl OAuthError {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidClient => "invalid_client",
            Self::InvalidRequest => "invalid_request",
            Self::InvalidScope => "invalid_scope",
            Self::InvalidTarget => "invalid_target",
            Self::UnauthorizedClient => "unauthorized_client",
        }
    }

    fn code(self) -> Code {
        match self {
            Self::InvalidClient => Code::Unauthenticated,
            Self::InvalidRequest | Self::InvalidScope | Self::InvalidTarget => Code::InvalidArgument,
            Self::UnauthorizedClient => Code::PermissionDenied,
        }
    }
}

impl AuthError {
    pub fn oauth(code: OAuthError, message: impl Into<String>) -> Self {
        Self::OAuth { code, message: message.into() }
    }

    /// The one answer to a failed client authentication, whatever failed.
    pub fn invalid_client() -> Self {
        Self::oauth(OAuthError::InvalidClient, "client authentication failed")
    }

    pub fn internal(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Internal(Box::new(err))
    }
}

impl From<StoreError> for AuthError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::UsernameTaken => Self::AlreadyExists("username already exists"),
            StoreError::ClientIdTaken => Self::AlreadyExists("client id already exists"),
            StoreError::OwnerGone => Self::Unauthenticated("account no longer exists"),
            StoreError::Unavailable(_) => Self::Unavailable(Box::new(err)),
            StoreError::Database(_) => Self::Internal(Box::new(err)),
        }
    }
}

impl From<AuthError> for Status {
    fn from(err: AuthError) -> Self {
        match &err {
            AuthError::InvalidArgument(msg) => Status::invalid_argument(msg.clone()),
            AuthError::AlreadyExists(msg) => Status::already_exists(*msg),
            AuthError::Unauthenticated(msg) => Status::unauthenticated(*msg),
            AuthError::PermissionDenied(msg) => Status::permission_denied(*msg),
            AuthError::NotFound(msg) => Status::not_found(*msg),
            AuthError::FailedPrecondition(msg) => Status::failed_precondition(*msg),
            AuthError::LoginThrottled { retry_after_seconds }
            | AuthError::TooManyInFlight { retry_after_seconds }
            | AuthError::SignupThrottled { retry_after_seconds }
            | AuthError::Overloaded { retry_after_seconds } => {
                let mut status = Status::resource_exhausted(err.to_string());
                status.metadata_mut().insert(auth_api::metadata::RETRY_AFTER, (*retry_after_seconds).into());
                status
            }
            AuthError::OAuth { code, message } => {
                let mut status = Status::new(code.code(), message.clone());
                status.metadata_mut().insert(
                    auth_api::metadata::OAUTH_ERROR,
                    tonic::metadata::MetadataValue::from_static(code.as_str()),
                );
                status
            }
            AuthError::Unavailable(_) => {
                tracing::warn!(error = %error_chain(&err), "backing store unavailable");
                Status::new(Code::Unavailable, "service temporarily unavailable, retry later")
            }
            AuthError::Internal(_) => {
                tracing::error!(error = %error_chain(&err), "internal error");
                Status::internal("internal error")
            }
        }
    }
}

/// "outer: cause: root cause", for logs.
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
