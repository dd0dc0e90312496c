//! Anchoring licenses on Cairn: credential documents and their commitments,
//! selective disclosure, issuer transactions, the ledger state machine, the
//! authenticated state and its proofs, proof bundles and offline
//! verification.
//!
//! The flow: an issuer builds a [`CredentialDocument`] (every field salted)
//! and anchors its [`Commitment`] with a [`SignedTransaction`];
//! [`apply_block`] decides what each transaction does to the state (or
//! refuses it with a named [`AnchoringError`], changing nothing;
//! [`check_each`] asks the same of each transaction on its own, as a
//! mempool does);
//! [`AuthenticatedState`] turns the changes into a state root per height;
//! a [`ProofBundle`] carries a finalized header (a [`CompactHeader`]: the
//! verifier's trust supplies its chain and validator set), its commit certificate
//! (reduced to a quorum) and compact state proofs ([`StateProof`]: one hash
//! per non-empty sibling); [`verify`] checks a holder's [`Presentation`] against a
//! bundle and a trusted genesis, offline, and explains its [`Verdict`].
//!
//! Hashes are blake3 in derive-key mode with a context per use (field leaf,
//! Merkle node, commitment, transaction id and leaf, block header, state
//! key, state tree), each context's key derived once per process
//! ([`cairn_genesis::Domain`]). Pure logic: no async runtime, network or database;
//! storage sits behind [`TreeStore`], with an in-memory store; the tree is
//! jmt's, written by an insert of this crate's own and held to jmt's by
//! its tests.

#![forbid(unsafe_code)]

mod block;
mod bundle;
mod credential;
mod error;
mod ledger;
pub mod merkle;
mod presentation;
mod record;
mod state;
mod state_proof;
mod state_tree;
mod transaction;
mod verify;

pub use block::{
    Block, BlockHeader, CompactHeader, HEADER_DOMAIN, TX_LEAF_DOMAIN, TxInclusion,
    transaction_leaf, transactions_root,
};
pub use bundle::{EventProof, MAX_BUNDLE_BYTES, ProofBundle};
pub use credential::{
    COMMITMENT_DOMAIN, Commitment, CredentialDocument, FIELD_LEAF_DOMAIN, Field, MAX_FIELDS,
    MAX_VALUE_BYTES, SALT_BYTES, Salt, commitment, field_leaf,
};
pub use error::AnchoringError;
pub use ledger::{BlockContext, BlockOutcome, StateView, apply_block, check_each, genesis_state};
pub use presentation::{
    DisclosedField, MAX_PRESENTATION_FILE_BYTES, Presentation, PresentationFile,
};
pub use record::{
    CredentialRecord, EventKind, LifecycleEvent, MAX_EVENTS_PER_CREDENTIAL, STATE_KEY_DOMAIN,
    STATE_KEY_LAYOUT, StateKey, Status, TxReceipt,
};
pub use state::{
    AuthenticatedState, Child, InternalNode, MemoryTreeStore, ProofLeaf, STATE_TREE_DOMAIN,
    STATE_TREE_INTERNAL_DOMAIN, STATE_TREE_LEAF_DOMAIN, StateAt, StateHasher, StateProof, TreeNode,
    TreeStore, TreeUpdate, internal_hash, leaf_hash, value_hash, version_nodes,
};
pub use transaction::{
    Action, AnchorItem, MAX_COMMITMENTS_PER_TX, MAX_TX_BYTES, MAX_TX_LIFETIME_BLOCKS,
    RevocationReason, SignedTransaction, TX_ID_DOMAIN, TX_SIGN_DOMAIN, Transaction,
};
pub use verify::{Check, CheckName, Trace, TracedEvent, Trust, Verdict, trace, verify};
