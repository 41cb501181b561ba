//! The cached key set, and the rules for asking the gateway again:
//!
//! - lazily on first use (or at start through `Verifier::prefetch`);
//! - when the set is older than its freshness (the response's `max-age`, clamped); one request
//!   refreshes while the others go on verifying with the stale set;
//! - on a `kid` the set does not contain, at most once per `min_refresh_interval`, so a flood
//!   of made-up kids cannot turn into a flood of fetches;
//! - after a failed fetch, not again for `min_refresh_interval` (whatever the trigger).
//!
//! While refreshes fail, a stale set stays in use for at most `max_stale` past its freshness;
//! then it is dropped, and verification answers `KeysUnavailable` until a fetch succeeds. A `kid`
//! the set lacks is `KeysUnavailable` too when the latest fetch failed: the key may be real.
//!
//! Fetches are single-flight: they happen under one async mutex, and a request that waited
//! for it uses the set the fetch it waited for produced instead of fetching again. The set is
//! only replaced or dropped under that mutex.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use crate::VerifyError;
use crate::fetch::{self, fetch_jwks};
use crate::jwks::{KeySet, PublishedKey};

pub(crate) struct KeyCache {
    client: reqwest::Client,
    url: reqwest::Url,
    min_refresh_interval: Duration,
    max_stale: Duration,
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

/// How a snapshot may be used at a given moment.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Age {
    Fresh,
    /// Past its freshness, but at most `max_stale`: used while refreshes fail.
    Stale,
    /// Stale for longer than `max_stale`: never used again.
    Expired,
}

impl Snapshot {
    fn age(&self, now: Instant, max_stale: Duration) -> Age {
        if now < self.stale_at {
            Age::Fresh
        } else if now.duration_since(self.stale_at) < max_stale {
            Age::Stale
        } else {
            Age::Expired
        }
    }
}

/// What the refresh mutex guards: when fetches happened, to rate-limit the next one.
#[derive(Default)]
struct RefreshLog {
    generation: u64,
    /// Set by a failed fetch, cleared by a successful one: `Some` means the latest fetch failed.
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
    pub(crate) fn new(
        client: reqwest::Client,
        url: reqwest::Url,
        min_refresh_interval: Duration,
        max_stale: Duration,
    ) -> Self {
        Self {
            client,
            url,
            min_refresh_interval,
            max_stale,
            current: RwLock::new(None),
            refresh: tokio::sync::Mutex::new(RefreshLog::default()),
        }
    }

    /// The key published under `kid`, fetching the set if the rules above allow it.
    pub(crate) async fn key(&self, kid: &str) -> Result<Arc<PublishedKey>, VerifyError> {
        let seen = self.snapshot();
        let seen_generation = seen.as_ref().map(|snapshot| snapshot.generation);
        let snapshot = self.usable_snapshot(seen).await?;
        if let Some(key) = snapshot.keys.get(kid) {
            return Ok(Arc::clone(key));
        }
        if Some(snapshot.generation) != seen_generation {
            // This request just got the set from the gateway; asking again would not help.
            return Err(VerifyError::UnknownKey);
        }
        // A new signing key may have been published since the last fetch.
        let mut log = self.refresh.lock().await;
        let refreshed = self.refresh_locked(&mut log, Some(snapshot.generation), Trigger::UnknownKid).await;
        if let Some(key) = self.settle_locked(&log, refreshed)?.keys.get(kid) {
            return Ok(Arc::clone(key));
        }
        if log.last_failure.is_some() {
            // The refetch failed (or was not tried because the latest fetch failed): the key
            // may have been published meanwhile, so the token may well be valid.
            return Err(VerifyError::KeysUnavailable);
        }
        Err(VerifyError::UnknownKey)
    }

    /// Fetches now, whatever the rate limits say, and reports whether it worked.
    pub(crate) async fn prefetch(&self) -> Result<(), VerifyError> {
        let mut log = self.refresh.lock().await;
        self.fetch_locked(&mut log, Instant::now()).await.map(drop).ok_or(VerifyError::KeysUnavailable)
    }

    /// `current` if it is fresh, else what a refresh gives. A stale set within `max_stale` is
    /// used while someone else refreshes or when the refresh fails; otherwise the request waits
    /// for the refresh.
    async fn usable_snapshot(&self, current: Option<Arc<Snapshot>>) -> Result<Arc<Snapshot>, VerifyError> {
        let seen = current.as_ref().map(|snapshot| snapshot.generation);
        let mut log = match current {
            Some(snapshot) => match snapshot.age(Instant::now(), self.max_stale) {
                Age::Fresh => return Ok(snapshot),
                // Someone is already fetching: verify with what we have rather than queue up.
                Age::Stale => match self.refresh.try_lock() {
                    Ok(log) => log,
                    Err(_) => return Ok(snapshot),
                },
                Age::Expired => self.refresh.lock().await,
            },
            None => self.refresh.lock().await,
        };
        let refreshed = self.refresh_locked(&mut log, seen, Trigger::Expired).await;
        self.settle_locked(&log, refreshed)
    }

    /// The set a refresh left, if it may still be used; one stale past `max_stale` is dropped.
    /// Takes the log only as proof that the caller holds the refresh mutex.
    fn settle_locked(&self, _log: &RefreshLog, snapshot: Option<Arc<Snapshot>>) -> Result<Arc<Snapshot>, VerifyError> {
        let snapshot = snapshot.ok_or(VerifyError::KeysUnavailable)?;
        let now = Instant::now();
        if snapshot.age(now, self.max_stale) != Age::Expired {
            return Ok(snapshot);
        }
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        if current.as_ref().is_some_and(|cached| cached.generation == snapshot.generation) {
            *current = None;
            tracing::error!(
                url = %self.url,
                stale_for = ?now.duration_since(snapshot.stale_at),
                max_stale = ?self.max_stale,
                "the JWKS could not be refreshed for longer than max_stale; dropped the cached keys, \
                 tokens are answered with KeysUnavailable until a fetch succeeds"
            );
        }
        Err(VerifyError::KeysUnavailable)
    }

    /// Fetches unless the set changed since the caller looked (`seen`) or a rate limit says
    /// no; returns the set to use, which is the old one when no fetch happened or it failed.
    async fn refresh_locked(&self, log: &mut RefreshLog, seen: Option<u64>, trigger: Trigger) -> Option<Arc<Snapshot>> {
        let current = self.snapshot();
        if current.as_ref().map(|snapshot| snapshot.generation) != seen {
            return current;
        }
        let now = Instant::now();
        let recent = |at: Option<Instant>| at.is_some_and(|at| now.duration_since(at) < self.min_refresh_interval);
        let limited = match trigger {
            Trigger::Expired => recent(log.last_failure),
            Trigger::UnknownKid => recent(log.last_failure) || recent(log.last_unknown_kid_fetch),
        };
        if limited {
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
                log.last_failure = Some(now);
                let cached = self.snapshot();
                let failed_at = Instant::now();
                match cached.as_ref().map(|snapshot| (snapshot, snapshot.age(failed_at, self.max_stale))) {
                    Some((snapshot, Age::Stale)) => {
                        let stale_for = failed_at.duration_since(snapshot.stale_at);
                        tracing::warn!(
                            url = %self.url,
                            error = %error.chain(),
                            ?stale_for,
                            dropped_in = ?self.max_stale.saturating_sub(stale_for),
                            "cannot refresh the JWKS; verifying with the stale cached keys"
                        );
                    }
                    _ => {
                        let cached = cached.is_some();
                        tracing::warn!(url = %self.url, error = %error.chain(), cached, "cannot fetch the JWKS");
                    }
                }
                None
            }
        }
    }

    fn snapshot(&self) -> Option<Arc<Snapshot>> {
        self.current.read().unwrap_or_else(PoisonError::into_inner).clone()
    }
}
