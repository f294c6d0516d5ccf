//! Options shared by the verbs that read country data or take a policy, and how they load.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{anyhow, bail, Context as _, Result};
use ipnet::{IpNet, Ipv6Net};

use crate::{
    compile::artifact::{self, Artifact, Header},
    compile::{self, RegionSet},
    data::{self, CountryField, Format, SourceSpec},
    model::country::Country,
    model::groups::Groups,
    model::policy::{
        check_nat64_prefixes, parse_nat64_prefix, Action, IcmpErrors, Mode, Policy, Tcp,
    },
    model::policy_file::PolicyFile,
    model::scope::{self, PortRange, Scope, Service},
};

/// Where the country data comes from: sources to compile now, or an artifact compiled earlier.
/// Verbs that need data require one of the two with [`data_required`]; `update` keeps the
/// loaded data when neither is given.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct DataArgs {
    /// Country data source, repeatable: .mmdb (MaxMind, DB-IP, ip-location-db), CSV ranges,
    /// CIDR lists or RIR delegated files. Where sources overlap, the later one wins.
    #[arg(long = "db", visible_alias = "source", value_name = "FILE")]
    pub db: Vec<PathBuf>,
    /// Format of the sources, detected when absent: once for all, or once per --db in order.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub format: Vec<Format>,
    /// Which .mmdb field decides the country.
    #[arg(long, value_enum, default_value_t = CountryField::Country)]
    pub country_field: CountryField,
    /// This --db source wins wherever it overlaps the others (repeatable; the last given wins
    /// among preferred sources).
    #[arg(long, value_name = "FILE")]
    pub prefer: Vec<PathBuf>,
    /// A compiled artifact (`regionfilter compile`) instead of --db (its policy applies unless
    /// policy options are given).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["db", "format", "prefer"])]
    pub artifact: Option<PathBuf>,
}

/// The clap group a verb's arguments carry when it cannot run without data:
/// `#[command(group = data_required())]`.
#[must_use]
pub fn data_required() -> clap::ArgGroup {
    clap::ArgGroup::new("data")
        .args(["db", "artifact"])
        .required(true)
        .multiple(true)
}

/// Country data ready to load, and the policy an artifact carried.
pub struct LoadedData {
    pub regions: RegionSet,
    pub artifact: Option<(PathBuf, Header)>,
}

impl LoadedData {
    /// The policy given on the command line, else the one the artifact carries.
    #[must_use]
    pub fn policy_or_artifacts(&self, given: Option<Policy>) -> Option<Policy> {
        given.or_else(|| self.artifact.as_ref().and_then(|(_, h)| h.policy.clone()))
    }
}

impl DataArgs {
    /// True when a source or an artifact was given.
    #[must_use]
    pub fn is_given(&self) -> bool {
        !self.db.is_empty() || self.artifact.is_some()
    }

    /// Reads and compiles every source (or the artifact). Any error leaves nothing loaded.
    pub fn load(&self) -> Result<LoadedData> {
        if let Some(path) = &self.artifact {
            let artifact = Artifact::read(path)?;
            return Ok(LoadedData {
                regions: artifact.regions,
                artifact: Some((absolute(path), artifact.header)),
            });
        }
        let formats: Vec<Option<Format>> = match self.format.len() {
            0 => vec![None; self.db.len()],
            1 => vec![Some(self.format[0]); self.db.len()],
            n if n == self.db.len() => self.format.iter().copied().map(Some).collect(),
            n => bail!(
                "{n} --format values for {} --db sources: give one for all, or one per --db",
                self.db.len()
            ),
        };
        let specs: Vec<SourceSpec> = self
            .db
            .iter()
            .zip(formats)
            .map(|(path, format)| SourceSpec {
                path: path.clone(),
                format,
                country_field: self.country_field,
            })
            .collect();
        // Source paths are recorded in artifacts and status records, which are UTF-8.
        if let Some(path) = self.db.iter().find(|p| p.to_str().is_none()) {
            bail!(
                "{}: the path is not valid UTF-8; rename the file or link it under a UTF-8 name",
                path.display()
            );
        }
        let order = precedence(&self.db, &self.prefer)?;
        // Sources are independent: read them in parallel.
        let loaded: Vec<Result<data::SourceData, data::DataError>> = std::thread::scope(|s| {
            let handles: Vec<_> = specs
                .iter()
                .map(|spec| s.spawn(|| data::load(spec)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("source reader panicked"))
                .collect()
        });
        let mut sources = Vec::with_capacity(loaded.len());
        for source in loaded {
            let mut source = source?;
            source.info.path = absolute(&source.info.path);
            sources.push(source);
        }
        for source in &sources {
            refuse_future_build(&source.info)?;
            note_skipped(&source.info);
        }
        Ok(LoadedData {
            regions: compile::compile(sources, &order)?,
            artifact: None,
        })
    }
}

/// How far a build date may lie ahead of this host's clock (clock skew between hosts).
const FUTURE_SLACK_SECS: u64 = 24 * 60 * 60;

/// A source built in the future (a wrong clock, or `cp -p`/`tar` keeping a bad file time) would
/// make every later, honest update look older and be refused (exit 8) until `--force`: refuse
/// it now, where the cause is visible.
fn refuse_future_build(info: &data::SourceInfo) -> Result<()> {
    let now = crate::ops::state::unix_now();
    if info.build_epoch > now + FUTURE_SLACK_SECS {
        bail!(
            "{}: its build date {} is in the future (this host's clock says {}); fix the file's \
             time (`touch`) or the clock, then try again",
            info.path.display(),
            crate::ops::state::date(info.build_epoch),
            crate::ops::state::date(now)
        );
    }
    Ok(())
}

/// Source indices from lowest to highest precedence: the given order, then `--prefer`red ones.
fn precedence(db: &[PathBuf], prefer: &[PathBuf]) -> Result<Vec<usize>> {
    let mut preferred = Vec::new();
    for p in prefer {
        let Some(i) = db.iter().position(|d| d == p || absolute(d) == absolute(p)) else {
            bail!("--prefer {} names no --db source", p.display());
        };
        preferred.retain(|&j| j != i);
        preferred.push(i);
    }
    let mut order: Vec<usize> = (0..db.len()).filter(|i| !preferred.contains(i)).collect();
    order.extend(preferred);
    Ok(order)
}

/// A path that still means the same file from another directory.
pub fn absolute(path: &Path) -> PathBuf {
    fs::canonicalize(path).unwrap_or_else(|_| path.to_owned())
}

/// Says on stderr how many records a source skipped by design (rows without a country), so
/// that no record is ever dropped without a word.
pub fn note_skipped(info: &data::SourceInfo) {
    if info.skipped > 0 {
        log::info!("{}", skipped_text(info));
    }
}

/// `PATH: N records without a country skipped (their addresses are unknown space)`.
#[must_use]
pub fn skipped_text(info: &data::SourceInfo) -> String {
    format!(
        "{}: {} record{} without a country skipped (their addresses are unknown space)",
        info.path.display(),
        info.skipped,
        if info.skipped == 1 { "" } else { "s" }
    )
}

/// How to read a file named on the command line of `inspect`, `diff` and `explain`.
#[derive(Debug, clap::Args)]
pub struct SourceOptions {
    /// Format of a source file, detected when absent (artifacts are always detected).
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub format: Option<Format>,
    /// Which .mmdb field decides the country.
    #[arg(long, value_enum, default_value_t = CountryField::Country)]
    pub country_field: CountryField,
}

impl SourceOptions {
    /// An artifact or a single source, compiled.
    pub fn load(&self, path: &Path) -> Result<(RegionSet, Option<Header>)> {
        if artifact::is_artifact(path) {
            let artifact = Artifact::read(path)?;
            return Ok((artifact.regions, Some(artifact.header)));
        }
        let mut source = data::load(&SourceSpec {
            path: path.to_owned(),
            format: self.format,
            country_field: self.country_field,
        })?;
        source.info.path = absolute(path);
        note_skipped(&source.info);
        Ok((compile::compile(vec![source], &[0])?, None))
    }
}

/// Policy options shared by every verb that sets a policy.
#[derive(Debug, Default, clap::Args)]
pub struct PolicyArgs {
    /// Policy file (TOML) with allow/deny lists, named groups, exceptions; flags override it.
    #[arg(long = "policy", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Allow-list: only these pass (comma-separated ISO codes and groups, e.g. DE,FR or europe).
    #[arg(long, value_name = "LIST", conflicts_with = "deny")]
    pub allow: Option<String>,
    /// Deny-list: these are dropped, all others pass (codes and groups, e.g. CN or EU).
    #[arg(long, value_name = "LIST")]
    pub deny: Option<String>,
    /// Always pass this source CIDR, whatever its country (repeatable; wins over --deny-cidr).
    /// Host bits must be zero: 10.1.2.3/8 is refused, not read as 10.0.0.0/8.
    #[arg(long, value_name = "CIDR", value_parser = network)]
    pub allow_cidr: Vec<IpNet>,
    /// Always drop this source CIDR, whatever its country (repeatable; host bits must be zero).
    #[arg(long, value_name = "CIDR", value_parser = network)]
    pub deny_cidr: Vec<IpNet>,
    /// Verdict for sources the data places in no country [default: pass].
    #[arg(long, value_enum)]
    pub unknown: Option<Action>,
    /// Verdict for truncated or malformed Ethernet/VLAN/IP headers [default: pass].
    #[arg(long, value_enum)]
    pub malformed: Option<Action>,
    /// ICMP/ICMPv6 errors (unreachable, packet too big, time exceeded, parameter problem):
    /// pass them whatever their source, so path-MTU discovery keeps working, or judge them
    /// like any packet [default: pass].
    #[arg(long, value_enum)]
    pub icmp_errors: Option<IcmpErrors>,
    /// Judge and count every packet, drops as "would drop", but drop nothing (see what a
    /// policy would do before enforcing it; `update --enforce` switches to enforcing).
    #[arg(long)]
    pub dry_run: bool,
    /// Judge only packets to these destination ports (e.g. tcp/443,udp/443,tcp/8000-8100);
    /// everything else passes, counted as out of scope. `all`: every packet [default: all].
    #[arg(long, value_name = "LIST", value_parser = port_scope)]
    pub ports: Option<PortScope>,
    /// Verdict for special-purpose sources: private, loopback, link-local, CGNAT, ULA,
    /// multicast, documentation ranges [default: pass].
    #[arg(long, value_enum)]
    pub local: Option<Action>,
    /// Which TCP segments are judged: `all`, or `syn` (only connection attempts, SYN without
    /// ACK, so replies to the host's own connections pass) [default: all].
    #[arg(long, value_enum)]
    pub tcp: Option<Tcp>,
    /// Sample dropped (and would-drop) packets for `regionfilter watch`: at most N per second
    /// and CPU; 0 turns sampling off [default: 0].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=i64::from(MAX_SAMPLES)))]
    pub samples: Option<u32>,
    /// A NAT64 translator prefix in use (repeatable, at most 4): sources in it are judged by
    /// the IPv4 address RFC 6052's layout for its length puts where (/32, /40, /48, /56, /64
    /// or /96). Sources in 64:ff9b:1::/48 outside every declared prefix are dropped;
    /// 64:ff9b::/96 is always read.
    #[arg(long = "nat64-prefix", value_name = "PREFIX", value_parser = parse_nat64_prefix)]
    pub nat64_prefix: Vec<Ipv6Net>,
}

/// Warns about exception CIDRs that cover IPv4-carrying IPv6 space: the program judges those
/// sources by the IPv4 address inside, so the exception does not apply to them.
fn warn_embedded<'a>(nets: impl Iterator<Item = &'a IpNet>) {
    for net in nets {
        if let Some((prefix, name)) = data::overlapped_embedding(net) {
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
    fn scope(&self) -> Scope {
        match self {
            Self::All => Scope::Host,
            Self::Ports(ports) => Scope::Ports(ports.clone()),
        }
    }
}

fn port_scope(text: &str) -> Result<PortScope, String> {
    if text.trim().eq_ignore_ascii_case("all") {
        return Ok(PortScope::All);
    }
    scope::parse_ports(text)
        .map(PortScope::Ports)
        .map_err(|e| e.to_string())
}

impl PolicyArgs {
    /// The policy these options describe; `None` when no policy option was given at all.
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
        let scope = if services {
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
        if services {
            scope.validate().with_context(|| in_file.clone())?;
        } else {
            scope.validate()?;
        }
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

impl PolicyArgs {
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

/// `--allow-cidr`, `--deny-cidr`: a CIDR with its host bits zero, as data files must have.
fn network(text: &str) -> Result<IpNet, String> {
    data::parse_exception(text)
}

/// The largest change in the data, in percent, that `update` and the agent accept unforced.
pub const DEFAULT_MAX_CHANGE: f64 = 10.0;

/// `--max-change`: a finite, non-negative percentage (`10`, `2.5`, `10%`). NaN would switch the
/// guard off (no comparison with NaN is true) and a negative limit refuse every update.
pub fn percent(text: &str) -> Result<f64, String> {
    let number = text.trim().strip_suffix('%').unwrap_or(text.trim());
    match number.trim().parse::<f64>() {
        Ok(p) if p.is_finite() && p >= 0.0 => Ok(p),
        Ok(_) => Err("give a finite percentage of 0 or more, e.g. 10 or 2.5".to_owned()),
        Err(_) => Err("not a number; give a percentage such as 10 or 2.5".to_owned()),
    }
}

/// The longest `--wait` accepted: a cron job still waiting for a lock after a day is stuck.
pub const MAX_WAIT: Duration = Duration::from_secs(24 * 60 * 60);

/// `--wait`: a duration such as `30s`, `2m` or `0s` (try once), at most [`MAX_WAIT`].
pub fn wait_duration(text: &str) -> Result<Duration, String> {
    let wait = humantime::parse_duration(text.trim())
        .map_err(|e| format!("{e}; give a duration such as 30s or 2m"))?;
    if wait > MAX_WAIT {
        return Err("longer than 24h; give a duration of at most 24h".to_owned());
    }
    Ok(wait)
}

/// Warns on stderr about listed countries the data gives no addresses: usually a typo'd
/// group or a source that lacks them, and an allow-list that silently drops a whole country.
pub fn warn_uncovered(policy: &Policy, regions: &RegionSet) {
    let present = regions.countries();
    let listed: BTreeSet<Country> = policy
        .rules()
        .into_iter()
        .flat_map(|(_, _, countries)| countries.iter().copied())
        .collect();
    let missing: Vec<String> = listed
        .iter()
        .filter(|c| !present.contains(c))
        .map(|c| c.code())
        .collect();
    if !missing.is_empty() && missing.len() < listed.len() {
        log::warn!(
            "the data has no prefixes for {} (listed in the policy)",
            missing.join(",")
        );
    } else if !missing.is_empty() {
        log::warn!("the data has no prefixes for any country in the policy");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preferred_sources_move_to_the_top() {
        let db: Vec<PathBuf> = ["a", "b", "c"].iter().map(PathBuf::from).collect();
        assert_eq!(precedence(&db, &[]).unwrap(), [0, 1, 2]);
        assert_eq!(precedence(&db, &[PathBuf::from("a")]).unwrap(), [1, 2, 0]);
        assert_eq!(
            precedence(&db, &[PathBuf::from("c"), PathBuf::from("a")]).unwrap(),
            [1, 2, 0]
        );
        assert!(precedence(&db, &[PathBuf::from("x")]).is_err());
    }

    #[test]
    fn flags_override_the_file_and_cidrs_add_up() {
        let dir = std::env::temp_dir().join(format!("rf-policy-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("policy.toml");
        fs::write(
            &path,
            "deny = [\"sanctioned\"]\nunknown = \"drop\"\ndeny_cidrs = [\"192.0.2.0/24\"]\n\
             [groups]\nsanctioned = [\"CU\", \"KP\"]\n",
        )
        .unwrap();
        let args = PolicyArgs {
            file: Some(path.clone()),
            deny_cidr: vec!["198.51.100.0/24".parse().unwrap()],
            ..PolicyArgs::default()
        };
        let policy = args.to_policy().unwrap().unwrap();
        assert_eq!(policy.summary(), "deny CU,KP; unknown drop; malformed pass");
        assert_eq!(policy.deny_cidrs.len(), 2);

        let args = PolicyArgs {
            file: Some(path),
            allow: Some("sanctioned,DE".to_owned()),
            unknown: Some(Action::Pass),
            ..PolicyArgs::default()
        };
        let policy = args.to_policy().unwrap().unwrap();
        assert_eq!(
            policy.summary(),
            "allow CU,DE,KP; unknown pass; malformed pass"
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_source_path_that_is_not_utf8_is_refused_not_a_panic() {
        use std::os::unix::ffi::OsStrExt as _;
        let args = DataArgs {
            db: vec![PathBuf::from(std::ffi::OsStr::from_bytes(
                b"/tmp/a\xff.csv",
            ))],
            format: vec![],
            country_field: CountryField::Country,
            prefer: vec![],
            artifact: None,
        };
        let err = args.load().err().expect("refused").to_string();
        assert!(err.contains("not valid UTF-8"), "{err}");
    }

    #[test]
    fn update_options_change_only_the_parts_they_name() {
        let base = PolicyArgs {
            deny: Some("GB,JP".to_owned()),
            allow_cidr: vec!["192.0.2.0/24".parse().unwrap()],
            unknown: Some(Action::Drop),
            ..PolicyArgs::default()
        }
        .to_policy()
        .unwrap()
        .unwrap();
        let edit = |args: PolicyArgs| match args.change(false, false).unwrap() {
            PolicyChange::Edit(edit) => edit.apply(&base).unwrap(),
            other => panic!("{other:?}"),
        };
        // Countries only: the management exception and the unknown verdict stay.
        let countries = edit(PolicyArgs {
            allow: Some("US,CA".to_owned()),
            ..PolicyArgs::default()
        });
        assert_eq!(countries.mode, Mode::Allow);
        assert_eq!(countries.allow_cidrs, base.allow_cidrs);
        assert_eq!(countries.unknown, Action::Drop);
        // Unknown only: the lists stay.
        let unknown = edit(PolicyArgs {
            unknown: Some(Action::Pass),
            ..PolicyArgs::default()
        });
        assert_eq!(
            (unknown.mode, &unknown.countries),
            (base.mode, &base.countries)
        );
        assert_eq!(unknown.unknown, Action::Pass);
        assert_eq!(unknown.allow_cidrs, base.allow_cidrs);
        // A scope, the local verdict and the TCP mode change alone, and stay when the
        // countries change.
        let scoped = edit(PolicyArgs {
            ports: Some(port_scope("tcp/443").unwrap()),
            local: Some(Action::Drop),
            tcp: Some(Tcp::Syn),
            ..PolicyArgs::default()
        });
        assert_eq!(
            scoped.scope,
            Scope::Ports(scope::parse_ports("tcp/443").unwrap())
        );
        assert_eq!((scoped.local, scoped.tcp), (Action::Drop, Tcp::Syn));
        assert_eq!(scoped.countries, base.countries);
        assert_eq!(scoped.allow_cidrs, base.allow_cidrs);
        let PolicyChange::Edit(countries_only) = PolicyArgs {
            deny: Some("FR".to_owned()),
            ..PolicyArgs::default()
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
            PolicyArgs::default().change(false, false).unwrap(),
            PolicyChange::Keep
        );
        let reset = PolicyArgs {
            deny: Some("SE".to_owned()),
            ..PolicyArgs::default()
        };
        let PolicyChange::Replace(new) = reset.change(true, false).unwrap() else {
            panic!("not a replacement");
        };
        assert!(new.allow_cidrs.is_empty() && new.unknown == Action::Pass);
        assert!(PolicyArgs::default().change(true, false).is_err());
    }

    #[test]
    fn nat64_prefixes_add_up_are_checked_as_a_set_and_an_update_replaces_them() {
        let p = |t: &str| parse_nat64_prefix(t).unwrap();
        let args = PolicyArgs {
            deny: Some("GB".to_owned()),
            nat64_prefix: vec![p("64:ff9b:1:abcd::/64"), p("2001:db8:64::/96")],
            ..PolicyArgs::default()
        };
        let policy = args.to_policy().unwrap().unwrap();
        assert_eq!(policy.nat64_prefixes.len(), 2);
        assert!(policy
            .full_summary()
            .contains("; nat64 64:ff9b:1:abcd::/64,2001:db8:64::/96; enforcing"));
        // Overlapping declarations, and more than the kernel holds, are refused.
        let overlap = PolicyArgs {
            deny: Some("GB".to_owned()),
            nat64_prefix: vec![p("64:ff9b:1::/48"), p("64:ff9b:1:abcd::/64")],
            ..PolicyArgs::default()
        };
        assert_eq!(
            overlap.to_policy().unwrap_err().to_string(),
            "NAT64 prefixes 64:ff9b:1::/48 and 64:ff9b:1:abcd::/64 overlap: a source in both \
             would have two layouts; declare the one the translator uses"
        );
        let five = PolicyArgs {
            deny: Some("GB".to_owned()),
            nat64_prefix: (1..=5).map(|i| p(&format!("64:ff9b:1:{i}::/64"))).collect(),
            ..PolicyArgs::default()
        };
        assert_eq!(
            five.to_policy().unwrap_err().to_string(),
            "5 NAT64 prefixes declared: at most 4 are supported"
        );
        // On update the given list replaces the one in force; other options keep it.
        let PolicyChange::Edit(edit) = PolicyArgs {
            nat64_prefix: vec![p("64:ff9b:1:0:0:1::/96")],
            ..PolicyArgs::default()
        }
        .change(false, false)
        .unwrap() else {
            panic!("not an edit")
        };
        assert_eq!(
            edit.apply(&policy).unwrap().nat64_prefixes,
            [p("64:ff9b:1:0:0:1::/96")]
        );
        let PolicyChange::Edit(edit) = PolicyArgs {
            deny: Some("SE".to_owned()),
            ..PolicyArgs::default()
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
        assert!(PolicyArgs::default().to_policy().unwrap().is_none());
        let args = PolicyArgs {
            unknown: Some(Action::Drop),
            ..PolicyArgs::default()
        };
        assert!(args
            .to_policy()
            .unwrap_err()
            .to_string()
            .contains("--allow or --deny"));
    }
}
