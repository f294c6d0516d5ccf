//! The pre-flip self-test: before packets see a freshly written half, run the program on it with
//! BPF_PROG_TEST_RUN for sample addresses of every country and compare each verdict and counter
//! slot with what the compiled data and the policy say.

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use aya::programs::{TestRun as _, TestRunOptions, Xdp};

use crate::{
    compile::reference::{Model, TCP_SYN},
    compile::{RegionSet, Span},
    model::country::Country,
    model::policy::{Action, Policy},
    model::scope::{Proto, Scope},
};

/// XDP return codes.
const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
/// Spans sampled per country and family: first, middle and last.
const SPANS_PER_COUNTRY: usize = 3;

/// One address, the port it is sent to, and what the program must do with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    pub addr: IpAddr,
    pub port: (Proto, u16),
    pub slot: u32,
    pub action: Action,
}

/// The half disagreed with the compiled data.
#[derive(Debug, thiserror::Error)]
pub enum SelftestError {
    #[error("self-test failed: {mismatches} of {samples} sample addresses got another verdict than the compiled data gives; first: {addr} to {port} expected slot {expected_slot} ({expected:?}), got slot {got_slot} (XDP code {got_code})")]
    Mismatch {
        mismatches: usize,
        samples: usize,
        addr: IpAddr,
        port: String,
        expected_slot: u32,
        expected: Action,
        got_slot: u32,
        got_code: u32,
    },
    #[error("self-test could not run the program")]
    Run(#[from] aya::programs::ProgramError),
}

/// Start, middle and end of the first, middle and last span of every country, plus the
/// address after each sampled span (often unknown space), for both families.
#[must_use]
pub fn samples(regions: &RegionSet, policy: &Policy) -> Vec<Sample> {
    let mut addrs: Vec<IpAddr> = Vec::new();
    for spans in by_country(&regions.v4).values() {
        for span in pick(spans) {
            let (s, e) = (span.start, span.end);
            addrs.extend([s, s + (e - s) / 2, e].map(|a| IpAddr::V4(Ipv4Addr::from(a))));
            addrs.extend(e.checked_add(1).map(|a| IpAddr::V4(Ipv4Addr::from(a))));
        }
    }
    for spans in by_country(&regions.v6).values() {
        for span in pick(spans) {
            let (s, e) = (span.start, span.end);
            addrs.extend([s, s + (e - s) / 2, e].map(|a| IpAddr::V6(Ipv6Addr::from(a))));
            addrs.extend(e.checked_add(1).map(|a| IpAddr::V6(Ipv6Addr::from(a))));
        }
    }
    // Every exception CIDR: its first, middle and last address, and the addresses just
    // outside it, so a missing or misplaced exception entry fails the test too.
    for net in policy.allow_cidrs.iter().chain(&policy.deny_cidrs) {
        addrs.extend(cidr_samples(*net));
    }
    // IPv6 sources that embed an IPv4 address are judged as IPv4 by the program; leave them
    // to the tests.
    addrs.retain(|a| policy.judged(*a) == crate::model::policy::Judged::Addr(*a));
    // Except under each declared NAT64 prefix: the IPv4 addresses sampled so far, embedded
    // with its layout, check that the half holds the prefix the policy declares.
    let v4: Vec<Ipv4Addr> = addrs
        .iter()
        .filter_map(|a| match a {
            IpAddr::V4(v4) => Some(*v4),
            IpAddr::V6(_) => None,
        })
        .take(NAT64_SAMPLES)
        .collect();
    for prefix in &policy.nat64_prefixes {
        addrs.extend(v4.iter().map(|a| IpAddr::V6(embed_nat64(*prefix, *a))));
    }
    // Every rule of the policy gets its share of the addresses, through a port it judges.
    let ports = rule_ports(&policy.scope);
    let model = Model::new(regions, policy);
    addrs
        .into_iter()
        .enumerate()
        .map(|(i, addr)| expected(&model, addr, ports[i % ports.len()]))
        .collect()
}

/// IPv4 addresses embedded under each declared NAT64 prefix.
const NAT64_SAMPLES: usize = 16;

/// `v4` inside `prefix` with RFC 6052's layout for its length: the 32 bits after the prefix,
/// skipping bits 64-71 (the `u` octet, zero); for /96 the last 32 bits.
#[must_use]
pub fn embed_nat64(prefix: ipnet::Ipv6Net, v4: Ipv4Addr) -> Ipv6Addr {
    let mut a = prefix.network().octets();
    let mut at = usize::from(prefix.prefix_len() / 8);
    for byte in v4.octets() {
        if at == 8 {
            at += 1;
        }
        a[at] = byte;
        at += 1;
    }
    Ipv6Addr::from(a)
}

/// A destination port for each rule of a scope: the first port of each range it names and a
/// port no rule names (out of scope, or the main rule's).
fn rule_ports(scope: &Scope) -> Vec<(Proto, u16)> {
    let named = scope.port_ranges();
    let mut ports: Vec<(Proto, u16)> = named.iter().map(|r| (r.proto, r.first)).collect();
    let unnamed = (1..=u16::MAX).map(|p| (Proto::Udp, p)).find(|&(proto, p)| {
        !named
            .iter()
            .any(|r| r.proto == proto && (r.first..=r.last).contains(&p))
    });
    ports.extend(unnamed);
    if ports.is_empty() {
        ports.push((Proto::Udp, 53));
    }
    ports
}

/// First, middle and last address of `net`, and the neighbours on either side.
fn cidr_samples(net: ipnet::IpNet) -> Vec<IpAddr> {
    // Both families as 128-bit numbers; `max` bounds the neighbour after the last address.
    let (s, e, max, addr): (u128, u128, u128, fn(u128) -> IpAddr) = match net {
        ipnet::IpNet::V4(n) => (
            u32::from(n.network()).into(),
            u32::from(n.broadcast()).into(),
            u32::MAX.into(),
            |a| IpAddr::V4(Ipv4Addr::from(u32::try_from(a).expect("an IPv4 number"))),
        ),
        ipnet::IpNet::V6(n) => (n.network().into(), n.broadcast().into(), u128::MAX, |a| {
            IpAddr::V6(Ipv6Addr::from(a))
        }),
    };
    [
        Some(s),
        Some(s + (e - s) / 2),
        Some(e),
        s.checked_sub(1),
        (e < max).then(|| e + 1),
    ]
    .into_iter()
    .flatten()
    .map(addr)
    .collect()
}

fn by_country<A>(spans: &[Span<A>]) -> BTreeMap<Country, Vec<&Span<A>>> {
    let mut map: BTreeMap<Country, Vec<&Span<A>>> = BTreeMap::new();
    for span in spans {
        map.entry(span.country).or_default().push(span);
    }
    map
}

fn pick<T>(spans: &[T]) -> impl Iterator<Item = &T> {
    let n = spans.len();
    let mut idx = vec![0, n / 2, n.saturating_sub(1)];
    idx.dedup();
    idx.into_iter()
        .take(SPANS_PER_COUNTRY)
        .filter_map(move |i| spans.get(i))
}

/// What the program must answer for a frame from `addr` to `port`: the reference model's
/// verdict.
#[must_use]
pub fn expected(model: &Model<'_>, addr: IpAddr, port: (Proto, u16)) -> Sample {
    let decision = model.judge_frame(&frame_to(addr, port), false);
    Sample {
        addr,
        port,
        slot: decision.slot,
        action: decision.action,
    }
}

/// Runs the self-test program (loaded with the half to test) on every sample.
pub fn run(program: &mut Xdp, samples: &[Sample]) -> Result<(), SelftestError> {
    let mut first = None;
    let mut mismatches = 0;
    for sample in samples {
        let (got_slot, got_action) = judge(program, &frame_to(sample.addr, sample.port))?;
        if got_slot != sample.slot || got_action != Some(sample.action) {
            mismatches += 1;
            let code = match got_action {
                Some(Action::Pass) => XDP_PASS,
                Some(Action::Drop) => XDP_DROP,
                None => 0,
            };
            first.get_or_insert((sample, got_slot, code));
        }
    }
    match first {
        None => Ok(()),
        Some((sample, got_slot, got_code)) => Err(SelftestError::Mismatch {
            mismatches,
            samples: samples.len(),
            addr: sample.addr,
            port: format!("{}/{}", sample.port.0.name(), sample.port.1),
            expected_slot: sample.slot,
            expected: sample.action,
            got_slot,
            got_code,
        }),
    }
}

/// The counter slot and action the self-test program (loaded for one half) gives a frame of at
/// least four bytes; the action is `None` for an XDP code other than pass or drop.
pub fn judge(program: &mut Xdp, frame: &[u8]) -> Result<(u32, Option<Action>), SelftestError> {
    let mut out = vec![0u8; frame.len().max(4)];
    let result = program.test_run(TestRunOptions {
        data_in: Some(frame),
        data_out: Some(&mut out),
        ..TestRunOptions::new()
    })?;
    let action = match result.return_value {
        XDP_PASS => Some(Action::Pass),
        XDP_DROP => Some(Action::Drop),
        _ => None,
    };
    Ok((u32::from_le_bytes([out[0], out[1], out[2], out[3]]), action))
}

/// A minimal untagged UDP frame from `src` to port 53; only the headers the program reads are
/// filled.
#[must_use]
pub fn frame(src: IpAddr) -> Vec<u8> {
    frame_to(src, (Proto::Udp, 53))
}

/// A minimal untagged frame from `src` to a port: UDP, or a TCP connection attempt (SYN).
#[must_use]
pub fn frame_to(src: IpAddr, (proto, port): (Proto, u16)) -> Vec<u8> {
    let transport_len: u8 = match proto {
        Proto::Udp => 8,
        Proto::Tcp => 20,
    };
    let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
    match src {
        IpAddr::V4(src) => {
            f.extend_from_slice(&[
                0x08,
                0x00,
                0x45,
                0,
                0,
                20 + transport_len,
                0,
                0,
                0x40,
                0,
                64,
            ]);
            f.extend_from_slice(&[proto.number(), 0, 0]);
            f.extend_from_slice(&src.octets());
            f.extend_from_slice(&[198, 51, 100, 1]);
        }
        IpAddr::V6(src) => {
            f.extend_from_slice(&[
                0x86,
                0xdd,
                0x60,
                0,
                0,
                0,
                0,
                transport_len,
                proto.number(),
                64,
            ]);
            f.extend_from_slice(&src.octets());
            f.extend_from_slice(&[
                0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
            ]);
        }
    }
    let [hi, lo] = port.to_be_bytes();
    match proto {
        // 12345 -> port, no payload.
        Proto::Udp => f.extend_from_slice(&[0x30, 0x39, hi, lo, 0, 8, 0, 0]),
        Proto::Tcp => {
            f.extend_from_slice(&[0x30, 0x39, hi, lo, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, TCP_SYN]);
            f.extend_from_slice(&[0xff, 0xff, 0, 0, 0, 0]);
        }
    }
    f
}

/// Self-tests `half` of the maps pinned under `pin_dir`.
pub fn check_pinned(
    pin_dir: &std::path::Path,
    half: usize,
    samples: &[Sample],
) -> anyhow::Result<()> {
    let mut ebpf = crate::kernel::program::load_selftest(pin_dir, half)?;
    let program: &mut Xdp = ebpf
        .program_mut(filter_common::SELFTEST_PROGRAM)
        .ok_or_else(|| anyhow::anyhow!("self-test program missing from the embedded object"))?
        .try_into()?;
    run(program, samples)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::model::policy::Mode;
    use filter_common::{country_slot, SLOT_EXCEPTION_DROP, SLOT_EXCEPTION_PASS, UNKNOWN_COUNTRY};

    #[test]
    fn exception_cidrs_are_sampled_inside_and_just_outside() {
        let policy = Policy {
            allow_cidrs: vec!["198.51.0.0/24".parse().unwrap()],
            deny_cidrs: vec!["2a00:db8::/32".parse().unwrap()],
            ..Policy::new(Mode::Deny, BTreeSet::new())
        };
        let samples = samples(&RegionSet::default(), &policy);
        let slot_of = |a: &str| {
            let addr: IpAddr = a.parse().unwrap();
            samples.iter().find(|s| s.addr == addr).map(|s| s.slot)
        };
        assert_eq!(slot_of("198.51.0.0"), Some(SLOT_EXCEPTION_PASS));
        assert_eq!(slot_of("198.51.0.127"), Some(SLOT_EXCEPTION_PASS));
        assert_eq!(slot_of("198.51.0.255"), Some(SLOT_EXCEPTION_PASS));
        let unknown_pass = country_slot(UNKNOWN_COUNTRY, Action::Pass.kernel());
        assert_eq!(slot_of("198.50.255.255"), Some(unknown_pass));
        assert_eq!(slot_of("198.51.1.0"), Some(unknown_pass));
        assert_eq!(slot_of("2a00:db8::"), Some(SLOT_EXCEPTION_DROP));
        assert_eq!(
            slot_of("2a00:db8:ffff:ffff:ffff:ffff:ffff:ffff"),
            Some(SLOT_EXCEPTION_DROP)
        );
        assert_eq!(slot_of("2a00:db9::"), Some(unknown_pass));
    }
}
