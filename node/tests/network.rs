//! Real `cairn node run` processes on 127.0.0.1: consensus, transactions,
//! bundles, restarts, catching up, the allow-list and the API's errors.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::time::Duration;

use cairn_anchoring::{
    Action, CheckName, Commitment, Presentation, ProofBundle, RevocationReason, Trust, verify,
};
use cairn_genesis::{Hash, Timestamp};
use common::*;
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(60);

/// All nodes in `which` hold the same block hash at every height up to `upto`.
fn same_blocks(net: &TestNet, which: &[usize], upto: u64) {
    for h in 1..=upto {
        let first = net.block_hash(which[0], h).unwrap();
        for &i in &which[1..] {
            assert_eq!(
                net.block_hash(i, h).as_deref(),
                Some(first.as_str()),
                "node {i} differs at height {h}"
            );
        }
    }
}

#[test]
fn four_validators_finalize_a_transaction_everywhere_and_serve_verifiable_bundles() {
    let mut net = TestNet::new(4, 0);
    net.start_all();
    net.wait_height(&[0, 1, 2, 3], 3, T);

    let (tx, doc) = net.anchor(1);
    let (status, body) = net.submit(0, &tx);
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["hash"], tx.id().to_string());
    // Submitting again is idempotent.
    let (status, body) = net.submit(0, &tx);
    assert!(status == 200 || status == 202, "{body}");

    let heights: Vec<u64> = (0..4).map(|i| net.wait_committed(i, &tx, T)).collect();
    assert!(heights.iter().all(|h| *h == heights[0]), "{heights:?}");
    let top = (0..4).map(|i| net.height(i)).min().unwrap();
    same_blocks(&net, &[0, 1, 2, 3], top);

    // The record and a bundle from a node other than the one submitted to.
    let commitment = doc.commitment();
    let (status, record) = get(&format!("{}/v1/credentials/{commitment}", net.api(3)));
    assert_eq!(status, 200, "{record}");
    assert_eq!(record["status"]["status"], "active");
    assert_eq!(record["events"][0]["height"], heights[0]);

    let (status, bytes) = get_bytes(&format!(
        "{}/v1/credentials/{commitment}/bundle",
        net.api(2)
    ));
    assert_eq!(status, 200);
    let bundle = ProofBundle::decode(&bytes).unwrap();
    let presentation = Presentation::disclose(&doc, &["class"]).unwrap();
    let trust = Trust::from_genesis(&net.genesis).unwrap();
    let verdict = verify(
        &presentation,
        &bundle,
        &trust,
        Timestamp::now(),
        Some(600_000),
    );
    assert!(verdict.valid, "{verdict:?}");
    assert!(verdict.signers.len() >= 3, "{:?}", verdict.signers);

    // Revoke it; the next bundle says so and no longer verifies as valid.
    let revoke = net.sign(
        1,
        Action::Revoke {
            commitment,
            reason: RevocationReason::RevokedAsPenalty,
        },
    );
    assert_eq!(net.submit(3, &revoke).0, 202);
    net.wait_committed(0, &revoke, T);
    let (_, bytes) = get_bytes(&format!(
        "{}/v1/credentials/{commitment}/bundle",
        net.api(0)
    ));
    let bundle = ProofBundle::decode(&bytes).unwrap();
    let verdict = verify(
        &presentation,
        &bundle,
        &trust,
        Timestamp::now(),
        Some(600_000),
    );
    assert!(!verdict.valid);
    assert!(
        !verdict.check(CheckName::Status).unwrap().passed,
        "{verdict:?}"
    );

    // The regulator's trace: both events, each with a checked proof.
    let (status, trace) = get(&format!("{}/v1/credentials/{commitment}/trace", net.api(1)));
    assert_eq!(status, 200, "{trace}");
    let events = trace["events"].as_array().unwrap();
    assert_eq!(events.len(), 2, "{trace}");
    for e in events {
        assert_eq!(e["proof"]["included"], true, "{e}");
        assert_eq!(e["proof"]["finalized"], true, "{e}");
        // The block its proof names is the block at the event's height.
        let height = e["height"].as_u64().unwrap();
        assert_eq!(
            e["proof"]["block_hash"].as_str(),
            net.block_hash(1, height).as_deref(),
            "{e}"
        );
    }
    // The metrics say the same.
    let metrics = agent_text(&format!("{}/metrics", net.api(0)));
    assert!(metrics.contains("cairn_height "), "{metrics}");
    assert!(metrics.contains("cairn_transactions_total 2"), "{metrics}");
    // Every block it committed, it built or executed first, and writing
    // them took time.
    let samples = cairn_devnet::client::parse_metrics(&metrics).unwrap();
    let [(built, _), (executed, _), (committed, writing)] =
        cairn_devnet::client::block_steps(&samples).expect(&metrics);
    assert!(
        committed >= 2.0 && built + executed >= committed,
        "{metrics}"
    );
    assert!(writing > 0.0, "{metrics}");
    // A validator syncs the database's log for what it signs and commits,
    // three or four times a height that decides in its first round, not
    // also for every proposal and vote it receives (17 to 20 syncs by
    // height 6 here, against 49 when each input was synced).
    let (syncs, height) = (samples["cairn_log_syncs_total"], samples["cairn_height"]);
    assert!(
        syncs < 5.0 * height + 5.0,
        "{syncs} syncs of the log at height {height}"
    );
    for i in 0..4 {
        assert_eq!(net.evidence_count(i), 0);
    }
}

fn agent_text(url: &str) -> String {
    ureq::get(url)
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap()
}

#[test]
fn each_api_error_has_its_code_and_changes_nothing() {
    let mut net = TestNet::new(4, 0);
    net.start_all();
    net.wait_height(&[0], 2, T);
    let api = net.api(0).to_owned();
    let txs = format!("{api}/v1/txs");
    let code = |(status, body): (u16, Value)| {
        (
            status,
            body["error"]["code"].as_str().unwrap_or("").to_owned(),
        )
    };

    // Malformed JSON.
    assert_eq!(
        code(post(&txs, "application/json", b"{not json")),
        (400, "malformed_json".into())
    );
    // Malformed binary.
    assert_eq!(
        code(post(&txs, "application/octet-stream", &[1, 2, 3])).0,
        400
    );
    // A bad signature.
    let (mut tx, _) = net.anchor(0);
    tx.signature[0] ^= 1;
    assert_eq!(code(net.submit(0, &tx)), (400, "bad_signature".into()));
    // Another chain.
    let (tx, _) = net.anchor(0);
    let mut other = tx.tx.clone();
    other.chain = Hash([9; 32]);
    let other = other.sign(net.police_keys[0].signing_key());
    assert_eq!(code(net.submit(0, &other)), (400, "wrong_chain".into()));
    // An unknown issuer.
    let mut unknown = tx.tx.clone();
    unknown.issuer = "91310000MA1FL0000X".into();
    let unknown = unknown.sign(net.police_keys[0].signing_key());
    assert_eq!(
        code(net.submit(0, &unknown)),
        (422, "unknown_issuer".into())
    );
    // An illegal transition: reinstating a credential that was never suspended (or anchored).
    let reinstate = net.sign(
        0,
        Action::Reinstate {
            commitment: Commitment(Hash([7; 32])),
        },
    );
    let (status, body) = net.submit(0, &reinstate);
    assert_eq!(status, 422, "{body}");
    // An oversized body.
    let big = vec![b' '; 2 * 1024 * 1024];
    assert_eq!(
        code(post(&txs, "application/json", &big)),
        (413, "body_too_large".into())
    );
    // Lookups.
    assert_eq!(
        code(get(&format!("{api}/v1/txs/zz"))),
        (400, "invalid_transaction_hash".into())
    );
    assert_eq!(
        code(get(&format!("{api}/v1/txs/{}", Hash([3; 32])))),
        (404, "not_found".into())
    );
    assert_eq!(
        code(get(&format!("{api}/v1/blocks/abc"))),
        (400, "invalid_height".into())
    );
    assert_eq!(
        code(get(&format!("{api}/v1/blocks/99999999"))),
        (404, "not_found".into())
    );
    assert_eq!(
        code(get(&format!("{api}/v1/credentials/{}", Hash([5; 32])))),
        (404, "not_found".into())
    );
    assert_eq!(
        code(get(&format!("{api}/v1/credentials/xyz/bundle"))),
        (400, "invalid_commitment".into())
    );
    assert_eq!(
        code(get(&format!("{api}/v1/nothing"))),
        (404, "not_found".into())
    );

    // Nothing changed: no transaction was committed, none is pending.
    std::thread::sleep(Duration::from_millis(500));
    let status = net.status(0).unwrap();
    assert_eq!(status["mempool"]["transactions"], 0, "{status}");
    let metrics = agent_text(&format!("{api}/metrics"));
    assert!(metrics.contains("cairn_transactions_total 0"), "{metrics}");
    // The good twin of all those is still accepted.
    assert_eq!(net.submit(0, &tx).0, 202);
    net.wait_committed(0, &tx, T);

    // The catalog.
    let (status, issuers) = get(&format!("{api}/v1/issuers"));
    assert_eq!(status, 200);
    assert_eq!(
        issuers["issuers"].as_array().unwrap().len(),
        net.genesis.issuers.len()
    );
    let (_, types) = get(&format!("{api}/v1/types"));
    assert_eq!(types["types"].as_array().unwrap().len(), 2);
}

#[test]
fn a_batch_submission_answers_each_transaction_on_its_own() {
    let mut net = TestNet::new(4, 0);
    net.start_all();
    net.wait_height(&[0], 2, T);
    let batch_url = format!("{}/v1/txs/batch", net.api(0));
    let (good, _) = net.anchor(0);
    let (second, _) = net.anchor(1);
    let (mut forged, _) = net.anchor(0);
    forged.signature[5] ^= 1;
    let (another, _) = net.anchor(0);
    let mut foreign = another.tx.clone();
    foreign.chain = Hash([9; 32]);
    let foreign = foreign.sign(net.police_keys[0].signing_key());
    let txs = vec![good.clone(), forged, second.clone(), foreign, good.clone()];

    // JSON and borsh bodies say the same.
    let (status, body) = post(
        &batch_url,
        "application/json",
        serde_json::to_string(&txs).unwrap().as_bytes(),
    );
    assert_eq!(status, 200, "{body}");
    let results = body["results"].as_array().unwrap();
    let codes: Vec<&str> = results
        .iter()
        .map(|r| {
            r["status"]
                .as_str()
                .or(r["error"]["code"].as_str())
                .unwrap()
        })
        .collect();
    assert_eq!(
        codes,
        [
            "pending",
            "bad_signature",
            "pending",
            "wrong_chain",
            "pending"
        ]
    );
    assert_eq!(results[0]["hash"], json!(good.id()));
    let (status, body) = post(
        &batch_url,
        "application/octet-stream",
        &borsh::to_vec(&txs).unwrap(),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"][1]["error"]["code"], "bad_signature");
    assert_eq!(body["results"][2]["status"], "pending");

    // Whole-request refusals.
    let code = |(status, body): (u16, Value)| (status, body["error"]["code"].clone());
    assert_eq!(
        code(post(&batch_url, "application/json", b"[]")),
        (400, json!("batch_size"))
    );
    assert_eq!(
        code(post(&batch_url, "application/json", b"{}")),
        (400, json!("malformed_json"))
    );
    assert_eq!(
        code(post(&batch_url, "application/octet-stream", &[9, 9])),
        (400, json!("malformed_batch"))
    );

    // Only the two good ones are committed, once each.
    net.wait_committed(0, &good, T);
    net.wait_committed(0, &second, T);
    std::thread::sleep(Duration::from_millis(300));
    let status = net.status(0).unwrap();
    assert_eq!(status["mempool"]["transactions"], 0, "{status}");
    let metrics = agent_text(&format!("{}/metrics", net.api(0)));
    assert!(metrics.contains("cairn_transactions_total 2"), "{metrics}");
}

/// The blocks node `i` re-executed at its last start (`state.replayed_at_start`).
fn replayed_at_start(net: &TestNet, i: usize) -> u64 {
    let status = net.status(i).unwrap();
    status["state"]["replayed_at_start"]
        .as_u64()
        .unwrap_or_else(|| panic!("no state.replayed_at_start in {status}"))
}

#[test]
fn restarted_validators_continue_without_conflicting_votes() {
    let mut net = TestNet::new(4, 0);
    net.start_all();
    net.wait_height(&[0, 1, 2, 3], 3, T);
    for round in 0..3 {
        let victim = round % 4;
        // kill -9 in the middle of things, then a clean stop.
        net.kill(victim);
        let h = net.height((victim + 1) % 4);
        net.wait_height(&[(victim + 1) % 4], h + 3, T);
        net.start(victim);
        let h = net.height((victim + 1) % 4);
        net.wait_height(&[victim], h + 2, T);
        // The blocks it committed since it started were not on disk in
        // the state tree (whose writes skip RocksDB's log) when it was
        // killed: it re-executed them.
        assert!(replayed_at_start(&net, victim) > 0);
    }
    net.stop(1);
    let h = net.height(0);
    net.wait_height(&[0], h + 2, T);
    net.start(1);
    wait_for("node 1's API", T, || net.status(1));
    // A clean stop writes the state tree out: nothing to replay.
    assert_eq!(replayed_at_start(&net, 1), 0);
    let (tx, _) = net.anchor(2);
    assert_eq!(net.submit(1, &tx).0, 202);
    for i in 0..4 {
        net.wait_committed(i, &tx, T);
    }
    let top = (0..4).map(|i| net.height(i)).min().unwrap();
    same_blocks(&net, &[0, 1, 2, 3], top);
    // Every node, restarted or not, pruned its state as it went: it keeps
    // the last versions only, genesis long gone, and restarted on them.
    for i in 0..4 {
        let status = net.status(i).unwrap();
        let (height, state) = (status["height"].as_u64().unwrap(), &status["state"]);
        assert!(height > 2 * KEEP_STATE_VERSIONS, "{status}");
        assert_eq!(state["kept_versions"], KEEP_STATE_VERSIONS, "{status}");
        assert_eq!(
            state["layout"],
            cairn_anchoring::STATE_KEY_LAYOUT,
            "{status}"
        );
        assert_eq!(
            state["oldest_version"],
            height + 1 - KEEP_STATE_VERSIONS,
            "{status}"
        );
        let metrics = agent_text(&format!("{}/metrics", net.api(i)));
        let oldest: u64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix("cairn_state_oldest_version "))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no oldest state version in\n{metrics}"));
        assert!(oldest > KEEP_STATE_VERSIONS, "{metrics}");
    }
    for i in 0..4 {
        assert_eq!(
            net.evidence_count(i),
            0,
            "node {i} recorded evidence:\n{}",
            net.log(i)
        );
    }
    for i in 0..4 {
        net.stop(i);
    }
}

/// A metric of node `i`'s `/metrics`.
fn metric(net: &TestNet, i: usize, name: &str) -> f64 {
    let text = agent_text(&format!("{}/metrics", net.api(i)));
    let samples = cairn_devnet::client::parse_metrics(&text).unwrap();
    *samples
        .get(name)
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

/// Stops validator 2 of the three running (0, 1 and 2 of four): two of
/// four cannot finalize, so the chain stays where it is. Its height once
/// validators 0 and 1 agree on it for a second.
fn stall(net: &mut TestNet) -> u64 {
    net.stop(2);
    wait_for("the chain to stop", T, || {
        let h = net.height(0);
        std::thread::sleep(Duration::from_secs(1));
        (net.height(0) == h && net.height(1) == h).then_some(h)
    })
}

/// A node far behind fetches its blocks in runs and syncs the database's
/// log once a run, not for each block.
#[test]
fn a_run_of_synced_blocks_syncs_the_log_once() {
    let mut net = TestNet::new(4, 1);
    for i in 0..3 {
        net.start(i);
    }
    net.wait_height(&[0, 1, 2], 40, Duration::from_secs(120));
    let top = stall(&mut net);
    net.start(4);
    net.wait_height(&[4], top, T);
    let synced = metric(&net, 4, "cairn_synced_blocks_total");
    let syncs = metric(&net, 4, "cairn_log_syncs_total");
    assert!(synced >= 40.0, "{synced} blocks synced");
    // A sync each would be at least as many; three a block, as before the
    // runs, three times as many.
    assert!(syncs < synced / 2.0, "{syncs} syncs for {synced} blocks");
    assert!(syncs >= 1.0, "no sync at all: {syncs}");
    for i in [0, 1, 4] {
        net.stop(i);
    }
}

/// Rewrites the lines of node `i`'s config.toml that start with one of
/// `keys` (each given with its new value).
fn reconfigure(net: &TestNet, i: usize, lines: &[(&str, String)]) {
    let path = net.home(i).join("config.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut changed = 0;
    let text: Vec<String> = text
        .lines()
        .map(
            |line| match lines.iter().find(|(k, _)| line.starts_with(k)) {
                Some((k, v)) => {
                    changed += 1;
                    format!("{k} = {v}")
                }
                None => line.to_string(),
            },
        )
        .collect();
    assert_eq!(changed, lines.len(), "{}", text.join("\n"));
    std::fs::write(&path, text.join("\n") + "\n").unwrap();
}

/// A node that starts behind asks its first peer where the chain is,
/// without waiting for a consensus message. Here no validator runs, so
/// none comes: a fresh observer's one peer is another observer that holds
/// the chain, and the fresh one would otherwise wait until it has been
/// quiet for two of its (here twenty-minute) idle intervals.
#[test]
fn a_starting_node_asks_its_first_peer_where_the_chain_is() {
    let mut net = TestNet::new(4, 2);
    for i in [0, 1, 2, 4] {
        net.start(i);
    }
    net.wait_height(&[0, 1, 2, 4], 20, T);
    let top = stall(&mut net);
    net.wait_height(&[4], top, T);
    for i in [0, 1, 4] {
        net.stop(i);
    }
    // Observer 5 knows only observer 4, which lets it in.
    let (archive, fresh) = (&net.nodes[4], &net.nodes[5]);
    let archive_addr = format!(
        "[\"/ip4/127.0.0.1/tcp/{}/p2p/{}\"]",
        archive.p2p_port,
        archive.key.peer_id()
    );
    let fresh_id = format!("[\"{}\"]", fresh.key.peer_id());
    // Nor does observer 4 send the votes it replays from its log again.
    reconfigure(
        &net,
        4,
        &[
            ("observers", fresh_id),
            ("rebroadcast_interval_ms", "1200000".into()),
        ],
    );
    reconfigure(
        &net,
        5,
        &[
            ("peers", archive_addr),
            ("idle_block_interval_ms", "1200000".into()),
        ],
    );
    net.start(4);
    // Its first rebroadcast, at its start, goes before observer 5 is up.
    wait_for("observer 4's API", T, || net.status(4));
    net.start(5);
    net.wait_height(&[5], top, Duration::from_secs(30));
    same_blocks(&net, &[4, 5], top);
    for i in [4, 5] {
        net.stop(i);
    }
}

#[test]
fn a_late_validator_and_an_observer_catch_up_and_follow() {
    let mut net = TestNet::new(4, 1);
    for i in 0..3 {
        net.start(i);
    }
    net.wait_height(&[0, 1, 2], 50, Duration::from_secs(120));
    net.start(3);
    net.start(4);
    let target = net.height(0);
    net.wait_height(&[3, 4], target, T);
    // It rejoined consensus: the network now finalizes even with another validator down.
    net.kill(0);
    let h = net.height(1);
    net.wait_height(&[1, 2, 3, 4], h + 3, T);
    let status = net.status(4).unwrap();
    assert_eq!(status["role"], "observer");
    let top = (1..5).map(|i| net.height(i)).min().unwrap();
    same_blocks(&net, &[1, 2, 3, 4], top);
    // The observer serves what it followed.
    let (tx, doc) = net.anchor(3);
    assert_eq!(net.submit(4, &tx).0, 202, "an observer relays submissions");
    net.wait_committed(4, &tx, T);
    let (status, _) = get(&format!(
        "{}/v1/credentials/{}",
        net.api(4),
        doc.commitment()
    ));
    assert_eq!(status, 200);
}

#[test]
fn peers_outside_the_allow_list_are_refused() {
    use futures::StreamExt;
    use libp2p::swarm::SwarmEvent;

    let mut net = TestNet::new(4, 0);
    // Only node 0 runs; the 3rd validator's key is allowed, a stranger's is not.
    net.start(0);
    wait_for("node 0's API", T, || net.status(0));
    let target: libp2p::Multiaddr = format!("/ip4/127.0.0.1/tcp/{}", net.nodes[0].p2p_port)
        .parse()
        .unwrap();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dial = |seed: [u8; 32]| {
        let target = target.clone();
        runtime.block_on(async move {
            let mut seed = seed;
            let identity = libp2p::identity::Keypair::ed25519_from_bytes(&mut seed).unwrap();
            let mut swarm = libp2p::SwarmBuilder::with_existing_identity(identity)
                .with_tokio()
                .with_tcp(
                    libp2p::tcp::Config::default(),
                    libp2p::noise::Config::new,
                    libp2p::yamux::Config::default,
                )
                .unwrap()
                .with_behaviour(|_| libp2p::swarm::dummy::Behaviour)
                .unwrap()
                .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
                .build();
            swarm.dial(target).unwrap();
            // Connected for 2 s without being closed = admitted.
            let deadline = tokio::time::sleep(Duration::from_secs(2));
            tokio::pin!(deadline);
            let mut connected = false;
            loop {
                tokio::select! {
                    _ = &mut deadline => return connected,
                    event = swarm.select_next_some() => match event {
                        SwarmEvent::ConnectionEstablished { .. } => connected = true,
                        SwarmEvent::ConnectionClosed { .. } | SwarmEvent::OutgoingConnectionError { .. } => return false,
                        _ => {}
                    }
                }
            }
        })
    };
    let member = net.nodes[2].key.signing_key().to_bytes();
    assert!(dial(member), "a genesis validator's peer id is admitted");
    assert!(!dial([42; 32]), "a stranger's peer id is refused");
}
