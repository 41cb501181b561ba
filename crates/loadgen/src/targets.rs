//! Issue 17's targets (and issue 7's that still stand), checked against one run's numbers:
//! each line says the goal, what was measured, and whether it is met or by how much it is
//! missed. Ratios within one run cancel most of the machine's noise; absolute numbers do not.

use std::{fmt::Write as _, time::Duration};

use crate::{
    hashing,
    measure::Summary,
    memory::Mib,
    report::{micros, millis, thousands},
    scenarios::{MARIADB_REFRESH_ROW, POSTGRES_REFRESH_ROW, Row, STORM_PROBE_ROW, Scenario, ServerMemory},
};

/// Refresh before issue 17 (docs/benchmarks.md, run of 2026-11-22, release build): the rates
/// target 2 doubles. MariaDB was not measured then.
const REFRESH_BEFORE_SQLITE: f64 = 1_581.0;
const REFRESH_BEFORE_POSTGRES: f64 = 994.0;
/// "Under 20 MiB", in KiB.
const IDLE_RSS_LIMIT_KIB: f64 = 20.0 * 1024.0;
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
    AtMost(f64),
    /// No bound yet: the row records the figure for the next run to beat.
    Record,
}

impl Evidence<'_> {
    fn row(&self, name: &str) -> Option<&Row> {
        self.rows.iter().find(|row| row.scenario == name || row.scenario.starts_with(&format!("{name},")))
    }

    fn find(&self, name: &str) -> Option<&Summary> {
        self.row(name).map(|row| &row.summary)
    }

    fn rate(&self, scenario: Scenario) -> Option<f64> {
        self.find(scenario.name()).map(|summary| summary.rate)
    }

    /// The markdown table of targets.
    pub fn table(&self) -> String {
        let mut out = String::from("| # | target | goal | measured | verdict |\n|---|---|---|---|---|\n");
        let mut line = |number: &str, target: &str, goal: Goal, measured: Option<f64>, shown: String| {
            let (sign, value) = match goal {
                Goal::AtLeast(value) => ("≥", value),
                Goal::Below(value) => ("<", value),
                Goal::AtMost(value) => ("≤", value),
                Goal::Record => ("", f64::NAN),
            };
            let goal_text = match value {
                v if v.is_nan() => "–".to_owned(),
                v if v >= 1000.0 => format!("{sign} {}", thousands(v)),
                v if v.fract() == 0.0 => format!("{sign} {v:.0}"),
                v => format!("{sign} {v:.1}"),
            };
            let _ = writeln!(out, "| {number} | {target} | {goal_text} | {shown} | {} |", verdict(measured, &goal));
        };

        // 1: the proxied calls as a share of the gateway's own floor, and who pays the CPU.
        let healthz = self.rate(Scenario::RestHealthz);
        let healthz_tool = self.row(Scenario::RestHealthz.name()).map_or("–", |row| row.tool.as_str());
        for (number, scenario) in [("1a", Scenario::RestProtected), ("1b", Scenario::RestUserInfo)] {
            let call = self.rate(scenario);
            let tool = self.row(scenario.name()).map_or("–", |row| row.tool.as_str());
            let ratio = percent(call, healthz);
            let target =
                format!("REST `{}` ÷ gateway `/healthz` throughput ({tool} ÷ {healthz_tool}), %", path(scenario));
            let shown = format!("{} ÷ {} = {}", rate(call), rate(healthz), pct(ratio));
            line(number, &target, Goal::AtLeast(60.0), ratio, shown);
        }
        for (number, scenario) in [("1c", Scenario::RestProtected), ("1d", Scenario::RestUserInfo)] {
            let cpu = self.row(scenario.name()).map(|row| row.cpu);
            let (gateway, auth) = (cpu.and_then(|c| c.gateway), cpu.and_then(|c| c.auth));
            let ratio = percent(gateway, auth);
            let target = format!("gateway CPU ÷ auth-svc CPU per `{}` request, %", path(scenario));
            let shown = format!("{} µs ÷ {} µs = {}", micros(gateway), micros(auth), pct(ratio));
            line(number, &target, Goal::AtMost(100.0), ratio, shown);
        }

        // 2: Refresh on each store, against twice its rate before issue 17.
        let refreshes = [
            ("2a", "SQLite", Some(REFRESH_BEFORE_SQLITE), self.rate(Scenario::GrpcRefresh)),
            ("2b", "PostgreSQL", Some(REFRESH_BEFORE_POSTGRES), self.find(POSTGRES_REFRESH_ROW).map(|s| s.rate)),
            ("2c", "MariaDB", None, self.find(MARIADB_REFRESH_ROW).map(|s| s.rate)),
        ];
        for (number, store, before, measured) in refreshes {
            let (target, goal) = match before {
                Some(before) => (
                    format!("Refresh on {store}, requests/s (2 × {} before)", thousands(before)),
                    Goal::AtLeast(2.0 * before),
                ),
                None => (format!("Refresh on {store}, requests/s (no earlier run to double)"), Goal::Record),
            };
            line(number, &target, goal, measured, rate(measured));
        }

        // 3: logins as a share of what the cores can hash, and the other calls beside them.
        let ceiling = self.cores as f64 / self.hash_time.as_secs_f64().max(1e-9);
        let login = self.rate(Scenario::GrpcLogin);
        let login_tool = self.row(Scenario::GrpcLogin.name()).map_or("–", |row| row.tool.as_str());
        let ratio = login.map(|login| 100.0 * login / ceiling);
        line(
            "3a",
            &format!("Login ({login_tool}) ÷ (cores ÷ one argon2 hash, the fastest timed), %"),
            Goal::AtLeast(90.0),
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
        let probe_p99 = self.find(STORM_PROBE_ROW).and_then(|m| m.p99_ms);
        line("3b", "GetUserInfo p99 during the login storm, ms", Goal::AtMost(5.0), probe_p99, millis(probe_p99));

        // 5: memory.
        let idle_auth = self.idle.auth.map(|m| m.rss_kib as f64);
        let idle_gateway = self.idle.gateway.map(|m| m.rss_kib as f64);
        let limit_mib = IDLE_RSS_LIMIT_KIB / 1024.0;
        for (number, server, idle_kib) in [("5a", "auth-svc", idle_auth), ("5b", "gateway", idle_gateway)] {
            let target = format!("{server} idle RSS, MiB");
            line(number, &target, Goal::Below(limit_mib), idle_kib.map(|k| k / 1024.0), mib(idle_kib));
        }
        let peak = self.settled.auth.map(|m| m.peak_kib);
        let bound = self
            .idle
            .auth
            .map(|idle| idle.rss_kib + self.hash_concurrency as u64 * u64::from(hashing::MEMORY_KIB) + STORM_BASE_KIB);
        line(
            "5c",
            "auth-svc peak RSS (VmHWM) ≤ idle + hashes × 19 MiB + 8 MiB, MiB",
            Goal::AtMost(bound.map_or(0.0, |kib| kib as f64 / 1024.0)),
            peak.filter(|_| bound.is_some()).map(|kib| kib as f64 / 1024.0),
            format!(
                "peak {} (bound: {} idle + {} × 19 + 8 = {})",
                mib(peak.map(|k| k as f64)),
                mib(idle_auth),
                self.hash_concurrency,
                mib(bound.map(|k| k as f64))
            ),
        );

        // Issue 7's, kept: the gRPC call against its transport's floor, and start-up.
        let (info, health) = (self.rate(Scenario::GrpcUserInfo), self.rate(Scenario::GrpcHealth));
        let ratio = percent(info, health);
        let shown = format!("{} ÷ {} = {}", rate(info), rate(health), pct(ratio));
        line("i7-1", "gRPC GetUserInfo ÷ health-check throughput, %", Goal::AtLeast(60.0), ratio, shown);
        line(
            "i7-6",
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
    let (met, goal) = match *goal {
        Goal::Record => return "recorded (no bound yet)".to_owned(),
        Goal::AtLeast(goal) => (measured >= goal, goal),
        Goal::Below(goal) => (measured < goal, goal),
        Goal::AtMost(goal) => (measured <= goal, goal),
    };
    let off = 100.0 * (measured - goal).abs() / goal.abs().max(1e-9);
    match (met, measured >= goal) {
        (true, true) => format!("met (+{off:.0}%)"),
        (true, false) => format!("met ({off:.0}% below)"),
        (false, _) => format!("**missed** by {off:.0}%"),
    }
}

fn path(scenario: Scenario) -> &'static str {
    match scenario {
        Scenario::RestProtected => "/protected",
        Scenario::RestUserInfo => "/user/info",
        _ => scenario.name(),
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
        assert_eq!(verdict(Some(5.0), &Goal::AtMost(5.0)), "met (+0%)");
        assert_eq!(verdict(Some(6.0), &Goal::AtMost(5.0)), "**missed** by 20%");
    }
}
