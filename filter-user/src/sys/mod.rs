//! The bottom layer: host facilities with no knowledge of regions or filters (durable file
//! writes, time, the host's name). Every other layer may use it.

pub mod fs;
pub mod host;
#[cfg(test)]
pub mod testing;
pub mod time;
