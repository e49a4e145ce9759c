//! Rules checked on the source.
//!
//! Failpoints: `detcd::failpoint::NAMES`, which the simulator draws crash sites from, lists exactly
//! the points that `failpoint!` marks.
//!
//! Determinism: rules that keep the simulator's runs reproducible. Code the simulator
//! runs must take time, randomness and scheduling from the seams and madsim, never from the OS,
//! and must not let a random draw outside the seed pick what happens next.
//!
//! - `tokio::select!` polls its branches in a random order unless `biased;`, drawn from tokio's
//!   thread-local RNG, which is seeded from a process-wide counter: the same seed then ran
//!   differently as the second run in one process (seed 0x3f0 after 0x3ef, found by
//!   `--check-determinism`). Every `select!` is `biased;`, its branches in priority order.
//! - std's `HashMap`/`HashSet` iterate in an order drawn from per-process keys: server code uses
//!   `BTreeMap`/`BTreeSet`.
//! - Wall clocks and threads only in the seams (`src/io/`).

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

fn sources(dirs: &[&str]) -> Vec<(PathBuf, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in dirs {
        rust_files(&root.join(dir), &mut files);
    }
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            (path, text)
        })
        .collect()
}

/// `file:line` of every line matching `bad`, for an assertion message.
fn offending(files: &[(PathBuf, String)], bad: impl Fn(&str, Option<&str>) -> bool) -> Vec<String> {
    let mut found = Vec::new();
    for (path, text) in files {
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if bad(line, lines.get(i + 1).copied()) {
                found.push(format!("{}:{}", path.display(), i + 1));
            }
        }
    }
    found
}

#[test]
fn every_select_is_biased() {
    let files = sources(&["src", "sim/src"]);
    let unbiased = offending(&files, |line, next| {
        line.contains(concat!("select", "! {")) && !next.is_some_and(|n| n.contains("biased;"))
    });
    assert!(unbiased.is_empty(), "unbiased select! at {unbiased:?}");
}

#[test]
fn server_code_iterates_no_hash_maps() {
    let files = sources(&["src"]);
    let hashed = offending(&files, |line, _| {
        line.contains(concat!("Hash", "Map")) || line.contains(concat!("Hash", "Set"))
    });
    assert!(hashed.is_empty(), "HashMap/HashSet at {hashed:?}");
}

#[test]
fn only_the_seams_read_clocks_or_spawn_threads() {
    let files: Vec<(PathBuf, String)> = sources(&["src"])
        .into_iter()
        .filter(|(path, _)| {
            !path.to_string_lossy().contains("/src/io/") && !path.ends_with("tests.rs")
        })
        .collect();
    let escapes = offending(&files, |line, _| {
        [
            concat!("SystemTime", "::now"),
            concat!("Instant", "::now"),
            concat!("thread", "::spawn"),
        ]
        .iter()
        .any(|call| line.contains(call))
    });
    assert!(
        escapes.is_empty(),
        "clock or thread outside the seams at {escapes:?}"
    );
}

#[test]
fn failpoint_names_list_exactly_the_points_in_the_source() {
    let mut found: Vec<String> = Vec::new();
    for (_, text) in sources(&["src"]) {
        // Spelled in two halves so that this test is not a call site itself.
        for call in text.split(concat!("failpoint", "!(")).skip(1) {
            if let Some(name) = call.split('"').nth(1) {
                found.push(name.to_string());
            }
        }
    }
    found.sort();
    found.dedup();
    let mut listed: Vec<String> = detcd::failpoint::NAMES
        .iter()
        .map(|n| n.to_string())
        .collect();
    listed.sort();
    assert_eq!(found, listed);
}
