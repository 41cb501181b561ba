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
    /// A disabled account cannot log in or refresh, and its tokens are refused.
    /// (`default`: cache entries written before the field existed read as enabled; every
    /// account was then.)
    #[serde(default)]
    pub disabled: bool,
}

impl From<users::Model> for User {
    fn from(row: users::Model) -> Self {
        Self {
            id: row.id,
            username: row.username,
            username_canonical: row.username_canonical,
            role: row.role,
            disabled: row.disabled_at.is_some(),
        }
    }
}

/// An account as operators see it (ListUsers, GetUser, the CLI): the profile and its times.
/// Never the password hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRecord {
    pub user: User,
    pub created_at: chrono::NaiveDateTime,
    pub disabled_at: Option<chrono::NaiveDateTime>,
    pub last_login_at: Option<chrono::NaiveDateTime>,
}

impl From<users::Model> for AccountRecord {
    fn from(row: users::Model) -> Self {
        let (created_at, disabled_at, last_login_at) = (row.created_at, row.disabled_at, row.last_login_at);
        Self { user: User::from(row), created_at, disabled_at, last_login_at }
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

    /// Whether this is the PHC string `phc` (a session is kept against the hash it was checked with).
    pub fn is(&self, phc: &str) -> bool {
        self.0 == phc
    }
}

impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordHash(..)")
    }
}
