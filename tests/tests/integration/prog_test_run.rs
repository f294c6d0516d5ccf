//! The XDP program in the real kernel through BPF_PROG_TEST_RUN, on hand-built frames: every
//! parse path and verdict, each checked against the per-CPU counters it must bump.

use std::net::{Ipv4Addr, Ipv6Addr};

use filter_common::{
    country_slot, Counter, ACTION_DROP, ACTION_PASS, SLOT_EXCEPTION_DROP, SLOT_EXCEPTION_PASS,
    SLOT_FRAGMENT_PASS, SLOT_ICMP_ERROR_PASS, SLOT_LOCAL_DROP, SLOT_LOCAL_PASS,
    SLOT_MALFORMED_DROP, SLOT_MALFORMED_PASS, SLOT_NDP_PASS, SLOT_NON_IP, SLOT_OUT_OF_SCOPE,
    SLOT_TCP_NOT_SYN, SLOT_UNDECLARED_NAT64_DROP, SLOT_UNDECLARED_NAT64_WOULD_DROP,
    UNKNOWN_COUNTRY,
};
use filter_user::model::scope::{parse_ports, Scope, Service};
use filter_user::{
    compile::Prefixes,
    model::country::Country,
    model::lookup::Lookup,
    model::policy::{Action, Mode, Policy},
};
use integration_tests::frame::{ipv4_with, ipv6_with, tcp, udp_to, TCP_ACK, TCP_SYN};
use integration_tests::{
    frame::{self, ETH_P_8021AD, ETH_P_8021Q},
    kernel::{LoadedFilter, XDP_DROP, XDP_PASS},
};
use ipnet::IpNet;

/// Country data for every test: a /16 with a more specific /24 inside, likewise for IPv6.
const REGIONS: &[(&str, &str)] = &[
    ("81.2.0.0/16", "FR"),
    ("81.2.69.0/24", "GB"),
    ("89.160.0.0/16", "SE"),
    ("2001:218::/32", "JP"),
    ("2001:218:1::/48", "KR"),
];
const GB_V4: Ipv4Addr = Ipv4Addr::new(81, 2, 69, 160);
const FR_V4: Ipv4Addr = Ipv4Addr::new(81, 2, 1, 1);
const SE_V4: Ipv4Addr = Ipv4Addr::new(89, 160, 20, 130);
const UNKNOWN_V4: Ipv4Addr = Ipv4Addr::new(100, 1, 2, 7);

fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn cc(code: &str) -> u16 {
    Country::parse(code).unwrap().index()
}

fn policy(mode: Mode, codes: &[&str]) -> Policy {
    Policy::new(
        mode,
        codes.iter().map(|c| Country::parse(c).unwrap()).collect(),
    )
}

/// The program loaded with [`REGIONS`] and a policy, once per lookup: every expectation must
/// hold for the fast tables and for the plain tries alike.
struct Filter(Vec<LoadedFilter>);

impl Filter {
    fn new(policy: &Policy) -> Self {
        let mut data = Prefixes::default();
        for (net, code) in REGIONS {
            let country = Country::parse(code).unwrap();
            match net.parse::<IpNet>().unwrap() {
                IpNet::V4(n) => data.v4.push((n, country)),
                IpNet::V6(n) => data.v6.push((n, country)),
            }
        }
        Self(
            [Lookup::Fast, Lookup::Lpm]
                .map(|lookup| LoadedFilter::new(&data, policy, lookup))
                .into(),
        )
    }

    fn counter(&self, slot: u32) -> Counter {
        self.0[0].maps.counter_totals().expect("read counters")[slot as usize]
    }

    /// Runs one frame and checks its verdict and that exactly `slot` counted it.
    fn expect(&mut self, frame: &[u8], verdict: u32, slot: u32) {
        for filter in &mut self.0 {
            let before = filter.maps.counter_totals().unwrap();
            let got = filter.run(frame);
            let lookup = filter.lookup;
            assert_eq!(
                got,
                verdict,
                "{lookup:?} verdict for a {}-byte frame",
                frame.len()
            );
            let after = filter.maps.counter_totals().unwrap();
            for (i, (b, a)) in before.iter().zip(&after).enumerate() {
                let want = if i == slot as usize {
                    Counter {
                        packets: b.packets + 1,
                        bytes: b.bytes + frame.len() as u64,
                    }
                } else {
                    *b
                };
                assert_eq!(
                    *a, want,
                    "{lookup:?} counter slot {i} (expected slot {slot} to count)"
                );
            }
        }
    }
}

#[test]
fn deny_list_drops_listed_country_and_passes_others_ipv4() {
    let mut f = Filter::new(&policy(Mode::Deny, &["GB"]));
    f.expect(
        &frame::ipv4(&[], GB_V4, 32),
        XDP_DROP,
        country_slot(cc("GB"), ACTION_DROP),
    );
    f.expect(
        &frame::ipv4(&[], SE_V4, 32),
        XDP_PASS,
        country_slot(cc("SE"), ACTION_PASS),
    );
    f.expect(
        &frame::ipv4(&[], UNKNOWN_V4, 32),
        XDP_PASS,
        country_slot(UNKNOWN_COUNTRY, ACTION_PASS),
    );
    assert_eq!(f.counter(country_slot(cc("GB"), ACTION_DROP)).packets, 1);
}

#[test]
fn allow_list_passes_only_listed_countries() {
    let mut f = Filter::new(&policy(Mode::Allow, &["SE", "JP"]));
    f.expect(
        &frame::ipv4(&[], SE_V4, 0),
        XDP_PASS,
        country_slot(cc("SE"), ACTION_PASS),
    );
    f.expect(
        &frame::ipv4(&[], GB_V4, 0),
        XDP_DROP,
        country_slot(cc("GB"), ACTION_DROP),
    );
    f.expect(
        &frame::ipv6(&[], v6("2001:218::5"), 0),
        XDP_PASS,
        country_slot(cc("JP"), ACTION_PASS),
    );
    f.expect(
        &frame::ipv6(&[], v6("2001:218:1::5"), 0),
        XDP_DROP,
        country_slot(cc("KR"), ACTION_DROP),
    );
}

#[test]
fn unknown_space_follows_the_unknown_policy() {
    let mut allow_unknown = Filter::new(&policy(Mode::Allow, &["SE"]));
    allow_unknown.expect(
        &frame::ipv4(&[], UNKNOWN_V4, 0),
        XDP_PASS,
        country_slot(UNKNOWN_COUNTRY, ACTION_PASS),
    );
    let mut p = policy(Mode::Allow, &["SE"]);
    p.unknown = Action::Drop;
    let mut drop_unknown = Filter::new(&p);
    drop_unknown.expect(
        &frame::ipv4(&[], UNKNOWN_V4, 0),
        XDP_DROP,
        country_slot(UNKNOWN_COUNTRY, ACTION_DROP),
    );
    drop_unknown.expect(
        &frame::ipv6(&[], v6("2a00:db8::1"), 0),
        XDP_DROP,
        country_slot(UNKNOWN_COUNTRY, ACTION_DROP),
    );
}

#[test]
fn longest_prefix_wins_ipv4_and_ipv6() {
    // FR owns the /16, GB the /24 inside it; JP the /32, KR the /48 inside it.
    let mut f = Filter::new(&policy(Mode::Deny, &["FR", "JP"]));
    f.expect(
        &frame::ipv4(&[], FR_V4, 0),
        XDP_DROP,
        country_slot(cc("FR"), ACTION_DROP),
    );
    f.expect(
        &frame::ipv4(&[], GB_V4, 0),
        XDP_PASS,
        country_slot(cc("GB"), ACTION_PASS),
    );
    f.expect(
        &frame::ipv6(&[], v6("2001:218:2::1"), 0),
        XDP_DROP,
        country_slot(cc("JP"), ACTION_DROP),
    );
    f.expect(
        &frame::ipv6(&[], v6("2001:218:1::1"), 0),
        XDP_PASS,
        country_slot(cc("KR"), ACTION_PASS),
    );
}

#[test]
fn ipv4_mapped_ipv6_sources_are_judged_as_ipv4() {
    let mut f = Filter::new(&policy(Mode::Deny, &["GB"]));
    let mapped = |a: Ipv4Addr| a.to_ipv6_mapped();
    f.expect(
        &frame::ipv6(&[], mapped(GB_V4), 16),
        XDP_DROP,
        country_slot(cc("GB"), ACTION_DROP),
    );
    f.expect(
        &frame::ipv6(&[], mapped(SE_V4), 16),
        XDP_PASS,
        country_slot(cc("SE"), ACTION_PASS),
    );
}

/// Every IPv6 form that carries an IPv4 address is judged, and counted, as that address: a
/// denied country cannot pass by wrapping its address in 6to4, Teredo, NAT64 or the
/// IPv4-compatible form.
#[test]
fn ipv6_sources_that_embed_ipv4_are_judged_by_it() {
    let mut f = Filter::new(&policy(Mode::Deny, &["GB"]));
    let [a, b, c, d] = GB_V4.octets();
    let [ia, ib, ic, id] = [!a, !b, !c, !d];
    let gb_forms = [
        GB_V4.to_ipv6_compatible(),
        // 6to4: 2002:AABB:CCDD::/48.
        Ipv6Addr::from([0x20, 0x02, a, b, c, d, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1]),
        // Teredo: 2001:0::/32, server 65.54.227.120, client inverted in the last 32 bits.
        Ipv6Addr::from([
            0x20, 0x01, 0, 0, 65, 54, 227, 120, 0x80, 0, 0xf2, 0x27, ia, ib, ic, id,
        ]),
        // NAT64 well-known prefix 64:ff9b::/96 (local-use prefixes: the tests below).
        Ipv6Addr::from([0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0, a, b, c, d]),
    ];
    for src in gb_forms {
        f.expect(
            &frame::ipv6(&[], src, 16),
            XDP_DROP,
            country_slot(cc("GB"), ACTION_DROP),
        );
        // userspace (explain, the self-test) reads the same address out of it.
        assert_eq!(
            filter_user::model::policy::as_judged(src.into()),
            std::net::IpAddr::V4(GB_V4),
            "{src}"
        );
    }
    let [a, b, c, d] = SE_V4.octets();
    f.expect(
        &frame::ipv6(
            &[],
            Ipv6Addr::from([0x20, 0x02, a, b, c, d, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
            16,
        ),
        XDP_PASS,
        country_slot(cc("SE"), ACTION_PASS),
    );
    // The unspecified and loopback addresses are not IPv4-compatible ones (they are local
    // space), and other IPv6 space next to the embedding prefixes stays IPv6.
    for src in ["::", "::1"] {
        f.expect(&frame::ipv6(&[], v6(src), 16), XDP_PASS, SLOT_LOCAL_PASS);
    }
    for src in ["2003::1", "2001:1::1", "64:ff9b:2::1"] {
        f.expect(
            &frame::ipv6(&[], v6(src), 16),
            XDP_PASS,
            country_slot(UNKNOWN_COUNTRY, ACTION_PASS),
        );
    }
}

/// Declared NAT64 translator prefixes, one per RFC 6052 length (four per policy at most, so
/// two policies): a denied IPv4 address embedded with each layout is dropped and counted under
/// its country, an allowed one passes, whatever the `u` octet (bits 64-71) holds.
const NAT64_DECLARED: [&[&str]; 2] = [
    &[
        "2001:db8::/32",
        "2001:db9:100::/40",
        "64:ff9b:1::/48",
        "2001:db9:200:300::/56",
    ],
    &[
        "64:ff9b:1:ab00::/56",
        "64:ff9b:1:cd01::/64",
        "64:ff9b:1:0:0:1::/96",
        "2001:db8:64::/96",
    ],
];

fn nat64_policy(prefixes: &[&str]) -> Policy {
    let mut p = policy(Mode::Deny, &["GB"]);
    p.nat64_prefixes = prefixes.iter().map(|p| p.parse().unwrap()).collect();
    p
}

#[test]
fn declared_nat64_prefixes_of_every_length_are_read_with_their_layout() {
    use filter_user::kernel::selftest::embed_nat64;
    let mut lengths = std::collections::BTreeSet::new();
    for declared in NAT64_DECLARED {
        let p = nat64_policy(declared);
        let mut f = Filter::new(&p);
        for prefix in declared {
            let prefix: ipnet::Ipv6Net = prefix.parse().unwrap();
            lengths.insert(prefix.prefix_len());
            for u in [0u8, 0xa5] {
                let with_u = |a: Ipv6Addr| {
                    let mut o = a.octets();
                    if prefix.prefix_len() <= 64 {
                        o[8] = u;
                    }
                    Ipv6Addr::from(o)
                };
                let gb = with_u(embed_nat64(prefix, GB_V4));
                let se = with_u(embed_nat64(prefix, SE_V4));
                f.expect(
                    &frame::ipv6(&[], gb, 16),
                    XDP_DROP,
                    country_slot(cc("GB"), ACTION_DROP),
                );
                f.expect(
                    &frame::ipv6(&[], se, 16),
                    XDP_PASS,
                    country_slot(cc("SE"), ACTION_PASS),
                );
                // Userspace (explain, the self-test, the model) reads the same address.
                assert_eq!(
                    p.judged(gb.into()),
                    filter_user::model::policy::Judged::Addr(GB_V4.into()),
                    "{gb} under {prefix}"
                );
            }
        }
    }
    assert_eq!(
        lengths.into_iter().collect::<Vec<_>>(),
        [32, 40, 48, 56, 64, 96]
    );
}

/// A source in the local-use prefix 64:ff9b:1::/48 outside every declared prefix cannot be
/// read (a client could pick the layout that shows an allowed address): it is dropped, denied
/// or allowed IPv4 alike, counted apart; a dry run counts it as would-drop. ICMP errors and
/// packets out of a port scope pass as always.
#[test]
fn local_use_nat64_outside_every_declared_prefix_is_dropped_and_counted_apart() {
    // With nothing declared, RFC 6052's /48 layout shows GB, and another layout SE.
    let [a, b, c, d] = GB_V4.octets();
    let gb_48 = Ipv6Addr::from([0, 0x64, 0xff, 0x9b, 0, 1, a, b, 0, c, d, 0, 0, 0, 0, 0]);
    let [a, b, c, d] = SE_V4.octets();
    let se_96 = Ipv6Addr::from([0, 0x64, 0xff, 0x9b, 0, 1, 0, 0, 0, 0, 0, 0, a, b, c, d]);
    let mut f = Filter::new(&policy(Mode::Deny, &["GB"]));
    for src in [gb_48, se_96] {
        f.expect(
            &frame::ipv6(&[], src, 16),
            XDP_DROP,
            SLOT_UNDECLARED_NAT64_DROP,
        );
    }
    f.expect(
        &frame::icmpv6(se_96, 2, &[]),
        XDP_PASS,
        SLOT_ICMP_ERROR_PASS,
    );
    // Outside the declared ones of a policy that declares some.
    let mut f = Filter::new(&nat64_policy(NAT64_DECLARED[1]));
    f.expect(
        &frame::ipv6(&[], v6("64:ff9b:1:1234::5102:45a0"), 16),
        XDP_DROP,
        SLOT_UNDECLARED_NAT64_DROP,
    );
    let mut dry = nat64_policy(NAT64_DECLARED[1]);
    dry.dry_run = true;
    let mut f = Filter::new(&dry);
    f.expect(
        &frame::ipv6(&[], gb_48, 16),
        XDP_PASS,
        SLOT_UNDECLARED_NAT64_WOULD_DROP,
    );
    let mut scoped = policy(Mode::Deny, &["GB"]);
    scoped.scope = Scope::Ports(parse_ports("udp/443").unwrap());
    let mut f = Filter::new(&scoped);
    f.expect(
        &ipv6_with(gb_48, UDP, &udp_to(53), &[]),
        XDP_PASS,
        SLOT_OUT_OF_SCOPE,
    );
    f.expect(
        &ipv6_with(gb_48, UDP, &udp_to(443), &[]),
        XDP_DROP,
        SLOT_UNDECLARED_NAT64_DROP,
    );
}

/// Neighbour discovery (RS, RA, NS, NA, redirect) with hop limit 255 comes from the link
/// itself: it passes from a global address in a denied country, counted apart. With another
/// hop limit, or cut before its ICMPv6 header is complete, it is judged by its source.
#[test]
fn neighbour_discovery_passes_only_with_hop_limit_255() {
    let mut f = Filter::new(&policy(Mode::Deny, &["KR"]));
    let kr = v6("2001:218:1::5");
    let with_hop_limit = |t: u8, hop_limit: u8| {
        let mut frame = frame::icmpv6(kr, t, &[]);
        frame[14 + 7] = hop_limit;
        frame
    };
    for t in 133..=137 {
        f.expect(&with_hop_limit(t, 255), XDP_PASS, SLOT_NDP_PASS);
        f.expect(
            &with_hop_limit(t, 64),
            XDP_DROP,
            country_slot(cc("KR"), ACTION_DROP),
        );
    }
    // Echo requests are not neighbour discovery, whatever their hop limit.
    f.expect(
        &with_hop_limit(128, 255),
        XDP_DROP,
        country_slot(cc("KR"), ACTION_DROP),
    );
    // Behind extension headers, still neighbour discovery; cut before the ICMPv6 header ends,
    // judged by the source.
    let mut ext = frame::icmpv6(kr, 135, &[0]);
    ext[14 + 7] = 255;
    f.expect(&ext, XDP_PASS, SLOT_NDP_PASS);
    let ns = with_hop_limit(135, 255);
    f.expect(
        &ns[..14 + 40 + 3],
        XDP_DROP,
        country_slot(cc("KR"), ACTION_DROP),
    );
    // From link-local space under `--local drop` too.
    let mut strict = policy(Mode::Allow, &["SE"]);
    strict.local = Action::Drop;
    let mut f = Filter::new(&strict);
    let mut ll = frame::icmpv6(v6("fe80::1"), 136, &[]);
    ll[14 + 7] = 255;
    f.expect(&ll, XDP_PASS, SLOT_NDP_PASS);
    ll[14 + 7] = 64;
    f.expect(&ll, XDP_DROP, SLOT_LOCAL_DROP);
}

#[test]
fn deny_list_ipv6() {
    let mut f = Filter::new(&policy(Mode::Deny, &["KR"]));
    f.expect(
        &frame::ipv6(&[], v6("2001:218:1:2::3"), 100),
        XDP_DROP,
        country_slot(cc("KR"), ACTION_DROP),
    );
    f.expect(
        &frame::ipv6(&[], v6("2001:218:2::3"), 100),
        XDP_PASS,
        country_slot(cc("JP"), ACTION_PASS),
    );
}

#[test]
fn one_and_two_vlan_tags_are_looked_through() {
    let mut f = Filter::new(&policy(Mode::Deny, &["GB", "KR"]));
    for tags in [
        &[ETH_P_8021Q][..],
        &[ETH_P_8021AD],
        &[ETH_P_8021AD, ETH_P_8021Q],
        &[ETH_P_8021Q, ETH_P_8021Q],
    ] {
        f.expect(
            &frame::ipv4(tags, GB_V4, 8),
            XDP_DROP,
            country_slot(cc("GB"), ACTION_DROP),
        );
        f.expect(
            &frame::ipv4(tags, SE_V4, 8),
            XDP_PASS,
            country_slot(cc("SE"), ACTION_PASS),
        );
        f.expect(
            &frame::ipv6(tags, v6("2001:218:1::9"), 8),
            XDP_DROP,
            country_slot(cc("KR"), ACTION_DROP),
        );
    }
}

#[test]
fn three_vlan_tags_are_malformed() {
    let mut f = Filter::new(&policy(Mode::Deny, &["SE"]));
    let tags = [ETH_P_8021AD, ETH_P_8021Q, ETH_P_8021Q];
    f.expect(&frame::ipv4(&tags, SE_V4, 8), XDP_PASS, SLOT_MALFORMED_PASS);
}

#[test]
fn exceptions_are_checked_before_countries_and_pass_wins() {
    let mut p = policy(Mode::Deny, &["GB"]);
    p.allow_cidrs = vec![
        "81.2.69.160/28".parse().unwrap(),
        "2001:218:1::/64".parse().unwrap(),
    ];
    p.deny_cidrs = vec![
        "81.2.69.0/24".parse().unwrap(), // overlaps the allow /28: allow wins there
        "89.160.20.128/25".parse().unwrap(),
        "2001:218:1::/48".parse().unwrap(),
    ];
    let mut f = Filter::new(&p);
    f.expect(&frame::ipv4(&[], GB_V4, 0), XDP_PASS, SLOT_EXCEPTION_PASS);
    f.expect(
        &frame::ipv4(&[], Ipv4Addr::new(81, 2, 69, 1), 0),
        XDP_DROP,
        SLOT_EXCEPTION_DROP,
    );
    f.expect(&frame::ipv4(&[], SE_V4, 0), XDP_DROP, SLOT_EXCEPTION_DROP);
    f.expect(
        &frame::ipv4(&[], Ipv4Addr::new(89, 160, 20, 1), 0),
        XDP_PASS,
        country_slot(cc("SE"), ACTION_PASS),
    );
    f.expect(
        &frame::ipv6(&[], v6("2001:218:1::1"), 0),
        XDP_PASS,
        SLOT_EXCEPTION_PASS,
    );
    f.expect(
        &frame::ipv6(&[], v6("2001:218:1:1::1"), 0),
        XDP_DROP,
        SLOT_EXCEPTION_DROP,
    );
}

#[test]
fn non_ip_frames_pass_even_on_a_strict_allow_list() {
    let mut p = policy(Mode::Allow, &["SE"]);
    p.unknown = Action::Drop;
    p.malformed = Action::Drop;
    let mut f = Filter::new(&p);
    f.expect(&frame::arp(), XDP_PASS, SLOT_NON_IP);
    let mut lldp = frame::ethernet(&[], 0x88CC);
    lldp.resize(60, 0);
    f.expect(&lldp, XDP_PASS, SLOT_NON_IP);
    let mut tagged_arp = frame::ethernet(&[ETH_P_8021Q], 0x0806);
    tagged_arp.resize(60, 0);
    f.expect(&tagged_arp, XDP_PASS, SLOT_NON_IP);
}

/// Every length from a bare Ethernet header up to one byte short of a full IP header.
fn truncations() -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    for tags in [&[][..], &[ETH_P_8021Q], &[ETH_P_8021AD, ETH_P_8021Q]] {
        for (full, end) in [
            (
                frame::ipv4(tags, GB_V4, 0),
                frame::l3_end(tags.len(), false),
            ),
            (
                frame::ipv6(tags, v6("2001:218:1::1"), 0),
                frame::l3_end(tags.len(), true),
            ),
        ] {
            for len in 14..end {
                frames.push(full[..len].to_vec());
            }
        }
    }
    frames
}

#[test]
fn truncated_headers_pass_by_default_and_are_counted_as_malformed() {
    let mut f = Filter::new(&policy(Mode::Deny, &["GB", "KR"]));
    let frames = truncations();
    assert!(frames.len() > 150);
    for frame in &frames {
        f.expect(frame, XDP_PASS, SLOT_MALFORMED_PASS);
    }
}

#[test]
fn truncated_headers_drop_when_malformed_policy_is_drop() {
    let mut p = policy(Mode::Deny, &["GB"]);
    p.malformed = Action::Drop;
    let mut f = Filter::new(&p);
    for frame in &truncations() {
        f.expect(frame, XDP_DROP, SLOT_MALFORMED_DROP);
    }
}

#[test]
fn wrong_ip_version_or_short_ihl_is_malformed() {
    let mut f = Filter::new(&policy(Mode::Deny, &["GB"]));
    let mut bad_version = frame::ipv4(&[], GB_V4, 8);
    bad_version[14] = 0x65;
    f.expect(&bad_version, XDP_PASS, SLOT_MALFORMED_PASS);
    let mut short_ihl = frame::ipv4(&[], GB_V4, 8);
    short_ihl[14] = 0x44;
    f.expect(&short_ihl, XDP_PASS, SLOT_MALFORMED_PASS);
    let mut v4_in_v6 = frame::ipv6(&[], v6("2001:218:1::1"), 8);
    v4_in_v6[14] = 0x45;
    f.expect(&v4_in_v6, XDP_PASS, SLOT_MALFORMED_PASS);
}

#[test]
fn bytes_count_the_whole_frame() {
    let mut f = Filter::new(&policy(Mode::Deny, &["GB"]));
    let big = frame::ipv4(&[], GB_V4, 1400);
    f.expect(&big, XDP_DROP, country_slot(cc("GB"), ACTION_DROP));
    assert_eq!(
        f.counter(country_slot(cc("GB"), ACTION_DROP)).bytes,
        big.len() as u64
    );
}

/// ICMP errors (unreachable, packet too big, time exceeded, parameter problem) pass whatever
/// their source and are counted apart, also behind IPv6 extension headers; other ICMP types are
/// judged by the source; `--icmp-errors judge` judges errors too.
#[test]
fn icmp_errors_pass_by_default_and_are_judged_on_request() {
    let mut f = Filter::new(&policy(Mode::Deny, &["GB", "JP"]));
    let jp = v6("2001:218::1");
    for t in [3, 11, 12] {
        f.expect(&frame::icmpv4(GB_V4, t), XDP_PASS, SLOT_ICMP_ERROR_PASS);
    }
    f.expect(
        &frame::icmpv4(GB_V4, 8),
        XDP_DROP,
        country_slot(cc("GB"), ACTION_DROP),
    );
    for t in [1, 2, 3, 4] {
        f.expect(&frame::icmpv6(jp, t, &[]), XDP_PASS, SLOT_ICMP_ERROR_PASS);
    }
    // Packet too big behind hop-by-hop, routing, destination options and a first fragment.
    f.expect(
        &frame::icmpv6(jp, 2, &[0, 43, 60, 44]),
        XDP_PASS,
        SLOT_ICMP_ERROR_PASS,
    );
    f.expect(
        &frame::icmpv6(jp, 128, &[]),
        XDP_DROP,
        country_slot(cc("JP"), ACTION_DROP),
    );
    // An ICMPv4 error cut short before its type is judged as an ordinary packet.
    let cut = &frame::icmpv4(GB_V4, 3)[..14 + 20];
    f.expect(cut, XDP_DROP, country_slot(cc("GB"), ACTION_DROP));

    let mut judged = policy(Mode::Deny, &["GB", "JP"]);
    judged.icmp_errors = filter_user::model::policy::IcmpErrors::Judge;
    let mut f = Filter::new(&judged);
    f.expect(
        &frame::icmpv4(GB_V4, 3),
        XDP_DROP,
        country_slot(cc("GB"), ACTION_DROP),
    );
    f.expect(
        &frame::icmpv6(jp, 2, &[]),
        XDP_DROP,
        country_slot(cc("JP"), ACTION_DROP),
    );
}

/// A dry run passes everything and counts what it would drop in the would-drop slot, for
/// countries, always-drop exceptions and malformed frames alike.
#[test]
fn a_dry_run_passes_everything_and_counts_would_drop() {
    let mut dry = policy(Mode::Deny, &["GB"]);
    dry.dry_run = true;
    dry.deny_cidrs = vec!["89.160.20.0/24".parse().unwrap()];
    dry.malformed = Action::Drop;
    let mut f = Filter::new(&dry);
    f.expect(
        &frame::ipv4(&[], GB_V4, 16),
        XDP_PASS,
        filter_common::would_drop_slot(country_slot(cc("GB"), ACTION_DROP)),
    );
    f.expect(
        &frame::ipv4(&[], SE_V4, 16),
        XDP_PASS,
        filter_common::SLOT_EXCEPTION_WOULD_DROP,
    );
    f.expect(
        &frame::ipv4(&[], Ipv4Addr::new(81, 2, 1, 1), 16),
        XDP_PASS,
        country_slot(cc("FR"), ACTION_PASS),
    );
    let cut = &frame::ipv4(&[], GB_V4, 16)[..20];
    f.expect(cut, XDP_PASS, filter_common::SLOT_MALFORMED_WOULD_DROP);
}

const TCP: u8 = 6;
const UDP: u8 = 17;
const ICMP: u8 = 1;

#[test]
fn local_space_has_its_own_verdict_apart_from_unknown() {
    // `--unknown drop` keeps link-local IPv6 (neighbour discovery) and private IPv4 working.
    let mut p = policy(Mode::Allow, &["SE"]);
    p.unknown = Action::Drop;
    let mut f = Filter::new(&p);
    for src in ["fe80::1", "::", "fd00::7"] {
        f.expect(&frame::ipv6(&[], v6(src), 8), XDP_PASS, SLOT_LOCAL_PASS);
    }
    // 0.0.0.0 is where a DHCP client's discover comes from.
    for src in [
        [10, 1, 2, 3],
        [192, 168, 1, 1],
        [100, 64, 0, 1],
        [169, 254, 9, 9],
        [0, 0, 0, 0],
    ] {
        f.expect(&frame::ipv4(&[], src.into(), 8), XDP_PASS, SLOT_LOCAL_PASS);
    }
    f.expect(
        &frame::ipv4(&[], UNKNOWN_V4, 8),
        XDP_DROP,
        country_slot(UNKNOWN_COUNTRY, ACTION_DROP),
    );
    p.local = Action::Drop;
    let mut f = Filter::new(&p);
    f.expect(
        &frame::ipv6(&[], v6("fe80::1"), 8),
        XDP_DROP,
        SLOT_LOCAL_DROP,
    );
    // An always-pass CIDR wins over the local class.
    p.allow_cidrs = vec!["10.9.0.0/16".parse().unwrap()];
    let mut f = Filter::new(&p);
    f.expect(
        &frame::ipv4(&[], [10, 9, 1, 1].into(), 8),
        XDP_PASS,
        SLOT_EXCEPTION_PASS,
    );
    f.expect(
        &frame::ipv4(&[], [10, 8, 1, 1].into(), 8),
        XDP_DROP,
        SLOT_LOCAL_DROP,
    );
}

#[test]
fn a_port_scope_judges_only_its_ports_and_passes_fragments_and_portless_traffic() {
    let mut p = policy(Mode::Deny, &["GB"]);
    p.scope = Scope::Ports(parse_ports("tcp/443,udp/8000-8100").unwrap());
    let mut f = Filter::new(&p);
    let gb_drop = country_slot(cc("GB"), ACTION_DROP);
    f.expect(
        &ipv4_with(GB_V4, TCP, &tcp(443, TCP_SYN), 0),
        XDP_DROP,
        gb_drop,
    );
    f.expect(&ipv4_with(GB_V4, UDP, &udp_to(8050), 0), XDP_DROP, gb_drop);
    // Replies to the host's own connections arrive on other ports: out of scope.
    f.expect(
        &ipv4_with(GB_V4, TCP, &tcp(40000, TCP_SYN | TCP_ACK), 0),
        XDP_PASS,
        SLOT_OUT_OF_SCOPE,
    );
    f.expect(
        &ipv4_with(GB_V4, UDP, &udp_to(443), 0),
        XDP_PASS,
        SLOT_OUT_OF_SCOPE,
    );
    f.expect(
        &ipv4_with(GB_V4, ICMP, &[8, 0, 0, 0], 0),
        XDP_PASS,
        SLOT_OUT_OF_SCOPE,
    );
    // Non-first fragments carry no ports and pass; the first fragment carries them.
    f.expect(
        &ipv4_with(GB_V4, UDP, &[0; 16], 185),
        XDP_PASS,
        SLOT_FRAGMENT_PASS,
    );
    // A TCP header cut before its flags: the strictest rule judges it.
    f.expect(
        &ipv4_with(GB_V4, TCP, &tcp(9, 0)[..13], 0),
        XDP_DROP,
        gb_drop,
    );
    // IPv6: extension headers are walked to the TCP header; a non-first fragment passes.
    let gb6 = GB_V4.to_ipv6_mapped();
    f.expect(
        &ipv6_with(gb6, TCP, &tcp(443, TCP_SYN), &[0, 60, 43]),
        XDP_DROP,
        gb_drop,
    );
    f.expect(
        &ipv6_with(gb6, TCP, &tcp(22, TCP_SYN), &[0, 60, 44]),
        XDP_PASS,
        SLOT_OUT_OF_SCOPE,
    );
    let mut later = ipv6_with(gb6, TCP, &tcp(443, TCP_SYN), &[44]);
    later[14 + 40 + 3] = 0x08; // fragment offset 1
    f.expect(&later, XDP_PASS, SLOT_FRAGMENT_PASS);
    // Six extension headers are walked (the documented limit); a seventh hides the ports,
    // and the strictest rule judges the packet.
    f.expect(
        &ipv6_with(gb6, TCP, &tcp(22, TCP_SYN), &[0, 60, 60, 60, 60, 60]),
        XDP_PASS,
        SLOT_OUT_OF_SCOPE,
    );
    // Seven extension headers hide the ports: the strictest rule judges the packet.
    f.expect(
        &ipv6_with(gb6, TCP, &tcp(22, TCP_SYN), &[60, 60, 60, 60, 60, 60, 60]),
        XDP_DROP,
        gb_drop,
    );
}

#[test]
fn two_services_judge_their_ports_by_their_own_countries() {
    let code = |c: &str| Country::parse(c).unwrap();
    let mut p = policy(Mode::Deny, &["SE"]);
    p.scope = Scope::Services {
        services: vec![
            Service {
                name: "api".to_owned(),
                ports: parse_ports("tcp/443").unwrap(),
                mode: Mode::Allow,
                countries: [code("GB")].into(),
            },
            Service {
                name: "ssh".to_owned(),
                ports: parse_ports("tcp/22").unwrap(),
                mode: Mode::Allow,
                countries: [code("SE")].into(),
            },
        ],
        other_judged: true,
    };
    let mut f = Filter::new(&p);
    f.expect(
        &ipv4_with(GB_V4, TCP, &tcp(443, TCP_SYN), 0),
        XDP_PASS,
        country_slot(cc("GB"), ACTION_PASS),
    );
    f.expect(
        &ipv4_with(GB_V4, TCP, &tcp(22, TCP_SYN), 0),
        XDP_DROP,
        country_slot(cc("GB"), ACTION_DROP),
    );
    f.expect(
        &ipv4_with(SE_V4, TCP, &tcp(22, TCP_SYN), 0),
        XDP_PASS,
        country_slot(cc("SE"), ACTION_PASS),
    );
    // Other traffic: the main rule (deny SE).
    f.expect(
        &ipv4_with(SE_V4, UDP, &udp_to(53), 0),
        XDP_DROP,
        country_slot(cc("SE"), ACTION_DROP),
    );
    f.expect(
        &ipv4_with(GB_V4, ICMP, &[8, 0, 0, 0], 0),
        XDP_PASS,
        country_slot(cc("GB"), ACTION_PASS),
    );
}

#[test]
fn tcp_syn_judges_connection_attempts_only() {
    let mut p = policy(Mode::Deny, &["GB"]);
    p.tcp = filter_user::model::policy::Tcp::Syn;
    let mut f = Filter::new(&p);
    let gb_drop = country_slot(cc("GB"), ACTION_DROP);
    f.expect(
        &ipv4_with(GB_V4, TCP, &tcp(443, TCP_SYN), 0),
        XDP_DROP,
        gb_drop,
    );
    for flags in [TCP_SYN | TCP_ACK, TCP_ACK, 0x18, 0x04] {
        f.expect(
            &ipv4_with(GB_V4, TCP, &tcp(443, flags), 0),
            XDP_PASS,
            SLOT_TCP_NOT_SYN,
        );
    }
    // Everything but TCP is judged as before.
    f.expect(&ipv4_with(GB_V4, UDP, &udp_to(53), 0), XDP_DROP, gb_drop);
}
