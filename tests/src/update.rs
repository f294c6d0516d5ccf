//! An attached filter whose data alternates between two small country lists, and what tests
//! of `update` need around it: probing the live program, snapshotting its maps.

use std::{
    collections::hash_map::DefaultHasher,
    fs,
    hash::{Hash as _, Hasher as _},
    net::IpAddr,
    path::{Path, PathBuf},
    time::SystemTime,
};

use aya::{
    maps::{Array, LpmTrie, Map, MapData},
    programs::{TestRun as _, TestRunOptions, Xdp},
};
use aya_obj::programs::XdpAttachType;
use filter_common::{maps, Chunk, PolicyRow, PortChunk, Settings};
use filter_user::{kernel::maps::FilterMaps, kernel::selftest};

use crate::{cli::Instance, kernel::XDP_DROP, kernel::XDP_PASS, netns::VethPair};

/// Same verdict in both lists: GB passes, JP drops (policy `--deny JP --unknown drop`).
pub const STABLE: [(&str, u32); 4] = [
    ("11.1.2.3", XDP_PASS),
    ("2a00:db8:1::9", XDP_PASS),
    ("11.4.0.1", XDP_DROP),
    ("2a00:db8:4::1", XDP_DROP),
];
/// DE in list A (pass), JP in list B (drop).
pub const CHANGING: [&str; 2] = ["11.3.7.7", "2a00:db8:3::3"];
/// Verdicts of the changing sources under list A and list B.
pub const UNDER_A: u32 = XDP_PASS;
pub const UNDER_B: u32 = XDP_DROP;
pub const POLICY: [&str; 4] = ["--deny", "JP", "--unknown", "drop"];

const LIST_A: &str = "11.1.0.0/16 GB\n11.2.0.0/16 FR\n11.3.0.0/16 DE\n11.4.0.0/16 JP\n\
2a00:db8:1::/48 GB\n2a00:db8:3::/48 DE\n2a00:db8:4::/48 JP\n";
const LIST_B: &str = "11.1.0.0/16 GB\n11.2.0.0/16 FR\n11.3.0.0/16 JP\n11.4.0.0/16 JP\n\
2a00:db8:1::/48 GB\n2a00:db8:3::/48 JP\n2a00:db8:4::/48 JP\n";

/// Writes list A (`a.txt`) and list B (`b.txt`) into `dir`, created if missing, with the same
/// modification time, so the build-date guard sees neither as older; their paths.
pub fn write_lists(dir: &Path) -> (String, String) {
    fs::create_dir_all(dir).unwrap();
    let when = SystemTime::now();
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        fs::write(&path, text).unwrap();
        fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(when)
            .unwrap();
        path.display().to_string()
    };
    (write("a.txt", LIST_A), write("b.txt", LIST_B))
}

/// A filter attached in a namespace of its own, with the two lists written next to it.
pub struct Attached {
    pub inst: Instance,
    pub pair: VethPair,
    pub iface: String,
    pub dir: PathBuf,
    pub list_a: String,
    pub list_b: String,
}

impl Attached {
    /// Attaches list A. Both lists get the same modification time, so the build-date guard
    /// sees neither as older.
    #[must_use]
    pub fn new(tag: &str) -> Self {
        Self::with_options(tag, &[])
    }

    /// Like [`Attached::new`], with more `attach` options.
    #[must_use]
    pub fn with_options(tag: &str, extra: &[&str]) -> Self {
        let inst = Instance::new();
        let pair = VethPair::new(tag).expect("namespaces");
        let dir = inst.state_dir.join("lists");
        let (list_a, list_b) = write_lists(&dir);
        let iface = pair.receiver_if.clone();
        let mut args = vec![
            "attach", "--iface", &iface, "--mode", "skb", "--db", &list_a,
        ];
        args.extend(POLICY);
        args.extend_from_slice(extra);
        inst.ok(Some(&pair.receiver), &args).expect("attach");
        // No packets on the wire: counters then move only when a test probes the program.
        pair.sender
            .ip(&["link", "set", &pair.sender_if, "down"])
            .expect("sender down");
        Self {
            inst,
            pair,
            iface,
            dir,
            list_a,
            list_b,
        }
    }

    #[must_use]
    pub fn pin_dir(&self) -> PathBuf {
        self.inst.pin_root.join(&self.iface)
    }

    /// `regionfilter update --iface IF EXTRA...`: exit code, stdout and stderr.
    pub fn update(&self, extra: &[&str]) -> (i32, String) {
        let mut args = vec!["update", "--iface", &self.iface];
        args.extend_from_slice(extra);
        self.inst.output_text(None, &args)
    }

    /// The live program, for BPF_PROG_TEST_RUN.
    #[must_use]
    pub fn probe(&self) -> Probe {
        Probe::from_pin(&self.pin_dir())
    }

    /// Everything `update` must leave alone when it refuses or fails.
    #[must_use]
    pub fn snapshot(&self) -> Snapshot {
        let dir = self.pin_dir();
        let maps = FilterMaps::open_pinned(&dir).expect("open maps");
        let known_good =
            |name: &str| fs::read(self.inst.lib_dir().join(&self.iface).join(name)).ok();
        Snapshot {
            active: maps.active_half().unwrap(),
            settings: maps.halves.iter().map(|h| h.settings().unwrap()).collect(),
            counters: maps
                .counter_totals()
                .unwrap()
                .iter()
                .map(|c| (c.packets, c.bytes))
                .collect(),
            contents: maps::HALF
                .iter()
                .flat_map(|h| h.all())
                .map(|name| (name, map_digest(&dir.join(name))))
                .collect(),
            current: known_good("current.rgnf"),
            previous: known_good("previous.rgnf"),
        }
    }
}

/// The live program run on hand-built frames.
pub struct Probe {
    program: Xdp,
}

impl Probe {
    /// The program pinned in a filter's pin directory.
    #[must_use]
    pub fn from_pin(pin_dir: &Path) -> Self {
        Self {
            program: Xdp::from_pin(pin_dir.join("program"), XdpAttachType::Interface)
                .expect("pinned program"),
        }
    }

    /// Which list the live program answers from, `'A'` or `'B'`, checking that the stable
    /// sources keep their verdicts and that it answers from exactly one list.
    pub fn answering_list(&mut self) -> char {
        for (src, want) in STABLE {
            assert_eq!(self.verdict(src), want, "stable source {src}");
        }
        let verdicts: Vec<u32> = CHANGING.iter().map(|s| self.verdict(s)).collect();
        match verdicts.as_slice() {
            [UNDER_A, UNDER_A] => 'A',
            [UNDER_B, UNDER_B] => 'B',
            other => panic!("changing sources answer from a mix of both lists: {other:?}"),
        }
    }

    pub fn verdict(&mut self, src: &str) -> u32 {
        let addr: IpAddr = src.parse().unwrap();
        let frame = selftest::frame(addr);
        self.program
            .test_run(TestRunOptions {
                data_in: Some(&frame),
                ..TestRunOptions::new()
            })
            .expect("BPF_PROG_TEST_RUN")
            .return_value
    }
}

#[derive(PartialEq, Eq)]
pub struct Snapshot {
    pub active: usize,
    pub settings: Vec<Settings>,
    pub counters: Vec<(u64, u64)>,
    /// Digest of every per-half map's entries.
    pub contents: Vec<(&'static str, u64)>,
    pub current: Option<Vec<u8>>,
    pub previous: Option<Vec<u8>>,
}

/// A digest of every entry of a pinned array or trie, whatever its key and value types.
fn map_digest(path: &Path) -> u64 {
    let open = || Map::from_map_data(MapData::from_pin(path).unwrap()).unwrap();
    let mut hasher = DefaultHasher::new();
    macro_rules! digest_array {
        ($($value:ty),*) => {$(
            if let Ok(array) = Array::<MapData, $value>::try_from(open()) {
                array.iter().for_each(|v| format!("{:?}", v.unwrap()).hash(&mut hasher));
                return hasher.finish();
            }
        )*};
    }
    macro_rules! digest_trie {
        ($(($key:ty, $value:ty)),*) => {$(
            if let Ok(trie) = LpmTrie::<MapData, $key, $value>::try_from(open()) {
                trie.iter().for_each(|e| {
                    let (k, v) = e.unwrap();
                    (k.prefix_len(), k.data(), v).hash(&mut hasher);
                });
                return hasher.finish();
            }
        )*};
    }
    if let Ok(array) = Array::<MapData, Chunk>::try_from(open()) {
        array.iter().for_each(|v| v.unwrap().hash(&mut hasher));
        return hasher.finish();
    }
    digest_array!(Settings, PolicyRow, PortChunk);
    digest_trie!(([u8; 4], u16), ([u8; 16], u16));
    panic!("{} has an unexpected type", path.display())
}

/// Only what differs matters when two snapshots are compared; the counters alone are 1,400 pairs.
impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let busy: Vec<(usize, &(u64, u64))> = self
            .counters
            .iter()
            .enumerate()
            .filter(|(_, c)| c.0 > 0)
            .collect();
        f.debug_struct("Snapshot")
            .field("active", &self.active)
            .field("settings", &self.settings)
            .field("counters (non-zero)", &busy)
            .field("contents", &self.contents)
            .field("current.rgnf bytes", &self.current.as_ref().map(Vec::len))
            .field("previous.rgnf bytes", &self.previous.as_ref().map(Vec::len))
            .finish()
    }
}
