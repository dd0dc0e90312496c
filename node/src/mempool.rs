//! Pending transactions: checked before they are admitted, bounded by count,
//! bytes and commitments (a full pool refuses before any costly check),
//! deduplicated by transaction id, kept in arrival order.
//!
//! Admission ([`admit`]) checks, cheapest first: size, encoding and shape,
//! chain, whether the transaction is committed or pending already (both
//! answered without error: submission is idempotent), the issuer's
//! signature (Cairn's signature rule, in batches when many arrive together:
//! the only time it is verified on this node),
//! and the ledger's rules against the committed state (issuer, key window,
//! accreditation, transition, replay). After every committed block the
//! pool drops what the block included and re-checks what the block may have
//! affected (transactions on the same credentials, or about to expire);
//! what no longer applies is dropped and its reason kept for
//! `GET /v1/txs/{hash}`. Anything else that stops applying (an issuer key
//! whose window closed) is refused, dropped and remembered the same way
//! when a proposer next builds a block with it.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Mutex, RwLock};

use cairn_anchoring::{AnchoringError, SignedTransaction};
use cairn_genesis::{Hash, Timestamp};

use crate::NodeError;
use crate::chain::Chain;

/// Most rejection reasons remembered.
const MAX_REJECTIONS: usize = 100_000;

/// What happened to a submitted transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Admitted now.
    Added,
    /// It was pending already.
    AlreadyPending,
    /// It is in a committed block already: at this height and index.
    AlreadyCommitted(u64, u32),
}

struct Pending {
    tx: SignedTransaction,
    id: Hash,
    bytes: usize,
    writes: usize,
}

/// State writes a transaction makes: one per anchored commitment, one for
/// any other action.
fn writes(tx: &SignedTransaction) -> usize {
    match &tx.tx.action {
        cairn_anchoring::Action::Anchor(items) => items.len(),
        _ => 1,
    }
}

/// The pool.
pub struct Mempool {
    max_txs: usize,
    max_bytes: usize,
    max_writes: usize,
    writes: usize,
    order: BTreeMap<u64, Pending>,
    ids: HashMap<Hash, u64>,
    bytes: usize,
    next: u64,
    rejected: HashMap<Hash, String>,
    rejected_order: VecDeque<Hash>,
}

impl Mempool {
    /// An empty pool holding at most `max_txs` transactions, `max_bytes`
    /// and `max_writes` state writes (commitments).
    pub fn new(max_txs: usize, max_bytes: usize, max_writes: usize) -> Mempool {
        Mempool {
            max_txs,
            max_bytes,
            max_writes,
            writes: 0,
            order: BTreeMap::new(),
            ids: HashMap::new(),
            bytes: 0,
            next: 0,
            rejected: HashMap::new(),
            rejected_order: VecDeque::new(),
        }
    }

    /// Number of pending transactions.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Bytes of pending transactions (borsh encoding).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether `id` is pending (its signature was verified at admission).
    pub fn contains(&self, id: &Hash) -> bool {
        self.ids.contains_key(id)
    }

    /// Adds a checked transaction; refuses when the pool is full.
    pub fn insert(
        &mut self,
        tx: SignedTransaction,
        id: Hash,
        bytes: usize,
    ) -> Result<Admission, NodeError> {
        if self.ids.contains_key(&id) {
            return Ok(Admission::AlreadyPending);
        }
        let w = writes(&tx);
        self.room_for(bytes, w)?;
        let seq = self.next;
        self.next += 1;
        self.order.insert(
            seq,
            Pending {
                tx,
                id,
                bytes,
                writes: w,
            },
        );
        self.ids.insert(id, seq);
        self.bytes += bytes;
        self.writes += w;
        self.rejected.remove(&id);
        Ok(Admission::Added)
    }

    /// Whether one more transaction of `bytes` and `writes` state writes
    /// fits; if not, the refusal.
    pub fn room_for(&self, bytes: usize, writes: usize) -> Result<(), NodeError> {
        if self.order.len() >= self.max_txs
            || self.bytes + bytes > self.max_bytes
            || self.writes + writes > self.max_writes
        {
            return Err(NodeError::MempoolFull {
                txs: self.order.len(),
                bytes: self.bytes,
            });
        }
        Ok(())
    }

    /// The oldest pending transactions that fit in `max_txs`, `max_bytes`
    /// and `max_writes` state writes (one per anchored commitment, one for
    /// any other action).
    pub fn candidates(
        &self,
        max_txs: usize,
        max_bytes: usize,
        max_writes: usize,
    ) -> Vec<SignedTransaction> {
        let mut out = Vec::new();
        let mut bytes = 0;
        let mut writes = 0;
        for p in self.order.values() {
            if out.len() >= max_txs {
                break;
            }
            let w = p.writes;
            if bytes + p.bytes > max_bytes || (writes + w > max_writes && !out.is_empty()) {
                continue;
            }
            bytes += p.bytes;
            writes += w;
            out.push(p.tx.clone());
        }
        out
    }

    fn remove(&mut self, id: &Hash) -> Option<Pending> {
        let seq = self.ids.remove(id)?;
        let p = self.order.remove(&seq)?;
        self.bytes -= p.bytes;
        self.writes -= p.writes;
        Some(p)
    }

    /// Drops the transactions a committed block included.
    pub fn remove_committed<'a>(&mut self, ids: impl IntoIterator<Item = &'a Hash>) {
        for id in ids {
            self.remove(id);
        }
    }

    /// Drops `id` and remembers why.
    pub fn reject(&mut self, id: Hash, reason: String) {
        self.remove(&id);
        if self.rejected.insert(id, reason).is_none() {
            self.rejected_order.push_back(id);
        }
        while self.rejected_order.len() > MAX_REJECTIONS {
            if let Some(old) = self.rejected_order.pop_front() {
                self.rejected.remove(&old);
            }
        }
    }

    /// Re-checks the pending transactions `affected` selects, all in one
    /// call of `check` (one verdict each, in order); drops (and remembers)
    /// those it refuses. Returns how many were dropped. If `check` fails
    /// (the state could not be read), nothing is dropped.
    pub fn recheck(
        &mut self,
        affected: impl Fn(&SignedTransaction) -> bool,
        check: impl FnOnce(
            &[&SignedTransaction],
        ) -> Result<Vec<Result<(), AnchoringError>>, AnchoringError>,
    ) -> Result<usize, AnchoringError> {
        let (ids, txs): (Vec<Hash>, Vec<&SignedTransaction>) = self
            .order
            .values()
            .filter(|p| affected(&p.tx))
            .map(|p| (p.id, &p.tx))
            .unzip();
        let verdicts = check(&txs)?;
        let refused: Vec<(Hash, String)> = ids
            .into_iter()
            .zip(verdicts)
            .filter_map(|(id, verdict)| verdict.err().map(|e| (id, e.to_string())))
            .collect();
        let n = refused.len();
        for (id, reason) in refused {
            self.reject(id, reason);
        }
        Ok(n)
    }

    /// Why `id` was dropped, if it was.
    pub fn rejection(&self, id: &Hash) -> Option<&str> {
        self.rejected.get(id).map(String::as_str)
    }
}

/// Checks an encoded transaction and admits it into `pool`. Returns the
/// decoded transaction, its id and what happened.
pub fn admit(
    chain: &RwLock<Chain>,
    pool: &Mutex<Mempool>,
    bytes: &[u8],
    now: Timestamp,
) -> Result<(SignedTransaction, Hash, Admission), NodeError> {
    let limit = read(chain).genesis().consensus.max_tx_bytes;
    if bytes.len() as u64 > limit {
        return Err(NodeError::TooLarge {
            what: "transaction",
            size: bytes.len() as u64,
            limit,
        });
    }
    let tx = SignedTransaction::decode(bytes)?;
    match precheck(chain, pool, tx, bytes.len())? {
        Precheck::Done(tx, id, admission) => Ok((tx, id, admission)),
        Precheck::Verify(tx, id) => finish(chain, pool, vec![(tx, id, bytes.len())], now)
            .pop()
            .unwrap_or_else(|| Err(missing_verdict().into())),
    }
}

/// The refusal of a transaction that a batch check left without a verdict
/// (it cannot happen: each check answers once per transaction).
fn missing_verdict() -> AnchoringError {
    AnchoringError::Storage("no verdict for a transaction in its batch".into())
}

/// What admission says of one transaction: the transaction, its id and
/// what happened, or why it was refused.
pub type AdmissionResult = Result<(SignedTransaction, Hash, Admission), NodeError>;

/// Admits many decoded transactions (from gossip, or submitted together);
/// one verdict per transaction, in order. The checks are [`admit`]'s, but
/// the signatures of the transactions that reach that step are verified in
/// batches, and the ledger's rules read one view of the committed state per
/// slice of about 2 000 commitments (`WRITES_PER_CHECK`).
pub fn admit_batch(
    chain: &RwLock<Chain>,
    pool: &Mutex<Mempool>,
    txs: Vec<SignedTransaction>,
    now: Timestamp,
) -> Vec<AdmissionResult> {
    let mut verdicts: Vec<Option<AdmissionResult>> = Vec::with_capacity(txs.len());
    let mut places = Vec::new();
    let mut to_finish = Vec::new();
    for (i, tx) in txs.into_iter().enumerate() {
        let size = tx.encode().len();
        match precheck(chain, pool, tx, size) {
            Ok(Precheck::Done(tx, id, admission)) => verdicts.push(Some(Ok((tx, id, admission)))),
            Ok(Precheck::Verify(tx, id)) => {
                verdicts.push(None);
                places.push(i);
                to_finish.push((tx, id, size));
            }
            Err(e) => verdicts.push(Some(Err(e))),
        }
    }
    for (i, verdict) in places.into_iter().zip(finish(chain, pool, to_finish, now)) {
        verdicts[i] = Some(verdict);
    }
    // Every place left empty above was filled in the loop.
    verdicts.into_iter().flatten().collect()
}

/// After the prechecks: the signatures (in batches), the ledger's rules
/// (in slices, each against one view of the committed state), then the
/// pool. One verdict per transaction, in order.
fn finish(
    chain: &RwLock<Chain>,
    pool: &Mutex<Mempool>,
    txs: Vec<(SignedTransaction, Hash, usize)>,
    now: Timestamp,
) -> Vec<AdmissionResult> {
    let all: Vec<&SignedTransaction> = txs.iter().map(|(tx, _, _)| tx).collect();
    let signatures = SignedTransaction::verify_signatures(&all);
    let signed: Vec<&SignedTransaction> = all
        .iter()
        .zip(&signatures)
        .filter(|(_, signature)| signature.is_ok())
        .map(|(tx, _)| *tx)
        .collect();
    let mut rules = check_in_slices(chain, &signed, now).into_iter();
    let mut pool = lock(pool);
    txs.into_iter()
        .zip(signatures)
        .map(|((tx, id, size), signature)| {
            signature?;
            // One ledger verdict per good signature, in the same order;
            // none is a refusal, never an admission.
            rules.next().unwrap_or_else(|| Err(missing_verdict()))?;
            let admission = pool.insert(tx.clone(), id, size)?;
            Ok((tx, id, admission))
        })
        .collect()
}

/// Most state writes (commitments) whose ledger checks run under one hold
/// of the chain's read lock: a commit waits for the slice being checked
/// (a few milliseconds), never for a whole batch of 10 000 transactions.
const WRITES_PER_CHECK: usize = 2_000;

/// The ledger's verdict on each of `txs`, checked in slices of about
/// [`WRITES_PER_CHECK`] state writes, each slice through one view of the
/// committed state. A slice whose state cannot be read gets that error
/// for each of its transactions.
fn check_in_slices(
    chain: &RwLock<Chain>,
    txs: &[&SignedTransaction],
    now: Timestamp,
) -> Vec<Result<(), AnchoringError>> {
    let mut verdicts = Vec::with_capacity(txs.len());
    let mut rest = txs;
    while !rest.is_empty() {
        // At least one transaction, then as many as fit.
        let mut end = 1;
        let mut slice_writes = writes(rest[0]);
        while let Some(&tx) = rest.get(end) {
            slice_writes += writes(tx);
            if slice_writes > WRITES_PER_CHECK {
                break;
            }
            end += 1;
        }
        let (slice, after) = rest.split_at(end);
        match read(chain).check_transactions(slice, now) {
            Ok(slice_verdicts) => verdicts.extend(slice_verdicts),
            Err(e) => verdicts.extend(slice.iter().map(|_| Err(e.clone()))),
        }
        rest = after;
    }
    verdicts
}

/// The outcome of the checks before the signature's.
enum Precheck {
    /// Nothing more to check: committed or pending already.
    Done(SignedTransaction, Hash, Admission),
    /// Well formed and new: its signature comes next.
    Verify(SignedTransaction, Hash),
}

/// Size, shape, chain, and whether the transaction is known already.
fn precheck(
    chain: &RwLock<Chain>,
    pool: &Mutex<Mempool>,
    tx: SignedTransaction,
    size: usize,
) -> Result<Precheck, NodeError> {
    let (limit, max_commitments, chain_id) = {
        let c = read(chain);
        let p = &c.genesis().consensus;
        (p.max_tx_bytes, p.max_commitments_per_tx as usize, c.id())
    };
    if size as u64 > limit {
        return Err(NodeError::TooLarge {
            what: "transaction",
            size: size as u64,
            limit,
        });
    }
    tx.tx.check_shape(max_commitments)?;
    if tx.tx.chain != chain_id {
        return Err(AnchoringError::WrongChain {
            expected: chain_id,
            found: tx.tx.chain,
        }
        .into());
    }
    let id = tx.id();
    if let Some((height, index)) = read(chain).store().transaction_location(&id)? {
        return Ok(Precheck::Done(
            tx,
            id,
            Admission::AlreadyCommitted(height, index),
        ));
    }
    {
        let pool = lock(pool);
        if pool.contains(&id) {
            return Ok(Precheck::Done(tx, id, Admission::AlreadyPending));
        }
        // A full pool refuses before the signature and ledger checks.
        pool.room_for(size, writes(&tx))?;
    }
    Ok(Precheck::Verify(tx, id))
}

/// Locks a mutex, going on with its data if a holder panicked (every
/// update here leaves the pool consistent).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Reads through a lock, as [`lock`] does.
pub(crate) fn read<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Writes through a lock, as [`lock`] does.
pub(crate) fn write<T>(m: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_anchoring::{Action, AnchorItem, Commitment, Transaction};
    use ed25519_dalek::SigningKey;

    fn tx(nonce: u64) -> SignedTransaction {
        let key = SigningKey::from_bytes(&[7; 32]);
        Transaction {
            chain: Hash([1; 32]),
            issuer: "X".into(),
            key: key.verifying_key().into(),
            nonce,
            expires_at: 10,
            action: Action::Anchor(vec![AnchorItem {
                commitment: Commitment(Hash([nonce as u8; 32])),
                credential_type: "t".into(),
                valid_until: None,
            }]),
        }
        .sign(&key)
    }

    fn add(pool: &mut Mempool, t: &SignedTransaction) -> Result<Admission, NodeError> {
        pool.insert(t.clone(), t.id(), t.encode().len())
    }

    #[test]
    fn dedupes_and_keeps_arrival_order() {
        let mut pool = Mempool::new(10, 1 << 20, 1_000);
        let (a, b) = (tx(1), tx(2));
        assert_eq!(add(&mut pool, &b).unwrap(), Admission::Added);
        assert_eq!(add(&mut pool, &a).unwrap(), Admission::Added);
        assert_eq!(add(&mut pool, &b).unwrap(), Admission::AlreadyPending);
        assert_eq!(pool.len(), 2);
        assert_eq!(
            pool.candidates(10, 1 << 20, 100),
            vec![b.clone(), a.clone()]
        );
        assert_eq!(pool.candidates(1, 1 << 20, 100), vec![b]);
    }

    #[test]
    fn bounded_by_count_and_bytes() {
        let size = tx(1).encode().len();
        let mut pool = Mempool::new(2, 1 << 20, 1_000);
        add(&mut pool, &tx(1)).unwrap();
        add(&mut pool, &tx(2)).unwrap();
        assert!(matches!(
            add(&mut pool, &tx(3)),
            Err(NodeError::MempoolFull { txs: 2, .. })
        ));
        let mut pool = Mempool::new(10, size * 2 + 1, 1_000);
        add(&mut pool, &tx(1)).unwrap();
        add(&mut pool, &tx(2)).unwrap();
        assert!(matches!(
            add(&mut pool, &tx(3)),
            Err(NodeError::MempoolFull { .. })
        ));
        assert_eq!(pool.bytes(), size * 2);
        assert_eq!(pool.candidates(10, size, 100), vec![tx(1)]);
        // Each holds one commitment: a budget of one write takes one.
        assert_eq!(pool.candidates(10, 1 << 20, 1), vec![tx(1)]);
        // And by commitments: each holds one.
        let mut pool = Mempool::new(10, 1 << 20, 2);
        add(&mut pool, &tx(1)).unwrap();
        add(&mut pool, &tx(2)).unwrap();
        assert!(matches!(
            add(&mut pool, &tx(3)),
            Err(NodeError::MempoolFull { .. })
        ));
        pool.remove_committed([&tx(1).id()]);
        assert_eq!(add(&mut pool, &tx(3)).unwrap(), Admission::Added);
    }

    #[test]
    fn committed_ones_leave_and_refused_ones_are_remembered() {
        let mut pool = Mempool::new(10, 1 << 20, 1_000);
        let (a, b, c) = (tx(1), tx(2), tx(3));
        for t in [&a, &b, &c] {
            add(&mut pool, t).unwrap();
        }
        pool.remove_committed([&a.id()]);
        let check = |txs: &[&SignedTransaction]| {
            Ok(txs
                .iter()
                .map(|t| {
                    if t.tx.nonce == 2 {
                        Err(AnchoringError::UnknownIssuer { issuer: "X".into() })
                    } else {
                        Ok(())
                    }
                })
                .collect())
        };
        // A check that cannot read the state drops nothing.
        let broken = |_: &[&SignedTransaction]| Err(AnchoringError::Storage("gone".into()));
        assert!(pool.recheck(|_| true, broken).is_err());
        assert_eq!(pool.len(), 2);
        // Only what `affected` selects is checked.
        assert_eq!(pool.recheck(|t| t.tx.nonce == 3, check), Ok(0));
        let dropped = pool.recheck(|_| true, check).unwrap();
        assert_eq!(dropped, 1);
        assert_eq!(pool.len(), 1);
        assert!(pool.contains(&c.id()) && !pool.contains(&b.id()));
        assert!(pool.rejection(&b.id()).unwrap().contains('X'));
        assert_eq!(pool.bytes(), c.encode().len());
    }
}
