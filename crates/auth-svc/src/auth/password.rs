//! argon2id hashing off the async runtime, with a bound on how many run at once.
//!
//! Each hash takes tens of milliseconds of CPU and 19 MiB of memory at the OWASP profile, so
//! they run on blocking threads behind a semaphore: a login storm queues here instead of
//! starving other RPCs or exhausting memory.

use std::sync::Arc;

use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, PasswordVerifier as _, Version};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;

use crate::{config::HashProfile, error::AuthError, metrics::Metrics};

#[derive(Clone)]
pub struct PasswordHasher {
    argon2: Argon2<'static>,
    permits: Arc<Semaphore>,
    /// A hash of a random password with the current parameters: unknown usernames are
    /// verified against it so they cost the same time as a wrong password.
    dummy_hash: Arc<str>,
    metrics: Arc<Metrics>,
}

impl PasswordHasher {
    pub fn new(profile: HashProfile, concurrency: usize, metrics: Arc<Metrics>) -> Result<Self, AuthError> {
        let params = match profile {
            HashProfile::Owasp => Params::new(19_456, 2, 1, None),
            HashProfile::Test => Params::new(Params::MIN_M_COST, 1, 1, None),
        }
        .map_err(AuthError::internal)?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let dummy_password = uuid::Uuid::new_v4().to_string();
        let dummy_hash = argon2.hash_password(dummy_password.as_bytes()).map_err(AuthError::internal)?;
        Ok(Self {
            argon2,
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            dummy_hash: dummy_hash.to_string().into(),
            metrics,
        })
    }

    /// A PHC string (`$argon2id$v=19$m=…`) for a new password.
    pub async fn hash(&self, password: SecretString) -> Result<String, AuthError> {
        let argon2 = self.argon2.clone();
        self.run_bounded(move || {
            argon2
                .hash_password(password.expose_secret().as_bytes())
                .map(|hash| hash.to_string())
                .map_err(AuthError::internal)
        })
        .await
    }

    /// Whether `password` matches `stored` (a PHC string). With no stored hash (unknown user)
    /// the dummy hash is checked instead and the answer is always `false`.
    pub async fn verify(&self, password: SecretString, stored: Option<String>) -> Result<bool, AuthError> {
        let argon2 = self.argon2.clone();
        let known_user = stored.is_some();
        let phc: Arc<str> = stored.map_or_else(|| self.dummy_hash.clone(), Arc::from);
        let matched = self
            .run_bounded(move || match argon2.verify_password(password.expose_secret().as_bytes(), &*phc) {
                Ok(()) => Ok(true),
                Err(argon2::password_hash::Error::PasswordInvalid) => Ok(false),
                Err(err) => Err(AuthError::internal(err)),
            })
            .await?;
        Ok(matched && known_user)
    }

    async fn run_bounded<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, AuthError> + Send + 'static,
    ) -> Result<T, AuthError> {
        // The permit moves into the blocking task: if the caller goes away mid-hash, the slot
        // stays taken until the CPU work really ends.
        let metrics = self.metrics.clone();
        let (waiting, _) = metrics.hash_queue();
        waiting.inc();
        let permit = self.permits.clone().acquire_owned().await;
        waiting.dec();
        let permit = permit.map_err(AuthError::internal)?;
        tokio::task::spawn_blocking(move || {
            let (_, running) = metrics.hash_queue();
            running.inc();
            let result = work();
            running.dec();
            drop(permit);
            result
        })
        .await
        .map_err(AuthError::internal)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(text: &str) -> SecretString {
        SecretString::from(text.to_owned())
    }

    #[tokio::test]
    async fn owasp_profile_writes_the_owasp_parameters() {
        let hasher = PasswordHasher::new(HashProfile::Owasp, 1, Default::default()).expect("hasher");
        let phc = hasher.hash(secret("correct horse")).await.expect("ok");
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
    }

    #[tokio::test]
    async fn verifies_right_and_wrong_passwords_and_unknown_users() {
        let hasher = PasswordHasher::new(HashProfile::Test, 2, Default::default()).expect("ok");
        let phc = hasher.hash(secret("correct horse")).await.expect("ok");
        assert!(hasher.verify(secret("correct horse"), Some(phc.clone())).await.expect("verify"));
        assert!(!hasher.verify(secret("wrong horse"), Some(phc)).await.expect("verify"));
        assert!(!hasher.verify(secret("anything"), None).await.expect("verify"));
    }

    #[tokio::test]
    async fn a_corrupt_stored_hash_is_an_error_not_a_match() {
        let hasher = PasswordHasher::new(HashProfile::Test, 1, Default::default()).expect("ok");
        let result = hasher.verify(secret("x"), Some("not-a-phc-string".into())).await;
        assert!(matches!(result, Err(AuthError::Internal(_))));
    }
}
