//! Compact proofs of the state tree: one 32-byte hash per non-empty
//! sibling, a bit per empty one, and no leaf at all when the proof shows
//! the key's own value (the verifier knows the key and the value).
//!
//! The tree is jmt's: a leaf hashes `LEAF ‖ key hash ‖ value hash`, an inner
//! node `INTERNAL ‖ left ‖ right`, an empty subtree is jmt's placeholder
//! constant, all under [`StateHasher`] (blake3 in derive-key mode). jmt's
//! own proof carries every sibling as a whole node (64 bytes or more, and a
//! hash to recompute); [`StateProof::from_jmt`] reduces it to the hashes,
//! and [`StateProof::verify`] folds them up to the root exactly as jmt's
//! verifier does, with half the bytes and half the hashing.

use borsh::{BorshDeserialize, BorshSerialize};
use cairn_genesis::Hash;
use jmt::SimpleHasher;
use jmt::proof::SparseMerkleProof;

use crate::state::StateHasher;
use crate::{AnchoringError, StateKey};

/// jmt's prefix of leaf hashes.
const LEAF_SEPARATOR: &[u8] = b"JMT::LeafNode";
/// jmt's prefix of inner node hashes.
const INTERNAL_SEPARATOR: &[u8] = b"JMT::IntrnalNode";
/// jmt's hash of an empty subtree.
const PLACEHOLDER: [u8; 32] = *b"SPARSE_MERKLE_PLACEHOLDER_HASH__";
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

fn leaf_hash(key_hash: &[u8; 32], value_hash: &[u8; 32]) -> [u8; 32] {
    let mut h = StateHasher::new();
    h.update(LEAF_SEPARATOR);
    h.update(key_hash);
    h.update(value_hash);
    h.finalize()
}

fn internal_hash(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    let mut h = StateHasher::new();
    h.update(INTERNAL_SEPARATOR);
    h.update(left);
    h.update(right);
    h.finalize()
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

fn invalid(reason: impl Into<String>) -> AnchoringError {
    AnchoringError::StateProof {
        reason: reason.into(),
    }
}

impl StateProof {
    /// The compact form of jmt's proof for the key hashed to `key_hash`.
    pub fn from_jmt(
        proof: &SparseMerkleProof<StateHasher>,
        key_hash: [u8; 32],
    ) -> Result<StateProof, AnchoringError> {
        let bytes = borsh::to_vec(proof).map_err(|e| invalid(e.to_string()))?;
        let wire: JmtProof = borsh::from_slice(&bytes).map_err(|e| invalid(e.to_string()))?;
        let depth = wire.siblings.len();
        if depth > MAX_DEPTH {
            return Err(invalid(format!("{depth} levels, more than {MAX_DEPTH}")));
        }
        let leaf = match wire.leaf {
            None => ProofLeaf::Empty,
            Some(l) if l.key_hash == key_hash => ProofLeaf::Key,
            Some(l) => ProofLeaf::Other {
                key_hash: Hash(l.key_hash),
                value_hash: Hash(l.value_hash),
            },
        };
        let mut empty = vec![0u8; depth.div_ceil(8)];
        let mut siblings = Vec::with_capacity(depth);
        for (level, node) in wire.siblings.iter().enumerate() {
            match node {
                JmtNode::Null => empty[level / 8] |= 1 << (level % 8),
                JmtNode::Internal { left, right } => {
                    siblings.push(Hash(internal_hash(left, right)))
                }
                JmtNode::Leaf(l) => siblings.push(Hash(leaf_hash(&l.key_hash, &l.value_hash))),
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
