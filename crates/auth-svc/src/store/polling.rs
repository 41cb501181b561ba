//! The background loop both database polls run (revoked sessions, changed accounts): a poll
//! every `interval`, each bounded by `deadline` (a hung connection must not hold the loop past
//! the point where trust runs out), counted by outcome, and logged once per failing stretch.

use std::{future::Future, time::Duration};

use crate::error::{AuthError, error_chain};

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
