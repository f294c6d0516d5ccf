//! Country data through the real binary: every source kind, precedence, artifacts, inspect,
//! diff and explain, and bad input refused with a message that says what to fix.

use std::path::Path;

use integration_tests::cli::{fixture, Instance};

/// A scratch directory removed on drop.
struct Scratch(tempfile::TempDir);

impl Scratch {
    fn new() -> Self {
        Self(tempfile::Builder::new().prefix("rfdata").tempdir().unwrap())
    }

    fn write(&self, name: &str, contents: &str) -> String {
        let path = self.0.path().join(name);
        std::fs::write(&path, contents).unwrap();
        path.display().to_string()
    }

    fn path(&self, name: &str) -> String {
        self.0.path().join(name).display().to_string()
    }
}

fn fx(relative: &str) -> String {
    fixture(relative).display().to_string()
}

/// The one line `explain` prints for `addr` with these extra arguments.
fn explain(inst: &Instance, args: &[&str], addr: &str) -> String {
    let mut all = vec!["explain"];
    all.extend_from_slice(args);
    all.push(addr);
    inst.ok(None, &all).unwrap().trim().to_owned()
}

#[test]
fn every_source_kind_loads_and_places_addresses() {
    let inst = Instance::new();
    for (file, format) in [
        ("maxmind/GeoLite2-Country-Test.mmdb", "mmdb"),
        ("generated/flat-country-code.mmdb", "mmdb"),
        ("generated/ranges.csv", "csv"),
        ("generated/gb.zone", "cidr"),
        ("generated/cidr-cc.txt", "cidr"),
        ("generated/delegated-test-extended.txt", "rir"),
    ] {
        let line = explain(&inst, &["--db", &fx(file)], "81.2.69.160");
        assert!(
            line.starts_with("81.2.69.160: GB (United Kingdom)"),
            "{file}: {line}"
        );
        assert!(line.contains(&format!("({format} ")), "{file}: {line}");
        assert!(line.contains("no policy given"), "{line}");
    }
    // The RIR file's 384-address record is not a power of two: two prefixes, one range.
    let rir = fx("generated/delegated-test-extended.txt");
    let line = explain(&inst, &["--db", &rir, "--deny", "SE"], "89.160.21.127");
    assert!(
        line.contains("range 89.160.20.0-89.160.21.127, kernel prefix 89.160.21.0/25"),
        "{line}"
    );
    assert!(line.ends_with("verdict: drop (on the deny list)"), "{line}");
    let line = explain(
        &inst,
        &["--db", &rir, "--deny", "SE"],
        "::ffff:89.160.21.127",
    );
    assert!(
        line.starts_with("::ffff:89.160.21.127 (carries IPv4 89.160.21.127, judged as it): SE"),
        "{line}"
    );
    let line = explain(&inst, &["--db", &rir, "--deny", "SE"], "89.160.21.128");
    assert!(
        line.contains("in no country; verdict: pass (unknown space)"),
        "{line}"
    );
}

#[test]
fn later_sources_win_unless_another_is_preferred() {
    let inst = Instance::new();
    let dir = Scratch::new();
    let base = fx("generated/cidr-cc.txt");
    let patch = dir.write("patch.csv", "89.160.20.128,89.160.20.255,NO\n");
    let line = explain(&inst, &["--db", &base, "--db", &patch], "89.160.20.130");
    assert!(
        line.contains(": NO (Norway)") && line.contains("patch.csv"),
        "{line}"
    );
    let line = explain(&inst, &["--db", &base, "--db", &patch], "89.160.20.1");
    assert!(
        line.contains(": SE (Sweden)") && line.contains("cidr-cc.txt"),
        "{line}"
    );
    let preferred = ["--db", &base, "--db", &patch, "--prefer", &base];
    let line = explain(&inst, &preferred, "89.160.20.130");
    assert!(line.contains(": SE (Sweden)"), "{line}");
}

#[test]
fn artifact_carries_data_policy_and_groups_and_diff_shows_changes() {
    let inst = Instance::new();
    let dir = Scratch::new();
    let policy = dir.write(
        "policy.toml",
        "deny = [\"blocked\"]\nunknown = \"drop\"\n[groups]\nblocked = [\"GB\", \"south-america\"]\n",
    );
    let out = dir.path("world.rfa");
    let mmdb = fx("maxmind/GeoLite2-Country-Test.mmdb");
    let printed = inst
        .ok(
            None,
            &["compile", "--db", &mmdb, "--policy", &policy, "--out", &out],
        )
        .unwrap();
    assert!(
        printed.contains("policy: deny AR,BO,BR,CL,CO,EC,FK,GB,GF,GY,PE,PY,SR,UY,VE; unknown drop"),
        "{printed}"
    );

    // The artifact answers like the database it came from, with the policy inside.
    let line = explain(&inst, &["--artifact", &out], "81.2.69.160");
    assert!(
        line.contains("GB (United Kingdom)") && line.ends_with("verdict: drop (on the deny list)"),
        "{line}"
    );
    let line = explain(&inst, &["--artifact", &out], "89.160.20.130");
    assert!(
        line.ends_with("verdict: pass (not on the deny list)"),
        "{line}"
    );

    let inspect = inst.ok(None, &["inspect", &out]).unwrap();
    assert!(
        inspect.contains(": artifact") && inspect.contains("content sha256: "),
        "{inspect}"
    );
    assert!(
        inspect.contains("GeoLite2-Country-Test.mmdb (mmdb GeoLite2-Country"),
        "{inspect}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&inst.ok(None, &["inspect", &out, "--json"]).unwrap()).unwrap();
    // 2.125.160.216/29, 81.2.69.142/31, 81.2.69.144/28, 81.2.69.160/27, 81.2.69.192/28.
    assert_eq!(
        json["countries"]["GB"]["addresses_v4"],
        8 + 2 + 16 + 32 + 16
    );

    // Same data twice: no change. Move one /27 from GB to FR: exactly that shows up.
    let same = inst.ok(None, &["diff", &mmdb, &out]).unwrap();
    assert!(same.starts_with("0 IPv4 addresses in 0 ranges"), "{same}");
    let moved = dir.write("moved.csv", "81.2.69.160,81.2.69.191,FR\n");
    let changed = dir.path("changed.rfa");
    inst.ok(
        None,
        &["compile", "--db", &mmdb, "--db", &moved, "--out", &changed],
    )
    .unwrap();
    let diff = inst.ok(None, &["diff", &out, &changed]).unwrap();
    assert!(diff.starts_with("32 IPv4 addresses in 1 ranges"), "{diff}");
    assert!(
        diff.contains("81.2.69.160/27") && diff.contains("GB -> FR"),
        "{diff}"
    );
}

/// Runs `compile` on bad input and returns stderr; the existing artifact must be untouched.
fn refused(inst: &Instance, dir: &Scratch, args: &[&str]) -> String {
    let out = dir.path("kept.rfa");
    if !Path::new(&out).exists() {
        let db = fx("generated/ranges.csv");
        inst.ok(None, &["compile", "--db", &db, "--out", &out])
            .unwrap();
    }
    let before = std::fs::read(&out).unwrap();
    let mut all = vec!["compile"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--out", &out]);
    let err = inst.fails(None, &all).unwrap();
    assert_eq!(
        std::fs::read(&out).unwrap(),
        before,
        "artifact changed: {err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one clear line: {err}");
    err
}

#[test]
fn bad_input_is_refused_with_what_to_fix_and_nothing_written() {
    let inst = Instance::new();
    let dir = Scratch::new();
    let cases: Vec<(String, &str)> = vec![
        (
            dir.write(
                "bad.csv",
                "ip_start,ip_end,country\n1.0.0.0,1.0.0.255,DE\n1.0.1.9,1.0.1.0,DE\n",
            ),
            "bad.csv:3: range start 1.0.1.9 is after its end 1.0.1.0",
        ),
        (
            dir.write("mixed.csv", "1.0.0.0,2001:db8::,DE\n"),
            "mixed.csv:1: range mixes an IPv4 and an IPv6 address",
        ),
        (
            dir.write("de.zone", "10.0.0.0/8\n10.0.0.1/8\n"),
            "de.zone:2: 10.0.0.1/8 has host bits set; did you mean 10.0.0.0/8?",
        ),
        (
            dir.write("list.txt", "10.0.0.0/8\n"),
            "name it like cn.zone or write `CIDR CC` lines",
        ),
        (
            dir.write("rir.txt", "x|DE|ipv4|1.0.0.0|zero|20200101|allocated\n"),
            "rir.txt:1: IPv4 address count \"zero\" is not a positive number",
        ),
        (dir.write("empty.csv", ""), "empty.csv is empty"),
        (
            dir.write("comments.zone", "# nothing\n"),
            "comments.zone is empty",
        ),
        (
            dir.write("blob.dat", "\u{0}\u{1}binary"),
            "give it with --format mmdb|csv|cidr|rir",
        ),
        (
            fx("maxmind/MaxMind-DB-test-broken-pointers-24.mmdb"),
            "is corrupt",
        ),
        (fx("generated/no-country.mmdb"), "has no country data"),
        (
            dir.write("xx.csv", "1.0.0.0,1.0.0.255,XX\n"),
            "xx.csv:1: unknown country code \"XX\": did you mean XK, AX, CX, MX, SX?",
        ),
        (
            dir.write("gaps.csv", "1.0.0.0,1.0.0.255,DE\n1.0.1.9,1.0.1.0,\n"),
            "gaps.csv:2: range start 1.0.1.9 is after its end 1.0.1.0",
        ),
        (
            dir.write("deu.txt", "10.0.0.0/8 DEU\n"),
            "deu.txt:1: \"DEU\" is not a two-letter country code",
        ),
        (
            dir.write("rir-xx.txt", "x|XX|ipv4|1.0.0.0|256|20200101|allocated\n"),
            "rir-xx.txt:1: unknown country code \"XX\"",
        ),
        (
            fx("generated/three-letter-code.mmdb"),
            "three-letter-code.mmdb: network 81.2.69.0/24: country.iso_code \"GBR\": \"GBR\" is not a two-letter country code",
        ),
        (
            fx("generated/unknown-code.mmdb"),
            "unknown-code.mmdb: network 81.2.69.0/24: country_code \"XX\": unknown country code \"XX\"",
        ),
        (dir.path("missing.csv"), "missing.csv: No such file"),
    ];
    for (db, expected) in &cases {
        let err = refused(&inst, &dir, &["--db", db]);
        assert!(err.contains(expected), "{db}: {err}");
    }
    // A truncated database.
    let whole = std::fs::read(fixture("maxmind/GeoIP2-Country-Test.mmdb")).unwrap();
    let cut = dir.0.path().join("cut.mmdb");
    std::fs::write(&cut, &whole[..whole.len() / 2]).unwrap();
    let err = refused(&inst, &dir, &["--db", cut.to_str().unwrap()]);
    assert!(err.contains("cut.mmdb"), "{err}");
    // Policy mistakes: a typo'd group, a typo'd code.
    let db = fx("generated/ranges.csv");
    let err = refused(&inst, &dir, &["--db", &db, "--deny", "erope"]);
    assert!(
        err.contains("unknown group \"erope\"") && err.contains("europe"),
        "{err}"
    );
    let err = refused(&inst, &dir, &["--db", &db, "--deny", "UK"]);
    assert!(err.contains("did you mean GB"), "{err}");
    // A damaged artifact.
    let damaged = dir.0.path().join("damaged.rfa");
    let mut bytes = std::fs::read(dir.path("kept.rfa")).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&damaged, bytes).unwrap();
    let err = refused(&inst, &dir, &["--artifact", damaged.to_str().unwrap()]);
    assert!(err.contains("is damaged (file digest mismatch"), "{err}");
}

#[test]
fn listed_countries_without_data_are_warned_about() {
    let inst = Instance::new();
    let dir = Scratch::new();
    let out = dir.path("warn.rfa");
    let db = fx("generated/ranges.csv");
    let run = inst
        .output(
            None,
            &["compile", "--db", &db, "--allow", "GB,FR,DE", "--out", &out],
        )
        .unwrap();
    assert!(run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("warning: the data has no prefixes for DE,FR (listed in the policy)"),
        "{stderr}"
    );
    let run = inst
        .output(
            None,
            &["compile", "--db", &db, "--allow", "GB", "--out", &out],
        )
        .unwrap();
    assert!(run.status.success() && run.stderr.is_empty(), "{run:?}");
}

#[test]
fn compile_never_replaces_its_inputs_or_anything_but_a_file() {
    let inst = Instance::new();
    let dir = Scratch::new();
    let db = dir.write("ranges.csv", "1.0.0.0,1.0.0.255,AU\n");
    let original = std::fs::read(&db).unwrap();
    let hard = dir.path("hard.csv");
    std::fs::hard_link(&db, &hard).unwrap();
    let soft = dir.path("soft.rfa");
    std::os::unix::fs::symlink(&db, &soft).unwrap();
    let policy = dir.write("policy.toml", "deny = [\"CN\"]\n");
    for (args, out, given) in [
        (vec!["--db", &db], &db, format!("--db {db}")),
        (vec!["--db", &db], &hard, format!("--db {db}")),
        (vec!["--db", &db], &soft, format!("--db {db}")),
        (
            vec!["--db", &db, "--policy", &policy],
            &policy,
            format!("--policy {policy}"),
        ),
    ] {
        let mut all = vec!["compile"];
        all.extend_from_slice(&args);
        all.extend_from_slice(&["--out", out]);
        let err = inst.fails(None, &all).unwrap();
        assert_eq!(
            err.trim(),
            format!(
                "error: --out {out} is the file given as {given}: compile would replace what it \
                 reads; write the artifact to another file"
            )
        );
    }
    assert_eq!(std::fs::read(&db).unwrap(), original);
    assert_eq!(std::fs::read(&policy).unwrap(), b"deny = [\"CN\"]\n");
    assert!(std::fs::symlink_metadata(&soft)
        .unwrap()
        .file_type()
        .is_symlink());

    use std::os::unix::fs::FileTypeExt as _;
    let err = inst
        .fails(None, &["compile", "--db", &db, "--out", "/dev/full"])
        .unwrap();
    assert_eq!(
        err.trim(),
        "error: --out /dev/full is a device; give the path of an artifact file"
    );
    assert!(std::fs::metadata("/dev/full")
        .unwrap()
        .file_type()
        .is_char_device());
    let sub = dir.path("sub");
    std::fs::create_dir(&sub).unwrap();
    let err = inst
        .fails(None, &["compile", "--db", &db, "--out", &sub])
        .unwrap();
    assert_eq!(
        err.trim(),
        format!("error: --out {sub} is a directory; give the path of an artifact file")
    );
    assert_eq!(std::fs::read_dir(&sub).unwrap().count(), 0);

    // Through a link to an earlier artifact, the artifact is replaced and the link kept.
    let target = dir.path("target.rfa");
    inst.ok(None, &["compile", "--db", &db, "--out", &target])
        .unwrap();
    let link = dir.path("link.rfa");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    inst.ok(
        None,
        &["compile", "--db", &db, "--deny", "AU", "--out", &link],
    )
    .unwrap();
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    let inspect = inst.ok(None, &["inspect", &target]).unwrap();
    assert!(inspect.contains("policy:         deny AU"), "{inspect}");
}

#[test]
fn codes_are_normalised_and_skipped_records_counted_in_every_reader() {
    let inst = Instance::new();
    let dir = Scratch::new();
    // Lowercase and padded codes are read as the countries they name, in mmdb and CSV alike.
    let odd = fx("generated/odd-codes.mmdb");
    let line = explain(&inst, &["--db", &odd, "--deny", "GB"], "81.2.69.1");
    assert!(
        line.contains(": GB (United Kingdom)")
            && line.ends_with("verdict: drop (on the deny list)"),
        "{line}"
    );
    let line = explain(&inst, &["--db", &odd], "89.160.20.1");
    assert!(line.contains(": SE (Sweden)"), "{line}");
    // A first row of addresses without digits is data, not a header.
    let v6 = dir.write("v6.csv", "::,::ffff,US\nabcd::,abcd::ffff,DE\n");
    let line = explain(&inst, &["--db", &v6], "::1");
    assert!(line.starts_with("::1: US (United States)"), "{line}");

    // Rows without a country are skipped by design, and every verb that reads them says so.
    let csv = dir.write(
        "gaps.csv",
        "start,end,cc\n1.0.0.0,1.0.0.255,au\n1.0.1.0,1.0.1.255,\n1.0.2.0,1.0.2.255,\"\"\n",
    );
    let note = format!(
        "note: {csv}: 2 records without a country skipped (their addresses are unknown space)"
    );
    let out = dir.path("gaps.rfa");
    let run = inst
        .output(None, &["compile", "--db", &csv, "--out", &out])
        .unwrap();
    assert!(run.status.success(), "{run:?}");
    assert_eq!(String::from_utf8_lossy(&run.stderr).trim(), note);
    for args in [vec!["inspect", csv.as_str()], vec!["inspect", out.as_str()]] {
        let run = inst.output(None, &args).unwrap();
        let stdout = String::from_utf8_lossy(&run.stdout);
        assert!(
            stdout.contains("  skipped:        2 records without a country (unknown space)"),
            "{args:?}: {stdout}"
        );
    }
    let json: serde_json::Value =
        serde_json::from_str(&inst.ok(None, &["inspect", &out, "--json"]).unwrap()).unwrap();
    assert_eq!(json["sources"][0]["skipped"], 2);
    let run = inst
        .output(None, &["explain", "--db", &odd, "1.0.1.1"])
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&run.stderr).trim(),
        format!(
            "note: {odd}: 1 record without a country skipped (their addresses are unknown space)"
        )
    );
    let rir = fx("generated/delegated-test-extended.txt");
    let run = inst
        .output(None, &["explain", "--db", &rir, "1.0.1.1"])
        .unwrap();
    assert!(
        String::from_utf8_lossy(&run.stderr).contains(": 3 records without a country skipped"),
        "{run:?}"
    );
}

#[test]
fn exception_cidrs_follow_the_data_files_rule_on_host_bits() {
    let inst = Instance::new();
    let dir = Scratch::new();
    let db = fx("generated/ranges.csv");
    let out = dir.path("never.rfa");
    for option in ["--allow-cidr", "--deny-cidr"] {
        let run = inst
            .output(
                None,
                &[
                    "compile",
                    "--db",
                    &db,
                    "--deny",
                    "GB",
                    option,
                    "10.1.2.3/8",
                    "--out",
                    &out,
                ],
            )
            .unwrap();
        assert_eq!(run.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(
            stderr.lines().next().unwrap(),
            format!(
                "error: invalid value '10.1.2.3/8' for '{option} <CIDR>': 10.1.2.3/8 has host \
                 bits set; did you mean 10.0.0.0/8?"
            )
        );
    }
    let policy = dir.write(
        "policy.toml",
        "deny = [\"GB\"]\nallow_cidrs = [\"192.0.2.0/24\",\n  \"10.1.2.3/8\"]\n",
    );
    let err = inst
        .fails(
            None,
            &["compile", "--db", &db, "--policy", &policy, "--out", &out],
        )
        .unwrap();
    assert!(err.contains("line 2"), "{err}");
    assert!(
        err.contains("10.1.2.3/8 has host bits set; did you mean 10.0.0.0/8?"),
        "{err}"
    );
    assert!(!std::path::Path::new(&out).exists());
}
