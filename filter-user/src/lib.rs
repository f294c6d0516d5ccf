//! regionfilter userspace: compiles country data into the XDP program's maps, attaches it,
//! and reads its counters.
//!
//! Layers, each using only those above it: `model` (countries, groups, policy, the reference
//! judge), `data` (readers), `compile` (region sets, artifacts, diff, coverage), `kernel`
//! (program, maps, tables, self-test, swap, pins), `ops` (the operations both front ends run:
//! attach, update, rollback, detach, guards, known-good, state, download, metrics), and the
//! front ends `cli` (one file per verb) and `agent`.

pub mod agent;
pub mod cli;
pub mod compile;
pub mod data;
pub mod fuzz_targets;
pub mod kernel;
pub mod model;
pub mod ops;
pub mod state;
pub mod sys;

pub use kernel::program::EBPF_OBJECT;
