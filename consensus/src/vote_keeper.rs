//! Counts voting power per (round, vote kind, value) for one height and
//! turns a validator's second, different vote into evidence.
//!
//! A validator counts at most once towards any one value and at most once
//! towards the total of a (round, kind). An equivocator's second vote is
//! counted for *its own* value too, as the algorithm counts every message it
//! received: otherwise a node that happened to see an equivocator's other
//! vote first could never recognise a proof of lock (2f+1 prevotes for a
//! value) that the rest of the network relies on, and the height could stall.
//! This is safe: two quorums for different values would still need an
//! honest validator to vote for both. Only the first two distinct votes of a
//! validator per (round, kind) are kept, so an equivocator cannot grow memory.

use std::collections::{BTreeMap, BTreeSet};

use borsh::{BorshDeserialize, BorshSerialize};

use crate::types::{Round, SignedProposal, SignedVote, ValueId, VoteKind};

/// Signed proof that a validator equivocated.
#[derive(Clone, Copy, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub enum Evidence {
    /// Two different votes of one kind at one (height, round).
    ConflictingVotes {
        /// The vote counted.
        first: SignedVote,
        /// The conflicting vote, not counted.
        second: SignedVote,
    },
    /// Two different proposals at one (height, round).
    ConflictingProposals {
        /// The proposal kept.
        first: SignedProposal,
        /// The conflicting proposal, ignored.
        second: SignedProposal,
    },
}

/// What adding a vote did.
#[derive(Debug, PartialEq, Eq)]
pub enum AddOutcome {
    /// The vote is new and counted.
    Counted,
    /// The same vote was already counted: nothing changed.
    Duplicate,
    /// The validator already voted differently. Its second distinct vote is
    /// counted for its own value (not in the total) and yields the evidence;
    /// any later one is ignored.
    Conflict(Option<Box<Evidence>>),
}

#[derive(Default, Debug, Clone)]
struct Tally {
    votes: BTreeMap<usize, Vec<SignedVote>>,
    power: BTreeMap<Option<ValueId>, u64>,
    total: u64,
    equivocators: BTreeSet<usize>,
}

#[derive(Default, Debug, Clone)]
struct RoundVotes {
    prevotes: Tally,
    precommits: Tally,
    senders: BTreeSet<usize>,
    sender_power: u64,
}

impl RoundVotes {
    fn tally(&self, kind: VoteKind) -> &Tally {
        match kind {
            VoteKind::Prevote => &self.prevotes,
            VoteKind::Precommit => &self.precommits,
        }
    }
}

/// The votes of one height.
#[derive(Default, Debug, Clone)]
pub struct VoteKeeper {
    rounds: BTreeMap<Round, RoundVotes>,
}

impl VoteKeeper {
    /// Adds a verified vote by the validator at `index` with `power`.
    pub fn add(&mut self, index: usize, power: u64, vote: SignedVote) -> AddOutcome {
        let round = self.rounds.entry(vote.vote.round).or_default();
        let tally = match vote.vote.kind {
            VoteKind::Prevote => &mut round.prevotes,
            VoteKind::Precommit => &mut round.precommits,
        };
        let counted = tally.votes.entry(index).or_default();
        match counted.as_slice() {
            [] => {}
            known if known.iter().any(|k| k.vote == vote.vote) => return AddOutcome::Duplicate,
            [first] => {
                let first = *first;
                counted.push(vote);
                *tally.power.entry(vote.vote.value).or_default() += power;
                tally.equivocators.insert(index);
                return AddOutcome::Conflict(Some(Box::new(Evidence::ConflictingVotes {
                    first,
                    second: vote,
                })));
            }
            _ => return AddOutcome::Conflict(None),
        }
        counted.push(vote);
        *tally.power.entry(vote.vote.value).or_default() += power;
        tally.total += power;
        if round.senders.insert(index) {
            round.sender_power += power;
        }
        AddOutcome::Counted
    }

    /// Records that the validator at `index` sent a message (a proposal) in `round`.
    pub fn note_sender(&mut self, round: Round, index: usize, power: u64) {
        let round = self.rounds.entry(round).or_default();
        if round.senders.insert(index) {
            round.sender_power += power;
        }
    }

    /// Power of the votes of `kind` at `round` for `value` (`None`: nil).
    pub fn power_for(&self, round: Round, kind: VoteKind, value: Option<ValueId>) -> u64 {
        self.rounds
            .get(&round)
            .and_then(|r| r.tally(kind).power.get(&value).copied())
            .unwrap_or(0)
    }

    /// Power of all votes of `kind` at `round`, whatever their value.
    pub fn total_power(&self, round: Round, kind: VoteKind) -> u64 {
        self.rounds.get(&round).map_or(0, |r| r.tally(kind).total)
    }

    /// Power of the validators that sent any message at `round`.
    pub fn sender_power(&self, round: Round) -> u64 {
        self.rounds.get(&round).map_or(0, |r| r.sender_power)
    }

    /// The values with votes of `kind` at `round`, with their power.
    pub fn values(&self, round: Round, kind: VoteKind) -> Vec<(Option<ValueId>, u64)> {
        self.rounds
            .get(&round)
            .map(|r| r.tally(kind).power.iter().map(|(v, p)| (*v, *p)).collect())
            .unwrap_or_default()
    }

    /// The counted votes of `kind` at `round` for `value`, in validator order.
    pub fn votes_for(
        &self,
        round: Round,
        kind: VoteKind,
        value: Option<ValueId>,
    ) -> Vec<SignedVote> {
        self.rounds
            .get(&round)
            .map(|r| {
                r.tally(kind)
                    .votes
                    .values()
                    .flatten()
                    .filter(|v| v.vote.value == value)
                    .copied()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every kept vote of `kind` at `round`, in validator order.
    pub fn all(&self, round: Round, kind: VoteKind) -> Vec<SignedVote> {
        self.rounds
            .get(&round)
            .map(|r| r.tally(kind).votes.values().flatten().copied().collect())
            .unwrap_or_default()
    }

    /// Whether this very vote of the validator at `index` is already kept.
    pub fn contains(&self, index: usize, vote: &SignedVote) -> bool {
        self.rounds
            .get(&vote.vote.round)
            .and_then(|r| r.tally(vote.vote.kind).votes.get(&index))
            .is_some_and(|kept| kept.contains(vote))
    }

    /// Every counted vote of the validator at `index`.
    pub fn votes_of(&self, index: usize) -> Vec<SignedVote> {
        let mut out = Vec::new();
        for round in self.rounds.values() {
            for tally in [&round.prevotes, &round.precommits] {
                out.extend(tally.votes.get(&index).into_iter().flatten().copied());
            }
        }
        out
    }

    /// The rounds after `after` in which the validator at `index` sent anything.
    pub fn rounds_from(&self, index: usize, after: Round) -> usize {
        self.rounds
            .range(after.next()..)
            .filter(|(_, r)| r.senders.contains(&index))
            .count()
    }

    /// Whether the validator at `index` sent anything at `round`.
    pub fn has_sender(&self, round: Round, index: usize) -> bool {
        self.rounds
            .get(&round)
            .is_some_and(|r| r.senders.contains(&index))
    }

    /// The rounds with any message, ascending.
    pub fn rounds(&self) -> impl Iterator<Item = Round> + '_ {
        self.rounds.keys().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Height, Signature, Vote};
    use cairn_genesis::{Hash, PublicKey};

    fn vote(validator: u8, round: u32, kind: VoteKind, value: Option<u8>) -> SignedVote {
        SignedVote {
            vote: Vote {
                chain: Hash([0; 32]),
                height: Height(1),
                round: Round(round),
                kind,
                value: value.map(|b| ValueId(Hash([b; 32]))),
                validator: PublicKey([validator; 32]),
            },
            signature: Signature([validator; 64]),
        }
    }

    #[test]
    fn counts_each_validator_once() {
        let mut keeper = VoteKeeper::default();
        assert_eq!(
            keeper.add(0, 10, vote(0, 0, VoteKind::Prevote, Some(1))),
            AddOutcome::Counted
        );
        assert_eq!(
            keeper.add(0, 10, vote(0, 0, VoteKind::Prevote, Some(1))),
            AddOutcome::Duplicate
        );
        assert_eq!(
            keeper.power_for(Round(0), VoteKind::Prevote, Some(ValueId(Hash([1; 32])))),
            10
        );
        assert_eq!(keeper.total_power(Round(0), VoteKind::Prevote), 10);
        // A precommit is a different vote kind: counted separately.
        assert_eq!(
            keeper.add(0, 10, vote(0, 0, VoteKind::Precommit, None)),
            AddOutcome::Counted
        );
        assert_eq!(keeper.power_for(Round(0), VoteKind::Precommit, None), 10);
        // Sender power counts the validator once across kinds.
        assert_eq!(keeper.sender_power(Round(0)), 10);
    }

    #[test]
    fn equivocation_yields_evidence_once_and_counts_once_per_value() {
        let mut keeper = VoteKeeper::default();
        let first = vote(3, 1, VoteKind::Prevote, Some(1));
        let second = vote(3, 1, VoteKind::Prevote, Some(2));
        let third = vote(3, 1, VoteKind::Prevote, None);
        keeper.add(3, 7, first);
        assert_eq!(
            keeper.add(3, 7, second),
            AddOutcome::Conflict(Some(Box::new(Evidence::ConflictingVotes { first, second })))
        );
        assert_eq!(keeper.add(3, 7, second), AddOutcome::Duplicate);
        assert_eq!(keeper.add(3, 7, third), AddOutcome::Conflict(None));
        // Once in the total, once for each of its first two values, never for a third.
        assert_eq!(keeper.total_power(Round(1), VoteKind::Prevote), 7);
        assert_eq!(
            keeper.power_for(Round(1), VoteKind::Prevote, Some(ValueId(Hash([1; 32])))),
            7
        );
        assert_eq!(
            keeper.power_for(Round(1), VoteKind::Prevote, Some(ValueId(Hash([2; 32])))),
            7
        );
        assert_eq!(keeper.power_for(Round(1), VoteKind::Prevote, None), 0);
        assert_eq!(keeper.votes_of(3), vec![first, second]);
    }
}
