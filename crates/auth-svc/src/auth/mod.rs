//! Credentials: password hashing, JWT signing and verification with the key ring, and the
//! sealing of second-factor secrets at rest.

pub mod keys;
pub mod password;
pub mod sealed;
pub mod tokens;
