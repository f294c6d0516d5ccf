//! Country data sources: reading each kind of file into address ranges with a country.
//!
//! Every reader returns complete data or a [`DataError`]; nothing partial ever leaves this module.

mod cidr;
mod csv;
pub mod mmdb;
pub mod places;
mod rir;
mod text;

use std::{
    fmt, fs,
    io::Read as _,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use crate::model::country::Country;

pub use mmdb::CountryField;

/// An inclusive address range and the country it belongs to. `A` is `u32` for IPv4 and `u128`
/// for IPv6, so ranges sort and compare as plain integers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range<A> {
    pub start: A,
    pub end: A,
    pub country: Country,
}

/// Everything one source file says, split by family, in file order.
#[derive(Clone, Debug, Default)]
pub struct SourceData {
    pub info: SourceInfo,
    pub v4: Vec<Range<u32>>,
    pub v6: Vec<Range<u128>>,
}

impl SourceData {
    fn push(&mut self, range: AnyRange) {
        match range {
            AnyRange::V4(r) => self.v4.push(r),
            AnyRange::V6(r) => self.v6.push(r),
        }
    }
}

/// A range of either family, as parsed from one line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnyRange {
    V4(Range<u32>),
    V6(Range<u128>),
}

/// Where data came from: shown by `status`, `inspect` and `explain`, stored in artifacts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceInfo {
    pub path: PathBuf,
    pub format: Format,
    /// The database's own name for its type (`GeoLite2-Country`), or the format for text files.
    pub database_type: String,
    /// Unix time the data was built: the database's build epoch, or the file's mtime.
    pub build_epoch: u64,
    /// Address records without a country, skipped by design (CSV rows with an empty country,
    /// RIR available/reserved space, mmdb networks with an empty code): their addresses are
    /// unknown space. Counted so that nothing is dropped silently.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub skipped: u64,
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference.
fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The kinds of source file regionfilter reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// MaxMind DB (`.mmdb`): GeoLite2/GeoIP2 Country or City, DB-IP, ip-location-db.
    #[default]
    Mmdb,
    /// `start,end,CC` ranges (ip-location-db, DB-IP), dotted or numeric, optional header.
    Csv,
    /// One CIDR per line (country from the file name, e.g. `cn.zone`) or `CIDR CC` lines.
    Cidr,
    /// RIR delegated or delegated-extended statistics (`registry|cc|type|start|value|...`).
    Rir,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Mmdb => "mmdb",
            Self::Csv => "csv",
            Self::Cidr => "cidr",
            Self::Rir => "rir",
        })
    }
}

/// Why a source could not be used. Nothing is loaded when any of these is returned.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("cannot read {path}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open database {path}")]
    Open {
        path: PathBuf,
        source: maxminddb::MaxMindDbError,
    },
    #[error("database {path} is corrupt; download it again")]
    Corrupt {
        path: PathBuf,
        source: maxminddb::MaxMindDbError,
    },
    #[error("database {path} is not a country database: its records are not maps ({source}); give a country or city database (MaxMind, DB-IP, ip-location-db)")]
    NotMaps {
        path: PathBuf,
        source: maxminddb::MaxMindDbError,
    },
    #[error("database {path} ({database_type}) has no country data: no network carries {fields}")]
    NoCountries {
        path: PathBuf,
        database_type: String,
        fields: &'static str,
    },
    #[error("database {path} ({database_type}) has no subdivision or network data: no network carries {fields}; give a city or ASN database")]
    NoPlaces {
        path: PathBuf,
        database_type: String,
        fields: String,
    },
    #[error("{path} is empty: it holds no address ranges")]
    Empty { path: PathBuf },
    #[error("cannot tell the format of {path}: {why}; give it with --format mmdb|csv|cidr|rir")]
    UnknownFormat { path: PathBuf, why: String },
    #[error("{path}:{line}: {message}")]
    Line {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("database {path}: network {network}: {message}")]
    Record {
        path: PathBuf,
        network: ipnet::IpNet,
        message: String,
    },
    #[error("{path} lists bare CIDRs but its name does not start with a country code; name it like cn.zone or write `CIDR CC` lines")]
    NoCountryInName { path: PathBuf },
}

/// How to read one source.
#[derive(Clone, Debug)]
pub struct SourceSpec {
    pub path: PathBuf,
    /// `None` detects the format from the file's contents.
    pub format: Option<Format>,
    pub country_field: CountryField,
}

/// Reads one source completely.
pub fn load(spec: &SourceSpec) -> Result<SourceData, DataError> {
    let format = match spec.format {
        Some(format) => format,
        None => detect(&spec.path)?,
    };
    let data = match format {
        Format::Mmdb => mmdb::load(&spec.path, spec.country_field)?,
        Format::Csv => text::load(&spec.path, Format::Csv, csv::parse_line)?,
        Format::Rir => text::load(&spec.path, Format::Rir, rir::parse_line)?,
        Format::Cidr => cidr::load(&spec.path)?,
    };
    if data.v4.is_empty() && data.v6.is_empty() {
        return Err(DataError::Empty {
            path: spec.path.clone(),
        });
    }
    Ok(data)
}

/// Reads one source from contents already in memory, as [`load`] reads the file: the path
/// names it in messages (and gives the country of a bare CIDR list); the build time is 0.
pub fn load_bytes(spec: &SourceSpec, bytes: &[u8]) -> Result<SourceData, DataError> {
    let path = &spec.path;
    let format = match spec.format {
        Some(format) => format,
        None => detect_bytes(path, &bytes[..bytes.len().min(DETECT_LEN)])?,
    };
    let data = match format {
        Format::Mmdb => mmdb::load_bytes(path, bytes, spec.country_field)?,
        Format::Csv => text::load_bytes(path, bytes, 0, Format::Csv, csv::parse_line)?,
        Format::Rir => text::load_bytes(path, bytes, 0, Format::Rir, rir::parse_line)?,
        Format::Cidr => cidr::load_bytes(path, bytes, 0)?,
    };
    if data.v4.is_empty() && data.v6.is_empty() {
        return Err(DataError::Empty { path: path.clone() });
    }
    Ok(data)
}

/// How much of a file [`detect`] looks at.
const DETECT_LEN: usize = 64 * 1024;

/// The metadata marker every MaxMind DB carries near its end.
const MMDB_MARKER: &[u8] = b"\xab\xcd\xefMaxMind.com";

/// Guesses the format from the first bytes and the first data line.
pub fn detect(path: &Path) -> Result<Format, DataError> {
    let io = |source| DataError::Io {
        path: path.to_owned(),
        source,
    };
    let mut head = Vec::new();
    fs::File::open(path)
        .map_err(io)?
        .take(DETECT_LEN as u64)
        .read_to_end(&mut head)
        .map_err(io)?;
    detect_bytes(path, &head)
}

/// [`detect`] on the first bytes of a file, already read.
pub fn detect_bytes(path: &Path, head: &[u8]) -> Result<Format, DataError> {
    if head.is_empty() {
        return Err(DataError::Empty {
            path: path.to_owned(),
        });
    }
    let unknown = |why: &str| DataError::UnknownFormat {
        path: path.to_owned(),
        why: why.to_owned(),
    };
    if path.extension().is_some_and(|e| e == "mmdb") || contains(head, MMDB_MARKER) {
        return Ok(Format::Mmdb);
    }
    let Ok(text) = std::str::from_utf8(&head[..utf8_prefix_len(head)]) else {
        return Err(unknown("it is neither a MaxMind database nor text"));
    };
    if head.contains(&0) {
        return Err(unknown("it is binary but not a MaxMind database"));
    }
    let first = text
        .lines()
        .map(text::strip_comment)
        .find(|l| !l.is_empty())
        .ok_or_else(|| DataError::Empty {
            path: path.to_owned(),
        })?;
    Ok(if first.contains('|') {
        Format::Rir
    } else if first.contains(',') {
        Format::Csv
    } else {
        Format::Cidr
    })
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Length of the longest prefix that does not end inside a multi-byte UTF-8 character.
fn utf8_prefix_len(bytes: &[u8]) -> usize {
    match std::str::from_utf8(bytes) {
        Ok(_) => bytes.len(),
        Err(e) if e.error_len().is_none() => e.valid_up_to(),
        Err(_) => bytes.len(),
    }
}

/// File modification time as Unix seconds; 0 when unknown.
fn mtime(path: &Path) -> u64 {
    fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
pub(crate) mod testing {
    //! Writes small source files for the readers' tests.
    use std::path::PathBuf;

    pub struct TempFile(pub PathBuf);

    impl TempFile {
        pub fn new(name: &str, contents: &[u8]) -> Self {
            let dir = std::env::temp_dir().join(format!(
                "regionfilter-unit-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join(name);
            std::fs::write(&path, contents).unwrap();
            Self(path)
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

#[cfg(test)]
mod tests {

    use super::{testing::TempFile, *};

    fn detect_text(name: &str, text: &str) -> Result<Format, DataError> {
        let file = TempFile::new(name, text.as_bytes());
        detect(&file.0)
    }

    #[test]
    fn detects_each_text_format_from_its_first_data_line() {
        assert_eq!(
            detect_text("a.csv", "# c\n\nip_start,ip_end,country\n").unwrap(),
            Format::Csv
        );
        assert_eq!(
            detect_text("b", "2|ripencc|20240101|5|19830705|20240101|+0100\n").unwrap(),
            Format::Rir
        );
        assert_eq!(
            detect_text("cn.zone", "1.0.1.0/24\n").unwrap(),
            Format::Cidr
        );
    }

    #[test]
    fn empty_and_binary_files_are_refused() {
        assert!(matches!(
            detect_text("empty", "").unwrap_err(),
            DataError::Empty { .. }
        ));
        assert!(matches!(
            detect_text("comments", "# nothing\n\n").unwrap_err(),
            DataError::Empty { .. }
        ));
        let file = TempFile::new("bin", &[0, 1, 2, 0xff, 0xfe]);
        let err = detect(&file.0).unwrap_err();
        assert!(err.to_string().contains("--format"), "{err}");
    }

    /// `{:#}` prints each cause once: an error that keeps its cause as `source` must not also
    /// format it into its own message.
    #[test]
    fn a_directory_given_as_a_source_names_its_cause_once() {
        let dir = std::env::temp_dir().join(format!("rf-dir-source-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let err = load(&SourceSpec {
            path: dir.clone(),
            format: Some(Format::Csv),
            country_field: CountryField::Country,
        })
        .unwrap_err();
        let rendered = format!("{:#}", anyhow::Error::from(err));
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            rendered,
            format!(
                "cannot read {}: Is a directory (os error 21)",
                dir.display()
            )
        );
    }

    #[test]
    fn loading_an_empty_source_is_an_error() {
        let file = TempFile::new("cn.zone", b"# only a comment\n");
        let spec = SourceSpec {
            path: file.0.clone(),
            format: Some(Format::Cidr),
            country_field: CountryField::Country,
        };
        assert!(matches!(load(&spec).unwrap_err(), DataError::Empty { .. }));
    }
}
