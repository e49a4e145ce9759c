//! The fault schedule as data: which faults strike when, on whom, for how long, and what each one
//! drew. A seed's run records the schedule it drew (`SeedRun::schedule`); a run given a schedule
//! (`SwarmOptions::schedule`, `detcd-sim replay --schedule schedule.json`) follows it instead of
//! drawing one, while the seed still drives everything else (network, scheduling, workload).
//!
//! A fault's structural choices — the gap before it, its kind, its member, its hold, the fault
//! nested in its hold — are fields a person (or the shrinker) can read and edit. Everything else
//! a fault draws (a failpoint's name, which links a clog cuts, a partition's sides, a flipped bit)
//! is kept as the raw words its random stream returned, per fault: the fault's code draws from them
//! as it drew from the stream, so the drawn schedule given back reproduces the run exactly (the
//! same trace hash), and dropping one fault leaves the others' draws alone. A fault that asks for
//! more words than it has (a shrunk run takes another path) gets them from the seed's stream.
//!
//! Recording draws from the same streams in the same order as the schedule engine always did, so
//! every seed keeps the run it had.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::options::FaultKind;

/// A run's faults, in order, and the draws its heal made.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    pub faults: Vec<ScheduledFault>,
    /// The gap after the last fault, in which the safety phase ended before another was drawn.
    /// A replay waits it out too: madsim's clock moves by the timers a run sets, so even a wait
    /// cut short is part of the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_gap_ms: Option<u64>,
    /// Draws of the heal at the end of the safety phase (it finishes a replacement cut short).
    #[serde(default, skip_serializing_if = "Draws::is_empty")]
    pub heal: Draws,
}

/// One fault, maybe with another striking during its hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduledFault {
    /// At the top level: simulated ms after the previous fault ended (the first: after the run
    /// started). Nested: ms into the enclosing fault's hold.
    pub after_ms: u64,
    pub kind: FaultKind,
    /// The member it is drawn for (0 is n1). Kinds that act on links or the whole network draw it
    /// too; a membership change may pick another (the leader).
    pub member: usize,
    /// How long it holds (a member down, a pause, a partition …), if it holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nested: Option<Box<ScheduledFault>>,
    /// How far into the hold the safety phase ended, waiting for a nested fault that never
    /// struck (see [`Schedule::end_gap_ms`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Draws::is_empty")]
    pub draws: Draws,
    /// What it did in the run that wrote this file (its trace lines), for people: replay ignores it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub did: Vec<String>,
}

/// The raw words a fault drew from each of the schedule's random streams.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Draws {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub main: Vec<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub media: Vec<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reach: Vec<u64>,
}

impl Draws {
    pub fn is_empty(&self) -> bool {
        self.main.is_empty() && self.media.is_empty() && self.reach.is_empty()
    }

    fn stream(&mut self, stream: Stream) -> &mut Vec<u64> {
        match stream {
            Stream::Main => &mut self.main,
            Stream::Media => &mut self.media,
            Stream::Reach => &mut self.reach,
        }
    }
}

impl ScheduledFault {
    pub fn new(after_ms: u64, kind: FaultKind, member: usize) -> ScheduledFault {
        ScheduledFault {
            after_ms,
            kind,
            member,
            hold_ms: None,
            nested: None,
            ended_ms: None,
            draws: Draws::default(),
            did: Vec::new(),
        }
    }

    /// This fault and the ones nested in it, outermost first.
    pub fn chain(&self) -> impl Iterator<Item = &ScheduledFault> {
        std::iter::successors(Some(self), |fault| fault.nested.as_deref())
    }

    /// The fault nested `depth` deep in this one (0: itself).
    pub fn chain_mut_at(&mut self, depth: usize) -> Option<&mut ScheduledFault> {
        let mut fault = self;
        for _ in 0..depth {
            fault = fault.nested.as_deref_mut()?;
        }
        Some(fault)
    }
}

impl Schedule {
    /// Faults counted with the ones nested in them.
    pub fn len(&self) -> usize {
        self.faults.iter().map(|f| f.chain().count()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.faults.is_empty()
    }

    /// One line per fault, nested ones indented, with what it did.
    pub fn describe(&self) -> String {
        if self.faults.is_empty() {
            return "- none\n".to_string();
        }
        let mut text = String::new();
        for fault in &self.faults {
            for (depth, fault) in fault.chain().enumerate() {
                let start = if depth == 0 {
                    format!("after {}ms", fault.after_ms)
                } else {
                    format!("{}ms into it", fault.after_ms)
                };
                let hold = fault
                    .hold_ms
                    .map_or(String::new(), |ms| format!(", hold {ms}ms"));
                let did = if fault.did.is_empty() {
                    "did nothing".to_string()
                } else {
                    fault.did.join("; ")
                };
                text += &format!(
                    "{:indent$}- {start}: {} n{}{hold}: {did}\n",
                    "",
                    fault.kind.name(),
                    fault.member + 1,
                    indent = 2 * depth
                );
            }
        }
        text
    }
}

/// The schedule's random streams: the schedule's own, media faults', and failpoints armed where
/// a replacement reaches them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Main,
    Media,
    Reach,
}

/// An open fault: where it is in the schedule, and how many words of each stream it used.
#[derive(Debug, Clone, Copy)]
struct Open {
    top: usize,
    depth: usize,
    used: [usize; 3],
}

/// The schedule being recorded or followed, and the faults open now (innermost last; none: the
/// heal, whose draws are kept apart).
#[derive(Debug)]
struct Book {
    following: bool,
    schedule: Schedule,
    open: Vec<Open>,
    heal_used: [usize; 3],
    /// How many top-level faults started: those after them never ran.
    started: usize,
}

impl Book {
    fn open_fault(&mut self) -> Option<&mut ScheduledFault> {
        let open = *self.open.last()?;
        self.schedule.faults[open.top].chain_mut_at(open.depth)
    }

    fn word(&mut self, stream: Stream, source: &mut StdRng, draw: fn(&mut StdRng) -> u64) -> u64 {
        let index = stream as usize;
        let following = self.following;
        let (draws, used) = match self.open.last_mut() {
            Some(open) => {
                let (top, depth) = (open.top, open.depth);
                let used = &mut open.used[index];
                let fault = self.schedule.faults[top]
                    .chain_mut_at(depth)
                    .expect("an open fault is in the schedule");
                (&mut fault.draws, used)
            }
            None => (&mut self.schedule.heal, &mut self.heal_used[index]),
        };
        let words = draws.stream(stream);
        if following {
            let word = words.get(*used).copied();
            *used += 1;
            // Past the recorded words (a shrunk run went another way): the seed's stream.
            word.unwrap_or_else(|| draw(source))
        } else {
            let word = draw(source);
            words.push(word);
            word
        }
    }
}

/// The shared book of one run's schedule: the fault engine writes or reads it, the simulation
/// takes what ran at the end (even after a panic).
#[derive(Debug, Clone)]
pub struct ScheduleBook(Arc<Mutex<Book>>);

impl ScheduleBook {
    /// Records what the faults draw (`given` is none), or follows `given`.
    pub fn new(given: Option<&Schedule>) -> ScheduleBook {
        let mut schedule = given.cloned().unwrap_or_default();
        // What the faults do is written down afresh as they run.
        for fault in &mut schedule.faults {
            let mut fault = Some(fault);
            while let Some(f) = fault {
                f.did.clear();
                fault = f.nested.as_deref_mut();
            }
        }
        ScheduleBook(Arc::new(Mutex::new(Book {
            following: given.is_some(),
            schedule,
            open: Vec::new(),
            heal_used: [0; 3],
            started: 0,
        })))
    }

    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        self.0.lock().unwrap()
    }

    /// Whether the run follows a given schedule rather than drawing one.
    pub fn following(&self) -> bool {
        self.book().following
    }

    /// The given schedule's top-level fault `top`: its gap, kind and member.
    pub fn given(&self, top: usize) -> Option<(Duration, FaultKind, usize)> {
        let book = self.book();
        let fault = book.schedule.faults.get(top)?;
        Some((
            Duration::from_millis(fault.after_ms),
            fault.kind,
            fault.member,
        ))
    }

    /// The given schedule's wait after its last fault.
    pub fn given_end_gap(&self) -> Option<Duration> {
        self.book().schedule.end_gap_ms.map(Duration::from_millis)
    }

    /// Opens top-level fault `top` of the given schedule.
    pub fn open_given(&self, top: usize) {
        let mut book = self.book();
        book.started = top + 1;
        book.open.push(Open {
            top,
            depth: 0,
            used: [0; 3],
        });
    }

    /// What strikes in the open fault's hold, in the given schedule.
    pub fn given_nested(&self) -> Nested {
        let mut book = self.book();
        let Some(fault) = book.open_fault() else {
            return Nested::None;
        };
        match (fault.nested.as_deref(), fault.ended_ms) {
            (Some(nested), _) => Nested::Fault(
                Duration::from_millis(nested.after_ms),
                nested.kind,
                nested.member,
            ),
            (None, Some(ms)) => Nested::Ended(Duration::from_millis(ms)),
            (None, None) => Nested::None,
        }
    }

    /// Opens the fault nested in the open one (given or just recorded with [`Self::record_nested`]).
    pub fn open_nested(&self) {
        let mut book = self.book();
        let open = *book.open.last().expect("a fault holds");
        book.open.push(Open {
            depth: open.depth + 1,
            used: [0; 3],
            ..open
        });
    }

    /// Records the gap before the next top-level fault, drawn before the fault is.
    pub fn record_gap(&self, gap: Duration) {
        self.book().schedule.end_gap_ms = Some(gap.as_millis() as u64);
    }

    /// Records how far into the open fault's hold the next fault strikes, drawn before it is.
    pub fn record_nested_gap(&self, before: Duration) {
        if let Some(fault) = self.book().open_fault() {
            fault.ended_ms = Some(before.as_millis() as u64);
        }
    }

    /// Records a new top-level fault (after its gap) and opens it.
    pub fn record_top(&self, fault: ScheduledFault) {
        let mut book = self.book();
        book.schedule.end_gap_ms = None;
        book.schedule.faults.push(fault);
        let top = book.schedule.faults.len() - 1;
        book.started = top + 1;
        book.open.push(Open {
            top,
            depth: 0,
            used: [0; 3],
        });
    }

    /// Records a fault nested in the open one's hold (then [`Self::open_nested`] it).
    pub fn record_nested(&self, fault: ScheduledFault) {
        let mut book = self.book();
        let open = book.open_fault().expect("a fault holds");
        open.ended_ms = None;
        open.nested = Some(Box::new(fault));
    }

    /// Closes the innermost open fault.
    pub fn close(&self) {
        self.book().open.pop().expect("an open fault");
    }

    /// The open fault's hold: the given one, or `drawn()` recorded.
    pub fn hold(&self, drawn: impl FnOnce() -> Duration, shortest: Duration) -> Duration {
        let mut book = self.book();
        let following = book.following;
        let Some(fault) = book.open_fault() else {
            return drawn();
        };
        if following {
            fault.hold_ms.map_or(shortest, Duration::from_millis)
        } else {
            let hold = drawn();
            fault.hold_ms = Some(hold.as_millis() as u64);
            hold
        }
    }

    /// Notes what the open fault did (a trace line).
    pub fn note(&self, what: String) {
        if let Some(fault) = self.book().open_fault() {
            fault.did.push(what);
        }
    }

    /// The heal begins: faults cut short are open no more, and its draws are kept apart.
    pub fn begin_heal(&self) {
        self.book().open.clear();
    }

    /// What ran: the schedule, without the faults that never started (the phase ended in the
    /// gap before the first of them).
    pub fn ran(&self) -> Schedule {
        let book = self.book();
        let mut schedule = book.schedule.clone();
        if let Some(first) = schedule.faults.get(book.started) {
            schedule.end_gap_ms = Some(first.after_ms);
            schedule.faults.truncate(book.started);
        }
        schedule
    }
}

/// What strikes in a fault's hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nested {
    None,
    /// This far into the hold, a fault of this kind on this member.
    Fault(Duration, FaultKind, usize),
    /// The safety phase ended this far into the hold, waiting for a fault that never struck.
    Ended(Duration),
}

/// One of the schedule's random streams: draws from the seed's stream while recording (and
/// writes the words down), from the open fault's words while following.
pub struct ScheduledRng {
    stream: Stream,
    source: StdRng,
    book: ScheduleBook,
}

impl ScheduledRng {
    pub fn new(stream: Stream, seed: u64, book: &ScheduleBook) -> ScheduledRng {
        ScheduledRng {
            stream,
            source: StdRng::seed_from_u64(seed),
            book: book.clone(),
        }
    }

    /// The seed's stream itself, for the structural draws the schedule keeps as fields (only
    /// while recording).
    pub fn structural(&mut self) -> &mut StdRng {
        &mut self.source
    }
}

impl RngCore for ScheduledRng {
    fn next_u32(&mut self) -> u32 {
        let word = self.book.book().word(self.stream, &mut self.source, |rng| {
            u64::from(rng.next_u32())
        });
        word as u32
    }

    fn next_u64(&mut self) -> u64 {
        self.book
            .book()
            .word(self.stream, &mut self.source, RngCore::next_u64)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(8) {
            let word = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    /// Draws like a fault's code: mixed widths and distributions.
    fn draw_some(rng: &mut ScheduledRng) -> (u32, u64, bool, usize) {
        (
            rng.random_range(0..100u32),
            rng.random_range(0..1_000_000u64),
            rng.random_bool(0.3),
            rng.random_range(0..7usize),
        )
    }

    #[test]
    fn following_a_recorded_fault_gives_back_its_draws() {
        let recording = ScheduleBook::new(None);
        let mut rng = ScheduledRng::new(Stream::Main, 7, &recording);
        recording.record_top(ScheduledFault::new(5, FaultKind::Crash, 0));
        let recorded = draw_some(&mut rng);
        recording.close();
        let schedule = recording.ran();
        assert_eq!(schedule.faults.len(), 1);
        assert!(!schedule.faults[0].draws.main.is_empty());

        // Followed with another seed: the words come from the schedule, not the seed.
        let following = ScheduleBook::new(Some(&schedule));
        let mut rng = ScheduledRng::new(Stream::Main, 8, &following);
        following.open_given(0);
        assert_eq!(draw_some(&mut rng), recorded);
        following.close();
    }

    #[test]
    fn faults_that_never_started_are_not_part_of_what_ran() {
        let mut schedule = Schedule::default();
        for after_ms in [1, 2, 3] {
            schedule
                .faults
                .push(ScheduledFault::new(after_ms, FaultKind::Pause, 0));
        }
        let book = ScheduleBook::new(Some(&schedule));
        book.open_given(0);
        book.note("pause".into());
        book.close();
        let ran = book.ran();
        assert_eq!(ran.faults.len(), 1);
        assert_eq!(ran.faults[0].did, vec!["pause".to_string()]);
        assert_eq!(
            ran.end_gap_ms,
            Some(2),
            "the phase ended waiting for the second"
        );
    }
}
