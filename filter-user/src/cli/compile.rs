//! `regionfilter compile`: sources (and optionally a policy) into one artifact file.

use std::{
    fs,
    os::unix::fs::{FileTypeExt as _, MetadataExt as _},
    path::{Path, PathBuf},
    time::Instant,
};

use anyhow::{bail, Context as _, Result};

use crate::{
    cli::args::{DataArgs, PolicyArgs},
    ops::data_spec::warn_uncovered,
};
use crate::{compile::artifact::Artifact, kernel::swap::check_capacity, sys::time::unix_now};

#[derive(Debug, clap::Args)]
#[command(group = crate::cli::args::data_required())]
pub struct CompileArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// Artifact to write (replaced atomically; through a symbolic link, its target is replaced).
    /// Refused when it is one of the inputs or exists and is not a regular file.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

pub fn run(args: &CompileArgs) -> Result<()> {
    let started = Instant::now();
    let inputs: Vec<(&str, &Path)> = args
        .data
        .db
        .iter()
        .map(|p| ("--db", p.as_path()))
        .chain(
            args.data
                .artifact
                .iter()
                .map(|p| ("--artifact", p.as_path())),
        )
        .chain(args.policy.file.iter().map(|p| ("--policy", p.as_path())))
        .collect();
    let out = output_path(&args.out, &inputs)?;
    let policy = args.policy.spec().to_policy()?;
    let loaded = args.data.spec().load()?;
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
    artifact.write(&out)?;
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

/// The file `--out` names, after symbolic links. Refused, before anything is read or written,
/// when it exists and is not a regular file (a device, a directory) or is one of the inputs
/// (by path after links, or as the same inode through a hard link).
fn output_path(out: &Path, inputs: &[(&str, &Path)]) -> Result<PathBuf> {
    let meta = match fs::metadata(out) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if fs::symlink_metadata(out).is_ok() {
                bail!(
                    "--out {} is a symbolic link to a missing file; give the artifact's own path",
                    out.display()
                );
            }
            return Ok(out.to_owned());
        }
        Err(e) => return Err(e).with_context(|| format!("cannot inspect --out {}", out.display())),
    };
    if !meta.is_file() {
        let kind = meta.file_type();
        let what = if kind.is_dir() {
            "a directory"
        } else if kind.is_char_device() || kind.is_block_device() {
            "a device"
        } else if kind.is_fifo() {
            "a pipe"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "not a regular file"
        };
        bail!(
            "--out {} is {what}; give the path of an artifact file",
            out.display()
        );
    }
    let resolved =
        fs::canonicalize(out).with_context(|| format!("cannot resolve --out {}", out.display()))?;
    for (option, input) in inputs {
        let same = fs::canonicalize(input).is_ok_and(|p| p == resolved)
            || fs::metadata(input).is_ok_and(|m| m.dev() == meta.dev() && m.ino() == meta.ino());
        if same {
            bail!(
                "--out {} is the file given as {option} {}: compile would replace what it reads; \
                 write the artifact to another file",
                out.display(),
                input.display()
            );
        }
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    #[test]
    fn an_output_that_is_an_input_or_not_a_file_is_refused() {
        let dir = std::env::temp_dir().join(format!("rf-out-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let db = dir.join("db.csv");
        fs::write(&db, "1.0.0.0,1.0.0.255,AU\n").unwrap();
        let hard = dir.join("hard.csv");
        fs::hard_link(&db, &hard).unwrap();
        let soft = dir.join("soft.rfa");
        symlink(&db, &soft).unwrap();
        let inputs = [("--db", db.as_path())];
        let refused = |out: &Path| output_path(out, &inputs).unwrap_err().to_string();
        let same = |out: &Path| {
            format!(
                "--out {} is the file given as --db {}: compile would replace what it reads; \
                 write the artifact to another file",
                out.display(),
                db.display()
            )
        };
        assert_eq!(refused(&db), same(&db));
        assert_eq!(refused(&hard), same(&hard));
        assert_eq!(refused(&soft), same(&soft));
        let dotted = dir.join(".").join("db.csv");
        assert_eq!(refused(&dotted), same(&dotted));
        assert_eq!(
            refused(Path::new("/dev/full")),
            "--out /dev/full is a device; give the path of an artifact file"
        );
        assert_eq!(
            refused(&dir),
            format!(
                "--out {} is a directory; give the path of an artifact file",
                dir.display()
            )
        );
        let dangling = dir.join("dangling.rfa");
        symlink(dir.join("missing"), &dangling).unwrap();
        assert!(refused(&dangling)
            .ends_with("is a symbolic link to a missing file; give the artifact's own path"));

        // A new file, and a link to another artifact (its target is what gets replaced).
        let new = dir.join("new.rfa");
        assert_eq!(output_path(&new, &inputs).unwrap(), new);
        let target = dir.join("target.rfa");
        fs::write(&target, b"old").unwrap();
        let link = dir.join("link.rfa");
        symlink(&target, &link).unwrap();
        assert_eq!(
            output_path(&link, &inputs).unwrap(),
            fs::canonicalize(&target).unwrap()
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
