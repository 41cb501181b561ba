//! The operator commands of `auth-svc user …` and `auth-svc client …`: straight on the database, no server or token
//! needed. They run the same code as the gRPC admin calls (`service::admin`), as the
//! [`Actor::Operator`], and their audit events go to the same `audit` log target.

use std::sync::Arc;

use anyhow::Context as _;

use crate::{
    audit::{Actor, Audit, AuditEvent, CallContext, EventType, Outcome},
    auth::{keys::Secrets, tokens::TokenKeys},
    config::Config,
    db,
    domain::{AccountRecord, User, Username},
    error::AuthError,
    metrics::Metrics,
    service::{
        admin::{Admin, UserRef},
        clients::Clients,
        sessions::Sessions,
        users::{CacheSync, Users},
    },
    startup,
    store::{Stores, revocation::Revocations},
};

/// The account directory and the admin service of one command, on the configured database
/// and (when set) Redis, so the revocations and cache invalidations of a command reach the
/// shared state that running servers read.
pub struct OfflineAdmin {
    pub admin: Admin,
    pub users: Arc<Users>,
    /// Whether Redis is configured (then invalidations are delivered through it at once).
    pub has_redis: bool,
    audit: Audit,
}

impl OfflineAdmin {
    pub async fn connect(config: &Config) -> anyhow::Result<Self> {
        let (db, _) = db::connect_migrated(config).await?;
        let shared = Stores::new(config)?;
        let metrics = Arc::new(Metrics::new());
        // Never polled, so it reads the database only: right for one command.
        let users = Arc::new(Users::new(db.clone(), shared.cache, CacheSync::from_config(config), metrics.clone()));
        let revocations = Arc::new(Revocations::new(
            shared.revocations,
            db.clone(),
            startup::revocation_settings(config),
            metrics.clone(),
        ));
        // Commands sign nothing; the keys only complete the session service.
        let keys = Arc::new(TokenKeys::from_config(&config.auth, &Secrets::from_config(&config.auth))?);
        let audit = Audit::to_log(metrics.clone());
        let sessions = Arc::new(Sessions::new(
            db.clone(),
            users.clone(),
            revocations,
            keys,
            metrics,
            audit.clone(),
            startup::session_lifetimes(config),
        ));
        Ok(Self {
            admin: Admin::new(users.clone(), sessions, db, audit.clone()),
            users,
            has_redis: shared.redis.is_some(),
            audit,
        })
    }

    /// Whether every cache invalidation of this command reached Redis (true without Redis).
    pub async fn cache_is_current(&self) -> bool {
        !self.has_redis || self.users.cache_is_current().await
    }

    /// `auth-svc user set-role NAME ROLE`: sets a role straight in the database, with no token
    /// needed (how the first admin comes to be), and drops the account from the Redis cache.
    pub async fn set_role(&self, config: &Config, username: &str, role: &str) -> anyhow::Result<User> {
        let username = Username::parse(username)?;
        if !config.auth.roles.iter().any(|known| known == role) {
            let known = config.auth.roles.join(", ");
            return Err(AuthError::InvalidArgument(format!("unknown role {role:?}; auth.roles allows: {known}")).into());
        }
        let user =
            self.users.set_role(&username, role).await?.with_context(|| format!("no user named {username:?}"))?;
        self.audit.record(
            AuditEvent::new(EventType::RoleChanged, Outcome::Success, Actor::Operator, &CallContext::default())
                .subject(user.id),
        );
        Ok(user)
    }
}

/// The service-account calls of `auth-svc client …`, on the configured database.
pub async fn offline_clients(config: &Config) -> anyhow::Result<Clients> {
    let (db, _) = db::connect_migrated(config).await?;
    let keys = Arc::new(TokenKeys::from_config(&config.auth, &Secrets::from_config(&config.auth))?);
    Ok(Clients::new(db, keys, Audit::to_log(Arc::new(Metrics::new())), &config.clients, &config.auth.roles))
}

/// The client a command named does not exist; the message names it.
#[derive(Debug, thiserror::Error)]
#[error("no client with id {0:?}")]
pub struct UnknownClient(String);

/// `result`, with "no such client" naming the client asked for.
pub fn known_client<T>(result: Result<T, AuthError>, client_id: &str) -> anyhow::Result<T> {
    match result {
        Err(AuthError::NotFound(_)) => Err(UnknownClient(client_id.to_owned()).into()),
        other => Ok(other?),
    }
}

/// The account a command named does not exist; the message names what was asked for (the
/// service's own "no such user" does not say which).
#[derive(Debug, thiserror::Error)]
#[error("no user {0}")]
pub struct UnknownUser(String);

/// The account `user` names, for a command: an [`UnknownUser`] naming it when there is none.
pub async fn find_account(admin: &Admin, user: &UserRef) -> anyhow::Result<AccountRecord> {
    match admin.get_user(user).await {
        Ok(record) => Ok(record),
        Err(AuthError::NotFound(_)) => Err(UnknownUser(match user {
            UserRef::Id(id) => format!("with id {id}"),
            UserRef::Username(name) => format!("named {name:?}"),
        })
        .into()),
        Err(err) => Err(err.into()),
    }
}

/// How a command failed, as its exit code: scripts can tell "no such user" from "the database
/// is down" from a mistake in the command.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    match err.downcast_ref::<AuthError>() {
        Some(AuthError::NotFound(_)) => EXIT_NOT_FOUND,
        Some(AuthError::InvalidArgument(_)) => EXIT_USAGE,
        Some(AuthError::Unavailable(_)) => EXIT_UNAVAILABLE,
        _ if err.downcast_ref::<UnknownUser>().is_some() => EXIT_NOT_FOUND,
        _ if err.downcast_ref::<UnknownClient>().is_some() => EXIT_NOT_FOUND,
        _ if err.chain().any(|cause| cause.to_string().contains("no user named")) => EXIT_NOT_FOUND,
        _ if err.chain().any(is_connection_failure) => EXIT_UNAVAILABLE,
        _ => 1,
    }
}

/// The command named an account that does not exist.
pub const EXIT_NOT_FOUND: u8 = 3;
/// The command's input is wrong (sysexits' EX_USAGE).
pub const EXIT_USAGE: u8 = 64;
/// The database (or Redis) cannot be reached (sysexits' EX_UNAVAILABLE).
pub const EXIT_UNAVAILABLE: u8 = 69;

fn is_connection_failure(cause: &(dyn std::error::Error + 'static)) -> bool {
    cause.downcast_ref::<model::StoreError>().is_some_and(|err| matches!(err, model::StoreError::Unavailable(_)))
        || cause.downcast_ref::<db::ConnectError>().is_some()
}

/// The command line's actor and call: no address, no request id.
pub fn operator_call() -> (Actor, CallContext) {
    (Actor::Operator, CallContext::default())
}

/// `auth-svc user set-role` as one call: the account, and whether the cache is known current.
pub async fn set_role_offline(config: &Config, username: &str, role: &str) -> anyhow::Result<(User, bool)> {
    let offline = OfflineAdmin::connect(config).await?;
    let user = offline.set_role(config, username, role).await?;
    Ok((user, offline.cache_is_current().await))
}
