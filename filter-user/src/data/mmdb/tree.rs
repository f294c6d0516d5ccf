//! A MaxMind DB search tree's shape, checked before it is walked.
//!
//! Walking a tree (`Reader::networks`) visits every path from the root. In a real tree that is
//! one path per terminal record, a little over the node count (MaxMind's IPv6 trees point a
//! few aliases such as `::ffff:0:0/96` at the IPv4 subtree, so it is walked a few times). But
//! nothing stops a file from pointing many records at the same node: 128 nodes whose two
//! records both point to the next node form a 1 KB file with 2^128 paths, and the walk never
//! ends (found while writing the mmdb fuzz target; `fuzz/regressions/mmdb/`). Counting paths
//! per node once, bottom-up, costs one pass over the nodes and refuses such a file up front.

/// Paths allowed per node: real databases stay below about 4 (the IPv4 aliases).
const PATHS_PER_NODE: u64 = 16;

/// `Err` with the reason when walking the tree would take far more steps than it has nodes, or
/// never end. Layouts `maxminddb` itself refuses (record sizes, a short file) pass here.
pub fn check(buf: &[u8], node_count: u32, record_size: u16) -> Result<(), String> {
    let node_count = node_count as usize;
    let node_bytes = match record_size {
        24 => 6,
        28 => 7,
        32 => 8,
        _ => return Ok(()),
    };
    if node_count == 0 || node_count.saturating_mul(node_bytes) > buf.len() {
        return Ok(());
    }
    let record = |node: usize, side: usize| -> usize {
        let at = node * node_bytes;
        let b = &buf[at..at + node_bytes];
        let value = match (record_size, side) {
            (24, 0) => u32::from_be_bytes([0, b[0], b[1], b[2]]),
            (24, _) => u32::from_be_bytes([0, b[3], b[4], b[5]]),
            (28, 0) => u32::from_be_bytes([b[3] >> 4, b[0], b[1], b[2]]),
            (28, _) => u32::from_be_bytes([b[3] & 0x0f, b[4], b[5], b[6]]),
            (_, 0) => u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            (_, _) => u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        };
        value as usize
    };
    let limit = (node_count as u64 + 1).saturating_mul(PATHS_PER_NODE);
    // Depth-first from the root; a node is Open while it is on the current path.
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        New,
        Open,
        Done,
    }
    let mut state = vec![State::New; node_count];
    let mut paths = vec![0u64; node_count];
    let mut stack = vec![0usize];
    while let Some(&node) = stack.last() {
        match state[node] {
            State::New => {
                state[node] = State::Open;
                for side in 0..2 {
                    let child = record(node, side);
                    if child < node_count {
                        match state[child] {
                            State::New => stack.push(child),
                            State::Open => return Err("its search tree has a cycle".to_owned()),
                            State::Done => {}
                        }
                    }
                }
            }
            State::Open => {
                stack.pop();
                let total = (0..2)
                    .map(|side| {
                        let child = record(node, side);
                        if child < node_count {
                            paths[child]
                        } else {
                            1
                        }
                    })
                    .fold(0, u64::saturating_add);
                if total > limit {
                    return Err(format!(
                        "its search tree of {node_count} nodes has over {limit} paths: its \
                         nodes are shared between branches, so reading it would never end"
                    ));
                }
                paths[node] = total;
                state[node] = State::Done;
            }
            State::Done => {
                stack.pop();
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::data::{mmdb, CountryField, DataError};

    fn repo(path: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
    }

    #[test]
    fn real_databases_pass() {
        for name in [
            "GeoLite2-Country-Test.mmdb",
            "GeoIP2-Country-Test.mmdb",
            "GeoIP2-City-Test.mmdb",
        ] {
            let path = repo("fixtures/maxmind").join(name);
            let bytes = std::fs::read(&path).unwrap();
            let reader = maxminddb::Reader::from_source(&bytes[..]).unwrap();
            let meta = reader.metadata();
            check(&bytes, meta.node_count, meta.record_size).unwrap();
        }
    }

    /// 128 nodes, each with both records on the next one: 2^128 paths in 978 bytes. Before the
    /// check, reading it never finished.
    #[test]
    fn a_tree_whose_nodes_share_children_is_refused_at_once() {
        let path = repo("fuzz/regressions/mmdb/shared-nodes-2-pow-128-paths.mmdb");
        let started = std::time::Instant::now();
        let err = mmdb::load_bytes(&path, &std::fs::read(&path).unwrap(), CountryField::Country)
            .unwrap_err();
        assert!(matches!(err, DataError::Corrupt { .. }), "{err}");
        // The cause is the error's source (messages name it once, in the chain).
        let cause = std::error::Error::source(&err).map(ToString::to_string);
        assert!(
            cause.as_deref().is_some_and(|c| c.contains("never end")),
            "{err}: {cause:?}"
        );
        assert!(started.elapsed().as_secs() < 5);
    }

    #[test]
    fn a_cycle_is_refused() {
        // One node, 24-bit records: left points to itself, right to the empty record.
        let buf = [0, 0, 0, 0, 0, 1];
        assert!(check(&buf, 1, 24).unwrap_err().contains("cycle"));
        // Both to the empty record: fine.
        assert!(check(&[0, 0, 1, 0, 0, 1], 1, 24).is_ok());
    }
}
