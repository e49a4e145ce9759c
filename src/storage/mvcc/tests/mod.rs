//! Behavioural tests of the store, one rule per test.

mod support;

mod compaction;
mod events;
mod layout;
mod model;
mod puts_and_deletes;
mod ranges;
mod txns;
