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

use crate::ops::fsutil::{self, TempFile, WriteError};

/// `{license_key}` in a URL is replaced by this variable; with `MAXMIND_ACCOUNT_ID` also set,
/// both are sent as HTTP basic auth (MaxMind's current download API).
pub const LICENSE_KEY_ENV: &str = "MAXMIND_LICENSE_KEY";
pub const ACCOUNT_ID_ENV: &str = "MAXMIND_ACCOUNT_ID";
/// Whole-transfer limit, generous for a 100 MB database on a slow link.
const TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error("{url}: only https:// URLs are accepted (plain http:// only to this host: localhost, 127.0.0.0/8 or [::1])")]
    Insecure { url: String },
    #[error("{url} is not a valid URL ({why})")]
    BadUrl { url: String, why: String },
    #[error("{url} contains {{license_key}} but {LICENSE_KEY_ENV} is not set")]
    NoLicenseKey { url: String },
    #[error("download of {url} failed: HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("download of {url} failed")]
    Transport {
        url: String,
        source: Box<ureq::Error>,
    },
    #[error("download of {url} broke off")]
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
    #[error("cannot write the download cache {path}")]
    Cache {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Write(#[from] WriteError),
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
    let dir = cache_root.join(&hex::encode(Sha256::digest(url.as_bytes()))[..16]);
    let cache = |source| DownloadError::Cache {
        path: dir.clone(),
        source,
    };
    fs::create_dir_all(&dir).map_err(cache)?;
    let meta: Option<Meta> = fs::read(dir.join("meta.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .filter(|m: &Meta| dir.join(&m.file).exists());

    let mut request = agent(&real_url).get(&real_url);
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
    let mut partial = TempFile::new_for(&dir.join("download"))?;
    let file = partial.file();
    let mut hasher = Sha256::new();
    let mut reader = response.body_mut().as_reader();
    let mut buf = vec![0u8; 1 << 16];
    let mut got = 0u64;
    let progress = progress_bar(url, expected_len);
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
        progress.set_position(got);
    }
    progress.finish_with_message(format!("downloaded {url}"));
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
        let actual = hex::encode(hasher.finalize());
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
    let (source, file) = if is_tar_gz(&name, partial.path()) {
        let mut unpacked = TempFile::new_for(&dir.join("unpacked"))?;
        let member = unpack_mmdb(partial.path(), unpacked.file())
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
    source.persist(&final_path)?;
    save_meta(&dir, &meta_new)?;
    Ok(Fetched::New(final_path))
}

/// Replaces the cache's `meta.json` atomically: a crash never leaves it half written.
fn save_meta(dir: &Path, meta: &Meta) -> Result<(), WriteError> {
    fsutil::write_atomic(
        &dir.join("meta.json"),
        &serde_json::to_vec(meta).expect("meta serialises"),
    )
}

/// An agent for `url`. An https URL gets an https-only agent, so a redirect (MaxMind's
/// downloads redirect to storage) can never take the request, a license key in its query or
/// basic-auth credentials, to plain http. A plain-http URL (loopback only) follows no redirect
/// at all: one could lead anywhere, in clear.
fn agent(url: &str) -> ureq::Agent {
    let plain = url
        .get(..7)
        .is_some_and(|s| s.eq_ignore_ascii_case("http://"));
    ureq::Agent::config_builder()
        .https_only(!plain)
        .max_redirects(if plain { 0 } else { 10 })
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

/// Substitutes the license key and checks the URL the request will really go to, so a key
/// that changes the host is caught too (messages show the URL as given, never the key).
pub(crate) fn with_license_key(url: &str) -> Result<String, DownloadError> {
    check_url(url)?;
    if !url.contains("{license_key}") {
        return Ok(url.to_owned());
    }
    let key = std::env::var(LICENSE_KEY_ENV).map_err(|_| DownloadError::NoLicenseKey {
        url: url.to_owned(),
    })?;
    let real = url.replace("{license_key}", &key);
    check_url_as(&real, url)?;
    Ok(real)
}

/// Accepts `https://` URLs, and plain `http://` only when the host is this machine: exactly
/// `localhost` or a loopback IP literal. A string prefix is not enough (`http://localhost.evil/`,
/// `http://127.0.0.1@evil/`), so the URL is parsed by the same parser (`http::Uri`) the HTTP
/// client uses to pick the host it connects to: two parsers could disagree on odd input.
/// `{license_key}` stands for the key, which is checked again once substituted.
pub fn check_url(url: &str) -> Result<(), DownloadError> {
    check_url_as(&url.replace("{license_key}", "key"), url)
}

fn check_url_as(url: &str, shown: &str) -> Result<(), DownloadError> {
    let bad = |why: &str| DownloadError::BadUrl {
        url: shown.to_owned(),
        why: why.to_owned(),
    };
    let uri: ureq::http::Uri = url
        .parse()
        .map_err(|e: ureq::http::uri::InvalidUri| bad(&e.to_string()))?;
    let authority = uri
        .authority()
        .filter(|a| !a.as_str().is_empty() && !a.as_str().ends_with('@'))
        .ok_or_else(|| bad("no host"))?;
    let host = authority.host();
    match uri.scheme_str() {
        Some(s) if s.eq_ignore_ascii_case("https") => Ok(()),
        Some(s) if s.eq_ignore_ascii_case("http") && is_this_host(host) => Ok(()),
        _ => Err(DownloadError::Insecure {
            url: shown.to_owned(),
        }),
    }
}

/// `localhost` exactly, or a loopback IP literal (`127.0.0.0/8`, `[::1]`).
pub(crate) fn is_this_host(host: &str) -> bool {
    let literal = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    host.eq_ignore_ascii_case("localhost")
        || literal
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn basic_auth() -> Option<String> {
    let account = std::env::var(ACCOUNT_ID_ENV).ok()?;
    let key = std::env::var(LICENSE_KEY_ENV).ok()?;
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{account}:{key}"));
    Some(format!("Basic {token}"))
}

/// Bytes received so far, on stderr when it is a terminal; hidden otherwise (cron, pipes), as
/// indicatif's stderr target draws nothing where there is no terminal.
fn progress_bar(shown_url: &str, total: Option<u64>) -> indicatif::ProgressBar {
    let bar =
        indicatif::ProgressBar::with_draw_target(total, indicatif::ProgressDrawTarget::stderr());
    let template = if total.is_some() {
        "{msg} {bytes}/{total_bytes} ({bytes_per_sec}, {eta} left)"
    } else {
        "{msg} {bytes} ({bytes_per_sec})"
    };
    if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar.set_message(format!("downloading {shown_url}:"));
    bar
}

fn fetch_checksum(real_url: &str, shown_url: &str) -> Result<String, DownloadError> {
    let mut request = agent(real_url).get(real_url);
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

/// The first token of a `sha256sum`-style line: 64 hex digits, returned in lower case.
pub(crate) fn parse_checksum(text: &str) -> Option<String> {
    let mut digest = [0u8; 32];
    hex::decode_to_slice(text.split_whitespace().next()?, &mut digest).ok()?;
    Some(hex::encode(digest))
}

/// The last path segment of a URL, without query, as a safe file name.
pub(crate) fn file_name(url: &str) -> String {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let last = path.rsplit('/').next().unwrap_or("");
    let safe: String = last
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        .collect();
    // `meta.json` is the cache's own record of the download.
    if safe.is_empty() || safe.starts_with('.') || safe == "meta.json" {
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

/// Copies the first `*.mmdb` member of a `.tar.gz` to `out`; returns its file name.
fn unpack_mmdb(archive: &Path, out: &mut fs::File) -> std::io::Result<Option<String>> {
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(fs::File::open(archive)?));
    for entry in tar.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if name.ends_with(".mmdb") {
            let name = name.to_owned();
            std::io::copy(&mut entry, out)?;
            return Ok(Some(name));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_downloads_never_follow_a_redirect_to_plain_http() {
        for url in ["https://download.example/db", "HTTPS://download.example/db"] {
            assert!(agent(url).config().https_only(), "{url}");
        }
        assert!(!agent("http://127.0.0.1:8080/db").config().https_only());
        assert_eq!(
            agent("http://127.0.0.1:8080/db").config().max_redirects(),
            0
        );
        assert!(
            agent("https://download.example/db")
                .config()
                .max_redirects()
                > 0
        );
    }

    #[test]
    fn checksum_files_in_sha256sum_format_parse() {
        let sum = "a".repeat(64);
        assert_eq!(
            parse_checksum(&format!("{sum}  GeoLite2-Country.tar.gz\n")),
            Some(sum.clone())
        );
        assert_eq!(parse_checksum(&sum.to_uppercase()), Some(sum));
        assert_eq!(parse_checksum("not a checksum"), None);
        assert_eq!(parse_checksum(&format!("{}zz", "a".repeat(62))), None);
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
        assert_eq!(file_name("https://x/meta.json"), "database");
    }

    /// `meta.json` used to be written in place with a plain write: not atomic, not synced, and
    /// through whatever link sat at that name.
    #[test]
    fn cache_metadata_is_replaced_atomically() {
        let dir = std::env::temp_dir().join(format!("rf-meta-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let victim = dir.join("victim");
        fs::write(&victim, b"keep").unwrap();
        std::os::unix::fs::symlink(&victim, dir.join("meta.json")).unwrap();
        let meta = Meta {
            file: "db.mmdb".to_owned(),
            etag: Some("\"v1\"".to_owned()),
            last_modified: None,
        };
        let err = save_meta(&dir, &meta).unwrap_err();
        assert!(matches!(err, WriteError::NotRegular { .. }), "{err}");
        assert_eq!(fs::read(&victim).unwrap(), b"keep");
        fs::remove_file(dir.join("meta.json")).unwrap();
        save_meta(&dir, &meta).unwrap();
        let back: Meta = serde_json::from_slice(&fs::read(dir.join("meta.json")).unwrap()).unwrap();
        assert_eq!(back.etag.as_deref(), Some("\"v1\""));
        let mut names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, ["meta.json", "victim"]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn plain_http_only_to_this_host() {
        for url in [
            "http://127.0.0.1:8080/db.mmdb",
            "http://127.1.2.3/db.mmdb",
            "http://localhost/db.mmdb",
            "HTTP://LOCALHOST:80/db.mmdb",
            "http://[::1]:8080/db.mmdb",
            "http://user:pw@127.0.0.1/db.mmdb",
            "https://download.example.org/db?license_key={license_key}",
            "https://user:pw@example.org/db.mmdb",
        ] {
            assert!(check_url(url).is_ok(), "{url}");
        }
        for url in [
            "http://example.com/db.mmdb",
            "http://localhost.example.org/db.mmdb",
            "http://127.0.0.1@example.org/db.mmdb",
            "http://localhost@example.org/db.mmdb",
            "http://127.0.0.1.example.org/db.mmdb",
            "http://[::ffff:127.0.0.1]/db.mmdb",
            "http://0x7f.1/db.mmdb",
            "http://localhost./db.mmdb",
            "ftp://localhost/db.mmdb",
        ] {
            let err = check_url(url).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!(
                    "{url}: only https:// URLs are accepted (plain http:// only to this host: \
                     localhost, 127.0.0.0/8 or [::1])"
                )
            );
        }
        for url in [
            "",
            "http://",
            "http://@/x",
            "https://exa mple.org/",
            "/db.mmdb",
            "example.org/db.mmdb",
        ] {
            let err = check_url(url).unwrap_err();
            assert!(
                matches!(
                    err,
                    DownloadError::BadUrl { .. } | DownloadError::Insecure { .. }
                ),
                "{url}: {err}"
            );
        }
    }

    #[test]
    fn a_license_key_that_moves_the_host_is_refused_without_showing_it() {
        // Only this test sets the variable.
        std::env::set_var(LICENSE_KEY_ENV, "s3cret@example.org/");
        let url = "http://{license_key}@localhost/db.mmdb";
        let err = with_license_key(url).unwrap_err().to_string();
        std::env::remove_var(LICENSE_KEY_ENV);
        assert!(!err.contains("s3cret"), "{err}");
        assert!(err.starts_with(url), "{err}");
    }
}
