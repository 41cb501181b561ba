//! The operator commands of `auth-svc user …`: straight on the database, no server or token
//! needed.

use std::sync::Arc;

use anyhow::Context as _;

use crate::{
    config::Config,
    db,
    domain::{User, Username},
    metrics::Metrics,
    service::users::{CacheSync, Users},
    store::Stores,
};

/// `auth-svc user set-role NAME ROLE`: sets a role straight in the database, with no token
/// needed (how the first admin comes to be), and drops the account from the Redis cache.
/// Returns the account and whether the cache is known to be current.
pub async fn set_role_offline(config: &Config, username: &str, role: &str) -> anyhow::Result<(User, bool)> {
    let username = Username::parse(username)?;
    if !config.auth.roles.iter().any(|known| known == role) {
        anyhow::bail!("unknown role {role:?}; auth.roles allows: {}", config.auth.roles.join(", "));
    }
    let (db, _) = db::connect_migrated(config).await?;
    let shared = Stores::new(config)?;
    // Never polled, so it reads the database only: right for one command.
    let users = Users::new(db, shared.cache, CacheSync::from_config(config), Arc::new(Metrics::new()));
    let user = users.set_role(&username, role).await?.with_context(|| format!("no user named {username:?}"))?;
    let cache_current = shared.redis.is_none() || users.cache_is_current().await;
    Ok((user, cache_current))
}
