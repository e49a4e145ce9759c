//! The Clock seam: every read of time and every timer in the server goes through it, so the
//! simulator can skew or drift one node's clock against the others.
//!
//! Both implementations sit on `tokio::time`, which madsim virtualizes under `--cfg madsim`: the
//! real clock is therefore already deterministic inside the simulator; `SkewedClock` adds the
//! per-node skew and drift that a single virtual time cannot express.

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Contract: `now` never goes backwards; `sleep(d)` completes no earlier than this clock's `now() + d`.
pub trait Clock: Send + Sync + Debug + 'static {
    /// Monotonic time, for timeouts and durations.
    fn now(&self) -> Instant;
    /// Wall-clock milliseconds since the Unix epoch, for ids that must differ across restarts.
    fn wall_ms(&self) -> u64;
    /// A timer on this clock.
    fn sleep(&self, duration: Duration) -> Sleep;
}

/// The host's clock (virtual time under madsim).
#[derive(Debug, Default, Clone)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn wall_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// A clock that runs at `rate_ppm` parts-per-million fast or slow and whose wall time can be stepped,
/// for the simulator's clock-skew faults. Changes take effect for timers started afterwards.
#[derive(Debug, Clone, Default)]
pub struct SkewedClock {
    inner: Arc<Skew>,
}

#[derive(Debug, Default)]
struct Skew {
    /// Signed drift in parts per million, stored as i64 bits.
    rate_ppm: AtomicU64,
    /// Signed wall-clock step in milliseconds, stored as i64 bits.
    wall_offset_ms: AtomicU64,
}

impl SkewedClock {
    pub fn set_rate_ppm(&self, rate_ppm: i64) {
        assert!(
            rate_ppm.abs() < 500_000,
            "a clock drifting by 50% is not a clock"
        );
        self.inner
            .rate_ppm
            .store(rate_ppm as u64, Ordering::Relaxed);
    }

    pub fn step_wall_ms(&self, offset_ms: i64) {
        self.inner
            .wall_offset_ms
            .fetch_add(offset_ms as u64, Ordering::Relaxed);
    }

    fn scaled(&self, duration: Duration) -> Duration {
        let rate_ppm = self.inner.rate_ppm.load(Ordering::Relaxed) as i64;
        // A fast clock (positive rate) fires its timers early in true time.
        let factor = 1_000_000f64 / (1_000_000 + rate_ppm) as f64;
        duration.mul_f64(factor)
    }
}

impl Clock for SkewedClock {
    fn now(&self) -> Instant {
        SystemClock.now()
    }

    fn wall_ms(&self) -> u64 {
        let offset = self.inner.wall_offset_ms.load(Ordering::Relaxed) as i64;
        SystemClock.wall_ms().saturating_add_signed(offset)
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        Box::pin(tokio::time::sleep(self.scaled(duration)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fast_clock_shortens_timers() {
        let clock = SkewedClock::default();
        clock.set_rate_ppm(100_000);
        let scaled = clock.scaled(Duration::from_millis(1100));
        assert!(scaled < Duration::from_millis(1001) && scaled > Duration::from_millis(999));
    }

    #[test]
    fn a_wall_step_moves_wall_time_only() {
        let clock = SkewedClock::default();
        let before = clock.wall_ms();
        clock.step_wall_ms(-60_000);
        assert!(clock.wall_ms() + 59_000 < before + 1_000);
    }
}
