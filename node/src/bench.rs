//! The machine's own limits, measured the way the node uses the machine:
//! ed25519 verification (one at a time and in batches, with dalek's checks
//! and with Cairn's own rule), blake3 over 64-byte
//! inputs, state-tree inserts into RocksDB, and synced RocksDB batch
//! writes. `cairn bench limits` prints them; every other figure in
//! BENCHMARKS.md is read against these.
//!
//! Each figure is the median of several runs with their spread, each run
//! long enough to dwarf the clock's resolution. Nothing here asserts on time.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use cairn_anchoring::{
    Action, AnchorItem, AuthenticatedState, BlockHeader, Commitment, SignedTransaction, StateKey,
    Transaction,
};
use cairn_consensus::{
    CommitCertificate, CommitSignature, Height, Round, Signature as ConsensusSignature, Vote,
    VoteKind,
};
use cairn_genesis::signature::{self, SignatureItem};
use cairn_genesis::{GenesisDocument, Hash, KeyPair, Timestamp};
use ed25519_dalek::{Signer, Verifier};

use crate::NodeError;
use crate::chain::Chain;
use crate::store::Store;

/// One measured figure: a per-operation time with its spread.
#[derive(Clone, Debug)]
pub struct Figure {
    /// What was measured.
    pub name: String,
    /// Median time per operation, in microseconds.
    pub median_us: f64,
    /// Fastest run.
    pub min_us: f64,
    /// Slowest run.
    pub max_us: f64,
}

impl Figure {
    /// Operations per second at the median.
    pub fn rate(&self) -> f64 {
        1e6 / self.median_us
    }

    /// A Markdown table row: name, median, spread, rate.
    pub fn row(&self) -> String {
        format!(
            "| {} | {} | {}–{} | {} |",
            self.name,
            us(self.median_us),
            us(self.min_us),
            us(self.max_us),
            thousands(self.rate())
        )
    }
}

/// The header of [`Figure::row`]'s table.
pub const TABLE_HEADER: &str =
    "| operation | median per op | spread (min–max) | rate (per s, one core) |\n|---|---|---|---|";

fn us(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0} µs")
    } else if v >= 1.0 {
        format!("{v:.2} µs")
    } else {
        format!("{:.1} ns", v * 1000.0)
    }
}

/// `1234567.8` → `1 234 568`.
pub fn thousands(v: f64) -> String {
    let n = v.round() as u64;
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

/// Times `runs` runs of `f`, each doing `ops` operations; `f` returns
/// nothing worth keeping. Per-operation median, min and max.
pub fn measure(name: &str, runs: usize, ops: u64, mut f: impl FnMut()) -> Figure {
    let mut samples: Vec<f64> = (0..runs.max(1))
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64() * 1e6 / ops as f64
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    Figure {
        name: name.to_owned(),
        median_us: samples[samples.len() / 2],
        min_us: samples[0],
        max_us: samples[samples.len() - 1],
    }
}

/// Like [`measure`], for work that needs fresh input each run: `setup`
/// makes it (untimed), `f` consumes it.
pub fn measure_with<T>(
    name: &str,
    runs: usize,
    ops: u64,
    mut setup: impl FnMut(usize) -> T,
    mut f: impl FnMut(T),
) -> Figure {
    let mut samples: Vec<f64> = (0..runs.max(1))
        .map(|run| {
            let input = setup(run);
            let start = Instant::now();
            f(input);
            start.elapsed().as_secs_f64() * 1e6 / ops as f64
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    Figure {
        name: name.to_owned(),
        median_us: samples[samples.len() / 2],
        min_us: samples[0],
        max_us: samples[samples.len() - 1],
    }
}

/// The machine's limits; `scale` (1 for the full run, smaller for a quick
/// one) divides the amount of work. `dir` is an empty folder for the
/// RocksDB measurements.
pub fn limits(dir: &Path, runs: usize, scale: u64) -> Result<Vec<Figure>, NodeError> {
    let mut out = Vec::new();

    // ed25519 over a transaction-sized message (a signed anchor is ~200 bytes).
    let keys: Vec<KeyPair> = (0..64).map(|_| KeyPair::generate()).collect();
    let messages: Vec<Vec<u8>> = (0..64u8).map(|i| vec![i; 200]).collect();
    let signatures: Vec<ed25519_dalek::Signature> = keys
        .iter()
        .zip(&messages)
        .map(|(k, m)| k.signing_key().sign(m))
        .collect();
    let verifying: Vec<ed25519_dalek::VerifyingKey> = keys
        .iter()
        .map(|k| k.signing_key().verifying_key())
        .collect();
    let n = (2_000 / scale).max(64);
    out.push(measure(
        "ed25519 verify_strict, one signature",
        runs,
        n,
        || {
            for i in 0..n as usize {
                let j = i % 64;
                black_box(
                    verifying[j]
                        .verify_strict(&messages[j], &signatures[j])
                        .is_ok(),
                );
            }
        },
    ));
    out.push(measure(
        "ed25519 verify (not strict), one signature",
        runs,
        n,
        || {
            for i in 0..n as usize {
                let j = i % 64;
                black_box(verifying[j].verify(&messages[j], &signatures[j]).is_ok());
            }
        },
    ));
    for size in [4usize, 64] {
        let rounds = (n / size as u64).max(1);
        let refs: Vec<&[u8]> = messages.iter().take(size).map(Vec::as_slice).collect();
        out.push(measure(
            &format!("ed25519 batch verification, {size} signatures (per signature)"),
            runs,
            rounds * size as u64,
            || {
                for _ in 0..rounds {
                    black_box(
                        ed25519_dalek::verify_batch(&refs, &signatures[..size], &verifying[..size])
                            .is_ok(),
                    );
                }
            },
        ));
    }

    // Cairn's signature rule (genesis::signature), as the node checks
    // transactions and certificates: alone, and in batches.
    let raw: Vec<[u8; 64]> = signatures.iter().map(|s| s.to_bytes()).collect();
    let items: Vec<SignatureItem<'_>> = (0..64)
        .map(|i| SignatureItem {
            key: &verifying[i],
            message: &messages[i],
            signature: &raw[i],
        })
        .collect();
    out.push(measure(
        "Cairn signature rule, one signature",
        runs,
        n,
        || {
            for i in 0..n as usize {
                black_box(signature::verify(&items[i % 64]).is_ok());
            }
        },
    ));
    // One issuer's transactions: 64 messages under one key.
    let one_key: Vec<ed25519_dalek::Signature> = messages
        .iter()
        .map(|m| keys[0].signing_key().sign(m))
        .collect();
    let one_key_raw: Vec<[u8; 64]> = one_key.iter().map(|s| s.to_bytes()).collect();
    let one_key_items: Vec<SignatureItem<'_>> = (0..64)
        .map(|i| SignatureItem {
            key: &verifying[0],
            message: &messages[i],
            signature: &one_key_raw[i],
        })
        .collect();
    let rounds = (n / 64).max(1);
    out.push(measure(
        "Cairn signature rule, batches of 64 by one key (per signature)",
        runs,
        rounds * 64,
        || {
            for _ in 0..rounds {
                black_box(signature::verify_all(&one_key_items).is_ok());
            }
        },
    ));
    for size in [3usize, 21, 64] {
        let rounds = (n / size as u64).max(1);
        out.push(measure(
            &format!("Cairn signature rule, batches of {size} keys (per signature)"),
            runs,
            rounds * size as u64,
            || {
                for _ in 0..rounds {
                    black_box(signature::verify_all(&items[..size]).is_ok());
                }
            },
        ));
    }

    // blake3 over 64 bytes (two child hashes: a Merkle node).
    let n = 2_000_000 / scale;
    let input = [7u8; 64];
    out.push(measure("blake3, 64-byte input", runs, n, || {
        for i in 0..n {
            let mut x = input;
            x[0] = i as u8;
            black_box(blake3::hash(&x));
        }
    }));

    // State-tree inserts into RocksDB, batches of 1 000 new credentials,
    // each version written alone, synced through the log (a block's state
    // skips the log: this is the slower way).
    let store = Store::open(&dir.join("tree"), Hash::domain("cairn bench", b"tree"))?;
    let mut state = AuthenticatedState::new(store.tree(), None);
    let batches = (20 / scale).max(2);
    let mut version = 0u64;
    let mut next = 0u64;
    out.push(measure_with(
        "state tree insert into RocksDB (batches of 1 000)",
        runs,
        batches * 1_000,
        |_| {
            (0..batches)
                .map(|_| {
                    (0..1_000)
                        .map(|_| {
                            next += 1;
                            let c = Commitment(Hash::domain("cairn bench", &next.to_be_bytes()));
                            (StateKey::Credential(c), vec![0u8; 120])
                        })
                        .collect::<BTreeMap<_, _>>()
                })
                .collect::<Vec<_>>()
        },
        |changes| {
            for c in changes {
                if let Err(e) = state.commit(version, &c) {
                    panic!("state tree commit: {e}");
                }
                version += 1;
            }
        },
    ));

    // Synced RocksDB write batches the size of a block's index entries.
    let db = rocksdb::DB::open_default(dir.join("writes"))?;
    let mut synced = rocksdb::WriteOptions::default();
    synced.set_sync(true);
    let n = (200 / scale).max(10);
    let mut key = 0u64;
    out.push(measure(
        "RocksDB synced write batch (100 × 100 bytes)",
        runs,
        n,
        || {
            for _ in 0..n {
                let mut batch = rocksdb::WriteBatch::default();
                for _ in 0..100 {
                    key += 1;
                    batch.put(key.to_be_bytes(), [1u8; 100]);
                }
                if let Err(e) = db.write_opt(batch, &synced) {
                    panic!("RocksDB write: {e}");
                }
            }
        },
    ));
    Ok(out)
}

/// One row of [`growth`]: the per-block work of a node while the state
/// grew to `credentials`.
#[derive(Clone, Debug)]
pub struct GrowthRow {
    /// Credentials in the state at the end of the window.
    pub credentials: u64,
    /// Blocks in the window.
    pub blocks: u64,
    /// Mean milliseconds per block to build it (the proposer's execution).
    pub build_ms: f64,
    /// Mean milliseconds to re-execute it (every other validator's check).
    pub execute_ms: f64,
    /// Mean milliseconds to commit it (the block's synced RocksDB batch and
    /// its state's unlogged one).
    pub commit_ms: f64,
    /// Mean internal state-tree nodes a block writes.
    pub internal_nodes: f64,
    /// Mean bytes of state-tree nodes (keys and values as stored) a block
    /// writes.
    pub node_bytes: f64,
    /// Size of the data folder per credential, in bytes.
    pub disk_bytes_per_credential: f64,
    /// The same once RocksDB has compacted every file (what pruned state
    /// leaves in time, without the deleted nodes still waiting for a
    /// compaction); on the last row only.
    pub compacted_bytes_per_credential: Option<f64>,
}

impl GrowthRow {
    /// Commitments per second one validator can take in at this size:
    /// the block's commitments over its re-execution and commit.
    pub fn validator_rate(&self, block_commitments: u64) -> f64 {
        block_commitments as f64 * 1000.0 / (self.execute_ms + self.commit_ms)
    }
}

/// The node's work per block as the state grows: blocks of
/// `block_commitments` anchors (transactions of 1 000) are built,
/// re-executed and committed into a RocksDB store in `dir` exactly as the
/// driver does, keeping the last `keep_state_versions` state versions (0:
/// all), with certificates of `validators` demo validators, until `up_to`
/// credentials; a row at each of `report_at`.
pub fn growth(
    dir: &Path,
    validators: usize,
    block_commitments: u64,
    up_to: u64,
    keep_state_versions: u64,
    report_at: &[u64],
) -> Result<Vec<GrowthRow>, NodeError> {
    let setup = GrowthChain::new(dir, validators)?;
    let mut chain = Chain::open(
        Store::open(&dir.join("data"), setup.genesis.hash())?
            .keep_state_versions(keep_state_versions),
        setup.genesis.clone(),
    )?;
    let mut rows = Vec::new();
    let mut window = Window::default();
    let mut anchored = 0u64;
    let mut nonce = 0u64;
    while anchored < up_to {
        let height = chain.height() + 1;
        let txs: Vec<SignedTransaction> = (0..block_commitments.div_ceil(1_000))
            .map(|_| {
                nonce += 1;
                setup.anchor(nonce, height, 1_000)
            })
            .collect();
        let start = Instant::now();
        let (built, refused) = chain.build(txs, Timestamp::now(), setup.proposer())?;
        let build = start.elapsed();
        if let Some((_, reason)) = refused.first() {
            return Err(NodeError::Startup(format!(
                "a bench transaction was refused: {reason}"
            )));
        }
        let start = Instant::now();
        let executed = chain
            .execute(&built.block, &|_| true, None)?
            .map_err(|e| NodeError::Diverged(e.0))?;
        let execute = start.elapsed();
        // Counted outside the timed steps: it encodes the nodes once more.
        let writes = executed.node_writes();
        let certificate = setup.certify(&executed.block.header);
        let start = Instant::now();
        let commitments = executed.commitments;
        chain.commit(executed, &certificate)?;
        let commit = start.elapsed();
        anchored += commitments;
        window.blocks += 1;
        window.build += build;
        window.execute += execute;
        window.commit += commit;
        window.internal_nodes += writes.internal;
        window.node_bytes += writes.bytes;
        let due = report_at
            .iter()
            .any(|&at| anchored >= at && anchored - commitments < at);
        if anchored % 1_000_000 < commitments {
            // A long run says where it is (stderr: the table stays clean).
            eprintln!(
                "  {anchored} credentials: last block built in {:.0} ms, re-executed in {:.0} ms, committed in {:.0} ms",
                build.as_secs_f64() * 1e3,
                execute.as_secs_f64() * 1e3,
                commit.as_secs_f64() * 1e3
            );
        }
        if due || anchored >= up_to {
            // The state's writes since the last flush are only in memory
            // (they skip RocksDB's log): written out first, so that the
            // folder holds everything anchored.
            chain.store().flush_state()?;
            let disk = folder_bytes(&dir.join("data")) as f64 / anchored as f64;
            rows.push(std::mem::take(&mut window).row(anchored, disk));
        }
    }
    chain.store().compact()?;
    if let Some(last) = rows.last_mut() {
        last.compacted_bytes_per_credential =
            Some(folder_bytes(&dir.join("data")) as f64 / anchored as f64);
    }
    Ok(rows)
}

/// What [`growth`] adds up over the blocks of one row.
#[derive(Default)]
struct Window {
    blocks: u64,
    build: Duration,
    execute: Duration,
    commit: Duration,
    internal_nodes: usize,
    node_bytes: usize,
}

impl Window {
    /// The row of these blocks, the state at `credentials`.
    fn row(self, credentials: u64, disk_bytes_per_credential: f64) -> GrowthRow {
        let blocks = self.blocks.max(1) as f64;
        let mean_ms = |total: Duration| total.as_secs_f64() * 1e3 / blocks;
        GrowthRow {
            credentials,
            blocks: self.blocks,
            build_ms: mean_ms(self.build),
            execute_ms: mean_ms(self.execute),
            commit_ms: mean_ms(self.commit),
            internal_nodes: self.internal_nodes as f64 / blocks,
            node_bytes: self.node_bytes as f64 / blocks,
            disk_bytes_per_credential,
            compacted_bytes_per_credential: None,
        }
    }
}

/// Bytes of the files under `dir`.
fn folder_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => folder_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// A demo chain whose keys are all at hand: validators to certify blocks,
/// one issuer to anchor (also the chain's tests' fixture).
pub(crate) struct GrowthChain {
    pub(crate) genesis: GenesisDocument,
    validators: Vec<KeyPair>,
    issuer: KeyPair,
    issuer_id: String,
}

impl GrowthChain {
    pub(crate) fn new(dir: &Path, count: usize) -> Result<GrowthChain, NodeError> {
        let agencies =
            cairn_devnet::demo_agencies(count).map_err(|e| NodeError::Startup(e.to_string()))?;
        let mut validators = Vec::new();
        let mut seats = Vec::new();
        let mut issuer = None;
        for (i, agency) in agencies.into_iter().enumerate() {
            let validator = KeyPair::generate();
            let police = KeyPair::generate();
            seats.push(cairn_devnet::DemoSeat {
                agency,
                validator_key: validator.public_key(),
                police_issuer_key: police.public_key(),
                market_issuer_key: KeyPair::generate().public_key(),
                p2p_port: 20_000 + i as u16,
            });
            validators.push(validator);
            if i == 0 {
                issuer = Some(police);
            }
        }
        let genesis_time = Timestamp(Timestamp::now().0.saturating_sub(1_000));
        let genesis = cairn_devnet::demo_genesis("cairn-bench-growth", genesis_time, &seats)
            .map_err(|e| NodeError::Startup(e.to_string()))?;
        std::fs::create_dir_all(dir).map_err(|e| NodeError::Io {
            path: dir.to_path_buf(),
            message: e.to_string(),
        })?;
        let issuer_id = seats[0].agency.police_id.clone();
        Ok(GrowthChain {
            genesis,
            validators,
            issuer: issuer.ok_or_else(|| NodeError::Startup("no validators".into()))?,
            issuer_id,
        })
    }

    pub(crate) fn proposer(&self) -> cairn_genesis::PublicKey {
        self.validators[0].public_key()
    }

    pub(crate) fn anchor(&self, nonce: u64, height: u64, count: u64) -> SignedTransaction {
        let items = (0..count)
            .map(|k| AnchorItem {
                commitment: Commitment(Hash::domain(
                    "cairn bench growth",
                    &[nonce.to_be_bytes(), k.to_be_bytes()].concat(),
                )),
                credential_type: cairn_devnet::TYPE_DRIVER_LICENSE.into(),
                valid_until: None,
            })
            .collect();
        Transaction {
            chain: self.genesis.hash(),
            issuer: self.issuer_id.clone(),
            key: self.issuer.public_key(),
            nonce,
            expires_at: height + 100,
            action: Action::Anchor(items),
        }
        .sign(self.issuer.signing_key())
    }

    /// Precommits of every validator for `header`.
    pub(crate) fn certify(&self, header: &BlockHeader) -> CommitCertificate {
        let value = header.value_id();
        let signatures = self
            .validators
            .iter()
            .map(|k| {
                let vote = Vote {
                    chain: self.genesis.hash(),
                    height: Height(header.height),
                    round: Round(0),
                    kind: VoteKind::Precommit,
                    value: Some(value),
                    validator: k.public_key(),
                };
                CommitSignature {
                    validator: vote.validator,
                    signature: ConsensusSignature(
                        k.signing_key().sign(&vote.sign_bytes()).to_bytes(),
                    ),
                }
            })
            .collect();
        CommitCertificate {
            chain: self.genesis.hash(),
            height: Height(header.height),
            round: Round(0),
            value,
            signatures,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1234567.8), "1 234 568");
    }

    #[test]
    fn growth_commits_blocks_and_reports_each_window() {
        let dir = tempfile::tempdir().unwrap();
        let rows = growth(dir.path(), 4, 2_000, 6_000, 2, &[2_000, 4_000]).unwrap();
        let credentials: Vec<u64> = rows.iter().map(|r| r.credentials).collect();
        assert_eq!(credentials, [2_000, 4_000, 6_000]);
        for r in &rows {
            assert_eq!(r.blocks, 1);
            assert!(
                r.build_ms > 0.0 && r.execute_ms > 0.0 && r.commit_ms > 0.0,
                "{r:?}"
            );
            assert!(r.disk_bytes_per_credential > 0.0, "{r:?}");
            // 2 000 new keys in a tree of 2 000 to 6 000: at least the root
            // and its 16 children are rewritten, each internal node with
            // two or more children (71 bytes and a 9-byte key at least),
            // and a leaf of 65 bytes for each key.
            assert!(r.internal_nodes >= 17.0, "{r:?}");
            assert!(
                r.node_bytes >= r.internal_nodes * 80.0 + 2_000.0 * 65.0,
                "{r:?}"
            );
        }
        let compacted: Vec<bool> = rows
            .iter()
            .map(|r| r.compacted_bytes_per_credential.is_some_and(|b| b > 0.0))
            .collect();
        assert_eq!(compacted, [false, false, true]);
        // The chain it wrote is a chain: three blocks, every credential in it.
        let genesis_hash = {
            let store = Store::open(&dir.path().join("data"), Hash([0; 32]));
            match store {
                Err(NodeError::WrongChain { found, .. }) => found,
                _ => panic!("the bench store should belong to its own chain"),
            }
        };
        let store = Store::open(&dir.path().join("data"), genesis_hash).unwrap();
        assert_eq!(store.committed_height().unwrap(), 3);
        // Keeping two versions, it pruned the genesis and the first.
        assert_eq!(store.oldest_state_version(), 2);
    }

    #[test]
    fn a_quick_run_measures_every_limit() {
        let dir = tempfile::tempdir().unwrap();
        let figures = limits(dir.path(), 1, 100).unwrap();
        assert_eq!(figures.len(), 12);
        for f in &figures {
            assert!(
                f.median_us > 0.0 && f.min_us <= f.median_us && f.median_us <= f.max_us,
                "{f:?}"
            );
        }
    }
}
