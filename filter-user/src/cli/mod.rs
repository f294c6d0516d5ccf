//! Command-line interface: one module per verb.

pub mod agent;
pub mod args;
pub mod attach;
pub mod compile;
pub mod detach;
pub mod diff;
pub mod explain;
pub mod inspect;
pub mod release;
pub mod stats;
pub mod status;
pub mod update;
pub mod watch;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::state::Layout;

/// Drop traffic from unwanted countries in XDP, before the kernel spends work on it.
#[derive(Debug, Parser)]
#[command(name = "regionfilter", version, about, long_about = None)]
pub struct Cli {
    /// bpffs directory holding one pin directory per attached interface.
    #[arg(
        long,
        global = true,
        env = "REGIONFILTER_PIN_ROOT",
        default_value = "/sys/fs/bpf/regionfilter"
    )]
    pub pin_root: PathBuf,
    /// Directory for the per-interface records `status` reads.
    #[arg(
        long,
        global = true,
        env = "REGIONFILTER_STATE_DIR",
        default_value = "/run/regionfilter"
    )]
    pub state_dir: PathBuf,
    /// Directory for the known-good artifacts `update` keeps and `rollback` restores.
    #[arg(
        long,
        global = true,
        env = "REGIONFILTER_LIB_DIR",
        default_value = "/var/lib/regionfilter"
    )]
    pub lib_dir: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load the filter with a country database and attach it to an interface.
    Attach(attach::AttachArgs),
    /// Compile country data (and optionally a policy) into an artifact that attach loads.
    Compile(compile::CompileArgs),
    /// Summarise an artifact or a database: prefixes and addresses per country, coverage.
    Inspect(inspect::InspectArgs),
    /// Show which addresses changed country between two databases or artifacts.
    Diff(diff::DiffArgs),
    /// Say which country, range, source and verdict apply to addresses.
    Explain(explain::ExplainArgs),
    /// Replace the data and/or policy of attached filters atomically (guarded, self-tested).
    ///
    /// Without --db, --artifact or --url the loaded data is kept and only the policy changes;
    /// without policy options the loaded policy is kept.
    Update(update::UpdateArgs),
    /// Publish a signed release of an artifact (manifest + minisign signature) for a fleet.
    Release(release::ReleaseArgs),
    /// Check a release offline as a node would: signature, manifest, expiry, artifact.
    Verify(release::VerifyArgs),
    /// Restore the previous known-good data and policy of an interface.
    Rollback(update::RollbackArgs),
    /// Detach the filter from an interface and remove its pins.
    Detach(detach::DetachArgs),
    /// Show each attached interface: mode, policy, database, prefix counts.
    Status(status::StatusArgs),
    /// Show per-country packet and byte counters, most drops first.
    Stats(stats::StatsArgs),
    /// Print sampled dropped packets as they come (enable with --samples on attach or update)
    Watch(watch::WatchArgs),
    /// Keep the configured interfaces filtered with fresh data; serve /metrics and /healthz.
    Agent(agent::AgentArgs),
}

impl Cli {
    #[must_use]
    pub fn layout(&self) -> Layout {
        Layout {
            pin_root: self.pin_root.clone(),
            state_dir: self.state_dir.clone(),
            lib_dir: self.lib_dir.clone(),
        }
    }

    /// Runs the verb; the result is the process exit code (see `ops::OpError::exit_code_of` for errors).
    pub fn run(self) -> anyhow::Result<u8> {
        let layout = self.layout();
        match self.command {
            Command::Attach(args) => attach::run(&layout, &args),
            Command::Compile(args) => compile::run(&args),
            Command::Inspect(args) => inspect::run(&args),
            Command::Diff(args) => diff::run(&args),
            Command::Release(args) => release::run_release(&args),
            Command::Verify(args) => release::run_verify(&args),
            Command::Explain(args) => explain::run(&layout, &args),
            Command::Update(args) => return update::run(&layout, &args),
            Command::Rollback(args) => return update::rollback(&layout, &args),
            Command::Detach(args) => detach::run(&layout, &args),
            Command::Status(args) => status::run(&layout, &args),
            Command::Stats(args) => stats::run(&layout, &args),
            Command::Watch(args) => watch::run(&layout, &args),
            Command::Agent(args) => agent::run(layout, &args),
        }
        .map(|()| crate::ops::exit::Exit::Success.code())
    }
}

/// The line an error ends a command with. Unlike the agent, a person at the command line can
/// override what a guard or the lock-out check refused, so the line says how.
#[must_use]
pub fn error_line(message: &str, forceable: bool) -> String {
    let hint = if forceable {
        "; override with --force"
    } else {
        ""
    };
    format!("error: {message}{hint}")
}

#[cfg(test)]
mod tests {
    use clap::{error::ErrorKind, Parser as _};

    use super::{Cli, Command};

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("regionfilter").chain(args.iter().copied()))
    }

    #[test]
    fn verbs_that_read_data_need_a_source_or_an_artifact() {
        for args in [
            &["attach", "--iface", "eth0", "--deny", "CN"][..],
            &["compile", "--out", "x.rgnf"],
            &["explain", "192.0.2.1"],
        ] {
            let err = parse(args).expect_err("no data given");
            assert_eq!(err.kind(), ErrorKind::MissingRequiredArgument, "{args:?}");
        }
        assert!(parse(&[
            "attach",
            "--iface",
            "eth0",
            "--deny",
            "CN",
            "--artifact",
            "a"
        ])
        .is_ok());
        assert!(parse(&["compile", "--out", "x", "--db", "a.mmdb", "--db", "b.csv"]).is_ok());
    }

    /// The first line of a refused command line, as the user sees it.
    fn refusal(args: &[&str]) -> String {
        let err = parse(args).expect_err("must be refused");
        assert_eq!(err.kind(), ErrorKind::ValueValidation, "{args:?}: {err}");
        err.to_string()
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned()
    }

    #[test]
    fn numbers_and_durations_are_checked_where_they_are_parsed() {
        for value in ["NaN", "nan", "inf", "-inf", "1e400", "-1", "-0.5"] {
            // `--max-change=-1`: a separate `-1` would be taken for an option by clap.
            let arg = format!("--max-change={value}");
            assert_eq!(
                refusal(&["update", "--all", &arg]),
                format!(
                    "error: invalid value '{value}' for '--max-change <PERCENT>': give a finite \
                     percentage of 0 or more, e.g. 10 or 2.5"
                )
            );
        }
        assert_eq!(
            refusal(&["update", "--all", "--max-change", "ten"]),
            "error: invalid value 'ten' for '--max-change <PERCENT>': not a number; give a \
             percentage such as 10 or 2.5"
        );
        for (value, expected) in [("0", 0.0), ("2.5", 2.5), ("10%", 10.0), ("4000", 4000.0)] {
            let cli = parse(&["update", "--all", "--max-change", value]).unwrap();
            let Command::Update(args) = cli.command else {
                panic!("not an update");
            };
            assert!(
                (args.guard.max_change - expected).abs() < f64::EPSILON,
                "{value}"
            );
        }
        for verb in [&["update", "--all"][..], &["rollback", "--iface", "eth0"]] {
            let with = |wait: &str| -> Result<Cli, clap::Error> {
                let arg = format!("--wait={wait}");
                parse(&[verb, &[arg.as_str()]].concat())
            };
            let first_line = |wait: &str| {
                let err = with(wait).expect_err("must be refused");
                assert_eq!(err.kind(), ErrorKind::ValueValidation, "{wait}: {err}");
                err.to_string()
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            };
            assert_eq!(
                first_line("2d"),
                "error: invalid value '2d' for '--wait <DURATION>': longer than 24h; give a \
                 duration of at most 24h"
            );
            for bad in ["-5s", "99999999999999999999y", "soon", ""] {
                let line = first_line(bad);
                assert!(
                    line.ends_with("give a duration such as 30s or 2m"),
                    "{line}"
                );
            }
            assert!(with("0s").is_ok());
            assert!(with("24h").is_ok());
        }
    }

    #[test]
    fn plain_http_urls_to_other_hosts_are_refused_on_the_command_line() {
        for option in ["--url", "--sha256-url"] {
            let url = "http://localhost.example.org/db.mmdb";
            let mut args = vec!["update", "--all", option, url];
            if option == "--sha256-url" {
                args.extend(["--url", "https://example.org/db.mmdb"]);
            }
            assert_eq!(
                refusal(&args),
                format!(
                    "error: invalid value '{url}' for '{option} <URL>': {url}: only https:// URLs \
                     are accepted (plain http:// only to this host: localhost, 127.0.0.0/8 or [::1])"
                )
            );
        }
        assert!(parse(&["update", "--all", "--url", "http://127.0.0.1:8080/db.mmdb"]).is_ok());
    }

    #[test]
    fn exception_cidrs_with_host_bits_are_refused_not_moved() {
        for option in ["--allow-cidr", "--deny-cidr"] {
            assert_eq!(
                refusal(&[
                    "explain",
                    "--db",
                    "a.csv",
                    option,
                    "10.1.2.3/8",
                    "192.0.2.1"
                ]),
                format!(
                    "error: invalid value '10.1.2.3/8' for '{option} <CIDR>': 10.1.2.3/8 has host \
                     bits set; did you mean 10.0.0.0/8?"
                )
            );
        }
        let cli = parse(&[
            "explain",
            "--db",
            "a.csv",
            "--allow-cidr",
            "10.0.0.0/8",
            "192.0.2.1",
        ])
        .unwrap();
        let Command::Explain(args) = cli.command else {
            panic!("not explain");
        };
        assert_eq!(
            args.policy.allow_cidr,
            ["10.0.0.0/8".parse::<ipnet::IpNet>().unwrap()]
        );
    }

    #[test]
    fn update_without_data_keeps_the_loaded_data() {
        let cli = parse(&["update", "--iface", "eth0", "--deny", "RU"]).unwrap();
        let Command::Update(args) = cli.command else {
            panic!("not an update");
        };
        assert!(!args.data.spec().is_given());
        let cli = parse(&["update", "--all", "--db", "new.mmdb"]).unwrap();
        let Command::Update(args) = cli.command else {
            panic!("not an update");
        };
        assert!(args.data.spec().is_given());
        let err = parse(&["update", "--all", "--url", "https://x", "--db", "a"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ArgumentConflict);
    }
}
