//! A run gives back what it allocated: a sweep runs thousands of seeds in one process, so a seed
//! that leaks its cluster (servers, raft logs, MVCC stores) grows the sweep by megabytes a seed
//! until the machine runs out. Bytes are counted by this test binary's own allocator, not read
//! from the process's RSS, so the figure is exact and does not depend on the machine.
//!
//! Run: `CARGO_TARGET_DIR=target/sim RUSTFLAGS="--cfg madsim" cargo test -p detcd-sim --test memory`
#![cfg(madsim)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use detcd_sim::options::{FaultKind, RunSpec, SwarmOptions};
use detcd_sim::simulation::{self, Verdict};

/// The system allocator, counting the bytes it has handed out and not yet taken back.
struct Counting;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        System.alloc(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// What one more run may keep: lazily built statics and the like, a few kilobytes. A leaked
/// three-member cluster is megabytes.
const KEPT_BYTES_MAX: isize = 256 << 10;

#[test]
fn a_run_frees_its_cluster() {
    let spec = RunSpec {
        nodes: Some(3),
        faults: FaultKind::ALL.to_vec(),
        ops: 200,
        bugs: Vec::new(),
    };
    let options = SwarmOptions::draw(0x5eed, &spec);
    // The first run builds what lives for the process (lazy statics, tracing's callsite
    // registry); count from after it.
    let first = simulation::run(&options);
    assert_eq!(
        first.verdict,
        Verdict::Pass,
        "{:?}",
        first.findings.violations
    );
    drop(first);
    let before = LIVE_BYTES.load(Ordering::Relaxed);
    for _ in 0..2 {
        let run = simulation::run(&options);
        assert_eq!(run.verdict, Verdict::Pass);
    }
    let kept = LIVE_BYTES.load(Ordering::Relaxed) - before;
    assert!(
        kept <= KEPT_BYTES_MAX,
        "two runs kept {kept} bytes (at most {KEPT_BYTES_MAX}): a run leaks what it allocated"
    );
}
