//! Service accounts (OAuth 2.0 clients): the operators' calls (create, list, rotate the
//! secret, disable, enable, delete), client authentication, and the client credentials grant.
//!
//! A client's row is read from the database on every authentication and introspection: there
//! are few clients and few such calls (a client keeps its token for its lifetime), and a
//! disabled or deleted client then stops at once on every replica.

use std::sync::Arc;

use chrono::{Duration as ChronoDuration, NaiveDateTime, Utc};
use model::{DatabaseConnection, entity::service_clients, query::service_clients as queries};
use secrecy::SecretString;

use crate::{
    audit::{Actor, Audit, AuditEvent, CallContext, EventType, Outcome},
    auth::tokens::{ClientClaims, ClientTokenSpec, TokenKeys, now_unix},
    config::ClientsConfig,
    domain::{
        client::{self, DEFAULT_CLIENT_ROLE, MAX_AUDIENCES, MAX_SCOPES, ServiceClient},
        role::check_role_name,
    },
    error::{AuthError, OAuthError},
    service::admin::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE},
};

/// What an operator asks CreateClient for.
#[derive(Debug, Clone, Default)]
pub struct NewClient {
    /// Empty: generated.
    pub client_id: String,
    pub name: String,
    /// Empty: [`DEFAULT_CLIENT_ROLE`].
    pub role: String,
    pub scopes: Vec<String>,
    pub audiences: Vec<String>,
}

/// One ListClients page and the token of the next (empty on the last page).
#[derive(Debug, Clone)]
pub struct ClientPage {
    pub clients: Vec<ServiceClient>,
    pub next_page_token: String,
}

/// An issued client token.
pub struct ClientToken {
    pub access_token: String,
    pub expires_in: i64,
    pub scopes: Vec<String>,
}

/// What the client credentials grant asks for, as received.
pub struct TokenRequest<'a> {
    pub client_id: &'a str,
    pub client_secret: SecretString,
    pub scopes: &'a [String],
    pub audiences: &'a [String],
}

pub struct Clients {
    db: DatabaseConnection,
    keys: Arc<TokenKeys>,
    audit: Audit,
    /// The scopes a client may be given (`clients.scopes`).
    scopes: Vec<String>,
    secret_overlap: ChronoDuration,
    access_ttl: i64,
}

impl Clients {
    pub fn new(db: DatabaseConnection, keys: Arc<TokenKeys>, audit: Audit, config: &ClientsConfig) -> Self {
        Self {
            db,
            keys,
            audit,
            scopes: config.scopes.clone(),
            secret_overlap: ChronoDuration::seconds(i64::try_from(config.secret_overlap_seconds).unwrap_or(i64::MAX)),
            access_ttl: i64::try_from(config.access_expire.get()).unwrap_or(i64::MAX),
        }
    }

    /// The scopes clients may be given, for the server metadata.
    pub fn scopes_supported(&self) -> &[String] {
        &self.scopes
    }

    pub async fn create(
        &self,
        new: NewClient,
        actor: Actor,
        call: &CallContext,
    ) -> Result<(ServiceClient, SecretString), AuthError> {
        let invalid = AuthError::InvalidArgument;
        let client_id = if new.client_id.is_empty() { client::generate_client_id() } else { new.client_id };
        client::check_client_id(&client_id).map_err(invalid)?;
        client::check_name(&new.name).map_err(invalid)?;
        let role = if new.role.is_empty() { DEFAULT_CLIENT_ROLE.to_owned() } else { new.role };
        check_role_name(&role).map_err(invalid)?;
        let scopes = client::checked_list(&new.scopes, MAX_SCOPES, "scopes", client::check_scope).map_err(invalid)?;
        if let Some(unknown) = scopes.iter().find(|scope| !self.scopes.contains(scope)) {
            return Err(invalid(format!("scope {unknown:?} is not among the configured clients.scopes")));
        }
        let audiences = client::checked_list(&new.audiences, MAX_AUDIENCES, "audiences", client::check_audience)
            .map_err(invalid)?;
        let (secret, secret_hash) = client::generate_secret();
        let row = queries::insert(
            &self.db,
            queries::NewServiceClient {
                client_id: &client_id,
                name: new.name.trim(),
                role: &role,
                scopes: &client::join(&scopes),
                audiences: &client::join(&audiences),
                secret_hash: &secret_hash,
            },
        )
        .await?;
        self.audit.record(AuditEvent::new(EventType::ClientCreated, Outcome::Success, actor, call).client(&client_id));
        Ok((service_client(row), secret))
    }

    pub async fn list(&self, page_size: u32, page_token: &str) -> Result<ClientPage, AuthError> {
        let limit = match page_size {
            0 => DEFAULT_PAGE_SIZE,
            size @ 1..=MAX_PAGE_SIZE => size,
            _ => return Err(AuthError::InvalidArgument(format!("page_size must be at most {MAX_PAGE_SIZE}"))),
        };
        let after = match page_token {
            "" => None,
            token => Some(
                token
                    .strip_prefix("v1.")
                    .filter(|last| client::check_client_id(last).is_ok())
                    .ok_or_else(|| AuthError::InvalidArgument("page_token is not one this call returned".into()))?,
            ),
        };
        // One more than the page: whether there is a next page, without a count.
        let mut rows = queries::list(&self.db, after, u64::from(limit) + 1).await?;
        let next_page_token = if rows.len() > limit as usize {
            rows.truncate(limit as usize);
            rows.last().map(|last| format!("v1.{}", last.client_id)).unwrap_or_default()
        } else {
            String::new()
        };
        Ok(ClientPage { clients: rows.into_iter().map(service_client).collect(), next_page_token })
    }

    /// A new secret; the one it replaces works `clients.secret_overlap_seconds` longer.
    pub async fn rotate_secret(
        &self,
        client_id: &str,
        actor: Actor,
        call: &CallContext,
    ) -> Result<(ServiceClient, SecretString), AuthError> {
        let (secret, secret_hash) = client::generate_secret();
        let previous_until = Utc::now().naive_utc() + self.secret_overlap;
        let row = queries::rotate_secret(&self.db, client_id, &secret_hash, previous_until)
            .await?
            .ok_or(AuthError::NotFound("no such client"))?;
        self.audit
            .record(AuditEvent::new(EventType::ClientSecretRotated, Outcome::Success, actor, call).client(client_id));
        Ok((service_client(row), secret))
    }

    pub async fn set_disabled(
        &self,
        client_id: &str,
        disabled: bool,
        actor: Actor,
        call: &CallContext,
    ) -> Result<ServiceClient, AuthError> {
        let row =
            queries::set_disabled(&self.db, client_id, disabled).await?.ok_or(AuthError::NotFound("no such client"))?;
        let event = if disabled { EventType::ClientDisabled } else { EventType::ClientEnabled };
        self.audit.record(AuditEvent::new(event, Outcome::Success, actor, call).client(client_id));
        Ok(service_client(row))
    }

    pub async fn delete(&self, client_id: &str, actor: Actor, call: &CallContext) -> Result<(), AuthError> {
        if !queries::delete(&self.db, client_id).await? {
            return Err(AuthError::NotFound("no such client"));
        }
        self.audit.record(AuditEvent::new(EventType::ClientDeleted, Outcome::Success, actor, call).client(client_id));
        Ok(())
    }

    /// The client whose id and secret these are, enabled. Every failure is the same
    /// `invalid_client`, so the answer does not tell an unknown id from a wrong secret.
    pub async fn authenticate(
        &self,
        client_id: &str,
        secret: &SecretString,
        call: &CallContext,
    ) -> Result<service_clients::Model, AuthError> {
        let row = match client::check_client_id(client_id) {
            Ok(()) => queries::find(&self.db, client_id).await?,
            Err(_) => None,
        };
        let now = Utc::now().naive_utc();
        match row.filter(|row| row.disabled_at.is_none() && secret_is_current(row, secret, now)) {
            Some(row) => Ok(row),
            None => {
                let mut event = AuditEvent::new(EventType::ClientToken, Outcome::Failure, Actor::Anonymous, call);
                if client::check_client_id(client_id).is_ok() {
                    event = event.client(client_id);
                }
                self.audit.record(event);
                Err(AuthError::invalid_client())
            }
        }
    }

    /// The client credentials grant (RFC 6749 section 4.4).
    pub async fn issue_token(&self, request: TokenRequest<'_>, call: &CallContext) -> Result<ClientToken, AuthError> {
        let row = self.authenticate(request.client_id, &request.client_secret, call).await?;
        let allowed_scopes = client::split(&row.scopes);
        let scopes = granted(request.scopes, &allowed_scopes, MAX_SCOPES, client::check_scope)
            .map_err(|why| AuthError::oauth(OAuthError::InvalidScope, why))?;
        let allowed_audiences = client::split(&row.audiences);
        // Asking for no audience gets a token without `aud`, not one for every audience.
        let audiences = if request.audiences.is_empty() {
            Vec::new()
        } else {
            granted(request.audiences, &allowed_audiences, MAX_AUDIENCES, client::check_audience)
                .map_err(|why| AuthError::oauth(OAuthError::InvalidTarget, why))?
        };
        let token_id = uuid::Uuid::new_v4().to_string();
        let (access_token, _) = self
            .keys
            .sign_client_access(&ClientTokenSpec {
                client_id: &row.client_id,
                role: &row.role,
                scopes: &scopes,
                audiences: &audiences,
                token_id: &token_id,
                issued_at: now_unix(),
                ttl_seconds: self.access_ttl,
            })
            .map_err(AuthError::internal)?;
        self.audit.record(
            AuditEvent::new(EventType::ClientToken, Outcome::Success, Actor::Client, call)
                .client(&row.client_id)
                .session(&token_id),
        );
        Ok(ClientToken { access_token, expires_in: self.access_ttl, scopes })
    }

    /// Whether a client's token still stands: its client exists, is enabled, and has not had
    /// its tokens revoked since this one was issued.
    pub async fn token_stands(&self, claims: &ClientClaims) -> Result<bool, AuthError> {
        let Some(row) = queries::find(&self.db, &claims.client_id).await? else { return Ok(false) };
        let revoked = row.tokens_revoked_at.is_some_and(|at| claims.iat <= at.and_utc().timestamp());
        Ok(row.disabled_at.is_none() && !revoked)
    }

    /// RFC 7009 for a client's access token: it stops, with every token of the client issued
    /// in the same second or before (tokens are told apart by `iat` only; RFC 7009 section
    /// 2.1 allows revoking the tokens of the same grant). Tokens issued later stand.
    pub async fn revoke_tokens(&self, claims: &ClientClaims, call: &CallContext) -> Result<(), AuthError> {
        let Some(issued_at) = chrono::DateTime::from_timestamp(claims.iat, 0) else { return Ok(()) };
        if queries::revoke_tokens(&self.db, &claims.client_id, issued_at.naive_utc()).await? {
            self.audit.record(
                AuditEvent::new(EventType::TokenRevoked, Outcome::Success, Actor::Client, call)
                    .client(&claims.client_id)
                    .session(&claims.sid),
            );
        }
        Ok(())
    }
}

/// The current secret, or the previous one within its overlap.
fn secret_is_current(row: &service_clients::Model, secret: &SecretString, now: NaiveDateTime) -> bool {
    // Both are checked, so the time taken does not tell which one matched.
    let current = client::secret_matches(secret, &row.secret_hash);
    let previous = match (&row.previous_secret_hash, row.previous_secret_expires_at) {
        (Some(hash), Some(until)) => client::secret_matches(secret, hash) && now < until,
        _ => false,
    };
    current | previous
}

/// The scopes (or audiences) granted for `asked`: all of `allowed` when nothing is asked,
/// else `asked` when each is allowed (RFC 6749 section 3.3).
fn granted(
    asked: &[String],
    allowed: &[String],
    max: usize,
    check: fn(&str) -> Result<(), String>,
) -> Result<Vec<String>, String> {
    if asked.is_empty() {
        return Ok(allowed.to_vec());
    }
    let asked = client::checked_list(asked, max, "values", check)?;
    match asked.iter().find(|item| !allowed.contains(item)) {
        Some(refused) => Err(format!("not granted to this client: {refused}")),
        None => Ok(asked),
    }
}

pub fn service_client(row: service_clients::Model) -> ServiceClient {
    let now = Utc::now().naive_utc();
    ServiceClient {
        scopes: client::split(&row.scopes),
        audiences: client::split(&row.audiences),
        disabled: row.disabled_at.is_some(),
        created_at: row.created_at,
        secret_rotated_at: row.secret_rotated_at,
        previous_secret_expires_at: row.previous_secret_expires_at.filter(|until| now < *until),
        client_id: row.client_id,
        name: row.name,
        role: row.role,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|item| item.to_string()).collect()
    }

    #[test]
    fn nothing_asked_grants_everything_allowed_and_anything_else_must_be_allowed() {
        let allowed = strings(&["a", "b"]);
        assert_eq!(granted(&[], &allowed, 4, client::check_scope).unwrap(), allowed);
        assert_eq!(granted(&strings(&["b"]), &allowed, 4, client::check_scope).unwrap(), ["b"]);
        assert!(granted(&strings(&["b", "c"]), &allowed, 4, client::check_scope).is_err());
        assert!(granted(&strings(&["a b"]), &allowed, 4, client::check_scope).is_err());
    }
}
