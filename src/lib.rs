//! The `user.v1` API generated from `proto/user/v1/user.proto`, shared by auth-svc, the
//! gateway and every client, plus the encoded descriptor set that server reflection serves.

pub mod codec;

/// gRPC metadata keys that auth-svc and its callers (the gateway) agree on.
pub mod metadata {
    /// The request id that follows a call through both logs.
    pub const REQUEST_ID: &str = "x-request-id";
    /// The client address (first entry) auth-svc throttles failed logins by.
    pub const FORWARDED_FOR: &str = "x-forwarded-for";
    /// The HTTP client's `User-Agent`, passed on by the gateway (believed from trusted
    /// forwarders only, as `x-forwarded-for` is); ListSessions shows it.
    pub const FORWARDED_USER_AGENT: &str = "x-forwarded-user-agent";

    /// Status metadata of the client calls (ClientCredentials, IntrospectToken, RevokeToken):
    /// the RFC 6749 section 5.2 error code (`invalid_client`, `invalid_scope`, …), so the gateway
    /// answers with the OAuth 2.0 error the service meant rather than guess it from the status.
    pub const OAUTH_ERROR: &str = "x-oauth-error";
    /// Seconds to wait after RESOURCE_EXHAUSTED.
    pub const RETRY_AFTER: &str = "retry-after";
}

pub mod user {
    pub mod v1 {
        tonic::include_proto!("user.v1");

        /// Encoded `FileDescriptorSet` of `user.v1`, for `tonic-reflection`.
        pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("user_v1_descriptor");
    }
}
