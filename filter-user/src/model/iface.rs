//! Interface names, validated once at the boundary: every verb turns them into paths (pin
//! directories, state records, locks, known-good files), so a name must never be able to
//! name anything else.

use std::{fmt, str::FromStr};

/// Kernel limit (`IFNAMSIZ` minus the terminating NUL).
pub const MAX_LEN: usize = 15;

/// A name the kernel would accept for a network interface (`dev_valid_name`): 1-15 bytes, not
/// `.` or `..`, no `/`, `:`, whitespace or NUL. Such a name is a single, harmless path
/// component.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IfaceName(String);

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum IfaceNameError {
    #[error("interface name is empty (is the variable that should hold it unset?)")]
    Empty,
    #[error("interface name {0:?} is longer than {MAX_LEN} bytes")]
    TooLong(String),
    #[error("interface name {0:?} is not a valid interface name")]
    Dots(String),
    #[error(
        "interface name {name:?} contains {what}, which no interface name can (see `ip link`)"
    )]
    BadChar { name: String, what: &'static str },
}

impl IfaceName {
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for IfaceName {
    type Err = IfaceNameError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        if name.is_empty() {
            return Err(IfaceNameError::Empty);
        }
        if name.len() > MAX_LEN {
            return Err(IfaceNameError::TooLong(name.to_owned()));
        }
        if name == "." || name == ".." {
            return Err(IfaceNameError::Dots(name.to_owned()));
        }
        let what = name.chars().find_map(|c| match c {
            '/' => Some("a '/'"),
            ':' => Some("a ':'"),
            '\0' => Some("a NUL byte"),
            c if c.is_whitespace() => Some("whitespace"),
            c if c.is_control() => Some("a control character"),
            _ => None,
        });
        if let Some(what) = what {
            return Err(IfaceNameError::BadChar {
                name: name.to_owned(),
                what,
            });
        }
        Ok(Self(name.to_owned()))
    }
}

impl fmt::Display for IfaceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<std::path::Path> for IfaceName {
    fn as_ref(&self) -> &std::path::Path {
        self.0.as_ref()
    }
}

impl serde::Serialize for IfaceName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for IfaceName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_what_the_kernel_accepts() {
        for name in [
            "eth0",
            "veth-a.100",
            "wg0",
            "enp0s31f6",
            "a",
            "x23456789012345",
            "@x",
        ] {
            assert_eq!(name.parse::<IfaceName>().unwrap().as_str(), name);
        }
    }

    #[test]
    fn refuses_names_that_could_be_anything_but_one_path_component() {
        let cases = [
            ("", IfaceNameError::Empty),
            (
                "x234567890123456",
                IfaceNameError::TooLong("x234567890123456".into()),
            ),
            (".", IfaceNameError::Dots(".".into())),
            ("..", IfaceNameError::Dots("..".into())),
        ];
        for (name, err) in cases {
            assert_eq!(name.parse::<IfaceName>().unwrap_err(), err, "{name:?}");
        }
        for name in [
            "../../../../tmp/X",
            "a/b",
            "eth0:1",
            "eth 0",
            "eth0\n",
            "\teth0",
            "e\0",
            "e\u{7f}",
        ] {
            assert!(
                matches!(
                    name.parse::<IfaceName>(),
                    Err(IfaceNameError::BadChar { .. } | IfaceNameError::TooLong(_))
                ),
                "{name:?} accepted"
            );
        }
    }

    #[test]
    fn a_record_with_a_hostile_name_does_not_deserialize() {
        assert!(serde_json::from_str::<IfaceName>("\"../x\"").is_err());
        assert_eq!(
            serde_json::from_str::<IfaceName>("\"eth0\"")
                .unwrap()
                .as_str(),
            "eth0"
        );
    }
}

/// How frames on a link start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LinkLayer {
    /// An Ethernet header, possibly VLAN-tagged (Ethernet, veth, bridges, bonds, loopback).
    Ethernet,
    /// The IP header itself (tun, WireGuard, raw-IP modems).
    RawIp,
}

impl LinkLayer {
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Ethernet => "ethernet",
            Self::RawIp => "raw-ip",
        }
    }

    /// The value of the program's `RAW_IP` load-time setting.
    #[must_use]
    pub fn raw_ip_flag(self) -> u32 {
        u32::from(self == Self::RawIp)
    }
}
