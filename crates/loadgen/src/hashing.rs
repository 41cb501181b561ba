//! The time of one argon2id hash at the service's OWASP parameters, measured in this process
//! on this machine. Login's ceiling follows from it: `cores ÷ hash time` logins per second.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use argon2::{Algorithm, Argon2, Params, Version};

/// auth-svc's `owasp` profile: m = 19456 KiB, t = 2, p = 1.
pub const MEMORY_KIB: u32 = 19_456;
const TIME_COST: u32 = 2;
const PARALLELISM: u32 = 1;

/// The fastest and the median of `samples` hashes, in wall time.
#[derive(Debug, Clone, Copy)]
pub struct HashTime {
    /// The closest wall-time estimate of one hash's CPU cost on a shared machine: at least one
    /// sample usually runs without another process on its core.
    pub fastest: Duration,
    pub median: Duration,
}

/// Times `samples` hashes (after one untimed hash that warms caches and the allocator), one
/// after another on a blocking thread so the runtime stays free.
pub async fn time_hashes(samples: usize) -> anyhow::Result<HashTime> {
    tokio::task::spawn_blocking(move || {
        let params = Params::new(MEMORY_KIB, TIME_COST, PARALLELISM, Some(32)).context("argon2 parameters")?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let mut output = [0u8; 32];
        let mut hash = || {
            // The raw hash, as in a login's verification, without PHC encoding around it.
            argon2
                .hash_password_into(b"bench-password-1234", b"a-sixteen-b-salt", &mut output)
                .map_err(|e| anyhow::anyhow!("argon2: {e}"))
        };
        hash()?;
        let mut times = Vec::with_capacity(samples.max(1));
        for _ in 0..samples.max(1) {
            let start = Instant::now();
            hash()?;
            times.push(start.elapsed());
        }
        times.sort();
        Ok(HashTime { fastest: times[0], median: times[times.len() / 2] })
    })
    .await
    .context("hashing thread")?
}
