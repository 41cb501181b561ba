//! Issue 7's targets, checked against one run's numbers: each line says the goal, what was
//! measured, and whether it is met or by how much it is missed. Ratios within one run cancel
//! most of the machine's noise; absolute numbers (rates, RSS, start-up) do not.

use std::{fmt::Write as _, time::Duration};

use crate::{
    hashing,
    measure::Measurement,
    memory::Mib,
    report::{millis, thousands},
    scenarios::{POSTGRES_REFRESH_ROW, Row, STORM_PROBE_ROW, Scenario, ServerMemory},
};

/// Issue 7's reference: a single-worker FastAPI app serving `/protected` on this machine.
const FASTAPI_PROTECTED_PER_SECOND: f64 = 3_700.0;
/// "Under 20 MB", in KiB.
const IDLE_RSS_LIMIT_KIB: f64 = 20_000_000.0 / 1024.0;
/// The "small base" allowed on top of idle RSS and the hashing memory during a login storm.
pub const STORM_BASE_KIB: u64 = 8 * 1024;

/// Everything the targets are judged on, from one run of `loadgen all`.
pub struct Evidence<'a> {
    pub rows: &'a [Row],
    pub hash_time: Duration,
    pub cores: usize,
    /// auth-svc's `password.max_concurrent_hashes` in force (cores by default).
    pub hash_concurrency: usize,
    /// Server memory before any load.
    pub idle: ServerMemory,
    /// Server memory at the end; its `peak_kib` (VmHWM) is the peak of the whole run.
    pub settled: ServerMemory,
    /// Exec → SERVING on an existing SQLite database, measured by the caller.
    pub startup_ms: Option<f64>,
}

enum Goal {
    AtLeast(f64),
    Below(f64),
}

impl Evidence<'_> {
    fn find(&self, name: &str) -> Option<&Measurement> {
        self.rows.iter().find(|row| row.scenario.starts_with(name)).map(|row| &row.measurement)
    }

    fn rate(&self, scenario: Scenario) -> Option<f64> {
        self.find(scenario.name()).map(Measurement::rate)
    }

    /// The markdown table of targets.
    pub fn table(&self) -> String {
        let mut out = String::from("| # | target | goal | measured | verdict |\n|---|---|---|---|---|\n");
        let mut line = |number: &str, target: &str, goal: Goal, measured: Option<f64>, shown: String| {
            let (sign, value) = match goal {
                Goal::AtLeast(value) => ("≥", value),
                Goal::Below(value) => ("<", value),
            };
            let value = match value {
                v if v >= 1000.0 => thousands(v),
                v if v.fract() == 0.0 => format!("{v:.0}"),
                v => format!("{v:.1}"),
            };
            let goal_text = format!("{sign} {value}");
            let _ = writeln!(out, "| {number} | {target} | {goal_text} | {shown} | {} |", verdict(measured, &goal));
        };

        // A call's throughput as a share of its transport's floor, measured in the same run.
        let against_floor = [
            ("1", "gRPC GetUserInfo ÷ health-check throughput, %", 60.0, Scenario::GrpcUserInfo, Scenario::GrpcHealth),
            (
                "2a",
                "REST /user/info ÷ gateway /healthz throughput, %",
                50.0,
                Scenario::RestUserInfo,
                Scenario::RestHealthz,
            ),
        ];
        for (number, target, goal, call, floor) in against_floor {
            let (call, floor) = (self.rate(call), self.rate(floor));
            let ratio = percent(call, floor);
            let shown = format!("{} ÷ {} = {}", rate(call), rate(floor), pct(ratio));
            line(number, target, Goal::AtLeast(goal), ratio, shown);
        }
        let rest_info = self.rate(Scenario::RestUserInfo);
        line(
            "2b",
            "REST /user/info, requests/s (5 × FastAPI's 3,700)",
            Goal::AtLeast(5.0 * FASTAPI_PROTECTED_PER_SECOND),
            rest_info,
            rate(rest_info),
        );

        let ceiling = self.cores as f64 / self.hash_time.as_secs_f64().max(1e-9);
        let login = self.rate(Scenario::GrpcLogin);
        let ratio = login.map(|login| 100.0 * login / ceiling);
        line(
            "3a",
            "Login ÷ (cores ÷ one argon2 hash, the fastest timed), %",
            Goal::AtLeast(80.0),
            ratio,
            format!(
                "{} ÷ ({} ÷ {} ms = {}) = {}",
                rate(login),
                self.cores,
                millis(Some(self.hash_time.as_secs_f64() * 1000.0)),
                thousands(ceiling),
                pct(ratio)
            ),
        );
        let probe_p99 = self.find(STORM_PROBE_ROW).and_then(|m| m.latency_ms(0.99));
        line("3b", "GetUserInfo p99 during the login storm, ms", Goal::Below(10.0), probe_p99, millis(probe_p99));

        let refresh = self.rate(Scenario::GrpcRefresh);
        line("4a", "Refresh on SQLite, requests/s", Goal::AtLeast(1000.0), refresh, rate(refresh));
        let refresh_pg = self.find(POSTGRES_REFRESH_ROW).map(Measurement::rate);
        line("4b", "Refresh on PostgreSQL, requests/s", Goal::AtLeast(1000.0), refresh_pg, rate(refresh_pg));

        let idle_auth = self.idle.auth.map(|m| m.rss_kib as f64);
        let idle_gateway = self.idle.gateway.map(|m| m.rss_kib as f64);
        let limit_mib = IDLE_RSS_LIMIT_KIB / 1024.0;
        for (number, server, idle_kib) in [("5a", "auth-svc", idle_auth), ("5b", "gateway", idle_gateway)] {
            let target = format!("{server} idle RSS, MiB (20 MB)");
            line(number, &target, Goal::Below(limit_mib), idle_kib.map(|k| k / 1024.0), mib(idle_kib));
        }
        let peak = self.settled.auth.map(|m| m.peak_kib);
        let bound = self
            .idle
            .auth
            .map(|idle| idle.rss_kib + self.hash_concurrency as u64 * u64::from(hashing::MEMORY_KIB) + STORM_BASE_KIB);
        line(
            "5c",
            "auth-svc peak RSS under login load ≤ idle + hashes × 19 MiB + 8 MiB, MiB",
            Goal::Below(bound.map_or(0.0, |kib| kib as f64 / 1024.0)),
            peak.filter(|_| bound.is_some()).map(|kib| kib as f64 / 1024.0),
            format!(
                "peak {} (bound: {} idle + {} × 19 + 8 = {})",
                mib(peak.map(|k| k as f64)),
                mib(idle_auth),
                self.hash_concurrency,
                mib(bound.map(|k| k as f64))
            ),
        );
        line(
            "6",
            "start-up, exec → SERVING on an existing SQLite database, ms",
            Goal::Below(250.0),
            self.startup_ms,
            millis(self.startup_ms),
        );
        out
    }
}

fn verdict(measured: Option<f64>, goal: &Goal) -> String {
    let Some(measured) = measured.filter(|m| m.is_finite()) else {
        return "not measured".to_owned();
    };
    match *goal {
        Goal::AtLeast(goal) if measured >= goal => format!("met (+{:.0}%)", 100.0 * (measured - goal) / goal),
        Goal::AtLeast(goal) => format!("**missed** by {:.0}%", 100.0 * (goal - measured) / goal),
        Goal::Below(goal) if measured < goal => format!("met ({:.0}% below)", 100.0 * (goal - measured) / goal),
        Goal::Below(goal) => format!("**missed** by {:.0}%", 100.0 * (measured - goal) / goal),
    }
}

fn percent(part: Option<f64>, whole: Option<f64>) -> Option<f64> {
    match (part, whole) {
        (Some(part), Some(whole)) if whole > 0.0 => Some(100.0 * part / whole),
        _ => None,
    }
}

fn pct(value: Option<f64>) -> String {
    value.map_or_else(|| "–".to_owned(), |v| format!("{v:.0}%"))
}

fn rate(value: Option<f64>) -> String {
    value.map_or_else(|| "–".to_owned(), |v| format!("{}/s", thousands(v)))
}

fn mib(kib: Option<f64>) -> String {
    kib.map_or_else(|| "–".to_owned(), |k| Mib(k as u64).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_say_met_or_by_how_much_missed() {
        assert_eq!(verdict(Some(72.0), &Goal::AtLeast(60.0)), "met (+20%)");
        assert_eq!(verdict(Some(30.0), &Goal::AtLeast(60.0)), "**missed** by 50%");
        assert_eq!(verdict(Some(5.0), &Goal::Below(10.0)), "met (50% below)");
        assert_eq!(verdict(Some(15.0), &Goal::Below(10.0)), "**missed** by 50%");
        assert_eq!(verdict(None, &Goal::Below(10.0)), "not measured");
    }
}
