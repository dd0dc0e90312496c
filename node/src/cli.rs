//! The command line, as clap structures. Every command's help says what it
//! does and what it needs; `cairn --help` lists them.

use std::path::PathBuf;

use cairn_genesis::{PeerId, PublicKey, Timestamp};
use clap::{Args, Parser, Subcommand};

/// Cairn: a permissioned ledger on which licensing agencies anchor commitments
/// of the electronic licenses they issue, so that anyone can check a license
/// offline without its contents being exposed.
#[derive(Debug, Parser)]
#[command(name = "cairn", version, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create and inspect ed25519 key files.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Build, check and hash a genesis file step by step.
    #[command(subcommand)]
    Genesis(GenesisCommand),
    /// Set up a node's home folder.
    #[command(subcommand)]
    Node(NodeCommand),
}

/// `cairn node …`
#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Create a home folder: config.toml (every field defaulted and
    /// commented), genesis.json, node.key (mode 0600) and the data folder.
    Init {
        /// The home folder to create.
        #[arg(long, value_name = "DIR")]
        home: PathBuf,
        /// The chain's genesis file (checked before anything is written).
        #[arg(long, value_name = "FILE")]
        genesis: PathBuf,
        /// The validator's key file (copied into the home); a new key is generated without it.
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
        /// Follow and serve the chain without voting.
        #[arg(long)]
        observer: bool,
    },
    /// Run the node in a home folder until SIGINT or SIGTERM: network,
    /// consensus, mempool and the HTTP API, as config.toml says.
    Run {
        /// The node's home folder (made by `cairn node init`).
        #[arg(long, value_name = "DIR")]
        home: PathBuf,
    },
}

/// `cairn keys …`
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Write a new ed25519 key file readable only by you (mode 0600); print its
    /// public key and libp2p peer id. The secret is never printed.
    Generate {
        /// Where to write the key file; an existing file is never overwritten.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Print the public key and peer id of a key file.
    Show {
        /// The key file.
        file: PathBuf,
    },
}

/// `cairn genesis …`
#[derive(Debug, Subcommand)]
pub enum GenesisCommand {
    /// Start a new genesis file with default consensus parameters and no entries.
    Init {
        /// The genesis file to create; an existing file is never overwritten.
        file: PathBuf,
        /// Chain name: 1 to 64 characters from a-z, 0-9 and '-'.
        #[arg(long)]
        chain_id: String,
        /// Earliest time of block 1, RFC 3339 (default: now).
        #[arg(long, value_parser = parse_time)]
        genesis_time: Option<Timestamp>,
    },
    /// Add a validator agency.
    AddValidator(AddValidator),
    /// Add a credential type to the catalog.
    AddType(AddType),
    /// Add an issuer and accredit it for credential types.
    AddIssuer(AddIssuer),
    /// List every problem in a genesis file; exit 0 only when there is none.
    Check {
        /// The genesis file.
        file: PathBuf,
    },
    /// Print the chain identity (the genesis hash) of a valid genesis file.
    Hash {
        /// The genesis file.
        file: PathBuf,
    },
}

/// A public key given directly or read from a key file.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct KeySource {
    /// Read the public key from this key file (your own agency's).
    #[arg(long, value_name = "KEY_FILE")]
    pub key: Option<PathBuf>,
    /// The public key in hex, as another agency sent it.
    #[arg(long, value_name = "HEX")]
    pub public_key: Option<PublicKey>,
}

/// `cairn genesis add-validator`
#[derive(Debug, Args)]
pub struct AddValidator {
    /// The genesis file to change.
    pub file: PathBuf,
    /// The agency's Unified Social Credit Code.
    #[arg(long)]
    pub agency_id: String,
    /// The agency's name.
    #[arg(long)]
    pub name: String,
    /// Administrative division code (six digits, e.g. 310000).
    #[arg(long)]
    pub region: String,
    /// The validator's consensus key.
    #[command(flatten)]
    pub key: KeySource,
    /// The node's libp2p peer id (default: derived from the consensus key).
    #[arg(long)]
    pub peer_id: Option<PeerId>,
    /// Voting power.
    #[arg(long, default_value_t = 10)]
    pub power: u64,
    /// Where the other validators dial it, e.g. /ip4/10.0.0.5/tcp/26656.
    #[arg(long)]
    pub address: String,
}

/// `cairn genesis add-type`
#[derive(Debug, Args)]
pub struct AddType {
    /// The genesis file to change.
    pub file: PathBuf,
    /// Catalog code, e.g. driver-license.
    #[arg(long)]
    pub code: String,
    /// Display name, e.g. 机动车驾驶证.
    #[arg(long)]
    pub name: String,
    /// Field names, comma-separated, e.g. holder_name,id_number,class.
    #[arg(long, value_delimiter = ',', required = true)]
    pub fields: Vec<String>,
}

/// `cairn genesis add-issuer`
#[derive(Debug, Args)]
pub struct AddIssuer {
    /// The genesis file to change.
    pub file: PathBuf,
    /// The issuer's Unified Social Credit Code.
    #[arg(long)]
    pub id: String,
    /// The issuer's name.
    #[arg(long)]
    pub name: String,
    /// Administrative division code (six digits).
    #[arg(long)]
    pub region: String,
    /// The issuer's signing key.
    #[command(flatten)]
    pub key: KeySource,
    /// First time the key may sign, RFC 3339 (default: the genesis time).
    #[arg(long, value_parser = parse_time)]
    pub valid_from: Option<Timestamp>,
    /// Time from which the key may no longer sign, RFC 3339 (default: open-ended).
    #[arg(long, value_parser = parse_time)]
    pub valid_until: Option<Timestamp>,
    /// Credential type codes it may issue, comma-separated; each must be in the catalog.
    #[arg(long, value_delimiter = ',')]
    pub types: Vec<String>,
}

fn parse_time(text: &str) -> Result<Timestamp, String> {
    Timestamp::parse_rfc3339(text).map_err(|e| e.to_string())
}
