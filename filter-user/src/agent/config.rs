//! The agent's configuration file (TOML), checked by the code that checks the command line.
//!
//! ```toml
//! refresh = "24h"                  # each wait longer by up to `splay` (default a tenth), at random
//! retry = "5m"                     # after a failure, try again this soon
//! metrics_listen = "127.0.0.1:9877"
//! log_format = "text"              # or "json"
//! log_samples = 10                 # drop samples logged per second at most; 0: none
//! download_timeout = "5m"          # a download not complete by then is given up
//! download_stall = "30s"           # ... and so is one below download_min_rate over this long
//! download_min_rate = 4096         # bytes per second
//! public_keys = ["/etc/regionfilter/release.pub"]  # trusted release keys (docs/releases.md)
//! node_name = "edge-17"            # for staged rollout [default: $REGIONFILTER_NODE, else the host name]
//! channel = "stable"               # the release channel followed: another is refused
//! release_poll = "5m"              # release_url interfaces look for a new release this often
//! ca_file = "/etc/regionfilter/ca.pem"   # CA certificates trusted besides the usual roots
//!
//! [[interface]]
//! name = "eth0"
//! mode = "native"                  # or "skb"
//! lookup = "fast"                  # or "lpm"
//! db = ["/var/lib/GeoIP/GeoLite2-Country.mmdb"]   # or url (+ sha256_url), artifact, artifact_url, release_url
//! policy = "/etc/regionfilter/policy.toml"        # or an inline table: [interface.policy]
//! ```

use std::{
    collections::BTreeSet,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{bail, Context as _, Result};
use serde::Deserialize;

use crate::{
    data::{CountryField, Format},
    model::lookup::Lookup,
    model::{iface::IfaceName, policy::Policy, policy_file::PolicyFile},
    ops::{
        attach::AttachMode,
        data_spec::DataSpec,
        download::{self, Limits, DEFAULT_LIMITS},
        guards::{percent, DEFAULT_MAX_CHANGE},
        policy_spec::PolicySpec,
        release::{self, TrustedKey},
    },
};

/// The metrics address when the file names none: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9877";
/// The shortest refresh interval: a database is not rebuilt more often than this.
pub const MIN_REFRESH: Duration = Duration::from_secs(60);
/// How often the data is refreshed when the file does not say.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(24 * 60 * 60);
/// How soon a failed interface is tried again when the file does not say.
pub const DEFAULT_RETRY: Duration = Duration::from_secs(5 * 60);
/// How often an interface that follows a release looks for a new one when the file does not
/// say: an unchanged release costs three conditional requests.
pub const DEFAULT_RELEASE_POLL: Duration = Duration::from_secs(5 * 60);
/// The shortest release poll.
pub const MIN_RELEASE_POLL: Duration = Duration::from_secs(1);
/// The environment variable that names this node when the file does not (Kubernetes sets it
/// from the downward API's `spec.nodeName`).
pub const NODE_ENV: &str = "REGIONFILTER_NODE";
/// The longest interval any timer of the agent takes: a year.
pub const MAX_INTERVAL: Duration = Duration::from_secs(366 * 24 * 60 * 60);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default, with = "humantime_serde")]
    refresh: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    splay: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    retry: Option<Duration>,
    metrics_listen: Option<String>,
    #[serde(default)]
    log_format: LogFormat,
    log_samples: Option<u32>,
    #[serde(default)]
    detach_on_exit: bool,
    max_change: Option<toml::Value>,
    #[serde(default, with = "humantime_serde")]
    download_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    download_stall: Option<Duration>,
    download_min_rate: Option<u64>,
    ca_file: Option<PathBuf>,
    #[serde(default)]
    public_keys: Vec<PathBuf>,
    node_name: Option<String>,
    channel: Option<String>,
    #[serde(default, with = "humantime_serde")]
    release_poll: Option<Duration>,
    #[serde(default)]
    interface: Vec<InterfaceFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InterfaceFile {
    name: String,
    #[serde(default)]
    mode: AttachMode,
    #[serde(default)]
    lookup: Lookup,
    #[serde(default)]
    db: Vec<PathBuf>,
    #[serde(default)]
    format: Vec<Format>,
    country_field: Option<CountryField>,
    #[serde(default)]
    prefer: Vec<PathBuf>,
    url: Option<String>,
    sha256_url: Option<String>,
    artifact: Option<PathBuf>,
    artifact_url: Option<String>,
    release_url: Option<String>,
    /// A policy file's path, or the same keys as a table. Read as a plain value first, so a
    /// typo in the table gets the policy file's own error (`unknown field ...`), not serde's
    /// "no variant matched".
    policy: Option<toml::Value>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// `key=value` pairs (logfmt), which journald keeps as the message.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// A checked configuration.
#[derive(Debug)]
pub struct Config {
    pub refresh: Duration,
    pub splay: Duration,
    /// How soon a failed interface is tried again.
    pub retry: Duration,
    pub metrics_listen: SocketAddr,
    pub log_format: LogFormat,
    pub log_samples: u32,
    pub detach_on_exit: bool,
    pub max_change: f64,
    /// Limits of every download (`download_timeout`, `download_stall`, `download_min_rate`).
    pub download: Limits<'static>,
    /// Set when the file names public keys: releases are followed, unsigned artifacts refused.
    pub release: Option<ReleaseTrust>,
    /// CA certificates (PEM) every download trusts besides the bundled web roots and the
    /// system's store; checked to hold at least one.
    pub ca_file: Option<PathBuf>,
    pub interfaces: Vec<InterfaceConfig>,
}

/// What following a release channel needs besides its URL.
#[derive(Debug)]
pub struct ReleaseTrust {
    /// Every key a release may be signed by (more than one while keys rotate).
    pub keys: Vec<TrustedKey>,
    /// This node's name, which places it in each release's rollout.
    pub node: String,
    /// The channel this node follows: a release of another is refused.
    pub channel: String,
    /// How often a `release_url` interface looks for a new release (plus up to a tenth more,
    /// at random), in place of `refresh`.
    pub poll: Duration,
}

/// One interface to keep filtered.
#[derive(Debug)]
pub struct InterfaceConfig {
    pub iface: IfaceName,
    pub mode: AttachMode,
    pub lookup: Lookup,
    pub source: DataSource,
    /// `None`: the policy an artifact carries.
    pub policy: Option<Policy>,
}

/// Where an interface's country data comes from on every refresh.
#[derive(Debug, Clone)]
pub enum DataSource {
    /// Local files (`db`, or a local `artifact`), read as `--db`/`--artifact` reads them.
    Files(DataSpec),
    /// A database to download (cached, conditional) and compile, as `update --url` does.
    Url {
        url: String,
        sha256_url: Option<String>,
        data: DataSpec,
    },
    /// A compiled artifact to download (no key configured: trusted on its checksum alone).
    ArtifactUrl(String),
    /// A signed release directory to follow, with its own policy.
    Release(String),
}

impl Config {
    /// Reads and checks `path`: every interface name, data option and policy. An error names
    /// the file and the entry.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the agent config {}", path.display()))?;
        Self::parse(&text, path.parent().unwrap_or(Path::new(".")))
            .with_context(|| format!("agent config {}", path.display()))
    }

    /// Checks `text`; relative paths in it are taken from `dir`.
    pub fn parse(text: &str, dir: &Path) -> Result<Self> {
        let file: File = toml::from_str(text)?;
        let refresh = bounded("refresh", file.refresh.unwrap_or(DEFAULT_REFRESH))?;
        if refresh < MIN_REFRESH {
            bail!("refresh = {refresh:?}: give at least 1m");
        }
        let splay = match file.splay {
            Some(splay) => bounded("splay", splay)?,
            None => refresh / 10,
        };
        if splay > refresh {
            bail!("splay must not be longer than refresh");
        }
        let retry = bounded("retry", file.retry.unwrap_or(DEFAULT_RETRY))?;
        if retry < Duration::from_secs(1) {
            bail!("retry = {retry:?}: give at least 1s");
        }
        let listen = file.metrics_listen.as_deref().unwrap_or(DEFAULT_LISTEN);
        let metrics_listen: SocketAddr = listen.parse().with_context(|| {
            format!("metrics_listen = {listen:?}: give an address and port, e.g. {DEFAULT_LISTEN}")
        })?;
        let max_change = match &file.max_change {
            None => Ok(DEFAULT_MAX_CHANGE),
            Some(toml::Value::Integer(n)) => percent(&n.to_string()),
            Some(toml::Value::Float(f)) => percent(&f.to_string()),
            Some(toml::Value::String(s)) => percent(s),
            Some(other) => Err(format!("not a number: {other}")),
        }
        .map_err(|e| anyhow::anyhow!("max_change: {e}"))?;
        let log_samples = file.log_samples.unwrap_or(10);
        let download = download_limits(&file)?;
        let release = release_trust(&file, dir)?;
        let ca_file = file.ca_file.map(|path| dir.join(path));
        if let Some(path) = &ca_file {
            download::ca_certificates(path).context("ca_file")?;
        }
        if file.interface.is_empty() {
            bail!("no [[interface]]: name at least one interface to filter");
        }
        let mut seen = BTreeSet::new();
        let mut interfaces = Vec::new();
        for entry in file.interface {
            let name = entry.name.clone();
            let checked = entry
                .check(dir, release.is_some())
                .with_context(|| format!("[[interface]] {name:?}"))?;
            if !seen.insert(checked.iface.clone()) {
                bail!("[[interface]] {name:?} is listed twice");
            }
            interfaces.push(checked);
        }
        Ok(Self {
            refresh,
            splay,
            retry: retry.min(refresh),
            metrics_listen,
            log_format: file.log_format,
            log_samples,
            detach_on_exit: file.detach_on_exit,
            max_change,
            download,
            release,
            ca_file,
            interfaces,
        })
    }
}

/// The trusted keys and node name, read and checked now: a bad key file is the config's
/// error, not each refresh's.
fn release_trust(file: &File, dir: &Path) -> Result<Option<ReleaseTrust>> {
    if file.public_keys.is_empty() {
        if file.node_name.is_some() || file.release_poll.is_some() || file.channel.is_some() {
            bail!(
                "node_name, channel and release_poll are for following releases: give \
                 public_keys too"
            );
        }
        return Ok(None);
    }
    let poll = bounded(
        "release_poll",
        file.release_poll.unwrap_or(DEFAULT_RELEASE_POLL),
    )?;
    if poll < MIN_RELEASE_POLL {
        bail!("release_poll = {poll:?}: give at least 1s");
    }
    let keys = file
        .public_keys
        .iter()
        .map(|p| TrustedKey::read(&dir.join(p)).context("public_keys"))
        .collect::<Result<Vec<_>>>()?;
    let node = match &file.node_name {
        Some(node) => node.clone(),
        None => match std::env::var(NODE_ENV) {
            Ok(node) => node,
            Err(_) => {
                crate::sys::host::name().context("cannot read the host name: give node_name")?
            }
        },
    };
    release::check_node_name(&node).map_err(|e| {
        anyhow::anyhow!("{e} (from node_name, else ${NODE_ENV}, else the host name)")
    })?;
    let channel = file.channel.clone().unwrap_or_else(|| "stable".to_owned());
    release::check_channel(&channel).map_err(anyhow::Error::msg)?;
    Ok(Some(ReleaseTrust {
        keys,
        node,
        channel,
        poll,
    }))
}

impl Config {
    /// Every local data file of every interface can be opened for reading.
    pub fn check_local_files(&self) -> Result<()> {
        for entry in &self.interfaces {
            let DataSource::Files(data) = &entry.source else {
                continue;
            };
            for path in data.db.iter().chain(&data.artifact) {
                std::fs::File::open(path).with_context(|| {
                    format!(
                        "[[interface]] {:?}: cannot read {}",
                        entry.iface.to_string(),
                        path.display()
                    )
                })?;
            }
        }
        Ok(())
    }
}

fn download_limits(file: &File) -> Result<Limits<'static>> {
    let mut limits = DEFAULT_LIMITS;
    if let Some(deadline) = file.download_timeout {
        limits.deadline = bounded("download_timeout", deadline)?;
    }
    if let Some(window) = file.download_stall {
        limits.window = bounded("download_stall", window)?;
    }
    if let Some(rate) = file.download_min_rate {
        limits.min_rate = rate;
    }
    if limits.deadline < Duration::from_secs(1) || limits.window < Duration::from_secs(1) {
        bail!("download_timeout and download_stall: give at least 1s");
    }
    if limits.window > limits.deadline {
        bail!("download_stall must not be longer than download_timeout");
    }
    Ok(limits)
}

/// Durations are read by `humantime_serde` (`6h`, `30m`); no timer waits longer than a year.
fn bounded(key: &str, value: Duration) -> Result<Duration> {
    if value > MAX_INTERVAL {
        bail!(
            "{key} = {:?}: longer than a year; give at most 366d",
            humantime::format_duration(value).to_string()
        );
    }
    Ok(value)
}

impl InterfaceFile {
    fn check(self, dir: &Path, keys_configured: bool) -> Result<InterfaceConfig> {
        let iface: IfaceName = self.name.parse()?;
        let relative = |p: &PathBuf| dir.join(p);
        let data = DataSpec {
            db: self.db.iter().map(relative).collect(),
            format: self.format,
            country_field: self.country_field.unwrap_or_default(),
            prefer: self.prefer.iter().map(relative).collect(),
            artifact: self.artifact.as_ref().map(relative),
        };
        let given = [
            !data.db.is_empty(),
            self.url.is_some(),
            data.artifact.is_some(),
            self.artifact_url.is_some(),
            self.release_url.is_some(),
        ];
        if given.iter().filter(|&&g| g).count() != 1 {
            bail!("give exactly one of db, url, artifact, artifact_url or release_url");
        }
        if self.release_url.is_some() && !keys_configured {
            bail!("release_url needs public_keys: a release is applied only when its signature verifies");
        }
        if self.artifact_url.is_some() && keys_configured {
            bail!(
                "artifact_url is unsigned, and public_keys are configured: follow a signed \
                 release with release_url (docs/releases.md)"
            );
        }
        if self.release_url.is_some() && self.policy.is_some() {
            bail!("a release carries its own policy: give no policy with release_url");
        }
        if self.sha256_url.is_some() && self.url.is_none() {
            bail!("sha256_url needs url");
        }
        for url in [
            &self.url,
            &self.sha256_url,
            &self.artifact_url,
            &self.release_url,
        ]
        .into_iter()
        .flatten()
        {
            download::check_url(url)?;
        }
        let source = match (self.url, self.artifact_url, self.release_url) {
            (Some(url), _, _) => DataSource::Url {
                url,
                sha256_url: self.sha256_url,
                data,
            },
            (None, Some(url), _) => DataSource::ArtifactUrl(url),
            (None, None, Some(url)) => DataSource::Release(url),
            (None, None, None) => DataSource::Files(data),
        };
        let artifact_source = matches!(source, DataSource::ArtifactUrl(_) | DataSource::Release(_))
            || matches!(&source, DataSource::Files(d) if d.artifact.is_some());
        // The same code as `--policy FILE`: a file, or the same keys inline.
        let policy = match self.policy {
            Some(toml::Value::String(path)) => PolicySpec {
                file: Some(dir.join(path)),
                ..PolicySpec::default()
            }
            .to_policy()?,
            Some(table @ toml::Value::Table(_)) => {
                let file: PolicyFile = table.try_into().context("[interface.policy]")?;
                Some(PolicySpec::default().with_file(file)?)
            }
            Some(other) => bail!(
                "policy = {other}: give a policy file's path, or a table of policy keys \
                 ([interface.policy])"
            ),
            None => None,
        };
        if policy.is_none() && !artifact_source {
            bail!("give a policy (a file path, or an inline [interface.policy] table)");
        }
        Ok(InterfaceConfig {
            iface,
            mode: self.mode,
            lookup: self.lookup,
            source,
            policy,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config> {
        Config::parse(text, Path::new("/etc/regionfilter"))
    }

    const ONE: &str =
        "[[interface]]\nname = \"eth0\"\ndb = [\"a.mmdb\"]\npolicy = { deny = [\"GB\"] }\n";

    #[test]
    fn defaults_fill_what_the_file_leaves_out_and_paths_are_taken_from_its_directory() {
        let config = parse(ONE).unwrap();
        assert_eq!(config.refresh, DEFAULT_REFRESH);
        assert_eq!(config.splay, DEFAULT_REFRESH / 10);
        assert_eq!(config.retry, DEFAULT_RETRY);
        assert_eq!(config.metrics_listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(config.max_change, DEFAULT_MAX_CHANGE);
        assert_eq!(config.log_samples, 10);
        let [entry] = &config.interfaces[..] else {
            panic!("one interface")
        };
        let DataSource::Files(data) = &entry.source else {
            panic!("local files")
        };
        assert_eq!(data.db, [PathBuf::from("/etc/regionfilter/a.mmdb")]);
        assert_eq!(
            entry.policy.as_ref().unwrap().summary(),
            "deny GB; unknown pass; malformed pass"
        );
    }

    #[test]
    fn durations_and_percentages_are_read_in_their_units() {
        let config = parse(&format!(
            "refresh = \"6h\"\nsplay = \"10m\"\nretry = \"30s\"\nmax_change = \"2.5%\"\n\
             download_timeout = \"2m\"\ndownload_stall = \"10s\"\n{ONE}"
        ))
        .unwrap();
        assert_eq!(config.refresh, Duration::from_secs(6 * 3600));
        assert_eq!(config.splay, Duration::from_secs(600));
        assert_eq!(config.retry, Duration::from_secs(30));
        assert!((config.max_change - 2.5).abs() < f64::EPSILON);
        assert_eq!(config.download.deadline, Duration::from_secs(120));
        assert_eq!(config.download.window, Duration::from_secs(10));
        // A retry longer than the refresh waits no longer than the refresh.
        let config = parse(&format!("refresh = \"1h\"\nretry = \"2h\"\n{ONE}")).unwrap();
        assert_eq!(config.retry, Duration::from_secs(3600));
    }

    /// A directory holding a release public key `release.pub`, as `minisign -G` writes one.
    fn key_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let pair = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
        std::fs::write(
            dir.path().join("release.pub"),
            pair.pk.to_box().unwrap().into_string(),
        )
        .unwrap();
        dir
    }

    const FOLLOW: &str =
        "[[interface]]\nname = \"eth0\"\nrelease_url = \"https://releases.example/stable/\"\n";

    #[test]
    fn a_release_channel_needs_keys_and_brings_its_own_policy() {
        let dir = key_dir();
        let keys = "public_keys = [\"release.pub\"]\nnode_name = \"edge-7\"\n";
        let config = Config::parse(&format!("{keys}{FOLLOW}"), dir.path()).unwrap();
        let trust = config.release.as_ref().unwrap();
        assert_eq!((trust.keys.len(), trust.node.as_str()), (1, "edge-7"));
        assert_eq!(trust.poll, DEFAULT_RELEASE_POLL);
        let fast = Config::parse(
            &format!("release_poll = \"2s\"\n{keys}{FOLLOW}"),
            dir.path(),
        );
        assert_eq!(fast.unwrap().release.unwrap().poll, Duration::from_secs(2));
        assert!(matches!(
            &config.interfaces[0].source,
            DataSource::Release(url) if url == "https://releases.example/stable/"
        ));
        assert!(config.interfaces[0].policy.is_none());
        let artifact_url =
            "[[interface]]\nname = \"eth0\"\nartifact_url = \"https://a.example/f.rgnf\"\n";
        for (text, expected) in [
            (FOLLOW.to_owned(), "release_url needs public_keys"),
            (
                format!("{keys}{artifact_url}"),
                "artifact_url is unsigned, and public_keys are configured",
            ),
            (
                format!("{keys}{FOLLOW}policy = {{ deny = [\"GB\"] }}\n"),
                "give no policy with release_url",
            ),
            (
                format!("node_name = \"edge-7\"\n{ONE}"),
                "node_name, channel and release_poll are for following releases",
            ),
            (
                format!("release_poll = \"100ms\"\n{keys}{FOLLOW}"),
                "give at least 1s",
            ),
            (
                format!("public_keys = [\"missing.pub\"]\n{FOLLOW}"),
                "missing.pub",
            ),
            (
                format!("public_keys = [\"release.pub\"]\nnode_name = \"../x\"\n{FOLLOW}"),
                "\"../x\"",
            ),
            (
                format!("{keys}{FOLLOW}url = \"https://a.example/x.mmdb\"\n"),
                "give exactly one of",
            ),
        ] {
            let err = format!("{:#}", Config::parse(&text, dir.path()).expect_err(&text));
            assert!(err.contains(expected), "{text}: {err}");
        }
        // Without keys, an unsigned artifact is still possible.
        Config::parse(artifact_url, dir.path()).unwrap();
    }

    /// A reload reads the file through [`Config::read`] too: a CA file that cannot be used
    /// fails it, and the running configuration stays.
    #[test]
    fn the_ca_file_is_taken_from_the_config_directory_and_must_hold_a_certificate() {
        use base64::Engine as _;
        let dir = tempfile::tempdir().unwrap();
        let der = webpki_root_certs::TLS_SERVER_ROOT_CERTS[0].as_ref();
        let pem = format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            base64::engine::general_purpose::STANDARD.encode(der)
        );
        std::fs::write(dir.path().join("ca.pem"), pem).unwrap();
        std::fs::write(dir.path().join("empty.pem"), "").unwrap();
        let config_file = dir.path().join("agent.toml");
        let read = |ca_file: &str| {
            std::fs::write(&config_file, format!("ca_file = {ca_file:?}\n{ONE}")).unwrap();
            Config::read(&config_file)
        };
        let config = read("ca.pem").unwrap();
        assert_eq!(config.ca_file, Some(dir.path().join("ca.pem")));
        assert_eq!(parse(ONE).unwrap().ca_file, None);
        let path = |name: &str| dir.path().join(name).display().to_string();
        for (name, want) in [
            (
                "missing.pem",
                format!(
                    "cannot read the CA file {}: No such file or directory (os error 2)",
                    path("missing.pem")
                ),
            ),
            (
                "empty.pem",
                format!(
                    "the CA file {} holds no certificate (give PEM: -----BEGIN CERTIFICATE----- ...)",
                    path("empty.pem")
                ),
            ),
        ] {
            assert_eq!(
                format!("{:#}", read(name).unwrap_err()),
                format!("agent config {}: ca_file: {want}", config_file.display())
            );
        }
    }

    #[test]
    fn every_bad_entry_is_refused_with_what_to_fix() {
        for (text, expected) in [
            (
                "[[interface]]\nname = \"eth0\"\ndb = [\"a.mmdb\"]\npolicy = { deny = [\"XX\"] }\n",
                "unknown country code \"XX\"",
            ),
            (
                "[[interface]]\nname = \"eth0\"\npolicy = { deny = [\"GB\"] }\n",
                "give exactly one of db, url, artifact, artifact_url or release_url",
            ),
            (
                "[[interface]]\nname = \"../etc\"\ndb = [\"a.mmdb\"]\npolicy = { deny = [\"GB\"] }\n",
                "../etc",
            ),
            ("refresh = \"1s\"\n[[interface]]\nname = \"eth0\"\n", "give at least 1m"),
            ("refresh = \"soon\"\n", "expected a duration"),
            (
                "[[interface]]\nname = \"eth0\"\nurl = \"http://example.org/x.mmdb\"\npolicy = { deny = [\"GB\"] }\n",
                "only https:// URLs",
            ),
            ("metrics_listen = \"localhost\"\n", "give an address and port"),
            (
                "[[interface]]\nname = \"eth0\"\ndb = [\"a.mmdb\"]\n[interface.policy]\ndney = [\"GB\"]\n",
                "unknown field `dney`",
            ),
            ("refresh = \"500000000000y\"\n", "longer than a year"),
            ("splay = \"2d\"\n", "splay must not be longer than refresh"),
            ("download_stall = \"10m\"\n", "download_stall must not be longer"),
            ("max_change = -1\n", "max_change"),
            ("", "no [[interface]]"),
            (&format!("{ONE}{ONE}"), "listed twice"),
            (
                "[[interface]]\nname = \"eth0\"\ndb = [\"a.mmdb\"]\n",
                "give a policy",
            ),
            ("colour = \"blue\"\n", "unknown field `colour`"),
        ] {
            let err = format!("{:#}", parse(text).expect_err(text));
            assert!(err.contains(expected), "{text}: {err}");
        }
    }
}
