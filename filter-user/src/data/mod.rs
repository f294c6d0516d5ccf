//! Country data sources: reading each kind of file into address ranges with a country.
//!
//! Every reader returns complete data or a [`DataError`]; nothing partial ever leaves this module.

mod cidr;
mod csv;
pub mod mmdb;
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

/// Parses a CIDR whose host bits are zero: the one rule for networks in data files, policy
/// files and `--allow-cidr`/`--deny-cidr`, so a typo is refused rather than silently widened or
/// narrowed to another network. Surrounding space is ignored.
pub fn parse_network(text: &str) -> Result<ipnet::IpNet, String> {
    let text = text.trim();
    let net: ipnet::IpNet = text
        .parse()
        .map_err(|_| format!("{text:?} is not a CIDR (expected e.g. 192.0.2.0/24)"))?;
    if net.trunc() != net {
        return Err(format!(
            "{text} has host bits set; did you mean {}?",
            net.trunc()
        ));
    }
    Ok(unmap(net))
}

/// An exception CIDR: a network as [`parse_network`] reads it, refused when it lies inside the
/// IPv6 ranges that embed IPv4 addresses (6to4, Teredo, NAT64, IPv4-compatible): the program
/// judges those sources by their IPv4 address, so such an exception would never match.
pub fn parse_exception(text: &str) -> Result<ipnet::IpNet, String> {
    let net = parse_network(text)?;
    if let ipnet::IpNet::V6(v6) = net {
        let (first, last) = (v6.network(), v6.broadcast());
        // With no NAT64 prefix declared: an undeclared local-use NAT64 source is never judged
        // by its address either (it is dropped), so an exception there could never match.
        let embeds = |a: std::net::Ipv6Addr| {
            filter_common::embedded_ipv4(&a.octets(), &filter_common::Nat64Prefixes::default())
                != filter_common::Embedding::None
                || a.to_ipv4_mapped().is_some()
        };
        if embeds(first) && embeds(last) {
            return Err(format!(
                "{text} lies in IPv6 space that carries IPv4 addresses (6to4, Teredo, NAT64 or \
                 IPv4-compatible), whose sources are judged by that IPv4 address: give the IPv4 \
                 network instead"
            ));
        }
    }
    Ok(net)
}

/// The IPv6 prefixes whose sources the program judges by the IPv4 address they carry.
pub const EMBEDDING_PREFIXES: &[(&str, &str)] = &[
    ("::/96", "IPv4-compatible"),
    ("::ffff:0:0/96", "IPv4-mapped"),
    ("64:ff9b::/96", "NAT64"),
    ("64:ff9b:1::/48", "NAT64 local use"),
    ("2001::/32", "Teredo"),
    ("2002::/16", "6to4"),
];

/// For an exception that covers part of the IPv4-carrying IPv6 space (the whole of it is
/// refused by [`parse_exception`]), the embedding it overlaps: sources there are judged by
/// their IPv4 address, so the exception does not apply to them.
#[must_use]
pub fn overlapped_embedding(net: &ipnet::IpNet) -> Option<(ipnet::IpNet, &'static str)> {
    let ipnet::IpNet::V6(v6) = net else {
        return None;
    };
    EMBEDDING_PREFIXES.iter().find_map(|&(prefix, name)| {
        let p: ipnet::Ipv6Net = prefix.parse().expect("a valid built-in prefix");
        (v6.contains(&p) || p.contains(v6)).then_some((ipnet::IpNet::V6(p), name))
    })
}

/// An IPv4-mapped IPv6 network (`::ffff:a.b.c.d/96+n`) as the IPv4 network it names: the
/// program judges mapped sources as IPv4, so kept as IPv6 it would never match anything.
#[must_use]
pub fn unmap(net: ipnet::IpNet) -> ipnet::IpNet {
    match net {
        ipnet::IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.network().to_ipv4_mapped() {
            Some(v4) => ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96).map_or(net, ipnet::IpNet::V4),
            None => net,
        },
        _ => net,
    }
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

    #[test]
    fn exceptions_over_part_of_the_ipv4_carrying_space_are_found() {
        let net = |t: &str| t.parse::<ipnet::IpNet>().unwrap();
        assert_eq!(
            overlapped_embedding(&net("64:ff9b::/64")).map(|(_, n)| n),
            Some("NAT64")
        );
        assert_eq!(
            overlapped_embedding(&net("2001::/16")).map(|(_, n)| n),
            Some("Teredo")
        );
        assert_eq!(overlapped_embedding(&net("2a00::/16")), None);
        assert_eq!(overlapped_embedding(&net("10.0.0.0/8")), None);
    }

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
    fn no_error_type_formats_its_source_twice() {
        let io = || std::io::Error::other("disk on fire");
        let path = PathBuf::from("x");
        let errors: Vec<anyhow::Error> = vec![
            DataError::Io {
                path: path.clone(),
                source: io(),
            }
            .into(),
            crate::compile::artifact::ArtifactError::Io {
                path: path.clone(),
                source: io(),
            }
            .into(),
            crate::ops::download::DownloadError::Body {
                url: "https://x/".to_owned(),
                source: io(),
            }
            .into(),
            crate::ops::download::DownloadError::Cache { path, source: io() }.into(),
        ];
        for err in errors {
            let rendered = format!("{err:#}");
            assert_eq!(rendered.matches("disk on fire").count(), 1, "{rendered}");
        }
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
