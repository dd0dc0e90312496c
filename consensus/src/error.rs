//! The one error type of this crate.

use cairn_genesis::{Hash, PublicKey};

use crate::types::{Height, Round, Step};

/// Why a message, certificate or operation was refused.
///
/// [`ConsensusError::is_misbehaviour`] tells the driver whether the peer that
/// relayed the input should be penalised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConsensusError {
    /// A message or certificate for another chain.
    #[error("wrong chain: expected {expected}, found {found}")]
    WrongChain {
        /// This chain's genesis hash.
        expected: Hash,
        /// The one in the message.
        found: Hash,
    },
    /// Signed by a key that is not in the validator set.
    #[error("{validator} is not a validator of this height")]
    UnknownValidator {
        /// The signer.
        validator: PublicKey,
    },
    /// A signature that does not verify over the message.
    #[error("invalid signature by {validator}")]
    InvalidSignature {
        /// The claimed signer.
        validator: PublicKey,
    },
    /// A proposal from a validator that is not the round's proposer.
    #[error("{proposer} is not the proposer of height {height} round {round}")]
    WrongProposer {
        /// Who sent it.
        proposer: PublicKey,
        /// Height.
        height: Height,
        /// Round.
        round: Round,
    },
    /// A proposal whose proof-of-lock round is not before its round.
    #[error("proposal for round {round} claims a lock from round {pol_round}")]
    InvalidPolRound {
        /// The proposal's round.
        round: Round,
        /// Its claimed proof-of-lock round.
        pol_round: Round,
    },
    /// A certificate whose signers hold too little power.
    #[error(
        "certificate carries voting power {found}, a quorum needs more than {needed_more_than}"
    )]
    InsufficientPower {
        /// Power of the valid signatures.
        found: u64,
        /// Two thirds of the total.
        needed_more_than: u64,
    },
    /// A certificate listing one validator twice.
    #[error("{validator} signs the certificate twice")]
    DuplicateSignature {
        /// The validator.
        validator: PublicKey,
    },
    /// A certificate for another height than the one expected.
    #[error("certificate for height {found}, expected {expected}")]
    WrongHeight {
        /// The expected height.
        expected: Height,
        /// The certificate's height.
        found: Height,
    },
    /// A compact certificate whose signer bits do not fit its set or signatures.
    #[error("malformed signer list: {reason}")]
    MalformedSigners {
        /// What is wrong.
        reason: String,
    },
    /// A certificate with more signatures than validators.
    #[error("certificate has {found} signatures for {validators} validators")]
    TooManySignatures {
        /// Number of signatures.
        found: usize,
        /// Size of the set.
        validators: usize,
    },
    /// A validator set that cannot be used.
    #[error("invalid validator set: {reason}")]
    InvalidValidatorSet {
        /// Why.
        reason: String,
    },
    /// The signer refused: it already signed something else at or after this (height, round, step).
    #[error(
        "refusing to sign at height {height} round {round} {step:?}: already signed at height {last_height} round {last_round} {last_step:?}"
    )]
    DoubleSignRefused {
        /// Requested height.
        height: Height,
        /// Requested round.
        round: Round,
        /// Requested step.
        step: Step,
        /// Last signed height.
        last_height: Height,
        /// Last signed round.
        last_round: Round,
        /// Last signed step.
        last_step: Step,
    },
    /// A replay wants a different message than the one this node logged as
    /// signed at this position (the log lost inputs): it stays silent there.
    #[error(
        "height {height} round {round} {step:?}: the replay differs from the logged signed message; staying silent"
    )]
    ReplayDiverged {
        /// Height.
        height: Height,
        /// Round.
        round: Round,
        /// Step.
        step: Step,
    },
    /// The durable record of the last signed state could not be read or written.
    #[error("sign state storage failed: {0}")]
    SignStateStorage(String),
    /// The write-ahead log could not be read or written.
    #[error("write-ahead log failed: {0}")]
    Wal(String),
    /// This node is not a validator and cannot sign.
    #[error("this node is not a validator of the current height")]
    NotAValidator,
}

impl ConsensusError {
    /// Whether the error proves the message's sender (or its relay) misbehaved,
    /// as opposed to a local failure.
    pub fn is_misbehaviour(&self) -> bool {
        !matches!(
            self,
            ConsensusError::DoubleSignRefused { .. }
                | ConsensusError::ReplayDiverged { .. }
                | ConsensusError::SignStateStorage(_)
                | ConsensusError::Wal(_)
                | ConsensusError::NotAValidator
                | ConsensusError::InvalidValidatorSet { .. }
        )
    }
}
