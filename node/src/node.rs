//! `cairn node run`: opens the home folder, checks that the node may start,
//! and runs the network, the consensus driver, transaction admission and
//! the HTTP API until it is asked to stop.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use cairn_anchoring::{AnchoringError, SignedTransaction};
use cairn_consensus::GuardedSigner;
use cairn_genesis::{GenesisDocument, KeyPair, Timestamp};
use libp2p::Multiaddr;
use tokio::sync::{Notify, mpsc, watch};
use tracing::{error, info, warn};

use crate::NodeError;
use crate::chain::Chain;
use crate::config::{Config, Home};
use crate::driver::Driver;
use crate::mempool::{Admission, AdmissionResult, Mempool, admit_batch};
use crate::metrics::{Metrics, add};
use crate::net::{self, GossipedTransactions, NetCommand, NetConfig, Verdict};
use crate::sign_state::SignStateFile;
use crate::store::{RocksWal, Store};

/// What the node's tasks share.
pub struct Shared {
    /// The genesis.
    pub genesis: GenesisDocument,
    /// The configuration.
    pub config: Config,
    /// The database.
    pub store: Store,
    /// The committed chain.
    pub chain: RwLock<Chain>,
    /// Pending transactions.
    pub mempool: Mutex<Mempool>,
    /// Metrics.
    pub metrics: Metrics,
    /// Commands to the network.
    pub net: mpsc::Sender<NetCommand>,
    /// Signalled when a transaction is admitted.
    pub mempool_changed: Notify,
    /// Transactions admitted here, to gossip.
    pub outbox: mpsc::Sender<SignedTransaction>,
    /// This node's libp2p peer id.
    pub peer_id: String,
    /// Whether this node votes.
    pub validator: bool,
}

impl Shared {
    /// Admits a transaction submitted to this node and queues it for gossip.
    pub fn submit(
        &self,
        bytes: &[u8],
    ) -> Result<(SignedTransaction, cairn_genesis::Hash, Admission), NodeError> {
        let result = crate::mempool::admit(&self.chain, &self.mempool, bytes, Timestamp::now());
        self.after_admission(std::slice::from_ref(&result));
        result
    }

    /// Admits transactions submitted together (signatures checked in
    /// batches) and queues the new ones for gossip; one verdict each.
    pub fn submit_batch(&self, txs: Vec<SignedTransaction>) -> Vec<AdmissionResult> {
        let results = admit_batch(&self.chain, &self.mempool, txs, Timestamp::now());
        self.after_admission(&results);
        results
    }

    /// Gossips what was added, wakes the proposer, counts refusals.
    fn after_admission(&self, results: &[AdmissionResult]) {
        let mut added = false;
        for result in results {
            match result {
                Ok((tx, _, Admission::Added)) => {
                    added = true;
                    let _ = self.outbox.try_send(tx.clone());
                }
                Ok(_) => {}
                Err(_) => add(&self.metrics.refused_transactions, 1),
            }
        }
        if added {
            self.mempool_changed.notify_one();
        }
    }
}

/// Where a started node can be reached.
#[derive(Clone, Debug)]
pub struct Started {
    /// The HTTP API's address.
    pub api: SocketAddr,
    /// The libp2p listen address.
    pub p2p: Multiaddr,
}

/// Checks the home folder and everything the node needs before it starts.
pub fn open(home: &Home) -> Result<(Config, GenesisDocument, KeyPair, Store, bool), NodeError> {
    if !home.config().exists() {
        return Err(NodeError::Startup(format!(
            "{} is not a node home (no config.toml); create it with `cairn node init --home {} --genesis FILE --key FILE`",
            home.root().display(),
            home.root().display()
        )));
    }
    let config = Config::load(&home.config())?;
    if !home.genesis().exists() {
        return Err(NodeError::Startup(format!(
            "the genesis file {} is missing; copy the chain's genesis.json there",
            home.genesis().display()
        )));
    }
    let genesis = GenesisDocument::load_valid(&home.genesis())?;
    let key = KeyPair::load(&home.key())?;
    let is_validator = genesis
        .validators
        .iter()
        .any(|v| v.public_key == key.public_key());
    if !is_validator && !config.node.observer {
        return Err(NodeError::Startup(format!(
            "the key {} is not a validator of chain {}; set `observer = true` in {} to follow the chain without voting",
            key.public_key(),
            genesis.chain_id,
            home.config().display()
        )));
    }
    let store = Store::open_with_tree_cache(
        &home.data(),
        genesis.hash(),
        config.storage.tree_cache_bytes(),
    )?
    .keep_state_versions(config.storage.kept_versions());
    let validator = is_validator && !config.node.observer;
    Ok((config, genesis, key, store, validator))
}

/// Runs the node in `home` until `shutdown` turns true. `ready` receives
/// the addresses once the node listens.
pub async fn run(
    home: Home,
    mut shutdown: watch::Receiver<bool>,
    ready: Option<tokio::sync::oneshot::Sender<Started>>,
) -> Result<(), NodeError> {
    let (config, genesis, key, store, validator) = open(&home)?;
    let chain = Chain::open(store.clone(), genesis.clone())?;
    info!(
        chain = %genesis.chain_id,
        genesis = %genesis.hash(),
        height = chain.height(),
        role = if validator { "validator" } else { "observer" },
        public_key = %key.public_key(),
        "starting"
    );
    let signer = if validator {
        Some(GuardedSigner::new(
            key.signing_key().clone(),
            SignStateFile::new(home.sign_state()),
        )?)
    } else {
        None
    };
    let wal = RocksWal::open(store.clone())?;

    let (event_tx, event_rx) = mpsc::channel(4096);
    let (tx_event_tx, tx_event_rx) = mpsc::channel(1024);
    let net_config = NetConfig {
        listen: net::parse_address(&config.network.listen)?,
        peers: config
            .network
            .peers
            .iter()
            .map(|p| net::parse_address(p))
            .collect::<Result<_, _>>()?,
        observers: config
            .network
            .observers
            .iter()
            .map(|p| {
                p.parse()
                    .map_err(|e| NodeError::Startup(format!("observer peer id {p}: {e}")))
            })
            .collect::<Result<_, _>>()?,
        max_connections: config.network.max_connections,
        max_message_bytes: usize::try_from(config.network.max_message_bytes).unwrap_or(usize::MAX),
    };
    // The libp2p identity: node.key unless a separate identity key is set.
    let separate = match config.network.identity_key.as_str() {
        "" => None,
        path => Some(KeyPair::load(&home.root().join(path))?),
    };
    let network = net::start(
        separate.as_ref().unwrap_or(&key),
        &genesis,
        net_config,
        store.clone(),
        event_tx,
        tx_event_tx,
    )
    .await?;
    info!(peer_id = %network.peer_id, listen = %network.listening, "network listening");

    let (outbox_tx, outbox_rx) = mpsc::channel(65_536);
    let mempool = Mempool::new(
        usize::try_from(config.mempool.max_txs).unwrap_or(usize::MAX),
        usize::try_from(config.mempool.max_bytes).unwrap_or(usize::MAX),
        usize::try_from(config.mempool.max_commitments).unwrap_or(usize::MAX),
    );
    let idle = Duration::from_millis(config.consensus.idle_block_interval_ms);
    let shared = Arc::new(Shared {
        genesis,
        config: config.clone(),
        store,
        chain: RwLock::new(chain),
        mempool: Mutex::new(mempool),
        metrics: Metrics::default(),
        net: network.commands.clone(),
        mempool_changed: Notify::new(),
        outbox: outbox_tx,
        peer_id: network.peer_id.to_string(),
        validator,
    });
    {
        let chain = crate::mempool::read(&shared.chain);
        crate::metrics::set(&shared.metrics.height, chain.height());
        crate::metrics::set(
            &shared.metrics.oldest_state_version,
            chain.store().oldest_state_version(),
        );
        crate::metrics::set(&shared.metrics.replayed_blocks, chain.replayed());
    }

    let (driver, first) = Driver::start(shared.clone(), signer, wal, idle)?;
    let driver = tokio::spawn(driver.run(first, event_rx, shutdown.clone()));
    tokio::spawn(admit_gossip(shared.clone(), tx_event_rx));
    tokio::spawn(gossip_outbox(shared.clone(), outbox_rx));

    let listener = tokio::net::TcpListener::bind(&config.api.listen)
        .await
        .map_err(|e| NodeError::Startup(format!("API address {}: {e}", config.api.listen)))?;
    let api_addr = listener
        .local_addr()
        .map_err(|e| NodeError::Startup(format!("API address: {e}")))?;
    info!(api = %format!("http://{api_addr}"), "API listening");
    let app = crate::api::router(shared.clone());
    let mut api_shutdown = shutdown.clone();
    let api = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = api_shutdown.wait_for(|stop| *stop).await;
            })
            .await
    });
    if let Some(ready) = ready {
        let _ = ready.send(Started {
            api: api_addr,
            p2p: network.listening.clone(),
        });
    }

    let mut driver = driver;
    let joined = |r: Result<Result<(), NodeError>, tokio::task::JoinError>| match r {
        Ok(result) => result,
        Err(e) => Err(NodeError::Startup(format!(
            "the consensus task failed: {e}"
        ))),
    };
    let outcome = tokio::select! {
        result = &mut driver => joined(result),
        _ = shutdown.wait_for(|stop| *stop) => {
            // The driver sees the same signal and stops between inputs.
            match tokio::time::timeout(Duration::from_secs(10), &mut driver).await {
                Ok(result) => joined(result),
                Err(_) => {
                    warn!("the consensus task did not stop within 10 s");
                    Ok(())
                }
            }
        }
    };
    if let Err(e) = &outcome {
        error!("stopping: {e}");
    }
    // Stop the API (it watches the same signal) and let it finish its requests.
    match tokio::time::timeout(Duration::from_secs(5), api).await {
        Ok(Ok(Err(e))) => warn!("API server: {e}"),
        Err(_) => warn!("API server did not stop within 5 s"),
        _ => {}
    }
    drop(network);
    // The state tree's writes since the last flush skip RocksDB's log:
    // written out now, the next start has no blocks to replay.
    if let Err(e) = shared.store.flush_state() {
        warn!("writing out the state tree: {e}");
    }
    info!("stopped");
    outcome
}

/// Admits gossiped transactions off the async threads (signature checks
/// are CPU work) and reports a verdict per gossip message.
async fn admit_gossip(shared: Arc<Shared>, mut events: mpsc::Receiver<GossipedTransactions>) {
    while let Some(GossipedTransactions { from, id, txs }) = events.recv().await {
        let worker = shared.clone();
        let verdict = tokio::task::spawn_blocking(move || {
            let now = Timestamp::now();
            let mut verdict = Verdict::Ignore;
            for result in admit_batch(&worker.chain, &worker.mempool, txs, now) {
                match result {
                    Ok((_, _, Admission::Added)) => verdict = Verdict::Accept,
                    Ok(_) => {}
                    Err(NodeError::Anchoring(
                        AnchoringError::BadSignature { .. }
                        | AnchoringError::Malformed { .. }
                        | AnchoringError::Decode { .. }
                        | AnchoringError::WrongChain { .. },
                    ))
                    | Err(NodeError::TooLarge { .. }) => return Verdict::Reject,
                    // Refused by the ledger's rules: this node may be behind
                    // or ahead of the sender; not proof of misbehaviour.
                    Err(_) => {}
                }
            }
            verdict
        })
        .await
        .unwrap_or(Verdict::Ignore);
        if verdict == Verdict::Accept {
            shared.mempool_changed.notify_one();
        }
        if verdict == Verdict::Reject {
            add(&shared.metrics.rejected_messages, 1);
        }
        let _ = shared
            .net
            .send(NetCommand::Report { id, from, verdict })
            .await;
    }
}

/// Most transactions per gossip message.
const GOSSIP_BATCH: usize = 1_000;

/// Gossips transactions admitted here, many per message.
async fn gossip_outbox(shared: Arc<Shared>, mut outbox: mpsc::Receiver<SignedTransaction>) {
    let max_bytes =
        usize::try_from(shared.config.network.max_message_bytes).unwrap_or(usize::MAX) / 2;
    while let Some(first) = outbox.recv().await {
        let mut bytes = first.encode().len();
        let mut batch = vec![first];
        // Let a burst gather for a moment.
        tokio::time::sleep(Duration::from_millis(5)).await;
        while batch.len() < GOSSIP_BATCH {
            match outbox.try_recv() {
                Ok(tx) => {
                    bytes += tx.encode().len();
                    batch.push(tx);
                    if bytes >= max_bytes {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        if shared
            .net
            .send(NetCommand::Transactions(batch))
            .await
            .is_err()
        {
            break;
        }
    }
}
