//! The failure report folder: everything needed to understand a failing seed and to re-run the
//! checkers offline (`detcd-sim check --report DIR`), without re-running the simulation.
//!
//! ```text
//! DIR/options.json    the seed and its swarm options
//! DIR/schedule.json   the same, with the fault schedule the seed drew (`shrink --report DIR`)
//! DIR/history.json    operations, after-heal reads, replica hashes, liveness outcome
//! DIR/trace.jsonl     the timeline, one event per line
//! DIR/summary.txt     the verdict, the violations, the replay command
//! ```

use std::fs;
use std::path::{Path, PathBuf};

use crate::history::History;
use crate::options::SwarmOptions;
use crate::simulation::SeedRun;
use crate::trace;

/// Writes `run`'s report into `parent/seed-<hex>` and returns that folder.
pub fn write(parent: &Path, run: &SeedRun, summary: &str) -> std::io::Result<PathBuf> {
    let dir = parent.join(format!("seed-{:#x}", run.options.seed));
    fs::create_dir_all(&dir)?;
    fs::write(dir.join("options.json"), pretty(&run.options))?;
    let scheduled = SwarmOptions {
        schedule: Some(run.schedule.clone()),
        ..run.options.clone()
    };
    fs::write(dir.join("schedule.json"), pretty(&scheduled))?;
    fs::write(dir.join("history.json"), pretty(&run.history))?;
    fs::write(dir.join("trace.jsonl"), trace::to_json_lines(&run.trace))?;
    fs::write(dir.join("summary.txt"), summary)?;
    Ok(dir)
}

/// Reads back what `write` wrote.
pub fn read(dir: &Path) -> Result<(SwarmOptions, History, Vec<trace::Event>), String> {
    let read = |name: &str| {
        fs::read_to_string(dir.join(name)).map_err(|e| format!("{}: {e}", dir.join(name).display()))
    };
    let options = serde_json::from_str(&read("options.json")?).map_err(|e| e.to_string())?;
    let history = serde_json::from_str(&read("history.json")?).map_err(|e| e.to_string())?;
    let events = read("trace.jsonl")?
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    Ok((options, history, events))
}

fn pretty(value: &impl serde::Serialize) -> String {
    serde_json::to_string_pretty(value).expect("reports serialize")
}
