//! regionfilter userspace: compiles country data into the XDP program's maps, attaches it,
//! and reads its counters.

pub mod aggregate;
pub mod cli;
pub mod country;
pub mod maps;
pub mod mmdb;
pub mod policy;
pub mod privileges;
pub mod program;
pub mod state;

pub use program::EBPF_OBJECT;
