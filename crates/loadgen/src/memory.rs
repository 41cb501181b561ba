//! Resident memory of the server processes, read from `/proc/<pid>/status` (Linux only; on
//! other systems, or without a pid, the table shows a dash).

use std::fmt;

/// `VmRSS` (resident now) and `VmHWM` (the peak resident size since the process started).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    pub rss_kib: u64,
    pub peak_kib: u64,
}

impl Memory {
    /// The memory of `pid` now; `None` if there is no pid or the process is gone.
    pub fn of(pid: Option<u32>) -> Option<Self> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
        parse_status(&status)
    }
}

fn parse_status(status: &str) -> Option<Memory> {
    let field = |name: &str| {
        status.lines().find_map(|line| {
            let value = line.strip_prefix(name)?.strip_prefix(':')?;
            value.trim().trim_end_matches("kB").trim().parse::<u64>().ok()
        })
    };
    Some(Memory { rss_kib: field("VmRSS")?, peak_kib: field("VmHWM")? })
}

/// KiB as MiB with one decimal.
pub struct Mib(pub u64);

impl fmt::Display for Mib {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.1}", self.0 as f64 / 1024.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rss_and_peak_from_proc_status() {
        let status = "Name:\tauth-svc\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\nThreads:\t4\n";
        assert_eq!(parse_status(status), Some(Memory { rss_kib: 10240, peak_kib: 20480 }));
        assert_eq!(Mib(10240).to_string(), "10.0");
        assert_eq!(parse_status("Name:\tx\n"), None);
    }

    #[test]
    fn reads_this_process() {
        let memory = Memory::of(Some(std::process::id())).expect("own /proc status");
        assert!(memory.rss_kib > 0 && memory.peak_kib >= memory.rss_kib);
        assert_eq!(Memory::of(None), None);
    }
}
