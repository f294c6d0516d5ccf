//! Compiled artifacts: the region set (with provenance) and optionally a policy, in one file a
//! cron job builds once and a fleet loads byte for byte.
//!
//! Layout (integers little-endian):
//! `MAGIC` · u32 format version · u32 header length · header JSON ·
//! u32 IPv4 span count · spans (start u32, end u32, country u16, source u8) ·
//! u32 IPv6 span count · spans (start u128, end u128, country u16, source u8) ·
//! SHA-256 of every byte before it.
//! The trailing digest authenticates the whole file, header fields (sources, build dates,
//! counts) included: a hand-edited or damaged file is refused before anything in it is
//! believed. The header's `content_hash` is the SHA-256 of the span bytes followed by the
//! policy's canonical encoding ([`policy::canonical_bytes`]): equal hashes mean the filter
//! would behave identically, whatever the build dates say.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{
    compile::{CountryCounts, RegionSet, Span},
    data::SourceInfo,
    model::country::Country,
    model::policy::{self, Policy},
    sys,
};

pub const MAGIC: &[u8; 8] = b"RGNFLTR\n";
/// 2: the trailing whole-file digest and the canonical policy encoding (1 had neither).
pub const FORMAT_VERSION: u32 = 2;
/// Length of the trailing digest.
const DIGEST_LEN: usize = 32;

/// What an artifact says about itself, readable without the spans.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub format_version: u32,
    /// Hex SHA-256 over spans and policy.
    pub content_hash: String,
    /// Unix time of `compile`.
    pub created: u64,
    /// Version of regionfilter that wrote it.
    pub writer: String,
    pub sources: Vec<SourceInfo>,
    pub policy: Option<Policy>,
    pub prefixes_v4: u64,
    pub prefixes_v6: u64,
    pub countries: BTreeMap<Country, CountryCounts>,
}

/// A loaded artifact.
#[derive(Clone, Debug)]
pub struct Artifact {
    pub header: Header,
    pub regions: RegionSet,
}

#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("cannot read artifact {path}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0} is not a regionfilter artifact (build one with `regionfilter compile`)")]
    NotAnArtifact(PathBuf),
    #[error("artifact {path} has format version {found}; this regionfilter reads version {FORMAT_VERSION}: rebuild it with this version's `regionfilter compile`")]
    Version { path: PathBuf, found: u32 },
    #[error("artifact {path} is damaged ({why}); rebuild or copy it again")]
    Damaged { path: PathBuf, why: String },
}

/// Does the file start like an artifact?
#[must_use]
pub fn is_artifact(path: &Path) -> bool {
    let mut head = [0u8; 8];
    fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
        .is_ok_and(|()| &head == MAGIC)
}

fn span_bytes(regions: &RegionSet) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + regions.v4.len() * 11 + regions.v6.len() * 35);
    out.extend_from_slice(
        &u32::try_from(regions.v4.len())
            .unwrap_or(u32::MAX)
            .to_le_bytes(),
    );
    for s in &regions.v4 {
        out.extend_from_slice(&s.start.to_le_bytes());
        out.extend_from_slice(&s.end.to_le_bytes());
        out.extend_from_slice(&s.country.index().to_le_bytes());
        out.push(s.source);
    }
    out.extend_from_slice(
        &u32::try_from(regions.v6.len())
            .unwrap_or(u32::MAX)
            .to_le_bytes(),
    );
    for s in &regions.v6 {
        out.extend_from_slice(&s.start.to_le_bytes());
        out.extend_from_slice(&s.end.to_le_bytes());
        out.extend_from_slice(&s.country.index().to_le_bytes());
        out.push(s.source);
    }
    out
}

/// The first 12 hex digits of a hash, as log lines and reports show it.
#[must_use]
pub fn short_hash(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

/// The content hash an artifact of `regions` and `policy` would carry.
#[must_use]
pub fn content_hash_of(regions: &RegionSet, policy: Option<&Policy>) -> String {
    content_hash(&span_bytes(regions), policy)
}

pub(crate) fn content_hash(spans: &[u8], policy: Option<&Policy>) -> String {
    let mut hasher = Sha256::new();
    hasher.update(spans);
    hasher.update(policy::canonical_bytes(policy));
    hex::encode(hasher.finalize())
}

impl Artifact {
    /// Builds the artifact for `regions` and `policy`, computing counts and hash.
    #[must_use]
    pub fn new(regions: RegionSet, policy: Option<Policy>, created: u64) -> Self {
        let countries = regions.counts();
        let header = Header {
            format_version: FORMAT_VERSION,
            content_hash: content_hash(&span_bytes(&regions), policy.as_ref()),
            created,
            writer: format!("regionfilter {}", env!("CARGO_PKG_VERSION")),
            sources: regions.sources.clone(),
            policy,
            prefixes_v4: countries.values().map(|c| c.prefixes_v4).sum(),
            prefixes_v6: countries.values().map(|c| c.prefixes_v6).sum(),
            countries,
        };
        Self { header, regions }
    }

    /// The file's bytes, as [`Artifact::write`] writes them: header, spans, whole-file digest.
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        let header = serde_json::to_vec(&self.header).expect("headers serialise");
        let mut bytes = Vec::new();
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        bytes.extend_from_slice(
            &u32::try_from(header.len())
                .unwrap_or(u32::MAX)
                .to_le_bytes(),
        );
        bytes.extend_from_slice(&header);
        bytes.extend_from_slice(&span_bytes(&self.regions));
        let digest = Sha256::digest(&bytes);
        bytes.extend_from_slice(&digest);
        bytes
    }

    /// Writes atomically ([`sys::fs::write_atomic`]): a failed write leaves `path` as it was.
    pub fn write(&self, path: &Path) -> Result<(), sys::fs::WriteError> {
        sys::fs::write_atomic(path, &self.to_bytes())
    }

    /// Reads and fully checks an artifact: magic, version, lengths, span order, hash.
    pub fn read(path: &Path) -> Result<Self, ArtifactError> {
        let bytes = fs::read(path).map_err(|source| ArtifactError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_bytes(path, &bytes)
    }

    /// [`Artifact::read`] on a file's contents already in memory; `path` names it in messages.
    pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<Self, ArtifactError> {
        let damaged = |why: &str| ArtifactError::Damaged {
            path: path.to_owned(),
            why: why.to_owned(),
        };
        let mut r = Reader(bytes);
        if r.take(8).ok() != Some(&MAGIC[..]) {
            return Err(ArtifactError::NotAnArtifact(path.to_owned()));
        }
        let version = r.u32().map_err(|()| damaged("truncated"))?;
        if version != FORMAT_VERSION {
            return Err(ArtifactError::Version {
                path: path.to_owned(),
                found: version,
            });
        }
        // Nothing in the file is believed before the whole of it checks out.
        let Some(body_len) = bytes.len().checked_sub(DIGEST_LEN).filter(|&n| n >= 12) else {
            return Err(damaged("truncated"));
        };
        let (body, digest) = bytes.split_at(body_len);
        if Sha256::digest(body).as_slice() != digest {
            return Err(damaged("file digest mismatch: altered or cut short"));
        }
        let mut r = Reader(&body[12..]);
        let header_len = r.u32().map_err(|()| damaged("truncated"))? as usize;
        let header_bytes = r
            .take(header_len)
            .map_err(|()| damaged("truncated header"))?;
        let header: Header = serde_json::from_slice(header_bytes)
            .map_err(|e| damaged(&format!("bad header: {e}")))?;
        let spans = r.0;
        if content_hash(spans, header.policy.as_ref()) != header.content_hash {
            return Err(damaged("content hash mismatch"));
        }
        let sources = header.sources.len();
        let v4 = read_spans(&mut r, sources, |r| r.u32()).map_err(|why| damaged(&why))?;
        let v6 = read_spans(&mut r, sources, |r| r.u128()).map_err(|why| damaged(&why))?;
        if !r.0.is_empty() {
            return Err(damaged("trailing bytes"));
        }
        let regions = RegionSet {
            sources: header.sources.clone(),
            v4,
            v6,
        };
        Ok(Self { header, regions })
    }
}

fn read_spans<A: Copy + Ord>(
    r: &mut Reader<'_>,
    sources: usize,
    addr: impl Fn(&mut Reader<'_>) -> Result<A, ()>,
) -> Result<Vec<Span<A>>, String> {
    let truncated = |()| "truncated spans".to_owned();
    let count = r.u32().map_err(truncated)?;
    // Reserve no more spans than the remaining bytes can hold (a span is at least 11 bytes), so
    // a small hostile file cannot make us reserve hundreds of megabytes.
    let room = r.0.len() / (2 * std::mem::size_of::<A>() + 3);
    let mut spans: Vec<Span<A>> = Vec::with_capacity((count as usize).min(room));
    for _ in 0..count {
        let start = addr(r).map_err(truncated)?;
        let end = addr(r).map_err(truncated)?;
        let index = u16::from_le_bytes(r.take(2).map_err(truncated)?.try_into().expect("2 bytes"));
        let source = r.take(1).map_err(truncated)?[0];
        let country = Country::from_index(index).ok_or("bad country index")?;
        if start > end || spans.last().is_some_and(|last| last.end >= start) {
            return Err("spans out of order".to_owned());
        }
        if usize::from(source) >= sources {
            return Err("span names a missing source".to_owned());
        }
        spans.push(Span {
            start,
            end,
            country,
            source,
        });
    }
    Ok(spans)
}

/// A cursor over the file's bytes.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ()> {
        if self.0.len() < n {
            return Err(());
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u32(&mut self) -> Result<u32, ()> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    fn u128(&mut self) -> Result<u128, ()> {
        Ok(u128::from_le_bytes(
            self.take(16)?.try_into().expect("16 bytes"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        compile::compile,
        data::{CountryField, SourceSpec},
    };

    fn sample() -> RegionSet {
        let spec = SourceSpec {
            path: Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../fixtures/maxmind/GeoIP2-Country-Test.mmdb"),
            format: None,
            country_field: CountryField::Country,
        };
        compile(vec![crate::data::load(&spec).unwrap()], &[0]).unwrap()
    }

    fn temp(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!(
            "regionfilter-artifact-{}-{name}",
            std::process::id()
        ))
    }

    #[test]
    fn round_trips_exactly() {
        let path = temp("round");
        let artifact = Artifact::new(sample(), None, 7);
        artifact.write(&path).unwrap();
        assert!(is_artifact(&path));
        let back = Artifact::read(&path).unwrap();
        fs::remove_file(&path).unwrap();
        assert_eq!(back.header, artifact.header);
        assert_eq!(back.regions, artifact.regions);
        assert!(artifact.header.prefixes_v4 > 0 && artifact.header.prefixes_v6 > 0);
    }

    #[test]
    fn a_hand_edited_header_is_refused() {
        let path = temp("edited");
        let artifact = Artifact::new(sample(), None, 1_700_000_000);
        artifact.write(&path).unwrap();
        let good = fs::read(&path).unwrap();
        // A build date moved to the year 2279 (the same number of digits): before the
        // whole-file digest this was accepted and blocked every later update.
        let epoch = artifact.header.sources[0].build_epoch.to_string();
        let at = good
            .windows(epoch.len())
            .position(|w| w == epoch.as_bytes())
            .expect("the build date is in the header");
        let mut edited = good.clone();
        edited[at..at + epoch.len()].fill(b'9');
        fs::write(&path, &edited).unwrap();
        let err = Artifact::read(&path).unwrap_err().to_string();
        fs::remove_file(&path).unwrap();
        assert!(err.contains("digest mismatch"), "{err}");
    }

    #[test]
    fn hash_depends_on_data_and_policy_only() {
        let a = Artifact::new(sample(), None, 1);
        let b = Artifact::new(sample(), None, 2);
        assert_eq!(a.header.content_hash, b.header.content_hash);
        let mut fewer = sample();
        fewer.v4.pop();
        assert_ne!(
            Artifact::new(fewer, None, 1).header.content_hash,
            a.header.content_hash
        );
    }

    #[test]
    fn every_truncation_and_any_flipped_bit_is_detected() {
        let path = temp("damaged");
        Artifact::new(sample(), None, 1).write(&path).unwrap();
        let good = fs::read(&path).unwrap();
        for len in [0, 4, 8, 12, 40, good.len() / 2, good.len() - 1] {
            fs::write(&path, &good[..len]).unwrap();
            assert!(Artifact::read(&path).is_err(), "truncated to {len}");
        }
        let mut flipped = good.clone();
        let last = flipped.len() - 3;
        flipped[last] ^= 1;
        fs::write(&path, &flipped).unwrap();
        let err = Artifact::read(&path).unwrap_err().to_string();
        assert!(err.contains("digest mismatch"), "{err}");
        let mut version = good;
        version[8] = 9;
        fs::write(&path, &version).unwrap();
        assert!(matches!(
            Artifact::read(&path),
            Err(ArtifactError::Version { found: 9, .. })
        ));
        fs::remove_file(&path).unwrap();
    }
}
