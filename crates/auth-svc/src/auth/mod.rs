//! Credentials: password hashing, and JWT signing and verification with the key ring.

pub mod keys;
pub mod password;
pub mod tokens;
