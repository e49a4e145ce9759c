//! The corpus: every failing seed a sweep finds, kept as one small JSON file (`sim/corpus/` by
//! default) with the options it ran with, the commit and the command that found it, and how it
//! failed. `detcd-sim corpus` replays them all as regressions: an entry marked `fixed` must pass
//! (its failure is the replay's exit code); an `open` one is reported, still failing or passing
//! now. An entry stays when its bug is fixed: mark it `"status": "fixed"` in the fix's commit.
//!
//! Sweeps with a planted bug (`--bug`) save nothing unless given `--corpus DIR`: those failures
//! are the point of the run, not regressions.

use std::path::{Path, PathBuf};

use clap::Args;
use serde::{Deserialize, Serialize};

use crate::options::SwarmOptions;
use crate::simulation::Verdict;
use crate::summary::{self, SeedRecord};
use crate::sweep::{self, Item, Job, Spread};
use crate::trace;

pub const DEFAULT_DIR: &str = "sim/corpus";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Still fails, as far as anyone knows.
    Open,
    /// Its bug is fixed: it must pass.
    Fixed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub status: Status,
    /// How it failed when it was found.
    pub verdict: Verdict,
    #[serde(default)]
    pub checkers: Vec<String>,
    /// The command that found (or replays) it.
    pub found_by: String,
    pub detcd_commit: String,
    /// What the bug was and where its fix is.
    #[serde(default)]
    pub note: String,
    /// Exactly what the seed ran with (later options draw `#[serde(default)]`s).
    pub options: SwarmOptions,
}

impl Entry {
    /// `seed-<hex>-n<members>-<options hash>.json`: the same seed under other options (another
    /// `--nodes`, `--faults`) is another run.
    pub fn file_name(&self) -> String {
        let options = serde_json::to_string(&self.options).expect("options serialize");
        let hash = trace::fingerprint([options.as_str()]);
        format!(
            "seed-{:#x}-n{}-{:08x}.json",
            self.options.seed,
            self.options.nodes,
            hash >> 32
        )
    }

    /// Writes the entry into `dir` unless one for the same run is there; returns its path and
    /// whether it was new.
    pub fn save(&self, dir: &Path) -> std::io::Result<(PathBuf, bool)> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(self.file_name());
        if path.exists() {
            return Ok((path, false));
        }
        let text = serde_json::to_string_pretty(self).expect("entries serialize") + "\n";
        std::fs::write(&path, text)?;
        Ok((path, true))
    }
}

/// Saves a failing seed a sweep found; returns the line to print about it.
pub fn save_found(dir: &Path, item: &Item, record: &SeedRecord) -> String {
    let entry = Entry {
        status: Status::Open,
        verdict: record.verdict,
        checkers: record
            .failure
            .as_ref()
            .map_or(Vec::new(), |f| f.checkers.clone()),
        found_by: item.replay.clone(),
        detcd_commit: summary::detcd_commit(),
        note: String::new(),
        options: item.options.clone(),
    };
    match entry.save(dir) {
        Ok((path, true)) => format!("  corpus: saved as {}\n", path.display()),
        Ok((path, false)) => format!("  corpus: already has it ({})\n", path.display()),
        Err(error) => format!("  corpus: could not save into {}: {error}\n", dir.display()),
    }
}

/// Every entry under `paths` (files, or folders of `*.json`), in path order.
pub fn load(paths: &[PathBuf]) -> Result<Vec<(PathBuf, Entry)>, String> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let listing =
                std::fs::read_dir(path).map_err(|e| format!("{}: {e}", path.display()))?;
            for entry in listing {
                let file = entry.map_err(|e| e.to_string())?.path();
                if file.extension().is_some_and(|ext| ext == "json") {
                    files.push(file);
                }
            }
        } else {
            files.push(path.clone());
        }
    }
    files.sort();
    files
        .into_iter()
        .map(|file| {
            let text =
                std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            let entry =
                serde_json::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?;
            Ok((file, entry))
        })
        .collect()
}

#[derive(Args, Debug)]
pub struct CorpusArgs {
    /// Corpus files or folders.
    #[arg(default_value = DEFAULT_DIR)]
    paths: Vec<PathBuf>,
    /// Replay in this many child processes at once (default: the machine's cores).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1024))]
    jobs: Option<u64>,
    /// Where report folders of failing replays go.
    #[arg(long, default_value = "sim-reports")]
    report_dir: PathBuf,
}

/// `detcd-sim corpus`: replays every entry; exits with the worst failure of a `fixed` entry.
pub fn replay(args: &CorpusArgs) -> i32 {
    let entries = match load(&args.paths) {
        Ok(entries) if entries.is_empty() => {
            eprintln!("error: no corpus entries under {:?}", args.paths);
            return crate::cli::EXIT_USAGE;
        }
        Ok(entries) => entries,
        Err(error) => {
            eprintln!("error: {error}");
            return crate::cli::EXIT_USAGE;
        }
    };
    let job = Job {
        check_determinism: false,
        verbose: false,
        report_dir: args.report_dir.clone(),
    };
    let mut items = entries.iter().map(|(path, entry)| Item {
        options: entry.options.clone(),
        replay: format!("scripts/sim corpus {}", path.display()),
    });
    let spread = Spread::new(args.jobs, 200);
    let mut worst = Verdict::Pass;
    let (mut fixed_failing, mut open_failing, mut open_passing) = (0, 0, 0);
    let mut results = entries.iter();
    let executed = sweep::execute(
        &mut items,
        Some(entries.len() as u64),
        &job,
        spread,
        |_, outcome| {
            let (path, entry) = results.next().expect("one outcome per entry");
            let verdict = outcome.record.verdict;
            let line = match (entry.status, verdict) {
                (Status::Fixed, Verdict::Pass) => "fixed, passes".to_string(),
                (Status::Fixed, failed) => {
                    fixed_failing += 1;
                    worst = worst.max(failed);
                    format!("FIXED BUT FAILS: {}\n{}", failed.name(), outcome.output)
                }
                (Status::Open, Verdict::Pass) => {
                    open_passing += 1;
                    "open, passes now: mark it fixed once its fix is in".to_string()
                }
                (Status::Open, failed) => {
                    open_failing += 1;
                    format!("open, still fails: {}", failed.name())
                }
            };
            println!("{}: {line}", path.display());
        },
    );
    if let Err(error) = executed {
        eprintln!("error: {error}");
        return crate::cli::EXIT_USAGE;
    }
    println!(
        "\n{} entries: {fixed_failing} fixed but failing, {open_failing} open and failing, {open_passing} open but passing",
        entries.len()
    );
    crate::cli::exit_code(worst)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::{FaultKind, RunSpec};

    fn entry(seed: u64, nodes: Option<usize>) -> Entry {
        let spec = RunSpec {
            nodes,
            faults: FaultKind::ALL.to_vec(),
            ops: 200,
            bugs: Vec::new(),
        };
        Entry {
            status: Status::Open,
            verdict: Verdict::Liveness,
            checkers: vec!["liveness".into()],
            found_by: crate::cli::replay_command(seed, &spec),
            detcd_commit: "abc".into(),
            note: String::new(),
            options: SwarmOptions::draw(seed, &spec),
        }
    }

    #[test]
    fn an_entry_is_saved_once_and_loads_back() {
        let dir = std::env::temp_dir().join(format!("detcd-corpus-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let first = entry(0x2a, Some(3));
        let (path, new) = first.save(&dir).unwrap();
        assert!(new);
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        assert!(
            name.starts_with("seed-0x2a-n3-") && name.ends_with(".json"),
            "{name}"
        );
        assert!(
            !first.save(&dir).unwrap().1,
            "the same run is not saved twice"
        );
        // The same seed on another cluster size is another run.
        let (other, new) = entry(0x2a, Some(1)).save(&dir).unwrap();
        assert!(new && other != path);
        let loaded = load(std::slice::from_ref(&dir)).unwrap();
        assert_eq!(loaded.len(), 2);
        assert!(loaded.iter().any(|(p, e)| *p == path && *e == first));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
