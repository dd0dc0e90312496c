//! The network: libp2p over TCP with Noise and Yamux.
//!
//! - **Who may connect.** Only the genesis validators' peer ids and the
//!   observers named in the configuration (an allow-list checked once the
//!   Noise handshake has proven the remote's key), with a limit on
//!   connections. Dialling is one-sided between validators: a validator
//!   dials those whose peer id sorts after its own, and every node dials
//!   the peers of its configuration; a lost connection is dialled again.
//! - **Gossip.** Two gossipsub topics per chain, consensus messages and
//!   transactions. Gossipsub's own per-message signature is off
//!   (anonymous mode): every consensus message and transaction carries its
//!   own signature already. Messages are validated by the node before
//!   they are forwarded (accept, ignore or reject); a peer whose messages
//!   are rejected [`MAX_STRIKES`] times is disconnected and refused for
//!   [`BAN`].
//! - **Block sync.** A request-response protocol: "blocks from height h"
//!   answered with committed blocks and their commit certificates, which
//!   the requester verifies before it uses them.
//! - Every message is capped at `max_message_bytes` before it is decoded.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use borsh::{BorshDeserialize, BorshSerialize};
use cairn_anchoring::{Block, SignedTransaction};
use cairn_consensus::{CommitCertificate, SignedProposal, SignedVote};
use cairn_genesis::{GenesisDocument, Hash, KeyPair};
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, StreamExt};
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, MessageId};
use libp2p::request_response::{self, ProtocolSupport, ResponseChannel};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{
    Multiaddr, PeerId, StreamProtocol, Swarm, allow_block_list, connection_limits, noise, tcp,
    yamux,
};
use tokio::sync::mpsc;

use crate::NodeError;
use crate::store::Store;

/// Rejected messages after which a peer is disconnected and banned.
pub const MAX_STRIKES: u32 = 10;
/// How long a banned peer is refused.
pub const BAN: Duration = Duration::from_secs(60);
/// Most blocks in one sync response.
pub const MAX_SYNC_BLOCKS: u32 = 256;
/// How often the peers to dial are looked over.
const DIAL_TICK: Duration = Duration::from_millis(250);
/// The wait before the first redial of a peer that did not answer, doubled
/// at each failure up to [`REDIAL_AT_MOST`]: validators started together
/// find each other within a fraction of a second, one that stays down is
/// tried every two seconds.
const REDIAL_FIRST: Duration = Duration::from_millis(250);
const REDIAL_AT_MOST: Duration = Duration::from_secs(2);

/// When a peer that is not connected is dialed next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Redial {
    /// The earliest time of the next dial.
    at: Instant,
    /// The wait after that dial.
    wait: Duration,
}

impl Redial {
    /// A peer never dialed (or whose connection lasted): dialed at once.
    fn new(now: Instant) -> Redial {
        Redial {
            at: now,
            wait: REDIAL_FIRST,
        }
    }

    fn due(&self, now: Instant) -> bool {
        self.at <= now
    }

    /// Records a dial made at `now`: the next waits longer.
    fn dialed(&mut self, now: Instant) {
        self.at = now + self.wait;
        self.wait = (self.wait * 2).min(REDIAL_AT_MOST);
    }
}

/// A consensus message as gossiped: proposals travel with their block.
#[derive(Clone, Debug, BorshSerialize, BorshDeserialize)]
pub enum ConsensusMessage {
    /// A proposal and the block it proposes.
    Proposal {
        /// The signed proposal.
        proposal: SignedProposal,
        /// The block whose header hash is the proposal's value.
        block: Box<Block>,
    },
    /// A prevote or precommit.
    Vote(SignedVote),
    /// A decided block with its certificate, for peers still at its height.
    Commit {
        /// The block.
        block: Box<Block>,
        /// Its commit certificate.
        certificate: CommitCertificate,
    },
}

/// What goes on a gossip topic: a sender's counter (so that a message sent
/// again is not dropped as a duplicate by gossipsub) and the payload.
#[derive(BorshSerialize, BorshDeserialize)]
struct Envelope<T> {
    counter: u64,
    body: T,
}

/// "Send me your committed blocks from `from`, at most `max`."
#[derive(Clone, Debug, BorshSerialize, BorshDeserialize)]
pub struct SyncRequest {
    /// First height wanted.
    pub from: u64,
    /// Most blocks wanted.
    pub max: u32,
}

/// Committed blocks with their certificates, and the responder's height.
#[derive(Clone, Debug, BorshSerialize, BorshDeserialize)]
pub struct SyncResponse {
    /// The responder's committed height.
    pub height: u64,
    /// Consecutive blocks from the requested height.
    pub blocks: Vec<(Block, CommitCertificate)>,
}

/// Transactions from gossip, to admit and report (they go to the admission
/// task, not to the consensus driver).
#[derive(Debug)]
pub struct GossipedTransactions {
    /// The peer that forwarded them.
    pub from: PeerId,
    /// The gossip id.
    pub id: MessageId,
    /// The transactions.
    pub txs: Vec<SignedTransaction>,
}

/// What the network hands the consensus driver.
#[derive(Debug)]
pub enum NetEvent {
    /// A consensus message from gossip, to validate and report.
    Consensus {
        /// The peer that forwarded it.
        from: PeerId,
        /// Its gossip id.
        id: MessageId,
        /// The message.
        message: Box<ConsensusMessage>,
    },
    /// A sync response.
    Blocks {
        /// The responder.
        from: PeerId,
        /// The response.
        response: SyncResponse,
    },
    /// The set of connected peers changed.
    Peers(usize),
}

/// What the node asks of the network.
#[derive(Debug)]
pub enum NetCommand {
    /// Gossip a consensus message.
    Consensus(Box<ConsensusMessage>),
    /// Gossip transactions.
    Transactions(Vec<SignedTransaction>),
    /// Report the verdict on a gossiped message.
    Report {
        /// Its gossip id.
        id: MessageId,
        /// The peer that forwarded it.
        from: PeerId,
        /// Accept (forward), ignore (drop) or reject (drop and penalise).
        verdict: Verdict,
    },
    /// Ask a connected peer for blocks (a random one if `None`).
    Sync(Option<PeerId>, SyncRequest),
    /// Refuse these peers until [`NetCommand::Unblock`] (a devnet partition).
    Block(Vec<PeerId>),
    /// Accept these peers again, if the allow-list has them.
    Unblock(Vec<PeerId>),
}

/// The node's verdict on a gossiped message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Valid: forward it.
    Accept,
    /// Not useful (stale, a duplicate, not judgeable yet): drop it.
    Ignore,
    /// Invalid (bad signature, malformed, another chain): drop it and penalise the sender.
    Reject,
}

/// Handles to a running network.
pub struct Network {
    /// Commands in.
    pub commands: mpsc::Sender<NetCommand>,
    /// This node's peer id.
    pub peer_id: PeerId,
    /// The address the swarm listens on (the actual port if 0 was configured).
    pub listening: Multiaddr,
}

/// The network's settings.
pub struct NetConfig {
    /// Listen address.
    pub listen: Multiaddr,
    /// Peers to dial besides the validators.
    pub peers: Vec<Multiaddr>,
    /// Observer peer ids allowed to connect.
    pub observers: Vec<PeerId>,
    /// Connection limit.
    pub max_connections: u32,
    /// Message size cap.
    pub max_message_bytes: usize,
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    allow: allow_block_list::Behaviour<allow_block_list::AllowedPeers>,
    limits: connection_limits::Behaviour,
    gossip: gossipsub::Behaviour,
    sync: request_response::Behaviour<SyncCodec>,
}

/// Converts a genesis peer id to libp2p's.
pub fn libp2p_peer_id(id: &cairn_genesis::PeerId) -> Result<PeerId, NodeError> {
    id.to_string()
        .parse()
        .map_err(|e| NodeError::Network(format!("peer id {id}: {e}")))
}

fn multiaddr(text: &str) -> Result<Multiaddr, NodeError> {
    text.parse()
        .map_err(|e| NodeError::Network(format!("address {text}: {e}")))
}

/// Parses a listen or peer address from the configuration.
pub fn parse_address(text: &str) -> Result<Multiaddr, NodeError> {
    multiaddr(text)
}

fn topics(chain: Hash) -> (IdentTopic, IdentTopic) {
    let short = &chain.to_string()[..16];
    (
        IdentTopic::new(format!("/cairn/{short}/consensus/1")),
        IdentTopic::new(format!("/cairn/{short}/transactions/1")),
    )
}

/// Starts the network task: listens, dials, gossips, answers sync requests
/// from `store`, and sends what it receives to `events` (transactions to
/// `tx_events`).
pub async fn start(
    key: &KeyPair,
    genesis: &GenesisDocument,
    config: NetConfig,
    store: Store,
    events: mpsc::Sender<NetEvent>,
    tx_events: mpsc::Sender<GossipedTransactions>,
) -> Result<Network, NodeError> {
    let mut seed = key.signing_key().to_bytes();
    let identity = libp2p::identity::Keypair::ed25519_from_bytes(&mut seed)
        .map_err(|e| NodeError::Network(format!("node key: {e}")))?;
    let peer_id = identity.public().to_peer_id();
    let chain = genesis.hash();
    let (consensus_topic, tx_topic) = topics(chain);
    let max = config.max_message_bytes;

    let mut allowed = HashSet::new();
    let mut dial = Vec::new();
    for v in &genesis.validators {
        let id = libp2p_peer_id(&v.peer_id)?;
        allowed.insert(id);
        if id > peer_id {
            let addr = multiaddr(&v.address)?;
            dial.push((id, addr));
        }
    }
    allowed.extend(config.observers.iter().copied());
    for addr in &config.peers {
        match addr.iter().last() {
            Some(libp2p::multiaddr::Protocol::P2p(id)) => {
                allowed.insert(id);
                dial.retain(|(d, _)| *d != id);
                let mut plain = addr.clone();
                plain.pop();
                dial.push((id, plain));
            }
            _ => {
                return Err(NodeError::Network(format!(
                    "peer address {addr} must end with /p2p/PEER_ID"
                )));
            }
        }
    }
    allowed.remove(&peer_id);
    dial.retain(|(id, _)| *id != peer_id);

    let gossip_config = gossipsub::ConfigBuilder::default()
        .validation_mode(gossipsub::ValidationMode::Anonymous)
        .validate_messages()
        .max_transmit_size(max)
        .heartbeat_interval(Duration::from_millis(500))
        .message_id_fn(|m: &gossipsub::Message| {
            MessageId::from(blake3::hash(&m.data).as_bytes().to_vec())
        })
        .build()
        .map_err(|e| NodeError::Network(format!("gossip configuration: {e}")))?;
    let mut gossip =
        gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Anonymous, gossip_config)
            .map_err(|e| NodeError::Network(format!("gossip: {e}")))?;
    for topic in [&consensus_topic, &tx_topic] {
        gossip
            .subscribe(topic)
            .map_err(|e| NodeError::Network(format!("subscribe: {e}")))?;
    }
    let mut allow = allow_block_list::Behaviour::<allow_block_list::AllowedPeers>::default();
    for id in &allowed {
        allow.allow_peer(*id);
    }
    let limits = connection_limits::Behaviour::new(
        connection_limits::ConnectionLimits::default()
            .with_max_established(Some(config.max_connections))
            .with_max_established_per_peer(Some(2))
            .with_max_pending_incoming(Some(config.max_connections)),
    );
    let sync = request_response::Behaviour::with_codec(
        SyncCodec { max },
        [(StreamProtocol::new("/cairn/sync/1"), ProtocolSupport::Full)],
        request_response::Config::default().with_request_timeout(Duration::from_secs(20)),
    );
    let behaviour = Behaviour {
        allow,
        limits,
        gossip,
        sync,
    };
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(identity)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| NodeError::Network(format!("transport: {e}")))?
        .with_behaviour(|_| behaviour)
        .map_err(|e| NodeError::Network(format!("behaviour: {e}")))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
        .build();
    swarm
        .listen_on(config.listen.clone())
        .map_err(|e| NodeError::Network(format!("listen on {}: {e}", config.listen)))?;
    let listening = loop {
        match swarm.select_next_some().await {
            SwarmEvent::NewListenAddr { address, .. } => break address,
            SwarmEvent::ListenerError { error, .. } => {
                return Err(NodeError::Network(format!(
                    "listen on {}: {error}",
                    config.listen
                )));
            }
            SwarmEvent::ListenerClosed { reason, .. } => {
                return Err(NodeError::Network(format!(
                    "listen on {}: {reason:?}",
                    config.listen
                )));
            }
            _ => {}
        }
    };
    let (commands, command_rx) = mpsc::channel(4096);
    let task = NetTask {
        swarm,
        store,
        events,
        tx_events,
        consensus_topic,
        tx_topic,
        dial,
        allowed,
        blocked: HashSet::new(),
        connected: HashMap::new(),
        redials: HashMap::new(),
        strikes: HashMap::new(),
        banned: HashMap::new(),
        counter: rand::random(),
        max,
    };
    tokio::spawn(task.run(command_rx));
    Ok(Network {
        commands,
        peer_id,
        listening,
    })
}

struct NetTask {
    swarm: Swarm<Behaviour>,
    store: Store,
    events: mpsc::Sender<NetEvent>,
    tx_events: mpsc::Sender<GossipedTransactions>,
    consensus_topic: IdentTopic,
    tx_topic: IdentTopic,
    dial: Vec<(PeerId, Multiaddr)>,
    allowed: HashSet<PeerId>,
    blocked: HashSet<PeerId>,
    /// The connected peers, and since when each has been.
    connected: HashMap<PeerId, Instant>,
    /// When each peer of `dial` that is not connected is dialed next.
    redials: HashMap<PeerId, Redial>,
    strikes: HashMap<PeerId, u32>,
    banned: HashMap<PeerId, Instant>,
    counter: u64,
    max: usize,
}

impl NetTask {
    async fn run(mut self, mut commands: mpsc::Receiver<NetCommand>) {
        let mut redial = tokio::time::interval(DIAL_TICK);
        redial.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(command) => self.command(command),
                    // The node is shutting down.
                    None => break,
                },
                event = self.swarm.select_next_some() => {
                    if self.event(event).await.is_err() {
                        break;
                    }
                }
                _ = redial.tick() => self.redial(),
            }
        }
    }

    fn redial(&mut self) {
        let now = Instant::now();
        let expired: Vec<PeerId> = self
            .banned
            .iter()
            .filter(|(_, until)| **until <= now)
            .map(|(p, _)| *p)
            .collect();
        for peer in expired {
            self.banned.remove(&peer);
            self.strikes.remove(&peer);
            if !self.blocked.contains(&peer) {
                self.swarm.behaviour_mut().allow.allow_peer(peer);
            }
        }
        for (peer, addr) in self.dial.clone() {
            let redial = self.redials.entry(peer).or_insert_with(|| Redial::new(now));
            if redial.due(now)
                && !self.connected.contains_key(&peer)
                && !self.banned.contains_key(&peer)
                && !self.blocked.contains(&peer)
                && !self.swarm.is_connected(&peer)
            {
                redial.dialed(now);
                let opts = libp2p::swarm::dial_opts::DialOpts::peer_id(peer)
                    .addresses(vec![addr])
                    .build();
                if let Err(e) = self.swarm.dial(opts) {
                    tracing::trace!(%peer, "dial: {e}");
                }
            }
        }
    }

    fn next_counter(&mut self) -> u64 {
        self.counter = self.counter.wrapping_add(1);
        self.counter
    }

    fn publish<T: BorshSerialize>(&mut self, consensus: bool, body: T) {
        let envelope = Envelope {
            counter: self.next_counter(),
            body,
        };
        let bytes = borsh::to_vec(&envelope).unwrap_or_default();
        if bytes.len() > self.max {
            tracing::warn!(
                bytes = bytes.len(),
                max = self.max,
                "not gossiping a message above the size cap"
            );
            return;
        }
        let topic = if consensus {
            self.consensus_topic.clone()
        } else {
            self.tx_topic.clone()
        };
        match self.swarm.behaviour_mut().gossip.publish(topic, bytes) {
            Ok(_) => {}
            // Alone for now: the message goes out again with the next rebroadcast.
            Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => {}
            Err(e) => tracing::debug!("gossip publish: {e}"),
        }
    }

    fn command(&mut self, command: NetCommand) {
        match command {
            NetCommand::Consensus(message) => self.publish(true, *message),
            NetCommand::Transactions(txs) => self.publish(false, txs),
            NetCommand::Report { id, from, verdict } => self.report(&id, from, verdict),
            NetCommand::Sync(peer, request) => {
                let peer = peer.or_else(|| {
                    let peers: Vec<PeerId> = self.connected.keys().copied().collect();
                    (!peers.is_empty()).then(|| peers[rand::random::<usize>() % peers.len()])
                });
                if let Some(peer) = peer {
                    self.swarm.behaviour_mut().sync.send_request(&peer, request);
                }
            }
            NetCommand::Block(peers) => {
                for peer in peers {
                    tracing::info!(%peer, "blocking a peer on request");
                    self.blocked.insert(peer);
                    self.swarm.behaviour_mut().allow.disallow_peer(peer);
                    let _ = self.swarm.disconnect_peer_id(peer);
                }
            }
            NetCommand::Unblock(peers) => {
                for peer in peers {
                    if self.blocked.remove(&peer) && !self.banned.contains_key(&peer) {
                        tracing::info!(%peer, "unblocking a peer on request");
                        if self.allowed.contains(&peer) {
                            self.swarm.behaviour_mut().allow.allow_peer(peer);
                        }
                    }
                }
                self.redial();
            }
        }
    }

    fn report(&mut self, id: &MessageId, from: PeerId, verdict: Verdict) {
        let acceptance = match verdict {
            Verdict::Accept => MessageAcceptance::Accept,
            Verdict::Ignore => MessageAcceptance::Ignore,
            Verdict::Reject => MessageAcceptance::Reject,
        };
        self.swarm
            .behaviour_mut()
            .gossip
            .report_message_validation_result(id, &from, acceptance);
        if verdict == Verdict::Reject {
            self.strike(from);
        }
    }

    fn strike(&mut self, peer: PeerId) {
        let strikes = self.strikes.entry(peer).or_default();
        *strikes += 1;
        if *strikes >= MAX_STRIKES && !self.banned.contains_key(&peer) {
            tracing::warn!(%peer, strikes = *strikes, ban_s = BAN.as_secs(), "banning a peer that sent invalid messages");
            self.banned.insert(peer, Instant::now() + BAN);
            self.swarm.behaviour_mut().allow.disallow_peer(peer);
            let _ = self.swarm.disconnect_peer_id(peer);
        }
    }

    async fn emit(&mut self, event: NetEvent) -> Result<(), ()> {
        self.events.send(event).await.map_err(|_| ())
    }

    async fn event(&mut self, event: SwarmEvent<BehaviourEvent>) -> Result<(), ()> {
        match event {
            SwarmEvent::ConnectionEstablished { peer_id, .. } => {
                self.connected.entry(peer_id).or_insert_with(Instant::now);
                tracing::debug!(peer = %peer_id, "connected");
                let n = self.connected.len();
                self.emit(NetEvent::Peers(n)).await?;
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established,
                ..
            } => {
                if num_established == 0 {
                    // A connection that lasted is dialed again at once; one
                    // that a peer drops at once (a ban, a full peer) goes on
                    // backing off.
                    let lasted = self
                        .connected
                        .remove(&peer_id)
                        .is_some_and(|since| since.elapsed() >= REDIAL_AT_MOST);
                    if lasted {
                        self.redials.remove(&peer_id);
                    }
                    tracing::debug!(peer = %peer_id, "disconnected");
                }
                let n = self.connected.len();
                self.emit(NetEvent::Peers(n)).await?;
            }
            SwarmEvent::IncomingConnectionError { error, .. } => {
                tracing::debug!("refused an incoming connection: {error}");
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gossip(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            })) => {
                self.gossiped(propagation_source, message_id, message)
                    .await?;
            }
            SwarmEvent::Behaviour(BehaviourEvent::Sync(request_response::Event::Message {
                peer,
                message,
                ..
            })) => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => self.answer(request, channel),
                request_response::Message::Response { response, .. } => {
                    self.emit(NetEvent::Blocks {
                        from: peer,
                        response,
                    })
                    .await?;
                }
            },
            SwarmEvent::Behaviour(BehaviourEvent::Sync(
                request_response::Event::OutboundFailure { peer, error, .. },
            )) => {
                tracing::debug!(%peer, "sync request failed: {error}");
            }
            _ => {}
        }
        Ok(())
    }

    async fn gossiped(
        &mut self,
        from: PeerId,
        id: MessageId,
        message: gossipsub::Message,
    ) -> Result<(), ()> {
        if message.topic == self.consensus_topic.hash() {
            match borsh::from_slice::<Envelope<ConsensusMessage>>(&message.data) {
                Ok(envelope) => {
                    self.emit(NetEvent::Consensus {
                        from,
                        id,
                        message: Box::new(envelope.body),
                    })
                    .await?
                }
                Err(_) => self.report(&id, from, Verdict::Reject),
            }
        } else if message.topic == self.tx_topic.hash() {
            match borsh::from_slice::<Envelope<Vec<SignedTransaction>>>(&message.data) {
                Ok(envelope) => {
                    let event = GossipedTransactions {
                        from,
                        id,
                        txs: envelope.body,
                    };
                    // A full admission queue drops gossip rather than stall consensus.
                    if let Err(mpsc::error::TrySendError::Closed(_)) =
                        self.tx_events.try_send(event)
                    {
                        return Err(());
                    }
                }
                Err(_) => self.report(&id, from, Verdict::Reject),
            }
        } else {
            self.report(&id, from, Verdict::Reject);
        }
        Ok(())
    }

    fn answer(&mut self, request: SyncRequest, channel: ResponseChannel<SyncResponse>) {
        let response = match sync_response(&self.store, &request, self.max) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("cannot answer a sync request: {e}");
                return;
            }
        };
        let _ = self
            .swarm
            .behaviour_mut()
            .sync
            .send_response(channel, response);
    }
}

/// Reads the answer to `request` from the store: consecutive committed
/// blocks with their certificates, within `max_bytes`.
pub fn sync_response(
    store: &Store,
    request: &SyncRequest,
    max_bytes: usize,
) -> Result<SyncResponse, NodeError> {
    let height = store.committed_height()?;
    let mut blocks = Vec::new();
    let mut bytes = 64;
    let last = height.min(
        request
            .from
            .saturating_add(u64::from(request.max.min(MAX_SYNC_BLOCKS)))
            .saturating_sub(1),
    );
    for h in request.from.max(1)..=last {
        let (Some(block), Some(cert)) = (store.block(h)?, store.certificate(h)?) else {
            break;
        };
        let size = borsh::object_length(&block).unwrap_or(usize::MAX)
            + borsh::object_length(&cert).unwrap_or(usize::MAX);
        if !blocks.is_empty() && bytes + size > max_bytes {
            break;
        }
        bytes += size;
        blocks.push((block, cert));
    }
    Ok(SyncResponse { height, blocks })
}

/// Length-prefixed borsh, capped before anything is allocated.
#[derive(Clone)]
struct SyncCodec {
    max: usize,
}

async fn read_frame<T: AsyncRead + Unpin + Send, M: BorshDeserialize>(
    io: &mut T,
    max: usize,
) -> std::io::Result<M> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("message of {len} bytes is above the cap of {max}"),
        ));
    }
    let mut buf = vec![0u8; len];
    io.read_exact(&mut buf).await?;
    borsh::from_slice(&buf).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

async fn write_frame<T: AsyncWrite + Unpin + Send, M: BorshSerialize>(
    io: &mut T,
    message: &M,
) -> std::io::Result<()> {
    let bytes = borsh::to_vec(message)?;
    let len = u32::try_from(bytes.len())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "message too large"))?;
    io.write_all(&len.to_be_bytes()).await?;
    io.write_all(&bytes).await?;
    io.close().await
}

impl request_response::Codec for SyncCodec {
    type Protocol = StreamProtocol;
    type Request = SyncRequest;
    type Response = SyncResponse;

    async fn read_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> std::io::Result<SyncRequest>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, 64).await
    }

    async fn read_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> std::io::Result<SyncResponse>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, self.max).await
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        request: SyncRequest,
    ) -> std::io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &request).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        response: SyncResponse,
    ) -> std::io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &response).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A peer that does not answer is dialed at once, then after 250 ms,
    /// 500 ms, 1 s, and every 2 s from then on (after a connection that
    /// lasted, it starts over: the entry is dropped).
    #[test]
    fn redials_back_off_to_two_seconds() {
        let start = Instant::now();
        let mut redial = Redial::new(start);
        let mut dials = Vec::new();
        for ms in (0..=8_000).step_by(50) {
            let now = start + Duration::from_millis(ms);
            if redial.due(now) {
                redial.dialed(now);
                dials.push(ms);
            }
        }
        assert_eq!(dials, [0, 250, 750, 1_750, 3_750, 5_750, 7_750]);
    }
}
