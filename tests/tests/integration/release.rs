//! Signed releases with the real `minisign` CLI on both sides: a key `minisign -G` made signs a
//! release through `regionfilter release`, which `minisign -V` verifies; a manifest `minisign -S`
//! signed verifies with `regionfilter verify`; and a changed manifest, another key, another
//! release's artifact and a rollback are refused by `verify` with exit 1, naming the reason.

use std::{fs, process::Output};

use integration_tests::{
    consts::TEST_DB,
    release::{compile, keypair, minisign, publish, regionfilter, serve_other_channel, text},
};

/// An artifact denying `country`, compiled from the bundled test database.
fn artifact(dir: &std::path::Path, name: &str, country: &str) {
    compile(dir, name, &["--db", &TEST_DB, "--deny", country]);
}

#[test]
fn releases_interoperate_with_the_minisign_cli_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    keypair(dir, "k");
    artifact(dir, "gb.rgnf", "GB");
    publish(dir, "rel", "gb.rgnf", "k", 3, "dry:1%,10%,100%", 0);

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
    publish(dir, "rel", "gb.rgnf", "k", 3, "dry:1%,10%,100%", 0);
    let manifest = dir.join("rel/release.json");
    let good = fs::read_to_string(&manifest).unwrap();
    fs::write(&manifest, good.replace("\"version\": 3", "\"version\": 4")).unwrap();
    refused(verify(&[]), "does not verify with key");

    // Signed by a key the node does not trust.
    publish(dir, "rel", "gb.rgnf", "other", 3, "dry:1%,10%,100%", 0);
    refused(verify(&[]), "none of the configured keys");
    // ... which it does once that key is configured too (key rotation).
    let out = verify(&["--public-key", "other.pub"]);
    assert!(out.status.success(), "{}", text(&out));

    // Another release's artifact under this release's manifest.
    publish(dir, "rel", "gb.rgnf", "k", 3, "dry:1%,10%,100%", 0);
    fs::copy(dir.join("jp.rgnf"), dir.join("rel/release-stable-3.rgnf")).unwrap();
    refused(verify(&[]), "does not match the manifest");

    // Older than what the node runs.
    publish(dir, "rel", "gb.rgnf", "k", 3, "dry:1%,10%,100%", 0);
    refused(verify(&["--running", "4"]), "rollback protection");

    // No signature at all.
    fs::remove_file(dir.join("rel/release.json.minisig")).unwrap();
    refused(verify(&[]), "no signature");

    // A legacy (not prehashed) signature, which `minisign -S -l` still makes: said as such.
    publish(dir, "rel", "gb.rgnf", "k", 3, "dry:1%,10%,100%", 0);
    let out = minisign(&["-S", "-l", "-s", "k.key", "-m", "rel/release.json"], dir);
    assert!(out.status.success(), "minisign -S -l: {}", text(&out));
    refused(verify(&[]), "a legacy (not prehashed) signature");
}

/// A node applying releases with `update --release-url` from a loopback server: the first
/// (over HTTPS under a test CA: refused without `--ca-file`) applies and is recorded, the same
/// again is unchanged, an older one and a changed manifest
/// are refused with nothing changed, a stage that leaves this node out changes nothing, and a
/// dry-run stage applies the policy as a dry run.
#[test]
fn update_applies_only_verified_releases_in_this_nodes_stage() {
    use integration_tests::{
        http::Server,
        release::static_files,
        update::{Attached, POLICY},
    };
    let filter = Attached::new("uprel");
    let work = tempfile::tempdir().unwrap();
    let work = work.path();
    keypair(work, "k");
    let mut args = vec!["--db", filter.list_b.as_str()];
    args.extend(POLICY);
    compile(work, "b.rgnf", &args);
    let served = work.join("rel");
    let server = Server::start(static_files("rel", served.clone()));
    let url = server.url("/rel");
    // The same directory over HTTPS, as a release server inside a company: under a private CA.
    let tls = Server::start_tls(static_files("rel", served.clone()));
    let tls_url = tls.url("/rel");
    let ca = tls.ca().unwrap().write_pem(work).display().to_string();
    let publish_v = |version: u64, plan: &str, stage: usize| {
        publish(work, "rel", "b.rgnf", "k", version, plan, stage);
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

    publish_v(2, "100%", 0);
    // Over HTTPS: refused without the server's CA, with nothing changed or recorded; applied
    // with --ca-file. The same release over plain loopback http is then unchanged.
    let over_tls = |extra: &[&str]| {
        let mut args = vec![
            "--release-url",
            &tls_url,
            "--public-key",
            &public,
            "--node",
            "edge-1",
        ];
        args.extend_from_slice(extra);
        filter.update(&args)
    };
    let before = filter.snapshot();
    let (code, out) = over_tls(&[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(
            "the server's certificate is not trusted (invalid peer certificate: UnknownIssuer)"
        ),
        "{out}"
    );
    assert!(
        filter.snapshot() == before,
        "an untrusted server changed the filter"
    );
    assert!(!recorded.exists());
    assert_eq!(tls.requests(), 0);
    let (code, out) = over_tls(&["--ca-file", &ca]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("switched to half"), "{out}");
    assert!(fs::read_to_string(&recorded)
        .unwrap()
        .contains("\"version\": 2"));
    // The manifest, its signature and the artifact.
    assert_eq!(tls.requests(), 3);
    let (code, out) = apply("edge-1");
    assert_eq!(code, 3, "{out}");

    // An older release, and a manifest changed on the server: refused, nothing changed.
    let before = filter.snapshot();
    publish_v(1, "100%", 0);
    let (code, out) = apply("edge-1");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("rollback protection"), "{out}");
    publish_v(4, "100%", 0);
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
    publish_v(6, "10%,100%", 0);
    let (code, out) = apply(&node_where(false));
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("does not include node"), "{out}");
    assert!(
        filter.snapshot() == before,
        "a node outside the stage changed"
    );
    publish_v(7, "dry:50%,100%", 0);
    let (code, out) = apply(&node_where(true));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("DRY RUN of deny JP"), "{out}");
    assert!(fs::read_to_string(&recorded)
        .unwrap()
        .contains("\"version\": 7"));

    // A signed release of another channel served at this URL: refused, nothing changed.
    let before = filter.snapshot();
    serve_other_channel(work, &served, "b.rgnf", "k", "canary", 50);
    let (code, out) = apply("edge-1");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("is for channel \"canary\""), "{out}");
    assert!(
        filter.snapshot() == before,
        "another channel's release changed the filter"
    );

    // Rolling back to data built earlier is a higher version of an older artifact: the
    // older-data guard, right for a database refresh, does not stand in its way.
    let old_list = work.join("old-b.txt");
    fs::copy(&filter.list_b, &old_list).unwrap();
    let long_ago =
        std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_600_000_000);
    fs::File::options()
        .write(true)
        .open(&old_list)
        .unwrap()
        .set_modified(long_ago)
        .unwrap();
    let mut args = vec!["--db", old_list.to_str().unwrap()];
    args.extend(POLICY);
    compile(work, "old-b.rgnf", &args);
    publish(work, "rel", "old-b.rgnf", "k", 60, "100%", 0);
    let (code, out) = apply("edge-1");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("switched to half"), "{out}");
}

/// The agent following a release channel from an HTTPS server (a test CA in `ca_file`) on its
/// namespace's loopback, polling
/// every second: it attaches the first release; refuses, with its reason in the log and the
/// metrics and nothing changed, a manifest changed after signing, another key's signature, a
/// missing signature, another release's artifact, an expired manifest its key really signed,
/// and an older release; keeps what it runs while a stage leaves it out; applies a `dry:`
/// stage as a dry run, and enforces when the stage advances.
#[test]
fn the_agent_follows_a_release_channel_and_refuses_each_attack_changing_nothing() {
    use integration_tests::{
        agent::{get, Agent},
        http::Server,
        netns::VethPair,
        prometheus::{promtool_check, series},
        release::{compile, keypair, publish, resign, static_files},
    };
    const LISTEN: &str = "127.0.0.1:9877";
    let pair = VethPair::new("agrel").unwrap();
    let (ns, iface) = (&pair.receiver, pair.receiver_if.clone());
    let inst = integration_tests::cli::Instance::new();
    let work = tempfile::tempdir().unwrap();
    let work = work.path();
    keypair(work, "k");
    keypair(work, "other");
    compile(work, "gb.rgnf", &["--db", &TEST_DB, "--deny", "GB"]);
    compile(work, "jp.rgnf", &["--db", &TEST_DB, "--deny", "JP"]);
    // A node whose position in the GB artifact's rollout leaves room on both sides of it.
    let gb_sha = {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(
            fs::read(work.join("gb.rgnf")).unwrap(),
        ))
    };
    let (node, position) = (0..1000)
        .map(|i| format!("edge-{i}"))
        .map(|n| {
            let p = filter_user::ops::release::cohort(&n, "stable", &gb_sha);
            (n, p)
        })
        .find(|(_, p)| (10..990).contains(p))
        .unwrap();
    let share = |per_mille: u16| format!("{}.{}%", per_mille / 10, per_mille % 10);

    // Over HTTPS under a test CA, as a release server inside a company.
    let server = Server::start_tls_in(ns, static_files("rel", work.join("rel"))).unwrap();
    let ca = server.ca().unwrap().write_pem(work);
    let config = work.join("agent.toml");
    fs::write(
        &config,
        format!(
            "metrics_listen = \"{LISTEN}\"\nretry = \"1s\"\nrelease_poll = \"1s\"\n\
             public_keys = [\"{}\"]\nnode_name = \"{node}\"\nca_file = \"{}\"\n\n\
             [[interface]]\nname = \"{iface}\"\nmode = \"skb\"\nrelease_url = \"{}\"\n",
            work.join("k.pub").display(),
            ca.display(),
            server.url("/rel")
        ),
    )
    .unwrap();
    let recorded = inst.lib_dir().join(&iface).join("release.json");
    let metrics = || get(ns, LISTEN, "/metrics").unwrap().1;
    let value = |name: &str, labels: &str| series(&metrics(), name, labels);
    let channel = format!("interface=\"{iface}\",channel=\"stable\"");
    let generation = || value("regionfilter_generation", &format!("interface=\"{iface}\""));

    publish(work, "rel", "gb.rgnf", "k", 1, "100%", 0);
    let mut agent = Agent::start(&inst, ns, &config, &[]).unwrap();
    agent
        .wait_for(&[
            "event=release_applied",
            &format!("iface={iface}"),
            "version=1",
        ])
        .unwrap();
    agent.wait_for(&["event=reconciled", "ready=1"]).unwrap();
    assert_eq!(value("regionfilter_release_version", &channel), Some(1));
    let first = generation();

    // Each attack: refused by its reason, the filter and the recorded release as they were.
    let refused = |agent: &mut Agent, reason: &str| {
        agent
            .wait_for(&["event=release_refused", &format!("reason={reason} ")])
            .unwrap();
        assert_eq!(generation(), first, "{reason}: the filter changed");
        assert!(
            fs::read_to_string(&recorded)
                .unwrap()
                .contains("\"version\": 1"),
            "{reason}: the recorded release changed"
        );
    };
    let served = work.join("rel");
    publish(work, "rel", "jp.rgnf", "k", 2, "100%", 0);
    let manifest = served.join("release.json");
    let good = fs::read_to_string(&manifest).unwrap();
    fs::write(&manifest, good.replace("\"version\": 2", "\"version\": 3")).unwrap();
    refused(&mut agent, "bad_signature");
    publish(work, "rel", "jp.rgnf", "other", 2, "100%", 0);
    refused(&mut agent, "wrong_key");
    publish(work, "rel", "jp.rgnf", "k", 2, "100%", 0);
    fs::remove_file(served.join("release.json.minisig")).unwrap();
    refused(&mut agent, "no_signature");
    publish(work, "rel", "jp.rgnf", "k", 2, "100%", 0);
    fs::copy(work.join("gb.rgnf"), served.join("release-stable-2.rgnf")).unwrap();
    refused(&mut agent, "mismatch");
    // Signed by the right key, but a week past its expiry: a mirror serving an old release.
    publish(work, "rel", "jp.rgnf", "k", 2, "100%", 0);
    resign(work, "rel", "k", |text| {
        let mut m: serde_json::Value = serde_json::from_str(text).unwrap();
        let week = 7 * 86_400;
        for key in ["created", "expires"] {
            m[key] = (m[key].as_u64().unwrap() - 2 * week).into();
        }
        serde_json::to_string_pretty(&m).unwrap()
    });
    refused(&mut agent, "expired");
    // A release of another channel, signed by the right key.
    serve_other_channel(work, &served, "jp.rgnf", "k", "canary", 50);
    refused(&mut agent, "wrong_channel");

    // A newer release applies; an older one is refused after it.
    publish(work, "rel", "jp.rgnf", "k", 3, "100%", 0);
    agent
        .wait_for(&["event=release_applied", "version=3"])
        .unwrap();
    let third = generation();
    assert_ne!(third, first);
    publish(work, "rel", "jp.rgnf", "k", 2, "100%", 0);
    agent
        .wait_for(&["event=release_refused", "reason=rollback "])
        .unwrap();
    assert_eq!(generation(), third);

    // A stage that leaves this node out: it keeps release 3, and stays ready.
    publish(
        work,
        "rel",
        "gb.rgnf",
        "k",
        4,
        &format!("{},100%", share(position)),
        0,
    );
    agent
        .wait_for(&["event=not_in_stage", "keeps what it runs"])
        .unwrap();
    let text = metrics();
    assert_eq!(
        series(&text, "regionfilter_release_version", &channel),
        Some(3)
    );
    assert_eq!(
        series(&text, "regionfilter_release_published_version", &channel),
        Some(4)
    );
    assert_eq!(
        series(&text, "regionfilter_release_cohort_per_mille", &channel),
        Some(u64::from(position))
    );
    assert_eq!(generation(), third);
    assert_eq!(
        series(
            &text,
            "regionfilter_interface_ready",
            &format!("interface=\"{iface}\"")
        ),
        Some(1)
    );
    // One more per mille takes it in: as a dry run first, then enforcing.
    let plan = format!("dry:{},100%", share(position + 1));
    publish(work, "rel", "gb.rgnf", "k", 5, &plan, 0);
    // Recorded inside the switch, so logged just before the switch's own line.
    agent
        .wait_for(&["event=release_applied", "version=5"])
        .unwrap();
    let line = agent
        .wait_for(&["event=updated", "DRY RUN of deny GB"])
        .unwrap();
    assert!(line.contains(&format!("iface={iface}")), "{line}");
    assert_eq!(value("regionfilter_release_dry_run", &channel), Some(1));
    publish(work, "rel", "gb.rgnf", "k", 6, &plan, 1);
    agent
        .wait_for(&["event=release_applied", "version=6"])
        .unwrap();
    assert_eq!(value("regionfilter_release_dry_run", &channel), Some(0));

    let text = metrics();
    promtool_check(&text).unwrap();
    for reason in [
        "bad_signature",
        "wrong_key",
        "no_signature",
        "mismatch",
        "expired",
        "wrong_channel",
        "rollback",
    ] {
        let n = series(
            &text,
            "regionfilter_release_refusals_total",
            &format!("interface=\"{iface}\",reason=\"{reason}\""),
        );
        assert!(n.is_some_and(|n| n >= 1), "{reason}: {n:?}");
    }
    let (status, log) = agent.stop().unwrap();
    assert!(status.success(), "{}", log.join("\n"));
    inst.ok(Some(ns), &["detach", "--iface", &iface]).unwrap();
    drop(server);
}
