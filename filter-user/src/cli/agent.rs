//! `regionfilter agent`: the options; the agent itself is [`crate::agent`].

use std::{net::SocketAddr, path::PathBuf};

use anyhow::Result;

use crate::{
    agent::{self, Overrides},
    state::Layout,
};

#[derive(Debug, clap::Args)]
pub struct AgentArgs {
    /// The agent's configuration (TOML): interfaces with their data, policy, mode and lookup;
    /// refresh interval; metrics address. SIGHUP reloads it.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Serve /metrics and /healthz here instead of the file's metrics_listen
    /// [default: 127.0.0.1:9877].
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
    /// Detach the configured filters when the agent stops (default: leave them attached).
    #[arg(long)]
    pub detach_on_exit: bool,
    /// Log JSON objects instead of key=value lines.
    #[arg(long)]
    pub json: bool,
    /// Check the configuration (every interface, data option and policy, and that the local
    /// data files can be read) and exit; nothing is attached or changed.
    #[arg(long)]
    pub check: bool,
}

pub fn run(layout: Layout, args: &AgentArgs) -> Result<()> {
    if args.check {
        let config = agent::config::Config::read(&args.config)?;
        // The running agent takes a missing file as that interface's failure (the others keep
        // running, and at boot its known-good copy still goes back); a check says so now.
        config.check_local_files()?;
        println!(
            "{}: ok, {} interface{}",
            args.config.display(),
            config.interfaces.len(),
            if config.interfaces.len() == 1 {
                ""
            } else {
                "s"
            }
        );
        return Ok(());
    }
    agent::run(
        layout,
        &args.config,
        &Overrides {
            metrics_listen: args.metrics_listen,
            detach_on_exit: args.detach_on_exit,
            json: args.json,
        },
    )
}
