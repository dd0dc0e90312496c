//! Checking and applying each kind of input: a message is refused (named
//! error, nothing changes), ignored (duplicate, stale), buffered (a future
//! height), or logged and applied.

use super::*;

impl<S: Signer, W: Wal> Engine<S, W> {
    /// Verifies a signature, unless the input was verified already: a
    /// message buffered for a future height was checked when it arrived, and
    /// a logged input when it was logged.
    fn check_signature(
        &self,
        sender: usize,
        bytes: &[u8],
        signature: &crate::Signature,
    ) -> Result<(), ConsensusError> {
        if self.trusted_input {
            return Ok(());
        }
        self.set.verify(sender, bytes, signature)
    }

    /// Checks the height of a message: `Ok(true)` to process now, `Ok(false)`
    /// when it was buffered or dropped.
    pub(super) fn route(&mut self, height: Height, sender: usize, input: &Input) -> bool {
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
    pub(super) fn within_round_bound(&self, sender: usize, round: Round) -> bool {
        round <= self.state.round
            || self.state.votes.has_sender(round, sender)
            || self.state.votes.rounds_from(sender, self.state.round)
                < MAX_FUTURE_ROUNDS_PER_VALIDATOR
    }

    pub(super) fn on_proposal(
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
            self.check_signature(sender, &p.sign_bytes(), &sp.signature)?;
            if self.state.proposal_evidence.insert(p.round) {
                effects.push(Effect::Evidence(Evidence::ConflictingProposals {
                    first: *existing,
                    second: sp,
                }));
            }
            return Ok(());
        }
        self.check_signature(sender, &p.sign_bytes(), &sp.signature)?;
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

    pub(super) fn on_vote(
        &mut self,
        sv: SignedVote,
        effects: &mut Vec<Effect>,
    ) -> Result<(), ConsensusError> {
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
        if v.height == self.state.height && self.state.votes.contains(sender, &sv) {
            return Ok(()); // already counted: skip the signature check
        }
        self.check_signature(sender, &v.sign_bytes(), &sv.signature)?;
        let input = Input::Vote(sv);
        if !self.route(v.height, sender, &input) || !self.within_round_bound(sender, v.round) {
            return Ok(());
        }
        self.log(input)?;
        self.count_vote(sender, sv, effects);
        self.run_rules(effects);
        Ok(())
    }

    pub(super) fn count_vote(&mut self, sender: usize, sv: SignedVote, effects: &mut Vec<Effect>) {
        if let AddOutcome::Conflict(Some(evidence)) =
            self.state.votes.add(sender, self.set.power(sender), sv)
        {
            effects.push(Effect::Evidence(*evidence));
        }
    }

    pub(super) fn on_timeout(
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

    pub(super) fn on_value(
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

    /// A certificate for this height decides it; `checked` when its
    /// signatures were checked against this height's set already.
    pub(super) fn on_certificate(
        &mut self,
        cert: CommitCertificate,
        checked: bool,
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
        if !checked || cert.chain != self.chain {
            cert.verify(self.chain, &self.set)?;
        }
        self.log(Input::Certificate(cert.clone()))?;
        self.state.decision = Some(cert.clone());
        effects.push(Effect::Decide(cert));
        Ok(())
    }
}
