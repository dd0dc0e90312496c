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

mod inputs;
mod interface;
mod rules;

use std::collections::{BTreeMap, BTreeSet};

use cairn_genesis::Hash;

use crate::certificate::{CheckedCertificate, CommitCertificate, CommitSignature};
use crate::signer::Signer;
use crate::types::{
    Height, Message, Proposal, Round, SignedProposal, SignedVote, Step, ValueId, Vote, VoteKind,
};
use crate::vote_keeper::{AddOutcome, Evidence, VoteKeeper};
use crate::wal::{Wal, WalEntry};
use crate::{ConsensusError, ValidatorSet};

pub use interface::{Effect, Input, Timeout, Timeouts};

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
    ConsensusError::ReplayDiverged {
        height: earlier.height(),
        round,
        step,
    }
}

/// Heights ahead of the current one whose messages are buffered.
pub const MAX_FUTURE_HEIGHTS: u64 = 2;
/// Buffered messages per validator and future height.
pub const MAX_BUFFERED_PER_VALIDATOR: usize = 16;
/// Rounds ahead of the current one in which one validator's messages are kept.
pub const MAX_FUTURE_ROUNDS_PER_VALIDATOR: usize = 2;

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
    /// The inputs being handled were verified before (buffered or logged).
    trusted_input: bool,
    /// A local failure (the signer's storage) that stopped the engine.
    failure: Option<ConsensusError>,
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
            trusted_input: false,
            failure: None,
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
                engine.trusted_input = true;
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
                engine.check_failure()?;
                for entry in rest {
                    if let WalEntry::Input(input) = entry {
                        // A logged input was valid when logged and the replayed state
                        // is the same, so it is not refused again; a local failure
                        // (the signer's storage) stops the recovery.
                        match engine.handle(input.clone()) {
                            Ok(more) => effects.extend(more),
                            Err(err) if err.is_misbehaviour() => {}
                            Err(err) => return Err(err),
                        }
                    }
                }
                engine.replaying = false;
                engine.trusted_input = false;
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
        self.check_failure()?;
        let mut effects = self.begin(height, set);
        self.check_failure()?;
        let buffered = self.future.remove(&height).unwrap_or_default();
        self.future.retain(|h, _| *h > height);
        self.trusted_input = true;
        let mut result = Ok(());
        for (_, input) in buffered {
            match self.handle(input) {
                Ok(more) => effects.extend(more),
                // Buffered messages were checked against the previous set; a
                // message the new set refuses (by membership) is dropped.
                Err(err) if err.is_misbehaviour() => {}
                Err(err) => {
                    result = Err(err);
                    break;
                }
            }
        }
        self.trusted_input = false;
        result?;
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
        self.process(|engine, effects| engine.apply(input, effects))
    }

    /// [`Engine::handle`] of [`Input::Certificate`] for a certificate
    /// already checked ([`CommitCertificate::verify_batch`]): its
    /// signatures are not checked again if it was checked against this
    /// height's validator set (and are, otherwise). Logged as
    /// [`Input::Certificate`], so a replay checks it like any other.
    pub fn handle_checked(
        &mut self,
        checked: CheckedCertificate,
    ) -> Result<Vec<Effect>, ConsensusError> {
        let trusted = checked.set() == self.set.hash();
        let certificate = checked.into_certificate();
        self.process(|engine, effects| engine.on_certificate(certificate, trusted, effects))
    }

    /// One step: `step`, then the log's commit before the effects leave.
    fn process(
        &mut self,
        step: impl FnOnce(&mut Self, &mut Vec<Effect>) -> Result<(), ConsensusError>,
    ) -> Result<Vec<Effect>, ConsensusError> {
        self.check_failure()?;
        self.logged = false;
        let mut effects = Vec::new();
        step(self, &mut effects)?;
        self.check_failure()?;
        if self.logged && !self.replaying {
            self.wal.commit()?;
        }
        Ok(effects)
    }

    /// A local failure, once it happened, stops the engine for good: the
    /// node must not go on without its durable sign state.
    fn check_failure(&self) -> Result<(), ConsensusError> {
        match &self.failure {
            Some(err) => Err(err.clone()),
            None => Ok(()),
        }
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
            Input::Certificate(certificate) => self.on_certificate(certificate, false, effects),
        }
    }

    fn log(&mut self, input: Input) -> Result<(), ConsensusError> {
        if !self.replaying {
            self.wal.append(&WalEntry::Input(input))?;
            self.logged = true;
        }
        Ok(())
    }
}
