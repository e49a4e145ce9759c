//! `replay --log FILTER`: the servers' own `tracing` output, interleaved on stdout with the
//! timeline and stamped with simulated time, so that an engineer replaying a seed sees why a
//! node did what the timeline shows (madsim puts each line in its node's span: `node{name=n3}`).
//! Only replay installs it: a sweep stays quiet and as fast.

use std::fmt;

use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::EnvFilter;

/// Simulated seconds since the run's start, as the timeline prints them.
struct SimulatedTime;

impl FormatTime for SimulatedTime {
    fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
        match madsim::time::TimeHandle::try_current() {
            Some(time) => write!(w, "{:>11.3}s", time.elapsed().as_secs_f64()),
            None => write!(w, "{:>12}", "-"),
        }
    }
}

/// Sends the servers' logs that `filter` selects (an `EnvFilter` directive such as
/// `detcd::server::lease=debug,detcd=info`) to stdout for the rest of the process.
pub fn install(filter: &str) -> Result<(), String> {
    let filter = EnvFilter::try_new(filter).map_err(|e| format!("--log {filter}: {e}"))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_timer(SimulatedTime)
        .with_ansi(false)
        .with_writer(std::io::stdout)
        .try_init()
        .map_err(|e| format!("--log: {e}"))
}
