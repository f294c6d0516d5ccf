//! Types and constants shared by the XDP program and its userspace loader.
//!
//! Everything here is `#[repr(C)]` with explicit integer fields so both sides agree on the bytes.
#![no_std]

/// Country indices: 0 means "found in no country" (unknown space); `1 + (a-'A')*26 + (b-'A')` is
/// the two-letter code `ab`. Every alpha-2 shape fits, including the user-assigned codes some
/// databases use (`EU`, `AP`, `XK`, `ZZ`), so the index needs no table on the kernel side.
pub const UNKNOWN_COUNTRY: u16 = 0;
/// Number of country slots (unknown + 26 * 26 codes).
pub const COUNTRY_SLOTS: u32 = 1 + 26 * 26;

/// Encodes a two-letter upper-case code as its country index; `None` when it is not `[A-Z]{2}`.
#[must_use]
pub const fn country_index(code: [u8; 2]) -> Option<u16> {
    let [a, b] = code;
    if a.is_ascii_uppercase() && b.is_ascii_uppercase() {
        Some(1 + (a - b'A') as u16 * 26 + (b - b'A') as u16)
    } else {
        None
    }
}

/// Decodes a country index back to its two-letter code; `None` for unknown or out of range.
#[must_use]
pub const fn country_code(index: u16) -> Option<[u8; 2]> {
    if index == UNKNOWN_COUNTRY || index as u32 >= COUNTRY_SLOTS {
        return None;
    }
    let i = index - 1;
    Some([b'A' + (i / 26) as u8, b'A' + (i % 26) as u8])
}

/// Most NAT64 translator prefixes a policy can declare (`--nat64-prefix`).
pub const MAX_NAT64_PREFIXES: usize = 4;

/// A declared NAT64 translator prefix (RFC 6052): the prefix bytes under their mask, and the
/// length, which picks the layout the IPv4 address is read with. `len == 0`: an unused entry
/// (userspace packs the declared ones first).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Nat64Prefix {
    /// The first 12 bytes of the prefix, host bits zero (no layout needs more than /96).
    pub prefix: [u8; 12],
    /// `0xff` for each byte the prefix covers, `0` after it.
    pub mask: [u8; 12],
    /// 32, 40, 48, 56, 64 or 96.
    pub len: u32,
}

/// The prefix lengths RFC 6052 defines a layout for.
pub const NAT64_PREFIX_LENS: [u8; 6] = [32, 40, 48, 56, 64, 96];

impl Nat64Prefix {
    /// The entry for `prefix/len`; `None` when `len` is not an RFC 6052 length or host bits
    /// are set.
    #[must_use]
    pub fn new(prefix: [u8; 16], len: u8) -> Option<Self> {
        let mut i = 0;
        let mut known = false;
        while i < NAT64_PREFIX_LENS.len() {
            known |= NAT64_PREFIX_LENS[i] == len;
            i += 1;
        }
        if !known {
            return None;
        }
        let bytes = usize::from(len / 8);
        if prefix[bytes..].iter().any(|&b| b != 0) {
            return None;
        }
        let mut entry = Self {
            len: u32::from(len),
            ..Self::default()
        };
        entry.prefix.copy_from_slice(&prefix[..12]);
        entry.mask[..bytes].fill(0xff);
        Some(entry)
    }

    /// Whether `a` lies in this prefix (never for an unused entry).
    #[inline(always)]
    #[must_use]
    pub fn contains(&self, a: &[u8; 16]) -> bool {
        // Three 32-bit words under the mask: cheap, and no loop for the verifier to walk.
        let word =
            |b: &[u8; 12], i: usize| u32::from_ne_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let addr = [
            a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11],
        ];
        self.len != 0
            && word(&addr, 0) & word(&self.mask, 0) == word(&self.prefix, 0)
            && word(&addr, 4) & word(&self.mask, 4) == word(&self.prefix, 4)
            && word(&addr, 8) & word(&self.mask, 8) == word(&self.prefix, 8)
    }

    /// The IPv4 address `a` carries under this prefix's RFC 6052 layout: the 32 bits after
    /// the prefix, skipping bits 64-71 (the `u` octet, byte 8); for /96, the last 32 bits.
    #[inline(always)]
    #[must_use]
    pub fn ipv4_of(&self, a: &[u8; 16]) -> [u8; 4] {
        match self.len {
            32 => [a[4], a[5], a[6], a[7]],
            40 => [a[5], a[6], a[7], a[9]],
            48 => [a[6], a[7], a[9], a[10]],
            56 => [a[7], a[9], a[10], a[11]],
            64 => [a[9], a[10], a[11], a[12]],
            _ => [a[12], a[13], a[14], a[15]],
        }
    }
}

/// The declared translator prefixes of one half (`Settings::nat64`).
pub type Nat64Prefixes = [Nat64Prefix; MAX_NAT64_PREFIXES];

/// What an IPv6 source is judged as ([`embedded_ipv4`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Embedding {
    /// No IPv4 inside: judged as the IPv6 address it is.
    None,
    /// Judged, and counted, as this IPv4 address.
    Ipv4([u8; 4]),
    /// In the NAT64 local-use prefix `64:ff9b:1::/48` but in no declared translator prefix:
    /// which layout (RFC 6052 /48, /56, /64 or /96) put the IPv4 address where is unknown, so
    /// the address cannot be read, and a client could pick the layout that shows an allowed
    /// address. Dropped, counted apart (`SLOT_UNDECLARED_NAT64_DROP`).
    UndeclaredNat64,
}

/// The IPv4 address an IPv6 source carries in one of the standard embeddings, so the program
/// (and userspace, through this same function) judges it by that address:
///
/// - `::ffff:a.b.c.d` (IPv4-mapped) and `::a.b.c.d` (IPv4-compatible, which Linux still
///   accepts; `::` and `::1` excluded);
/// - `2002:aabb:ccdd::/48` (6to4: the address follows the prefix);
/// - `2001:0::/32` (Teredo: the client's address, inverted, in the last 32 bits);
/// - the translator prefixes the policy declares (`nat64`, RFC 6052 layouts for /32, /40,
///   /48, /56, /64 and /96), inside `64:ff9b:1::/48` or anywhere else;
/// - `64:ff9b::/96` (NAT64 well-known prefix: the last 32 bits);
/// - the rest of `64:ff9b:1::/48` (NAT64 local use, RFC 8215) is
///   [`Embedding::UndeclaredNat64`].
#[inline(always)]
#[must_use]
pub fn embedded_ipv4(a: &[u8; 16], nat64: &Nat64Prefixes) -> Embedding {
    let last = [a[12], a[13], a[14], a[15]];
    if a[0] == 0x20 && a[1] == 0x02 {
        return Embedding::Ipv4([a[2], a[3], a[4], a[5]]);
    }
    if a[0] == 0x20 && a[1] == 0x01 && a[2] == 0 && a[3] == 0 {
        return Embedding::Ipv4([!a[12], !a[13], !a[14], !a[15]]);
    }
    // Userspace refuses declared prefixes that overlap each other or the built-in
    // embeddings, so at most one matches and the order does not matter.
    for prefix in nat64 {
        if prefix.len == 0 {
            break;
        }
        if prefix.contains(a) {
            return Embedding::Ipv4(prefix.ipv4_of(a));
        }
    }
    if a[0] == 0 && a[1] == 0x64 && a[2] == 0xff && a[3] == 0x9b && a[4] == 0 {
        if a[5] == 0 && a[6..12] == [0; 6] {
            return Embedding::Ipv4(last);
        }
        if a[5] == 1 {
            return Embedding::UndeclaredNat64;
        }
        return Embedding::None;
    }
    if a[..10] != [0; 10] {
        return Embedding::None;
    }
    match (a[10], a[11]) {
        (0xff, 0xff) => Embedding::Ipv4(last),
        // ::a.b.c.d, but not the unspecified address or loopback.
        (0, 0) if u32::from_be_bytes(last) > 1 => Embedding::Ipv4(last),
        _ => Embedding::None,
    }
}

/// Header constants the parser (in the kernel) and the reference model (in userspace) share.
pub mod wire {
    pub const ETH_HLEN: usize = 14;
    pub const VLAN_HLEN: usize = 4;
    pub const ETH_P_IP: u16 = 0x0800;
    pub const ETH_P_IPV6: u16 = 0x86DD;
    pub const ETH_P_8021Q: u16 = 0x8100;
    pub const ETH_P_8021AD: u16 = 0x88A8;
    /// Outer (802.1ad) plus inner (802.1Q) tag; a third tag is treated as malformed.
    pub const MAX_VLAN_TAGS: usize = 2;
    pub const IPPROTO_HOPOPTS: u8 = 0;
    pub const IPPROTO_ICMP: u8 = 1;
    pub const IPPROTO_TCP: u8 = 6;
    pub const IPPROTO_UDP: u8 = 17;
    pub const IPPROTO_ROUTING: u8 = 43;
    pub const IPPROTO_FRAGMENT: u8 = 44;
    pub const IPPROTO_AH: u8 = 51;
    pub const IPPROTO_ICMPV6: u8 = 58;
    pub const IPPROTO_DSTOPTS: u8 = 60;
    /// TCP flags the filter reads.
    pub const TCP_SYN: u8 = 0x02;
    pub const TCP_ACK: u8 = 0x10;
    /// Neighbour discovery (RFC 4861): ICMPv6 router solicitation (133), router
    /// advertisement, neighbour solicitation, neighbour advertisement and redirect (137).
    pub const ICMPV6_NDP_FIRST: u8 = 133;
    pub const ICMPV6_NDP_LAST: u8 = 137;
    /// The only hop limit a valid neighbour discovery message has: no router forwarded it, so
    /// it comes from the link itself (RFC 4861, section 6.1.1 and following).
    pub const NDP_HOP_LIMIT: u8 = 255;
    /// Where the hop limit sits in the IPv6 header.
    pub const IPV6_HOP_LIMIT_OFFSET: usize = 7;
}

/// Action stored in the policy array and the config.
pub const ACTION_PASS: u8 = 0;
pub const ACTION_DROP: u8 = 1;

// Table entries below `COUNTRY_SLOTS` are countries; the classes after them are painted into
// the same tables by userspace, so exceptions and the local class cost no extra lookup.

/// An always-pass exception CIDR (`--allow-cidr`).
pub const CLASS_EXCEPTION_PASS: u16 = COUNTRY_SLOTS as u16;
/// An always-drop exception CIDR (`--deny-cidr`).
pub const CLASS_EXCEPTION_DROP: u16 = CLASS_EXCEPTION_PASS + 1;
/// Special-purpose space (IANA's registries: private, loopback, link-local, CGNAT, ULA, ...):
/// its own verdict (`--local`), apart from unknown space.
pub const CLASS_LOCAL: u16 = CLASS_EXCEPTION_PASS + 2;
/// Number of table entries a policy row has an action for: countries, then the classes.
pub const ENTRY_SLOTS: u32 = CLASS_LOCAL as u32 + 1;

/// Rows of the policy array: one action per table entry for each rule. Row 0 is the strictest
/// (drops what any rule drops: packets whose ports cannot be found), row 1 the main rule,
/// rows 2.. the services of a policy file.
pub const ROW_STRICT: u8 = 0;
pub const ROW_MAIN: u8 = 1;
pub const ROW_FIRST_SERVICE: u8 = 2;
/// Most services one policy can hold.
pub const MAX_SERVICES: usize = 16;
pub const POLICY_ROWS: u32 = ROW_FIRST_SERVICE as u32 + MAX_SERVICES as u32;
/// One rule: `ACTION_PASS`/`ACTION_DROP` per table entry (entry 0 is unknown space).
pub type PolicyRow = [u8; ENTRY_SLOTS as usize];
/// A value of the ports array (and `Settings::portless_row`): not judged, passed and counted
/// as out of scope.
pub const ROW_OUT_OF_SCOPE: u8 = 0xff;
/// The ports array: policy rows by destination port in chunks of 256 ports, TCP first, then
/// UDP (`ports_index`).
pub type PortChunk = [u8; 256];
pub const PORTS_UDP: u32 = 1 << 16;
pub const PORT_CHUNKS: u32 = 2 * (1 << 16) / 256;

/// IPv6 extension headers the program walks to find the transport header; a packet with more
/// is judged by the strictest row under a port scope.
pub const MAX_EXT_HEADERS: usize = 6;

/// Per-CPU counter slots. Entry slots come first: `entry * 3 + verdict`, for countries and
/// classes alike. Every slot that counts drops is followed by its "would drop" slot (a dry
/// run), so [`would_drop_slot`] is `+ 1` for every kind of drop.
pub const VERDICT_PASS: u32 = 0;
pub const VERDICT_DROP: u32 = 1;
pub const VERDICT_WOULD_DROP: u32 = 2;
const VERDICTS: u32 = 3;
const SPECIAL_BASE: u32 = ENTRY_SLOTS * VERDICTS;
/// Sources matched by an always-pass exception CIDR.
pub const SLOT_EXCEPTION_PASS: u32 = country_slot(CLASS_EXCEPTION_PASS, ACTION_PASS);
/// Sources matched by an always-drop exception CIDR.
pub const SLOT_EXCEPTION_DROP: u32 = country_slot(CLASS_EXCEPTION_DROP, ACTION_DROP);
pub const SLOT_EXCEPTION_WOULD_DROP: u32 = would_drop_slot(SLOT_EXCEPTION_DROP);
/// Sources in special-purpose (local) space.
pub const SLOT_LOCAL_PASS: u32 = country_slot(CLASS_LOCAL, ACTION_PASS);
pub const SLOT_LOCAL_DROP: u32 = country_slot(CLASS_LOCAL, ACTION_DROP);
pub const SLOT_LOCAL_WOULD_DROP: u32 = would_drop_slot(SLOT_LOCAL_DROP);
/// Frames that are not IPv4 or IPv6 (ARP, LLDP, ...): always passed.
pub const SLOT_NON_IP: u32 = SPECIAL_BASE;
/// Truncated or malformed Ethernet/VLAN/IP headers, passed or dropped per `Settings::malformed`.
pub const SLOT_MALFORMED_PASS: u32 = SPECIAL_BASE + 1;
pub const SLOT_MALFORMED_DROP: u32 = SPECIAL_BASE + 2;
pub const SLOT_MALFORMED_WOULD_DROP: u32 = SPECIAL_BASE + 3;
/// ICMP and ICMPv6 error messages (destination unreachable, packet too big, time exceeded,
/// parameter problem) passed whatever their source, unless the policy judges them.
pub const SLOT_ICMP_ERROR_PASS: u32 = SPECIAL_BASE + 4;
/// Packets to no port the policy's scope names (and, under a scope, packets without ports):
/// passed unjudged.
pub const SLOT_OUT_OF_SCOPE: u32 = SPECIAL_BASE + 5;
/// Non-first fragments when the policy reads transport headers (a port scope or `tcp syn`):
/// they carry no ports, so they pass; the first fragment carries the ports and is judged, and
/// a datagram whose first fragment was dropped never reassembles.
pub const SLOT_FRAGMENT_PASS: u32 = SPECIAL_BASE + 6;
/// TCP segments other than a connection attempt (SYN without ACK) under `tcp syn`: passed.
pub const SLOT_TCP_NOT_SYN: u32 = SPECIAL_BASE + 7;
/// IPv6 sources in the NAT64 local-use prefix `64:ff9b:1::/48` outside every declared
/// translator prefix ([`Embedding::UndeclaredNat64`]): their IPv4 address cannot be read, so
/// they are dropped (would-drop in a dry run) when judged.
pub const SLOT_UNDECLARED_NAT64_DROP: u32 = SPECIAL_BASE + 8;
pub const SLOT_UNDECLARED_NAT64_WOULD_DROP: u32 = SPECIAL_BASE + 9;
/// Neighbour discovery (ICMPv6 133-137 with hop limit 255, so from the link itself): passed
/// whatever the source, so the host keeps its neighbours and routers under any policy.
pub const SLOT_NDP_PASS: u32 = SPECIAL_BASE + 10;
/// Drop samples the budget allowed but the `SAMPLES` ring had no room for (no reader kept up):
/// not a verdict, the packets are counted in their own slots too.
pub const SLOT_SAMPLES_LOST: u32 = SPECIAL_BASE + 11;
/// Total number of counter slots.
pub const COUNTER_SLOTS: u32 = SPECIAL_BASE + 12;

/// Counter slot of an entry (country or class) verdict.
#[inline(always)]
#[must_use]
pub const fn country_slot(entry: u16, action: u8) -> u32 {
    entry as u32 * VERDICTS + action as u32
}

/// Where a dry run counts what `drop_slot` would have counted: the slot right after it.
#[inline(always)]
#[must_use]
pub const fn would_drop_slot(drop_slot: u32) -> u32 {
    drop_slot + 1
}

/// One per-CPU counter cell.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(serde::Serialize))]
pub struct Counter {
    pub packets: u64,
    pub bytes: u64,
}

/// How a half finds the country of a source address.
pub const LOOKUP_FAST: u32 = 0;
/// Plain longest-prefix match in the `LPM_V4`/`LPM_V6` tries (less memory, slower).
pub const LOOKUP_LPM: u32 = 1;

/// Settings of one half of the data (single entry of its `SETTINGS` array). The program reads
/// `malformed`, `lookup`, `flags` and `portless_row`; userspace also records what the half
/// holds, so the kernel itself says which data is active even after a crash mid-update.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    /// `ACTION_PASS` or `ACTION_DROP` for truncated or malformed headers.
    pub malformed: u32,
    /// `LOOKUP_FAST` or `LOOKUP_LPM`.
    pub lookup: u32,
    /// Under `FLAG_SCOPE`: the policy row for IP packets without ports (ICMP, ESP, ...), or
    /// `ROW_OUT_OF_SCOPE`.
    pub portless_row: u32,
    /// Non-zero once userspace has written the half completely.
    pub complete: u32,
    /// `FLAG_*` bits.
    pub flags: u32,
    /// Drop samples per second and CPU written to the `SAMPLES` ring buffer (dropped and
    /// would-drop packets); 0: sampling off.
    pub samples_per_sec: u32,
    /// Incremented on every update; userspace only.
    pub generation: u64,
    /// SHA-256 of the data and policy in this half (`artifact::content_hash_of`); userspace only.
    pub content_hash: [u8; 32],
    /// The NAT64 translator prefixes the policy declares, packed first ([`embedded_ipv4`]).
    pub nat64: Nat64Prefixes,
}

/// `Settings::flags`: ICMP error messages are judged by their source like any packet (the
/// default passes them, so path-MTU discovery and traceroute keep working).
pub const FLAG_JUDGE_ICMP_ERRORS: u32 = 1;
/// `Settings::flags`: a dry run: every verdict is counted, drops as "would drop", and every
/// packet passes.
pub const FLAG_DRY_RUN: u32 = 2;
/// `Settings::flags`: the policy has a port scope or services: the ports array picks each
/// packet's policy row (or leaves it out of scope).
pub const FLAG_SCOPE: u32 = 4;
/// `Settings::flags`: TCP is judged only on connection attempts (SYN without ACK), so replies
/// to the host's own connections pass.
pub const FLAG_TCP_SYN_ONLY: u32 = 8;

/// One sampled dropped (or would-drop) packet, as the program writes it into `SAMPLES`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DropSample {
    /// `bpf_ktime_get_ns`: CLOCK_MONOTONIC nanoseconds.
    pub time_ns: u64,
    /// The judged source: an IPv4 address in the first four bytes, or IPv6.
    pub addr: [u8; 16],
    /// The interface the packet arrived on.
    pub ifindex: u32,
    /// The counter slot that counted it (its country or class, and drop or would-drop).
    pub slot: u32,
    /// Frame length in bytes (all buffers).
    pub length: u32,
    /// TCP or UDP destination port, 0 otherwise.
    pub dport: u16,
    /// 4 or 6.
    pub family: u8,
    /// IP protocol of the transport header, 0 when unknown.
    pub proto: u8,
}

/// Per-CPU state of the sampling rate limit: nanoseconds of credit (at most one second's
/// worth) and when it was last topped up.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SampleBudget {
    pub credit_ns: u64,
    pub last_ns: u64,
}

/// Size of the `SAMPLES` ring buffer: about 5,000 samples waiting for a reader.
pub const SAMPLES_RING_BYTES: u32 = 256 << 10;

/// Entries of the fast tables (`u16`): a country index or class (`< ENTRY_SLOTS`), or
/// `TABLE_CHUNK + n` meaning "look at the next address byte in chunk n of the pool", or
/// `TABLE_LPM` (IPv6 beyond the tables' depth: ask the LPM trie).
pub const TABLE_CHUNK: u16 = 1024;
pub const TABLE_LPM: u16 = 0xffff;
/// Most chunks a pool can address.
pub const MAX_CHUNKS: u32 = (TABLE_LPM - TABLE_CHUNK) as u32;
/// One stride of the fast tables: 256 entries indexed by one address byte.
pub type Chunk = [u16; 256];
/// IPv4 first level: one chunk per first byte, indexed by the second, so one read resolves a
/// /16 (128 KiB, small enough to stay in cache).
pub const V4_L1_ENTRIES: u32 = 1 << 8;
/// IPv4 chunks for the third byte (a /16 that holds longer prefixes) and the fourth (a /24
/// that does). A full-world database needs about 31,200.
pub const V4_POOL_ENTRIES: u32 = 48 << 10;
/// IPv6 chunks for bytes 0..8 (chunk 0 is the root). A full-world database needs about 53,000.
pub const V6_POOL_ENTRIES: u32 = MAX_CHUNKS;
/// Number of IPv6 bytes the tables resolve (to /64) before handing over to the LPM trie.
pub const V6_TABLE_BYTES: usize = 8;

/// The program reads these from `ACTIVE[0]`: which half of every per-half map is live.
pub const HALVES: usize = 2;

/// Map names as they appear in the object file and under the pin directory.
pub mod maps {
    /// Maps shared by both halves.
    pub const ACTIVE: &str = "ACTIVE";
    pub const COUNTERS: &str = "COUNTERS";
    pub const BENCH_ADDRS: &str = "BENCH_ADDRS";
    pub const BENCH_CURSOR: &str = "BENCH_CURSOR";
    /// Drop samples (ring buffer) and their per-CPU rate limit.
    pub const SAMPLES: &str = "SAMPLES";
    pub const SAMPLE_BUDGET: &str = "SAMPLE_BUDGET";

    /// Names of the per-half maps, `_0` and `_1`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct HalfNames {
        pub settings: &'static str,
        pub policy: &'static str,
        pub ports: &'static str,
        pub lpm_v4: &'static str,
        pub lpm_v6: &'static str,
        pub v4_l1: &'static str,
        pub v4_pool: &'static str,
        pub v6_pool: &'static str,
    }

    macro_rules! half_names {
        ($s:literal) => {
            HalfNames {
                settings: concat!("SETTINGS_", $s),
                policy: concat!("POLICY_", $s),
                ports: concat!("PORTS_", $s),
                lpm_v4: concat!("LPM_V4_", $s),
                lpm_v6: concat!("LPM_V6_", $s),
                v4_l1: concat!("V4_L1_", $s),
                v4_pool: concat!("V4_POOL_", $s),
                v6_pool: concat!("V6_POOL_", $s),
            }
        };
    }

    pub const HALF: [HalfNames; super::HALVES] = [half_names!("0"), half_names!("1")];

    impl HalfNames {
        #[must_use]
        pub const fn all(&self) -> [&'static str; 8] {
            [
                self.settings,
                self.policy,
                self.ports,
                self.lpm_v4,
                self.lpm_v6,
                self.v4_l1,
                self.v4_pool,
                self.v6_pool,
            ]
        }

        /// The fast-table maps, shrunk to one entry when a filter uses `LOOKUP_LPM`.
        #[must_use]
        pub const fn tables(&self) -> [&'static str; 3] {
            [self.v4_l1, self.v4_pool, self.v6_pool]
        }
    }

    /// Every map, in the order they are pinned.
    pub fn all() -> impl Iterator<Item = &'static str> {
        [
            ACTIVE,
            COUNTERS,
            SAMPLES,
            SAMPLE_BUDGET,
            BENCH_ADDRS,
            BENCH_CURSOR,
        ]
        .into_iter()
        .chain(HALF.iter().flat_map(HalfNames::all))
    }
}

/// Capacity of the country tries: a full-world database aggregates to well under this.
pub const REGION_MAX_ENTRIES: u32 = 1 << 20;
/// Name of the XDP program in the object file.
pub const PROGRAM_NAME: &str = "regionfilter";
/// Program that runs the filter on one given half without counting, writing the counter slot
/// it chose into the first four bytes of the frame: the pre-flip self-test.
pub const SELFTEST_PROGRAM: &str = "regionfilter_selftest";
/// Addresses the benchmark programs cycle through (a power of two).
pub const BENCH_ADDRS_ENTRIES: u32 = 1 << 16;
/// Maps only the benchmark programs use; shrunk to one entry everywhere else.
pub const BENCH_MAPS: [&str; 1] = [maps::BENCH_ADDRS];
/// Global of the benchmark sender: the interface it redirects frames to.
pub const BENCH_SEND_IFINDEX: &str = "BENCH_SEND_IFINDEX";
/// Global of the self-test program: the half it judges with.
pub const SELFTEST_HALF: &str = "SELFTEST_HALF";
/// Global set at load time: non-zero when frames start with the IP header (tun, WireGuard, ip
/// tunnels) instead of an Ethernet header.
pub const RAW_IP: &str = "RAW_IP";

#[cfg(feature = "user")]
mod pod {
    // SAFETY: plain `repr(C)` integers with no padding.
    unsafe impl aya::Pod for super::Counter {}
    // SAFETY: plain `repr(C)` integers with no padding.
    unsafe impl aya::Pod for super::Settings {}
    // SAFETY: plain `repr(C)` integers with no padding.
    unsafe impl aya::Pod for super::SampleBudget {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn country_index_round_trips_every_code() {
        for a in b'A'..=b'Z' {
            for b in b'A'..=b'Z' {
                let idx = country_index([a, b]).unwrap();
                assert!(idx > UNKNOWN_COUNTRY && u32::from(idx) < COUNTRY_SLOTS);
                assert_eq!(country_code(idx), Some([a, b]));
            }
        }
    }

    #[test]
    fn country_index_rejects_non_letters() {
        assert_eq!(country_index(*b"us"), None);
        assert_eq!(country_index(*b"U1"), None);
        assert_eq!(country_code(UNKNOWN_COUNTRY), None);
        assert_eq!(country_code(COUNTRY_SLOTS as u16), None);
    }

    #[test]
    fn counter_slots_do_not_overlap() {
        let last_country = country_slot(country_index(*b"ZZ").unwrap(), ACTION_DROP);
        assert!(would_drop_slot(last_country) < SLOT_EXCEPTION_PASS);
        const { assert!(SLOT_LOCAL_WOULD_DROP < SLOT_NON_IP) };
        let gb = country_index(*b"GB").unwrap();
        assert_eq!(
            would_drop_slot(country_slot(gb, ACTION_DROP)),
            country_slot(gb, ACTION_DROP) + 1
        );
        assert!(would_drop_slot(country_slot(gb, ACTION_DROP)) < country_slot(gb + 1, ACTION_PASS));
        assert_eq!(
            would_drop_slot(SLOT_MALFORMED_DROP),
            SLOT_MALFORMED_WOULD_DROP
        );
        assert_eq!(
            would_drop_slot(SLOT_EXCEPTION_DROP),
            SLOT_EXCEPTION_WOULD_DROP
        );
        assert_eq!(
            would_drop_slot(SLOT_UNDECLARED_NAT64_DROP),
            SLOT_UNDECLARED_NAT64_WOULD_DROP
        );
        assert_eq!(COUNTER_SLOTS, SLOT_SAMPLES_LOST + 1);
    }

    fn v6(text: &str) -> [u8; 16] {
        // A tiny parser for full or `::`-compressed hex groups, enough for the tests (no std).
        let mut groups = [0u16; 8];
        let (head, tail) = match text.find("::") {
            Some(i) => (&text[..i], Some(&text[i + 2..])),
            None => (text, None),
        };
        let parse = |part: &str, out: &mut [u16; 8], at: usize| -> usize {
            let mut n = 0;
            for (i, g) in part.split(':').filter(|g| !g.is_empty()).enumerate() {
                out[at + i] = u16::from_str_radix(g, 16).unwrap();
                n += 1;
            }
            n
        };
        parse(head, &mut groups, 0);
        if let Some(tail) = tail {
            let count = tail.split(':').filter(|g| !g.is_empty()).count();
            parse(tail, &mut groups, 8 - count);
        }
        let mut out = [0u8; 16];
        for (i, g) in groups.iter().enumerate() {
            out[2 * i..2 * i + 2].copy_from_slice(&g.to_be_bytes());
        }
        out
    }

    fn declared(list: &[(&str, u8)]) -> Nat64Prefixes {
        let mut out = Nat64Prefixes::default();
        for (slot, &(prefix, len)) in out.iter_mut().zip(list) {
            *slot = Nat64Prefix::new(v6(prefix), len).unwrap();
        }
        out
    }

    /// RFC 6052, section 2.4: 192.0.2.33 under each prefix length, as the RFC writes it.
    const RFC6052_EXAMPLES: [(&str, u8, &str); 6] = [
        ("2001:db8::", 32, "2001:db8:c000:221::"),
        ("2001:db8:100::", 40, "2001:db8:1c0:2:21::"),
        ("2001:db8:122::", 48, "2001:db8:122:c000:2:2100::"),
        ("2001:db8:122:300::", 56, "2001:db8:122:3c0:0:221::"),
        ("2001:db8:122:344::", 64, "2001:db8:122:344:c0:2:2100:0"),
        ("2001:db8:122:344::", 96, "2001:db8:122:344::c000:221"),
    ];

    #[test]
    fn every_rfc6052_layout_reads_the_rfc_examples() {
        for (prefix, len, addr) in RFC6052_EXAMPLES {
            let nat64 = declared(&[(prefix, len)]);
            assert_eq!(
                embedded_ipv4(&v6(addr), &nat64),
                Embedding::Ipv4([192, 0, 2, 33]),
                "{prefix}/{len}"
            );
            // Undeclared, the same address is plain IPv6.
            assert_eq!(
                embedded_ipv4(&v6(addr), &Nat64Prefixes::default()),
                Embedding::None
            );
        }
    }

    #[test]
    fn the_u_octet_is_skipped_whatever_it_holds() {
        for (prefix, len, addr) in RFC6052_EXAMPLES {
            let nat64 = declared(&[(prefix, len)]);
            let mut a = v6(addr);
            if len <= 64 {
                // Bits 64-71 lie after the prefix: a set u octet must not move the address.
                a[8] = 0xa5;
            }
            assert_eq!(
                embedded_ipv4(&a, &nat64),
                Embedding::Ipv4([192, 0, 2, 33]),
                "{prefix}/{len} with u = {:#x}",
                a[8]
            );
        }
    }

    #[test]
    fn local_use_nat64_needs_a_declared_prefix() {
        let gb = [81, 2, 69, 160];
        // Inside 64:ff9b:1::/48 with nothing declared: unreadable, whatever the layout.
        let any_layout = v6("64:ff9b:1:5102:45:a000::");
        assert_eq!(
            embedded_ipv4(&any_layout, &Nat64Prefixes::default()),
            Embedding::UndeclaredNat64
        );
        // Each length declared inside it reads its own layout; the rest stays unreadable.
        let cases: [(&str, u8, &str); 4] = [
            ("64:ff9b:1::", 48, "64:ff9b:1:5102:45:a000::"),
            ("64:ff9b:1:ab00::", 56, "64:ff9b:1:ab51:2:45a0::"),
            ("64:ff9b:1:abcd::", 64, "64:ff9b:1:abcd:51:245:a000:0"),
            ("64:ff9b:1:0:0:1::", 96, "64:ff9b:1::1:5102:45a0"),
        ];
        for (prefix, len, addr) in cases {
            let nat64 = declared(&[(prefix, len)]);
            assert_eq!(
                embedded_ipv4(&v6(addr), &nat64),
                Embedding::Ipv4(gb),
                "{prefix}/{len}"
            );
            if len > 48 {
                assert_eq!(
                    embedded_ipv4(&v6("64:ff9b:1:1234::1"), &nat64),
                    Embedding::UndeclaredNat64
                );
            }
        }
        // Four at once, packed: each reads its own.
        let all = declared(&[
            ("64:ff9b:1:ab00::", 56),
            ("64:ff9b:1:abcd::", 64),
            ("64:ff9b:1:0:0:1::", 96),
            ("2001:db8:64::", 96),
        ]);
        assert_eq!(
            embedded_ipv4(&v6("64:ff9b:1::1:5102:45a0"), &all),
            Embedding::Ipv4(gb)
        );
        assert_eq!(
            embedded_ipv4(&v6("2001:db8:64::5102:45a0"), &all),
            Embedding::Ipv4(gb)
        );
        // The well-known prefix stays built in, and 64:ff9b::/32 outside both stays IPv6.
        assert_eq!(
            embedded_ipv4(&v6("64:ff9b::5102:45a0"), &Nat64Prefixes::default()),
            Embedding::Ipv4(gb)
        );
        assert_eq!(
            embedded_ipv4(&v6("64:ff9b:2::1"), &Nat64Prefixes::default()),
            Embedding::None
        );
    }

    #[test]
    fn only_rfc6052_lengths_without_host_bits_are_prefixes() {
        for len in [0, 8, 31, 33, 47, 63, 80, 95, 97, 128] {
            assert_eq!(Nat64Prefix::new(v6("64:ff9b:1::"), len), None, "/{len}");
        }
        assert_eq!(Nat64Prefix::new(v6("64:ff9b:1::1"), 96), None);
        assert!(Nat64Prefix::new(v6("64:ff9b:1::1:0:0"), 96).is_some());
    }
}
