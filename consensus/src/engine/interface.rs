//! What the driver feeds the engine and what the engine asks of the driver.

use borsh::{BorshDeserialize, BorshSerialize};
use cairn_genesis::ConsensusParams;

use crate::ConsensusError;
use crate::certificate::CommitCertificate;
use crate::types::{Height, Message, Round, SignedProposal, SignedVote, Step, ValueId};
use crate::vote_keeper::Evidence;

/// A timeout, identified by where it was scheduled.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, BorshSerialize, BorshDeserialize)]
pub struct Timeout {
    /// Height it was scheduled at.
    pub height: Height,
    /// Round it was scheduled at.
    pub round: Round,
    /// The step it ends.
    pub step: Step,
}

/// What the driver feeds the engine.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Input {
    /// A proposal, with the application's verdict on its value (executed,
    /// state root checked). The verdict must be deterministic.
    Proposal {
        /// The signed proposal.
        proposal: SignedProposal,
        /// Whether the proposed value is valid.
        valid: bool,
    },
    /// A prevote or precommit.
    Vote(SignedVote),
    /// A timeout the engine scheduled has expired.
    Timeout(Timeout),
    /// The application's value for this node's proposal (answer to [`Effect::GetValue`]).
    ProposeValue {
        /// Height asked for.
        height: Height,
        /// Round asked for.
        round: Round,
        /// The value (a block the application has built and executed).
        value: ValueId,
    },
    /// A commit certificate for the current height, from block sync; the
    /// driver holds the value it names.
    Certificate(CommitCertificate),
}

/// What the engine asks the driver to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Send a message to every validator.
    Broadcast(Message),
    /// Feed [`Input::Timeout`] with `timeout` after `after_ms` milliseconds.
    ScheduleTimeout {
        /// The timeout to feed back.
        timeout: Timeout,
        /// Delay in milliseconds.
        after_ms: u64,
    },
    /// Build a value to propose and feed it back as [`Input::ProposeValue`].
    GetValue {
        /// Height.
        height: Height,
        /// Round.
        round: Round,
    },
    /// The height is decided: commit the certified value, then start the next height.
    Decide(CommitCertificate),
    /// A validator equivocated: store and serve the evidence.
    Evidence(Evidence),
    /// The signer refused to sign (already signed at or past this step, for
    /// example after a restore from backup); this node stays silent there.
    SignRefused(ConsensusError),
}

/// Timeouts that grow linearly with the round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// Propose timeout of round 0, and added per round.
    pub propose_ms: (u64, u64),
    /// Prevote timeout of round 0, and added per round.
    pub prevote_ms: (u64, u64),
    /// Precommit timeout of round 0, and added per round.
    pub precommit_ms: (u64, u64),
}

impl Timeouts {
    /// The timeouts of a genesis document.
    pub fn from_params(params: &ConsensusParams) -> Timeouts {
        Timeouts {
            propose_ms: (params.propose_timeout_ms, params.propose_timeout_delta_ms),
            prevote_ms: (params.prevote_timeout_ms, params.prevote_timeout_delta_ms),
            precommit_ms: (
                params.precommit_timeout_ms,
                params.precommit_timeout_delta_ms,
            ),
        }
    }

    /// The duration of `step`'s timeout at `round`.
    pub fn duration_ms(&self, step: Step, round: Round) -> u64 {
        let (base, delta) = match step {
            Step::Propose => self.propose_ms,
            Step::Prevote => self.prevote_ms,
            Step::Precommit => self.precommit_ms,
        };
        base.saturating_add(delta.saturating_mul(u64::from(round.0)))
    }
}
