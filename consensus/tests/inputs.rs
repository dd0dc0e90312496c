//! Bad input is refused with a named error and changes nothing; equivocation
//! becomes evidence once; buffers for the future are bounded.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use cairn_consensus::{
    ConsensusError, Effect, Evidence, Height, Input, MAX_BUFFERED_PER_VALIDATOR,
    MAX_FUTURE_ROUNDS_PER_VALIDATOR, Round, Signature, Step, VoteKind, Wal,
};
use cairn_genesis::Hash;
use common::*;

#[test]
fn malformed_messages_are_refused_by_name_and_change_nothing() {
    let net = Net::new(4);
    let (mut e, _) = net.engine(0);
    let before = e.status();
    let log_before = e.wal().entries().unwrap();

    let mut wrong_chain = net.vote(1, 0, VoteKind::Prevote, None);
    wrong_chain.vote.chain = Hash([0xee; 32]);
    assert!(matches!(
        e.handle(Input::Vote(wrong_chain)),
        Err(ConsensusError::WrongChain { .. })
    ));

    let mut forged = net.vote(1, 0, VoteKind::Prevote, Some(value(1)));
    forged.signature = Signature([7; 64]);
    assert_eq!(
        e.handle(Input::Vote(forged)),
        Err(ConsensusError::InvalidSignature {
            validator: net.key(1)
        })
    );

    let mut swapped = net.vote(1, 0, VoteKind::Prevote, Some(value(1)));
    swapped.vote.value = Some(value(2));
    assert!(matches!(
        e.handle(Input::Vote(swapped)),
        Err(ConsensusError::InvalidSignature { .. })
    ));

    let stranger = Net::new(5);
    let outsider = stranger.vote(4, 0, VoteKind::Prevote, None);
    let mut outsider_here = outsider;
    outsider_here.vote.chain = net.chain;
    assert!(matches!(
        e.handle(Input::Vote(outsider_here)),
        Err(ConsensusError::UnknownValidator { .. })
    ));

    // Validator 2 is not the proposer of round 0 (validator 1 is).
    let not_proposer = net.proposal(2, 0, value(1), None);
    assert!(matches!(
        e.handle(propose_input(not_proposer, true)),
        Err(ConsensusError::WrongProposer { .. })
    ));
    let bad_pol = net.proposal_of_round(0, value(1), Some(0));
    assert!(matches!(
        e.handle(propose_input(bad_pol, true)),
        Err(ConsensusError::InvalidPolRound { .. })
    ));

    for err in [
        ConsensusError::WrongChain {
            expected: Hash([0; 32]),
            found: Hash([1; 32]),
        },
        ConsensusError::InvalidSignature {
            validator: net.key(1),
        },
    ] {
        assert!(err.is_misbehaviour());
    }
    assert_eq!(e.status(), before);
    assert_eq!(
        e.wal().entries().unwrap(),
        log_before,
        "nothing refused is logged"
    );
}

#[test]
fn conflicting_votes_yield_evidence_once() {
    let net = Net::new(4);
    let (mut e, _) = net.engine(0);
    let first = net.vote(2, 0, VoteKind::Prevote, Some(value(1)));
    let second = net.vote(2, 0, VoteKind::Prevote, Some(value(2)));
    assert!(e.handle(Input::Vote(first)).unwrap().is_empty());
    assert!(
        e.handle(Input::Vote(first)).unwrap().is_empty(),
        "a duplicate is not evidence"
    );
    let effects = e.handle(Input::Vote(second)).unwrap();
    assert_eq!(
        effects,
        vec![Effect::Evidence(Evidence::ConflictingVotes {
            first,
            second
        })]
    );
    let third = net.vote(2, 0, VoteKind::Prevote, None);
    assert!(
        e.handle(Input::Vote(third)).unwrap().is_empty(),
        "evidence once per validator and step"
    );
    assert_eq!(
        e.votes().total_power(Round(0), VoteKind::Prevote),
        10,
        "counted once in the total"
    );
}

#[test]
fn conflicting_proposals_yield_evidence_and_the_first_stands() {
    let net = Net::new(4);
    let (mut e, _) = net.engine(0);
    let first = net.proposal_of_round(0, value(1), None);
    let second = net.proposal_of_round(0, value(2), None);
    let effects = e.handle(propose_input(first, true)).unwrap();
    assert_eq!(
        own_vote(&effects, net.key(0), VoteKind::Prevote)
            .unwrap()
            .value,
        Some(value(1))
    );
    let effects = e.handle(propose_input(second, true)).unwrap();
    assert_eq!(
        effects,
        vec![Effect::Evidence(Evidence::ConflictingProposals {
            first,
            second
        })]
    );
    assert!(e.handle(propose_input(second, true)).unwrap().is_empty());
}

#[test]
fn future_heights_are_buffered_within_bounds_and_replayed() {
    let net = Net::new(4);
    let (mut e, _) = net.engine(0);
    // Votes for height 2 arrive early: buffered, not counted.
    for round in 0..(MAX_BUFFERED_PER_VALIDATOR as u32 + 10) {
        e.handle(Input::Vote(net.vote_at(
            1,
            Height(2),
            round,
            VoteKind::Prevote,
            None,
        )))
        .unwrap();
    }
    e.handle(Input::Vote(net.vote_at(
        2,
        Height(2),
        0,
        VoteKind::Prevote,
        None,
    )))
    .unwrap();
    // Far-future heights are dropped.
    e.handle(Input::Vote(net.vote_at(
        3,
        Height(9),
        0,
        VoteKind::Prevote,
        None,
    )))
    .unwrap();
    assert_eq!(e.votes().total_power(Round(0), VoteKind::Prevote), 0);

    // Decide height 1, start height 2: the buffered votes count now.
    e.handle(propose_input(
        net.proposal_of_round(0, value(1), None),
        true,
    ))
    .unwrap();
    net.feed_votes(&mut e, &[1, 2, 3], 0, VoteKind::Precommit, Some(value(1)));
    assert!(e.status().decided);
    e.start_height(Height(2), net.set.clone()).unwrap();
    assert_eq!(e.votes().total_power(Round(0), VoteKind::Prevote), 20);
    let rounds_of_1 = e
        .votes()
        .rounds()
        .filter(|r| e.votes().has_sender(*r, 1))
        .count();
    assert!(rounds_of_1 <= MAX_BUFFERED_PER_VALIDATOR, "{rounds_of_1}");
}

#[test]
fn a_validator_cannot_fill_memory_with_far_rounds() {
    let net = Net::new(4);
    let (mut e, _) = net.engine(0);
    for round in 1..100 {
        e.handle(Input::Vote(net.vote(3, round, VoteKind::Prevote, None)))
            .unwrap();
    }
    let kept = e
        .votes()
        .rounds()
        .filter(|r| e.votes().has_sender(*r, 3))
        .count();
    assert_eq!(kept, MAX_FUTURE_ROUNDS_PER_VALIDATOR);
    assert_eq!(
        e.status().round,
        Round(0),
        "one validator alone moves nobody"
    );
}

#[test]
fn an_observer_follows_and_decides_without_signing() {
    let net = Net::new(4);
    let mut e: TestEngine = cairn_consensus::Engine::new(
        net.chain,
        Net::timeouts(),
        net.set.clone(),
        None,
        cairn_consensus::MemoryWal::default(),
    );
    e.start_height(H, net.set.clone()).unwrap();
    let effects = e
        .handle(propose_input(
            net.proposal_of_round(0, value(3), None),
            true,
        ))
        .unwrap();
    assert!(!effects.iter().any(|e| matches!(e, Effect::Broadcast(_))));
    let effects = net.feed_votes(&mut e, &[1, 2, 3], 0, VoteKind::Precommit, Some(value(3)));
    assert_eq!(decision(&effects).map(|c| c.value), Some(value(3)));
    assert!(e.handle(timeout(0, Step::Precommit)).unwrap().is_empty());
}

/// The certificate of value 5 at height `H`, decided by validator 0's
/// engine with the precommits of 1, 2 and 3.
fn decided(net: &Net) -> cairn_consensus::CommitCertificate {
    let (mut source, _) = net.engine(0);
    source
        .handle(propose_input(
            net.proposal_of_round(0, value(5), None),
            true,
        ))
        .unwrap();
    let effects = net.feed_votes(
        &mut source,
        &[1, 2, 3],
        0,
        VoteKind::Precommit,
        Some(value(5)),
    );
    decision(&effects).unwrap().clone()
}

#[test]
fn a_certificate_from_sync_decides_and_a_bad_one_is_refused() {
    let net = Net::new(4);
    let cert = decided(&net);

    let (mut lagging, _) = net.engine(2);
    let mut short = cert.clone();
    short.signatures.truncate(2);
    assert!(matches!(
        lagging.handle(Input::Certificate(short)),
        Err(ConsensusError::InsufficientPower { .. })
    ));
    assert!(!lagging.status().decided);
    let effects = lagging.handle(Input::Certificate(cert.clone())).unwrap();
    assert_eq!(decision(&effects), Some(&cert));
}

/// A certificate checked in a batch decides without a second check of its
/// signatures, and is logged as any certificate; one checked against
/// another validator set is checked again, and refused if it does not
/// hold for this one.
#[test]
fn a_checked_certificate_decides_and_one_checked_against_another_set_is_checked_again() {
    let net = Net::new(4);
    let cert = decided(&net);

    // Validators 1 and 3 alone: a quorum where 3 holds most of the power,
    // not in the engine's set of equal powers.
    let heavy = cairn_consensus::ValidatorSet::new(
        (0..4)
            .map(|i| cairn_consensus::ValidatorInfo {
                public_key: net.key(i),
                voting_power: if i == 3 { 70 } else { 10 },
            })
            .collect(),
    )
    .unwrap();
    let mut pair = cert.clone();
    pair.signatures
        .retain(|s| s.validator == net.key(1) || s.validator == net.key(3));
    assert_eq!(pair.signatures.len(), 2);
    let checked = cairn_consensus::CommitCertificate::verify_batch(vec![pair], net.chain, &heavy)
        .pop()
        .unwrap()
        .unwrap();
    let (mut lagging, _) = net.engine(2);
    assert!(matches!(
        lagging.handle_checked(checked),
        Err(ConsensusError::InsufficientPower { .. })
    ));
    assert!(!lagging.status().decided);

    let checked =
        cairn_consensus::CommitCertificate::verify_batch(vec![cert.clone()], net.chain, &net.set)
            .pop()
            .unwrap()
            .unwrap();
    let logged = lagging.wal().entries().unwrap().len();
    let effects = lagging.handle_checked(checked).unwrap();
    assert_eq!(decision(&effects), Some(&cert));
    assert!(lagging.status().decided);
    let entries = lagging.wal().entries().unwrap();
    assert_eq!(entries.len(), logged + 1);
    assert_eq!(
        entries.last(),
        Some(&cairn_consensus::WalEntry::Input(Input::Certificate(cert)))
    );
}

#[test]
fn a_sign_state_storage_failure_stops_the_engine() {
    struct FullDisk;
    impl cairn_consensus::SignStateStore for FullDisk {
        fn load(&self) -> Result<Option<cairn_consensus::LastSigned>, ConsensusError> {
            Ok(None)
        }
        fn store(&mut self, _: &cairn_consensus::LastSigned) -> Result<(), ConsensusError> {
            Err(ConsensusError::SignStateStorage("disk full".into()))
        }
    }
    let net = Net::new(4);
    let signer = cairn_consensus::GuardedSigner::new(net.keys[0].clone(), FullDisk).unwrap();
    let mut e = cairn_consensus::Engine::new(
        net.chain,
        Net::timeouts(),
        net.set.clone(),
        Some(signer),
        cairn_consensus::MemoryWal::default(),
    );
    e.start_height(H, net.set.clone()).unwrap();
    // The propose timeout makes it prevote: the signature cannot be recorded.
    let err = e.handle(timeout(0, Step::Propose)).unwrap_err();
    assert!(matches!(err, ConsensusError::SignStateStorage(_)), "{err}");
    assert!(!err.is_misbehaviour());
    // And it stays stopped.
    assert!(
        e.handle(Input::Vote(net.vote(1, 0, VoteKind::Prevote, None)))
            .is_err()
    );
}
