//! A four-validator network of fixed keys, and helpers to sign its messages
//! and read an engine's effects.

#![allow(dead_code)]

use cairn_consensus::{
    Effect, Engine, GuardedSigner, Height, Input, MemorySignState, MemoryWal, Message, Proposal,
    Round, Signature, SignedProposal, SignedVote, Step, Timeout, Timeouts, ValidatorInfo,
    ValidatorSet, ValueId, Vote, VoteKind,
};
use cairn_genesis::{ConsensusParams, Hash, PublicKey};
use ed25519_dalek::{Signer as _, SigningKey};

pub type TestEngine = Engine<GuardedSigner<MemorySignState>, MemoryWal>;

pub const H: Height = Height(1);

pub fn value(byte: u8) -> ValueId {
    ValueId(Hash([byte; 32]))
}

pub struct Net {
    pub keys: Vec<SigningKey>,
    pub set: ValidatorSet,
    pub chain: Hash,
}

impl Net {
    /// `n` validators of equal power; with equal power the proposer of
    /// (height, round) is validator `(height + round) % n`.
    pub fn new(n: usize) -> Net {
        let keys: Vec<SigningKey> = (0..n)
            .map(|i| SigningKey::from_bytes(&[i as u8 + 1; 32]))
            .collect();
        let set = ValidatorSet::new(
            keys.iter()
                .map(|k| ValidatorInfo {
                    public_key: PublicKey::from(k.verifying_key()),
                    voting_power: 10,
                })
                .collect(),
        )
        .unwrap();
        Net {
            keys,
            set,
            chain: Hash([0xc1; 32]),
        }
    }

    pub fn key(&self, i: usize) -> PublicKey {
        PublicKey::from(self.keys[i].verifying_key())
    }

    pub fn timeouts() -> Timeouts {
        Timeouts::from_params(&ConsensusParams::default())
    }

    /// Validator `i`'s engine with fresh stores, started at height `H`, and its first effects.
    pub fn engine(&self, i: usize) -> (TestEngine, Vec<Effect>) {
        self.engine_with(i, MemorySignState::default(), MemoryWal::default())
    }

    pub fn engine_with(
        &self,
        i: usize,
        sign: MemorySignState,
        wal: MemoryWal,
    ) -> (TestEngine, Vec<Effect>) {
        let signer = GuardedSigner::new(self.keys[i].clone(), sign).unwrap();
        let mut engine = Engine::new(
            self.chain,
            Net::timeouts(),
            self.set.clone(),
            Some(signer),
            wal,
        );
        let effects = engine.start_height(H, self.set.clone()).unwrap();
        (engine, effects)
    }

    pub fn vote(&self, i: usize, round: u32, kind: VoteKind, value: Option<ValueId>) -> SignedVote {
        self.vote_at(i, H, round, kind, value)
    }

    pub fn vote_at(
        &self,
        i: usize,
        height: Height,
        round: u32,
        kind: VoteKind,
        value: Option<ValueId>,
    ) -> SignedVote {
        let vote = Vote {
            chain: self.chain,
            height,
            round: Round(round),
            kind,
            value,
            validator: self.key(i),
        };
        SignedVote {
            vote,
            signature: Signature(self.keys[i].sign(&vote.sign_bytes()).to_bytes()),
        }
    }

    pub fn proposal(
        &self,
        i: usize,
        round: u32,
        value: ValueId,
        pol_round: Option<u32>,
    ) -> SignedProposal {
        let proposal = Proposal {
            chain: self.chain,
            height: H,
            round: Round(round),
            value,
            pol_round: pol_round.map(Round),
            proposer: self.key(i),
        };
        SignedProposal {
            proposal,
            signature: Signature(self.keys[i].sign(&proposal.sign_bytes()).to_bytes()),
        }
    }

    /// The proposal of `round` by its rightful proposer.
    pub fn proposal_of_round(
        &self,
        round: u32,
        value: ValueId,
        pol_round: Option<u32>,
    ) -> SignedProposal {
        let proposer = self.set.proposer(H, Round(round));
        self.proposal(proposer, round, value, pol_round)
    }

    /// Feeds votes of `kind` for `value` at `round` from each of `from`.
    pub fn feed_votes(
        &self,
        engine: &mut TestEngine,
        from: &[usize],
        round: u32,
        kind: VoteKind,
        value: Option<ValueId>,
    ) -> Vec<Effect> {
        let mut effects = Vec::new();
        for &i in from {
            effects.extend(
                engine
                    .handle(Input::Vote(self.vote(i, round, kind, value)))
                    .unwrap(),
            );
        }
        effects
    }
}

pub fn timeout(round: u32, step: Step) -> Input {
    Input::Timeout(Timeout {
        height: H,
        round: Round(round),
        step,
    })
}

pub fn propose_input(proposal: SignedProposal, valid: bool) -> Input {
    Input::Proposal { proposal, valid }
}

/// The votes among the effects that `key` signed.
pub fn own_votes(effects: &[Effect], key: PublicKey) -> Vec<Vote> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Broadcast(Message::Vote(v)) if v.vote.validator == key => Some(v.vote),
            _ => None,
        })
        .collect()
}

/// The single vote of `kind` among the effects that `key` signed.
pub fn own_vote(effects: &[Effect], key: PublicKey, kind: VoteKind) -> Option<Vote> {
    let votes: Vec<Vote> = own_votes(effects, key)
        .into_iter()
        .filter(|v| v.kind == kind)
        .collect();
    assert!(votes.len() <= 1, "more than one {kind:?}: {votes:?}");
    votes.first().copied()
}

pub fn scheduled(effects: &[Effect], step: Step) -> Vec<Timeout> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::ScheduleTimeout { timeout, .. } if timeout.step == step => Some(*timeout),
            _ => None,
        })
        .collect()
}

pub fn proposals(effects: &[Effect]) -> Vec<Proposal> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Broadcast(Message::Proposal(p)) => Some(p.proposal),
            _ => None,
        })
        .collect()
}

pub fn decision(effects: &[Effect]) -> Option<&cairn_consensus::CommitCertificate> {
    effects.iter().find_map(|e| match e {
        Effect::Decide(cert) => Some(cert),
        _ => None,
    })
}
