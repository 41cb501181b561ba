//! The rules: registration and login, sessions, token introspection, and the user directory
//! (accounts read through the cache, written to the database).

pub mod accounts;
pub mod admin;
pub mod introspection;
pub mod sessions;
pub mod users;
