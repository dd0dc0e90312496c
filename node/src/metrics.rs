//! Prometheus metrics, kept in atomics and rendered as the text format.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// The node's counters and gauges.
#[derive(Default)]
pub struct Metrics {
    /// Committed height.
    pub height: AtomicU64,
    /// Current consensus round.
    pub round: AtomicU64,
    /// Milliseconds between the last two committed blocks.
    pub block_interval_ms: AtomicU64,
    /// Transactions committed since start.
    pub transactions: AtomicU64,
    /// Commitments anchored since start.
    pub commitments: AtomicU64,
    /// Connected peers.
    pub peers: AtomicU64,
    /// Highest height a peer reported.
    pub peer_height: AtomicU64,
    /// Gossiped messages rejected as invalid.
    pub rejected_messages: AtomicU64,
    /// Transactions refused at submission.
    pub refused_transactions: AtomicU64,
    /// Blocks committed from block sync.
    pub synced_blocks: AtomicU64,
    /// The oldest state version kept.
    pub oldest_state_version: AtomicU64,
    /// Committed blocks re-executed at start to bring the state tree up
    /// to the committed height (after a crash).
    pub replayed_blocks: AtomicU64,
}

fn get(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

/// Sets a gauge.
pub fn set(a: &AtomicU64, v: u64) {
    a.store(v, Ordering::Relaxed);
}

/// Raises a gauge to `v` if it is below.
pub fn raise(a: &AtomicU64, v: u64) {
    a.fetch_max(v, Ordering::Relaxed);
}

/// Adds to a counter.
pub fn add(a: &AtomicU64, v: u64) {
    a.fetch_add(v, Ordering::Relaxed);
}

impl Metrics {
    /// The text exposition, with the mempool's figures passed in.
    pub fn render(&self, mempool_txs: usize, mempool_bytes: usize) -> String {
        let height = get(&self.height);
        let lag = get(&self.peer_height).saturating_sub(height);
        let rows: [(&str, &str, &str, u64); 14] = [
            ("cairn_height", "gauge", "Committed block height.", height),
            (
                "cairn_round",
                "gauge",
                "Consensus round at the current height.",
                get(&self.round),
            ),
            (
                "cairn_block_interval_milliseconds",
                "gauge",
                "Milliseconds between the last two committed blocks.",
                get(&self.block_interval_ms),
            ),
            (
                "cairn_transactions_total",
                "counter",
                "Transactions committed since the node started.",
                get(&self.transactions),
            ),
            (
                "cairn_commitments_total",
                "counter",
                "Credential commitments anchored since the node started.",
                get(&self.commitments),
            ),
            (
                "cairn_mempool_transactions",
                "gauge",
                "Pending transactions.",
                mempool_txs as u64,
            ),
            (
                "cairn_mempool_bytes",
                "gauge",
                "Bytes of pending transactions.",
                mempool_bytes as u64,
            ),
            ("cairn_peers", "gauge", "Connected peers.", get(&self.peers)),
            (
                "cairn_sync_lag_blocks",
                "gauge",
                "Blocks between the highest height a peer reported and this node's.",
                lag,
            ),
            (
                "cairn_gossip_rejected_total",
                "counter",
                "Gossiped messages rejected as invalid.",
                get(&self.rejected_messages),
            ),
            (
                "cairn_transactions_refused_total",
                "counter",
                "Transactions refused at submission.",
                get(&self.refused_transactions),
            ),
            (
                "cairn_synced_blocks_total",
                "counter",
                "Blocks committed from block sync.",
                get(&self.synced_blocks),
            ),
            (
                "cairn_state_oldest_version",
                "gauge",
                "Oldest state tree version kept; older ones are pruned.",
                get(&self.oldest_state_version),
            ),
            (
                "cairn_state_replayed_blocks",
                "gauge",
                "Committed blocks re-executed at start to bring the state tree up to the committed height (after a crash).",
                get(&self.replayed_blocks),
            ),
        ];
        let mut out = String::new();
        for (name, kind, help, value) in rows {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        }
        out
    }
}
