//! The measured window and what one measurement of one server yields.

use std::time::{Duration, Instant};

use super::proc_stats::CpuMeter;

/// Load before the measured window starts, discarded: connections, allocator, first fsyncs.
pub const WARMUP: Duration = Duration::from_secs(1);

/// The span of time whose operations count: an operation counts when it was *sent* inside it.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub start: Instant,
    pub end: Instant,
}

impl Window {
    /// A window of `length` that opens after the warm-up, from now.
    pub fn after_warmup(length: Duration) -> Window {
        let start = Instant::now() + WARMUP;
        Window {
            start,
            end: start + length,
        }
    }

    pub fn length(&self) -> Duration {
        self.end - self.start
    }

    /// Load goes on until the window closes.
    pub fn is_open_at(&self, at: Instant) -> bool {
        at < self.end
    }

    pub fn contains(&self, at: Instant) -> bool {
        self.start <= at && at < self.end
    }

    /// The send instants of a closed loop: `Some(now)` while the window is open.
    pub fn next_send(&self) -> Option<Instant> {
        let sent = Instant::now();
        self.is_open_at(sent).then_some(sent)
    }

    /// Records the latency of an operation sent at `sent`, if inside the window.
    pub fn record(&self, sent: Instant, latencies: &mut Vec<Duration>) {
        if self.contains(sent) {
            latencies.push(sent.elapsed());
        }
    }

    /// Waits out the window on the servers' CPU, then gathers the closed loops' latencies.
    pub async fn measure(
        &self,
        loops: Vec<tokio::task::JoinHandle<Vec<Duration>>>,
        pids: &[i32],
    ) -> Measured {
        let server_cpu = self.server_cpu(pids).await;
        let mut latencies = Vec::new();
        for task in loops {
            latencies.extend(task.await.unwrap());
        }
        Measured::per_latency(latencies, self.length(), server_cpu)
    }

    /// Sleeps through the window and returns the CPU `pids` used in it.
    pub async fn server_cpu(&self, pids: &[i32]) -> Duration {
        tokio::time::sleep_until(self.start.into()).await;
        let meter = CpuMeter::start(pids);
        tokio::time::sleep_until(self.end.into()).await;
        meter.elapsed()
    }
}

/// One workload against one server.
#[derive(Debug, Clone)]
pub struct Measured {
    /// Operations done: puts, ranges, txns, events delivered or keep-alives answered.
    pub ops: u64,
    /// The time those operations took, for ops/s.
    pub span: Duration,
    /// Latency of a request (or of an event's delivery) at the median and the 99th percentile.
    pub p50: Duration,
    pub p99: Duration,
    /// utime + stime of every server process over `span`.
    pub server_cpu: Duration,
    /// VmRSS summed over the server processes, after the workload.
    pub rss_bytes: Option<u64>,
    /// Graceful stop, then start → first healthy `/health`.
    pub restart: Option<Duration>,
}

impl Measured {
    pub fn new(
        ops: u64,
        mut latencies: Vec<Duration>,
        span: Duration,
        server_cpu: Duration,
    ) -> Measured {
        assert!(
            !latencies.is_empty(),
            "no operation completed in the window"
        );
        latencies.sort_unstable();
        Measured {
            ops,
            span,
            p50: percentile(&latencies, 0.5),
            p99: percentile(&latencies, 0.99),
            server_cpu,
            rss_bytes: None,
            restart: None,
        }
    }

    /// Every latency is one operation.
    pub fn per_latency(latencies: Vec<Duration>, span: Duration, server_cpu: Duration) -> Measured {
        Measured::new(latencies.len() as u64, latencies, span, server_cpu)
    }

    pub fn ops_per_second(&self) -> f64 {
        self.ops as f64 / self.span.as_secs_f64()
    }

    pub fn cpu_per_op(&self) -> Duration {
        self.server_cpu.div_f64(self.ops as f64)
    }
}

/// The `fraction` percentile (0.5, 0.99) of latencies sorted ascending.
fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    let index = ((sorted.len() - 1) as f64 * fraction).round() as usize;
    sorted[index]
}
