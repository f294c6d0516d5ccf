//! The operations the command line and the agent share: plain requests in, typed outcomes and
//! errors out, nothing printed.

pub mod attach;
pub mod data_spec;
pub mod detach;
pub mod download;
pub mod error;
pub mod exit;
pub mod explain;
pub mod guards;
pub mod known_good;
pub mod lock;
pub mod lockout;
pub mod metrics;
pub mod policy_spec;
pub mod privileges;
pub mod release;
pub mod samples;
pub mod stats;
pub mod status;
pub mod update;

pub use error::{ErrorKind, OpError};
