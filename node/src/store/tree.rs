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

/// Adds a jmt node batch to a RocksDB write batch.
pub(crate) fn add_to_batch(
    store: &Store,
    batch: &mut WriteBatch,
    nodes: &NodeBatch,
) -> Result<(), NodeError> {
    let node_cf = store.cf(TREE_NODES)?;
    let value_cf = store.cf(TREE_VALUES)?;
    for (key, node) in nodes.nodes() {
        batch.put_cf(node_cf, encode(key), encode(node));
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
    fn get_node_option(&self, node_key: &NodeKey) -> anyhow::Result<Option<Node>> {
        self.store
            .get(TREE_NODES, &encode(node_key))
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
