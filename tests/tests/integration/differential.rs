//! The kernel against the reference model: over a million random and mutated frames (every
//! header variant the parser knows, truncated at every byte), the XDP program (through
//! BPF_PROG_TEST_RUN on the self-test entry point, which reports the counter slot) and
//! `filter_user::model::reference` must give the same counter slot and action, for the fast tables and
//! the plain tries, on Ethernet and on raw-IP links, under policies that use every part of the
//! model.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::Ipv6Net;

use filter_user::{
    compile::paint,
    compile::reference::{parse, Model, Packet, Why},
    compile::{RegionSet, Span},
    data::SourceInfo,
    model::country::Country,
    model::lookup::Lookup,
    model::policy::{Action, IcmpErrors, Mode, Policy, Tcp},
    model::scope::{parse_ports, Scope, Service},
};
use integration_tests::kernel::{LoadedFilter, XDP_DROP, XDP_PASS};

/// Frames per (policy, lookup, link) run; 5 policies x 2 lookups, one of them also raw IP.
const FRAMES_PER_RUN: usize = 150_000;

/// Deterministic xorshift, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

fn code(c: &str) -> Country {
    Country::parse(c).unwrap()
}

/// Country data: IPv4 and IPv6 ranges (disjoint), some next to local space.
fn regions() -> RegionSet {
    let v4 = [
        ("9.0.0.0", "9.255.255.255", "US"),
        ("11.0.0.0", "11.0.255.255", "GB"),
        ("11.1.0.0", "11.1.0.127", "FR"),
        ("11.1.0.128", "11.1.3.255", "DE"),
        ("81.2.69.0", "81.2.69.255", "GB"),
        ("89.160.0.0", "89.160.255.255", "SE"),
        ("100.0.0.0", "100.63.255.255", "CN"),
        ("172.32.0.0", "172.32.0.255", "JP"),
    ];
    let v6 = [
        ("2001:218::", "2001:218:ffff:ffff:ffff:ffff:ffff:ffff", "JP"),
        ("2a00::", "2a00:0:ffff:ffff:ffff:ffff:ffff:ffff", "DE"),
        ("2a00:1::", "2a00:1::ffff", "CN"),
        ("2a02::", "2a02:00ff:ffff:ffff:ffff:ffff:ffff:ffff", "GB"),
    ];
    RegionSet {
        sources: vec![SourceInfo::default()],
        v4: v4
            .iter()
            .map(|&(s, e, c)| Span {
                start: u32::from(s.parse::<Ipv4Addr>().unwrap()),
                end: u32::from(e.parse::<Ipv4Addr>().unwrap()),
                country: code(c),
                source: 0,
            })
            .collect(),
        v6: v6
            .iter()
            .map(|&(s, e, c)| Span {
                start: u128::from(s.parse::<Ipv6Addr>().unwrap()),
                end: u128::from(e.parse::<Ipv6Addr>().unwrap()),
                country: code(c),
                source: 0,
            })
            .collect(),
    }
}

fn service(name: &str, ports: &str, mode: Mode, codes: &[&str]) -> Service {
    Service {
        name: name.to_owned(),
        ports: parse_ports(ports).unwrap(),
        mode,
        countries: codes.iter().map(|c| code(c)).collect(),
    }
}

/// NAT64 translator prefixes the policies declare: every RFC 6052 length, inside the local-use
/// prefix 64:ff9b:1::/48 and outside it; the first four for the `host` policy, the next two
/// for `ports`, the last two for `services` (the others declare none).
const NAT64_PREFIXES: &[&str] = &[
    "64:ff9b:1:ab00::/56",
    "64:ff9b:1:cd01::/64",
    "64:ff9b:1:0:0:1::/96",
    "2001:db8::/32",
    "64:ff9b:1::/48",
    "2001:db8:100::/40",
    "2001:db8:122:300::/56",
    "64:ff9b:1:abcd::/64",
];

fn nat64(list: &[&str]) -> Vec<Ipv6Net> {
    list.iter().map(|p| p.parse().unwrap()).collect()
}

/// Policies that between them use every part of the model.
fn policies() -> Vec<(&'static str, Policy)> {
    let base = |mode, codes: &[&str]| Policy::new(mode, codes.iter().map(|c| code(c)).collect());
    let mut host = base(Mode::Deny, &["GB", "CN"]);
    host.unknown = Action::Drop;
    host.allow_cidrs = vec![
        "11.0.7.0/24".parse().unwrap(),
        "2a02:0:1::/48".parse().unwrap(),
    ];
    host.deny_cidrs = vec![
        "11.1.0.0/22".parse().unwrap(),
        "10.9.0.0/16".parse().unwrap(),
        "2001:218:0:1::/64".parse().unwrap(),
    ];
    host.icmp_errors = IcmpErrors::Judge;
    host.nat64_prefixes = nat64(&NAT64_PREFIXES[..4]);

    let mut ports = base(Mode::Allow, &["US", "SE"]);
    ports.scope = Scope::Ports(parse_ports("tcp/443,udp/443,tcp/8000-8100").unwrap());
    ports.tcp = Tcp::Syn;
    ports.local = Action::Drop;
    ports.dry_run = true;
    ports.allow_cidrs = vec!["9.9.9.0/24".parse().unwrap()];
    ports.nat64_prefixes = nat64(&NAT64_PREFIXES[4..6]);

    let mut services = base(Mode::Deny, &["JP"]);
    services.scope = Scope::Services {
        services: vec![
            service("api", "tcp/443,udp/443", Mode::Allow, &["US", "DE", "SE"]),
            service("ssh", "tcp/22", Mode::Allow, &["DE"]),
            service("dns", "udp/53", Mode::Deny, &["CN", "GB"]),
        ],
        other_judged: true,
    };
    services.malformed = Action::Drop;
    services.unknown = Action::Drop;
    services.nat64_prefixes = nat64(&NAT64_PREFIXES[6..]);

    let mut only_services = base(Mode::Deny, &[]);
    only_services.scope = Scope::Services {
        services: vec![service("web", "tcp/80,tcp/443", Mode::Deny, &["CN", "FR"])],
        other_judged: false,
    };
    only_services.tcp = Tcp::Syn;
    only_services.deny_cidrs = vec!["9.0.0.0/8".parse().unwrap()];

    let plain = base(Mode::Allow, &["DE"]);
    vec![
        ("host", host),
        ("ports", ports),
        ("services", services),
        ("only-services", only_services),
        ("plain", plain),
    ]
}

/// Source addresses worth judging: inside, at the edges of and just outside every range and
/// exception, local space, and random addresses.
fn v4_sources(rng: &mut Rng) -> Ipv4Addr {
    const EDGES: &[u32] = &[
        0x0900_0000,
        0x09ff_ffff,
        0x0b00_0000,
        0x0b00_ffff,
        0x0b01_0000,
        0x0b01_007f,
        0x0b01_0080,
        0x0b01_03ff,
        0x0b01_0400,
        0x0b00_0700,
        0x0b00_07ff,
        0x0b00_0800,
        0x5102_4500,
        0x5102_45ff,
        0x59a0_0000,
        0x6400_0000,
        0x643f_ffff,
        0x6440_0000,
        0xac1f_ffff,
        0xac20_0000,
        0x0a09_0000,
        0x0a08_ffff,
        0x0909_0900,
        0xc0a8_0101,
        0x7f00_0001,
        0x0000_0000,
        0xffff_ffff,
        0xe000_0001,
        0xa9fe_0001,
    ];
    let base = rng.pick(EDGES);
    match rng.below(4) {
        0 => Ipv4Addr::from(base),
        1 => Ipv4Addr::from(base.wrapping_add(rng.below(512) as u32).wrapping_sub(256)),
        2 => Ipv4Addr::from(rng.next() as u32),
        _ => Ipv4Addr::from(base ^ (rng.next() as u32 & 0xffff)),
    }
}

fn v6_sources(rng: &mut Rng) -> Ipv6Addr {
    const EDGES: &[u128] = &[
        0x2001_0218_0000_0000_0000_0000_0000_0000,
        0x2001_0218_0000_0001_0000_0000_0000_0000,
        0x2001_0218_ffff_ffff_ffff_ffff_ffff_ffff,
        0x2a00_0000_0000_0000_0000_0000_0000_0000,
        0x2a00_0001_0000_0000_0000_0000_0000_ffff,
        0x2a02_0000_0001_0000_0000_0000_0000_0000,
        0x2a02_00ff_ffff_ffff_ffff_ffff_ffff_ffff,
        0xfe80_0000_0000_0000_0000_0000_0000_0001,
        0xfd00_0000_0000_0000_0000_0000_0000_0001,
        0,
        1,
        0xff02_0000_0000_0000_0000_0000_0000_0001,
    ];
    let v4 = u128::from(u32::from(v4_sources(rng)));
    match rng.below(12) {
        0 => Ipv6Addr::from(rng.pick(EDGES)),
        1 => Ipv6Addr::from(rng.pick(EDGES) ^ u128::from(rng.next() as u16)),
        2 => Ipv6Addr::from(u128::from(rng.next()) << 64 | u128::from(rng.next())),
        // The embeddings: mapped, compatible, 6to4, Teredo, NAT64 /96 and /48.
        3 => Ipv6Addr::from(0xffff_0000_0000 | v4),
        4 => Ipv6Addr::from(v4),
        5 => Ipv6Addr::from(0x2002u128 << 112 | v4 << 80 | u128::from(rng.next() as u16)),
        6 => Ipv6Addr::from(
            0x2001_0000u128 << 96 | u128::from(rng.next() as u32) << 32 | (!v4 & 0xffff_ffff),
        ),
        7 => Ipv6Addr::from(0x0064_ff9b_u128 << 96 | v4),
        // Inside a declared prefix (of this policy or another), with the layout of its
        // length, sometimes a set u octet and bits after the address.
        9 | 10 => {
            let prefix: Ipv6Net = rng.pick(NAT64_PREFIXES).parse().unwrap();
            let v4 = Ipv4Addr::from(u32::try_from(v4).unwrap());
            let mut a = filter_user::kernel::selftest::embed_nat64(prefix, v4).octets();
            if rng.chance(30) && prefix.prefix_len() <= 64 {
                a[8] = rng.next() as u8;
            }
            let after = match prefix.prefix_len() {
                96 => 16,
                len => usize::from(len / 8) + 5,
            };
            if rng.chance(30) && after < 16 {
                a[after + rng.below(16 - after)] = rng.next() as u8;
            }
            Ipv6Addr::from(a)
        }
        // Anywhere in the local-use prefix 64:ff9b:1::/48.
        11 => Ipv6Addr::from(0x0064_ff9b_0001u128 << 80 | u128::from(rng.next()) << 16),
        _ => {
            let o = u32::try_from(v4).unwrap().to_be_bytes();
            Ipv6Addr::from([
                0, 0x64, 0xff, 0x9b, 0, 1, o[0], o[1], 0, o[2], o[3], 0, 0, 0, 0, 0,
            ])
        }
    }
}

const PORTS: &[u16] = &[
    22, 53, 80, 443, 8000, 8050, 8100, 8101, 7999, 40000, 1, 65535,
];

/// A transport header: TCP (any flags, sometimes cut short), UDP, ICMP (errors and others),
/// or something without ports.
fn transport(rng: &mut Rng, v6: bool) -> (u8, Vec<u8>) {
    let port = if rng.chance(80) {
        rng.pick(PORTS)
    } else {
        rng.next() as u16
    };
    match rng.below(5) {
        0 | 1 => {
            let flags = rng.pick(&[0x02u8, 0x12, 0x10, 0x18, 0x04, 0x01, 0x03, 0x00, 0xff]);
            let mut t = vec![0x30, 0x39];
            t.extend_from_slice(&port.to_be_bytes());
            t.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
            (6, t)
        }
        2 => {
            let mut u = vec![0x30, 0x39];
            u.extend_from_slice(&port.to_be_bytes());
            u.extend_from_slice(&[0, 8, 0, 0]);
            (17, u)
        }
        3 => {
            let icmp_type = if v6 {
                rng.pick(&[1u8, 2, 3, 4, 128, 129, 133, 134, 135, 136, 137, 0])
            } else {
                rng.pick(&[0u8, 3, 8, 11, 12, 5, 13])
            };
            let mut m = vec![icmp_type, 0, 0, 0];
            m.resize(4 + rng.below(32), 0);
            (if v6 { 58 } else { 1 }, m)
        }
        _ => (rng.pick(&[47u8, 50, 132, 59, 253]), vec![0; rng.below(24)]),
    }
}

/// A frame of any shape the parser distinguishes, before mutation.
fn frame(rng: &mut Rng, raw_ip: bool) -> Vec<u8> {
    let mut f = Vec::new();
    let v6 = rng.chance(50);
    if !raw_ip {
        f.extend_from_slice(&[0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2]);
        for _ in 0..rng.pick(&[0usize, 0, 0, 1, 2, 3]) {
            f.extend_from_slice(&rng.pick(&[0x8100u16, 0x88a8]).to_be_bytes());
            f.extend_from_slice(&[0, 100]);
        }
        let ethertype: u16 = match rng.below(20) {
            0 => 0x0806,
            1 => rng.next() as u16,
            _ if v6 => 0x86dd,
            _ => 0x0800,
        };
        f.extend_from_slice(&ethertype.to_be_bytes());
    }
    if v6 {
        let (proto, payload) = transport(rng, true);
        let ext: Vec<u8> = (0..rng.pick(&[0usize, 0, 1, 2, 3, 5, 6, 7]))
            .map(|_| rng.pick(&[0u8, 43, 60, 44, 51]))
            .collect();
        let first = ext.first().copied().unwrap_or(proto);
        // Hop limit 255 (neighbour discovery must have it) or what a router left.
        let hop_limit = rng.pick(&[64u8, 255, 255, 254, 1]);
        f.extend_from_slice(&[0x60, 0, 0, 0, 0, 0, first, hop_limit]);
        f.extend_from_slice(&v6_sources(rng).octets());
        f.extend_from_slice(&[
            0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
        ]);
        for (i, &kind) in ext.iter().enumerate() {
            let next = ext.get(i + 1).copied().unwrap_or(proto);
            match kind {
                44 => {
                    let offset: u16 = if rng.chance(70) {
                        0
                    } else {
                        8 * (1 + rng.below(100) as u16)
                    };
                    let more = u16::from(rng.chance(50));
                    f.extend_from_slice(&[next, 0]);
                    f.extend_from_slice(&(offset | more).to_be_bytes());
                    f.extend_from_slice(&[0, 0, 0, 1]);
                }
                51 => {
                    // AH: length in 4-byte units minus 2; 1 means 12 bytes.
                    f.extend_from_slice(&[next, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1]);
                }
                _ => {
                    let extra = rng.below(2);
                    f.extend_from_slice(&[next, extra as u8, 1, 4, 0, 0, 0, 0]);
                    f.resize(f.len() + 8 * extra, 0);
                }
            }
        }
        f.extend_from_slice(&payload);
    } else {
        let (proto, payload) = transport(rng, false);
        let ihl = rng.pick(&[5u8, 5, 5, 6, 8, 15]);
        let fragment: u16 = match rng.below(10) {
            0 => 1 + rng.below(0x1fff) as u16,
            1 => 0x2000,
            _ => 0x4000,
        };
        f.extend_from_slice(&[0x40 | ihl, 0, 0, 0, 0, 1]);
        f.extend_from_slice(&fragment.to_be_bytes());
        f.extend_from_slice(&[64, proto, 0, 0]);
        f.extend_from_slice(&v4_sources(rng).octets());
        f.extend_from_slice(&[198, 51, 100, 1]);
        f.resize(f.len() + 4 * (usize::from(ihl) - 5), 1);
        f.extend_from_slice(&payload);
    }
    f
}

/// Flips a few random bits, mostly in the headers.
fn mutate(rng: &mut Rng, f: &mut [u8]) {
    for _ in 0..1 + rng.below(3) {
        if f.is_empty() {
            return;
        }
        let at = rng.below(f.len().min(90));
        f[at] ^= 1 << rng.below(8);
    }
}

/// The smallest frame BPF_PROG_TEST_RUN takes for XDP.
const MIN_FRAME: usize = 14;

/// How often each kind of decision came up, so the test proves it covered every one.
#[derive(Default)]
struct Seen(std::collections::BTreeMap<String, usize>);

impl Seen {
    /// Counts a source judged by its country through a declared NAT64 prefix, by the prefix
    /// length and the verdict, so every layout is seen both dropping and passing.
    fn add_nat64(&mut self, policy: &Policy, frame: &[u8], raw_ip: bool, why: &Why, drop: bool) {
        let Packet::Ip {
            src: IpAddr::V6(src),
            ..
        } = parse(frame, raw_ip)
        else {
            return;
        };
        let Why::Judged {
            class: filter_user::compile::reference::Class::Country(_),
            ..
        } = why
        else {
            return;
        };
        if let Some(p) = policy.nat64_prefixes.iter().find(|p| p.contains(&src)) {
            let verdict = if drop { "drop" } else { "pass" };
            *self
                .0
                .entry(format!("nat64/{}/{verdict}", p.prefix_len()))
                .or_default() += 1;
        }
    }

    fn add(&mut self, why: &Why) {
        let kind = match why {
            Why::Judged { rule, class } => {
                let class = format!("{class:?}");
                let class = class.split('(').next().unwrap_or_default().to_owned();
                format!("{rule:?}/{class}")
            }
            other => format!("{other:?}"),
        };
        *self.0.entry(kind).or_default() += 1;
    }
}

fn compare(
    name: &str,
    policy: &Policy,
    lookup: Lookup,
    raw_ip: bool,
    seed: u64,
    seen: &mut Seen,
) -> usize {
    let regions = regions();
    let entries = paint::entries(&regions, Some(policy));
    let mut kernel = LoadedFilter::with_entries(&entries, policy, lookup, raw_ip);
    let model = Model::new(&regions, policy);
    let mut rng = Rng(seed);
    let mut checked = 0;
    let mut check = |frame: &[u8], checked: &mut usize| {
        if frame.len() < MIN_FRAME {
            return;
        }
        let (slot, code) = kernel.classify_frame(frame);
        let want = model.judge_frame(frame, raw_ip);
        let want_code = match want.action {
            Action::Pass => XDP_PASS,
            Action::Drop => XDP_DROP,
        };
        assert!(
            slot == want.slot && code == want_code,
            "{name} ({lookup:?}, raw_ip {raw_ip}): kernel slot {slot} code {code}, model slot {} \
             code {want_code} ({:?}) for frame {:02x?}",
            want.slot,
            want.why,
            frame
        );
        seen.add(&want.why);
        seen.add_nat64(
            policy,
            frame,
            raw_ip,
            &want.why,
            want.verdict == Action::Drop,
        );
        *checked += 1;
    };
    while checked < FRAMES_PER_RUN {
        let mut f = frame(&mut rng, raw_ip);
        match rng.below(100) {
            // Every truncation of one frame in 100: a frame has about a hundred, so that is
            // half of the frames compared, and thousands of frames cut at every byte.
            0 => {
                for len in (0..=f.len()).rev() {
                    check(&f[..len], &mut checked);
                }
            }
            1..=30 => {
                mutate(&mut rng, &mut f);
                check(&f, &mut checked);
            }
            _ => check(&f, &mut checked),
        }
    }
    checked
}

#[test]
fn the_kernel_and_the_reference_model_agree_on_a_million_frames() {
    let mut total = 0;
    let mut seen = Seen::default();
    for (i, (name, policy)) in policies().iter().enumerate() {
        for lookup in [Lookup::Fast, Lookup::Lpm] {
            let seed = 0x9e37_79b9_7f4a_7c15 ^ (i as u64) << 8 ^ u64::from(lookup == Lookup::Lpm);
            total += compare(name, policy, lookup, false, seed, &mut seen);
        }
    }
    // Raw-IP links (tun) with the richest policy.
    let (name, policy) = &policies()[2];
    total += compare(name, policy, Lookup::Fast, true, 0x1234_5678, &mut seen);
    assert!(total >= 1_000_000, "only {total} frames compared");
    // Every kind of decision came up often enough to matter.
    let expected = [
        "NonIp",
        "Malformed",
        "IcmpError",
        "OutOfScope",
        "Fragment",
        "TcpNotSyn",
        "Main/AllowCidr",
        "Main/DenyCidr",
        "Main/Local",
        "Main/Country",
        "Main/Unknown",
        "Strict/Country",
        "Service(\"api\")/Country",
        "Service(\"ssh\")/Country",
        "Service(\"dns\")/Country",
        "Service(\"web\")/DenyCidr",
        "UndeclaredNat64",
        "NeighbourDiscovery",
        // A denied and an allowed IPv4 address under every RFC 6052 layout.
        "nat64/32/drop",
        "nat64/32/pass",
        "nat64/40/drop",
        "nat64/40/pass",
        "nat64/48/drop",
        "nat64/48/pass",
        "nat64/56/drop",
        "nat64/56/pass",
        "nat64/64/drop",
        "nat64/64/pass",
        "nat64/96/drop",
        "nat64/96/pass",
    ];
    for kind in expected {
        let n = seen.0.get(kind).copied().unwrap_or(0);
        assert!(n >= 40, "only {n} frames decided as {kind}: {:?}", seen.0);
    }
    eprintln!("decisions compared: {:?}", seen.0);
}
