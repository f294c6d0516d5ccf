//! Every real-kernel test but the leak test, as one test binary (one link instead of eleven);
//! each file is a module, so a test's name starts with its file's, e.g. `agent::...`.
//! `leaks.rs` stays a binary of its own: it counts every BPF map and program in the kernel and
//! the process's memory, which other tests running next to it would change.

mod agent;
mod bad_input;
mod container;
mod data_cli;
mod deploy;
mod differential;
mod edge;
mod hardening;
mod metrics;
mod namespaces;
mod prog_test_run;
mod release;
mod rules;
mod update;
mod world;
