//! Fuzz target bodies: each hands arbitrary bytes to a parser the CLI uses and checks what comes
//! back.
//!
//! `fuzz/` (cargo-fuzz, `cargo xtask fuzz`) calls them with generated inputs, and
//! `tests/fuzz_corpus.rs` replays the committed corpus and every past crash through them, so
//! they run in every `cargo xtask test`. A parser must answer any input with a value or an
//! error; a panic here is a bug, and so is a value that breaks one of the checks below.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::{Path, PathBuf},
};

use crate::{
    compile::artifact::{self, Artifact, Header, MAGIC},
    compile::{self, RegionSet, Span},
    data::{self, CountryField, Format, SourceData, SourceSpec},
    model::policy::Policy,
    model::policy_file::PolicyFile,
    ops::download,
    ops::policy_spec::PolicySpec,
};

/// A target body: any bytes in, a panic only for a bug.
pub type Target = fn(&[u8]);

/// Every target by the name of its `fuzz/fuzz_targets/<name>.rs` and corpus directory.
pub const TARGETS: &[(&str, Target)] = &[
    ("csv", csv),
    ("cidr", cidr),
    ("rir", rir),
    ("policy_toml", policy_toml),
    ("artifact", artifact),
    ("mmdb", mmdb),
    ("url", url),
    ("checksum", checksum),
    ("frame", frame),
];

/// Frames, as the reference model parses and judges them (the model `explain` uses and the
/// differential test compares with the kernel): no panic, and a verdict consistent with its
/// slot, on Ethernet and raw-IP links, under a policy that uses every rule kind.
pub fn frame(bytes: &[u8]) {
    use crate::{
        compile::reference::Model,
        model::policy::{Mode, Tcp},
        model::scope::{parse_ports, Scope, Service},
    };
    static POLICY: std::sync::LazyLock<Policy> = std::sync::LazyLock::new(|| {
        let code = |c: &str| crate::model::country::Country::parse(c).expect("a country code");
        let mut p = Policy::new(Mode::Deny, [code("GB")].into());
        p.tcp = Tcp::Syn;
        p.dry_run = false;
        p.allow_cidrs = vec!["10.1.0.0/16".parse().expect("a CIDR")];
        p.scope = Scope::Services {
            services: vec![Service {
                name: "api".to_owned(),
                ports: parse_ports("tcp/443,udp/443").expect("ports"),
                mode: Mode::Allow,
                countries: [code("SE")].into(),
            }],
            other_judged: true,
        };
        p
    });
    let regions = crate::compile::RegionSet::default();
    let model = Model::new(&regions, &POLICY);
    for raw_ip in [false, true] {
        let decision = model.judge_frame(bytes, raw_ip);
        assert!(
            decision.slot < filter_common::COUNTER_SLOTS,
            "slot out of range"
        );
        assert_eq!(decision.action, decision.verdict, "no dry run here");
    }
}

/// CSV ranges, read as `--format csv` and as a file whose format is detected.
pub fn csv(bytes: &[u8]) {
    source(bytes, "fuzz.csv", Some(Format::Csv));
    source(bytes, "fuzz.csv", None);
}

/// CIDR lists, in a file whose name gives the country (bare CIDRs allowed) and in one whose
/// name does not (every line needs `CIDR CC`).
pub fn cidr(bytes: &[u8]) {
    source(bytes, "de.zone", Some(Format::Cidr));
    source(bytes, "list.txt", Some(Format::Cidr));
    source(bytes, "list.txt", None);
}

/// RIR delegated statistics.
pub fn rir(bytes: &[u8]) {
    source(bytes, "delegated-fuzz-extended", Some(Format::Rir));
    source(bytes, "delegated-fuzz-extended", None);
}

/// MaxMind-format databases, through the `maxminddb` reader and regionfilter's tree walk.
pub fn mmdb(bytes: &[u8]) {
    source(bytes, "fuzz.mmdb", Some(Format::Mmdb));
}

/// Policy files, parsed and combined into a policy exactly as `--policy FILE` is.
pub fn policy_toml(bytes: &[u8]) {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return; // `PolicyFile::read` refuses non-UTF-8 before parsing
    };
    let Ok(file) = PolicyFile::parse(text) else {
        return;
    };
    let Ok(policy) = PolicySpec::default().with_file(file) else {
        return;
    };
    check_policy(&policy);
}

/// Artifacts, as `--artifact FILE` reads them. The content hash turns away nearly every mutated
/// file before its spans are read, so each input is also tried re-sealed: its header's hash
/// recomputed over whatever spans and policy it carries, as a hostile writer would do.
pub fn artifact(bytes: &[u8]) {
    let path = Path::new("fuzz.rfa");
    if let Ok(read) = Artifact::from_bytes(path, bytes) {
        check_artifact(&read);
    }
    // Re-sealed (content hash and whole-file digest recomputed), reading the input's tail
    // either as spans or as spans plus an old digest, so mutations reach the span reader.
    for had_digest in [false, true] {
        if let Some(sealed) = reseal(bytes, had_digest) {
            if let Ok(read) = Artifact::from_bytes(path, &sealed) {
                check_artifact(&read);
            }
        }
    }
}

/// `update --url` URLs: the scheme check with license-key substitution, and the cache file name
/// taken from the URL's path.
pub fn url(bytes: &[u8]) {
    let Ok(url) = std::str::from_utf8(bytes) else {
        return;
    };
    if let Ok(real) = download::with_license_key(url) {
        // Accepted: https, or plain http to this host only, as the request's own parser sees it.
        let uri: ureq::http::Uri = real.parse().expect("an accepted URL parses");
        let scheme = uri.scheme_str().unwrap_or_default().to_ascii_lowercase();
        let host = uri.host().unwrap_or_default();
        assert!(
            scheme == "https" || (scheme == "http" && download::is_this_host(host)),
            "{url:?} accepted as {real:?}: plain http to {host:?}"
        );
    }
    // The name becomes a file in the download cache: it must stay one plain file name.
    let name = download::file_name(url);
    assert!(
        !name.is_empty()
            && !name.starts_with('.')
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_')),
        "{url:?} gives the unsafe cache file name {name:?}"
    );
}

/// `sha256sum`-style checksum files (`--sha256-url`).
pub fn checksum(bytes: &[u8]) {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return; // the download is read as UTF-8 text before parsing
    };
    if let Some(sum) = download::parse_checksum(text) {
        assert!(
            sum.len() == 64 && sum.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
            "{text:?} gives the checksum {sum:?}"
        );
    }
}

/// Reads `bytes` as a source file called `name`, then checks the ranges and what they compile to.
fn source(bytes: &[u8], name: &str, format: Option<Format>) {
    let spec = SourceSpec {
        path: PathBuf::from(name),
        format,
        country_field: CountryField::Country,
    };
    if let Ok(data) = data::load_bytes(&spec, bytes) {
        check_source(&data);
    }
}

fn check_source(data: &SourceData) {
    assert!(
        !data.v4.is_empty() || !data.v6.is_empty(),
        "an empty source was accepted"
    );
    for r in &data.v4 {
        assert!(r.start <= r.end, "IPv4 range {r:?} ends before it starts");
    }
    for r in &data.v6 {
        assert!(r.start <= r.end, "IPv6 range {r:?} ends before it starts");
    }
    let regions = compile::compile(vec![data.clone()], &[0]).expect("one source compiles");
    check_regions(&regions);
    // Later ranges may repaint earlier ones, but no address a source covers is lost.
    let v4 = data.v4.iter().flat_map(|r| [r.start, r.end]).map(ipv4);
    let v6 = data.v6.iter().flat_map(|r| [r.start, r.end]).map(ipv6);
    for addr in v4.chain(v6) {
        assert!(
            regions.country_of(addr).is_some(),
            "{addr} is in the source but in no country after compiling"
        );
    }
    // What `compile` would write, `attach --artifact` must read back unchanged.
    let compiled = Artifact::new(regions, None, 0);
    let read = Artifact::from_bytes(Path::new("compiled.rfa"), &compiled.to_bytes())
        .expect("a compiled artifact reads back");
    assert_eq!(read.header, compiled.header);
    assert_eq!(read.regions, compiled.regions);
}

/// A region set is sorted and disjoint, names only its own sources, and its kernel prefixes
/// answer every prefix's first and last address as the spans do.
fn check_regions(regions: &RegionSet) {
    fn ordered<A: Copy + Ord + std::fmt::Debug>(spans: &[Span<A>], sources: usize) {
        for s in spans {
            assert!(s.start <= s.end, "span {s:?} ends before it starts");
            assert!(
                usize::from(s.source) < sources,
                "span {s:?} names no source"
            );
        }
        for w in spans.windows(2) {
            assert!(w[0].end < w[1].start, "spans {w:?} overlap or are unsorted");
        }
    }
    ordered(&regions.v4, regions.sources.len());
    ordered(&regions.v6, regions.sources.len());
    let prefixes = regions.prefixes();
    let v4 = prefixes
        .v4
        .iter()
        .map(|(n, c)| ([n.network(), n.broadcast()].map(IpAddr::V4), c));
    let v6 = prefixes
        .v6
        .iter()
        .map(|(n, c)| ([n.network(), n.broadcast()].map(IpAddr::V6), c));
    for (ends, country) in v4.chain(v6) {
        for addr in ends {
            assert_eq!(
                regions.country_of(addr).as_ref(),
                Some(country),
                "the kernel prefix holding {addr} disagrees with the spans"
            );
        }
    }
}

/// What an artifact that reads back must satisfy: ordered spans, a content hash that its own
/// regions and policy reproduce, and an exact round trip through its file bytes.
fn check_artifact(read: &Artifact) {
    check_regions(&read.regions);
    assert_eq!(read.regions.sources, read.header.sources);
    let rebuilt = Artifact::new(
        read.regions.clone(),
        read.header.policy.clone(),
        read.header.created,
    );
    assert_eq!(
        rebuilt.header.content_hash, read.header.content_hash,
        "the regions and policy read do not reproduce the content hash"
    );
    let again = Artifact::from_bytes(Path::new("again.rfa"), &read.to_bytes())
        .expect("an artifact that was read reads again once written");
    assert_eq!(again.header, read.header);
    assert_eq!(again.regions, read.regions);
    if let Some(policy) = &read.header.policy {
        check_policy(policy);
    }
}

/// The artifact in `bytes` with its header's content hash and its file digest recomputed, if
/// its framing and header parse at all; `had_digest` drops the input's last 32 bytes first.
fn reseal(bytes: &[u8], had_digest: bool) -> Option<Vec<u8>> {
    let bytes = if had_digest {
        bytes.get(..bytes.len().checked_sub(32)?)?
    } else {
        bytes
    };
    let rest = bytes.strip_prefix(&MAGIC[..])?;
    let (version, rest) = rest.split_first_chunk::<4>()?;
    let (len, rest) = rest.split_first_chunk::<4>()?;
    let len = usize::try_from(u32::from_le_bytes(*len)).ok()?;
    if rest.len() < len {
        return None;
    }
    let (header, spans) = rest.split_at(len);
    let mut header: Header = serde_json::from_slice(header).ok()?;
    header.content_hash = artifact::content_hash(spans, header.policy.as_ref());
    let header = serde_json::to_vec(&header).ok()?;
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(version);
    out.extend_from_slice(&u32::try_from(header.len()).ok()?.to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(spans);
    let digest = <sha2::Sha256 as sha2::Digest>::digest(&out);
    out.extend_from_slice(&digest);
    Some(out)
}

/// A policy has at least one rule with countries (or only services), gives every kernel entry
/// of every row an action, keeps its scope valid, passes its always-pass CIDRs, and survives
/// the JSON round trip artifacts store it in.
fn check_policy(policy: &Policy) {
    let rules = policy.rules();
    assert!(!rules.is_empty(), "a policy without rules");
    assert!(
        rules.iter().all(|(_, _, countries)| !countries.is_empty()),
        "a rule without countries"
    );
    policy
        .scope
        .validate()
        .expect("a built policy has a valid scope");
    let rows = policy.rows();
    assert_eq!(rows.len(), filter_common::POLICY_ROWS as usize);
    assert!(rows
        .iter()
        .flatten()
        .all(|&a| a == filter_common::ACTION_PASS || a == filter_common::ACTION_DROP));
    let regions = crate::compile::RegionSet::default();
    let model = crate::compile::reference::Model::new(&regions, policy);
    for net in &policy.allow_cidrs {
        for addr in [net.network(), net.broadcast()] {
            assert!(
                matches!(
                    model.class(addr),
                    crate::compile::reference::Class::AllowCidr(_)
                ),
                "{addr} in {net}"
            );
        }
    }
    let json = serde_json::to_vec(policy).expect("policies serialise");
    let back: Policy = serde_json::from_slice(&json).expect("a serialised policy reads back");
    assert_eq!(&back, policy);
    let _ = policy.full_summary();
    let _ = crate::model::policy::canonical_bytes(Some(policy));
}

fn ipv4(a: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(a))
}

fn ipv6(a: u128) -> IpAddr {
    IpAddr::V6(Ipv6Addr::from(a))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(path: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fixtures")
            .join(path)
    }

    /// The in-memory entry point the targets use reads exactly what the CLI's file reader does.
    #[test]
    fn reading_from_memory_agrees_with_reading_the_file() {
        for (path, format) in [
            ("generated/ranges.csv", None),
            ("generated/gb.zone", None),
            ("generated/cidr-cc.txt", Some(Format::Cidr)),
            ("generated/delegated-test-extended.txt", None),
            ("generated/flat-country-code.mmdb", None),
            ("maxmind/GeoIP2-Country-Test.mmdb", Some(Format::Mmdb)),
        ] {
            let spec = SourceSpec {
                path: fixture(path),
                format,
                country_field: CountryField::Registered,
            };
            let from_file = data::load(&spec).unwrap();
            let bytes = std::fs::read(&spec.path).unwrap();
            let from_memory = data::load_bytes(&spec, &bytes).unwrap();
            assert_eq!(from_memory.v4, from_file.v4, "{path}");
            assert_eq!(from_memory.v6, from_file.v6, "{path}");
            assert_eq!(from_memory.info.format, from_file.info.format, "{path}");
            check_source(&from_memory);
        }
    }

    /// Re-sealing is what lets the artifact target reach the span reader: an artifact whose
    /// spans were altered is refused as it is and read once re-sealed.
    #[test]
    fn a_resealed_artifact_with_altered_spans_reads() {
        let spec = SourceSpec {
            path: fixture("generated/ranges.csv"),
            format: None,
            country_field: CountryField::Country,
        };
        let regions = compile::compile(vec![data::load(&spec).unwrap()], &[0]).unwrap();
        let mut bytes = Artifact::new(regions, None, 1).to_bytes();
        // The last IPv6 span's source byte is its last byte before the 32-byte digest; its
        // country index sits before it.
        let country = bytes.len() - 32 - 3;
        bytes[country] ^= 1;
        let path = Path::new("x.rfa");
        assert!(Artifact::from_bytes(path, &bytes).is_err());
        let read = Artifact::from_bytes(path, &reseal(&bytes, true).unwrap()).unwrap();
        check_artifact(&read);
        assert_ne!(read.regions.v6[0].country.code(), "JP");
    }
}
