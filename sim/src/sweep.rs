//! A sweep (`detcd-sim run`): its seeds — a range, or fresh seeds until `--for` is up, maybe one
//! `--shard` of them —, run in this process or in child processes (`--jobs`, [`crate::jobs`]),
//! and folded in seed order into one [`Summary`], so the result, the printed text and the exit
//! code do not depend on how many processes ran it. Failing seeds go to the corpus; the summary
//! goes to stdout, `--json` and `--junit`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Args;
use serde::{Deserialize, Serialize};

use crate::cli::{self, replay_command};
use crate::coverage::Coverage;
use crate::options::{RunSpec, SwarmOptions};
use crate::progress::{Extent, Printer};
use crate::simulation::{self, Verdict};
use crate::summary::{Failure, SeedRecord, Summary, Totals};
use crate::{corpus, junit, report};

/// How a sweep is spread over processes and time, and where its results go.
#[derive(Args, Debug)]
pub struct SweepArgs {
    /// Run seeds in this many child processes at once (default: the machine's cores).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1024))]
    jobs: Option<u64>,
    /// Seeds one child process runs before a fresh one takes over (a process grows with every
    /// seed it runs).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..))]
    seeds_per_process: u64,
    /// Run fresh seeds from --first-seed on until this much wall-clock time is up (e.g. 10m,
    /// 1h30m); --seeds, if given, still caps the count.
    #[arg(long = "for", value_parser = humantime::parse_duration)]
    run_for: Option<Duration>,
    /// Write the summary as JSON to FILE, or without FILE to stdout (the human text then goes
    /// to stderr).
    #[arg(long, value_name = "FILE", num_args = 0..=1, default_missing_value = "-")]
    json: Option<PathBuf>,
    /// Write a JUnit XML file: one test case per failing seed, with its replay command.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Where failing seeds are saved (one JSON file each) to be replayed as regressions
    /// [default: sim/corpus, except for a sweep with a planted bug, which then saves nothing].
    #[arg(long, value_name = "DIR")]
    corpus: Option<PathBuf>,
}

/// The seeds a sweep runs.
#[derive(Debug, Clone, Copy)]
pub struct Seeds {
    pub seed: Option<u64>,
    pub count: Option<u64>,
    pub first: u64,
    pub shard: Option<(u64, u64)>,
}

impl Seeds {
    /// Seeds at positions `p` from `first` (`p % n == i` for shard i/n): `count` of them (one
    /// `--seed` is a count of one), or, with `unbounded` (`--for` without `--seeds`), no end.
    pub fn iter(&self, unbounded: bool) -> Box<dyn Iterator<Item = u64>> {
        let (first, end) = match (self.seed, self.count, unbounded) {
            (Some(seed), _, _) => (seed, 1),
            (None, Some(count), _) => (self.first, count),
            (None, None, true) => (self.first, u64::MAX),
            (None, None, false) => (self.first, 1),
        };
        let (i, n) = self.shard.unwrap_or((0, 1));
        Box::new(
            (0..end)
                .filter(move |p| p % n == i)
                .map(move |p| first.wrapping_add(p)),
        )
    }

    /// How many seeds `iter(false)` yields.
    pub fn total(&self) -> u64 {
        let count = match self.seed {
            Some(_) => 1,
            None => self.count.unwrap_or(1),
        };
        let (i, n) = self.shard.unwrap_or((0, 1));
        count / n + u64::from(i < count % n)
    }
}

/// What every seed of a sweep is run with, besides its own options.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    pub check_determinism: bool,
    pub verbose: bool,
    pub report_dir: PathBuf,
}

/// One seed to run: its options and the command that replays it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Item {
    pub options: SwarmOptions,
    pub replay: String,
}

/// One seed's result, small enough to pass from a child process.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeedOutcome {
    pub record: SeedRecord,
    pub totals: Totals,
    pub coverage: Coverage,
    /// What a sweep prints for this seed (nothing for a quiet pass).
    pub output: String,
}

/// Runs one seed, as in a serial sweep.
pub fn run_seed(item: &Item, job: &Job) -> SeedOutcome {
    let options = &item.options;
    let seed = options.seed;
    let run = simulation::run(options);
    let mut output = String::new();
    let mut second_hash = None;
    if job.check_determinism {
        let again = simulation::run(options);
        if again.trace_hash != run.trace_hash {
            output += &format!(
                "NONDETERMINISTIC seed {seed:#x}: trace hash {:#018x} then {:#018x}\n  replay: {}\n",
                run.trace_hash, again.trace_hash, item.replay
            );
            if let Some((index, (first, second))) = run
                .trace
                .iter()
                .zip(&again.trace)
                .enumerate()
                .find(|(_, (a, b))| a != b)
            {
                output +=
                    &format!("  first difference, event {index}:\n    {first:?}\n    {second:?}\n");
            }
            second_hash = Some(format!("{:#018x}", again.trace_hash));
        }
    }
    if job.verbose {
        output += &format!(
            "seed {seed:#x} {} sim {:.1}s wall {:.2}s ops {} hash {:#018x}\n  options: {}\n",
            run.verdict.name(),
            run.simulated.as_secs_f64(),
            run.wall.as_secs_f64(),
            run.history.operations.len(),
            run.trace_hash,
            options.describe()
        );
        for unknown in &run.findings.unknown {
            output += &format!("  unknown: {unknown}\n");
        }
    }
    let mut failure = None;
    if run.verdict != Verdict::Pass || second_hash.is_some() {
        let text = cli::failure_text(&run, &item.replay);
        let mut report = None;
        if run.verdict != Verdict::Pass {
            output += &text;
            match report::write(&job.report_dir, &run, &text) {
                Ok(dir) => {
                    output += &format!(
                        "  report: {} (re-check: scripts/sim check --report {})\n",
                        dir.display(),
                        dir.display()
                    );
                    report = Some(dir.display().to_string());
                }
                Err(error) => output += &format!("  report: could not write: {error}\n"),
            }
        }
        let mut checkers: Vec<String> = run
            .findings
            .violations
            .iter()
            .map(|v| v.checker.to_string())
            .collect();
        checkers.dedup();
        failure = Some(Failure {
            checkers,
            text,
            replay: item.replay.clone(),
            report,
        });
    }
    SeedOutcome {
        record: SeedRecord {
            seed,
            verdict: run.verdict,
            trace_hash: format!("{:#018x}", run.trace_hash),
            second_hash,
            failure,
        },
        totals: Totals {
            seeds: 1,
            operations: run.history.operations.len() as u64,
            indeterminate: run
                .history
                .operations
                .iter()
                .filter(|op| op.is_indeterminate())
                .count() as u64,
            unknown: run.findings.unknown.len() as u64,
            simulated_ns: run.simulated.as_nanos() as u64,
        },
        coverage: run.coverage,
        output,
    }
}

/// The outcome of a seed whose worker process died running it.
pub fn died(item: &Item, how: &str) -> SeedOutcome {
    let seed = item.options.seed;
    let text = format!(
        "FAIL seed {seed:#x}: crash\n  options: {}\n  the worker process running it {how}\n  replay: {}\n",
        item.options.describe(),
        item.replay
    );
    SeedOutcome {
        record: SeedRecord {
            seed,
            verdict: Verdict::Crash,
            trace_hash: format!("{:#018x}", 0),
            second_hash: None,
            failure: Some(Failure {
                checkers: Vec::new(),
                text: text.clone(),
                replay: item.replay.clone(),
                report: None,
            }),
        },
        totals: Totals {
            seeds: 1,
            ..Totals::default()
        },
        coverage: Coverage::default(),
        output: text,
    }
}

/// How many processes run the seeds.
#[derive(Debug, Clone, Copy)]
pub struct Spread {
    pub jobs: usize,
    pub per_process: usize,
}

impl Spread {
    /// `jobs` processes (default: the machine's cores) of at most `per_process` seeds.
    pub fn new(jobs: Option<u64>, per_process: u64) -> Spread {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Spread {
            jobs: jobs.map_or(cores, |jobs| jobs as usize),
            per_process: per_process as usize,
        }
    }
}

/// Runs `items` and calls `each` with every one and its outcome, in the items' order: here, when
/// `count` (if known) is one seed, or `--jobs 1` with at most one process's worth; in child
/// processes otherwise.
pub fn execute(
    items: &mut dyn Iterator<Item = Item>,
    count: Option<u64>,
    job: &Job,
    spread: Spread,
    mut each: impl FnMut(Item, SeedOutcome),
) -> Result<(), String> {
    let here = count.is_some_and(|count| {
        count <= 1 || (spread.jobs == 1 && count <= spread.per_process as u64)
    });
    if here {
        let _muted = crate::quiet::Muted::stderr();
        for item in items {
            let outcome = run_seed(&item, job);
            each(item, outcome);
        }
        return Ok(());
    }
    // Children finish out of order; hold each outcome until all before it are in.
    let mut waiting = BTreeMap::new();
    let mut next = 0;
    crate::jobs::run(
        items,
        job,
        spread.jobs,
        spread.per_process,
        |index, item, outcome| {
            waiting.insert(index, (item, outcome));
            while let Some((item, outcome)) = waiting.remove(&next) {
                each(item, outcome);
                next += 1;
            }
        },
    )?;
    assert!(waiting.is_empty(), "every position up to the last was run");
    Ok(())
}

/// `detcd-sim run`: the sweep, its summary and outputs, its exit code.
pub fn run(
    seeds: Seeds,
    spec: &RunSpec,
    job: &Job,
    require_coverage: bool,
    args: &SweepArgs,
) -> i32 {
    let spread = Spread::new(args.jobs, args.seeds_per_process);
    let started = Instant::now();
    let unbounded = args.run_for.is_some() && seeds.seed.is_none() && seeds.count.is_none();
    let count = (!unbounded).then(|| seeds.total());
    let extent = match (args.run_for, count) {
        (Some(limit), _) => Extent::For(limit),
        (None, count) => Extent::Seeds(count.expect("bounded without --for")),
    };
    let deadline = args.run_for.map(|limit| started + limit);
    let mut items = seeds
        .iter(unbounded)
        .take_while(|_| deadline.is_none_or(|deadline| Instant::now() < deadline))
        .map(|seed| Item {
            options: SwarmOptions::draw(seed, spec),
            replay: replay_command(seed, spec),
        });
    // A planted bug's failures are the point of its sweep, not regressions to keep.
    let default_corpus = spec.bugs.is_empty().then(|| Path::new(corpus::DEFAULT_DIR));
    let corpus_dir = args.corpus.as_deref().or(default_corpus);
    let json_on_stdout = args.json.as_deref() == Some(Path::new("-"));
    let mut printer = Printer::new(json_on_stdout, extent);
    let mut summary = Summary::new(
        spec.clone(),
        seeds.seed.unwrap_or(seeds.first),
        seeds.shard,
        job.check_determinism,
        require_coverage,
    );
    let executed = execute(&mut items, count, job, spread, |item, outcome| {
        printer.print(&outcome.output);
        if let Some(dir) = corpus_dir.filter(|_| outcome.record.failed()) {
            printer.print(&corpus::save_found(dir, &item, &outcome.record));
        }
        summary.add(outcome.record, &outcome.totals, &outcome.coverage);
        let status = status(&summary, started);
        printer.seed_done(summary.totals.seeds, &status);
    });
    if let Err(error) = executed {
        eprintln!("error: {error}");
        return cli::EXIT_USAGE;
    }
    printer.finish(summary.totals.seeds, &status(&summary, started));
    summary.finish(started.elapsed());
    finish_outputs(
        &summary,
        &mut printer,
        args.json.as_deref(),
        args.junit.as_deref(),
    )
}

fn status(summary: &Summary, started: Instant) -> String {
    format!(
        "{} failed, {}",
        summary.failed(),
        summary.speed(started.elapsed())
    )
}

/// Prints the summary, writes `--json` and `--junit`, and returns the exit code (also `merge`'s).
pub fn finish_outputs<'a>(
    summary: &Summary,
    printer: &mut Printer,
    json: Option<&'a Path>,
    junit_path: Option<&'a Path>,
) -> i32 {
    printer.print(&summary.human());
    let text = serde_json::to_string_pretty(summary).expect("summaries serialize") + "\n";
    // Into a folder that may not exist yet (a shard's report folder, before any failure).
    let write = |path: &'a Path, text: String| {
        let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
        parent
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(path, text))
            .map_err(|e| (path, e))
    };
    let mut written = Ok(());
    match json {
        Some(path) if path == Path::new("-") => print!("{text}"),
        Some(path) => written = write(path, text),
        None => {}
    }
    if let (Some(path), Ok(())) = (junit_path, &written) {
        written = write(path, junit::to_xml(summary));
    }
    match written {
        Ok(()) => summary.exit_code,
        Err((path, error)) => {
            eprintln!("error: {}: {error}", path.display());
            cli::EXIT_USAGE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn n_shards_together_run_each_seed_exactly_once() {
        for (count, n) in [(10, 4), (3, 4), (12, 1), (7, 7), (1000, 3)] {
            let whole = Seeds {
                seed: None,
                count: Some(count),
                first: 5,
                shard: None,
            };
            let mut union: Vec<u64> = Vec::new();
            for i in 0..n {
                let shard = Seeds {
                    shard: Some((i, n)),
                    ..whole
                };
                let seeds: Vec<u64> = shard.iter(false).collect();
                assert_eq!(
                    seeds.len() as u64,
                    shard.total(),
                    "{count} seeds, shard {i}/{n}"
                );
                union.extend(seeds);
            }
            union.sort();
            assert_eq!(union, whole.iter(false).collect::<Vec<_>>(), "{count}/{n}");
            assert_eq!(union, (5..5 + count).collect::<Vec<_>>());
        }
    }

    #[test]
    fn a_sweep_for_a_time_has_no_last_seed_unless_capped() {
        let seeds = Seeds {
            seed: None,
            count: None,
            first: 1,
            shard: Some((1, 2)),
        };
        assert_eq!(seeds.iter(false).collect::<Vec<_>>(), Vec::<u64>::new());
        let endless: Vec<u64> = seeds.iter(true).take(3).collect();
        assert_eq!(endless, vec![2, 4, 6]);
        let capped = Seeds {
            count: Some(5),
            ..seeds
        };
        assert_eq!(capped.iter(true).collect::<Vec<_>>(), vec![2, 4]);
    }
}
