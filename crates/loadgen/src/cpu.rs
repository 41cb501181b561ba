//! CPU time of a process (user + system), read from `/proc/<pid>/stat` (Linux only; elsewhere,
//! or without a pid, the table shows a dash). Differences around a scenario, divided by its
//! requests, give the µs of CPU one request costs each process.

use std::time::Duration;

/// `/proc/<pid>/stat` counts in USER_HZ ticks, which Linux fixes at 100 per second for user
/// space on every architecture it supports.
const TICKS_PER_SECOND: u64 = 100;

/// The CPU time `pid` has used so far; `None` if there is no pid or the process is gone.
pub fn of(pid: Option<u32>) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid?)).ok()?;
    parse_stat(&stat)
}

/// This process's CPU time so far (the load tool's own cost).
pub fn own() -> Option<Duration> {
    of(Some(std::process::id()))
}

fn parse_stat(stat: &str) -> Option<Duration> {
    // The command name (field 2) is in parentheses and may hold spaces: count from after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // After the name, field 3 (state) is the first; utime and stime are fields 14 and 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 1000 / TICKS_PER_SECOND))
}

/// µs of CPU per request between two readings; `None` when either is missing or nothing ran.
pub fn micros_per_request(before: Option<Duration>, after: Option<Duration>, requests: u64) -> Option<f64> {
    let used = after?.checked_sub(before?)?;
    (requests > 0).then(|| used.as_secs_f64() * 1e6 / requests as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_user_plus_system_time_after_the_command_name() {
        // utime 150 ticks, stime 50 ticks: 2 s; the name holds a space and a parenthesis.
        let stat = "42 (auth (svc) S 1 42 42 0 -1 4194560 100 0 0 0 150 50 0 0 20 0 9 0 100 1000 200";
        assert_eq!(parse_stat(stat), Some(Duration::from_secs(2)));
        assert_eq!(parse_stat("42 (x"), None);
    }

    #[test]
    fn per_request_divides_the_difference() {
        let (before, after) = (Some(Duration::from_millis(100)), Some(Duration::from_millis(300)));
        assert_eq!(micros_per_request(before, after, 1000), Some(200.0));
        assert_eq!(micros_per_request(before, after, 0), None);
        assert_eq!(micros_per_request(None, after, 10), None);
        assert!(own().is_some());
    }
}
