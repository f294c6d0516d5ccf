//! The Kubernetes manifests in `deploy/`, checked without a cluster: the committed renderings
//! of each variant are what `kubectl kustomize` renders (where kubectl exists; it is no Debian
//! package), every object passes `kubernetes-validate --strict`, the DaemonSet keeps its
//! invariants (host network, node-critical, every taint tolerated, three capabilities and not
//! privileged, the host's bpffs and state as hostPath volumes, readiness on /healthz, one node
//! at a time, the node's name from the downward API, the hashed ConfigMap), the configuration
//! each variant ships passes `regionfilter agent --check`, and the Prometheus operator's
//! objects match the Service and the health-gate rules.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use integration_tests::cli::binary;
use serde::Deserialize as _;
use serde_yaml_ng::{value::Value, Deserializer};

const VARIANTS: [&str; 3] = ["default", "prometheus-operator", "release-channel"];
/// The Kubernetes version the schemas are taken from.
const KUBERNETES: &str = "1.32.0";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits in the repository")
        .to_owned()
}

fn rendered(variant: &str) -> PathBuf {
    repo()
        .join("deploy/rendered")
        .join(format!("{variant}.yaml"))
}

/// Every object of a variant's committed rendering.
fn objects(variant: &str) -> Vec<Value> {
    let text = fs::read_to_string(rendered(variant)).unwrap();
    Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).unwrap())
        .collect()
}

fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

fn one<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    let found = of_kind(objects, kind);
    assert_eq!(found.len(), 1, "one {kind}");
    found[0]
}

fn strings(value: &Value) -> Vec<&str> {
    value
        .as_sequence()
        .map(|s| s.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

#[test]
fn the_committed_renderings_are_what_kustomize_renders() {
    let Ok(out) = Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
    else {
        eprintln!("kubectl is not installed: the committed renderings are checked as they are");
        return;
    };
    assert!(out.status.success());
    for variant in VARIANTS {
        let out = kustomize(&repo().join("deploy/variants").join(variant));
        let committed = fs::read(rendered(variant)).unwrap();
        assert!(
            out == committed,
            "deploy/rendered/{variant}.yaml is not what `kubectl kustomize deploy/variants/{variant}` \
             renders: run it again and commit the result"
        );
    }
    the_documented_overlay_sets_the_registry_image();
}

/// What `kubectl kustomize DIR` renders; the test fails with kubectl's error otherwise.
fn kustomize(dir: &std::path::Path) -> Vec<u8> {
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The overlay docs/kubernetes.md gives for one's own registry, rendered: every container
/// runs the registry's image (a name the base has already rewritten would match nothing).
fn the_documented_overlay_sets_the_registry_image() {
    let doc = fs::read_to_string(repo().join("docs/kubernetes.md")).unwrap();
    let start = "cat > my-cluster/kustomization.yaml <<'EOF'\n";
    let text = doc
        .split_once(start)
        .and_then(|(_, rest)| rest.split_once("\nEOF\n"))
        .map(|(overlay, _)| overlay)
        .expect("docs/kubernetes.md shows the overlay");
    // kustomize takes no absolute paths: the overlay sits one level deeper than in the
    // docs, in target/.
    let dir = tempfile::tempdir_in(repo().join("target")).unwrap();
    fs::write(
        dir.path().join("kustomization.yaml"),
        text.replace("../deploy/", "../../deploy/"),
    )
    .unwrap();
    let rendered = String::from_utf8(kustomize(dir.path())).unwrap();
    let images: Vec<&str> = rendered
        .lines()
        .filter_map(|l| l.trim().strip_prefix("image: "))
        .collect();
    assert!(!images.is_empty());
    assert!(
        images.iter().all(|i| *i == "REGISTRY/regionfilter:0.1.0"),
        "{images:?}"
    );
}

#[test]
fn every_object_of_every_variant_passes_kubernetes_validate_strict() {
    for variant in VARIANTS {
        let out = Command::new("kubernetes-validate")
            .args(["--strict", "-k", KUBERNETES])
            .arg(rendered(variant))
            .output()
            .expect("kubernetes-validate (cargo xtask setup installs it from PyPI)");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{variant}: {text}");
        let passed = text.matches(" passed for resource ").count();
        let custom = ["ServiceMonitor", "PrometheusRule"];
        let objects = objects(variant);
        let builtin = objects
            .iter()
            .filter(|o| !custom.iter().any(|k| o["kind"] == *k))
            .count();
        // Every built-in object was validated; custom resources only lack a schema here and
        // are checked by the test below.
        assert_eq!(passed, builtin, "{variant}: {text}");
        for line in text.lines().filter(|l| l.contains("Couldn't find schema")) {
            assert!(custom.iter().any(|k| line.contains(k)), "{variant}: {line}");
        }
    }
}

#[test]
fn the_daemonset_runs_unprivileged_on_every_node_with_only_its_three_capabilities() {
    for variant in VARIANTS {
        let objects = objects(variant);
        let ds = one(&objects, "DaemonSet");
        let pod = &ds["spec"]["template"]["spec"];
        assert_eq!(pod["hostNetwork"], true, "{variant}");
        assert_eq!(pod["priorityClassName"], "system-node-critical");
        let tolerations = pod["tolerations"].as_sequence().unwrap();
        assert!(
            tolerations
                .iter()
                .any(|t| t["operator"] == "Exists" && t.get("key").is_none()),
            "{variant}: tolerates every taint"
        );
        assert_eq!(
            ds["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"],
            1
        );
        let [container] = pod["containers"].as_sequence().unwrap().as_slice() else {
            panic!("{variant}: one container");
        };
        let security = &container["securityContext"];
        assert_ne!(security["privileged"], true, "{variant}");
        assert_eq!(security["allowPrivilegeEscalation"], false);
        assert_eq!(strings(&security["capabilities"]["drop"]), ["ALL"]);
        // As the container test runs it: the runtimes' default seccomp profiles refuse
        // bpf(2) without CAP_SYS_ADMIN, so RuntimeDefault would keep the agent from loading.
        assert_eq!(
            security["seccompProfile"]["type"], "Unconfined",
            "{variant}"
        );
        // The default AppArmor profile denies writes under /sys/fs/ (bpffs pins).
        assert_eq!(
            security["appArmorProfile"]["type"], "Unconfined",
            "{variant}"
        );
        assert_eq!(security["seLinuxOptions"]["type"], "spc_t", "{variant}");
        let mut added = strings(&security["capabilities"]["add"]);
        added.sort_unstable();
        assert_eq!(added, ["BPF", "NET_ADMIN", "PERFMON"], "{variant}");
        let probe = &container["readinessProbe"]["httpGet"];
        assert_eq!(probe["path"], "/healthz");
        let node = container["env"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "REGIONFILTER_NODE")
            .expect("REGIONFILTER_NODE");
        assert_eq!(node["valueFrom"]["fieldRef"]["fieldPath"], "spec.nodeName");
        // The host's bpffs and state: pins and known-good copies outlive the pod.
        let volumes = pod["volumes"].as_sequence().unwrap();
        let host_paths: Vec<&str> = volumes
            .iter()
            .filter_map(|v| v["hostPath"]["path"].as_str())
            .collect();
        for path in ["/sys/fs/bpf", "/var/lib/regionfilter", "/run/regionfilter"] {
            assert!(host_paths.contains(&path), "{variant}: {path}");
        }
        // The ConfigMap's name carries a hash of its contents, so a change rolls the pods.
        let config = one(&objects, "ConfigMap");
        let name = config["metadata"]["name"].as_str().unwrap();
        assert!(name.starts_with("regionfilter-config-") && name.len() > 21);
        assert!(volumes.iter().any(|v| v["configMap"]["name"] == name));
    }
}

#[test]
fn the_configuration_each_variant_ships_passes_agent_check() {
    for variant in VARIANTS {
        let objects = objects(variant);
        let data = one(&objects, "ConfigMap")["data"].as_mapping().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let etc = format!("{}/", dir.path().display());
        for (name, text) in data {
            let (name, text) = (name.as_str().unwrap(), text.as_str().unwrap());
            fs::write(
                dir.path().join(name),
                text.replace("/etc/regionfilter/", &etc),
            )
            .unwrap();
        }
        let out = Command::new(binary())
            .args(["agent", "--check", "--config"])
            .arg(dir.path().join("agent.toml"))
            .env("REGIONFILTER_NODE", "node-1")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{variant}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn the_prometheus_operator_objects_match_the_service_and_the_health_gate_rules() {
    let objects = objects("prometheus-operator");
    let service = one(&objects, "Service");
    let monitor = one(&objects, "ServiceMonitor");
    let labels = service["metadata"]["labels"].as_mapping().unwrap();
    for (key, value) in monitor["spec"]["selector"]["matchLabels"]
        .as_mapping()
        .unwrap()
    {
        assert_eq!(
            labels.get(key),
            Some(value),
            "the ServiceMonitor selects the Service"
        );
    }
    let ports: Vec<&Value> = service["spec"]["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|p| &p["name"])
        .collect();
    for endpoint in monitor["spec"]["endpoints"].as_sequence().unwrap() {
        assert!(ports.contains(&&endpoint["port"]), "{endpoint:?}");
    }
    let rules: Value = serde_yaml_ng::from_str(
        &fs::read_to_string(repo().join("contrib/prometheus/regionfilter-rules.yml")).unwrap(),
    )
    .unwrap();
    let rule = one(&objects, "PrometheusRule");
    assert!(
        rule["spec"]["groups"] == rules["groups"],
        "deploy/components/prometheus-operator/prometheusrule.yaml holds other groups than \
         contrib/prometheus/regionfilter-rules.yml"
    );
}
