//! The operations the command line and the agent share: plain requests in, typed outcomes and
//! errors out, nothing printed.

pub mod attach;
pub mod detach;
pub mod download;
pub mod error;
pub mod fsutil;
pub mod guards;
pub mod inputs;
pub mod known_good;
pub mod lock;
pub mod lockout;
pub mod metrics;
pub mod privileges;
pub mod samples;
pub mod state;
pub mod update;

pub use error::{ErrorKind, OpError};
