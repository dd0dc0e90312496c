//! One scenario per line group of Algorithm 1 ("The latest gossip on BFT
//! consensus", Buchman, Kwon, Milosevic 2018). Each drives one engine
//! (validator 0 of four, equal power) with signed messages from the others
//! and fails if the rule it names were missing or wrong.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use cairn_consensus::{Effect, Input, Round, Step, ValueId, VoteKind};
use common::*;

const ME: usize = 0;

fn net() -> Net {
    Net::new(4)
}

/// Validator 0 locked on `a` at round 0: proposal `a` from validator 1, polka from 1, 2, 3.
fn locked_on(net: &Net, a: ValueId) -> TestEngine {
    let (mut e, _) = net.engine(ME);
    e.handle(propose_input(net.proposal_of_round(0, a, None), true))
        .unwrap();
    net.feed_votes(&mut e, &[1, 2, 3], 0, VoteKind::Prevote, Some(a));
    assert_eq!(e.status().locked, Some((Round(0), a)));
    e
}

/// Round `round` ends without a decision: nil precommits from 1, 2 and 3, then the precommit timeout.
fn end_round(net: &Net, e: &mut TestEngine, round: u32) -> Vec<Effect> {
    net.feed_votes(e, &[1, 2, 3], round, VoteKind::Precommit, None);
    e.handle(timeout(round, Step::Precommit)).unwrap()
}

#[test]
fn lines_11_21_start_round_asks_the_proposer_for_a_value_and_others_wait() {
    let net = net();
    // Validator 1 proposes at (1, 0): it asks the application for a value.
    let (_, effects) = net.engine(1);
    assert!(effects.iter().any(|e| matches!(
        e,
        Effect::GetValue {
            round: Round(0),
            ..
        }
    )));
    // Validator 0 does not propose; it schedules OnTimeoutPropose(h, 0).
    let (_, effects) = net.engine(ME);
    assert!(!effects.iter().any(|e| matches!(e, Effect::GetValue { .. })));
    assert_eq!(scheduled(&effects, Step::Propose).len(), 1);
}

#[test]
fn lines_16_19_the_proposer_proposes_the_applications_value() {
    let net = net();
    let (mut e, _) = net.engine(1);
    let v = value(7);
    let effects = e
        .handle(Input::ProposeValue {
            height: H,
            round: Round(0),
            value: v,
        })
        .unwrap();
    let p = proposals(&effects);
    assert_eq!(p.len(), 1);
    assert_eq!((p[0].value, p[0].pol_round), (v, None));
    // Line 22 applies to its own proposal at once: it prevotes v.
    assert_eq!(
        own_vote(&effects, net.key(1), VoteKind::Prevote)
            .unwrap()
            .value,
        Some(v)
    );
    // A second value for the same round is ignored.
    let again = e
        .handle(Input::ProposeValue {
            height: H,
            round: Round(0),
            value: value(8),
        })
        .unwrap();
    assert!(proposals(&again).is_empty());
}

#[test]
fn lines_14_15_a_proposer_with_a_valid_value_re_proposes_it_with_its_round() {
    let net = net();
    let a = value(1);
    // Validator 0 proposes at round 3. It sees a polka for `a` at round 2, then moves on.
    let (mut e, _) = net.engine(ME);
    for r in 0..2 {
        e.handle(timeout(r, Step::Propose)).unwrap();
        net.feed_votes(&mut e, &[1, 2, 3], r, VoteKind::Prevote, None);
        end_round(&net, &mut e, r);
    }
    e.handle(propose_input(net.proposal_of_round(2, a, None), true))
        .unwrap();
    net.feed_votes(&mut e, &[1, 2, 3], 2, VoteKind::Prevote, Some(a));
    assert_eq!(e.status().valid, Some((Round(2), a)));
    let effects = end_round(&net, &mut e, 2);
    assert_eq!(e.status().round, Round(3));
    let p = proposals(&effects);
    assert_eq!(p.len(), 1, "{effects:?}");
    assert_eq!(
        (p[0].round, p[0].value, p[0].pol_round),
        (Round(3), a, Some(Round(2)))
    );
    assert!(!effects.iter().any(|e| matches!(e, Effect::GetValue { .. })));
}

#[test]
fn lines_22_27_prevote_a_valid_proposal_nil_otherwise() {
    let net = net();
    let (mut e, _) = net.engine(ME);
    let effects = e
        .handle(propose_input(
            net.proposal_of_round(0, value(1), None),
            true,
        ))
        .unwrap();
    assert_eq!(
        own_vote(&effects, net.key(ME), VoteKind::Prevote)
            .unwrap()
            .value,
        Some(value(1))
    );
    assert_eq!(e.status().step, Step::Prevote);

    let (mut e, _) = net.engine(ME);
    let effects = e
        .handle(propose_input(
            net.proposal_of_round(0, value(1), None),
            false,
        ))
        .unwrap();
    assert_eq!(
        own_vote(&effects, net.key(ME), VoteKind::Prevote)
            .unwrap()
            .value,
        None
    );
}

#[test]
fn line_23_a_locked_validator_prevotes_nil_for_another_value() {
    let net = net();
    let a = value(1);
    let mut e = locked_on(&net, a);
    end_round(&net, &mut e, 0);
    // Round 1: a fresh proposal of b.
    let effects = e
        .handle(propose_input(
            net.proposal_of_round(1, value(2), None),
            true,
        ))
        .unwrap();
    assert_eq!(
        own_vote(&effects, net.key(ME), VoteKind::Prevote)
            .unwrap()
            .value,
        None
    );
}

#[test]
fn line_23_a_locked_validator_prevotes_its_locked_value_again() {
    let net = net();
    let a = value(1);
    let mut e = locked_on(&net, a);
    end_round(&net, &mut e, 0);
    let effects = e
        .handle(propose_input(net.proposal_of_round(1, a, None), true))
        .unwrap();
    assert_eq!(
        own_vote(&effects, net.key(ME), VoteKind::Prevote)
            .unwrap()
            .value,
        Some(a)
    );
}

#[test]
fn lines_28_33_a_proof_of_lock_at_or_after_the_lock_unlocks() {
    let net = net();
    let (a, b) = (value(1), value(2));
    let mut e = locked_on(&net, a);
    end_round(&net, &mut e, 0);
    // Round 1 passes for validator 0 without seeing its proposal or prevotes.
    e.handle(timeout(1, Step::Propose)).unwrap();
    end_round(&net, &mut e, 1);
    assert_eq!(e.status().round, Round(2));
    assert_eq!(e.status().locked, Some((Round(0), a)));
    // Round 1's polka for b arrives late, then b is re-proposed with POL round 1 >= locked round 0.
    net.feed_votes(&mut e, &[1, 2, 3], 1, VoteKind::Prevote, Some(b));
    let effects = e
        .handle(propose_input(net.proposal_of_round(2, b, Some(1)), true))
        .unwrap();
    assert_eq!(
        own_vote(&effects, net.key(ME), VoteKind::Prevote)
            .unwrap()
            .value,
        Some(b)
    );
}

#[test]
fn lines_28_33_wait_for_the_proof_and_refuse_an_older_one_or_an_invalid_value() {
    let net = net();
    let (a, b) = (value(1), value(2));
    // No 2f+1 prevotes at the POL round yet: no prevote, the step stays propose.
    let (mut e, _) = net.engine(ME);
    for r in 0..2 {
        e.handle(timeout(r, Step::Propose)).unwrap();
        end_round(&net, &mut e, r);
    }
    net.feed_votes(&mut e, &[1, 2], 1, VoteKind::Prevote, Some(b));
    let effects = e
        .handle(propose_input(net.proposal_of_round(2, b, Some(1)), true))
        .unwrap();
    assert!(own_vote(&effects, net.key(ME), VoteKind::Prevote).is_none());
    assert_eq!(e.status().step, Step::Propose);
    // The third prevote completes the proof: prevote b.
    let effects = net.feed_votes(&mut e, &[3], 1, VoteKind::Prevote, Some(b));
    assert_eq!(
        own_vote(&effects, net.key(ME), VoteKind::Prevote)
            .unwrap()
            .value,
        Some(b)
    );

    // Locked at round 1 on a; a proof for b from round 0 is older than the lock: nil.
    let (mut e, _) = net.engine(ME);
    net.feed_votes(&mut e, &[1, 2, 3], 0, VoteKind::Prevote, Some(b));
    e.handle(timeout(0, Step::Propose)).unwrap();
    end_round(&net, &mut e, 0);
    e.handle(propose_input(net.proposal_of_round(1, a, None), true))
        .unwrap();
    net.feed_votes(&mut e, &[1, 2, 3], 1, VoteKind::Prevote, Some(a));
    assert_eq!(e.status().locked, Some((Round(1), a)));
    end_round(&net, &mut e, 1);
    let effects = e
        .handle(propose_input(net.proposal_of_round(2, b, Some(0)), true))
        .unwrap();
    assert_eq!(
        own_vote(&effects, net.key(ME), VoteKind::Prevote)
            .unwrap()
            .value,
        None
    );

    // An invalid value is refused even with a proof.
    let (mut e, _) = net.engine(ME);
    net.feed_votes(&mut e, &[1, 2, 3], 0, VoteKind::Prevote, Some(b));
    e.handle(timeout(0, Step::Propose)).unwrap();
    end_round(&net, &mut e, 0);
    let effects = e
        .handle(propose_input(net.proposal_of_round(1, b, Some(0)), false))
        .unwrap();
    assert_eq!(
        own_vote(&effects, net.key(ME), VoteKind::Prevote)
            .unwrap()
            .value,
        None
    );
}

#[test]
fn lines_34_35_any_prevote_quorum_schedules_the_prevote_timeout_once() {
    let net = net();
    let (mut e, _) = net.engine(ME);
    e.handle(timeout(0, Step::Propose)).unwrap(); // prevote nil, step prevote
    let mut effects = net.feed_votes(&mut e, &[1], 0, VoteKind::Prevote, Some(value(1)));
    assert!(
        scheduled(&effects, Step::Prevote).is_empty(),
        "two of four is no quorum"
    );
    effects = net.feed_votes(&mut e, &[2], 0, VoteKind::Prevote, Some(value(2)));
    assert_eq!(scheduled(&effects, Step::Prevote).len(), 1);
    effects = net.feed_votes(&mut e, &[3], 0, VoteKind::Prevote, Some(value(2)));
    assert!(
        scheduled(&effects, Step::Prevote).is_empty(),
        "only the first time"
    );
    assert_eq!(e.status().step, Step::Prevote);
}

#[test]
fn lines_36_43_a_polka_locks_and_precommits_in_the_prevote_step() {
    let net = net();
    let a = value(1);
    let (mut e, _) = net.engine(ME);
    e.handle(propose_input(net.proposal_of_round(0, a, None), true))
        .unwrap();
    let effects = net.feed_votes(&mut e, &[1, 2], 0, VoteKind::Prevote, Some(a));
    assert_eq!(
        own_vote(&effects, net.key(ME), VoteKind::Precommit)
            .unwrap()
            .value,
        Some(a)
    );
    let s = e.status();
    assert_eq!(
        (s.step, s.locked, s.valid),
        (Step::Precommit, Some((Round(0), a)), Some((Round(0), a)))
    );
}

#[test]
fn lines_42_43_a_late_polka_updates_the_valid_value_but_not_the_lock() {
    let net = net();
    let a = value(1);
    let (mut e, _) = net.engine(ME);
    e.handle(timeout(0, Step::Propose)).unwrap(); // prevote nil
    net.feed_votes(&mut e, &[1, 2], 0, VoteKind::Prevote, Some(a));
    e.handle(timeout(0, Step::Prevote)).unwrap(); // precommit nil: step precommit
    assert_eq!(e.status().step, Step::Precommit);
    // The proposal and the third prevote for it arrive late.
    e.handle(propose_input(net.proposal_of_round(0, a, None), true))
        .unwrap();
    let effects = net.feed_votes(&mut e, &[3], 0, VoteKind::Prevote, Some(a));
    assert!(own_vote(&effects, net.key(ME), VoteKind::Precommit).is_none());
    let s = e.status();
    assert_eq!(s.valid, Some((Round(0), a)));
    assert_eq!(s.locked, None);
}

#[test]
fn lines_44_46_a_nil_polka_precommits_nil() {
    let net = net();
    let (mut e, _) = net.engine(ME);
    e.handle(timeout(0, Step::Propose)).unwrap();
    let effects = net.feed_votes(&mut e, &[1, 2], 0, VoteKind::Prevote, None);
    assert_eq!(
        own_vote(&effects, net.key(ME), VoteKind::Precommit)
            .unwrap()
            .value,
        None
    );
    assert_eq!(e.status().step, Step::Precommit);
}

#[test]
fn lines_47_48_any_precommit_quorum_schedules_the_precommit_timeout_once() {
    let net = net();
    let (mut e, _) = net.engine(ME);
    let mut effects = net.feed_votes(&mut e, &[1, 2], 0, VoteKind::Precommit, Some(value(1)));
    assert!(scheduled(&effects, Step::Precommit).is_empty());
    effects = net.feed_votes(&mut e, &[3], 0, VoteKind::Precommit, None);
    assert_eq!(scheduled(&effects, Step::Precommit).len(), 1);
    // Even in the propose step; and only once.
    assert_eq!(e.status().step, Step::Propose);
    effects = e.handle(timeout(0, Step::Propose)).unwrap();
    assert!(scheduled(&effects, Step::Precommit).is_empty());
}

#[test]
fn lines_49_54_decide_on_a_quorum_of_precommits_even_from_a_past_round() {
    let net = net();
    let a = value(1);
    let (mut e, _) = net.engine(ME);
    e.handle(propose_input(net.proposal_of_round(0, a, None), true))
        .unwrap();
    // Round 0 ends for validator 0 without a decision (a precommit quorum of mixed values).
    net.feed_votes(&mut e, &[1], 0, VoteKind::Precommit, None);
    net.feed_votes(&mut e, &[2], 0, VoteKind::Precommit, Some(a));
    e.handle(timeout(0, Step::Propose)).unwrap_or_default();
    e.handle(timeout(0, Step::Precommit)).unwrap();
    assert_eq!(e.status().round, Round(1));
    assert!(e.decision().is_none());
    // Round 0's remaining precommits for `a` arrive while in round 1: decide `a`, at round 0.
    let effects = net.feed_votes(&mut e, &[3], 0, VoteKind::Precommit, Some(a));
    assert!(
        decision(&effects).is_none(),
        "two of four for a is no quorum"
    );
    let effects = net.feed_votes(&mut e, &[1], 0, VoteKind::Precommit, Some(a));
    let cert = decision(&effects).expect("decides on round 0's precommits");
    assert_eq!((cert.height, cert.round, cert.value), (H, Round(0), a));
    let verified = cert.verify(net.chain, &net.set).unwrap();
    assert_eq!(verified.signers, vec![1, 2, 3]);
    assert!(e.status().decided);
    // A decided height takes no more input.
    assert!(e.handle(timeout(1, Step::Propose)).unwrap().is_empty());
}

#[test]
fn line_49_no_decision_without_the_proposal_or_for_an_invalid_value() {
    let net = net();
    let a = value(1);
    let (mut e, _) = net.engine(ME);
    let effects = net.feed_votes(&mut e, &[1, 2, 3], 0, VoteKind::Precommit, Some(a));
    assert!(decision(&effects).is_none(), "the value itself is unknown");
    let effects = e
        .handle(propose_input(net.proposal_of_round(0, a, None), true))
        .unwrap();
    assert_eq!(decision(&effects).map(|c| c.value), Some(a));

    let (mut e, _) = net.engine(ME);
    e.handle(propose_input(net.proposal_of_round(0, a, None), false))
        .unwrap();
    let effects = net.feed_votes(&mut e, &[1, 2, 3], 0, VoteKind::Precommit, Some(a));
    assert!(
        decision(&effects).is_none(),
        "an invalid value is never decided"
    );
}

#[test]
fn lines_55_56_f_plus_one_messages_from_a_higher_round_skip_to_it() {
    let net = net();
    let (mut e, _) = net.engine(ME);
    net.feed_votes(&mut e, &[1], 5, VoteKind::Prevote, None);
    assert_eq!(e.status().round, Round(0), "one of four is not f+1");
    let effects = net.feed_votes(&mut e, &[2], 5, VoteKind::Precommit, None);
    assert_eq!(e.status().round, Round(5));
    assert_eq!(
        scheduled(&effects, Step::Propose).last().unwrap().round,
        Round(5)
    );
}

#[test]
fn lines_57_60_propose_timeout_prevotes_nil_only_if_still_proposing() {
    let net = net();
    let (mut e, _) = net.engine(ME);
    let effects = e.handle(timeout(0, Step::Propose)).unwrap();
    assert_eq!(
        own_vote(&effects, net.key(ME), VoteKind::Prevote)
            .unwrap()
            .value,
        None
    );
    // Stale: the step has moved on.
    let effects = e.handle(timeout(0, Step::Propose)).unwrap();
    assert!(own_votes(&effects, net.key(ME)).is_empty());
    // Stale: another round.
    let (mut e, _) = net.engine(ME);
    let effects = e.handle(timeout(1, Step::Propose)).unwrap();
    assert!(effects.is_empty());
    assert_eq!(e.status().step, Step::Propose);
}

#[test]
fn lines_61_64_prevote_timeout_precommits_nil_only_if_still_prevoting() {
    let net = net();
    let (mut e, _) = net.engine(ME);
    let effects = e.handle(timeout(0, Step::Prevote)).unwrap();
    assert!(effects.is_empty(), "still in the propose step");
    e.handle(timeout(0, Step::Propose)).unwrap();
    let effects = e.handle(timeout(0, Step::Prevote)).unwrap();
    assert_eq!(
        own_vote(&effects, net.key(ME), VoteKind::Precommit)
            .unwrap()
            .value,
        None
    );
    assert_eq!(e.status().step, Step::Precommit);
}

#[test]
fn lines_65_67_precommit_timeout_starts_the_next_round_only_for_the_current_round() {
    let net = net();
    let (mut e, _) = net.engine(ME);
    let effects = e.handle(timeout(0, Step::Precommit)).unwrap();
    assert_eq!(e.status().round, Round(1));
    assert_eq!(scheduled(&effects, Step::Propose).len(), 1);
    e.handle(timeout(0, Step::Precommit)).unwrap();
    assert_eq!(
        e.status().round,
        Round(1),
        "a stale timeout changes nothing"
    );
}

#[test]
fn timeouts_grow_linearly_with_the_round() {
    let t = Net::timeouts();
    for step in [Step::Propose, Step::Prevote, Step::Precommit] {
        let d0 = t.duration_ms(step, Round(0));
        let d1 = t.duration_ms(step, Round(1));
        let d5 = t.duration_ms(step, Round(5));
        assert!(d1 > d0);
        assert_eq!(d5 - d0, 5 * (d1 - d0));
    }
}
