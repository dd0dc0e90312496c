//! Tendermint BFT consensus for Cairn, as a pure, deterministic state
//! machine: the node feeds [`Input`]s (proposals with the application's
//! validity verdict, votes, expired timeouts, values to propose, commit
//! certificates from sync) to an [`Engine`] and carries out the
//! [`Effect`]s it returns (broadcast, schedule a timeout, build a value,
//! commit a decision, store evidence). No clock, no I/O: time arrives as
//! timeout inputs.
//!
//! # Safety
//!
//! - Quorum is more than 2/3 of the voting power; a commit needs a quorum of
//!   precommits for one value in one round, and [`CommitCertificate::verify`]
//!   is what a verifier's light client relies on; a proof bundle carries it
//!   as a [`CompactCertificate`] (a quorum's signatures, signers by bit).
//!   [`CommitCertificate::verify_batch`] gives many certificates the same
//!   verdicts with their signatures checked in batches across them (a run
//!   of blocks from sync); the engine takes the [`CheckedCertificate`]s it
//!   makes without checking them again when they were checked against its
//!   own validator set ([`Engine::handle_checked`]).
//! - Signatures are judged by one rule on every node, alone or in a batch
//!   (`cairn_genesis::signature`), so batching never changes a verdict.
//! - Every signed message binds the chain (genesis hash) and a domain tag.
//! - [`GuardedSigner`] never signs two different messages for one (height,
//!   round, step), nor anything for an earlier one, and its record is durable
//!   before a signature leaves (see [`signer`]).
//! - Every input that changes the state is logged before it is processed,
//!   and the log is written before effects are returned, durably whenever
//!   it holds a signed message (see [`wal`]); a replay reaches the same
//!   state.
//! - A validator's second, different vote or proposal is not counted; it
//!   becomes [`Evidence`], reported once.
//!
//! # Bounds
//!
//! Messages for future heights are buffered only [`MAX_FUTURE_HEIGHTS`]
//! ahead and [`MAX_BUFFERED_PER_VALIDATOR`] per validator; a validator's
//! messages are kept for at most [`MAX_FUTURE_ROUNDS_PER_VALIDATOR`] rounds
//! ahead of the current one.

#![forbid(unsafe_code)]

mod certificate;
mod engine;
mod error;
pub mod signer;
mod types;
mod validator_set;
mod vote_keeper;
pub mod wal;

pub use certificate::{
    CheckedCertificate, CommitCertificate, CommitSignature, CompactCertificate, VerifiedCommit,
};
pub use engine::{
    Effect, Engine, Input, MAX_BUFFERED_PER_VALIDATOR, MAX_FUTURE_HEIGHTS,
    MAX_FUTURE_ROUNDS_PER_VALIDATOR, Status, Timeout, Timeouts,
};
pub use error::ConsensusError;
pub use signer::{GuardedSigner, LastSigned, MemorySignState, SignStateStore, Signer};
pub use types::{
    Height, Message, PROPOSAL_DOMAIN, Proposal, Round, Signature, SignedProposal, SignedVote, Step,
    VOTE_DOMAIN, ValueId, Vote, VoteKind,
};
pub use validator_set::{MAX_ROTATION_LEN, ValidatorInfo, ValidatorSet};
pub use vote_keeper::{AddOutcome, Evidence, VoteKeeper};
pub use wal::{MemoryWal, Wal, WalEntry};
