//! A server's CPU time and resident memory, read from /proc.

use std::time::Duration;

/// /proc reports CPU time in USER_HZ ticks, which Linux fixes at 100 per second for user space
/// (`getconf CLK_TCK`) on every architecture this runs on.
const TICKS_PER_SECOND: u64 = 100;

/// CPU used by a set of processes since the meter started.
pub struct CpuMeter {
    pids: Vec<i32>,
    start: Duration,
}

impl CpuMeter {
    pub fn start(pids: &[i32]) -> CpuMeter {
        CpuMeter {
            pids: pids.to_vec(),
            start: cpu_time(pids),
        }
    }

    pub fn elapsed(&self) -> Duration {
        cpu_time(&self.pids) - self.start
    }
}

/// utime + stime of all `pids` (all threads of each, as /proc/<pid>/stat counts them).
fn cpu_time(pids: &[i32]) -> Duration {
    let ticks: u64 = pids.iter().map(|pid| process_ticks(*pid)).sum();
    Duration::from_secs_f64(ticks as f64 / TICKS_PER_SECOND as f64)
}

fn process_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap_or_else(|error| panic!("server {pid} is gone: {error}"));
    // The command name (field 2) is in parentheses and may hold spaces: count after it. utime
    // and stime are fields 14 and 15, so the 12th and 13th after the name.
    let after_name = &stat[stat.rfind(')').expect("stat has a command name") + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |index: usize| -> u64 { fields[index].parse().expect("a tick count") };
    field(11) + field(12)
}

/// VmRSS summed over `pids`, in bytes.
pub fn resident_bytes(pids: &[i32]) -> u64 {
    pids.iter().map(|pid| process_rss(*pid)).sum()
}

fn process_rss(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|error| panic!("server {pid} is gone: {error}"));
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|number| number.trim().parse().ok())
        .expect("VmRSS in kB");
    kib * 1024
}
