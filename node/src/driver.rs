//! The consensus driver: one task that owns the engine, feeds it inputs
//! (gossiped proposals and votes, expired timers, values it built, commit
//! certificates from block sync) and carries out its effects in order
//! (broadcast, schedule a timer, build a block, commit a decision, store
//! evidence).
//!
//! Ordering it relies on (see `consensus::wal`): the engine logs every
//! input and every message it signs before `handle` returns, and the
//! messages it signs are synced then, so a message leaves only once it is
//! durable; inputs reach the disk with the next synced write, ahead of it
//! in RocksDB's ordered log. A proposed block is kept in the store before
//! its proposal is fed, so a restarted node still has the values its log
//! names; the decided block and the new height are committed in one synced
//! write, and its state after it (replayed from the blocks at the next
//! start if a crash loses it), before the engine starts the next height
//! (which resets the log). A run of blocks from block sync is the
//! exception: their commits are written in order through RocksDB's log and
//! synced once at the end of the run (`Store::defer_syncs`), so a crash
//! keeps a prefix of them; a message the node signs meanwhile is still
//! synced before it leaves.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_anchoring::Block;
use cairn_consensus::{
    CheckedCertificate, CommitCertificate, Effect, Engine, GuardedSigner, Height, Input, Message,
    Round, Step, Timeout, Timeouts, ValueId,
};
use cairn_genesis::{PublicKey, Timestamp};
use libp2p::PeerId;
use tokio::sync::{mpsc, watch};
use tracing::{debug, error, info, warn};

use crate::NodeError;
use crate::chain::{Executed, InvalidBlock};
use crate::mempool::{lock, read, write};
use crate::metrics::{add, raise, set};
use crate::net::{ConsensusMessage, MAX_SYNC_BLOCKS, NetCommand, NetEvent, SyncRequest, Verdict};
use crate::node::Shared;
use crate::sign_state::SignStateFile;
use crate::store::RocksWal;

type NodeEngine = Engine<GuardedSigner<SignStateFile>, RocksWal>;

/// Most proposals kept for heights this node has not reached.
const MAX_FUTURE_PROPOSALS: usize = 32;
/// How often to ask a peer whether this node is behind.
const SYNC_EVERY: Duration = Duration::from_millis(1_000);
/// A sync request unanswered for this long may be sent again.
const SYNC_PATIENCE: Duration = Duration::from_secs(5);
/// A sync request this recent makes a node that was alone and just found
/// a peer skip its own: the network connected before the driver heard.
const JUST_ASKED: Duration = Duration::from_millis(250);

/// Decided heights whose votes are kept, to catch equivocation in votes
/// that arrive after the height was decided.
const RECENT_HEIGHTS: usize = 4;

/// A block known for the current height.
struct Candidate {
    block: Block,
    executed: Option<Executed>,
}

/// The driver's state.
pub struct Driver {
    shared: Arc<Shared>,
    engine: NodeEngine,
    me: Option<PublicKey>,
    timeouts: Timeouts,
    blocks: HashMap<ValueId, Candidate>,
    future: Vec<(PeerId, cairn_consensus::SignedProposal, Block)>,
    timers: Vec<(Instant, Timeout)>,
    pending_value: Option<(Height, Round, Instant)>,
    awaiting_block: Option<CommitCertificate>,
    last_commit: Instant,
    last_block_time: Option<Timestamp>,
    sync_sent: Option<Instant>,
    /// This node's height at the last sync tick that found a peer one
    /// height ahead.
    one_behind_at: Option<u64>,
    idle_interval: Duration,
    recent: VecDeque<(Height, cairn_consensus::VoteKeeper)>,
    commit_sent: Option<(Height, Instant)>,
    /// The last block this node committed (at `last_commit`).
    decided: Option<Decided>,
}

impl Driver {
    /// Recovers the engine for the height after the committed one (replaying
    /// the WAL) and returns the driver with the replay's effects to carry out.
    pub fn start(
        shared: Arc<Shared>,
        signer: Option<GuardedSigner<SignStateFile>>,
        wal: RocksWal,
        idle_interval: Duration,
    ) -> Result<(Driver, Vec<Effect>), NodeError> {
        let (chain_id, set, height, last_time) = {
            let chain = read(&shared.chain);
            (
                chain.id(),
                chain.validators().clone(),
                chain.height(),
                chain.last_header().map(|h| h.time),
            )
        };
        let me = signer.as_ref().map(cairn_consensus::Signer::public_key);
        let timeouts = Timeouts::from_params(&shared.genesis.consensus);
        let (engine, effects) =
            Engine::recover(chain_id, timeouts, set, Height(height + 1), signer, wal)?;
        let mut blocks = HashMap::new();
        for block in shared.store.proposals(height + 1)? {
            blocks.insert(
                block.header.value_id(),
                Candidate {
                    block,
                    executed: None,
                },
            );
        }
        let status = engine.status();
        info!(
            height = status.height.0,
            round = status.round.0,
            kept_blocks = blocks.len(),
            "consensus recovered"
        );
        Ok((
            Driver {
                shared,
                engine,
                me,
                timeouts,
                blocks,
                future: Vec::new(),
                timers: Vec::new(),
                pending_value: None,
                awaiting_block: None,
                last_commit: Instant::now(),
                last_block_time: last_time,
                sync_sent: None,
                one_behind_at: None,
                idle_interval,
                recent: VecDeque::new(),
                commit_sent: None,
                decided: None,
            },
            effects,
        ))
    }

    /// Runs until `shutdown` turns true or a local failure stops the node.
    pub async fn run(
        mut self,
        first: Vec<Effect>,
        mut events: mpsc::Receiver<NetEvent>,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), NodeError> {
        self.carry_out(first)?;
        let mut rebroadcast = tokio::time::interval(self.rebroadcast_every());
        rebroadcast.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut sync = tokio::time::interval(SYNC_EVERY);
        sync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let shared = self.shared.clone();
        loop {
            let wake = self.next_deadline();
            tokio::select! {
                biased;
                _ = shutdown.changed() => {
                    if *shutdown.borrow() {
                        break;
                    }
                }
                event = events.recv() => match event {
                    Some(event) => self.on_event(event)?,
                    None => break,
                },
                _ = tokio::time::sleep_until(wake.into()) => self.on_time()?,
                _ = shared.mempool_changed.notified() => self.try_build()?,
                _ = rebroadcast.tick() => self.rebroadcast(),
                _ = sync.tick() => self.maybe_sync(),
            }
        }
        let status = self.engine.status();
        info!(
            height = status.height.0,
            round = status.round.0,
            "consensus stopped"
        );
        Ok(())
    }

    fn next_deadline(&self) -> Instant {
        let far = Instant::now() + Duration::from_secs(3600);
        let timers = self.timers.iter().map(|(at, _)| *at).min().unwrap_or(far);
        match self.pending_value {
            Some((_, _, at)) => timers.min(at),
            None => timers,
        }
    }

    fn net(&self, command: NetCommand) {
        if let Err(e) = self.shared.net.try_send(command) {
            debug!("network queue: {e}");
        }
    }

    fn report(&self, from: PeerId, id: libp2p::gossipsub::MessageId, verdict: Verdict) {
        if verdict == Verdict::Reject {
            add(&self.shared.metrics.rejected_messages, 1);
        }
        self.net(NetCommand::Report { id, from, verdict });
    }

    /// Feeds one input; returns the refusal if the input was invalid.
    fn feed(&mut self, input: Input) -> Result<Option<cairn_consensus::ConsensusError>, NodeError> {
        match self.engine.handle(input) {
            Ok(effects) => {
                self.carry_out(effects)?;
                Ok(None)
            }
            Err(e) if e.is_misbehaviour() => Ok(Some(e)),
            Err(e) => Err(e.into()),
        }
    }

    fn carry_out(&mut self, effects: Vec<Effect>) -> Result<(), NodeError> {
        let mut queue: VecDeque<Effect> = effects.into();
        while let Some(effect) = queue.pop_front() {
            match effect {
                Effect::Broadcast(message) => self.broadcast(message),
                Effect::ScheduleTimeout { timeout, after_ms } => {
                    self.timers
                        .push((Instant::now() + Duration::from_millis(after_ms), timeout));
                }
                Effect::GetValue { height, round } => {
                    let wait = if round.0 == 0 {
                        let propose = self.timeouts.duration_ms(Step::Propose, round) / 2;
                        let idle_until = self.last_commit + self.idle_interval;
                        idle_until.min(Instant::now() + Duration::from_millis(propose))
                    } else {
                        Instant::now()
                    };
                    self.pending_value = Some((height, round, wait));
                    queue.extend(self.build_if_due()?);
                }
                Effect::Decide(certificate) => queue.extend(self.decide(certificate)?),
                Effect::Evidence(evidence) => {
                    warn!(?evidence, "a validator equivocated; evidence recorded");
                    self.shared.store.record_evidence(&evidence)?;
                }
                Effect::SignRefused(e) => {
                    error!("the signer refused to sign: {e}; this node stays silent at this step");
                }
            }
        }
        self.publish_status();
        Ok(())
    }

    fn publish_status(&self) {
        let status = self.engine.status();
        set(&self.shared.metrics.round, u64::from(status.round.0));
    }

    fn broadcast(&self, message: Message) {
        match message {
            Message::Vote(vote) => {
                debug!(
                    height = vote.vote.height.0,
                    round = vote.vote.round.0,
                    kind = ?vote.vote.kind,
                    value = ?vote.vote.value.map(|v| v.0),
                    "vote"
                );
                self.net(NetCommand::Consensus(Box::new(ConsensusMessage::Vote(
                    vote,
                ))));
            }
            Message::Proposal(proposal) => match self.blocks.get(&proposal.proposal.value) {
                Some(candidate) => {
                    info!(
                        height = proposal.proposal.height.0,
                        round = proposal.proposal.round.0,
                        txs = candidate.block.transactions.len(),
                        "proposing block {}",
                        proposal.proposal.value.0
                    );
                    self.net(NetCommand::Consensus(Box::new(
                        ConsensusMessage::Proposal {
                            proposal,
                            block: Box::new(candidate.block.clone()),
                        },
                    )));
                }
                None => warn!(
                    height = proposal.proposal.height.0,
                    round = proposal.proposal.round.0,
                    "no block for this node's proposal of {}",
                    proposal.proposal.value.0
                ),
            },
        }
    }

    fn rebroadcast(&mut self) {
        for message in self.engine.rebroadcast() {
            self.broadcast(message);
        }
        if let Some(cert) = &self.awaiting_block {
            let from = cert.height.0;
            self.net(NetCommand::Sync(None, SyncRequest { from, max: 1 }));
        }
    }

    /// Builds the block this node was asked to propose, once it is due:
    /// at once if transactions are pending or the round is not the first,
    /// otherwise when the idle interval since the last block has passed.
    fn build_if_due(&mut self) -> Result<Vec<Effect>, NodeError> {
        let Some((height, round, at)) = self.pending_value else {
            return Ok(Vec::new());
        };
        let status = self.engine.status();
        if status.height != height || status.round != round || status.decided {
            self.pending_value = None;
            return Ok(Vec::new());
        }
        let pending = !lock(&self.shared.mempool).is_empty();
        if !pending && Instant::now() < at {
            return Ok(Vec::new());
        }
        self.pending_value = None;
        let Some(me) = self.me else {
            return Ok(Vec::new());
        };
        let params = &self.shared.genesis.consensus;
        let max_writes = usize::try_from(self.shared.config.consensus.max_block_commitments)
            .unwrap_or(usize::MAX);
        let candidates = lock(&self.shared.mempool).candidates(
            params.max_block_txs as usize,
            params.max_block_bytes as usize,
            max_writes,
        );
        let started = Instant::now();
        let (executed, refused) =
            read(&self.shared.chain).build(candidates, Timestamp::now(), me)?;
        self.shared.metrics.build.record(started);
        if !refused.is_empty() {
            let mut pool = lock(&self.shared.mempool);
            for (tx, reason) in refused {
                debug!("dropping a refused transaction {}: {reason}", tx.id());
                pool.reject(tx.id(), reason.to_string());
            }
        }
        let value = executed.value();
        self.shared.store.keep_proposal(&executed.block)?;
        self.blocks.insert(
            value,
            Candidate {
                block: executed.block.clone(),
                executed: Some(executed),
            },
        );
        match self.engine.handle(Input::ProposeValue {
            height,
            round,
            value,
        }) {
            Ok(effects) => Ok(effects),
            Err(e) if e.is_misbehaviour() => {
                warn!(height = height.0, round = round.0, "own value refused: {e}");
                Ok(Vec::new())
            }
            Err(e) => Err(e.into()),
        }
    }

    fn try_build(&mut self) -> Result<(), NodeError> {
        let effects = self.build_if_due()?;
        self.carry_out(effects)
    }

    fn on_time(&mut self) -> Result<(), NodeError> {
        let now = Instant::now();
        let (due, later): (Vec<_>, Vec<_>) = self.timers.drain(..).partition(|(at, _)| *at <= now);
        self.timers = later;
        for (_, timeout) in due {
            debug!(
                height = timeout.height.0,
                round = timeout.round.0,
                step = ?timeout.step,
                "timeout"
            );
            if let Some(e) = self.feed(Input::Timeout(timeout))? {
                debug!("timeout ignored: {e}");
            }
        }
        self.try_build()
    }

    fn on_event(&mut self, event: NetEvent) -> Result<(), NodeError> {
        match event {
            NetEvent::Peers(n) => {
                let before = self
                    .shared
                    .metrics
                    .peers
                    .swap(n as u64, std::sync::atomic::Ordering::Relaxed);
                // A node that was alone (just started, or cut off) asks its
                // first peer where the chain is, rather than waiting for a
                // consensus message: an idle network sends one a block
                // interval apart. The answer carries the peer's height and
                // any blocks this node lacks. A request made while alone
                // went nowhere, so only one sent a moment ago (most likely
                // to this very peer, which the network saw first) holds
                // this back.
                if before == 0 && n > 0 && !self.asked_within(JUST_ASKED) {
                    self.request_sync(None);
                }
            }
            NetEvent::Consensus { from, id, message } => {
                let verdict = match *message {
                    ConsensusMessage::Vote(vote)
                        if vote.vote.height < self.engine.status().height =>
                    {
                        let late = vote.vote;
                        let (verdict, signed) = self.late_vote(vote)?;
                        let since = self.last_commit.elapsed();
                        if signed
                            && !routinely_late(self.decided, since, &late, self.rebroadcast_every())
                        {
                            self.help_behind(late.height)?;
                        }
                        verdict
                    }
                    ConsensusMessage::Commit { block, certificate } => {
                        if self.apply_synced(from, vec![(*block, certificate)])? {
                            Verdict::Accept
                        } else {
                            Verdict::Ignore
                        }
                    }
                    ConsensusMessage::Vote(vote) => {
                        self.note_height(vote.vote.height);
                        self.sync_if_far_behind();
                        match self.feed(Input::Vote(vote))? {
                            None => Verdict::Accept,
                            Some(e) => {
                                debug!(%from, "vote refused: {e}");
                                Verdict::Reject
                            }
                        }
                    }
                    ConsensusMessage::Proposal { proposal, block } => {
                        self.note_height(proposal.proposal.height);
                        self.sync_if_far_behind();
                        self.on_proposal(from, proposal, *block)?
                    }
                };
                self.report(from, id, verdict);
            }
            NetEvent::Blocks { from, response } => {
                self.sync_sent = None;
                let peer_height = response.height;
                raise(&self.shared.metrics.peer_height, peer_height);
                let full = response.blocks.len() as u32 >= MAX_SYNC_BLOCKS;
                // One sync of RocksDB's log for the run, not one a block
                // (`Store::defer_syncs` says what a crash can lose).
                self.shared.store.defer_syncs();
                let applied = self.apply_synced(from, response.blocks);
                self.shared.store.sync_deferred()?;
                applied?;
                let height = read(&self.shared.chain).height();
                if full || peer_height > height {
                    self.request_sync(Some(from));
                }
            }
        }
        Ok(())
    }

    /// How often this node sends its own consensus messages again.
    fn rebroadcast_every(&self) -> Duration {
        Duration::from_millis(self.shared.config.consensus.rebroadcast_interval_ms.max(50))
    }

    /// A peer still voting at a height this node has committed, other than
    /// routinely ([`routinely_late`]), is behind: gossip that height's block
    /// and certificate (at most every 500 ms per height), so it decides at
    /// once instead of waiting for block sync.
    fn help_behind(&mut self, height: Height) -> Result<(), NodeError> {
        if self
            .commit_sent
            .is_some_and(|(h, at)| h == height && at.elapsed() < Duration::from_millis(500))
        {
            return Ok(());
        }
        let Some((block, certificate)) = read(&self.shared.chain).certified_block(height.0)? else {
            return Ok(());
        };
        self.commit_sent = Some((height, Instant::now()));
        self.net(NetCommand::Consensus(Box::new(ConsensusMessage::Commit {
            block: Box::new(block),
            certificate,
        })));
        Ok(())
    }

    /// A vote for a height already decided: checked against that height's
    /// votes, so that a validator that signed two different votes is caught
    /// even when the second arrives late.
    /// Returns the verdict and whether the signature was checked and valid.
    fn late_vote(
        &mut self,
        vote: cairn_consensus::SignedVote,
    ) -> Result<(Verdict, bool), NodeError> {
        let chain = read(&self.shared.chain).id();
        let set = self.engine.validator_set().clone();
        let Some((_, keeper)) = self.recent.iter_mut().find(|(h, _)| *h == vote.vote.height) else {
            return Ok((Verdict::Ignore, false));
        };
        let Some(index) = set.index_of(&vote.vote.validator) else {
            return Ok((Verdict::Reject, false));
        };
        if vote.vote.chain != chain
            || set
                .verify(index, &vote.vote.sign_bytes(), &vote.signature)
                .is_err()
        {
            return Ok((Verdict::Reject, false));
        }
        if let cairn_consensus::AddOutcome::Conflict(Some(evidence)) =
            keeper.add(index, set.power(index), vote)
        {
            warn!(
                height = vote.vote.height.0,
                round = vote.vote.round.0,
                ?evidence,
                "a validator equivocated (late vote); evidence recorded"
            );
            self.shared.store.record_evidence(&evidence)?;
        }
        Ok((Verdict::Ignore, true))
    }

    /// A message from a later height means this node may be behind.
    fn note_height(&self, height: Height) {
        raise(&self.shared.metrics.peer_height, height.0.saturating_sub(1));
    }

    fn on_proposal(
        &mut self,
        from: PeerId,
        proposal: cairn_consensus::SignedProposal,
        block: Block,
    ) -> Result<Verdict, NodeError> {
        let p = &proposal.proposal;
        if block.header.value_id() != p.value {
            debug!(%from, "a proposal's block does not hash to its value");
            return Ok(Verdict::Reject);
        }
        let status = self.engine.status();
        if p.height < status.height {
            return Ok(Verdict::Ignore);
        }
        let set = self.engine.validator_set();
        let Some(index) = set.index_of(&p.proposer) else {
            return Ok(Verdict::Reject);
        };
        if set.proposer(p.height, p.round) != index
            || set
                .verify(index, &p.sign_bytes(), &proposal.signature)
                .is_err()
        {
            return Ok(Verdict::Reject);
        }
        if let Some(awaited) = &self.awaiting_block
            && awaited.value == p.value
        {
            // The block this node decided on without having it.
            let awaited = awaited.clone();
            self.awaiting_block = None;
            self.blocks.insert(
                p.value,
                Candidate {
                    block,
                    executed: None,
                },
            );
            let effects = self.decide(awaited)?;
            self.carry_out(effects)?;
            return Ok(Verdict::Accept);
        }
        if p.height > status.height || status.decided {
            if p.height > status.height
                && self.future.len() < MAX_FUTURE_PROPOSALS
                && !self.future.iter().any(|(_, f, _)| f == &proposal)
            {
                self.future.push((from, proposal, block));
            }
            return Ok(Verdict::Ignore);
        }
        let valid = self.judge(&block)?;
        if let Some(e) = self.feed(Input::Proposal { proposal, valid })? {
            debug!(%from, "proposal refused: {e}");
            return Ok(Verdict::Reject);
        }
        Ok(if valid {
            Verdict::Accept
        } else {
            Verdict::Ignore
        })
    }

    /// The ids of `block`'s transactions that the mempool admitted (their
    /// signatures were verified then). Taken up front so that the pool is
    /// not locked against submissions while the block executes.
    fn admitted(&self, block: &Block) -> std::collections::HashSet<cairn_genesis::Hash> {
        let ids: Vec<_> = block.transactions.iter().map(|t| t.id()).collect();
        let pool = lock(&self.shared.mempool);
        ids.into_iter().filter(|id| pool.contains(id)).collect()
    }

    /// Executes `block` on the committed chain
    /// ([`crate::chain::Chain::execute`], `now` as there), the signatures
    /// checked at admission taken as known, and times it.
    fn execute(
        &self,
        block: &Block,
        now: Option<Timestamp>,
    ) -> Result<Result<Executed, InvalidBlock>, NodeError> {
        let started = Instant::now();
        let known = self.admitted(block);
        let outcome = read(&self.shared.chain).execute(block, &|id| known.contains(id), now);
        self.shared.metrics.execute.record(started);
        outcome
    }

    /// Re-executes a proposed block for the current height (once per block).
    fn judge(&mut self, block: &Block) -> Result<bool, NodeError> {
        let value = block.header.value_id();
        if let Some(Candidate {
            executed: Some(_), ..
        }) = self.blocks.get(&value)
        {
            return Ok(true);
        }
        match self.execute(block, Some(Timestamp::now()))? {
            Ok(executed) => {
                self.shared.store.keep_proposal(block)?;
                self.blocks.insert(
                    value,
                    Candidate {
                        block: block.clone(),
                        executed: Some(executed),
                    },
                );
                Ok(true)
            }
            Err(InvalidBlock(reason)) => {
                let s = self.engine.status();
                warn!(
                    height = s.height.0,
                    round = s.round.0,
                    "proposed block {} is invalid: {reason}",
                    value.0
                );
                Ok(false)
            }
        }
    }

    /// Commits the decided block, then starts the next height.
    fn decide(&mut self, certificate: CommitCertificate) -> Result<Vec<Effect>, NodeError> {
        let executed = match self.blocks.remove(&certificate.value) {
            Some(Candidate {
                executed: Some(executed),
                ..
            }) => executed,
            Some(Candidate { block, .. }) => {
                // Certified by a quorum: its time was judged by them.
                match self.execute(&block, None)? {
                    Ok(executed) => executed,
                    Err(InvalidBlock(reason)) => {
                        return Err(NodeError::Diverged(format!(
                            "block {} at height {} was decided by a quorum but is invalid here: {reason}",
                            certificate.value.0, certificate.height.0
                        )));
                    }
                }
            }
            None => {
                info!(
                    height = certificate.height.0,
                    round = certificate.round.0,
                    "decided block {} is not here yet; fetching it",
                    certificate.value.0
                );
                let from = certificate.height.0;
                self.awaiting_block = Some(certificate);
                self.net(NetCommand::Sync(None, SyncRequest { from, max: 1 }));
                return Ok(Vec::new());
            }
        };
        self.commit(executed, certificate)
    }

    fn commit(
        &mut self,
        executed: Executed,
        certificate: CommitCertificate,
    ) -> Result<Vec<Effect>, NodeError> {
        let height = executed.block.header.height;
        let txs = executed.block.transactions.len();
        let commitments = executed.commitments;
        let started = Instant::now();
        let (block, oldest) = {
            let mut chain = write(&self.shared.chain);
            let block = chain.commit(executed, &certificate)?;
            (block, chain.store().oldest_state_version())
        };
        self.shared.metrics.commit.record(started);
        let now = Instant::now();
        let metrics = &self.shared.metrics;
        set(&metrics.height, height);
        set(&metrics.oldest_state_version, oldest);
        set(
            &metrics.block_interval_ms,
            now.duration_since(self.last_commit).as_millis() as u64,
        );
        add(&metrics.transactions, txs as u64);
        add(&metrics.commitments, commitments);
        self.last_commit = now;
        self.decided = Some(Decided {
            height: certificate.height,
            round: certificate.round,
            value: certificate.value,
        });
        self.last_block_time = Some(block.header.time);
        info!(
            height,
            round = certificate.round.0,
            txs,
            signers = certificate.signatures.len(),
            "committed block {}",
            certificate.value.0
        );
        {
            let ids: Vec<_> = block.transactions.iter().map(|t| t.id()).collect();
            let mut pool = lock(&self.shared.mempool);
            pool.remove_committed(ids.iter());
            if !pool.is_empty() {
                // Only what this block can have changed: the credentials it
                // touched, and the heights transactions expire at.
                let touched: std::collections::HashSet<cairn_anchoring::Commitment> = block
                    .transactions
                    .iter()
                    .flat_map(|t| t.tx.action.commitments())
                    .collect();
                let next = height + 1;
                let affected = |tx: &cairn_anchoring::SignedTransaction| {
                    tx.tx.expires_at <= next
                        || tx.tx.action.commitments().any(|c| touched.contains(&c))
                };
                let chain = read(&self.shared.chain);
                let now = Timestamp::now();
                match pool.recheck(affected, |txs| chain.check_transactions(txs, now)) {
                    Ok(0) => {}
                    Ok(dropped) => debug!(height, dropped, "pending transactions no longer apply"),
                    // They stay: a proposer's build refuses any that no longer apply.
                    Err(e) => warn!(height, "re-checking pending transactions: {e}"),
                }
            }
        }
        self.blocks.clear();
        self.timers.clear();
        self.pending_value = None;
        self.awaiting_block = None;
        self.recent
            .push_back((Height(height), self.engine.votes().clone()));
        while self.recent.len() > RECENT_HEIGHTS {
            self.recent.pop_front();
        }
        let set = self.engine.validator_set().clone();
        let mut effects = self.engine.start_height(Height(height + 1), set)?;
        // Proposals that arrived early.
        let (now_due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.future)
            .into_iter()
            .partition(|(_, p, _)| p.proposal.height.0 == height + 1);
        self.future = later
            .into_iter()
            .filter(|(_, p, _)| p.proposal.height.0 > height + 1)
            .collect();
        for (from, proposal, block) in now_due {
            let valid = self.judge(&block)?;
            match self.engine.handle(Input::Proposal { proposal, valid }) {
                Ok(more) => effects.extend(more),
                Err(e) if e.is_misbehaviour() => debug!(%from, "early proposal refused: {e}"),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(effects)
    }

    /// Blocks from sync, in order, up to the first that is not applied:
    /// whether every one was applied or held already. The certificates of
    /// the blocks above this node's height are checked first, their
    /// signatures in batches across the run.
    fn apply_synced(
        &mut self,
        from: PeerId,
        blocks: Vec<(Block, CommitCertificate)>,
    ) -> Result<bool, NodeError> {
        let (height, chain_id) = {
            let chain = read(&self.shared.chain);
            (chain.height(), chain.id())
        };
        let (blocks, certificates): (Vec<Block>, Vec<CommitCertificate>) = blocks
            .into_iter()
            .filter(|(block, _)| block.header.height > height)
            .unzip();
        let checked =
            CommitCertificate::verify_batch(certificates, chain_id, self.engine.validator_set());
        for (block, checked) in blocks.into_iter().zip(checked) {
            let applied = match checked {
                Ok(checked) => self.on_synced(from, block, checked)?,
                Err(e) => {
                    warn!(%from, height = block.header.height, "sync: invalid certificate: {e}");
                    false
                }
            };
            if !applied {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// A block from sync, its certificate checked: applied if it is the
    /// next one. The engine takes the checked certificate without checking
    /// its signatures again.
    fn on_synced(
        &mut self,
        from: PeerId,
        block: Block,
        checked: CheckedCertificate,
    ) -> Result<bool, NodeError> {
        let height = read(&self.shared.chain).height();
        if block.header.height <= height {
            return Ok(true);
        }
        if block.header.height != height + 1 {
            return Ok(false);
        }
        let cert = checked.certificate();
        if cert.value != block.header.value_id() || cert.height.0 != block.header.height {
            warn!(%from, height = block.header.height, "sync: a certificate names another block");
            return Ok(false);
        }
        let value = cert.value;
        if let Some(awaited) = self.awaiting_block.take() {
            // The engine decided this value already: the block was all
            // that was missing.
            if awaited.value == value {
                self.blocks.insert(
                    awaited.value,
                    Candidate {
                        block,
                        executed: None,
                    },
                );
                let effects = self.decide(awaited)?;
                add(&self.shared.metrics.synced_blocks, 1);
                self.carry_out(effects)?;
                return Ok(true);
            }
            self.awaiting_block = Some(awaited);
        }
        let added = match self.blocks.entry(value) {
            Entry::Vacant(slot) => {
                slot.insert(Candidate {
                    block,
                    executed: None,
                });
                true
            }
            Entry::Occupied(_) => false,
        };
        let refused = match self.engine.handle_checked(checked) {
            Ok(effects) => {
                self.carry_out(effects)?;
                None
            }
            Err(e) if e.is_misbehaviour() => Some(e),
            Err(e) => return Err(e.into()),
        };
        let applied = read(&self.shared.chain).height() == height + 1;
        if applied {
            add(&self.shared.metrics.synced_blocks, 1);
        } else if added {
            // Not decided on: a block this certificate brought goes with it.
            self.blocks.remove(&value);
        }
        if let Some(e) = refused {
            warn!(%from, height = height + 1, "sync: certificate refused: {e}");
        }
        Ok(applied)
    }

    fn request_sync(&mut self, peer: Option<PeerId>) {
        let from = read(&self.shared.chain).height() + 1;
        self.sync_sent = Some(Instant::now());
        self.net(NetCommand::Sync(
            peer,
            SyncRequest {
                from,
                max: MAX_SYNC_BLOCKS,
            },
        ));
    }

    /// Whether a sync request went out less than `ago` ago.
    fn asked_within(&self, ago: Duration) -> bool {
        self.sync_sent.is_some_and(|at| at.elapsed() < ago)
    }

    /// The highest height a peer has shown (behind `cairn_sync_lag_blocks`).
    fn peer_height(&self) -> u64 {
        self.shared
            .metrics
            .peer_height
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Asks for blocks at once, not at the next tick, when a peer's message
    /// shows this node two or more heights behind and no request is out:
    /// a node that starts far behind begins to catch up as soon as the
    /// first message of its peers arrives.
    fn sync_if_far_behind(&mut self) {
        if self.asked_within(SYNC_PATIENCE) {
            return;
        }
        let committed = self.engine.status().height.0.saturating_sub(1);
        if self.peer_height() >= committed + 2 {
            self.request_sync(None);
        }
    }

    /// Asks a peer for blocks when this node looks behind: a peer reported
    /// a height two or more above this node's, or one above it at two
    /// ticks in a row, or no block was committed for a while.
    fn maybe_sync(&mut self) {
        if self.asked_within(SYNC_PATIENCE) {
            return;
        }
        let height = read(&self.shared.chain).height();
        let peer_height = self.peer_height();
        let quiet = self.last_commit.elapsed() > self.idle_interval * 2 + SYNC_EVERY;
        let one_behind_before = self.one_behind_at.take();
        if peer_height == height + 1 {
            self.one_behind_at = Some(height);
        }
        if should_sync(height, peer_height, one_behind_before) || quiet {
            self.request_sync(None);
        }
    }
}

/// A block a node committed: its height, round and value.
#[derive(Clone, Copy, Debug)]
struct Decided {
    height: Height,
    round: Round,
    value: ValueId,
}

/// Whether a node at committed `height` should ask for blocks, a peer
/// having reported `peer_height`. One height behind is where a node
/// stands for a moment after every decision its peers reach first (under
/// load, at many ticks): it asks only when it was already there at the
/// previous tick (`one_behind_at`, the height it had then), so that
/// blocks it is about to decide are not sent to it again. Two or more
/// behind, it asks at once.
fn should_sync(height: u64, peer_height: u64, one_behind_at: Option<u64>) -> bool {
    peer_height > height.saturating_add(1)
        || (peer_height == height.saturating_add(1) && one_behind_at == Some(height))
}

/// Whether `vote`, for a height this node has committed (`decided`,
/// `since` ago), is
/// the kind that arrives just after every decision: the last precommits
/// and prevotes of the decided round, for the decided block, from
/// validators that decide at the same moment. Sending such a validator
/// the block would be wasted (at every height, the whole block to every
/// peer). Routine means within the shorter of [`ROUTINE_LATE_WINDOW`] and
/// the rebroadcast interval (`rebroadcast_every`) of the decision. A
/// validator that is really behind votes nil, or in another round once
/// its timeouts fire, or is one height further behind, or sends its votes
/// again after that window, at a rebroadcast: those still get the block.
fn routinely_late(
    decided: Option<Decided>,
    since: Duration,
    vote: &cairn_consensus::Vote,
    rebroadcast_every: Duration,
) -> bool {
    decided.is_some_and(|d| {
        vote.height == d.height
            && vote.round == d.round
            && vote.value == Some(d.value)
            && since < rebroadcast_every.min(ROUTINE_LATE_WINDOW)
    })
}

/// Longest time after a decision that its routine late votes are
/// expected in; past it, a vote is a sign its validator is behind.
const ROUTINE_LATE_WINDOW: Duration = Duration::from_millis(500);

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use cairn_consensus::{Vote, VoteKind};
    use cairn_genesis::Hash;

    #[test]
    fn only_the_decided_rounds_votes_just_after_the_decision_are_routine() {
        let value = ValueId(Hash([1; 32]));
        let vote = Vote {
            chain: Hash([0; 32]),
            height: Height(5),
            round: Round(1),
            kind: VoteKind::Precommit,
            value: Some(value),
            validator: PublicKey([2; 32]),
        };
        let every = Duration::from_secs(1);
        let soon = Duration::from_millis(20);
        let decided = Some(Decided {
            height: Height(5),
            round: Round(1),
            value,
        });
        assert!(routinely_late(decided, soon, &vote, every));
        let prevote = Vote {
            kind: VoteKind::Prevote,
            ..vote
        };
        assert!(routinely_late(decided, soon, &prevote, every));
        let behind = [
            Vote {
                value: None,
                ..vote
            },
            Vote {
                round: Round(0),
                ..vote
            },
            Vote {
                round: Round(2),
                ..vote
            },
            Vote {
                height: Height(4),
                ..vote
            },
            Vote {
                value: Some(ValueId(Hash([3; 32]))),
                ..vote
            },
        ];
        for late in &behind {
            assert!(!routinely_late(decided, soon, late, every), "{late:?}");
        }
        // Sent again at a rebroadcast, after the window: the interval, or
        // ROUTINE_LATE_WINDOW when the interval is longer.
        assert!(!routinely_late(decided, every, &vote, every));
        let long = Duration::from_secs(60);
        assert!(routinely_late(
            decided,
            ROUTINE_LATE_WINDOW / 2,
            &vote,
            long
        ));
        assert!(!routinely_late(decided, ROUTINE_LATE_WINDOW, &vote, long));
        assert!(!routinely_late(None, soon, &vote, every));
    }

    #[test]
    fn one_height_behind_asks_for_blocks_only_when_it_lasts_a_tick() {
        // Level with the peers, or ahead of what they reported.
        assert!(!should_sync(10, 10, None));
        assert!(!should_sync(10, 9, Some(10)));
        // One behind: not at the first tick, nor when the node moved since.
        assert!(!should_sync(10, 11, None));
        assert!(!should_sync(10, 11, Some(9)));
        assert!(should_sync(10, 11, Some(10)));
        // Two or more behind: at once.
        assert!(should_sync(10, 12, None));
        assert!(should_sync(0, 300, None));
    }
}
