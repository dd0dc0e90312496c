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
use std::time::Instant;

use cairn_anchoring::{AuthenticatedState, Commitment, StateKey};
use cairn_genesis::signature::{self, SignatureItem};
use cairn_genesis::{Hash, KeyPair};
use ed25519_dalek::{Signer, Verifier};

use crate::NodeError;
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
    for size in [3usize, 21, 64] {
        let rounds = (n / size as u64).max(1);
        out.push(measure(
            &format!("Cairn signature rule, batches of {size} (per signature)"),
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

    // State-tree inserts into RocksDB, batches of 1 000 new credentials, as
    // a block commits them (synced writes included).
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
                version += 1;
                if let Err(e) = state.commit(version, &c) {
                    panic!("state tree commit: {e}");
                }
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
    fn a_quick_run_measures_every_limit() {
        let dir = tempfile::tempdir().unwrap();
        let figures = limits(dir.path(), 1, 100).unwrap();
        assert_eq!(figures.len(), 11);
        for f in &figures {
            assert!(
                f.median_us > 0.0 && f.min_us <= f.median_us && f.median_us <= f.max_us,
                "{f:?}"
            );
        }
    }
}
