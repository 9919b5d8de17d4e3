//! What lockship borrows from the host: temporary files that are locked by their owner and
//! collected after a crash, and signals and child processes, so that a stopped build leaves
//! nothing behind; and the confinement of a program run from an input.

pub mod cache_lock;
pub mod confine;
pub mod interrupt;
pub mod sandbox;
pub mod scratch;
