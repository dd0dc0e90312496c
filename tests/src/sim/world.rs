//! The simulated world: nodes, links, the event queue, and the checks.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use cairn_consensus::{
    CommitCertificate, Effect, Engine, Evidence, GuardedSigner, Height, Input, MemorySignState,
    MemoryWal, Message, Round, Signature, SignedProposal, SignedVote, Step, Timeout, Timeouts,
    ValidatorInfo, ValidatorSet, ValueId,
};
use cairn_genesis::{ConsensusParams, Hash, PublicKey};
use ed25519_dalek::{Signer as _, SigningKey};

use super::{Behaviour, Fault, LIVENESS_BOUND_MS, LinkConfig, Rng, Scenario, replay_command};

/// How often a node re-sends its own messages and asks peers for missed blocks.
const TICK_MS: u64 = 1_000;
/// How long the application takes to build a value.
const BUILD_MS: (u64, u64) = (1, 20);
/// Certificates sent in one sync answer.
const SYNC_BATCH: u64 = 16;
/// Heights each running honest node must decide after the network is stable.
const HEIGHTS_AFTER_STABLE: u64 = 2;
/// A value whose first byte is this is invalid, for every node alike.
const INVALID_MARK: u8 = 0xff;

type NodeEngine = Engine<GuardedSigner<MemorySignState>, MemoryWal>;

/// What a finished run measured.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Simulated time at the end.
    pub elapsed_ms: u64,
    /// Lowest height every running honest node decided.
    pub decided_heights: u64,
    /// Messages delivered.
    pub delivered: u64,
    /// Evidence records produced by honest nodes.
    pub evidence: usize,
    /// Crashes that happened.
    pub crashes: usize,
    /// Highest round any decision took.
    pub max_round: u32,
}

#[derive(Clone, Debug)]
enum SimMsg {
    Consensus(Message),
    Status(Height),
    Certificates(Vec<CommitCertificate>),
}

#[derive(Debug)]
enum Event {
    Deliver {
        to: usize,
        from: usize,
        msg: SimMsg,
    },
    Timer {
        node: usize,
        life: u32,
        timeout: Timeout,
    },
    Tick {
        node: usize,
        life: u32,
    },
    Value {
        node: usize,
        life: u32,
        height: Height,
        round: Round,
    },
    Crash {
        node: usize,
        mid_event: bool,
        restart_after_ms: Option<u64>,
    },
    Restart {
        node: usize,
    },
}

struct Scheduled {
    at: u64,
    seq: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

struct Node {
    key: SigningKey,
    behaviour: Behaviour,
    sign_state: MemorySignState,
    wal: MemoryWal,
    engine: Option<NodeEngine>,
    life: u32,
    crash_in_next_event: Option<Option<u64>>,
    committed: BTreeMap<Height, (CommitCertificate, u64)>,
}

struct World {
    scenario: Scenario,
    rng: Rng,
    now: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<Scheduled>>,
    nodes: Vec<Node>,
    chain: Hash,
    set: ValidatorSet,
    timeouts: Timeouts,
    /// Every message an honest node signed: (key, height, round, step) → message.
    signed: BTreeMap<(PublicKey, Height, Round, Step), Message>,
    evidence: Vec<(usize, Evidence)>,
    crashes: usize,
    delivered: u64,
    crash_proposer_done: BTreeSet<u64>,
}

/// Runs `scenario` with `seed`; `Err` says which property broke and how to replay it.
pub fn run(scenario: &Scenario, seed: u64) -> Result<Outcome, String> {
    let mut world = World::new(scenario.clone(), seed);
    world.simulate().map_err(|e| {
        format!(
            "{}: seed {seed}: {e}\nreplay: {}",
            scenario.name,
            replay_command(scenario.name, seed)
        )
    })
}

impl World {
    fn new(scenario: Scenario, seed: u64) -> World {
        let keys: Vec<SigningKey> = (0..scenario.behaviours.len())
            .map(|i| {
                let mut secret = [0u8; 32];
                secret[..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
                secret[8] = 0xc4;
                SigningKey::from_bytes(&secret)
            })
            .collect();
        let set = ValidatorSet::new(
            keys.iter()
                .map(|k| ValidatorInfo {
                    public_key: PublicKey::from(k.verifying_key()),
                    voting_power: 10,
                })
                .collect(),
        )
        .expect("valid simulated validator set");
        let nodes = keys
            .into_iter()
            .zip(&scenario.behaviours)
            .map(|(key, &behaviour)| Node {
                key,
                behaviour,
                sign_state: MemorySignState::default(),
                wal: MemoryWal::default(),
                engine: None,
                life: 0,
                crash_in_next_event: None,
                committed: BTreeMap::new(),
            })
            .collect();
        World {
            rng: Rng::new(seed),
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            nodes,
            chain: Hash::domain("cairn sim chain", &seed.to_le_bytes()),
            set,
            timeouts: Timeouts::from_params(&ConsensusParams::default()),
            signed: BTreeMap::new(),
            evidence: Vec::new(),
            crashes: 0,
            delivered: 0,
            crash_proposer_done: BTreeSet::new(),
            scenario,
        }
    }

    fn schedule(&mut self, after_ms: u64, event: Event) {
        self.seq += 1;
        self.queue.push(Reverse(Scheduled {
            at: self.now + after_ms,
            seq: self.seq,
            event,
        }));
    }

    fn honest(&self, node: usize) -> bool {
        self.nodes[node].behaviour == Behaviour::Honest
    }

    /// Honest nodes that are running at the end (not crashed for good).
    fn must_finish(&self, node: usize) -> bool {
        self.honest(node)
            && !self.scenario.faults.iter().any(
                |f| matches!(f, Fault::Crash { node: n, restart_after_ms: None, .. } if *n == node),
            )
    }

    fn simulate(&mut self) -> Result<Outcome, String> {
        for node in 0..self.nodes.len() {
            self.start(node)?;
        }
        for fault in self.scenario.faults.clone() {
            if let Fault::Crash {
                node,
                at_ms,
                mid_event,
                restart_after_ms,
            } = fault
            {
                self.queue.push(Reverse(Scheduled {
                    at: at_ms,
                    seq: u64::MAX - node as u64,
                    event: Event::Crash {
                        node,
                        mid_event,
                        restart_after_ms,
                    },
                }));
            }
        }
        let deadline = self.scenario.stable_at_ms
            + (self.scenario.heights + HEIGHTS_AFTER_STABLE + 1) * LIVENESS_BOUND_MS;
        while let Some(Reverse(next)) = self.queue.pop() {
            if next.at > deadline {
                break;
            }
            self.now = next.at;
            self.dispatch(next.event)?;
            if self.finished() {
                break;
            }
        }
        self.check_end()
    }

    fn finished(&self) -> bool {
        (0..self.nodes.len())
            .filter(|&n| self.must_finish(n))
            .all(|n| self.done(n))
    }

    /// A node has decided the scenario's heights, and enough of them after the network became stable.
    fn done(&self, node: usize) -> bool {
        let committed = &self.nodes[node].committed;
        let after_stable = committed
            .values()
            .filter(|(_, at)| *at >= self.scenario.stable_at_ms)
            .count() as u64;
        committed.len() as u64 >= self.scenario.heights && after_stable >= HEIGHTS_AFTER_STABLE
    }

    fn start(&mut self, node: usize) -> Result<(), String> {
        let n = &mut self.nodes[node];
        if n.behaviour == Behaviour::Silent {
            return Ok(());
        }
        n.life += 1;
        let height = Height(n.committed.keys().next_back().map_or(1, |h| h.0 + 1));
        let signer =
            GuardedSigner::new(n.key.clone(), n.sign_state.clone()).map_err(|e| e.to_string())?;
        let (engine, effects) = Engine::recover(
            self.chain,
            self.timeouts,
            self.set.clone(),
            height,
            Some(signer),
            n.wal.clone(),
        )
        .map_err(|e| format!("node {node} failed to recover: {e}"))?;
        n.engine = Some(engine);
        let life = n.life;
        let first_tick = self.rng.range(0, TICK_MS);
        self.schedule(first_tick, Event::Tick { node, life });
        self.execute(node, effects)
    }

    fn crash(&mut self, node: usize, restart_after_ms: Option<u64>) {
        let n = &mut self.nodes[node];
        if n.engine.take().is_none() {
            return;
        }
        n.wal.crash();
        n.life += 1;
        n.crash_in_next_event = None;
        self.crashes += 1;
        if let Some(after) = restart_after_ms {
            self.schedule(after, Event::Restart { node });
        }
    }

    fn dispatch(&mut self, event: Event) -> Result<(), String> {
        if std::env::var_os("CAIRN_SIM_TRACE").is_some() {
            eprintln!("{} ms: {event:?}", self.now);
        }
        match event {
            Event::Deliver { to, from, msg } => {
                self.delivered += 1;
                self.receive(to, from, msg)
            }
            Event::Timer {
                node,
                life,
                timeout,
            } => {
                if self.nodes[node].life == life {
                    self.feed(node, Input::Timeout(timeout))?;
                }
                Ok(())
            }
            Event::Value {
                node,
                life,
                height,
                round,
            } => {
                if self.nodes[node].life == life {
                    let value = self.build_value(node, height, round);
                    self.feed(
                        node,
                        Input::ProposeValue {
                            height,
                            round,
                            value,
                        },
                    )?;
                }
                Ok(())
            }
            Event::Tick { node, life } => {
                if self.nodes[node].life != life {
                    return Ok(());
                }
                let (messages, height) = match &self.nodes[node].engine {
                    Some(engine) => (engine.rebroadcast(), engine.status().height),
                    None => return Ok(()),
                };
                for msg in messages {
                    self.send_all(node, SimMsg::Consensus(msg));
                }
                self.send_all(node, SimMsg::Status(height));
                self.schedule(TICK_MS, Event::Tick { node, life });
                Ok(())
            }
            Event::Crash {
                node,
                mid_event,
                restart_after_ms,
            } => {
                if mid_event && self.nodes[node].engine.is_some() {
                    self.nodes[node].crash_in_next_event = Some(restart_after_ms);
                } else {
                    self.crash(node, restart_after_ms);
                }
                Ok(())
            }
            Event::Restart { node } => self.start(node),
        }
    }

    fn receive(&mut self, to: usize, from: usize, msg: SimMsg) -> Result<(), String> {
        if self.nodes[to].engine.is_none() {
            return Ok(());
        }
        match msg {
            SimMsg::Consensus(Message::Proposal(proposal)) => {
                let valid = proposal.proposal.value.0.0[0] != INVALID_MARK;
                self.feed(to, Input::Proposal { proposal, valid })
            }
            SimMsg::Consensus(Message::Vote(vote)) => self.feed(to, Input::Vote(vote)),
            SimMsg::Status(height) => {
                let certs: Vec<CommitCertificate> = self.nodes[to]
                    .committed
                    .range(height..Height(height.0 + SYNC_BATCH))
                    .map(|(_, (cert, _))| cert.clone())
                    .collect();
                if !certs.is_empty() {
                    self.send(to, from, SimMsg::Certificates(certs));
                }
                Ok(())
            }
            SimMsg::Certificates(certs) => {
                for cert in certs {
                    let at = self.nodes[to].engine.as_ref().map(|e| e.status().height);
                    if at == Some(cert.height) {
                        self.feed(to, Input::Certificate(cert))?;
                    }
                }
                Ok(())
            }
        }
    }

    /// Hands an input to a node's engine and carries out the effects.
    fn feed(&mut self, node: usize, input: Input) -> Result<(), String> {
        let Some(engine) = self.nodes[node].engine.as_mut() else {
            return Ok(());
        };
        let effects = match engine.handle(input) {
            Ok(effects) => effects,
            // Every simulated message is well formed and well signed (an
            // equivocator's twins included), so no refusal is expected.
            Err(err) if err.is_misbehaviour() => {
                return Err(format!(
                    "node {node} rejected a message it should accept: {err}"
                ));
            }
            Err(err) => return Err(format!("node {node} failed: {err}")),
        };
        if let Some(restart) = self.nodes[node].crash_in_next_event.take() {
            // The input was logged; the effects die with the process.
            self.crash(node, restart);
            return Ok(());
        }
        self.execute(node, effects)
    }

    fn execute(&mut self, node: usize, effects: Vec<Effect>) -> Result<(), String> {
        for effect in effects {
            if self.nodes[node].engine.is_none() {
                return Ok(()); // crashed while carrying out earlier effects
            }
            match effect {
                Effect::Broadcast(msg) => self.broadcast(node, msg)?,
                Effect::ScheduleTimeout { timeout, after_ms } => {
                    let life = self.nodes[node].life;
                    self.schedule(
                        after_ms,
                        Event::Timer {
                            node,
                            life,
                            timeout,
                        },
                    );
                }
                Effect::GetValue { height, round } => {
                    let life = self.nodes[node].life;
                    let after = self.rng.range(BUILD_MS.0, BUILD_MS.1);
                    self.schedule(
                        after,
                        Event::Value {
                            node,
                            life,
                            height,
                            round,
                        },
                    );
                }
                Effect::Decide(cert) => self.commit(node, cert)?,
                Effect::Evidence(evidence) => {
                    if self.honest(node) {
                        self.evidence.push((node, evidence));
                    }
                }
                Effect::SignRefused(err) => {
                    if std::env::var_os("CAIRN_SIM_TRACE").is_some() {
                        eprintln!("{} ms: node {node}: {err}", self.now);
                    }
                }
            }
        }
        Ok(())
    }

    /// The block store: the decision, its certificate and the next height, atomically.
    fn commit(&mut self, node: usize, cert: CommitCertificate) -> Result<(), String> {
        let height = cert.height;
        if !self.nodes[node].committed.contains_key(&height) {
            self.nodes[node].committed.insert(height, (cert, self.now));
        }
        let set = self.set.clone();
        let Some(engine) = self.nodes[node].engine.as_mut() else {
            return Ok(());
        };
        let effects = engine
            .start_height(height.next(), set)
            .map_err(|e| format!("node {node}: {e}"))?;
        self.execute(node, effects)
    }

    fn build_value(&mut self, node: usize, height: Height, round: Round) -> ValueId {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&height.0.to_le_bytes());
        bytes.extend_from_slice(&round.0.to_le_bytes());
        bytes.extend_from_slice(&(node as u64).to_le_bytes());
        bytes.extend_from_slice(&self.rng.next_u64().to_le_bytes());
        let mut value = Hash::domain("cairn sim value", &bytes);
        if self.nodes[node].behaviour == Behaviour::InvalidProposer {
            value.0[0] = INVALID_MARK;
        } else if value.0[0] == INVALID_MARK {
            value.0[0] = 0;
        }
        ValueId(value)
    }

    /// Sends a node's own message to every peer, as its behaviour dictates.
    fn broadcast(&mut self, node: usize, msg: Message) -> Result<(), String> {
        match self.nodes[node].behaviour {
            Behaviour::Silent => return Ok(()),
            Behaviour::Equivocator if signer_of(&msg) == self.public_key(node) => {
                let twin = self.conflicting(node, &msg);
                for peer in 0..self.nodes.len() {
                    if peer == node {
                        continue;
                    }
                    match self.rng.range(0, 2) {
                        0 => self.send(node, peer, SimMsg::Consensus(msg)),
                        1 => self.send(node, peer, SimMsg::Consensus(twin)),
                        _ => {
                            self.send(node, peer, SimMsg::Consensus(twin));
                            self.send(node, peer, SimMsg::Consensus(msg));
                        }
                    }
                }
                return Ok(());
            }
            Behaviour::Honest => self.record_signed(node, msg)?,
            Behaviour::Equivocator | Behaviour::InvalidProposer => {}
        }
        self.send_all(node, SimMsg::Consensus(msg));
        if let Message::Proposal(p) = msg {
            self.maybe_crash_proposer(node, p.proposal.height.0);
        }
        Ok(())
    }

    fn maybe_crash_proposer(&mut self, node: usize, height: u64) {
        let restart = self.scenario.faults.iter().find_map(|f| match f {
            Fault::CrashProposer {
                height: h,
                restart_after_ms,
            } if *h == height => Some(*restart_after_ms),
            _ => None,
        });
        if let Some(restart_after_ms) = restart
            && self.crash_proposer_done.insert(height)
        {
            self.crash(node, Some(restart_after_ms));
        }
    }

    /// A second, different message for the same (height, round, step), signed past the guard.
    fn conflicting(&mut self, node: usize, msg: &Message) -> Message {
        let key = self.nodes[node].key.clone();
        let other = ValueId(Hash::domain(
            "cairn sim twin",
            &self.rng.next_u64().to_le_bytes(),
        ));
        match *msg {
            Message::Vote(v) => {
                let mut vote = v.vote;
                vote.value = if vote.value.is_some() && self.rng.chance(0.5) {
                    None
                } else {
                    Some(other)
                };
                let signature = Signature(key.sign(&vote.sign_bytes()).to_bytes());
                Message::Vote(SignedVote { vote, signature })
            }
            Message::Proposal(p) => {
                let mut proposal = p.proposal;
                proposal.value = other;
                let signature = Signature(key.sign(&proposal.sign_bytes()).to_bytes());
                Message::Proposal(SignedProposal {
                    proposal,
                    signature,
                })
            }
        }
    }

    fn public_key(&self, node: usize) -> PublicKey {
        PublicKey::from(self.nodes[node].key.verifying_key())
    }

    fn record_signed(&mut self, node: usize, msg: Message) -> Result<(), String> {
        let key = self.public_key(node);
        let (height, round, step) = match &msg {
            Message::Vote(v) => (v.vote.height, v.vote.round, v.vote.kind.step()),
            Message::Proposal(p) => (p.proposal.height, p.proposal.round, Step::Propose),
        };
        if signer_of(&msg) != key {
            return Ok(()); // relaying another validator's vote (a proof of lock)
        }
        match self.signed.get(&(key, height, round, step)) {
            Some(earlier) if *earlier != msg => Err(format!(
                "honest node {node} signed twice at height {height} round {round} {step:?}:\n  {earlier:?}\n  {msg:?}"
            )),
            Some(_) => Ok(()),
            None => {
                self.signed.insert((key, height, round, step), msg);
                Ok(())
            }
        }
    }

    fn send_all(&mut self, from: usize, msg: SimMsg) {
        for to in 0..self.nodes.len() {
            if to != from {
                self.send(from, to, msg.clone());
            }
        }
    }

    fn send(&mut self, from: usize, to: usize, msg: SimMsg) {
        let stable = self.now >= self.scenario.stable_at_ms;
        let link: LinkConfig = if stable {
            self.scenario.stable
        } else {
            self.scenario.unstable
        };
        if self.partitioned(from, to) || self.rng.chance(link.loss) {
            return;
        }
        let copies = if self.rng.chance(link.duplicate) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let delay = self.rng.range(link.min_delay_ms, link.max_delay_ms);
            self.schedule(
                delay,
                Event::Deliver {
                    to,
                    from,
                    msg: msg.clone(),
                },
            );
        }
    }

    fn partitioned(&self, a: usize, b: usize) -> bool {
        self.scenario.faults.iter().any(|f| match f {
            Fault::Partition {
                groups,
                from_ms,
                until_ms,
            } => {
                (*from_ms..*until_ms).contains(&self.now)
                    && groups.iter().any(|g| g.contains(&a) != g.contains(&b))
            }
            _ => false,
        })
    }

    /// Where every node is, for failure reports.
    fn describe(&self) -> String {
        let mut out = String::new();
        for (i, node) in self.nodes.iter().enumerate() {
            let status = node.engine.as_ref().map(|e| {
                let st = e.status();
                let tally = |kind| {
                    e.votes()
                        .values(st.round, kind)
                        .iter()
                        .map(|(v, p)| {
                            format!("{}:{p}", v.map_or("nil".to_owned(), |v| format!("{v:?}")))
                        })
                        .collect::<Vec<_>>()
                        .join(" ")
                };
                format!(
                    "{st:?}\n      prevotes [{}] precommits [{}] last signed {:?}",
                    tally(cairn_consensus::VoteKind::Prevote),
                    tally(cairn_consensus::VoteKind::Precommit),
                    node.sign_state.clone().load_last()
                )
            });
            out.push_str(&format!(
                "  node {i} {:?}: committed {} heights, {}\n",
                node.behaviour,
                node.committed.len(),
                status.unwrap_or_else(|| "down".into())
            ));
        }
        out
    }

    fn check_end(&mut self) -> Result<Outcome, String> {
        // Agreement and validity, over every node that was ever honest.
        let mut decided: BTreeMap<Height, ValueId> = BTreeMap::new();
        let mut max_round = 0;
        for (i, node) in self
            .nodes
            .iter()
            .enumerate()
            .filter(|(i, _)| self.honest(*i))
        {
            for (height, (cert, _)) in &node.committed {
                match decided.get(height) {
                    Some(v) if *v != cert.value => {
                        return Err(format!(
                            "agreement broken at height {height}: {v:?} vs {:?} (node {i})",
                            cert.value
                        ));
                    }
                    Some(_) => {}
                    None => {
                        if cert.value.0.0[0] == INVALID_MARK {
                            return Err(format!(
                                "node {i} decided an invalid value at height {height}"
                            ));
                        }
                        cert.verify(self.chain, &self.set).map_err(|e| {
                            format!(
                                "node {i}'s certificate for height {height} does not verify: {e}"
                            )
                        })?;
                        decided.insert(*height, cert.value);
                    }
                }
                max_round = max_round.max(cert.round.0);
            }
        }
        // Evidence names only validators that equivocated.
        for (node, evidence) in &self.evidence {
            let culprit = match evidence {
                Evidence::ConflictingVotes { first, .. } => first.vote.validator,
                Evidence::ConflictingProposals { first, .. } => first.proposal.proposer,
            };
            let index = self.set.index_of(&culprit).unwrap_or(usize::MAX);
            if self.nodes.get(index).map(|n| n.behaviour) != Some(Behaviour::Equivocator) {
                return Err(format!(
                    "node {node} reported evidence against non-equivocator {index}"
                ));
            }
        }
        // Liveness after the network is stable.
        let stable = self.scenario.stable_at_ms;
        for (i, node) in self
            .nodes
            .iter()
            .enumerate()
            .filter(|(i, _)| self.must_finish(*i))
        {
            if !self.done(i) {
                return Err(format!(
                    "liveness: node {i} decided {} of {} heights ({HEIGHTS_AFTER_STABLE} after {stable} ms, when the network became stable) by {} ms\n{}",
                    node.committed.len(),
                    self.scenario.heights,
                    self.now,
                    self.describe()
                ));
            }
            let mut previous = stable;
            for (height, (_, at)) in node.committed.iter().filter(|(_, (_, at))| *at >= stable) {
                if at - previous > LIVENESS_BOUND_MS {
                    return Err(format!(
                        "liveness: node {i} took {} ms after {previous} ms to decide height {height}",
                        at - previous
                    ));
                }
                previous = *at;
            }
        }
        Ok(Outcome {
            elapsed_ms: self.now,
            decided_heights: decided.len() as u64,
            delivered: self.delivered,
            evidence: self.evidence.len(),
            crashes: self.crashes,
            max_round,
        })
    }
}

fn signer_of(msg: &Message) -> PublicKey {
    match msg {
        Message::Vote(v) => v.vote.validator,
        Message::Proposal(p) => p.proposal.proposer,
    }
}
