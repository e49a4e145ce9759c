//! Named fault points at durability boundaries (etcd's gofail points such as `raftBeforeSave`).
//!
//! In production builds `failpoint!` compiles to nothing. Under `--cfg madsim` the simulator can
//! arm a name for the current node; reaching an armed point crashes the node right there (a panic
//! that the simulator's node runtime turns into a crash), which is the worst moment for durability.

/// Every point a `failpoint!` marks, in the order a write meets them. The simulator draws from
/// this list; `tests/source_rules.rs` keeps it equal to the points in the source.
///
/// - `raftBeforeLeaderSend`: a leader is about to send appends it has not yet made durable.
/// - `raftBeforeSave` / `raftAfterSave`: around the WAL write + fsync of entries and hard state.
/// - `raftBeforeFollowerSend`: durable, about to send votes and append acknowledgements.
/// - `raftBeforeSaveSnap` / `raftAfterSaveSnap`: around writing a snapshot file (a leader's
///   snapshot being installed, or this member's own periodic one); `raftBeforeSnapMarker` lies
///   between the file and the WAL record that points at it.
/// - `raftBeforeApplySnap` / `raftAfterApplySnap`: around replacing the state machine with an
///   installed snapshot.
/// - `raftAfterWALRelease`: old WAL segments behind a snapshot were just deleted.
/// - `applyBeforeEntry` / `applyAfterEntry`: around applying one committed request, the second
///   before its waiter hears the result (detcd's analogue of etcd's backend commit).
/// - `beforeApplyOneConfChange`: a committed membership change is about to apply.
/// - `compactBeforeApply` / `compactAfterApply`: around a compaction of the key-value history.
pub const NAMES: [&str; 15] = [
    "raftBeforeLeaderSend",
    "raftBeforeSave",
    "raftAfterSave",
    "raftBeforeFollowerSend",
    "raftBeforeSaveSnap",
    "raftBeforeSnapMarker",
    "raftAfterSaveSnap",
    "raftBeforeApplySnap",
    "raftAfterApplySnap",
    "raftAfterWALRelease",
    "applyBeforeEntry",
    "applyAfterEntry",
    "beforeApplyOneConfChange",
    "compactBeforeApply",
    "compactAfterApply",
];

/// Marks a durability boundary; see the module doc.
#[macro_export]
macro_rules! failpoint {
    ($member_id:expr, $name:literal) => {
        #[cfg(madsim)]
        $crate::failpoint::hit($member_id, $name);
        #[cfg(not(madsim))]
        let _ = &$member_id;
    };
}

#[cfg(madsim)]
mod armed {
    use std::cell::RefCell;
    use std::collections::{BTreeMap, BTreeSet};

    thread_local! {
        // madsim runs every node on one thread, so armed points are keyed by member id.
        static ARMED: RefCell<BTreeSet<(u64, &'static str)>> = const { RefCell::new(BTreeSet::new()) };
        // How often each point fired on this thread (the sweep's coverage report).
        static FIRED: RefCell<BTreeMap<&'static str, u64>> = const { RefCell::new(BTreeMap::new()) };
    }

    /// Arms `name` on member `member_id`: the next time it gets there, it crashes (once).
    pub fn arm(member_id: u64, name: &'static str) {
        assert!(super::NAMES.contains(&name), "no failpoint is named {name}");
        ARMED.with(|armed| armed.borrow_mut().insert((member_id, name)));
    }

    /// Disarms `name` on member `member_id` if it has not fired yet.
    pub fn disarm(member_id: u64, name: &'static str) {
        ARMED.with(|armed| armed.borrow_mut().remove(&(member_id, name)));
    }

    pub fn hit(member_id: u64, name: &'static str) {
        if ARMED.with(|armed| armed.borrow_mut().remove(&(member_id, name))) {
            FIRED.with(|fired| *fired.borrow_mut().entry(name).or_default() += 1);
            panic!("failpoint {name}: simulated crash");
        }
    }

    /// How often each point crashed its member on this thread since the last call, which resets
    /// the counts (a run starts from zero).
    pub fn take_fired() -> BTreeMap<&'static str, u64> {
        FIRED.with(|fired| std::mem::take(&mut *fired.borrow_mut()))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn only_an_armed_point_counts_as_fired_and_take_resets() {
            take_fired();
            hit(1, "raftAfterSave");
            arm(1, "raftAfterSave");
            arm(2, "raftAfterSave");
            for member in [1, 2] {
                let crash = std::panic::catch_unwind(|| hit(member, "raftAfterSave"));
                assert!(crash.is_err(), "an armed point crashes");
            }
            hit(1, "raftAfterSave");
            assert_eq!(take_fired(), BTreeMap::from([("raftAfterSave", 2)]));
            assert!(take_fired().is_empty());
        }
    }
}

#[cfg(madsim)]
pub use armed::{arm, disarm, hit, take_fired};
