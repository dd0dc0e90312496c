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
    /// Set up and run a node.
    #[command(subcommand)]
    Node(NodeCommand),
    /// A local network of real nodes on 127.0.0.1, with demo agencies and
    /// credentials: start it, perturb it, load it.
    #[command(subcommand)]
    Devnet(DevnetCommand),
    /// Sign and submit an issuer's transaction to a node.
    #[command(subcommand)]
    Tx(TxCommand),
    /// Verify a presentation: offline with its stapled proof bundle and the
    /// genesis, or online against a node. Exit 0 only if the license is valid.
    Verify(VerifyArgs),
    /// Create credentials (issuers) and presentations of them (holders).
    #[command(subcommand)]
    Credential(CredentialCommand),
    /// Fetch proof bundles from a node.
    #[command(subcommand)]
    Bundle(BundleCommand),
    /// For regulators: every lifecycle event of a credential, each with its
    /// proof checked against the genesis.
    Trace(TraceArgs),
    /// Measure this machine's limits and the node's throughput, latency,
    /// serving and sync rates (real processes on 127.0.0.1; build with
    /// --release). Markdown on stdout.
    #[command(subcommand)]
    Bench(BenchCommand),
}

/// `cairn bench …`
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// ed25519 (one and batched), blake3, state-tree inserts, synced RocksDB writes.
    Limits {
        /// Runs per figure (median and spread are reported).
        #[arg(long, default_value_t = 7)]
        runs: usize,
        /// A twentieth of the work: a check that it runs, not a measurement.
        #[arg(long)]
        quick: bool,
    },
    /// Anchoring load on a fresh devnet: commitments and transactions
    /// finalized per second, latency percentiles, CPU and peak RSS per node.
    Network(NetworkBench),
    /// Bundle queries per second on one node under concurrent clients.
    Serve {
        /// Seconds of querying.
        #[arg(long, default_value_t = 20)]
        duration: u64,
        /// Concurrent clients.
        #[arg(long, default_value_t = 16)]
        clients: usize,
        /// Credentials anchored first (queried at random).
        #[arg(long, default_value_t = 10_000)]
        credentials: usize,
    },
    /// Catch-up speed of a validator restarted without its data folder after
    /// the four made BLOCKS blocks.
    Sync {
        /// Blocks made while it is stopped.
        #[arg(long, default_value_t = 10_000)]
        blocks: u64,
    },
    /// A node's work per block (build, re-execute, commit into RocksDB) and
    /// disk use per credential as the state grows, in one process.
    Growth {
        /// Validators signing each block's certificate.
        #[arg(long, default_value_t = 4)]
        validators: usize,
        /// Commitments per block.
        #[arg(long, default_value_t = 10_000)]
        block: u64,
        /// Credentials to grow the state to (a row at every power of ten).
        #[arg(long, default_value_t = 1_000_000)]
        up_to: u64,
        /// State versions kept, as a node's `storage.keep_state_versions`
        /// (0 keeps every version, as `prune_state = false`).
        #[arg(long, default_value_t = 100)]
        keep_state_versions: u64,
    },
}

/// `cairn bench network`
#[derive(Debug, Args)]
pub struct NetworkBench {
    /// Validators (each its own process).
    #[arg(long, default_value_t = 4)]
    pub validators: usize,
    /// Transactions submitted per second.
    #[arg(long, default_value_t = 50)]
    pub rate: u32,
    /// Commitments per transaction.
    #[arg(long, default_value_t = 1_000)]
    pub batch: usize,
    /// Seconds of submitting.
    #[arg(long, default_value_t = 60)]
    pub duration: u64,
    /// Submitting clients (threads).
    #[arg(long, default_value_t = 8)]
    pub threads: usize,
    /// Transactions per HTTP request (more than 1: `POST /v1/txs/batch`).
    #[arg(long, default_value_t = 1)]
    pub per_request: usize,
    /// Each node's `max_block_commitments` (the most commitments in a block
    /// it proposes); the configuration's default if not given.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub block_commitments: Option<u64>,
    /// Each node's `storage.keep_state_versions`; the default (100) if not given.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub keep_state_versions: Option<u64>,
}

/// `cairn credential …`
#[derive(Debug, Subcommand)]
pub enum CredentialCommand {
    /// Create a credential from its fields: a fresh salt per field; prints
    /// the commitment to anchor. The file holds the salts: give it only to
    /// the holder.
    New {
        /// Credential type code, e.g. driver-license.
        #[arg(long = "type", value_name = "CODE")]
        credential_type: String,
        /// Issuer id (Unified Social Credit Code).
        #[arg(long)]
        issuer: String,
        /// A JSON object of field names to string values.
        #[arg(long, value_name = "FIELDS.json")]
        fields: PathBuf,
        /// Where to write the credential.
        #[arg(long, value_name = "CRED.json")]
        out: PathBuf,
    },
    /// Disclose chosen fields of a credential; the others stay hidden.
    Present {
        /// The credential file.
        credential: PathBuf,
        /// Field names to disclose, comma-separated (none: only that the
        /// credential exists and is in force).
        #[arg(long, value_delimiter = ',')]
        disclose: Vec<String>,
        /// A proof bundle to staple (from `cairn bundle fetch`), so that
        /// the presentation verifies offline.
        #[arg(long, value_name = "BUNDLE.json")]
        bundle: Option<PathBuf>,
        /// Where to write the presentation.
        #[arg(long, value_name = "PRESENTATION.json")]
        out: PathBuf,
    },
}

/// `cairn bundle …`
#[derive(Debug, Subcommand)]
pub enum BundleCommand {
    /// Fetch a credential's proof bundle at the node's latest height.
    Fetch {
        /// The credential's commitment (hex).
        commitment: String,
        /// The node to ask.
        #[arg(long, value_name = "URL")]
        node: String,
        /// Check the bundle against this genesis before writing it.
        #[arg(long, value_name = "FILE")]
        genesis: Option<PathBuf>,
        /// Where to write it.
        #[arg(long, value_name = "BUNDLE.json")]
        out: PathBuf,
    },
}

/// `cairn trace`
#[derive(Debug, Args)]
pub struct TraceArgs {
    /// The credential's commitment (hex).
    pub commitment: String,
    /// The node to ask.
    #[arg(long, value_name = "URL")]
    pub node: String,
    /// The chain's genesis file (default: ./genesis.json, else the node's,
    /// which is then trusted as served).
    #[arg(long, value_name = "FILE")]
    pub genesis: Option<PathBuf>,
    /// Print the trace as JSON.
    #[arg(long)]
    pub json: bool,
}

/// What every transaction command needs.
#[derive(Debug, Args)]
pub struct TxCommon {
    /// The node to submit to, e.g. http://127.0.0.1:8080.
    #[arg(long, value_name = "URL")]
    pub node: String,
    /// The issuer's signing key file.
    #[arg(long, value_name = "KEY_FILE")]
    pub key: PathBuf,
    /// The issuer's id (default: the issuer that holds this key).
    #[arg(long)]
    pub issuer: Option<String>,
    /// Wait until the transaction is finalized and print its height.
    #[arg(long)]
    pub wait: bool,
}

/// Why a credential is revoked.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum ReasonArg {
    /// 撤销: it should never have been issued.
    Annulled,
    /// 注销: at the holder's request, or its subject ceased to exist.
    Cancelled,
    /// 吊销: revoked as a penalty.
    RevokedAsPenalty,
    /// 失效: no longer effective.
    Lapsed,
    /// Any other reason.
    Other,
}

/// `cairn tx …`
#[derive(Debug, Subcommand)]
pub enum TxCommand {
    /// Anchor credentials (from `cairn credential new`), in as few
    /// transactions as the size limit allows.
    Anchor {
        /// Credential files.
        #[arg(required = true, value_name = "CRED.json")]
        credentials: Vec<PathBuf>,
        /// When they stop being valid (RFC 3339), if ever.
        #[arg(long, value_parser = parse_time)]
        valid_until: Option<Timestamp>,
        #[command(flatten)]
        common: TxCommon,
    },
    /// Replace a credential by a renewed or changed one (延续/变更).
    Supersede {
        /// The commitment of the credential replaced (hex).
        old: String,
        /// The successor's credential file.
        #[arg(value_name = "CRED.json")]
        credential: PathBuf,
        /// When the successor stops being valid (RFC 3339), if ever.
        #[arg(long, value_parser = parse_time)]
        valid_until: Option<Timestamp>,
        #[command(flatten)]
        common: TxCommon,
    },
    /// Suspend an active credential (暂扣).
    Suspend {
        /// The credential's commitment (hex).
        commitment: String,
        #[command(flatten)]
        common: TxCommon,
    },
    /// Reinstate a suspended credential (发还).
    Reinstate {
        /// The credential's commitment (hex).
        commitment: String,
        #[command(flatten)]
        common: TxCommon,
    },
    /// Revoke a credential for good.
    Revoke {
        /// The credential's commitment (hex).
        commitment: String,
        /// Why.
        #[arg(long, value_enum)]
        reason: ReasonArg,
        #[command(flatten)]
        common: TxCommon,
    },
}

/// `cairn verify`
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The presentation file.
    pub presentation: PathBuf,
    /// The chain's genesis file: the only thing trusted offline (default:
    /// ./genesis.json, else with --node the node's, trusted as served).
    #[arg(long, value_name = "FILE")]
    pub genesis: Option<PathBuf>,
    /// Fetch a fresh bundle from this node instead of the stapled one.
    #[arg(long, value_name = "URL")]
    pub node: Option<String>,
    /// Refuse a bundle older than this, e.g. 30s, 10m, 24h, 7d.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub max_age: Option<u64>,
    /// Print the verdict as JSON.
    #[arg(long)]
    pub json: bool,
}

/// The folder option of every devnet command.
#[derive(Debug, Args)]
pub struct DevnetDir {
    /// The devnet folder (created by the first `up`).
    #[arg(long, value_name = "DIR", default_value = "cairn-devnet")]
    pub dir: PathBuf,
}

/// `cairn devnet …`
#[derive(Debug, Subcommand)]
pub enum DevnetCommand {
    /// Create (or resume) the devnet, start its nodes, seed demo
    /// credentials and run until Ctrl-C.
    Up {
        /// Validator agencies in a new devnet.
        #[arg(long, default_value_t = 4)]
        validators: usize,
        #[command(flatten)]
        dir: DevnetDir,
    },
    /// The nodes of the running devnet: state, height, peers, API.
    Status(DevnetDir),
    /// SIGKILL node I.
    Kill {
        /// The node number.
        node: usize,
        #[command(flatten)]
        dir: DevnetDir,
    },
    /// Start node I again (killing it first if it runs).
    Restart {
        /// The node number.
        node: usize,
        #[command(flatten)]
        dir: DevnetDir,
    },
    /// Freeze node I (SIGSTOP).
    Pause {
        /// The node number.
        node: usize,
        #[command(flatten)]
        dir: DevnetDir,
    },
    /// Thaw node I (SIGCONT).
    Resume {
        /// The node number.
        node: usize,
        #[command(flatten)]
        dir: DevnetDir,
    },
    /// Split the nodes into groups that cannot reach each other, e.g. 0,1/2,3.
    Partition {
        /// Groups of node numbers separated by '/'.
        groups: String,
        #[command(flatten)]
        dir: DevnetDir,
    },
    /// Undo every partition.
    Heal(DevnetDir),
    /// Stop every node and the running `up`.
    Down(DevnetDir),
    /// Submit signed anchors at a steady rate; report accepted, finalized
    /// and latency percentiles.
    Load {
        /// Transactions per second.
        #[arg(long, default_value_t = 50)]
        rate: u32,
        /// Seconds of load.
        #[arg(long, default_value_t = 10)]
        duration: u64,
        /// Commitments per transaction.
        #[arg(long, default_value_t = 1)]
        batch: usize,
        /// Submitting threads.
        #[arg(long, default_value_t = 8)]
        threads: usize,
        /// Transactions per HTTP request (more than 1: `POST /v1/txs/batch`).
        #[arg(long, default_value_t = 1)]
        per_request: usize,
        #[command(flatten)]
        dir: DevnetDir,
    },
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

/// `30s`, `10m`, `24h`, `7d` or plain seconds → milliseconds.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 30s, 10m, 24h or 7d"))?;
    let unit_ms = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => {
            return Err(format!(
                "unknown unit {unit:?} in {text:?}; use ms, s, m, h or d"
            ));
        }
    };
    n.checked_mul(unit_ms)
        .ok_or_else(|| format!("{text:?} is too long"))
}

fn parse_time(text: &str) -> Result<Timestamp, String> {
    Timestamp::parse_rfc3339(text).map_err(|e| e.to_string())
}
