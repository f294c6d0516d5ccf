//! `regionfilter update` and `rollback` against a filter attached in a namespace: the
//! blue/green switch seen from the live program, kill -9 mid-update, refusals and failures
//! that must leave everything as it was, and the exit codes cron relies on.

use std::{
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use integration_tests::{
    cli::fixture,
    update::{Attached, CHANGING, STABLE, UNDER_A, UNDER_B},
};

const XDP_DROP: u32 = integration_tests::kernel::XDP_DROP;
const XDP_PASS: u32 = integration_tests::kernel::XDP_PASS;

#[test]
fn a_hundred_alternating_updates_never_misjudge_a_packet() {
    let filter = Attached::new("upalt");
    let stop = Arc::new(AtomicBool::new(false));
    let rounds = Arc::new(AtomicU64::new(0));
    // The prober runs the live program as fast as it can while updates switch halves.
    let prober = {
        let (stop, rounds) = (stop.clone(), rounds.clone());
        let mut probe = filter.probe();
        std::thread::spawn(move || {
            let mut wrong_stable = Vec::new();
            let mut history: Vec<Vec<u32>> = vec![vec![]; CHANGING.len()];
            while !stop.load(Ordering::Acquire) {
                for (src, want) in STABLE {
                    let got = probe.verdict(src);
                    if got != want {
                        wrong_stable.push((src, got));
                    }
                }
                for (i, src) in CHANGING.iter().enumerate() {
                    let got = probe.verdict(src);
                    if history[i].last() != Some(&got) {
                        history[i].push(got);
                    }
                }
                rounds.fetch_add(1, Ordering::AcqRel);
            }
            (wrong_stable, history)
        })
    };
    for i in 0..100u32 {
        let list = if i.is_multiple_of(2) {
            &filter.list_b
        } else {
            &filter.list_a
        };
        let (code, out) = filter.update(&["--db", list]);
        assert_eq!(code, 0, "update {i}: {out}");
        // Let the prober finish one whole round that started after this switch, so it sees
        // every state (synchronisation on its progress, not on time).
        let seen = rounds.load(Ordering::Acquire);
        while rounds.load(Ordering::Acquire) < seen + 2 {
            std::thread::yield_now();
        }
    }
    stop.store(true, Ordering::Release);
    let (wrong_stable, history) = prober.join().unwrap();
    assert!(
        wrong_stable.is_empty(),
        "stable sources misjudged: {:?}",
        &wrong_stable[..wrong_stable.len().min(10)]
    );
    for (src, seen) in CHANGING.iter().zip(&history) {
        // Starts under A, then flips exactly once per update: A B A B ... (101 states).
        let want: Vec<u32> = (0..=100)
            .map(|i| if i % 2 == 0 { UNDER_A } else { UNDER_B })
            .collect();
        assert_eq!(
            seen.len(),
            want.len(),
            "{src}: {} verdict changes for 100 updates",
            seen.len() - 1
        );
        assert_eq!(seen, &want, "{src}");
    }
}

#[test]
fn kill_9_at_random_points_leaves_old_or_new_data_and_the_next_update_succeeds() {
    let filter = Attached::new("upkill");
    let mut probe = filter.probe();
    // How long a switching update takes here, so kills land all over it: the longest seen
    // so far, as a loaded machine slows some updates down.
    let started = Instant::now();
    assert_eq!(filter.update(&["--db", &filter.list_b]).0, 0);
    let mut full = started.elapsed();
    let mut rng = 0x2545_F491_4F6C_DD1D_u64;
    let mut outcomes = [0usize; 2];
    // At least 60 kills, and more (bounded) until both fates have happened.
    let mut i = 0;
    while i < 60 || (outcomes.contains(&0) && i < 240) {
        i += 1;
        let before = probe.answering_list();
        let target = if before == 'A' {
            &filter.list_b
        } else {
            &filter.list_a
        };
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        // The switch comes late in an update (after compile, load and self-test), so a
        // fifth of the kills land past the end, where the update has surely switched.
        let delay = full.mul_f64(1.2 * (rng % 1000) as f64 / 1000.0);
        let mut child = filter
            .inst
            .command(None, &["update", "--iface", &filter.iface, "--db", target])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // The delay only picks where the kill lands; nothing waits on it for correctness.
        std::thread::sleep(delay);
        let _ = child.kill(); // SIGKILL
        child.wait().unwrap();
        let after = probe.answering_list();
        outcomes[usize::from(after != before)] += 1;
        // The next update completes, from whatever state the kill left.
        let started = Instant::now();
        let (code, out) = filter.update(&["--db", &filter.list_a]);
        if code == 0 {
            full = full.max(started.elapsed());
        }
        assert!(
            code == 0 || code == 3,
            "update after kill {i}: exit {code}: {out}"
        );
        assert_eq!(probe.answering_list(), 'A', "after kill {i}");
        let maps = filter_user::kernel::maps::FilterMaps::open_pinned(&filter.pin_dir()).unwrap();
        let active = maps.halves[maps.active_half().unwrap()].settings().unwrap();
        assert_eq!(active.complete, 1);
        let current = filter_user::compile::artifact::Artifact::read(
            &filter
                .inst
                .lib_dir()
                .join(&filter.iface)
                .join("current.rgnf"),
        )
        .unwrap();
        assert_eq!(
            current.header.content_hash,
            filter_user::kernel::maps::hash_hex(&active.content_hash),
            "known-good copy matches the kernel after kill {i}"
        );
    }
    // Both fates happened, or the kills did not land all over the update.
    assert!(
        outcomes[0] > 0 && outcomes[1] > 0,
        "kept old / switched: {outcomes:?}"
    );
}

#[test]
fn refusals_and_failures_change_nothing_and_exit_with_their_code() {
    let filter = Attached::new("upref");
    let dir = &filter.dir;
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let corrupt = {
        let db = std::fs::read(fixture("maxmind/GeoLite2-Country-Test.mmdb")).unwrap();
        let path = dir.join("truncated.mmdb");
        std::fs::write(&path, &db[..db.len() / 2]).unwrap();
        path.display().to_string()
    };
    let empty = fixture("generated/no-networks.mmdb").display().to_string();
    let bigger = write(
        "bigger.txt",
        &(std::fs::read_to_string(&filter.list_a).unwrap() + "11.9.0.0/16 NL\n"),
    );
    let blank = write("blank.txt", "# the vendor shipped nothing\n");
    let older = write(
        "older.txt",
        &std::fs::read_to_string(&filter.list_b).unwrap(),
    );
    std::fs::File::options()
        .write(true)
        .open(&older)
        .unwrap()
        .set_modified(std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000))
        .unwrap();
    let list_a = filter.list_a.clone();

    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (vec!["--db", &corrupt], 1, "truncated.mmdb"),
        (vec!["--db", &empty], 5, "has no country data"),
        (vec!["--db", &blank], 5, "holds no address ranges"),
        (vec!["--db", &bigger], 6, "IPv4 prefix count by 25.0%"),
        (vec!["--db", &list_a, "--deny", "KR"], 7, "names KR"),
        (vec!["--db", &older], 8, "was built 2001-09-09"),
        (vec!["--db", &list_a], 3, "unchanged"),
        (vec!["--deny", "JP", "--unknown", "drop"], 3, "unchanged"),
    ];
    for (args, want_code, want_text) in cases {
        let before = filter.snapshot();
        let (code, out) = filter.update(&args);
        assert_eq!(code, want_code, "{args:?}: {out}");
        assert!(out.contains(want_text), "{args:?}: {out}");
        // Only what `--force` would take says so (a guard's refusal, exits 6 to 8).
        assert_eq!(
            out.trim_end().ends_with("; override with --force"),
            (6..=8).contains(&code),
            "{args:?}: {out}"
        );
        assert_eq!(filter.snapshot(), before, "{args:?} changed something");
    }

    // A second update while another command holds the lock: exit 4.
    let lock = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(filter.inst.state_dir.join(format!("{}.lock", filter.iface)))
        .unwrap();
    lock.lock().unwrap();
    let before = filter.snapshot();
    let (code, out) = filter.update(&["--db", &filter.list_b, "--wait", "200ms"]);
    assert_eq!(code, 4, "{out}");
    assert!(
        out.contains("another regionfilter command is working on this interface"),
        "{out}"
    );
    assert_eq!(filter.snapshot(), before);
    drop(lock);

    // --force takes what the guards refused.
    let (code, out) = filter.update(&["--db", &bigger, "--force"]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn rollback_restores_the_previous_data_and_policy_only_updates_keep_the_data() {
    let filter = Attached::new("uproll");
    let mut probe = filter.probe();
    let (code, out) = filter
        .inst
        .output_text(None, &["rollback", "--iface", &filter.iface]);
    assert_eq!(code, 1, "nothing to roll back to yet: {out}");
    assert!(out.contains("nothing to roll back to"), "{out}");

    assert_eq!(filter.update(&["--db", &filter.list_b]).0, 0);
    assert_eq!(probe.answering_list(), 'B');
    let (code, out) = filter
        .inst
        .output_text(None, &["rollback", "--iface", &filter.iface]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(probe.answering_list(), 'A');
    // Rolling back again goes forward to B: previous and current trade places.
    assert_eq!(
        filter
            .inst
            .output_text(None, &["rollback", "--iface", &filter.iface])
            .0,
        0
    );
    assert_eq!(probe.answering_list(), 'B');

    // A policy change alone keeps the loaded data (list B: 10.3/16 is JP).
    let (code, out) = filter.update(&["--deny", "FR", "--unknown", "drop"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(probe.verdict("11.2.0.1"), XDP_DROP, "FR now denied");
    assert_eq!(probe.verdict("11.3.7.7"), XDP_PASS, "JP no longer denied");
    // New data alone keeps the loaded policy.
    assert_eq!(filter.update(&["--db", &filter.list_a]).0, 0);
    assert_eq!(probe.verdict("11.2.0.1"), XDP_DROP, "FR still denied");
    let status = filter.inst.ok(None, &["status"]).unwrap();
    assert!(status.contains("deny FR"), "{status}");
}

/// A damaged current known-good copy (a bit flip, a truncation) never blocks moving to good
/// data: an update with the data given goes ahead (only the absolute guards can run), and an
/// unchanged one writes the copy again.
#[test]
fn a_damaged_known_good_copy_never_blocks_an_update_and_is_written_again() {
    let filter = Attached::new("updamage");
    let mut probe = filter.probe();
    let current = filter
        .inst
        .lib_dir()
        .join(&filter.iface)
        .join("current.rgnf");
    let good = std::fs::read(&current).unwrap();
    // Truncated: an unchanged update writes it again (exit 3, nothing switched).
    std::fs::write(&current, &good[..good.len() / 2]).unwrap();
    let (code, out) = filter.update(&["--db", &filter.list_a]);
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains("wrote the missing or damaged known-good copy"),
        "{out}"
    );
    // A bit flip: an update to other data switches.
    let mut flipped = good.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x01;
    std::fs::write(&current, &flipped).unwrap();
    let (code, out) = filter.update(&["--db", &filter.list_b]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(probe.answering_list(), 'B');
    assert_ne!(std::fs::read(&current).unwrap(), flipped);
    // Whole again: a policy-only update, which needs the copy's data, goes through.
    let (code, out) = filter.update(&["--deny", "FR"]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn policy_options_on_update_change_only_what_they_name() {
    // Attached with a management exception and `--unknown drop` (plus the POLICY deny-list).
    let filter = Attached::with_options("uppart", &["--allow-cidr", "11.9.0.0/16"]);
    let mut probe = filter.probe();
    assert_eq!(probe.verdict("11.9.1.1"), XDP_PASS, "management network");
    // Countries only: the exception and --unknown drop stay, and the line says so.
    let (code, out) = filter.update(&["--allow", "GB"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(
            "allow GB; unknown drop; malformed pass; always pass 11.9.0.0/16; always drop none"
        ),
        "{out}"
    );
    assert_eq!(
        probe.verdict("11.9.1.1"),
        XDP_PASS,
        "the exception was kept"
    );
    assert_eq!(probe.verdict("11.1.2.3"), XDP_PASS, "GB allowed");
    assert_eq!(
        probe.verdict("11.2.0.1"),
        XDP_DROP,
        "FR not on the allow-list"
    );
    assert_eq!(
        probe.verdict("11.200.0.1"),
        XDP_DROP,
        "unknown still dropped"
    );
    // One verdict only: the list and the exception stay.
    let (code, out) = filter.update(&["--unknown", "pass"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("allow GB; unknown pass; malformed pass; always pass 11.9.0.0/16"),
        "{out}"
    );
    assert_eq!(probe.verdict("11.200.0.1"), XDP_PASS);
    // A complete new policy drops what it does not name.
    let (code, out) = filter.update(&["--reset-policy", "--deny", "FR"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("deny FR; unknown pass; malformed pass; always pass none; always drop none"),
        "{out}"
    );
    // Without one it is a bad command line (exit 2), as the README's table says.
    let (code, out) = filter.update(&["--reset-policy"]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("<--policy <FILE>|--allow <LIST>|--deny <LIST>>"),
        "{out}"
    );
}

#[test]
fn a_country_accepted_without_prefixes_blocks_no_refresh_but_data_losing_one_is_refused() {
    // Neither list has KR. Once accepted (attach only warns; here an operator forces it),
    // every later refresh that still lacks it goes ahead (the agent would otherwise be refused
    // on every pass).
    let filter = Attached::new("upacc");
    let mut probe = filter.probe();
    let (code, out) = filter.update(&["--deny", "JP,KR"]);
    assert_eq!(code, 7, "{out}");
    let (code, out) = filter.update(&["--deny", "JP,KR", "--force"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = filter.update(&["--db", &filter.list_b]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(probe.answering_list(), 'B');
    // Newly naming a country the data lacks is still refused (a typo'd code, say).
    let before = filter.snapshot();
    let (code, out) = filter.update(&["--deny", "JP,KR,DE"]);
    assert_eq!(code, 7, "{out}");
    assert!(out.contains("names DE"), "{out}");
    assert_eq!(filter.snapshot(), before);
    // DE is in list A: naming it there is fine ...
    let (code, out) = filter.update(&["--db", &filter.list_a, "--deny", "JP,KR,DE"]);
    assert_eq!(code, 0, "{out}");
    // ... and data that loses it is refused, while KR, never there, is not held against it.
    let before = filter.snapshot();
    let (code, out) = filter.update(&["--db", &filter.list_b]);
    assert_eq!(code, 7, "{out}");
    assert!(out.contains("names DE but"), "{out}");
    assert_eq!(filter.snapshot(), before);
}

/// `.tar.gz` with one `.mmdb` member, as MaxMind ships databases.
fn tar_gz(name: &str, data: &[u8]) -> Vec<u8> {
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    builder
        .append_data(
            &mut header,
            format!("GeoLite2-Country_20260101/{name}"),
            data,
        )
        .unwrap();
    builder.into_inner().unwrap().finish().unwrap()
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(data))
}

/// The download progress line (`downloaded URL N B/N B ...`).
fn out_has_progress(text: &str) -> bool {
    text.contains("downloaded http")
}

#[test]
fn downloads_are_verified_and_failed_ones_change_nothing() {
    use integration_tests::http::{Reply, Server};
    let filter = Attached::new("upurl");
    let mut probe = filter.probe();
    let list_b = std::fs::read(&filter.list_b).unwrap();
    let mmdb = std::fs::read(fixture("maxmind/GeoLite2-Country-Test.mmdb")).unwrap();
    let archive = tar_gz("GeoLite2-Country-Test.mmdb", &mmdb);
    let (good_sum, archive_sum) = (sha256_hex(&list_b), sha256_hex(&archive));
    let server = Server::start(move |req| match req.path.as_str() {
        "/fail.txt" => Reply::status(500),
        "/cut.txt" => Reply {
            cut_at: Some(list_b.len() / 2),
            ..Reply::ok(list_b.clone())
        },
        "/b.txt" | "/key/s3cret/b.txt" => {
            if req.headers.get("if-none-match").map(String::as_str) == Some("\"v1\"") {
                Reply::status(304)
            } else {
                Reply {
                    headers: vec![("ETag".into(), "\"v1\"".into())],
                    ..Reply::ok(list_b.clone())
                }
            }
        }
        "/b.txt.sha256" => Reply::ok(format!("{good_sum}  b.txt\n")),
        "/wrong.sha256" => Reply::ok(format!("{}  b.txt\n", "0".repeat(64))),
        "/GeoLite2-Country.tar.gz" => Reply::ok(archive.clone()),
        "/GeoLite2-Country.tar.gz.sha256" => Reply::ok(format!("{archive_sum}  x.tar.gz\n")),
        _ => Reply::status(404),
    });
    let url = |path: &str| server.url(path);
    let downloads = filter.inst.lib_dir().join("downloads");

    // (arguments, exit code, what the message says): a plain-http remote URL is a usage error.
    let failures: Vec<(Vec<String>, i32, &str)> = vec![
        (vec![url("/fail.txt")], 1, "HTTP 500"),
        (vec![url("/cut.txt")], 1, "download of"),
        (
            vec![url("/b.txt"), "--sha256-url".into(), url("/wrong.sha256")],
            1,
            "checksum mismatch",
        ),
        (vec!["https://127.0.0.1:1/b.txt".into()], 1, "download of"),
        (vec!["http://example.com/b.txt".into()], 2, "only https://"),
    ];
    for (args, want_code, want) in failures {
        let before = filter.snapshot();
        let mut full = vec!["--url"];
        full.extend(args.iter().map(String::as_str));
        let (code, out) = filter.update(&full);
        assert_eq!(code, want_code, "{full:?}: {out}");
        assert!(out.contains(want), "{full:?}: {out}");
        assert_eq!(filter.snapshot(), before, "{full:?} changed something");
        let cached: Vec<_> = std::fs::read_dir(&downloads)
            .map(|d| {
                d.flatten()
                    .flat_map(|e| std::fs::read_dir(e.path()).unwrap())
                    .flatten()
                    .map(|e| e.file_name())
                    // The URL's lock, which serialises fetches of it, is all that may be there.
                    .filter(|name| name != "lock")
                    .collect()
            })
            .unwrap_or_default();
        assert!(
            cached.is_empty(),
            "{full:?} left files in the download cache: {cached:?}"
        );
    }

    let (code, out) = filter.update(&[
        "--url",
        &url("/b.txt"),
        "--sha256-url",
        &url("/b.txt.sha256"),
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(
        !out_has_progress(&out),
        "progress drawn without a terminal: {out}"
    );
    assert_eq!(probe.answering_list(), 'B');
    // The second run asks with If-None-Match, gets 304 and writes nothing.
    let (code, out) = filter.update(&["--url", &url("/b.txt")]);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("not modified"), "{out}");

    // {license_key} comes from the environment, and never appears in messages.
    let out = filter
        .inst
        .command(
            None,
            &[
                "update",
                "--iface",
                &filter.iface,
                "--url",
                &url("/key/{license_key}/b.txt"),
            ],
        )
        .env("MAXMIND_LICENSE_KEY", "s3cret")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(!text.contains("s3cret"), "{text}");

    // Progress only on a terminal: the download above drew none; under a pseudo terminal
    // (`script`) one does.
    let inst = &filter.inst;
    let command = format!(
        "REGIONFILTER_PIN_ROOT={} REGIONFILTER_STATE_DIR={} REGIONFILTER_LIB_DIR={} {} update --iface {} --url {}",
        inst.pin_root.display(),
        inst.state_dir.display(),
        inst.lib_dir().display(),
        integration_tests::cli::binary().display(),
        filter.iface,
        url("/GeoLite2-Country.tar.gz"),
    );
    let tty = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env_remove("SSH_CONNECTION")
        .env_remove("SSH_CLIENT")
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&tty.stdout);
    assert!(
        out_has_progress(&shown),
        "no progress on a terminal: {shown}"
    );

    // MaxMind's .tar.gz: the .mmdb inside is loaded (other data: --force past the guards).
    let (code, out) = filter.update(&[
        "--url",
        &url("/GeoLite2-Country.tar.gz"),
        "--sha256-url",
        &url("/GeoLite2-Country.tar.gz.sha256"),
        "--force",
    ]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        probe.verdict("81.2.69.160"),
        XDP_PASS,
        "GB from the archive's database"
    );
    assert_eq!(
        probe.verdict("11.1.2.3"),
        XDP_DROP,
        "list data gone: unknown drops"
    );
    let log = server.log.lock().unwrap().clone();
    assert!(log.contains(&"/key/s3cret/b.txt".to_owned()), "{log:?}");
}

/// Every directory and file in the download cache, with the files' bytes; `with_locks: false`
/// lists files only and leaves out the lock a fetch takes on its URL's directory, which (with
/// that directory) is all a failed download may leave.
fn download_cache(dir: &std::path::Path, with_locks: bool) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                if with_locks {
                    files.push((path.clone(), Vec::new()));
                }
                pending.push(path);
            } else if with_locks || entry.file_name() != "lock" {
                files.push((path.clone(), std::fs::read(&path).unwrap()));
            }
        }
    }
    files.sort();
    files
}

/// `update --url` over real HTTPS from a loopback server whose certificate a test CA signed,
/// a CA no store holds: a bad `--ca-file` is refused before anything is fetched, the server is
/// refused without its CA, and trusted through `--ca-file` or through the system store's
/// `SSL_CERT_FILE`. Each refusal leaves the filter and the download cache as they were.
#[test]
fn https_from_a_private_ca_needs_that_ca_and_a_bad_ca_file_changes_nothing() {
    use integration_tests::http::{Reply, Server};
    let filter = Attached::new("upca");
    let mut probe = filter.probe();
    let list_a = std::fs::read(&filter.list_a).unwrap();
    let list_b = std::fs::read(&filter.list_b).unwrap();
    let sum_b = format!("{}  b.txt\n", sha256_hex(&list_b));
    let served = (list_a.len() + list_b.len() + sum_b.len()) as u64;
    let server = Server::start_tls(move |req| match req.path.as_str() {
        "/a.txt" => Reply::ok(list_a.clone()),
        "/b.txt" => Reply::ok(list_b.clone()),
        "/b.txt.sha256" => Reply::ok(sum_b.clone()),
        _ => Reply::status(404),
    });
    assert!(server.url("/").starts_with("https://127.0.0.1:"));
    let scratch = tempfile::tempdir().unwrap();
    let ca = server.ca().unwrap().write_pem(scratch.path());
    let missing = scratch.path().join("missing.pem");
    let no_certificate = scratch.path().join("key-only.pem");
    std::fs::write(
        &no_certificate,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let downloads = filter.inst.lib_dir().join("downloads");
    // `update --iface IF ARGS`, with the system store as the host has it unless `cert_file`
    // stands in for it (SSL_CERT_FILE); the first line of stderr and all the output.
    let run = |args: &[&str], cert_file: Option<&std::path::Path>| {
        let mut full = vec!["update", "--iface", &filter.iface];
        full.extend_from_slice(args);
        let mut cmd = filter.inst.command(None, &full);
        cmd.env_remove("SSL_CERT_FILE").env_remove("SSL_CERT_DIR");
        if let Some(file) = cert_file {
            cmd.env("SSL_CERT_FILE", file);
        }
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let first = stderr.lines().next().unwrap_or_default().to_owned();
        let all = String::from_utf8_lossy(&out.stdout).into_owned() + &stderr;
        (out.status.code().unwrap_or(-1), first, all)
    };
    let url_b = server.url("/b.txt");
    let sum_url = server.url("/b.txt.sha256");

    // A CA file that is missing or holds no certificate: refused before anything is fetched.
    for (file, line) in [
        (
            &missing,
            format!(
                "error: cannot read the CA file {}: No such file or directory (os error 2)",
                missing.display()
            ),
        ),
        (
            &no_certificate,
            format!(
                "error: the CA file {} holds no certificate (give PEM: -----BEGIN CERTIFICATE----- ...)",
                no_certificate.display()
            ),
        ),
    ] {
        let (before, cache) = (filter.snapshot(), download_cache(&downloads, true));
        let ca_file = file.display().to_string();
        let (code, first, all) = run(&["--url", &url_b, "--ca-file", &ca_file], None);
        assert_eq!((code, first), (1, line), "{all}");
        assert_eq!(filter.snapshot(), before, "{ca_file} changed the filter");
        assert_eq!(download_cache(&downloads, true), cache, "{ca_file} touched the cache");
    }
    assert_eq!(server.requests(), 0, "a bad CA file still fetched");

    // Without its CA the handshake refuses the server: no request is sent, nothing changes.
    let (before, cache) = (filter.snapshot(), download_cache(&downloads, false));
    let (code, first, all) = run(&["--url", &url_b, "--sha256-url", &sum_url], None);
    assert_eq!(code, 1, "{all}");
    assert_eq!(
        first,
        format!(
            "error: download of {url_b} failed: the server's certificate is not trusted \
             (invalid peer certificate: UnknownIssuer); a server under a private CA needs that \
             CA in the system's store or in a CA file (`update --ca-file`, the agent's `ca_file`)"
        ),
        "{all}"
    );
    assert_eq!(
        filter.snapshot(),
        before,
        "an untrusted server changed the filter"
    );
    assert_eq!(download_cache(&downloads, false), cache);
    assert_eq!(
        server.requests(),
        0,
        "a request went to an untrusted server"
    );

    // --ca-file: both downloads trust it, and list B is applied.
    let ca_file = ca.display().to_string();
    let (code, _, all) = run(
        &[
            "--url",
            &url_b,
            "--sha256-url",
            &sum_url,
            "--ca-file",
            &ca_file,
        ],
        None,
    );
    assert_eq!(code, 0, "{all}");
    assert_eq!(probe.answering_list(), 'B');
    assert_eq!(server.requests(), 2);

    // The system store: SSL_CERT_FILE naming the CA, no --ca-file. List A comes back.
    let (code, _, all) = run(&["--url", &server.url("/a.txt")], Some(&ca));
    assert_eq!(code, 0, "{all}");
    assert_eq!(probe.answering_list(), 'A');
    assert_eq!(server.requests(), 3);
    // Counted once written, which the client may finish reading a moment before.
    let all_counted = integration_tests::wait::wait_until(
        Duration::from_secs(5),
        Duration::from_millis(10),
        || server.body_bytes_sent() == served,
    );
    assert!(
        all_counted,
        "{} of {served} body bytes",
        server.body_bytes_sent()
    );
    assert!(server.bytes_sent() > served);
}

#[test]
fn update_all_switches_every_attached_interface_and_status_shows_the_kernel_half() {
    let first = Attached::new("upall");
    // A second interface under the same pin root and state directory.
    let pair = integration_tests::netns::VethPair::new("upall2").expect("namespaces");
    let mut args = vec![
        "attach",
        "--iface",
        &pair.receiver_if,
        "--mode",
        "skb",
        "--db",
        &first.list_a,
    ];
    args.extend(integration_tests::update::POLICY);
    first
        .inst
        .ok(Some(&pair.receiver), &args)
        .expect("attach second");

    let (code, out) = first
        .inst
        .output_text(None, &["update", "--all", "--db", &first.list_b]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.matches("switched to half 0").count(), 2, "{out}");
    assert_eq!(first.probe().answering_list(), 'B');
    let (code, out) = first
        .inst
        .output_text(None, &["update", "--all", "--db", &first.list_b]);
    assert_eq!(code, 3, "every interface unchanged: {out}");
    // A guard refuses on each interface, and each line says how to override it.
    let (code, out) = first
        .inst
        .output_text(None, &["update", "--all", "--deny", "JP,KR"]);
    assert_eq!(code, 7, "{out}");
    assert_eq!(
        out.matches("names KR but the new data has no prefixes for it; override with --force\n")
            .count(),
        2,
        "{out}"
    );
    let status = first.inst.ok(None, &["status"]).unwrap();
    assert_eq!(
        status
            .matches("kernel:      fast lookup, half 0 active, generation 2")
            .count(),
        2,
        "{status}"
    );
    assert!(!status.contains("stale"), "{status}");
    first
        .inst
        .ok(
            Some(&pair.receiver),
            &["detach", "--iface", &pair.receiver_if],
        )
        .unwrap();
}

/// Pins left by a build whose tables have another shape (here: the first IPv4 level of the
/// build before it, one chunk per /16) are refused with what to do, instead of being filled
/// in a layout the attached program would misread.
#[test]
fn pins_from_a_build_with_other_table_shapes_are_refused() {
    use filter_common::maps::HALF;
    use filter_user::{kernel::maps::FilterMaps, kernel::program};

    let inst = integration_tests::cli::Instance::new();
    let dir = inst.pin_root.join("eth9");
    std::fs::create_dir_all(&dir).unwrap();
    let mut older = program::loader(filter_user::model::lookup::Lookup::Fast)
        .map_max_entries(HALF[1].v4_l1, 1 << 16)
        .load(filter_user::kernel::program::EBPF_OBJECT)
        .unwrap();
    FilterMaps::take(&mut older, Some(&dir)).unwrap();
    let err = FilterMaps::open_pinned(&dir)
        .err()
        .expect("pins of another shape must be refused");
    let message = format!("{err:#}");
    assert!(
        message.contains("different regionfilter build")
            && message.contains(HALF[1].v4_l1)
            && message.contains("detach and attach again"),
        "{message}"
    );

    // The same build's pins open.
    let current_dir = inst.pin_root.join("eth8");
    std::fs::create_dir_all(&current_dir).unwrap();
    let mut current = program::load_object(
        filter_user::model::lookup::Lookup::Fast,
        filter_user::model::iface::LinkLayer::Ethernet,
    )
    .unwrap();
    FilterMaps::take(&mut current, Some(&current_dir)).unwrap();
    FilterMaps::open_pinned(&current_dir).expect("this build's pins open");
}
