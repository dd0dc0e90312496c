//! Runs the consensus simulation for any number of seeds.
//!
//! ```text
//! cairn-sim [--scenario NAME|all] [--seed S | --seeds N [--first S]] [--threads T]
//! ```
//!
//! Exit status 0 when every run passed; a failing run prints the command that replays it.

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use cairn_tests::sim::{SCENARIOS, run, scenario};

struct Args {
    scenarios: Vec<String>,
    first: u64,
    seeds: u64,
    threads: usize,
}

fn parse() -> Result<Args, String> {
    let mut args = Args {
        scenarios: SCENARIOS.iter().map(|s| (*s).to_owned()).collect(),
        first: 0,
        seeds: 100,
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--scenario" => {
                let name = value()?;
                if name != "all" {
                    if !SCENARIOS.contains(&name.as_str()) {
                        return Err(format!(
                            "unknown scenario {name}; known: {}",
                            SCENARIOS.join(", ")
                        ));
                    }
                    args.scenarios = vec![name];
                }
            }
            "--seed" => {
                args.first = value()?.parse().map_err(|e| format!("--seed: {e}"))?;
                args.seeds = 1;
            }
            "--first" => args.first = value()?.parse().map_err(|e| format!("--first: {e}"))?,
            "--seeds" => args.seeds = value()?.parse().map_err(|e| format!("--seeds: {e}"))?,
            "--threads" => {
                args.threads = value()?.parse().map_err(|e| format!("--threads: {e}"))?
            }
            "--help" | "-h" => {
                return Err(format!(
                    "usage: cairn-sim [--scenario NAME|all] [--seed S | --seeds N [--first S]] [--threads T]\nscenarios: {}",
                    SCENARIOS.join(", ")
                ));
            }
            other => return Err(format!("unknown argument {other}; try --help")),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let started = Instant::now();
    let jobs: Vec<(String, u64)> = args
        .scenarios
        .iter()
        .flat_map(|name| {
            (args.first..args.first + args.seeds).map(move |seed| (name.clone(), seed))
        })
        .collect();
    let next = AtomicUsize::new(0);
    let failures = AtomicUsize::new(0);
    let simulated_ms = AtomicU64::new(0);
    std::thread::scope(|scope| {
        for _ in 0..args.threads.max(1) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((name, seed)) = jobs.get(i) else {
                        break;
                    };
                    let Some(s) = scenario(name, *seed) else {
                        continue;
                    };
                    match run(&s, *seed) {
                        Ok(outcome) => {
                            simulated_ms.fetch_add(outcome.elapsed_ms, Ordering::Relaxed);
                            if args.seeds == 1 {
                                println!("{name} seed {seed}: ok {outcome:?}");
                            }
                        }
                        Err(message) => {
                            failures.fetch_add(1, Ordering::Relaxed);
                            eprintln!("FAILED {message}");
                        }
                    }
                    let done = i + 1;
                    if done.is_multiple_of(500) {
                        eprintln!("{done}/{} runs, {:.0?}", jobs.len(), started.elapsed());
                    }
                }
            });
        }
    });
    let failed = failures.load(Ordering::Relaxed);
    println!(
        "{} runs over {} scenario(s): {} failed; {:.1?} wall, {:.0} s simulated",
        jobs.len(),
        args.scenarios.len(),
        failed,
        started.elapsed(),
        simulated_ms.load(Ordering::Relaxed) as f64 / 1000.0
    );
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
