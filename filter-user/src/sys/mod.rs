//! The bottom layer: host facilities with no knowledge of regions or filters (durable file
//! writes, time). Every other layer may use it.

pub mod fs;
#[cfg(test)]
pub mod testing;
pub mod time;
