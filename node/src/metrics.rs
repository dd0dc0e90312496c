//! Prometheus metrics, kept in atomics and rendered as the text format.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use cairn_devnet::client::BLOCK_STEPS;

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
    /// Blocks this node built to propose, and the time it took.
    pub build: Timing,
    /// Blocks others proposed (or a quorum decided) that this node
    /// executed, and the time it took.
    pub execute: Timing,
    /// Blocks this node committed (written with their state), and the time
    /// it took.
    pub commit: Timing,
}

/// How many times a step of a height ran, and how long it took in all.
#[derive(Default)]
pub struct Timing {
    count: AtomicU64,
    micros: AtomicU64,
}

impl Timing {
    /// Counts one more run of the step, begun at `start` and ended now.
    pub fn record(&self, start: Instant) {
        let micros = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
        add(&self.count, 1);
        add(&self.micros, micros);
    }

    fn seconds(&self) -> f64 {
        get(&self.micros) as f64 / 1e6
    }
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
    /// The text exposition, with the mempool's figures and the store's
    /// syncs of RocksDB's log passed in.
    pub fn render(&self, mempool_txs: usize, mempool_bytes: usize, log_syncs: u64) -> String {
        let height = get(&self.height);
        let lag = get(&self.peer_height).saturating_sub(height);
        let rows: [(&str, &str, &str, u64); 15] = [
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
                "cairn_log_syncs_total",
                "counter",
                "Syncs of the database's log to disk since the node started: one for each message this node signs and each block it commits in consensus, one for each run of blocks from block sync.",
                log_syncs,
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
        let steps = [
            ("built to propose", &self.build),
            (
                "proposed by others (or decided by a quorum) and executed, valid or not",
                &self.execute,
            ),
            ("committed: the block and its state written", &self.commit),
        ];
        for (step, (what, timing)) in BLOCK_STEPS.into_iter().zip(steps) {
            let _ = writeln!(
                out,
                "# HELP cairn_block_{step}_total Blocks {what} since the node started.\n\
                 # TYPE cairn_block_{step}_total counter\n\
                 cairn_block_{step}_total {}\n\
                 # HELP cairn_block_{step}_seconds_total Wall-clock seconds spent on the blocks of cairn_block_{step}_total, waits for the chain's and the mempool's locks included.\n\
                 # TYPE cairn_block_{step}_seconds_total counter\n\
                 cairn_block_{step}_seconds_total {:.6}",
                get(&timing.count),
                timing.seconds()
            );
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test code: a panic is the failure report
mod tests {
    use std::time::Duration;

    use super::*;

    /// Each step's count and seconds add up what was recorded, each under
    /// its own name, with its help and type, in an exposition that parses
    /// whole.
    #[test]
    fn block_steps_render_their_counts_and_seconds() {
        let metrics = Metrics::default();
        let ago = |ms| {
            Instant::now()
                .checked_sub(Duration::from_millis(ms))
                .unwrap()
        };
        metrics.build.record(ago(30));
        metrics.execute.record(ago(20));
        metrics.execute.record(ago(20));
        let text = metrics.render(0, 0, 7);
        let samples = cairn_devnet::client::parse_metrics(&text).unwrap();
        let [(built, build), (executed, execute), commit] =
            cairn_devnet::client::block_steps(&samples).unwrap();
        assert_eq!((built, executed), (1.0, 2.0));
        assert!((0.030..1.0).contains(&build), "{build}");
        assert!((0.040..1.0).contains(&execute), "{execute}");
        assert_eq!(commit, (0.0, 0.0));
        assert!(
            text.contains("# TYPE cairn_log_syncs_total counter\ncairn_log_syncs_total 7\n"),
            "{text}"
        );
        for step in BLOCK_STEPS {
            for name in [
                format!("cairn_block_{step}_total"),
                format!("cairn_block_{step}_seconds_total"),
            ] {
                assert!(text.contains(&format!("# TYPE {name} counter\n")), "{text}");
                assert!(text.contains(&format!("# HELP {name} ")), "{text}");
            }
        }
    }
}
