//! Benchmarks of the anchoring crate: `cargo bench -p cairn-anchoring`.
//!
//! Each figure is the median of 7 runs (with the spread: min and max), each
//! run timing a loop long enough to dwarf the clock's resolution. Results go
//! to stdout as a Markdown table for BENCHMARKS.md.

#![allow(clippy::unwrap_used, missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/common/node.rs"]
mod node;

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Instant;

use cairn_anchoring::{
    Action, AnchorItem, AuthenticatedState, Commitment, CredentialDocument, CredentialRecord,
    EventKind, LifecycleEvent, MemoryTreeStore, Presentation, SignedTransaction, StateKey, Status,
    Trust, verify,
};
use cairn_genesis::Hash;
use common::*;
use node::Node;

const RUNS: usize = 7;

/// Runs `f` `iterations` times per run; returns (median, min, max) of the per-iteration time in µs.
fn measure(iterations: u32, mut f: impl FnMut()) -> (f64, f64, f64) {
    let mut samples: Vec<f64> = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..iterations {
                f();
            }
            start.elapsed().as_secs_f64() * 1e6 / f64::from(iterations)
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    (samples[RUNS / 2], samples[0], samples[RUNS - 1])
}

/// A measurement of `items` at once, per item.
fn per(items: f64, (median, min, max): (f64, f64, f64)) -> (f64, f64, f64) {
    (median / items, min / items, max / items)
}

fn row(name: &str, (median, min, max): (f64, f64, f64)) {
    println!(
        "| {name} | {median:.2} µs | {min:.2}–{max:.2} µs | {:.0}/s |",
        1e6 / median
    );
}

fn license() -> CredentialDocument {
    let fields: BTreeMap<String, String> = [
        ("holder_name", "王五"),
        ("id_number", "330106199203031234"),
        (
            "license_number",
            "1.2.156.3005.2.11100000000000127001.11330000MB0000003X.000777.001.7",
        ),
        ("class", "C1"),
        ("valid_from", "2026-01-01"),
        ("valid_until", "2032-01-01"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    CredentialDocument::new(DRIVER, POLICE, fields).unwrap()
}

fn main() {
    println!("| operation | median | spread (min–max of {RUNS} runs) | rate |");
    println!("|---|---|---|---|");
    row(
        "create a 6-field credential (salts + commitment)",
        measure(20_000, || {
            black_box(license().commitment());
        }),
    );
    let doc = license();
    let presentation = Presentation::disclose(&doc, &["class", "holder_name"]).unwrap();
    row(
        "check a presentation (2 of 6 fields disclosed)",
        measure(50_000, || {
            black_box(presentation.check().unwrap());
        }),
    );

    // Admission of 100 single-commitment transactions by one issuer: their
    // signatures checked together.
    let mut chain = Chain::new();
    let txs: Vec<SignedTransaction> = (0..100u32)
        .map(|n| chain.police(Action::Anchor(vec![item(n, DRIVER)])))
        .collect();
    let refs: Vec<&SignedTransaction> = txs.iter().collect();
    assert!(
        SignedTransaction::verify_signatures(&refs)
            .iter()
            .all(Result::is_ok)
    );
    row(
        "verify 100 transactions by one issuer (per transaction)",
        per(
            100.0,
            measure(20, || {
                black_box(SignedTransaction::verify_signatures(&refs));
            }),
        ),
    );

    let mut sizes = Vec::new();
    for validators in [4, 7, 31] {
        let mut node = Node::new(validators);
        node.block(vec![Action::Anchor(vec![AnchorItem {
            commitment: doc.commitment(),
            credential_type: DRIVER.into(),
            valid_until: None,
        }])]);
        // Some other credentials, so the state proofs have realistic depth.
        let items: Vec<AnchorItem> = (0..2_000u32).map(|n| item(n, DRIVER)).collect();
        node.block(vec![Action::Anchor(items)]);
        let bundle = node.bundle(doc.commitment(), false);
        let trust = Trust::from_genesis(&node.genesis).unwrap();
        let now = node.time;
        assert!(verify(&presentation, &bundle, &trust, now, None).valid);
        row(
            &format!("verify presentation + bundle, {validators} validators"),
            measure(2_000, || {
                black_box(verify(&presentation, &bundle, &trust, now, None));
            }),
        );
        let len = |part: &dyn Fn(&mut Vec<u8>)| {
            let mut bytes = Vec::new();
            part(&mut bytes);
            bytes.len()
        };
        let parts = [
            len(&|b| borsh::to_writer(b, &bundle.header).unwrap()),
            len(&|b| borsh::to_writer(b, &bundle.certificate).unwrap()),
            len(&|b| borsh::to_writer(b, &(&bundle.record, &bundle.record_proof)).unwrap()),
            len(&|b| borsh::to_writer(b, &(&bundle.issuer, &bundle.issuer_proof)).unwrap()),
            len(&|b| borsh::to_writer(b, &(&bundle.credential_type, &bundle.type_proof)).unwrap()),
        ];
        sizes.push((validators, bundle.encode().len(), parts));
    }
    for (validators, size, [header, cert, record, issuer, kind]) in sizes {
        println!(
            "| bundle size, {validators} validators, 2 001 credentials in state | {size} bytes | header {header}, certificate {cert}, record + proof {record}, issuer + proof {issuer}, type + proof {kind} | |"
        );
    }

    // State tree: commit versions of 1 000 new credential records each.
    let mut state = AuthenticatedState::new(MemoryTreeStore::default(), None);
    let record = |n: u64| CredentialRecord {
        commitment: Commitment(Hash::domain("bench", &n.to_le_bytes())),
        credential_type: DRIVER.into(),
        issuer: POLICE.into(),
        valid_until: None,
        status: Status::Active,
        events: vec![LifecycleEvent {
            kind: EventKind::Anchored { renews: None },
            height: 1,
            time: T0,
            tx: Hash([0; 32]),
            tx_index: 0,
            actor: POLICE.into(),
        }],
    };
    let mut next = 0u64;
    let mut version = 0u64;
    for total in [10_000u64, 100_000] {
        let start = Instant::now();
        let mut inserted = 0u64;
        while next < total {
            let changes: BTreeMap<StateKey, Vec<u8>> = (next..next + 1_000)
                .map(|n| {
                    let r = record(n);
                    (
                        StateKey::Credential(r.commitment),
                        borsh::to_vec(&r).unwrap(),
                    )
                })
                .collect();
            state.commit(version, &changes).unwrap();
            version += 1;
            next += 1_000;
            inserted += 1_000;
        }
        let rate = inserted as f64 / start.elapsed().as_secs_f64();
        println!(
            "| state tree inserts (batches of 1 000), up to {total} records | | | {rate:.0}/s |"
        );
    }
}
