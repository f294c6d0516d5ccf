//! Test kit for regionfilter's real-kernel tests and demo: namespace and veth guards,
//! hand-built frames, and a runner for the `regionfilter` binary.

pub mod agent;
pub mod cli;
pub mod consts;
pub mod container;
pub mod frame;
pub mod http;
pub mod kernel;
pub mod netns;
pub mod prometheus;
pub mod release;
pub mod rng;
pub mod traffic;
pub mod tun;
pub mod update;
pub mod wait;
