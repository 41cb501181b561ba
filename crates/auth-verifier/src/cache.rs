//! The cached key set, and the rules for asking the gateway again:
//!
//! - lazily on first use (or at start through `Verifier::prefetch`);
//! - when the set is older than its freshness (the response's `max-age`, clamped); one request
//!   refreshes while the others go on verifying with the stale set;
//! - on a `kid` the set does not contain, at most once per `min_refresh_interval`, so a flood
//!   of made-up kids cannot turn into a flood of fetches;
//! - after a failed fetch, not again for `min_refresh_interval`; the cached keys stay in use.
//!
//! Fetches are single-flight: they happen under one async mutex, and a request that waited
//! for it uses the set the fetch it waited for produced instead of fetching again.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use crate::VerifyError;
use crate::fetch::{self, fetch_jwks};
use crate::jwks::{KeySet, PublishedKey};

pub(crate) struct KeyCache {
    client: reqwest::Client,
    url: reqwest::Url,
    min_refresh_interval: Duration,
    current: RwLock<Option<Arc<Snapshot>>>,
    refresh: tokio::sync::Mutex<RefreshLog>,
}

/// One fetched key set.
struct Snapshot {
    keys: KeySet,
    /// Counts fetches, so a request can tell whether the set changed while it waited.
    generation: u64,
    stale_at: Instant,
}

/// What the refresh mutex guards: when fetches happened, to rate-limit the next one.
#[derive(Default)]
struct RefreshLog {
    generation: u64,
    last_failure: Option<Instant>,
    last_unknown_kid_fetch: Option<Instant>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Trigger {
    /// No set yet, or the set is past its freshness.
    Expired,
    /// The set does not contain the token's `kid`.
    UnknownKid,
}

impl KeyCache {
    pub(crate) fn new(client: reqwest::Client, url: reqwest::Url, min_refresh_interval: Duration) -> Self {
        Self {
            client,
            url,
            min_refresh_interval,
            current: RwLock::new(None),
            refresh: tokio::sync::Mutex::new(RefreshLog::default()),
        }
    }

    /// The key published under `kid`, fetching the set if the rules above allow it.
    pub(crate) async fn key(&self, kid: &str) -> Result<PublishedKey, VerifyError> {
        let seen = self.snapshot();
        let seen_generation = seen.as_ref().map(|snapshot| snapshot.generation);
        let snapshot = self.usable_snapshot(seen).await?;
        if let Some(key) = snapshot.keys.get(kid) {
            return Ok(key.clone());
        }
        if Some(snapshot.generation) != seen_generation {
            // This request just got the set from the gateway; asking again would not help.
            return Err(VerifyError::UnknownKey);
        }
        // A new signing key may have been published since the last fetch.
        let mut log = self.refresh.lock().await;
        let snapshot = self.refresh_locked(&mut log, Some(snapshot.generation), Trigger::UnknownKid).await;
        snapshot.and_then(|snapshot| snapshot.keys.get(kid).cloned()).ok_or(VerifyError::UnknownKey)
    }

    /// Fetches now, whatever the rate limits say, and reports whether it worked.
    pub(crate) async fn prefetch(&self) -> Result<(), VerifyError> {
        let mut log = self.refresh.lock().await;
        self.fetch_locked(&mut log, Instant::now()).await.map(drop).ok_or(VerifyError::KeysUnavailable)
    }

    /// `current` if it is fresh, else what a refresh gives (waiting for it only when there is
    /// no set at all).
    async fn usable_snapshot(&self, current: Option<Arc<Snapshot>>) -> Result<Arc<Snapshot>, VerifyError> {
        match current {
            Some(snapshot) if Instant::now() < snapshot.stale_at => Ok(snapshot),
            Some(stale) => {
                // Someone is already fetching: verify with what we have rather than queue up.
                let Ok(mut log) = self.refresh.try_lock() else { return Ok(stale) };
                let seen = Some(stale.generation);
                Ok(self.refresh_locked(&mut log, seen, Trigger::Expired).await.unwrap_or(stale))
            }
            None => {
                let mut log = self.refresh.lock().await;
                self.refresh_locked(&mut log, None, Trigger::Expired).await.ok_or(VerifyError::KeysUnavailable)
            }
        }
    }

    /// Fetches unless the set changed since the caller looked (`seen`) or a rate limit says
    /// no; returns the set to use, which is the old one when no fetch happened or it failed.
    async fn refresh_locked(&self, log: &mut RefreshLog, seen: Option<u64>, trigger: Trigger) -> Option<Arc<Snapshot>> {
        let current = self.snapshot();
        if current.as_ref().map(|snapshot| snapshot.generation) != seen {
            return current;
        }
        let now = Instant::now();
        let last = match trigger {
            Trigger::Expired => log.last_failure,
            Trigger::UnknownKid => log.last_unknown_kid_fetch,
        };
        if last.is_some_and(|at| now.duration_since(at) < self.min_refresh_interval) {
            return current;
        }
        if trigger == Trigger::UnknownKid {
            log.last_unknown_kid_fetch = Some(now);
        }
        self.fetch_locked(log, now).await.or(current)
    }

    async fn fetch_locked(&self, log: &mut RefreshLog, now: Instant) -> Option<Arc<Snapshot>> {
        match fetch_jwks(&self.client, &self.url).await {
            Ok(fetched) => {
                let fresh_for = fetch::freshness(fetched.max_age, self.min_refresh_interval);
                if fetched.keys.is_empty() {
                    tracing::warn!(url = %self.url, "the JWKS has no EdDSA or ES256 signing key; every token will be refused");
                }
                tracing::debug!(url = %self.url, keys = fetched.keys.len(), ?fresh_for, "fetched the JWKS");
                log.generation += 1;
                log.last_failure = None;
                let snapshot =
                    Arc::new(Snapshot { keys: fetched.keys, generation: log.generation, stale_at: now + fresh_for });
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::clone(&snapshot));
                Some(snapshot)
            }
            Err(error) => {
                let cached = self.snapshot().is_some();
                tracing::warn!(url = %self.url, error = %error.chain(), cached, "cannot fetch the JWKS");
                log.last_failure = Some(now);
                None
            }
        }
    }

    fn snapshot(&self) -> Option<Arc<Snapshot>> {
        self.current.read().unwrap_or_else(PoisonError::into_inner).clone()
    }
}
