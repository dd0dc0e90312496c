//! End-to-end fault tests: real `cairn node run` processes on 127.0.0.1,
//! real RocksDB and libp2p, driven by the devnet's supervisor. Each test
//! has a short version (the default, run by CI) and a long one
//! (`CAIRN_E2E_LONG=1`). They need the `cairn` binary, which
//! `cargo nextest run --workspace` builds; `CAIRN_BIN` overrides its path.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_anchoring::{Action, AnchorItem, Commitment, SignedTransaction, Transaction};
use cairn_consensus::{Height, Round, ValidatorSet};
use cairn_devnet::TYPE_DRIVER_LICENSE;
use cairn_devnet::client::Api;
use cairn_devnet::layout::{Layout, free_port};
use cairn_devnet::supervisor::Supervisor;
use cairn_genesis::{GenesisDocument, Hash, KeyPair};

fn long() -> bool {
    std::env::var_os("CAIRN_E2E_LONG").is_some()
}

fn cairn_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("CAIRN_BIN") {
        return path.into();
    }
    // target/<profile>/deps/faults-… → target/<profile>/cairn
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().unwrap().parent().unwrap().join("cairn");
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build -p cairn-node` or set CAIRN_BIN",
        bin.display()
    );
    bin
}

struct Net {
    _dir: tempfile::TempDir,
    layout: Layout,
    sup: Supervisor,
    genesis: GenesisDocument,
    police: Vec<KeyPair>,
}

const T: Duration = Duration::from_secs(60);

impl Drop for Net {
    fn drop(&mut self) {
        // CAIRN_TEST_KEEP=1 keeps the homes and logs for a look afterwards.
        if std::env::var_os("CAIRN_TEST_KEEP").is_some() {
            let dir = std::mem::replace(&mut self._dir, tempfile::tempdir().unwrap());
            eprintln!("kept {}", dir.keep().display());
        }
    }
}

impl Net {
    /// A 4-validator devnet with quick idle blocks, started.
    fn start() -> Net {
        Net::start_with(&[])
    }

    /// … whose validators also accept the observer peer ids `observers`.
    fn start_with(observers: &[String]) -> Net {
        let mut net = Net::create_with(observers);
        net.sup.start_all().unwrap();
        net.wait_height(&[0, 1, 2, 3], 2, T);
        net
    }

    /// The devnet, not started.
    fn create_with(observers: &[String]) -> Net {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path().join("devnet"));
        layout.create(&cairn_bin(), 4).unwrap();
        for i in 0..4 {
            let path = layout.home(i).join("config.toml");
            let text = std::fs::read_to_string(&path).unwrap();
            let allowed: Vec<String> = observers.iter().map(|o| format!("{o:?}")).collect();
            let text = text
                .replace(
                    "idle_block_interval_ms = 1000",
                    "idle_block_interval_ms = 100",
                )
                .replace(
                    "[network]\n",
                    &format!("[network]\nobservers = [{}]\n", allowed.join(", ")),
                );
            std::fs::write(&path, text).unwrap();
        }
        let genesis = GenesisDocument::load_valid(&layout.genesis()).unwrap();
        let police = (0..4)
            .map(|i| KeyPair::load(&layout.police_key(i)).unwrap())
            .collect();
        let sup = Supervisor::new(layout.clone(), cairn_bin()).unwrap();
        Net {
            _dir: dir,
            layout,
            sup,
            genesis,
            police,
        }
    }

    fn api(&self, i: usize) -> Api {
        self.sup.api(i)
    }

    fn height(&self, i: usize) -> u64 {
        self.api(i).height().unwrap_or(0)
    }

    fn wait_height(&self, which: &[usize], height: u64, timeout: Duration) {
        let start = Instant::now();
        for &i in which {
            while self.height(i) < height {
                assert!(
                    start.elapsed() < timeout,
                    "node {i} is at {} after {timeout:?}, not {height}; its log:\n{}",
                    self.height(i),
                    self.sup.log_tail(i, 40)
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    fn block_hash(&self, i: usize, h: u64) -> Option<String> {
        match self.api(i).get(&format!("/v1/blocks/{h}")) {
            Ok((200, v)) => v["hash"].as_str().map(str::to_owned),
            _ => None,
        }
    }

    /// Every node in `which` holds the same block at every height they all have.
    fn same_blocks(&self, which: &[usize]) -> u64 {
        let top = which.iter().map(|&i| self.height(i)).min().unwrap();
        for h in 1..=top {
            let first = self.block_hash(which[0], h).unwrap();
            for &i in &which[1..] {
                assert_eq!(
                    self.block_hash(i, h).unwrap(),
                    first,
                    "node {i} differs at height {h}"
                );
            }
        }
        top
    }

    fn anchor(&self, a: usize, nonce: u64) -> (SignedTransaction, Commitment) {
        let commitment = Commitment(Hash::domain("cairn e2e", &nonce.to_be_bytes()));
        let tx = Transaction {
            chain: self.genesis.hash(),
            issuer: self.genesis.issuers[2 * a].id.clone(),
            key: self.police[a].public_key(),
            nonce,
            expires_at: 50_000,
            action: Action::Anchor(vec![AnchorItem {
                commitment,
                credential_type: TYPE_DRIVER_LICENSE.into(),
                valid_until: None,
            }]),
        }
        .sign(self.police[a].signing_key());
        (tx, commitment)
    }

    fn evidence(&self, i: usize) -> Vec<serde_json::Value> {
        self.api(i)
            .get_ok("/v1/evidence")
            .map(|v| v["evidence"].as_array().cloned().unwrap_or_default())
            .unwrap_or_default()
    }
}

fn committed(api: &Api, tx: &SignedTransaction) -> bool {
    matches!(api.get(&format!("/v1/txs/{}", tx.id())), Ok((200, v)) if v["status"] == "committed")
}

#[test]
fn anchoring_survives_validators_killed_and_restarted_at_random() {
    let net = Net::start();
    let kills = if long() { 24 } else { 4 };
    let net = Arc::new(Mutex::new(net));
    let stop = Arc::new(AtomicBool::new(false));
    let (apis, txs): (Vec<Api>, Vec<(SignedTransaction, Commitment)>) = {
        let n = net.lock().unwrap();
        let apis = (0..4).map(|i| n.api(i)).collect();
        let txs = (0..2_000u64)
            .map(|k| n.anchor((k % 4) as usize, k + 1))
            .collect();
        (apis, txs)
    };
    // A client that submits steadily to whichever node answers, and keeps
    // the transactions some node acknowledged as committed.
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let submitted = Arc::new(Mutex::new(Vec::new()));
    let client = {
        let (stop, acknowledged, submitted) =
            (stop.clone(), acknowledged.clone(), submitted.clone());
        std::thread::spawn(move || {
            let mut pending: Vec<(SignedTransaction, Commitment)> = Vec::new();
            let mut checked = Instant::now();
            for (k, (tx, c)) in txs.into_iter().enumerate() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let api = &apis[k % 4];
                if matches!(api.submit(&tx), Ok((200 | 202, _))) {
                    submitted.lock().unwrap().push((tx.clone(), c));
                    pending.push((tx, c));
                }
                if checked.elapsed() > Duration::from_millis(500) {
                    checked = Instant::now();
                    pending.retain(|(tx, c)| {
                        let done = apis.iter().any(|a| committed(a, tx));
                        if done {
                            acknowledged.lock().unwrap().push(*c);
                        }
                        !done
                    });
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut random = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    // Blocks each start re-executed, read while its process lives.
    let replayed_at_start = |api: &Api| {
        api.get_ok("/v1/status")
            .ok()
            .and_then(|status| status["state"]["replayed_at_start"].as_u64())
    };
    let mut replayed = 0;
    for _ in 0..kills {
        let victim = random(4) as usize;
        std::thread::sleep(Duration::from_millis(200 + random(1_500)));
        replayed += replayed_at_start(&net.lock().unwrap().api(victim)).unwrap_or(0);
        net.lock().unwrap().sup.kill(victim).unwrap();
        std::thread::sleep(Duration::from_millis(200 + random(1_500)));
        net.lock().unwrap().sup.start(victim).unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    client.join().unwrap();

    let net = net.lock().unwrap();
    // Every submission accepted somewhere is sent again (idempotent) and commits.
    let submitted = submitted.lock().unwrap().clone();
    for (tx, _) in &submitted {
        let _ = net.api(0).submit(tx);
    }
    let top = net.height(0);
    net.wait_height(&[0, 1, 2, 3], top + 3, T);
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        !acknowledged.is_empty(),
        "nothing was committed under the kills"
    );
    for i in 0..4 {
        for c in &acknowledged {
            let (status, _) = net.api(i).get(&format!("/v1/credentials/{c}")).unwrap();
            assert_eq!(status, 200, "node {i} lost acknowledged commitment {c}");
        }
    }
    let height = net.same_blocks(&[0, 1, 2, 3]);
    for i in 0..4 {
        assert!(net.evidence(i).is_empty(), "no honest node double-signs");
    }
    // The state tree's writes skip RocksDB's log: the killed nodes came
    // back with blocks above their trees, and re-executed them.
    for i in 0..4 {
        replayed += replayed_at_start(&net.api(i)).unwrap();
    }
    assert!(replayed > 0, "no killed node had blocks to replay");
    eprintln!(
        "kills {kills}, acknowledged {} of {} submitted, height {height}, blocks replayed at the restarts seen {replayed}",
        acknowledged.len(),
        submitted.len()
    );
}

#[test]
fn the_next_height_finalizes_when_the_proposer_is_killed() {
    let mut net = Net::start();
    let set = ValidatorSet::from_genesis(&net.genesis).unwrap();
    let h = net.height(0);
    let proposer_key = set.validators()[set.proposer(Height(h + 1), Round(0))].public_key;
    let victim = net
        .genesis
        .validators
        .iter()
        .position(|v| v.public_key == proposer_key)
        .unwrap();
    net.sup.kill(victim).unwrap();
    let alive: Vec<usize> = (0..4).filter(|&i| i != victim).collect();
    let after = net.height(alive[0]);
    // Enough heights that the dead validator's turn comes again: those
    // blocks are decided in a later round.
    net.wait_height(&alive, after + 6, T);
    let mut later_rounds = 0;
    // Heights that began after the kill (the next one may have been proposed before it).
    for height in after + 2..=after + 6 {
        if set.validators()[set.proposer(Height(height), Round(0))].public_key == proposer_key {
            let block = net
                .api(alive[0])
                .get_ok(&format!("/v1/blocks/{height}"))
                .unwrap();
            assert!(
                block["certificate"]["round"].as_u64().unwrap() >= 1,
                "{block}"
            );
            later_rounds += 1;
        }
    }
    assert!(later_rounds >= 1);
    net.same_blocks(&alive);
}

#[test]
fn a_two_two_partition_halts_and_healing_resumes() {
    let mut net = Net::start();
    net.sup.partition(&[vec![0, 1], vec![2, 3]]).unwrap();
    std::thread::sleep(Duration::from_millis(1_000));
    let during: Vec<u64> = (0..4).map(|i| net.height(i)).collect();
    std::thread::sleep(Duration::from_secs(if long() { 20 } else { 4 }));
    let after: Vec<u64> = (0..4).map(|i| net.height(i)).collect();
    assert_eq!(during, after, "no side of a 2/2 partition has a quorum");
    net.sup.heal().unwrap();
    let top = after.iter().copied().max().unwrap();
    net.wait_height(&[0, 1, 2, 3], top + 3, T);
    net.same_blocks(&[0, 1, 2, 3]);
}

#[test]
fn a_validator_down_for_many_blocks_catches_up() {
    let mut net = Net::start();
    net.sup.kill(3).unwrap();
    let down_at = net.height(0);
    let missed = if long() { 150 } else { 40 };
    net.wait_height(&[0, 1, 2], down_at + missed, Duration::from_secs(180));
    net.sup.start(3).unwrap();
    let target = net.height(0);
    net.wait_height(&[3], target, T);
    // And it follows from there on.
    net.wait_height(&[3], target + 3, T);
    net.same_blocks(&[0, 1, 2, 3]);
    // Its metrics count the blocks it caught up on, each executed (or
    // built) before it was committed.
    let metrics = net.api(3).metrics().unwrap();
    let steps = cairn_devnet::client::block_steps(&metrics);
    let Some([(built, _), (executed, _), (committed, writing)]) = steps else {
        panic!("no block steps in {metrics:?}");
    };
    assert!(committed >= missed as f64, "{metrics:?}");
    assert!(
        built + executed >= committed && writing > 0.0,
        "{metrics:?}"
    );
}

#[test]
fn a_paused_validator_resumes_and_rejoins() {
    let mut net = Net::start();
    net.sup.pause(2).unwrap();
    let h = net.height(0);
    net.wait_height(&[0, 1, 3], h + 10, T);
    net.sup.resume(2).unwrap();
    let target = net.height(0);
    net.wait_height(&[2], target + 2, T);
    net.same_blocks(&[0, 1, 2, 3]);
}

#[test]
fn one_key_in_two_processes_leaves_evidence_and_no_fork() {
    // A second node with validator 3's consensus key (and its own, fresh
    // sign state), on its own network identity so that it hears the gossip
    // and stays in step: both processes then sign at every step.
    let identity = KeyPair::generate();
    let mut net = Net::create_with(&[identity.peer_id().to_string()]);
    let twin = net.layout.root().join("twin");
    let out = Command::new(cairn_bin())
        .args(["node", "init", "--home"])
        .arg(&twin)
        .arg("--genesis")
        .arg(net.layout.genesis())
        .arg("--key")
        .arg(net.layout.key("validator3"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest = net.layout.manifest().unwrap();
    let peers: Vec<String> = manifest.nodes[..3]
        .iter()
        .map(|n| format!("\"/ip4/127.0.0.1/tcp/{}/p2p/{}\"", n.p2p_port, n.peer_id))
        .collect();
    identity.write_new(&twin.join("identity.key")).unwrap();
    let twin_api_port = free_port().unwrap();
    std::fs::write(
        twin.join("config.toml"),
        format!(
            "[network]\nidentity_key = \"identity.key\"\nlisten = \"/ip4/127.0.0.1/tcp/{}\"\npeers = [{}]\n\n[api]\nlisten = \"127.0.0.1:{}\"\n\n[consensus]\nidle_block_interval_ms = 100\n",
            free_port().unwrap(),
            peers.join(", "),
            twin_api_port
        ),
    )
    .unwrap();
    let log = std::fs::File::create(net.layout.root().join("twin.log")).unwrap();
    let mut child = Command::new(cairn_bin())
        .args(["node", "run", "--home"])
        .arg(&twin)
        .stderr(log)
        .spawn()
        .unwrap();
    // Both start together, so that both take part from the first height.
    net.sup.start_all().unwrap();
    let twin_api = Api::new(format!("http://127.0.0.1:{twin_api_port}"));
    // Pending transactions make both holders of the key build their own
    // block the moment they enter a height it proposes at, instead of one
    // waiting out the idle interval and adopting the other's proposal: the
    // two proposals (and the prevotes for them) then conflict.
    let start = Instant::now();
    let mut nonce = 0;
    let found = loop {
        for i in 0..3 {
            nonce += 1;
            let _ = net.api(i).submit(&net.anchor(i, nonce).0);
        }
        let found: Vec<serde_json::Value> = (0..3).flat_map(|i| net.evidence(i)).collect();
        if !found.is_empty() {
            break found;
        }
        if start.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            panic!(
                "no evidence after 90 s; twin log:\n{}",
                std::fs::read_to_string(net.layout.root().join("twin.log")).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    // The twin ran on its own network identity, not validator 3's.
    let status = twin_api.get_ok("/v1/status").unwrap();
    assert_eq!(status["peer_id"], identity.peer_id().to_string());
    let _ = child.kill();
    let _ = child.wait();
    let e = &found[0];
    assert_eq!(
        e["validator"],
        net.genesis.validators[3].public_key.to_string(),
        "{e}"
    );
    let signatures: BTreeSet<String> = match e["kind"].as_str().unwrap() {
        "conflicting_votes" => e["votes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["signature"].as_str().unwrap().to_owned())
            .collect(),
        _ => e["signatures"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_owned())
            .collect(),
    };
    assert_eq!(signatures.len(), 2, "both signed messages are kept: {e}");
    let top = net.height(0);
    net.wait_height(&[0, 1, 2, 3], top + 2, T);
    net.same_blocks(&[0, 1, 2, 3]);
}
