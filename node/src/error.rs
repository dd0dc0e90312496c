//! The one error type of the node library.

use std::path::PathBuf;

use cairn_genesis::Hash;

/// What can stop or refuse the node.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The database failed.
    #[error("storage failed: {0}")]
    Storage(String),
    /// Stored bytes do not decode: the data folder is damaged.
    #[error("corrupt {what} in the data folder: {reason}")]
    Corrupt {
        /// What could not be read.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// The data folder belongs to another chain.
    #[error(
        "the data folder belongs to chain {found}, but the genesis is {expected}; use another --home or the right genesis"
    )]
    WrongChain {
        /// This genesis.
        expected: Hash,
        /// The one recorded in the data folder.
        found: Hash,
    },
    /// The data folder's state tree has another layout (its keys' places,
    /// its node hashes) than this build's (`cairn_anchoring::STATE_KEY_LAYOUT`).
    #[error(
        "the data folder's state tree has layout {found}, this node reads layout {expected}: a chain begun under layout {found} needs a release of that layout (its blocks' state roots were computed under it); for a chain of layout {expected}, move the data folder aside and let the node sync it from its peers"
    )]
    StateLayout {
        /// This build's layout.
        expected: u32,
        /// The data folder's (1 when it records none: written before layouts were recorded).
        found: u32,
    },
    /// A file could not be read or written.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        message: String,
    },
    /// The configuration file is unusable.
    #[error("{path}: {reason}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A block that does not follow the committed chain.
    #[error("block {height} does not follow the committed height {committed}")]
    OutOfOrder {
        /// The block's height.
        height: u64,
        /// The committed height.
        committed: u64,
    },
    /// A state tree version for a block not committed yet: a block's state
    /// is written after the block.
    #[error("state version {version} is above the committed height {committed}")]
    StateAhead {
        /// The version.
        version: u64,
        /// The committed height.
        committed: u64,
    },
    /// A commit certificate that does not prove what it is used for.
    #[error("invalid commit certificate: {0}")]
    InvalidCertificate(String),
    /// This node's state disagrees with what a quorum decided.
    #[error("state diverged from the network: {0}")]
    Diverged(String),
    /// The node cannot start as configured.
    #[error("{0}")]
    Startup(String),
    /// The network layer failed.
    #[error("network: {0}")]
    Network(String),
    /// The mempool holds as much as it may.
    #[error("the mempool is full ({txs} transactions, {bytes} bytes); try again later")]
    MempoolFull {
        /// Pending transactions.
        txs: usize,
        /// Their bytes.
        bytes: usize,
    },
    /// Something larger than its limit.
    #[error("{what} of {size} bytes is larger than the limit of {limit}")]
    TooLarge {
        /// What.
        what: &'static str,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The consensus engine refused or failed.
    #[error(transparent)]
    Consensus(#[from] cairn_consensus::ConsensusError),
    /// The ledger refused or failed.
    #[error(transparent)]
    Anchoring(#[from] cairn_anchoring::AnchoringError),
    /// The genesis or a key file is unusable.
    #[error(transparent)]
    Genesis(#[from] cairn_genesis::GenesisError),
}

impl From<rocksdb::Error> for NodeError {
    fn from(e: rocksdb::Error) -> Self {
        NodeError::Storage(e.to_string())
    }
}

/// A node failure met while the ledger reads the state: the ledger's own
/// error as it was, anything else a storage failure (never a refusal).
impl From<NodeError> for cairn_anchoring::AnchoringError {
    fn from(e: NodeError) -> Self {
        match e {
            NodeError::Anchoring(inner) => inner,
            other => cairn_anchoring::AnchoringError::Storage(other.to_string()),
        }
    }
}

impl NodeError {
    pub(crate) fn io(path: &std::path::Path, e: &std::io::Error) -> Self {
        NodeError::Io {
            path: path.to_path_buf(),
            message: e.to_string(),
        }
    }
}
