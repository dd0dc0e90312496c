//! `cairn devnet load`: submits signed anchors at a steady rate to the
//! devnet's nodes (round robin) and reports how many were accepted and
//! finalized, and the latency from submission to finalization.
//!
//! Finalization is observed by following the committed blocks of node 0
//! (`GET /v1/blocks/{height}`), so the latency includes up to one polling
//! interval (20 ms).

use std::collections::HashMap;
use std::io::Write;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cairn_anchoring::{Action, AnchorItem, Commitment, SignedTransaction, Transaction};
use cairn_genesis::{GenesisDocument, Hash, KeyPair, Timestamp};

use crate::DevnetError;
use crate::TYPE_DRIVER_LICENSE;
use crate::client::Api;
use crate::layout::Layout;

/// The load to apply.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Transactions per second.
    pub rate: u32,
    /// How long to submit.
    pub duration: Duration,
    /// Commitments per transaction.
    pub batch: usize,
    /// Submitting threads.
    pub threads: usize,
    /// Transactions per HTTP request: 1 uses `POST /v1/txs`, more group
    /// consecutive transactions into one `POST /v1/txs/batch`.
    pub per_request: usize,
}

/// What the load achieved.
#[derive(Clone, Debug)]
pub struct LoadReport {
    /// Transactions submitted.
    pub submitted: u64,
    /// Accepted by the node.
    pub accepted: u64,
    /// Refused by the node.
    pub refused: u64,
    /// Finalized before the report.
    pub finalized: u64,
    /// Commitments finalized.
    pub commitments: u64,
    /// Seconds from the first submission to the last finalization seen.
    pub elapsed: f64,
    /// Latency percentiles (p50, p95, p99) in milliseconds.
    pub latency_ms: (f64, f64, f64),
    /// The first refusal, if any.
    pub first_refusal: Option<String>,
}

impl std::fmt::Display for LoadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rate = if self.elapsed > 0.0 {
            self.commitments as f64 / self.elapsed
        } else {
            0.0
        };
        writeln!(
            f,
            "submitted {}  accepted {}  refused {}  finalized {} ({} commitments, {rate:.0}/s)",
            self.submitted, self.accepted, self.refused, self.finalized, self.commitments
        )?;
        writeln!(
            f,
            "latency submission → finalized: p50 {:.0} ms  p95 {:.0} ms  p99 {:.0} ms",
            self.latency_ms.0, self.latency_ms.1, self.latency_ms.2
        )?;
        if let Some(r) = &self.first_refusal {
            writeln!(f, "first refusal: {r}")?;
        }
        Ok(())
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// Submits `group` (one transaction alone, more as one batch request);
/// each transaction's id and whether it was accepted.
fn submit_group(
    api: &Api,
    group: &[(usize, SignedTransaction)],
) -> Vec<(Hash, Result<(), String>)> {
    if let [(_, tx)] = group {
        let result = match api.submit(tx) {
            Ok((200 | 202, _)) => Ok(()),
            Ok((status, body)) => Err(format!("{status}: {}", crate::client::error_text(&body))),
            Err(e) => Err(e.to_string()),
        };
        return vec![(tx.id(), result)];
    }
    let txs: Vec<SignedTransaction> = group.iter().map(|(_, tx)| tx.clone()).collect();
    let answer = api.submit_batch(&txs);
    txs.iter()
        .enumerate()
        .map(|(i, tx)| {
            let result = match &answer {
                Ok((200, body)) => match &body["results"][i] {
                    entry if entry["status"].is_string() => Ok(()),
                    entry => Err(crate::client::error_text(entry)),
                },
                Ok((status, body)) => Err(format!("{status}: {}", crate::client::error_text(body))),
                Err(e) => Err(e.to_string()),
            };
            (tx.id(), result)
        })
        .collect()
}

/// Runs the load against the devnet in `layout`.
pub fn run(
    layout: &Layout,
    options: &LoadOptions,
    out: &mut dyn Write,
) -> Result<LoadReport, DevnetError> {
    let manifest = layout.manifest()?;
    let genesis = GenesisDocument::load_valid(&layout.genesis())?;
    let apis: Vec<Api> = manifest.nodes.iter().map(|n| Api::new(n.api())).collect();
    // Expiry counts from the lowest node's height: a node one block behind
    // would refuse a lifetime reckoned from a node ahead of it.
    let start_height = apis
        .iter()
        .map(Api::height)
        .collect::<Option<Vec<u64>>>()
        .and_then(|heights| heights.into_iter().min())
        .ok_or_else(|| DevnetError::NotRunning {
            dir: layout.root().to_path_buf(),
        })?;
    let agencies = genesis.validators.len();
    let keys: Vec<KeyPair> = (0..agencies)
        .map(|i| KeyPair::load(&layout.police_key(i)))
        .collect::<Result<_, _>>()?;
    let total = (f64::from(options.rate) * options.duration.as_secs_f64()).ceil() as u64;
    let threads = options.threads.max(1);
    writeln!(
        out,
        "submitting {total} transactions of {} commitments at {} per second for {} s …",
        options.batch,
        options.rate,
        options.duration.as_secs()
    )
    .ok();

    // Sign everything first so that signing does not limit the rate.
    let salt = Timestamp::now().0;
    let txs: Vec<SignedTransaction> = (0..total)
        .map(|n| {
            let a = (n as usize) % agencies;
            let items = (0..options.batch)
                .map(|k| AnchorItem {
                    commitment: Commitment(Hash::domain(
                        "cairn devnet load",
                        format!("{salt}/{n}/{k}").as_bytes(),
                    )),
                    credential_type: TYPE_DRIVER_LICENSE.to_owned(),
                    valid_until: None,
                })
                .collect();
            Transaction {
                chain: genesis.hash(),
                issuer: genesis.issuers[2 * a].id.clone(),
                key: keys[a].public_key(),
                nonce: salt.wrapping_add(n),
                expires_at: start_height + 100_000,
                action: Action::Anchor(items),
            }
            .sign(keys[a].signing_key())
        })
        .collect();

    let (sent_tx, sent_rx) = mpsc::channel::<(Hash, Instant, Result<(), String>)>();
    let begin = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / f64::from(options.rate.max(1)));
    let mut workers = Vec::new();
    for t in 0..threads {
        let mine: Vec<(usize, SignedTransaction)> = txs
            .iter()
            .enumerate()
            .filter(|(n, _)| n % threads == t)
            .map(|(n, tx)| (n, tx.clone()))
            .collect();
        let apis = apis.clone();
        let sent = sent_tx.clone();
        let per_request = options.per_request.max(1);
        workers.push(std::thread::spawn(move || {
            for group in mine.chunks(per_request) {
                // A group leaves when its last transaction is due.
                let Some(&(last, _)) = group.last() else {
                    continue;
                };
                let due = begin + interval * last as u32;
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                let api = &apis[group[0].0 % apis.len()];
                let at = Instant::now();
                for (id, result) in submit_group(api, group) {
                    if sent.send((id, at, result)).is_err() {
                        return;
                    }
                }
            }
        }));
    }
    drop(sent_tx);

    let mut pending: HashMap<Hash, Instant> = HashMap::new();
    let mut report = LoadReport {
        submitted: 0,
        accepted: 0,
        refused: 0,
        finalized: 0,
        commitments: 0,
        elapsed: 0.0,
        latency_ms: (0.0, 0.0, 0.0),
        first_refusal: None,
    };
    let mut latencies = Vec::new();
    let mut next_height = start_height + 1;
    let mut last_final = begin;
    let mut submitting = true;
    let mut last_print = Instant::now();
    let drain_deadline = |since: Instant| since + Duration::from_secs(30);
    let mut done_at: Option<Instant> = None;
    loop {
        // Submissions so far.
        loop {
            match sent_rx.try_recv() {
                Ok((id, at, result)) => {
                    report.submitted += 1;
                    match result {
                        Ok(()) => {
                            report.accepted += 1;
                            pending.insert(id, at);
                        }
                        Err(e) => {
                            report.refused += 1;
                            report.first_refusal.get_or_insert(e);
                        }
                    }
                }
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => {
                    if submitting {
                        submitting = false;
                        done_at = Some(Instant::now());
                    }
                    break;
                }
            }
        }
        // Blocks committed since.
        while let Ok((200, block)) = apis[0].get(&format!("/v1/blocks/{next_height}")) {
            let seen = Instant::now();
            for id in block["transactions"].as_array().into_iter().flatten() {
                let Some(id) = id.as_str().and_then(|s| Hash::from_hex(s).ok()) else {
                    continue;
                };
                if let Some(at) = pending.remove(&id) {
                    report.finalized += 1;
                    report.commitments += options.batch as u64;
                    latencies.push(seen.duration_since(at).as_secs_f64() * 1000.0);
                    last_final = seen;
                }
            }
            next_height += 1;
        }
        if last_print.elapsed() > Duration::from_secs(1) {
            write!(
                out,
                "\r  {:>4} s  submitted {:>8}  finalized {:>8}  pending {:>6} ",
                begin.elapsed().as_secs(),
                report.submitted,
                report.finalized,
                pending.len()
            )
            .ok();
            out.flush().ok();
            last_print = Instant::now();
        }
        if !submitting
            && (pending.is_empty() || done_at.is_some_and(|d| Instant::now() > drain_deadline(d)))
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for w in workers {
        let _ = w.join();
    }
    writeln!(out).ok();
    latencies.sort_by(f64::total_cmp);
    report.latency_ms = (
        percentile(&latencies, 50.0),
        percentile(&latencies, 95.0),
        percentile(&latencies, 99.0),
    );
    report.elapsed = last_final.duration_since(begin).as_secs_f64();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn percentiles_of_a_sorted_sample() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 51.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }
}
