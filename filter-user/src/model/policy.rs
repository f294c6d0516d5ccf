//! The filtering policy: which countries pass, what unknown space and bad headers get, exceptions.

use std::{collections::BTreeSet, net::IpAddr};

use filter_common::{Embedding, Nat64Prefix, Nat64Prefixes, MAX_NAT64_PREFIXES};
use filter_common::{
    PolicyRow, ACTION_DROP, ACTION_PASS, CLASS_EXCEPTION_DROP, CLASS_EXCEPTION_PASS, CLASS_LOCAL,
    COUNTRY_SLOTS, ENTRY_SLOTS, POLICY_ROWS, ROW_FIRST_SERVICE, ROW_MAIN, ROW_STRICT,
    UNKNOWN_COUNTRY,
};
use ipnet::{IpNet, Ipv6Net};
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
    /// NAT64 translator prefixes in use (RFC 6052 lengths), whose sources are judged by the
    /// IPv4 address each one's layout puts where; validated by [`check_nat64_prefixes`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nat64_prefixes: Vec<Ipv6Net>,
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
            nat64_prefixes: vec![],
        }
    }

    /// The declared NAT64 prefixes as the kernel's settings hold them, packed first.
    #[must_use]
    pub fn nat64_table(&self) -> Nat64Prefixes {
        nat64_table(&self.nat64_prefixes)
    }

    /// What the program judges a source as under this policy's NAT64 prefixes.
    #[must_use]
    pub fn judged(&self, addr: IpAddr) -> Judged {
        judged_with(addr, &self.nat64_table())
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
            "{}; always pass {}; always drop {}; local {}; {}; icmp errors {}; tcp {}{}{}; {}",
            self.summary_with(false),
            list_or_none(&self.allow_cidrs),
            list_or_none(&self.deny_cidrs),
            action_name(self.local),
            self.scope.summary(),
            self.icmp_errors.name(),
            self.tcp.name(),
            // Named only when declared, so the line of every other policy stays as it was.
            if self.nat64_prefixes.is_empty() {
                String::new()
            } else {
                format!(
                    "; nat64 {}",
                    self.nat64_prefixes
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(",")
                )
            },
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

/// What the XDP program judges a source as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Judged {
    /// This address: the source, or the IPv4 address it embeds.
    Addr(IpAddr),
    /// An IPv6 source in `64:ff9b:1::/48` outside every declared NAT64 prefix: its IPv4
    /// address cannot be read, so it is dropped when judged.
    UndeclaredNat64,
}

/// [`Policy::judged`] for a table of declared prefixes ([`filter_common::embedded_ipv4`], the
/// function the program runs).
#[must_use]
pub fn judged_with(addr: IpAddr, nat64: &Nat64Prefixes) -> Judged {
    match addr {
        IpAddr::V6(v6) => match filter_common::embedded_ipv4(&v6.octets(), nat64) {
            Embedding::Ipv4(v4) => Judged::Addr(IpAddr::V4(v4.into())),
            Embedding::UndeclaredNat64 => Judged::UndeclaredNat64,
            Embedding::None => Judged::Addr(addr),
        },
        IpAddr::V4(_) => Judged::Addr(addr),
    }
}

/// The address the XDP program judges for source `addr` with no NAT64 prefix declared: the
/// IPv4 address an IPv6 source embeds, or the address itself (also for an undeclared
/// local-use NAT64 source, which is dropped before any lookup).
#[must_use]
pub fn as_judged(addr: IpAddr) -> IpAddr {
    match judged_with(addr, &Nat64Prefixes::default()) {
        Judged::Addr(a) => a,
        Judged::UndeclaredNat64 => addr,
    }
}

/// The kernel's table of declared NAT64 prefixes; entries past [`MAX_NAT64_PREFIXES`] or
/// with another length are left out (the policy was checked when it was made).
#[must_use]
pub fn nat64_table(prefixes: &[Ipv6Net]) -> Nat64Prefixes {
    let mut table = Nat64Prefixes::default();
    let entries = prefixes
        .iter()
        .filter_map(|p| Nat64Prefix::new(p.network().octets(), p.prefix_len()));
    for (slot, entry) in table.iter_mut().zip(entries) {
        *slot = entry;
    }
    table
}

/// IPv6 space whose sources already carry IPv4 by a fixed rule: a declared prefix may not
/// overlap it (it would give one address two readings).
const BUILT_IN_EMBEDDINGS: &[(&str, &str)] = &[
    ("::/96", "IPv4-compatible addresses"),
    ("::ffff:0:0/96", "IPv4-mapped addresses"),
    (
        "64:ff9b::/96",
        "the NAT64 well-known prefix, which is built in",
    ),
    ("2001::/32", "Teredo"),
    ("2002::/16", "6to4"),
];

/// Why one `--nat64-prefix` value is not a translator prefix: a length RFC 6052 has no layout
/// for, host bits, IPv4, or overlap with a built-in embedding.
///
/// # Errors
///
/// The message says what to give instead.
pub fn parse_nat64_prefix(text: &str) -> Result<Ipv6Net, String> {
    let text = text.trim();
    let net: IpNet = text.parse().map_err(|_| {
        format!("{text:?} is not an IPv6 prefix (expected e.g. 64:ff9b:1:abcd::/64)")
    })?;
    let IpNet::V6(net) = net else {
        return Err(format!(
            "{text} is IPv4: a NAT64 prefix is IPv6, e.g. 64:ff9b:1:abcd::/64"
        ));
    };
    if !filter_common::NAT64_PREFIX_LENS.contains(&net.prefix_len()) {
        return Err(format!(
            "{text}: a NAT64 prefix is /32, /40, /48, /56, /64 or /96 (RFC 6052 defines no other \
             layout), not /{}",
            net.prefix_len()
        ));
    }
    if net.trunc() != net {
        return Err(format!(
            "{text} has host bits set; did you mean {}?",
            net.trunc()
        ));
    }
    for (builtin, name) in BUILT_IN_EMBEDDINGS {
        let builtin: Ipv6Net = builtin.parse().expect("a valid built-in prefix");
        if builtin.contains(&net) || net.contains(&builtin) {
            return Err(format!(
                "{text} overlaps {builtin} ({name}), whose sources are already judged by the \
                 IPv4 address they carry"
            ));
        }
    }
    Ok(net)
}

/// Checks a policy's declared NAT64 prefixes as a set: at most [`MAX_NAT64_PREFIXES`], none
/// inside another (a source there would have two layouts to choose from).
///
/// # Errors
///
/// Says which prefixes to remove.
pub fn check_nat64_prefixes(prefixes: &[Ipv6Net]) -> Result<(), String> {
    let mut seen: Vec<Ipv6Net> = Vec::new();
    for p in prefixes {
        if seen.contains(p) {
            continue;
        }
        if let Some(other) = seen.iter().find(|o| o.contains(p) || p.contains(*o)) {
            return Err(format!(
                "NAT64 prefixes {other} and {p} overlap: a source in both would have two \
                 layouts; declare the one the translator uses"
            ));
        }
        seen.push(*p);
    }
    if seen.len() > MAX_NAT64_PREFIXES {
        return Err(format!(
            "{} NAT64 prefixes declared: at most {MAX_NAT64_PREFIXES} are supported",
            seen.len()
        ));
    }
    Ok(())
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
    if !p.nat64_prefixes.is_empty() {
        let set: BTreeSet<String> = p.nat64_prefixes.iter().map(ToString::to_string).collect();
        out.push_str(&format!(
            "nat64 {}\n",
            set.into_iter().collect::<Vec<_>>().join(",")
        ));
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

    #[test]
    fn nat64_prefixes_are_hashed_only_when_declared_and_checked_one_by_one() {
        let p = policy(Mode::Deny, &["RU"], Action::Pass);
        let before = canonical_bytes(Some(&p));
        let mut declared = p.clone();
        declared.nat64_prefixes = vec![
            parse_nat64_prefix("64:ff9b:1:abcd::/64").unwrap(),
            parse_nat64_prefix("2001:db8:64::/96").unwrap(),
        ];
        let text = String::from_utf8(canonical_bytes(Some(&declared))).unwrap();
        assert!(
            text.ends_with("nat64 2001:db8:64::/96,64:ff9b:1:abcd::/64\n"),
            "{text}"
        );
        assert_eq!(canonical_bytes(Some(&p)), before);
        let err = |t: &str| parse_nat64_prefix(t).unwrap_err();
        assert_eq!(
            err("64:ff9b:1::/50"),
            "64:ff9b:1::/50: a NAT64 prefix is /32, /40, /48, /56, /64 or /96 (RFC 6052 defines \
             no other layout), not /50"
        );
        assert_eq!(
            err("64:ff9b:1::1/96"),
            "64:ff9b:1::1/96 has host bits set; did you mean 64:ff9b:1::/96?"
        );
        assert!(err("192.0.2.0/24").contains("is IPv4"));
        assert!(err("64:ff9b::/96").contains("the NAT64 well-known prefix, which is built in"));
        assert!(err("64:ff9b::/32").contains("overlaps 64:ff9b::/96"));
        assert!(err("2002:1::/32").contains("6to4"));
        assert!(err("nonsense").contains("is not an IPv6 prefix"));
        // Judged by the declared layout; the rest of the local-use prefix is unreadable.
        let gb: IpAddr = "81.2.69.160".parse().unwrap();
        assert_eq!(
            declared.judged("64:ff9b:1:abcd:51:245:a000:0".parse().unwrap()),
            Judged::Addr(gb)
        );
        assert_eq!(
            declared.judged("64:ff9b:1:1::1".parse().unwrap()),
            Judged::UndeclaredNat64
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
