//! The sweep's command line end to end, on the detcd-sim binary: `--jobs` and `merge` change
//! nothing in a sweep's result, `--junit` and the corpus record its failing seeds, and the corpus
//! replays them. Few one-member seeds, to keep CI short; the 100-seed `--jobs` comparison is in
//! sim/README.md.
//!
//! Run: `CARGO_TARGET_DIR=target/sim RUSTFLAGS="--cfg madsim" cargo test -p detcd-sim --release --features sim-bugs --test sweep_cli`
#![cfg(madsim)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use detcd_sim::summary::Summary;

const SEEDS: &str = "12";

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("detcd-sweep-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn sim(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_detcd-sim"))
        .args(args)
        .current_dir(dir)
        .env("DETCD_COMMIT", "test")
        .output()
        .expect("detcd-sim runs")
}

fn summary(path: &Path) -> Summary {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A sweep's printed text without the speed, which is the wall clock's.
fn text_without_speed(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| line.split("; ").next().unwrap_or(line))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn jobs_and_shards_merged_give_the_serial_result() {
    let dir = scratch("spread");
    let run = |extra: &[&str]| {
        let mut args = vec!["run", "--seeds", SEEDS, "--nodes", "1"];
        args.extend_from_slice(extra);
        let output = sim(&dir, &args);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        output
    };
    let serial_text = run(&["--jobs", "1", "--json", "serial.json"]);
    let parallel_text = run(&[
        "--jobs",
        "2",
        "--seeds-per-process",
        "5",
        "--json",
        "jobs2.json",
    ]);
    let serial = summary(&dir.join("serial.json"));
    let parallel = summary(&dir.join("jobs2.json"));
    assert_eq!(serial.seeds.len(), 12);
    assert!(serial.seeds.iter().all(|r| r.trace_hash.starts_with("0x")));
    assert_eq!(serial.outcome(), parallel.outcome());
    assert_eq!(
        text_without_speed(&serial_text),
        text_without_speed(&parallel_text)
    );

    let shards: Vec<String> = (0..4).map(|i| format!("shard-{i}")).collect();
    for (i, shard) in shards.iter().enumerate() {
        let summary_path = format!("{shard}/summary.json");
        run(&[
            "--shard",
            &format!("{i}/4"),
            "--jobs",
            "1",
            "--report-dir",
            shard,
            "--json",
            &summary_path,
        ]);
        assert_eq!(summary(&dir.join(&summary_path)).seeds.len(), 3);
    }
    let mut merge_args = vec!["merge", "--json", "merged.json"];
    merge_args.extend(shards.iter().map(String::as_str));
    let merged = sim(&dir, &merge_args);
    assert_eq!(merged.status.code(), Some(0));
    assert_eq!(
        summary(&dir.join("merged.json")).outcome(),
        serial.outcome()
    );

    // Three of four shards are not the sweep.
    let missing = sim(&dir, &merge_args[..merge_args.len() - 1]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("missing shard 3/4"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn failing_seeds_reach_junit_and_the_corpus_which_replays_them() {
    let dir = scratch("failing");
    let output = sim(
        &dir,
        &[
            "run",
            "--seeds",
            "3",
            "--nodes",
            "1",
            "--bug",
            "drop-event-on-resume",
            "--junit",
            "junit.xml",
            "--json",
            "summary.json",
            "--corpus",
            "corpus",
        ],
    );
    assert_eq!(output.status.code(), Some(1), "a correctness failure");
    let summary = summary(&dir.join("summary.json"));
    let failing: Vec<u64> = summary
        .seeds
        .iter()
        .filter(|r| r.failed())
        .map(|r| r.seed)
        .collect();
    assert!(!failing.is_empty(), "the planted bug is caught in 3 seeds");
    let junit = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    assert_eq!(
        junit.matches("<testcase ").count(),
        failing.len(),
        "{junit}"
    );
    for seed in &failing {
        assert!(
            junit.contains(&format!("name=\"seed {seed:#x}\"")),
            "{junit}"
        );
        assert!(
            junit.contains(&format!("scripts/sim replay --seed {seed:#x} ")),
            "{junit}"
        );
    }
    let entries: Vec<PathBuf> = std::fs::read_dir(dir.join("corpus"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(entries.len(), failing.len());

    // Open entries that still fail are reported, not failed.
    let replay = sim(&dir, &["corpus", "corpus", "--jobs", "1"]);
    let replayed = String::from_utf8_lossy(&replay.stdout).to_string();
    assert_eq!(replay.status.code(), Some(0), "{replayed}");
    assert_eq!(
        replayed.matches("open, still fails: correctness").count(),
        failing.len()
    );
    // Marked fixed, the same entry fails the replay.
    let text = std::fs::read_to_string(&entries[0]).unwrap();
    std::fs::write(&entries[0], text.replace("\"open\"", "\"fixed\"")).unwrap();
    let replay = sim(&dir, &["corpus", entries[0].to_str().unwrap()]);
    assert_eq!(replay.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&replay.stdout).contains("FIXED BUT FAILS: correctness"));
    std::fs::remove_dir_all(&dir).unwrap();
}
