//! argon2id hashing on a fixed set of hashing threads, each owning its argon2 memory.
//!
//! Each hash takes tens of milliseconds of CPU and 19 MiB of memory at the OWASP profile. The
//! work runs on `concurrency` dedicated threads, so a login storm queues here instead of
//! starving other RPCs, and each thread allocates its 19 MiB once and reuses it: memory stays at
//! `concurrency` × 19 MiB whatever the load. (Allocating per hash on tokio's blocking pool let
//! glibc's per-thread arenas keep hundreds of MiB after a storm: see docs/benchmarks.md.)
//!
//! The hashing threads run at a lower scheduling priority ([`HASHING_NICE`]) than the tokio
//! workers: when both want a core, the scheduler gives it to the worker, so a GetUserInfo or a
//! Refresh is not queued behind tens of milliseconds of argon2 while a login storm keeps every
//! core busy. With nothing else to run the hashes still take all the CPU, so Login's rate is
//! unchanged.

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicUsize, Ordering},
    mpsc::{Receiver, SyncSender, sync_channel},
};

use argon2::{
    ARGON2ID_IDENT, Algorithm, Argon2, Block, Params, PasswordHash, Version,
    password_hash::phc::{Output, ParamsString, Salt},
};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::{OnceCell, Semaphore, oneshot};
use tracing::Instrument as _;

use crate::{config::HashProfile, error::AuthError, metrics::Metrics};

/// Length of the stored hash output, bytes (argon2's default).
const OUTPUT_BYTES: usize = 32;

/// The nice value of the hashing threads (the tokio workers stay at the process's own, 0 by
/// default). 10 gives a worker about nine times a hashing thread's share of a contended core.
/// Raising one's own nice value needs no privilege, so this works in a restricted pod.
const HASHING_NICE: i32 = 10;

/// A job for a hashing thread; it gets the thread's reusable argon2 memory.
type Job = Box<dyn FnOnce(&mut Vec<Block>) + Send>;

#[derive(Debug, thiserror::Error)]
#[error("argon2: {0}")]
struct HashError(String);

fn hash_error(err: impl std::fmt::Display) -> AuthError {
    AuthError::internal(HashError(err.to_string()))
}

#[derive(Clone)]
pub struct PasswordHasher {
    params: Params,
    jobs: SyncSender<Job>,
    /// One per hashing thread; the async side waits here, not on a blocked thread.
    permits: Arc<Semaphore>,
    /// Jobs waiting for a hashing thread, and the most that may wait: past it a call is refused
    /// at once (RESOURCE_EXHAUSTED), so a storm costs neither unbounded memory nor the deadlines
    /// of everyone queued behind it.
    waiting: Arc<AtomicUsize>,
    max_waiting: usize,
    /// A hash of a random password with the current parameters, made on first need: unknown
    /// usernames are verified against it so they cost the same time as a wrong password.
    dummy_hash: Arc<OnceCell<Arc<str>>>,
    metrics: Arc<Metrics>,
}

impl PasswordHasher {
    pub fn new(
        profile: HashProfile,
        concurrency: usize,
        max_waiting: usize,
        metrics: Arc<Metrics>,
    ) -> Result<Self, AuthError> {
        let params = match profile {
            HashProfile::Owasp => Params::new(19_456, 2, 1, Some(OUTPUT_BYTES)),
            HashProfile::Test => Params::new(Params::MIN_M_COST, 1, 1, Some(OUTPUT_BYTES)),
        }
        .map_err(hash_error)?;
        let concurrency = concurrency.max(1);
        // Capacity = threads: a job is only sent with a permit, so sending never blocks.
        let (jobs, queue) = sync_channel::<Job>(concurrency);
        let queue = Arc::new(Mutex::new(queue));
        for index in 0..concurrency {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{index}"))
                .spawn(move || hashing_thread(&queue))
                .map_err(hash_error)?;
        }
        let permits = Arc::new(Semaphore::new(concurrency));
        Ok(Self { params, jobs, permits, waiting: Arc::default(), max_waiting, dummy_hash: Arc::default(), metrics })
    }

    /// A PHC string (`$argon2id$v=19$m=…`) for a new password.
    pub async fn hash(&self, password: SecretString) -> Result<String, AuthError> {
        let params = self.params.clone();
        self.run_bounded(move |memory| hash_with(&params, password.expose_secret().as_bytes(), memory))
            .instrument(hashing_span("argon2 hash"))
            .await
    }

    /// Whether `password` matches `stored` (a PHC string). With no stored hash (unknown user)
    /// the dummy hash is checked instead and the answer is always `false`.
    pub async fn verify(&self, password: SecretString, stored: Option<String>) -> Result<bool, AuthError> {
        let known_user = stored.is_some();
        let phc: Arc<str> = match stored {
            Some(stored) => Arc::from(stored),
            None => self.dummy_hash().await?,
        };
        let matched = self
            .run_bounded(move |memory| verify_with(&phc, password.expose_secret().as_bytes(), memory))
            .instrument(hashing_span("argon2 verify"))
            .await?;
        Ok(matched && known_user)
    }

    async fn dummy_hash(&self) -> Result<Arc<str>, AuthError> {
        let dummy = self
            .dummy_hash
            .get_or_try_init(|| async {
                let password = SecretString::from(uuid::Uuid::new_v4().to_string());
                self.hash(password).await.map(Arc::from)
            })
            .await?;
        Ok(dummy.clone())
    }

    /// Queues for a hashing thread, unless `max_waiting` jobs already wait.
    async fn wait_for_permit(&self) -> Result<tokio::sync::OwnedSemaphorePermit, AuthError> {
        let Some(_place) = QueuePlace::take(&self.waiting, self.max_waiting, self.metrics.hash_queue().0) else {
            self.metrics.hash_refused();
            return Err(AuthError::Overloaded { retry_after_seconds: 1 });
        };
        self.permits.clone().acquire_owned().await.map_err(AuthError::internal)
    }

    async fn run_bounded<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Vec<Block>) -> Result<T, AuthError> + Send + 'static,
    ) -> Result<T, AuthError> {
        let permit = match self.permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => self.wait_for_permit().await?,
        };
        let running = self.metrics.hash_queue().1;
        let (reply, answer) = oneshot::channel();
        let running = running.clone();
        // The permit travels with the job: if the caller goes away mid-hash, the slot stays
        // taken until the thread is really free.
        let job: Job = Box::new(move |memory| {
            running.inc();
            let result = work(memory);
            running.dec();
            drop(permit);
            let _ = reply.send(result);
        });
        self.jobs.send(job).map_err(|_| hash_error("hashing threads stopped"))?;
        answer.await.map_err(|_| hash_error("hashing thread dropped the job"))?
    }
}

/// The span of one hashing job, from joining the queue to the answer: what a login waits for
/// argon2. Named by the operation alone; none outside a span.
fn hashing_span(operation: &'static str) -> tracing::Span {
    if tracing::Span::current().is_none() {
        return tracing::Span::none();
    }
    tracing::info_span!("argon2", otel.name = operation)
}

/// A place in the hashing queue, given back when dropped: also when the caller goes away while
/// waiting, so cancelled calls cannot leak places.
struct QueuePlace<'a> {
    waiting: &'a AtomicUsize,
    gauge: &'a prometheus_client::metrics::gauge::Gauge,
}

impl<'a> QueuePlace<'a> {
    fn take(
        waiting: &'a AtomicUsize,
        max_waiting: usize,
        gauge: &'a prometheus_client::metrics::gauge::Gauge,
    ) -> Option<Self> {
        waiting.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| (n < max_waiting).then_some(n + 1)).ok()?;
        gauge.inc();
        Some(Self { waiting, gauge })
    }
}

impl Drop for QueuePlace<'_> {
    fn drop(&mut self) {
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        self.gauge.dec();
    }
}

/// Runs jobs until the service goes away. The memory is allocated by the first job and kept:
/// an idle service holds none of it.
fn hashing_thread(queue: &Mutex<Receiver<Job>>) {
    lower_own_priority();
    let mut memory = Vec::new();
    loop {
        let job = match queue.lock() {
            Ok(queue) => queue.recv(),
            Err(_) => return,
        };
        match job {
            Ok(job) => job(&mut memory),
            Err(_) => return, // every sender is gone: the service is shutting down
        }
    }
}

/// Sets the calling thread's nice value to [`HASHING_NICE`]. On Linux `setpriority` on a thread
/// id applies to that thread alone. Failing only costs latency under load, so it is logged once
/// per thread and hashing goes on.
fn lower_own_priority() {
    let thread = rustix::thread::gettid();
    if let Err(err) = rustix::process::setpriority_process(Some(thread), HASHING_NICE) {
        tracing::warn!(error = %err, "could not lower the hashing thread's priority");
    }
}

/// Makes sure `memory` holds `blocks` blocks (a stored hash may use more than the profile).
fn memory_for(memory: &mut Vec<Block>, blocks: usize) -> &mut [Block] {
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    &mut memory[..blocks]
}

fn hash_with(params: &Params, password: &[u8], memory: &mut Vec<Block>) -> Result<String, AuthError> {
    let salt = argon2::password_hash::generate_salt();
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let mut output = [0u8; OUTPUT_BYTES];
    argon2
        .hash_password_into_with_memory(password, &salt, &mut output, memory_for(memory, params.block_count()))
        .map_err(hash_error)?;
    let phc = PasswordHash {
        algorithm: ARGON2ID_IDENT,
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(hash_error)?,
        salt: Some(Salt::new(&salt).map_err(hash_error)?),
        hash: Some(Output::new(&output).map_err(hash_error)?),
    };
    Ok(phc.to_string())
}

fn verify_with(phc: &str, password: &[u8], memory: &mut Vec<Block>) -> Result<bool, AuthError> {
    let stored = PasswordHash::new(phc).map_err(hash_error)?;
    let (Some(salt), Some(expected)) = (&stored.salt, &stored.hash) else {
        return Err(hash_error("stored hash has no salt or output"));
    };
    let algorithm = Algorithm::try_from(stored.algorithm.as_str()).map_err(hash_error)?;
    let version = stored.version.map(Version::try_from).transpose().map_err(hash_error)?.unwrap_or_default();
    // Includes the output length of the stored hash.
    let params = Params::try_from(&stored).map_err(hash_error)?;
    let mut output = vec![0u8; expected.len()];
    Argon2::new(algorithm, version, params.clone())
        .hash_password_into_with_memory(password, salt.as_ref(), &mut output, memory_for(memory, params.block_count()))
        .map_err(hash_error)?;
    // Output's equality is constant-time.
    Ok(Output::new(&output).map_err(hash_error)? == *expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(text: &str) -> SecretString {
        SecretString::from(text.to_owned())
    }

    #[tokio::test]
    async fn hashing_threads_run_below_the_callers_priority() {
        let hasher = PasswordHasher::new(HashProfile::Test, 1, 8, Default::default()).expect("hasher");
        let caller = rustix::process::getpriority_process(None).expect("caller's nice");
        // getpriority(PRIO_PROCESS, 0) reads the calling thread on Linux: here, a hashing thread.
        let hashing = hasher
            .run_bounded(|_memory| Ok(rustix::process::getpriority_process(None).expect("thread's nice")))
            .await
            .expect("job");
        assert!(hashing >= HASHING_NICE.max(caller), "hashing thread at nice {hashing}, caller at {caller}");
        assert_eq!(rustix::process::getpriority_process(None).expect("nice"), caller, "only the hashing thread moved");
    }

    #[tokio::test]
    async fn owasp_profile_writes_the_owasp_parameters() {
        let hasher = PasswordHasher::new(HashProfile::Owasp, 1, 8, Default::default()).expect("hasher");
        let phc = hasher.hash(secret("correct horse")).await.expect("ok");
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
    }

    #[tokio::test]
    async fn verifies_right_and_wrong_passwords_and_unknown_users() {
        let hasher = PasswordHasher::new(HashProfile::Test, 2, 8, Default::default()).expect("ok");
        let phc = hasher.hash(secret("correct horse")).await.expect("ok");
        assert!(hasher.verify(secret("correct horse"), Some(phc.clone())).await.expect("verify"));
        assert!(!hasher.verify(secret("wrong horse"), Some(phc)).await.expect("verify"));
        assert!(!hasher.verify(secret("anything"), None).await.expect("verify"));
    }

    #[tokio::test]
    async fn hashes_interoperate_with_the_argon2_crate_s_own_phc_api() {
        use argon2::{PasswordHasher as _, PasswordVerifier as _};
        let hasher = PasswordHasher::new(HashProfile::Test, 1, 8, Default::default()).expect("ok");
        let ours = hasher.hash(secret("correct horse")).await.expect("ok");
        let reference = Argon2::default();
        assert!(reference.verify_password(b"correct horse", ours.as_str()).is_ok(), "{ours}");
        assert!(reference.verify_password(b"wrong horse", ours.as_str()).is_err());
        // A hash written by the crate's API (other parameters) verifies here too.
        let theirs = Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(16, 1, 1, None).expect("params"))
            .hash_password(b"correct horse")
            .expect("hash")
            .to_string();
        assert!(hasher.verify(secret("correct horse"), Some(theirs.clone())).await.expect("verify"));
        assert!(!hasher.verify(secret("wrong horse"), Some(theirs)).await.expect("verify"));
    }

    #[tokio::test]
    async fn a_corrupt_stored_hash_is_an_error_not_a_match() {
        let hasher = PasswordHasher::new(HashProfile::Test, 1, 8, Default::default()).expect("ok");
        let result = hasher.verify(secret("x"), Some("not-a-phc-string".into())).await;
        assert!(matches!(result, Err(AuthError::Internal(_))));
    }
}
