//! Compact proofs of the state tree: one 32-byte hash per non-empty
//! sibling, a bit per empty one, and no leaf at all when the proof shows
//! the key's own value (the verifier knows the key and the value).
//!
//! The tree is jmt's, hashed by [`StateHasher`]: a leaf is
//! [`leaf_hash`]`(key hash, value hash)`, an inner node
//! [`internal_hash`]`(left, right)`, an empty subtree jmt's placeholder
//! constant. jmt's
//! own proof carries every sibling as a whole node (64 bytes or more, and a
//! hash to recompute); [`StateProof::from_jmt`] reduces it to the hashes,
//! and [`StateProof::verify`] folds them up to the root exactly as jmt's
//! verifier does, with half the bytes and half the hashing.
//! [`StateProof::build`] makes the same proof by walking the tree itself,
//! taking each sibling's hash from its parent instead of reading the
//! sibling node from storage as jmt does.

use borsh::{BorshDeserialize, BorshSerialize};
use cairn_genesis::Hash;
use jmt::proof::SparseMerkleProof;
use jmt::storage::NodeKey;
use jmt::{KeyHash, OwnedValue, SimpleHasher, Version};

use crate::state::{StateHasher, internal_hash, leaf_hash};
use crate::state_tree::{PLACEHOLDER, TreeNode, TreeStore, nibble, root_key};
use crate::{AnchoringError, StateKey};
/// Deepest path in a tree of 256-bit key hashes.
const MAX_DEPTH: usize = 256;

/// What the key's path ends at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum ProofLeaf {
    /// An empty subtree: the key is absent.
    Empty,
    /// The key's own leaf, holding the value being proven.
    Key,
    /// Another key's leaf, alone in the subtree where the key would be:
    /// the key is absent.
    Other {
        /// That key's hash.
        key_hash: Hash,
        /// Its value's hash.
        value_hash: Hash,
    },
}

/// A proof of a key's value, or of its absence, under a state root.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct StateProof {
    /// What the key's path ends at.
    pub leaf: ProofLeaf,
    /// Levels from that leaf up to the root (at most 256).
    pub depth: u16,
    /// Bit `i % 8` of byte `i / 8` set: the sibling at level `i` (0 is the
    /// lowest) is an empty subtree. `depth.div_ceil(8)` bytes.
    pub empty: Vec<u8>,
    /// The other siblings' hashes, lowest first.
    pub siblings: Vec<Hash>,
}

/// jmt's proof in its borsh layout (leaf, then siblings as whole nodes),
/// read back to take the hashes out: jmt keeps the fields private.
#[derive(BorshDeserialize)]
struct JmtProof {
    leaf: Option<JmtLeaf>,
    siblings: Vec<JmtNode>,
}

#[derive(BorshDeserialize)]
struct JmtLeaf {
    key_hash: [u8; 32],
    value_hash: [u8; 32],
}

#[derive(BorshDeserialize)]
enum JmtNode {
    Null,
    Internal { left: [u8; 32], right: [u8; 32] },
    Leaf(JmtLeaf),
}

/// Bit `index` of a key hash, most significant bit of byte 0 first.
fn key_bit(key_hash: &[u8; 32], index: usize) -> bool {
    key_hash[index / 8] & (0x80 >> (index % 8)) != 0
}

fn common_prefix_bits(a: &[u8; 32], b: &[u8; 32]) -> usize {
    (0..MAX_DEPTH)
        .find(|&i| key_bit(a, i) != key_bit(b, i))
        .unwrap_or(MAX_DEPTH)
}

/// Nibble `index` of a key hash ([`nibble`]); `None` past the last.
fn nibble_at(key_hash: &[u8; 32], index: usize) -> Option<u8> {
    (index < MAX_DEPTH / 4).then(|| nibble(key_hash, index))
}

fn invalid(reason: impl Into<String>) -> AnchoringError {
    AnchoringError::StateProof {
        reason: reason.into(),
    }
}

impl StateProof {
    /// The value of the key hashed to `key_hash` at `version`, with its
    /// proof, read from the tree in `reader`. The same proof as
    /// [`StateProof::from_jmt`] of jmt's `get_with_proof` (a property test
    /// holds them equal), for about half the work: jmt reads each path
    /// node's neighbour from storage to carry it whole in its proof, and
    /// rehashes it, where the hash this proof needs is already in the path
    /// node's list of children.
    pub fn build<R: TreeStore + ?Sized>(
        reader: &R,
        key_hash: [u8; 32],
        version: Version,
    ) -> Result<(Option<OwnedValue>, StateProof), AnchoringError> {
        // Top-down; `None` is an empty subtree.
        let mut path: Vec<Option<[u8; 32]>> = Vec::new();
        let mut node_key = root_key(version);
        for depth in 0..=MAX_DEPTH / 4 {
            let node = reader.node(&node_key)?;
            let leaf = match node {
                None if depth == 0 => {
                    return Err(AnchoringError::Storage(format!(
                        "no state tree root at version {version}"
                    )));
                }
                None => {
                    return Err(AnchoringError::Storage(format!(
                        "the state tree node at depth {depth} of version {version} is missing"
                    )));
                }
                Some(TreeNode::Null) if depth == 0 => ProofLeaf::Empty,
                Some(TreeNode::Null) => {
                    return Err(AnchoringError::Storage(format!(
                        "an empty node below the root at depth {depth} of version {version}"
                    )));
                }
                Some(TreeNode::Leaf {
                    key_hash: other,
                    value_hash,
                }) => {
                    if other == key_hash {
                        ProofLeaf::Key
                    } else {
                        ProofLeaf::Other {
                            key_hash: Hash(other),
                            value_hash: Hash(value_hash),
                        }
                    }
                }
                Some(TreeNode::Internal(node)) => {
                    // An internal node past the key's last nibble: the
                    // tree is deeper than a key hash (below).
                    let Some(nibble) = nibble_at(&key_hash, depth) else {
                        break;
                    };
                    match node.descend(nibble, &mut path) {
                        Some((slot, version)) => {
                            // The key's nibbles so far, then the child's
                            // slot: the key's own, or a lone leaf's beside it.
                            let nibbles = (0..depth)
                                .filter_map(|d| nibble_at(&key_hash, d))
                                .chain([slot])
                                .map(Into::into);
                            node_key = NodeKey::new(version, nibbles.collect());
                            continue;
                        }
                        None => ProofLeaf::Empty,
                    }
                }
            };
            let value = match leaf {
                ProofLeaf::Key => {
                    Some(reader.value(version, &KeyHash(key_hash))?.ok_or_else(|| {
                        AnchoringError::Storage(format!(
                            "the state tree has a leaf for {} but no value at version {version}",
                            Hash(key_hash)
                        ))
                    })?)
                }
                _ => None,
            };
            // Lowest level first.
            path.reverse();
            return Ok((value, StateProof::from_levels(leaf, &path)?));
        }
        Err(AnchoringError::Storage(format!(
            "the state tree of version {version} is deeper than a key hash"
        )))
    }

    /// The compact form of jmt's proof for the key hashed to `key_hash`.
    pub fn from_jmt(
        proof: &SparseMerkleProof<StateHasher>,
        key_hash: [u8; 32],
    ) -> Result<StateProof, AnchoringError> {
        let bytes = borsh::to_vec(proof).map_err(|e| invalid(e.to_string()))?;
        let wire: JmtProof = borsh::from_slice(&bytes).map_err(|e| invalid(e.to_string()))?;
        let leaf = match wire.leaf {
            None => ProofLeaf::Empty,
            Some(l) if l.key_hash == key_hash => ProofLeaf::Key,
            Some(l) => ProofLeaf::Other {
                key_hash: Hash(l.key_hash),
                value_hash: Hash(l.value_hash),
            },
        };
        let levels: Vec<Option<[u8; 32]>> = wire
            .siblings
            .iter()
            .map(|node| match node {
                JmtNode::Null => None,
                JmtNode::Internal { left, right } => Some(internal_hash(left, right)),
                JmtNode::Leaf(l) => Some(leaf_hash(&l.key_hash, &l.value_hash)),
            })
            .collect();
        StateProof::from_levels(leaf, &levels)
    }

    /// The proof of a path ending at `leaf`, its siblings' hashes lowest
    /// first (`None`: an empty subtree).
    fn from_levels(
        leaf: ProofLeaf,
        levels: &[Option<[u8; 32]>],
    ) -> Result<StateProof, AnchoringError> {
        let depth = levels.len();
        if depth > MAX_DEPTH {
            return Err(invalid(format!("{depth} levels, more than {MAX_DEPTH}")));
        }
        let mut empty = vec![0u8; depth.div_ceil(8)];
        let mut siblings = Vec::with_capacity(depth);
        for (level, sibling) in levels.iter().enumerate() {
            match sibling {
                None => empty[level / 8] |= 1 << (level % 8),
                Some(hash) => siblings.push(Hash(*hash)),
            }
        }
        Ok(StateProof {
            leaf,
            depth: depth as u16,
            empty,
            siblings,
        })
    }

    /// Checks that `key` holds `value` (`None`: is absent) under `root`.
    pub fn verify(
        &self,
        root: Hash,
        key: &StateKey,
        value: Option<&[u8]>,
    ) -> Result<(), AnchoringError> {
        self.verify_hashed(root, key.hash().0, value)
    }

    /// [`StateProof::verify`] for a key already hashed.
    fn verify_hashed(
        &self,
        root: Hash,
        key_hash: [u8; 32],
        value: Option<&[u8]>,
    ) -> Result<(), AnchoringError> {
        let depth = usize::from(self.depth);
        self.check_shape(depth)?;
        let mut current = match (&self.leaf, value) {
            (ProofLeaf::Key, Some(value)) => leaf_hash(&key_hash, &StateHasher::hash(value)),
            (ProofLeaf::Empty, None) => PLACEHOLDER,
            (
                ProofLeaf::Other {
                    key_hash: other,
                    value_hash,
                },
                None,
            ) => {
                if other.0 == key_hash {
                    return Err(invalid("the proof shows the key present, not absent"));
                }
                if common_prefix_bits(&other.0, &key_hash) < depth {
                    return Err(invalid(
                        "the other key's leaf is not where the key would be",
                    ));
                }
                leaf_hash(&other.0, &value_hash.0)
            }
            (ProofLeaf::Key, None) => {
                return Err(invalid("the proof shows the key present, not absent"));
            }
            (ProofLeaf::Empty | ProofLeaf::Other { .. }, Some(_)) => {
                return Err(invalid("the proof shows the key absent"));
            }
        };
        let mut siblings = self.siblings.iter();
        for level in 0..depth {
            let sibling = if self.empty[level / 8] & (1 << (level % 8)) != 0 {
                PLACEHOLDER
            } else {
                siblings.next().map_or(PLACEHOLDER, |h| h.0)
            };
            current = if key_bit(&key_hash, depth - 1 - level) {
                internal_hash(&sibling, &current)
            } else {
                internal_hash(&current, &sibling)
            };
        }
        if current != root.0 {
            return Err(invalid(format!(
                "the proof leads to root {}, not {root}",
                Hash(current)
            )));
        }
        Ok(())
    }

    /// Depth, bitmap and sibling count agree.
    fn check_shape(&self, depth: usize) -> Result<(), AnchoringError> {
        if depth > MAX_DEPTH {
            return Err(invalid(format!("{depth} levels, more than {MAX_DEPTH}")));
        }
        if self.empty.len() != depth.div_ceil(8) {
            return Err(invalid(format!(
                "{} bytes of empty-sibling bits for {depth} levels",
                self.empty.len()
            )));
        }
        let empties = (0..depth)
            .filter(|level| self.empty[level / 8] & (1 << (level % 8)) != 0)
            .count();
        let set_bits: u32 = self.empty.iter().map(|b| b.count_ones()).sum();
        if set_bits as usize != empties {
            return Err(invalid("empty-sibling bits past the proof's depth"));
        }
        if self.siblings.len() != depth - empties {
            return Err(invalid(format!(
                "{} sibling hashes for {} non-empty levels",
                self.siblings.len(),
                depth - empties
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryTreeStore;
    use crate::state::tests::{clustered_versions, key_hash as clustered};
    use jmt::{JellyfishMerkleTree, KeyHash};
    use proptest::prelude::*;

    fn key(n: u32) -> [u8; 32] {
        *blake3::hash(&n.to_le_bytes()).as_bytes()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// The compact proof accepts exactly what jmt's own proof accepts:
        /// present keys with their value, absent keys, and nothing else.
        #[test]
        fn compact_proofs_agree_with_jmt(
            present in 1u32..400,
            probes in proptest::collection::vec(0u32..800, 1..12),
        ) {
            let store = MemoryTreeStore::default();
            let tree = JellyfishMerkleTree::<_, StateHasher>::new(&store);
            let values: Vec<(KeyHash, Option<Vec<u8>>)> = (0..present)
                .map(|n| (KeyHash(key(n)), Some(n.to_be_bytes().to_vec())))
                .collect();
            let (root, batch) = tree.put_value_set(values, 0).unwrap();
            jmt::storage::TreeWriter::write_node_batch(&store, &batch.node_batch).unwrap();
            let root = Hash(root.0);
            for probe in probes {
                let k = key(probe);
                let (value, jmt_proof) = tree.get_with_proof(KeyHash(k), 0).unwrap();
                let proof = StateProof::from_jmt(&jmt_proof, k).unwrap();
                prop_assert_eq!(value.is_some(), probe < present);
                // The truth passes both.
                prop_assert!(jmt_proof.verify(jmt::RootHash(root.0), KeyHash(k), value.as_deref()).is_ok());
                prop_assert!(proof.verify_hashed(root, k, value.as_deref()).is_ok());
                // A lie fails both.
                let lie: Option<Vec<u8>> = match &value {
                    Some(_) => None,
                    None => Some(vec![1, 2, 3]),
                };
                prop_assert!(jmt_proof.verify(jmt::RootHash(root.0), KeyHash(k), lie.as_deref()).is_err());
                prop_assert!(proof.verify_hashed(root, k, lie.as_deref()).is_err());
                if let Some(v) = &value {
                    let mut other = v.clone();
                    other[0] ^= 1;
                    prop_assert!(proof.verify_hashed(root, k, Some(&other)).is_err());
                }
                let encoded = borsh::to_vec(&proof).unwrap();
                let jmt_encoded = borsh::to_vec(&jmt_proof).unwrap();
                if proof.depth > 0 {
                    prop_assert!(encoded.len() < jmt_encoded.len());
                }
                // Every sibling and bit matters.
                for i in 0..proof.siblings.len() {
                    let mut bad = proof.clone();
                    bad.siblings[i].0[0] ^= 1;
                    prop_assert!(bad.verify_hashed(root, k, value.as_deref()).is_err());
                }
                for level in 0..usize::from(proof.depth) {
                    let mut bad = proof.clone();
                    bad.empty[level / 8] ^= 1 << (level % 8);
                    prop_assert!(bad.verify_hashed(root, k, value.as_deref()).is_err());
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Version after version, for keys present, absent, overwritten
        /// and clustered, the proof built by walking the tree is jmt's
        /// proof compacted, with the same value.
        #[test]
        fn built_proofs_are_jmts(
            versions in clustered_versions(6, 30, 5),
            probes in proptest::collection::vec((0u8..8, 0u16..64), 1..16),
        ) {
            let store = MemoryTreeStore::default();
            let tree = JellyfishMerkleTree::<_, StateHasher>::new(&store);
            for (version, set) in versions.iter().enumerate() {
                let set = set.iter().map(|(k, v)| (*k, Some(v.clone())));
                let (_, batch) = tree.put_value_set(set, version as u64).unwrap();
                jmt::storage::TreeWriter::write_node_batch(&store, &batch.node_batch).unwrap();
            }
            for version in 0..versions.len() as u64 {
                for &(p, t) in &probes {
                    let k = clustered(p, t).0;
                    let (value, jmt_proof) = tree.get_with_proof(KeyHash(k), version).unwrap();
                    let expected = StateProof::from_jmt(&jmt_proof, k).unwrap();
                    let (built_value, built) = StateProof::build(&store, k, version).unwrap();
                    prop_assert_eq!(&built_value, &value);
                    prop_assert_eq!(&built, &expected);
                    let root = Hash(tree.get_root_hash(version).unwrap().0);
                    prop_assert!(built.verify_hashed(root, k, value.as_deref()).is_ok());
                }
            }
            // A version never written has no root to prove against.
            let missing = StateProof::build(&store, clustered(0, 0).0, versions.len() as u64 + 1);
            prop_assert!(matches!(missing, Err(AnchoringError::Storage(_))));
        }
    }

    #[test]
    fn an_empty_tree_proves_every_key_absent() {
        let store = MemoryTreeStore::default();
        let tree = JellyfishMerkleTree::<_, StateHasher>::new(&store);
        let (root, batch) = tree.put_value_sets([std::iter::empty()], 0).unwrap();
        jmt::storage::TreeWriter::write_node_batch(&store, &batch.node_batch).unwrap();
        let (value, proof) = StateProof::build(&store, key(7), 0).unwrap();
        assert_eq!(value, None);
        assert_eq!(proof.leaf, ProofLeaf::Empty);
        assert_eq!(proof.depth, 0);
        assert!(proof.verify_hashed(Hash(root[0].0), key(7), None).is_ok());
        assert!(
            proof
                .verify_hashed(Hash(root[0].0), key(7), Some(b"x"))
                .is_err()
        );
    }

    #[test]
    fn shapes_that_do_not_add_up_are_refused() {
        let proof = StateProof {
            leaf: ProofLeaf::Empty,
            depth: 3,
            empty: vec![0b0000_0001],
            siblings: vec![Hash([1; 32])],
        };
        let err = proof
            .verify_hashed(Hash([0; 32]), [0; 32], None)
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("1 sibling hashes for 2 non-empty levels"),
            "{err}"
        );
        let past = StateProof {
            empty: vec![0b1000_0000],
            siblings: vec![Hash([1; 32]); 3],
            ..proof.clone()
        };
        assert!(past.verify_hashed(Hash([0; 32]), [0; 32], None).is_err());
        let deep = StateProof {
            depth: 257,
            empty: vec![0; 33],
            siblings: vec![Hash([1; 32]); 257],
            ..proof
        };
        assert!(deep.verify_hashed(Hash([0; 32]), [0; 32], None).is_err());
    }
}
