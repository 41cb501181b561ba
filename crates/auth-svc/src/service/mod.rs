//! The rules: registration and login, sessions, the second factor, token introspection, and the user directory
//! (accounts read through the cache, written to the database).

pub mod accounts;
pub mod admin;
pub mod clients;
pub mod introspection;
pub mod second_factor;
pub mod sessions;
pub mod token_revocation;
pub mod users;

use tracing::Instrument as _;

use crate::error::AuthError;

/// Runs `work` on its own task and waits for it. A caller that goes away (a cancelled call, a
/// client deadline, a gateway timeout) no longer stops it halfway: a login reservation is
/// always settled, so a guess cut short still counts as what it was; and a change made of
/// several writes (a password change and the end of every session, a disabling and the end of
/// every session) is never left half done.
pub async fn run_to_completion<T: Send + 'static>(
    work: impl std::future::Future<Output = Result<T, AuthError>> + Send + 'static,
) -> Result<T, AuthError> {
    // In the caller's span, so its queries and the password check stay inside the call's trace.
    tokio::spawn(work.in_current_span()).await.map_err(AuthError::internal)?
}
