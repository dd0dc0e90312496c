//! The authenticated state: a versioned sparse Merkle tree (the `jmt`
//! Jellyfish Merkle tree, hashed with blake3) over every [`StateKey`], one
//! version per height (the genesis state is version 0). Its root goes in
//! every block header; a [`StateProof`] shows a key's value, or its absence,
//! at any retained version.
//!
//! Storage sits behind [`TreeStore`]; [`MemoryTreeStore`] keeps it in
//! memory, the node keeps it in RocksDB. A version is written by
//! an insert of this crate's own (`state_tree`), on node types of its own; jmt itself
//! is the reference the tests hold the tree, its roots and its proofs to.

use std::collections::BTreeMap;
use std::sync::{PoisonError, RwLock};

use cairn_genesis::{Domain, Hash};
use jmt::storage::{LeafNode, Node, NodeBatch, NodeKey, TreeReader, TreeWriter};
use jmt::{KeyHash, OwnedValue, Version};

pub use crate::state_tree::{Child, InternalNode, TreeNode, TreeStore, TreeUpdate, value_hash};
use crate::state_tree::{insert, root_key};
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

/// The tree's nodes and values in memory.
#[derive(Default)]
pub struct MemoryTreeStore {
    inner: RwLock<MemoryTree>,
}

#[derive(Default)]
struct MemoryTree {
    nodes: BTreeMap<NodeKey, TreeNode>,
    values: BTreeMap<(KeyHash, Version), Option<OwnedValue>>,
}

impl MemoryTreeStore {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, MemoryTree> {
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_lock(&self) -> std::sync::RwLockWriteGuard<'_, MemoryTree> {
        self.inner.write().unwrap_or_else(PoisonError::into_inner)
    }
}

impl TreeStore for MemoryTreeStore {
    fn node(&self, key: &NodeKey) -> Result<Option<TreeNode>, AnchoringError> {
        Ok(self.read().nodes.get(key).cloned())
    }

    fn value(
        &self,
        version: Version,
        key_hash: &KeyHash,
    ) -> Result<Option<OwnedValue>, AnchoringError> {
        Ok(self
            .read()
            .values
            .range((*key_hash, 0)..=(*key_hash, version))
            .next_back()
            .and_then(|(_, v)| v.clone()))
    }

    fn write(&self, update: &TreeUpdate) -> Result<(), AnchoringError> {
        let mut inner = self.write_lock();
        for (key, node) in &update.nodes {
            inner.nodes.insert(key.clone(), node.clone());
        }
        for (key_hash, value) in &update.values {
            inner
                .values
                .insert((*key_hash, update.version), Some(value.clone()));
        }
        Ok(())
    }
}

/// jmt reads the memory store too: the tests hold the tree to jmt's.
impl TreeReader for MemoryTreeStore {
    fn get_node_option(&self, node_key: &NodeKey) -> anyhow::Result<Option<Node>> {
        let node = self.read().nodes.get(node_key).cloned();
        Ok(node.map(|n| n.to_jmt()).transpose()?)
    }

    fn get_value_option(
        &self,
        max_version: Version,
        key_hash: KeyHash,
    ) -> anyhow::Result<Option<OwnedValue>> {
        Ok(self.value(max_version, &key_hash)?)
    }

    fn get_rightmost_leaf(&self) -> anyhow::Result<Option<(NodeKey, LeafNode)>> {
        Err(anyhow::anyhow!(
            "restoring a state tree from chunks is not supported by the memory store"
        ))
    }
}

/// ... and writes it: the tests build trees with jmt's own insert too.
impl TreeWriter for MemoryTreeStore {
    fn write_node_batch(&self, batch: &NodeBatch) -> anyhow::Result<()> {
        let mut inner = self.write_lock();
        for (key, node) in batch.nodes() {
            inner.nodes.insert(key.clone(), TreeNode::from_jmt(node)?);
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

impl<S: TreeStore + Sync> AuthenticatedState<S> {
    /// A state over `store`, whose latest written version is `latest`.
    pub fn new(store: S, latest: Option<Version>) -> Self {
        AuthenticatedState { store, latest }
    }

    /// The latest version written.
    pub fn latest(&self) -> Option<Version> {
        self.latest
    }

    /// Computes the root of `version` = the latest version plus `changes`,
    /// without writing anything: the caller stores the returned update
    /// (after its block) and then calls
    /// [`AuthenticatedState::mark_written`].
    /// A proposer uses it to put the root in its header; a validator to
    /// re-execute a proposal it may never commit.
    pub fn prepare(
        &self,
        version: Version,
        changes: &BTreeMap<StateKey, Vec<u8>>,
    ) -> Result<(Hash, TreeUpdate), AnchoringError> {
        let next = self.latest.map_or(Some(0), |latest| latest.checked_add(1));
        if next != Some(version) {
            return Err(AnchoringError::StateVersion {
                version,
                next: next.unwrap_or(u64::MAX),
            });
        }
        let set = changes
            .iter()
            .map(|(k, v)| (KeyHash(k.hash().0), v.clone()))
            .collect();
        let (root, update) = insert(&self.store, set, version)?;
        Ok((Hash(root), update))
    }

    /// Records that `version`'s update from [`AuthenticatedState::prepare`] is stored.
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
        self.store.write(&update)?;
        self.mark_written(version);
        Ok(root)
    }

    /// The tree's storage.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The root at `version`.
    pub fn root(&self, version: Version) -> Result<Hash, AnchoringError> {
        let key = root_key(version);
        match self.store.node(&key)? {
            Some(root) => Ok(Hash(root.hash())),
            None => Err(AnchoringError::Storage(format!(
                "no state tree root at version {version}"
            ))),
        }
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
pub fn version_nodes<R: TreeStore>(
    store: &R,
    version: Version,
    into: &mut std::collections::BTreeSet<NodeKey>,
) -> Result<(), AnchoringError> {
    let mut pending = vec![NodeKey::new(version, std::iter::empty().collect())];
    while let Some(key) = pending.pop() {
        if into.contains(&key) {
            continue;
        }
        let node = store.node(&key)?.ok_or_else(|| {
            AnchoringError::Storage(format!("version {version} misses the node {key:?}"))
        })?;
        if let TreeNode::Internal(internal) = node {
            for (nibble, child, _) in internal.children() {
                let path = key.nibble_path().nibbles().chain([nibble.into()]).collect();
                pending.push(NodeKey::new(child.version, path));
            }
        }
        into.insert(key);
    }
    Ok(())
}

/// The state's values at one version. With the transactions its chain
/// applied (which the blocks hold, not the state), a node makes of it the
/// [`crate::StateView`] that [`crate::apply_block`] reads.
pub struct StateAt<'a, S> {
    store: &'a S,
    version: Version,
}

impl<S: TreeStore> StateAt<'_, S> {
    /// The encoded value under `key` at this version, if any.
    pub fn get(&self, key: &StateKey) -> Result<Option<Vec<u8>>, AnchoringError> {
        self.store.value(self.version, &KeyHash(key.hash().0))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::Commitment;
    use crate::state_tree::{KEYS_FOR_THREADS, insert_on};
    use jmt::JellyfishMerkleTree;
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
        use jmt::SimpleHasher;
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
            let mut states: Vec<([u8; 32], BTreeMap<KeyHash, OwnedValue>)> = Vec::new();
            let mut state = BTreeMap::new();
            for (version, writes) in versions.into_iter().enumerate() {
                let set: BTreeMap<KeyHash, OwnedValue> = writes.into_iter().collect();
                let (root, update) =
                    insert(&store, set.clone().into_iter().collect(), version as Version)
                        .unwrap();
                store.write(&update).unwrap();
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
                    prop_assert!(proof.verify(jmt::RootHash(*root), *k, Some(v)).is_ok());
                }
            }
        }

        /// The insert is jmt's (see [`writes_jmts_tree`]), on keys that
        /// cluster and split leaves deep in the tree, and on keys spread
        /// over every nibble.
        #[test]
        fn the_insert_writes_jmts_tree(versions in mixed_versions()) {
            writes_jmts_tree(versions)?;
        }
    }

    /// Version after version, including versions without changes,
    /// overwrites of existing keys and keys that split leaves deep in
    /// the tree, the insert writes exactly what jmt's batch insert
    /// writes, its nodes in key order: the same root, nodes, values and
    /// stale nodes (jmt's, plus
    /// the previous root, which it leaves out when a version changes
    /// nothing). The root is also that of jmt's key-by-key insert, and
    /// every key reads back through jmt with a proof against it.
    fn writes_jmts_tree(versions: Vec<Vec<(KeyHash, OwnedValue)>>) -> Result<(), TestCaseError> {
        let ours = MemoryTreeStore::default();
        let theirs = MemoryTreeStore::default();
        let single = MemoryTreeStore::default();
        let mut latest = BTreeMap::new();
        for (version, writes) in versions.into_iter().enumerate() {
            let version = version as Version;
            let set: BTreeMap<KeyHash, OwnedValue> = writes.into_iter().collect();
            let (root, update) = insert(&ours, set.clone().into_iter().collect(), version).unwrap();
            ours.write(&update).unwrap();

            let tree = JellyfishMerkleTree::<_, StateHasher>::new(&theirs);
            let (roots, batch) = if set.is_empty() {
                tree.put_value_sets([std::iter::empty()], version).unwrap()
            } else {
                tree.batch_put_value_sets(vec![set.clone().into_iter().collect()], None, version)
                    .unwrap()
            };
            theirs.write_node_batch(&batch.node_batch).unwrap();
            prop_assert_eq!(root, roots[0].0);
            prop_assert!(
                update.nodes.windows(2).all(|pair| pair[0].0 < pair[1].0),
                "nodes not in key order, or a node written twice"
            );
            let nodes: BTreeMap<NodeKey, TreeNode> = update.nodes.iter().cloned().collect();
            let jmt_nodes: BTreeMap<NodeKey, TreeNode> = batch
                .node_batch
                .nodes()
                .iter()
                .map(|(k, n)| (k.clone(), TreeNode::from_jmt(n).unwrap()))
                .collect();
            prop_assert_eq!(&nodes, &jmt_nodes);
            for (key, node) in &update.nodes {
                prop_assert_eq!(&node.to_jmt().unwrap(), &batch.node_batch.nodes()[key]);
            }
            let values: Vec<((Version, KeyHash), Option<OwnedValue>)> = update
                .values
                .iter()
                .map(|(k, v)| ((version, *k), Some(v.clone())))
                .collect();
            let jmt_values: Vec<_> = batch.node_batch.values().clone().into_iter().collect();
            prop_assert_eq!(values, jmt_values);
            let stale: std::collections::BTreeSet<NodeKey> = update.stale.iter().cloned().collect();
            prop_assert_eq!(stale.len(), update.stale.len(), "a node made stale twice");
            let mut jmt_stale: std::collections::BTreeSet<NodeKey> = batch
                .stale_node_index_batch
                .iter()
                .map(|index| index.node_key.clone())
                .collect();
            if let Some(previous) = version.checked_sub(1) {
                jmt_stale.insert(NodeKey::new(previous, std::iter::empty().collect()));
            }
            prop_assert_eq!(stale, jmt_stale);

            let key_by_key = JellyfishMerkleTree::<_, StateHasher>::new(&single);
            let (expected, one_by_one) = key_by_key
                .put_value_set(set.iter().map(|(k, v)| (*k, Some(v.clone()))), version)
                .unwrap();
            single.write_node_batch(&one_by_one.node_batch).unwrap();
            prop_assert_eq!(root, expected.0);
            latest.extend(set);
            let reader = JellyfishMerkleTree::<_, StateHasher>::new(&ours);
            for (k, v) in &latest {
                let (found, proof) = reader.get_with_proof(*k, version).unwrap();
                prop_assert_eq!(found.as_ref(), Some(v));
                prop_assert!(proof.verify(jmt::RootHash(root), *k, Some(v)).is_ok());
            }
        }
        Ok(())
    }

    /// [`insert_on`] on one thread and on `threads` (`None`: [`insert`],
    /// which takes the machine's cores for large sets), version after
    /// version of `versions` (each version's keys once each): the same
    /// root, and the same nodes, values and stale nodes in the same order.
    /// Returns the versions written on top of an internal root: those
    /// whose insert shares the root's children out when given threads.
    fn threads_write_what_one_writes(
        versions: Vec<Vec<(KeyHash, OwnedValue)>>,
        threads: Option<usize>,
    ) -> Result<usize, TestCaseError> {
        let one = MemoryTreeStore::default();
        let many = MemoryTreeStore::default();
        let mut shared_out = 0;
        for (version, writes) in versions.into_iter().enumerate() {
            let version = version as Version;
            let set: Vec<(KeyHash, OwnedValue)> = writes
                .into_iter()
                .collect::<BTreeMap<_, _>>()
                .into_iter()
                .collect();
            if let Some(previous) = version.checked_sub(1) {
                let root = many.node(&root_key(previous));
                if matches!(root, Ok(Some(TreeNode::Internal(_)))) && !set.is_empty() {
                    shared_out += 1;
                }
            }
            let (root, update) = insert_on(&one, set.clone(), version, 1).unwrap();
            let (root_threads, update_threads) = match threads {
                Some(threads) => insert_on(&many, set, version, threads),
                None => insert(&many, set, version),
            }
            .unwrap();
            prop_assert_eq!(root, root_threads);
            prop_assert_eq!(&update.nodes, &update_threads.nodes);
            prop_assert_eq!(&update.values, &update_threads.values);
            prop_assert_eq!(&update.stale, &update_threads.stale);
            one.write(&update).unwrap();
            many.write(&update_threads).unwrap();
        }
        Ok(shared_out)
    }

    proptest! {
        /// On any number of threads, the insert writes what it writes on
        /// one (which is jmt's tree: [`writes_jmts_tree`]).
        #[test]
        fn the_insert_on_threads_writes_what_one_thread_writes(
            versions in mixed_versions(),
            threads in 2usize..18,
        ) {
            threads_write_what_one_writes(versions, Some(threads))?;
        }
    }

    /// Blocks of thousands of keys spread over the whole tree, with
    /// overwrites, on as many threads as [`insert`] takes for them on this
    /// machine (large enough sets for it to take more than one where
    /// there are cores), and on two to sixteen.
    #[test]
    fn blocks_of_thousands_of_keys_share_out_alike() {
        let keys = |version: u8, n: u32| -> Vec<(KeyHash, OwnedValue)> {
            (0..n)
                .map(|i| {
                    let k = Hash::domain("threads test", &i.to_be_bytes());
                    (KeyHash(k.0), vec![version, i as u8])
                })
                .collect()
        };
        let versions = vec![keys(0, 3_000), keys(1, 5_000), keys(2, 2_500), Vec::new()];
        assert!(versions[1..3].iter().all(|v| v.len() >= KEYS_FOR_THREADS));
        for threads in [None, Some(2), Some(3), Some(4), Some(16)] {
            let shared_out = threads_write_what_one_writes(versions.clone(), threads).unwrap();
            assert_eq!(shared_out, 2, "{threads:?} threads");
        }
    }

    /// A store that panics when asked for a node under the root's child
    /// `nibble`: a bug below the insert.
    struct PanicsUnder {
        inner: MemoryTreeStore,
        nibble: u8,
    }

    impl TreeStore for PanicsUnder {
        fn node(&self, key: &NodeKey) -> Result<Option<TreeNode>, AnchoringError> {
            let path = key.nibble_path();
            if path.num_nibbles() > 0 && u8::from(path.get_nibble(0)) == self.nibble {
                panic!("a node under child {} asked for", self.nibble);
            }
            self.inner.node(key)
        }

        fn value(
            &self,
            version: Version,
            key_hash: &KeyHash,
        ) -> Result<Option<OwnedValue>, AnchoringError> {
            self.inner.value(version, key_hash)
        }

        fn write(&self, update: &TreeUpdate) -> Result<(), AnchoringError> {
            self.inner.write(update)
        }
    }

    /// A panic below the insert carries on to its caller whichever thread
    /// meets it (the calling one takes the root's first children, another
    /// the last), as it does on one thread: it does not become an error.
    #[test]
    fn a_panic_on_any_thread_of_the_insert_reaches_its_caller() {
        let keys = |version: u8| -> Vec<(KeyHash, OwnedValue)> {
            (0..3_000u32)
                .map(|i| {
                    let k = Hash::domain("panic test", &i.to_be_bytes());
                    (KeyHash(k.0), vec![version])
                })
                .collect()
        };
        for nibble in [0, 15] {
            for threads in [1, 2] {
                let store = PanicsUnder {
                    inner: MemoryTreeStore::default(),
                    nibble,
                };
                let (_, first) = insert_on(&store.inner, keys(0), 0, 1).unwrap();
                store.write(&first).unwrap();
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    insert_on(&store, keys(1), 1, threads)
                }));
                let panic = outcome.expect_err("the insert returned instead of panicking");
                let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
                assert_eq!(
                    message,
                    format!("a node under child {nibble} asked for"),
                    "{threads} threads"
                );
            }
        }
    }

    /// Versions of [`clustered_versions`]' keys and of keys drawn from
    /// all 256 bits, mixed: the first share long prefixes, the others
    /// branch at every level and fill the root's sixteen slots.
    fn mixed_versions() -> impl Strategy<Value = Vec<Vec<(KeyHash, OwnedValue)>>> {
        let clustered = (0u8..4, 0u16..64, any::<u8>())
            .prop_map(|(prefix, tail, v)| (key_hash(prefix, tail), vec![v, prefix]));
        let spread = (any::<[u8; 32]>(), any::<u8>()).prop_map(|(k, v)| (KeyHash(k), vec![v]));
        let write = prop_oneof![clustered, spread];
        proptest::collection::vec(proptest::collection::vec(write, 0..40), 1..6)
    }

    /// The shapes a random run may miss, each against jmt: an empty
    /// version 0, a root that is a single leaf (overwritten, joined by a
    /// key, copied by an empty version), keys that differ only in their
    /// last nibble, and keys landing on either side of an existing leaf's
    /// slot.
    #[test]
    fn rare_shapes_write_jmts_tree() {
        let key = |bytes: &[(usize, u8)]| {
            let mut k = [0x55u8; 32];
            for &(i, b) in bytes {
                k[i] = b;
            }
            KeyHash(k)
        };
        let a = key(&[]);
        let last_nibble = key(&[(31, 0x56)]);
        let below = key(&[(0, 0x15)]);
        let above = key(&[(0, 0x95)]);
        let beside = key(&[(1, 0x05)]);
        let cases: Vec<Vec<Vec<(KeyHash, OwnedValue)>>> = vec![
            vec![vec![], vec![(a, vec![1])]],
            vec![vec![(a, vec![1])], vec![(a, vec![2])]],
            vec![vec![(a, vec![1])], vec![(below, vec![2])]],
            vec![vec![(a, vec![1])], vec![], vec![(above, vec![2])]],
            vec![
                vec![(a, vec![1])],
                vec![(last_nibble, vec![2])],
                vec![(a, vec![3])],
            ],
            vec![
                vec![(a, vec![1]), (above, vec![1])],
                vec![(beside, vec![2]), (below, vec![2])],
                vec![(key(&[(1, 0x65)]), vec![3])],
            ],
        ];
        for versions in cases {
            writes_jmts_tree(versions.clone()).unwrap_or_else(|e| panic!("{versions:?}: {e}"));
        }
    }

    /// A key hash of `first`, then `rest` in every other byte.
    fn key_from(first: u8, rest: u8) -> [u8; 32] {
        let mut k = [rest; 32];
        k[0] = first;
        k
    }

    /// A store holding version 0 as written by hand: `root`, and `leaf` in
    /// its slot 1.
    fn root_and_leaf_in_slot_1(root: InternalNode, leaf: TreeNode) -> MemoryTreeStore {
        let path = |nibbles: &[u8]| nibbles.iter().map(|&n| n.into()).collect();
        let store = MemoryTreeStore::default();
        let update = TreeUpdate {
            version: 0,
            nodes: vec![
                (
                    NodeKey::new(0, path(&[])),
                    TreeNode::Internal(Box::new(root)),
                ),
                (NodeKey::new(0, path(&[1])), leaf),
            ],
            ..TreeUpdate::default()
        };
        store.write(&update).unwrap();
        store
    }

    /// Leaf counts read from storage that an insert would carry past a
    /// u64 are a storage error, not a wrapped count or a panic.
    #[test]
    fn leaf_counts_that_overflow_are_refused() {
        let key = |first| key_from(first, 0x33);
        let leaf = TreeNode::Leaf {
            key_hash: key(0x10),
            value_hash: [9; 32],
        };
        let mut root = InternalNode::default();
        let huge = Child {
            hash: [1; 32],
            version: 0,
            leaf_count: u64::MAX - 1,
        };
        root.set(0, huge, false).unwrap();
        let lone = Child {
            hash: leaf.hash(),
            version: 0,
            leaf_count: 1,
        };
        root.set(1, lone, true).unwrap();
        // Sixteen slots: a seventeenth is refused, not folded onto another.
        assert!(matches!(
            root.set(16, lone, true),
            Err(AnchoringError::Storage(_))
        ));
        assert!(root.child(16).is_none());
        assert_eq!(root.bitmaps(), (0b11, 0b10));
        assert_eq!(root.leaf_count().unwrap(), u64::MAX);
        let store = root_and_leaf_in_slot_1(root, leaf);
        let beside = (KeyHash(key(0x1f)), vec![1]);
        let refused = insert(&store, vec![beside], 1);
        assert!(
            matches!(&refused, Err(AnchoringError::Storage(m)) if m.contains("overflow")),
            "{refused:?}"
        );
    }

    /// A leaf read from storage whose key is not under its own path (its
    /// parent lists it in slot 1, its key starts with nibble 2) is a
    /// storage error, not moved to where the insert would put it.
    #[test]
    fn a_leaf_off_its_path_is_refused() {
        let key = |first| key_from(first, 0x44);
        let leaf = TreeNode::Leaf {
            key_hash: key(0x20),
            value_hash: [9; 32],
        };
        let listed = Child {
            hash: leaf.hash(),
            version: 0,
            leaf_count: 1,
        };
        let mut root = InternalNode::default();
        root.set(1, listed, true).unwrap();
        root.set(3, listed, true).unwrap();
        let store = root_and_leaf_in_slot_1(root, leaf);
        let refused = insert(&store, vec![(KeyHash(key(0x1f)), vec![1])], 1);
        assert!(
            matches!(&refused, Err(AnchoringError::Storage(m)) if m.contains("not the child its parent lists")),
            "{refused:?}"
        );
    }

    /// A version that does not follow the latest is refused, and so is a
    /// set that writes one key hash twice; neither writes anything.
    #[test]
    fn out_of_order_versions_and_repeated_keys_are_refused() {
        let store = MemoryTreeStore::default();
        let one = |n: u8| (key_hash(n, 0), vec![n]);
        assert!(matches!(
            insert(&store, vec![one(1)], 1),
            Err(AnchoringError::Storage(_))
        ));
        let (_, update) = insert(&store, vec![one(1)], 0).unwrap();
        store.write(&update).unwrap();
        let before = store.read().nodes.len();
        let twice = insert(&store, vec![one(2), one(2)], 1);
        assert!(matches!(twice, Err(AnchoringError::Storage(m)) if m.contains("twice")));
        let mut state = AuthenticatedState::new(store, Some(0));
        let skipped = state.commit(2, &BTreeMap::new());
        assert!(matches!(
            skipped,
            Err(AnchoringError::StateVersion {
                version: 2,
                next: 1
            })
        ));
        assert_eq!(state.store().read().nodes.len(), before);
        assert_eq!(state.latest(), Some(0));
    }
}
