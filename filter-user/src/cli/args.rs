//! Options shared by the verbs that read country data or take a policy, and the parsers of
//! their values. They become plain [`DataSpec`] and [`PolicySpec`] values before anything runs.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::Result;
use ipnet::{IpNet, Ipv6Net};

use crate::{
    compile::{artifact::Header, RegionSet},
    data::{CountryField, Format},
    model::policy::{parse_nat64_prefix, Action, IcmpErrors, Tcp},
    ops::{
        data_spec::{self, DataSpec},
        policy_spec::{PolicySpec, PortScope, MAX_SAMPLES},
    },
};

/// Where the country data comes from ([`DataSpec`] once parsed): sources to compile now, or an
/// artifact compiled earlier.
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

impl DataArgs {
    /// The data these options name, as a plain value for `ops`.
    #[must_use]
    pub fn spec(&self) -> DataSpec {
        DataSpec {
            db: self.db.clone(),
            format: self.format.clone(),
            country_field: self.country_field,
            prefer: self.prefer.clone(),
            artifact: self.artifact.clone(),
        }
    }
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
        data_spec::load_one(path, self.format, self.country_field)
    }
}

/// Policy options shared by every verb that sets a policy ([`PolicySpec`] once parsed).
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
    #[arg(long, value_name = "LIST", value_parser = PortScope::parse)]
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

impl PolicyArgs {
    /// The policy these options state, as a plain value for `ops`.
    #[must_use]
    pub fn spec(&self) -> PolicySpec {
        PolicySpec {
            file: self.file.clone(),
            allow: self.allow.clone(),
            deny: self.deny.clone(),
            allow_cidr: self.allow_cidr.clone(),
            deny_cidr: self.deny_cidr.clone(),
            unknown: self.unknown,
            malformed: self.malformed,
            icmp_errors: self.icmp_errors,
            dry_run: self.dry_run,
            ports: self.ports.clone(),
            local: self.local,
            tcp: self.tcp,
            samples: self.samples,
            nat64_prefix: self.nat64_prefix.clone(),
        }
    }
}

/// `--allow-cidr`, `--deny-cidr`: a CIDR with its host bits zero, as data files must have.
pub fn network(text: &str) -> Result<IpNet, String> {
    crate::model::network::parse_exception(text)
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
