//! The picture of a run (`replay --html`) in a real browser: for a planted bug's failing seed,
//! headless Chromium (Debian's `chromium`; `scripts/test` installs it) renders the page; the
//! dumped DOM has one lane per member, the operations the checkers name outlined, the checkers'
//! messages and the leader changes, and the page's script ran. The page and a screenshot stay in
//! `target/sim/tmp/sim-html-test/`.
//!
//! Run: `CARGO_TARGET_DIR=target/sim RUSTFLAGS="--cfg madsim" cargo test -p detcd-sim --features sim-bugs --test picture`
#![cfg(all(madsim, feature = "sim-bugs"))]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use detcd_sim::options::{FaultKind, RunSpec, SwarmOptions};
use detcd_sim::simulation::{self, Verdict};

fn output_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("sim-html-test");
    std::fs::create_dir_all(&dir).expect("the output folder");
    dir
}

/// Headless Chromium on `page`, with a fresh profile and nothing that reaches the network.
fn chromium(page: &Path, mode: &[String]) -> std::process::Output {
    let profile = tempdir();
    let output = Command::new("timeout")
        .arg("120")
        .arg("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1700,900",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(mode)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs (apt-get install chromium; scripts/test installs it)");
    let _ = std::fs::remove_dir_all(&profile);
    output
}

fn tempdir() -> PathBuf {
    let dir = output_dir().join(format!("profile-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a profile folder");
    dir
}

#[test]
fn the_picture_of_a_failing_seed_renders_its_lanes_and_the_operations_a_checker_names() {
    // `read-without-read-index`, 3 members, every fault kind: seed 2 fails linearizability.
    let spec = RunSpec {
        nodes: Some(3),
        faults: FaultKind::ALL.to_vec(),
        ops: 200,
        bugs: vec!["read-without-read-index".into()],
    };
    let run = simulation::run(&SwarmOptions::draw(2, &spec));
    assert_eq!(run.verdict, Verdict::Correctness, "{:?}", run.findings);
    let named: BTreeSet<usize> = run
        .findings
        .violations
        .iter()
        .flat_map(|v| v.operations.iter().copied())
        .filter(|id| run.history.operations.iter().any(|op| op.id == *id))
        .collect();
    assert!(!named.is_empty(), "the checkers name operations");

    let html = detcd_sim::picture::page(&run);
    for fetch in ["<link", " src=", "href=", "url(", "fetch(", "@import"] {
        assert!(!html.contains(fetch), "the page fetches something: {fetch}");
    }
    let dir = output_dir();
    let page = dir.join("read-without-read-index-seed-0x2.html");
    std::fs::write(&page, &html).expect("the page is written");

    let dumped = chromium(&page, &["--dump-dom".to_string()]);
    assert!(dumped.status.success(), "{dumped:?}");
    let dom = String::from_utf8_lossy(&dumped.stdout);
    // The page's script ran in the browser and counted what was drawn.
    assert!(
        dom.contains("data-lanes=\"3\""),
        "script did not run: {}",
        &dom[..dom.len().min(500)]
    );
    assert!(dom.contains(&format!("data-flagged=\"{}\"", named.len())));
    for member in ["n1", "n2", "n3"] {
        assert!(dom.contains(&format!("class=\"lane member\" data-member=\"{member}\"")));
    }
    assert!(dom.contains("class=\"role leader\""), "a leader's span");
    assert!(
        dom.contains("class=\"leader-change\""),
        "leader changes are marked"
    );
    for id in &named {
        let flagged = dom
            .split("<rect ")
            .any(|rect| rect.contains(&format!("data-op=\"{id}\"")) && rect.contains("flagged"));
        assert!(flagged, "operation {id} is not highlighted");
    }
    for checker in run.findings.violations.iter().map(|v| &v.checker) {
        assert!(
            dom.contains(&format!("data-checker=\"{checker}\"")),
            "{checker}'s message"
        );
    }

    let screenshot = dir.join("read-without-read-index-seed-0x2.png");
    let _ = std::fs::remove_file(&screenshot);
    let shot = chromium(&page, &[format!("--screenshot={}", screenshot.display())]);
    assert!(shot.status.success(), "{shot:?}");
    let size = std::fs::metadata(&screenshot).map_or(0, |m| m.len());
    assert!(
        size > 20_000,
        "a screenshot of {size} bytes at {}",
        screenshot.display()
    );
    println!(
        "page: {}\nscreenshot: {}",
        page.display(),
        screenshot.display()
    );
}
