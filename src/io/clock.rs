//! The Clock seam: every read of time and every timer in the server goes through it, so the
//! simulator can skew or drift one node's clock against the others.
//!
//! Both implementations sit on `tokio::time`, which madsim virtualizes under `--cfg madsim`: the
//! real clock is therefore already deterministic inside the simulator; `SkewedClock` adds the
//! per-node skew and drift that a single virtual time cannot express.

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
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

/// A clock that runs at `rate_ppm` parts-per-million fast or slow and whose wall time can be
/// stepped, for the simulator's clock-skew faults. Drift reaches `now()` too, so lease expiry and
/// every deadline drift with the timers; a rate change takes effect for `now()` at once and for
/// running timers when they next look (a sleep re-checks this clock's `now()` before it ends).
#[derive(Debug, Clone, Default)]
pub struct SkewedClock {
    inner: Arc<Mutex<Skew>>,
}

#[derive(Debug, Default)]
struct Skew {
    /// Signed drift in parts per million.
    rate_ppm: i64,
    /// Signed wall-clock step in milliseconds.
    wall_offset_ms: i64,
    /// The last rate change, as (true instant, this clock's instant); `None` until the first
    /// change, before which this clock reads true time.
    anchor: Option<(Instant, Instant)>,
}

impl Skew {
    /// This clock's instant at true instant `now`: time since the last rate change runs at the rate.
    fn local(&self, now: Instant) -> Instant {
        match self.anchor {
            None => now,
            Some((true_at, local_at)) => {
                let factor = (1_000_000 + self.rate_ppm) as f64 / 1_000_000f64;
                local_at + (now - true_at).mul_f64(factor)
            }
        }
    }

    /// How long in true time this clock takes to advance by `duration`.
    fn scaled(&self, duration: Duration) -> Duration {
        // A fast clock (positive rate) fires its timers early in true time.
        let factor = 1_000_000f64 / (1_000_000 + self.rate_ppm) as f64;
        duration.mul_f64(factor)
    }
}

impl SkewedClock {
    pub fn set_rate_ppm(&self, rate_ppm: i64) {
        assert!(
            rate_ppm.abs() < 500_000,
            "a clock drifting by 50% is not a clock"
        );
        let now = SystemClock.now();
        let mut skew = self.inner.lock().unwrap();
        let local = skew.local(now);
        skew.anchor = Some((now, local));
        skew.rate_ppm = rate_ppm;
    }

    pub fn step_wall_ms(&self, offset_ms: i64) {
        self.inner.lock().unwrap().wall_offset_ms += offset_ms;
    }

    fn scaled(&self, duration: Duration) -> Duration {
        self.inner.lock().unwrap().scaled(duration)
    }
}

impl Clock for SkewedClock {
    fn now(&self) -> Instant {
        self.inner.lock().unwrap().local(SystemClock.now())
    }

    fn wall_ms(&self) -> u64 {
        let offset = self.inner.lock().unwrap().wall_offset_ms;
        SystemClock.wall_ms().saturating_add_signed(offset)
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        let clock = self.clone();
        let until = self.now() + duration;
        Box::pin(async move {
            // Sleeps again if the rate slowed meanwhile: `sleep(d)` never ends before `now() + d`.
            loop {
                let left = until.saturating_duration_since(clock.now());
                if left.is_zero() {
                    return;
                }
                tokio::time::sleep(clock.scaled(left)).await;
            }
        })
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
    fn drift_reaches_now() {
        let start = Instant::now();
        let skew = Skew {
            rate_ppm: -200_000,
            anchor: Some((start, start)),
            ..Skew::default()
        };
        assert_eq!(
            skew.local(start + Duration::from_secs(10)),
            start + Duration::from_secs(8)
        );
    }

    #[test]
    fn a_wall_step_moves_wall_time_only() {
        let clock = SkewedClock::default();
        let before = clock.wall_ms();
        clock.step_wall_ms(-60_000);
        assert!(clock.wall_ms() + 59_000 < before + 1_000);
    }
}
