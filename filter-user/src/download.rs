//! `update --url`: fetch a country database over HTTPS into a per-URL cache, so cron jobs can
//! refresh straight from the vendor. Conditional requests (ETag / Last-Modified) make an
//! unchanged database cost one round trip; an optional SHA-256 file is checked; `.tar.gz`
//! archives (MaxMind's format) are unpacked. Everything is written to temporary files and
//! renamed into the cache only once complete and verified, so a failed or partial download
//! leaves the cache (and the filter) as it was.

use std::{
    fs,
    io::{Read as _, Write as _},
    path::{Path, PathBuf},
    time::Duration,
};

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// `{license_key}` in a URL is replaced by this variable; with `MAXMIND_ACCOUNT_ID` also set,
/// both are sent as HTTP basic auth (MaxMind's current download API).
pub const LICENSE_KEY_ENV: &str = "MAXMIND_LICENSE_KEY";
pub const ACCOUNT_ID_ENV: &str = "MAXMIND_ACCOUNT_ID";
/// Whole-transfer limit, generous for a 100 MB database on a slow link.
const TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error("{url}: only https:// URLs are accepted (plain http only to localhost)")]
    Insecure { url: String },
    #[error("{url} contains {{license_key}} but {LICENSE_KEY_ENV} is not set")]
    NoLicenseKey { url: String },
    #[error("download of {url} failed: HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("download of {url} failed: {source}")]
    Transport {
        url: String,
        source: Box<ureq::Error>,
    },
    #[error("download of {url} broke off: {source}")]
    Body { url: String, source: std::io::Error },
    #[error("download of {url} is incomplete: {got} of {expected} bytes")]
    Truncated {
        url: String,
        got: u64,
        expected: u64,
    },
    #[error("checksum mismatch for {url}: {checksum_url} says {expected}, the download is {got}")]
    Checksum {
        url: String,
        checksum_url: String,
        expected: String,
        got: String,
    },
    #[error("{checksum_url} holds no SHA-256 (expected 64 hex digits first)")]
    BadChecksumFile { checksum_url: String },
    #[error("{url} is a .tar.gz archive without a .mmdb file in it")]
    NoDatabaseInArchive { url: String },
    #[error("cannot write the download cache {path}: {source}")]
    Cache {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What the cache remembers about the last complete download of one URL.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Meta {
    file: String,
    etag: Option<String>,
    last_modified: Option<String>,
}

/// Where the database is, and whether the server sent a new copy.
#[derive(Debug, PartialEq, Eq)]
pub enum Fetched {
    New(PathBuf),
    /// 304 Not Modified: the cached copy is current.
    NotModified(PathBuf),
}

impl Fetched {
    #[must_use]
    pub fn path(&self) -> &Path {
        match self {
            Self::New(p) | Self::NotModified(p) => p,
        }
    }
}

/// Fetches `url` (and checks it against `sha256_url`) into `<cache_root>/<hash of url>/`.
pub fn fetch(
    cache_root: &Path,
    url: &str,
    sha256_url: Option<&str>,
) -> Result<Fetched, DownloadError> {
    let real_url = with_license_key(url)?;
    let checksum_url = sha256_url.map(with_license_key).transpose()?;
    let dir = cache_root.join(&hex(&Sha256::digest(url.as_bytes()))[..16]);
    let cache = |source| DownloadError::Cache {
        path: dir.clone(),
        source,
    };
    fs::create_dir_all(&dir).map_err(cache)?;
    let meta: Option<Meta> = fs::read(dir.join("meta.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .filter(|m: &Meta| dir.join(&m.file).exists());

    let mut request = agent().get(&real_url);
    if let Some(auth) = basic_auth() {
        request = request.header("Authorization", auth);
    }
    if let Some(meta) = &meta {
        if let Some(etag) = &meta.etag {
            request = request.header("If-None-Match", etag);
        }
        if let Some(date) = &meta.last_modified {
            request = request.header("If-Modified-Since", date);
        }
    }
    let mut response = request.call().map_err(|e| transport(url, e))?;
    let status = response.status().as_u16();
    if status == 304 {
        if let Some(meta) = meta {
            return Ok(Fetched::NotModified(dir.join(meta.file)));
        }
    }
    if status != 200 {
        return Err(DownloadError::Status {
            url: url.to_owned(),
            status,
        });
    }
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (etag, last_modified) = (header("etag"), header("last-modified"));
    let expected_len = header("content-length").and_then(|v| v.parse::<u64>().ok());

    // Body into a temporary file, hashing as it goes.
    let partial = Temp(dir.join("download.partial"));
    let mut file = fs::File::create(&partial.0).map_err(cache)?;
    let mut hasher = Sha256::new();
    let mut reader = response.body_mut().as_reader();
    let mut buf = vec![0u8; 1 << 16];
    let mut got = 0u64;
    loop {
        let n = reader
            .read(&mut buf)
            .map_err(|source| DownloadError::Body {
                url: url.to_owned(),
                source,
            })?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n]).map_err(cache)?;
        got += n as u64;
    }
    file.sync_all().map_err(cache)?;
    if let Some(expected) = expected_len {
        if got != expected {
            return Err(DownloadError::Truncated {
                url: url.to_owned(),
                got,
                expected,
            });
        }
    }
    if let Some(checksum_url) = &checksum_url {
        let expected = fetch_checksum(checksum_url, sha256_url.unwrap_or_default())?;
        let actual = hex(&hasher.finalize());
        if actual != expected {
            return Err(DownloadError::Checksum {
                url: url.to_owned(),
                checksum_url: sha256_url.unwrap_or_default().to_owned(),
                expected,
                got: actual,
            });
        }
    }

    // Unpack archives; keep the database's own file name so format detection sees it.
    let name = file_name(url);
    let (source, file) = if is_tar_gz(&name, &partial.0) {
        let unpacked = Temp(dir.join("unpacked.partial"));
        let member = unpack_mmdb(&partial.0, &unpacked.0)
            .map_err(cache)?
            .ok_or_else(|| DownloadError::NoDatabaseInArchive {
                url: url.to_owned(),
            })?;
        (unpacked, member)
    } else {
        (partial, name)
    };
    let meta_new = Meta {
        file: file.clone(),
        etag,
        last_modified,
    };
    let final_path = dir.join(&file);
    fs::rename(&source.0, &final_path).map_err(cache)?;
    fs::write(
        dir.join("meta.json"),
        serde_json::to_vec(&meta_new).expect("meta serialises"),
    )
    .map_err(cache)?;
    Ok(Fetched::New(final_path))
}

/// A temporary file removed on drop unless it was renamed away.
struct Temp(PathBuf);

impl Drop for Temp {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(TIMEOUT))
        .http_status_as_error(false)
        .build()
        .into()
}

fn transport(url: &str, error: ureq::Error) -> DownloadError {
    DownloadError::Transport {
        url: url.to_owned(),
        source: Box::new(error),
    }
}

/// Substitutes the license key and refuses plain http to anything but this host.
pub(crate) fn with_license_key(url: &str) -> Result<String, DownloadError> {
    let local = ["http://127.0.0.1", "http://localhost", "http://[::1]"];
    if !url.starts_with("https://") && !local.iter().any(|p| url.starts_with(p)) {
        return Err(DownloadError::Insecure {
            url: url.to_owned(),
        });
    }
    if !url.contains("{license_key}") {
        return Ok(url.to_owned());
    }
    let key = std::env::var(LICENSE_KEY_ENV).map_err(|_| DownloadError::NoLicenseKey {
        url: url.to_owned(),
    })?;
    Ok(url.replace("{license_key}", &key))
}

fn basic_auth() -> Option<String> {
    let account = std::env::var(ACCOUNT_ID_ENV).ok()?;
    let key = std::env::var(LICENSE_KEY_ENV).ok()?;
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{account}:{key}"));
    Some(format!("Basic {token}"))
}

fn fetch_checksum(real_url: &str, shown_url: &str) -> Result<String, DownloadError> {
    let mut request = agent().get(real_url);
    if let Some(auth) = basic_auth() {
        request = request.header("Authorization", auth);
    }
    let mut response = request.call().map_err(|e| transport(shown_url, e))?;
    let status = response.status().as_u16();
    if status != 200 {
        return Err(DownloadError::Status {
            url: shown_url.to_owned(),
            status,
        });
    }
    let text = response
        .body_mut()
        .read_to_string()
        .map_err(|e| transport(shown_url, e))?;
    parse_checksum(&text).ok_or_else(|| DownloadError::BadChecksumFile {
        checksum_url: shown_url.to_owned(),
    })
}

/// The first token of a `sha256sum`-style line: 64 hex digits.
pub(crate) fn parse_checksum(text: &str) -> Option<String> {
    let token = text.split_whitespace().next()?.to_ascii_lowercase();
    (token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit())).then_some(token)
}

/// The last path segment of a URL, without query, as a safe file name.
pub(crate) fn file_name(url: &str) -> String {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let last = path.rsplit('/').next().unwrap_or("");
    let safe: String = last
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        .collect();
    if safe.is_empty() || safe.starts_with('.') {
        "database".to_owned()
    } else {
        safe
    }
}

fn is_tar_gz(name: &str, path: &Path) -> bool {
    if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
        return true;
    }
    let mut magic = [0u8; 2];
    fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok_and(|()| magic == [0x1f, 0x8b])
}

/// Copies the first `*.mmdb` member of a `.tar.gz` to `to`; returns its file name.
fn unpack_mmdb(archive: &Path, to: &Path) -> std::io::Result<Option<String>> {
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(fs::File::open(archive)?));
    for entry in tar.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if name.ends_with(".mmdb") {
            let name = name.to_owned();
            let mut out = fs::File::create(to)?;
            std::io::copy(&mut entry, &mut out)?;
            out.sync_all()?;
            return Ok(Some(name));
        }
    }
    Ok(None)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_files_in_sha256sum_format_parse() {
        let sum = "a".repeat(64);
        assert_eq!(
            parse_checksum(&format!("{sum}  GeoLite2-Country.tar.gz\n")),
            Some(sum.clone())
        );
        assert_eq!(parse_checksum(&sum.to_uppercase()), Some(sum));
        assert_eq!(parse_checksum("not a checksum"), None);
        assert_eq!(parse_checksum(""), None);
    }

    #[test]
    fn file_names_come_from_the_url_path() {
        assert_eq!(
            file_name("https://x/db/GeoLite2-Country.mmdb?x=1"),
            "GeoLite2-Country.mmdb"
        );
        assert_eq!(
            file_name("https://x/geoip_download?edition_id=A&suffix=tar.gz"),
            "geoip_download"
        );
        assert_eq!(file_name("https://x/"), "database");
        assert_eq!(file_name("https://x/../.."), "database");
    }

    #[test]
    fn plain_http_only_to_this_host() {
        assert!(with_license_key("http://127.0.0.1:8080/db.mmdb").is_ok());
        assert!(matches!(
            with_license_key("http://example.com/db.mmdb"),
            Err(DownloadError::Insecure { .. })
        ));
    }
}
