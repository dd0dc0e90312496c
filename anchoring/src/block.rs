//! Blocks: a header that commits to the transactions (a Merkle root) and to
//! the state after them (the state tree's root), chained by hash.

use borsh::{BorshDeserialize, BorshSerialize};
use cairn_consensus::ValueId;
use cairn_genesis::{Domain, Hash, PublicKey, Timestamp};
use serde::{Deserialize, Serialize};

use crate::merkle::{self, InclusionProof};
use crate::{AnchoringError, SignedTransaction};

/// Domain of block header hashes.
pub const HEADER_DOMAIN: &str = "cairn 2026-11 block header v1";
/// Domain of transaction leaves in a block's transaction tree.
pub const TX_LEAF_DOMAIN: &str = "cairn 2026-11 transaction leaf v1";
static HEADER: Domain = Domain::new(HEADER_DOMAIN);
static TX_LEAF: Domain = Domain::new(TX_LEAF_DOMAIN);

/// A block header.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockHeader {
    /// The chain's genesis hash.
    pub chain: Hash,
    /// Height (the first block is 1).
    pub height: u64,
    /// Block time, set by the proposer.
    pub time: Timestamp,
    /// Hash of the previous header (the genesis hash for height 1).
    pub previous: Hash,
    /// Merkle root over the transaction leaves.
    pub transactions_root: Hash,
    /// Number of transactions (pins the tree's size).
    pub transaction_count: u32,
    /// Root of the state after this block.
    pub state_root: Hash,
    /// Hash of the validator set that decides this block.
    pub validator_set: Hash,
    /// The proposer's consensus key.
    pub proposer: PublicKey,
}

impl BlockHeader {
    /// The header hash: the value consensus decides and certificates sign.
    pub fn hash(&self) -> Hash {
        HEADER.hash(&borsh::to_vec(self).unwrap_or_default())
    }

    /// The header hash as a consensus value.
    pub fn value_id(&self) -> ValueId {
        ValueId(self.hash())
    }
}

/// A block header as proof bundles carry it: without the chain and the
/// validator set, which a verifier takes from its trust (the genesis).
/// Expanded with them, it hashes to the header the validators signed; with
/// any other chain or set it hashes to something no certificate covers.
/// 148 bytes instead of 212.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct CompactHeader {
    /// Height (the first block is 1).
    pub height: u64,
    /// Block time, set by the proposer.
    pub time: Timestamp,
    /// Hash of the previous header.
    pub previous: Hash,
    /// Merkle root over the transaction leaves.
    pub transactions_root: Hash,
    /// Number of transactions.
    pub transaction_count: u32,
    /// Root of the state after this block.
    pub state_root: Hash,
    /// The proposer's consensus key.
    pub proposer: PublicKey,
}

impl CompactHeader {
    /// The full header, of chain `chain` decided by the validator set
    /// hashing to `validator_set`.
    pub fn expand(&self, chain: Hash, validator_set: Hash) -> BlockHeader {
        BlockHeader {
            chain,
            height: self.height,
            time: self.time,
            previous: self.previous,
            transactions_root: self.transactions_root,
            transaction_count: self.transaction_count,
            state_root: self.state_root,
            validator_set,
            proposer: self.proposer,
        }
    }
}

impl From<&BlockHeader> for CompactHeader {
    fn from(header: &BlockHeader) -> Self {
        CompactHeader {
            height: header.height,
            time: header.time,
            previous: header.previous,
            transactions_root: header.transactions_root,
            transaction_count: header.transaction_count,
            state_root: header.state_root,
            proposer: header.proposer,
        }
    }
}

/// The leaf of a transaction in its block's transaction tree (signature included).
pub fn transaction_leaf(tx: &SignedTransaction) -> Hash {
    TX_LEAF.hash(&tx.encode())
}

/// The transactions root of a block.
pub fn transactions_root(txs: &[SignedTransaction]) -> Hash {
    merkle::root(&txs.iter().map(transaction_leaf).collect::<Vec<_>>())
}

/// A block: header and transactions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
pub struct Block {
    /// The header.
    pub header: BlockHeader,
    /// The transactions, in order.
    pub transactions: Vec<SignedTransaction>,
}

impl Block {
    /// Checks that the header commits to exactly these transactions.
    pub fn check_transactions(&self) -> Result<(), AnchoringError> {
        let count_ok = u32::try_from(self.transactions.len())
            .is_ok_and(|n| n == self.header.transaction_count);
        if !count_ok || transactions_root(&self.transactions) != self.header.transactions_root {
            return Err(AnchoringError::Malformed {
                what: "block",
                reason: "the header's transactions root or count does not match its transactions"
                    .into(),
            });
        }
        Ok(())
    }

    /// Proof that the transaction at `index` is in this block.
    pub fn prove_transaction(&self, index: usize) -> Option<TxInclusion> {
        let leaves: Vec<Hash> = self.transactions.iter().map(transaction_leaf).collect();
        let proof = merkle::prove(&leaves, index)?;
        Some(TxInclusion {
            transaction: self.transactions[index].clone(),
            proof,
        })
    }
}

/// A transaction with its proof of inclusion in a block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
pub struct TxInclusion {
    /// The transaction.
    pub transaction: SignedTransaction,
    /// Its place in the block's transaction tree.
    pub proof: InclusionProof,
}

impl TxInclusion {
    /// Whether the transaction is in the block with `header`.
    pub fn verify(&self, header: &BlockHeader) -> bool {
        self.proof.leaf_count == u64::from(header.transaction_count)
            && self.proof.verify(
                transaction_leaf(&self.transaction),
                header.transactions_root,
            )
    }
}
