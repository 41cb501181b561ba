//! Suites against the scripted `UserService` (`support::scripted_upstream`), for what a real
//! auth-svc cannot be made to do on demand or does not show: the metadata it receives, failure
//! statuses, stalls and crashes, a key set of the test's choosing, calls held at a gate.

mod accounts;
mod client_credentials;
mod decoding;
mod forwarded_metadata;
mod jwks;
mod mfa;
mod oauth2_server;
mod shutdown;
mod upstream_failures;
mod user_role;
