//! The filtering policy: which countries pass, what unknown space and bad headers get, exceptions.

use std::{collections::BTreeSet, net::IpAddr};

use filter_common::{
    PolicyRow, ACTION_DROP, ACTION_PASS, CLASS_EXCEPTION_DROP, CLASS_EXCEPTION_PASS, CLASS_LOCAL,
    COUNTRY_SLOTS, ENTRY_SLOTS, POLICY_ROWS, ROW_FIRST_SERVICE, ROW_MAIN, ROW_STRICT,
    UNKNOWN_COUNTRY,
};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::{
    model::country::Country,
    model::scope::{mode_name, ports_text, Scope},
};

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
    /// Special-purpose sources (private, loopback, link-local, CGNAT, ULA, ...).
    #[serde(default = "pass")]
    pub local: Action,
    /// Which TCP segments are judged.
    #[serde(default)]
    pub tcp: Tcp,
    /// Which packets are judged: the whole host, some ports, or services.
    #[serde(default)]
    pub scope: Scope,
    /// Dropped and would-drop packets sampled for `watch`, per second and CPU; 0: off.
    #[serde(default)]
    pub samples: u32,
}

fn pass() -> Action {
    Action::Pass
}

/// Which TCP segments the country policy judges.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Tcp {
    /// Every segment.
    #[default]
    All,
    /// Only connection attempts (SYN without ACK): replies to the host's own connections,
    /// and connections open before the filter, pass.
    Syn,
}

impl Tcp {
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Syn => "syn",
        }
    }
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
            local: Action::Pass,
            tcp: Tcp::All,
            scope: Scope::Host,
            samples: 0,
        }
    }

    /// The action of one rule (`mode` and `countries`) for a table entry: countries by the
    /// list, classes by the policy's class verdicts.
    #[must_use]
    pub fn rule_action(&self, mode: Mode, countries: &BTreeSet<Country>, entry: u16) -> Action {
        match entry {
            UNKNOWN_COUNTRY => self.unknown,
            CLASS_EXCEPTION_PASS => Action::Pass,
            CLASS_EXCEPTION_DROP => Action::Drop,
            CLASS_LOCAL => self.local,
            _ => {
                let listed = Country::from_index(entry).is_some_and(|c| countries.contains(&c));
                match (mode, listed) {
                    (Mode::Allow, true) | (Mode::Deny, false) => Action::Pass,
                    (Mode::Allow, false) | (Mode::Deny, true) => Action::Drop,
                }
            }
        }
    }

    /// The rules that judge some traffic, by policy row: the main rule (unless services
    /// leave other traffic out of scope), then each service.
    #[must_use]
    pub fn rules(&self) -> Vec<(u8, Mode, &BTreeSet<Country>)> {
        let mut rules = Vec::new();
        let main_judges = !matches!(
            self.scope,
            Scope::Services {
                other_judged: false,
                ..
            }
        );
        if main_judges {
            rules.push((ROW_MAIN, self.mode, &self.countries));
        }
        if let Scope::Services { services, .. } = &self.scope {
            for (row, s) in (ROW_FIRST_SERVICE..).zip(services) {
                rules.push((row, s.mode, &s.countries));
            }
        }
        rules
    }

    /// The action of policy row `row` for a table entry. The strict row drops what any rule
    /// drops; a row no rule uses passes.
    #[must_use]
    pub fn row_action(&self, row: u8, entry: u16) -> Action {
        Self::row_action_of(&self.rules(), row, |mode, countries| {
            self.rule_action(mode, countries, entry)
        })
    }

    /// [`Policy::row_action`] with the rules already listed (callers that judge many entries
    /// list them once).
    pub fn row_action_of(
        rules: &[(u8, Mode, &BTreeSet<Country>)],
        row: u8,
        action: impl Fn(Mode, &BTreeSet<Country>) -> Action,
    ) -> Action {
        let drops = rules
            .iter()
            .filter(|r| row == ROW_STRICT || r.0 == row)
            .any(|&(_, mode, countries)| action(mode, countries) == Action::Drop);
        if drops {
            Action::Drop
        } else {
            Action::Pass
        }
    }

    /// Every row of the kernel's policy array.
    #[must_use]
    pub fn rows(&self) -> Vec<PolicyRow> {
        let rules = self.rules();
        (0..POLICY_ROWS)
            .map(|row| {
                let row = u8::try_from(row).expect("POLICY_ROWS fits u8");
                let mut actions = [ACTION_PASS; ENTRY_SLOTS as usize];
                for (entry, action) in (0u16..).zip(actions.iter_mut()) {
                    *action = Self::row_action_of(&rules, row, |mode, countries| {
                        self.rule_action(mode, countries, entry)
                    })
                    .kernel();
                }
                actions
            })
            .collect()
    }

    /// The main rule's action per country index; index 0 is unknown space.
    #[must_use]
    pub fn action_table(&self) -> Vec<u8> {
        (0..COUNTRY_SLOTS)
            .map(|i| {
                let index = u16::try_from(i).expect("COUNTRY_SLOTS fits u16");
                self.rule_action(self.mode, &self.countries, index).kernel()
            })
            .collect()
    }

    /// Every part of the policy in one line, exceptions included: what `update` prints, so an
    /// operator sees at once what a change kept and what it replaced.
    #[must_use]
    pub fn full_summary(&self) -> String {
        format!(
            "{}; always pass {}; always drop {}; local {}; {}; icmp errors {}; tcp {}{}; {}",
            self.summary_with(false),
            list_or_none(&self.allow_cidrs),
            list_or_none(&self.deny_cidrs),
            action_name(self.local),
            self.scope.summary(),
            self.icmp_errors.name(),
            self.tcp.name(),
            if self.samples == 0 {
                String::new()
            } else {
                format!("; drop samples {}/s per CPU", self.samples)
            },
            if self.dry_run {
                "DRY RUN: nothing is dropped, drops are counted as would-drop"
            } else {
                "enforcing"
            }
        )
    }

    /// One-line summary for status output, e.g. `deny CN,RU; unknown pass`.
    #[must_use]
    pub fn summary(&self) -> String {
        self.summary_with(true)
    }

    /// The summary, with a short form of the scope (`full_summary` names it in full).
    fn summary_with(&self, short_scope: bool) -> String {
        let codes: Vec<String> = self.countries.iter().map(|c| c.code()).collect();
        let names = |services: &[crate::model::scope::Service]| {
            services
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(",")
        };
        let main = match &self.scope {
            Scope::Services {
                services,
                other_judged: false,
            } if short_scope => format!("services {}", names(services)),
            Scope::Services {
                other_judged: false,
                ..
            } => "services only".to_owned(),
            Scope::Host | Scope::Ports(_) | Scope::Services { .. } => {
                format!("{} {}", mode_name(self.mode), codes.join(","))
            }
        };
        let scope = match &self.scope {
            _ if !short_scope => String::new(),
            Scope::Ports(ports) => format!(" on {}", ports_text(ports)),
            Scope::Services {
                other_judged: false,
                ..
            } => String::new(),
            Scope::Services { services, .. } => format!(" + services {}", names(services)),
            Scope::Host => String::new(),
        };
        format!(
            "{}{main}{scope}; unknown {}; malformed {}",
            if self.dry_run { "DRY RUN of " } else { "" },
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
    // A one-line summary stays one line: tens of thousands of exceptions are counted, not
    // listed (`status --json` and the policy file list them all).
    const LISTED: usize = 8;
    match nets.len() {
        0 => "none".to_owned(),
        n if n <= LISTED => nets
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(","),
        n => format!(
            "{} CIDRs ({},... and {} more)",
            n,
            nets[..LISTED]
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(","),
            n - LISTED
        ),
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
    if p.local != Action::Pass {
        out.push_str(&format!("local {}\n", action_name(p.local)));
    }
    if p.tcp != Tcp::All {
        out.push_str(&format!("tcp {}\n", p.tcp.name()));
    }
    if p.samples != 0 {
        out.push_str(&format!("samples {}\n", p.samples));
    }
    match &p.scope {
        Scope::Host => {}
        Scope::Ports(ports) => out.push_str(&format!("ports {}\n", ports_text(ports))),
        Scope::Services {
            services,
            other_judged,
        } => {
            // Services in their given order: the order decides nothing, but names must match.
            for s in services {
                let codes: Vec<String> = s.countries.iter().map(|c| c.code()).collect();
                let mut ports = s.ports.clone();
                ports.sort();
                ports.dedup();
                out.push_str(&format!(
                    "service {} {} {} {}\n",
                    s.name,
                    ports_text(&ports),
                    mode_name(s.mode),
                    codes.join(",")
                ));
            }
            out.push_str(if *other_judged {
                "other judged\n"
            } else {
                "other out-of-scope\n"
            });
        }
    }
    out.into_bytes()
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
    /// 100,000 exceptions made `attach` print megabytes on its one summary line.
    #[test]
    fn long_exception_lists_are_counted_not_listed() {
        let nets: Vec<IpNet> = (0..100_000u32)
            .map(|i| IpNet::V4(ipnet::Ipv4Net::new(std::net::Ipv4Addr::from(i << 8), 24).unwrap()))
            .collect();
        let text = list_or_none(&nets);
        assert!(text.len() < 200, "{}", text.len());
        assert!(
            text.starts_with("100000 CIDRs (0.0.0.0/24,0.0.1.0/24,"),
            "{text}"
        );
        assert!(text.ends_with("and 99992 more)"), "{text}");
        assert_eq!(list_or_none(&nets[..2]), "0.0.0.0/24,0.0.1.0/24");
        assert_eq!(list_or_none(&[]), "none");
    }

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
    fn summary_names_mode_countries_and_defaults() {
        let p = policy(Mode::Deny, &["RU", "CN"], Action::Pass);
        assert_eq!(p.summary(), "deny CN,RU; unknown pass; malformed pass");
    }
}
