//! The command line: `run`, `replay`, `shrink`, `check`, `merge` and `corpus`, their flags, and
//! the exit codes (a sweep itself is `sweep`).
//!
//! Exit codes (a sweep exits with the worst seed's): 0 all seeds passed · 1 correctness (a checker
//! found a violation) · 2 bad command line · 3 liveness (no progress after heal, or a hang) ·
//! 4 crash (a member panicked outside an armed failpoint) · 5 nondeterminism (`--check-determinism`) ·
//! 6 coverage (`--require-coverage`: a failpoint never fired, or a fault kind never injected).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::options::{FaultKind, RunSpec, SwarmOptions, CLUSTER_SIZES};
use crate::simulation::{self, SeedRun, Verdict};
use crate::{report, trace, workload};

pub const EXIT_CORRECTNESS: i32 = 1;
pub const EXIT_USAGE: i32 = 2;
pub const EXIT_LIVENESS: i32 = 3;
pub const EXIT_CRASH: i32 = 4;
pub const EXIT_NONDETERMINISM: i32 = 5;
pub const EXIT_COVERAGE: i32 = 6;

#[derive(Parser, Debug)]
#[command(
    name = "detcd-sim",
    about = "detcd's deterministic simulator: real detcd members inside madsim, seeded faults, checked histories"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run seeds and check each; failing seeds print a replay command and write a report folder.
    Run {
        #[command(flatten)]
        seeds: SeedArgs,
        #[command(flatten)]
        spec: SpecArgs,
        /// Run each seed twice and require the same trace hash.
        #[arg(long)]
        check_determinism: bool,
        /// Fail the sweep (exit 6) if a failpoint never fired or a drawn fault kind was never
        /// injected: a point the sweep never reaches is a point it never tested.
        #[arg(long)]
        require_coverage: bool,
        /// Print every seed's options and result, not only failures.
        #[arg(short, long)]
        verbose: bool,
        /// Where failure report folders go.
        #[arg(long, default_value = "sim-reports")]
        report_dir: PathBuf,
        #[command(flatten)]
        sweep: crate::sweep::SweepArgs,
    },
    /// Run one seed again, print its timeline and trace hash.
    Replay {
        #[command(flatten)]
        source: RunSource,
        /// Also write the timeline as JSON lines here.
        #[arg(long)]
        trace: Option<PathBuf>,
        /// Also write a picture of the run here: one self-contained HTML page.
        #[arg(long)]
        html: Option<PathBuf>,
        /// Also print the servers' own logs that this filter selects (tracing's EnvFilter syntax,
        /// e.g. `detcd::server::lease=debug,detcd=info`), stamped with simulated time.
        #[arg(long, value_name = "FILTER")]
        log: Option<String>,
    },
    /// Search for a smaller run that fails the same checker; write it as a schedule file.
    Shrink {
        #[command(flatten)]
        source: RunSource,
        /// The checker the smaller run must fail (default: the first the run fails).
        #[arg(long)]
        checker: Option<String>,
        /// Re-runs the search may make.
        #[arg(long, default_value_t = 200)]
        max_runs: usize,
        /// Where the smallest run's options and schedule go.
        #[arg(long, default_value = "schedule.json")]
        out: PathBuf,
    },
    /// Re-run the checkers on a failure report folder.
    Check {
        #[arg(long)]
        report: PathBuf,
    },
    /// Combine the JSON summaries (and report folders) of a sweep's shards into one summary.
    Merge(crate::merge::MergeArgs),
    /// Replay the corpus of failing seeds as regressions.
    Corpus(crate::corpus::CorpusArgs),
    /// Runs seeds for a parent `run` (`--jobs`); not for people.
    #[command(hide = true)]
    Worker,
}

#[derive(Args, Debug)]
struct SeedArgs {
    /// One seed (decimal or 0x hex).
    #[arg(long, value_parser = parse_seed, conflicts_with = "seeds")]
    seed: Option<u64>,
    /// How many seeds, starting at --first-seed.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    seeds: Option<u64>,
    #[arg(long, value_parser = parse_seed, default_value = "1")]
    first_seed: u64,
    /// Run only the i-th of n interleaved shares of the seeds, e.g. 0/4.
    #[arg(long, value_parser = parse_shard)]
    shard: Option<(u64, u64)>,
}

/// Which run: a seed (with the run flags), a schedule file, or a failure report folder.
#[derive(Args, Debug)]
struct RunSource {
    /// The seed (decimal or 0x hex).
    #[arg(long, value_parser = parse_seed, required_unless_present_any = ["schedule", "report"])]
    seed: Option<u64>,
    /// Follow this file's options and fault schedule (as `shrink` writes it) instead of drawing
    /// them from a seed; the run flags are ignored.
    #[arg(long, conflicts_with_all = ["seed", "report"])]
    schedule: Option<PathBuf>,
    /// The run of a failure report folder, with the schedule it drew.
    #[arg(long, conflicts_with_all = ["seed", "schedule"])]
    report: Option<PathBuf>,
    #[command(flatten)]
    spec: SpecArgs,
}

impl RunSource {
    /// The run's options, and the flags that reproduce them.
    fn into_options(self) -> Result<(SwarmOptions, RunSpec), String> {
        let file = match (&self.schedule, &self.report) {
            (Some(path), _) => Some(path.clone()),
            (None, Some(dir)) if dir.join("schedule.json").exists() => {
                Some(dir.join("schedule.json"))
            }
            (None, Some(dir)) => Some(dir.join("options.json")),
            (None, None) => None,
        };
        let options: SwarmOptions = match (file, self.seed) {
            (Some(path), _) => {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?
            }
            (None, Some(seed)) => SwarmOptions::draw(seed, &self.spec.into_spec()?),
            (None, None) => return Err("give --seed, --schedule or --report".to_string()),
        };
        for bug in &options.bugs {
            check_bug(bug)?;
        }
        let spec = spec_of(&options);
        Ok((options, spec))
    }
}

/// The flags that draw `options` again from its seed.
fn spec_of(options: &SwarmOptions) -> RunSpec {
    RunSpec {
        nodes: Some(options.nodes),
        faults: options.faults.iter().map(|(kind, _)| *kind).collect(),
        ops: options.ops,
        bugs: options.bugs.clone(),
    }
}

#[derive(Args, Debug)]
struct SpecArgs {
    /// Cluster size; drawn per seed when absent.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=7))]
    nodes: Option<u64>,
    /// Fault kinds to draw from (comma-separated), "all" or "none".
    #[arg(long, default_value = "all", value_parser = parse_faults)]
    faults: Faults,
    /// The workload (only "kv" so far).
    #[arg(long, default_value = "kv", value_parser = ["kv"])]
    workload: String,
    /// Client operations per seed.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    ops: u64,
    /// Switch on a planted bug (needs the sim-bugs feature); repeatable.
    #[arg(long = "bug")]
    bugs: Vec<String>,
}

#[derive(Debug, Clone)]
struct Faults(Vec<FaultKind>);

pub fn parse_seed(text: &str) -> Result<u64, String> {
    let parsed = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    parsed.map_err(|_| format!("{text:?} is not a seed: use decimal or 0x-prefixed hex"))
}

fn parse_shard(text: &str) -> Result<(u64, u64), String> {
    let bad = || format!("{text:?} is not a shard: use i/n with 0 <= i < n, e.g. 0/4");
    let (i, n) = text.split_once('/').ok_or_else(bad)?;
    let (i, n) = (i.parse().map_err(|_| bad())?, n.parse().map_err(|_| bad())?);
    if n == 0 || i >= n {
        return Err(bad());
    }
    Ok((i, n))
}

fn parse_faults(text: &str) -> Result<Faults, String> {
    match text {
        "none" => return Ok(Faults(Vec::new())),
        "all" => return Ok(Faults(FaultKind::ALL.to_vec())),
        _ => {}
    }
    let mut kinds = Vec::new();
    for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let kind = FaultKind::from_name(name).ok_or_else(|| {
            let known: Vec<&str> = FaultKind::ALL.iter().map(|k| k.name()).collect();
            format!(
                "unknown fault {name:?}; known: {}, or all, or none",
                known.join(", ")
            )
        })?;
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    Ok(Faults(kinds))
}

impl SpecArgs {
    fn into_spec(self) -> Result<RunSpec, String> {
        let nodes = self.nodes.map(|n| n as usize);
        for bug in &self.bugs {
            check_bug(bug)?;
        }
        Ok(RunSpec {
            nodes,
            faults: self.faults.0,
            ops: self.ops as usize,
            bugs: self.bugs,
        })
    }
}

#[cfg(feature = "sim-bugs")]
fn check_bug(name: &str) -> Result<(), String> {
    detcd::bugs::Bug::from_name(name)
        .map(|_| ())
        .ok_or_else(|| {
            let known: Vec<&str> = detcd::bugs::Bug::ALL.iter().map(|b| b.name()).collect();
            format!("unknown bug {name:?}; known: {}", known.join(", "))
        })
}

#[cfg(not(feature = "sim-bugs"))]
fn check_bug(name: &str) -> Result<(), String> {
    Err(format!(
        "--bug {name}: this build has no planted bugs; build with --features sim-bugs (scripts/sim does)"
    ))
}

/// The flags that reproduce `spec` (the seed is added by the caller).
pub fn spec_flags(spec: &RunSpec) -> String {
    let mut flags = Vec::new();
    if let Some(nodes) = spec.nodes {
        flags.push(format!("--nodes {nodes}"));
    }
    let faults: Vec<&str> = spec.faults.iter().map(|k| k.name()).collect();
    flags.push(format!(
        "--faults {}",
        if faults.is_empty() {
            "none".to_string()
        } else {
            faults.join(",")
        }
    ));
    flags.push(format!("--ops {}", spec.ops));
    for bug in &spec.bugs {
        flags.push(format!("--bug {bug}"));
    }
    flags.join(" ")
}

pub fn replay_command(seed: u64, spec: &RunSpec) -> String {
    format!("scripts/sim replay --seed {seed:#x} {}", spec_flags(spec))
}

pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return if error.use_stderr() { EXIT_USAGE } else { 0 };
        }
    };
    let usage = |error: String| {
        eprintln!("error: {error}");
        EXIT_USAGE
    };
    match cli.command {
        Command::Run {
            seeds,
            spec,
            check_determinism,
            require_coverage,
            verbose,
            report_dir,
            sweep,
        } => match spec.into_spec() {
            Ok(spec) => {
                let job = crate::sweep::Job {
                    check_determinism,
                    verbose,
                    report_dir,
                };
                crate::sweep::run(seeds.seeds(), &spec, &job, require_coverage, &sweep)
            }
            Err(error) => usage(error),
        },
        Command::Replay {
            source,
            trace,
            html,
            log,
        } => match source.into_options() {
            Ok((options, spec)) => {
                if let Some(filter) = log {
                    if let Err(error) = crate::server_log::install(&filter) {
                        return usage(error);
                    }
                }
                replay(&options, &spec, trace, html)
            }
            Err(error) => usage(error),
        },
        Command::Shrink {
            source,
            checker,
            max_runs,
            out,
        } => match source.into_options() {
            Ok((options, _)) => {
                crate::shrink::command(&options, checker.as_deref(), max_runs, &out)
            }
            Err(error) => usage(error),
        },
        Command::Check { report } => check(&report),
        Command::Merge(args) => crate::merge::main(&args),
        Command::Corpus(args) => crate::corpus::replay(&args),
        Command::Worker => crate::jobs::worker_main(),
    }
}

impl SeedArgs {
    fn seeds(&self) -> crate::sweep::Seeds {
        crate::sweep::Seeds {
            seed: self.seed,
            count: self.seeds,
            first: self.first_seed,
            shard: self.shard,
        }
    }
}

pub fn exit_code(verdict: Verdict) -> i32 {
    match verdict {
        Verdict::Pass => 0,
        Verdict::Liveness => EXIT_LIVENESS,
        Verdict::Crash => EXIT_CRASH,
        Verdict::Correctness => EXIT_CORRECTNESS,
    }
}

/// What a failing seed prints: seed, options, the failed checks with their operations, the replay
/// command.
pub fn failure_summary(run: &SeedRun, spec: &RunSpec) -> String {
    failure_text(run, &replay_command(run.options.seed, spec))
}

/// [`failure_summary`] with the command that replays it.
pub fn failure_text(run: &SeedRun, replay: &str) -> String {
    let mut text = format!(
        "FAIL seed {:#x}: {}\n  options: {}\n",
        run.options.seed,
        run.verdict.name(),
        run.options.describe()
    );
    if let Some(panic) = &run.panic {
        text += &format!("  panic: {panic}\n");
    }
    let by_id: BTreeMap<usize, &crate::history::Operation> = run
        .history
        .operations
        .iter()
        .map(|op| (op.id, op))
        .collect();
    for violation in &run.findings.violations {
        text += &format!("  {}: {}\n", violation.checker, violation.message);
        for id in &violation.operations {
            if let Some(op) = by_id.get(id) {
                text += &format!(
                    "    client {} [{}ms..{}ms] {}\n",
                    op.client,
                    op.invoke_ns / 1_000_000,
                    op.complete_ns / 1_000_000,
                    workload::describe(op)
                );
            }
        }
    }
    text += &match run.options.schedule {
        None => format!("  replay: {replay}\n"),
        Some(_) => {
            "  replay: scripts/sim replay --schedule FILE (the file with this run's schedule)\n"
                .to_string()
        }
    };
    text
}

/// The fault kinds a sweep of `spec` draws from on some cluster size it runs.
pub fn sweep_kinds(spec: &RunSpec) -> Vec<FaultKind> {
    let largest = spec
        .nodes
        .unwrap_or_else(|| *CLUSTER_SIZES.iter().max().expect("sizes"));
    spec.faults
        .iter()
        .copied()
        .filter(|kind| kind.applies_to(largest))
        .collect()
}

fn replay(
    options: &SwarmOptions,
    spec: &RunSpec,
    trace_path: Option<PathBuf>,
    html: Option<PathBuf>,
) -> i32 {
    println!(
        "seed {:#x}\noptions: {}\n",
        options.seed,
        options.describe()
    );
    let run = {
        let _muted = crate::quiet::Muted::stderr();
        simulation::run(options)
    };
    print!("{}", trace::to_timeline(&run.trace));
    if let Some(path) = trace_path {
        if let Err(error) = std::fs::write(&path, trace::to_json_lines(&run.trace)) {
            eprintln!("error: {}: {error}", path.display());
            return EXIT_USAGE;
        }
    }
    if let Some(path) = html {
        if let Err(error) = std::fs::write(&path, crate::picture::page(&run)) {
            eprintln!("error: {}: {error}", path.display());
            return EXIT_USAGE;
        }
        println!("picture: {}", path.display());
    }
    if run.verdict != Verdict::Pass {
        print!("\n{}", failure_summary(&run, spec));
    }
    println!(
        "\nverdict: {}  simulated {:.1}s in {:.2}s wall\ntrace hash: {:#018x}",
        run.verdict.name(),
        run.simulated.as_secs_f64(),
        run.wall.as_secs_f64(),
        run.trace_hash
    );
    exit_code(run.verdict)
}

fn check(dir: &std::path::Path) -> i32 {
    let (options, history, events) = match report::read(dir) {
        Ok(report) => report,
        Err(error) => {
            eprintln!("error: cannot read report: {error}");
            return EXIT_USAGE;
        }
    };
    let run = simulation::finish(
        options,
        history,
        events,
        None,
        Duration::ZERO,
        Duration::ZERO,
    );
    let spec = spec_of(&run.options);
    if run.verdict == Verdict::Pass {
        println!(
            "seed {:#x}: every checker passes on this history",
            run.options.seed
        );
    } else {
        print!("{}", failure_summary(&run, &spec));
    }
    exit_code(run.verdict)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_are_decimal_or_hex() {
        assert_eq!(parse_seed("42"), Ok(42));
        assert_eq!(parse_seed("0x2a"), Ok(42));
        assert!(parse_seed("0xzz").is_err());
        assert!(parse_seed("-1").is_err());
    }

    #[test]
    fn an_unknown_fault_is_named_in_the_error() {
        let error = parse_faults("crash,meteor").unwrap_err();
        assert!(error.contains("meteor"), "{error}");
        assert_eq!(parse_faults("none").unwrap().0, Vec::new());
    }

    #[test]
    fn a_shard_must_be_below_its_count() {
        assert_eq!(parse_shard("1/4"), Ok((1, 4)));
        assert!(parse_shard("4/4").is_err());
        assert!(parse_shard("0/0").is_err());
    }

    #[test]
    fn zero_nodes_and_bad_flags_are_usage_errors() {
        for args in [
            vec!["detcd-sim", "run", "--nodes", "0"],
            vec!["detcd-sim", "run", "--seed", "x"],
            vec!["detcd-sim", "run", "--faults", "meteor"],
        ] {
            let error = Cli::try_parse_from(args).unwrap_err();
            assert_eq!(error.exit_code(), EXIT_USAGE);
        }
    }

    #[test]
    fn a_sweep_of_one_member_is_not_asked_for_partitions() {
        let spec = RunSpec {
            nodes: Some(1),
            faults: FaultKind::ALL.to_vec(),
            ops: 1,
            bugs: Vec::new(),
        };
        let kinds = sweep_kinds(&spec);
        assert!(!kinds.contains(&FaultKind::Partition));
        assert!(kinds.contains(&FaultKind::Crash));
        let drawn = RunSpec {
            nodes: None,
            ..spec
        };
        assert_eq!(sweep_kinds(&drawn), FaultKind::ALL.to_vec());
    }

    #[test]
    fn a_replay_command_reproduces_the_run_spec() {
        let spec = RunSpec {
            nodes: Some(1),
            faults: vec![FaultKind::Crash, FaultKind::Disk],
            ops: 50,
            bugs: vec!["keep-torn-tail".into()],
        };
        assert_eq!(
            replay_command(42, &spec),
            "scripts/sim replay --seed 0x2a --nodes 1 --faults crash,disk --ops 50 --bug keep-torn-tail"
        );
    }
}
