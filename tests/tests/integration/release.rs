//! Signed releases with the real `minisign` CLI on both sides: a key `minisign -G` made signs a
//! release through `regionfilter release`, which `minisign -V` verifies; a manifest `minisign -S`
//! signed verifies with `regionfilter verify`; and a changed manifest, another key, another
//! release's artifact and a rollback are refused by `verify` with exit 1, naming the reason.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use integration_tests::{cli::binary, consts::TEST_DB};

fn run(program: &Path, args: &[&str], dir: &Path) -> Output {
    Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()))
}

fn minisign(args: &[&str], dir: &Path) -> Output {
    run(Path::new("minisign"), args, dir)
}

fn regionfilter(args: &[&str], dir: &Path) -> Output {
    run(&binary(), args, dir)
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A directory with a key pair made by `minisign -G -W` (`name.pub`, `name.key`).
fn keypair(dir: &Path, name: &str) {
    let out = minisign(
        &[
            "-G",
            "-W",
            "-p",
            &format!("{name}.pub"),
            "-s",
            &format!("{name}.key"),
        ],
        dir,
    );
    assert!(out.status.success(), "minisign -G: {}", text(&out));
}

/// An artifact denying `country`, compiled from the bundled test database.
fn artifact(dir: &Path, name: &str, country: &str) -> PathBuf {
    let out = regionfilter(
        &[
            "compile", "--db", &TEST_DB, "--deny", country, "--out", name,
        ],
        dir,
    );
    assert!(out.status.success(), "compile: {}", text(&out));
    dir.join(name)
}

fn publish(dir: &Path, artifact: &str, key: &str, version: &str) {
    let out = regionfilter(
        &[
            "release",
            "--artifact",
            artifact,
            "--out",
            "rel",
            "--version",
            version,
            "--plan",
            "dry:1%,10%,100%",
            "--secret-key",
            key,
        ],
        dir,
    );
    assert!(out.status.success(), "release: {}", text(&out));
}

#[test]
fn releases_interoperate_with_the_minisign_cli_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    keypair(dir, "k");
    artifact(dir, "gb.rgnf", "GB");
    publish(dir, "gb.rgnf", "k.key", "3");

    // Ours, verified by minisign.
    let out = minisign(&["-V", "-p", "k.pub", "-m", "rel/release.json"], dir);
    assert!(out.status.success(), "minisign -V: {}", text(&out));
    assert!(
        text(&out).contains("regionfilter release stable 3"),
        "{}",
        text(&out)
    );

    // Minisign's, verified by us.
    let out = minisign(
        &[
            "-S",
            "-s",
            "k.key",
            "-m",
            "rel/release.json",
            "-t",
            "signed by the minisign CLI",
        ],
        dir,
    );
    assert!(out.status.success(), "minisign -S: {}", text(&out));
    let out = regionfilter(&["verify", "rel", "--public-key", "k.pub"], dir);
    assert!(out.status.success(), "verify: {}", text(&out));
    assert!(
        text(&out).starts_with("verified stable 3: signed by key "),
        "{}",
        text(&out)
    );
}

#[test]
fn verify_refuses_each_attack_with_exit_1_and_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    keypair(dir, "k");
    keypair(dir, "other");
    artifact(dir, "gb.rgnf", "GB");
    artifact(dir, "jp.rgnf", "JP");
    let verify = |extra: &[&str]| {
        let mut args = vec!["verify", "rel", "--public-key", "k.pub"];
        args.extend_from_slice(extra);
        regionfilter(&args, dir)
    };
    let refused = |out: Output, why: &str| {
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with("error: release in rel refused: "), "{err}");
        assert!(err.contains(why), "{why}: {err}");
        assert!(out.stdout.is_empty());
    };

    // A manifest changed after signing.
    publish(dir, "gb.rgnf", "k.key", "3");
    let manifest = dir.join("rel/release.json");
    let good = fs::read_to_string(&manifest).unwrap();
    fs::write(&manifest, good.replace("\"version\": 3", "\"version\": 4")).unwrap();
    refused(verify(&[]), "does not verify with key");

    // Signed by a key the node does not trust.
    publish(dir, "gb.rgnf", "other.key", "3");
    refused(verify(&[]), "none of the configured keys");
    // ... which it does once that key is configured too (key rotation).
    let out = verify(&["--public-key", "other.pub"]);
    assert!(out.status.success(), "{}", text(&out));

    // Another release's artifact under this release's manifest.
    publish(dir, "gb.rgnf", "k.key", "3");
    fs::copy(dir.join("jp.rgnf"), dir.join("rel/release-stable-3.rgnf")).unwrap();
    refused(verify(&[]), "does not match the manifest");

    // Older than what the node runs.
    publish(dir, "gb.rgnf", "k.key", "3");
    refused(verify(&["--running", "4"]), "rollback protection");

    // No signature at all.
    fs::remove_file(dir.join("rel/release.json.minisig")).unwrap();
    refused(verify(&[]), "no signature");
}

/// A node applying releases with `update --release-url` from a loopback server: the first
/// applies and is recorded, the same again is unchanged, an older one and a changed manifest
/// are refused with nothing changed, a stage that leaves this node out changes nothing, and a
/// dry-run stage applies the policy as a dry run.
#[test]
fn update_applies_only_verified_releases_in_this_nodes_stage() {
    use integration_tests::{
        http::{Reply, Server},
        update::{Attached, POLICY},
    };
    let filter = Attached::new("uprel");
    let work = tempfile::tempdir().unwrap();
    let work = work.path();
    keypair(work, "k");
    let mut compile = vec!["compile", "--db", filter.list_b.as_str()];
    compile.extend(POLICY);
    compile.extend(["--out", "b.rgnf"]);
    let out = regionfilter(&compile, work);
    assert!(out.status.success(), "compile: {}", text(&out));
    let served = work.join("rel");
    let server = {
        let served = served.clone();
        Server::start(move |req| {
            let name = req.path.trim_start_matches("/rel/");
            match fs::read(served.join(name)) {
                Ok(bytes) if !name.contains('/') => Reply::ok(bytes),
                _ => Reply::status(404),
            }
        })
    };
    let url = server.url("/rel");
    let publish_v = |version: &str, plan: &str, stage: &str| {
        let out = regionfilter(
            &[
                "release",
                "--artifact",
                "b.rgnf",
                "--out",
                "rel",
                "--version",
                version,
                "--plan",
                plan,
                "--stage",
                stage,
                "--secret-key",
                "k.key",
            ],
            work,
        );
        assert!(out.status.success(), "release: {}", text(&out));
    };
    let public = work.join("k.pub").display().to_string();
    let apply = |node: &str| {
        filter.update(&[
            "--release-url",
            &url,
            "--public-key",
            &public,
            "--node",
            node,
        ])
    };
    // A node name that the stage in force takes (`true`) or leaves out (`false`).
    let node_where = |taken: bool| -> String {
        (0..5000)
            .map(|i| format!("node-{i}"))
            .find(|node| {
                let out = regionfilter(
                    &["verify", "rel", "--public-key", "k.pub", "--node", node],
                    work,
                );
                assert!(out.status.success(), "verify: {}", text(&out));
                text(&out).contains("keeps what it runs") != taken
            })
            .expect("a node on each side of the stage")
    };
    let recorded = filter
        .inst
        .lib_dir()
        .join(&filter.iface)
        .join("release.json");

    publish_v("2", "100%", "0");
    let (code, out) = apply("edge-1");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("switched to half"), "{out}");
    assert!(fs::read_to_string(&recorded)
        .unwrap()
        .contains("\"version\": 2"));
    let (code, out) = apply("edge-1");
    assert_eq!(code, 3, "{out}");

    // An older release, and a manifest changed on the server: refused, nothing changed.
    let before = filter.snapshot();
    publish_v("1", "100%", "0");
    let (code, out) = apply("edge-1");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("rollback protection"), "{out}");
    publish_v("4", "100%", "0");
    let manifest = served.join("release.json");
    let good = fs::read_to_string(&manifest).unwrap();
    fs::write(&manifest, good.replace("\"version\": 4", "\"version\": 5")).unwrap();
    let (code, out) = apply("edge-1");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("does not verify with key"), "{out}");
    assert!(
        filter.snapshot() == before,
        "a refused release changed the filter"
    );
    assert!(fs::read_to_string(&recorded)
        .unwrap()
        .contains("\"version\": 2"));

    // A stage that leaves this node out: nothing changes; one that takes it, as a dry run.
    publish_v("6", "10%,100%", "0");
    let (code, out) = apply(&node_where(false));
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("does not include node"), "{out}");
    assert!(
        filter.snapshot() == before,
        "a node outside the stage changed"
    );
    publish_v("7", "dry:50%,100%", "0");
    let (code, out) = apply(&node_where(true));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("DRY RUN of deny JP"), "{out}");
    assert!(fs::read_to_string(&recorded)
        .unwrap()
        .contains("\"version\": 7"));
}
