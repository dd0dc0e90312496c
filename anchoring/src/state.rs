//! The authenticated state: a versioned sparse Merkle tree (the `jmt`
//! Jellyfish Merkle tree, hashed with blake3) over every [`StateKey`], one
//! version per height (the genesis state is version 0). Its root goes in
//! every block header; a [`StateProof`] shows a key's value, or its absence,
//! at any retained version.
//!
//! Storage sits behind jmt's `TreeReader`/`TreeWriter`; [`MemoryTreeStore`]
//! keeps it in memory, the node keeps it in RocksDB.

use std::collections::BTreeMap;
use std::sync::RwLock;

use cairn_genesis::{Domain, Hash};
use jmt::storage::{LeafNode, Node, NodeKey, TreeReader, TreeWriter};

/// The state tree nodes and values one version adds (jmt's `NodeBatch`).
pub use jmt::storage::NodeBatch;
use jmt::storage::StaleNodeIndex;
use jmt::{JellyfishMerkleTree, KeyHash, OwnedValue, Version};

use crate::{AnchoringError, StateKey};

/// Domain of the state tree's value hashes, and of any message to
/// [`StateHasher`] other than jmt's two node messages.
pub const STATE_TREE_DOMAIN: &str = "cairn 2026-12 state tree v2";
/// Domain of an internal node's hash: its two children's hashes, 64 bytes.
pub const STATE_TREE_INTERNAL_DOMAIN: &str = "cairn 2026-12 state tree v2 internal node";
/// Domain of a leaf's hash: its key hash, then its value hash, 64 bytes.
pub const STATE_TREE_LEAF_DOMAIN: &str = "cairn 2026-12 state tree v2 leaf";
static STATE_TREE: Domain = Domain::new(STATE_TREE_DOMAIN);
static STATE_TREE_INTERNAL: Domain = Domain::new(STATE_TREE_INTERNAL_DOMAIN);
static STATE_TREE_LEAF: Domain = Domain::new(STATE_TREE_LEAF_DOMAIN);

/// The tag jmt puts before an internal node's two child hashes.
const JMT_INTERNAL_TAG: &[u8] = b"JMT::IntrnalNode";
/// The tag jmt puts before a leaf's key hash and value hash.
const JMT_LEAF_TAG: &[u8] = b"JMT::LeafNode";
/// The longest of jmt's two node messages: tag, then two hashes.
const NODE_MESSAGE_MAX: usize = 16 + 64;

/// An internal node's hash, from its left and right children's.
pub fn internal_hash(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    pair_hash(&STATE_TREE_INTERNAL, left, right)
}

/// A leaf's hash, from its key hash and its value's hash.
pub fn leaf_hash(key_hash: &[u8; 32], value_hash: &[u8; 32]) -> [u8; 32] {
    pair_hash(&STATE_TREE_LEAF, key_hash, value_hash)
}

/// Two hashes as one 64-byte message: a single blake3 compression.
fn pair_hash(domain: &Domain, first: &[u8; 32], second: &[u8; 32]) -> [u8; 32] {
    let mut message = [0u8; 64];
    message[..32].copy_from_slice(first);
    message[32..].copy_from_slice(second);
    domain.hash(&message).0
}

/// The state tree's hash of a message of at most [`NODE_MESSAGE_MAX`]
/// bytes: jmt's node messages by their two hashes, anything else whole.
fn short_message_hash(message: &[u8]) -> [u8; 32] {
    let hashes = |tag: &[u8]| message.strip_prefix(tag).filter(|rest| rest.len() == 64);
    let (domain, message) = if let Some(children) = hashes(JMT_INTERNAL_TAG) {
        (&STATE_TREE_INTERNAL, children)
    } else if let Some(key_and_value) = hashes(JMT_LEAF_TAG) {
        (&STATE_TREE_LEAF, key_and_value)
    } else {
        (&STATE_TREE, message)
    };
    domain.hash(message).0
}

/// blake3 for jmt, in derive-key mode, one domain per kind of message.
///
/// jmt hashes an internal node as its 16-byte tag then its two children's
/// hashes, and a leaf as its 13-byte tag then its key hash and value hash:
/// 80 and 77 bytes, two blake3 compressions each. This hasher hashes
/// those two messages as their 64 bytes of hashes under a domain of their
/// own ([`internal_hash`], [`leaf_hash`]), one compression each, and every
/// other message (jmt's value hashes) whole under [`STATE_TREE_DOMAIN`].
/// The domains keep the three kinds apart as jmt's tags did (and no
/// further: a value shaped exactly like a node message hashes as that
/// node, as under jmt's tags; no value the ledger writes has that shape).
/// The hash is a function of the message alone, however jmt splits it
/// into updates.
#[derive(Clone)]
pub struct StateHasher {
    /// The message so far, while it is no longer than a node message.
    head: [u8; NODE_MESSAGE_MAX],
    head_len: usize,
    /// The message so far, once longer.
    long: Option<blake3::Hasher>,
}

impl jmt::SimpleHasher for StateHasher {
    fn new() -> Self {
        StateHasher {
            head: [0; NODE_MESSAGE_MAX],
            head_len: 0,
            long: None,
        }
    }

    fn update(&mut self, data: &[u8]) {
        if let Some(long) = &mut self.long {
            long.update(data);
            return;
        }
        let end = self.head_len + data.len();
        if let Some(room) = self.head.get_mut(self.head_len..end) {
            room.copy_from_slice(data);
            self.head_len = end;
        } else {
            let mut long = STATE_TREE.hasher();
            long.update(&self.head[..self.head_len]);
            long.update(data);
            self.long = Some(long);
        }
    }

    fn finalize(self) -> [u8; 32] {
        match self.long {
            Some(long) => *long.finalize().as_bytes(),
            None => short_message_hash(&self.head[..self.head_len]),
        }
    }
}

pub use crate::state_proof::{ProofLeaf, StateProof};

/// What writing one version changes in the tree's storage.
#[derive(Clone, Debug, Default)]
pub struct TreeUpdate {
    /// The nodes and values the version adds.
    pub nodes: NodeBatch,
    /// Nodes of earlier versions that this version no longer reaches: only
    /// versions before it read them, so once those versions are no longer
    /// kept, these nodes can be deleted. The previous version's root is
    /// always among them.
    pub stale: Vec<NodeKey>,
}

/// The tree's nodes and values in memory.
#[derive(Default)]
pub struct MemoryTreeStore {
    inner: RwLock<MemoryTree>,
}

#[derive(Default)]
struct MemoryTree {
    nodes: BTreeMap<NodeKey, Node>,
    values: BTreeMap<(KeyHash, Version), Option<OwnedValue>>,
}

impl TreeReader for MemoryTreeStore {
    fn get_node_option(&self, node_key: &NodeKey) -> anyhow::Result<Option<Node>> {
        let inner = self
            .inner
            .read()
            .map_err(|e| anyhow::anyhow!("lock poisoned: {e}"))?;
        Ok(inner.nodes.get(node_key).cloned())
    }

    fn get_value_option(
        &self,
        max_version: Version,
        key_hash: KeyHash,
    ) -> anyhow::Result<Option<OwnedValue>> {
        let inner = self
            .inner
            .read()
            .map_err(|e| anyhow::anyhow!("lock poisoned: {e}"))?;
        Ok(inner
            .values
            .range((key_hash, 0)..=(key_hash, max_version))
            .next_back()
            .and_then(|(_, v)| v.clone()))
    }

    fn get_rightmost_leaf(&self) -> anyhow::Result<Option<(NodeKey, LeafNode)>> {
        Err(anyhow::anyhow!(
            "restoring a state tree from chunks is not supported by the memory store"
        ))
    }
}

impl TreeWriter for MemoryTreeStore {
    fn write_node_batch(&self, batch: &NodeBatch) -> anyhow::Result<()> {
        let mut inner = self
            .inner
            .write()
            .map_err(|e| anyhow::anyhow!("lock poisoned: {e}"))?;
        for (key, node) in batch.nodes() {
            inner.nodes.insert(key.clone(), node.clone());
        }
        for ((version, key_hash), value) in batch.values() {
            inner.values.insert((*key_hash, *version), value.clone());
        }
        Ok(())
    }
}

/// The versioned state over a tree store.
pub struct AuthenticatedState<S> {
    store: S,
    latest: Option<Version>,
}

fn storage(e: anyhow::Error) -> AnchoringError {
    AnchoringError::Storage(e.to_string())
}

impl<S: TreeReader + TreeWriter> AuthenticatedState<S> {
    /// A state over `store`, whose latest written version is `latest`.
    pub fn new(store: S, latest: Option<Version>) -> Self {
        AuthenticatedState { store, latest }
    }

    /// The latest version written.
    pub fn latest(&self) -> Option<Version> {
        self.latest
    }

    /// Computes the root of `version` = the latest version plus `changes`,
    /// without writing anything: the caller stores the returned nodes (with
    /// the block, in one write) and then calls [`AuthenticatedState::mark_written`].
    /// A proposer uses it to put the root in its header; a validator to
    /// re-execute a proposal it may never commit.
    pub fn prepare(
        &self,
        version: Version,
        changes: &BTreeMap<StateKey, Vec<u8>>,
    ) -> Result<(Hash, TreeUpdate), AnchoringError> {
        match self.latest {
            Some(latest) if version <= latest => {
                return Err(AnchoringError::Storage(format!(
                    "version {version} is not after {latest}"
                )));
            }
            None if version != 0 => {
                return Err(AnchoringError::Storage(format!(
                    "an empty state starts at version 0, not {version}"
                )));
            }
            _ => {}
        }
        let set = changes
            .iter()
            .map(|(k, v)| (KeyHash(k.hash().0), v.clone()))
            .collect();
        let (root, update) = put_set(&self.store, set, version).map_err(storage)?;
        Ok((Hash(root.0), update))
    }

    /// Records that `version`'s nodes from [`AuthenticatedState::prepare`] are stored.
    pub fn mark_written(&mut self, version: Version) {
        self.latest = Some(version);
    }

    /// Writes `changes` as `version` (every version gets a root, even with no change) and returns its root.
    pub fn commit(
        &mut self,
        version: Version,
        changes: &BTreeMap<StateKey, Vec<u8>>,
    ) -> Result<Hash, AnchoringError> {
        let (root, update) = self.prepare(version, changes)?;
        self.store
            .write_node_batch(&update.nodes)
            .map_err(storage)?;
        self.mark_written(version);
        Ok(root)
    }

    /// The tree's storage.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The root at `version`.
    pub fn root(&self, version: Version) -> Result<Hash, AnchoringError> {
        let tree = JellyfishMerkleTree::<_, StateHasher>::new(&self.store);
        tree.get_root_hash(version)
            .map(|r| Hash(r.0))
            .map_err(storage)
    }

    /// The value of `key` at `version` with its proof.
    pub fn prove(
        &self,
        key: &StateKey,
        version: Version,
    ) -> Result<(Option<Vec<u8>>, StateProof), AnchoringError> {
        StateProof::build(&self.store, key.hash().0, version)
    }

    /// A read view of the state at `version`.
    pub fn at(&self, version: Version) -> StateAt<'_, S> {
        StateAt {
            store: &self.store,
            version,
        }
    }
}

/// Adds to `into` the keys of the nodes the root of `version` reaches in
/// `store`. A node already in `into` counts as reached with its whole
/// subtree, so the versions of a range share the walk of their common
/// nodes. A missing node is an error: the version is not whole.
pub fn version_nodes<R: TreeReader>(
    store: &R,
    version: Version,
    into: &mut std::collections::BTreeSet<NodeKey>,
) -> Result<(), AnchoringError> {
    let mut pending = vec![NodeKey::new(version, std::iter::empty().collect())];
    while let Some(key) = pending.pop() {
        if into.contains(&key) {
            continue;
        }
        let node = store
            .get_node_option(&key)
            .map_err(storage)?
            .ok_or_else(|| {
                AnchoringError::Storage(format!("version {version} misses the node {key:?}"))
            })?;
        if let Node::Internal(internal) = node {
            for (nibble, child) in internal.children_sorted() {
                let path = key.nibble_path().nibbles().chain([nibble]).collect();
                pending.push(NodeKey::new(child.version, path));
            }
        }
        into.insert(key);
    }
    Ok(())
}

/// Writes `set` into the tree over `store` as `version`, in one descent:
/// each new node is read and hashed once (jmt's key-by-key insert rewrites
/// and rehashes the path from the root for every key). The tree, and so
/// its root, is the same either way (`batch_insert_builds_the_same_tree`).
/// Versions follow one another: `version - 1` is the latest written.
fn put_set<R: TreeReader>(
    store: &R,
    set: Vec<(KeyHash, OwnedValue)>,
    version: Version,
) -> anyhow::Result<(jmt::RootHash, TreeUpdate)> {
    let tree = JellyfishMerkleTree::<_, StateHasher>::new(store);
    let (roots, batch) = if set.is_empty() {
        // A version without changes still gets its root node (the batch
        // insert refuses an empty set).
        tree.put_value_sets([std::iter::empty()], version)?
    } else {
        tree.batch_put_value_sets(vec![set], None, version)?
    };
    let root = roots
        .first()
        .copied()
        .ok_or_else(|| anyhow::anyhow!("no root computed for version {version}"))?;
    let mut stale = batch.stale_node_index_batch;
    if let Some(previous) = version.checked_sub(1) {
        // A version without changes gets a copy of the previous root, and
        // jmt does not list the old one as stale; every version has a root
        // of its own, so the previous one is stale either way.
        stale.insert(StaleNodeIndex {
            stale_since_version: version,
            node_key: NodeKey::new(previous, std::iter::empty().collect()),
        });
    }
    let update = TreeUpdate {
        nodes: batch.node_batch,
        stale: stale.into_iter().map(|index| index.node_key).collect(),
    };
    Ok((root, update))
}

/// The state's values at one version. With the transactions its chain
/// applied (which the blocks hold, not the state), a node makes of it the
/// [`crate::StateView`] that [`crate::apply_block`] reads.
pub struct StateAt<'a, S> {
    store: &'a S,
    version: Version,
}

impl<S: TreeReader> StateAt<'_, S> {
    /// The encoded value under `key` at this version, if any.
    pub fn get(&self, key: &StateKey) -> Result<Option<Vec<u8>>, AnchoringError> {
        self.store
            .get_value_option(self.version, KeyHash(key.hash().0))
            .map_err(storage)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::Commitment;
    use proptest::prelude::*;

    /// The three kinds of message, as blake3's own `derive_key` computes
    /// them: node messages by their 64 bytes of hashes under their own
    /// domains, anything else whole under the tree's.
    fn reference_hash(message: &[u8]) -> [u8; 32] {
        if message.len() == 80 && message.starts_with(b"JMT::IntrnalNode") {
            blake3::derive_key(STATE_TREE_INTERNAL_DOMAIN, &message[16..])
        } else if message.len() == 77 && message.starts_with(b"JMT::LeafNode") {
            blake3::derive_key(STATE_TREE_LEAF_DOMAIN, &message[13..])
        } else {
            blake3::derive_key(STATE_TREE_DOMAIN, message)
        }
    }

    fn streamed(message: &[u8], cuts: &[usize]) -> [u8; 32] {
        use jmt::SimpleHasher;
        let mut hasher = StateHasher::new();
        let mut start = 0;
        for &cut in cuts.iter().chain([&message.len()]) {
            let end = cut.clamp(start, message.len());
            hasher.update(&message[start..end]);
            start = end;
        }
        hasher.finalize()
    }

    /// jmt's tree hashes with the two node functions: a one-key tree's
    /// root is its leaf, and two keys on either side of the first bit make
    /// a root of their two leaves.
    #[test]
    fn jmt_roots_are_the_node_functions() {
        use jmt::{JellyfishMerkleTree, SimpleHasher};
        let store = MemoryTreeStore::default();
        let tree = JellyfishMerkleTree::<_, StateHasher>::new(&store);
        let (left, right) = (KeyHash([0x11; 32]), KeyHash([0x95; 32]));
        let leaf = |key: KeyHash, value: &[u8]| leaf_hash(&key.0, &StateHasher::hash(value));
        let (one, _) = tree
            .put_value_set(vec![(left, Some(b"first".to_vec()))], 0)
            .unwrap();
        assert_eq!(one.0, leaf(left, b"first"));
        let (two, _) = tree
            .put_value_set(
                vec![
                    (left, Some(b"first".to_vec())),
                    (right, Some(b"second".to_vec())),
                ],
                0,
            )
            .unwrap();
        assert_eq!(
            two.0,
            internal_hash(&leaf(left, b"first"), &leaf(right, b"second"))
        );
        assert_ne!(
            two.0,
            internal_hash(&leaf(right, b"second"), &leaf(left, b"first"))
        );
    }

    /// Fixed answers, from blake3's `derive_key` rather than this module's
    /// code, and the domains kept apart: the same 64 bytes hash three ways.
    #[test]
    fn node_hashes_are_their_hashes_under_their_domains() {
        use jmt::SimpleHasher;
        let (a, b) = ([1u8; 32], [2u8; 32]);
        let both = [a, b].concat();
        let internal = internal_hash(&a, &b);
        let leaf = leaf_hash(&a, &b);
        assert_eq!(
            internal,
            blake3::derive_key(STATE_TREE_INTERNAL_DOMAIN, &both)
        );
        assert_eq!(leaf, blake3::derive_key(STATE_TREE_LEAF_DOMAIN, &both));
        assert_eq!(
            StateHasher::hash(&both),
            blake3::derive_key(STATE_TREE_DOMAIN, &both)
        );
        assert_eq!(
            StateHasher::hash([b"JMT::IntrnalNode".as_slice(), &both].concat()),
            internal
        );
        assert_eq!(
            StateHasher::hash([b"JMT::LeafNode".as_slice(), &both].concat()),
            leaf
        );
        // A tag with one byte more or less, or another tag, is a value.
        for message in [
            [b"JMT::IntrnalNode".as_slice(), &both[1..]].concat(),
            [b"JMT::IntrnalNode".as_slice(), &both, &[0]].concat(),
            [b"JMT::LeafNode___".as_slice(), &both].concat(),
            [b"JMT::IntrnalNodE".as_slice(), &both].concat(),
            b"JMT::IntrnalNode".to_vec(),
            Vec::new(),
        ] {
            assert_eq!(
                StateHasher::hash(&message),
                blake3::derive_key(STATE_TREE_DOMAIN, &message),
                "{message:?}"
            );
        }
    }

    /// The root of a fixed state, written down: changing how keys are
    /// placed or nodes hashed changes it, and must come with a new
    /// [`crate::STATE_KEY_LAYOUT`], since data folders and bundles of the
    /// old layout no longer agree with the new code.
    #[test]
    fn a_fixed_state_has_the_root_of_its_layout() {
        let mut state = AuthenticatedState::new(MemoryTreeStore::default(), None);
        let changes: BTreeMap<StateKey, Vec<u8>> = [
            (StateKey::Issuer("issuer".into()), vec![1]),
            (StateKey::CredentialType("type".into()), vec![2]),
            (
                StateKey::Credential(Commitment(Hash([3; 32]))),
                vec![3; 100],
            ),
            (StateKey::Credential(Commitment(Hash([4; 32]))), vec![4]),
        ]
        .into_iter()
        .collect();
        let root = state.commit(0, &changes).unwrap();
        assert_eq!(
            (crate::STATE_KEY_LAYOUT, root.to_string()),
            (
                4,
                "90c928ad97f322a85bee230099fbabb0da4c84ef9980dbb6b2303db40ec6d696".to_string()
            )
        );
    }

    proptest! {
        /// The hash is the message's, however it is cut into updates: node
        /// messages, near misses and values of any length.
        #[test]
        fn the_hash_is_the_messages_whatever_the_updates(
            kind in 0u8..4,
            body in proptest::collection::vec(any::<u8>(), 0..300),
            cuts in proptest::collection::vec(0usize..320, 0..6),
        ) {
            let message = match kind {
                0 => [b"JMT::IntrnalNode".as_slice(), &body].concat(),
                1 => [b"JMT::LeafNode".as_slice(), &body].concat(),
                _ => body,
            };
            let mut message = message;
            if kind < 2 && message.len() > 80 {
                message.truncate(if kind == 0 { 80 } else { 77 });
            }
            let mut cuts = cuts;
            cuts.sort_unstable();
            prop_assert_eq!(streamed(&message, &cuts), reference_hash(&message));
        }
    }

    /// The catalog is one subtree under the root: an issuer's or a type's
    /// proof is as deep beside 3 000 credentials as beside ten, while a
    /// credential's proof deepens with their number.
    #[test]
    fn catalog_proofs_do_not_grow_with_the_credentials() {
        let catalog: Vec<StateKey> = (0..40)
            .map(|i| StateKey::Issuer(format!("issuer-{i}")))
            .chain((0..8).map(|i| StateKey::CredentialType(format!("type-{i}"))))
            .collect();
        let credential =
            |n: u32| StateKey::Credential(Commitment(Hash::domain("test", &n.to_be_bytes())));
        for key in &catalog {
            assert_eq!(key.hash().0[0] >> 4, 0, "{key:?}");
        }
        for n in 0..40 {
            let key = credential(n);
            assert!(key.hash().0[0] >> 4 >= 8, "{key:?}");
        }
        let mut state = AuthenticatedState::new(MemoryTreeStore::default(), None);
        let mut first: BTreeMap<StateKey, Vec<u8>> =
            catalog.iter().map(|k| (k.clone(), vec![1])).collect();
        first.extend((0..10).map(|n| (credential(n), vec![2])));
        state.commit(0, &first).unwrap();
        let more: BTreeMap<StateKey, Vec<u8>> =
            (10..3_000).map(|n| (credential(n), vec![3])).collect();
        state.commit(1, &more).unwrap();
        let depth = |key: &StateKey, version| {
            let (value, proof) = state.prove(key, version).unwrap();
            assert!(value.is_some());
            proof.depth
        };
        for key in &catalog {
            assert_eq!(depth(key, 0), depth(key, 1), "{key:?}");
        }
        let (few, many) = (depth(&credential(3), 0), depth(&credential(3), 1));
        assert!(
            many > few + 4,
            "{few} levels beside 10 credentials, {many} beside 3 000"
        );
    }

    /// Key hashes drawn from a few first bytes, so that keys share long
    /// prefixes and inserts split existing leaves deep in the tree.
    pub(crate) fn key_hash(prefix: u8, tail: u16) -> KeyHash {
        let mut key = [0u8; 32];
        key[0] = prefix;
        key[1] = prefix.rotate_left(4);
        key[30..].copy_from_slice(&tail.to_be_bytes());
        KeyHash(key)
    }

    /// From 1 to `versions - 1` versions of fewer than `writes` writes
    /// each, to keys of [`key_hash`] with first bytes below `prefixes`:
    /// many share long prefixes, and many are written again later.
    pub(crate) fn clustered_versions(
        prefixes: u8,
        writes: usize,
        versions: usize,
    ) -> impl Strategy<Value = Vec<Vec<(KeyHash, OwnedValue)>>> {
        let write = (0..prefixes, 0u16..64, any::<u8>())
            .prop_map(|(prefix, tail, v)| (key_hash(prefix, tail), vec![v, prefix]));
        proptest::collection::vec(proptest::collection::vec(write, 0..writes), 1..versions)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Deleting the nodes that each version up to a horizon made stale
        /// leaves exactly the nodes the kept versions reach: none of theirs
        /// is gone, none that only older versions used is left, and each
        /// kept version still proves every key. Each stale node is listed
        /// once, by the version that stopped using it.
        #[test]
        fn stale_nodes_are_exactly_what_only_older_versions_reach(
            versions in clustered_versions(4, 40, 9),
            keep in 1usize..4,
        ) {
            let store = MemoryTreeStore::default();
            let mut stale = Vec::new();
            let mut states: Vec<(jmt::RootHash, BTreeMap<KeyHash, OwnedValue>)> = Vec::new();
            let mut state = BTreeMap::new();
            for (version, writes) in versions.into_iter().enumerate() {
                let set: BTreeMap<KeyHash, OwnedValue> = writes.into_iter().collect();
                let (root, update) =
                    put_set(&store, set.clone().into_iter().collect(), version as Version)
                        .unwrap();
                store.write_node_batch(&update.nodes).unwrap();
                stale.push(update.stale);
                state.extend(set);
                states.push((root, state.clone()));
            }
            let oldest_kept = states.len().saturating_sub(keep);
            let stored_before = store.inner.read().unwrap().nodes.len();
            let mut deleted = 0;
            for key in stale[..=oldest_kept].iter().flatten() {
                let removed = store.inner.write().unwrap().nodes.remove(key);
                prop_assert!(removed.is_some(), "stale node {:?} listed twice or never stored", key);
                deleted += 1;
            }
            prop_assert_eq!(store.inner.read().unwrap().nodes.len(), stored_before - deleted);

            let mut reached = std::collections::BTreeSet::new();
            for version in oldest_kept..states.len() {
                let whole = version_nodes(&store, version as Version, &mut reached);
                prop_assert!(whole.is_ok(), "{:?}", whole);
            }
            let stored: std::collections::BTreeSet<NodeKey> =
                store.inner.read().unwrap().nodes.keys().cloned().collect();
            prop_assert_eq!(stored, reached);

            let reader = JellyfishMerkleTree::<_, StateHasher>::new(&store);
            for (version, (root, state)) in states.iter().enumerate().skip(oldest_kept) {
                for (k, v) in state {
                    let (found, proof) = reader.get_with_proof(*k, version as Version).unwrap();
                    prop_assert_eq!(found.as_ref(), Some(v));
                    prop_assert!(proof.verify(*root, *k, Some(v)).is_ok());
                }
            }
        }

        /// Version after version, including versions without changes and
        /// overwrites of existing keys, the batch insert and jmt's
        /// key-by-key insert build trees with the same roots, and every key
        /// reads back with a proof against that root.
        #[test]
        fn batch_insert_builds_the_same_tree(versions in clustered_versions(4, 40, 6)) {
            let batched = MemoryTreeStore::default();
            let single = MemoryTreeStore::default();
            let mut latest = BTreeMap::new();
            for (version, writes) in versions.into_iter().enumerate() {
                let version = version as Version;
                let set: BTreeMap<KeyHash, OwnedValue> = writes.into_iter().collect();
                let (root, batch) =
                    put_set(&batched, set.clone().into_iter().collect(), version).unwrap();
                batched.write_node_batch(&batch.nodes).unwrap();
                let tree = JellyfishMerkleTree::<_, StateHasher>::new(&single);
                let (expected, one_by_one) = tree
                    .put_value_set(set.iter().map(|(k, v)| (*k, Some(v.clone()))), version)
                    .unwrap();
                single.write_node_batch(&one_by_one.node_batch).unwrap();
                prop_assert_eq!(root, expected);
                latest.extend(set);
                let reader = JellyfishMerkleTree::<_, StateHasher>::new(&batched);
                for (k, v) in &latest {
                    let (found, proof) = reader.get_with_proof(*k, version).unwrap();
                    prop_assert_eq!(found.as_ref(), Some(v));
                    prop_assert!(proof.verify(root, *k, Some(v)).is_ok());
                }
            }
        }
    }
}
