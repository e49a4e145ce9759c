//! Shrinking a failing run: from a seed's run (its options and the fault schedule it drew), search
//! for a smaller run that fails the *same* checker — fewer members, fewer client operations,
//! fewer faults (delta debugging, Zeller's ddmin), no faults nested in others, shorter holds,
//! fewer clients. Every candidate is a real, deterministic re-run of the simulation with the
//! candidate's options and explicit schedule; a candidate is kept only if it fails the checker
//! again. The search repeats its passes until one changes nothing, within a bound on re-runs.

use std::path::Path;

use crate::cli::{exit_code, EXIT_USAGE};
use crate::options::SwarmOptions;
use crate::schedule::{Schedule, ScheduledFault};
use crate::simulation::{self, SeedRun, Verdict};

/// Cluster sizes the search tries, smallest first (odd, as operators run them).
const MEMBER_COUNTS: &[usize] = &[1, 3, 5];

/// How big a run is: what the shrinker makes smaller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Size {
    pub members: usize,
    /// Faults, nested ones included.
    pub faults: usize,
    /// Client operations (the workload's budget).
    pub operations: usize,
    pub clients: u32,
    /// Every fault's hold, added up.
    pub hold_ms: u64,
}

impl Size {
    pub fn of(options: &SwarmOptions) -> Size {
        let schedule = options.schedule.as_ref();
        Size {
            members: options.nodes,
            faults: schedule.map_or(0, Schedule::len),
            operations: options.ops,
            clients: options.clients,
            hold_ms: schedule.map_or(0, |s| {
                s.faults
                    .iter()
                    .flat_map(ScheduledFault::chain)
                    .filter_map(|f| f.hold_ms)
                    .sum()
            }),
        }
    }

    pub fn describe(&self) -> String {
        format!(
            "{} faults, {} operations, {} members, {} clients, {} ms held",
            self.faults, self.operations, self.members, self.clients, self.hold_ms
        )
    }
}

/// What a run failed: the checkers with violations, and `crash` / `hang` for a panic.
pub fn failures(run: &SeedRun) -> Vec<String> {
    let mut names: Vec<String> = run
        .findings
        .violations
        .iter()
        .map(|v| v.checker.clone())
        .collect();
    if run.panic.is_some() {
        names.push(match run.verdict {
            Verdict::Crash => "crash".to_string(),
            _ => "hang".to_string(),
        });
    }
    names.dedup();
    names
}

/// The result of a search.
pub struct Shrunk {
    /// The checker the original failed and every kept candidate fails too.
    pub checker: String,
    pub before: Size,
    /// The smallest failing run's options, its schedule included.
    pub options: SwarmOptions,
    pub run: SeedRun,
    /// Re-runs made (the original's included).
    pub runs: usize,
}

/// Runs `options` (drawing its schedule unless it has one), then shrinks it while it fails
/// `checker` (default: the first one it fails), within `max_runs` re-runs. `None` if the run
/// does not fail it.
pub fn shrink(
    options: &SwarmOptions,
    checker: Option<&str>,
    max_runs: usize,
    log: &mut dyn FnMut(&str),
) -> Option<Shrunk> {
    let original = simulation::run(options);
    let failed = failures(&original);
    let checker = match checker {
        Some(name) => failed.iter().find(|f| *f == name)?.clone(),
        None => failed.first()?.clone(),
    };
    let best = SwarmOptions {
        schedule: Some(original.schedule.clone()),
        ..options.clone()
    };
    let before = Size::of(&best);
    log(&format!(
        "shrinking a run failing {checker}: {}",
        before.describe()
    ));
    let mut search = Search {
        checker,
        best,
        run: original,
        runs: 1,
        max_runs,
        log,
    };
    loop {
        let size = Size::of(&search.best);
        search.members();
        search.operations();
        search.faults();
        search.nested();
        search.clients();
        search.holds();
        if Size::of(&search.best) == size || search.spent() {
            break;
        }
    }
    Some(Shrunk {
        checker: search.checker,
        before,
        options: search.best,
        run: search.run,
        runs: search.runs,
    })
}

/// `detcd-sim shrink`: shrinks, prints the smallest run and its schedule, writes it to `out`,
/// checks that the file replays it (same trace hash, same checker), and prints the command that
/// does. Exits with the smallest run's verdict's code (2 if the run does not fail to begin with).
pub fn command(options: &SwarmOptions, checker: Option<&str>, max_runs: usize, out: &Path) -> i32 {
    let muted = crate::quiet::Muted::stderr();
    let Some(shrunk) = shrink(options, checker, max_runs, &mut |line| muted.progress(line)) else {
        drop(muted);
        eprintln!(
            "error: seed {:#x} does not fail {}: nothing to shrink",
            options.seed,
            checker.unwrap_or("any checker")
        );
        return EXIT_USAGE;
    };
    let text = serde_json::to_string_pretty(&shrunk.options).expect("options serialize");
    if let Err(error) = std::fs::write(out, &text) {
        drop(muted);
        eprintln!("error: {}: {error}", out.display());
        return EXIT_USAGE;
    }
    let replayed: SwarmOptions = serde_json::from_str(&text).expect("what was written reads back");
    let again = simulation::run(&replayed);
    drop(muted);
    let after = Size::of(&shrunk.options);
    println!(
        "seed {:#x} fails {} in {} re-runs:\n  before: {}\n  after:  {}\n\nschedule ({} faults):\n{}",
        shrunk.options.seed,
        shrunk.checker,
        shrunk.runs,
        shrunk.before.describe(),
        after.describe(),
        after.faults,
        shrunk
            .options
            .schedule
            .as_ref()
            .map_or_else(String::new, Schedule::describe)
    );
    let named = shrunk.run.findings.violations.iter();
    for violation in named.filter(|v| v.checker == shrunk.checker).take(5) {
        println!("{}: {}", violation.checker, violation.message);
    }
    let reproduces = again.trace_hash == shrunk.run.trace_hash;
    let fails = failures(&again).contains(&shrunk.checker);
    println!(
        "\nwrote {}: replayed from it, the run {} {} (trace hash {:#018x}{})",
        out.display(),
        if fails { "fails" } else { "no longer fails" },
        shrunk.checker,
        again.trace_hash,
        if reproduces {
            ", as in the search"
        } else {
            ", NOT the search's"
        }
    );
    println!(
        "replay: scripts/sim replay --schedule {}\npicture: scripts/sim replay --schedule {} --html shrunk.html",
        out.display(),
        out.display()
    );
    if !(fails && reproduces) {
        return crate::cli::EXIT_NONDETERMINISM;
    }
    exit_code(again.verdict)
}

struct Search<'a> {
    checker: String,
    best: SwarmOptions,
    run: SeedRun,
    runs: usize,
    max_runs: usize,
    log: &'a mut dyn FnMut(&str),
}

impl Search<'_> {
    fn spent(&self) -> bool {
        self.runs >= self.max_runs
    }

    fn faults_of_best(&self) -> Vec<ScheduledFault> {
        self.best
            .schedule
            .as_ref()
            .map_or_else(Vec::new, |s| s.faults.clone())
    }

    /// Re-runs `candidate`; keeps it (with the schedule that ran) if it fails the checker.
    fn attempt(&mut self, candidate: SwarmOptions, what: &str) -> bool {
        if self.spent() {
            return false;
        }
        self.runs += 1;
        let run = simulation::run(&candidate);
        if !failures(&run).contains(&self.checker) {
            return false;
        }
        self.best = SwarmOptions {
            schedule: Some(run.schedule.clone()),
            ..candidate
        };
        self.run = run;
        let size = Size::of(&self.best).describe();
        (self.log)(&format!("  run {}: {what} still fails: {size}", self.runs));
        true
    }

    fn with_faults(&self, faults: Vec<ScheduledFault>) -> SwarmOptions {
        let schedule = self.best.schedule.clone().unwrap_or_default();
        SwarmOptions {
            schedule: Some(Schedule { faults, ..schedule }),
            ..self.best.clone()
        }
    }

    /// Fewer members, if the failure does not need them: kinds that need peers go.
    fn members(&mut self) {
        let nodes = self.best.nodes;
        for &members in MEMBER_COUNTS.iter().filter(|&&count| count < nodes) {
            let faults = self
                .faults_of_best()
                .into_iter()
                .filter_map(|fault| applicable(fault, members))
                .collect();
            let mut candidate = self.with_faults(faults);
            candidate.nodes = members;
            candidate
                .faults
                .retain(|(kind, _)| kind.applies_to(members));
            if self.attempt(candidate, &format!("{members} members")) {
                return;
            }
        }
    }

    /// Fewer client operations: a run that ends sooner also drops the faults after its end.
    fn operations(&mut self) {
        let (mut low, mut high) = (1, self.best.ops);
        while low < high && !self.spent() {
            let ops = (low + high) / 2;
            let candidate = SwarmOptions {
                ops,
                ..self.best.clone()
            };
            if self.attempt(candidate, &format!("{ops} operations")) {
                high = ops;
            } else {
                low = ops + 1;
            }
        }
    }

    fn clients(&mut self) {
        let (mut low, mut high) = (1, self.best.clients);
        while low < high && !self.spent() {
            let clients = (low + high) / 2;
            let candidate = SwarmOptions {
                clients,
                ..self.best.clone()
            };
            if self.attempt(candidate, &format!("{clients} clients")) {
                high = clients;
            } else {
                low = clients + 1;
            }
        }
    }

    /// Delta debugging over the top-level faults: no faults at all, then subsets and
    /// complements of ever finer chunks.
    fn faults(&mut self) {
        if self.faults_of_best().is_empty()
            || self.attempt(self.with_faults(Vec::new()), "no faults")
        {
            return;
        }
        let mut chunks = 2;
        loop {
            let faults = self.faults_of_best();
            if faults.len() < 2 || self.spent() {
                return;
            }
            chunks = chunks.min(faults.len());
            let size = faults.len().div_ceil(chunks);
            let parts: Vec<std::ops::Range<usize>> = (0..faults.len())
                .step_by(size)
                .map(|start| start..(start + size).min(faults.len()))
                .collect();
            let kept = parts.iter().any(|part| {
                let subset = faults[part.clone()].to_vec();
                let what = format!(
                    "faults {}..{} of {}",
                    part.start + 1,
                    part.end,
                    faults.len()
                );
                self.attempt(self.with_faults(subset), &what)
            });
            if kept {
                chunks = 2;
                continue;
            }
            let kept = parts.iter().any(|part| {
                let mut rest = faults.clone();
                rest.drain(part.clone());
                let what = format!(
                    "without faults {}..{} of {}",
                    part.start + 1,
                    part.end,
                    faults.len()
                );
                self.attempt(self.with_faults(rest), &what)
            });
            if kept {
                chunks = (chunks - 1).max(2);
            } else if chunks >= faults.len() {
                return;
            } else {
                chunks = (chunks * 2).min(faults.len());
            }
        }
    }

    /// Faults nested in others: cut each chain as high as the failure allows.
    fn nested(&mut self) {
        for top in 0..self.faults_of_best().len() {
            for depth in 1..=2 {
                let mut faults = self.faults_of_best();
                let Some(fault) = faults.get_mut(top) else {
                    return;
                };
                if !cut_chain(fault, depth) {
                    break;
                }
                let what = format!("fault {} without what nests at depth {depth}", top + 1);
                if self.attempt(self.with_faults(faults), &what) {
                    break;
                }
            }
        }
    }

    /// Halves each hold while the failure stays.
    fn holds(&mut self) {
        for top in 0..self.faults_of_best().len() {
            for depth in 0..3 {
                loop {
                    let mut faults = self.faults_of_best();
                    let Some(fault) = faults.get_mut(top).and_then(|f| f.chain_mut_at(depth))
                    else {
                        break;
                    };
                    let Some(hold) = fault.hold_ms.filter(|&ms| ms > 1) else {
                        break;
                    };
                    fault.hold_ms = Some(hold / 2);
                    let what = format!("fault {} depth {depth} held {}ms", top + 1, hold / 2);
                    if !self.attempt(self.with_faults(faults), &what) {
                        break;
                    }
                }
            }
        }
    }
}

/// `fault` on a cluster of `members`: gone if its kind needs more, its nested chain cut where
/// one does.
fn applicable(mut fault: ScheduledFault, members: usize) -> Option<ScheduledFault> {
    if !fault.kind.applies_to(members) {
        return None;
    }
    fault.member %= members;
    fault.nested = fault
        .nested
        .take()
        .and_then(|nested| applicable(*nested, members).map(Box::new));
    Some(fault)
}

/// Drops what nests in `fault` at `depth` (1: its own nested fault); false if nothing does.
fn cut_chain(fault: &mut ScheduledFault, depth: usize) -> bool {
    match fault.chain_mut_at(depth - 1) {
        Some(parent) if parent.nested.is_some() => {
            parent.nested = None;
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::FaultKind;

    fn fault(kind: FaultKind, nested: Option<ScheduledFault>) -> ScheduledFault {
        ScheduledFault {
            nested: nested.map(Box::new),
            hold_ms: Some(100),
            ..ScheduledFault::new(10, kind, 2)
        }
    }

    #[test]
    fn one_member_keeps_only_the_faults_it_can_have() {
        let chain = fault(
            FaultKind::Crash,
            Some(fault(
                FaultKind::Partition,
                Some(fault(FaultKind::Pause, None)),
            )),
        );
        let kept = applicable(chain, 1).expect("a crash applies to one member");
        assert_eq!(
            kept.chain().count(),
            1,
            "the partition and what nests in it go"
        );
        assert_eq!(kept.member, 0);
        assert!(applicable(fault(FaultKind::Membership, None), 1).is_none());
    }

    #[test]
    fn cutting_a_chain_keeps_what_is_above_the_cut() {
        let mut chain = fault(
            FaultKind::Clog,
            Some(fault(FaultKind::Crash, Some(fault(FaultKind::Pause, None)))),
        );
        assert!(cut_chain(&mut chain, 2));
        assert_eq!(chain.chain().count(), 2);
        assert!(
            !cut_chain(&mut chain, 2),
            "nothing nests at depth 2 any more"
        );
        assert!(cut_chain(&mut chain, 1));
        assert_eq!(chain.chain().count(), 1);
    }
}
