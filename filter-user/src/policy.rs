//! The filtering policy: which countries pass, what unknown space and bad headers get, exceptions.

use std::{collections::BTreeSet, net::IpAddr};

use filter_common::{ACTION_DROP, ACTION_PASS, COUNTRY_SLOTS, UNKNOWN_COUNTRY};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::country::Country;

/// Verdict for a class of traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Pass,
    Drop,
}

impl Action {
    #[must_use]
    pub fn kernel(self) -> u8 {
        match self {
            Self::Pass => ACTION_PASS,
            Self::Drop => ACTION_DROP,
        }
    }
}

/// Allow-list ("supported regions": only these pass) or deny-list (these drop).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Allow,
    Deny,
}

/// Everything that decides a verdict besides the country data itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub mode: Mode,
    pub countries: BTreeSet<Country>,
    /// Sources found in no country.
    pub unknown: Action,
    /// Truncated or malformed Ethernet, VLAN or IP headers.
    pub malformed: Action,
    /// Always passed, checked first.
    pub allow_cidrs: Vec<IpNet>,
    /// Always dropped, checked after `allow_cidrs`.
    pub deny_cidrs: Vec<IpNet>,
    /// ICMP errors (unreachable, packet too big, time exceeded, parameter problem): passed
    /// whatever their source, or judged like any packet.
    #[serde(default)]
    pub icmp_errors: IcmpErrors,
    /// A dry run: every verdict is counted, drops as "would drop", and every packet passes.
    #[serde(default)]
    pub dry_run: bool,
}

/// What happens to ICMP and ICMPv6 error messages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum IcmpErrors {
    /// Passed (and counted apart): path-MTU discovery and traceroute through routers in any
    /// country keep working.
    #[default]
    Pass,
    /// Judged by their source like any other packet.
    Judge,
}

impl IcmpErrors {
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Judge => "judge",
        }
    }
}

impl Policy {
    /// A policy listing `countries` with every other part at its default: unknown and
    /// malformed pass, no exceptions, ICMP errors pass, enforcing.
    #[must_use]
    pub fn new(mode: Mode, countries: BTreeSet<Country>) -> Self {
        Self {
            mode,
            countries,
            unknown: Action::Pass,
            malformed: Action::Pass,
            allow_cidrs: vec![],
            deny_cidrs: vec![],
            icmp_errors: IcmpErrors::Pass,
            dry_run: false,
        }
    }

    /// Action per kernel country index; index 0 is unknown space.
    #[must_use]
    pub fn action_table(&self) -> Vec<u8> {
        let (listed, unlisted) = match self.mode {
            Mode::Allow => (Action::Pass, Action::Drop),
            Mode::Deny => (Action::Drop, Action::Pass),
        };
        (0..COUNTRY_SLOTS)
            .map(|i| {
                let index = u16::try_from(i).expect("COUNTRY_SLOTS fits u16");
                if index == UNKNOWN_COUNTRY {
                    self.unknown
                } else if Country::from_index(index).is_some_and(|c| self.countries.contains(&c)) {
                    listed
                } else {
                    unlisted
                }
                .kernel()
            })
            .collect()
    }

    /// The verdict the XDP program gives a source whose country is `country`, and why: the
    /// same order as the kernel (always-pass CIDRs, always-drop CIDRs, country, unknown).
    #[must_use]
    pub fn verdict(&self, addr: IpAddr, country: Option<Country>) -> (Action, Reason) {
        let longest = |nets: &[IpNet]| {
            nets.iter()
                .filter(|n| n.contains(&addr))
                .max_by_key(|n| n.prefix_len())
                .copied()
        };
        if let Some(net) = longest(&self.allow_cidrs) {
            return (Action::Pass, Reason::AllowCidr(net));
        }
        if let Some(net) = longest(&self.deny_cidrs) {
            return (Action::Drop, Reason::DenyCidr(net));
        }
        let Some(country) = country else {
            return (self.unknown, Reason::Unknown);
        };
        let listed = self.countries.contains(&country);
        let action = match (self.mode, listed) {
            (Mode::Allow, true) | (Mode::Deny, false) => Action::Pass,
            (Mode::Allow, false) | (Mode::Deny, true) => Action::Drop,
        };
        (action, Reason::Country { listed })
    }

    /// Every part of the policy in one line, exceptions included: what `update` prints, so an
    /// operator sees at once what a change kept and what it replaced.
    #[must_use]
    pub fn full_summary(&self) -> String {
        format!(
            "{}; always pass {}; always drop {}; icmp errors {}; {}",
            self.summary(),
            list_or_none(&self.allow_cidrs),
            list_or_none(&self.deny_cidrs),
            self.icmp_errors.name(),
            if self.dry_run {
                "DRY RUN: nothing is dropped, drops are counted as would-drop"
            } else {
                "enforcing"
            }
        )
    }

    /// What the program does with a source of `country`: the policy's verdict, and nothing is
    /// dropped during a dry run.
    #[must_use]
    pub fn effective(&self, addr: IpAddr, country: Option<Country>) -> Action {
        match self.verdict(addr, country).0 {
            Action::Drop if self.dry_run => Action::Pass,
            action => action,
        }
    }

    /// One-line summary for status output, e.g. `deny CN,RU; unknown pass`.
    #[must_use]
    pub fn summary(&self) -> String {
        let mode = match self.mode {
            Mode::Allow => "allow",
            Mode::Deny => "deny",
        };
        let codes: Vec<String> = self.countries.iter().map(|c| c.code()).collect();
        format!(
            "{}{mode} {}; unknown {}; malformed {}",
            if self.dry_run { "DRY RUN of " } else { "" },
            codes.join(","),
            action_name(self.unknown),
            action_name(self.malformed)
        )
    }
}

/// The address the XDP program judges for source `addr`: the IPv4 address an IPv6 source
/// embeds ([`filter_common::embedded_ipv4`]), or the address itself.
#[must_use]
pub fn as_judged(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => {
            filter_common::embedded_ipv4(&v6.octets()).map_or(addr, |v4| IpAddr::V4(v4.into()))
        }
        IpAddr::V4(_) => addr,
    }
}

/// `none`, or the CIDRs joined by commas.
#[must_use]
pub fn list_or_none(nets: &[IpNet]) -> String {
    if nets.is_empty() {
        "none".to_owned()
    } else {
        nets.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Tag of the canonical policy encoding. Bump it only for a change of meaning; a field added
/// later must encode to nothing while it holds its default, so identical policies keep
/// identical content hashes across upgrades.
pub const CANONICAL_POLICY_V1: &str = "regionfilter-policy-v1";

/// The canonical bytes of a policy (or of "no policy") that content hashes cover: a versioned
/// text form with every set sorted and deduplicated, independent of how serde would lay the
/// struct out.
#[must_use]
pub fn canonical_bytes(policy: Option<&Policy>) -> Vec<u8> {
    let mut out = format!("{CANONICAL_POLICY_V1}\n");
    let Some(p) = policy else {
        out.push_str("none\n");
        return out.into_bytes();
    };
    let nets = |nets: &[IpNet]| {
        let set: BTreeSet<String> = nets.iter().map(|n| n.trunc().to_string()).collect();
        set.into_iter().collect::<Vec<_>>().join(",")
    };
    let codes: Vec<String> = p.countries.iter().map(|c| c.code()).collect();
    out.push_str(&format!(
        "mode {}\ncountries {}\nunknown {}\nmalformed {}\nallow-cidrs {}\ndeny-cidrs {}\n",
        match p.mode {
            Mode::Allow => "allow",
            Mode::Deny => "deny",
        },
        codes.join(","),
        action_name(p.unknown),
        action_name(p.malformed),
        nets(&p.allow_cidrs),
        nets(&p.deny_cidrs),
    ));
    // Added after v1: encoded only when not the default, so older content keeps its hash.
    if p.icmp_errors != IcmpErrors::Pass {
        out.push_str(&format!("icmp-errors {}\n", p.icmp_errors.name()));
    }
    if p.dry_run {
        out.push_str("dry-run\n");
    }
    out.into_bytes()
}

/// Why [`Policy::verdict`] decided as it did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    AllowCidr(IpNet),
    DenyCidr(IpNet),
    /// The source's country is (or is not) on the allow/deny list.
    Country {
        listed: bool,
    },
    /// The data places the source in no country.
    Unknown,
}

#[must_use]
pub fn action_name(action: Action) -> &'static str {
    match action {
        Action::Pass => "pass",
        Action::Drop => "drop",
    }
}

impl Serialize for Country {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.code())
    }
}

impl<'de> Deserialize<'de> for Country {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let code = String::deserialize(d)?;
        Country::from_code(&code)
            .ok_or_else(|| serde::de::Error::custom(format!("bad country code {code:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(mode: Mode, codes: &[&str], unknown: Action) -> Policy {
        Policy {
            unknown,
            ..Policy::new(
                mode,
                codes.iter().map(|c| Country::parse(c).unwrap()).collect(),
            )
        }
    }

    #[test]
    fn canonical_encoding_is_pinned_and_ignores_order_and_duplicates() {
        let mut p = policy(Mode::Deny, &["RU", "CN"], Action::Pass);
        p.allow_cidrs = vec![
            "192.0.2.0/24".parse().unwrap(),
            "10.0.0.0/8".parse().unwrap(),
        ];
        p.deny_cidrs = vec!["2001:db8::/32".parse().unwrap()];
        let text = String::from_utf8(canonical_bytes(Some(&p))).unwrap();
        // Pinned: a change here changes every content hash, so "unchanged" and known-good
        // repair would stop recognising identical content after an upgrade.
        assert_eq!(
            text,
            "regionfilter-policy-v1\nmode deny\ncountries CN,RU\nunknown pass\nmalformed pass\n\
             allow-cidrs 10.0.0.0/8,192.0.2.0/24\ndeny-cidrs 2001:db8::/32\n"
        );
        let mut shuffled = p.clone();
        shuffled.allow_cidrs.reverse();
        shuffled.allow_cidrs.push("10.0.0.0/8".parse().unwrap());
        assert_eq!(canonical_bytes(Some(&shuffled)), canonical_bytes(Some(&p)));
        assert_eq!(
            canonical_bytes(None),
            b"regionfilter-policy-v1\nnone\n".to_vec()
        );
    }

    fn action_of(table: &[u8], code: &str) -> u8 {
        table[usize::from(Country::parse(code).unwrap().index())]
    }

    #[test]
    fn allow_list_drops_everything_unlisted() {
        let table = policy(Mode::Allow, &["DE", "FR"], Action::Pass).action_table();
        assert_eq!(table.len(), COUNTRY_SLOTS as usize);
        assert_eq!(action_of(&table, "DE"), ACTION_PASS);
        assert_eq!(action_of(&table, "FR"), ACTION_PASS);
        assert_eq!(action_of(&table, "US"), ACTION_DROP);
        assert_eq!(table[usize::from(UNKNOWN_COUNTRY)], ACTION_PASS);
    }

    #[test]
    fn deny_list_drops_only_listed_and_unknown_follows_its_flag() {
        let table = policy(Mode::Deny, &["CN"], Action::Drop).action_table();
        assert_eq!(action_of(&table, "CN"), ACTION_DROP);
        assert_eq!(action_of(&table, "US"), ACTION_PASS);
        assert_eq!(table[usize::from(UNKNOWN_COUNTRY)], ACTION_DROP);
    }

    #[test]
    fn verdict_checks_exceptions_first_then_country_then_unknown() {
        let mut p = policy(Mode::Deny, &["CN"], Action::Drop);
        p.allow_cidrs = vec!["10.1.0.0/16".parse().unwrap()];
        p.deny_cidrs = vec!["10.0.0.0/8".parse().unwrap()];
        let cn = Some(Country::parse("CN").unwrap());
        let de = Some(Country::parse("DE").unwrap());
        let at = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(p.verdict(at("10.1.2.3"), cn).0, Action::Pass);
        assert_eq!(p.verdict(at("10.2.2.3"), de).0, Action::Drop);
        assert_eq!(
            p.verdict(at("1.2.3.4"), cn),
            (Action::Drop, Reason::Country { listed: true })
        );
        assert_eq!(
            p.verdict(at("1.2.3.4"), de),
            (Action::Pass, Reason::Country { listed: false })
        );
        assert_eq!(
            p.verdict(at("1.2.3.4"), None),
            (Action::Drop, Reason::Unknown)
        );
        p.mode = Mode::Allow;
        assert_eq!(p.verdict(at("1.2.3.4"), de).0, Action::Drop);
    }

    #[test]
    fn summary_names_mode_countries_and_defaults() {
        let p = policy(Mode::Deny, &["RU", "CN"], Action::Pass);
        assert_eq!(p.summary(), "deny CN,RU; unknown pass; malformed pass");
    }
}
