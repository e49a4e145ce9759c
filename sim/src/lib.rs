//! detcd-sim: detcd's deterministic simulator. It runs the *real* detcd server — many members at
//! once — inside madsim, where one seed fixes every scheduling decision, network delay, fault
//! and random draw, so any failure replays exactly.
//!
//! One seed (TigerBeetle's VOPR shape, see [`simulation`]): draw swarm [`options`] → start the
//! [`cluster`] and the [`workload`]'s clients → inject [`faults`] while they run (safety phase) →
//! heal, and demand a write and converged replicas within a bound (liveness phase) → run the
//! [`checkers`] over the recorded [`history`] → verdict, exit code, [`report`] and [`trace`].
//!
//! Only the simulator build (`--cfg madsim`) has it; `scripts/sim` builds and runs it.
#![cfg(madsim)]

pub mod checkers;
pub mod cli;
pub mod client;
pub mod cluster;
pub mod corpus;
pub mod coverage;
pub mod faults;
pub mod history;
pub mod jobs;
pub mod junit;
pub mod leases;
pub mod merge;
pub mod options;
pub mod picture;
pub mod progress;
pub mod quiet;
pub mod recorded;
pub mod report;
pub mod schedule;
pub mod server_log;
pub mod shrink;
pub mod simulation;
pub mod state_hashes;
pub mod summary;
pub mod sweep;
pub mod trace;
pub mod watchers;
pub mod workload;
