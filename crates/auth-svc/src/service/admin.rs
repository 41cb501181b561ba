//! Operators' account management: list and look up accounts, disable, enable and delete them,
//! end their sessions. The gRPC admin calls and the `auth-svc user …` commands run this same
//! code; only the [`Actor`] differs (an admin account, or the operator at the command line).

use std::sync::Arc;

use model::{
    DatabaseConnection,
    query::{self, users::UserListFilter},
};

use crate::{
    audit::{Actor, Audit, AuditEvent, CallContext, EventType, Outcome},
    auth::tokens::AccessClaims,
    domain::{
        AccountRecord, Username,
        role::{ROLE_ADMIN, check_role_name},
    },
    error::AuthError,
    service::{accounts, sessions::Sessions, users::Users},
};

/// Largest ListUsers page, and the size of a page when none is asked for.
pub const MAX_PAGE_SIZE: u32 = 100;
pub const DEFAULT_PAGE_SIZE: u32 = 50;

/// Which accounts ListUsers returns.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// 0 means [`DEFAULT_PAGE_SIZE`].
    pub page_size: u32,
    pub page_token: String,
    pub username_prefix: String,
    pub role: String,
}

/// One page and the token of the next (empty on the last page).
#[derive(Debug, Clone)]
pub struct UserPage {
    pub users: Vec<AccountRecord>,
    pub next_page_token: String,
}

/// How an account is named to GetUser.
#[derive(Debug, Clone)]
pub enum UserRef {
    Id(i64),
    Username(String),
}

pub struct Admin {
    users: Arc<Users>,
    sessions: Arc<Sessions>,
    db: DatabaseConnection,
    audit: Audit,
}

impl Admin {
    pub fn new(users: Arc<Users>, sessions: Arc<Sessions>, db: DatabaseConnection, audit: Audit) -> Self {
        Self { users, sessions, db, audit }
    }

    /// The caller of an admin call as an [`Actor`]. The bearer layer saw "admin" in the token;
    /// the account is read again from the database, so a demoted or disabled admin's token,
    /// still saying "admin" until it expires, gets no further.
    pub async fn require_admin(&self, claims: &AccessClaims) -> Result<Actor, AuthError> {
        let caller = self.users.by_id_uncached(claims.user_id).await?;
        let caller = caller.ok_or(AuthError::Unauthenticated("account no longer exists"))?;
        if caller.disabled {
            return Err(AuthError::Unauthenticated("account disabled"));
        }
        if caller.role != ROLE_ADMIN {
            return Err(AuthError::PermissionDenied("only admins may manage accounts"));
        }
        Ok(Actor::Admin(caller.id))
    }

    pub async fn list_users(&self, query: &ListQuery) -> Result<UserPage, AuthError> {
        let limit = match query.page_size {
            0 => DEFAULT_PAGE_SIZE,
            size @ 1..=MAX_PAGE_SIZE => size,
            _ => return Err(AuthError::InvalidArgument(format!("page_size must be at most {MAX_PAGE_SIZE}"))),
        };
        let filters = page_filters(query);
        let after_id = match query.page_token.as_str() {
            "" => None,
            token => Some(PageToken::parse(token, filters)?),
        };
        let username_prefix = match query.username_prefix.as_str() {
            "" => None,
            // Checked for size and control characters, which no username has (and PostgreSQL
            // refuses a NUL in text), not for being a whole username.
            prefix if prefix.chars().count() > crate::domain::username::MAX_USERNAME_CHARS => {
                return Err(AuthError::InvalidArgument("username_prefix is longer than any username".into()));
            }
            prefix if prefix.chars().any(char::is_control) => {
                return Err(AuthError::InvalidArgument("username_prefix must not contain control characters".into()));
            }
            prefix => Some(prefix.to_owned()),
        };
        if !query.role.is_empty() {
            check_role_name(&query.role).map_err(AuthError::InvalidArgument)?;
        }
        let filter = UserListFilter {
            after_id,
            username_prefix,
            role: (!query.role.is_empty()).then(|| query.role.clone()),
            // One more than the page: whether there is a next page, without a count.
            limit: u64::from(limit) + 1,
        };
        let mut users = self.users.list(&filter).await?;
        let next_page_token = if users.len() > limit as usize {
            users.truncate(limit as usize);
            users.last().map(|last| PageToken::encode(last.user.id, filters)).unwrap_or_default()
        } else {
            String::new()
        };
        Ok(UserPage { users, next_page_token })
    }

    pub async fn get_user(&self, user: &UserRef) -> Result<AccountRecord, AuthError> {
        let found = match user {
            UserRef::Id(id) => self.users.record(*id).await?,
            UserRef::Username(name) => self.users.record_by_username(&Username::parse(name)?).await?,
        };
        found.ok_or(AuthError::NotFound("no such user"))
    }

    /// Disables an account and ends its sessions. Disabling the acting admin's own account is
    /// refused: it would lock them out mid-task.
    pub async fn disable(&self, id: i64, actor: Actor, call: &CallContext) -> Result<AccountRecord, AuthError> {
        refuse_self(id, actor, "an admin cannot disable their own account")?;
        let record = self.users.set_disabled(id, true).await?.ok_or(AuthError::NotFound("no such user"))?;
        // After the flag: a login that passed its check before it re-reads the flag after its
        // insert, and one whose session this pass missed revokes it itself (see Login).
        self.sessions.revoke_all(id, None, actor, call).await?;
        self.audit.record(AuditEvent::new(EventType::AccountDisabled, Outcome::Success, actor, call).subject(id));
        Ok(record)
    }

    /// Lets a disabled account log in again. Its sessions stay ended: any that a disabling cut
    /// short left live (the flag and the end of the sessions are separate writes, and a lost
    /// database connection can fall between them) are ended here, before the flag is lifted.
    pub async fn enable(&self, id: i64, actor: Actor, call: &CallContext) -> Result<AccountRecord, AuthError> {
        let before = self.users.record(id).await?.ok_or(AuthError::NotFound("no such user"))?;
        if before.user.disabled {
            self.sessions.revoke_all(id, None, actor, call).await?;
        }
        let record = self.users.set_disabled(id, false).await?.ok_or(AuthError::NotFound("no such user"))?;
        self.audit.record(AuditEvent::new(EventType::AccountEnabled, Outcome::Success, actor, call).subject(id));
        Ok(record)
    }

    pub async fn delete(&self, id: i64, actor: Actor, call: &CallContext) -> Result<(), AuthError> {
        refuse_self(id, actor, "an admin cannot delete their own account here; use DeleteAccount")?;
        if self.users.record(id).await?.is_none() {
            return Err(AuthError::NotFound("no such user"));
        }
        if !accounts::delete_with_sessions(&self.users, &self.sessions, &self.audit, id, actor, call).await? {
            // Deleted by someone else meanwhile.
            return Err(AuthError::NotFound("no such user"));
        }
        Ok(())
    }

    /// Ends every session of an account; returns how many ended.
    pub async fn revoke_sessions(&self, id: i64, actor: Actor, call: &CallContext) -> Result<usize, AuthError> {
        if self.users.record(id).await?.is_none() {
            return Err(AuthError::NotFound("no such user"));
        }
        self.sessions.revoke_all(id, None, actor, call).await
    }

    /// Removes the second factor and recovery codes of an account that lost both, and ends
    /// every session and pending login of it: it logs in with the password alone until it
    /// enrols again. Idempotent (an account without a factor is answered the same).
    pub async fn reset_mfa(&self, id: i64, actor: Actor, call: &CallContext) -> Result<AccountRecord, AuthError> {
        let record = self.users.record(id).await?.ok_or(AuthError::NotFound("no such user"))?;
        let removed = query::mfa::delete(&self.db, id).await?;
        self.sessions.revoke_all(id, None, actor, call).await?;
        tracing::info!(user_id = id, removed, "second factor reset");
        self.audit.record(AuditEvent::new(EventType::MfaReset, Outcome::Success, actor, call).subject(id));
        Ok(record)
    }
}

fn refuse_self(id: i64, actor: Actor, why: &'static str) -> Result<(), AuthError> {
    match actor {
        Actor::Admin(admin) if admin == id => Err(AuthError::InvalidArgument(why.into())),
        _ => Ok(()),
    }
}

/// What a page token is bound to: a token carries a hash of the filters it was made for, so
/// one passed with other filters is refused instead of silently skipping accounts.
fn page_filters(query: &ListQuery) -> u64 {
    // FNV-1a: stable across processes and versions (std's hasher promises neither).
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in query.username_prefix.bytes().chain([0]).chain(query.role.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// `v1.<last id>.<filters hash>`: opaque to clients, checked here.
struct PageToken;

impl PageToken {
    fn encode(last_id: i64, filters: u64) -> String {
        format!("v1.{last_id}.{filters:016x}")
    }

    fn parse(token: &str, filters: u64) -> Result<i64, AuthError> {
        let invalid = || AuthError::InvalidArgument("page_token is not one this call returned".into());
        let mut parts = token.split('.');
        let (Some("v1"), Some(id), Some(hash), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(invalid());
        };
        let last_id: i64 = id.parse().map_err(|_| invalid())?;
        let hash = u64::from_str_radix(hash, 16).map_err(|_| invalid())?;
        if hash != filters {
            return Err(AuthError::InvalidArgument("page_token was returned for other filters".into()));
        }
        Ok(last_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_and_refuse_garbage_and_other_filters() {
        let query = ListQuery { username_prefix: "al".into(), ..ListQuery::default() };
        let filters = page_filters(&query);
        let token = PageToken::encode(42, filters);
        assert_eq!(PageToken::parse(&token, filters).unwrap(), 42);
        let other = page_filters(&ListQuery { role: "al".into(), ..ListQuery::default() });
        assert_ne!(filters, other, "prefix and role are told apart");
        assert!(matches!(PageToken::parse(&token, other), Err(AuthError::InvalidArgument(_))));
        for garbage in ["", "v1", "v1.x.0", "v2.1.0", "v1.1.zz", "v1.1.0.0", "😀"] {
            assert!(matches!(PageToken::parse(garbage, filters), Err(AuthError::InvalidArgument(_))), "{garbage}");
        }
    }
}
