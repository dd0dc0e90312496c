//! The ledger state machine: every refusal by name, refusals change
//! nothing, transactions apply in block order, and random lifecycles agree
//! with a reference model.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::collections::BTreeMap;

use cairn_anchoring::{
    Action, AnchoringError, EventKind, MAX_COMMITMENTS_PER_TX, RevocationReason, SignedTransaction,
    StateKey, StateView, Status, apply_block, check_each,
};
use cairn_genesis::{Hash, Timestamp};
use common::*;
use proptest::prelude::*;

fn anchor(n: u32) -> Action {
    Action::Anchor(vec![item(n, DRIVER)])
}

#[test]
fn anchor_then_every_lifecycle_step() {
    let mut chain = Chain::new();
    let receipt = chain.police(anchor(1));
    let receipt = chain.apply(receipt).unwrap();
    assert_eq!(receipt.height, 1);
    assert_eq!(chain.record(1).unwrap().status, Status::Active);

    for (action, status) in [
        (
            Action::Suspend {
                commitment: commitment(1),
            },
            Status::Suspended,
        ),
        (
            Action::Reinstate {
                commitment: commitment(1),
            },
            Status::Active,
        ),
        (
            Action::Revoke {
                commitment: commitment(1),
                reason: RevocationReason::RevokedAsPenalty,
            },
            Status::Revoked {
                reason: RevocationReason::RevokedAsPenalty,
            },
        ),
    ] {
        let tx = chain.police(action);
        chain.apply(tx).unwrap();
        assert_eq!(chain.record(1).unwrap().status, status);
    }
    let kinds: Vec<EventKind> = chain
        .record(1)
        .unwrap()
        .events
        .iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            EventKind::Anchored { renews: None },
            EventKind::Suspended,
            EventKind::Reinstated,
            EventKind::Revoked {
                reason: RevocationReason::RevokedAsPenalty
            }
        ]
    );
    let event = &chain.record(1).unwrap().events[1];
    assert_eq!((event.height, event.actor.as_str()), (2, POLICE));
}

#[test]
fn supersede_links_both_ways_and_keeps_the_type() {
    let mut chain = Chain::new();
    let tx = chain.police(anchor(1));
    chain.apply(tx).unwrap();
    let tx = chain.police(Action::Supersede {
        old: commitment(1),
        new: item(2, DRIVER),
    });
    chain.apply(tx).unwrap();
    assert_eq!(
        chain.record(1).unwrap().status,
        Status::Superseded { by: commitment(2) }
    );
    let new = chain.record(2).unwrap();
    assert_eq!(new.status, Status::Active);
    assert_eq!(
        new.events[0].kind,
        EventKind::Anchored {
            renews: Some(commitment(1))
        }
    );

    let tx = chain.police(Action::Anchor(vec![item(3, DRIVER)]));
    chain.apply(tx).unwrap();
    let tx = chain.police(Action::Supersede {
        old: commitment(3),
        new: item(4, BUSINESS),
    });
    assert!(matches!(
        chain.apply(tx),
        Err(AnchoringError::TypeChange { .. })
    ));
    // A superseded credential cannot be superseded again.
    let tx = chain.police(Action::Supersede {
        old: commitment(1),
        new: item(5, DRIVER),
    });
    assert!(matches!(
        chain.apply(tx),
        Err(AnchoringError::IllegalTransition {
            action: "supersede",
            ..
        })
    ));
}

#[test]
fn expiry_is_derived_from_valid_until() {
    let mut chain = Chain::new();
    let mut it = item(1, DRIVER);
    it.valid_until = Some(Timestamp(T0.0 + 6_000));
    let tx = chain.police(Action::Anchor(vec![it]));
    chain.apply(tx).unwrap();
    let record = chain.record(1).unwrap();
    assert_eq!(record.status_at(T0), Status::Active);
    assert_eq!(record.status_at(Timestamp(T0.0 + 6_000)), Status::Expired);
    chain.time = Timestamp(T0.0 + 10_000);
    let tx = chain.police(Action::Suspend {
        commitment: commitment(1),
    });
    assert!(matches!(
        chain.apply(tx),
        Err(AnchoringError::IllegalTransition {
            action: "suspend",
            ..
        })
    ));
    // An expired license can be renewed.
    let tx = chain.police(Action::Supersede {
        old: commitment(1),
        new: item(2, DRIVER),
    });
    chain.apply(tx).unwrap();
}

/// Applies `tx` after `setup`, expects `expected`, and checks the state did not change.
fn refused(chain: &mut Chain, tx: SignedTransaction, expected: impl Fn(&AnchoringError) -> bool) {
    let before = chain.state.clone();
    let err = chain.apply(tx).unwrap_err();
    assert!(expected(&err), "unexpected refusal: {err}");
    assert_eq!(
        chain.state, before,
        "a refused transaction changed the state ({err})"
    );
}

#[test]
fn every_refusal_has_its_name_and_changes_nothing() {
    let mut chain = Chain::new();
    let tx = chain.police(Action::Anchor(vec![item(1, DRIVER), item(2, DRIVER)]));
    chain.apply(tx).unwrap();
    let tx = chain.police(Action::Revoke {
        commitment: commitment(2),
        reason: RevocationReason::Annulled,
    });
    chain.apply(tx).unwrap();

    let tx = chain.tx("91000000000000000X", &police_key(), anchor(10));
    refused(&mut chain, tx, |e| {
        matches!(e, AnchoringError::UnknownIssuer { .. })
    });

    let tx = chain.tx(POLICE, &market_key(), anchor(10));
    refused(&mut chain, tx, |e| {
        matches!(e, AnchoringError::KeyNotValid { .. })
    });
    chain.time = Timestamp(T0.0 + 2 * DAY_MS);
    let tx = chain.tx(POLICE, &old_police_key(), anchor(10));
    refused(&mut chain, tx, |e| {
        matches!(e, AnchoringError::KeyNotValid { .. })
    });

    let tx = chain.police(Action::Anchor(vec![item(10, BUSINESS)]));
    refused(&mut chain, tx, |e| {
        matches!(e, AnchoringError::NotAccredited { .. })
    });
    let tx = chain.police(Action::Anchor(vec![item(10, "boat-license")]));
    refused(&mut chain, tx, |e| {
        matches!(e, AnchoringError::UnknownType { .. })
    });

    let mut tx = chain.police(anchor(10));
    tx.tx.chain = Hash([9; 32]);
    refused(&mut chain, tx, |e| {
        matches!(e, AnchoringError::WrongChain { .. })
    });

    let mut tx = chain.police(anchor(10));
    tx.signature[5] ^= 1;
    refused(&mut chain, tx, |e| {
        matches!(e, AnchoringError::BadSignature { .. })
    });
    let mut tx = chain.police(anchor(10));
    tx.tx.nonce += 1; // signed bytes no longer match
    refused(&mut chain, tx, |e| {
        matches!(e, AnchoringError::BadSignature { .. })
    });

    let tx = chain.police(anchor(1));
    refused(&mut chain, tx, |e| {
        matches!(e, AnchoringError::AlreadyAnchored { .. })
    });
    // All or nothing: one bad item refuses the whole batch.
    let tx = chain.police(Action::Anchor(vec![item(11, DRIVER), item(1, DRIVER)]));
    refused(&mut chain, tx, |e| {
        matches!(e, AnchoringError::AlreadyAnchored { .. })
    });
    let tx = chain.police(Action::Anchor(vec![item(11, DRIVER), item(11, DRIVER)]));
    refused(&mut chain, tx, |e| {
        matches!(e, AnchoringError::DuplicateInBatch { .. })
    });

    let tx = chain.police(Action::Suspend {
        commitment: commitment(99),
    });
    refused(&mut chain, tx, |e| {
        matches!(e, AnchoringError::UnknownCommitment { .. })
    });

    let tx = chain.tx(
        MARKET,
        &market_key(),
        Action::Suspend {
            commitment: commitment(1),
        },
    );
    refused(&mut chain, tx, |e| {
        matches!(e, AnchoringError::NotIssuingAgency { .. })
    });

    let tx = chain.police(Action::Reinstate {
        commitment: commitment(2),
    });
    refused(&mut chain, tx, |e| {
        matches!(
            e,
            AnchoringError::IllegalTransition {
                action: "reinstate",
                ..
            }
        )
    });
    let tx = chain.police(Action::Revoke {
        commitment: commitment(2),
        reason: RevocationReason::Other,
    });
    refused(&mut chain, tx, |e| {
        matches!(
            e,
            AnchoringError::IllegalTransition {
                action: "revoke",
                ..
            }
        )
    });
    let tx = chain.police(Action::Reinstate {
        commitment: commitment(1),
    });
    refused(&mut chain, tx, |e| {
        matches!(
            e,
            AnchoringError::IllegalTransition {
                action: "reinstate",
                ..
            }
        )
    });

    let too_many: Vec<_> = (0..=MAX_COMMITMENTS_PER_TX as u32)
        .map(|n| item(1000 + n, DRIVER))
        .collect();
    let tx = chain.police(Action::Anchor(too_many));
    refused(&mut chain, tx, |e| {
        matches!(e, AnchoringError::BatchSize { count: 10_001, .. })
    });
    let tx = chain.police(Action::Anchor(vec![]));
    refused(&mut chain, tx, |e| {
        matches!(e, AnchoringError::BatchSize { count: 0, .. })
    });

    let mut tx = chain.police(anchor(12));
    tx.tx.expires_at = chain.height; // the next block is past it
    let tx = tx.tx.sign(&police_key());
    refused(&mut chain, tx, |e| {
        matches!(e, AnchoringError::Expired { .. })
    });
}

#[test]
fn a_replayed_transaction_never_applies_twice() {
    let mut chain = Chain::new();
    let tx = chain.police(anchor(1));
    let receipt = chain.apply(tx.clone()).unwrap();
    let tx2 = chain.police(Action::Suspend {
        commitment: commitment(1),
    });
    chain.apply(tx2.clone()).unwrap();
    let tx3 = chain.police(Action::Reinstate {
        commitment: commitment(1),
    });
    chain.apply(tx3).unwrap();
    // Replaying the suspension would be a legal transition now: the id stops it.
    let before = chain.state.clone();
    assert_eq!(
        chain.apply(tx2.clone()),
        Err(AnchoringError::Replay { tx: tx2.id() })
    );
    assert_eq!(
        chain.apply(tx.clone()),
        Err(AnchoringError::Replay { tx: receipt.tx })
    );
    assert_eq!(chain.state, before);
    // Twice in one block: the second copy is the replay.
    let tx4 = chain.police(Action::Suspend {
        commitment: commitment(1),
    });
    let results = chain.block(&[tx4.clone(), tx4.clone()]);
    assert!(results[0].is_ok());
    assert_eq!(results[1], Err(AnchoringError::Replay { tx: tx4.id() }));
}

#[test]
fn a_block_applies_in_order_and_skips_only_what_it_refuses() {
    let mut chain = Chain::new();
    let txs = vec![
        chain.police(Action::Suspend {
            commitment: commitment(1),
        }), // before the anchor: unknown
        chain.police(anchor(1)),
        chain.police(Action::Suspend {
            commitment: commitment(1),
        }),
        chain.police(Action::Reinstate {
            commitment: commitment(1),
        }),
    ];
    let results = chain.block(&txs);
    assert!(matches!(
        results[0],
        Err(AnchoringError::UnknownCommitment { .. })
    ));
    assert!(results[1..].iter().all(Result::is_ok), "{results:?}");
    assert_eq!(chain.record(1).unwrap().events.len(), 3);
    assert_eq!(results[3].as_ref().unwrap().index, 3);
}

#[test]
fn admission_checks_each_transaction_alone_against_the_state() {
    let mut chain = Chain::new();
    let first = chain.police(anchor(1));
    chain.apply(first).unwrap();
    let anchor2 = chain.police(anchor(2));
    let txs = vec![
        chain.police(Action::Suspend {
            commitment: commitment(1),
        }),
        anchor2.clone(),
        // In a block this would follow the anchor; alone it has nothing to suspend.
        chain.police(Action::Suspend {
            commitment: commitment(2),
        }),
        // The same transaction twice: alone, neither copy is a replay.
        anchor2.clone(),
        chain.police(anchor(1)),
    ];
    let before = chain.state.clone();
    let refs: Vec<&SignedTransaction> = txs.iter().collect();
    let verdicts = check_each(&chain.state, &chain.ctx(), &refs).unwrap();
    assert_eq!(chain.state, before, "a check writes nothing");
    assert_eq!(verdicts.len(), txs.len());
    for (tx, verdict) in txs.iter().zip(&verdicts) {
        let alone = apply_block(&chain.state, &chain.ctx(), std::slice::from_ref(tx)).unwrap();
        assert_eq!(verdict, &alone.results[0]);
    }
    assert!(verdicts[0].is_ok() && verdicts[1].is_ok() && verdicts[3].is_ok());
    assert!(matches!(
        verdicts[2],
        Err(AnchoringError::UnknownCommitment { .. })
    ));
    assert!(matches!(
        verdicts[4],
        Err(AnchoringError::AlreadyAnchored { .. })
    ));
    // In a block, the anchor's copy is a replay and the suspension applies.
    let in_block = apply_block(&chain.state, &chain.ctx(), &txs).unwrap();
    assert!(in_block.results[2].is_ok());
    assert!(matches!(
        in_block.results[3],
        Err(AnchoringError::Replay { .. })
    ));
}

/// A state whose storage fails on every read.
struct Broken;

impl StateView for Broken {
    fn get(&self, _: &StateKey) -> Result<Option<Vec<u8>>, AnchoringError> {
        Err(AnchoringError::Storage("disk gone".into()))
    }

    fn applied(&self, _: &Hash) -> Result<bool, AnchoringError> {
        Err(AnchoringError::Storage("disk gone".into()))
    }
}

/// A state whose entries read, but whose index of applied transactions fails.
struct IndexGone<'a>(&'a MemoryState);

impl StateView for IndexGone<'_> {
    fn get(&self, key: &StateKey) -> Result<Option<Vec<u8>>, AnchoringError> {
        self.0.get(key)
    }

    fn applied(&self, _: &Hash) -> Result<bool, AnchoringError> {
        Err(AnchoringError::Storage("index gone".into()))
    }
}

#[test]
fn a_storage_failure_is_not_a_refusal() {
    let mut chain = Chain::new();
    let tx = chain.police(anchor(1));
    assert_eq!(
        check_each(&Broken, &chain.ctx(), &[&tx]),
        Err(AnchoringError::Storage("disk gone".into()))
    );
    assert_eq!(check_each(&Broken, &chain.ctx(), &[]), Ok(vec![]));
    let index_gone = IndexGone(&chain.state);
    assert_eq!(
        check_each(&index_gone, &chain.ctx(), &[&tx]),
        Err(AnchoringError::Storage("index gone".into()))
    );
    assert_eq!(
        apply_block(&index_gone, &chain.ctx(), &[tx]).map(|o| o.results),
        Err(AnchoringError::Storage("index gone".into()))
    );
}

/// A transaction puts in the state only what it changes: the record of
/// each credential it anchors or acts on, and no entry of its own. The
/// chain's blocks remember that it was applied.
#[test]
fn a_transaction_writes_only_the_records_it_changes() {
    let mut chain = Chain::new();
    let anchor = chain.police(Action::Anchor(vec![item(1, DRIVER), item(2, DRIVER)]));
    let outcome = apply_block(&chain.state, &chain.ctx(), std::slice::from_ref(&anchor)).unwrap();
    let mut anchored = vec![
        StateKey::Credential(commitment(1)),
        StateKey::Credential(commitment(2)),
    ];
    anchored.sort();
    assert_eq!(
        outcome.changes.keys().cloned().collect::<Vec<_>>(),
        anchored
    );
    chain.apply(anchor.clone()).unwrap();
    assert!(chain.state.applied.contains(&anchor.id()));
    let suspend = chain.police(Action::Suspend {
        commitment: commitment(2),
    });
    let outcome = apply_block(&chain.state, &chain.ctx(), &[suspend]).unwrap();
    assert_eq!(
        outcome.changes.keys().collect::<Vec<_>>(),
        vec![&StateKey::Credential(commitment(2))]
    );
}

#[test]
fn verification_can_be_skipped_once_done_at_admission() {
    let chain = Chain::new();
    let mut ctx = chain.ctx();
    let mut c = Chain::new();
    let mut tx = c.police(anchor(1));
    tx.signature[0] ^= 1;
    ctx.signatures_verified = true;
    let outcome = apply_block(&chain.state, &ctx, &[tx]).unwrap();
    assert!(
        outcome.results[0].is_ok(),
        "the caller vouched for the signature"
    );
}

#[test]
fn transactions_round_trip_and_decode_strictly() {
    let mut chain = Chain::new();
    let tx = chain.police(Action::Anchor(vec![item(1, DRIVER), item(2, DRIVER)]));
    let bytes = tx.encode();
    assert_eq!(SignedTransaction::decode(&bytes).unwrap(), tx);
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert!(matches!(
        SignedTransaction::decode(&trailing),
        Err(AnchoringError::Decode { .. })
    ));
    assert!(matches!(
        SignedTransaction::decode(&bytes[..bytes.len() - 1]),
        Err(AnchoringError::Decode { .. })
    ));
    let json = serde_json::to_string(&tx).unwrap();
    assert_eq!(
        serde_json::from_str::<SignedTransaction>(&json).unwrap(),
        tx
    );
}

/// The legal transitions, written out plainly.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Model {
    Active,
    Suspended,
    Revoked,
    Superseded,
}

#[derive(Clone, Debug)]
enum Op {
    Anchor(u8),
    Suspend(u8),
    Reinstate(u8),
    Revoke(u8),
    Supersede(u8, u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..6).prop_map(Op::Anchor),
        (0u8..6).prop_map(Op::Suspend),
        (0u8..6).prop_map(Op::Reinstate),
        (0u8..6).prop_map(Op::Revoke),
        (0u8..6, 0u8..6).prop_map(|(a, b)| Op::Supersede(a, b)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn random_lifecycles_match_the_reference_model(ops in proptest::collection::vec(op(), 1..30)) {
        let mut chain = Chain::new();
        let mut model: BTreeMap<u8, Model> = BTreeMap::new();
        for op in ops {
            let c = |n: u8| commitment(u32::from(n));
            let (action, expected_ok) = match op {
                Op::Anchor(n) => (Action::Anchor(vec![item(u32::from(n), DRIVER)]), !model.contains_key(&n)),
                Op::Suspend(n) => (Action::Suspend { commitment: c(n) }, model.get(&n) == Some(&Model::Active)),
                Op::Reinstate(n) => (Action::Reinstate { commitment: c(n) }, model.get(&n) == Some(&Model::Suspended)),
                Op::Revoke(n) => (
                    Action::Revoke { commitment: c(n), reason: RevocationReason::Cancelled },
                    matches!(model.get(&n), Some(Model::Active | Model::Suspended)),
                ),
                Op::Supersede(a, b) => (
                    Action::Supersede { old: c(a), new: item(u32::from(b), DRIVER) },
                    matches!(model.get(&a), Some(Model::Active | Model::Suspended)) && !model.contains_key(&b) && a != b,
                ),
            };
            let tx = chain.police(action);
            let before = chain.state.clone();
            let result = chain.apply(tx);
            prop_assert_eq!(result.is_ok(), expected_ok, "{:?} -> {:?}", op, result);
            if !expected_ok {
                prop_assert_eq!(&chain.state, &before);
                continue;
            }
            match op {
                Op::Anchor(n) => { model.insert(n, Model::Active); }
                Op::Suspend(n) => { model.insert(n, Model::Suspended); }
                Op::Reinstate(n) => { model.insert(n, Model::Active); }
                Op::Revoke(n) => { model.insert(n, Model::Revoked); }
                Op::Supersede(a, b) => { model.insert(a, Model::Superseded); model.insert(b, Model::Active); }
            }
            for (n, m) in &model {
                let status = chain.record(u32::from(*n)).unwrap().status;
                let same = matches!(
                    (m, status),
                    (Model::Active, Status::Active)
                        | (Model::Suspended, Status::Suspended)
                        | (Model::Revoked, Status::Revoked { .. })
                        | (Model::Superseded, Status::Superseded { .. })
                );
                prop_assert!(same, "{n}: model {m:?}, ledger {status:?}");
            }
        }
    }
}

#[test]
fn an_action_names_every_credential_it_reads_or_writes() {
    let named = |action: &Action| action.commitments().collect::<Vec<_>>();
    assert_eq!(
        named(&Action::Anchor(vec![item(1, DRIVER), item(2, DRIVER)])),
        vec![commitment(1), commitment(2)]
    );
    assert_eq!(
        named(&Action::Suspend {
            commitment: commitment(3)
        }),
        vec![commitment(3)]
    );
    assert_eq!(
        named(&Action::Revoke {
            commitment: commitment(4),
            reason: RevocationReason::Cancelled
        }),
        vec![commitment(4)]
    );
    assert_eq!(
        named(&Action::Supersede {
            old: commitment(5),
            new: item(6, DRIVER)
        }),
        vec![commitment(5), commitment(6)]
    );
}
