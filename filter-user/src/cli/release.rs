//! `regionfilter release` and `regionfilter verify`: publish a signed release of an artifact
//! for a fleet, and check one offline as a node would ([`ops::release`]).

use std::{path::PathBuf, time::Duration};

use anyhow::{Context as _, Result};

use crate::{
    compile::artifact::short_hash as short,
    ops::release::{self, NewRelease, Requirements, Rollout, Stage, TrustedKey},
    sys::time::{date, unix_now},
};

#[derive(Debug, clap::Args)]
pub struct ReleaseArgs {
    /// The artifact to publish (`regionfilter compile` writes one; it carries the policy).
    #[arg(long, value_name = "FILE")]
    pub artifact: PathBuf,
    /// The release directory to write: serve it as it is from any static HTTPS server.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// The channel nodes follow.
    #[arg(long, value_name = "NAME", default_value = "stable")]
    pub channel: String,
    /// The release version: strictly increasing within the channel (nodes refuse a lower one;
    /// to roll back, publish a higher version with the old artifact).
    #[arg(long, value_name = "N")]
    pub version: u64,
    /// How long the manifest stays valid; past it nodes keep what they run and report it stale.
    #[arg(long, value_name = "DURATION", default_value = "7d", value_parser = valid_for)]
    pub expires_in: Duration,
    /// The rollout plan: shares of nodes, growing, ending at 100%; `dry:` makes a stage a dry
    /// run (e.g. dry:1%,1%,10%,50%,100%).
    #[arg(long, value_name = "STAGES", default_value = "100%", value_parser = plan)]
    pub plan: Plan,
    /// The stage in force, counted from 0 (advancing a stage is publishing again, with a
    /// higher version).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub stage: usize,
    /// The release key: a minisign secret key (`minisign -G`).
    #[arg(long, value_name = "FILE")]
    pub secret_key: PathBuf,
    /// A file holding the secret key's password (a key made with `minisign -G -W` has none).
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
}

/// `--plan`: comma-separated stages.
#[derive(Clone, Debug)]
pub struct Plan(pub Vec<Stage>);

fn plan(text: &str) -> Result<Plan, String> {
    text.split(',')
        .map(Stage::parse)
        .collect::<Result<_, _>>()
        .map(Plan)
}

fn valid_for(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text.trim())
        .map_err(|e| format!("{e}; give a duration such as 7d or 12h"))?;
    if d < Duration::from_secs(60) || d > Duration::from_secs(366 * 86_400) {
        return Err("give between 1m and 366d".to_owned());
    }
    Ok(d)
}

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The release directory (release.json, release.json.minisig, the artifact).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// A trusted public key (minisign format; repeatable, for key rotation).
    #[arg(long = "public-key", value_name = "FILE", required = true)]
    pub public_keys: Vec<PathBuf>,
    /// The version the node runs: a lower one is refused (rollback protection).
    #[arg(long, value_name = "N")]
    pub running: Option<u64>,
    /// The channel the node follows: a release of another is refused [default: any].
    #[arg(long, value_name = "NAME")]
    pub channel: Option<String>,
    /// Say whether this node (by name) is in the stage in force.
    #[arg(long, value_name = "NAME")]
    pub node: Option<String>,
}

pub fn run_release(args: &ReleaseArgs) -> Result<()> {
    for stage in args.plan.0.iter().filter(|s| s.dry_run && s.per_mille > 50) {
        eprintln!(
            "warning: stage {stage} stops enforcement on that share of the nodes while it is in \
             force (a dry run of the whole policy): keep dry-run stages small"
        );
    }
    let password = match &args.password_file {
        Some(path) => Some(
            String::from_utf8(release::read_limited(path, 4096, "password file")?)
                .with_context(|| format!("the password file {} is not text", path.display()))?
                .trim_end_matches(['\n', '\r'])
                .to_owned(),
        ),
        None => None,
    };
    let manifest = release::publish(&NewRelease {
        artifact: &args.artifact,
        out: &args.out,
        channel: &args.channel,
        version: args.version,
        now: unix_now(),
        valid_for: args.expires_in.as_secs(),
        rollout: Rollout {
            plan: args.plan.0.clone(),
            stage: args.stage,
        },
        secret_key: &args.secret_key,
        password,
    })?;
    println!(
        "published {} {} in {}: {} ({} bytes, content {}); stage {} of {} ({}); expires {}",
        manifest.channel,
        manifest.version,
        args.out.display(),
        manifest.artifact.file,
        manifest.artifact.size,
        short(&manifest.artifact.content_hash),
        manifest.rollout.stage,
        manifest.rollout.plan.len(),
        manifest.rollout.current(),
        date(manifest.expires)
    );
    Ok(())
}

pub fn run_verify(args: &VerifyArgs) -> Result<()> {
    let keys = args
        .public_keys
        .iter()
        .map(|p| TrustedKey::read(p))
        .collect::<Result<Vec<_>>>()?;
    if let Some(node) = &args.node {
        release::check_node_name(node).map_err(anyhow::Error::msg)?;
    }
    let verified = release::verify(
        &args.dir,
        &Requirements {
            keys: &keys,
            now: unix_now(),
            channel: args.channel.as_deref(),
            running: args.running.map(|version| release::Running {
                version,
                artifact_sha256: None,
            }),
        },
    )
    .with_context(|| format!("release in {} refused", args.dir.display()))?;
    let m = &verified.manifest;
    println!(
        "verified {} {}: signed by key {}; {} ({} bytes, sha256 {}, content {}); created {}, expires {}; stage {} of {} ({})",
        m.channel,
        m.version,
        verified.key_id,
        m.artifact.file,
        m.artifact.size,
        short(&m.artifact.sha256),
        short(&m.artifact.content_hash),
        date(m.created),
        date(m.expires),
        m.rollout.stage,
        m.rollout.plan.len(),
        m.rollout.current()
    );
    if let Some(node) = &args.node {
        let position = release::position(m, node);
        let stage = m.rollout.current();
        let verdict = if position < stage.per_mille {
            if stage.dry_run {
                "applies it as a dry run"
            } else {
                "applies it"
            }
        } else {
            "keeps what it runs"
        };
        println!(
            "node {node}: position {}.{}% of this release's rollout: {verdict}",
            position / 10,
            position % 10
        );
    }
    Ok(())
}
