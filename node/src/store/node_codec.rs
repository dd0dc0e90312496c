//! How the state tree's nodes are stored in `tree_nodes`.
//!
//! Internal nodes are most of what a block writes: at 10^6 credentials a
//! block of 10 000 anchors rewrites about 20 000 of them (by the tree's
//! shape; `cairn bench growth` counts them), each with up to 16 children.
//! jmt's borsh encoding spends 50 bytes on an internal child (an option
//! tag, the 32-byte hash, the version and the leaf count as 8 bytes each,
//! a type tag), 42 on a leaf child, one on each empty slot and 17 on the
//! node around them: 817 bytes for a full node. Here an internal node is:
//!
//! ```text
//! COMPACT_INTERNAL ‖ children bitmap (u16, LE) ‖ leaves bitmap (u16, LE)
//!   ‖ per child, in nibble order: hash (32) ‖ version (LEB128)
//!                                 ‖ leaf count (LEB128, internal children only)
//! ```
//!
//! 613 bytes for a full root at 10^6 credentials and heights near 10^6
//! (581 to 597 for full nodes below it, whose counts are shorter varints).
//! The node's own leaf count is the sum of its children's, as jmt computes
//! it, so it is not stored. Leaves and the null node keep jmt's borsh
//! encoding (a tag and two hashes: nothing to save).
//! The compact tag is one borsh never writes for a node (its tags are 0, 1
//! and 2).
//!
//! Decoding accepts exactly what encoding writes: a bitmap that names no
//! child, a lone leaf child, an internal child of fewer than two leaves,
//! leaf counts that overflow, a varint longer than it needs to be or bytes
//! left over are all [`NodeError::Corrupt`], and so is an internal node in
//! borsh's form (folders that held them are of an older state layout, and
//! refused when the store opens).

use cairn_anchoring::{Child, InternalNode, TreeNode};

use crate::NodeError;

/// The first byte of an internal node in the compact encoding.
const COMPACT_INTERNAL: u8 = 3;

/// borsh's tags of jmt's `Node`: the null node, an internal node, a leaf.
const BORSH_NULL: u8 = 0;
const BORSH_INTERNAL: u8 = 1;
const BORSH_LEAF: u8 = 2;

const WHAT: &str = "state tree node";

/// A node as `tree_nodes` stores it.
pub(crate) fn encode_node(node: &TreeNode) -> Vec<u8> {
    let capacity = match node {
        TreeNode::Null => 1,
        TreeNode::Leaf { .. } => 65,
        TreeNode::Internal(internal) => 5 + 40 * internal.bitmaps().0.count_ones() as usize,
    };
    let mut out = Vec::with_capacity(capacity);
    encode_node_into(&mut out, node);
    out
}

/// [`encode_node`], appended to `out`: a block's thousands of nodes go
/// through one buffer instead of an allocation each.
pub(crate) fn encode_node_into(out: &mut Vec<u8>, node: &TreeNode) {
    let internal = match node {
        TreeNode::Null => return out.push(BORSH_NULL),
        TreeNode::Leaf {
            key_hash,
            value_hash,
        } => {
            out.push(BORSH_LEAF);
            out.extend_from_slice(key_hash);
            out.extend_from_slice(value_hash);
            return;
        }
        TreeNode::Internal(internal) => internal,
    };
    let (children, leaves) = internal.bitmaps();
    out.push(COMPACT_INTERNAL);
    out.extend_from_slice(&children.to_le_bytes());
    out.extend_from_slice(&leaves.to_le_bytes());
    for (_, child, leaf) in internal.children() {
        out.extend_from_slice(&child.hash);
        put_varint(out, child.version);
        if !leaf {
            put_varint(out, child.leaf_count);
        }
    }
}

/// A node from the bytes `tree_nodes` holds: the compact encoding of an
/// internal node, or jmt's borsh encoding of a leaf or the null node.
pub(crate) fn decode_node(bytes: &[u8]) -> Result<TreeNode, NodeError> {
    match bytes.split_first() {
        Some((&COMPACT_INTERNAL, rest)) => Ok(TreeNode::Internal(Box::new(decode_compact(rest)?))),
        Some((&BORSH_INTERNAL, _)) => Err(corrupt(
            "an internal node in borsh's form, which this state layout never writes",
        )),
        Some((&BORSH_NULL, [])) => Ok(TreeNode::Null),
        Some((&BORSH_LEAF, rest)) => {
            let mut input = Input { bytes: rest };
            let key_hash = input.array::<32>()?;
            let value_hash = input.array::<32>()?;
            input.end()?;
            Ok(TreeNode::Leaf {
                key_hash,
                value_hash,
            })
        }
        Some((&BORSH_NULL, rest)) => {
            Err(corrupt(format!("{} bytes after the null node", rest.len())))
        }
        Some((tag, _)) => Err(corrupt(format!("unknown node tag {tag}"))),
        None => Err(corrupt("truncated")),
    }
}

fn corrupt(reason: impl Into<String>) -> NodeError {
    NodeError::Corrupt {
        what: WHAT,
        reason: reason.into(),
    }
}

/// A compact internal node's children, checked: at least one, leaf bits
/// only for children there, no lone leaf, internal children of two leaves
/// or more whose counts add up within a u64, nothing left over.
fn decode_compact(bytes: &[u8]) -> Result<InternalNode, NodeError> {
    let mut input = Input { bytes };
    let present = u16::from_le_bytes(input.array()?);
    let leaves = u16::from_le_bytes(input.array()?);
    if present == 0 {
        return Err(corrupt("an internal node without children"));
    }
    if leaves & !present != 0 {
        return Err(corrupt("a leaf bit for a child that is not there"));
    }
    if present.count_ones() == 1 && leaves != 0 {
        return Err(corrupt("an internal node whose only child is a leaf"));
    }
    let mut node = InternalNode::default();
    let mut total: u64 = 0;
    for nibble in 0..16u8 {
        let bit = 1u16 << nibble;
        if present & bit == 0 {
            continue;
        }
        let hash = input.array::<32>()?;
        let version = input.varint()?;
        let leaf = leaves & bit != 0;
        let leaf_count = if leaf {
            1
        } else {
            let leaf_count = input.varint()?;
            if leaf_count < 2 {
                return Err(corrupt("an internal child with fewer than two leaves"));
            }
            leaf_count
        };
        total = total
            .checked_add(leaf_count)
            .ok_or_else(|| corrupt("leaf counts that overflow"))?;
        let child = Child {
            hash,
            version,
            leaf_count,
        };
        node.set(nibble, child, leaf)?;
    }
    input.end()?;
    Ok(node)
}

/// Unsigned LEB128: seven bits a byte, low bits first, the high bit set on
/// every byte but the last.
fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

struct Input<'a> {
    bytes: &'a [u8],
}

impl Input<'_> {
    /// Nothing may follow the node.
    fn end(&self) -> Result<(), NodeError> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(corrupt(format!(
                "{} bytes after the last child",
                self.bytes.len()
            )))
        }
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], NodeError> {
        let Some((head, rest)) = self.bytes.split_first_chunk::<N>() else {
            return Err(corrupt("truncated"));
        };
        self.bytes = rest;
        Ok(*head)
    }

    /// A varint as [`put_varint`] writes it: at most ten bytes, within a
    /// u64, and no longer than it needs to be.
    fn varint(&mut self) -> Result<u64, NodeError> {
        let mut value: u64 = 0;
        for i in 0..10 {
            let [byte] = self.array::<1>()?;
            let bits = u64::from(byte & 0x7f);
            if i == 9 && byte > 1 {
                return Err(corrupt("a varint beyond 64 bits"));
            }
            value |= bits << (7 * i);
            if byte & 0x80 == 0 {
                if i > 0 && byte == 0 {
                    return Err(corrupt("a varint longer than it needs to be"));
                }
                return Ok(value);
            }
        }
        Err(corrupt("a varint beyond 64 bits"))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test code: a panic is the failure report
mod tests {
    use super::*;
    use crate::store::encode;
    use cairn_anchoring::{MemoryTreeStore, StateHasher};
    use jmt::storage::TreeWriter;
    use jmt::{JellyfishMerkleTree, KeyHash};
    use proptest::prelude::*;

    /// Every node jmt writes while it inserts `keys` random keys at each
    /// of `versions`.
    fn jmt_nodes(seed: u64, keys: usize, versions: &[u64]) -> Vec<TreeNode> {
        let store = MemoryTreeStore::default();
        let tree = JellyfishMerkleTree::<_, StateHasher>::new(&store);
        let mut nodes = Vec::new();
        for (round, &version) in versions.iter().enumerate() {
            let set: Vec<(KeyHash, Option<Vec<u8>>)> = (0..keys)
                .map(|i| {
                    let key = blake3::hash(format!("{seed} {round} {i}").as_bytes());
                    (KeyHash(*key.as_bytes()), Some(vec![round as u8; 8]))
                })
                .collect();
            let (_, update) = tree.put_value_set(set, version).unwrap();
            store.write_node_batch(&update.node_batch).unwrap();
            nodes.extend(
                update
                    .node_batch
                    .nodes()
                    .values()
                    .map(|node| TreeNode::from_jmt(node).unwrap()),
            );
        }
        nodes
    }

    /// jmt's own borsh bytes for a node.
    fn borsh(node: &TreeNode) -> Vec<u8> {
        encode(&node.to_jmt().unwrap())
    }

    /// A compact node written by hand: children 0 (a leaf of version
    /// 300) and 5 (an internal node of version 7 with 40 leaves).
    fn two_children() -> Vec<u8> {
        let mut bytes = vec![COMPACT_INTERNAL, 0b10_0001, 0, 0b1, 0];
        bytes.extend([0xaa; 32]);
        bytes.extend([0xac, 0x02]);
        bytes.extend([0xbb; 32]);
        bytes.extend([7, 40]);
        bytes
    }

    /// jmt's nodes survive the round trip. Internal nodes take about three
    /// quarters of borsh's bytes (a root of 4 096 keys at height 10^6:
    /// 597 of 817), leaves exactly borsh's.
    #[test]
    fn jmt_nodes_round_trip_in_fewer_bytes() {
        let nodes = jmt_nodes(1, 4096, &[1_000_000]);
        let (mut internal, mut leaves) = (0, 0);
        let (mut compact_bytes, mut borsh_bytes) = (0, 0);
        for node in &nodes {
            let bytes = encode_node(node);
            assert_eq!(&decode_node(&bytes).unwrap(), node);
            match node {
                TreeNode::Internal(_) => {
                    assert_eq!(bytes[0], COMPACT_INTERNAL);
                    internal += 1;
                    compact_bytes += bytes.len();
                    borsh_bytes += borsh(node).len();
                }
                _ => {
                    assert_eq!(bytes, borsh(node));
                    leaves += 1;
                }
            }
        }
        assert_eq!(leaves, 4096);
        assert!(internal > 256, "{internal} internal nodes");
        assert!(
            compact_bytes * 5 < borsh_bytes * 4,
            "{compact_bytes} bytes against borsh's {borsh_bytes}"
        );
        // The root has 16 internal children of version 10^6 (three bytes)
        // and 128 to 16 383 leaves each (two bytes).
        let root = nodes
            .iter()
            .find(|n| matches!(n, TreeNode::Internal(i) if i.leaf_count().ok() == Some(4096)))
            .unwrap();
        assert_eq!(
            (encode_node(root).len(), borsh(root).len()),
            (5 + 16 * 37, 817)
        );
    }

    /// Leaves and the null node read in borsh's form; internal nodes in
    /// it are refused by name, whatever their contents.
    #[test]
    fn only_leaves_and_null_read_in_borsh_form() {
        let (mut internal, mut leaves) = (0, 0);
        for node in jmt_nodes(2, 300, &[3, 1 << 40]) {
            let borsh = borsh(&node);
            if matches!(node, TreeNode::Internal(_)) {
                assert_eq!(borsh[0], BORSH_INTERNAL);
                match decode_node(&borsh) {
                    Err(NodeError::Corrupt { reason, .. }) => {
                        assert!(reason.contains("borsh's form"), "{reason}")
                    }
                    other => panic!("a borsh internal node read: {other:?}"),
                }
                internal += 1;
            } else {
                assert_eq!(decode_node(&borsh).unwrap(), node);
                leaves += 1;
            }
        }
        assert!(
            internal > 16 && leaves == 600,
            "{internal} internal, {leaves} leaves"
        );
        let leaf = TreeNode::Leaf {
            key_hash: [1; 32],
            value_hash: [2; 32],
        };
        assert_eq!(decode_node(&borsh(&leaf)).unwrap(), leaf);
        assert_eq!(encode_node(&leaf), borsh(&leaf));
        assert_eq!(
            decode_node(&borsh(&TreeNode::Null)).unwrap(),
            TreeNode::Null
        );
        assert_eq!(encode_node(&TreeNode::Null), borsh(&TreeNode::Null));
    }

    #[test]
    fn varints_round_trip_at_every_length() {
        let mut values = vec![0, 1, 0x7f, 0x80, 0x3fff, 0x4000, u64::MAX - 1, u64::MAX];
        values.extend((0..64).map(|bit| 1u64 << bit));
        for value in values {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            let bits = 64 - value.leading_zeros() as usize;
            assert_eq!(out.len(), bits.div_ceil(7).max(1), "{value}");
            let mut input = Input { bytes: &out };
            assert_eq!(input.varint().unwrap(), value);
            assert!(input.bytes.is_empty());
        }
    }

    /// Each kind of malformed input is refused by name: not decoded into
    /// some other node, not a panic.
    #[test]
    fn malformed_nodes_are_refused() {
        let good = two_children();
        let node = decode_node(&good).unwrap();
        assert_eq!(encode_node(&node), good);
        let TreeNode::Internal(internal) = &node else {
            panic!("{node:?}")
        };
        assert_eq!(internal.leaf_count().unwrap(), 41);

        let reason = |bytes: &[u8]| match decode_node(bytes) {
            Err(NodeError::Corrupt { what, reason }) => {
                assert_eq!(what, WHAT);
                reason
            }
            other => panic!("{bytes:?} decoded: {other:?}"),
        };
        assert!(reason(&[COMPACT_INTERNAL, 0, 0, 0, 0]).contains("without children"));
        assert!(reason(&[COMPACT_INTERNAL, 1, 0, 2, 0]).contains("not there"));
        let mut lone_leaf = vec![COMPACT_INTERNAL, 1, 0, 1, 0];
        lone_leaf.extend([7; 32]);
        lone_leaf.push(1);
        assert!(reason(&lone_leaf).contains("only child is a leaf"));
        let mut one_leaf_below = two_children();
        *one_leaf_below.last_mut().unwrap() = 1;
        assert!(reason(&one_leaf_below).contains("fewer than two leaves"));
        let mut extra = good.clone();
        extra.push(0);
        assert!(reason(&extra).contains("after the last child"));
        for cut in 1..good.len() {
            assert!(reason(&good[..cut]).contains("truncated"), "cut at {cut}");
        }
        let version_at = 5 + 32;
        let with_version = |version: &[u8]| {
            let mut bytes = good[..version_at].to_vec();
            bytes.extend(version);
            bytes.extend(&good[version_at + 2..]);
            bytes
        };
        assert_eq!(decode_node(&with_version(&[0xac, 0x02])).unwrap(), node);
        assert!(reason(&with_version(&[0xac, 0x82, 0x00])).contains("longer than it needs"));
        let mut eleven = [0xff; 11];
        eleven[10] = 0x01;
        assert!(reason(&with_version(&eleven)).contains("beyond 64 bits"));
        let mut ten = [0xff; 10];
        ten[9] = 0x02;
        assert!(reason(&with_version(&ten)).contains("beyond 64 bits"));
        // Two internal children whose leaf counts overflow together.
        let mut overflow = vec![COMPACT_INTERNAL, 3, 0, 0, 0];
        for _ in 0..2 {
            overflow.extend([9; 32]);
            overflow.push(1);
            put_varint(&mut overflow, u64::MAX / 2 + 1);
        }
        assert!(reason(&overflow).contains("overflow"));
        // Leaves and the null node: exactly a tag and two hashes, a tag.
        let leaf = encode_node(&TreeNode::Leaf {
            key_hash: [1; 32],
            value_hash: [2; 32],
        });
        for cut in 1..leaf.len() {
            assert!(reason(&leaf[..cut]).contains("truncated"), "cut at {cut}");
        }
        assert!(reason(&[leaf.as_slice(), &[0]].concat()).contains("after"));
        assert!(reason(&[BORSH_NULL, 0]).contains("after the null node"));
        assert!(reason(&[4]).contains("unknown node tag 4"));
        assert!(reason(&[]).contains("truncated"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        /// Trees of any size, written at versions of any width, round-trip.
        #[test]
        fn any_jmt_tree_round_trips(
            seed in any::<u64>(),
            keys in 1usize..400,
            start in any::<u32>(),
            steps in proptest::collection::vec(1u64..1 << 40, 1..4),
        ) {
            let versions: Vec<u64> = steps
                .iter()
                .scan(u64::from(start), |v, step| {
                    *v += step;
                    Some(*v)
                })
                .collect();
            for node in jmt_nodes(seed, keys, &versions) {
                prop_assert_eq!(decode_node(&encode_node(&node)).unwrap(), node);
            }
        }
    }

    /// Every single-byte change, insertion and cut of real encodings is
    /// refused, or decodes to a node that encodes back to exactly those
    /// bytes; never a panic.
    #[test]
    fn mutated_encodings_are_refused_or_canonical() {
        let nodes = jmt_nodes(3, 200, &[5, 70_000]);
        let mut corpus = vec![two_children()];
        for node in nodes
            .iter()
            .filter(|n| matches!(n, TreeNode::Internal(_)))
            .take(12)
        {
            corpus.push(encode_node(node));
        }
        let (mut decoded, mut refused) = (0, 0);
        let mut judge = |bytes: &[u8]| match decode_node(bytes) {
            Ok(node) => {
                assert_eq!(encode_node(&node), bytes, "a second form of {node:?}");
                decoded += 1;
            }
            Err(NodeError::Corrupt { .. }) => refused += 1,
            Err(e) => panic!("{e}"),
        };
        for bytes in &corpus {
            for at in 0..bytes.len() {
                for mask in [0x01, 0x80, 0xff] {
                    let mut changed = bytes.clone();
                    changed[at] ^= mask;
                    judge(&changed);
                }
                let mut longer = bytes.clone();
                longer.insert(at, 0x81);
                judge(&longer);
                judge(&bytes[..at]);
            }
        }
        // Flipped hash bytes decode; most other changes are refused.
        assert!(
            decoded > 1_000 && refused > 1_000,
            "{decoded} decoded, {refused} refused"
        );
    }

    proptest! {
        /// Any well-formed compact node (any children, versions and leaf
        /// counts) decodes, and encodes back to the same bytes.
        #[test]
        fn any_compact_node_round_trips(
            present in 1u16..,
            leaf_bits in any::<u16>(),
            fields in proptest::collection::vec((any::<[u8; 32]>(), any::<u64>(), 2u64..1 << 48), 16),
        ) {
            let mut leaves = leaf_bits & present;
            if present.count_ones() == 1 {
                leaves = 0;
            }
            let mut bytes = vec![COMPACT_INTERNAL];
            bytes.extend(present.to_le_bytes());
            bytes.extend(leaves.to_le_bytes());
            let mut below = 0;
            for (nibble, (hash, version, count)) in fields.iter().enumerate() {
                if present & (1 << nibble) != 0 {
                    bytes.extend(hash);
                    put_varint(&mut bytes, *version);
                    if leaves & (1 << nibble) == 0 {
                        put_varint(&mut bytes, *count);
                        below += count;
                    } else {
                        below += 1;
                    }
                }
            }
            let node = decode_node(&bytes).unwrap();
            prop_assert_eq!(&encode_node(&node), &bytes);
            let TreeNode::Internal(internal) = node else {
                panic!("an internal node decoded as another kind")
            };
            prop_assert_eq!(internal.leaf_count().unwrap(), below);
        }
    }
}
