//! `regionfilter update` and `regionfilter rollback`: replace the data or policy of attached
//! filters through the blue/green path, guarded, self-tested and serialised.

use std::{path::PathBuf, time::Duration};

use anyhow::{bail, Context as _, Result};

use crate::{
    cli::args::{wait_duration, DataArgs, PolicyArgs},
    model::iface::IfaceName,
    ops::{
        download,
        exit::Exit,
        guards::{percent, DEFAULT_MAX_CHANGE},
        policy_spec::PolicyChange,
        privileges,
        release::{self, ForNode, Manifest, TrustedKey},
        update::{attached_interfaces, update, Guard, Outcome, Target},
    },
    state::Layout,
    sys::time::unix_now,
};

#[derive(Debug, clap::Args)]
#[command(group = clap::ArgGroup::new("new_policy").args(["file", "allow", "deny"]).multiple(true))]
#[command(group = clap::ArgGroup::new("download").args(["url", "release_url"]))]
pub struct UpdateArgs {
    /// Interface to update.
    #[arg(
        long,
        value_name = "IF",
        required_unless_present = "all",
        conflicts_with = "all"
    )]
    pub iface: Option<IfaceName>,
    /// Update every attached interface.
    #[arg(long)]
    pub all: bool,
    // New country data, as for attach. Without --db, --artifact or --url the loaded data is
    // kept and only the policy changes.
    #[command(flatten)]
    pub data: DataArgs,
    /// Download the database from this HTTPS URL instead of --db (cached under --lib-dir, with
    /// ETag/If-Modified-Since; `.tar.gz` unpacked; `{license_key}` replaced by
    /// $MAXMIND_LICENSE_KEY, and basic auth sent when $MAXMIND_ACCOUNT_ID is set too).
    #[arg(long, value_name = "URL", conflicts_with_all = ["db", "artifact", "prefer"], value_parser = url)]
    pub url: Option<String>,
    /// URL of a SHA-256 file (`sha256sum` format) the download must match.
    #[arg(long, value_name = "URL", requires = "url", value_parser = url)]
    pub sha256_url: Option<String>,
    /// Policy options change only what they name (countries, --allow-cidr, --deny-cidr,
    /// --unknown, --malformed); the rest of the loaded policy stays. `--policy FILE` or
    /// `--reset-policy` gives a complete new policy instead.
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// Replace the whole policy with the one the options describe (parts they do not name go
    /// back to their defaults: no exceptions, unknown pass, malformed pass). Needs --allow,
    /// --deny or --policy.
    #[arg(long, requires = "new_policy")]
    pub reset_policy: bool,
    /// End a dry run: enforce the loaded policy, keeping data and counters (one atomic switch).
    #[arg(long, conflicts_with = "dry_run")]
    pub enforce: bool,
    /// Apply the signed release published under this URL (a release directory:
    /// docs/releases.md) instead of --db, --artifact or --url, with the release's own policy;
    /// nothing changes unless it verifies against a --public-key, is not older than the
    /// release the interface runs, has not expired, and this node is in its stage.
    #[arg(
        long,
        value_name = "URL",
        conflicts_with_all = ["db", "artifact", "prefer", "url", "sha256_url", "file", "allow", "deny", "reset_policy", "enforce"],
        requires = "public_keys",
        value_parser = url
    )]
    pub release_url: Option<String>,
    /// A trusted release key (minisign public key; repeatable, for key rotation).
    #[arg(long = "public-key", value_name = "FILE", requires = "release_url")]
    pub public_keys: Vec<PathBuf>,
    /// This node's name for the staged rollout [default: the host name].
    #[arg(long, value_name = "NAME", requires = "release_url")]
    pub node: Option<String>,
    /// The release channel this node follows: a release of another channel is refused.
    #[arg(
        long,
        value_name = "NAME",
        default_value = "stable",
        requires = "release_url"
    )]
    pub channel: String,
    /// CA certificates (PEM, one or more) to trust for --url, --sha256-url and --release-url
    /// besides the bundled web roots and the system's CA store ($SSL_CERT_FILE,
    /// $SSL_CERT_DIR): a server under a private CA.
    #[arg(long, value_name = "FILE", requires = "download")]
    pub ca_file: Option<PathBuf>,
    #[command(flatten)]
    pub guard: GuardArgs,
}

impl UpdateArgs {
    /// The downloads' limits, trusting --ca-file.
    fn download_limits(&self) -> download::Limits<'_> {
        download::Limits {
            ca_file: self.ca_file.as_deref(),
            ..download::DEFAULT_LIMITS
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct GuardArgs {
    /// Apply the update even if a guard refuses it (empty data, large change, policy country
    /// without prefixes, older build date, a policy that would drop your SSH session or an
    /// established TCP peer of the interface).
    #[arg(long)]
    pub force: bool,
    /// Largest change in prefix count or address coverage, per family, accepted without --force.
    #[arg(long, value_name = "PERCENT", default_value_t = DEFAULT_MAX_CHANGE, value_parser = percent)]
    pub max_change: f64,
    /// How long to wait for another update of the same interface to finish (at most 24h).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = wait_duration)]
    pub wait: Duration,
}

impl GuardArgs {
    #[must_use]
    pub fn guard(&self) -> Guard {
        Guard {
            force: self.force,
            max_change: self.max_change,
            wait: self.wait,
            allow_older: false,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct RollbackArgs {
    /// Interface whose previous known-good data and policy to restore.
    #[arg(long, value_name = "IF")]
    pub iface: IfaceName,
    /// How long to wait for another command on the same interface to finish (at most 24h).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = wait_duration)]
    pub wait: Duration,
}

/// `--url`, `--sha256-url`: HTTPS, or plain HTTP to this host only ([`download::check_url`]).
fn url(text: &str) -> Result<String, String> {
    download::check_url(text).map_err(|e| e.to_string())?;
    Ok(text.to_owned())
}

pub fn run(layout: &Layout, args: &UpdateArgs) -> Result<u8> {
    // Also checked by every update; here before a download is fetched for nothing.
    privileges::require_bpf_admin("update", true)?;
    let policy = args.policy.spec().change(args.reset_policy, args.enforce)?;
    // Read now, not at the first download: a bad file is refused before anything is fetched.
    if let Some(ca_file) = &args.ca_file {
        download::ca_certificates(ca_file)?;
    }
    if let Some(url) = &args.release_url {
        let ifaces = interfaces(layout, args)?;
        if policy != PolicyChange::Keep {
            bail!("--release-url applies the release's own policy: give no policy options with it");
        }
        // Nothing is fetched for an interface that has no filter to update.
        for iface in &ifaces {
            if !crate::kernel::pins::attached(&layout.pin_dir(iface)) {
                bail!("regionfilter is not attached to {iface}; attach it first");
            }
        }
        return match release_target(layout, args, url, &ifaces)? {
            Some((target, manifest)) => apply(layout, args, &ifaces, &target, Some(&manifest)),
            None => Ok(Exit::Unchanged.code()),
        };
    }
    let mut data = args.data.spec();
    if let Some(url) = &args.url {
        let expect = download::Expect::Data {
            format: (args.data.format.len() == 1).then(|| args.data.format[0]),
            country_field: args.data.country_field,
        };
        let fetched = download::fetch(
            &layout.download_dir(),
            url,
            args.sha256_url.as_deref(),
            expect,
            &args.download_limits(),
        )?;
        if let download::Fetched::NotModified(path) = &fetched {
            println!(
                "{url}: not modified since the last download ({})",
                path.display()
            );
        }
        data.db.push(fetched.path().to_owned());
    }
    let data = if data.is_given() {
        Some(Box::new(data.load()?))
    } else {
        None
    };
    let target = Target::Update { data, policy };
    let ifaces = interfaces(layout, args)?;
    apply(layout, args, &ifaces, &target, None)
}

/// `--iface IF`, or every attached interface for `--all`.
fn interfaces(layout: &Layout, args: &UpdateArgs) -> Result<Vec<IfaceName>> {
    Ok(match &args.iface {
        Some(iface) => vec![iface.clone()],
        None => {
            let all = attached_interfaces(layout)?;
            if all.is_empty() {
                bail!(
                    "--all: regionfilter is attached to no interface (see `regionfilter status`)"
                );
            }
            all
        }
    })
}

/// `--release-url`: the release fetched and verified, as a target; `None` (said on stdout)
/// when this node is not in the stage in force.
fn release_target(
    layout: &Layout,
    args: &UpdateArgs,
    url: &str,
    ifaces: &[IfaceName],
) -> Result<Option<(Target, Manifest)>> {
    let keys = args
        .public_keys
        .iter()
        .map(|p| TrustedKey::read(p))
        .collect::<Result<Vec<_>>>()?;
    let node = match &args.node {
        Some(node) => node.clone(),
        None => crate::sys::host::name().context("cannot read the host name: give --node")?,
    };
    let follow = release::Follow {
        url,
        keys: &keys,
        channel: &args.channel,
        node: &node,
    };
    let found = release::for_node(layout, &follow, ifaces, unix_now(), &args.download_limits())
        .with_context(|| format!("release at {url} refused"))?;
    match found {
        ForNode::Apply(apply) => {
            let manifest = apply.manifest.clone();
            Ok(Some((apply.target(), manifest)))
        }
        ForNode::NotInStage { manifest } => {
            println!(
                "release {} {} is at stage {} ({}), which does not include node {node} yet: nothing changed",
                manifest.channel,
                manifest.version,
                manifest.rollout.stage,
                manifest.rollout.current()
            );
            Ok(None)
        }
    }
}

/// Updates each interface to `target`; with a release, records it as applied where it took.
fn apply(
    layout: &Layout,
    args: &UpdateArgs,
    ifaces: &[IfaceName],
    target: &Target,
    release: Option<&Manifest>,
) -> Result<u8> {
    let guard = Guard {
        // A signed release's rollback is older data on purpose.
        allow_older: release.is_some(),
        ..args.guard.guard()
    };
    let run = |iface: &IfaceName| -> Result<Outcome, crate::ops::OpError> {
        let outcome = update(layout, iface, target, &guard)?;
        if let Some(manifest) = release {
            if let Err(e) = release::record_applied(&layout.lib_dir.join(iface), manifest) {
                eprintln!(
                    "warning: {iface}: release {} applied, but not recorded: {e:#}",
                    manifest.version
                );
            }
        }
        Ok(outcome)
    };
    if ifaces.len() == 1 {
        return report(&ifaces[0], run(&ifaces[0])?);
    }
    // --all: every interface gets its chance; the first failure decides the exit code.
    let mut failure = None;
    let mut all_unchanged = true;
    for iface in ifaces {
        match run(iface) {
            Ok(outcome) => all_unchanged &= report(iface, outcome)? == Exit::Unchanged.code(),
            Err(err) => {
                let message = format!("{iface}: {err:#}");
                eprintln!("{}", super::error_line(&message, err.forceable()));
                failure.get_or_insert(err.exit_code());
                all_unchanged = false;
            }
        }
    }
    Ok(failure.unwrap_or(if all_unchanged {
        Exit::Unchanged.code()
    } else {
        Exit::Success.code()
    }))
}

pub fn rollback(layout: &Layout, args: &RollbackArgs) -> Result<u8> {
    let guard = Guard {
        force: true,
        max_change: 0.0,
        wait: args.wait,
        allow_older: true,
    };
    report(
        &args.iface,
        update(layout, &args.iface, &Target::Rollback, &guard)?,
    )
}

fn report(iface: &IfaceName, outcome: Outcome) -> Result<u8> {
    match outcome {
        Outcome::Updated {
            half,
            summary,
            warnings,
            ..
        } => {
            println!("{iface}: switched to half {half}: {summary}");
            for warning in warnings {
                eprintln!("warning: {iface}: switched, but {warning}");
            }
            Ok(Exit::Success.code())
        }
        Outcome::Unchanged { warnings } => {
            println!("{iface}: unchanged (same content hash as the loaded data); nothing switched");
            for warning in warnings {
                eprintln!("warning: {iface}: {warning}");
            }
            Ok(Exit::Unchanged.code())
        }
    }
}
