//! Coverage, FoundationDB's code probes: how often each failpoint crashed a member and each fault
//! kind was injected (alone, or on top of which others), summed over a sweep. A point a sweep
//! never reaches is a point it never tested, so `--require-coverage` fails such a sweep.
//!
//! Counting is thread-local, like `detcd::bugs`: madsim runs one seed on one thread, and each
//! seed gets a fresh thread ([`crate::simulation::run`]), so one seed's counts are the counts
//! taken when its run ends.

use std::cell::RefCell;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::options::FaultKind;

/// What one seed, or a sweep, reached.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coverage {
    /// Failpoint name → crashes there.
    pub failpoints: BTreeMap<String, u64>,
    /// Fault kind name → injections.
    pub faults: BTreeMap<String, u64>,
    /// Faults injected while others held, keyed by the stack of kinds, outermost first
    /// (`partition>network>crash`).
    pub overlaps: BTreeMap<String, u64>,
}

thread_local! {
    static FAULTS: RefCell<Coverage> = RefCell::new(Coverage::default());
}

/// Counts one injected fault; `holding` are the kinds already holding, outermost first.
pub fn note_fault(holding: &[FaultKind], kind: FaultKind) {
    FAULTS.with(|coverage| {
        let mut coverage = coverage.borrow_mut();
        *coverage.faults.entry(kind.name().to_string()).or_default() += 1;
        if !holding.is_empty() {
            let stack: Vec<&str> = holding.iter().chain([&kind]).map(|k| k.name()).collect();
            *coverage.overlaps.entry(stack.join(">")).or_default() += 1;
        }
    });
}

/// This thread's counts since the last call (failpoints from `detcd::failpoint`), reset to zero.
pub fn take() -> Coverage {
    let mut coverage = FAULTS.with(|coverage| std::mem::take(&mut *coverage.borrow_mut()));
    coverage.failpoints = detcd::failpoint::take_fired()
        .into_iter()
        .map(|(name, count)| (name.to_string(), count))
        .collect();
    coverage
}

impl Coverage {
    pub fn add(&mut self, other: &Coverage) {
        for (mine, theirs) in [
            (&mut self.failpoints, &other.failpoints),
            (&mut self.faults, &other.faults),
            (&mut self.overlaps, &other.overlaps),
        ] {
            for (name, count) in theirs {
                *mine.entry(name.clone()).or_default() += count;
            }
        }
    }

    /// What a sweep drawing from `kinds` should have reached but did not: every kind (that
    /// applies to some cluster size the sweep ran), and every failpoint when crashes were drawn.
    pub fn gaps(&self, kinds: &[FaultKind]) -> Vec<String> {
        let mut gaps = Vec::new();
        if kinds.contains(&FaultKind::Crash) {
            for name in detcd::failpoint::NAMES {
                if !self.failpoints.contains_key(name) {
                    gaps.push(format!("failpoint {name} never fired"));
                }
            }
        }
        for kind in kinds {
            if !self.faults.contains_key(kind.name()) {
                gaps.push(format!("fault {} never injected", kind.name()));
            }
        }
        gaps
    }

    /// The summary's coverage table: every failpoint and every fault kind of the sweep, zeros
    /// marked, then how deep faults nested.
    pub fn table(&self, kinds: &[FaultKind]) -> String {
        let mut text = format!("\n{:<26} {:>7}\n", "failpoint", "fired");
        let mark = |count: u64| if count == 0 { "  <- NEVER" } else { "" };
        for name in detcd::failpoint::NAMES {
            let count = self.failpoints.get(name).copied().unwrap_or(0);
            text += &format!("{name:<26} {count:>7}{}\n", mark(count));
        }
        text += &format!("\n{:<26} {:>7}\n", "fault", "injected");
        for kind in kinds {
            let count = self.faults.get(kind.name()).copied().unwrap_or(0);
            text += &format!("{:<26} {count:>7}{}\n", kind.name(), mark(count));
        }
        let mut by_depth: BTreeMap<usize, (u64, usize)> = BTreeMap::new();
        for (stack, count) in &self.overlaps {
            let depth = by_depth.entry(stack.matches('>').count() + 1).or_default();
            depth.0 += count;
            depth.1 += 1;
        }
        for (depth, (count, distinct)) in by_depth {
            text +=
                &format!("faults {depth} deep: {count} injections, {distinct} distinct stacks\n");
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_are_tallied_per_kind_and_per_stack_and_take_resets() {
        take();
        note_fault(&[], FaultKind::Partition);
        note_fault(&[FaultKind::Partition], FaultKind::Network);
        note_fault(
            &[FaultKind::Partition, FaultKind::Network],
            FaultKind::Crash,
        );
        note_fault(
            &[FaultKind::Partition, FaultKind::Network],
            FaultKind::Crash,
        );
        let coverage = take();
        assert_eq!(coverage.faults["partition"], 1);
        assert_eq!(coverage.faults["crash"], 2);
        assert_eq!(coverage.overlaps["partition>network>crash"], 2);
        assert_eq!(coverage.overlaps.len(), 2);
        assert!(take().faults.is_empty());
    }

    #[test]
    fn a_sweep_sums_its_seeds_and_names_what_it_never_reached() {
        let mut sweep = Coverage::default();
        let one = Coverage {
            failpoints: BTreeMap::from([("raftAfterSave".to_string(), 2)]),
            faults: BTreeMap::from([("crash".to_string(), 3)]),
            overlaps: BTreeMap::new(),
        };
        sweep.add(&one);
        sweep.add(&one);
        assert_eq!(sweep.failpoints["raftAfterSave"], 4);
        assert_eq!(sweep.faults["crash"], 6);
        let gaps = sweep.gaps(&[FaultKind::Crash, FaultKind::Clog]);
        assert!(gaps.contains(&"fault clog never injected".to_string()));
        assert!(gaps.contains(&"failpoint raftBeforeSave never fired".to_string()));
        assert!(!gaps.contains(&"failpoint raftAfterSave never fired".to_string()));
        assert_eq!(gaps.len(), detcd::failpoint::NAMES.len() - 1 + 1);
        // Without crashes no failpoint can fire: not a gap.
        assert_eq!(sweep.gaps(&[FaultKind::Clog]).len(), 1);
        assert!(sweep.table(&[FaultKind::Clog]).contains("clog"));
        let table = sweep.table(&[]);
        let line = |name: &str| {
            table
                .lines()
                .find(|l| l.starts_with(name))
                .unwrap()
                .to_string()
        };
        assert!(line("raftBeforeSave ").ends_with(" 0  <- NEVER"), "{table}");
        assert!(line("raftAfterSave ").ends_with(" 4"), "{table}");
    }
}
