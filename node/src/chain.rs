//! The committed chain: blocks and the state tree in the store, and the
//! three things consensus asks of the application — build a block, judge a
//! proposed one (re-execute it), commit a decided one.
//!
//! A block is valid when it extends the committed chain (height, previous
//! hash, validator set, a later time than its parent and not far in the
//! future), holds at most `max_block_txs` transactions and
//! `max_block_bytes`, its header commits to exactly its transactions,
//! every transaction applies without refusal, and the state root in its
//! header is the root after them. Refused transactions never enter a block:
//! the proposer drops them, and a block that carries one is invalid.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use cairn_anchoring::{
    Action, AnchoringError, AuthenticatedState, Block, BlockContext, BlockHeader, BlockOutcome,
    Commitment, CredentialRecord, EventProof, ProofBundle, SignedTransaction, StateKey, StateProof,
    StateView, TreeUpdate, apply_block, check_each, genesis_state, transactions_root,
};
use cairn_consensus::{CommitCertificate, CompactCertificate, ValidatorSet, ValueId};
use cairn_genesis::{GenesisDocument, Hash, PublicKey, Timestamp};
use jmt::KeyHash;

use crate::NodeError;
use crate::mempool::lock;
use crate::store::{RocksTree, Store, ValueReader};
use tracing::info;

/// How far in the future of this node's clock a proposed block's time may be.
pub const MAX_CLOCK_DRIFT_MS: u64 = 10_000;

/// A block executed against the committed state, ready to commit.
#[derive(Clone)]
pub struct Executed {
    /// The block.
    pub block: Block,
    /// The state tree's new version for the block's height.
    nodes: TreeUpdate,
    /// Number of commitments the block anchors.
    pub commitments: u64,
}

impl Executed {
    /// The block's consensus value.
    pub fn value(&self) -> ValueId {
        self.block.header.value_id()
    }

    /// What committing the block writes of the state tree's nodes.
    pub(crate) fn node_writes(&self) -> crate::store::NodeWrites {
        crate::store::node_writes(&self.nodes)
    }
}

/// Why a proposed block is not valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidBlock(pub String);

impl std::fmt::Display for InvalidBlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The node's view of the committed chain.
pub struct Chain {
    genesis: GenesisDocument,
    chain: Hash,
    set: ValidatorSet,
    store: Store,
    state: AuthenticatedState<RocksTree>,
    height: u64,
    last_header: Option<BlockHeader>,
    /// The last block's certificate reduced to a quorum: every bundle
    /// carries it, so it is kept rather than read and reduced per request.
    last_certificate: Option<CompactCertificate>,
    /// Issuer and credential type proofs at one height, for bundles.
    catalog_proofs: AtHeight<(Option<Vec<u8>>, StateProof)>,
    /// Issuer and credential type entries at one height: admission checks
    /// each transaction alone, and every one reads its issuer and type.
    catalog: AtHeight<Option<Vec<u8>>>,
    /// Blocks re-executed at open ([`Chain::replayed`]).
    replayed: u64,
    /// Credentials read as absent from the committed state, and written
    /// by no version since.
    absent: KnownAbsent,
}

/// Credentials known to be absent from the committed state.
///
/// A credential is read at admission, then again when a block with it is
/// built or executed, by then usually a few heights later: almost always
/// a new credential, absent both times, and the second reverse seek in
/// RocksDB (about a microsecond each, with its bloom filters) is as dear
/// as the first. A key read as absent through a [`Committed`] view is
/// noted here, and every version written to the state (a commit, a
/// replay) takes out the keys it writes before it is written. A view
/// borrows the chain and a write needs it mutably, so no write falls
/// between a read and its note; a credential becomes present only by
/// such a write, so a key noted here is absent from the committed state
/// whatever the height. Only misses are noted, and forgetting them is
/// always safe: past [`MAX_KNOWN_ABSENT`] keys the set starts over.
/// A block from sync, or after a restart, finds its credentials not
/// noted, and reads them.
struct KnownAbsent {
    keys: Mutex<HashSet<[u8; 32]>>,
}

/// Most keys [`KnownAbsent`] holds: seven eighths of 2^20, the most a
/// hash set of 2^20 slots takes, about 33 MiB, which the set keeps once
/// it has grown to it. The default mempool holds at most 100 000
/// commitments; a mempool configured for more than this starts the set
/// over more often, which only costs reads.
const MAX_KNOWN_ABSENT: usize = (1 << 20) / 8 * 7;

impl KnownAbsent {
    fn new() -> KnownAbsent {
        KnownAbsent {
            keys: Mutex::new(HashSet::new()),
        }
    }

    fn contains(&self, key: &KeyHash) -> bool {
        lock(&self.keys).contains(&key.0)
    }

    /// Notes `key`, just read as absent from the committed state.
    fn note(&self, key: KeyHash) {
        let mut keys = lock(&self.keys);
        if keys.len() >= MAX_KNOWN_ABSENT {
            keys.clear();
        }
        keys.insert(key.0);
    }

    /// Takes out the keys of a version about to be written.
    fn written(&mut self, update: &TreeUpdate) {
        let keys = self
            .keys
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if keys.is_empty() {
            return;
        }
        for (key, _) in &update.values {
            keys.remove(&key.0);
        }
    }
}

/// Catalog entries (issuers and credential types, which no transaction
/// writes) as read at one committed height, dropped when the height moves
/// on; at most [`MAX_CATALOG_ENTRIES`].
struct AtHeight<V> {
    entries: Mutex<(u64, HashMap<StateKey, V>)>,
}

/// Most catalog entries kept for one height.
const MAX_CATALOG_ENTRIES: usize = 4_096;

impl<V: Clone> AtHeight<V> {
    fn new() -> AtHeight<V> {
        AtHeight {
            entries: Mutex::new((0, HashMap::new())),
        }
    }

    /// The entry for `key` at `height`, from `read` the first time.
    fn get_or<E>(
        &self,
        height: u64,
        key: &StateKey,
        read: impl FnOnce() -> Result<V, E>,
    ) -> Result<V, E> {
        {
            let entries = lock(&self.entries);
            if entries.0 == height
                && let Some(found) = entries.1.get(key)
            {
                return Ok(found.clone());
            }
        }
        // Read without the lock: other readers go on meanwhile.
        let found = read()?;
        let mut entries = lock(&self.entries);
        if entries.0 != height {
            *entries = (height, HashMap::new());
        }
        if entries.1.len() < MAX_CATALOG_ENTRIES {
            entries.1.insert(key.clone(), found.clone());
        }
        Ok(found)
    }
}

/// The committed state at the chain's height, its catalog entries read
/// through [`Chain`]'s cache.
struct Committed<'a> {
    chain: &'a Chain,
    /// The reader of the state's values, made at the first read and
    /// shared by the rest: a block's or a transaction's reads then need
    /// one RocksDB iterator, not one each.
    /// The chain is borrowed, so no commit can happen while it lives.
    values: RefCell<Option<ValueReader<'a>>>,
}

impl Committed<'_> {
    /// `key`'s value at the chain's height, through this view's reader.
    fn read(&self, key: &StateKey) -> Result<Option<Vec<u8>>, AnchoringError> {
        self.read_hash(&KeyHash(key.hash().0))
    }

    fn read_hash(&self, key: &KeyHash) -> Result<Option<Vec<u8>>, AnchoringError> {
        let chain = self.chain;
        let mut values = self.values.borrow_mut();
        let reader = match &mut *values {
            Some(reader) => reader,
            none => none.insert(ValueReader::new(&chain.store)?),
        };
        Ok(reader.get(key, chain.height)?)
    }

    /// A credential's record, absent without a read if it was read as
    /// absent before ([`KnownAbsent`]).
    fn credential(&self, key: &StateKey) -> Result<Option<Vec<u8>>, AnchoringError> {
        let hash = KeyHash(key.hash().0);
        let absent = &self.chain.absent;
        if absent.contains(&hash) {
            return Ok(None);
        }
        let value = self.read_hash(&hash)?;
        if value.is_none() {
            absent.note(hash);
        }
        Ok(value)
    }
}

impl StateView for Committed<'_> {
    fn get(&self, key: &StateKey) -> Result<Option<Vec<u8>>, AnchoringError> {
        match key {
            StateKey::Issuer(_) | StateKey::CredentialType(_) => {
                let chain = self.chain;
                chain.catalog.get_or(chain.height, key, || self.read(key))
            }
            StateKey::Credential(_) => self.credential(key),
        }
    }

    /// The transaction index holds exactly the transactions of the
    /// committed blocks (a block holds only those it applied), written in
    /// the same batch as each block and its height. Those of this view are
    /// those up to its height: while blocks are replayed at open, the
    /// index also holds the blocks above it.
    fn applied(&self, tx: &Hash) -> Result<bool, AnchoringError> {
        let location = self.chain.store.transaction_location(tx)?;
        Ok(location.is_some_and(|(height, _)| height <= self.chain.height))
    }
}

impl Chain {
    /// Opens the chain in `store`; writes the genesis state (version 0) the first time.
    pub fn open(store: Store, genesis: GenesisDocument) -> Result<Chain, NodeError> {
        let chain = genesis.hash();
        let set = ValidatorSet::from_genesis(&genesis)?;
        let height = store.committed_height()?;
        // Before the first block, write the genesis state unless a previous
        // start did. After it, version 0 may be pruned; the check of the
        // committed root below covers the tree.
        if height == 0 {
            let mut state = AuthenticatedState::new(store.tree(), None);
            if state.root(0).is_err() {
                state.commit(0, &genesis_state(&genesis))?;
            }
        }
        // A crash can leave the state tree behind the committed blocks
        // (its writes skip RocksDB's log), never ahead of them.
        let version = store.state_version();
        if version > height {
            return Err(NodeError::Corrupt {
                what: "state tree",
                reason: format!("version {version} is above the committed height {height}"),
            });
        }
        let state = AuthenticatedState::new(store.tree(), Some(version));
        let last_header = match version {
            0 => None,
            h => Some(
                store
                    .block(h)?
                    .ok_or(NodeError::Corrupt {
                        what: "block",
                        reason: format!("committed block {h} is missing"),
                    })?
                    .header,
            ),
        };
        if let Some(header) = &last_header {
            // The tree the folder holds is the one its blocks were built on.
            let root = state.root(version).map_err(|e| NodeError::Corrupt {
                what: "state tree",
                reason: format!("no state root at version {version}: {e}"),
            })?;
            if root != header.state_root {
                return Err(NodeError::Corrupt {
                    what: "state tree",
                    reason: format!(
                        "the state root at height {version} is {root}, the block's header says {}",
                        header.state_root
                    ),
                });
            }
        }
        let mut chain = Chain {
            genesis,
            chain,
            set,
            store,
            state,
            height: version,
            last_header,
            last_certificate: None,
            catalog_proofs: AtHeight::new(),
            catalog: AtHeight::new(),
            replayed: 0,
            absent: KnownAbsent::new(),
        };
        chain.replay(height)?;
        if height > 0 {
            let certificate = chain.store.certificate(height)?.ok_or(NodeError::Corrupt {
                what: "commit certificate",
                reason: format!("the certificate of committed block {height} is missing"),
            })?;
            chain.last_certificate = Some(chain.compact(&certificate)?);
        }
        Ok(chain)
    }

    /// Brings the state tree up to the committed height `to`: re-executes
    /// each committed block above it, checks its state root and writes its
    /// version ([`Store::write_state`]).
    fn replay(&mut self, to: u64) -> Result<(), NodeError> {
        let from = self.height + 1;
        for height in from..=to {
            let block = self.store.block(height)?.ok_or(NodeError::Corrupt {
                what: "block",
                reason: format!(
                    "committed block {height}, needed to bring the state tree from version {} to {to}, is missing",
                    from - 1
                ),
            })?;
            // Its signatures were checked when it was first executed, and
            // a quorum certified it; its state root is checked here.
            let executed = self.execute(&block, &|_| true, None)?.map_err(
                |InvalidBlock(reason)| NodeError::Corrupt {
                    what: "block",
                    reason: format!(
                        "committed block {height} does not re-execute on the stored state: {reason}"
                    ),
                },
            )?;
            self.absent.written(&executed.nodes);
            self.store.write_state(executed.nodes)?;
            self.state.mark_written(height);
            self.height = height;
            self.last_header = Some(block.header);
        }
        self.replayed = (to + 1).saturating_sub(from);
        if from <= to {
            // On disk now: a crash soon after does not replay them again.
            self.store.flush_state()?;
            info!(
                from,
                to, "replayed the committed blocks above the stored state tree"
            );
        }
        Ok(())
    }

    /// Committed blocks re-executed when the chain opened, to bring the
    /// state tree up to the committed height (0 unless a crash left it
    /// behind).
    pub fn replayed(&self) -> u64 {
        self.replayed
    }

    /// The chain's genesis hash.
    pub fn id(&self) -> Hash {
        self.chain
    }

    /// The genesis document.
    pub fn genesis(&self) -> &GenesisDocument {
        &self.genesis
    }

    /// The validator set (fixed by the genesis).
    pub fn validators(&self) -> &ValidatorSet {
        &self.set
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The committed height (0 before the first block).
    pub fn height(&self) -> u64 {
        self.height
    }

    /// The header of the last committed block.
    pub fn last_header(&self) -> Option<&BlockHeader> {
        self.last_header.as_ref()
    }

    /// The hash the next block must name as its previous.
    pub fn previous_hash(&self) -> Hash {
        self.last_header
            .as_ref()
            .map_or(self.chain, BlockHeader::hash)
    }

    /// The earliest time the next block may have.
    fn min_next_time(&self) -> Timestamp {
        match &self.last_header {
            Some(h) => Timestamp(h.time.0 + 1),
            None => self.genesis.genesis_time,
        }
    }

    fn context(&self, height: u64, time: Timestamp) -> BlockContext {
        BlockContext {
            chain: self.chain,
            height,
            time,
            max_commitments_per_tx: self.genesis.consensus.max_commitments_per_tx as usize,
            // Callers verify signatures before execution (mempool admission,
            // or the proposal check below), never twice.
            signatures_verified: true,
        }
    }

    /// Checks each of `txs` (signatures already verified) against the
    /// committed state as if it were the only transaction of the next block
    /// at `time`, through one view of the state: one verdict each. Only a
    /// storage failure is an `Err`.
    pub fn check_transactions(
        &self,
        txs: &[&SignedTransaction],
        time: Timestamp,
    ) -> Result<Vec<Result<(), AnchoringError>>, AnchoringError> {
        let ctx = self.context(self.height + 1, time);
        let verdicts = check_each(&self.committed(), &ctx, txs)?;
        Ok(verdicts.into_iter().map(|v| v.map(|_| ())).collect())
    }

    /// Builds and executes the next block from `candidates` (signatures
    /// verified, in mempool order), proposed by `proposer` at `now` (or just
    /// after the parent, if the clock is behind it). Returns the block and
    /// the candidates that were refused, with why.
    pub fn build(
        &self,
        candidates: Vec<SignedTransaction>,
        now: Timestamp,
        proposer: PublicKey,
    ) -> Result<(Executed, Vec<(SignedTransaction, AnchoringError)>), NodeError> {
        let height = self.height + 1;
        let time = Timestamp(now.0.max(self.min_next_time().0));
        let ctx = self.context(height, time);
        let view = self.committed();
        let outcome = apply_block(&view, &ctx, &candidates)?;
        let mut refused = Vec::new();
        let (txs, outcome) = if outcome.results.iter().all(Result::is_ok) {
            (candidates, outcome)
        } else {
            let mut kept = Vec::with_capacity(candidates.len());
            for (tx, result) in candidates.into_iter().zip(outcome.results) {
                match result {
                    Ok(_) => kept.push(tx),
                    Err(e) => refused.push((tx, e)),
                }
            }
            // A refused transaction changed nothing, so the others apply
            // the same without it; run again for their receipts' positions.
            let outcome = apply_block(&view, &ctx, &kept)?;
            (kept, outcome)
        };
        let (state_root, nodes) = self.state.prepare(height, &outcome.changes)?;
        let header = BlockHeader {
            chain: self.chain,
            height,
            time,
            previous: self.previous_hash(),
            transactions_root: transactions_root(&txs),
            transaction_count: u32::try_from(txs.len()).unwrap_or(u32::MAX),
            state_root,
            validator_set: self.set.hash(),
            proposer,
        };
        let commitments = count_commitments(&txs);
        Ok((
            Executed {
                block: Block {
                    header,
                    transactions: txs,
                },
                nodes,
                commitments,
            },
            refused,
        ))
    }

    /// Re-executes a proposed block for the next height. `known` tells
    /// which transactions' signatures were verified already (mempool
    /// admission); the others are verified here. `now` is this node's
    /// clock, or `None` for a block already certified (its time was judged
    /// by the validators who signed it).
    pub fn execute(
        &self,
        block: &Block,
        known: &dyn Fn(&Hash) -> bool,
        now: Option<Timestamp>,
    ) -> Result<Result<Executed, InvalidBlock>, NodeError> {
        let invalid = |reason: String| Ok(Err(InvalidBlock(reason)));
        let header = &block.header;
        let height = self.height + 1;
        if header.chain != self.chain {
            return invalid(format!("block of chain {}", header.chain));
        }
        if header.height != height {
            return invalid(format!(
                "block at height {}, expected {height}",
                header.height
            ));
        }
        if header.previous != self.previous_hash() {
            return invalid(format!(
                "previous hash {} is not the committed block {}",
                header.previous,
                self.previous_hash()
            ));
        }
        if header.validator_set != self.set.hash() {
            return invalid("names another validator set".into());
        }
        if header.time < self.min_next_time() {
            return invalid(format!(
                "time {} is not after its parent's",
                header.time.to_rfc3339()
            ));
        }
        if let Some(now) = now
            && header.time.0 > now.0.saturating_add(MAX_CLOCK_DRIFT_MS)
        {
            return invalid(format!(
                "time {} is more than {MAX_CLOCK_DRIFT_MS} ms ahead of this node's clock",
                header.time.to_rfc3339()
            ));
        }
        let params = &self.genesis.consensus;
        if block.transactions.len() > params.max_block_txs as usize {
            return invalid(format!(
                "{} transactions, more than {}",
                block.transactions.len(),
                params.max_block_txs
            ));
        }
        let bytes: usize = block.transactions.iter().map(|t| t.encode().len()).sum();
        if bytes as u64 > params.max_block_bytes {
            return invalid(format!(
                "{bytes} bytes of transactions, more than {}",
                params.max_block_bytes
            ));
        }
        if let Err(e) = block.check_transactions() {
            return invalid(e.to_string());
        }
        // Signatures this node has not checked at admission, in batches.
        let unknown: Vec<&SignedTransaction> = block
            .transactions
            .iter()
            .filter(|tx| !known(&tx.id()))
            .collect();
        if let Some(Err(e)) = SignedTransaction::verify_signatures(&unknown)
            .into_iter()
            .find(Result::is_err)
        {
            return invalid(e.to_string());
        }
        let outcome = apply_block(
            &self.committed(),
            &self.context(height, header.time),
            &block.transactions,
        )?;
        if let Some((index, Err(e))) = outcome.results.iter().enumerate().find(|(_, r)| r.is_err())
        {
            return invalid(format!("transaction {index} is refused: {e}"));
        }
        let (root, nodes) = self.prepared(height, &outcome)?;
        if root != header.state_root {
            return invalid(format!(
                "state root {} differs from the re-executed {root}",
                header.state_root
            ));
        }
        Ok(Ok(Executed {
            block: block.clone(),
            nodes,
            commitments: count_commitments(&block.transactions),
        }))
    }

    fn prepared(
        &self,
        height: u64,
        outcome: &BlockOutcome,
    ) -> Result<(Hash, TreeUpdate), NodeError> {
        Ok(self.state.prepare(height, &outcome.changes)?)
    }

    /// Commits an executed block with its certificate
    /// ([`Store::commit_block`]), and gives the block back.
    pub fn commit(
        &mut self,
        executed: Executed,
        certificate: &CommitCertificate,
    ) -> Result<Block, NodeError> {
        let header = &executed.block.header;
        if certificate.value != header.value_id() || certificate.height.0 != header.height {
            return Err(NodeError::InvalidCertificate(format!(
                "the certificate for {} at height {} does not name block {}",
                certificate.value.0,
                certificate.height.0,
                header.hash()
            )));
        }
        let compact = self.compact(certificate)?;
        let Executed { block, nodes, .. } = executed;
        self.absent.written(&nodes);
        self.store.commit_block(&block, certificate, nodes)?;
        let header = &block.header;
        self.state.mark_written(header.height);
        self.height = header.height;
        self.last_header = Some(header.clone());
        self.last_certificate = Some(compact);
        Ok(block)
    }

    /// The value of `key` in the committed state, decoded.
    pub fn read<T: borsh::BorshDeserialize>(&self, key: &StateKey) -> Result<Option<T>, NodeError> {
        self.state
            .at(self.height)
            .get(key)?
            .map(|bytes| crate::store::decode("state entry", &bytes))
            .transpose()
    }

    /// The committed block at `height` with its certificate.
    pub fn certified_block(
        &self,
        height: u64,
    ) -> Result<Option<(Block, CommitCertificate)>, NodeError> {
        match (self.store.block(height)?, self.store.certificate(height)?) {
            (Some(b), Some(c)) => Ok(Some((b, c))),
            _ => Ok(None),
        }
    }

    /// The proof of the transaction at `index` of block `height`.
    pub fn event_proof(&self, height: u64, index: u32) -> Result<EventProof, NodeError> {
        let (block, certificate) = self.certified_block(height)?.ok_or(NodeError::Corrupt {
            what: "block",
            reason: format!("committed block {height} is missing"),
        })?;
        let inclusion = block
            .prove_transaction(index as usize)
            .ok_or(NodeError::Corrupt {
                what: "block",
                reason: format!("block {height} has no transaction {index}"),
            })?;
        Ok(EventProof {
            header: (&block.header).into(),
            certificate: self.compact(&certificate)?,
            inclusion,
        })
    }

    /// The value and proof of an issuer or credential type at the committed
    /// height: the same for every bundle of that height, so kept until the
    /// next block.
    fn catalog_proof(&self, key: StateKey) -> Result<(Option<Vec<u8>>, StateProof), NodeError> {
        let height = self.height;
        self.catalog_proofs
            .get_or(height, &key, || self.state.prove(&key, height))
            .map_err(NodeError::from)
    }

    /// The committed state, catalog entries cached per height.
    fn committed(&self) -> Committed<'_> {
        Committed {
            chain: self,
            values: RefCell::new(None),
        }
    }

    /// A stored certificate reduced to a quorum, as bundles carry it.
    fn compact(&self, certificate: &CommitCertificate) -> Result<CompactCertificate, NodeError> {
        certificate.compact(&self.set).ok_or(NodeError::Corrupt {
            what: "commit certificate",
            reason: format!(
                "the certificate of height {} holds no quorum of the validator set",
                certificate.height
            ),
        })
    }

    /// A proof bundle for `commitment` at the committed height, with the
    /// proofs of its events if `with_events`. `None` if it was never
    /// anchored, or before the first block.
    pub fn bundle(
        &self,
        commitment: &Commitment,
        with_events: bool,
    ) -> Result<Option<ProofBundle>, NodeError> {
        let height = self.height;
        let (Some(header), Some(certificate)) = (&self.last_header, &self.last_certificate) else {
            return Ok(None);
        };
        let prove = |key: &StateKey| self.state.prove(key, height);
        let (record, record_proof) = prove(&StateKey::Credential(*commitment))?;
        let Some(record) = record else {
            return Ok(None);
        };
        let record: CredentialRecord = crate::store::decode("credential record", &record)?;
        let (issuer, issuer_proof) = self.catalog_proof(StateKey::Issuer(record.issuer.clone()))?;
        let (credential_type, type_proof) =
            self.catalog_proof(StateKey::CredentialType(record.credential_type.clone()))?;
        let missing = |what| NodeError::Corrupt {
            what,
            reason: format!("the record of {commitment} names a missing entry"),
        };
        let events = if with_events {
            record
                .events
                .iter()
                .map(|e| self.event_proof(e.height, e.tx_index))
                .collect::<Result<_, _>>()?
        } else {
            Vec::new()
        };
        Ok(Some(ProofBundle {
            header: header.into(),
            certificate: certificate.clone(),
            record,
            record_proof,
            issuer: crate::store::decode("issuer", &issuer.ok_or_else(|| missing("issuer"))?)?,
            issuer_proof,
            credential_type: crate::store::decode(
                "credential type",
                &credential_type.ok_or_else(|| missing("credential type"))?,
            )?,
            type_proof,
            events,
        }))
    }
}

fn count_commitments(txs: &[SignedTransaction]) -> u64 {
    txs.iter()
        .map(|t| match &t.tx.action {
            Action::Anchor(items) => items.len() as u64,
            Action::Supersede { .. } => 1,
            _ => 0,
        })
        .sum()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::bench::GrowthChain;

    /// A chain of four validators in a folder of its own.
    struct Fresh {
        dir: tempfile::TempDir,
        setup: GrowthChain,
    }

    impl Fresh {
        fn new() -> Fresh {
            let dir = tempfile::tempdir().unwrap();
            let setup = GrowthChain::new(dir.path(), 4).unwrap();
            Fresh { dir, setup }
        }

        /// Builds the next block of `tx` alone, which must apply, and
        /// commits it.
        fn build_and_commit(&self, chain: &mut Chain, tx: &SignedTransaction) {
            let (executed, refused) = chain
                .build(vec![tx.clone()], Timestamp::now(), self.setup.proposer())
                .unwrap();
            assert!(refused.is_empty(), "{refused:?}");
            let certificate = self.setup.certify(&executed.block.header);
            chain.commit(executed, &certificate).unwrap();
        }

        /// The folder's chain, opened (again).
        fn open(&self) -> Chain {
            let store = Store::open(&self.dir.path().join("data"), self.setup.genesis.hash());
            Chain::open(store.unwrap(), self.setup.genesis.clone()).unwrap()
        }
    }

    /// A credential read as absent (at admission, or while a block is
    /// built, executed or replayed) is present once a block anchoring it
    /// is committed or replayed: a second anchor of it is refused at
    /// admission, left out of a build, and makes a block carrying it
    /// invalid.
    #[test]
    fn a_credential_read_as_absent_is_present_once_written() {
        let fresh = Fresh::new();
        let (setup, open) = (&fresh.setup, || fresh.open());
        // The same three commitments (nonce 7), in two transactions.
        let (first, again) = (setup.anchor(7, 1, 3), setup.anchor(7, 2, 3));
        let anchored = |tx: &SignedTransaction| AnchoringError::AlreadyAnchored {
            commitment: tx.tx.action.commitments().next().unwrap(),
        };
        let refused_everywhere = |chain: &Chain, tx: &SignedTransaction| {
            let error = anchored(tx);
            let verdicts = chain.check_transactions(&[tx], Timestamp::now()).unwrap();
            assert_eq!(verdicts, vec![Err(error.clone())]);
            let (built, refused) = chain
                .build(vec![tx.clone()], Timestamp::now(), setup.proposer())
                .unwrap();
            assert_eq!(refused, vec![(tx.clone(), error.clone())]);
            let mut block = built.block;
            block.transactions = vec![tx.clone()];
            block.header.transactions_root = transactions_root(&block.transactions);
            block.header.transaction_count = 1;
            match chain.execute(&block, &|_| true, None).unwrap() {
                Err(InvalidBlock(reason)) => {
                    assert_eq!(reason, format!("transaction 0 is refused: {error}"))
                }
                Ok(_) => panic!("a block anchoring a credential again was accepted"),
            }
        };
        let mut chain = open();
        // Both read as absent, more than once.
        for _ in 0..2 {
            assert_eq!(
                chain
                    .check_transactions(&[&first, &again], Timestamp::now())
                    .unwrap(),
                vec![Ok(()), Ok(())]
            );
        }
        fresh.build_and_commit(&mut chain, &first);
        refused_everywhere(&chain, &again);

        // A block committed but whose state a crash lost is replayed at
        // open, after its credentials were read as absent there (this
        // build, only to make the block, notes them in a chain then
        // dropped).
        let (later, later_again) = (setup.anchor(9, 3, 2), setup.anchor(9, 4, 2));
        let (executed, _) = chain
            .build(vec![later.clone()], Timestamp::now(), setup.proposer())
            .unwrap();
        let certificate = setup.certify(&executed.block.header);
        chain
            .store()
            .record_block(&executed.block, &certificate)
            .unwrap();
        drop(chain);
        let chain = open();
        assert_eq!(chain.replayed(), 1);
        refused_everywhere(&chain, &later_again);
        refused_everywhere(&chain, &again);
    }

    /// Past its bound, the set of absent keys starts over rather than
    /// grow, and a key noted since is there.
    #[test]
    fn the_known_absent_keys_stay_within_their_bound() {
        let absent = KnownAbsent::new();
        let key = |i: usize| KeyHash(Hash::domain("absent test", &i.to_be_bytes()).0);
        for i in 0..=MAX_KNOWN_ABSENT {
            absent.note(key(i));
        }
        let held = lock(&absent.keys).len();
        assert_eq!(held, 1, "{held} keys held");
        assert!(absent.contains(&key(MAX_KNOWN_ABSENT)) && !absent.contains(&key(0)));
    }

    /// The replay rule reads the transaction index: a transaction of a
    /// committed block is refused when it comes again, at admission, when
    /// this node builds a block, and in a block another proposer built,
    /// also after a restart.
    #[test]
    fn a_committed_transaction_is_refused_when_it_comes_again() {
        let fresh = Fresh::new();
        let (setup, open) = (&fresh.setup, || fresh.open());
        let mut chain = open();
        let first = setup.anchor(1, 1, 3);
        fresh.build_and_commit(&mut chain, &first);
        let replay = AnchoringError::Replay { tx: first.id() };
        for reopened in [false, true] {
            if reopened {
                drop(chain);
                chain = open();
            }
            let second = setup.anchor(2, 2, 3);
            assert_eq!(
                chain
                    .check_transactions(&[&first, &second], Timestamp::now())
                    .unwrap(),
                vec![Err(replay.clone()), Ok(())]
            );
            let (built, refused) = chain
                .build(
                    vec![first.clone(), second.clone()],
                    Timestamp::now(),
                    setup.proposer(),
                )
                .unwrap();
            assert_eq!(refused, vec![(first.clone(), replay.clone())]);
            assert_eq!(built.block.transactions, vec![second.clone()]);
            // Another proposer's block that carries it again is invalid.
            let mut block = built.block.clone();
            block.transactions.insert(0, first.clone());
            block.header.transactions_root = transactions_root(&block.transactions);
            block.header.transaction_count = 2;
            let verdict = chain.execute(&block, &|_| true, None).unwrap();
            match verdict {
                Err(InvalidBlock(reason)) => {
                    assert_eq!(reason, format!("transaction 0 is refused: {replay}"),)
                }
                Ok(_) => panic!("a block replaying a committed transaction was accepted"),
            }
        }
    }

    /// A chain of blocks of a few anchors each, built in a folder of its
    /// own (each block's execution and certificate), and an empty data
    /// folder of the same chain to commit or record them in.
    struct Built {
        _dir: tempfile::TempDir,
        setup: GrowthChain,
        blocks: Vec<(Executed, CommitCertificate)>,
        path: std::path::PathBuf,
    }

    impl Built {
        fn new(blocks: u64) -> Built {
            let dir = tempfile::tempdir().unwrap();
            let setup = GrowthChain::new(dir.path(), 4).unwrap();
            let store = Store::open(&dir.path().join("reference"), setup.genesis.hash()).unwrap();
            let mut chain = Chain::open(store, setup.genesis.clone()).unwrap();
            let blocks = (1..=blocks)
                .map(|height| {
                    let txs = vec![
                        setup.anchor(2 * height, height, 3),
                        setup.anchor(2 * height + 1, height, 2),
                    ];
                    let (executed, refused) = chain
                        .build(txs, Timestamp::now(), setup.proposer())
                        .unwrap();
                    assert!(refused.is_empty(), "{refused:?}");
                    let certificate = setup.certify(&executed.block.header);
                    chain.commit(executed.clone(), &certificate).unwrap();
                    (executed, certificate)
                })
                .collect();
            let path = dir.path().join("data");
            Built {
                _dir: dir,
                setup,
                blocks,
                path,
            }
        }

        /// The data folder's chain.
        fn open(&self) -> Result<Chain, NodeError> {
            let store = Store::open(&self.path, self.setup.genesis.hash())?;
            Chain::open(store, self.setup.genesis.clone())
        }
    }

    /// The state tree is written without RocksDB's log, after the block:
    /// a crash between the two writes (here, the second never made)
    /// leaves blocks above the tree, which the next open re-executes, the
    /// replay rule reading only the index entries below each; until then
    /// no block commits and no state is written out of turn.
    #[test]
    fn blocks_above_the_state_tree_are_replayed_at_open() {
        let built = Built::new(7);
        let (blocks, open) = (&built.blocks, || built.open());
        let mut chain = open().unwrap();
        for (executed, certificate) in &blocks[..3] {
            chain.commit(executed.clone(), certificate).unwrap();
        }
        for (executed, certificate) in &blocks[3..6] {
            chain
                .store()
                .record_block(&executed.block, certificate)
                .unwrap();
        }
        let store = chain.store().clone();
        assert_eq!(
            (store.committed_height().unwrap(), store.state_version()),
            (6, 3)
        );
        let (seventh, certificate) = &blocks[6];
        assert!(matches!(
            store.commit_block(&seventh.block, certificate, seventh.nodes.clone()),
            Err(NodeError::Anchoring(AnchoringError::StateVersion {
                version: 7,
                next: 4
            }))
        ));
        assert!(matches!(
            store.write_state(seventh.nodes.clone()),
            Err(NodeError::Anchoring(AnchoringError::StateVersion {
                version: 7,
                next: 4
            }))
        ));
        assert_eq!(
            (store.committed_height().unwrap(), store.state_version()),
            (6, 3)
        );
        drop((chain, store));

        let mut chain = open().unwrap();
        assert_eq!(chain.replayed(), 3);
        // The replayed versions went to disk at once, not left to the
        // memtables for a second crash to lose.
        let store = chain.store();
        let in_memory = store
            .db()
            .property_int_value_cf(
                store.cf(crate::store::TREE_NODES).unwrap(),
                "rocksdb.num-entries-active-mem-table",
            )
            .unwrap();
        assert_eq!(in_memory, Some(0));
        assert_eq!((chain.height(), chain.store().state_version()), (6, 6));
        assert_eq!(
            chain.last_header().unwrap().state_root,
            blocks[5].0.block.header.state_root
        );
        let root = chain.state.root(6).unwrap();
        assert_eq!(root, blocks[5].0.block.header.state_root);
        // A replayed block's transaction is refused when it comes again.
        let again = &blocks[4].0.block.transactions[0];
        assert_eq!(
            chain
                .check_transactions(&[again], Timestamp::now())
                .unwrap(),
            vec![Err(AnchoringError::Replay { tx: again.id() })]
        );
        // The state is not written ahead of its block.
        assert!(matches!(
            chain.store().write_state(seventh.nodes.clone()),
            Err(NodeError::StateAhead {
                version: 7,
                committed: 6
            })
        ));
        let executed = chain
            .execute(&seventh.block, &|_| false, None)
            .unwrap()
            .unwrap();
        chain.commit(executed, certificate).unwrap();
        assert_eq!(
            chain.state.root(7).unwrap(),
            seventh.block.header.state_root
        );
        drop(chain);
        assert_eq!(
            open().unwrap().replayed(),
            0,
            "a clean close keeps the tree"
        );
    }

    /// A folder from before the state's writes skipped the log records no
    /// state version: its first open records its tree at the committed
    /// height, so that the blocks a crash leaves above it are replayed.
    #[test]
    fn a_folder_without_a_state_version_gets_one_at_open() {
        let built = Built::new(4);
        let (blocks, open) = (&built.blocks, || built.open().unwrap());
        let mut chain = open();
        for (executed, certificate) in &blocks[..2] {
            chain.commit(executed.clone(), certificate).unwrap();
        }
        let store = chain.store().clone();
        let meta = store.cf(crate::store::META).unwrap();
        store
            .db()
            .delete_cf(meta, crate::store::STATE_VERSION_KEY)
            .unwrap();
        drop((chain, store));
        let chain = open();
        assert_eq!((chain.replayed(), chain.store().state_version()), (0, 2));
        for (executed, certificate) in &blocks[2..] {
            chain
                .store()
                .record_block(&executed.block, certificate)
                .unwrap();
        }
        drop(chain);
        let chain = open();
        assert_eq!((chain.replayed(), chain.height()), (2, 4));
        assert_eq!(
            chain.state.root(4).unwrap(),
            blocks[3].0.block.header.state_root
        );
    }

    /// A folder whose tree is behind its blocks, and a block it needs to
    /// replay missing, is refused by name.
    #[test]
    fn a_missing_block_to_replay_is_named() {
        let built = Built::new(3);
        let blocks = &built.blocks;
        let mut chain = built.open().unwrap();
        let store = chain.store().clone();
        chain.commit(blocks[0].0.clone(), &blocks[0].1).unwrap();
        for (executed, certificate) in &blocks[1..] {
            store.record_block(&executed.block, certificate).unwrap();
        }
        store
            .db()
            .delete_cf(store.cf(crate::store::BLOCKS).unwrap(), 2u64.to_be_bytes())
            .unwrap();
        drop((chain, store));
        match built.open() {
            Err(NodeError::Corrupt {
                what: "block",
                reason,
            }) => assert_eq!(
                reason,
                "committed block 2, needed to bring the state tree from version 1 to 3, is missing"
            ),
            Err(e) => panic!("another error: {e}"),
            Ok(_) => panic!("a folder missing a block to replay was opened"),
        }
    }
}
