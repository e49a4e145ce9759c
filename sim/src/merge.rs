//! `detcd-sim merge DIR…`: one summary from the shards of a sweep that ran on many machines
//! (`--shard i/n --json DIR/summary.json --report-dir DIR` on each; sim/deploy/). The shards must
//! be one sweep — same spec, first seed, checks and commit, each of the n shards once — and
//! together they give the summary a serial run gives: the same seeds in the same order, the
//! same verdicts, hashes, totals, coverage and exit code.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use crate::progress::{Extent, Printer};
use crate::summary::Summary;

#[derive(Args, Debug)]
pub struct MergeArgs {
    /// Shard folders (each holding summary.json and its report folders) or summary files.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Write the merged summary as JSON to FILE, or without FILE to stdout.
    #[arg(long, value_name = "FILE", num_args = 0..=1, default_missing_value = "-")]
    json: Option<PathBuf>,
    /// Write a JUnit XML file of the merged sweep.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
}

pub fn main(args: &MergeArgs) -> i32 {
    let merged = args
        .paths
        .iter()
        .map(|path| read(path).map(|summary| (path.clone(), summary)))
        .collect::<Result<Vec<_>, String>>()
        .and_then(merge);
    match merged {
        Ok(summary) => {
            let json_on_stdout = args.json.as_deref() == Some(Path::new("-"));
            let mut printer = Printer::new(json_on_stdout, Extent::Seeds(summary.totals.seeds));
            crate::sweep::finish_outputs(
                &summary,
                &mut printer,
                args.json.as_deref(),
                args.junit.as_deref(),
            )
        }
        Err(error) => {
            eprintln!("error: {error}");
            crate::cli::EXIT_USAGE
        }
    }
}

/// Reads a shard's summary: `path` itself, or `path/summary.json`. Report folders that moved
/// with the shard's folder (the path it wrote is gone, `path/seed-…` is there) are found there.
fn read(path: &Path) -> Result<Summary, String> {
    let (file, dir) = if path.is_dir() {
        (path.join("summary.json"), Some(path))
    } else {
        (path.to_path_buf(), None)
    };
    let text = std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
    let mut summary: Summary =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?;
    for failure in summary.seeds.iter_mut().filter_map(|r| r.failure.as_mut()) {
        let moved = failure.report.as_deref().and_then(|report| {
            let name = Path::new(report).file_name()?;
            let here = dir?.join(name);
            (!Path::new(report).exists() && here.exists()).then_some(here)
        });
        if let Some(here) = moved {
            failure.report = Some(here.display().to_string());
        }
    }
    Ok(summary)
}

/// Puts the shards of one sweep together.
pub fn merge(parts: Vec<(PathBuf, Summary)>) -> Result<Summary, String> {
    let (first_path, first) = parts.first().ok_or("nothing to merge")?;
    for (path, part) in &parts[1..] {
        let differs = [
            ("spec", part.spec != first.spec),
            ("first seed", part.first_seed != first.first_seed),
            (
                "--check-determinism",
                part.check_determinism != first.check_determinism,
            ),
            (
                "--require-coverage",
                part.require_coverage != first.require_coverage,
            ),
            ("detcd commit", part.detcd_commit != first.detcd_commit),
        ];
        if let Some((what, _)) = differs.iter().find(|(_, differs)| *differs) {
            return Err(format!(
                "{} and {} are not shards of one sweep: their {what} differs",
                first_path.display(),
                path.display()
            ));
        }
    }
    check_shards(&parts)?;
    let mut merged = Summary {
        shard: None,
        seeds: Vec::new(),
        totals: Default::default(),
        coverage: Default::default(),
        ..first.clone()
    };
    let mut wall: f64 = 0.0;
    let mut records = Vec::new();
    for (_, part) in &parts {
        merged.totals.add(&part.totals);
        merged.coverage.add(&part.coverage);
        wall = wall.max(part.wall_s);
        records.extend(part.seeds.iter().cloned());
    }
    let start = first.first_seed;
    records.sort_by_key(|r| r.seed.wrapping_sub(start));
    if let Some(twice) = records.windows(2).find(|pair| pair[0].seed == pair[1].seed) {
        return Err(format!("seed {:#x} is in two shards", twice[0].seed));
    }
    merged.seeds = records;
    merged.finish(Duration::from_secs_f64(wall));
    Ok(merged)
}

/// Either one whole sweep, or each of n shards exactly once.
fn check_shards(parts: &[(PathBuf, Summary)]) -> Result<(), String> {
    let shards: Vec<Option<(u64, u64)>> = parts.iter().map(|(_, s)| s.shard).collect();
    if shards.iter().any(Option::is_none) {
        return match parts {
            [_] => Ok(()),
            _ => Err("a whole sweep (no --shard) cannot be merged with others".into()),
        };
    }
    let n = shards[0].expect("checked").1;
    let mut seen = vec![Vec::new(); n as usize];
    for ((path, _), shard) in parts.iter().zip(&shards) {
        let (i, count) = shard.expect("checked");
        if count != n {
            return Err(format!(
                "{} is shard {i}/{count}, the others are of {n}",
                path.display()
            ));
        }
        seen[i as usize].push(path.display().to_string());
    }
    let missing: Vec<String> = (0..n)
        .filter(|&i| seen[i as usize].is_empty())
        .map(|i| format!("{i}/{n}"))
        .collect();
    if !missing.is_empty() {
        return Err(format!("missing shard {}", missing.join(", ")));
    }
    if let Some((i, paths)) = seen.iter().enumerate().find(|(_, paths)| paths.len() > 1) {
        return Err(format!("shard {i}/{n} given twice: {}", paths.join(", ")));
    }
    Ok(())
}
