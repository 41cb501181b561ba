//! The types the rules work on, each parsed or checked once, and depending on nothing else
//! here: accounts ([`User`]), usernames, passwords, roles, service accounts ([`client`]) and
//! the TOTP second factor ([`totp`], [`recovery_code`]).

pub mod client;
pub mod password;
pub mod recovery_code;
pub mod role;
pub mod totp;
pub mod user;
pub mod username;

pub use user::{AccountRecord, PasswordHash, User};
pub use username::Username;
