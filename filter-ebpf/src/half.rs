//! The per-half maps. Every map that holds data or policy exists twice (`_0`, `_1`); `ACTIVE`
//! says which half packets see, so userspace can fill the other one completely and switch with
//! one write. Each half is a zero-sized type so every lookup names its map at compile time.

use aya_ebpf::{
    macros::map,
    maps::{Array, LpmTrie},
};
use filter_common::{
    Chunk, PolicyRow, PortChunk, Settings, POLICY_ROWS, PORT_CHUNKS, REGION_MAX_ENTRIES,
    V4_L1_ENTRIES, V4_POOL_ENTRIES, V6_POOL_ENTRIES,
};

/// The maps of one half.
pub trait Half {
    fn settings() -> &'static Array<Settings>;
    /// One row per rule: table entry -> `ACTION_PASS` / `ACTION_DROP`.
    fn policy() -> &'static Array<PolicyRow>;
    /// Destination port (TCP, then UDP; 256 per chunk) -> policy row, or `ROW_OUT_OF_SCOPE`.
    fn ports() -> &'static Array<PortChunk>;
    /// Country (and class) prefixes for `LOOKUP_LPM` (IPv4 and IPv6) and for IPv6 prefixes longer than /64
    /// under `LOOKUP_FAST`.
    fn lpm_v4() -> &'static LpmTrie<[u8; 4], u16>;
    fn lpm_v6() -> &'static LpmTrie<[u8; 16], u16>;
    /// IPv4 /16 -> chunk indexed by the third byte.
    fn v4_l1() -> &'static Array<Chunk>;
    /// IPv4 /24 chunks indexed by the fourth byte.
    fn v4_pool() -> &'static Array<Chunk>;
    /// IPv6 chunks for bytes 0..4; chunk 0 is the root.
    fn v6_pool() -> &'static Array<Chunk>;
}

macro_rules! half {
    ($half:ident, $settings:ident, $policy:ident, $ports:ident, $lpm_v4:ident, $lpm_v6:ident, $v4_l1:ident,
     $v4_pool:ident, $v6_pool:ident) => {
        #[map]
        static $settings: Array<Settings> = Array::with_max_entries(1, 0);
        #[map]
        static $policy: Array<PolicyRow> = Array::with_max_entries(POLICY_ROWS, 0);
        #[map]
        static $ports: Array<PortChunk> = Array::with_max_entries(PORT_CHUNKS, 0);
        #[map]
        static $lpm_v4: LpmTrie<[u8; 4], u16> = LpmTrie::with_max_entries(REGION_MAX_ENTRIES, 0);
        #[map]
        static $lpm_v6: LpmTrie<[u8; 16], u16> = LpmTrie::with_max_entries(REGION_MAX_ENTRIES, 0);
        #[map]
        static $v4_l1: Array<Chunk> = Array::with_max_entries(V4_L1_ENTRIES, 0);
        #[map]
        static $v4_pool: Array<Chunk> = Array::with_max_entries(V4_POOL_ENTRIES, 0);
        #[map]
        static $v6_pool: Array<Chunk> = Array::with_max_entries(V6_POOL_ENTRIES, 0);

        pub struct $half;

        impl Half for $half {
            #[inline(always)]
            fn settings() -> &'static Array<Settings> {
                &$settings
            }
            #[inline(always)]
            fn policy() -> &'static Array<PolicyRow> {
                &$policy
            }
            #[inline(always)]
            fn ports() -> &'static Array<PortChunk> {
                &$ports
            }
            #[inline(always)]
            fn lpm_v4() -> &'static LpmTrie<[u8; 4], u16> {
                &$lpm_v4
            }
            #[inline(always)]
            fn lpm_v6() -> &'static LpmTrie<[u8; 16], u16> {
                &$lpm_v6
            }
            #[inline(always)]
            fn v4_l1() -> &'static Array<Chunk> {
                &$v4_l1
            }
            #[inline(always)]
            fn v4_pool() -> &'static Array<Chunk> {
                &$v4_pool
            }
            #[inline(always)]
            fn v6_pool() -> &'static Array<Chunk> {
                &$v6_pool
            }
        }
    };
}

half!(Half0, SETTINGS_0, POLICY_0, PORTS_0, LPM_V4_0, LPM_V6_0, V4_L1_0, V4_POOL_0, V6_POOL_0);
half!(Half1, SETTINGS_1, POLICY_1, PORTS_1, LPM_V4_1, LPM_V6_1, V4_L1_1, V4_POOL_1, V6_POOL_1);
