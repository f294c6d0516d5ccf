//! Constants several test modules share: addresses inside the bundled MaxMind test database
//! (see fixtures/README.md), that database, and how long a test waits for the kernel.

use std::{sync::LazyLock, time::Duration};

use crate::cli::fixture;

/// A source the bundled test database places in the United Kingdom.
pub const GB_V4: &str = "81.2.69.160";
/// A source the bundled test database places in Sweden.
pub const SE_V4: &str = "89.160.20.130";
/// A source the bundled test database places in Japan.
pub const JP_V6: &str = "2001:218::1";
/// A source the bundled test database places in Switzerland.
pub const CH_V6: &str = "2a02:d000::1";

/// How long a test waits for counters, pins or routes to show what it expects.
pub const WAIT: Duration = Duration::from_secs(10);

/// Path of the bundled MaxMind test database, as the CLI takes it.
pub static TEST_DB: LazyLock<String> = LazyLock::new(|| {
    fixture("maxmind/GeoLite2-Country-Test.mmdb")
        .display()
        .to_string()
});
