//! Policy files (TOML): the same choices as the command-line flags, plus named groups.
//!
//! ```toml
//! deny = ["sanctioned", "RU"]      # or: allow = ["europe", "US"]
//! ports = ["tcp/443"]              # judge only these ports (default: every packet)
//! unknown = "pass"
//! local = "pass"
//! malformed = "pass"
//! tcp = "all"                      # or "syn": judge TCP only on connection attempts
//! allow_cidrs = ["192.0.2.0/24"]
//! deny_cidrs = []
//! nat64_prefixes = ["64:ff9b:1:abcd::/64"]   # NAT64 translators in use (RFC 6052 lengths)
//!
//! [groups]
//! sanctioned = ["CU", "IR", "KP", "SY"]
//!
//! [[service]]                      # instead of `ports`: each service its own countries
//! name = "ssh"
//! ports = ["tcp/22"]
//! allow = ["DE"]
//! ```

use std::{collections::BTreeMap, path::Path};

use anyhow::{Context as _, Result};
use ipnet::{IpNet, Ipv6Net};
use serde::{de::Error as _, Deserialize, Deserializer};

use crate::{
    model::network::parse_exception,
    model::policy::{parse_nat64_prefix, Action, IcmpErrors, Tcp},
    model::scope::PortRange,
};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    pub allow: Option<Vec<String>>,
    pub deny: Option<Vec<String>>,
    pub unknown: Option<Action>,
    pub malformed: Option<Action>,
    /// Special-purpose sources (private, link-local, ...): `"pass"` (default) or `"drop"`.
    pub local: Option<Action>,
    /// `"all"` (default) or `"syn"`.
    pub tcp: Option<Tcp>,
    /// Drop samples per second and CPU for `watch`; 0 (default): off.
    pub samples: Option<u32>,
    /// `"pass"` (default) or `"judge"`.
    pub icmp_errors: Option<IcmpErrors>,
    /// Destination ports the main rule judges (`tcp/443`, `udp/8000-8100`); absent: all.
    pub ports: Option<Vec<PortRange>>,
    /// Services, each with its ports and countries.
    #[serde(default)]
    pub service: Vec<ServiceEntry>,
    #[serde(default, deserialize_with = "networks")]
    pub allow_cidrs: Vec<IpNet>,
    #[serde(default, deserialize_with = "networks")]
    pub deny_cidrs: Vec<IpNet>,
    /// NAT64 translator prefixes in use (`--nat64-prefix`).
    #[serde(default, deserialize_with = "nat64_prefixes")]
    pub nat64_prefixes: Vec<Ipv6Net>,
    /// Group name → country codes or built-in groups.
    #[serde(default)]
    pub groups: BTreeMap<String, Vec<String>>,
}

/// CIDRs by the rule data files follow ([`parse_network`]): host bits set are an error, with
/// the line, not a network silently moved.
fn networks<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<IpNet>, D::Error> {
    Vec::<String>::deserialize(deserializer)?
        .iter()
        .map(|text| parse_exception(text).map_err(D::Error::custom))
        .collect()
}

/// Translator prefixes by the rule `--nat64-prefix` follows, refused with the line.
fn nat64_prefixes<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Ipv6Net>, D::Error> {
    Vec::<String>::deserialize(deserializer)?
        .iter()
        .map(|text| parse_nat64_prefix(text).map_err(D::Error::custom))
        .collect()
}

/// One `[[service]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceEntry {
    pub name: String,
    pub ports: Vec<PortRange>,
    pub allow: Option<Vec<String>>,
    pub deny: Option<Vec<String>>,
}

impl PolicyFile {
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read policy file {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("policy file {} is invalid", path.display()))
    }

    /// Parses the TOML; an error is one line, `line L, column C: what is wrong` (toml's own
    /// rendering spans several lines with a code excerpt, which cron mail and logs garble).
    pub fn parse(text: &str) -> Result<Self> {
        toml::from_str(text).map_err(|e| {
            let at = e.span().map_or(String::new(), |span| {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                format!("line {line}, column {column}: ")
            });
            anyhow::anyhow!("{at}{}", e.message().trim())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_errors_are_one_line_with_the_position() {
        let err = format!(
            "{:#}",
            PolicyFile::parse("deny = [\"CN\"]\nroot:x:0:0\n").unwrap_err()
        );
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("line 2, column "), "{err}");
    }

    #[test]
    fn reads_every_field() {
        let file = PolicyFile::parse(
            "deny = [\"sanctioned\", \"RU\"]\nunknown = \"drop\"\nallow_cidrs = [\"192.0.2.0/24\"]\n\
             [groups]\nsanctioned = [\"CU\", \"IR\"]\n",
        )
        .unwrap();
        assert_eq!(file.deny.unwrap(), ["sanctioned", "RU"]);
        assert_eq!(file.unknown, Some(Action::Drop));
        assert_eq!(file.allow_cidrs.len(), 1);
        assert_eq!(file.groups["sanctioned"], ["CU", "IR"]);
    }

    #[test]
    fn cidrs_with_host_bits_are_refused_with_the_line() {
        let err = format!(
            "{:#}",
            PolicyFile::parse("deny = [\"CN\"]\ndeny_cidrs = [\"192.0.2.0/24\", \"10.1.2.3/8\"]\n")
                .unwrap_err()
        );
        assert!(err.contains("line 2"), "{err}");
        assert!(
            err.contains("10.1.2.3/8 has host bits set; did you mean 10.0.0.0/8?"),
            "{err}"
        );
        let err = format!(
            "{:#}",
            PolicyFile::parse("allow_cidrs = [\"2001:db8::1/32\"]\n").unwrap_err()
        );
        assert!(
            err.contains("2001:db8::1/32 has host bits set; did you mean 2001:db8::/32?"),
            "{err}"
        );
        let file = PolicyFile::parse("allow_cidrs = [\" 192.0.2.0/24 \"]\n").unwrap();
        assert_eq!(file.allow_cidrs, ["192.0.2.0/24".parse::<IpNet>().unwrap()]);
    }

    #[test]
    fn services_read_with_their_ports_and_bad_ports_name_the_line() {
        let file = PolicyFile::parse(
            "[[service]]\nname = \"api\"\nports = [\"tcp/443\", \"udp/443\"]\nallow = [\"US\"]\n\
             [[service]]\nname = \"ssh\"\nports = [\"tcp/22\"]\ndeny = [\"CN\"]\n",
        )
        .unwrap();
        assert_eq!(file.service.len(), 2);
        assert_eq!(file.service[0].ports[1].to_string(), "udp/443");
        let err = format!(
            "{:#}",
            PolicyFile::parse("deny = [\"CN\"]\nports = [\"tcp/443\", \"tcp/0\"]\n").unwrap_err()
        );
        assert!(err.starts_with("line 2") && err.contains("port 0"), "{err}");
    }

    #[test]
    fn nat64_prefixes_are_read_and_bad_lengths_name_the_line() {
        let file = PolicyFile::parse(
            "deny = [\"CN\"]\nnat64_prefixes = [\"64:ff9b:1:abcd::/64\", \"2001:db8:64::/96\"]\n",
        )
        .unwrap();
        assert_eq!(file.nat64_prefixes.len(), 2);
        assert_eq!(file.nat64_prefixes[0].to_string(), "64:ff9b:1:abcd::/64");
        let err = format!(
            "{:#}",
            PolicyFile::parse("deny = [\"CN\"]\nnat64_prefixes = [\"64:ff9b:1::/52\"]\n")
                .unwrap_err()
        );
        assert!(err.starts_with("line 2"), "{err}");
        assert!(
            err.contains(
                "64:ff9b:1::/52: a NAT64 prefix is /32, /40, /48, /56, /64 or /96 (RFC 6052 \
                 defines no other layout), not /52"
            ),
            "{err}"
        );
    }

    #[test]
    fn typos_are_errors_with_a_line() {
        let err = format!(
            "{:#}",
            PolicyFile::parse("deny = [\"CN\"]\nunkown = \"drop\"\n").unwrap_err()
        );
        assert!(err.contains("unkown") && err.contains("line 2"), "{err}");
        let err = format!(
            "{:#}",
            PolicyFile::parse("unknown = \"maybe\"\n").unwrap_err()
        );
        assert!(err.contains("maybe"), "{err}");
    }
}
