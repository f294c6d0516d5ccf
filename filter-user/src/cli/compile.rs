//! `regionfilter compile`: sources (and optionally a policy) into one artifact file.

use std::{path::PathBuf, time::Instant};

use anyhow::{Context as _, Result};

use super::inputs::{warn_uncovered, DataArgs, PolicyArgs};
use crate::{artifact::Artifact, state::unix_now, swap::check_capacity};

#[derive(Debug, clap::Args)]
#[command(group = super::inputs::data_required())]
pub struct CompileArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// Artifact to write (replaced atomically).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

pub fn run(args: &CompileArgs) -> Result<()> {
    let started = Instant::now();
    let policy = args.policy.to_policy()?;
    let loaded = args.data.load()?;
    // Recompiling an artifact keeps its policy unless a new one is given.
    let policy = loaded.policy_or_artifacts(policy);
    if let Some(policy) = &policy {
        warn_uncovered(policy, &loaded.regions);
    }
    let artifact = Artifact::new(loaded.regions, policy, unix_now());
    let header = &artifact.header;
    check_capacity(
        usize::try_from(header.prefixes_v4)?,
        usize::try_from(header.prefixes_v6)?,
    )?;
    artifact.write(&args.out)?;
    println!(
        "compiled {} IPv4 and {} IPv6 prefixes of {} countries from {} source(s) into {} in {:.2} s",
        header.prefixes_v4,
        header.prefixes_v6,
        header.countries.len(),
        header.sources.len(),
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    match &header.policy {
        Some(policy) => println!("policy: {}", policy.summary()),
        None => println!("policy: none (give one when attaching)"),
    }
    println!("content sha256: {}", header.content_hash);
    Ok(())
}
