//! Credentials: password hashing, JWT signing and verification, and the bearer-token check
//! in front of protected RPCs.

pub mod interceptor;
pub mod keys;
pub mod password;
pub mod tokens;
