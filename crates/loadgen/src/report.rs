//! The markdown table of results.

use std::fmt::Write as _;

use crate::{
    hashing::{self, HashTime},
    memory::{Memory, Mib},
    scenarios::{Row, ServerMemory},
};

/// One markdown table, a row per scenario, then the first error of each scenario that had any.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::new();
    out.push_str(
        "| scenario | tool | concurrency | requests | requests/s | p50 ms | p99 ms | p99.9 ms | errors \
         | auth-svc CPU µs/req | gateway CPU µs/req | tool CPU µs/req \
         | auth-svc RSS MiB before → after | gateway RSS MiB before → after |\n",
    );
    out.push_str("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n");
    for row in rows {
        let m = &row.summary;
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            row.scenario,
            row.tool,
            row.concurrency,
            m.ok,
            thousands(m.rate),
            millis(m.p50_ms),
            millis(m.p99_ms),
            millis(m.p999_ms),
            m.errors,
            micros(row.cpu.auth),
            micros(row.cpu.gateway),
            micros(row.cpu.tool),
            before_after(row.before.auth, row.after.auth),
            before_after(row.before.gateway, row.after.gateway),
        );
    }
    let errors: Vec<_> = rows
        .iter()
        .filter_map(|row| row.summary.first_error.as_ref().map(|error| (row.scenario.as_str(), error)))
        .collect();
    if !errors.is_empty() {
        out.push_str("\nFirst error of each scenario with errors:\n\n");
        for (scenario, error) in errors {
            let _ = writeln!(out, "- {scenario}: `{}`", error.replace('`', "'"));
        }
    }
    out
}

/// What one argon2 hash costs here, and the Login ceiling that follows.
pub fn hashing_note(time: HashTime, samples: usize, cores: usize) -> String {
    let fastest_ms = time.fastest.as_secs_f64() * 1000.0;
    format!(
        "\nOne argon2id hash (m = {} KiB, t = 2, p = 1) in loadgen's process, timed {samples} times one after \
         another with the servers idle: fastest {} ms, median {} ms. With the fastest, Login's ceiling on {cores} cores is {:.0}/s.\n",
        hashing::MEMORY_KIB,
        millis(Some(fastest_ms)),
        millis(Some(time.median.as_secs_f64() * 1000.0)),
        cores as f64 * 1000.0 / fastest_ms.max(1e-9),
    )
}

/// The servers' memory at the milestones of a run of `all`.
pub fn memory_note(idle: ServerMemory, seeded: ServerMemory, settled: ServerMemory, accounts: usize) -> String {
    let rss = |memory: Option<Memory>| memory.map_or_else(|| "–".to_owned(), |m| Mib(m.rss_kib).to_string());
    let peak = |memory: Option<Memory>| memory.map_or_else(|| "–".to_owned(), |m| Mib(m.peak_kib).to_string());
    format!(
        "\nauth-svc RSS (MiB): {} before any load, {} after seeding {accounts} accounts (a Register and a Login each), \
         {} one second after the last scenario, {} at its peak (VmHWM). Gateway: {} before any load, {} at the end, \
         {} at its peak.\n",
        rss(idle.auth),
        rss(seeded.auth),
        rss(settled.auth),
        peak(settled.auth),
        rss(idle.gateway),
        rss(settled.gateway),
        peak(settled.gateway),
    )
}

fn before_after(before: Option<Memory>, after: Option<Memory>) -> String {
    match (before, after) {
        (Some(before), Some(after)) => format!("{} → {}", Mib(before.rss_kib), Mib(after.rss_kib)),
        _ => "–".to_owned(),
    }
}

pub fn micros(value: Option<f64>) -> String {
    match value {
        Some(us) if us < 100.0 => format!("{us:.1}"),
        Some(us) => thousands(us),
        None => "–".to_owned(),
    }
}

pub fn millis(value: Option<f64>) -> String {
    match value {
        Some(ms) if ms < 10.0 => format!("{ms:.2}"),
        Some(ms) => format!("{ms:.1}"),
        None => "–".to_owned(),
    }
}

/// A rate rounded to a whole number, with thousands separators (`12,345`).
pub fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_numbers_for_people() {
        assert_eq!(thousands(0.4), "0");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(12345.6), "12,346");
        assert_eq!(thousands(1234567.0), "1,234,567");
        assert_eq!(millis(Some(1.234)), "1.23");
        assert_eq!(millis(Some(123.45)), "123.5");
        assert_eq!(millis(None), "–");
        assert_eq!(micros(Some(25.04)), "25.0");
        assert_eq!(micros(Some(16_700.0)), "16,700");
    }
}
