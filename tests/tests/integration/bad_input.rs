//! Every verb with wrong, missing, conflicting and hostile arguments, against a filter that is
//! attached and has a known-good history: each is refused with its exact error line and exit
//! code, and no pin, map entry, counter, state record, known-good file or cache file changes.

use std::{collections::BTreeMap, fs, path::Path};

use integration_tests::update::{Attached, Snapshot};
use tempfile::TempDir;

/// Everything a refused command must leave as it was.
#[derive(Debug, PartialEq, Eq)]
struct World {
    filter: Snapshot,
    /// Every entry under the pin root (pins are special files: their names are what changes).
    pins: Vec<String>,
    /// Every file under the state directory (records, locks, known-good files, the download
    /// cache and the test's own data files) with its bytes.
    files: BTreeMap<String, Vec<u8>>,
}

fn tree(root: &Path, with_bytes: bool, out: &mut BTreeMap<String, Vec<u8>>) {
    let Ok(entries) = fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.insert(format!("{}/", path.display()), vec![]);
            tree(&path, with_bytes, out);
        } else {
            let bytes = if with_bytes {
                fs::read(&path).unwrap_or_default()
            } else {
                vec![]
            };
            out.insert(path.display().to_string(), bytes);
        }
    }
}

fn world(filter: &Attached) -> World {
    let mut pins = BTreeMap::new();
    tree(&filter.inst.pin_root, false, &mut pins);
    let mut files = BTreeMap::new();
    tree(&filter.inst.state_dir, true, &mut files);
    World {
        filter: filter.snapshot(),
        pins: pins.into_keys().collect(),
        files,
    }
}

/// One refusal: arguments (with `{IF}`, `{A}`, `{B}`, `{DIR}` replaced), exit code, and the
/// exact first line of stderr.
struct Case {
    args: &'static [&'static str],
    code: i32,
    line: &'static str,
}

/// A usage error (exit 2), refused by the parser.
const fn usage(args: &'static [&'static str], line: &'static str) -> Case {
    Case {
        args,
        code: 2,
        line,
    }
}

/// A refusal by the verb (exit 1).
const fn fails(args: &'static [&'static str], line: &'static str) -> Case {
    Case {
        args,
        code: 1,
        line,
    }
}

/// A filter attached with a history for rollback, a download cache, and scratch files (a
/// data file dated in the future, two invalid policy files) inside its state directory, so
/// the snapshot covers them too.
fn setup() -> (Attached, TempDir) {
    // LPM lookup: the tables shrink to one entry, so each before/after digest is quick.
    let filter = Attached::with_options("badin", &["--lookup", "lpm"]);
    // A history for rollback and the download cache: one update, then a cached download dir.
    let (code, out) = filter.update(&["--db", &filter.list_b]);
    assert_eq!(code, 0, "{out}");
    let cache = filter.inst.lib_dir().join("downloads");
    fs::create_dir_all(cache.join("0123456789abcdef")).unwrap();
    fs::write(cache.join("0123456789abcdef/meta.json"), b"{}").unwrap();
    let scratch = tempfile::Builder::new()
        .prefix("scratch")
        .tempdir_in(&filter.inst.state_dir)
        .unwrap();
    // A data file dated in the future.
    let future = scratch.path().join("future.txt");
    fs::copy(&filter.list_a, &future).unwrap();
    fs::File::options()
        .write(true)
        .open(&future)
        .unwrap()
        .set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(7_258_118_400))
        .unwrap();
    // Policy files with services that share a port, and with services and a top-level scope.
    fs::write(
        scratch.path().join("overlap.toml"),
        "[[service]]\nname = \"a\"\nports = [\"tcp/400-500\"]\nallow = [\"GB\"]\n\
         [[service]]\nname = \"b\"\nports = [\"tcp/443\"]\nallow = [\"JP\"]\n",
    )
    .unwrap();
    fs::write(
        scratch.path().join("scoped.toml"),
        "ports = [\"tcp/22\"]\n[[service]]\nname = \"a\"\nports = [\"tcp/443\"]\nallow = [\"GB\"]\n",
    )
    .unwrap();
    (filter, scratch)
}

/// Runs one case against a filter of its own: refused with the exact code and first line of
/// stderr, nothing on stdout, and nothing changed.
fn refused(case: &Case) {
    let (filter, scratch) = setup();
    let dir = scratch.path().display().to_string();
    let substitute = |arg: &str| {
        arg.replace("{IF}", &filter.iface)
            .replace("{A}", &filter.list_a)
            .replace("{B}", &filter.list_b)
            .replace("{DIR}", &dir)
            .replace("{PINS}", &filter.inst.pin_root.display().to_string())
    };
    let args: Vec<String> = case.args.iter().map(|a| substitute(a)).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let before = world(&filter);
    let out = filter
        .inst
        .output(Some(&filter.pair.receiver), &args)
        .unwrap();
    let code = out.status.code().unwrap_or(-1);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr.lines().next().unwrap_or_default().to_owned();
    // A line ending in "…" is compared up to there (the rest names the current time).
    let expected = substitute(case.line);
    let matches = match expected.strip_suffix('…') {
        Some(prefix) => line.starts_with(prefix),
        None => line == expected,
    };
    let after = world(&filter);
    assert_eq!(after, before, "{args:?} changed something");
    assert!(out.stdout.is_empty(), "{args:?} printed on stdout: {out:?}");
    assert!(
        code == case.code && matches,
        "{args:?}\n   want {} {expected}\n   got  {code} {line}",
        case.code
    );
}

/// One `#[test]` per case, named for what it gives: every case runs, and each failure is
/// reported under its own name.
macro_rules! refusals {
    ($($name:ident: $case:expr,)+) => {$(
        #[test]
        fn $name() {
            refused(&$case);
        }
    )+};
}

// Every verb with wrong, missing, conflicting and hostile arguments.
refusals! {
    // Hostile and empty interface names, on every verb that takes one.
    attach_iface_with_a_path: usage(&["attach", "--iface", "../../tmp", "--db", "{A}", "--deny", "JP"], "error: invalid value '../../tmp' for '--iface <IF>': interface name \"../../tmp\" contains a '/', which no interface name can (see `ip link`)"),
    attach_empty_iface: usage(&["attach", "--iface", "", "--db", "{A}", "--deny", "JP"], "error: invalid value '' for '--iface <IF>': interface name is empty (is the variable that should hold it unset?)"),
    detach_iface_dot_dot: usage(&["detach", "--iface", ".."], "error: invalid value '..' for '--iface <IF>': interface name \"..\" is not a valid interface name"),
    detach_iface_with_a_newline: usage(&["detach", "--iface", "eth0\n"], "error: invalid value 'eth0"),
    update_iface_with_a_slash: usage(&["update", "--iface", "a/b", "--deny", "SE"], "error: invalid value 'a/b' for '--iface <IF>': interface name \"a/b\" contains a '/', which no interface name can (see `ip link`)"),
    rollback_iface_longer_than_15_bytes: usage(&["rollback", "--iface", "x234567890123456"], "error: invalid value 'x234567890123456' for '--iface <IF>': interface name \"x234567890123456\" is longer than 15 bytes"),
    stats_iface_with_a_colon: usage(&["stats", "--iface", "eth0:1"], "error: invalid value 'eth0:1' for '--iface <IF>': interface name \"eth0:1\" contains a ':', which no interface name can (see `ip link`)"),
    // Missing and conflicting arguments.
    attach_without_db: usage(&["attach", "--iface", "{IF}", "--deny", "JP"], "error: the following required arguments were not provided:"),
    attach_allow_and_deny: usage(&["attach", "--iface", "{IF}", "--db", "{A}", "--allow", "GB", "--deny", "JP"], "error: the argument '--allow <LIST>' cannot be used with '--deny <LIST>'"),
    update_without_iface: usage(&["update", "--deny", "SE"], "error: the following required arguments were not provided:"),
    update_iface_and_all: usage(&["update", "--iface", "{IF}", "--all"], "error: the argument '--iface <IF>' cannot be used with '--all'"),
    update_url_and_db: usage(&["update", "--iface", "{IF}", "--url", "https://x.invalid/db", "--db", "{A}"], "error: the argument '--url <URL>' cannot be used with '--db <FILE>'"),
    update_ca_file_without_a_download: usage(&["update", "--iface", "{IF}", "--deny", "SE", "--ca-file", "{DIR}/ca.pem"], "error: the following required arguments were not provided:"),
    update_sha256_url_without_url: usage(&["update", "--iface", "{IF}", "--sha256-url", "https://x.invalid/db.sha256"], "error: the following required arguments were not provided:"),
    detach_without_iface: usage(&["detach"], "error: the following required arguments were not provided:"),
    compile_without_db: usage(&["compile", "--out", "{DIR}/x.rgnf"], "error: the following required arguments were not provided:"),
    // Numbers and durations that would switch a guard off or wait forever.
    update_max_change_nan: usage(&["update", "--iface", "{IF}", "--db", "{B}", "--max-change", "NaN"], "error: invalid value 'NaN' for '--max-change <PERCENT>': give a finite percentage of 0 or more, e.g. 10 or 2.5"),
    update_max_change_negative: usage(&["update", "--iface", "{IF}", "--db", "{B}", "--max-change=-5"], "error: invalid value '-5' for '--max-change <PERCENT>': give a finite percentage of 0 or more, e.g. 10 or 2.5"),
    update_max_change_infinite: usage(&["update", "--iface", "{IF}", "--db", "{B}", "--max-change", "inf"], "error: invalid value 'inf' for '--max-change <PERCENT>': give a finite percentage of 0 or more, e.g. 10 or 2.5"),
    update_wait_not_a_duration: usage(&["update", "--iface", "{IF}", "--wait", "soon"], "error: invalid value 'soon' for '--wait <DURATION>': expected number at 0; give a duration such as 30s or 2m"),
    detach_wait_negative: usage(&["detach", "--iface", "{IF}", "--wait=-1s"], "error: invalid value '-1s' for '--wait <DURATION>': expected number at 0; give a duration such as 30s or 2m"),
    attach_unknown_mode: usage(&["attach", "--iface", "{IF}", "--db", "{A}", "--deny", "JP", "--mode", "fast"], "error: invalid value 'fast' for '--mode <MODE>'"),
    // Wrong values the verbs themselves refuse.
    attach_when_already_attached: fails(&["attach", "--iface", "{IF}", "--db", "{A}", "--deny", "JP"], "error: regionfilter is already attached to {IF} (pins in {PINS}/{IF}); use `regionfilter update --iface {IF}` to change data or policy, or `regionfilter detach --iface {IF}` first"),
    attach_to_a_missing_interface: fails(&["attach", "--iface", "nosuchif0", "--db", "{A}", "--deny", "JP"], "error: no interface named nosuchif0 in this network namespace (see `ip link`)"),
    update_a_missing_interface: fails(&["update", "--iface", "nosuchif0", "--deny", "SE"], "error: regionfilter is not attached to nosuchif0 (no pins in {PINS}/nosuchif0); attach it first"),
    detach_a_missing_interface: fails(&["detach", "--iface", "nosuchif0"], "error: regionfilter is not attached to nosuchif0 (no pins in {PINS}/nosuchif0); `regionfilter status` lists attached interfaces"),
    update_release_for_a_missing_interface: fails(&["update", "--iface", "nosuchif0", "--release-url", "http://127.0.0.1:9/rel", "--public-key", "{DIR}/k.pub"], "error: regionfilter is not attached to nosuchif0; attach it first"),
    rollback_a_missing_interface: fails(&["rollback", "--iface", "nosuchif0"], "error: regionfilter is not attached to nosuchif0 (no pins in {PINS}/nosuchif0); attach it first"),
    stats_of_a_missing_interface: fails(&["stats", "--iface", "nosuchif0"], "error: regionfilter is not attached to nosuchif0; `regionfilter status` lists attached interfaces"),
    update_deny_uk_is_not_a_country_code: fails(&["update", "--iface", "{IF}", "--deny", "UK"], "error: unknown country code \"UK\": did you mean GB, UA, UG, UM, US, UY, UZ, CK, DK, FK?"),
    update_db_file_missing: fails(&["update", "--iface", "{IF}", "--db", "{DIR}/missing.mmdb"], "error: cannot read {DIR}/missing.mmdb: No such file or directory (os error 2)"),
    update_allow_cidr_with_host_bits: usage(&["update", "--iface", "{IF}", "--deny", "SE", "--allow-cidr", "10.0.0.1/8"], "error: invalid value '10.0.0.1/8' for '--allow-cidr <CIDR>': 10.0.0.1/8 has host bits set; did you mean 10.0.0.0/8?"),
    update_url_plain_http_to_another_host: usage(&["update", "--iface", "{IF}", "--url", "http://localhost.example.org/db.mmdb"], "error: invalid value 'http://localhost.example.org/db.mmdb' for '--url <URL>': http://localhost.example.org/db.mmdb: only https:// URLs are accepted (plain http:// only to this host: localhost, 127.0.0.0/8 or [::1])"),
    update_url_plain_http_with_a_loopback_user: usage(&["update", "--iface", "{IF}", "--url", "http://127.0.0.1@example.org/db.mmdb"], "error: invalid value 'http://127.0.0.1@example.org/db.mmdb' for '--url <URL>': http://127.0.0.1@example.org/db.mmdb: only https:// URLs are accepted (plain http:// only to this host: localhost, 127.0.0.0/8 or [::1])"),
    compile_out_is_the_db: fails(&["compile", "--db", "{A}", "--out", "{A}"], "error: --out {A} is the file given as --db {A}: compile would replace what it reads; write the artifact to another file"),
    compile_out_is_a_device: fails(&["compile", "--db", "{A}", "--out", "/dev/null"], "error: --out /dev/null is a device; give the path of an artifact file"),
    inspect_file_missing: fails(&["inspect", "{DIR}/missing.mmdb"], "error: cannot read {DIR}/missing.mmdb: No such file or directory (os error 2)"),
    status_with_iface: usage(&["status", "--iface", "{IF}"], "error: unexpected argument '--iface' found"),
    diff_with_one_file: usage(&["diff", "{A}"], "error: the following required arguments were not provided:"),
    compile_out_is_a_directory: fails(&["compile", "--db", "{A}", "--out", "{DIR}"], "error: --out {DIR} is a directory; give the path of an artifact file"),
    update_policy_not_toml: fails(&["update", "--iface", "{IF}", "--policy", "/etc/passwd"], "error: policy file /etc/passwd is invalid: line 1, column 32: key with no value, expected `=`"),
    update_artifact_not_an_artifact: fails(&["update", "--iface", "{IF}", "--artifact", "{A}"], "error: {A} is not a regionfilter artifact (build one with `regionfilter compile`)"),
    attach_to_a_missing_interface_without_a_policy: fails(&["attach", "--iface", "nosuchif0", "--db", "{A}"], "error: no interface named nosuchif0 in this network namespace (see `ip link`)"),
    update_db_dated_in_the_future: fails(&["update", "--iface", "{IF}", "--db", "{DIR}/future.txt"], "error: {DIR}/future.txt: its build date 2200-01-01T00:00:00Z is in the future (this host's clock says …"),
    compile_db_dated_in_the_future: fails(&["compile", "--db", "{DIR}/future.txt", "--out", "{DIR}/x.rgnf"], "error: {DIR}/future.txt: its build date 2200-01-01T00:00:00Z is in the future (this host's clock says …"),
    explain_not_an_address: usage(&["explain", "--db", "{A}", "not-an-address"], "error: invalid value 'not-an-address' for '[ADDR]...': invalid IP address syntax"),
    explain_iface_and_samples: usage(&["explain", "--iface", "{IF}", "--samples", "5", "10.1.2.3"], "error: the argument '--iface <IF>' cannot be used with '--samples <N>'"),
    explain_iface_and_country_field: usage(&["explain", "--iface", "{IF}", "--country-field", "registered", "10.1.2.3"], "error: the argument '--iface <IF>' cannot be used with '--country-field <COUNTRY_FIELD>'"),
    // Scopes, services, classes.
    update_ports_port_zero: usage(&["update", "--iface", "{IF}", "--ports", "tcp/0"], "error: invalid value 'tcp/0' for '--ports <LIST>': \"tcp/0\": port 0 is not a destination port; ports are 1-65535"),
    update_ports_icmp: usage(&["update", "--iface", "{IF}", "--ports", "icmp/8"], "error: invalid value 'icmp/8' for '--ports <LIST>': \"icmp/8\" is not a port range: give PROTO/PORT or PROTO/FIRST-LAST, e.g. tcp/443 or udp/8000-8100 (PROTO is tcp or udp)"),
    update_ports_reversed_range: usage(&["update", "--iface", "{IF}", "--ports", "tcp/9000-80"], "error: invalid value 'tcp/9000-80' for '--ports <LIST>': \"tcp/9000-80\": the range is reversed; did you mean tcp/80-9000?"),
    update_ports_empty_list: usage(&["update", "--iface", "{IF}", "--ports", ","], "error: invalid value ',' for '--ports <LIST>': the port list is empty: give at least one, e.g. tcp/443"),
    update_local_unknown_value: usage(&["update", "--iface", "{IF}", "--local", "maybe"], "error: invalid value 'maybe' for '--local <LOCAL>'"),
    update_tcp_unknown_value: usage(&["update", "--iface", "{IF}", "--tcp", "fin"], "error: invalid value 'fin' for '--tcp <TCP>'"),
    update_policy_services_share_a_port: fails(&["update", "--iface", "{IF}", "--policy", "{DIR}/overlap.toml"], "error: policy file {DIR}/overlap.toml: tcp/443 is in service \"a\" and in service \"b\": a port belongs to one service"),
    update_policy_services_and_top_level_ports: fails(&["update", "--iface", "{IF}", "--policy", "{DIR}/scoped.toml"], "error: policy file {DIR}/scoped.toml has [[service]] tables: give each service its ports there instead of --ports or a top-level ports list"),
    explain_port_range: usage(&["explain", "--db", "{A}", "--deny", "JP", "--port", "tcp/1-2", "10.1.2.3"], "error: invalid value 'tcp/1-2' for '--port <PROTO/PORT>': give one port, e.g. tcp/443, not a range"),
}
