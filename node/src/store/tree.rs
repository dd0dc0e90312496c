//! The state tree's storage in RocksDB, for `jmt` (through
//! [`cairn_anchoring::AuthenticatedState`]).

use jmt::storage::{LeafNode, Node, NodeBatch, NodeKey, TreeReader, TreeWriter};
use jmt::{KeyHash, OwnedValue, Version};
use rocksdb::{Direction, IteratorMode, ReadOptions, WriteBatch};

use super::{Store, TREE_NODES, TREE_VALUES, decode, encode, synced};
use crate::NodeError;

/// jmt's reader and writer over the node's database.
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
fn node_key(key: &NodeKey) -> Vec<u8> {
    let path = key.nibble_path();
    let nibbles = path.num_nibbles();
    let mut out = Vec::with_capacity(9 + nibbles.div_ceil(2));
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
    out
}

/// Adds a jmt node batch to a RocksDB write batch.
pub(crate) fn add_to_batch(
    store: &Store,
    batch: &mut WriteBatch,
    nodes: &NodeBatch,
) -> Result<(), NodeError> {
    let node_cf = store.cf(TREE_NODES)?;
    let value_cf = store.cf(TREE_VALUES)?;
    for (key, node) in nodes.nodes() {
        batch.put_cf(node_cf, node_key(key), encode(node));
    }
    for ((version, key_hash), value) in nodes.values() {
        batch.put_cf(value_cf, value_key(key_hash, *version), encode(value));
    }
    Ok(())
}

impl RocksTree {
    pub(crate) fn new(store: Store) -> RocksTree {
        RocksTree { store }
    }
}

fn to_anyhow(e: NodeError) -> anyhow::Error {
    anyhow::anyhow!(e.to_string())
}

impl TreeReader for RocksTree {
    fn get_node_option(&self, key: &NodeKey) -> anyhow::Result<Option<Node>> {
        self.store
            .get(TREE_NODES, &node_key(key))
            .and_then(|v| v.map(|b| decode("state tree node", &b)).transpose())
            .map_err(to_anyhow)
    }

    fn get_value_option(
        &self,
        max_version: Version,
        key_hash: KeyHash,
    ) -> anyhow::Result<Option<OwnedValue>> {
        let cf = self.store.cf(TREE_VALUES).map_err(to_anyhow)?;
        let start = value_key(&key_hash, max_version);
        // Only this key hash's versions: the prefix filters apply.
        let mut options = ReadOptions::default();
        options.set_prefix_same_as_start(true);
        let mut iter = self.store.db().iterator_cf_opt(
            cf,
            options,
            IteratorMode::From(&start, Direction::Reverse),
        );
        match iter.next() {
            Some(Ok((key, value))) if key.len() == 40 && key[..32] == key_hash.0 => {
                let value: Option<OwnedValue> = decode("state value", &value).map_err(to_anyhow)?;
                Ok(value)
            }
            Some(Err(e)) => Err(anyhow::anyhow!(e.to_string())),
            _ => Ok(None),
        }
    }

    fn get_rightmost_leaf(&self) -> anyhow::Result<Option<(NodeKey, LeafNode)>> {
        Err(anyhow::anyhow!(
            "restoring the state tree from chunks is not supported"
        ))
    }
}

impl TreeWriter for RocksTree {
    fn write_node_batch(&self, nodes: &NodeBatch) -> anyhow::Result<()> {
        let mut batch = WriteBatch::default();
        add_to_batch(&self.store, &mut batch, nodes).map_err(to_anyhow)?;
        self.store
            .db()
            .write_opt(batch, &synced())
            .map_err(|e| anyhow::anyhow!(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jmt::storage::NibblePath;

    fn key(version: Version, nibbles: &[u8]) -> NodeKey {
        let path: NibblePath = nibbles.iter().map(|&n| n.into()).collect();
        NodeKey::new(version, path)
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
