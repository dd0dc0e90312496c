//! A local network of real `cairn node run` processes on 127.0.0.1, for
//! the node's integration tests.

#![allow(dead_code, clippy::unwrap_used)]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cairn_anchoring::{Action, AnchorItem, CredentialDocument, SignedTransaction, Transaction};
use cairn_devnet::{DemoSeat, TYPE_DRIVER_LICENSE, demo_agencies, demo_genesis};
use cairn_genesis::{GenesisDocument, KeyPair, Timestamp};
use serde_json::Value;

/// One node's files and process.
pub struct TestNode {
    pub home: PathBuf,
    pub api: String,
    pub p2p_port: u16,
    pub key: KeyPair,
    child: Option<Child>,
    log: PathBuf,
    starts: u32,
}

/// A test network: genesis, issuer keys, nodes.
pub struct TestNet {
    pub dir: tempfile::TempDir,
    pub genesis: GenesisDocument,
    pub nodes: Vec<TestNode>,
    pub police_keys: Vec<KeyPair>,
    pub market_keys: Vec<KeyPair>,
    nonce: u64,
}

/// A free port on 127.0.0.1 that no other node of this test process got.
pub fn free_port() -> u16 {
    cairn_devnet::layout::free_port().unwrap()
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

/// `GET url` → (status, JSON body).
pub fn get(url: &str) -> (u16, Value) {
    match agent().get(url).call() {
        Ok(mut response) => {
            let status = response.status().as_u16();
            let body = response
                .body_mut()
                .read_json::<Value>()
                .unwrap_or(Value::Null);
            (status, body)
        }
        Err(_) => (0, Value::Null),
    }
}

/// `GET url` with `Accept: application/octet-stream` → bytes.
pub fn get_bytes(url: &str) -> (u16, Vec<u8>) {
    let mut response = agent()
        .get(url)
        .header("Accept", "application/octet-stream")
        .call()
        .unwrap();
    let status = response.status().as_u16();
    let bytes = response
        .body_mut()
        .with_config()
        .limit(64 << 20)
        .read_to_vec()
        .unwrap();
    (status, bytes)
}

/// `POST url` with a body and content type → (status, JSON body).
pub fn post(url: &str, content_type: &str, body: &[u8]) -> (u16, Value) {
    let mut response = agent()
        .post(url)
        .header("Content-Type", content_type)
        .send(body)
        .unwrap();
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .read_json::<Value>()
        .unwrap_or(Value::Null);
    (status, body)
}

/// Polls `f` until it returns `Some` or `timeout` passes.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// State versions a test node keeps: few, so that every test runs on pruned state.
pub const KEEP_STATE_VERSIONS: u64 = 4;

/// The config.toml of a test node: fast idle blocks, fixed ports, state
/// pruned to [`KEEP_STATE_VERSIONS`].
fn config(p2p: u16, api: u16, observer: bool, observers: &[String], peers: &[String]) -> String {
    let quote = |v: &[String]| {
        v.iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "[node]\nlog_level = \"info,cairn_node=debug\"\nobserver = {observer}\n\n\
         [network]\nlisten = \"/ip4/127.0.0.1/tcp/{p2p}\"\npeers = [{}]\nobservers = [{}]\n\n\
         [api]\nlisten = \"127.0.0.1:{api}\"\nmax_body_bytes = 1048576\n\n\
         [consensus]\nidle_block_interval_ms = 100\nrebroadcast_interval_ms = 500\n\n\
         [storage]\nkeep_state_versions = {KEEP_STATE_VERSIONS}\n",
        quote(peers),
        quote(observers),
    )
}

impl TestNet {
    /// Keys, genesis and homes for `n` validators (and `observers` observer
    /// homes after them, allowed by every validator); nothing started.
    pub fn new(n: usize, observers: usize) -> TestNet {
        let dir = tempfile::tempdir().unwrap();
        let agencies = demo_agencies(n).unwrap();
        let keys: Vec<KeyPair> = (0..n).map(|_| KeyPair::generate()).collect();
        let police_keys: Vec<KeyPair> = (0..n).map(|_| KeyPair::generate()).collect();
        let market_keys: Vec<KeyPair> = (0..n).map(|_| KeyPair::generate()).collect();
        let ports: Vec<u16> = (0..n + observers).map(|_| free_port()).collect();
        let seats: Vec<DemoSeat> = (0..n)
            .map(|i| DemoSeat {
                agency: agencies[i].clone(),
                validator_key: keys[i].public_key(),
                police_issuer_key: police_keys[i].public_key(),
                market_issuer_key: market_keys[i].public_key(),
                p2p_port: ports[i],
            })
            .collect();
        let time = Timestamp(Timestamp::now().0 - 60_000);
        let genesis = demo_genesis("cairn-test", time, &seats).unwrap();
        let genesis_path = dir.path().join("genesis.json");
        std::fs::write(&genesis_path, genesis.to_json()).unwrap();

        let observer_keys: Vec<KeyPair> = (0..observers).map(|_| KeyPair::generate()).collect();
        let observer_ids: Vec<String> = observer_keys
            .iter()
            .map(|k| k.peer_id().to_string())
            .collect();
        let mut nodes = Vec::new();
        for (i, key) in keys.into_iter().chain(observer_keys).enumerate() {
            let observer = i >= n;
            let home = dir.path().join(format!("node{i}"));
            let key_path = dir.path().join(format!("node{i}.key"));
            key.write_new(&key_path).unwrap();
            let mut args = vec![
                "node".to_string(),
                "init".into(),
                "--home".into(),
                home.display().to_string(),
                "--genesis".into(),
                genesis_path.display().to_string(),
                "--key".into(),
                key_path.display().to_string(),
            ];
            if observer {
                args.push("--observer".into());
            }
            let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
                .args(&args)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let api = free_port();
            let peers: Vec<String> = if observer {
                (0..n)
                    .map(|v| {
                        format!(
                            "/ip4/127.0.0.1/tcp/{}/p2p/{}",
                            ports[v], genesis.validators[v].peer_id
                        )
                    })
                    .collect()
            } else {
                Vec::new()
            };
            let allowed = if observer {
                Vec::new()
            } else {
                observer_ids.clone()
            };
            std::fs::write(
                home.join("config.toml"),
                config(ports[i], api, observer, &allowed, &peers),
            )
            .unwrap();
            nodes.push(TestNode {
                log: dir.path().join(format!("node{i}.log")),
                home,
                api: format!("http://127.0.0.1:{api}"),
                p2p_port: ports[i],
                key,
                child: None,
                starts: 0,
            });
        }
        TestNet {
            dir,
            genesis,
            nodes,
            police_keys,
            market_keys,
            nonce: 0,
        }
    }

    pub fn start(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        assert!(node.child.is_none(), "node {i} is running");
        node.starts += 1;
        let log = File::options()
            .create(true)
            .append(true)
            .open(&node.log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_cairn"))
            .args(["node", "run", "--home"])
            .arg(&node.home)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        node.child = Some(child);
    }

    pub fn start_all(&mut self) {
        for i in 0..self.nodes.len() {
            self.start(i);
        }
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// SIGTERM, and the exit status must be success.
    pub fn stop(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            let status = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .unwrap();
            assert!(status.success());
            let start = Instant::now();
            loop {
                if let Some(status) = child.try_wait().unwrap() {
                    assert!(
                        status.success(),
                        "node {i} exited with {status} on SIGTERM\n{}",
                        self.log(i)
                    );
                    return;
                }
                assert!(
                    start.elapsed() < Duration::from_secs(20),
                    "node {i} did not stop on SIGTERM\n{}",
                    self.log(i)
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    pub fn log(&self, i: usize) -> String {
        let text = std::fs::read_to_string(&self.nodes[i].log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }

    pub fn api(&self, i: usize) -> &str {
        &self.nodes[i].api
    }

    pub fn status(&self, i: usize) -> Option<Value> {
        match get(&format!("{}/v1/status", self.api(i))) {
            (200, v) => Some(v),
            _ => None,
        }
    }

    pub fn height(&self, i: usize) -> u64 {
        self.status(i)
            .and_then(|s| s["height"].as_u64())
            .unwrap_or(0)
    }

    /// Waits until every node in `which` is at `height` or above.
    pub fn wait_height(&self, which: &[usize], height: u64, timeout: Duration) {
        let start = Instant::now();
        for &i in which {
            let left = timeout.saturating_sub(start.elapsed());
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                wait_for(&format!("node {i} at height {height}"), left, || {
                    (self.height(i) >= height).then_some(())
                })
            }))
            .is_err()
            {
                panic!(
                    "node {i} is at height {} after {timeout:?}, not {height}; its log:\n{}",
                    self.height(i),
                    self.log(i)
                );
            }
        }
    }

    /// A signed anchor of a new driver's license by the police of agency `a`.
    pub fn anchor(&mut self, a: usize) -> (SignedTransaction, CredentialDocument) {
        let issuer = &self.genesis.issuers[2 * a];
        let doc = CredentialDocument::new(
            TYPE_DRIVER_LICENSE,
            &issuer.id,
            [
                ("holder_name".to_string(), "张三".to_string()),
                ("id_number".into(), format!("3101011990{:08}", self.nonce)),
                ("class".into(), "C1".into()),
            ]
            .into_iter()
            .collect(),
        )
        .unwrap();
        let item = AnchorItem {
            commitment: doc.commitment(),
            credential_type: TYPE_DRIVER_LICENSE.into(),
            valid_until: None,
        };
        (self.sign(a, Action::Anchor(vec![item])), doc)
    }

    /// A transaction signed by the police of agency `a`.
    pub fn sign(&mut self, a: usize, action: Action) -> SignedTransaction {
        self.nonce += 1;
        let issuer = &self.genesis.issuers[2 * a];
        Transaction {
            chain: self.genesis.hash(),
            issuer: issuer.id.clone(),
            key: self.police_keys[a].public_key(),
            nonce: self.nonce,
            expires_at: 10_000,
            action,
        }
        .sign(self.police_keys[a].signing_key())
    }

    pub fn submit(&self, i: usize, tx: &SignedTransaction) -> (u16, Value) {
        post(
            &format!("{}/v1/txs", self.api(i)),
            "application/json",
            serde_json::to_string(tx).unwrap().as_bytes(),
        )
    }

    /// Waits until `tx` is committed on node `i`; returns the height.
    pub fn wait_committed(&self, i: usize, tx: &SignedTransaction, timeout: Duration) -> u64 {
        let url = format!("{}/v1/txs/{}", self.api(i), tx.id());
        wait_for(
            &format!("{} committed on node {i}", tx.id()),
            timeout,
            || {
                let (status, body) = get(&url);
                (status == 200 && body["status"] == "committed")
                    .then(|| body["height"].as_u64().unwrap())
            },
        )
    }

    pub fn block_hash(&self, i: usize, height: u64) -> Option<String> {
        match get(&format!("{}/v1/blocks/{height}", self.api(i))) {
            (200, v) => v["hash"].as_str().map(str::to_owned),
            _ => None,
        }
    }

    pub fn evidence_count(&self, i: usize) -> usize {
        get(&format!("{}/v1/evidence", self.api(i))).1["evidence"]
            .as_array()
            .map_or(0, Vec::len)
    }

    pub fn home(&self, i: usize) -> &Path {
        &self.nodes[i].home
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        // CAIRN_TEST_KEEP=1 keeps the homes and logs for a look afterwards.
        if std::env::var_os("CAIRN_TEST_KEEP").is_some() {
            let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
            eprintln!("kept {}", dir.keep().display());
        }
    }
}
