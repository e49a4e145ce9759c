//! A sweep's summary: one record per seed, the totals, the coverage, and what they add up to
//! (verdict counts, coverage gaps, the exit code). It is the same value whether the seeds ran in
//! this process, in child processes (`--jobs`), or in shards on many machines put together by
//! `detcd-sim merge`; it prints as the human table and serializes as `--json`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::cli::{self, EXIT_COVERAGE, EXIT_NONDETERMINISM};
use crate::coverage::Coverage;
use crate::options::RunSpec;
use crate::simulation::Verdict;

/// One seed's result, as the summary keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeedRecord {
    pub seed: u64,
    pub verdict: Verdict,
    /// Hex, so that JSON readers with double-precision numbers (jq, JavaScript) keep every bit.
    pub trace_hash: String,
    /// `--check-determinism`: the second run's hash, when it differed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub second_hash: Option<String>,
    /// What failed, for a seed that did not pass or was not deterministic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    /// The checkers that found a violation (empty for a crash or a hang without one).
    pub checkers: Vec<String>,
    /// What the sweep printed for the seed: options, violations, replay command.
    pub text: String,
    pub replay: String,
    /// The report folder, if one was written.
    #[serde(default)]
    pub report: Option<String>,
}

impl SeedRecord {
    pub fn failed(&self) -> bool {
        self.verdict != Verdict::Pass || self.second_hash.is_some()
    }
}

/// Sums over seeds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    pub seeds: u64,
    pub operations: u64,
    pub indeterminate: u64,
    /// Checks that gave up (an "unknown" linearizability search).
    pub unknown: u64,
    pub simulated_ns: u64,
}

impl Totals {
    pub fn add(&mut self, other: &Totals) {
        self.seeds += other.seeds;
        self.operations += other.operations;
        self.indeterminate += other.indeterminate;
        self.unknown += other.unknown;
        self.simulated_ns += other.simulated_ns;
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub detcd_commit: String,
    pub spec: RunSpec,
    pub first_seed: u64,
    pub shard: Option<(u64, u64)>,
    pub check_determinism: bool,
    pub require_coverage: bool,
    /// In seed order (position from `first_seed`).
    pub seeds: Vec<SeedRecord>,
    pub totals: Totals,
    pub coverage: Coverage,
    // The rest is derived from the above by `finish`.
    pub verdicts: BTreeMap<Verdict, u64>,
    pub nondeterministic: Vec<u64>,
    pub coverage_gaps: Vec<String>,
    pub exit_code: i32,
    /// Wall-clock seconds (for a merge, the slowest shard's).
    pub wall_s: f64,
    pub seeds_per_min: f64,
}

impl Summary {
    pub fn new(
        spec: RunSpec,
        first_seed: u64,
        shard: Option<(u64, u64)>,
        check_determinism: bool,
        require_coverage: bool,
    ) -> Summary {
        Summary {
            detcd_commit: detcd_commit(),
            spec,
            first_seed,
            shard,
            check_determinism,
            require_coverage,
            seeds: Vec::new(),
            totals: Totals::default(),
            coverage: Coverage::default(),
            verdicts: BTreeMap::new(),
            nondeterministic: Vec::new(),
            coverage_gaps: Vec::new(),
            exit_code: 0,
            wall_s: 0.0,
            seeds_per_min: 0.0,
        }
    }

    pub fn add(&mut self, record: SeedRecord, totals: &Totals, coverage: &Coverage) {
        self.seeds.push(record);
        self.totals.add(totals);
        self.coverage.add(coverage);
    }

    pub fn failed(&self) -> u64 {
        self.seeds
            .iter()
            .filter(|r| r.verdict != Verdict::Pass)
            .count() as u64
    }

    /// Computes the derived fields; `wall` is how long the sweep took.
    pub fn finish(&mut self, wall: Duration) {
        self.verdicts.clear();
        for record in &self.seeds {
            *self.verdicts.entry(record.verdict).or_default() += 1;
        }
        self.nondeterministic = self
            .seeds
            .iter()
            .filter(|r| r.second_hash.is_some())
            .map(|r| r.seed)
            .collect();
        self.coverage_gaps = self.coverage.gaps(&cli::sweep_kinds(&self.spec));
        let worst = self.verdicts.keys().max().copied().unwrap_or(Verdict::Pass);
        self.exit_code = if worst != Verdict::Pass {
            cli::exit_code(worst)
        } else if !self.nondeterministic.is_empty() {
            EXIT_NONDETERMINISM
        } else if self.require_coverage && !self.coverage_gaps.is_empty() {
            EXIT_COVERAGE
        } else {
            0
        };
        self.wall_s = wall.as_secs_f64();
        self.seeds_per_min = self.totals.seeds as f64 * 60.0 / self.wall_s.max(1e-9);
    }

    /// The sweep's speed, as the progress lines and the summary print it.
    pub fn speed(&self, wall: Duration) -> String {
        let wall_s = wall.as_secs_f64().max(1e-9);
        let simulated_s = self.totals.simulated_ns as f64 / 1e9;
        format!(
            "{:.1} seeds/min, {:.0}× simulated/wall ({simulated_s:.0} s simulated in {wall_s:.1} s)",
            self.totals.seeds as f64 * 60.0 / wall_s,
            simulated_s / wall_s,
        )
    }

    /// The table a sweep ends with: verdicts, totals and speed, coverage, gaps.
    pub fn human(&self) -> String {
        let mut text = format!("\n{:<13} {:>6}  seeds\n", "verdict", "count");
        for (verdict, count) in &self.verdicts {
            let list = if *verdict == Verdict::Pass {
                String::new()
            } else {
                let seeds: Vec<String> = self
                    .seeds
                    .iter()
                    .filter(|r| r.verdict == *verdict)
                    .take(8)
                    .map(|r| format!("{:#x}", r.seed))
                    .collect();
                seeds.join(" ") + if *count > 8 { " …" } else { "" }
            };
            text += &format!("{:<13} {count:>6}  {list}\n", verdict.name());
        }
        if !self.nondeterministic.is_empty() {
            let shown: Vec<String> = self
                .nondeterministic
                .iter()
                .map(|s| format!("{s:#x}"))
                .collect();
            text += &format!(
                "{:<13} {:>6}  {}\n",
                "nondeterministic",
                shown.len(),
                shown.join(" ")
            );
        }
        text += &format!(
            "{} seeds, {} operations ({} indeterminate), {} checks gave up; {}\n",
            self.totals.seeds,
            self.totals.operations,
            self.totals.indeterminate,
            self.totals.unknown,
            self.speed(Duration::from_secs_f64(self.wall_s))
        );
        text += &self.coverage.table(&cli::sweep_kinds(&self.spec));
        for gap in &self.coverage_gaps {
            text += &format!("COVERAGE GAP: {gap}\n");
        }
        text
    }

    /// The summary without what depends on the wall clock or on how the seeds were spread:
    /// what `--jobs` and `merge` must leave unchanged.
    pub fn outcome(&self) -> Summary {
        Summary {
            wall_s: 0.0,
            seeds_per_min: 0.0,
            seeds: self
                .seeds
                .iter()
                .cloned()
                .map(|mut record| {
                    if let Some(failure) = &mut record.failure {
                        failure.report = None;
                    }
                    record
                })
                .collect(),
            ..self.clone()
        }
    }
}

/// The detcd commit a sweep ran: `DETCD_COMMIT` if set (an image built without `.git`), else
/// `git rev-parse HEAD` where the sweep runs (`-dirty` with uncommitted changes), else "unknown".
pub fn detcd_commit() -> String {
    if let Ok(commit) = std::env::var("DETCD_COMMIT") {
        return commit;
    }
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .stderr(std::process::Stdio::null())
            .output()
            .ok()
            .filter(|out| out.status.success())
            .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    match git(&["rev-parse", "HEAD"]) {
        Some(head) => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|changes| !changes.is_empty());
            if dirty {
                format!("{head}-dirty")
            } else {
                head
            }
        }
        None => "unknown".to_string(),
    }
}
