//! A root tool that never destroys what is not its own, and whose exit codes tell the truth:
//! hostile interface names, foreign entries next to the pins, interrupted and concurrent
//! attaches, interfaces that vanish under a filter, bookkeeping that fails after the change
//! took effect, and raw-IP (tun) links. Everything runs in namespaces the tests create.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, UdpSocket},
    path::Path,
    process::Command,
    time::Duration,
};

use filter_user::{
    kernel::maps::FilterMaps, kernel::program, model::iface::LinkLayer, model::lookup::Lookup,
};
use integration_tests::{
    cli::{country_counts, Instance},
    consts::{GB_V4, JP_V6, SE_V4, TEST_DB, WAIT},
    netns::{run, unique_name, NetNs, VethPair},
    tun::{udp_packet, Tun},
    wait::wait_until,
};

fn attach<'a>(iface: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "attach",
        "--iface",
        iface,
        "--db",
        TEST_DB.as_str(),
        "--deny",
        "GB",
    ];
    args.extend_from_slice(extra);
    args
}

fn status_json(inst: &Instance) -> serde_json::Value {
    let text = inst.ok(None, &["status", "--json"]).unwrap();
    let status: serde_json::Value = serde_json::from_str(&text).unwrap();
    // Each entry names its interface once: a repeated key is invalid to strict parsers (and
    // serde_json would silently keep the last).
    assert_eq!(
        text.matches("\"iface\"").count(),
        status["interfaces"].as_array().unwrap().len(),
        "{text}"
    );
    status
}

/// Whether an XDP program is attached to `iface` in `ns`.
fn has_xdp(ns: &NetNs, iface: &str) -> bool {
    ns.ip(&["link", "show", iface])
        .unwrap()
        .contains("prog/xdp")
}

/// A foreign BPF map pinned at `path` (as another tool would leave one).
fn pin_foreign_map(path: &Path) {
    run(Command::new("bpftool")
        .args(["map", "create"])
        .arg(path)
        .args(["type", "array", "key", "4", "value", "4", "entries", "1"])
        .args(["name", "foreign"]))
    .expect("bpftool map create");
}

#[test]
fn hostile_interface_names_are_refused_before_any_path_is_built() {
    let pair = VethPair::new("names").unwrap();
    let inst = Instance::new();
    let ns = Some(&pair.receiver);
    let iface = pair.receiver_if.clone();
    inst.ok(ns, &attach(&iface, &["--mode", "skb"])).unwrap();

    // A directory the old `detach --iface ../../..` deleted recursively.
    let victim_dir = tempfile::Builder::new()
        .prefix("rfvictim")
        .tempdir()
        .unwrap();
    let victim = victim_dir.path();
    std::fs::create_dir_all(victim.join("inner")).unwrap();
    std::fs::write(victim.join("inner/file"), b"keep me").unwrap();
    let traversal = format!("../../../../../../..{}", victim.display());
    for args in [
        vec!["detach", "--iface", traversal.as_str()],
        vec!["detach", "--iface", ""],
        vec!["detach", "--iface", ".."],
        vec!["detach", "--iface", "."],
        vec!["detach", "--iface", "a/b"],
        vec!["detach", "--iface", "eth0 "],
        vec!["detach", "--iface", "x234567890123456"],
        vec!["update", "--iface", "", "--deny", "SE"],
        vec!["rollback", "--iface", "../x"],
        vec!["stats", "--iface", ".."],
        attach("", &[]),
        attach("../x", &[]),
    ] {
        let (code, out) = inst.output_text(ns, &args);
        assert_eq!(code, 2, "{args:?} should be a usage error: {out}");
        assert!(
            out.contains("interface name"),
            "{args:?} does not say what is wrong: {out}"
        );
    }
    assert_eq!(
        std::fs::read(victim.join("inner/file")).unwrap(),
        b"keep me",
        "a hostile name reached a path"
    );
    victim_dir.close().unwrap();
    // An unset `$IF` wiped nothing: the filter is still attached and filtering.
    assert_eq!(inst.attached(), vec![iface.clone()]);
    assert!(has_xdp(&pair.receiver, &iface));
}

#[test]
fn detach_removes_only_the_pins_regionfilter_created() {
    let pair = VethPair::new("own").unwrap();
    let inst = Instance::new();
    let ns = Some(&pair.receiver);
    let iface = pair.receiver_if.clone();
    inst.ok(ns, &attach(&iface, &["--mode", "skb"])).unwrap();
    let pin_dir = inst.pin_root.join(&iface);
    let foreign = pin_dir.join("other_tool_map");
    pin_foreign_map(&foreign);

    let (code, out) = inst.output_text(ns, &["detach", "--iface", &iface]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("detached from"), "{out}");
    assert!(
        out.contains("other_tool_map") && out.contains("not created by regionfilter"),
        "{out}"
    );
    assert!(!has_xdp(&pair.receiver, &iface), "program still attached");
    assert!(foreign.exists(), "detach removed a pin it did not create");
    let left: Vec<String> = std::fs::read_dir(&pin_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["other_tool_map"], "regionfilter's own pins remain");
    // What is left is not regionfilter's: attach refuses to build on it and leaves it.
    let err = inst.fails(ns, &attach(&iface, &["--mode", "skb"])).unwrap();
    assert!(
        err.contains("holds entries regionfilter did not create"),
        "{err}"
    );
    assert!(foreign.exists() && !has_xdp(&pair.receiver, &iface));

    // A directory with nothing of regionfilter's in it is refused and left alone.
    let alien = inst.pin_root.join("rfalien0");
    std::fs::create_dir(&alien).unwrap();
    pin_foreign_map(&alien.join("theirs"));
    let err = inst
        .fails(None, &["detach", "--iface", "rfalien0"])
        .unwrap();
    assert!(
        err.contains("holds no regionfilter pins") && err.contains("left it alone"),
        "{err}"
    );
    assert!(alien.join("theirs").exists());
    // Neither directory is shown or touched as if it were a filter.
    assert_eq!(status_json(&inst)["interfaces"], serde_json::json!([]));
    let err = inst
        .fails(None, &["update", "--iface", "rfalien0", "--deny", "SE"])
        .unwrap();
    assert!(err.contains("not attached"), "{err}");
    let err = inst.fails(ns, &attach("rfalien0", &[])).unwrap();
    assert!(err.contains("no interface named rfalien0"), "{err}");
    assert!(alien.join("theirs").exists());

    // A pin root that is not a BPF filesystem: nothing there can be regionfilter's.
    let not_bpffs_dir = tempfile::Builder::new()
        .prefix("rfnotbpf")
        .tempdir()
        .unwrap();
    let not_bpffs = not_bpffs_dir.path();
    std::fs::create_dir_all(not_bpffs.join("eth0")).unwrap();
    std::fs::write(not_bpffs.join("eth0/ACTIVE"), b"a file").unwrap();
    let out = inst
        .command(None, &["detach", "--iface", "eth0"])
        .env("REGIONFILTER_PIN_ROOT", not_bpffs)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("is not on a BPF filesystem"), "{err}");
    assert!(not_bpffs.join("eth0/ACTIVE").exists());
    not_bpffs_dir.close().unwrap();
}

/// Pins exactly what an attach killed after its maps leaves: the maps, no link.
fn leave_incomplete_attach(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let mut ebpf = program::load_object(Lookup::Lpm, LinkLayer::Ethernet).unwrap();
    FilterMaps::take(&mut ebpf, Some(dir)).unwrap();
}

#[test]
fn an_interrupted_attach_is_reported_and_cleaned_up() {
    let pair = VethPair::new("intr").unwrap();
    let inst = Instance::new();
    let ns = Some(&pair.receiver);
    let iface = pair.receiver_if.clone();
    let pin_dir = inst.pin_root.join(&iface);
    leave_incomplete_attach(&pin_dir);

    let status = status_json(&inst);
    assert_eq!(status["interfaces"][0]["condition"], "incomplete");
    let text = inst.ok(None, &["status"]).unwrap();
    assert!(
        text.contains("INCOMPLETE") && text.contains("detach"),
        "{text}"
    );
    let err = inst
        .fails(ns, &["update", "--iface", &iface, "--deny", "SE"])
        .unwrap();
    assert!(err.contains("did not finish"), "{err}");
    // The next attach repairs it and attaches.
    let (code, out) = inst.output_text(ns, &attach(&iface, &["--mode", "skb"]));
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("did not finish") && out.contains("attached to"),
        "{out}"
    );
    assert_eq!(status_json(&inst)["interfaces"][0]["condition"], "attached");
    inst.ok(ns, &["detach", "--iface", &iface]).unwrap();

    // So does detach.
    leave_incomplete_attach(&pin_dir);
    let out = inst.ok(ns, &["detach", "--iface", &iface]).unwrap();
    assert!(out.contains("did not finish"), "{out}");
    assert!(!pin_dir.exists());

    // Real kills at several points of an attach: afterwards the interface is either attached
    // or reported incomplete, never silently half-made, and one detach clears it.
    for delay_ms in [0u64, 30, 80, 150] {
        let mut child = inst
            .command(ns, &attach(&iface, &["--mode", "skb"]))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Until the attach has begun pinning, or has ended.
        wait_until(WAIT, Duration::from_millis(1), || {
            pin_dir.exists() || child.try_wait().unwrap().is_some()
        });
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        child.wait().unwrap();
        let condition = status_json(&inst)["interfaces"][0]["condition"].clone();
        assert!(
            condition == "attached" || condition == "incomplete" || condition.is_null(),
            "after a kill at +{delay_ms} ms: {condition}"
        );
        if condition.is_null() {
            assert!(!pin_dir.exists(), "pins that status does not show");
            continue;
        }
        inst.ok(ns, &["detach", "--iface", &iface]).unwrap();
        assert!(!pin_dir.exists(), "after a kill at +{delay_ms} ms");
        assert!(!has_xdp(&pair.receiver, &iface));
    }
}

#[test]
fn concurrent_attaches_leave_exactly_one_working_filter() {
    let pair = VethPair::new("race").unwrap();
    let inst = Instance::new();
    let ns = Some(&pair.receiver);
    let iface = pair.receiver_if.clone();
    for _ in 0..3 {
        let children: Vec<_> = (0..2)
            .map(|_| {
                inst.command(ns, &attach(&iface, &["--mode", "skb"]))
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let outcomes: Vec<_> = children
            .into_iter()
            .map(|c| c.wait_with_output().unwrap())
            .collect();
        let winners = outcomes.iter().filter(|o| o.status.success()).count();
        assert_eq!(winners, 1, "{outcomes:?}");
        let loser = outcomes.iter().find(|o| !o.status.success()).unwrap();
        assert!(
            String::from_utf8_lossy(&loser.stderr).contains("already attached"),
            "{loser:?}"
        );
        // The winner's pins survived the loser.
        assert_eq!(status_json(&inst)["interfaces"][0]["condition"], "attached");
        assert!(has_xdp(&pair.receiver, &iface));
        inst.ok(ns, &["detach", "--iface", &iface]).unwrap();
    }
}

#[test]
fn a_deleted_or_recreated_interface_is_reported_as_gone() {
    let pair = VethPair::new("gone").unwrap();
    let inst = Instance::new();
    let ns = Some(&pair.receiver);
    let iface = pair.receiver_if.clone();
    inst.ok(ns, &attach(&iface, &["--mode", "skb"])).unwrap();
    pair.receiver.ip(&["link", "del", &iface]).unwrap();

    let status = status_json(&inst);
    assert_eq!(status["interfaces"][0]["condition"], "gone");
    // Re-created under the same name (hotplug, a container restart): still not filtered.
    pair.receiver.add_veth(&iface).unwrap();
    let text = inst.ok(None, &["status"]).unwrap();
    assert!(text.contains("GONE") && text.contains("detach"), "{text}");
    for args in [
        vec!["update", "--iface", iface.as_str(), "--deny", "SE"],
        vec!["update", "--all", "--deny", "SE"],
    ] {
        let (code, out) = inst.output_text(ns, &args);
        assert_eq!(code, 1, "{args:?}: {out}");
        assert!(
            out.contains("is gone") && !out.contains("switched"),
            "{out}"
        );
    }
    let out = inst.ok(ns, &["detach", "--iface", &iface]).unwrap();
    assert!(out.contains("was gone"), "{out}");
    assert!(inst.attached().is_empty());
    // And a new attach to the new interface works.
    inst.ok(ns, &attach(&iface, &["--mode", "skb"])).unwrap();
    assert!(has_xdp(&pair.receiver, &iface));
}

#[test]
fn exit_codes_tell_what_happened_after_the_change_took_effect() {
    let pair = VethPair::new("truth").unwrap();
    let inst = Instance::new();
    let ns = Some(&pair.receiver);
    let iface = pair.receiver_if.clone();

    // The status record cannot be written (its path is a directory): the filter is attached
    // all the same, so attach says so and exits 0.
    let record = inst.state_dir.join(format!("{iface}.json"));
    std::fs::create_dir_all(&record).unwrap();
    let (code, out) = inst.output_text(ns, &attach(&iface, &["--mode", "skb"]));
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("attached to") && out.contains("cannot write the status record"),
        "{out}"
    );
    assert!(has_xdp(&pair.receiver, &iface));
    std::fs::remove_dir(&record).unwrap();

    // The known-good copy cannot be moved aside after the switch: the new policy is live, so
    // update exits 0 and warns.
    let before = status_json(&inst)["interfaces"][0]["kernel"]["generation"]
        .as_u64()
        .unwrap();
    let blocker = inst.lib_dir().join(&iface).join("previous.rgnf");
    std::fs::create_dir_all(blocker.join("x")).unwrap();
    let (code, out) = inst.output_text(ns, &["update", "--iface", &iface, "--deny", "SE"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("switched to half") && out.contains("switched, but the known-good copy"),
        "{out}"
    );
    let kernel = &status_json(&inst)["interfaces"][0]["kernel"];
    assert_eq!(kernel["generation"].as_u64().unwrap(), before + 1);
    // Once the blocker is gone the next update repairs the known-good files.
    std::fs::remove_dir_all(&blocker).unwrap();
    let (code, out) = inst.output_text(ns, &["update", "--iface", &iface, "--deny", "JP"]);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("known-good"), "{out}");
}

#[test]
fn raw_ip_links_are_judged_by_their_ip_header() {
    let ns = NetNs::new("rftun").unwrap();
    let inst = Instance::new();
    let local_v4 = Ipv4Addr::new(198, 51, 100, 1);
    let local_v6: Ipv6Addr = "2001:db8:ffff::1".parse().unwrap();
    let mut tun = Tun::new(&ns, local_v4, local_v6).unwrap();
    let out = inst
        .ok(
            Some(&ns),
            &[
                "attach", "--iface", &tun.name, "--db", &TEST_DB, "--deny", "GB,JP", "--mode",
                "skb",
            ],
        )
        .unwrap();
    assert!(out.contains("raw-IP link"), "{out}");
    let status = status_json(&inst);
    assert_eq!(status["interfaces"][0]["link_layer"], "raw-ip");

    let socket = ns.enter(|| UdpSocket::bind(("::", 9999))).unwrap().unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    const N: usize = 5;
    for (src, dst) in [
        (GB_V4, IpAddr::V4(local_v4)),
        (JP_V6, IpAddr::V6(local_v6)),
        (SE_V4, IpAddr::V4(local_v4)),
    ] {
        for i in 0..N {
            let payload = format!("{src}#{i}");
            let packet = udp_packet(src.parse().unwrap(), dst, 9999, payload.as_bytes()).unwrap();
            tun.inject(&packet).unwrap();
        }
    }
    // The allowed source arrives; the denied ones were dropped in XDP before any socket.
    let mut got = std::collections::BTreeMap::<String, usize>::new();
    let mut buf = [0u8; 512];
    // The socket's read timeout paces the polls.
    wait_until(WAIT, Duration::ZERO, || {
        if got.get(SE_V4).copied().unwrap_or(0) >= N {
            return true;
        }
        if let Ok((len, _)) = socket.recv_from(&mut buf) {
            let tag = String::from_utf8_lossy(&buf[..len]);
            *got.entry(tag.split('#').next().unwrap().to_owned())
                .or_default() += 1;
        }
        false
    });
    assert_eq!(got.get(SE_V4), Some(&N), "{got:?}");
    assert_eq!(
        got.get(GB_V4),
        None,
        "a denied source was delivered: {got:?}"
    );
    assert_eq!(
        got.get(JP_V6),
        None,
        "a denied source was delivered: {got:?}"
    );
    let stats = inst
        .wait_for_stats(&tun.name, WAIT, |s| {
            country_counts(s, Some("JP")).1 >= N as u64
        })
        .unwrap();
    assert_eq!(country_counts(&stats, Some("GB")), (0, N as u64), "{stats}");
    assert_eq!(country_counts(&stats, Some("JP")), (0, N as u64), "{stats}");
    assert_eq!(country_counts(&stats, Some("SE")), (N as u64, 0), "{stats}");
    assert_eq!(stats["non_ip"]["packets"], 0, "{stats}");
    inst.ok(Some(&ns), &["detach", "--iface", &tun.name])
        .unwrap();
}

#[test]
fn a_renamed_interface_is_not_mistaken_for_its_old_name() {
    let ns = NetNs::new("rfren").unwrap();
    let inst = Instance::new();
    let nsr = Some(&ns);
    let name = unique_name("rfn");
    let old = unique_name("rfo");
    ns.add_veth(&name).unwrap();
    inst.ok(nsr, &attach(&name, &["--mode", "skb"])).unwrap();
    // The filtered interface is renamed, and a new one takes its name.
    ns.ip(&["link", "set", &name, "name", &old]).unwrap();
    ns.add_veth(&name).unwrap();
    let text = inst.ok(nsr, &["status"]).unwrap();
    assert!(
        text.contains("MOVED") && text.contains(&format!("now named {old}")),
        "{text}"
    );
    let (code, out) = inst.output_text(nsr, &["update", "--iface", &name, "--deny", "JP"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("now named {old}")) && !out.contains("switched"),
        "{out}"
    );
    let err = inst.fails(nsr, &attach(&name, &["--mode", "skb"])).unwrap();
    assert!(err.contains("detach --iface"), "{err}");
    let out = inst.ok(nsr, &["detach", "--iface", &name]).unwrap();
    assert!(
        out.contains(&format!("now named {old} (attached as {name})")),
        "{out}"
    );
    assert!(
        !has_xdp(&ns, &old),
        "the program stayed on the renamed interface"
    );
    // Now the new interface of that name can be filtered.
    inst.ok(nsr, &attach(&name, &["--mode", "skb"])).unwrap();
    assert!(has_xdp(&ns, &name));
}

#[test]
fn pins_are_recognised_by_the_kernel_object_not_only_by_name() {
    let inst = Instance::new();
    // Another tool's maps that happen to use regionfilter's pin names.
    let dir = inst.pin_root.join("rfnames0");
    std::fs::create_dir_all(&dir).unwrap();
    pin_foreign_map(&dir.join("COUNTERS"));
    pin_foreign_map(&dir.join("link"));
    assert_eq!(status_json(&inst)["interfaces"], serde_json::json!([]));
    let err = inst
        .fails(None, &["detach", "--iface", "rfnames0"])
        .unwrap();
    assert!(err.contains("holds no regionfilter pins"), "{err}");
    assert!(dir.join("COUNTERS").exists() && dir.join("link").exists());
    let err = inst
        .fails(None, &["update", "--all", "--deny", "SE"])
        .unwrap();
    assert!(err.contains("attached to no interface"), "{err}");
}

#[test]
fn rollback_never_restores_an_earlier_attachment() {
    let pair = VethPair::new("hist").unwrap();
    let inst = Instance::new();
    let ns = Some(&pair.receiver);
    let iface = pair.receiver_if.clone();
    inst.ok(ns, &attach(&iface, &["--mode", "skb"])).unwrap();
    inst.ok(ns, &["update", "--iface", &iface, "--deny", "JP"])
        .unwrap();
    inst.ok(ns, &["detach", "--iface", &iface]).unwrap();
    inst.ok(ns, &attach(&iface, &["--mode", "skb"])).unwrap();
    let (code, out) = inst.output_text(ns, &["rollback", "--iface", &iface]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("nothing to roll back to"), "{out}");
}

#[test]
fn update_all_skips_directories_that_are_not_filters() {
    let pair = VethPair::new("alls").unwrap();
    let inst = Instance::new();
    let ns = Some(&pair.receiver);
    let iface = pair.receiver_if.clone();
    inst.ok(ns, &attach(&iface, &["--mode", "skb"])).unwrap();
    let alien = inst.pin_root.join("rfalien1");
    std::fs::create_dir(&alien).unwrap();
    pin_foreign_map(&alien.join("theirs"));
    let (code, out) = inst.output_text(ns, &["update", "--all", "--deny", "JP"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("switched") && !out.contains("rfalien1"),
        "{out}"
    );
}
