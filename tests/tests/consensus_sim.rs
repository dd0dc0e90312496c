//! The consensus simulation over many seeds. CI runs a few hundred runs;
//! `CAIRN_SIM_SEEDS=N` runs N seeds per scenario here, and the `cairn-sim`
//! binary runs any number in parallel (see the README).

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use cairn_tests::sim::{Behaviour, Outcome, Scenario, run, scenario};

fn seeds() -> u64 {
    std::env::var("CAIRN_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30)
}

/// Runs `name` for every seed; fails listing every failing seed with its replay command.
fn run_all(name: &str) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    let mut failures = Vec::new();
    for seed in 0..seeds() {
        match run(&scenario(name, seed).unwrap(), seed) {
            Ok(outcome) => outcomes.push(outcome),
            Err(message) => failures.push(message),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} runs failed:\n{}",
        failures.len(),
        seeds(),
        failures.join("\n")
    );
    outcomes
}

#[test]
fn n4_healthy() {
    let outcomes = run_all("n4-healthy");
    assert!(outcomes.iter().all(|o| o.decided_heights >= 4));
}

#[test]
fn n4_one_crashed() {
    let outcomes = run_all("n4-one-crashed");
    assert!(outcomes.iter().all(|o| o.crashes == 1));
}

#[test]
fn n4_invalid_proposer() {
    let outcomes = run_all("n4-invalid-proposer");
    // The invalid proposer's rounds fail, so some decisions need a later round.
    assert!(outcomes.iter().any(|o| o.max_round > 0));
}

#[test]
fn n7_two_equivocators() {
    let outcomes = run_all("n7-two-equivocators");
    assert!(
        outcomes.iter().any(|o| o.evidence > 0),
        "equivocation was never caught"
    );
}

#[test]
fn n4_partition_2_2() {
    run_all("n4-partition-2-2");
}

#[test]
fn n4_proposer_crash() {
    let outcomes = run_all("n4-proposer-crash");
    assert!(outcomes.iter().all(|o| o.crashes == 1));
}

#[test]
fn n4_all_crash_restart() {
    let outcomes = run_all("n4-all-crash-restart");
    assert!(outcomes.iter().all(|o| o.crashes == 4));
}

#[test]
fn n4_lossy() {
    run_all("n4-lossy");
}

#[test]
fn n7_mixed() {
    run_all("n7-mixed");
}

#[test]
fn n4_silent_and_lossy() {
    run_all("n4-silent-and-lossy");
}

#[test]
fn a_run_is_a_pure_function_of_its_seed() {
    let s = scenario("n7-mixed", 42).unwrap();
    let a = run(&s, 42).unwrap();
    let b = run(&s, 42).unwrap();
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
}

#[test]
fn the_checks_catch_a_network_beyond_its_fault_bound() {
    // Two silent validators of four hold half the power: no quorum can
    // form, and the liveness check must say so, with a replay command.
    let mut s: Scenario = scenario("n4-healthy", 0).unwrap();
    s.behaviours = vec![
        Behaviour::Honest,
        Behaviour::Silent,
        Behaviour::Honest,
        Behaviour::Silent,
    ];
    s.name = "n4-two-silent";
    let err = run(&s, 7).unwrap_err();
    assert!(err.contains("liveness: node 0 decided 0"), "{err}");
    assert!(
        err.contains("replay: cargo run -p cairn-tests --release --bin cairn-sim"),
        "{err}"
    );
}
