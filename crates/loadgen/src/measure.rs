//! The measuring loops: workers that each own one caller and one HDR histogram, run for a fixed
//! time, and are merged into one [`Measurement`].
//!
//! Two shapes: a closed loop (each worker sends its next request as soon as the previous one
//! answers; throughput tests) and a paced loop (each worker sends on a fixed schedule, and the
//! latency counts from the scheduled send time, so a stalled server cannot hide its stall by
//! slowing the sender down — "coordinated omission").

use std::{
    future::Future,
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;
use tokio::{task::JoinSet, time::MissedTickBehavior};

/// Latencies are recorded in microseconds, up to a minute, with 3 significant digits.
const HIGHEST_MICROS: u64 = 60_000_000;

/// One kind of request, with whatever state its worker keeps between requests (a connection,
/// a token to rotate). An `Err` is a failed request; its text is shown once per scenario.
pub trait Call: Send + 'static {
    fn call(&mut self) -> impl Future<Output = Result<(), String>> + Send;
}

/// What a scenario measured, merged over its workers.
pub struct Measurement {
    /// Latencies of the successful requests, in microseconds.
    pub latency: Histogram<u64>,
    pub ok: u64,
    pub errors: u64,
    /// From the end of the warm-up until the last worker's last answer.
    pub elapsed: Duration,
    /// The first error seen, to tell "connection refused" from "UNAUTHENTICATED".
    pub first_error: Option<String>,
}

impl Measurement {
    fn empty() -> Self {
        Self { latency: new_histogram(), ok: 0, errors: 0, elapsed: Duration::ZERO, first_error: None }
    }

    fn merge(&mut self, other: Self) {
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.latency.add(&other.latency);
        self.ok += other.ok;
        self.errors += other.errors;
        self.elapsed = self.elapsed.max(other.elapsed);
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    /// Successful requests per second.
    pub fn rate(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds > 0.0 { self.ok as f64 / seconds } else { 0.0 }
    }

    /// The latency at `quantile` (0..=1) in milliseconds; `None` without a successful request.
    pub fn latency_ms(&self, quantile: f64) -> Option<f64> {
        (self.ok > 0).then(|| self.latency.value_at_quantile(quantile) as f64 / 1000.0)
    }
}

/// What the table shows of one scenario, whichever tool measured it.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub ok: u64,
    pub errors: u64,
    /// Successful requests per second.
    pub rate: f64,
    /// Latency quantiles in milliseconds (p50, p99, p99.9); `None` without a success.
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub p999_ms: Option<f64>,
    pub first_error: Option<String>,
}

impl From<&Measurement> for Summary {
    fn from(m: &Measurement) -> Self {
        Self {
            ok: m.ok,
            errors: m.errors,
            rate: m.rate(),
            p50_ms: m.latency_ms(0.5),
            p99_ms: m.latency_ms(0.99),
            p999_ms: m.latency_ms(0.999),
            first_error: m.first_error.clone(),
        }
    }
}

fn new_histogram() -> Histogram<u64> {
    #[allow(clippy::expect_used)] // constant, valid bounds: 1 µs .. 60 s at 3 digits
    Histogram::new_with_bounds(1, HIGHEST_MICROS, 3).expect("valid histogram bounds")
}

/// When the run starts measuring and when workers stop sending.
#[derive(Clone, Copy)]
pub struct Window {
    pub warmup: Duration,
    pub duration: Duration,
}

/// Each worker sends, waits for the answer, and sends again, until the window closes.
/// Requests answered during the warm-up are not counted.
pub async fn closed_loop<C: Call>(callers: Vec<C>, window: Window) -> Measurement {
    let measure_from = Instant::now() + window.warmup;
    let stop_at = measure_from + window.duration;
    let mut workers = JoinSet::new();
    for mut caller in callers {
        workers.spawn(async move {
            let mut measurement = Measurement::empty();
            loop {
                let sent = Instant::now();
                if sent >= stop_at {
                    break;
                }
                let result = caller.call().await;
                if sent >= measure_from {
                    measurement.record(sent, result);
                }
            }
            measurement.elapsed = Instant::now().saturating_duration_since(measure_from);
            measurement
        });
    }
    join(workers).await
}

/// Each worker sends one request every `interval` (no warm-up), and latency counts from the
/// moment the request was due, so queueing in the sender counts as the server's delay.
pub async fn paced<C: Call>(callers: Vec<C>, interval: Duration, duration: Duration) -> Measurement {
    let start = Instant::now();
    let stop_at = start + duration;
    let mut workers = JoinSet::new();
    for (index, mut caller) in callers.into_iter().enumerate() {
        // Spread the workers over one interval so they do not all fire at once.
        let offset = interval.mul_f64(index as f64 / 8.0).min(interval);
        workers.spawn(async move {
            let mut measurement = Measurement::empty();
            let mut ticks = tokio::time::interval_at((start + offset).into(), interval);
            ticks.set_missed_tick_behavior(MissedTickBehavior::Burst);
            loop {
                let due = ticks.tick().await.into_std();
                if due >= stop_at {
                    break;
                }
                let result = caller.call().await;
                measurement.record(due, result);
            }
            measurement.elapsed = start.elapsed();
            measurement
        });
    }
    join(workers).await
}

impl Measurement {
    fn record(&mut self, sent: Instant, result: Result<(), String>) {
        match result {
            Ok(()) => {
                let micros = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
                self.latency.saturating_record(micros.clamp(1, HIGHEST_MICROS));
                self.ok += 1;
            }
            Err(error) => {
                self.errors += 1;
                self.first_error.get_or_insert(error);
            }
        }
    }
}

async fn join(mut workers: JoinSet<Measurement>) -> Measurement {
    let mut total = Measurement::empty();
    while let Some(result) = workers.join_next().await {
        match result {
            Ok(measurement) => total.merge(measurement),
            Err(panic) => {
                total.errors += 1;
                total.first_error.get_or_insert_with(|| format!("worker failed: {panic}"));
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Alternating(u64);

    impl Call for Alternating {
        async fn call(&mut self) -> Result<(), String> {
            self.0 += 1;
            tokio::time::sleep(Duration::from_millis(1)).await;
            if self.0.is_multiple_of(2) { Err(format!("even {}", self.0)) } else { Ok(()) }
        }
    }

    #[tokio::test]
    async fn closed_loop_counts_successes_and_errors_of_every_worker() {
        let window = Window { warmup: Duration::ZERO, duration: Duration::from_millis(50) };
        let measurement = closed_loop(vec![Alternating(0), Alternating(0)], window).await;
        // Each worker alternates ok, error, ok, …: at most one more success than errors each.
        assert!(measurement.ok >= 2);
        assert!(measurement.ok - measurement.errors <= 2);
        if measurement.errors > 0 {
            assert!(measurement.first_error.as_deref().is_some_and(|e| e.starts_with("even")));
        }
        assert!(measurement.latency_ms(0.5).is_some_and(|ms| ms >= 1.0));
        assert!(measurement.rate() > 0.0);
    }

    #[tokio::test]
    async fn paced_loop_sends_every_due_request_even_when_late() {
        // Missed ticks burst, so the count is the schedule's, however slow the machine is.
        let measurement = paced(vec![Alternating(0)], Duration::from_millis(10), Duration::from_millis(100)).await;
        assert_eq!((measurement.ok, measurement.errors), (5, 5));
    }
}
