//! regionfilter userspace: compiles country data into the XDP program's maps, attaches it,
//! and reads its counters.

pub mod artifact;
pub mod changes;
pub mod cli;
pub mod compile;
pub mod country;
pub mod coverage;
pub mod data;
pub mod download;
pub mod fsutil;
pub mod fuzz_targets;
pub mod groups;
pub mod guards;
pub mod iface;
pub mod known_good;
pub mod lock;
pub mod lockout;
pub mod maps;
pub mod metrics;
pub mod model;
pub mod netdev;
pub mod paint;
pub mod pins;
pub mod placement;
pub mod policy;
pub mod policy_file;
pub mod privileges;
pub mod program;
pub mod scope;
pub mod selftest;
pub mod slots;
pub mod state;
pub mod swap;
pub mod tables;

pub use program::EBPF_OBJECT;
