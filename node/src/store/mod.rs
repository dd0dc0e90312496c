//! The node's data folder: one RocksDB database with a column family per
//! kind of data.
//!
//! | column family | key | value |
//! |---|---|---|
//! | `meta` | name | the genesis hash, the committed height, the state key layout, the oldest complete state version, the state tree's version |
//! | `blocks` | height (8 bytes, big-endian) | `Block` (borsh) |
//! | `certificates` | height | `CommitCertificate` |
//! | `tree_nodes` | version (big-endian) ‖ path length ‖ path nibbles, two to a byte | a `TreeNode` (jmt's node): internal nodes compact (`node_codec`), leaves and the null node in jmt's borsh |
//! | `tree_values` | key hash ‖ version (big-endian) | `Option<value>` (borsh) |
//! | `stale_nodes` | version | the `tree_nodes` keys of the nodes that version stopped using (borsh) |
//! | `tx_index` | transaction id | height ‖ index in the block: every applied transaction (the replay rule reads it) |
//! | `wal` | sequence number | `WalEntry` (borsh) |
//! | `evidence` | digest of the evidence | `Evidence` (borsh) |
//! | `issuer_events` | issuer id ‖ 0 ‖ height ‖ index | transaction id |
//! | `proposals` | height ‖ block hash | `Block` proposed at a height not yet committed |
//!
//! A decided block, its certificate, its index entries and the new
//! committed height go in one synced write batch; the state tree's new
//! nodes and values, its stale list, the pruning and the tree's version
//! marker then go in a second batch, without RocksDB's log
//! ([`Store::commit_block`]). The families flush together (RocksDB's
//! atomic flush), so after a crash the node holds every finalized block,
//! and a state tree at some version at or below the committed height,
//! whole; [`crate::chain::Chain::open`] re-executes the blocks above it. A
//! version is flushed at least every 1 024 blocks, and at a
//! clean stop.
//!
//! Old state versions are pruned as blocks commit
//! ([`Store::keep_state_versions`]): the write that commits height `h` also
//! deletes the nodes that only versions before `h + 1 - keep` use, as
//! listed in `stale_nodes`. Blocks, certificates and indexes are never
//! pruned, nor the values of `tree_values` (most keys are written once).
//!
//! The meta family records the state tree's layout
//! (`cairn_anchoring::STATE_KEY_LAYOUT`: what the tree holds, where
//! `StateKey::hash` puts each kind of key, how the tree hashes its nodes,
//! how its nodes are keyed and encoded here); [`Store::open`] refuses a
//! folder of another layout with [`NodeError::StateLayout`].

mod node_codec;
mod tree;
mod wal;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use borsh::{BorshDeserialize, BorshSerialize};
use cairn_anchoring::{AnchoringError, Block, STATE_KEY_LAYOUT, TreeUpdate};
use cairn_consensus::{CommitCertificate, Evidence};
use cairn_genesis::Hash;
use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, DB, DataBlockIndexType, Env, FlushOptions,
    Options, SliceTransform, WriteBatch, WriteOptions,
};

use crate::NodeError;

pub use tree::RocksTree;
pub(crate) use tree::{NodeWrites, TopNodes, ValueReader, node_writes};
pub use wal::RocksWal;

pub(crate) const META: &str = "meta";
pub(crate) const BLOCKS: &str = "blocks";
pub(crate) const CERTIFICATES: &str = "certificates";
pub(crate) const TREE_NODES: &str = "tree_nodes";
pub(crate) const TREE_VALUES: &str = "tree_values";
pub(crate) const TX_INDEX: &str = "tx_index";
pub(crate) const WAL: &str = "wal";
pub(crate) const EVIDENCE: &str = "evidence";
pub(crate) const ISSUER_EVENTS: &str = "issuer_events";
pub(crate) const PROPOSALS: &str = "proposals";
pub(crate) const STALE_NODES: &str = "stale_nodes";
const FAMILIES: [&str; 11] = [
    META,
    BLOCKS,
    CERTIFICATES,
    TREE_NODES,
    TREE_VALUES,
    TX_INDEX,
    WAL,
    EVIDENCE,
    ISSUER_EVENTS,
    PROPOSALS,
    STALE_NODES,
];

const GENESIS_KEY: &[u8] = b"genesis";
const HEIGHT_KEY: &[u8] = b"committed_height";
const LAYOUT_KEY: &[u8] = b"state_key_layout";
const PRUNED_KEY: &[u8] = b"state_pruned_through";
/// The state tree's version: written with each version, without the log
/// (folders written before it existed hold the tree at the committed
/// height, and get it at their first open).
pub(crate) const STATE_VERSION_KEY: &[u8] = b"state_version";

/// RocksDB's write-ahead log files kept at most, in bytes, about forty
/// full blocks' writes (see [`Store::open`]).
const MAX_TOTAL_LOG_BYTES: u64 = 256 << 20;

/// Most versions whose stale nodes one commit deletes: a backlog (after
/// pruning is turned on, or the window shrunk) drains a few versions a
/// block instead of stalling one commit.
const PRUNE_VERSIONS_PER_COMMIT: u64 = 8;

/// Every this many versions, the state tree's writes are flushed to disk
/// (in the background), so that a crash leaves at most about this many
/// blocks to replay however slowly the memtables fill.
const FLUSH_STATE_EVERY: u64 = 1_024;

/// The state tree's node cache of [`Store::open`]: `storage.tree_cache_mib`'s
/// default.
pub const DEFAULT_TREE_CACHE_BYTES: usize = 256 << 20;

/// The data folder.
#[derive(Clone)]
pub struct Store {
    db: Arc<DB>,
    /// The state tree's top levels as last committed.
    top_nodes: Arc<TopNodes>,
    /// State versions kept, the committed one included; 0 keeps them all.
    keep_state_versions: u64,
    /// The oldest state version kept whole, as the meta family records
    /// it: read at open, then set by each commit that prunes.
    oldest_state_version: Arc<AtomicU64>,
    /// The state tree's version on disk or in the memtables
    /// ([`Store::state_version`]).
    state_version: Arc<AtomicU64>,
    /// Whether an unlogged write may not have been flushed yet.
    unflushed: Arc<AtomicBool>,
    /// Whether the writes that may wait are logged without a sync for now
    /// ([`Store::defer_syncs`]).
    deferring: Arc<AtomicBool>,
    /// Syncs of RocksDB's log made so far ([`Store::log_syncs`]).
    syncs: Arc<AtomicU64>,
}

fn issuer_event_key(issuer: &str, height: u64, index: u32) -> Vec<u8> {
    let mut key = Vec::with_capacity(issuer.len() + 13);
    key.extend_from_slice(issuer.as_bytes());
    key.push(0);
    key.extend_from_slice(&height.to_be_bytes());
    key.extend_from_slice(&index.to_be_bytes());
    key
}

/// When a write through RocksDB's log must reach the disk
/// ([`Store::write_logged`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Durable {
    /// Before the write returns: the log is synced.
    Now,
    /// Before the write returns, unless [`Store::defer_syncs`] is in force;
    /// then at [`Store::sync_deferred`], or at any synced write before it.
    MayWait,
    /// With the next synced write: never synced by itself. For what the
    /// node may lose in a crash because nothing it did depended on it
    /// alone: the consensus log's inputs and height resets, which RocksDB's
    /// ordered log keeps ahead of every signed message and block that
    /// followed them.
    Later,
}

/// A write that skips RocksDB's log: durable only once its memtable
/// flushes.
fn unlogged() -> WriteOptions {
    let mut options = WriteOptions::default();
    options.disable_wal(true);
    options
}

pub(crate) fn decode<T: BorshDeserialize>(
    what: &'static str,
    bytes: &[u8],
) -> Result<T, NodeError> {
    borsh::from_slice(bytes).map_err(|e| NodeError::Corrupt {
        what,
        reason: e.to_string(),
    })
}

/// A big-endian u64 (heights, versions) stored as 8 bytes.
fn be_u64(bytes: &[u8], what: &'static str) -> Result<u64, NodeError> {
    let array: [u8; 8] = bytes.try_into().map_err(|_| NodeError::Corrupt {
        what,
        reason: "not 8 bytes".into(),
    })?;
    Ok(u64::from_be_bytes(array))
}

pub(crate) fn encode<T: BorshSerialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(&mut out, value);
    out
}

/// [`encode`], appended to `out`; nothing if borsh refuses the value (a
/// byte string past 4 GiB, which no bound of the node lets through).
pub(crate) fn encode_into<T: BorshSerialize>(out: &mut Vec<u8>, value: &T) {
    let start = out.len();
    if value.serialize(out).is_err() {
        out.truncate(start);
    }
}

/// Bits per key of the bloom filters on the state tree's families.
const BLOOM_BITS_PER_KEY: f64 = 10.0;

/// Options of one column family. The state tree's are read the most: a
/// block reads every anchored commitment's latest value (most of them
/// absent) and the tree nodes on each path. Nodes are point reads, with a
/// whole-key bloom filter; values are found by a reverse seek within one
/// key hash (the first 32 bytes of `key hash ‖ version`), so that family
/// has a 32-byte prefix extractor with prefix bloom filters, in its
/// memtable too, which let a seek for an absent key skip most files. The
/// transaction index is asked about every transaction a node admits, and
/// almost always answers that it is new: whole-key bloom filters, in its
/// memtable too, answer that without searching each file.
fn family_options(name: &str, tree_cache_bytes: usize) -> Options {
    let mut options = Options::default();
    match name {
        TX_INDEX => {
            let mut table = BlockBasedOptions::default();
            table.set_bloom_filter(BLOOM_BITS_PER_KEY, false);
            options.set_block_based_table_factory(&table);
            options.set_memtable_prefix_bloom_ratio(0.1);
            options.set_memtable_whole_key_filtering(true);
        }
        TREE_NODES => {
            // Each block reads about a node per commitment below the levels
            // kept in memory (`TopNodes`), at random over the tree: point
            // reads, served from the cache when it holds them and with a
            // hash index inside each data block instead of a binary search.
            let mut table = BlockBasedOptions::default();
            table.set_bloom_filter(BLOOM_BITS_PER_KEY, false);
            table.set_block_cache(&Cache::new_hyper_clock_cache(tree_cache_bytes, 0));
            table.set_data_block_index_type(DataBlockIndexType::BinaryAndHash);
            options.set_block_based_table_factory(&table);
        }
        TREE_VALUES => {
            let mut table = BlockBasedOptions::default();
            table.set_bloom_filter(BLOOM_BITS_PER_KEY, false);
            table.set_whole_key_filtering(false);
            options.set_block_based_table_factory(&table);
            options.set_prefix_extractor(SliceTransform::create_fixed_prefix(32));
            options.set_memtable_prefix_bloom_ratio(0.1);
        }
        _ => {}
    }
    options
}

impl Store {
    /// Opens (or creates) the database at `path` for the chain `genesis`;
    /// refuses a database of another chain.
    pub fn open(path: &Path, genesis: Hash) -> Result<Store, NodeError> {
        Store::open_with_tree_cache(path, genesis, DEFAULT_TREE_CACHE_BYTES)
    }

    /// [`Store::open`], with `tree_cache_bytes` of memory for the state
    /// tree's nodes read from disk (RocksDB's block cache of `tree_nodes`).
    pub fn open_with_tree_cache(
        path: &Path,
        genesis: Hash,
        tree_cache_bytes: usize,
    ) -> Result<Store, NodeError> {
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        // The state tree's writes skip the log (`Store::write_state`), so
        // its families must reach disk together, and with the version
        // marker in `meta`: every flush takes every family's memtable, in
        // one atomic step.
        options.set_atomic_flush(true);
        // The log is kept until every family's memtable that it holds has
        // flushed; families written a little each block (blocks,
        // certificates, indexes) fill theirs slowly and would pin gigabytes
        // of log on disk, all replayed at the next start. Past this size,
        // RocksDB flushes.
        options.set_max_total_wal_size(MAX_TOTAL_LOG_BYTES);
        // Flushes and compactions yield the CPU to consensus and the API:
        // their work can wait seconds, a vote or a query should not.
        let mut env = Env::new()?;
        env.lower_thread_pool_cpu_priority();
        env.lower_high_priority_thread_pool_cpu_priority();
        options.set_env(&env);
        let families = FAMILIES
            .iter()
            .map(|name| ColumnFamilyDescriptor::new(*name, family_options(name, tree_cache_bytes)));
        let db = DB::open_cf_descriptors(&options, path, families)?;
        let store = Store {
            db: Arc::new(db),
            top_nodes: Arc::new(TopNodes::new()),
            keep_state_versions: 0,
            oldest_state_version: Arc::new(AtomicU64::new(0)),
            state_version: Arc::new(AtomicU64::new(0)),
            unflushed: Arc::new(AtomicBool::new(false)),
            deferring: Arc::new(AtomicBool::new(false)),
            syncs: Arc::new(AtomicU64::new(0)),
        };
        let oldest = store.read_u64(PRUNED_KEY, "oldest state version")?;
        store
            .oldest_state_version
            .store(oldest.unwrap_or(0), Ordering::Relaxed);
        match store.get(META, GENESIS_KEY)? {
            Some(bytes) => {
                let found: Hash = decode("genesis hash", &bytes)?;
                if found != genesis {
                    return Err(NodeError::WrongChain {
                        expected: genesis,
                        found,
                    });
                }
                let layout = match store.get(META, LAYOUT_KEY)? {
                    Some(bytes) => decode("state key layout", &bytes)?,
                    None => 1,
                };
                if layout != STATE_KEY_LAYOUT {
                    return Err(NodeError::StateLayout {
                        expected: STATE_KEY_LAYOUT,
                        found: layout,
                    });
                }
            }
            None => {
                let mut batch = WriteBatch::default();
                batch.put_cf(store.cf(META)?, GENESIS_KEY, encode(&genesis));
                batch.put_cf(store.cf(META)?, HEIGHT_KEY, 0u64.to_be_bytes());
                batch.put_cf(store.cf(META)?, LAYOUT_KEY, encode(&STATE_KEY_LAYOUT));
                store.write_logged(batch, Durable::Now)?;
            }
        }
        let version = match store.read_u64(STATE_VERSION_KEY, "state version")? {
            Some(version) => version,
            None => {
                // A new folder, whose tree `Chain::open` writes as version 0,
                // or one from before the tree's writes skipped the log, which
                // holds its tree at its committed height. Recorded, synced,
                // before any unlogged write: without it a crash would leave
                // the blocks after it without a version to replay them from.
                let committed = store.committed_height()?;
                let mut batch = WriteBatch::default();
                batch.put_cf(store.cf(META)?, STATE_VERSION_KEY, committed.to_be_bytes());
                store.write_logged(batch, Durable::Now)?;
                committed
            }
        };
        store.state_version.store(version, Ordering::Relaxed);
        Ok(store)
    }

    /// Keeps the state tree's last `keep` versions (the committed one
    /// included) and prunes older ones as blocks commit; 0 keeps every
    /// version. A version is pruned by deleting the nodes no later version
    /// uses: reading it afterwards fails, later versions read as before.
    pub fn keep_state_versions(mut self, keep: u64) -> Store {
        self.keep_state_versions = keep;
        self
    }

    /// State versions kept, the committed one included; 0 if every one is.
    pub fn kept_state_versions(&self) -> u64 {
        self.keep_state_versions
    }

    /// The oldest state version whose every node is still stored: versions
    /// from it to the committed height can be read and proven.
    pub fn oldest_state_version(&self) -> u64 {
        self.oldest_state_version.load(Ordering::Relaxed)
    }

    fn read_u64(&self, key: &[u8], what: &'static str) -> Result<Option<u64>, NodeError> {
        self.get(META, key)?
            .map(|bytes| be_u64(&bytes, what))
            .transpose()
    }

    /// Compacts every column family now, reclaiming the space of deleted
    /// entries (pruned state) instead of when RocksDB's own compactions
    /// reach them. Takes as long as rewriting the folder.
    pub fn compact(&self) -> Result<(), NodeError> {
        for name in FAMILIES {
            self.db
                .compact_range_cf(self.cf(name)?, None::<&[u8]>, None::<&[u8]>);
        }
        Ok(())
    }

    pub(crate) fn cf(&self, name: &'static str) -> Result<&rocksdb::ColumnFamily, NodeError> {
        self.db
            .cf_handle(name)
            .ok_or_else(|| NodeError::Storage(format!("column family {name} is missing")))
    }

    pub(crate) fn get(
        &self,
        family: &'static str,
        key: &[u8],
    ) -> Result<Option<Vec<u8>>, NodeError> {
        Ok(self.db.get_cf(self.cf(family)?, key)?)
    }

    pub(crate) fn db(&self) -> &DB {
        &self.db
    }

    pub(crate) fn top_nodes(&self) -> &TopNodes {
        &self.top_nodes
    }

    /// The height of the last committed block (0 before the first).
    pub fn committed_height(&self) -> Result<u64, NodeError> {
        self.read_u64(HEIGHT_KEY, "committed height")?
            .ok_or(NodeError::Corrupt {
                what: "committed height",
                reason: "missing".into(),
            })
    }

    /// The committed block at `height`.
    pub fn block(&self, height: u64) -> Result<Option<Block>, NodeError> {
        self.get(BLOCKS, &height.to_be_bytes())?
            .map(|b| decode("block", &b))
            .transpose()
    }

    /// The commit certificate of the block at `height`.
    pub fn certificate(&self, height: u64) -> Result<Option<CommitCertificate>, NodeError> {
        self.get(CERTIFICATES, &height.to_be_bytes())?
            .map(|b| decode("commit certificate", &b))
            .transpose()
    }

    /// Where a committed transaction is: (height, index in its block).
    pub fn transaction_location(&self, id: &Hash) -> Result<Option<(u64, u32)>, NodeError> {
        self.get(TX_INDEX, &id.0)?
            .map(|b| decode("transaction index", &b))
            .transpose()
    }

    /// The state tree over this database.
    pub fn tree(&self) -> RocksTree {
        RocksTree::new(self.clone())
    }

    /// Commits a decided block with its certificate, the state tree's new
    /// version (`tree`), the transaction index and the new height. Two
    /// writes: first the block, its certificate, its index entries and the
    /// height, synced through RocksDB's log, so that a finalized block is
    /// never lost; then the tree's version ([`Store::write_state`]), without
    /// the log. After a crash the tree may be behind the blocks, never
    /// ahead of them, and [`crate::chain::Chain::open`] re-executes the blocks
    /// above it. The block must be the next height, and the tree caught up
    /// with the committed height. An error from the second write leaves
    /// the block committed and the tree behind it: the node must stop and
    /// replay at its next start.
    ///
    /// While a [`crate::chain::Chain`] is open over this store, blocks and
    /// versions go through it ([`crate::chain::Chain::commit`]), which
    /// keeps its memory of absent credentials right.
    pub fn commit_block(
        &self,
        block: &Block,
        certificate: &CommitCertificate,
        tree: TreeUpdate,
    ) -> Result<(), NodeError> {
        let height = block.header.height;
        self.check_next(height)?;
        let next = self.state_version() + 1;
        if tree.version != height || next != height {
            return Err(NodeError::Anchoring(AnchoringError::StateVersion {
                version: tree.version,
                next,
            }));
        }
        self.write_block(block, certificate)?;
        self.write_version(tree)
    }

    /// Refuses a block that is not the next height.
    fn check_next(&self, height: u64) -> Result<(), NodeError> {
        let committed = self.committed_height()?;
        if height != committed + 1 {
            return Err(NodeError::OutOfOrder { height, committed });
        }
        Ok(())
    }

    /// The first of [`Store::commit_block`]'s writes alone, as a crash
    /// before the second leaves it.
    #[cfg(test)]
    pub(crate) fn record_block(
        &self,
        block: &Block,
        certificate: &CommitCertificate,
    ) -> Result<(), NodeError> {
        self.check_next(block.header.height)?;
        self.write_block(block, certificate)
    }

    /// The first of [`Store::commit_block`]'s writes: the block, its
    /// certificate, its index entries and the new height, synced.
    fn write_block(&self, block: &Block, certificate: &CommitCertificate) -> Result<(), NodeError> {
        let height = block.header.height;
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(BLOCKS)?, height.to_be_bytes(), encode(block));
        batch.put_cf(
            self.cf(CERTIFICATES)?,
            height.to_be_bytes(),
            encode(certificate),
        );
        for (index, tx) in block.transactions.iter().enumerate() {
            let index = u32::try_from(index).unwrap_or(u32::MAX);
            let id = tx.id();
            batch.put_cf(self.cf(TX_INDEX)?, id.0, encode(&(height, index)));
            batch.put_cf(
                self.cf(ISSUER_EVENTS)?,
                issuer_event_key(&tx.tx.issuer, height, index),
                id.0,
            );
        }
        // Proposals of this height are settled.
        batch.delete_range_cf(
            self.cf(PROPOSALS)?,
            height.to_be_bytes(),
            (height + 1).to_be_bytes(),
        );
        batch.put_cf(self.cf(META)?, HEIGHT_KEY, height.to_be_bytes());
        self.write_logged(batch, Durable::MayWait)?;
        Ok(())
    }

    /// The state tree's version as this folder holds it: the committed
    /// height, or below it after a crash until the blocks above it are
    /// replayed ([`Store::write_state`]).
    pub fn state_version(&self) -> u64 {
        self.state_version.load(Ordering::Relaxed)
    }

    /// Writes the state tree's version of a committed block: its nodes and
    /// values, its list of stale nodes, the pruning of the versions that
    /// fell out of [`Store::keep_state_versions`] and the tree's version
    /// marker, in one write without RocksDB's log (the families flush
    /// together, so after a crash they hold the same versions). Used by
    /// [`Store::commit_block`], and at open to replay the blocks a crash
    /// left above the tree. The version must be the tree's next, at most
    /// the committed height. As for [`Store::commit_block`], a chain open
    /// over this store writes its versions itself.
    pub fn write_state(&self, tree: TreeUpdate) -> Result<(), NodeError> {
        let next = self.state_version() + 1;
        let committed = self.committed_height()?;
        if tree.version != next {
            return Err(NodeError::Anchoring(AnchoringError::StateVersion {
                version: tree.version,
                next,
            }));
        }
        if tree.version > committed {
            return Err(NodeError::StateAhead {
                version: tree.version,
                committed,
            });
        }
        self.write_version(tree)
    }

    /// [`Store::write_state`]'s write, its checks made.
    fn write_version(&self, tree: TreeUpdate) -> Result<(), NodeError> {
        let height = tree.version;
        let mut batch = WriteBatch::default();
        tree::add_to_batch(self, &mut batch, &tree)?;
        let pruned = self.prune(&mut batch, height, &tree.stale)?;
        if pruned != Some(height) {
            batch.put_cf(
                self.cf(STALE_NODES)?,
                height.to_be_bytes(),
                tree::encode_stale(&tree.stale),
            );
        }
        batch.put_cf(self.cf(META)?, STATE_VERSION_KEY, height.to_be_bytes());
        self.db.write_opt(batch, &unlogged())?;
        self.unflushed.store(true, Ordering::Relaxed);
        self.top_nodes.written(tree.nodes);
        self.state_version.store(height, Ordering::Relaxed);
        if let Some(oldest) = pruned {
            self.oldest_state_version.store(oldest, Ordering::Relaxed);
        }
        if height.is_multiple_of(FLUSH_STATE_EVERY)
            && let Err(e) = self.flush(false)
        {
            // Bounds what a crash leaves to replay when the memtables fill
            // slowly (small blocks), in the background. The version is
            // written: a flush refused now (writes stalled) only leaves
            // more to replay, and the memtables flush when they fill.
            tracing::warn!("asking RocksDB to flush the state: {e}");
        }
        Ok(())
    }

    /// Writes `batch` through RocksDB's log, synced as `durable` asks.
    pub(crate) fn write_logged(
        &self,
        batch: WriteBatch,
        durable: Durable,
    ) -> Result<(), NodeError> {
        let sync = match durable {
            Durable::Now => true,
            Durable::MayWait => !self.deferring.load(Ordering::Relaxed),
            Durable::Later => false,
        };
        let mut options = WriteOptions::default();
        options.set_sync(sync);
        self.db.write_opt(batch, &options)?;
        if sync {
            self.syncs.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// From now until [`Store::sync_deferred`], the writes that may wait
    /// (`Durable::MayWait`: a committed block) go through RocksDB's log
    /// without a sync each; one sync then makes them all durable. The
    /// driver does this for a run of blocks fetched by sync, which would
    /// otherwise pay a sync a block. (The consensus log's entries other
    /// than the messages this node signs never take a sync of their own:
    /// `Durable::Later`.)
    ///
    /// What a crash can do in between: RocksDB's log is written in order
    /// (a synced write syncs every log file it has open) and recovered up
    /// to its first incomplete record, so a crash
    /// keeps a prefix of these writes, never a block without the blocks
    /// and log entries before it. It can lose the newest blocks of the
    /// run, which the network holds and the node fetches again; it cannot
    /// lose anything this node signed, because a signed message is logged
    /// `Durable::Now`, and a synced write makes every write before it
    /// durable too.
    pub fn defer_syncs(&self) {
        self.deferring.store(true, Ordering::Relaxed);
    }

    /// Ends [`Store::defer_syncs`]: syncs RocksDB's log, so that every
    /// write made before is on disk.
    pub fn sync_deferred(&self) -> Result<(), NodeError> {
        if self.deferring.swap(false, Ordering::Relaxed) {
            self.db.flush_wal(true)?;
            self.syncs.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// How many times this store has synced RocksDB's log since it was
    /// opened (`cairn_log_syncs_total`).
    pub fn log_syncs(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }

    /// Writes the state tree's unlogged writes to disk, if there are any
    /// since the last time: after it, a crash leaves no block to replay.
    pub fn flush_state(&self) -> Result<(), NodeError> {
        if self.unflushed.swap(false, Ordering::Relaxed) {
            self.flush(true)?;
        }
        Ok(())
    }

    /// Flushes every family's memtable in one atomic step, waiting for it
    /// or not.
    fn flush(&self, wait: bool) -> Result<(), NodeError> {
        let families = FAMILIES
            .iter()
            .map(|name| self.cf(name))
            .collect::<Result<Vec<_>, _>>()?;
        let mut options = FlushOptions::default();
        options.set_wait(wait);
        self.db.flush_cfs_opt(&families, &options)?;
        Ok(())
    }

    /// Writes a version of the state tree alone, through the log and
    /// synced: the genesis state, before any block. The unlogged writes
    /// before it, if any, are flushed first, so that it never reaches
    /// disk without them.
    pub(crate) fn write_state_alone(&self, tree: &TreeUpdate) -> Result<(), NodeError> {
        self.flush_state()?;
        let mut batch = WriteBatch::default();
        tree::add_to_batch(self, &mut batch, tree)?;
        batch.put_cf(
            self.cf(META)?,
            STATE_VERSION_KEY,
            tree.version.to_be_bytes(),
        );
        self.write_logged(batch, Durable::Now)?;
        self.top_nodes.written(tree.nodes.clone());
        self.state_version.store(tree.version, Ordering::Relaxed);
        Ok(())
    }

    /// Adds to `batch`, which commits `height` (whose version made `stale`
    /// stale), the deletion of the nodes only versions older than the kept
    /// ones use: those that versions up to the oldest kept one made stale,
    /// a few versions at a time. The oldest version then kept whole, if it
    /// moves: `height` itself when only one version is kept, its own stale
    /// nodes deleted too.
    fn prune(
        &self,
        batch: &mut WriteBatch,
        height: u64,
        stale: &[jmt::storage::NodeKey],
    ) -> Result<Option<u64>, NodeError> {
        if self.keep_state_versions == 0 {
            return Ok(None);
        }
        let oldest_kept = (height + 1).saturating_sub(self.keep_state_versions);
        let pruned = self.oldest_state_version();
        if oldest_kept <= pruned {
            return Ok(None);
        }
        let stale_cf = self.cf(STALE_NODES)?;
        let through = oldest_kept.min(pruned + PRUNE_VERSIONS_PER_COMMIT);
        // Point reads and point deletions, a version at a time: a range
        // deletion per commit would pile up range tombstones that every
        // later read of the family has to go through. Every version above
        // the pruned one has a list, written by the commit that made it
        // (only the version a commit prunes at once goes without).
        let nodes = self.cf(TREE_NODES)?;
        for version in pruned + 1..=through.min(height - 1) {
            let key = version.to_be_bytes();
            if let Some(keys) = self.db.get_pinned_cf(stale_cf, key)? {
                for node in tree::decode_stale(&keys)? {
                    batch.delete_cf(nodes, node);
                }
                batch.delete_cf(stale_cf, key);
            }
        }
        if through == height {
            for key in stale {
                batch.delete_cf(nodes, tree::node_key(key));
            }
        }
        batch.put_cf(self.cf(META)?, PRUNED_KEY, through.to_be_bytes());
        Ok(Some(through))
    }

    /// Keeps a block proposed at a height not yet committed, so that a
    /// restarted node still holds the values its consensus log names. Not
    /// synced: the log's next synced write makes it durable first.
    pub fn keep_proposal(&self, block: &Block) -> Result<(), NodeError> {
        let mut key = block.header.height.to_be_bytes().to_vec();
        key.extend_from_slice(&block.header.hash().0);
        self.db.put_cf(self.cf(PROPOSALS)?, key, encode(block))?;
        Ok(())
    }

    /// The blocks kept by [`Store::keep_proposal`] for `height`.
    pub fn proposals(&self, height: u64) -> Result<Vec<Block>, NodeError> {
        let prefix = height.to_be_bytes();
        let mut out = Vec::new();
        let iter = self.db.iterator_cf(
            self.cf(PROPOSALS)?,
            rocksdb::IteratorMode::From(&prefix, rocksdb::Direction::Forward),
        );
        for item in iter {
            let (key, value) = item?;
            if !key.starts_with(&prefix) {
                break;
            }
            out.push(decode("kept proposal", &value)?);
        }
        Ok(out)
    }

    /// Transaction ids of `issuer`'s committed transactions, oldest first,
    /// from height `from` on, at most `limit`.
    pub fn issuer_transactions(
        &self,
        issuer: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<(u64, u32, Hash)>, NodeError> {
        let start = issuer_event_key(issuer, from, 0);
        let prefix_len = issuer.len() + 1;
        let mut out = Vec::new();
        let iter = self.db.iterator_cf(
            self.cf(ISSUER_EVENTS)?,
            rocksdb::IteratorMode::From(&start, rocksdb::Direction::Forward),
        );
        for item in iter {
            let (key, value) = item?;
            if out.len() >= limit
                || key.len() != prefix_len + 12
                || key[..prefix_len] != start[..prefix_len]
            {
                break;
            }
            let height = u64::from_be_bytes(
                key[prefix_len..prefix_len + 8]
                    .try_into()
                    .unwrap_or_default(),
            );
            let index = u32::from_be_bytes(key[prefix_len + 8..].try_into().unwrap_or_default());
            let id: [u8; 32] = value.as_ref().try_into().map_err(|_| NodeError::Corrupt {
                what: "issuer event index",
                reason: "a transaction id is not 32 bytes".into(),
            })?;
            out.push((height, index, Hash(id)));
        }
        Ok(out)
    }

    /// Stores evidence of a validator's equivocation (idempotent).
    /// The same pair of messages is one piece of evidence, whichever came first.
    pub fn record_evidence(&self, evidence: &Evidence) -> Result<(), NodeError> {
        let canonical = match *evidence {
            Evidence::ConflictingVotes { first, second }
                if second.signature.0 < first.signature.0 =>
            {
                Evidence::ConflictingVotes {
                    first: second,
                    second: first,
                }
            }
            Evidence::ConflictingProposals { first, second }
                if second.signature.0 < first.signature.0 =>
            {
                Evidence::ConflictingProposals {
                    first: second,
                    second: first,
                }
            }
            other => other,
        };
        let bytes = encode(evidence);
        let key = Hash::domain("cairn 2026-11 evidence key v1", &encode(&canonical));
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(EVIDENCE)?, key.0, bytes);
        self.write_logged(batch, Durable::Now)?;
        Ok(())
    }

    /// Every stored piece of evidence.
    pub fn evidence(&self) -> Result<Vec<Evidence>, NodeError> {
        let mut out = Vec::new();
        for item in self
            .db
            .iterator_cf(self.cf(EVIDENCE)?, rocksdb::IteratorMode::Start)
        {
            let (_, value) = item?;
            out.push(decode("evidence", &value)?);
        }
        Ok(out)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test code: a panic is the failure report
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};

    use cairn_anchoring::{
        AuthenticatedState, BlockHeader, StateKey, transactions_root, version_nodes,
    };
    use cairn_genesis::{PublicKey, Timestamp};

    const CHAIN: Hash = Hash([4; 32]);

    fn empty_block(height: u64, state_root: Hash) -> (Block, CommitCertificate) {
        let header = BlockHeader {
            chain: CHAIN,
            height,
            time: Timestamp(1_000 * height),
            previous: Hash([0; 32]),
            transactions_root: transactions_root(&[]),
            transaction_count: 0,
            state_root,
            validator_set: Hash([0; 32]),
            proposer: PublicKey([0; 32]),
        };
        let certificate = CommitCertificate {
            chain: CHAIN,
            height: cairn_consensus::Height(height),
            round: cairn_consensus::Round(0),
            value: header.value_id(),
            signatures: vec![],
        };
        let block = Block {
            header,
            transactions: vec![],
        };
        (block, certificate)
    }

    /// A chain's state, version by version: what each version holds, and its root.
    struct History {
        states: Vec<(Hash, BTreeMap<StateKey, Vec<u8>>)>,
    }

    impl History {
        /// Commits heights up to `to`: each overwrites one of five issuers and
        /// adds a new one, every fourth changes nothing.
        fn extend(&mut self, store: &Store, to: u64) {
            let mut state =
                AuthenticatedState::new(store.tree(), Some(self.states.len() as u64 - 1));
            for height in self.states.len() as u64..=to {
                let changes: BTreeMap<StateKey, Vec<u8>> = if height % 4 == 0 {
                    BTreeMap::new()
                } else {
                    [
                        (
                            StateKey::Issuer(format!("i{}", height % 5)),
                            vec![height as u8],
                        ),
                        (StateKey::Issuer(format!("new{height}")), vec![1]),
                    ]
                    .into()
                };
                let (root, update) = state.prepare(height, &changes).unwrap();
                let (block, certificate) = empty_block(height, root);
                store.commit_block(&block, &certificate, update).unwrap();
                state.mark_written(height);
                let mut values = self.states.last().unwrap().1.clone();
                values.extend(changes);
                self.states.push((root, values));
            }
        }

        fn start(store: &Store) -> History {
            let mut state = AuthenticatedState::new(store.tree(), None);
            let genesis: BTreeMap<StateKey, Vec<u8>> =
                [(StateKey::Issuer("genesis".into()), vec![0])].into();
            let root = state.commit(0, &genesis).unwrap();
            History {
                states: vec![(root, genesis)],
            }
        }

        /// Versions from `oldest` on read and prove every key; older ones
        /// have lost their root; the stored nodes are exactly those the kept
        /// versions reach.
        fn check(&self, store: &Store, oldest: u64) {
            assert_eq!(store.oldest_state_version(), oldest);
            let latest = self.states.len() as u64 - 1;
            let state = AuthenticatedState::new(store.tree(), Some(latest));
            for version in 0..oldest {
                assert!(state.root(version).is_err(), "version {version} was kept");
            }
            let mut reached = BTreeSet::new();
            for version in oldest..=latest {
                let (root, values) = &self.states[version as usize];
                assert_eq!(state.root(version).unwrap(), *root);
                for (key, value) in values {
                    let (found, proof) = state.prove(key, version).unwrap();
                    assert_eq!(found.as_ref(), Some(value), "{key:?} at {version}");
                    proof.verify(*root, key, Some(value)).unwrap();
                }
                version_nodes(state.store(), version, &mut reached).unwrap();
            }
            let reached: BTreeSet<Vec<u8>> = reached.iter().map(tree::node_key).collect();
            let stored: BTreeSet<Vec<u8>> = store
                .db
                .iterator_cf(store.cf(TREE_NODES).unwrap(), rocksdb::IteratorMode::Start)
                .map(|item| item.unwrap().0.to_vec())
                .collect();
            assert_eq!(
                stored, reached,
                "stored nodes other than the kept versions'"
            );
        }
    }

    /// Blocks committed while syncs are deferred cost no sync each, one
    /// sync ends the wait, and a reopened folder holds them all.
    #[test]
    fn blocks_committed_while_syncs_wait_take_one_sync_between_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), CHAIN).unwrap();
        let mut history = History::start(&store);
        let syncs = store.log_syncs();
        history.extend(&store, 2);
        assert_eq!(store.log_syncs(), syncs + 2, "a sync a block");
        store.defer_syncs();
        history.extend(&store, 40);
        assert_eq!(store.log_syncs(), syncs + 2, "no sync while deferred");
        let mut batch = WriteBatch::default();
        batch.put_cf(store.cf(META).unwrap(), b"probe", [1]);
        store.write_logged(batch, Durable::Now).unwrap();
        assert_eq!(store.log_syncs(), syncs + 3, "what must be durable is");
        store.sync_deferred().unwrap();
        assert_eq!(store.log_syncs(), syncs + 4);
        history.extend(&store, 41);
        assert_eq!(store.log_syncs(), syncs + 5, "a sync a block again");
        drop(store);
        let store = Store::open(dir.path(), CHAIN).unwrap();
        assert_eq!(store.committed_height().unwrap(), 41);
        for height in 1..=41 {
            assert_eq!(store.block(height).unwrap().unwrap().header.height, height);
        }
    }

    /// Entries in the state tree's active memtable: writes not yet
    /// flushed (nor asked to be).
    fn unflushed_tree_entries(store: &Store) -> u64 {
        store
            .db
            .property_int_value_cf(
                store.cf(TREE_NODES).unwrap(),
                "rocksdb.num-entries-active-mem-table",
            )
            .unwrap()
            .unwrap()
    }

    /// However slowly the memtables fill, the state is flushed every
    /// `FLUSH_STATE_EVERY` versions, which bounds what a crash leaves to
    /// replay.
    #[test]
    fn the_state_is_flushed_every_so_many_versions() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), CHAIN).unwrap();
        let mut history = History::start(&store);
        history.extend(&store, FLUSH_STATE_EVERY - 1);
        assert!(unflushed_tree_entries(&store) > 0);
        history.extend(&store, FLUSH_STATE_EVERY);
        // Asked for in the background: the memtable is switched soon.
        let start = std::time::Instant::now();
        while unflushed_tree_entries(&store) > 0 {
            assert!(
                start.elapsed() < std::time::Duration::from_secs(30),
                "no flush after version {FLUSH_STATE_EVERY}"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// Pruning as blocks commit keeps the last versions whole and deletes
    /// every node only older versions used; the point it reached survives a
    /// restart; an archive folder that turns pruning on drains its backlog
    /// a few versions a block.
    #[test]
    fn pruning_keeps_the_last_versions_whole_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), CHAIN)
            .unwrap()
            .keep_state_versions(3);
        let mut history = History::start(&store);
        history.extend(&store, 12);
        history.check(&store, 10);
        drop(store);

        // Reopened as an archive: nothing more is pruned, stale lists pile up.
        let store = Store::open(dir.path(), CHAIN).unwrap();
        history.extend(&store, 40);
        assert_eq!(store.oldest_state_version(), 10);
        drop(store);

        // Back to pruning, keeping 2: the 30 versions behind go 8 a block.
        let store = Store::open(dir.path(), CHAIN)
            .unwrap()
            .keep_state_versions(2);
        for (height, oldest) in [(41, 18), (42, 26), (43, 34), (44, 42)] {
            history.extend(&store, height);
            assert_eq!(store.oldest_state_version(), oldest);
        }
        history.check(&store, 42);
        history.extend(&store, 45);
        history.check(&store, 44);
        let pending: Vec<_> = store
            .db
            .iterator_cf(store.cf(STALE_NODES).unwrap(), rocksdb::IteratorMode::Start)
            .map(|item| be_u64(&item.unwrap().0, "stale list key").unwrap())
            .collect();
        assert_eq!(pending, [45], "stale lists of pruned versions remain");
        drop(store);

        // Keeping only the committed version, each commit prunes its own
        // stale nodes as well.
        let store = Store::open(dir.path(), CHAIN)
            .unwrap()
            .keep_state_versions(1);
        history.extend(&store, 47);
        history.check(&store, 47);
        assert_eq!(
            store
                .db
                .iterator_cf(store.cf(STALE_NODES).unwrap(), rocksdb::IteratorMode::Start)
                .count(),
            0
        );
    }

    #[test]
    fn a_data_folder_of_another_state_layout_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let chain = Hash([3; 32]);
        let store = Store::open(dir.path(), chain).unwrap();
        let meta = store.cf(META).unwrap();
        // Written before layouts were recorded: no layout at all.
        store.db.delete_cf(meta, LAYOUT_KEY).unwrap();
        drop(store);
        match Store::open(dir.path(), chain) {
            Err(NodeError::StateLayout { expected, found }) => {
                assert_eq!((expected, found), (STATE_KEY_LAYOUT, 1))
            }
            Err(other) => panic!("expected StateLayout, got {other}"),
            Ok(_) => panic!("a folder of layout 1 was opened"),
        }
        // A recorded earlier layout is refused too (layout 3 kept a
        // receipt of every applied transaction in the tree).
        let older = tempfile::tempdir().unwrap();
        let store = Store::open(older.path(), chain).unwrap();
        let meta = store.cf(META).unwrap();
        store
            .db
            .put_cf(meta, LAYOUT_KEY, encode(&(STATE_KEY_LAYOUT - 1)))
            .unwrap();
        drop(store);
        match Store::open(older.path(), chain) {
            Err(NodeError::StateLayout { expected, found }) => {
                assert_eq!((expected, found), (STATE_KEY_LAYOUT, STATE_KEY_LAYOUT - 1))
            }
            Err(other) => panic!("expected StateLayout, got {other}"),
            Ok(_) => panic!("a folder of an earlier layout was opened"),
        }
        // A folder of this layout opens, again and again.
        let fresh = tempfile::tempdir().unwrap();
        drop(Store::open(fresh.path(), chain).unwrap());
        assert!(Store::open(fresh.path(), chain).is_ok());
    }
}
