//! `update --url`: fetch a country database over HTTPS into a per-URL cache, so cron jobs can
//! refresh straight from the vendor. Conditional requests (ETag / Last-Modified) make an
//! unchanged database cost one round trip; an optional SHA-256 file is checked; `.tar.gz`
//! archives (MaxMind's format) are unpacked. Everything is written to temporary files and
//! renamed into the cache only once complete and verified, so a failed or partial download
//! leaves the cache (and the filter) as it was.

use std::{
    fs,
    io::{Read, Write as _},
    os::unix::fs::OpenOptionsExt as _,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, OnceLock,
    },
    time::{Duration, Instant},
};

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::{
    compile::artifact::Artifact,
    data::{self, CountryField, Format},
    sys::{
        self,
        fs::{TempFile, WriteError},
    },
};

/// `{license_key}` in a URL is replaced by this variable; with `MAXMIND_ACCOUNT_ID` also set,
/// both are sent as HTTP basic auth (MaxMind's current download API).
pub const LICENSE_KEY_ENV: &str = "MAXMIND_LICENSE_KEY";
pub const ACCOUNT_ID_ENV: &str = "MAXMIND_ACCOUNT_ID";

/// How long and how slowly a download may run, and how large it may be, before it is given
/// up with nothing replaced; and the CA file it trusts besides the usual roots.
#[derive(Clone, Copy, Debug)]
pub struct Limits<'a> {
    /// The whole transfer, the checksum file included.
    pub deadline: Duration,
    /// Bytes per second the body must average over every `window` (a stalled server sends
    /// nothing for a whole window and is given up after it).
    pub min_rate: u64,
    pub window: Duration,
    /// Largest body, and largest database unpacked from an archive.
    pub max_bytes: u64,
    /// Set when the process is stopping: the transfer ends within one read.
    pub cancel: Option<&'a AtomicBool>,
    /// A PEM file of CA certificates trusted besides the bundled web roots and the system's
    /// store (a server inside a company, under a private CA). Read whenever a download
    /// starts: a file that cannot be read or holds no certificate fails the download.
    pub ca_file: Option<&'a Path>,
}

/// 5 minutes, 4 KiB/s over 30 s windows, 1 GiB.
pub const DEFAULT_LIMITS: Limits<'static> = Limits {
    deadline: Duration::from_secs(300),
    min_rate: 4096,
    window: Duration::from_secs(30),
    max_bytes: 1 << 30,
    cancel: None,
    ca_file: None,
};

/// What a download must turn out to be before it replaces the cached copy.
#[derive(Clone, Copy, Debug)]
pub enum Expect {
    /// Country data, read as `--db` reads it.
    Data {
        format: Option<Format>,
        country_field: CountryField,
    },
    /// A compiled artifact.
    Artifact,
    /// Any bytes within the size limit (a release manifest or signature, checked by its
    /// reader).
    Any,
}

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
    #[error("download of {url} failed: the server's certificate is not trusted ({why}); a server under a private CA needs that CA in the system's store or in a CA file (`update --ca-file`, the agent's `ca_file`)")]
    Untrusted { url: String, why: String },
    #[error("cannot read the CA file {path}")]
    CaFileUnreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the CA file {path} {why}")]
    CaFileInvalid { path: PathBuf, why: String },
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
    #[error("download of {url} given up: {got} bytes in the last {window:?}, below the minimum of {min_rate} bytes/s")]
    TooSlow {
        url: String,
        got: u64,
        window: Duration,
        min_rate: u64,
    },
    #[error("download of {url} given up: not complete within {deadline:?}")]
    Deadline { url: String, deadline: Duration },
    #[error("download of {url} given up: {what} is larger than the limit of {limit} bytes")]
    TooLarge {
        url: String,
        what: &'static str,
        limit: u64,
    },
    #[error("download of {url} cancelled: the agent is stopping")]
    Cancelled { url: String },
    #[error("{url} is not usable data, the cached copy was kept: {why}")]
    NotData { url: String, why: String },
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
    /// SHA-256 of the body as downloaded (the archive, for an archive), so a checksum URL
    /// configured later is checked against a copy the server answers 304 for.
    #[serde(default)]
    body_sha256: Option<String>,
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

/// Fetches `url` (and checks it against `sha256_url`) into `<cache_root>/<hash of url>/`,
/// within `limits`. A new copy replaces the cached one only once it is complete, verified and
/// read as what `expect` says; the copy it replaces is removed.
pub fn fetch(
    cache_root: &Path,
    url: &str,
    sha256_url: Option<&str>,
    expect: Expect,
    limits: &Limits<'_>,
) -> Result<Fetched, DownloadError> {
    let real_url = with_license_key(url)?;
    let checksum_url = sha256_url.map(with_license_key).transpose()?;
    // Before the cache is touched: a bad CA file leaves no trace there.
    let agent = agent(&real_url, limits)?;
    let dir = cache_root.join(&hex::encode(Sha256::digest(url.as_bytes()))[..16]);
    let cache = |source| DownloadError::Cache {
        path: dir.clone(),
        source,
    };
    fs::create_dir_all(&dir).map_err(cache)?;
    // One fetch of a URL at a time (two interfaces, or the agent and a cron job): under the
    // lock, temporary files are a killed fetch's leftovers and can go.
    let _lock = cache_lock(&dir).map_err(cache)?;
    remove_leftovers(&dir);
    let meta = cached(&dir, checksum_url.is_some());

    let started = Instant::now();
    let mut request = agent.get(&real_url);
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
    let mut response = request.call().map_err(|e| transport(url, e, limits))?;
    let status = response.status().as_u16();
    if status == 304 {
        if let Some(meta) = meta {
            if let (Some(checksum_url), Some(body)) = (&checksum_url, &meta.body_sha256) {
                check_sum(
                    url,
                    checksum_url,
                    sha256_url.unwrap_or_default(),
                    body,
                    limits,
                )?;
            }
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
    if expected_len.is_some_and(|n| n > limits.max_bytes) {
        return Err(DownloadError::TooLarge {
            url: url.to_owned(),
            what: "the announced body",
            limit: limits.max_bytes,
        });
    }

    // Body into a temporary file, hashing as it goes.
    let mut partial = TempFile::new_for(&dir.join("download"))?;
    let mut reader = response.body_mut().as_reader();
    let body_sha256 = receive(
        &mut reader,
        partial.file(),
        &dir,
        url,
        expected_len,
        limits,
        started,
    )?;
    if let Some(checksum_url) = &checksum_url {
        check_sum(
            url,
            checksum_url,
            sha256_url.unwrap_or_default(),
            &body_sha256,
            limits,
        )?;
    }

    // Unpack archives; keep the database's own file name so format detection sees it.
    let (source, file) = unpack(&dir, url, partial, limits)?;
    let final_path = dir.join(&file);
    // A garbage body (an error page with status 200, a captive portal) never replaces the
    // good copy: it must read as the data it stands for first.
    accept(source.path(), &final_path, expect).map_err(|why| DownloadError::NotData {
        url: url.to_owned(),
        why,
    })?;
    let meta_new = Meta {
        file: file.clone(),
        etag,
        last_modified,
        body_sha256: Some(body_sha256),
    };
    source.persist(&final_path)?;
    save_meta(&dir, &meta_new)?;
    // The copy this one replaces, under another name: old cache files do not pile up.
    if let Some(old) = meta.filter(|m| m.file != file) {
        let _ = fs::remove_file(dir.join(old.file));
    }
    Ok(Fetched::New(final_path))
}

/// What the cache holds for a URL, if its file is still there. A checksum now asked for that
/// the cached copy was never checked against counts as nothing cached: no conditional
/// request, so the body comes again and is checked.
fn cached(dir: &Path, checksum_wanted: bool) -> Option<Meta> {
    fs::read(dir.join("meta.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .filter(|m: &Meta| dir.join(&m.file).exists())
        .filter(|m| !checksum_wanted || m.body_sha256.is_some())
}

/// Fetches the published SHA-256 of `url` from `checksum_url` (`shown` in messages: without
/// the licence key) and compares it with `got`.
fn check_sum(
    url: &str,
    checksum_url: &str,
    shown: &str,
    got: &str,
    limits: &Limits<'_>,
) -> Result<(), DownloadError> {
    let expected = fetch_checksum(checksum_url, shown, limits)?;
    if expected != got {
        return Err(DownloadError::Checksum {
            url: url.to_owned(),
            checksum_url: shown.to_owned(),
            expected,
            got: got.to_owned(),
        });
    }
    Ok(())
}

/// The database in a downloaded body: the `.mmdb` of a `.tar.gz` (unpacked beside it within
/// `limits`), else the body itself, with the file name to keep so format detection sees it.
fn unpack(
    dir: &Path,
    url: &str,
    body: TempFile,
    limits: &Limits<'_>,
) -> Result<(TempFile, String), DownloadError> {
    let name = file_name(url);
    if !is_tar_gz(&name, body.path()) {
        return Ok((body, name));
    }
    let mut unpacked = TempFile::new_for(&dir.join("unpacked"))?;
    let member = unpack_mmdb(body.path(), unpacked.file(), limits.max_bytes)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::FileTooLarge => DownloadError::TooLarge {
                url: url.to_owned(),
                what: "the database in the archive",
                limit: limits.max_bytes,
            },
            _ => DownloadError::Cache {
                path: dir.to_owned(),
                source: e,
            },
        })?
        .ok_or_else(|| DownloadError::NoDatabaseInArchive {
            url: url.to_owned(),
        })?;
    Ok((unpacked, member))
}

/// Copies the body to `out` (a temporary file in the cache directory `dir`) within `limits`;
/// returns its SHA-256.
fn receive(
    reader: &mut impl Read,
    out: &mut fs::File,
    dir: &Path,
    url: &str,
    expected_len: Option<u64>,
    limits: &Limits<'_>,
    started: Instant,
) -> Result<String, DownloadError> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut got = 0u64;
    let (mut window_start, mut window_bytes) = (Instant::now(), 0u64);
    let progress = progress_bar(url, expected_len);
    loop {
        if limits.cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
            return Err(DownloadError::Cancelled {
                url: url.to_owned(),
            });
        }
        let n = match reader.read(&mut buf) {
            Ok(n) => n,
            Err(source) => return Err(body_error(url, source, limits, started)),
        };
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])
            .map_err(|source| DownloadError::Cache {
                path: dir.to_owned(),
                source,
            })?;
        got += n as u64;
        if got > limits.max_bytes {
            return Err(DownloadError::TooLarge {
                url: url.to_owned(),
                what: "the body",
                limit: limits.max_bytes,
            });
        }
        window_bytes += n as u64;
        if window_start.elapsed() >= limits.window {
            let floor = limits
                .min_rate
                .saturating_mul(limits.window.as_secs().max(1));
            if window_bytes < floor {
                return Err(DownloadError::TooSlow {
                    url: url.to_owned(),
                    got: window_bytes,
                    window: limits.window,
                    min_rate: limits.min_rate,
                });
            }
            (window_start, window_bytes) = (Instant::now(), 0);
        }
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
    Ok(hex::encode(hasher.finalize()))
}

/// A read that failed: the deadline, a whole window without a byte, or the connection.
fn body_error(
    url: &str,
    source: std::io::Error,
    limits: &Limits<'_>,
    started: Instant,
) -> DownloadError {
    if started.elapsed() >= limits.deadline {
        return DownloadError::Deadline {
            url: url.to_owned(),
            deadline: limits.deadline,
        };
    }
    let timed_out = source.kind() == std::io::ErrorKind::TimedOut
        || source
            .get_ref()
            .and_then(|e| e.downcast_ref::<ureq::Error>())
            .is_some_and(|e| matches!(e, ureq::Error::Timeout(_)));
    if timed_out {
        return DownloadError::TooSlow {
            url: url.to_owned(),
            got: 0,
            window: limits.window,
            min_rate: limits.min_rate,
        };
    }
    DownloadError::Body {
        url: url.to_owned(),
        source,
    }
}

/// Reads the downloaded `file` (to be named `name`) as `expect` says.
fn accept(file: &Path, name: &Path, expect: Expect) -> Result<(), String> {
    match expect {
        Expect::Artifact => Artifact::read(file).map(drop).map_err(|e| e.to_string()),
        Expect::Any => Ok(()),
        Expect::Data {
            format,
            country_field,
        } => {
            let bytes = fs::read(file).map_err(|e| e.to_string())?;
            let spec = data::SourceSpec {
                path: name.to_owned(),
                format,
                country_field,
            };
            data::load_bytes(&spec, &bytes)
                .map(drop)
                .map_err(|e| e.to_string())
        }
    }
}

/// The cache directory's lock, held for one fetch.
fn cache_lock(dir: &Path) -> std::io::Result<fs::File> {
    let file = fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(dir.join("lock"))?;
    file.lock()?;
    Ok(file)
}

/// Removes the temporary files a killed fetch left (`.<name>.<pid>.<n>.tmp`).
fn remove_leftovers(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') && name.ends_with(".tmp") {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Replaces the cache's `meta.json` atomically: a crash never leaves it half written.
fn save_meta(dir: &Path, meta: &Meta) -> Result<(), WriteError> {
    sys::fs::write_atomic(
        &dir.join("meta.json"),
        &serde_json::to_vec(meta).expect("meta serialises"),
    )
}

/// An agent for `url`. An https URL gets an https-only agent, so a redirect (MaxMind's
/// downloads redirect to storage) can never take the request, a license key in its query or
/// basic-auth credentials, to plain http. A plain-http URL (loopback only) follows no redirect
/// at all: one could lead anywhere, in clear. Servers are trusted by [`roots`].
fn agent(url: &str, limits: &Limits<'_>) -> Result<ureq::Agent, DownloadError> {
    let plain = url
        .get(..7)
        .is_some_and(|s| s.eq_ignore_ascii_case("http://"));
    let tls = ureq::tls::TlsConfig::builder()
        .root_certs(roots(limits.ca_file)?)
        .build();
    Ok(ureq::Agent::config_builder()
        .https_only(!plain)
        .max_redirects(if plain { 0 } else { 10 })
        .timeout_global(Some(limits.deadline))
        // A server that sends nothing for a whole window is too slow whatever came before.
        .timeout_per_read(Some(limits.window))
        .http_status_as_error(false)
        .tls_config(tls)
        .build()
        .into())
}

/// The roots a download trusts: the bundled web roots (Mozilla's), the system's CA store, and
/// the certificates of `ca_file`, if one is given.
fn roots(ca_file: Option<&Path>) -> Result<ureq::tls::RootCerts, DownloadError> {
    let usual = usual_roots();
    Ok(match ca_file {
        None => ureq::tls::RootCerts::Specific(usual.clone()),
        Some(path) => usual
            .iter()
            .cloned()
            .chain(ca_certificates(path)?)
            .collect::<Vec<_>>()
            .into(),
    })
}

/// The bundled web roots and the system's CA store (as `rustls-native-certs` finds it, which
/// honours `SSL_CERT_FILE` and `SSL_CERT_DIR`), read once per process. A store that is missing
/// or partly unreadable leaves what could be read: the web roots at least.
fn usual_roots() -> &'static Arc<Vec<ureq::tls::Certificate<'static>>> {
    static ROOTS: OnceLock<Arc<Vec<ureq::tls::Certificate<'static>>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let system = rustls_native_certs::load_native_certs().certs;
        let mut seen = std::collections::HashSet::new();
        let web = webpki_root_certs::TLS_SERVER_ROOT_CERTS
            .iter()
            .map(|c| ureq::tls::Certificate::from_der(c.as_ref()));
        let system = system
            .iter()
            .map(|c| ureq::tls::Certificate::from_der(c.as_ref()).to_owned());
        // The system's store mostly repeats the web roots: each certificate once.
        Arc::new(
            web.chain(system)
                .filter(|c| seen.insert(c.der().to_vec()))
                .collect(),
        )
    })
}

/// The certificates of a CA file (PEM, one or more `CERTIFICATE` sections; other sections
/// are skipped). A file that cannot be read, has a damaged section, holds no certificate or
/// one that is not X.509 is refused, naming the file: never a silent fallback to the usual
/// roots alone.
pub fn ca_certificates(path: &Path) -> Result<Vec<ureq::tls::Certificate<'static>>, DownloadError> {
    let invalid = |why: String| DownloadError::CaFileInvalid {
        path: path.to_owned(),
        why,
    };
    let pem = fs::read(path).map_err(|source| DownloadError::CaFileUnreadable {
        path: path.to_owned(),
        source,
    })?;
    let mut certificates = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        let item = item.map_err(|e| invalid(format!("is not valid PEM: {e}")))?;
        if let ureq::tls::PemItem::Certificate(certificate) = item {
            let der = rustls::pki_types::CertificateDer::from(certificate.der());
            rustls::RootCertStore::empty().add(der).map_err(|e| {
                invalid(format!(
                    "holds a certificate (number {}) that is not a usable CA certificate: {e}",
                    certificates.len() + 1
                ))
            })?;
            certificates.push(certificate);
        }
    }
    if certificates.is_empty() {
        return Err(invalid(
            "holds no certificate (give PEM: -----BEGIN CERTIFICATE----- ...)".to_owned(),
        ));
    }
    Ok(certificates)
}

fn transport(url: &str, error: ureq::Error, limits: &Limits<'_>) -> DownloadError {
    if matches!(error, ureq::Error::Timeout(ureq::Timeout::Global)) {
        return DownloadError::Deadline {
            url: url.to_owned(),
            deadline: limits.deadline,
        };
    }
    if let Some(why) = certificate_refused(&error) {
        return DownloadError::Untrusted {
            url: url.to_owned(),
            why,
        };
    }
    DownloadError::Transport {
        url: url.to_owned(),
        source: Box::new(error),
    }
}

/// Why the TLS handshake refused the server's certificate (unknown issuer, expired, another
/// name), if that is what failed.
fn certificate_refused(error: &ureq::Error) -> Option<String> {
    let tls = match error {
        ureq::Error::Rustls(e) => Some(e),
        ureq::Error::Io(e) => e.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()),
        _ => None,
    }?;
    matches!(tls, rustls::Error::InvalidCertificate(_)).then(|| tls.to_string())
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

fn fetch_checksum(
    real_url: &str,
    shown_url: &str,
    limits: &Limits<'_>,
) -> Result<String, DownloadError> {
    let mut request = agent(real_url, limits)?.get(real_url);
    if let Some(auth) = basic_auth() {
        request = request.header("Authorization", auth);
    }
    let mut response = request
        .call()
        .map_err(|e| transport(shown_url, e, limits))?;
    let status = response.status().as_u16();
    if status != 200 {
        return Err(DownloadError::Status {
            url: shown_url.to_owned(),
            status,
        });
    }
    let text = response
        .body_mut()
        .with_config()
        .limit(64 * 1024)
        .read_to_string()
        .map_err(|e| transport(shown_url, e, limits))?;
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

/// Copies the first `*.mmdb` member of a `.tar.gz` to `out`, refusing (`FileTooLarge`) one
/// that says or turns out to be larger than `limit`; returns its file name.
fn unpack_mmdb(archive: &Path, out: &mut fs::File, limit: u64) -> std::io::Result<Option<String>> {
    let too_large = || std::io::Error::from(std::io::ErrorKind::FileTooLarge);
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(fs::File::open(archive)?));
    for entry in tar.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if name.ends_with(".mmdb") {
            if entry.header().size()? > limit {
                return Err(too_large());
            }
            let name = name.to_owned();
            // The header's size is the archive's word; the bytes are counted too.
            let copied = std::io::copy(&mut (&mut entry).take(limit + 1), out)?;
            if copied > limit {
                return Err(too_large());
            }
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
            assert!(
                agent(url, &DEFAULT_LIMITS).unwrap().config().https_only(),
                "{url}"
            );
        }
        let plain = agent("http://127.0.0.1:8080/db", &DEFAULT_LIMITS).unwrap();
        assert!(!plain.config().https_only());
        assert_eq!(plain.config().max_redirects(), 0);
        assert!(
            agent("https://download.example/db", &DEFAULT_LIMITS)
                .unwrap()
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
            body_sha256: None,
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

    /// `der` as a PEM section of `kind`.
    fn pem(kind: &str, der: &[u8]) -> String {
        let text = base64::engine::general_purpose::STANDARD.encode(der);
        let lines: Vec<&str> = text
            .as_bytes()
            .chunks(64)
            .map(|l| std::str::from_utf8(l).unwrap())
            .collect();
        format!(
            "-----BEGIN {kind}-----\n{}\n-----END {kind}-----\n",
            lines.join("\n")
        )
    }

    #[test]
    fn a_ca_file_gives_its_certificates_and_a_bad_one_is_refused_naming_it() {
        let dir = Scratch::new("ca");
        let write = |name: &str, text: &str| {
            let path = dir.0.join(name);
            fs::write(&path, text).unwrap();
            path
        };
        let [one, two, ..] = webpki_root_certs::TLS_SERVER_ROOT_CERTS else {
            panic!("web roots")
        };
        // Two certificates, with a comment and a section of another kind between them.
        let good = write(
            "good.pem",
            &format!(
                "# our CA\n{}{}{}",
                pem("CERTIFICATE", one),
                pem("PRIVATE KEY", b"not a key"),
                pem("CERTIFICATE", two)
            ),
        );
        let certificates = ca_certificates(&good).unwrap();
        let ders: Vec<&[u8]> = certificates.iter().map(|c| c.der()).collect();
        assert_eq!(ders, [one.as_ref(), two.as_ref()]);

        let missing = dir.0.join("missing.pem");
        let err = ca_certificates(&missing).unwrap_err();
        assert!(
            matches!(err, DownloadError::CaFileUnreadable { .. }),
            "{err}"
        );
        assert_eq!(
            format!("{:#}", anyhow::Error::from(err)),
            format!(
                "cannot read the CA file {}: No such file or directory (os error 2)",
                missing.display()
            )
        );
        for (name, text, why) in [
            ("empty.pem", String::new(), "holds no certificate"),
            (
                "key.pem",
                pem("PRIVATE KEY", b"a key, no certificate"),
                "holds no certificate",
            ),
            (
                "der.pem",
                "0\u{82}\u{5}\u{1}".to_owned(),
                "holds no certificate",
            ),
            (
                "garbage.pem",
                pem("CERTIFICATE", b"not a certificate"),
                "holds a certificate (number 1) that is not a usable CA certificate",
            ),
            (
                "second.pem",
                pem("CERTIFICATE", one) + &pem("CERTIFICATE", b"not a certificate"),
                "holds a certificate (number 2) that is not a usable CA certificate",
            ),
            (
                "base64.pem",
                "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n".to_owned(),
                "is not valid PEM",
            ),
        ] {
            let path = write(name, &text);
            let err = ca_certificates(&path).unwrap_err();
            assert!(
                matches!(err, DownloadError::CaFileInvalid { .. }),
                "{name}: {err}"
            );
            let shown = err.to_string();
            assert!(
                shown.starts_with(&format!("the CA file {} {why}", path.display())),
                "{name}: {shown}"
            );
        }
    }

    #[test]
    fn the_ca_file_is_trusted_besides_the_usual_roots_and_a_bad_one_fails_before_the_cache() {
        let usual = usual_roots().len();
        assert!(
            usual >= webpki_root_certs::TLS_SERVER_ROOT_CERTS.len() / 2,
            "{usual}"
        );
        let dir = Scratch::new("roots");
        // The file's certificates come after the usual roots (a web root here: no test CA
        // can be made without a certificate generator, and being added is what counts).
        let ca = dir.0.join("ca.pem");
        let own = webpki_root_certs::TLS_SERVER_ROOT_CERTS[0].as_ref();
        fs::write(&ca, pem("CERTIFICATE", own)).unwrap();
        let ureq::tls::RootCerts::Specific(with) = roots(Some(&ca)).unwrap() else {
            panic!("specific roots")
        };
        assert_eq!(with.len(), usual + 1);
        assert_eq!(with.last().unwrap().der(), own);
        let ureq::tls::RootCerts::Specific(without) = roots(None).unwrap() else {
            panic!("specific roots")
        };
        assert_eq!(without.len(), usual);

        // A download with a CA file that holds nothing fails before it creates the cache.
        let server = Server::start(|_, s, _| headers(s, 200, 0, ""));
        let bad = dir.0.join("bad.pem");
        fs::write(&bad, "nothing here\n").unwrap();
        let cache = dir.0.join("cache");
        let limits = Limits {
            ca_file: Some(&bad),
            ..fast_limits()
        };
        let err = fetch(&cache, &server.url("/db.mmdb"), None, ANY_DATA, &limits).unwrap_err();
        assert!(matches!(err, DownloadError::CaFileInvalid { .. }), "{err}");
        assert!(!cache.exists());
    }

    /// A loopback HTTP/1.1 server for one test: each connection gets `reply(request head)`,
    /// written by `send` (so a test can trickle or stall), until the server is dropped.
    struct Server {
        addr: std::net::SocketAddr,
        stop: std::sync::Arc<AtomicBool>,
    }

    type Send = dyn Fn(&str, &mut std::net::TcpStream, &AtomicBool) + std::marker::Send + Sync;

    impl Server {
        fn start(
            send: impl Fn(&str, &mut std::net::TcpStream, &AtomicBool)
                + std::marker::Send
                + Sync
                + 'static,
        ) -> Self {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let stop = std::sync::Arc::new(AtomicBool::new(false));
            let send: std::sync::Arc<Send> = std::sync::Arc::new(send);
            let flag = stop.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if flag.load(Ordering::Relaxed) {
                        break;
                    }
                    let Ok(mut stream) = stream else { continue };
                    let (send, flag) = (send.clone(), flag.clone());
                    std::thread::spawn(move || {
                        let mut head = Vec::new();
                        let mut byte = [0u8; 1];
                        while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
                            if stream.read_exact(&mut byte).is_err() {
                                return;
                            }
                            head.push(byte[0]);
                        }
                        send(&String::from_utf8_lossy(&head), &mut stream, &flag);
                    });
                }
            });
            Self { addr, stop }
        }

        fn url(&self, path: &str) -> String {
            format!("http://{}{path}", self.addr)
        }
    }

    impl Drop for Server {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Relaxed);
            let _ = std::net::TcpStream::connect(self.addr);
        }
    }

    fn headers(stream: &mut std::net::TcpStream, status: u16, length: usize, extra: &str) {
        let _ = write!(
            stream,
            "HTTP/1.1 {status} X\r\nConnection: close\r\nContent-Length: {length}\r\n{extra}\r\n"
        );
    }

    /// Sends `chunk` bytes every `every` until `total` or the server stops (bounded: at most
    /// 60 s).
    fn trickle(stream: &mut std::net::TcpStream, stop: &AtomicBool, chunk: usize, every: Duration) {
        let until = Instant::now() + Duration::from_secs(60);
        while !stop.load(Ordering::Relaxed) && Instant::now() < until {
            if stream.write_all(&vec![b'x'; chunk]).is_err() {
                return;
            }
            std::thread::sleep(every);
        }
    }

    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir().join(format!("rf-dl-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }
    }

    impl Scratch {
        /// [`fetch`] into this cache, as country data, within [`fast_limits`].
        fn fetch(&self, url: &str, sha256_url: Option<&str>) -> Result<Fetched, DownloadError> {
            super::fetch(&self.0, url, sha256_url, ANY_DATA, &fast_limits())
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn fast_limits() -> Limits<'static> {
        Limits {
            deadline: Duration::from_secs(20),
            min_rate: 4096,
            window: Duration::from_secs(1),
            max_bytes: 1 << 20,
            cancel: None,
            ca_file: None,
        }
    }

    const ANY_DATA: Expect = Expect::Data {
        format: None,
        country_field: CountryField::Country,
    };

    fn test_db() -> Vec<u8> {
        fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fixtures/maxmind/GeoLite2-Country-Test.mmdb"
        ))
        .unwrap()
    }

    #[test]
    fn a_server_that_stalls_or_trickles_is_given_up_within_the_window() {
        let cache = Scratch::new("slow");
        let stall = Server::start(|_, s, stop| {
            headers(s, 200, 1 << 20, "");
            trickle(s, stop, 0, Duration::from_millis(50));
        });
        let started = Instant::now();
        let err = cache.fetch(&stall.url("/db.mmdb"), None).unwrap_err();
        assert!(matches!(err, DownloadError::TooSlow { .. }), "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
        // 100 bytes every 100 ms: 1 KB/s, under the 4 KiB/s floor.
        let slow = Server::start(|_, s, stop| {
            headers(s, 200, 1 << 20, "");
            trickle(s, stop, 100, Duration::from_millis(100));
        });
        let err = cache.fetch(&slow.url("/db.mmdb"), None).unwrap_err();
        assert!(
            err.to_string()
                .contains("below the minimum of 4096 bytes/s"),
            "{err}"
        );
        // Nothing was cached, and no temporary file was left.
        let left: Vec<_> = fs::read_dir(&cache.0)
            .unwrap()
            .flat_map(|d| fs::read_dir(d.unwrap().path()).unwrap())
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.iter().all(|n| n == "lock"), "{left:?}");
    }

    #[test]
    fn a_download_fast_enough_but_endless_meets_the_deadline_and_a_cancel_ends_one() {
        let cache = Scratch::new("deadline");
        let endless = Server::start(|_, s, stop| {
            headers(s, 200, 1 << 30, "");
            trickle(s, stop, 8192, Duration::from_millis(20));
        });
        let limits = Limits {
            deadline: Duration::from_secs(2),
            max_bytes: 1 << 30,
            ..fast_limits()
        };
        let err = fetch(&cache.0, &endless.url("/db.mmdb"), None, ANY_DATA, &limits).unwrap_err();
        assert!(matches!(err, DownloadError::Deadline { .. }), "{err}");
        let cancel = AtomicBool::new(true);
        let limits = Limits {
            cancel: Some(&cancel),
            max_bytes: 1 << 30,
            ..fast_limits()
        };
        let err = fetch(&cache.0, &endless.url("/db.mmdb"), None, ANY_DATA, &limits).unwrap_err();
        assert!(matches!(err, DownloadError::Cancelled { .. }), "{err}");
    }

    #[test]
    fn garbage_never_replaces_the_cached_copy_and_a_replaced_copy_is_removed() {
        let cache = Scratch::new("garbage");
        let db = test_db();
        let served = std::sync::Arc::new(std::sync::Mutex::new(db.clone()));
        let body = served.clone();
        let server = Server::start(move |_, s, _| {
            let body = body.lock().unwrap().clone();
            headers(s, 200, body.len(), "");
            let _ = s.write_all(&body);
        });
        let first = cache.fetch(&server.url("/db.mmdb"), None).unwrap();
        assert_eq!(fs::read(first.path()).unwrap(), db);
        *served.lock().unwrap() = b"<html>maintenance</html>".to_vec();
        let err = cache.fetch(&server.url("/db.mmdb"), None).unwrap_err();
        assert!(matches!(err, DownloadError::NotData { .. }), "{err}");
        assert_eq!(
            fs::read(first.path()).unwrap(),
            db,
            "the good copy was replaced"
        );
        // A temporary file a killed fetch left behind goes at the next fetch.
        let dir = first.path().parent().unwrap().to_owned();
        fs::write(dir.join(".download.1.0.tmp"), b"partial").unwrap();
        *served.lock().unwrap() = db.clone();
        cache.fetch(&server.url("/db.mmdb"), None).unwrap();
        assert!(!dir.join(".download.1.0.tmp").exists());
        // The same URL whose database now has another name (an archive's member, say): the
        // old file does not stay behind.
        let mut names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, ["db.mmdb", "lock", "meta.json"]);
    }

    #[test]
    fn a_checksum_configured_later_is_checked_against_a_304_copy() {
        let cache = Scratch::new("sum304");
        let db = test_db();
        let good = hex::encode(Sha256::digest(&db));
        let sum = std::sync::Arc::new(std::sync::Mutex::new(good.clone()));
        let said = sum.clone();
        let server = Server::start(move |head, s, _| {
            if head.starts_with("GET /db.mmdb.sha256") {
                let text = format!("{}  db.mmdb\n", said.lock().unwrap());
                headers(s, 200, text.len(), "");
                let _ = s.write_all(text.as_bytes());
            } else if head.contains("If-None-Match") || head.contains("if-none-match") {
                headers(s, 304, 0, "ETag: \"v1\"\r\n");
            } else {
                headers(s, 200, db.len(), "ETag: \"v1\"\r\n");
                let _ = s.write_all(&db);
            }
        });
        let url = server.url("/db.mmdb");
        let sum_url = server.url("/db.mmdb.sha256");
        assert!(matches!(cache.fetch(&url, None).unwrap(), Fetched::New(_)));
        assert!(matches!(
            cache.fetch(&url, Some(&sum_url)).unwrap(),
            Fetched::NotModified(_)
        ));
        *sum.lock().unwrap() = "b".repeat(64);
        let err = cache.fetch(&url, Some(&sum_url)).unwrap_err();
        assert!(matches!(err, DownloadError::Checksum { .. }), "{err}");
    }

    #[test]
    fn a_compressed_database_larger_than_the_limit_is_refused_while_unpacking() {
        let cache = Scratch::new("bomb");
        // 4 MiB of zeros in an archive of a few KiB, over a 1 MiB limit.
        let mut archive = Vec::new();
        {
            let gz = flate2::write::GzEncoder::new(&mut archive, flate2::Compression::best());
            let mut tar = tar::Builder::new(gz);
            let zeros = vec![0u8; 4 << 20];
            let mut header = tar::Header::new_gnu();
            header.set_size(zeros.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            tar.append_data(&mut header, "GeoLite2-Country.mmdb", zeros.as_slice())
                .unwrap();
            tar.into_inner().unwrap().finish().unwrap();
        }
        assert!(archive.len() < 64 << 10, "{}", archive.len());
        let server = Server::start(move |_, s, _| {
            headers(s, 200, archive.len(), "");
            let _ = s.write_all(&archive);
        });
        let err = cache.fetch(&server.url("/db.tar.gz"), None).unwrap_err();
        assert!(
            matches!(
                err,
                DownloadError::TooLarge {
                    what: "the database in the archive",
                    ..
                }
            ),
            "{err}"
        );
    }
}
