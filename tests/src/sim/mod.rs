//! A seeded, deterministic simulation of a Cairn validator network running
//! the real [`cairn_consensus::Engine`]: simulated time, per-link delay,
//! loss, duplication and reordering, partitions that heal, crashes (also in
//! the middle of handling a message) with restart from the write-ahead log,
//! and Byzantine validators that equivocate, propose invalid values or stay
//! silent.
//!
//! Every run checks agreement, validity, that no honest node signs two
//! different messages for one (height, round, step), that evidence names
//! only validators that really equivocated, and liveness: after the network
//! is stable (no more loss, partitions or crashes), every running honest
//! node decides each next height within [`LIVENESS_BOUND_MS`] of simulated
//! time.
//!
//! A run is a pure function of (scenario, seed): a failure prints the
//! command that replays it.

mod rng;
mod scenarios;
mod world;

pub use rng::Rng;
pub use scenarios::{SCENARIOS, scenario};
pub use world::{Outcome, run};

/// After the network is stable, each honest node decides every next height
/// within this much simulated time.
pub const LIVENESS_BOUND_MS: u64 = 30_000;

/// How a validator behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// Follows the protocol.
    Honest,
    /// Sends conflicting votes and proposals to different peers (signing
    /// with its raw key, past the guard).
    Equivocator,
    /// Proposes values that every honest node finds invalid.
    InvalidProposer,
    /// Never sends anything.
    Silent,
}

/// Delay and misbehaviour of every link.
#[derive(Clone, Copy, Debug)]
pub struct LinkConfig {
    /// Shortest one-way delay.
    pub min_delay_ms: u64,
    /// Longest one-way delay (random delays reorder messages).
    pub max_delay_ms: u64,
    /// Probability that a message is lost.
    pub loss: f64,
    /// Probability that a message is delivered twice.
    pub duplicate: f64,
}

/// A fault injected at a point of simulated time.
#[derive(Clone, Debug)]
pub enum Fault {
    /// The node stops at `at_ms` (with `mid_event`, while handling its next
    /// input: the input is logged, its effects are lost) and, if
    /// `restart_after_ms` is set, starts again from its log that long after.
    Crash {
        /// The node.
        node: usize,
        /// When.
        at_ms: u64,
        /// Crash inside the next input's handling rather than between inputs.
        mid_event: bool,
        /// Downtime before the restart; never restarts when `None`.
        restart_after_ms: Option<u64>,
    },
    /// The proposer of `height`'s first proposal crashes right after sending it.
    CrashProposer {
        /// The height.
        height: u64,
        /// Downtime before the restart.
        restart_after_ms: u64,
    },
    /// Messages between different groups are lost from `from_ms` until `until_ms`.
    Partition {
        /// The groups (every node in exactly one).
        groups: Vec<Vec<usize>>,
        /// Start.
        from_ms: u64,
        /// Heal.
        until_ms: u64,
    },
}

/// One simulated network and what it must achieve.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// Name, as given to the `cairn-sim` command.
    pub name: &'static str,
    /// Behaviour of each validator (equal voting power).
    pub behaviours: Vec<Behaviour>,
    /// Links before the network is stable.
    pub unstable: LinkConfig,
    /// Links once it is.
    pub stable: LinkConfig,
    /// From this time on: no loss, no partition, no new crash.
    pub stable_at_ms: u64,
    /// Injected faults (all over by `stable_at_ms`, restarts included).
    pub faults: Vec<Fault>,
    /// Heights every running honest node must decide in all; two of them,
    /// at least, after the network is stable.
    pub heights: u64,
}

/// The command that replays one run.
pub fn replay_command(name: &str, seed: u64) -> String {
    format!("cargo run -p cairn-tests --release --bin cairn-sim -- --scenario {name} --seed {seed}")
}
