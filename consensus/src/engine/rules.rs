//! The `upon` rules of Algorithm 1 and the actions they take (start a
//! round, propose, vote), each commented with the lines it implements.

use super::*;

impl<S: Signer, W: Wal> Engine<S, W> {
    /// Lines 11-21: StartRound(round).
    pub(super) fn start_round(&mut self, round: Round, effects: &mut Vec<Effect>) {
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

    pub(super) fn schedule(&self, step: Step, effects: &mut Vec<Effect>) {
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

    pub(super) fn propose(
        &mut self,
        value: ValueId,
        pol_round: Option<Round>,
        effects: &mut Vec<Effect>,
    ) {
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
            Err(err) => self.refused(err, effects),
        }
    }

    /// Signs, counts and broadcasts this node's vote; a refusal leaves it silent.
    pub(super) fn vote(
        &mut self,
        kind: VoteKind,
        value: Option<ValueId>,
        effects: &mut Vec<Effect>,
    ) {
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
            Err(err) => self.refused(err, effects),
        }
    }

    /// A refusal to sign (already signed at or past this step) leaves this
    /// node silent there; a storage failure stops the engine.
    fn refused(&mut self, err: ConsensusError, effects: &mut Vec<Effect>) {
        match err {
            ConsensusError::DoubleSignRefused { .. } | ConsensusError::ReplayDiverged { .. } => {
                effects.push(Effect::SignRefused(err));
            }
            other => {
                self.failure.get_or_insert(other);
            }
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
    pub(super) fn run_rules(&mut self, effects: &mut Vec<Effect>) {
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
