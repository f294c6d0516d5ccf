//! Signed releases: an artifact beside a small manifest (version, the artifact's SHA-256 and
//! size, creation and expiry, channel, rollout plan) signed in minisign's format, so that a
//! fleet applies only what a holder of the release key published.
//!
//! A release directory, as any static HTTPS server can serve it:
//! - `release.json`: the [`Manifest`];
//! - `release.json.minisig`: its signature (`minisign -V -p KEY.pub -m release.json` checks it);
//! - the artifact, under the name the manifest gives.
//!
//! The signature covers the manifest only; the manifest pins the artifact by hash and size, so
//! a manifest of one release with the artifact of another is refused. Cryptography is the
//! `minisign` crate's (Ed25519, prehashed signatures as `minisign -S` writes them).

use std::{
    fs,
    io::Cursor,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::{compile::artifact::Artifact, sys};

/// The manifest's file name in a release directory.
pub const MANIFEST: &str = "release.json";
/// The signature's file name: the manifest's, as minisign names it.
pub const SIGNATURE: &str = "release.json.minisig";
/// Manifests and signatures larger than these are refused before they are parsed.
pub const MAX_MANIFEST_BYTES: u64 = 64 * 1024;
pub const MAX_SIGNATURE_BYTES: u64 = 4 * 1024;
/// The largest artifact a manifest may name.
pub const MAX_ARTIFACT_BYTES: u64 = 1 << 30;
/// The highest version: versions stay exact in Prometheus (a float) and one is always left
/// above the last.
pub const MAX_VERSION: u64 = 1 << 53;
/// The longest a manifest may be valid: a year and a day, as `release --expires-in` allows.
pub const MAX_VALIDITY: u64 = 366 * 86_400;
/// The latest creation time a manifest may carry (the end of 9998): dates stay printable.
const MAX_CREATED: u64 = 253_370_764_800;
/// The manifest format this build writes and reads.
pub const FORMAT: u32 = 1;

/// What a release says about itself; signed as a whole.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: u32,
    /// The release channel (`stable`, `canary`): a node follows one.
    pub channel: String,
    /// Strictly increasing within a channel: a node never applies a lower one (rollback
    /// protection). Rolling back content is publishing a higher version with the old artifact.
    pub version: u64,
    /// Unix times. Past `expires` the manifest is stale: a node keeps what it runs and says so
    /// (a mirror that keeps serving an old release is noticed).
    pub created: u64,
    pub expires: u64,
    pub artifact: ArtifactRef,
    pub rollout: Rollout,
}

/// The artifact a manifest pins.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArtifactRef {
    /// A plain file name in the release directory.
    pub file: String,
    /// Hex SHA-256 of the file's bytes.
    pub sha256: String,
    pub size: u64,
    /// The artifact's own content hash (data and policy), as `status` shows it.
    pub content_hash: String,
}

/// The staged rollout: the stages of the plan, and the one in force.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rollout {
    pub plan: Vec<Stage>,
    /// Index into `plan`; advancing is publishing a new manifest with a higher version.
    pub stage: usize,
}

/// One stage: the share of nodes that apply the release, and whether they apply its policy
/// as a dry run (counted as would-drop, nothing dropped).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    /// Per mille of nodes (0-1000): `10` is 1%.
    pub per_mille: u16,
    #[serde(default)]
    pub dry_run: bool,
}

impl Stage {
    /// Parses `10%`, `0.5%`, `dry:1%` (a dry-run stage), `100%`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (dry_run, share) = match text.strip_prefix("dry:") {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let number = share.strip_suffix('%').ok_or_else(|| {
            format!("stage {text:?}: give a share of nodes such as 10% or dry:1%")
        })?;
        let percent: f64 = number
            .trim()
            .parse()
            .map_err(|_| format!("stage {text:?}: {number:?} is not a number"))?;
        if !(0.1..=100.0).contains(&percent) {
            return Err(format!("stage {text:?}: give between 0.1% and 100%"));
        }
        // Whole per mille: 0.1% steps.
        let per_mille = (percent * 10.0).round() as u16;
        Ok(Self { per_mille, dry_run })
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let percent = f64::from(self.per_mille) / 10.0;
        write!(f, "{}{percent}%", if self.dry_run { "dry:" } else { "" })
    }
}

impl Rollout {
    /// A plan's stages must only grow, end at 100% enforcing, and `stage` must be one of them.
    pub fn check(&self) -> Result<(), String> {
        if self.plan.is_empty() {
            return Err("the rollout plan has no stages".to_owned());
        }
        if self.stage >= self.plan.len() {
            return Err(format!(
                "stage {} of a plan of {} stages (stages count from 0)",
                self.stage,
                self.plan.len()
            ));
        }
        for pair in self.plan.windows(2) {
            let grows = pair[1].per_mille > pair[0].per_mille
                || (pair[1].per_mille == pair[0].per_mille && pair[0].dry_run && !pair[1].dry_run);
            if !grows {
                return Err(format!(
                    "the rollout plan must grow at every stage: {} then {}",
                    pair[0], pair[1]
                ));
            }
        }
        let last = self.plan[self.plan.len() - 1];
        if last.per_mille != 1000 || last.dry_run {
            return Err(format!(
                "the rollout plan must end at 100% enforcing, not {last}"
            ));
        }
        Ok(())
    }

    /// The stage in force.
    #[must_use]
    pub fn current(&self) -> Stage {
        self.plan[self.stage]
    }
}

/// Where a node stands in a release's rollout: `0..1000`, from a stable hash of the node's
/// name, the channel and the artifact's SHA-256, not the version: advancing a stage publishes
/// the same artifact under a higher version, and must keep the nodes already in. The same
/// nodes go first for an artifact; a stage of `per_mille` takes the nodes below it, so each
/// stage's set holds the previous one's.
#[must_use]
pub fn cohort(node: &str, channel: &str, artifact_sha256: &str) -> u16 {
    let digest = Sha256::new()
        .chain_update(b"regionfilter-cohort\0")
        .chain_update(channel.as_bytes())
        .chain_update([0])
        .chain_update(artifact_sha256.as_bytes())
        .chain_update([0])
        .chain_update(node.as_bytes())
        .finalize();
    let n = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
    u16::try_from(n % 1000).expect("below 1000")
}

/// Why a release was refused. Nothing was applied or written when any of these is returned.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error("cannot read {path}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is {size} bytes, more than the {limit} a {what} may have; refused unread")]
    Oversize {
        path: PathBuf,
        what: &'static str,
        size: u64,
        limit: u64,
    },
    #[error("{url} is larger than the {limit} bytes a {what} may have; refused unread")]
    TooLarge {
        url: String,
        what: &'static str,
        limit: u64,
    },
    #[error("no signature: {path} is missing; a release is applied only when signed")]
    NoSignature { path: PathBuf },
    #[error("{path} is not a minisign signature: {why}")]
    BadSignatureFile { path: PathBuf, why: String },
    #[error("the manifest is signed by key {key_id}, which is none of the configured keys ({configured})")]
    WrongKey { key_id: String, configured: String },
    #[error("the manifest's signature does not verify with key {key_id}: it was changed after signing or signed by another key with the same id")]
    BadSignature { key_id: String },
    #[error("the manifest is not a release manifest: {why}")]
    BadManifest { why: String },
    #[error("the artifact {path} does not match the manifest: {why} (a manifest of one release with the artifact of another?)")]
    Mismatch { path: PathBuf, why: String },
    #[error("release {version} is older than the version {running} this node runs: refused (rollback protection; publish a higher version to roll back)")]
    Rollback { version: u64, running: u64 },
    #[error("release {version} names another artifact than the release {version} this node runs: a version is published once (publish a higher version)")]
    Replaced { version: u64 },
    #[error("the manifest is for channel {found:?}, this node follows {expected:?}: refused (a release of another channel served at this URL)")]
    WrongChannel { expected: String, found: String },
    #[error("the release record {path} cannot be read ({why}); rollback protection needs it: repair or remove it by hand to accept any release")]
    BadRecord { path: PathBuf, why: String },
    #[error("the manifest expired at {expired} (now {now}): its publisher stopped renewing it, or a mirror serves an old one")]
    Expired { expired: String, now: String },
    #[error("the artifact named by the manifest is not valid: {0}")]
    BadArtifact(String),
}

impl ReleaseError {
    /// Every [`Self::reason`], for series that start at zero.
    pub const REASONS: [&'static str; 10] = [
        "wrong_channel",
        "unreadable",
        "oversize",
        "no_signature",
        "bad_signature",
        "wrong_key",
        "bad_manifest",
        "mismatch",
        "rollback",
        "expired",
    ];

    /// The `reason` label of a refused release.
    #[must_use]
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Io { .. } | Self::BadRecord { .. } => "unreadable",
            Self::WrongChannel { .. } => "wrong_channel",
            Self::Oversize { .. } | Self::TooLarge { .. } => "oversize",
            Self::NoSignature { .. } => "no_signature",
            Self::BadSignatureFile { .. } | Self::BadSignature { .. } => "bad_signature",
            Self::WrongKey { .. } => "wrong_key",
            Self::BadManifest { .. } => "bad_manifest",
            Self::Mismatch { .. } | Self::BadArtifact(_) => "mismatch",
            Self::Rollback { .. } | Self::Replaced { .. } => "rollback",
            Self::Expired { .. } => "expired",
        }
    }
}

/// A public key a node trusts, with its minisign key id for messages.
pub struct TrustedKey {
    key: minisign::PublicKey,
    id: String,
}

impl std::fmt::Debug for TrustedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TrustedKey({})", self.id)
    }
}

impl TrustedKey {
    /// Reads a public key as `minisign -G` writes it (`untrusted comment:` line, then the key),
    /// or the key's base64 line alone.
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let text = read_limited(path, MAX_SIGNATURE_BYTES, "public key")?;
        let text = String::from_utf8_lossy(&text);
        let base64 = text
            .lines()
            .map(str::trim)
            .rfind(|l| !l.is_empty() && !l.starts_with("untrusted comment:"))
            .unwrap_or_default();
        let key = minisign::PublicKey::from_base64(base64)
            .map_err(|e| anyhow::anyhow!("{} is not a minisign public key: {e}", path.display()))?;
        Ok(Self::new(key))
    }

    fn new(key: minisign::PublicKey) -> Self {
        let id = key_id(key.keynum());
        Self { key, id }
    }

    #[must_use]
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// A key id as minisign prints it (16 hex digits, most significant first).
fn key_id(keynum: &[u8]) -> String {
    keynum.iter().rev().map(|b| format!("{b:02X}")).collect()
}

/// A release whose signature, manifest and artifact all checked.
#[derive(Debug)]
pub struct Verified {
    pub manifest: Manifest,
    /// The key that signed it.
    pub key_id: String,
    /// The artifact's path and bytes (read once, hashed, parsed).
    pub artifact_path: PathBuf,
    pub artifact: Artifact,
}

/// What a node requires of a release besides a good signature.
pub struct Requirements<'a> {
    pub keys: &'a [TrustedKey],
    /// Unix time now.
    pub now: u64,
    /// The channel the node follows: a manifest of another is refused. `None`: any.
    pub channel: Option<&'a str>,
    /// The release the node runs on that channel: a lower version is refused, and the same
    /// version only with the same artifact (re-signed for a later expiry or another stage).
    pub running: Option<Running>,
}

/// What a node runs, for rollback protection.
#[derive(Clone, Debug)]
pub struct Running {
    pub version: u64,
    /// `None`: unknown (`verify --running N`), so only the version is compared.
    pub artifact_sha256: Option<String>,
}

impl From<&Manifest> for Running {
    fn from(m: &Manifest) -> Self {
        Self {
            version: m.version,
            artifact_sha256: Some(m.artifact.sha256.clone()),
        }
    }
}

/// Checks the release in `dir`: sizes before parsing, the signature against `required.keys`,
/// the manifest, expiry, rollback, then the artifact's size, hash and contents.
pub fn verify(dir: &Path, required: &Requirements<'_>) -> Result<Verified, ReleaseError> {
    let manifest_path = dir.join(MANIFEST);
    let signature_path = dir.join(SIGNATURE);
    let manifest_bytes = read_limited(&manifest_path, MAX_MANIFEST_BYTES, "manifest")?;
    let signature_bytes = match read_limited(&signature_path, MAX_SIGNATURE_BYTES, "signature") {
        Err(ReleaseError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Err(ReleaseError::NoSignature {
                path: signature_path,
            })
        }
        other => other?,
    };
    let (manifest, key_id) =
        verify_manifest(&manifest_bytes, &signature_bytes, &signature_path, required)?;
    let artifact_path = dir.join(&manifest.artifact.file);
    let artifact = check_artifact(&artifact_path, &manifest.artifact)?;
    Ok(Verified {
        manifest,
        key_id,
        artifact_path,
        artifact,
    })
}

/// The manifest checked before any artifact is read or fetched: its signature against
/// `required.keys`, its form, expiry and version. `signature_path` names the signature in
/// messages.
pub fn verify_manifest(
    manifest_bytes: &[u8],
    signature_bytes: &[u8],
    signature_path: &Path,
    required: &Requirements<'_>,
) -> Result<(Manifest, String), ReleaseError> {
    let key_id = check_signature(
        manifest_bytes,
        signature_bytes,
        signature_path,
        required.keys,
    )?;
    let manifest = parse_manifest(manifest_bytes)?;
    if required.now >= manifest.expires {
        return Err(ReleaseError::Expired {
            expired: sys::time::date(manifest.expires),
            now: sys::time::date(required.now),
        });
    }
    if let Some(expected) = required.channel.filter(|&c| c != manifest.channel) {
        return Err(ReleaseError::WrongChannel {
            expected: expected.to_owned(),
            found: manifest.channel,
        });
    }
    if let Some(running) = &required.running {
        if manifest.version < running.version {
            return Err(ReleaseError::Rollback {
                version: manifest.version,
                running: running.version,
            });
        }
        let other_artifact = running
            .artifact_sha256
            .as_ref()
            .is_some_and(|sha| *sha != manifest.artifact.sha256);
        if manifest.version == running.version && other_artifact {
            return Err(ReleaseError::Replaced {
                version: manifest.version,
            });
        }
    }
    Ok((manifest, key_id))
}

/// A release directory published under a URL, fetched into the download cache under
/// `cache_root` within `limits` (but for their size: each file has its own).
pub struct Remote<'a> {
    pub cache_root: &'a Path,
    pub base: &'a str,
    pub limits: &'a crate::ops::download::Limits<'a>,
}

impl Remote<'_> {
    /// Fetches `name`; a body over `max_bytes` is the release's fault (`oversize`), and so is
    /// an artifact that is not one (`mismatch`), not the network's.
    fn get(
        &self,
        name: &str,
        what: &'static str,
        expect: crate::ops::download::Expect,
        max_bytes: u64,
    ) -> anyhow::Result<crate::ops::download::Fetched> {
        use crate::ops::download::DownloadError;
        let limits = crate::ops::download::Limits {
            max_bytes,
            ..*self.limits
        };
        let url = format!("{}/{name}", self.base.trim_end_matches('/'));
        match crate::ops::download::fetch(self.cache_root, &url, None, expect, &limits) {
            Err(DownloadError::TooLarge { .. }) => Err(ReleaseError::TooLarge {
                url,
                what,
                limit: max_bytes,
            }
            .into()),
            Err(DownloadError::NotData { why, .. }) => Err(ReleaseError::Mismatch {
                path: PathBuf::from(url),
                why,
            }
            .into()),
            Err(DownloadError::Status { status: 404, .. }) if name == SIGNATURE => {
                Err(ReleaseError::NoSignature {
                    path: PathBuf::from(url),
                }
                .into())
            }
            other => Ok(other?),
        }
    }

    /// The manifest and its signature, each within its size limit, verified against
    /// `required`: the manifest and the id of the key that signed it.
    pub fn manifest(&self, required: &Requirements<'_>) -> anyhow::Result<(Manifest, String)> {
        use crate::ops::download::Expect;
        let manifest = self.get(MANIFEST, "manifest", Expect::Any, MAX_MANIFEST_BYTES)?;
        let signature = self.get(SIGNATURE, "signature", Expect::Any, MAX_SIGNATURE_BYTES)?;
        let manifest_bytes = read_limited(manifest.path(), MAX_MANIFEST_BYTES, "manifest")?;
        let signature_bytes = read_limited(signature.path(), MAX_SIGNATURE_BYTES, "signature")?;
        Ok(verify_manifest(
            &manifest_bytes,
            &signature_bytes,
            signature.path(),
            required,
        )?)
    }

    /// The artifact `manifest` pins, no larger than it says, then checked against it.
    pub fn artifact(&self, manifest: &Manifest) -> anyhow::Result<(PathBuf, Artifact)> {
        use crate::ops::download::Expect;
        let fetched = self.get(
            &manifest.artifact.file,
            "artifact",
            Expect::Artifact,
            manifest.artifact.size,
        )?;
        let path = fetched.path().to_owned();
        let parsed = check_artifact(&path, &manifest.artifact)?;
        Ok((path, parsed))
    }
}

/// The release last applied to an interface, kept beside its known-good copies
/// (`<lib-dir>/IF/release.json`): below its version, releases are refused. `Ok(None)`: none
/// was; a record that cannot be read is an error, never taken for "none".
pub fn applied(known_good_dir: &Path) -> Result<Option<Manifest>, ReleaseError> {
    let path = known_good_dir.join(MANIFEST);
    let bad = |why: String| ReleaseError::BadRecord {
        path: path.clone(),
        why,
    };
    let bytes = match read_limited(&path, MAX_MANIFEST_BYTES, "release record") {
        Err(ReleaseError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(None)
        }
        Err(e) => return Err(bad(e.to_string())),
        Ok(bytes) => bytes,
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| bad(e.to_string()))
}

/// Records `manifest` as the release applied to the interface whose known-good copies live in
/// `known_good_dir`.
pub fn record_applied(known_good_dir: &Path, manifest: &Manifest) -> anyhow::Result<()> {
    fs::create_dir_all(known_good_dir)?;
    sys::fs::write_atomic(
        &known_good_dir.join(MANIFEST),
        &serde_json::to_vec_pretty(manifest)?,
    )?;
    Ok(())
}

/// What a release means for one node.
pub enum ForNode {
    /// The node is in the stage in force: apply it ([`Apply::target`] for an attached
    /// filter, [`Apply::artifact_path`] and [`Apply::policy`] for an attach), then record
    /// `manifest`.
    Apply(Box<Apply>),
    /// The stage in force leaves this node out: it keeps what it runs.
    NotInStage { manifest: Manifest },
}

/// A verified release this node applies.
pub struct Apply {
    pub manifest: Manifest,
    pub key_id: String,
    pub artifact_path: PathBuf,
    /// The release's own policy; a dry run in a `dry:` stage.
    pub policy: crate::model::policy::Policy,
    data: crate::ops::data_spec::LoadedData,
}

impl Apply {
    /// The update that switches an attached filter to this release.
    #[must_use]
    pub fn target(self) -> crate::ops::update::Target {
        crate::ops::update::Target::Update {
            data: Some(Box::new(self.data)),
            policy: crate::ops::policy_spec::PolicyChange::Replace(self.policy),
        }
    }
}

/// A release channel as one node follows it.
#[derive(Clone, Copy)]
pub struct Follow<'a> {
    /// The release directory's URL.
    pub url: &'a str,
    pub keys: &'a [TrustedKey],
    pub channel: &'a str,
    /// This node's name, which places it in each release's rollout.
    pub node: &'a str,
}

/// Fetches (within `limits`) and verifies the release of `channel` at `url` for the node named
/// `node`, whose interfaces `ifaces` must not run a newer release of it (each interface's is
/// recorded by [`record_applied`]).
pub fn for_node(
    layout: &crate::state::Layout,
    follow: &Follow<'_>,
    ifaces: &[crate::model::iface::IfaceName],
    now: u64,
    limits: &crate::ops::download::Limits<'_>,
) -> anyhow::Result<ForNode> {
    let Follow {
        url,
        keys,
        channel,
        node,
    } = *follow;
    use anyhow::Context as _;

    use crate::ops::data_spec::LoadedData;
    check_node_name(node).map_err(anyhow::Error::msg)?;
    // The highest release of this channel any of these interfaces runs: nothing older is
    // applied to any. A release of another channel (the node was moved on purpose) is no bar.
    let mut running: Option<Manifest> = None;
    for iface in ifaces {
        if let Some(m) = applied(&layout.lib_dir.join(iface))? {
            if m.channel == channel && running.as_ref().is_none_or(|r| m.version > r.version) {
                running = Some(m);
            }
        }
    }
    let cache_root = layout.download_dir();
    let remote = Remote {
        cache_root: &cache_root,
        base: url,
        limits,
    };
    let (manifest, key_id) = remote.manifest(&Requirements {
        keys,
        now,
        channel: Some(channel),
        running: running.as_ref().map(Running::from),
    })?;
    // A node outside the stage fetches no artifact: a 1% stage costs the other 99% two
    // small files.
    if !in_stage(&manifest, node) {
        return Ok(ForNode::NotInStage { manifest });
    }
    let (artifact_path, artifact) = remote.artifact(&manifest)?;
    let mut policy = artifact
        .header
        .policy
        .clone()
        .context("the release's artifact carries no policy")?;
    // A dry-run stage: the new policy counted as would-drop, nothing refused yet.
    policy.dry_run |= manifest.rollout.current().dry_run;
    let data = LoadedData {
        regions: artifact.regions,
        artifact: Some((artifact_path.clone(), artifact.header)),
    };
    Ok(ForNode::Apply(Box::new(Apply {
        manifest,
        key_id,
        artifact_path,
        policy,
        data,
    })))
}

/// The node's position (0-999) in the rollout of `manifest`'s artifact.
#[must_use]
pub fn position(manifest: &Manifest, node: &str) -> u16 {
    cohort(node, &manifest.channel, &manifest.artifact.sha256)
}

/// Whether the node named `node` takes part in the stage `manifest` has in force.
#[must_use]
pub fn in_stage(manifest: &Manifest, node: &str) -> bool {
    position(manifest, node) < manifest.rollout.current().per_mille
}

/// The id of the configured key whose signature over `manifest` verifies.
fn check_signature(
    manifest: &[u8],
    signature: &[u8],
    signature_path: &Path,
    keys: &[TrustedKey],
) -> Result<String, ReleaseError> {
    let bad_file = |why: String| ReleaseError::BadSignatureFile {
        path: signature_path.to_owned(),
        why,
    };
    let text = std::str::from_utf8(signature).map_err(|_| bad_file("not text".to_owned()))?;
    let signature =
        minisign::SignatureBox::from_string(text).map_err(|e| bad_file(e.to_string()))?;
    let signed_by = key_id(signature.keynum());
    let Some(key) = keys.iter().find(|k| k.id == signed_by) else {
        return Err(ReleaseError::WrongKey {
            key_id: signed_by,
            configured: keys
                .iter()
                .map(|k| k.id.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        });
    };
    // Legacy (not prehashed) signatures are refused: minisign has written prehashed ones
    // since 0.8. Said as such, so it is not taken for tampering.
    if !signature.is_prehashed() {
        return Err(bad_file(
            "a legacy (not prehashed) signature: sign with minisign 0.8 or later, without -l"
                .to_owned(),
        ));
    }
    minisign::verify(
        &key.key,
        &signature,
        Cursor::new(manifest),
        true,
        false,
        false,
    )
    .map_err(|_| ReleaseError::BadSignature { key_id: signed_by })?;
    Ok(key.id.clone())
}

fn parse_manifest(bytes: &[u8]) -> Result<Manifest, ReleaseError> {
    let bad = |why: String| ReleaseError::BadManifest { why };
    let manifest: Manifest = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
    if manifest.format != FORMAT {
        return Err(bad(format!(
            "format {} (this build reads format {FORMAT})",
            manifest.format
        )));
    }
    check_file_name(&manifest.artifact.file).map_err(bad)?;
    check_channel(&manifest.channel).map_err(bad)?;
    manifest.rollout.check().map_err(bad)?;
    if manifest.expires <= manifest.created {
        return Err(bad("it expires before it was created".to_owned()));
    }
    if manifest.expires - manifest.created > MAX_VALIDITY {
        return Err(bad("it is valid for more than 366 days".to_owned()));
    }
    if manifest.created > MAX_CREATED {
        return Err(bad("it was created after the year 9998".to_owned()));
    }
    if !(1..=MAX_VERSION).contains(&manifest.version) {
        return Err(bad(format!(
            "version {} (versions run from 1 to {MAX_VERSION})",
            manifest.version
        )));
    }
    if manifest.artifact.size > MAX_ARTIFACT_BYTES {
        return Err(bad(format!(
            "it names an artifact of {} bytes, more than {MAX_ARTIFACT_BYTES}",
            manifest.artifact.size
        )));
    }
    Ok(manifest)
}

/// Reads the artifact only if its size is the manifest's, then checks hash and contents.
fn check_artifact(path: &Path, pinned: &ArtifactRef) -> Result<Artifact, ReleaseError> {
    let mismatch = |why: String| ReleaseError::Mismatch {
        path: path.to_owned(),
        why,
    };
    let size = fs::metadata(path)
        .map_err(|source| ReleaseError::Io {
            path: path.to_owned(),
            source,
        })?
        .len();
    if size != pinned.size {
        return Err(mismatch(format!(
            "it is {size} bytes, the manifest says {}",
            pinned.size
        )));
    }
    let bytes = read_limited(path, pinned.size, "artifact")?;
    let sha256 = hex::encode(Sha256::digest(&bytes));
    if sha256 != pinned.sha256 {
        return Err(mismatch(format!(
            "its SHA-256 is {sha256}, the manifest says {}",
            pinned.sha256
        )));
    }
    let artifact =
        Artifact::from_bytes(path, &bytes).map_err(|e| ReleaseError::BadArtifact(e.to_string()))?;
    if artifact.header.content_hash != pinned.content_hash {
        return Err(mismatch(format!(
            "its content hash is {}, the manifest says {}",
            artifact.header.content_hash, pinned.content_hash
        )));
    }
    Ok(artifact)
}

/// Reads `path` if it is at most `limit` bytes (checked before reading and while reading).
pub fn read_limited(path: &Path, limit: u64, what: &'static str) -> Result<Vec<u8>, ReleaseError> {
    use std::io::Read as _;
    let io = |source| ReleaseError::Io {
        path: path.to_owned(),
        source,
    };
    let file = fs::File::open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if meta.is_dir() {
        return Err(io(std::io::Error::other(format!(
            "it is a directory, not a {what}"
        ))));
    }
    let size = meta.len();
    let oversize = |size| ReleaseError::Oversize {
        path: path.to_owned(),
        what,
        size,
        limit,
    };
    if size > limit {
        return Err(oversize(size));
    }
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > limit {
        return Err(oversize(bytes.len() as u64));
    }
    Ok(bytes)
}

/// A channel name: what a node's configuration names, so plain.
pub fn check_channel(channel: &str) -> Result<(), String> {
    if plain(channel, 64) && !channel.starts_with('.') {
        Ok(())
    } else {
        Err(format!(
            "channel {channel:?}: use letters, digits, '-', '_' and '.', at most 64, not starting with '.'"
        ))
    }
}

/// 1 to `max` letters, digits, `-`, `_` and `.`: the names a release carries or a node has.
fn plain(text: &str, max: usize) -> bool {
    !text.is_empty()
        && text.len() <= max
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// A node's name as a fleet names it (a Kubernetes node name is a DNS subdomain).
pub fn check_node_name(node: &str) -> Result<(), String> {
    if plain(node, 253) {
        Ok(())
    } else {
        Err(format!(
            "node name {node:?}: use letters, digits, '-', '_' and '.', at most 253"
        ))
    }
}

/// The artifact's name: one plain path component, so a manifest can never name a file
/// outside its release directory.
fn check_file_name(name: &str) -> Result<(), String> {
    if plain(name, 255) && !name.starts_with('.') {
        Ok(())
    } else {
        Err(format!(
            "artifact file {name:?}: give a plain file name (letters, digits, '-', '_', '.')"
        ))
    }
}

/// An unencrypted secret key. `minisign -G -W` (0.11) writes such a key with a zero checksum,
/// which the crate's own check calls corrupted; the key itself is sound, so it is taken as it
/// is when it is not encrypted. `publish` verifies what it signed before it returns.
fn open_unencrypted(key_box: minisign::SecretKeyBox) -> minisign::Result<minisign::SecretKey> {
    let text = key_box.to_string();
    match key_box.into_unencrypted_secret_key() {
        Ok(key) => Ok(key),
        Err(e) => {
            let Some(base64) = text.lines().nth(1) else {
                return Err(e);
            };
            use base64::Engine as _;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(base64.trim())
                .map_err(|_| e)?;
            let key = minisign::SecretKey::from_bytes(&bytes)?;
            if key.is_encrypted() {
                return Err(minisign::PError::new(
                    minisign::ErrorKind::EncryptedKey,
                    "the key is encrypted",
                ));
            }
            Ok(key)
        }
    }
}

/// What `release` publishes.
pub struct NewRelease<'a> {
    pub artifact: &'a Path,
    pub out: &'a Path,
    pub channel: &'a str,
    pub version: u64,
    pub now: u64,
    /// Seconds the manifest stays valid.
    pub valid_for: u64,
    pub rollout: Rollout,
    pub secret_key: &'a Path,
    /// For a key `minisign -G` encrypted; `None` for one made with `-W`.
    pub password: Option<String>,
}

/// The manifest a release directory holds now, if any; one that cannot be read is an error
/// (publishing over it could lower the version unnoticed).
fn published(out: &Path) -> anyhow::Result<Option<Manifest>> {
    use anyhow::Context as _;
    let path = out.join(MANIFEST);
    match fs::symlink_metadata(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        Ok(meta) if !meta.is_file() => {
            anyhow::bail!(
                "{} exists and is not a regular file: nothing written",
                path.display()
            )
        }
        Ok(_) => {}
    }
    let bytes = read_limited(&path, MAX_MANIFEST_BYTES, "manifest")?;
    let manifest = serde_json::from_slice(&bytes).with_context(|| {
        format!(
            "{} is not a release manifest: publish into an empty directory or a release directory",
            path.display()
        )
    })?;
    Ok(Some(manifest))
}

/// Writes a file a web server serves: atomically, readable by all (mode 0644).
fn write_served(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    sys::fs::write_atomic(path, bytes)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o644))?;
    Ok(())
}

/// Builds and signs a release into `out` (created if missing): the artifact is copied in under
/// `release-<channel>-<version>.rgnf`, then the manifest and its signature are written, the
/// signature last. Checked with `verify` before it returns; on any error `out` keeps whatever
/// release it held before, whole.
pub fn publish(new: &NewRelease<'_>) -> anyhow::Result<Manifest> {
    use anyhow::Context as _;
    check_channel(new.channel).map_err(anyhow::Error::msg)?;
    new.rollout.check().map_err(anyhow::Error::msg)?;
    if new.valid_for == 0 || new.valid_for > MAX_VALIDITY {
        anyhow::bail!(
            "the manifest must stay valid for up to 366 days: give --expires-in, e.g. 7d"
        );
    }
    if !(1..=MAX_VERSION).contains(&new.version) {
        anyhow::bail!("--version {}: give 1 to {MAX_VERSION}", new.version);
    }
    // What the directory holds already: a version is published once, and only goes up.
    let previous = published(new.out)?;
    let bytes = read_limited(new.artifact, MAX_ARTIFACT_BYTES, "artifact")?;
    let artifact = Artifact::from_bytes(new.artifact, &bytes).with_context(|| {
        format!(
            "{} is not an artifact (`regionfilter compile` writes one)",
            new.artifact.display()
        )
    })?;
    if artifact.header.policy.is_none() {
        anyhow::bail!(
            "{} carries no policy, and nodes apply a release's own policy: compile it with \
             --allow, --deny or --policy",
            new.artifact.display()
        );
    }
    let sha256 = hex::encode(Sha256::digest(&bytes));
    if let Some(previous) = &previous {
        let same_channel = previous.channel == new.channel;
        if same_channel && new.version < previous.version {
            anyhow::bail!(
                "{} holds {} {}: versions only go up (nodes refuse a lower one); to roll back, \
                 publish the old artifact as version {} or higher",
                new.out.display(),
                previous.channel,
                previous.version,
                previous.version + 1
            );
        }
        if same_channel && new.version == previous.version && previous.artifact.sha256 != sha256 {
            anyhow::bail!(
                "{} holds {} {} with another artifact: a version is published once; publish \
                 this one as version {}",
                new.out.display(),
                previous.channel,
                previous.version,
                previous.version + 1
            );
        }
        if !same_channel {
            anyhow::bail!(
                "{} holds channel {:?}: publish each channel into a directory of its own",
                new.out.display(),
                previous.channel
            );
        }
    }
    let key_box = read_limited(new.secret_key, MAX_SIGNATURE_BYTES, "secret key")
        .with_context(|| format!("cannot read the secret key {}", new.secret_key.display()))?;
    let key_box = String::from_utf8(key_box)
        .with_context(|| format!("{} is not a minisign secret key", new.secret_key.display()))?;
    if key_box
        .lines()
        .next()
        .is_some_and(|l| l.contains("public key"))
    {
        anyhow::bail!(
            "{} is a public key: give the secret key (the file `minisign -G -s` wrote)",
            new.secret_key.display()
        );
    }
    let key_box = minisign::SecretKeyBox::from_string(&key_box).map_err(|e| {
        anyhow::anyhow!(
            "{} is not a minisign secret key: {e}",
            new.secret_key.display()
        )
    })?;
    let secret = match &new.password {
        Some(password) => key_box.into_secret_key(Some(password.clone())),
        None => open_unencrypted(key_box),
    }
    .map_err(|e| {
        let hint = if new.password.is_none() && e.to_string().contains("ncrypted") {
            " (an encrypted key needs --password-file)"
        } else {
            ""
        };
        anyhow::anyhow!(
            "cannot open the secret key {}: {e}{hint}",
            new.secret_key.display()
        )
    })?;
    let file = format!("release-{}-{}.rgnf", new.channel, new.version);
    let manifest = Manifest {
        format: FORMAT,
        channel: new.channel.to_owned(),
        version: new.version,
        created: new.now,
        expires: new.now + new.valid_for,
        artifact: ArtifactRef {
            file: file.clone(),
            sha256,
            size: bytes.len() as u64,
            content_hash: artifact.header.content_hash.clone(),
        },
        rollout: new.rollout.clone(),
    };
    let manifest_bytes = serde_json::to_vec_pretty(&manifest)?;
    let trusted = format!(
        "regionfilter release {} {} of {}",
        manifest.channel,
        manifest.version,
        sys::time::date(manifest.created)
    );
    let signature = minisign::sign(
        None,
        &secret,
        Cursor::new(&manifest_bytes),
        Some(&trusted),
        Some("signature from a regionfilter release key"),
    )
    .map_err(|e| anyhow::anyhow!("cannot sign: {e}"))?;
    let public = minisign::PublicKey::from_secret_key(&secret)
        .map_err(|e| anyhow::anyhow!("cannot derive the public key: {e}"))?;
    // Everything is built before the directory is touched.
    fs::create_dir_all(new.out).with_context(|| format!("cannot create {}", new.out.display()))?;
    let old_manifest = fs::read(new.out.join(MANIFEST)).ok();
    write_served(&new.out.join(&file), &bytes)?;
    write_served(&new.out.join(MANIFEST), &manifest_bytes)?;
    if let Err(e) = write_served(&new.out.join(SIGNATURE), signature.to_string().as_bytes()) {
        // The old signature is still there: put its manifest back, so the pair verifies.
        if let Some(old) = old_manifest {
            let _ = write_served(&new.out.join(MANIFEST), &old);
        }
        return Err(e);
    }
    verify(
        new.out,
        &Requirements {
            keys: &[TrustedKey::new(public)],
            now: new.now,
            channel: Some(new.channel),
            running: None,
        },
    )
    .context("the release just written does not verify")?;
    // Artifacts of older versions of this channel stay: a node mid-download still finds its file.
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn stages_parse_and_plans_must_grow_to_100_percent_enforcing() {
        let plan: Vec<Stage> = ["dry:1%", "1%", "10%", "50%", "100%"]
            .iter()
            .map(|s| Stage::parse(s).unwrap())
            .collect();
        assert_eq!(
            plan[0],
            Stage {
                per_mille: 10,
                dry_run: true
            }
        );
        assert_eq!(plan[0].to_string(), "dry:1%");
        assert_eq!(Stage::parse("0.5%").unwrap().per_mille, 5);
        let rollout = Rollout {
            plan: plan.clone(),
            stage: 4,
        };
        rollout.check().unwrap();
        for bad in ["10", "0%", "101%", "x%", "dry:"] {
            assert!(Stage::parse(bad).is_err(), "{bad}");
        }
        let shrinks = Rollout {
            plan: vec![plan[2], plan[1], plan[4]],
            stage: 0,
        };
        assert!(shrinks.check().unwrap_err().contains("must grow"));
        let unfinished = Rollout {
            plan: vec![plan[1], plan[2]],
            stage: 0,
        };
        assert!(unfinished.check().unwrap_err().contains("end at 100%"));
        let beyond = Rollout { plan, stage: 5 };
        assert!(beyond.check().unwrap_err().contains("stage 5"));
    }

    #[test]
    fn a_stage_takes_the_same_nodes_first_and_only_grows() {
        let nodes: Vec<String> = (0..2000).map(|i| format!("edge-{i}")).collect();
        let in_stage = |per_mille: u16, artifact: &str| -> BTreeSet<&str> {
            nodes
                .iter()
                .filter(|n| cohort(n, "stable", artifact) < per_mille)
                .map(String::as_str)
                .collect()
        };
        let (one, ten, half) = (in_stage(10, "a1"), in_stage(100, "a1"), in_stage(500, "a1"));
        assert!(one.is_subset(&ten) && ten.is_subset(&half));
        // Roughly the share asked for (2000 nodes: 10% is about 200).
        assert!((150..250).contains(&ten.len()), "{}", ten.len());
        // Stable for an artifact (advancing a stage publishes a new version of the same one),
        // and another artifact picks other nodes first.
        assert_eq!(in_stage(100, "a1"), ten);
        assert_ne!(in_stage(100, "b2"), ten);
    }

    #[test]
    fn names_in_a_manifest_are_plain() {
        for bad in ["", "../x", "a/b", ".hidden", "x y"] {
            assert!(check_file_name(bad).is_err(), "{bad:?}");
        }
        check_file_name("release-stable-3.rgnf").unwrap();
        assert!(check_channel("stable/../x").is_err());
        check_channel("canary-eu").unwrap();
    }

    /// A scratch directory with an artifact, a release key and the published release.
    struct Scratch {
        dir: tempfile::TempDir,
        key: TrustedKey,
        now: u64,
    }

    const NOW: u64 = 1_800_000_000;
    const DAY: u64 = 86_400;

    fn artifact(dir: &Path, name: &str, country: &str) -> PathBuf {
        use crate::model::{country::Country, policy::Mode};
        let policy = crate::model::policy::Policy::new(
            Mode::Deny,
            [Country::parse(country).unwrap()].into_iter().collect(),
        );
        let path = dir.join(name);
        Artifact::new(crate::compile::RegionSet::default(), Some(policy), NOW)
            .write(&path)
            .unwrap();
        path
    }

    fn key_file(dir: &Path, name: &str) -> (PathBuf, TrustedKey) {
        let pair = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
        let path = dir.join(name);
        fs::write(&path, pair.sk.to_box(None).unwrap().into_string()).unwrap();
        (path, TrustedKey::new(pair.pk))
    }

    /// A release of `artifact` into `out` signed with `secret`: stable, version 1, all nodes
    /// at once, made at `NOW` and valid a week, the key without a password.
    fn new_release<'a>(artifact: &'a Path, out: &'a Path, secret: &'a Path) -> NewRelease<'a> {
        NewRelease {
            artifact,
            out,
            channel: "stable",
            version: 1,
            now: NOW,
            valid_for: 7 * DAY,
            rollout: Rollout {
                plan: vec![Stage::parse("100%").unwrap()],
                stage: 0,
            },
            secret_key: secret,
            password: None,
        }
    }

    fn publish_to(out: &Path, artifact: &Path, secret: &Path, version: u64) -> Manifest {
        publish(&NewRelease {
            version,
            ..new_release(artifact, out, secret)
        })
        .unwrap()
    }

    impl Scratch {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let source = artifact(dir.path(), "gb.rgnf", "GB");
            let (secret, key) = key_file(dir.path(), "release.key");
            publish_to(&dir.path().join("out"), &source, &secret, 5);
            Self {
                dir,
                key,
                now: NOW + 60,
            }
        }

        fn out(&self) -> PathBuf {
            self.dir.path().join("out")
        }

        fn verify(&self, running: Option<u64>) -> Result<Verified, ReleaseError> {
            verify(
                &self.out(),
                &Requirements {
                    keys: std::slice::from_ref(&self.key),
                    now: self.now,
                    channel: Some("stable"),
                    running: running.map(|version| Running {
                        version,
                        artifact_sha256: None,
                    }),
                },
            )
        }
    }

    #[test]
    fn a_published_release_verifies_and_names_its_key() {
        let s = Scratch::new();
        let verified = s.verify(Some(5)).unwrap();
        assert_eq!(verified.manifest.version, 5);
        assert_eq!(verified.key_id, s.key.id());
        assert_eq!(verified.manifest.artifact.file, "release-stable-5.rgnf");
        assert_eq!(
            verified.artifact.header.content_hash,
            verified.manifest.artifact.content_hash
        );
    }

    #[test]
    fn every_attack_is_refused_by_its_reason() {
        // A changed manifest (a higher version, to slip past rollback protection).
        let s = Scratch::new();
        let path = s.out().join(MANIFEST);
        let text = fs::read_to_string(&path).unwrap();
        fs::write(&path, text.replace("\"version\": 5", "\"version\": 6")).unwrap();
        assert_eq!(s.verify(None).unwrap_err().reason(), "bad_signature");

        // No signature, and a signature that is not one.
        let s = Scratch::new();
        fs::remove_file(s.out().join(SIGNATURE)).unwrap();
        assert_eq!(s.verify(None).unwrap_err().reason(), "no_signature");
        fs::write(s.out().join(SIGNATURE), "hello\n").unwrap();
        assert_eq!(s.verify(None).unwrap_err().reason(), "bad_signature");

        // Signed by a key the node does not trust.
        let s = Scratch::new();
        let (other, _) = key_file(s.dir.path(), "other.key");
        let source = artifact(s.dir.path(), "gb2.rgnf", "GB");
        publish_to(&s.out(), &source, &other, 6);
        let err = s.verify(None).unwrap_err();
        assert_eq!(err.reason(), "wrong_key", "{err}");

        // Mix and match: this release's manifest with another release's artifact.
        let s = Scratch::new();
        let jp = artifact(s.dir.path(), "jp.rgnf", "JP");
        fs::copy(&jp, s.out().join("release-stable-5.rgnf")).unwrap();
        let err = s.verify(None).unwrap_err();
        assert_eq!(err.reason(), "mismatch", "{err}");

        // Rollback: an older version than the one running; the same one is fine.
        let s = Scratch::new();
        assert_eq!(s.verify(Some(6)).unwrap_err().reason(), "rollback");
        s.verify(Some(5)).unwrap();

        // Expired: a mirror still serving last week's manifest.
        let mut s = Scratch::new();
        s.now = NOW + 8 * DAY;
        let err = s.verify(None).unwrap_err();
        assert_eq!(err.reason(), "expired", "{err}");

        // Oversize: refused before a byte is parsed.
        let s = Scratch::new();
        fs::write(s.out().join(MANIFEST), vec![b' '; 70_000]).unwrap();
        let err = s.verify(None).unwrap_err();
        assert_eq!(err.reason(), "oversize", "{err}");
    }

    #[test]
    fn any_configured_key_verifies_so_keys_can_rotate() {
        let s = Scratch::new();
        let (_, old) = key_file(s.dir.path(), "old.key");
        let keys = [
            old,
            TrustedKey::new(minisign::PublicKey::from_base64(&s.key.key.to_base64()).unwrap()),
        ];
        verify(
            &s.out(),
            &Requirements {
                keys: &keys,
                now: s.now,
                channel: None,
                running: None,
            },
        )
        .unwrap();
    }

    #[test]
    fn another_channel_and_another_artifact_under_the_same_version_are_refused() {
        let s = Scratch::new();
        let stable = s.verify(None).unwrap().manifest;
        // A canary release served where the node follows stable.
        let canary_out = s.dir.path().join("canary");
        let source = artifact(s.dir.path(), "c.rgnf", "GB");
        let (secret, _) = key_file(s.dir.path(), "k3.key");
        let canary = publish(&NewRelease {
            channel: "canary",
            version: 50,
            ..new_release(&source, &canary_out, &secret)
        })
        .unwrap();
        assert_eq!(canary.channel, "canary");
        let requirements = |running: Option<Running>| Requirements {
            keys: std::slice::from_ref(&s.key),
            now: NOW,
            channel: Some("stable"),
            running,
        };
        let manifest = fs::read(s.out().join(MANIFEST)).unwrap();
        let signature = fs::read(s.out().join(SIGNATURE)).unwrap();
        let check = |running: Option<Running>| {
            verify_manifest(
                &manifest,
                &signature,
                Path::new("sig"),
                &requirements(running),
            )
        };
        // The same version with the artifact the node runs is fine (a re-signed manifest);
        // with another artifact, refused.
        check(Some(Running::from(&stable))).unwrap();
        let other = Running {
            version: stable.version,
            artifact_sha256: Some("00".repeat(32)),
        };
        assert_eq!(check(Some(other)).unwrap_err().reason(), "rollback");
        let wrong_channel = Requirements {
            channel: Some("canary"),
            ..requirements(None)
        };
        let err = verify_manifest(&manifest, &signature, Path::new("sig"), &wrong_channel);
        assert_eq!(err.unwrap_err().reason(), "wrong_channel");
    }

    #[test]
    fn a_manifest_out_of_bounds_is_refused_before_it_is_believed() {
        let s = Scratch::new();
        let good: serde_json::Value =
            serde_json::from_slice(&fs::read(s.out().join(MANIFEST)).unwrap()).unwrap();
        for (key, value, why) in [
            ("expires", serde_json::json!(u64::MAX), "more than 366 days"),
            ("version", serde_json::json!(0), "versions run from 1"),
            (
                "version",
                serde_json::json!(u64::MAX),
                "versions run from 1",
            ),
        ] {
            let mut m = good.clone();
            m[key] = value;
            let err = parse_manifest(&serde_json::to_vec(&m).unwrap()).unwrap_err();
            assert!(err.to_string().contains(why), "{key}: {err}");
        }
        // Dates past the year 9999 print as numbers, never panic.
        assert_eq!(
            sys::time::date(u64::MAX),
            format!("{} (Unix time)", u64::MAX)
        );
    }

    #[test]
    fn publishing_never_lowers_reuses_or_mixes_what_the_directory_holds() {
        let s = Scratch::new();
        let (secret, _) = key_file(s.dir.path(), "k4.key");
        let source = artifact(s.dir.path(), "other.rgnf", "JP");
        let out = s.out();
        let attempt = |channel: &'static str, version: u64| {
            let err = publish(&NewRelease {
                channel,
                version,
                ..new_release(&source, &out, &secret)
            })
            .unwrap_err();
            format!("{err:#}")
        };
        assert!(attempt("stable", 4).contains("versions only go up"));
        assert!(attempt("stable", 5).contains("a version is published once"));
        assert!(attempt("canary", 9).contains("a directory of its own"));
        assert!(attempt("stable", MAX_VERSION + 1).contains("give 1 to"));
        // An artifact without a policy: every node would refuse it.
        let bare = s.dir.path().join("bare.rgnf");
        Artifact::new(crate::compile::RegionSet::default(), None, NOW)
            .write(&bare)
            .unwrap();
        let err = publish(&NewRelease {
            version: 6,
            ..new_release(&bare, &out, &secret)
        })
        .unwrap_err();
        assert!(format!("{err:#}").contains("carries no policy"), "{err:#}");
        s.verify(Some(5)).unwrap();
        // What is published is readable by the web server.
        use std::os::unix::fs::PermissionsExt as _;
        for name in [MANIFEST, SIGNATURE, "release-stable-5.rgnf"] {
            let mode = fs::metadata(out.join(name)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o644, "{name}");
        }
    }

    #[test]
    fn an_unreadable_release_record_is_an_error_not_no_release() {
        let dir = tempfile::tempdir().unwrap();
        assert!(applied(dir.path()).unwrap().is_none());
        fs::write(dir.path().join(MANIFEST), "{\"version\": 1").unwrap();
        let err = applied(dir.path()).unwrap_err();
        assert_eq!(err.reason(), "unreadable", "{err}");
    }

    #[test]
    fn a_failed_publish_leaves_the_published_release_whole() {
        let s = Scratch::new();
        let before = fs::read(s.out().join(MANIFEST)).unwrap();
        // Not an artifact.
        let junk = s.dir.path().join("junk.rgnf");
        fs::write(&junk, b"not an artifact").unwrap();
        let (secret, _) = key_file(s.dir.path(), "k2.key");
        let out = s.out();
        let err = publish(&NewRelease {
            version: 6,
            ..new_release(&junk, &out, &secret)
        })
        .unwrap_err();
        assert!(format!("{err:#}").contains("is not an artifact"), "{err:#}");
        assert_eq!(fs::read(s.out().join(MANIFEST)).unwrap(), before);
        s.verify(Some(5)).unwrap();
    }

    #[test]
    fn an_encrypted_key_opens_with_its_password_and_says_so_without() {
        let dir = tempfile::tempdir().unwrap();
        let source = artifact(dir.path(), "gb.rgnf", "GB");
        let pair =
            minisign::KeyPair::generate_encrypted_keypair(Some("s3cret".to_owned())).unwrap();
        let secret = dir.path().join("enc.key");
        fs::write(&secret, pair.sk.to_box(None).unwrap().into_string()).unwrap();
        let out = dir.path().join("out");
        let new = |password: Option<String>| NewRelease {
            password,
            ..new_release(&source, &out, &secret)
        };
        let err = publish(&new(None)).unwrap_err();
        assert!(format!("{err:#}").contains("--password-file"), "{err:#}");
        publish(&new(Some("s3cret".to_owned()))).unwrap();
    }

    #[test]
    fn a_public_key_given_as_the_secret_key_is_named_as_such() {
        let dir = tempfile::tempdir().unwrap();
        let source = artifact(dir.path(), "gb.rgnf", "GB");
        let pair = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
        let public = dir.path().join("k.pub");
        fs::write(&public, pair.pk.to_box().unwrap().into_string()).unwrap();
        let out = dir.path().join("out");
        let err = publish(&new_release(&source, &out, &public)).unwrap_err();
        assert!(format!("{err:#}").contains("is a public key"), "{err:#}");
        assert!(!out.exists(), "a refused publish wrote something");
    }
}
