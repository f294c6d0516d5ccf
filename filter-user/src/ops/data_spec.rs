//! Where country data comes from, and how it is read and compiled into one region set.

use std::{
    collections::BTreeSet,
    fs,
    path::{Path, PathBuf},
};

use anyhow::{bail, Result};

use crate::{
    compile::artifact::{self, Artifact, Header},
    compile::{self, RegionSet},
    data::{self, CountryField, Format, SourceSpec},
    model::country::Country,
    model::policy::Policy,
};

/// Where the country data comes from: sources to compile now, or an artifact compiled earlier
/// (the command line's `--db`/`--artifact`, the agent's `db`/`artifact_url`).
#[derive(Debug, Clone, Default)]
pub struct DataSpec {
    /// Sources, lowest precedence first (before `prefer`).
    pub db: Vec<PathBuf>,
    /// Formats: none (detect), one for all, or one per source.
    pub format: Vec<Format>,
    /// Which .mmdb field decides the country.
    pub country_field: CountryField,
    /// Sources that win wherever they overlap the others (the last one wins among them).
    pub prefer: Vec<PathBuf>,
    /// A compiled artifact instead of sources.
    pub artifact: Option<PathBuf>,
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

impl DataSpec {
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
    let now = crate::sys::time::unix_now();
    if info.build_epoch > now + FUTURE_SLACK_SECS {
        bail!(
            "{}: its build date {} is in the future (this host's clock says {}); fix the file's \
             time (`touch`) or the clock, then try again",
            info.path.display(),
            crate::sys::time::date(info.build_epoch),
            crate::sys::time::date(now)
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

/// An artifact or a single source, compiled: the file `inspect`, `diff` and `explain` name.
pub fn load_one(
    path: &Path,
    format: Option<Format>,
    country_field: CountryField,
) -> Result<(RegionSet, Option<Header>)> {
    if artifact::is_artifact(path) {
        let artifact = Artifact::read(path)?;
        return Ok((artifact.regions, Some(artifact.header)));
    }
    let mut source = data::load(&SourceSpec {
        path: path.to_owned(),
        format,
        country_field,
    })?;
    source.info.path = absolute(path);
    note_skipped(&source.info);
    Ok((compile::compile(vec![source], &[0])?, None))
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
    fn a_source_path_that_is_not_utf8_is_refused_not_a_panic() {
        use std::os::unix::ffi::OsStrExt as _;
        let args = DataSpec {
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
}
