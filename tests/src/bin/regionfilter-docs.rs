//! Writes what the docs generate from the code, under a directory: the man pages (`man/`: one
//! section-1 page per verb from the clap definition, with EXIT STATUS, FILES and EXAMPLES added,
//! and the section-5 pages of the agent's configuration and the policy file), the shell
//! completions (`completions/`) and the exit-status table (`exit-table.md`, from
//! `filter_user::ops::exit::Exit`). `cargo xtask docs` copies them into `contrib/` and
//! `docs/updates.md`; `cargo xtask lint` writes a scratch copy and fails if those differ (a flag
//! or an exit status changed without its docs).

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use clap::CommandFactory as _;
use clap_complete::Shell;
use clap_mangen::{
    roff::{bold, italic, roman, Inline, Roff},
    Man,
};
use filter_user::ops::exit::Exit;

fn main() -> Result<()> {
    let out = PathBuf::from(
        std::env::args()
            .nth(1)
            .context("usage: regionfilter-docs DIR")?,
    );
    let man = out.join("man");
    let completions = out.join("completions");
    for dir in [&man, &completions] {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    write_verb_pages(&man)?;
    for page in [agent_config_page(), policy_file_page()] {
        page.write(&man)?;
    }
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(
            shell,
            &mut filter_user::cli::Cli::command(),
            "regionfilter",
            &completions,
        )
        .with_context(|| format!("cannot write {shell} completions"))?;
    }
    let table = out.join("exit-table.md");
    std::fs::write(&table, Exit::markdown_table())
        .with_context(|| format!("cannot write {}", table.display()))?;
    Ok(())
}

/// roff's preamble, which every `Man::render_*` call writes again; kept once per page.
const PREAMBLE: &str = ".ie \\n(.g .ds Aq \\(aq\n.el .ds Aq '\n";

/// One page for the command and one per verb (regionfilter-attach.1, ...), no date in them, so
/// the same definition always gives the same bytes: clap_mangen's sections, then ours.
fn write_verb_pages(dir: &Path) -> Result<()> {
    let mut top = filter_user::cli::Cli::command().disable_help_subcommand(true);
    top.build();
    let mut commands: Vec<(Option<String>, clap::Command)> = top
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .map(|s| (Some(s.get_name().to_owned()), s.clone()))
        .collect();
    commands.push((None, top.clone()));
    for (verb, command) in commands {
        let has_args = command.get_arguments().any(|a| !a.is_hide_set());
        let has_subcommands = command.get_subcommands().any(|s| !s.is_hide_set());
        let has_version = command.get_version().is_some() || command.get_long_version().is_some();
        let has_author = command.get_author().is_some();
        let has_extra =
            command.get_after_help().is_some() || command.get_after_long_help().is_some();
        let man = Man::new(command);
        let mut parts: Vec<u8> = Vec::new();
        man.render_title(&mut parts)?;
        man.render_name_section(&mut parts)?;
        man.render_synopsis_section(&mut parts)?;
        man.render_description_section(&mut parts)?;
        if has_args {
            man.render_options_section(&mut parts)?;
        }
        if has_subcommands {
            man.render_subcommands_section(&mut parts)?;
        }
        if has_extra {
            man.render_extra_section(&mut parts)?;
        }
        let mut page = String::from_utf8(parts).context("man page is not UTF-8")?;
        page.push_str(&extra_sections(verb.as_deref()).render());
        let mut tail = Vec::new();
        if has_version {
            man.render_version_section(&mut tail)?;
        }
        if has_author {
            man.render_authors_section(&mut tail)?;
        }
        page.push_str(&String::from_utf8(tail).context("man page is not UTF-8")?);
        let page = PREAMBLE.to_owned() + &page.replace(PREAMBLE, "");
        let path = dir.join(man.get_filename());
        std::fs::write(&path, page).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// EXIT STATUS, FILES, EXAMPLES and SEE ALSO of the page of `verb` (`None`: the command).
fn extra_sections(verb: Option<&str>) -> Roff {
    let mut roff = Roff::new();
    roff.control("SH", ["EXIT STATUS"]);
    let (exits, note) = exits_of(verb);
    for exit in exits {
        roff.control("TP", []);
        roff.text([bold(exit.code().to_string())]);
        roff.text([roman(plain(exit.meaning()))]);
    }
    if let Some(note) = note {
        roff.control("PP", []);
        roff.text([roman(note)]);
    }
    roff.control("SH", ["FILES"]);
    for (path, what) in FILES {
        roff.control("TP", []);
        roff.text([italic(*path)]);
        roff.text([roman(*what)]);
    }
    let examples = examples_of(verb);
    if !examples.is_empty() {
        roff.control("SH", ["EXAMPLES"]);
        for (what, command) in examples {
            if !what.is_empty() {
                roff.control("PP", []);
                roff.text([roman(*what)]);
            }
            roff.control("PP", []);
            roff.control("RS", ["4"]);
            roff.text([bold(*command)]);
            roff.control("RE", []);
        }
    }
    roff.control("SH", ["SEE ALSO"]);
    let mut see: Vec<Inline> = Vec::new();
    let mut pages: Vec<String> = match verb {
        None => VERBS
            .iter()
            .map(|v| format!("regionfilter-{v}(1)"))
            .collect(),
        Some(_) => vec!["regionfilter(1)".to_owned()],
    };
    if matches!(
        verb,
        None | Some("agent" | "attach" | "update" | "compile" | "explain")
    ) {
        pages.push("regionfilter-policy(5)".to_owned());
    }
    if matches!(verb, None | Some("agent")) {
        pages.push("regionfilter-agent.toml(5)".to_owned());
    }
    for (i, page) in pages.iter().enumerate() {
        if i > 0 {
            see.push(roman(", "));
        }
        see.push(bold(page.clone()));
    }
    roff.text(see);
    roff
}

/// The verbs, in the order `regionfilter --help` lists them.
const VERBS: [&str; 14] = [
    "attach", "compile", "inspect", "diff", "explain", "update", "release", "verify", "rollback",
    "detach", "status", "stats", "watch", "agent",
];

/// The statuses `verb` can end with, and what to add about them. Any verb ends with 0, 1 or 2;
/// an empty data source is exit 5 wherever data is read (`OpError`'s classification); the
/// lock, the self-test, the guards and the lock-out guard belong to the verbs that take them.
fn exits_of(verb: Option<&str>) -> (Vec<Exit>, Option<&'static str>) {
    use Exit::{Busy, Empty, Failed, LockOut, SelfTest, Success, Unchanged, Usage};
    match verb {
        None => (
            Exit::ALL.to_vec(),
            Some("Each verb's page lists the statuses that verb can end with."),
        ),
        Some("attach") => (
            vec![Success, Failed, Usage, Busy, Empty, SelfTest, LockOut],
            Some("A refusal or a failure leaves nothing behind: no pins, no record."),
        ),
        Some("update") => (
            Exit::ALL.to_vec(),
            Some(
                "With --all every attached interface gets its turn, and the first failing \
                 interface's status decides the exit status. --force overrides 6, 7, 8 and 10; \
                 5 cannot be forced. Refusals and failures leave the maps, the counters and the \
                 known-good files exactly as they were.",
            ),
        ),
        Some("rollback") => (
            vec![Success, Failed, Usage, Unchanged, Busy, SelfTest],
            Some("Rollback runs no guards and no lock-out check."),
        ),
        Some("detach") => (vec![Success, Failed, Usage, Busy], None),
        Some("compile" | "inspect" | "diff") => (vec![Success, Failed, Usage, Empty], None),
        Some("explain") => (
            vec![Success, Failed, Usage, Empty],
            Some(
                "explain --iface exits 1 when the kernel's verdict for an address DISAGREES with \
                 the model.",
            ),
        ),
        Some("stats" | "watch") => (
            vec![Success, Failed, Usage],
            Some(
                "A watch whose every followed filter was detached or lost its interface ends \
                 with 1.",
            ),
        ),
        Some("verify") => (
            vec![Success, Failed, Usage],
            Some(
                "A release that is unsigned, signed by no configured key, changed after signing, \
                 expired, older than --running, oversize, or whose artifact does not match its \
                 manifest is refused with 1, naming the reason.",
            ),
        ),
        Some("agent") => (
            vec![Success, Failed, Usage],
            Some(
                "A bad configuration at start, or another agent running for the same state \
                 directory, is 1. With detach_on_exit the agent exits 1 if any filter could not \
                 be detached when it stopped.",
            ),
        ),
        Some(_) => (vec![Success, Failed, Usage], None),
    }
}

/// Where regionfilter keeps things, at the defaults of the global options.
const FILES: &[(&str, &str)] = &[
    (
        "/sys/fs/bpf/regionfilter/IF/",
        "The pins of the filter on interface IF: link, program and one file per map. Moved by \
         --pin-root or REGIONFILTER_PIN_ROOT. Gone after a reboot.",
    ),
    (
        "/run/regionfilter/IF.json",
        "The status record of IF, which status reads. Moved by --state-dir or \
         REGIONFILTER_STATE_DIR.",
    ),
    (
        "/run/regionfilter/IF.lock",
        "The lock attach, detach, update and rollback take for IF (flock).",
    ),
    (
        "/run/regionfilter/agent/lock",
        "Held by the running agent: one agent per state directory.",
    ),
    (
        "/var/lib/regionfilter/IF/current.rgnf",
        "The known-good artifact (data and policy) IF is judged by; previous.rgnf is the one \
         before it, next.rgnf one being switched in, and a detached file marks a filter taken \
         off on purpose. Moved by --lib-dir or REGIONFILTER_LIB_DIR.",
    ),
    (
        "/var/lib/regionfilter/downloads/",
        "The cache of update --url and the agent's downloads.",
    ),
];

/// A few real command lines per verb, from the operator guide's examples.
fn examples_of(verb: Option<&str>) -> &'static [(&'static str, &'static str)] {
    match verb {
        None => &[
            (
                "Deny two countries on eth1, then see what the filter does:",
                "regionfilter attach --iface eth1 --db /var/lib/GeoLite2-Country.mmdb --deny GB,JP",
            ),
            ("", "regionfilter status"),
            ("", "regionfilter stats --iface eth1"),
            ("Take it off again:", "regionfilter detach --iface eth1"),
        ],
        Some("attach") => &[
            (
                "Deny two countries on eth1:",
                "regionfilter attach --iface eth1 --db /var/lib/GeoLite2-Country.mmdb --deny GB,JP",
            ),
            (
                "Allow only GB and SE on the API's ports, as a dry run that counts what it would drop:",
                "regionfilter attach --iface eth1 --db GeoLite2-Country-Test.mmdb --allow GB,SE --ports tcp/443,udp/443 --mode skb --dry-run",
            ),
            (
                "A policy file with services, and drop samples for regionfilter watch:",
                "regionfilter attach --iface eth1 --db GeoLite2-Country-Test.mmdb --policy api.toml --mode skb --samples 5",
            ),
            (
                "Deny one country for the whole host, judging TCP only on connection attempts:",
                "regionfilter attach --iface eth1 --db GeoLite2-Country-Test.mmdb --deny CH --tcp syn --mode skb --dry-run",
            ),
        ],
        Some("compile") => &[(
            "Compile data and a policy into an artifact every host loads byte for byte:",
            "regionfilter compile --db geolite2-country.mmdb --policy /etc/regionfilter/policy.toml --out /var/lib/regionfilter/filter.rfa",
        )],
        Some("release") => &[
            (
                "Publish version 12 of the stable channel to a dry-run canary of 1% first:",
                "regionfilter release --artifact filter.rfa --out /srv/releases/stable --version 12 --plan dry:1%,1%,10%,50%,100% --secret-key /etc/regionfilter/release.key",
            ),
            (
                "Advance it to the next stage (a new, higher version; same artifact):",
                "regionfilter release --artifact filter.rfa --out /srv/releases/stable --version 13 --plan dry:1%,1%,10%,50%,100% --stage 1 --secret-key /etc/regionfilter/release.key",
            ),
        ],
        Some("verify") => &[(
            "Check a release as node edge-7 would, with two trusted keys (rotation):",
            "regionfilter verify /srv/releases/stable --public-key old.pub --public-key new.pub --running 11 --node edge-7",
        )],
        Some("inspect") => &[(
            "Prefixes and addresses of the three largest countries of a database:",
            "regionfilter inspect geolite2-country.mmdb --top 3",
        )],
        Some("diff") => &[(
            "Which addresses changed country between two databases:",
            "regionfilter diff dbip-country.mmdb geolite2-country.mmdb --top 2",
        )],
        Some("explain") => &[
            (
                "Country, range, source and verdict of two addresses under an artifact's policy:",
                "regionfilter explain --artifact filter.rfa 1.0.1.5 2001:db8::1",
            ),
            (
                "Ask the filter attached to eth1, and its program in the kernel, about tcp/443:",
                "regionfilter explain --iface eth1 --port tcp/443 81.2.69.160 89.160.20.130 2002:5102:45a0::1",
            ),
            (
                "Addresses on standard input:",
                "echo 2a02:d000::1 10.0.0.7 | regionfilter explain --iface eth1",
            ),
        ],
        Some("update") => &[
            (
                "New data for every attached interface (exit 3 when nothing changed):",
                "regionfilter update --all --db /var/lib/regionfilter/GeoLite2-Country.mmdb",
            ),
            (
                "A policy-only change, keeping the loaded data:",
                "regionfilter update --iface eth1 --deny GB,JP,KP",
            ),
            (
                "End a dry run, keeping data and counters:",
                "regionfilter update --iface eth1 --enforce",
            ),
            (
                "Download the database (MaxMind key from the environment) for a cron job:",
                "regionfilter update --all --url 'https://download.maxmind.com/geoip/databases/GeoLite2-Country/download?suffix=tar.gz' --sha256-url 'https://download.maxmind.com/geoip/databases/GeoLite2-Country/download?suffix=tar.gz.sha256'",
            ),
            (
                "A release from a server under a company's private CA:",
                "regionfilter update --all --release-url https://releases.corp.example/stable --public-key /etc/regionfilter/release.pub --ca-file /etc/regionfilter/ca.pem",
            ),
            (
                "The cron line of contrib/regionfilter.cron:",
                "regionfilter update --all --db /var/lib/regionfilter/GeoLite2-Country.mmdb || [ $? -eq 3 ]",
            ),
        ],
        Some("rollback") => &[(
            "Back to the previous known-good data and policy (a second rollback goes forward again):",
            "regionfilter rollback --iface eth1",
        )],
        Some("detach") => &[("Take the filter off eth1:", "regionfilter detach --iface eth1")],
        Some("status") => &[
            ("Every attached interface:", "regionfilter status"),
            ("The same as JSON:", "regionfilter status --json"),
        ],
        Some("stats") => &[
            ("Counters of every filter:", "regionfilter stats"),
            (
                "Rates over 2 seconds, once:",
                "regionfilter stats --iface eth1 --watch 2 --count 1",
            ),
            (
                "For node_exporter's textfile collector:",
                "regionfilter stats --format prometheus",
            ),
        ],
        Some("watch") => &[
            (
                "What the ring holds now (sampling enabled with attach or update --samples N):",
                "regionfilter watch --drain",
            ),
            ("Three samples, then exit:", "regionfilter watch --count 3"),
        ],
        Some("agent") => &[
            (
                "Check a configuration without touching anything:",
                "regionfilter agent --config /etc/regionfilter/agent.toml --check",
            ),
            (
                "Run the agent (contrib/regionfilter-agent.service does):",
                "regionfilter agent --config /etc/regionfilter/agent.toml",
            ),
        ],
        Some(_) => &[],
    }
}

/// The table's Markdown code spans as plain text.
fn plain(text: &str) -> String {
    text.replace('`', "")
}

/// One key of a file format: its name, its value's form, what it does.
type Key = (&'static str, &'static str, &'static str);

/// A section-5 page: a file format, written from the strings below.
struct FilePage {
    name: &'static str,
    about: &'static str,
    description: &'static [&'static str],
    /// Named groups of keys: a heading, then (key, value, what it does).
    keys: Vec<(&'static str, &'static [Key])>,
    example: &'static str,
    after: &'static [(&'static str, &'static str)],
    see_also: &'static [&'static str],
}

impl FilePage {
    fn write(&self, dir: &Path) -> Result<()> {
        let mut roff = Roff::new();
        roff.control("TH", [self.name, "5", "", "regionfilter", ""]);
        roff.control("SH", ["NAME"]);
        roff.text([roman(format!("{} - {}", self.name, self.about))]);
        roff.control("SH", ["DESCRIPTION"]);
        for paragraph in self.description {
            roff.control("PP", []);
            roff.text([roman(*paragraph)]);
        }
        for (heading, keys) in &self.keys {
            roff.control("SH", [*heading]);
            for (key, value, what) in *keys {
                roff.control("TP", []);
                roff.text([bold(*key), roman(" = "), italic(*value)]);
                roff.text([roman(*what)]);
            }
        }
        for (heading, text) in self.after {
            roff.control("SH", [*heading]);
            for paragraph in text.split("\n\n") {
                roff.control("PP", []);
                roff.text([roman(paragraph)]);
            }
        }
        roff.control("SH", ["EXAMPLE"]);
        roff.control("PP", []);
        roff.control("nf", []);
        for line in self.example.lines() {
            roff.text([roman(line)]);
        }
        roff.control("fi", []);
        roff.control("SH", ["SEE ALSO"]);
        let mut see = Vec::new();
        for (i, page) in self.see_also.iter().enumerate() {
            if i > 0 {
                see.push(roman(", "));
            }
            see.push(bold(*page));
        }
        roff.text(see);
        let path = dir.join(format!("{}.5", self.name));
        std::fs::write(&path, roff.render())
            .with_context(|| format!("cannot write {}", path.display()))
    }
}

/// The policy keys, shared by the policy file and the agent's `[interface.policy]`.
const POLICY_KEYS: &[Key] = &[
    (
        "allow",
        "[\"CODE or group\", ...]",
        "Allow-list: only these countries pass (the rule's other countries drop). ISO 3166-1 \
         alpha-2 codes (any case; also AP, EU, XK, ZZ), the built-in groups africa, antarctica, \
         asia, europe, north-america, oceania, south-america and EU, and the file's own \
         [groups]. Like --allow; give allow or deny, not both.",
    ),
    (
        "deny",
        "[\"CODE or group\", ...]",
        "Deny-list: these countries drop. Like --deny. A file of [[service]] tables may leave out \
         both: then traffic no service names is out of scope.",
    ),
    (
        "unknown",
        "\"pass\" | \"drop\"",
        "Sources the data places in no country. Default pass. Like --unknown.",
    ),
    (
        "local",
        "\"pass\" | \"drop\"",
        "Special-purpose sources (private, loopback, link-local, CGNAT, ULA, multicast, \
         documentation ranges). Default pass, so DHCP and link-local traffic keep working under \
         unknown = \"drop\". Like --local.",
    ),
    (
        "malformed",
        "\"pass\" | \"drop\"",
        "Frames whose Ethernet, VLAN or IP header is truncated or invalid. Default pass. Like \
         --malformed.",
    ),
    (
        "icmp_errors",
        "\"pass\" | \"judge\"",
        "ICMP and ICMPv6 errors (unreachable, packet too big, time exceeded, parameter problem). \
         Default pass: dropping them breaks path-MTU discovery. Like --icmp-errors.",
    ),
    (
        "tcp",
        "\"all\" | \"syn\"",
        "syn: judge TCP only on connection attempts (SYN without ACK), so replies to the host's \
         own connections pass. Default all. Like --tcp.",
    ),
    (
        "ports",
        "[\"tcp/443\", \"udp/8000-8100\", ...]",
        "Judge only packets to these destination ports; the rest passes as out of scope. Absent: \
         every packet is judged. Not together with [[service]] tables. Like --ports.",
    ),
    (
        "allow_cidrs",
        "[\"CIDR\", ...]",
        "Always passed, checked before any country and before the local class (management \
         networks). Host bits must be zero. Added to --allow-cidr.",
    ),
    (
        "deny_cidrs",
        "[\"CIDR\", ...]",
        "Always dropped (after allow_cidrs). Host bits must be zero. Added to --deny-cidr.",
    ),
    (
        "nat64_prefixes",
        "[\"IPv6 prefix\", ...]",
        "NAT64 translator prefixes in use (RFC 6052: /32, /40, /48, /56, /64 or /96; at most 4). \
         Their sources are judged by the IPv4 address they carry; sources in the rest of \
         64:ff9b:1::/48 are dropped. Added to --nat64-prefix.",
    ),
    (
        "samples",
        "N",
        "Drop samples per second and CPU written to the ring buffer for regionfilter watch and \
         the agent's log (at most 100000). Default 0: off. Like --samples.",
    ),
];

const GROUP_KEYS: &[Key] = &[(
    "[groups] NAME",
    "[\"CODE or group\", ...]",
    "A named group: a name of at least 3 letters, digits, - or _ (two letters mean a country \
     code), not a built-in group's name, and not defined twice (names are not case-sensitive). \
     Members are country codes or built-in groups.",
)];

const SERVICE_KEYS: &[Key] = &[
    (
        "name",
        "\"NAME\"",
        "1-32 letters, digits, - or _; unique within the file.",
    ),
    (
        "ports",
        "[\"tcp/443\", ...]",
        "The destination ports of the service; a port belongs to one service.",
    ),
    (
        "allow | deny",
        "[\"CODE or group\", ...]",
        "Exactly one of them: the service's own countries.",
    ),
];

fn policy_file_page() -> FilePage {
    FilePage {
        name: "regionfilter-policy",
        about: "regionfilter policy file",
        description: &[
            "A policy file (TOML), given with --policy FILE to attach, update, compile and \
             explain, or as policy = \"FILE\" in regionfilter-agent.toml(5), holds the same \
             choices as the policy options of the command line, plus named groups and \
             services. The agent's [interface.policy] table takes the same keys inline.",
            "Options given on the command line override the file's country list and verdicts; \
             CIDRs and NAT64 prefixes from both are combined. Unknown keys are refused. An \
             error names the file and the line and column; a bad policy file is exit 1.",
            "The policy is part of the content hash: a compiled artifact and the known-good \
             copies carry it, and update switches it atomically with the data.",
        ],
        keys: vec![
            ("KEYS", POLICY_KEYS),
            ("GROUPS", GROUP_KEYS),
            ("SERVICES ([[service]] tables)", SERVICE_KEYS),
        ],
        after: &[(
            "RULES",
            "At most 16 services. Traffic no service names is judged by the file's top-level \
             allow or deny if it has one, and is out of scope otherwise. A [[service]] file \
             takes no top-level ports and no --ports.\n\n\
             A packet is judged in this order, the first rule that applies deciding: non-IP \
             frames pass; malformed frames get malformed; ICMP errors pass unless icmp_errors = \
             \"judge\"; neighbour discovery with hop limit 255 passes; under a port scope or tcp \
             = \"syn\", non-first fragments pass, and under tcp = \"syn\" TCP other than a \
             connection attempt passes; packets to no port of the scope pass as out of scope; \
             sources in 64:ff9b:1::/48 outside every declared NAT64 prefix drop; then \
             allow_cidrs, deny_cidrs, the local class, the country (by the rule of the \
             packet's port) and unknown space.",
        )],
        example: "deny = [\"sanctioned\", \"RU\"]        # or: allow = [\"europe\", \"US\"]\n\
                  ports = [\"tcp/443\", \"udp/443\"]\n\
                  unknown = \"pass\"\n\
                  local = \"pass\"\n\
                  malformed = \"pass\"\n\
                  icmp_errors = \"pass\"\n\
                  tcp = \"all\"\n\
                  allow_cidrs = [\"198.51.100.0/24\"]  # management networks\n\
                  deny_cidrs = []\n\
                  nat64_prefixes = [\"64:ff9b:1:abcd::/64\"]\n\
                  \n\
                  [groups]\n\
                  sanctioned = [\"CU\", \"IR\", \"KP\", \"SY\"]\n\
                  \n\
                  # Instead of ports: services with their own countries.\n\
                  # [[service]]\n\
                  # name = \"ssh\"\n\
                  # ports = [\"tcp/22\"]\n\
                  # allow = [\"SE\"]",
        see_also: &[
            "regionfilter(1)",
            "regionfilter-attach(1)",
            "regionfilter-update(1)",
            "regionfilter-compile(1)",
            "regionfilter-explain(1)",
            "regionfilter-agent.toml(5)",
        ],
    }
}

const AGENT_KEYS: &[Key] = &[
    (
        "refresh",
        "DURATION",
        "How often each interface reloads its data and reconciles. Default 24h; at least 1m, at \
         most 366d.",
    ),
    (
        "splay",
        "DURATION",
        "Each refresh wait is longer by up to this, at random, so a fleet does not hit the \
         mirror at once. Default a tenth of refresh; not longer than refresh.",
    ),
    (
        "retry",
        "DURATION",
        "After a failed attach or refresh, try that interface again this soon. Default 5m; at \
         least 1s; never longer than refresh.",
    ),
    (
        "metrics_listen",
        "\"ADDR:PORT\"",
        "Where /metrics and /healthz are served. Default 127.0.0.1:9877. --metrics-listen \
         overrides it; a reload cannot change it (listen_unchanged).",
    ),
    (
        "log_format",
        "\"text\" | \"json\"",
        "key=value lines (journald keeps them as the message), or one JSON object per line. \
         Default text; --json overrides it.",
    ),
    (
        "log_samples",
        "N",
        "Drop samples logged per second at most. Default 10; 0 logs none and holds no ring \
         open, leaving every sample to regionfilter watch.",
    ),
    (
        "max_change",
        "PERCENT",
        "As update --max-change: a larger change in prefix count or address coverage is \
         refused. Default 10.",
    ),
    (
        "detach_on_exit",
        "true | false",
        "Stopping the agent takes the filters off. Default false (filters stay attached); \
         --detach-on-exit sets it.",
    ),
    (
        "download_timeout",
        "DURATION",
        "A download not complete by then is given up, nothing replaced. Default 5m; at least \
         1s.",
    ),
    (
        "download_stall",
        "DURATION",
        "A download that brings less than download_min_rate over any window this long is given \
         up. Default 30s; at least 1s, not longer than download_timeout.",
    ),
    (
        "download_min_rate",
        "BYTES",
        "Bytes per second a download must bring over every download_stall window. Default \
         4096.",
    ),
    (
        "ca_file",
        "\"FILE\"",
        "CA certificates (PEM, one or more) every download trusts besides the bundled web \
         roots and the system's CA store (SSL_CERT_FILE, SSL_CERT_DIR), as update --ca-file: \
         a server under a private CA. Relative to the configuration file's directory. A file \
         that cannot be read or holds no certificate makes the configuration bad.",
    ),
    (
        "public_keys",
        "[\"FILE\", ...]",
        "Minisign public keys a release may be signed by (more than one while keys rotate). \
         With them, interfaces may follow release_url, and artifact_url (unsigned) is refused.",
    ),
    (
        "node_name",
        "\"NAME\"",
        "This node's name, which places it in each release's staged rollout. Default: \
         $REGIONFILTER_NODE, else the host name. Needs public_keys.",
    ),
    (
        "channel",
        "\"NAME\"",
        "The release channel this node follows: a release of another channel is refused. \
         Default stable. Needs public_keys.",
    ),
    (
        "release_poll",
        "DURATION",
        "How often a release_url interface looks for a new release, plus up to a tenth at \
         random; an unchanged release costs three conditional requests (manifest, signature, artifact), each answered 304. Default 5m; at least 1s. \
         Needs public_keys.",
    ),
];

const INTERFACE_KEYS: &[Key] = &[
    (
        "name",
        "\"IF\"",
        "The interface, validated as --iface is. Each name once.",
    ),
    (
        "mode",
        "\"native\" | \"skb\"",
        "As attach --mode. Default native. Fixed when the filter is attached.",
    ),
    (
        "lookup",
        "\"fast\" | \"lpm\"",
        "As attach --lookup. Default fast. Fixed when the filter is attached.",
    ),
    (
        "db",
        "[\"FILE\", ...]",
        "Local data files, as --db. Exactly one of db, url, artifact, artifact_url or \
         release_url. Relative paths are taken from the configuration file's directory.",
    ),
    (
        "format",
        "[\"mmdb\" | \"csv\" | \"cidr\" | \"rir\", ...]",
        "As --format: once for every source, or once per db.",
    ),
    (
        "country_field",
        "\"country\" | \"registered\" | \"represented\"",
        "As --country-field (mmdb). Default country.",
    ),
    (
        "prefer",
        "[\"FILE\", ...]",
        "As --prefer: lift these sources above the others.",
    ),
    (
        "url",
        "\"https://...\"",
        "A database to download as update --url does: cached, conditional, .tar.gz unpacked, \
         {license_key} from MAXMIND_LICENSE_KEY. HTTPS only (plain http only to this host).",
    ),
    (
        "sha256_url",
        "\"https://...\"",
        "A sha256sum-style file the download must match; needs url.",
    ),
    (
        "artifact",
        "\"FILE\"",
        "A compiled artifact; its policy is used unless the entry gives one.",
    ),
    (
        "artifact_url",
        "\"https://...\"",
        "A compiled artifact to download, trusted on its checksum alone: refused when \
         public_keys are configured.",
    ),
    (
        "release_url",
        "\"https://...\"",
        "A signed release directory to follow (docs/releases.md), with the release's own \
         policy: applied when it verifies against public_keys, is not older than the release \
         the interface runs, has not expired, and this node is in its stage. Needs public_keys; \
         takes no policy.",
    ),
    (
        "policy",
        "\"FILE\" | table",
        "A policy file's path, or the keys of regionfilter-policy(5) inline as an \
         [interface.policy] table. Required unless the data is an artifact; none with release_url.",
    ),
];

fn agent_config_page() -> FilePage {
    FilePage {
        name: "regionfilter-agent.toml",
        about: "configuration of regionfilter agent",
        description: &[
            "regionfilter agent --config FILE (/etc/regionfilter/agent.toml under the unit in \
             contrib/) reads this TOML file: global settings, then one [[interface]] table per \
             interface to keep filtered. contrib/agent.toml is a commented example.",
            "The file is checked by the code that checks the command-line flags (country codes \
             and groups, ports, CIDRs, URLs, interface names; intervals of at most a year); \
             unknown keys are refused. regionfilter agent --check checks it without touching \
             anything, and also opens every local data file. A bad file at start is an error \
             naming the file and the entry (exit 1); a bad file on reload (SIGHUP) is an \
             event=config_error line and the running configuration stays.",
            "A missing data file is not a bad file for the running agent: it is that \
             interface's failure, logged and retried, while the others run.",
        ],
        keys: vec![
            ("GLOBAL KEYS", AGENT_KEYS),
            ("[[interface]] KEYS", INTERFACE_KEYS),
        ],
        after: &[(
            "RELOADING",
            "SIGHUP rereads the file at once. An interface removed from the file keeps its \
             filter (event=unmanaged): regionfilter detach takes a filter off. Mode and lookup \
             are fixed when a filter is attached; when the running filter has others than the \
             file says, the agent says so (event=settings_differ).",
        )],
        example: "refresh = \"24h\"\n\
                  retry = \"5m\"\n\
                  metrics_listen = \"127.0.0.1:9877\"\n\
                  log_format = \"text\"\n\
                  log_samples = 10\n\
                  max_change = 10\n\
                  detach_on_exit = false\n\
                  download_timeout = \"5m\"\n\
                  download_stall = \"30s\"\n\
                  download_min_rate = 4096\n\
                  \n\
                  [[interface]]\n\
                  name = \"eth0\"\n\
                  mode = \"native\"\n\
                  lookup = \"fast\"\n\
                  db = [\"/var/lib/GeoIP/GeoLite2-Country.mmdb\"]\n\
                  [interface.policy]\n\
                  deny = [\"CN\", \"RU\"]\n\
                  samples = 5",
        see_also: &[
            "regionfilter-agent(1)",
            "regionfilter-policy(5)",
            "regionfilter-update(1)",
        ],
    }
}
