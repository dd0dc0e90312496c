//! A devnet's folder, created once and resumed by every later `up`:
//!
//! ```text
//! DIR/devnet.json          the manifest: chain, nodes, ports
//! DIR/genesis.json         the chain's genesis (also in every node's home)
//! DIR/keys/                validator and issuer key files (mode 0600)
//! DIR/node0 … nodeN-1/     node homes (`cairn node init`)
//! DIR/logs/nodeI.log       each node's log
//! DIR/demo/                demo credentials, the ready-made presentation
//! DIR/control.sock         the running `up`'s control socket
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;

use cairn_genesis::{KeyPair, Timestamp};
use serde::{Deserialize, Serialize};

use crate::{DemoSeat, DevnetError, demo_agencies, demo_genesis};

/// The chain id of every devnet.
pub const CHAIN_ID: &str = "cairn-devnet";

/// One node of the devnet.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeEntry {
    /// Its index.
    pub index: usize,
    /// The agency that runs it.
    pub name: String,
    /// Its libp2p port on 127.0.0.1.
    pub p2p_port: u16,
    /// Its HTTP port on 127.0.0.1.
    pub api_port: u16,
    /// Its peer id.
    pub peer_id: String,
}

impl NodeEntry {
    /// The API's base URL.
    pub fn api(&self) -> String {
        format!("http://127.0.0.1:{}", self.api_port)
    }
}

/// `devnet.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    /// The genesis hash.
    pub genesis_hash: String,
    /// The nodes.
    pub nodes: Vec<NodeEntry>,
}

/// A devnet folder.
#[derive(Clone, Debug)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    /// The devnet at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Layout {
        Layout { root: root.into() }
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `devnet.json`
    pub fn manifest_path(&self) -> PathBuf {
        self.root.join("devnet.json")
    }

    /// `genesis.json`
    pub fn genesis(&self) -> PathBuf {
        self.root.join("genesis.json")
    }

    /// Node `i`'s home.
    pub fn home(&self, i: usize) -> PathBuf {
        self.root.join(format!("node{i}"))
    }

    /// Node `i`'s log.
    pub fn log(&self, i: usize) -> PathBuf {
        self.root.join("logs").join(format!("node{i}.log"))
    }

    /// A key file.
    pub fn key(&self, name: &str) -> PathBuf {
        self.root.join("keys").join(format!("{name}.key"))
    }

    /// The police issuer key of agency `i` (driver's licenses).
    pub fn police_key(&self, i: usize) -> PathBuf {
        self.key(&format!("police{i}"))
    }

    /// The market bureau issuer key of agency `i` (business licenses).
    pub fn market_key(&self, i: usize) -> PathBuf {
        self.key(&format!("market{i}"))
    }

    /// `demo/`
    pub fn demo(&self) -> PathBuf {
        self.root.join("demo")
    }

    /// The control socket of a running `up`.
    pub fn socket(&self) -> PathBuf {
        self.root.join("control.sock")
    }

    /// Whether the folder holds a devnet.
    pub fn exists(&self) -> bool {
        self.manifest_path().exists()
    }

    /// Reads the manifest.
    pub fn manifest(&self) -> Result<Manifest, DevnetError> {
        let path = self.manifest_path();
        let text = std::fs::read_to_string(&path).map_err(|e| DevnetError::io(&path, &e))?;
        serde_json::from_str(&text).map_err(|e| DevnetError::Corrupt {
            path,
            reason: e.to_string(),
        })
    }

    /// Creates a devnet of `validators` agencies: keys, a genesis with the
    /// demo issuers and credential types, and one node home each (made by
    /// `cairn node init` of the binary at `cairn`), configured for
    /// 127.0.0.1 with free ports.
    pub fn create(&self, cairn: &Path, validators: usize) -> Result<Manifest, DevnetError> {
        let agencies = demo_agencies(validators)?;
        for sub in ["keys", "logs", "demo"] {
            let path = self.root.join(sub);
            std::fs::create_dir_all(&path).map_err(|e| DevnetError::io(&path, &e))?;
        }
        let mut seats = Vec::new();
        let mut api_ports = Vec::new();
        let mut keys = Vec::new();
        for (i, agency) in agencies.into_iter().enumerate() {
            let validator = KeyPair::generate();
            let police = KeyPair::generate();
            let market = KeyPair::generate();
            validator.write_new(&self.key(&format!("validator{i}")))?;
            police.write_new(&self.police_key(i))?;
            market.write_new(&self.market_key(i))?;
            seats.push(DemoSeat {
                agency,
                validator_key: validator.public_key(),
                police_issuer_key: police.public_key(),
                market_issuer_key: market.public_key(),
                p2p_port: free_port()?,
            });
            api_ports.push(free_port()?);
            keys.push(validator);
        }
        // Block 1 may come at once.
        let genesis_time = Timestamp(Timestamp::now().0.saturating_sub(1_000));
        let genesis = demo_genesis(CHAIN_ID, genesis_time, &seats)?;
        genesis.save_new(&self.genesis())?;
        let mut nodes = Vec::new();
        for (i, seat) in seats.iter().enumerate() {
            let home = self.home(i);
            let output = Command::new(cairn)
                .args(["node", "init", "--home"])
                .arg(&home)
                .arg("--genesis")
                .arg(self.genesis())
                .arg("--key")
                .arg(self.key(&format!("validator{i}")))
                .output()
                .map_err(|e| DevnetError::io(cairn, &e))?;
            if !output.status.success() {
                return Err(DevnetError::Command {
                    command: format!("cairn node init --home {}", home.display()),
                    output: String::from_utf8_lossy(&output.stderr).into_owned(),
                });
            }
            let config = node_config(seat.p2p_port, api_ports[i]);
            let path = home.join("config.toml");
            std::fs::write(&path, config).map_err(|e| DevnetError::io(&path, &e))?;
            nodes.push(NodeEntry {
                index: i,
                name: seat.agency.police_name.clone(),
                p2p_port: seat.p2p_port,
                api_port: api_ports[i],
                peer_id: keys[i].peer_id().to_string(),
            });
        }
        let manifest = Manifest {
            genesis_hash: genesis.hash().to_string(),
            nodes,
        };
        let text = serde_json::to_string_pretty(&manifest).unwrap_or_default();
        let path = self.manifest_path();
        std::fs::write(&path, text).map_err(|e| DevnetError::io(&path, &e))?;
        Ok(manifest)
    }
}

/// A devnet node's configuration: local addresses, the admin endpoints
/// the devnet's partitions use, quick empty blocks.
fn node_config(p2p: u16, api: u16) -> String {
    format!(
        "# A devnet node: everything on 127.0.0.1.\n\
         [node]\nlog_level = \"info\"\n\n\
         [network]\nlisten = \"/ip4/127.0.0.1/tcp/{p2p}\"\n\n\
         [api]\nlisten = \"127.0.0.1:{api}\"\n\
         # Lets `cairn devnet partition` block peers; never on a real network.\n\
         admin = true\n\n\
         [consensus]\nidle_block_interval_ms = 1000\n"
    )
}

/// A port that was free a moment ago on 127.0.0.1, and not handed out
/// before by this process (the kernel may offer a just-released port again,
/// and two nodes' listeners would then collide).
pub fn free_port() -> Result<u16, DevnetError> {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let io = |e: std::io::Error| DevnetError::io(Path::new("127.0.0.1:0"), &e);
    for _ in 0..100 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(io)?;
        let port = listener.local_addr().map_err(io)?.port();
        let mut given = GIVEN
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !given.contains(&port) {
            given.push(port);
            return Ok(port);
        }
    }
    Err(DevnetError::io(
        Path::new("127.0.0.1:0"),
        &std::io::Error::other("no new free port in 100 attempts"),
    ))
}
