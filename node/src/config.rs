//! The node's configuration: `config.toml` in its home folder. Every field
//! has a default; [`DEFAULT_CONFIG`] is the file `cairn node init` writes,
//! every field commented.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::NodeError;

/// The configuration file `cairn node init` writes: the defaults, explained.
pub const DEFAULT_CONFIG: &str = r#"# Cairn node configuration. Every field is optional; the values shown are the defaults.

[node]
# Log level: error, warn, info, debug or trace (RUST_LOG overrides it).
log_level = "info"
# Run as an observer: follow and serve the chain without voting, even if the
# key is a validator's.
observer = false

[network]
# Where to listen for other nodes (a libp2p multiaddress).
listen = "/ip4/0.0.0.0/tcp/26656"
# Nodes to dial at start, as /ip4/A/tcp/P/p2p/PEER_ID. Validators from the
# genesis are dialled at their genesis addresses anyway.
peers = []
# Peer ids of observers allowed to connect, besides the genesis validators.
observers = []
# A separate key file for this node's libp2p identity (relative to the home
# folder); by default node.key is both the consensus key and the identity.
identity_key = ""
# Most simultaneous connections.
max_connections = 64
# Largest message accepted from the network, in bytes.
max_message_bytes = 10485760

[api]
# Where the HTTP API and web pages listen.
listen = "127.0.0.1:8080"
# Largest request body, in bytes.
max_body_bytes = 4194304
# Serve POST /admin/peers/block and /admin/peers/unblock (used by a local
# devnet to partition its nodes). Never turn it on where others can reach the API.
admin = false

[consensus]
# Timeouts and block limits are in the genesis: every validator uses the same.
# With an empty mempool, propose an empty block at most this often.
idle_block_interval_ms = 1000
# How often to re-send this node's own consensus messages.
rebroadcast_interval_ms = 1000
# Most commitments (state writes) in a block this node proposes, so that
# building and re-executing a block stays well inside the propose timeout.
# The genesis limits still apply; this only keeps this node's blocks smaller.
max_block_commitments = 10000

[mempool]
# Most pending transactions.
max_txs = 50000
# Most bytes of pending transactions.
max_bytes = 268435456
# Most commitments in pending transactions (one per anchored credential, one
# for any other action): about ten full blocks. Beyond it a submission is
# refused at once (503 mempool_full) rather than checked against the ledger
# for a block that is many blocks away.
max_commitments = 100000

[storage]
# Delete the state tree's old versions as blocks commit. Blocks,
# certificates, transactions and every license's history stay; what goes is
# the tree nodes that only old versions use (each block rewrites the nodes
# on its changed paths, and would otherwise keep the old ones forever).
# Set to false to keep every version (an archive node).
prune_state = true
# With pruning, how many state versions to keep, the committed one included.
# The node itself reads only the committed one.
keep_state_versions = 100
# Memory for the state tree's nodes read from disk, in MiB. A block reads
# about one node per credential it writes, at random over the tree; the more
# of them this holds, the fewer are read from files.
tree_cache_mib = 256
"#;

/// `[node]`
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeSection {
    /// Log level.
    pub log_level: String,
    /// Observer mode.
    pub observer: bool,
}

/// `[network]`
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkSection {
    /// Listen address.
    pub listen: String,
    /// Peers to dial.
    pub peers: Vec<String>,
    /// Observer peer ids allowed to connect.
    pub observers: Vec<String>,
    /// A separate libp2p identity key file (empty: `node.key`).
    pub identity_key: String,
    /// Connection limit.
    pub max_connections: u32,
    /// Message size cap.
    pub max_message_bytes: u64,
}

/// `[api]`
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiSection {
    /// Listen address.
    pub listen: String,
    /// Request body cap.
    pub max_body_bytes: u64,
    /// Admin endpoints.
    pub admin: bool,
}

/// `[consensus]`
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsensusSection {
    /// Idle block interval.
    pub idle_block_interval_ms: u64,
    /// Rebroadcast interval.
    pub rebroadcast_interval_ms: u64,
    /// Most commitments in a block this node proposes.
    pub max_block_commitments: u64,
}

/// `[mempool]`
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MempoolSection {
    /// Count bound.
    pub max_txs: u64,
    /// Byte bound.
    pub max_bytes: u64,
    /// Bound on pending commitments (state writes).
    pub max_commitments: u64,
}

/// `[storage]`
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageSection {
    /// Prune old state versions.
    pub prune_state: bool,
    /// State versions kept when pruning.
    pub keep_state_versions: u64,
    /// Memory for the state tree's nodes read from disk, in MiB.
    pub tree_cache_mib: u64,
}

/// The largest `storage.tree_cache_mib` accepted: 1 TiB.
const MAX_TREE_CACHE_MIB: u64 = 1 << 20;

impl StorageSection {
    /// The tree's node cache in bytes.
    pub fn tree_cache_bytes(&self) -> usize {
        usize::try_from(self.tree_cache_mib.min(MAX_TREE_CACHE_MIB) << 20).unwrap_or(usize::MAX)
    }

    /// State versions to keep: [`crate::store::Store::keep_state_versions`]'s
    /// argument, 0 for every version.
    pub fn kept_versions(&self) -> u64 {
        if self.prune_state {
            self.keep_state_versions
        } else {
            0
        }
    }
}

/// The whole configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `[node]`
    pub node: NodeSection,
    /// `[network]`
    pub network: NetworkSection,
    /// `[api]`
    pub api: ApiSection,
    /// `[consensus]`
    pub consensus: ConsensusSection,
    /// `[mempool]`
    pub mempool: MempoolSection,
    /// `[storage]`
    pub storage: StorageSection,
}

impl Default for NodeSection {
    fn default() -> Self {
        NodeSection {
            log_level: "info".into(),
            observer: false,
        }
    }
}

impl Default for NetworkSection {
    fn default() -> Self {
        NetworkSection {
            listen: "/ip4/0.0.0.0/tcp/26656".into(),
            peers: Vec::new(),
            observers: Vec::new(),
            identity_key: String::new(),
            max_connections: 64,
            max_message_bytes: 10 * 1024 * 1024,
        }
    }
}

impl Default for ApiSection {
    fn default() -> Self {
        ApiSection {
            listen: "127.0.0.1:8080".into(),
            max_body_bytes: 4 * 1024 * 1024,
            admin: false,
        }
    }
}

impl Default for ConsensusSection {
    fn default() -> Self {
        ConsensusSection {
            idle_block_interval_ms: 1_000,
            rebroadcast_interval_ms: 1_000,
            max_block_commitments: 10_000,
        }
    }
}

impl Default for MempoolSection {
    fn default() -> Self {
        MempoolSection {
            max_txs: 50_000,
            max_bytes: 256 * 1024 * 1024,
            max_commitments: 100_000,
        }
    }
}

impl Default for StorageSection {
    fn default() -> Self {
        StorageSection {
            prune_state: true,
            keep_state_versions: 100,
            tree_cache_mib: (crate::store::DEFAULT_TREE_CACHE_BYTES >> 20) as u64,
        }
    }
}

/// A config file is small; anything larger is a mistake.
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

impl Config {
    /// Parses a configuration; unknown keys are errors (a typo must not be silently ignored).
    pub fn parse(text: &str, path: &Path) -> Result<Config, NodeError> {
        let config: Config = toml::from_str(text).map_err(|e| NodeError::Config {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        // A bound of zero would not limit anything, it would stop the node
        // quietly: no block would take a transaction, no pool would admit one.
        // (A tree cache of zero would only slow it: refused as a mistake too.)
        let bounds = [
            (
                "network.max_connections",
                u64::from(config.network.max_connections),
            ),
            (
                "network.max_message_bytes",
                config.network.max_message_bytes,
            ),
            ("api.max_body_bytes", config.api.max_body_bytes),
            (
                "consensus.max_block_commitments",
                config.consensus.max_block_commitments,
            ),
            ("mempool.max_txs", config.mempool.max_txs),
            ("mempool.max_bytes", config.mempool.max_bytes),
            ("mempool.max_commitments", config.mempool.max_commitments),
            (
                "storage.keep_state_versions",
                config.storage.keep_state_versions,
            ),
            ("storage.tree_cache_mib", config.storage.tree_cache_mib),
        ];
        if let Some((name, _)) = bounds.iter().find(|(_, value)| *value == 0) {
            return Err(NodeError::Config {
                path: path.to_path_buf(),
                reason: format!("{name} is 0; it must be at least 1"),
            });
        }
        if config.storage.tree_cache_mib > MAX_TREE_CACHE_MIB {
            return Err(NodeError::Config {
                path: path.to_path_buf(),
                reason: format!(
                    "storage.tree_cache_mib is {}; it must be at most {MAX_TREE_CACHE_MIB} (1 TiB)",
                    config.storage.tree_cache_mib
                ),
            });
        }
        Ok(config)
    }

    /// Reads `path`.
    pub fn load(path: &Path) -> Result<Config, NodeError> {
        let size = std::fs::metadata(path)
            .map_err(|e| NodeError::io(path, &e))?
            .len();
        if size > MAX_CONFIG_BYTES {
            return Err(NodeError::Config {
                path: path.to_path_buf(),
                reason: format!("{size} bytes is too large for a configuration file"),
            });
        }
        let text = std::fs::read_to_string(path).map_err(|e| NodeError::io(path, &e))?;
        Config::parse(&text, path)
    }
}

/// The files of a node's home folder.
#[derive(Clone, Debug)]
pub struct Home {
    root: PathBuf,
}

impl Home {
    /// The home folder at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Home {
        Home { root: root.into() }
    }

    /// The folder itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `config.toml`
    pub fn config(&self) -> PathBuf {
        self.root.join("config.toml")
    }

    /// `genesis.json`
    pub fn genesis(&self) -> PathBuf {
        self.root.join("genesis.json")
    }

    /// `node.key`: the validator's consensus key and libp2p identity.
    pub fn key(&self) -> PathBuf {
        self.root.join("node.key")
    }

    /// `sign_state`: the last-signed record, kept out of `data/` on purpose.
    pub fn sign_state(&self) -> PathBuf {
        self.root.join("sign_state")
    }

    /// `data/`: the database.
    pub fn data(&self) -> PathBuf {
        self.root.join("data")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_written_file_is_the_defaults() {
        assert_eq!(
            Config::parse(DEFAULT_CONFIG, Path::new("config.toml")).unwrap(),
            Config::default()
        );
        assert_eq!(
            Config::parse("", Path::new("config.toml")).unwrap(),
            Config::default()
        );
    }

    #[test]
    fn unknown_keys_and_wrong_types_are_refused() {
        let err = Config::parse("[api]\nlisten_addr = \"x\"\n", Path::new("c.toml")).unwrap_err();
        assert!(err.to_string().contains("listen_addr"), "{err}");
        let err =
            Config::parse("[mempool]\nmax_txs = \"many\"\n", Path::new("c.toml")).unwrap_err();
        assert!(matches!(err, NodeError::Config { .. }), "{err}");
    }

    #[test]
    fn zero_bounds_are_refused_by_name() {
        for (section, key) in [
            ("network", "max_connections"),
            ("network", "max_message_bytes"),
            ("api", "max_body_bytes"),
            ("consensus", "max_block_commitments"),
            ("mempool", "max_txs"),
            ("mempool", "max_bytes"),
            ("mempool", "max_commitments"),
            ("storage", "keep_state_versions"),
            ("storage", "tree_cache_mib"),
        ] {
            let text = format!("[{section}]\n{key} = 0\n");
            let err = Config::parse(&text, Path::new("c.toml")).unwrap_err();
            assert!(
                matches!(&err, NodeError::Config { reason, .. }
                    if reason.contains(&format!("{section}.{key} is 0"))),
                "{err}"
            );
            let one = format!("[{section}]\n{key} = 1\n");
            assert!(Config::parse(&one, Path::new("c.toml")).is_ok(), "{one}");
        }
    }

    #[test]
    fn the_tree_cache_is_bounded_and_in_bytes() {
        assert_eq!(
            Config::default().storage.tree_cache_bytes(),
            crate::store::DEFAULT_TREE_CACHE_BYTES
        );
        let small = Config::parse("[storage]\ntree_cache_mib = 8\n", Path::new("c.toml")).unwrap();
        assert_eq!(small.storage.tree_cache_bytes(), 8 << 20);
        let largest = format!("[storage]\ntree_cache_mib = {MAX_TREE_CACHE_MIB}\n");
        assert!(Config::parse(&largest, Path::new("c.toml")).is_ok());
        let huge = format!("[storage]\ntree_cache_mib = {}\n", MAX_TREE_CACHE_MIB + 1);
        let err = Config::parse(&huge, Path::new("c.toml")).unwrap_err();
        assert!(
            matches!(&err, NodeError::Config { reason, .. } if reason.contains("at most")),
            "{err}"
        );
    }

    #[test]
    fn an_archive_keeps_every_state_version() {
        let pruning = Config::default();
        assert_eq!(pruning.storage.kept_versions(), 100);
        let archive =
            Config::parse("[storage]\nprune_state = false\n", Path::new("c.toml")).unwrap();
        assert_eq!(archive.storage.kept_versions(), 0);
    }

    #[test]
    fn some_fields_override_the_rest_default() {
        let c = Config::parse("[api]\nlisten = \"127.0.0.1:9000\"\n", Path::new("c.toml")).unwrap();
        assert_eq!(c.api.listen, "127.0.0.1:9000");
        assert_eq!(c.api.max_body_bytes, ApiSection::default().max_body_bytes);
    }
}
