//! The Tendermint state machine of "The latest gossip on BFT consensus"
//! (Buchman, Kwon, Milosevic, 2018), Algorithm 1, for one height at a time.
//!
//! The engine checks every message (chain, height, sender, signature),
//! logs it (see [`crate::wal`]), applies it, and then evaluates the
//! algorithm's `upon` rules until none fires. Comments name the lines of
//! Algorithm 1 each rule implements. Deviations, each harmless to safety:
//!
//! - the proposer schedules `timeoutPropose` too (lines 19-21 schedule it for
//!   the others only), so a proposer whose application is slow to supply a
//!   value still moves on;
//! - a decision (lines 49-54) needs the proposal of *some* round for the
//!   value, not necessarily of the precommits' round: the value and its
//!   validity do not depend on the round it was proposed in;
//! - a commit certificate received by sync decides directly;
//! - each timeout that fires re-broadcasts [`Engine::rebroadcast`]: this
//!   node's own messages of the round, the previous round's precommits and
//!   the prevotes behind its valid value; and a proposer re-proposing a value
//!   broadcasts the prevotes that justify it. A node that missed them can
//!   follow: without this, a node left behind in a round whose precommits it
//!   lost, or one that never saw a polka, waits forever.

use std::collections::{BTreeMap, BTreeSet};

use borsh::{BorshDeserialize, BorshSerialize};
use cairn_genesis::{ConsensusParams, Hash};

use crate::certificate::{CommitCertificate, CommitSignature};
use crate::signer::Signer;
use crate::types::{
    Height, Message, Proposal, Round, SignedProposal, SignedVote, Step, ValueId, Vote, VoteKind,
};
use crate::vote_keeper::{AddOutcome, Evidence, VoteKeeper};
use crate::wal::{Wal, WalEntry};
use crate::{ConsensusError, ValidatorSet};

/// The (round, step) at which a message is signed.
fn position(msg: &Message) -> (Round, Step) {
    match msg {
        Message::Proposal(p) => (p.proposal.round, Step::Propose),
        Message::Vote(v) => (v.vote.round, v.vote.kind.step()),
    }
}

/// This node already signed something else at this position (its log and
/// its state disagree): it must stay silent there.
fn diverged(earlier: &Message) -> ConsensusError {
    let (round, step) = position(earlier);
    ConsensusError::DoubleSignRefused {
        height: earlier.height(),
        round,
        step,
        last_height: earlier.height(),
        last_round: round,
        last_step: step,
    }
}

/// Heights ahead of the current one whose messages are buffered.
pub const MAX_FUTURE_HEIGHTS: u64 = 2;
/// Buffered messages per validator and future height.
pub const MAX_BUFFERED_PER_VALIDATOR: usize = 16;
/// Rounds ahead of the current one in which one validator's messages are kept.
pub const MAX_FUTURE_ROUNDS_PER_VALIDATOR: usize = 2;

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

/// Rules that fire once per round ("for the first time").
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Once {
    PrevoteTimeout,
    PrecommitTimeout,
    Polka,
}

/// The state of Algorithm 1 for one height, plus the messages received.
#[derive(Debug, Clone)]
struct HeightState {
    height: Height,
    round: Round,
    step: Step,
    locked: Option<(Round, ValueId)>,
    valid: Option<(Round, ValueId)>,
    decision: Option<CommitCertificate>,
    proposals: BTreeMap<Round, (SignedProposal, bool)>,
    votes: VoteKeeper,
    fired: BTreeSet<(Round, Once)>,
    proposal_evidence: BTreeSet<Round>,
}

impl HeightState {
    fn new(height: Height) -> Self {
        HeightState {
            height,
            round: Round(0),
            step: Step::Propose,
            locked: None,
            valid: None,
            decision: None,
            proposals: BTreeMap::new(),
            votes: VoteKeeper::default(),
            fired: BTreeSet::new(),
            proposal_evidence: BTreeSet::new(),
        }
    }
}

/// A read-only view of where the engine is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status {
    /// Current height.
    pub height: Height,
    /// Current round.
    pub round: Round,
    /// Current step.
    pub step: Step,
    /// Locked round and value (lines 38-39).
    pub locked: Option<(Round, ValueId)>,
    /// Valid round and value (lines 42-43).
    pub valid: Option<(Round, ValueId)>,
    /// Whether the height is decided.
    pub decided: bool,
}

/// The consensus engine of one node.
pub struct Engine<S: Signer, W: Wal> {
    chain: Hash,
    timeouts: Timeouts,
    signer: Option<S>,
    me: Option<usize>,
    wal: W,
    set: ValidatorSet,
    state: HeightState,
    future: BTreeMap<Height, Vec<(usize, Input)>>,
    /// Messages this node signed at the current height, by (round, step).
    signed: BTreeMap<(Round, Step), Message>,
    replaying: bool,
    logged: bool,
}

impl<S: Signer, W: Wal> Engine<S, W> {
    /// An engine for `chain` that has not started a height yet. Without a
    /// signer it observes: it follows and decides but never votes.
    pub fn new(
        chain: Hash,
        timeouts: Timeouts,
        set: ValidatorSet,
        signer: Option<S>,
        wal: W,
    ) -> Self {
        let me = signer.as_ref().and_then(|s| set.index_of(&s.public_key()));
        Engine {
            chain,
            timeouts,
            signer,
            me,
            wal,
            set,
            state: HeightState::new(Height(0)),
            future: BTreeMap::new(),
            signed: BTreeMap::new(),
            replaying: false,
            logged: false,
        }
    }

    /// Restarts after a crash: if the log belongs to `height`, replays it and
    /// returns the effects of the replay (messages to send again, timeouts to
    /// schedule again, perhaps the decision); otherwise starts `height` afresh.
    pub fn recover(
        chain: Hash,
        timeouts: Timeouts,
        set: ValidatorSet,
        height: Height,
        signer: Option<S>,
        wal: W,
    ) -> Result<(Self, Vec<Effect>), ConsensusError> {
        let mut engine = Engine::new(chain, timeouts, set.clone(), signer, wal);
        let entries = engine.wal.entries()?;
        match entries.split_first() {
            Some((WalEntry::StartHeight(logged), rest)) if *logged == height => {
                engine.replaying = true;
                let signed: BTreeMap<(Round, Step), Message> = rest
                    .iter()
                    .filter_map(|entry| match entry {
                        WalEntry::Signed(msg) => Some((position(msg), *msg)),
                        _ => None,
                    })
                    .collect();
                engine.reset(height, set);
                engine.signed = signed;
                let mut effects = engine.enter_height();
                for entry in rest {
                    if let WalEntry::Input(input) = entry {
                        // A logged input was valid when logged and the replayed state
                        // is the same, so errors cannot occur; skip one if it does.
                        if let Ok(more) = engine.handle(input.clone()) {
                            effects.extend(more);
                        }
                    }
                }
                engine.replaying = false;
                Ok((engine, effects))
            }
            _ => {
                let effects = engine.start_height(height, set)?;
                Ok((engine, effects))
            }
        }
    }

    /// Starts `height` with `set` (after the previous height's block is committed).
    pub fn start_height(
        &mut self,
        height: Height,
        set: ValidatorSet,
    ) -> Result<Vec<Effect>, ConsensusError> {
        self.wal.reset(height)?;
        let mut effects = self.begin(height, set);
        let buffered = self.future.remove(&height).unwrap_or_default();
        self.future.retain(|h, _| *h > height);
        for (_, input) in buffered {
            match self.handle(input) {
                Ok(more) => effects.extend(more),
                // Buffered messages were checked against the previous set; a
                // message the new set refuses is dropped.
                Err(err) if err.is_misbehaviour() => {}
                Err(err) => return Err(err),
            }
        }
        self.wal.commit()?;
        Ok(effects)
    }

    fn begin(&mut self, height: Height, set: ValidatorSet) -> Vec<Effect> {
        self.reset(height, set);
        self.enter_height()
    }

    fn reset(&mut self, height: Height, set: ValidatorSet) {
        self.me = self
            .signer
            .as_ref()
            .and_then(|s| set.index_of(&s.public_key()));
        self.set = set;
        self.state = HeightState::new(height);
        self.signed.clear();
    }

    /// Line 10: StartRound(0).
    fn enter_height(&mut self) -> Vec<Effect> {
        let mut effects = Vec::new();
        self.start_round(Round(0), &mut effects);
        self.run_rules(&mut effects);
        effects
    }

    /// Where the engine is.
    pub fn status(&self) -> Status {
        Status {
            height: self.state.height,
            round: self.state.round,
            step: self.state.step,
            locked: self.state.locked,
            valid: self.state.valid,
            decided: self.state.decision.is_some(),
        }
    }

    /// The validator set of the current height.
    pub fn validator_set(&self) -> &ValidatorSet {
        &self.set
    }

    /// The decision of the current height, once made.
    pub fn decision(&self) -> Option<&CommitCertificate> {
        self.state.decision.as_ref()
    }

    /// The votes received at the current height.
    pub fn votes(&self) -> &VoteKeeper {
        &self.state.votes
    }

    /// The write-ahead log.
    pub fn wal(&self) -> &W {
        &self.wal
    }

    /// Processes one input. Errors that [`ConsensusError::is_misbehaviour`]
    /// reject the input and change nothing; others are local failures (the
    /// log or the signer's storage) that should stop the node.
    pub fn handle(&mut self, input: Input) -> Result<Vec<Effect>, ConsensusError> {
        self.logged = false;
        let mut effects = Vec::new();
        self.apply(input, &mut effects)?;
        if self.logged && !self.replaying {
            self.wal.commit()?;
        }
        Ok(effects)
    }

    /// What to send again when peers may have missed it: this node's own
    /// messages of the current round; the precommits of the previous round,
    /// the round certificate that let this node move on (a node still in
    /// that round needs them to time out and follow); and, while it holds a
    /// valid value, the prevotes that justify it (a proof of lock).
    pub fn rebroadcast(&self) -> Vec<Message> {
        let s = &self.state;
        let mut out = Vec::new();
        if let Some(me) = self.me {
            if let Some((p, _)) = s.proposals.get(&s.round)
                && self.set.index_of(&p.proposal.proposer) == Some(me)
            {
                out.push(Message::Proposal(*p));
            }
            out.extend(
                s.votes
                    .votes_of(me)
                    .into_iter()
                    .filter(|v| v.vote.round == s.round)
                    .map(Message::Vote),
            );
        }
        if let Some(previous) = s.round.0.checked_sub(1) {
            out.extend(
                s.votes
                    .all(Round(previous), VoteKind::Precommit)
                    .into_iter()
                    .map(Message::Vote),
            );
        }
        if let Some((round, value)) = s.valid {
            out.extend(
                s.votes
                    .votes_for(round, VoteKind::Prevote, Some(value))
                    .into_iter()
                    .map(Message::Vote),
            );
        }
        out
    }

    fn apply(&mut self, input: Input, effects: &mut Vec<Effect>) -> Result<(), ConsensusError> {
        match input {
            Input::Proposal { proposal, valid } => self.on_proposal(proposal, valid, effects),
            Input::Vote(vote) => self.on_vote(vote, effects),
            Input::Timeout(timeout) => {
                self.on_timeout(timeout, effects)?;
                Ok(())
            }
            Input::ProposeValue {
                height,
                round,
                value,
            } => self.on_value(height, round, value, effects),
            Input::Certificate(certificate) => self.on_certificate(certificate, effects),
        }
    }

    fn log(&mut self, input: Input) -> Result<(), ConsensusError> {
        if !self.replaying {
            self.wal.append(&WalEntry::Input(input))?;
            self.logged = true;
        }
        Ok(())
    }

    /// Checks the height of a message: `Ok(true)` to process now, `Ok(false)`
    /// when it was buffered or dropped.
    fn route(&mut self, height: Height, sender: usize, input: &Input) -> bool {
        if height == self.state.height && self.state.decision.is_none() {
            return true;
        }
        let ahead =
            height > self.state.height && height.0 - self.state.height.0 <= MAX_FUTURE_HEIGHTS;
        if ahead && !self.replaying {
            let queue = self.future.entry(height).or_default();
            let mine = queue.iter().filter(|(s, _)| *s == sender).count();
            if mine < MAX_BUFFERED_PER_VALIDATOR && !queue.iter().any(|(_, i)| i == input) {
                queue.push((sender, input.clone()));
            }
        }
        false
    }

    /// Whether a message from `sender` at `round` fits the per-validator bound on future rounds.
    fn within_round_bound(&self, sender: usize, round: Round) -> bool {
        round <= self.state.round
            || self.state.votes.has_sender(round, sender)
            || self.state.votes.rounds_from(sender, self.state.round)
                < MAX_FUTURE_ROUNDS_PER_VALIDATOR
    }

    fn on_proposal(
        &mut self,
        sp: SignedProposal,
        valid: bool,
        effects: &mut Vec<Effect>,
    ) -> Result<(), ConsensusError> {
        let p = sp.proposal;
        if p.chain != self.chain {
            return Err(ConsensusError::WrongChain {
                expected: self.chain,
                found: p.chain,
            });
        }
        let sender = self
            .set
            .index_of(&p.proposer)
            .ok_or(ConsensusError::UnknownValidator {
                validator: p.proposer,
            })?;
        if let Some(pol) = p.pol_round
            && pol >= p.round
        {
            return Err(ConsensusError::InvalidPolRound {
                round: p.round,
                pol_round: pol,
            });
        }
        if self.set.proposer(p.height, p.round) != sender {
            return Err(ConsensusError::WrongProposer {
                proposer: p.proposer,
                height: p.height,
                round: p.round,
            });
        }
        if let Some((existing, _)) = self.state.proposals.get(&p.round)
            && existing.proposal.height == p.height
        {
            if existing.proposal == p {
                return Ok(()); // a duplicate: nothing to check or log
            }
            self.set.verify(sender, &p.sign_bytes(), &sp.signature)?;
            if self.state.proposal_evidence.insert(p.round) {
                effects.push(Effect::Evidence(Evidence::ConflictingProposals {
                    first: *existing,
                    second: sp,
                }));
            }
            return Ok(());
        }
        self.set.verify(sender, &p.sign_bytes(), &sp.signature)?;
        let input = Input::Proposal {
            proposal: sp,
            valid,
        };
        if !self.route(p.height, sender, &input) || !self.within_round_bound(sender, p.round) {
            return Ok(());
        }
        self.log(input)?;
        self.state.proposals.insert(p.round, (sp, valid));
        self.state
            .votes
            .note_sender(p.round, sender, self.set.power(sender));
        self.run_rules(effects);
        Ok(())
    }

    fn on_vote(&mut self, sv: SignedVote, effects: &mut Vec<Effect>) -> Result<(), ConsensusError> {
        let v = sv.vote;
        if v.chain != self.chain {
            return Err(ConsensusError::WrongChain {
                expected: self.chain,
                found: v.chain,
            });
        }
        let sender = self
            .set
            .index_of(&v.validator)
            .ok_or(ConsensusError::UnknownValidator {
                validator: v.validator,
            })?;
        if v.height == self.state.height
            && self
                .state
                .votes
                .votes_of(sender)
                .iter()
                .any(|known| known == &sv)
        {
            return Ok(()); // already counted: skip the signature check
        }
        self.set.verify(sender, &v.sign_bytes(), &sv.signature)?;
        let input = Input::Vote(sv);
        if !self.route(v.height, sender, &input) || !self.within_round_bound(sender, v.round) {
            return Ok(());
        }
        self.log(input)?;
        self.count_vote(sender, sv, effects);
        self.run_rules(effects);
        Ok(())
    }

    fn count_vote(&mut self, sender: usize, sv: SignedVote, effects: &mut Vec<Effect>) {
        if let AddOutcome::Conflict(Some(evidence)) =
            self.state.votes.add(sender, self.set.power(sender), sv)
        {
            effects.push(Effect::Evidence(evidence));
        }
    }

    fn on_timeout(
        &mut self,
        t: Timeout,
        effects: &mut Vec<Effect>,
    ) -> Result<bool, ConsensusError> {
        let s = &self.state;
        if s.decision.is_some() || t.height != s.height || t.round != s.round {
            return Ok(false);
        }
        let acts = match t.step {
            Step::Propose | Step::Prevote => s.step == t.step,
            Step::Precommit => true,
        };
        if !acts {
            return Ok(false);
        }
        self.log(Input::Timeout(t))?;
        effects.extend(self.rebroadcast().into_iter().map(Effect::Broadcast));
        match t.step {
            // Lines 57-60: OnTimeoutPropose: prevote nil.
            Step::Propose => {
                self.vote(VoteKind::Prevote, None, effects);
                self.state.step = Step::Prevote;
            }
            // Lines 61-64: OnTimeoutPrevote: precommit nil.
            Step::Prevote => {
                self.vote(VoteKind::Precommit, None, effects);
                self.state.step = Step::Precommit;
            }
            // Lines 65-67: OnTimeoutPrecommit: next round.
            Step::Precommit => {
                let next = self.state.round.next();
                self.start_round(next, effects);
            }
        }
        self.run_rules(effects);
        Ok(true)
    }

    fn on_value(
        &mut self,
        height: Height,
        round: Round,
        value: ValueId,
        effects: &mut Vec<Effect>,
    ) -> Result<(), ConsensusError> {
        let s = &self.state;
        let mine = self.me.is_some() && self.me == Some(self.set.proposer(height, round));
        if s.decision.is_some()
            || height != s.height
            || round != s.round
            || s.step != Step::Propose
            || !mine
            || s.proposals.contains_key(&round)
        {
            return Ok(());
        }
        self.log(Input::ProposeValue {
            height,
            round,
            value,
        })?;
        // Line 18: proposal ← getValue(); line 19: broadcast PROPOSAL(h, round, proposal, -1).
        self.propose(value, None, effects);
        self.run_rules(effects);
        Ok(())
    }

    fn on_certificate(
        &mut self,
        cert: CommitCertificate,
        effects: &mut Vec<Effect>,
    ) -> Result<(), ConsensusError> {
        if self.state.decision.is_some() || cert.height != self.state.height {
            if cert.height > self.state.height {
                return Err(ConsensusError::WrongHeight {
                    expected: self.state.height,
                    found: cert.height,
                });
            }
            return Ok(());
        }
        cert.verify(self.chain, &self.set)?;
        self.log(Input::Certificate(cert.clone()))?;
        self.state.decision = Some(cert.clone());
        effects.push(Effect::Decide(cert));
        Ok(())
    }

    /// Lines 11-21: StartRound(round).
    fn start_round(&mut self, round: Round, effects: &mut Vec<Effect>) {
        let s = &mut self.state;
        s.round = round;
        s.step = Step::Propose;
        let height = s.height;
        if self.me.is_some() && self.me == Some(self.set.proposer(height, round)) {
            match self.state.valid {
                // Lines 14-15: re-propose the valid value with its round as POL round,
                // and send the prevotes that make it acceptable (see module docs).
                Some((valid_round, value)) => {
                    let pol =
                        self.state
                            .votes
                            .votes_for(valid_round, VoteKind::Prevote, Some(value));
                    effects.extend(pol.into_iter().map(|v| Effect::Broadcast(Message::Vote(v))));
                    self.propose(value, Some(valid_round), effects);
                }
                // Lines 16-18: ask the application for a value.
                None => effects.push(Effect::GetValue { height, round }),
            }
        }
        // Line 21 (for every node, see module docs): schedule OnTimeoutPropose.
        self.schedule(Step::Propose, effects);
    }

    fn schedule(&self, step: Step, effects: &mut Vec<Effect>) {
        let timeout = Timeout {
            height: self.state.height,
            round: self.state.round,
            step,
        };
        effects.push(Effect::ScheduleTimeout {
            timeout,
            after_ms: self.timeouts.duration_ms(step, timeout.round),
        });
    }

    fn propose(&mut self, value: ValueId, pol_round: Option<Round>, effects: &mut Vec<Effect>) {
        let (Some(me), Some(signer)) = (self.me, self.signer.as_ref()) else {
            return;
        };
        let proposal = Proposal {
            chain: self.chain,
            height: self.state.height,
            round: self.state.round,
            value,
            pol_round,
            proposer: signer.public_key(),
        };
        let signed = self.sign(Step::Propose, |signer| {
            signer.sign_proposal(&proposal).map(|signature| {
                Message::Proposal(SignedProposal {
                    proposal,
                    signature,
                })
            })
        });
        match signed {
            Ok(Message::Proposal(sp)) if sp.proposal == proposal => {
                self.state.proposals.insert(proposal.round, (sp, true));
                self.state
                    .votes
                    .note_sender(proposal.round, me, self.set.power(me));
                effects.push(Effect::Broadcast(Message::Proposal(sp)));
            }
            Ok(other) => effects.push(Effect::SignRefused(diverged(&other))),
            Err(err) => effects.push(Effect::SignRefused(err)),
        }
    }

    /// Signs, counts and broadcasts this node's vote; a refusal leaves it silent.
    fn vote(&mut self, kind: VoteKind, value: Option<ValueId>, effects: &mut Vec<Effect>) {
        let (Some(me), Some(signer)) = (self.me, self.signer.as_ref()) else {
            return;
        };
        let vote = Vote {
            chain: self.chain,
            height: self.state.height,
            round: self.state.round,
            kind,
            value,
            validator: signer.public_key(),
        };
        let signed = self.sign(kind.step(), |signer| {
            signer
                .sign_vote(&vote)
                .map(|signature| Message::Vote(SignedVote { vote, signature }))
        });
        match signed {
            Ok(Message::Vote(sv)) if sv.vote == vote => {
                self.count_vote(me, sv, effects);
                effects.push(Effect::Broadcast(Message::Vote(sv)));
            }
            Ok(other) => effects.push(Effect::SignRefused(diverged(&other))),
            Err(err) => effects.push(Effect::SignRefused(err)),
        }
    }

    /// The message this node signed at `step` of the current round: the one
    /// logged earlier if there is one (a replay), else a new signature,
    /// logged before it can leave.
    fn sign(
        &mut self,
        step: Step,
        sign: impl FnOnce(&mut S) -> Result<Message, ConsensusError>,
    ) -> Result<Message, ConsensusError> {
        let key = (self.state.round, step);
        if let Some(msg) = self.signed.get(&key) {
            return Ok(*msg);
        }
        let signer = self.signer.as_mut().ok_or(ConsensusError::NotAValidator)?;
        let msg = sign(signer)?;
        self.signed.insert(key, msg);
        if !self.replaying {
            self.wal.append(&WalEntry::Signed(msg))?;
            self.logged = true;
        }
        Ok(msg)
    }

    /// Evaluates the `upon` rules until none fires.
    fn run_rules(&mut self, effects: &mut Vec<Effect>) {
        // Each pass either fires a rule that changes the state monotonically
        // (a step, a round, a once-flag or the decision) or stops; the bound
        // only guards against a bug turning this into an endless loop.
        for _ in 0..64 {
            if self.state.decision.is_some() {
                return;
            }
            let fired = self.rule_decide(effects)
                || self.rule_skip_round(effects)
                || self.rule_prevote_on_proposal(effects)
                || self.rule_prevote_on_pol_proposal(effects)
                || self.rule_schedule_prevote_timeout(effects)
                || self.rule_polka_for_value(effects)
                || self.rule_polka_for_nil(effects)
                || self.rule_schedule_precommit_timeout(effects);
            if !fired {
                return;
            }
        }
    }

    /// Lines 22-27: a fresh proposal (no POL round) in the propose step.
    fn rule_prevote_on_proposal(&mut self, effects: &mut Vec<Effect>) -> bool {
        let s = &self.state;
        if s.step != Step::Propose {
            return false;
        }
        let Some((sp, valid)) = s.proposals.get(&s.round) else {
            return false;
        };
        if sp.proposal.pol_round.is_some() {
            return false;
        }
        let v = sp.proposal.value;
        // Line 23: valid(v) ∧ (lockedRound = -1 ∨ lockedValue = v).
        let accept = *valid && s.locked.is_none_or(|(_, locked)| locked == v);
        self.vote(VoteKind::Prevote, accept.then_some(v), effects);
        self.state.step = Step::Prevote;
        true
    }

    /// Lines 28-33: a re-proposal with POL round vr < round, backed by 2f+1 prevotes at vr.
    fn rule_prevote_on_pol_proposal(&mut self, effects: &mut Vec<Effect>) -> bool {
        let s = &self.state;
        if s.step != Step::Propose {
            return false;
        }
        let Some((sp, valid)) = s.proposals.get(&s.round) else {
            return false;
        };
        let Some(vr) = sp.proposal.pol_round else {
            return false;
        };
        let v = sp.proposal.value;
        if vr >= s.round
            || !self
                .set
                .is_quorum(s.votes.power_for(vr, VoteKind::Prevote, Some(v)))
        {
            return false;
        }
        // Line 29: valid(v) ∧ (lockedRound ≤ vr ∨ lockedValue = v).
        let accept = *valid
            && s.locked
                .is_none_or(|(locked_round, locked)| locked_round <= vr || locked == v);
        self.vote(VoteKind::Prevote, accept.then_some(v), effects);
        self.state.step = Step::Prevote;
        true
    }

    /// Lines 34-35: 2f+1 prevotes of any kind in the prevote step: schedule OnTimeoutPrevote, once.
    fn rule_schedule_prevote_timeout(&mut self, effects: &mut Vec<Effect>) -> bool {
        let s = &self.state;
        if s.step != Step::Prevote
            || s.fired.contains(&(s.round, Once::PrevoteTimeout))
            || !self
                .set
                .is_quorum(s.votes.total_power(s.round, VoteKind::Prevote))
        {
            return false;
        }
        self.state.fired.insert((s.round, Once::PrevoteTimeout));
        self.schedule(Step::Prevote, effects);
        true
    }

    /// Lines 36-43: the round's proposal is valid and has 2f+1 prevotes, once per round.
    fn rule_polka_for_value(&mut self, effects: &mut Vec<Effect>) -> bool {
        let s = &self.state;
        if s.step < Step::Prevote || s.fired.contains(&(s.round, Once::Polka)) {
            return false;
        }
        let Some((sp, true)) = s.proposals.get(&s.round) else {
            return false;
        };
        let v = sp.proposal.value;
        if !self
            .set
            .is_quorum(s.votes.power_for(s.round, VoteKind::Prevote, Some(v)))
        {
            return false;
        }
        let round = s.round;
        self.state.fired.insert((round, Once::Polka));
        if self.state.step == Step::Prevote {
            // Lines 38-41: lock on v and precommit it.
            self.state.locked = Some((round, v));
            self.vote(VoteKind::Precommit, Some(v), effects);
            self.state.step = Step::Precommit;
        }
        // Lines 42-43: v is the valid value.
        self.state.valid = Some((round, v));
        true
    }

    /// Lines 44-46: 2f+1 prevotes for nil in the prevote step: precommit nil.
    fn rule_polka_for_nil(&mut self, effects: &mut Vec<Effect>) -> bool {
        let s = &self.state;
        if s.step != Step::Prevote
            || !self
                .set
                .is_quorum(s.votes.power_for(s.round, VoteKind::Prevote, None))
        {
            return false;
        }
        self.vote(VoteKind::Precommit, None, effects);
        self.state.step = Step::Precommit;
        true
    }

    /// Lines 47-48: 2f+1 precommits of any kind: schedule OnTimeoutPrecommit, once.
    fn rule_schedule_precommit_timeout(&mut self, effects: &mut Vec<Effect>) -> bool {
        let s = &self.state;
        if s.fired.contains(&(s.round, Once::PrecommitTimeout))
            || !self
                .set
                .is_quorum(s.votes.total_power(s.round, VoteKind::Precommit))
        {
            return false;
        }
        self.state.fired.insert((s.round, Once::PrecommitTimeout));
        self.schedule(Step::Precommit, effects);
        true
    }

    /// Lines 49-54: 2f+1 precommits for a valid proposed value in any round: decide.
    fn rule_decide(&mut self, effects: &mut Vec<Effect>) -> bool {
        let s = &self.state;
        let decided = s.votes.rounds().find_map(|round| {
            s.votes
                .values(round, VoteKind::Precommit)
                .into_iter()
                .find_map(|(value, power)| value.filter(|_| self.set.is_quorum(power)))
                .filter(|v| {
                    s.proposals
                        .values()
                        .any(|(p, valid)| *valid && p.proposal.value == *v)
                })
                .map(|v| (round, v))
        });
        let Some((round, value)) = decided else {
            return false;
        };
        let signatures = s
            .votes
            .votes_for(round, VoteKind::Precommit, Some(value))
            .into_iter()
            .map(|v| CommitSignature {
                validator: v.vote.validator,
                signature: v.signature,
            })
            .collect();
        let cert = CommitCertificate {
            chain: self.chain,
            height: s.height,
            round,
            value,
            signatures,
        };
        self.state.decision = Some(cert.clone());
        effects.push(Effect::Decide(cert));
        true
    }

    /// Lines 55-56: f+1 of the power sent messages for a higher round: go to that round.
    fn rule_skip_round(&mut self, effects: &mut Vec<Effect>) -> bool {
        let s = &self.state;
        let target = s
            .votes
            .rounds()
            .filter(|r| *r > s.round && self.set.is_one_third(s.votes.sender_power(*r)))
            .max();
        let Some(round) = target else { return false };
        self.start_round(round, effects);
        true
    }
}
