//! The state tree's nodes, and the insert that writes a version.
//!
//! The tree is jmt's Jellyfish Merkle tree: sixteen children to an
//! internal node, a key's leaf as high as it is alone, a node per version
//! and path. Its nodes and its hashing are jmt's exactly, and jmt reads
//! the nodes written here (its borsh layout is [`TreeNode::to_jmt`]); but
//! a block's insert is done here, on node types of our own. jmt's insert
//! keeps every node it touches in a hash map, clones nodes in and out of
//! it, boxes each node's sixteen children anew, and sorts what it wrote
//! into B-tree maps at the end: under a stream of blocks that bookkeeping
//! cost more than the hashing. Here each node on the paths the block
//! writes is read once, changed in place, hashed once and appended to the
//! version's list. jmt stays as the reference the tests hold this to
//! (`the_insert_writes_jmts_tree`). A block's thousands of keys are
//! written below the root on the machine's cores, each thread taking a run
//! of the root's children, and joined in the order one thread writes them
//! (`the_insert_on_threads_writes_what_one_thread_writes`).

use borsh::BorshDeserialize;
use jmt::storage::{LeafNode, NibblePath, Node, NodeKey};
use jmt::{KeyHash, OwnedValue, SimpleHasher, Version};

use crate::AnchoringError;
use crate::state::{StateHasher, internal_hash, leaf_hash};

/// jmt's hash of an empty subtree.
pub(crate) const PLACEHOLDER: [u8; 32] = *b"SPARSE_MERKLE_PLACEHOLDER_HASH__";

/// Nibbles in a key hash: the deepest a path goes.
const MAX_NIBBLES: usize = 64;

/// One child of an internal node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Child {
    /// The child's hash.
    pub hash: [u8; 32],
    /// The version that wrote it: with the parent's path and the child's
    /// nibble, its [`NodeKey`].
    pub version: Version,
    /// Leaves below it: 1 for a leaf.
    pub leaf_count: u64,
}

/// An internal node: up to sixteen children, by nibble.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InternalNode {
    /// Bit `i`: slot `i` holds a child.
    present: u16,
    /// Bit `i`: the child in slot `i` is a leaf.
    leaves: u16,
    slots: [Child; 16],
}

/// A node of the state tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TreeNode {
    /// The root of an empty tree.
    Null,
    /// A key's leaf.
    Leaf {
        /// The key's hash.
        key_hash: [u8; 32],
        /// Its value's hash.
        value_hash: [u8; 32],
    },
    /// An internal node (boxed: a leaf is a tenth of its size).
    Internal(Box<InternalNode>),
}

/// The state tree's storage: nodes by key, values by key hash and version.
pub trait TreeStore {
    /// The node stored under `key`, if any.
    fn node(&self, key: &NodeKey) -> Result<Option<TreeNode>, AnchoringError>;
    /// The value of `key_hash` as of `version`: its last write at or
    /// before it; `None` if it had none by then.
    fn value(
        &self,
        version: Version,
        key_hash: &KeyHash,
    ) -> Result<Option<OwnedValue>, AnchoringError>;
    /// Stores what writing a version adds.
    fn write(&self, update: &TreeUpdate) -> Result<(), AnchoringError>;
}

/// What writing one version changes in the tree's storage.
#[derive(Clone, Debug, Default)]
pub struct TreeUpdate {
    /// The version written.
    pub version: Version,
    /// The nodes it adds, each written at `version`, in key order: by
    /// depth, then path.
    pub nodes: Vec<(NodeKey, TreeNode)>,
    /// The values it writes, by key hash, in key hash order.
    pub values: Vec<(KeyHash, OwnedValue)>,
    /// Nodes of earlier versions that this version no longer reaches: only
    /// versions before it read them, so once those versions are no longer
    /// kept, these nodes can be deleted. The previous version's root is
    /// always among them.
    pub stale: Vec<NodeKey>,
}

/// Nibble `index` of a key hash, high half of byte 0 first (jmt's order).
pub(crate) fn nibble(key_hash: &[u8; 32], index: usize) -> u8 {
    let byte = key_hash[index / 2];
    if index.is_multiple_of(2) {
        byte >> 4
    } else {
        byte & 0x0f
    }
}

/// The key of a version's root: the version and the empty path.
pub(crate) fn root_key(version: Version) -> NodeKey {
    NodeKey::new(version, NibblePath::from_iter(std::iter::empty()))
}

/// The path of a key hash's first `depth` nibbles.
fn key_path(key_hash: &[u8; 32], depth: usize) -> NibblePath {
    (0..depth).map(|i| nibble(key_hash, i).into()).collect()
}

impl InternalNode {
    /// The child in slot `nibble`, and whether it is a leaf; `None` for
    /// an empty slot, and past slot 15.
    pub fn child(&self, nibble: u8) -> Option<(&Child, bool)> {
        let slot = self.slots.get(usize::from(nibble))?;
        let bit = 1u16 << nibble;
        (self.present & bit != 0).then(|| (slot, self.is_leaf(bit)))
    }

    fn is_leaf(&self, bit: u16) -> bool {
        self.leaves & bit != 0
    }

    /// Puts `child` in slot `nibble`, a leaf or an internal node; there
    /// are sixteen slots, 0 to 15.
    pub fn set(&mut self, nibble: u8, child: Child, leaf: bool) -> Result<(), AnchoringError> {
        let Some(slot) = self.slots.get_mut(usize::from(nibble)) else {
            return Err(AnchoringError::Storage(format!(
                "slot {nibble} of a state tree node, which has 16"
            )));
        };
        *slot = child;
        let bit = 1u16 << nibble;
        self.present |= bit;
        if leaf {
            self.leaves |= bit;
        } else {
            self.leaves &= !bit;
        }
        Ok(())
    }

    /// The children in nibble order: slot, child, whether it is a leaf.
    pub fn children(&self) -> impl Iterator<Item = (u8, &Child, bool)> {
        (0..16u8).filter_map(|n| self.child(n).map(|(child, leaf)| (n, child, leaf)))
    }

    /// Which slots hold a child, and which of those are leaves.
    pub fn bitmaps(&self) -> (u16, u16) {
        (self.present, self.leaves)
    }

    /// Leaves below the node: an error if its children's counts (read
    /// from storage, or grown by an insert) do not add up within a u64.
    pub fn leaf_count(&self) -> Result<u64, AnchoringError> {
        self.children()
            .try_fold(0u64, |total, (_, child, _)| {
                total.checked_add(child.leaf_count)
            })
            .ok_or_else(|| {
                AnchoringError::Storage("a state tree node's leaf counts overflow".into())
            })
    }

    /// Bits of the `width` slots from `start`: present, leaves.
    fn range(&self, start: u8, width: u8) -> (u16, u16) {
        let mask = (((1u32 << width) - 1) << start) as u16;
        (self.present & mask, self.leaves & mask)
    }

    /// Whether the range stands for a single child: one slot wide, or
    /// holding one child that is a leaf.
    fn single(width: u8, (present, leaves): (u16, u16)) -> bool {
        width == 1 || (present.count_ones() == 1 && leaves != 0)
    }

    /// Inside the node, the children are the leaves of a four-level binary
    /// tree, compressed as jmt compresses it: an empty range hashes to the
    /// placeholder, a range holding a single leaf to that leaf. The hash of
    /// the `width` slots from `start`; `None` when empty.
    fn range_hash(&self, start: u8, width: u8) -> Option<[u8; 32]> {
        let range = self.range(start, width);
        if range.0 == 0 {
            return None;
        }
        if Self::single(width, range) {
            return Some(self.slots[range.0.trailing_zeros() as usize].hash);
        }
        let half = width / 2;
        let left = self.range_hash(start, half).unwrap_or(PLACEHOLDER);
        let right = self.range_hash(start + half, half).unwrap_or(PLACEHOLDER);
        Some(internal_hash(&left, &right))
    }

    /// The node's hash.
    pub fn hash(&self) -> [u8; 32] {
        self.range_hash(0, 16).unwrap_or(PLACEHOLDER)
    }

    /// Goes down towards slot `nibble`, pushing the sibling of each of the
    /// four levels onto `path`: the child the key's path continues at (its
    /// slot and version), or `None` where the key's range is empty.
    pub(crate) fn descend(
        &self,
        nibble: u8,
        path: &mut Vec<Option<[u8; 32]>>,
    ) -> Option<(u8, Version)> {
        for height in (0..4).rev() {
            let width = 1u8 << height;
            let start = (0xff << height) & nibble;
            path.push(self.range_hash(start ^ width, width));
            let range = self.range(start, width);
            if range.0 == 0 {
                return None;
            }
            if Self::single(width, range) {
                let slot = range.0.trailing_zeros() as u8;
                return Some((slot, self.slots[usize::from(slot)].version));
            }
        }
        None
    }
}

fn corrupt_jmt(reason: impl Into<String>) -> AnchoringError {
    AnchoringError::Storage(format!("a jmt node: {}", reason.into()))
}

impl TreeNode {
    /// The node's hash, as jmt hashes it.
    pub fn hash(&self) -> [u8; 32] {
        match self {
            TreeNode::Null => PLACEHOLDER,
            TreeNode::Leaf {
                key_hash,
                value_hash,
            } => leaf_hash(key_hash, value_hash),
            TreeNode::Internal(internal) => internal.hash(),
        }
    }

    /// The same node as jmt's type. jmt builds internal nodes only in its
    /// own code or from borsh (its node types are not public), so this
    /// writes borsh's bytes for the node: the sixteen slots, the count of
    /// children, of leaves below.
    pub fn to_jmt(&self) -> Result<Node, AnchoringError> {
        let internal = match self {
            TreeNode::Null => return Ok(Node::Null),
            TreeNode::Leaf {
                key_hash,
                value_hash,
            } => {
                return Ok(Node::Leaf(LeafNode::new(
                    KeyHash(*key_hash),
                    jmt::ValueHash(*value_hash),
                )));
            }
            TreeNode::Internal(internal) => internal,
        };
        let mut out = Vec::with_capacity(33 + 50 * internal.present.count_ones() as usize);
        out.push(1); // Node::Internal
        for slot in 0..16u8 {
            match internal.child(slot) {
                None => out.push(0),
                Some((child, leaf)) => {
                    out.push(1);
                    out.extend_from_slice(&child.hash);
                    out.extend_from_slice(&child.version.to_le_bytes());
                    if leaf {
                        out.push(0);
                    } else {
                        out.push(1);
                        out.extend_from_slice(&child.leaf_count.to_le_bytes());
                    }
                }
            }
        }
        out.extend_from_slice(&u64::from(internal.present.count_ones()).to_le_bytes());
        out.extend_from_slice(&internal.leaf_count()?.to_le_bytes());
        Node::try_from_slice(&out).map_err(|e| corrupt_jmt(e.to_string()))
    }

    /// jmt's node as ours.
    pub fn from_jmt(node: &Node) -> Result<TreeNode, AnchoringError> {
        Ok(match node {
            Node::Null => TreeNode::Null,
            Node::Leaf(leaf) => {
                // jmt keeps the value hash's getter to itself; its borsh
                // layout is the two hashes.
                let bytes = borsh::to_vec(leaf).map_err(|e| corrupt_jmt(e.to_string()))?;
                let (key_hash, value_hash) = <([u8; 32], [u8; 32])>::try_from_slice(&bytes)
                    .map_err(|e| corrupt_jmt(e.to_string()))?;
                TreeNode::Leaf {
                    key_hash,
                    value_hash,
                }
            }
            Node::Internal(jmt_node) => {
                let mut internal = InternalNode::default();
                for (slot, child) in jmt_node.children_unsorted() {
                    let child_of = Child {
                        hash: child.hash,
                        version: child.version,
                        leaf_count: child.leaf_count() as u64,
                    };
                    internal.set(u8::from(slot), child_of, child.is_leaf())?;
                }
                TreeNode::Internal(Box::new(internal))
            }
        })
    }
}

/// A value's hash in the tree, as jmt hashes it with [`StateHasher`].
pub fn value_hash(value: &[u8]) -> [u8; 32] {
    StateHasher::hash(value)
}

/// Keys a version writes from which its insert goes down the root's
/// children on more than one thread.
pub(crate) const KEYS_FOR_THREADS: usize = 2_000;

/// Most threads one insert uses.
const MAX_THREADS: usize = 4;

/// Writes `set` into the tree in `store` as `version`, whose previous
/// version, `version - 1`, is the latest written (for version 0 the tree
/// starts empty). Every version gets a root of its own, a copy of the
/// previous one when `set` is empty. Returns the root hash and the update;
/// writes nothing.
///
/// A large set (a block's, in the thousands of keys) is written below the
/// root on as many threads as the machine has cores, up to
/// [`MAX_THREADS`], each taking a run of the root's children: the root's
/// subtrees share no node. The update is the same, whatever the threads.
pub fn insert<S: TreeStore + Sync + ?Sized>(
    store: &S,
    set: Vec<(KeyHash, OwnedValue)>,
    version: Version,
) -> Result<([u8; 32], TreeUpdate), AnchoringError> {
    // The cores, asked of the system once (on Linux it reads the
    // process's CPU set and cgroup limits).
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let threads = if set.len() >= KEYS_FOR_THREADS {
        *CORES.get_or_init(|| {
            std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_THREADS))
        })
    } else {
        1
    };
    insert_on(store, set, version, threads)
}

/// [`insert`] on `threads` threads (at least one).
pub(crate) fn insert_on<S: TreeStore + Sync + ?Sized>(
    store: &S,
    mut set: Vec<(KeyHash, OwnedValue)>,
    version: Version,
    threads: usize,
) -> Result<([u8; 32], TreeUpdate), AnchoringError> {
    set.sort_unstable_by_key(|(key_hash, _)| key_hash.0);
    if set.windows(2).any(|pair| pair[0].0 == pair[1].0) {
        return Err(AnchoringError::Storage(format!(
            "a key hash written twice in version {version}"
        )));
    }
    let hashed: Vec<Pair> = set.iter().map(|(k, v)| (k.0, value_hash(v))).collect();
    let mut insert = Insert::new(store, version);
    let previous = match version.checked_sub(1) {
        None => TreeNode::Null,
        Some(previous) => {
            let key = root_key(previous);
            let root = store.node(&key)?.ok_or_else(|| {
                AnchoringError::Storage(format!("no state tree root at version {previous}"))
            })?;
            insert.stale.push(key);
            root
        }
    };
    let root = match (hashed.is_empty(), previous) {
        (true, previous) => {
            let hash = previous.hash();
            insert.nodes.push((root_key(version), previous));
            hash
        }
        (false, TreeNode::Null) => insert.subtree(&hashed, 0)?.0.hash,
        (
            false,
            TreeNode::Leaf {
                key_hash,
                value_hash,
            },
        ) => {
            insert
                .beside_leaf((key_hash, value_hash), &hashed, 0)?
                .0
                .hash
        }
        (false, TreeNode::Internal(node)) if threads > 1 => {
            insert.through_root(node, &hashed, threads)?.0.hash
        }
        (false, TreeNode::Internal(node)) => insert.through_internal(node, &hashed, 0)?.0.hash,
    };
    let update = TreeUpdate {
        version,
        nodes: in_key_order(insert.nodes),
        values: set,
        stale: insert.stale,
    };
    Ok((root, update))
}

/// A key hash and its value's hash: a leaf.
type Pair = ([u8; 32], [u8; 32]);

/// One version's insert under way.
struct Insert<'a, S: ?Sized> {
    store: &'a S,
    version: Version,
    nodes: Vec<(NodeKey, TreeNode)>,
    stale: Vec<NodeKey>,
}

/// The ranges of `kvs` (sorted by key hash) that share nibble `depth`.
fn by_nibble(kvs: &[Pair], depth: usize) -> impl Iterator<Item = (u8, &[Pair])> {
    let mut rest = kvs;
    std::iter::from_fn(move || {
        let first = rest.first()?;
        let n = nibble(&first.0, depth);
        let end = rest.partition_point(|(k, _)| nibble(k, depth) <= n);
        let (group, after) = rest.split_at(end);
        rest = after;
        Some((n, group))
    })
}

impl<'a, S: ?Sized> Insert<'a, S> {
    /// An insert of `version` into `store` that has written nothing yet.
    fn new(store: &'a S, version: Version) -> Self {
        Insert {
            store,
            version,
            nodes: Vec::new(),
            stale: Vec::new(),
        }
    }
}

impl<S: TreeStore + ?Sized> Insert<'_, S> {
    /// Holds the place of the node at the path of `key_hash`'s first
    /// `depth` nibbles, before its children: the nodes are then in
    /// pre-order, each depth's in path order (see [`in_key_order`]).
    fn reserve(&mut self, key_hash: &[u8; 32], depth: usize) -> usize {
        let key = NodeKey::new(self.version, key_path(key_hash, depth));
        self.nodes.push((key, TreeNode::Null));
        self.nodes.len() - 1
    }

    /// Puts `node` in its place, and returns it as its parent lists it:
    /// the child, and whether a leaf.
    fn fill(&mut self, place: usize, node: TreeNode) -> Result<(Child, bool), AnchoringError> {
        let (leaf_count, leaf) = match &node {
            TreeNode::Internal(internal) => (internal.leaf_count()?, false),
            _ => (1, true),
        };
        let child = Child {
            hash: node.hash(),
            version: self.version,
            leaf_count,
        };
        self.nodes[place].1 = node;
        Ok((child, leaf))
    }

    /// `depth`, if a key hash has a nibble there.
    fn nibble_index(&self, depth: usize) -> Result<usize, AnchoringError> {
        if depth < MAX_NIBBLES {
            Ok(depth)
        } else {
            Err(AnchoringError::Storage(format!(
                "the state tree of version {} would be deeper than a key hash",
                self.version
            )))
        }
    }

    /// A new subtree at depth `depth` holding `kvs` (not empty).
    fn subtree(&mut self, kvs: &[Pair], depth: usize) -> Result<(Child, bool), AnchoringError> {
        let place = self.reserve(&kvs[0].0, depth);
        if let [(key_hash, value_hash)] = kvs {
            let leaf = TreeNode::Leaf {
                key_hash: *key_hash,
                value_hash: *value_hash,
            };
            return self.fill(place, leaf);
        }
        let mut node = Box::<InternalNode>::default();
        for (n, group) in by_nibble(kvs, self.nibble_index(depth)?) {
            let (child, leaf) = self.subtree(group, depth + 1)?;
            node.set(n, child, leaf)?;
        }
        self.fill(place, TreeNode::Internal(node))
    }

    /// The subtree at depth `depth` where the leaf `existing` stood, with
    /// `kvs` (not empty) written in.
    fn beside_leaf(
        &mut self,
        existing: Pair,
        kvs: &[Pair],
        depth: usize,
    ) -> Result<(Child, bool), AnchoringError> {
        if let [(key_hash, _)] = kvs
            && *key_hash == existing.0
        {
            return self.subtree(kvs, depth);
        }
        let existing_slot = nibble(&existing.0, self.nibble_index(depth)?);
        let place = self.reserve(&kvs[0].0, depth);
        let mut node = Box::<InternalNode>::default();
        // Where no key of `kvs` goes beside it, the existing leaf moves
        // down a level as it was (jmt writes it again at the new path and
        // version), in its place among the children.
        let mut existing_done = false;
        for (n, group) in by_nibble(kvs, depth) {
            if !existing_done && n > existing_slot {
                let (child, leaf) = self.subtree(&[existing], depth + 1)?;
                node.set(existing_slot, child, leaf)?;
                existing_done = true;
            }
            let (child, leaf) = if n == existing_slot {
                existing_done = true;
                self.beside_leaf(existing, group, depth + 1)?
            } else {
                self.subtree(group, depth + 1)?
            };
            node.set(n, child, leaf)?;
        }
        if !existing_done {
            let (child, leaf) = self.subtree(&[existing], depth + 1)?;
            node.set(existing_slot, child, leaf)?;
        }
        self.fill(place, TreeNode::Internal(node))
    }

    /// The internal node `node` at depth `depth`, on the path of `kvs`
    /// (not empty), with `kvs` written in.
    fn through_internal(
        &mut self,
        mut node: Box<InternalNode>,
        kvs: &[Pair],
        depth: usize,
    ) -> Result<(Child, bool), AnchoringError> {
        let place = self.reserve(&kvs[0].0, depth);
        for (n, group) in by_nibble(kvs, self.nibble_index(depth)?) {
            let (child, leaf) = self.child_of(&node, n, group, depth)?;
            node.set(n, child, leaf)?;
        }
        self.fill(place, TreeNode::Internal(node))
    }

    /// Child `n` of `node`, the internal node at depth `depth`, with
    /// `group` (the keys under it, not empty) written in.
    fn child_of(
        &mut self,
        node: &InternalNode,
        n: u8,
        group: &[Pair],
        depth: usize,
    ) -> Result<(Child, bool), AnchoringError> {
        let Some((old, old_is_leaf)) = node.child(n) else {
            return self.subtree(group, depth + 1);
        };
        let old_key = NodeKey::new(old.version, key_path(&group[0].0, depth + 1));
        let found = self.store.node(&old_key)?;
        let written = match (found, old_is_leaf) {
            (Some(TreeNode::Internal(below)), false) => {
                self.through_internal(below, group, depth + 1)?
            }
            // A leaf stands at a prefix of its own key: one whose key is
            // not under its path is misplaced.
            (
                Some(TreeNode::Leaf {
                    key_hash,
                    value_hash,
                }),
                true,
            ) if (0..=depth).all(|i| nibble(&key_hash, i) == nibble(&group[0].0, i)) => {
                self.beside_leaf((key_hash, value_hash), group, depth + 1)?
            }
            (found, _) => {
                return Err(AnchoringError::Storage(format!(
                    "the state tree node {old_key:?} is {found:?}, \
                     not the child its parent lists"
                )));
            }
        };
        self.stale.push(old_key);
        Ok(written)
    }
}

/// What one thread of [`Insert::through_root`] wrote: the root's children
/// it took, with the nodes and stale nodes below them in the order one
/// thread would have listed them.
struct Part {
    children: Vec<(u8, Child, bool)>,
    nodes: Vec<(NodeKey, TreeNode)>,
    stale: Vec<NodeKey>,
}

impl<S: TreeStore + Sync + ?Sized> Insert<'_, S> {
    /// [`Insert::through_internal`] at the root, its children taken in at
    /// most `threads` runs, each ending where the keys so far first reach
    /// its share of them (so about as many keys each, give or take a root
    /// child's), each run on a thread of its own (the first on this one),
    /// then joined in nibble order: the same nodes, in the same order, as
    /// one thread writes. A panic on a thread goes on here, as it would
    /// on one thread.
    fn through_root(
        &mut self,
        mut node: Box<InternalNode>,
        kvs: &[Pair],
        threads: usize,
    ) -> Result<(Child, bool), AnchoringError> {
        let place = self.reserve(&kvs[0].0, 0);
        let groups: Vec<(u8, &[Pair])> = by_nibble(kvs, 0).collect();
        let mut runs: Vec<&[(u8, &[Pair])]> = Vec::with_capacity(threads);
        let (mut start, mut keys) = (0, 0);
        for (i, (_, group)) in groups.iter().enumerate() {
            keys += group.len();
            // Run `r` ends once the keys so far reach (r + 1) / threads of
            // them; the last, at the last child.
            if keys * threads >= (runs.len() + 1) * kvs.len() || i + 1 == groups.len() {
                runs.push(&groups[start..=i]);
                start = i + 1;
            }
        }
        let (store, version, root) = (self.store, self.version, &*node);
        let write = move |run: &[(u8, &[Pair])]| -> Result<Part, AnchoringError> {
            let mut insert = Insert::new(store, version);
            let mut children = Vec::with_capacity(run.len());
            for &(n, group) in run {
                let (child, leaf) = insert.child_of(root, n, group, 0)?;
                children.push((n, child, leaf));
            }
            Ok(Part {
                children,
                nodes: insert.nodes,
                stale: insert.stale,
            })
        };
        let Some((first, rest)) = runs.split_first() else {
            return Err(AnchoringError::Storage(format!(
                "no keys to write below the root of version {version}"
            )));
        };
        let parts: Vec<Result<Part, AnchoringError>> = std::thread::scope(|scope| {
            // A run whose thread the system refuses is written on this one.
            let others: Vec<_> = rest
                .iter()
                .map(|&run| {
                    std::thread::Builder::new()
                        .spawn_scoped(scope, move || write(run))
                        .map_err(|_| run)
                })
                .collect();
            let mut parts = vec![write(first)];
            for other in others {
                parts.push(match other {
                    Ok(thread) => thread
                        .join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                    Err(run) => write(run),
                });
            }
            parts
        });
        for part in parts {
            let part = part?;
            for (n, child, leaf) in part.children {
                node.set(n, child, leaf)?;
            }
            self.nodes.extend(part.nodes);
            self.stale.extend(part.stale);
        }
        self.fill(place, TreeNode::Internal(node))
    }
}

/// The nodes of a pre-order walk (each depth's already in path order),
/// by depth: the order of their keys, in jmt's `NodeKey` and in the node's
/// store (version, path length, path), so that a version's nodes go into
/// a sorted store as a run of appends.
fn in_key_order(nodes: Vec<(NodeKey, TreeNode)>) -> Vec<(NodeKey, TreeNode)> {
    let mut depths: Vec<Vec<(NodeKey, TreeNode)>> = Vec::new();
    for entry in nodes {
        let depth = entry.0.nibble_path().num_nibbles();
        if depths.len() <= depth {
            depths.resize_with(depth + 1, Vec::new);
        }
        depths[depth].push(entry);
    }
    depths.into_iter().flatten().collect()
}
