//! Rows measured by another tool (h2load, wrk) that `scripts/bench.sh` ran and summarised, one
//! tab-separated line each, so that they share loadgen's table and targets:
//!
//! `scenario  tool  concurrency  ok  errors  seconds  p50_ms  p99_ms  p999_ms  auth_us  gateway_us  tool_us  first_error`
//!
//! A `-` stands for a value the tool did not give.

use anyhow::{Context as _, bail};

use crate::{
    measure::Summary,
    scenarios::{CpuPerRequest, Row, ServerMemory},
};

const FIELDS: usize = 13;

/// `rows` in the same format (what `--tsv` writes, for a script to read).
pub fn write(rows: &[Row]) -> String {
    let value = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.3}"));
    let mut out = String::new();
    for row in rows {
        let s = &row.summary;
        let seconds = if s.rate > 0.0 { s.ok as f64 / s.rate } else { 0.0 };
        let error = s.first_error.as_deref().map_or_else(|| "-".to_owned(), |e| e.replace(['\t', '\n'], " "));
        let fields = [
            row.scenario.clone(),
            row.tool.clone(),
            row.concurrency.to_string(),
            s.ok.to_string(),
            s.errors.to_string(),
            format!("{seconds:.3}"),
            value(s.p50_ms),
            value(s.p99_ms),
            value(s.p999_ms),
            value(row.cpu.auth),
            value(row.cpu.gateway),
            value(row.cpu.tool),
            error,
        ];
        out.push_str(&fields.join("\t"));
        out.push('\n');
    }
    out
}

/// Parses the whole file; `#` lines and blank lines are skipped.
pub fn parse(text: &str) -> anyhow::Result<Vec<Row>> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty() && !line.starts_with('#'))
        .map(|(index, line)| parse_line(line).with_context(|| format!("external results, line {}", index + 1)))
        .collect()
}

fn parse_line(line: &str) -> anyhow::Result<Row> {
    let fields: Vec<&str> = line.split('\t').collect();
    if fields.len() != FIELDS {
        bail!("{} tab-separated fields, expected {FIELDS}: {line}", fields.len());
    }
    let number = |index: usize| -> anyhow::Result<Option<f64>> {
        match fields[index].trim() {
            "-" | "" => Ok(None),
            text => text.parse::<f64>().map(Some).with_context(|| format!("field {}: not a number: {text}", index + 1)),
        }
    };
    let count = |index: usize| -> anyhow::Result<u64> {
        fields[index].trim().parse().with_context(|| format!("field {}: not a count", index + 1))
    };
    let ok = count(3)?;
    let seconds = number(5)?.unwrap_or(0.0);
    let known = |value: Option<f64>| value.filter(|_| ok > 0);
    Ok(Row {
        scenario: fields[0].to_owned(),
        tool: fields[1].to_owned(),
        concurrency: usize::try_from(count(2)?)?,
        summary: Summary {
            ok,
            errors: count(4)?,
            rate: if seconds > 0.0 { ok as f64 / seconds } else { 0.0 },
            p50_ms: known(number(6)?),
            p99_ms: known(number(7)?),
            p999_ms: known(number(8)?),
            first_error: Some(fields[12].trim()).filter(|text| !text.is_empty() && *text != "-").map(str::to_owned),
        },
        before: ServerMemory { auth: None, gateway: None },
        after: ServerMemory { auth: None, gateway: None },
        cpu: CpuPerRequest { auth: number(9)?, gateway: number(10)?, tool: number(11)? },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_tool_line_and_its_dashes() {
        let text = "# comment\n\nrest-healthz\twrk\t50\t1000\t2\t0.5\t1.2\t3.4\t-\t-\t20.5\t8\tnon-2xx: 2\n";
        let rows = parse(text).unwrap();
        assert_eq!(rows.len(), 1);
        let row = &rows[0];
        assert_eq!((row.scenario.as_str(), row.tool.as_str(), row.concurrency), ("rest-healthz", "wrk", 50));
        assert_eq!((row.summary.ok, row.summary.errors, row.summary.rate), (1000, 2, 2000.0));
        assert_eq!((row.summary.p50_ms, row.summary.p99_ms, row.summary.p999_ms), (Some(1.2), Some(3.4), None));
        assert_eq!(row.cpu, CpuPerRequest { auth: None, gateway: Some(20.5), tool: Some(8.0) });
        assert_eq!(row.summary.first_error.as_deref(), Some("non-2xx: 2"));
    }

    #[test]
    fn what_it_writes_it_reads_back() {
        let text = "grpc-refresh\tloadgen\t50\t1000\t0\t0.500\t1.200\t3.400\t-\t120.000\t-\t30.000\t-\n";
        assert_eq!(write(&parse(text).unwrap()), text);
    }

    #[test]
    fn refuses_short_or_garbled_lines() {
        assert!(parse("rest-healthz\twrk\t50\n").is_err());
        assert!(parse("a\tb\tc\t1\t0\t1\t-\t-\t-\t-\t-\t-\t-\n").is_err());
        assert!(parse("a\tb\t1\tmany\t0\t1\t-\t-\t-\t-\t-\t-\t-\n").is_err());
    }
}
