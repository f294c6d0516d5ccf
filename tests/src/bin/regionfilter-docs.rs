//! Writes the man pages and shell completions of `regionfilter`, generated from its clap
//! definition, under a directory: `cargo xtask docs` writes `contrib/`, and `cargo xtask lint`
//! writes a scratch copy and fails if `contrib/` differs (a flag changed without them).

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::CommandFactory as _;
use clap_complete::Shell;

fn main() -> Result<()> {
    let out = PathBuf::from(
        std::env::args()
            .nth(1)
            .context("usage: regionfilter-docs DIR")?,
    );
    let man = out.join("man");
    let completions = out.join("completions");
    for dir in [&man, &completions] {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    // One page for the command and one per verb (regionfilter-attach.1, ...), no date in them,
    // so the same definition always gives the same bytes.
    clap_mangen::generate_to(filter_user::cli::Cli::command(), &man)
        .with_context(|| format!("cannot write man pages into {}", man.display()))?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(
            shell,
            &mut filter_user::cli::Cli::command(),
            "regionfilter",
            &completions,
        )
        .with_context(|| format!("cannot write {shell} completions"))?;
    }
    Ok(())
}
