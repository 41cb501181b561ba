//! The background loop both database polls run (revoked sessions, changed accounts): a poll
//! every `interval`, each bounded by `deadline` (a hung connection must not hold the loop past
//! the point where trust runs out), counted by outcome, and logged once per failing stretch.

use std::{future::Future, time::Duration};

use crate::error::{AuthError, error_chain};

/// A change is picked up again by a poll that starts up to this long after its time: a write
/// takes the database's clock when it runs and becomes visible only when it commits (and a new
/// account takes this process's clock).
pub const COMMIT_LAG_OVERLAP_SECONDS: i64 = 5;

/// Where a poll starts reading: at the last successful read less the commit-lag overlap, but
/// never before `oldest_needed`; from `oldest_needed` when no poll has succeeded yet.
pub fn read_since(last_read_at: Option<i64>, oldest_needed: i64) -> i64 {
    match last_read_at {
        Some(last) => last.saturating_sub(COMMIT_LAG_OVERLAP_SECONDS).max(oldest_needed),
        None => oldest_needed,
    }
}

/// What one poll loop is and what a failing stretch means for callers.
pub struct PollLoop {
    /// Names the poll in its log lines ("revocation", "user cache").
    pub what: &'static str,
    pub interval: Duration,
    pub deadline: Duration,
    /// Said once when polls start failing: what callers get meanwhile.
    pub meanwhile: &'static str,
}

impl PollLoop {
    /// Runs `poll` until the task is dropped or aborted; `record` gets "ok" or "failed" for each.
    pub async fn run<F, Fut>(self, mut poll: F, record: impl Fn(&'static str))
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<usize, AuthError>>,
    {
        let mut ticks = tokio::time::interval(self.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            ticks.tick().await;
            let outcome = match tokio::time::timeout(self.deadline, poll()).await {
                Ok(outcome) => outcome,
                Err(_) => Err(AuthError::Unavailable(format!("{} poll timed out", self.what).into())),
            };
            match outcome {
                Ok(_) => {
                    if std::mem::take(&mut failing) {
                        tracing::info!("{} poll succeeds again", self.what);
                    }
                    record("ok");
                }
                Err(err) => {
                    record("failed");
                    if !std::mem::replace(&mut failing, true) {
                        tracing::warn!(error = %error_chain(&err), "{} poll failed; {}", self.what, self.meanwhile);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poll_reads_from_its_last_read_less_the_overlap_never_before_what_is_needed() {
        assert_eq!(read_since(None, 100), 100, "the first poll reads all that is needed");
        assert_eq!(read_since(Some(1_000), 100), 1_000 - COMMIT_LAG_OVERLAP_SECONDS);
        assert_eq!(read_since(Some(102), 100), 100, "never before the oldest needed");
    }
}
