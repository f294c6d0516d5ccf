//! The policy the command line or the agent's configuration states, checked into a policy
//! (attach, compile, explain) or into a change of the loaded one (update).

use std::{
    collections::{BTreeMap, BTreeSet},
    path::PathBuf,
};

use anyhow::{anyhow, bail, Context as _, Result};
use ipnet::{IpNet, Ipv6Net};

use crate::{
    model::country::Country,
    model::groups::Groups,
    model::policy::{check_nat64_prefixes, Action, IcmpErrors, Mode, Policy, Tcp},
    model::policy_file::PolicyFile,
    model::scope::{self, PortRange, Scope, Service},
};

/// The policy the command line's options or the agent's configuration state: a policy file
/// and the values that override it (`None`: not stated). Checked into a [`Policy`] by
/// [`PolicySpec::to_policy`], or into a change of the loaded one by [`PolicySpec::change`].
#[derive(Debug, Clone, Default)]
pub struct PolicySpec {
    /// Policy file (TOML); the values below override it.
    pub file: Option<PathBuf>,
    /// Allow-list: comma-separated ISO codes and groups.
    pub allow: Option<String>,
    /// Deny-list: comma-separated ISO codes and groups.
    pub deny: Option<String>,
    pub allow_cidr: Vec<IpNet>,
    pub deny_cidr: Vec<IpNet>,
    pub unknown: Option<Action>,
    pub malformed: Option<Action>,
    pub icmp_errors: Option<IcmpErrors>,
    pub dry_run: bool,
    pub ports: Option<PortScope>,
    pub local: Option<Action>,
    pub tcp: Option<Tcp>,
    pub samples: Option<u32>,
    pub nat64_prefix: Vec<Ipv6Net>,
}

/// Warns about exception CIDRs that cover IPv4-carrying IPv6 space: the program judges those
/// sources by the IPv4 address inside, so the exception does not apply to them.
fn warn_embedded<'a>(nets: impl Iterator<Item = &'a IpNet>) {
    for net in nets {
        if let Some((prefix, name)) = crate::model::network::overlapped_embedding(net) {
            log::warn!(
                "exception {net} overlaps {prefix} ({name}), whose sources are judged \
                 by the IPv4 address they carry: the exception does not apply to them (give \
                 the IPv4 network for those)"
            );
        }
    }
}

/// The most drop samples per second and CPU (`--samples`).
pub const MAX_SAMPLES: u32 = 100_000;

/// `--ports`: a port list, or `all` (every packet: no scope).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PortScope {
    All,
    Ports(Vec<PortRange>),
}

impl PortScope {
    /// `all`, or a port list such as `tcp/443,udp/443,tcp/8000-8100`.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.trim().eq_ignore_ascii_case("all") {
            return Ok(Self::All);
        }
        scope::parse_ports(text)
            .map(Self::Ports)
            .map_err(|e| e.to_string())
    }

    fn scope(&self) -> Scope {
        match self {
            Self::All => Scope::Host,
            Self::Ports(ports) => Scope::Ports(ports.clone()),
        }
    }
}

impl PolicySpec {
    /// The policy this describes; `None` when nothing at all was stated.
    /// Every code and group is validated; nothing is touched on error.
    pub fn to_policy(&self) -> Result<Option<Policy>> {
        let file = match &self.file {
            Some(path) => PolicyFile::read(path)?,
            None if self.allow.is_none()
                && self.deny.is_none()
                && self.allow_cidr.is_empty()
                && self.deny_cidr.is_empty()
                && self.unknown.is_none()
                && self.malformed.is_none()
                && self.icmp_errors.is_none()
                && self.ports.is_none()
                && self.local.is_none()
                && self.tcp.is_none()
                && self.samples.is_none()
                && self.nat64_prefix.is_empty()
                && !self.dry_run =>
            {
                return Ok(None)
            }
            None => PolicyFile::default(),
        };
        self.with_file(file).map(Some)
    }

    /// The policy these options and a policy file's contents describe together (flags win).
    pub fn with_file(&self, file: PolicyFile) -> Result<Policy> {
        warn_embedded(
            (file.allow_cidrs.iter().chain(&file.deny_cidrs))
                .chain(self.allow_cidr.iter().chain(&self.deny_cidr)),
        );
        let groups = Groups::with_user(&file.groups).context("bad [groups] in the policy file")?;
        let services = !file.service.is_empty();
        let (mode, list) = match (&self.allow, &self.deny, &file.allow, &file.deny) {
            (Some(list), None, _, _) => (Mode::Allow, list.clone()),
            (None, Some(list), _, _) => (Mode::Deny, list.clone()),
            (None, None, Some(_), Some(_)) => {
                bail!("the policy file has both allow and deny; keep one")
            }
            (None, None, Some(list), None) => (Mode::Allow, list.join(",")),
            (None, None, None, Some(list)) => (Mode::Deny, list.join(",")),
            // Services alone: other traffic is out of scope, and the main rule unused.
            (None, None, None, None) if services => (Mode::Deny, String::new()),
            _ => bail!("give --allow or --deny (or a policy file with allow or deny)"),
        };
        let countries = groups.resolve_list(&list)?;
        let other_judged = !list.is_empty();
        // Services alone need no main list; a list that resolves to nothing is a mistake.
        if countries.is_empty() && (other_judged || !services) {
            bail!("the country list is empty: give at least one ISO code or group, e.g. --deny CN");
        }
        // Errors in the file's services name the file, so a cron job's mail says which.
        let in_file = self.file.as_ref().map_or_else(
            || "the policy file".to_owned(),
            |path| format!("policy file {}", path.display()),
        );
        let scope = self.scope(&file, &groups, other_judged, &in_file)?;
        // Both were checked for host bits where they were parsed.
        let cidrs = |from_file: &[IpNet], flags: &[IpNet]| -> Vec<IpNet> {
            from_file.iter().chain(flags).copied().collect()
        };
        // Like the CIDRs, the file's and the flags' prefixes add up.
        let nat64_prefixes = nat64_list(&file.nat64_prefixes, &self.nat64_prefix)?;
        let allow_cidrs = cidrs(&file.allow_cidrs, &self.allow_cidr);
        let deny_cidrs = cidrs(&file.deny_cidrs, &self.deny_cidr);
        warn_nat64_exceptions(&nat64_prefixes, allow_cidrs.iter().chain(&deny_cidrs));
        Ok(Policy {
            mode,
            countries,
            unknown: self.unknown.or(file.unknown).unwrap_or(Action::Pass),
            malformed: self.malformed.or(file.malformed).unwrap_or(Action::Pass),
            allow_cidrs,
            deny_cidrs,
            nat64_prefixes,
            icmp_errors: self.icmp_errors.or(file.icmp_errors).unwrap_or_default(),
            dry_run: self.dry_run,
            local: self.local.or(file.local).unwrap_or(Action::Pass),
            tcp: self.tcp.or(file.tcp).unwrap_or_default(),
            scope,
            samples: match self.samples.or(file.samples).unwrap_or(0) {
                n if n > MAX_SAMPLES => {
                    bail!("samples = {n} in the policy file: give at most {MAX_SAMPLES} per second")
                }
                n => n,
            },
        })
    }

    /// The port scope: the file's services (each with its own list and ports), else the
    /// ports of the flags or the file, else the whole host.
    fn scope(
        &self,
        file: &PolicyFile,
        groups: &Groups,
        other_judged: bool,
        in_file: &str,
    ) -> Result<Scope> {
        let scope = if !file.service.is_empty() {
            if self.ports.is_some() || file.ports.is_some() {
                bail!(
                    "{in_file} has [[service]] tables: give each service its ports there \
                     instead of --ports or a top-level ports list"
                );
            }
            let mut list = Vec::new();
            for entry in &file.service {
                let (mode, codes) = match (&entry.allow, &entry.deny) {
                    (Some(codes), None) => (Mode::Allow, codes),
                    (None, Some(codes)) => (Mode::Deny, codes),
                    _ => bail!(
                        "{in_file}: service {:?}: give exactly one of allow or deny",
                        entry.name
                    ),
                };
                let countries = groups
                    .resolve_list(&codes.join(","))
                    .with_context(|| format!("{in_file}: service {:?}", entry.name))?;
                let ports = scope::merge(entry.ports.clone());
                list.push(Service {
                    name: entry.name.clone(),
                    ports,
                    mode,
                    countries,
                });
            }
            Scope::Services {
                services: list,
                other_judged,
            }
        } else {
            match (&self.ports, &file.ports) {
                (Some(flag), _) => flag.scope(),
                (None, Some(ports)) => Scope::Ports(scope::merge(ports.clone())),
                (None, None) => Scope::Host,
            }
        };
        if !file.service.is_empty() {
            scope.validate().with_context(|| in_file.to_owned())?;
        } else {
            scope.validate()?;
        }
        Ok(scope)
    }
}

/// The declared NAT64 prefixes of the file and the flags together, deduplicated and checked
/// as a set ([`check_nat64_prefixes`]).
fn nat64_list(from_file: &[Ipv6Net], flags: &[Ipv6Net]) -> Result<Vec<Ipv6Net>> {
    let mut list: Vec<Ipv6Net> = Vec::new();
    for p in from_file.iter().chain(flags) {
        if !list.contains(p) {
            list.push(*p);
        }
    }
    check_nat64_prefixes(&list).map_err(|e| anyhow!(e))?;
    Ok(list)
}

/// Warns about exception CIDRs that overlap a declared NAT64 prefix: its sources are judged
/// by the IPv4 address they carry, so the exception does not apply to them.
fn warn_nat64_exceptions<'a>(nat64: &[Ipv6Net], nets: impl Iterator<Item = &'a IpNet>) {
    for net in nets {
        let IpNet::V6(v6) = net else { continue };
        if let Some(prefix) = nat64.iter().find(|p| p.contains(v6) || v6.contains(*p)) {
            log::warn!(
                "exception {net} overlaps the declared NAT64 prefix {prefix}, whose sources are \
                 judged by the IPv4 address they carry: the exception does not apply to them \
                 (give the IPv4 network for those)"
            );
        }
    }
}

/// What policy options on `update` ask for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PolicyChange {
    /// No policy option: the loaded policy stays.
    Keep,
    /// `--policy FILE` or `--reset-policy`: this complete policy.
    Replace(Policy),
    /// Options that name parts of the policy: those parts change, the rest stays.
    Edit(PolicyEdit),
}

/// The parts of a policy that options named; `None` leaves a part as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyEdit {
    pub list: Option<(Mode, BTreeSet<Country>)>,
    pub allow_cidrs: Option<Vec<IpNet>>,
    pub deny_cidrs: Option<Vec<IpNet>>,
    pub unknown: Option<Action>,
    pub malformed: Option<Action>,
    pub icmp_errors: Option<IcmpErrors>,
    pub dry_run: Option<bool>,
    pub ports: Option<PortScope>,
    pub local: Option<Action>,
    pub tcp: Option<Tcp>,
    pub samples: Option<u32>,
    pub nat64_prefixes: Option<Vec<Ipv6Net>>,
}

impl PolicyEdit {
    /// `base` with the named parts replaced. A country list given to a policy of services
    /// makes the main rule judge the traffic no service names.
    pub fn apply(&self, base: &Policy) -> Result<Policy> {
        let mut policy = base.clone();
        if let Some((mode, countries)) = &self.list {
            policy.mode = *mode;
            policy.countries.clone_from(countries);
            if let Scope::Services { other_judged, .. } = &mut policy.scope {
                *other_judged = true;
            }
        }
        if let Some(ports) = &self.ports {
            if matches!(policy.scope, Scope::Services { .. }) {
                bail!(
                    "the loaded policy has services: change their ports with --policy FILE \
                     (or --reset-policy and new options)"
                );
            }
            policy.scope = ports.scope();
        }
        policy.local = self.local.unwrap_or(policy.local);
        policy.tcp = self.tcp.unwrap_or(policy.tcp);
        policy.samples = self.samples.unwrap_or(policy.samples);
        if let Some(nets) = &self.allow_cidrs {
            policy.allow_cidrs.clone_from(nets);
        }
        if let Some(nets) = &self.deny_cidrs {
            policy.deny_cidrs.clone_from(nets);
        }
        if let Some(prefixes) = &self.nat64_prefixes {
            policy.nat64_prefixes.clone_from(prefixes);
        }
        policy.unknown = self.unknown.unwrap_or(policy.unknown);
        policy.malformed = self.malformed.unwrap_or(policy.malformed);
        policy.icmp_errors = self.icmp_errors.unwrap_or(policy.icmp_errors);
        policy.dry_run = self.dry_run.unwrap_or(policy.dry_run);
        Ok(policy)
    }
}

impl PolicySpec {
    /// For `update`: keep, replace (`--policy` or `reset`) or edit the loaded policy. Every
    /// code and group is validated here, before anything is touched.
    pub fn change(&self, reset: bool, enforce: bool) -> Result<PolicyChange> {
        if self.file.is_some() || reset {
            return match self.to_policy()? {
                Some(policy) => Ok(PolicyChange::Replace(policy)),
                None => bail!("--reset-policy needs the new policy: give --allow or --deny"),
            };
        }
        let groups = Groups::with_user(&BTreeMap::new())?;
        let list = match (&self.allow, &self.deny) {
            (Some(list), _) => Some((Mode::Allow, groups.resolve_list(list)?)),
            (None, Some(list)) => Some((Mode::Deny, groups.resolve_list(list)?)),
            (None, None) => None,
        };
        if list.as_ref().is_some_and(|(_, c)| c.is_empty()) {
            bail!("the country list is empty: give at least one ISO code or group, e.g. --deny CN");
        }
        warn_embedded(self.allow_cidr.iter().chain(&self.deny_cidr));
        let nets = |given: &[IpNet]| (!given.is_empty()).then(|| given.to_vec());
        let edit = PolicyEdit {
            list,
            allow_cidrs: nets(&self.allow_cidr),
            deny_cidrs: nets(&self.deny_cidr),
            icmp_errors: self.icmp_errors,
            dry_run: match (self.dry_run, enforce) {
                (true, _) => Some(true),
                (false, true) => Some(false),
                (false, false) => None,
            },
            unknown: self.unknown,
            malformed: self.malformed,
            ports: self.ports.clone(),
            local: self.local,
            tcp: self.tcp,
            samples: self.samples,
            nat64_prefixes: if self.nat64_prefix.is_empty() {
                None
            } else {
                Some(nat64_list(&[], &self.nat64_prefix)?)
            },
        };
        Ok(if edit == PolicyEdit::default() {
            PolicyChange::Keep
        } else {
            PolicyChange::Edit(edit)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::policy::parse_nat64_prefix;

    #[test]
    fn flags_override_the_file_and_cidrs_add_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.toml");
        std::fs::write(
            &path,
            "deny = [\"sanctioned\"]\nunknown = \"drop\"\ndeny_cidrs = [\"192.0.2.0/24\"]\n\
             [groups]\nsanctioned = [\"CU\", \"KP\"]\n",
        )
        .unwrap();
        let args = PolicySpec {
            file: Some(path.clone()),
            deny_cidr: vec!["198.51.100.0/24".parse().unwrap()],
            ..PolicySpec::default()
        };
        let policy = args.to_policy().unwrap().unwrap();
        assert_eq!(policy.summary(), "deny CU,KP; unknown drop; malformed pass");
        assert_eq!(policy.deny_cidrs.len(), 2);

        let args = PolicySpec {
            file: Some(path),
            allow: Some("sanctioned,DE".to_owned()),
            unknown: Some(Action::Pass),
            ..PolicySpec::default()
        };
        let policy = args.to_policy().unwrap().unwrap();
        assert_eq!(
            policy.summary(),
            "allow CU,DE,KP; unknown pass; malformed pass"
        );
    }

    #[test]
    fn update_options_change_only_the_parts_they_name() {
        let base = PolicySpec {
            deny: Some("GB,JP".to_owned()),
            allow_cidr: vec!["192.0.2.0/24".parse().unwrap()],
            unknown: Some(Action::Drop),
            ..PolicySpec::default()
        }
        .to_policy()
        .unwrap()
        .unwrap();
        let edit = |args: PolicySpec| match args.change(false, false).unwrap() {
            PolicyChange::Edit(edit) => edit.apply(&base).unwrap(),
            other => panic!("{other:?}"),
        };
        // Countries only: the management exception and the unknown verdict stay.
        let countries = edit(PolicySpec {
            allow: Some("US,CA".to_owned()),
            ..PolicySpec::default()
        });
        assert_eq!(countries.mode, Mode::Allow);
        assert_eq!(countries.allow_cidrs, base.allow_cidrs);
        assert_eq!(countries.unknown, Action::Drop);
        // Unknown only: the lists stay.
        let unknown = edit(PolicySpec {
            unknown: Some(Action::Pass),
            ..PolicySpec::default()
        });
        assert_eq!(
            (unknown.mode, &unknown.countries),
            (base.mode, &base.countries)
        );
        assert_eq!(unknown.unknown, Action::Pass);
        assert_eq!(unknown.allow_cidrs, base.allow_cidrs);
        // A scope, the local verdict and the TCP mode change alone, and stay when the
        // countries change.
        let scoped = edit(PolicySpec {
            ports: Some(PortScope::parse("tcp/443").unwrap()),
            local: Some(Action::Drop),
            tcp: Some(Tcp::Syn),
            ..PolicySpec::default()
        });
        assert_eq!(
            scoped.scope,
            Scope::Ports(scope::parse_ports("tcp/443").unwrap())
        );
        assert_eq!((scoped.local, scoped.tcp), (Action::Drop, Tcp::Syn));
        assert_eq!(scoped.countries, base.countries);
        assert_eq!(scoped.allow_cidrs, base.allow_cidrs);
        let PolicyChange::Edit(countries_only) = PolicySpec {
            deny: Some("FR".to_owned()),
            ..PolicySpec::default()
        }
        .change(false, false)
        .unwrap() else {
            panic!("not an edit");
        };
        let kept = countries_only.apply(&scoped).unwrap();
        assert_eq!(
            (&kept.scope, kept.local, kept.tcp),
            (&scoped.scope, Action::Drop, Tcp::Syn)
        );
        // Nothing named: keep. Reset: a complete new policy.
        assert_eq!(
            PolicySpec::default().change(false, false).unwrap(),
            PolicyChange::Keep
        );
        let reset = PolicySpec {
            deny: Some("SE".to_owned()),
            ..PolicySpec::default()
        };
        let PolicyChange::Replace(new) = reset.change(true, false).unwrap() else {
            panic!("not a replacement");
        };
        assert!(new.allow_cidrs.is_empty() && new.unknown == Action::Pass);
        assert!(PolicySpec::default().change(true, false).is_err());
    }

    #[test]
    fn nat64_prefixes_add_up_are_checked_as_a_set_and_an_update_replaces_them() {
        let p = |t: &str| parse_nat64_prefix(t).unwrap();
        let args = PolicySpec {
            deny: Some("GB".to_owned()),
            nat64_prefix: vec![p("64:ff9b:1:abcd::/64"), p("2001:db8:64::/96")],
            ..PolicySpec::default()
        };
        let policy = args.to_policy().unwrap().unwrap();
        assert_eq!(policy.nat64_prefixes.len(), 2);
        assert!(policy
            .full_summary()
            .contains("; nat64 64:ff9b:1:abcd::/64,2001:db8:64::/96; enforcing"));
        // Overlapping declarations, and more than the kernel holds, are refused.
        let overlap = PolicySpec {
            deny: Some("GB".to_owned()),
            nat64_prefix: vec![p("64:ff9b:1::/48"), p("64:ff9b:1:abcd::/64")],
            ..PolicySpec::default()
        };
        assert_eq!(
            overlap.to_policy().unwrap_err().to_string(),
            "NAT64 prefixes 64:ff9b:1::/48 and 64:ff9b:1:abcd::/64 overlap: a source in both \
             would have two layouts; declare the one the translator uses"
        );
        let five = PolicySpec {
            deny: Some("GB".to_owned()),
            nat64_prefix: (1..=5).map(|i| p(&format!("64:ff9b:1:{i}::/64"))).collect(),
            ..PolicySpec::default()
        };
        assert_eq!(
            five.to_policy().unwrap_err().to_string(),
            "5 NAT64 prefixes declared: at most 4 are supported"
        );
        // On update the given list replaces the one in force; other options keep it.
        let PolicyChange::Edit(edit) = PolicySpec {
            nat64_prefix: vec![p("64:ff9b:1:0:0:1::/96")],
            ..PolicySpec::default()
        }
        .change(false, false)
        .unwrap() else {
            panic!("not an edit")
        };
        assert_eq!(
            edit.apply(&policy).unwrap().nat64_prefixes,
            [p("64:ff9b:1:0:0:1::/96")]
        );
        let PolicyChange::Edit(edit) = PolicySpec {
            deny: Some("SE".to_owned()),
            ..PolicySpec::default()
        }
        .change(false, false)
        .unwrap() else {
            panic!("not an edit")
        };
        assert_eq!(
            edit.apply(&policy).unwrap().nat64_prefixes,
            policy.nat64_prefixes
        );
    }

    #[test]
    fn no_options_mean_no_policy_and_half_a_policy_is_an_error() {
        assert!(PolicySpec::default().to_policy().unwrap().is_none());
        let args = PolicySpec {
            unknown: Some(Action::Drop),
            ..PolicySpec::default()
        };
        assert!(args
            .to_policy()
            .unwrap_err()
            .to_string()
            .contains("--allow or --deny"));
    }
}
