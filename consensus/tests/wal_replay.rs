//! Crash at any point, restart from the write-ahead log: the same state, and
//! never a message that conflicts with one already sent.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::collections::BTreeMap;

use cairn_consensus::{
    Effect, Engine, GuardedSigner, Height, Input, MemorySignState, MemoryWal, Message, Round,
    SignStateStore, Status, Step, Wal, WalEntry,
};
use common::*;

/// A script that walks validator 1 (the proposer of round 0) through two rounds:
/// it proposes, the others split, round 1's proposal gets a polka and it locks.
fn script(net: &Net) -> Vec<Input> {
    use cairn_consensus::VoteKind::*;
    let (a, b) = (value(1), value(2));
    vec![
        Input::ProposeValue {
            height: H,
            round: Round(0),
            value: a,
        },
        Input::Vote(net.vote(2, 0, Prevote, Some(a))),
        Input::Vote(net.vote(3, 0, Prevote, None)),
        Input::Vote(net.vote(0, 0, Prevote, None)),
        timeout(0, Step::Prevote),
        Input::Vote(net.vote(2, 0, Precommit, None)),
        Input::Vote(net.vote(3, 0, Precommit, None)),
        timeout(0, Step::Precommit),
        propose_input(net.proposal_of_round(1, b, None), true),
        Input::Vote(net.vote(2, 1, Prevote, Some(b))),
        Input::Vote(net.vote(3, 1, Prevote, Some(b))),
        Input::Vote(net.vote(0, 1, Precommit, Some(b))),
        Input::Vote(net.vote(2, 1, Precommit, Some(b))),
    ]
}

fn copy_wal(wal: &MemoryWal) -> MemoryWal {
    let mut copy = MemoryWal::default();
    for entry in wal.entries().unwrap() {
        match entry {
            WalEntry::StartHeight(h) => copy.reset(h).unwrap(),
            other => copy.append(&other).unwrap(),
        }
    }
    copy.commit().unwrap();
    copy
}

fn copy_sign_state(state: &MemorySignState) -> MemorySignState {
    let mut copy = MemorySignState::default();
    if let Some(last) = state.load_last() {
        copy.store(&last).unwrap();
    }
    copy
}

fn signed_by(effects: &[Effect], net: &Net, me: usize) -> Vec<Message> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Broadcast(m @ Message::Vote(v)) if v.vote.validator == net.key(me) => Some(*m),
            Effect::Broadcast(m @ Message::Proposal(p)) if p.proposal.proposer == net.key(me) => {
                Some(*m)
            }
            _ => None,
        })
        .collect()
}

fn position(m: &Message) -> (Round, Step) {
    match m {
        Message::Vote(v) => (v.vote.round, v.vote.kind.step()),
        Message::Proposal(p) => (p.proposal.round, Step::Propose),
    }
}

#[test]
fn a_restart_after_any_input_reaches_the_same_state_and_sends_no_conflicting_message() {
    let net = Net::new(4);
    let me = 1;
    let sign = MemorySignState::default();
    let wal = MemoryWal::default();
    let (mut engine, first) = net.engine_with(me, sign.clone(), wal.clone());
    let mut sent: BTreeMap<(Round, Step), Message> = BTreeMap::new();
    let remember = |messages: Vec<Message>, sent: &mut BTreeMap<(Round, Step), Message>| {
        for m in messages {
            let earlier = sent.entry(position(&m)).or_insert(m);
            assert_eq!(*earlier, m, "two different messages at {:?}", position(&m));
        }
    };
    remember(signed_by(&first, &net, me), &mut sent);
    let mut statuses: Vec<Status> = Vec::new();
    for input in script(&net) {
        let effects = engine.handle(input).unwrap();
        remember(signed_by(&effects, &net, me), &mut sent);
        statuses.push(engine.status());

        // Crash now: restart from copies of the durable log and sign state.
        let signer = GuardedSigner::new(net.keys[me].clone(), copy_sign_state(&sign)).unwrap();
        let (restarted, replayed) = Engine::recover(
            net.chain,
            Net::timeouts(),
            net.set.clone(),
            H,
            Some(signer),
            copy_wal(&wal),
        )
        .unwrap();
        assert_eq!(
            restarted.status(),
            engine.status(),
            "after {} inputs",
            statuses.len()
        );
        assert!(
            !replayed.iter().any(|e| matches!(e, Effect::SignRefused(_))),
            "{replayed:?}"
        );
        remember(signed_by(&replayed, &net, me), &mut sent);
    }
    let last = statuses.last().unwrap();
    assert_eq!(
        last.locked,
        Some((Round(1), value(2))),
        "the script ends locked on b in round 1"
    );
    assert!(sent.len() >= 5, "proposal, votes of two rounds: {sent:?}");
}

#[test]
fn a_lost_log_does_not_lead_to_a_double_signature() {
    // The data folder is restored from an old snapshot: the log is gone, the
    // sign state (kept apart) is not. The node must not sign anything else
    // at or before its last signed step.
    let net = Net::new(4);
    let me = 0;
    let sign = MemorySignState::default();
    let (mut engine, _) = net.engine_with(me, sign.clone(), MemoryWal::default());
    let effects = engine
        .handle(propose_input(
            net.proposal_of_round(0, value(1), None),
            true,
        ))
        .unwrap();
    let original = own_vote(&effects, net.key(me), cairn_consensus::VoteKind::Prevote).unwrap();
    assert_eq!(original.value, Some(value(1)));

    let signer = GuardedSigner::new(net.keys[me].clone(), sign.clone()).unwrap();
    let (mut restarted, _) = Engine::recover(
        net.chain,
        Net::timeouts(),
        net.set.clone(),
        H,
        Some(signer),
        MemoryWal::default(),
    )
    .unwrap();
    // Without its log, the node times out and would prevote nil: refused.
    let effects = restarted.handle(timeout(0, Step::Propose)).unwrap();
    assert!(own_votes(&effects, net.key(me)).is_empty());
    assert!(effects.iter().any(|e| matches!(e, Effect::SignRefused(_))));
    assert_eq!(restarted.status().step, Step::Prevote);
}

#[test]
fn a_log_of_an_older_height_is_ignored() {
    let net = Net::new(4);
    let wal = MemoryWal::default();
    let (mut engine, _) = net.engine_with(0, MemorySignState::default(), wal.clone());
    engine.handle(timeout(0, Step::Propose)).unwrap();
    assert!(wal.len() > 1);
    // The node committed height 1 and restarts at height 2 before resetting its log.
    let signer = GuardedSigner::new(net.keys[0].clone(), MemorySignState::default()).unwrap();
    let (restarted, _) = Engine::recover(
        net.chain,
        Net::timeouts(),
        net.set.clone(),
        Height(2),
        Some(signer),
        wal.clone(),
    )
    .unwrap();
    assert_eq!(restarted.status().height, Height(2));
    assert_eq!(restarted.status().step, Step::Propose);
    assert_eq!(
        wal.entries().unwrap(),
        vec![WalEntry::StartHeight(Height(2))]
    );
}

#[test]
fn a_storage_failure_during_replay_stops_the_recovery() {
    struct FullDisk;
    impl SignStateStore for FullDisk {
        fn load(
            &self,
        ) -> Result<Option<cairn_consensus::LastSigned>, cairn_consensus::ConsensusError> {
            Ok(None)
        }
        fn store(
            &mut self,
            _: &cairn_consensus::LastSigned,
        ) -> Result<(), cairn_consensus::ConsensusError> {
            Err(cairn_consensus::ConsensusError::SignStateStorage(
                "disk full".into(),
            ))
        }
    }
    let net = Net::new(4);
    // A log whose replay must sign (its signed message was never logged).
    let mut wal = MemoryWal::default();
    wal.reset(H).unwrap();
    wal.append(&WalEntry::Input(timeout(0, Step::Propose)))
        .unwrap();
    wal.commit().unwrap();
    let signer = GuardedSigner::new(net.keys[0].clone(), FullDisk).unwrap();
    let result = Engine::recover(
        net.chain,
        Net::timeouts(),
        net.set.clone(),
        H,
        Some(signer),
        wal,
    );
    assert!(
        matches!(
            result,
            Err(cairn_consensus::ConsensusError::SignStateStorage(_))
        ),
        "{:?}",
        result.err()
    );
}
