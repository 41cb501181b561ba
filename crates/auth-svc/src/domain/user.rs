//! The account types the rules and the stores pass around.

use model::entity::users;
use serde::{Deserialize, Serialize};

/// An account's profile: what GetUserInfo answers and tokens carry, and all a cache holds.
/// No password hash, by construction (see `Users::credentials`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: i64,
    /// The display form, as registered.
    pub username: String,
    /// The form names are compared by (`model::username`); the cache's name index uses it.
    pub username_canonical: String,
    pub role: String,
}

impl From<users::Model> for User {
    fn from(row: users::Model) -> Self {
        Self { id: row.id, username: row.username, username_canonical: row.username_canonical, role: row.role }
    }
}

/// An account's argon2id PHC string; never printed.
pub struct PasswordHash(String);

impl PasswordHash {
    /// A PHC string read from the database.
    pub fn new(phc: String) -> Self {
        Self(phc)
    }

    pub fn into_phc(self) -> String {
        self.0
    }
}

impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordHash(..)")
    }
}
