//! Table definitions. Timestamps of users, service clients and second factors are UTC
//! `DATETIME`s; token times (refresh tokens, MFA challenges) are Unix seconds because they are
//! copied into JWT claims (`iat`, `exp`) and must round-trip exactly.

pub mod mfa_challenges;
pub mod recovery_codes;
pub mod refresh_tokens;
pub mod service_clients;
pub mod user_totp;
pub mod users;
