//! Storage layers of detcd. Kept free of I/O so that the same code runs
//! under tokio and inside the madsim simulator.

pub mod mvcc;
