//! The XDP program and its maps: loading, table layout, the self-test, the blue/green swap,
//! pins, counters' slots and network devices.

pub mod maps;
pub mod netdev;
pub mod pins;
pub mod placement;
pub mod program;
pub mod selftest;
pub mod slots;
pub mod swap;
pub mod tables;
