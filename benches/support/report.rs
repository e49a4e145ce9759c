//! bench/RESULTS.md: the machine a run was taken on, then one line per workload with both
//! servers' numbers and the detcd/etcd ratios.

use std::fmt::Write;
use std::process::Command;
use std::time::Duration;

use super::measure::Measured;
use super::{load_average, millis};

/// What a reader needs to know before trusting a run's numbers.
pub struct Facts {
    pub date: String,
    pub commit: String,
    pub cpus: usize,
    pub cpu_model: String,
    pub memory: String,
    pub etcd_version: String,
    pub load_before: String,
}

impl Facts {
    pub fn gather() -> Facts {
        let repo = env!("CARGO_MANIFEST_DIR");
        let dirty = !command_output("git", &["-C", repo, "status", "--porcelain"]).is_empty();
        let commit = command_output("git", &["-C", repo, "rev-parse", "--short", "HEAD"]);
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        Facts {
            date: command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
            commit: if dirty {
                format!("{commit} (with uncommitted changes)")
            } else {
                commit
            },
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu_model: proc_value(&cpuinfo, "model name"),
            memory: gibibytes(&proc_value(&meminfo, "MemTotal")),
            etcd_version: command_output("etcd", &["--version"])
                .lines()
                .next()
                .unwrap_or_default()
                .to_string(),
            load_before: load_average(),
        }
    }
}

fn command_output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_string())
        .unwrap_or_default()
}

/// The value of `key: value` in a /proc file.
fn proc_value(text: &str, key: &str) -> String {
    text.lines()
        .find(|line| line.starts_with(key))
        .and_then(|line| line.split_once(':'))
        .map(|(_, value)| value.trim().to_string())
        .unwrap_or_default()
}

/// /proc/meminfo's `24683584 kB` as `23.5 GiB`.
fn gibibytes(kib: &str) -> String {
    kib.trim_end_matches("kB")
        .trim()
        .parse::<f64>()
        .map_or(kib.to_string(), |kib| {
            format!("{:.1} GiB", kib / (1 << 20) as f64)
        })
}

/// One workload, measured on both servers.
pub struct Compared {
    pub name: String,
    pub etcd: Measured,
    pub detcd: Measured,
}

/// How the run was made, for the report's header.
pub struct RunInfo {
    pub window: Duration,
    pub quick: bool,
    pub filters: Vec<String>,
    pub took: Duration,
}

pub fn markdown(facts: &Facts, run: &RunInfo, rows: &[Compared]) -> String {
    let mut text = String::new();
    let w = &mut text;
    writeln!(w, "# detcd against etcd 3.4: `scripts/bench`\n").unwrap();
    writeln!(w, "| | |\n|---|---|").unwrap();
    writeln!(w, "| date | {} |", facts.date).unwrap();
    writeln!(w, "| commit | {} |", facts.commit).unwrap();
    writeln!(
        w,
        "| machine | {} CPUs (nproc), {}, {} RAM |",
        facts.cpus, facts.cpu_model, facts.memory
    )
    .unwrap();
    writeln!(
        w,
        "| etcd | {} (Debian's etcd-server) |",
        facts.etcd_version
    )
    .unwrap();
    let mode = if run.quick {
        "quick (no 1M keys row)"
    } else {
        "full"
    };
    let rows_run = if run.filters.is_empty() {
        "all".to_string()
    } else {
        format!("those matching {}", run.filters.join(", "))
    };
    writeln!(
        w,
        "| run | {mode}; rows: {rows_run}; window {} s after 1 s of warm-up; took {} s |",
        run.window.as_secs(),
        run.took.as_secs()
    )
    .unwrap();
    writeln!(
        w,
        "| load average (1/5/15 min) | before {}, after {} |",
        facts.load_before,
        load_average()
    )
    .unwrap();
    writeln!(w).unwrap();
    writeln!(
        w,
        "Both servers on loopback with fsync on, their default settings but the same raft timing \
         (100 ms heartbeat, 1 s election), all load sent to the leader by the same Rust \
         etcd-client load generator in one process on the same machine; 8-byte keys, 256-byte \
         values. **CPU/op** is the server processes' utime + stime (summed over all members) over \
         the window, divided by the operations: on a small machine the load generator's own CPU \
         caps throughput, so CPU/op is the figure that carries over to other machines. Ratios are \
         detcd / etcd within this run (lower is better for latency, CPU and memory).\n"
    )
    .unwrap();
    writeln!(
        w,
        "| workload | etcd ops/s | etcd p50 / p99 ms | etcd CPU/op µs | detcd ops/s | detcd p50 / p99 ms | detcd CPU/op µs | detcd/etcd ops/s | detcd/etcd CPU/op |"
    )
    .unwrap();
    writeln!(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|").unwrap();
    for row in rows {
        let (etcd, detcd) = (&row.etcd, &row.detcd);
        writeln!(
            w,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            row.name,
            grouped(etcd.ops_per_second()),
            latencies(etcd),
            micros(etcd.cpu_per_op()),
            grouped(detcd.ops_per_second()),
            latencies(detcd),
            micros(detcd.cpu_per_op()),
            ratio(detcd.ops_per_second(), etcd.ops_per_second()),
            ratio(
                detcd.cpu_per_op().as_secs_f64(),
                etcd.cpu_per_op().as_secs_f64()
            ),
        )
        .unwrap();
    }
    let filled: Vec<&Compared> = rows
        .iter()
        .filter(|row| row.etcd.rss_bytes.is_some())
        .collect();
    if !filled.is_empty() {
        writeln!(w, "\nMemory 3 s after the fill (VmRSS from /proc, summed over members) and a graceful restart's time from the process's start to its first healthy `/health`:\n").unwrap();
        writeln!(w, "| workload | etcd RSS MiB | detcd RSS MiB | detcd/etcd RSS | etcd restart → healthy ms | detcd restart → healthy ms | detcd/etcd restart |").unwrap();
        writeln!(w, "|---|---:|---:|---:|---:|---:|---:|").unwrap();
        for row in filled {
            let rss = |measured: &Measured| measured.rss_bytes.unwrap() as f64 / (1 << 20) as f64;
            let restart = |measured: &Measured| millis(measured.restart.unwrap());
            writeln!(
                w,
                "| {} | {:.0} | {:.0} | {} | {:.0} | {:.0} | {} |",
                row.name,
                rss(&row.etcd),
                rss(&row.detcd),
                ratio(rss(&row.detcd), rss(&row.etcd)),
                restart(&row.etcd),
                restart(&row.detcd),
                ratio(restart(&row.detcd), restart(&row.etcd)),
            )
            .unwrap();
        }
    }
    text
}

fn latencies(measured: &Measured) -> String {
    format!("{:.2} / {:.2}", millis(measured.p50), millis(measured.p99))
}

fn micros(duration: Duration) -> String {
    format!("{:.1}", duration.as_secs_f64() * 1e6)
}

fn ratio(detcd: f64, etcd: f64) -> String {
    format!("{:.2}×", detcd / etcd)
}

/// A rate rounded to a whole number, thousands separated: 16,627.
fn grouped(value: f64) -> String {
    let digits = format!("{:.0}", value);
    let mut out = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}
