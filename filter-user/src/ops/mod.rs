//! The operations the command line and the agent share: plain requests in, typed outcomes and
//! errors out, nothing printed.

pub mod download;
pub mod fsutil;
pub mod guards;
pub mod known_good;
pub mod lock;
pub mod lockout;
pub mod metrics;
pub mod privileges;
pub mod state;
