//! The named scenarios. Each is a family: the seed picks the fault times,
//! the victims and the network's randomness.

use super::{Behaviour, Fault, LinkConfig, Rng, Scenario};

/// Every scenario's name, as the `cairn-sim` command takes it.
pub const SCENARIOS: [&str; 10] = [
    "n4-healthy",
    "n4-one-crashed",
    "n4-invalid-proposer",
    "n7-two-equivocators",
    "n4-partition-2-2",
    "n4-proposer-crash",
    "n4-all-crash-restart",
    "n4-lossy",
    "n7-mixed",
    "n4-silent-and-lossy",
];

const CALM: LinkConfig = LinkConfig {
    min_delay_ms: 1,
    max_delay_ms: 40,
    loss: 0.0,
    duplicate: 0.0,
};
const JITTERY: LinkConfig = LinkConfig {
    min_delay_ms: 1,
    max_delay_ms: 250,
    loss: 0.0,
    duplicate: 0.05,
};
const LOSSY: LinkConfig = LinkConfig {
    min_delay_ms: 1,
    max_delay_ms: 200,
    loss: 0.3,
    duplicate: 0.1,
};

fn base(name: &'static str, n: usize) -> Scenario {
    Scenario {
        name,
        behaviours: vec![Behaviour::Honest; n],
        unstable: JITTERY,
        stable: CALM,
        stable_at_ms: 0,
        faults: Vec::new(),
        heights: 4,
    }
}

/// The scenario `name` for `seed`, or `None` for an unknown name.
pub fn scenario(name: &str, seed: u64) -> Option<Scenario> {
    let mut rng = Rng::new(seed.rotate_left(17) ^ 0x5ce7_a210);
    let s = match name {
        "n4-healthy" => {
            let mut s = base("n4-healthy", 4);
            s.stable = JITTERY;
            s
        }
        "n4-one-crashed" => {
            let mut s = base("n4-one-crashed", 4);
            let node = rng.index(4);
            let at_ms = rng.range(0, 5_000);
            s.faults.push(Fault::Crash {
                node,
                at_ms,
                mid_event: rng.chance(0.5),
                restart_after_ms: None,
            });
            s.stable_at_ms = at_ms;
            s
        }
        "n4-invalid-proposer" => {
            let mut s = base("n4-invalid-proposer", 4);
            s.behaviours[rng.index(4)] = Behaviour::InvalidProposer;
            s.stable = JITTERY;
            s
        }
        "n7-two-equivocators" => {
            let mut s = base("n7-two-equivocators", 7);
            let first = rng.index(7);
            let second = (first + 1 + rng.index(6)) % 7;
            s.behaviours[first] = Behaviour::Equivocator;
            s.behaviours[second] = Behaviour::Equivocator;
            s.stable = JITTERY;
            s
        }
        "n4-partition-2-2" => {
            let mut s = base("n4-partition-2-2", 4);
            let mate = 1 + rng.index(3);
            let (a, b): (Vec<usize>, Vec<usize>) = (0..4).partition(|&n| n == 0 || n == mate);
            let from_ms = rng.range(0, 4_000);
            let until_ms = from_ms + rng.range(2_000, 20_000);
            s.faults.push(Fault::Partition {
                groups: vec![a, b],
                from_ms,
                until_ms,
            });
            s.stable_at_ms = until_ms;
            s
        }
        "n4-proposer-crash" => {
            let mut s = base("n4-proposer-crash", 4);
            let restart_after_ms = rng.range(100, 10_000);
            s.faults.push(Fault::CrashProposer {
                height: rng.range(1, 3),
                restart_after_ms,
            });
            // The crash happens within the first heights, well before this.
            s.stable_at_ms = 15_000 + restart_after_ms;
            s
        }
        "n4-all-crash-restart" => {
            let mut s = base("n4-all-crash-restart", 4);
            s.heights = 5;
            let mut last = 0;
            for node in 0..4 {
                let at_ms = rng.range(0, 8_000);
                let restart_after_ms = rng.range(10, 3_000);
                s.faults.push(Fault::Crash {
                    node,
                    at_ms,
                    mid_event: rng.chance(0.5),
                    restart_after_ms: Some(restart_after_ms),
                });
                last = last.max(at_ms + restart_after_ms);
            }
            s.stable_at_ms = last;
            s
        }
        "n4-lossy" => {
            let mut s = base("n4-lossy", 4);
            s.unstable = LOSSY;
            s.stable_at_ms = rng.range(2_000, 15_000);
            s
        }
        "n7-mixed" => {
            let mut s = base("n7-mixed", 7);
            s.unstable = LOSSY;
            s.behaviours[rng.index(7)] = Behaviour::Equivocator;
            let mut last = rng.range(1_000, 8_000);
            let victim = rng.index(7);
            let at_ms = rng.range(0, 6_000);
            let down = rng.range(10, 4_000);
            s.faults.push(Fault::Crash {
                node: victim,
                at_ms,
                mid_event: rng.chance(0.5),
                restart_after_ms: Some(down),
            });
            last = last.max(at_ms + down);
            let mut group: Vec<usize> = (0..7).filter(|_| rng.chance(0.5)).collect();
            if group.is_empty() {
                group.push(0);
            }
            let rest: Vec<usize> = (0..7).filter(|n| !group.contains(n)).collect();
            let from_ms = rng.range(0, 5_000);
            let until_ms = from_ms + rng.range(500, 6_000);
            s.faults.push(Fault::Partition {
                groups: vec![group, rest],
                from_ms,
                until_ms,
            });
            s.stable_at_ms = last.max(until_ms);
            s
        }
        "n4-silent-and-lossy" => {
            let mut s = base("n4-silent-and-lossy", 4);
            s.behaviours[rng.index(4)] = Behaviour::Silent;
            s.unstable = LOSSY;
            s.stable_at_ms = rng.range(1_000, 10_000);
            s
        }
        _ => return None,
    };
    Some(s)
}
