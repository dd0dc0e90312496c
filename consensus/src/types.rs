//! Heights, rounds, steps, and the two signed messages of the protocol.

use std::fmt;

use borsh::{BorshDeserialize, BorshSerialize};
use cairn_genesis::{Hash, PublicKey};

/// A block height; the first block is height 1.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Debug,
    Default,
    BorshSerialize,
    BorshDeserialize,
)]
pub struct Height(pub u64);

impl Height {
    /// The height after this one.
    pub fn next(self) -> Height {
        Height(self.0.saturating_add(1))
    }
}

impl fmt::Display for Height {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A round within a height; every height starts at round 0.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Debug,
    Default,
    BorshSerialize,
    BorshDeserialize,
)]
pub struct Round(pub u32);

impl Round {
    /// The round after this one.
    pub fn next(self) -> Round {
        Round(self.0.saturating_add(1))
    }
}

impl fmt::Display for Round {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The steps of a round, in the order a round goes through them.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, BorshSerialize, BorshDeserialize,
)]
pub enum Step {
    /// Waiting for (or making) the round's proposal.
    Propose,
    /// Prevoted; waiting for a prevote quorum.
    Prevote,
    /// Precommitted; waiting for a precommit quorum.
    Precommit,
}

/// The identity of a proposed value: the hash of a block.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize)]
pub struct ValueId(pub Hash);

impl fmt::Debug for ValueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex = self.0.to_string();
        write!(f, "ValueId({}…)", &hex[..12])
    }
}

impl fmt::Display for ValueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An ed25519 signature.
#[derive(Clone, Copy, PartialEq, Eq, Hash, BorshSerialize, BorshDeserialize)]
pub struct Signature(pub [u8; 64]);

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Signature({:02x}{:02x}{:02x}{:02x}…)",
            self.0[0], self.0[1], self.0[2], self.0[3]
        )
    }
}

/// The two kinds of vote.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, BorshSerialize, BorshDeserialize,
)]
pub enum VoteKind {
    /// First-stage vote.
    Prevote,
    /// Second-stage vote; more than 2/3 of them for one value decide it.
    Precommit,
}

impl VoteKind {
    /// The step at which a vote of this kind is signed.
    pub fn step(self) -> Step {
        match self {
            VoteKind::Prevote => Step::Prevote,
            VoteKind::Precommit => Step::Precommit,
        }
    }
}

/// Domain tag of a vote's signing bytes.
pub const VOTE_DOMAIN: &[u8] = b"cairn/consensus/vote/v1\0";
/// Domain tag of a proposal's signing bytes.
pub const PROPOSAL_DOMAIN: &[u8] = b"cairn/consensus/proposal/v1\0";

/// A prevote or precommit for a value, or for nothing (`value: None`, "nil").
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, BorshSerialize, BorshDeserialize)]
pub struct Vote {
    /// The chain's genesis hash: a vote is never valid on another chain.
    pub chain: Hash,
    /// Height voted at.
    pub height: Height,
    /// Round voted at.
    pub round: Round,
    /// Prevote or precommit.
    pub kind: VoteKind,
    /// The value voted for; `None` is a vote for nil.
    pub value: Option<ValueId>,
    /// The voting validator's consensus key.
    pub validator: PublicKey,
}

impl Vote {
    /// The bytes the validator signs: a domain tag, then the borsh encoding.
    pub fn sign_bytes(&self) -> Vec<u8> {
        tagged(VOTE_DOMAIN, self)
    }
}

/// A vote with its signature.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, BorshSerialize, BorshDeserialize)]
pub struct SignedVote {
    /// The vote.
    pub vote: Vote,
    /// The validator's signature over [`Vote::sign_bytes`].
    pub signature: Signature,
}

/// The proposer's proposal of a value for one round.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, BorshSerialize, BorshDeserialize)]
pub struct Proposal {
    /// The chain's genesis hash.
    pub chain: Hash,
    /// Height proposed at.
    pub height: Height,
    /// Round proposed at.
    pub round: Round,
    /// The proposed value.
    pub value: ValueId,
    /// The round in which the value got a prevote quorum (a re-proposal), if any.
    pub pol_round: Option<Round>,
    /// The proposer's consensus key.
    pub proposer: PublicKey,
}

impl Proposal {
    /// The bytes the proposer signs: a domain tag, then the borsh encoding.
    pub fn sign_bytes(&self) -> Vec<u8> {
        tagged(PROPOSAL_DOMAIN, self)
    }
}

/// A proposal with its signature.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, BorshSerialize, BorshDeserialize)]
pub struct SignedProposal {
    /// The proposal.
    pub proposal: Proposal,
    /// The proposer's signature over [`Proposal::sign_bytes`].
    pub signature: Signature,
}

/// A consensus message as it travels between nodes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, BorshSerialize, BorshDeserialize)]
pub enum Message {
    /// A proposal.
    Proposal(SignedProposal),
    /// A prevote or precommit.
    Vote(SignedVote),
}

impl Message {
    /// The height the message belongs to.
    pub fn height(&self) -> Height {
        match self {
            Message::Proposal(p) => p.proposal.height,
            Message::Vote(v) => v.vote.height,
        }
    }
}

fn tagged<T: BorshSerialize>(domain: &[u8], value: &T) -> Vec<u8> {
    let mut bytes = domain.to_vec();
    // Writing into a Vec cannot fail.
    let _ = borsh::to_writer(&mut bytes, value);
    bytes
}
