//! The state tree's storage in RocksDB, for
//! [`cairn_anchoring::AuthenticatedState`].

use std::sync::{PoisonError, RwLock};

use cairn_anchoring::{AnchoringError, TreeNode, TreeStore, TreeUpdate};
use jmt::storage::NodeKey;
use jmt::{KeyHash, OwnedValue, Version};
use rocksdb::{DB, DBRawIteratorWithThreadMode, ReadOptions, WriteBatch};

use super::node_codec::{decode_node, encode_node, encode_node_into};
use super::{Store, TREE_NODES, TREE_VALUES, decode, encode, encode_into};
use crate::NodeError;

/// The state tree's [`TreeStore`] over the node's database.
#[derive(Clone)]
pub struct RocksTree {
    store: Store,
}

fn value_key(key_hash: &KeyHash, version: Version) -> [u8; 40] {
    let mut key = [0u8; 40];
    key[..32].copy_from_slice(&key_hash.0);
    key[32..].copy_from_slice(&version.to_be_bytes());
    key
}

/// A tree node's key in RocksDB: the version big-endian, so that a block's
/// nodes sort after every earlier block's and RocksDB's new files never
/// overlap its old ones (compaction moves them down instead of merging
/// them in), then the path's length in nibbles and the nibbles, two to a
/// byte. Part of the data folder's key layout (`STATE_KEY_LAYOUT`).
pub(crate) fn node_key(key: &NodeKey) -> Vec<u8> {
    let mut out = Vec::with_capacity(NODE_KEY_MAX);
    node_key_into(&mut out, key);
    out
}

/// The longest [`node_key`]: the version, the length, 64 nibbles.
const NODE_KEY_MAX: usize = 9 + 32;

/// [`node_key`], appended to `out`.
fn node_key_into(out: &mut Vec<u8>, key: &NodeKey) {
    let path = key.nibble_path();
    let nibbles = path.num_nibbles();
    out.extend_from_slice(&key.version().to_be_bytes());
    // At most 64 nibbles in a 32-byte key hash.
    out.push(nibbles as u8);
    for i in (0..nibbles).step_by(2) {
        let high = u8::from(path.get_nibble(i));
        let low = if i + 1 < nibbles {
            u8::from(path.get_nibble(i + 1))
        } else {
            0
        };
        out.push(high << 4 | low);
    }
}

/// A version's stale node keys, as `stale_nodes` holds them: each key of
/// [`node_key`], length first.
pub(crate) fn encode_stale(stale: &[NodeKey]) -> Vec<u8> {
    let keys: Vec<Vec<u8>> = stale.iter().map(node_key).collect();
    encode(&keys)
}

/// The `tree_nodes` keys of [`encode_stale`].
pub(crate) fn decode_stale(bytes: &[u8]) -> Result<Vec<Vec<u8>>, NodeError> {
    decode("stale state tree nodes", bytes)
}

/// Depth, in nibbles, of the top of the state tree kept in memory.
const TOP_DEPTH: usize = 4;

/// Paths of at most [`TOP_DEPTH`] nibbles: 16^0 + 16^1 + … + 16^TOP_DEPTH.
const TOP_SLOTS: usize = ((1 << (4 * (TOP_DEPTH + 1))) - 1) / 15;

/// The newest committed node at each path of the state tree's top levels.
///
/// Every block rewrites the nodes near the root, and the next block reads
/// them again: with 10^5 credentials or more, the top four levels are
/// most of a block's node reads. Nodes are immutable once written (a
/// version and a path name one node forever), so a slot answers a read
/// only for the exact version it holds, and is filled only after the
/// batch that wrote its node is applied to the database; a read of any
/// other version goes to RocksDB.
pub(crate) struct TopNodes {
    slots: RwLock<Vec<Option<(Version, TreeNode)>>>,
}

impl TopNodes {
    pub(crate) fn new() -> TopNodes {
        TopNodes {
            slots: RwLock::new(vec![None; TOP_SLOTS]),
        }
    }

    /// The slot of a node's path, if it is in the top levels: the paths of
    /// fewer nibbles first, then in nibble order.
    fn slot(key: &NodeKey) -> Option<usize> {
        let path = key.nibble_path();
        let nibbles = path.num_nibbles();
        if nibbles > TOP_DEPTH {
            return None;
        }
        let within = (0..nibbles).fold(0usize, |index, i| {
            index * 16 + usize::from(u8::from(path.get_nibble(i)))
        });
        Some(((1 << (4 * nibbles)) - 1) / 15 + within)
    }

    fn get(&self, key: &NodeKey) -> Option<TreeNode> {
        let slot = TopNodes::slot(key)?;
        let slots = self.slots.read().unwrap_or_else(PoisonError::into_inner);
        match &slots[slot] {
            Some((version, node)) if *version == key.version() => Some(node.clone()),
            _ => None,
        }
    }

    /// Takes in the top-level nodes of a version now written to the
    /// database, moved out of its update: the thousands a block rewrites
    /// near the root are kept without a copy.
    pub(crate) fn written(&self, nodes: Vec<(NodeKey, TreeNode)>) {
        let mut slots = self.slots.write().unwrap_or_else(PoisonError::into_inner);
        for (key, node) in nodes {
            if let Some(slot) = TopNodes::slot(&key) {
                let newer = slots[slot]
                    .as_ref()
                    .is_none_or(|(version, _)| *version <= key.version());
                if newer {
                    slots[slot] = Some((key.version(), node));
                }
            }
        }
    }
}

/// Adds a version's nodes and values to a RocksDB write batch.
pub(crate) fn add_to_batch(
    store: &Store,
    batch: &mut WriteBatch,
    update: &TreeUpdate,
) -> Result<(), NodeError> {
    let node_cf = store.cf(TREE_NODES)?;
    let value_cf = store.cf(TREE_VALUES)?;
    // The batch copies each key and value in: one buffer each serves them all.
    let (mut key, mut bytes) = (Vec::with_capacity(NODE_KEY_MAX), Vec::new());
    for (node_key, node) in &update.nodes {
        key.clear();
        node_key_into(&mut key, node_key);
        bytes.clear();
        encode_node_into(&mut bytes, node);
        batch.put_cf(node_cf, &key, &bytes);
    }
    for (key_hash, value) in &update.values {
        // As an `Option`: the family's layout keeps room for deletions.
        bytes.clear();
        encode_into(&mut bytes, &Some(value));
        batch.put_cf(value_cf, value_key(key_hash, update.version), &bytes);
    }
    Ok(())
}

/// What a version's nodes take in `tree_nodes`, as [`add_to_batch`]
/// writes them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct NodeWrites {
    /// Internal nodes written.
    pub internal: usize,
    /// Bytes of every node's key and value.
    pub bytes: usize,
}

/// The [`NodeWrites`] of a version.
pub(crate) fn node_writes(update: &TreeUpdate) -> NodeWrites {
    let mut writes = NodeWrites::default();
    for (key, node) in &update.nodes {
        if matches!(node, TreeNode::Internal(_)) {
            writes.internal += 1;
        }
        writes.bytes += node_key(key).len() + encode_node(node).len();
    }
    writes
}

impl RocksTree {
    pub(crate) fn new(store: Store) -> RocksTree {
        RocksTree { store }
    }
}

/// Reads keys' values as of a version: for each, a reverse seek to the
/// last version at or below it among that key hash's versions (the prefix
/// filters apply). One reader serves many reads, so a block's or a
/// transaction's reads share one RocksDB iterator instead of creating one
/// each; it sees the database as of its creation.
pub(crate) struct ValueReader<'a> {
    iter: DBRawIteratorWithThreadMode<'a, DB>,
}

impl<'a> ValueReader<'a> {
    pub(crate) fn new(store: &'a Store) -> Result<ValueReader<'a>, NodeError> {
        let cf = store.cf(TREE_VALUES)?;
        let mut options = ReadOptions::default();
        options.set_prefix_same_as_start(true);
        Ok(ValueReader {
            iter: store.db().raw_iterator_cf_opt(cf, options),
        })
    }

    /// The value of `key_hash` at `max_version`; `None` if it was not
    /// written by then, or its last write deleted it.
    pub(crate) fn get(
        &mut self,
        key_hash: &KeyHash,
        max_version: Version,
    ) -> Result<Option<OwnedValue>, NodeError> {
        self.iter.seek_for_prev(value_key(key_hash, max_version));
        match (self.iter.key(), self.iter.value()) {
            (Some(key), Some(value)) if key.len() == 40 && key[..32] == key_hash.0 => {
                decode::<Option<OwnedValue>>("state value", value)
            }
            _ => {
                self.iter.status()?;
                Ok(None)
            }
        }
    }
}

impl TreeStore for RocksTree {
    fn node(&self, key: &NodeKey) -> Result<Option<TreeNode>, AnchoringError> {
        if let Some(node) = self.store.top_nodes().get(key) {
            return Ok(Some(node));
        }
        // Decoded from RocksDB's own buffer: about one read per commitment.
        let cf = self.store.cf(TREE_NODES)?;
        let bytes = self
            .store
            .db()
            .get_pinned_cf(cf, node_key(key))
            .map_err(NodeError::from)?;
        Ok(bytes.map(|b| decode_node(&b)).transpose()?)
    }

    fn value(
        &self,
        version: Version,
        key_hash: &KeyHash,
    ) -> Result<Option<OwnedValue>, AnchoringError> {
        Ok(ValueReader::new(&self.store)?.get(key_hash, version)?)
    }

    /// A version written alone, synced through the log (the genesis
    /// state); a block's version is written by [`Store::commit_block`].
    fn write(&self, update: &TreeUpdate) -> Result<(), AnchoringError> {
        Ok(self.store.write_state_alone(update)?)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test code: a panic is the failure report
mod tests {
    use super::*;
    use jmt::storage::NibblePath;

    fn key(version: Version, nibbles: &[u8]) -> NodeKey {
        let path: NibblePath = nibbles.iter().map(|&n| n.into()).collect();
        NodeKey::new(version, path)
    }

    /// Every path of up to four nibbles has a slot of its own, deeper paths
    /// none; a slot answers only for the version it holds, and keeps the
    /// newest of the nodes written at its path.
    #[test]
    fn top_nodes_answer_only_for_their_exact_version() {
        let mut seen = std::collections::HashSet::new();
        let mut paths: Vec<Vec<u8>> = vec![Vec::new()];
        for _ in 0..TOP_DEPTH {
            let longer: Vec<Vec<u8>> = paths
                .iter()
                .filter(|p| p.len() == paths.last().map_or(0, Vec::len))
                .flat_map(|p| (0..16u8).map(move |n| [p.clone(), vec![n]].concat()))
                .collect();
            paths.extend(longer);
        }
        assert_eq!(paths.len(), TOP_SLOTS);
        for p in &paths {
            let slot = TopNodes::slot(&key(3, p)).unwrap();
            assert!(slot < TOP_SLOTS && seen.insert(slot), "path {p:?}");
        }
        assert_eq!(TopNodes::slot(&key(3, &[1, 2, 3, 4, 5])), None);

        let top = TopNodes::new();
        let leaf = |byte: u8| TreeNode::Leaf {
            key_hash: [byte; 32],
            value_hash: [byte; 32],
        };
        top.written(vec![
            (key(5, &[1, 2]), leaf(5)),
            (key(5, &[1, 2, 3, 4, 5]), leaf(6)),
        ]);
        assert_eq!(top.get(&key(5, &[1, 2])), Some(leaf(5)));
        assert_eq!(top.get(&key(4, &[1, 2])), None);
        assert_eq!(top.get(&key(5, &[1, 2, 3, 4, 5])), None);
        // A newer node replaces it; an older one, written late, does not.
        top.written(vec![(key(7, &[1, 2]), leaf(7))]);
        top.written(vec![(key(6, &[1, 2]), leaf(8))]);
        assert_eq!(top.get(&key(7, &[1, 2])), Some(leaf(7)));
        assert_eq!(top.get(&key(5, &[1, 2])), None);
        assert_eq!(top.get(&key(6, &[1, 2])), None);
    }

    /// One reader, asked about many keys and versions in no order, answers
    /// as a map of every write does: the latest write at or below the
    /// version, deletions as absent, and never a neighbouring key's value.
    #[test]
    fn one_value_reader_answers_many_reads() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), cairn_genesis::Hash([5; 32])).unwrap();
        // Neighbours: key hashes one apart, and one that differs in its first byte.
        let hash = |last: u8, first: u8| {
            let mut h = [7u8; 32];
            h[0] = first;
            h[31] = last;
            KeyHash(h)
        };
        let keys = [hash(1, 7), hash(2, 7), hash(3, 7), hash(1, 8)];
        let mut model = std::collections::BTreeMap::new();
        let mut batch = WriteBatch::default();
        let cf = store.cf(TREE_VALUES).unwrap();
        let writes: [(usize, Version, Option<&[u8]>); 7] = [
            (0, 2, Some(b"a2")),
            (0, 5, Some(b"a5")),
            (0, 9, None),
            (1, 4, Some(b"b4")),
            (2, 0, Some(b"c0")),
            (2, 7, Some(b"c7")),
            (3, 3, Some(b"d3")),
        ];
        for (k, version, value) in writes {
            let value: Option<OwnedValue> = value.map(<[u8]>::to_vec);
            batch.put_cf(cf, value_key(&keys[k], version), encode(&value));
            model.insert((keys[k].0, version), value);
        }
        store.db().write(batch).unwrap();

        let mut reader = ValueReader::new(&store).unwrap();
        let mut asked = 0;
        for version in [10, 0, 3, 9, 1, 5, 8, 4, 2, 7, 6] {
            for key in keys.iter().rev().chain(&[hash(0, 7), hash(4, 7)]) {
                let expected = model
                    .range((key.0, 0)..=(key.0, version))
                    .next_back()
                    .and_then(|(_, v)| v.clone());
                assert_eq!(
                    reader.get(key, version).unwrap(),
                    expected,
                    "key {:?} at version {version}",
                    key.0
                );
                asked += 1;
            }
        }
        assert_eq!(asked, 66);
        // The answers are not all absent: the reads above did find values.
        assert_eq!(reader.get(&keys[0], 6).unwrap(), Some(b"a5".to_vec()));
        assert_eq!(reader.get(&keys[1], 3).unwrap(), None);
    }

    /// A version's nodes come from the insert in the order of their keys
    /// here, so that a commit appends them to the memtable in order.
    #[test]
    fn a_versions_nodes_come_in_the_order_of_their_keys() {
        use cairn_anchoring::{AuthenticatedState, MemoryTreeStore, StateKey};
        let mut state = AuthenticatedState::new(MemoryTreeStore::default(), None);
        let mut checked = 0;
        for version in 0..4u64 {
            let changes: std::collections::BTreeMap<StateKey, Vec<u8>> = (0..300)
                .map(|i| {
                    (
                        StateKey::Issuer(format!("{}", i * 7 + version * 3)),
                        vec![1],
                    )
                })
                .collect();
            let (_, update) = state.prepare(version, &changes).unwrap();
            let keys: Vec<Vec<u8>> = update.nodes.iter().map(|(k, _)| node_key(k)).collect();
            assert!(keys.len() > 300, "{} nodes", keys.len());
            for pair in keys.windows(2) {
                assert!(pair[0] < pair[1], "{:?} before {:?}", pair[0], pair[1]);
                checked += 1;
            }
            state.store().write(&update).unwrap();
            state.mark_written(version);
        }
        assert!(checked > 1_200);
    }

    /// Every (version, path) has its own key, and keys sort by version
    /// first: a later block's nodes after all of an earlier block's.
    #[test]
    fn node_keys_are_distinct_and_sort_by_version() {
        let paths: [&[u8]; 6] = [&[], &[1], &[1, 0], &[0, 1], &[15, 15, 3], &[0; 64]];
        let versions = [0, 1, 255, 256, 65_536, u64::MAX];
        let mut keys = Vec::new();
        for &v in &versions {
            for p in paths {
                keys.push((v, node_key(&key(v, p))));
            }
        }
        let distinct: std::collections::BTreeSet<&Vec<u8>> = keys.iter().map(|(_, k)| k).collect();
        assert_eq!(distinct.len(), keys.len());
        for (v1, k1) in &keys {
            for (v2, k2) in &keys {
                if v1 < v2 {
                    assert!(k1 < k2, "version {v1} sorts after {v2}");
                }
            }
        }
        assert_eq!(
            node_key(&key(256, &[15, 15, 3])),
            [0, 0, 0, 0, 0, 0, 1, 0, 3, 0xff, 0x30]
        );
    }
}
