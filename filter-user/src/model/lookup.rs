//! How the program finds a source's country: chosen at attach, recorded, and fixed for the
//! life of the attachment.

use filter_common::{LOOKUP_FAST, LOOKUP_LPM};

/// How the program finds a source's country; fixed when the filter is attached.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Lookup {
    #[default]
    /// Compiled arrays (DIR-16-8-8 for IPv4, byte strides for IPv6): 112 MiB of kernel memory
    /// for both halves, preallocated; one to a few array reads per packet.
    Fast,
    /// The plain LPM tries: memory grows with the data, several times the cost per packet.
    Lpm,
}

impl Lookup {
    #[must_use]
    pub fn kernel(self) -> u32 {
        match self {
            Self::Fast => LOOKUP_FAST,
            Self::Lpm => LOOKUP_LPM,
        }
    }

    #[must_use]
    pub fn from_kernel(value: u32) -> Self {
        if value == LOOKUP_LPM {
            Self::Lpm
        } else {
            Self::Fast
        }
    }

    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Fast => "fast",
            Self::Lpm => "lpm",
        }
    }
}
