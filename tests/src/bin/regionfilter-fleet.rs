//! `cargo xtask fleet`: a simulated fleet following one signed release channel, measured.
//!
//! Each node is a network namespace of its own with a filtered veth, its own state, lib and pin
//! directories, and its own `regionfilter agent` under its own node name. One release server
//! (one handler, one set of files and counters) listens on every node's loopback over HTTPS,
//! with a CA made for this run that each agent names in `ca_file`. The run publishes a
//! release, advances a second one through its stages, serves two attacks (a manifest changed
//! after signing, an older signed release), then rolls back by publishing a higher version of
//! the first artifact. For every phase it measures the time until every node converged, the
//! nodes in the stage against the plan, and the requests and bytes served; then the cost of
//! polling while nothing changes. Throughout, every node's running release is sampled: it must
//! only ever be a published, signed version, and never go down.
//!
//! Everything happens inside namespaces created here, on their loopbacks; the guards remove
//! them on exit. Packets never leave the namespaces.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};
use integration_tests::{
    agent::{get, Agent},
    cli::Instance,
    consts::TEST_DB,
    http::{Reply, Request, Server},
    netns::NetNs,
    prometheus::series,
    release::{compile, keypair, publish, static_files},
};
use sha2::Digest as _;

const LISTEN: &str = "127.0.0.1:9877";
const IFACE: &str = "edge0";
/// Every phase must converge within this.
const PHASE_LIMIT: Duration = Duration::from_secs(120);
/// How often the nodes are sampled while a phase converges.
const TICK: Duration = Duration::from_millis(200);

/// Counts of what the release server answered.
#[derive(Default)]
struct Served {
    requests: AtomicU64,
    /// Requests for the manifest: one per poll of one node.
    manifests: AtomicU64,
    not_modified: AtomicU64,
    bytes: AtomicU64,
}

#[derive(Clone, Copy, Default)]
struct Totals {
    requests: u64,
    manifests: u64,
    not_modified: u64,
    bytes: u64,
}

impl Served {
    fn totals(&self) -> Totals {
        Totals {
            requests: self.requests.load(Ordering::Relaxed),
            manifests: self.manifests.load(Ordering::Relaxed),
            not_modified: self.not_modified.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
        }
    }
}

impl std::ops::Sub for Totals {
    type Output = Self;
    fn sub(self, before: Self) -> Self {
        Self {
            requests: self.requests - before.requests,
            manifests: self.manifests - before.manifests,
            not_modified: self.not_modified - before.not_modified,
            bytes: self.bytes - before.bytes,
        }
    }
}

struct Node {
    name: String,
    ns: NetNs,
    inst: Instance,
    agent: Option<Agent>,
}

/// What a node's agent reports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Seen {
    running: Option<u64>,
    published: Option<u64>,
    refusals: u64,
}

impl Node {
    fn seen(&self) -> Result<Seen> {
        let (code, text) = get(&self.ns, LISTEN, "/metrics")?;
        if code != 200 {
            bail!("{}: /metrics answered {code}", self.name);
        }
        let channel = format!("interface=\"{IFACE}\",channel=\"stable\"");
        let refusals = text
            .lines()
            .filter(|l| l.starts_with("regionfilter_release_refusals_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum();
        Ok(Seen {
            running: series(&text, "regionfilter_release_version", &channel),
            published: series(&text, "regionfilter_release_published_version", &channel),
            refusals,
        })
    }
}

/// One measured phase.
struct Phase {
    name: String,
    plan: String,
    expected_in: usize,
    actual_in: usize,
    took: Duration,
    served: Totals,
}

struct Fleet {
    nodes: Vec<Node>,
    work: PathBuf,
    served: Arc<Served>,
    /// Every version published with a good signature, and each node's running versions as
    /// sampled, in order.
    signed: Vec<u64>,
    history: BTreeMap<String, Vec<u64>>,
    phases: Vec<Phase>,
}

impl Fleet {
    /// Samples every node once: the running versions join the history.
    fn sample(&mut self) -> Result<Vec<Seen>> {
        let mut all = Vec::new();
        for node in &self.nodes {
            let seen = node.seen()?;
            if let Some(v) = seen.running {
                let history = self.history.entry(node.name.clone()).or_default();
                if history.last() != Some(&v) {
                    history.push(v);
                }
            }
            all.push(seen);
        }
        Ok(all)
    }

    /// Publishes `version` of `artifact` with `plan` at `stage`, then waits until every node
    /// has seen it and runs what the stage says: `version` if its position in the artifact's
    /// rollout is below the stage's share, else what it ran before.
    fn phase(
        &mut self,
        name: &str,
        artifact: &str,
        version: u64,
        plan: &str,
        stage: usize,
    ) -> Result<()> {
        let before: Vec<Option<u64>> = self.sample()?.iter().map(|s| s.running).collect();
        let sha = hex::encode(sha2::Sha256::digest(fs::read(self.work.join(artifact))?));
        let share = stage_share(plan, stage);
        let expected: Vec<Option<u64>> = self
            .nodes
            .iter()
            .zip(&before)
            .map(|(node, was)| {
                let position = filter_user::ops::release::cohort(&node.name, "stable", &sha);
                if position < share {
                    Some(version)
                } else {
                    *was
                }
            })
            .collect();
        let served = self.served.totals();
        let start = Instant::now();
        publish(&self.work, "rel", artifact, "k", version, plan, stage);
        self.signed.push(version);
        loop {
            let seen = self.sample()?;
            let done = seen
                .iter()
                .zip(&expected)
                .all(|(s, want)| s.published == Some(version) && s.running == *want);
            if done {
                break;
            }
            if start.elapsed() > PHASE_LIMIT {
                bail!(
                    "{name}: not converged within {PHASE_LIMIT:?}: {seen:?}, wanted {expected:?}"
                );
            }
            std::thread::sleep(TICK);
        }
        let took = start.elapsed();
        let actual_in = expected.iter().filter(|e| **e == Some(version)).count();
        self.phases.push(Phase {
            name: name.to_owned(),
            plan: stage_label(plan, stage),
            expected_in: (self.nodes.len() * usize::from(share)).div_ceil(1000),
            actual_in,
            took,
            served: self.served.totals() - served,
        });
        println!(
            "{name}: converged in {took:.1?}, {actual_in}/{} nodes on {version}",
            self.nodes.len()
        );
        Ok(())
    }

    /// Serves what `attack` leaves in the release directory until every node has refused it
    /// once more, and checks that none changed what it runs.
    fn attack(&mut self, name: &str, attack: impl FnOnce(&Path)) -> Result<()> {
        let before = self.sample()?;
        let served = self.served.totals();
        let start = Instant::now();
        attack(&self.work);
        loop {
            let seen = self.sample()?;
            for (s, b) in seen.iter().zip(&before) {
                if s.running != b.running {
                    bail!(
                        "{name}: a node changed its release: {:?} -> {:?}",
                        b.running,
                        s.running
                    );
                }
            }
            if seen
                .iter()
                .zip(&before)
                .all(|(s, b)| s.refusals > b.refusals)
            {
                break;
            }
            if start.elapsed() > PHASE_LIMIT {
                bail!("{name}: not every node refused it within {PHASE_LIMIT:?}");
            }
            std::thread::sleep(TICK);
        }
        let took = start.elapsed();
        self.phases.push(Phase {
            name: name.to_owned(),
            plan: "refused by every node".to_owned(),
            expected_in: 0,
            actual_in: 0,
            took,
            served: self.served.totals() - served,
        });
        println!("{name}: refused by every node in {took:.1?}");
        Ok(())
    }
}

/// The per-mille share of `plan`'s stage `stage` (`dry:10%,30%,100%`).
fn stage_share(plan: &str, stage: usize) -> u16 {
    let text = plan.split(',').nth(stage).expect("a stage of the plan");
    filter_user::ops::release::Stage::parse(text)
        .expect("a valid stage")
        .per_mille
}

fn stage_label(plan: &str, stage: usize) -> String {
    format!(
        "{} (stage {stage} of {plan})",
        plan.split(',').nth(stage).unwrap_or("?")
    )
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| args.iter().skip_while(|a| *a != flag).nth(1).cloned();
    let count: usize = value("--nodes").map_or(Ok(30), |v| v.parse())?;
    let poll: u64 = value("--poll").map_or(Ok(2), |v| v.parse())?;
    let out = value("--out").map(PathBuf::from);
    if !(1..=200).contains(&count) {
        bail!("--nodes: give 1 to 200");
    }
    let scratch = tempfile::tempdir()?;
    let work = scratch.path().to_owned();
    keypair(&work, "k");
    compile(&work, "a.rgnf", &["--db", &TEST_DB, "--deny", "GB"]);
    compile(&work, "b.rgnf", &["--db", &TEST_DB, "--deny", "GB,JP"]);
    let artifact_bytes = fs::metadata(work.join("a.rgnf"))?.len();
    // For the estimate: the size of an artifact of the whole world's data, when there is some.
    let world_bytes = match std::env::var_os("REGIONFILTER_WORLD_DATA") {
        Some(dir) => {
            let db = PathBuf::from(dir).join("geolite2-country.mmdb");
            compile(
                &work,
                "world.rgnf",
                &["--db", &db.display().to_string(), "--deny", "GB"],
            );
            Some(fs::metadata(work.join("world.rgnf"))?.len())
        }
        None => None,
    };

    println!("== {count} nodes, each a namespace with its own agent, polling every {poll}s");
    let mut nodes = Vec::new();
    for i in 0..count {
        let ns = NetNs::new("rffl").context("cannot create a namespace")?;
        ns.add_veth(IFACE)?;
        nodes.push(Node {
            name: format!("node-{i:03}"),
            ns,
            inst: Instance::new(),
            agent: None,
        });
    }
    let served = Arc::new(Served::default());
    let files = static_files("rel", work.join("rel"));
    let counted = {
        let served = served.clone();
        move |req: &Request| -> Reply {
            let reply = files(req);
            served.requests.fetch_add(1, Ordering::Relaxed);
            if req.path.ends_with("/release.json") {
                served.manifests.fetch_add(1, Ordering::Relaxed);
            }
            if reply.status == 304 {
                served.not_modified.fetch_add(1, Ordering::Relaxed);
            }
            served
                .bytes
                .fetch_add(reply.body.len() as u64, Ordering::Relaxed);
            reply
        }
    };
    let namespaces: Vec<&NetNs> = nodes.iter().map(|n| &n.ns).collect();
    let servers = Server::start_tls_in_each(&namespaces, counted)?;
    let ca = servers[0].ca().expect("a TLS server").write_pem(&work);

    let mut fleet = Fleet {
        nodes,
        work: work.clone(),
        served,
        signed: Vec::new(),
        history: BTreeMap::new(),
        phases: Vec::new(),
    };
    // The first release, then every agent starts: a fleet coming up.
    publish(&work, "rel", "a.rgnf", "k", 1, "100%", 0);
    fleet.signed.push(1);
    let start = Instant::now();
    let served_before = fleet.served.totals();
    for (i, node) in fleet.nodes.iter_mut().enumerate() {
        let config = node.inst.state_dir.join("agent.toml");
        fs::create_dir_all(&node.inst.state_dir)?;
        fs::write(
            &config,
            format!(
                "metrics_listen = \"{LISTEN}\"\nretry = \"1s\"\nrelease_poll = \"{poll}s\"\n\
                 public_keys = [\"{}\"]\nnode_name = \"{}\"\nca_file = \"{}\"\n\n\
                 [[interface]]\nname = \"{IFACE}\"\nmode = \"skb\"\nrelease_url = \"{}\"\n",
                work.join("k.pub").display(),
                node.name,
                ca.display(),
                servers[i].url("/rel"),
            ),
        )?;
        node.agent = Some(Agent::start(&node.inst, &node.ns, &config, &[])?);
    }
    for node in &mut fleet.nodes {
        node.agent
            .as_mut()
            .expect("started")
            .wait_for(&["event=release_applied", "version=1"])?;
    }
    fleet.sample()?;
    fleet.phases.push(Phase {
        name: "bootstrap: release 1 (artifact A) at 100%".to_owned(),
        plan: "100%".to_owned(),
        expected_in: count,
        actual_in: count,
        took: start.elapsed(),
        served: fleet.served.totals() - served_before,
    });

    let plan = "dry:10%,30%,100%";
    fleet.phase("release 2 (artifact B), first stage", "b.rgnf", 2, plan, 0)?;
    fleet.phase("release 3: advance", "b.rgnf", 3, plan, 1)?;
    fleet.phase("release 4: advance", "b.rgnf", 4, plan, 2)?;
    fleet.attack("attack: release 5 manifest changed after signing", |work| {
        publish(work, "rel", "a.rgnf", "k", 5, "100%", 0);
        let manifest = work.join("rel/release.json");
        let text = fs::read_to_string(&manifest).expect("manifest");
        fs::write(&manifest, text.replace("\"version\": 5", "\"version\": 6")).expect("write");
    })?;
    fleet.attack("attack: release 2 served again (older, signed)", |work| {
        publish(work, "rel", "b.rgnf", "k", 2, plan, 0);
    })?;
    fleet.phase(
        "rollback: release 7 = artifact A again",
        "a.rgnf",
        7,
        "100%",
        0,
    )?;

    // Polls while nothing changes: what a quiet fleet costs the server.
    let idle = Duration::from_secs(poll * 5);
    let quiet_before = fleet.served.totals();
    let quiet_start = Instant::now();
    while quiet_start.elapsed() < idle {
        std::thread::sleep(TICK * 5);
    }
    let quiet = fleet.served.totals() - quiet_before;
    let quiet_secs = quiet_start.elapsed().as_secs_f64();

    // Nothing but signed versions, never going down.
    for (node, versions) in &fleet.history {
        if versions.windows(2).any(|w| w[1] < w[0]) {
            bail!("{node} went down a version: {versions:?}");
        }
        if let Some(v) = versions.iter().find(|v| !fleet.signed.contains(v)) {
            bail!("{node} ran {v}, which was never published signed");
        }
    }
    for node in &mut fleet.nodes {
        let (status, log) = node.agent.take().expect("started").stop()?;
        if !status.success() {
            bail!(
                "{}: the agent exited with {status}:\n{}",
                node.name,
                log.join("\n")
            );
        }
        node.inst
            .ok(Some(&node.ns), &["detach", "--iface", IFACE])?;
    }
    drop(servers);

    let sizes = Sizes {
        artifact: artifact_bytes,
        world: world_bytes,
    };
    let report = report(&fleet, poll, &sizes, quiet, quiet_secs)?;
    print!("{report}");
    if let Some(out) = out {
        fs::write(&out, &report).with_context(|| format!("cannot write {}", out.display()))?;
        println!("wrote {}", out.display());
    }
    Ok(())
}

/// Artifact sizes: this run's, and the whole world's when the world data was at hand.
struct Sizes {
    artifact: u64,
    world: Option<u64>,
}

fn report(
    fleet: &Fleet,
    poll: u64,
    sizes: &Sizes,
    quiet: Totals,
    quiet_secs: f64,
) -> Result<String> {
    let n = fleet.nodes.len();
    let mut out = String::new();
    writeln!(out, "# Fleet simulation\n")?;
    writeln!(
        out,
        "Generated by `cargo xtask fleet` ({n} nodes, `release_poll = \"{poll}s\"`, so each wait \
         is {poll} s plus up to a tenth) on {}. Every node is a network namespace with a \
         filtered veth, its own state, pins and node name, and its own agent; one release \
         server (one handler, one set of files and counters), over HTTPS with a CA made for \
         the run, answers on every node's loopback. The artifact is {} bytes (the bundled test \
         database). Each phase publishes, then waits until every node has seen the release \
         and runs what its stage says; an attack phase waits until every node has refused \
         it. Throughout, no node ran a version that was not published signed, and none went \
         down a version.\n",
        machine(),
        sizes.artifact
    )?;
    writeln!(out, "| phase | stage | nodes in stage (plan) | converged in | requests | of them 304 | bytes served |")?;
    writeln!(out, "|---|---|---|---|---|---|---|")?;
    for p in &fleet.phases {
        writeln!(
            out,
            "| {} | {} | {} ({}) | {:.1} s | {} | {} | {} |",
            p.name,
            p.plan,
            p.actual_in,
            p.expected_in,
            p.took.as_secs_f64(),
            p.served.requests,
            p.served.not_modified,
            p.served.bytes
        )?;
    }
    writeln!(
        out,
        "\n\"plan\" is the stage's share of {n} nodes; which nodes, and so how many, comes from \
         each node's position (a hash of its name, the channel and the artifact), so a small \
         fleet lands near the share rather than on it. A node outside the stage fetches the \
         manifest and its signature only, never the artifact.\n"
    )?;
    // Every poll asks for the manifest once.
    let polls = quiet.manifests.max(1) as f64;
    let per_poll = quiet.requests as f64 / polls;
    let bytes_per_poll = quiet.bytes as f64 / polls;
    writeln!(
        out,
        "While nothing changed, {n} nodes polled {} times in {quiet_secs:.0} s and made {} \
         requests ({} answered 304 Not Modified, {} body bytes): {per_poll:.1} requests and \
         {bytes_per_poll:.0} body bytes per poll (the manifest, its signature and the \
         artifact, each unchanged).\n",
        quiet.manifests, quiet.requests, quiet.not_modified, quiet.bytes
    )?;
    let nodes = 10_000.0;
    let interval = 300.0 * 1.05;
    // Manifest and signature, from the phase where every node refused an older release.
    let small = fleet
        .phases
        .iter()
        .find(|p| p.name.contains("older"))
        .map_or(2048.0, |p| p.served.bytes as f64 / n as f64);
    let artifact = sizes.world.unwrap_or(sizes.artifact) as f64;
    let which = if sizes.world.is_some() {
        "GeoLite2 Country, the whole world, compiled"
    } else {
        "this run's"
    };
    let stages = 5.0;
    let mib = |bytes: f64| bytes / 1_048_576.0;
    writeln!(out, "## Scaled to 10,000 nodes (on paper)\n")?;
    writeln!(
        out,
        "- **Server load while nothing changes**, at the default `release_poll = \"5m\"` (a \
         mean wait of 315 s with the splay): 10,000 × {per_poll:.1} / 315 s = **{:.0} requests \
         per second**, nearly all 304 Not Modified with empty bodies.",
        nodes * per_poll / interval,
    )?;
    writeln!(
        out,
        "- **Bandwidth per release**: every stage costs each node the manifest and signature \
         ({small:.0} bytes measured), and each node the artifact once when its stage comes. \
         With a {:.1} MiB artifact ({which}) and a five-stage plan: 10,000 × ({stages} × \
         {small:.0} B + {:.1} MiB) = **{:.0} GiB**, nearly all of it artifacts; the server's \
         peak is a stage's new nodes fetching within one poll interval (the last stage of a \
         5-minute poll: 10,000 × 50% × {:.1} MiB / 315 s ≈ {:.0} MiB/s, which a CDN or a few \
         mirrors carry).",
        mib(artifact),
        mib(artifact),
        mib(nodes * (stages * small + artifact)) / 1024.0,
        mib(artifact),
        mib(nodes * 0.5 * artifact) / interval,
    )?;
    let slowest = fleet
        .phases
        .iter()
        .map(|p| p.took.as_secs_f64())
        .fold(0.0, f64::max);
    writeln!(
        out,
        "- **Time to full rollout**: a stage reaches its nodes within one poll and its splay \
         (at most 330 s at the default), whatever the fleet's size, as long as the server keeps \
         up with the rates above; here the slowest phase took {slowest:.1} s at a {poll} s \
         poll. A five-stage plan takes the publisher's soak time at each stage plus about 5.5 \
         minutes per stage: with an hour's soak, about 5 × 65.5 min ≈ 5.5 hours.",
    )?;
    Ok(out)
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cores} CPUs, Linux {}", kernel.trim())
}
