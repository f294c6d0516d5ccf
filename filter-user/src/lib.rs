//! regionfilter userspace: compiles country data into the XDP program's maps, attaches it,
//! and reads its counters.
//!
//! Layers, lowest first; each uses only its own and the ones below it (`cargo xtask lint`
//! checks, see ARCHITECTURE.md): `sys` (durable file writes, time), `model` (countries,
//! groups, policy, policy files, CIDR text, scopes, interface names), `data` (readers),
//! `compile` (region sets, paint, artifacts, diff, coverage, the reference judge), `state`
//! (where pins, records, locks and known-good files live; the attach record), `kernel`
//! (program, maps, tables, counter slots, self-test, swap, pins, placement), `ops` (what both
//! front ends run: attach, update, rollback, detach, guards, known-good, download, metrics,
//! status, stats, live explain, samples, exit statuses), then the front ends `agent` and `cli`
//! (one file per verb; its clap options become plain `DataSpec`/`PolicySpec` values).

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
