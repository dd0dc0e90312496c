//! `CommitCertificate::verify`, the check a verifier's light client relies on.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use cairn_consensus::{
    CommitCertificate, CommitSignature, ConsensusError, Round, Signature, ValidatorInfo,
    ValidatorSet, VoteKind,
};
use cairn_genesis::Hash;
use common::*;
use ed25519_dalek::{Signer as _, SigningKey};

fn certificate(net: &Net, signers: &[usize]) -> CommitCertificate {
    let v = value(9);
    CommitCertificate {
        chain: net.chain,
        height: H,
        round: Round(2),
        value: v,
        signatures: signers
            .iter()
            .map(|&i| CommitSignature {
                validator: net.key(i),
                signature: net.vote(i, 2, VoteKind::Precommit, Some(v)).signature,
            })
            .collect(),
    }
}

#[test]
fn a_quorum_of_valid_precommits_verifies() {
    let net = Net::new(4);
    let verified = certificate(&net, &[0, 2, 3])
        .verify(net.chain, &net.set)
        .unwrap();
    assert_eq!(verified.signed_power, 30);
    assert_eq!(verified.signers, vec![0, 2, 3]);
    assert!(
        certificate(&net, &[0, 1, 2, 3])
            .verify(net.chain, &net.set)
            .is_ok()
    );
}

#[test]
fn too_little_power_is_refused() {
    let net = Net::new(4);
    assert_eq!(
        certificate(&net, &[0, 1]).verify(net.chain, &net.set),
        Err(ConsensusError::InsufficientPower {
            found: 20,
            needed_more_than: 26
        })
    );
    assert!(matches!(
        certificate(&net, &[]).verify(net.chain, &net.set),
        Err(ConsensusError::InsufficientPower { .. })
    ));
}

#[test]
fn a_signer_outside_the_set_is_refused() {
    let net = Net::new(4);
    let mut cert = certificate(&net, &[0, 1]);
    let stranger = SigningKey::from_bytes(&[99; 32]);
    let vote = cert.precommit(cairn_genesis::PublicKey::from(stranger.verifying_key()));
    cert.signatures.push(CommitSignature {
        validator: vote.validator,
        signature: Signature(stranger.sign(&vote.sign_bytes()).to_bytes()),
    });
    assert_eq!(
        cert.verify(net.chain, &net.set),
        Err(ConsensusError::UnknownValidator {
            validator: vote.validator
        })
    );
}

#[test]
fn a_signature_counted_twice_is_refused() {
    let net = Net::new(4);
    let mut cert = certificate(&net, &[0, 1]);
    cert.signatures.push(cert.signatures[1]);
    assert_eq!(
        cert.verify(net.chain, &net.set),
        Err(ConsensusError::DuplicateSignature {
            validator: net.key(1)
        })
    );
}

#[test]
fn a_signature_over_other_bytes_is_refused() {
    let net = Net::new(4);
    // Validator 3 signed a precommit for another value; the certificate claims value 9.
    let mut cert = certificate(&net, &[0, 1, 2]);
    cert.signatures[2].signature = net
        .vote(2, 2, VoteKind::Precommit, Some(value(8)))
        .signature;
    assert_eq!(
        cert.verify(net.chain, &net.set),
        Err(ConsensusError::InvalidSignature {
            validator: net.key(2)
        })
    );
    // A prevote is not a precommit, even for the same value.
    let mut cert = certificate(&net, &[0, 1, 2]);
    cert.signatures[0].signature = net.vote(0, 2, VoteKind::Prevote, Some(value(9))).signature;
    assert!(matches!(
        cert.verify(net.chain, &net.set),
        Err(ConsensusError::InvalidSignature { .. })
    ));
    // Another round.
    let mut cert = certificate(&net, &[0, 1, 2]);
    cert.round = Round(3);
    assert!(matches!(
        cert.verify(net.chain, &net.set),
        Err(ConsensusError::InvalidSignature { .. })
    ));
}

#[test]
fn another_chain_is_refused() {
    let net = Net::new(4);
    let cert = certificate(&net, &[0, 1, 2]);
    let other = Hash([0xee; 32]);
    assert_eq!(
        cert.verify(other, &net.set),
        Err(ConsensusError::WrongChain {
            expected: other,
            found: net.chain
        })
    );
    // Relabelling the chain field does not help: the signatures bind the real one.
    let mut relabelled = cert.clone();
    relabelled.chain = other;
    assert!(matches!(
        relabelled.verify(other, &net.set),
        Err(ConsensusError::InvalidSignature { .. })
    ));
}

#[test]
fn power_not_headcount_decides() {
    let net = Net::new(4);
    let heavy = ValidatorSet::new(
        (0..4)
            .map(|i| ValidatorInfo {
                public_key: net.key(i),
                voting_power: if i == 3 { 70 } else { 10 },
            })
            .collect(),
    )
    .unwrap();
    assert!(matches!(
        certificate(&net, &[0, 1, 2]).verify(net.chain, &heavy),
        Err(ConsensusError::InsufficientPower { .. })
    ));
    assert!(certificate(&net, &[0, 3]).verify(net.chain, &heavy).is_ok());
}

#[test]
fn a_compact_certificate_keeps_a_quorum_and_expands_back() {
    let net = Net::new(7);
    // Signed by all seven, listed out of order: the compact form keeps the
    // lowest indexes until their power is a quorum (5 of 7 at equal power).
    let full = certificate(&net, &[6, 0, 3, 1, 5, 2, 4]);
    let compact = full.compact(&net.set).unwrap();
    assert_eq!(compact.signers, vec![0b0001_1111]);
    assert_eq!(compact.signatures.len(), 5);
    assert!(borsh::to_vec(&compact).unwrap().len() < borsh::to_vec(&full).unwrap().len() / 2);
    let expanded = compact
        .expand(full.chain, full.height, full.value, &net.set)
        .unwrap();
    assert_eq!(
        expanded.verify(net.chain, &net.set).unwrap().signers,
        vec![0, 1, 2, 3, 4]
    );
    // Read as another block's certificate, it does not verify.
    let other = compact
        .expand(full.chain, full.height, value(10), &net.set)
        .unwrap();
    assert!(matches!(
        other.verify(net.chain, &net.set),
        Err(ConsensusError::InvalidSignature { .. })
    ));
    // No quorum, no compact form.
    assert_eq!(certificate(&net, &[0, 1, 2]).compact(&net.set), None);
}

#[test]
fn malformed_signer_bits_are_refused() {
    let net = Net::new(4);
    let full = certificate(&net, &[0, 1, 2, 3]);
    let good = full.compact(&net.set).unwrap();
    let expand = |c: &cairn_consensus::CompactCertificate| {
        c.expand(full.chain, full.height, full.value, &net.set)
    };
    let mut long = good.clone();
    long.signers.push(0);
    let mut past = good.clone();
    past.signers[0] |= 0b1000_0000;
    past.signatures.push(good.signatures[0]);
    let mut short = good.clone();
    short.signatures.pop();
    for bad in [long, past, short] {
        assert!(
            matches!(expand(&bad), Err(ConsensusError::MalformedSigners { .. })),
            "{bad:?}"
        );
    }
    assert!(expand(&good).unwrap().verify(net.chain, &net.set).is_ok());
}

/// Every way `verify` refuses a certificate, and two it accepts.
fn assorted(net: &Net) -> Vec<CommitCertificate> {
    let good = certificate(net, &[0, 1, 2]);
    let mut bad_signature = certificate(net, &[0, 1, 2]);
    bad_signature.signatures[1].signature = net
        .vote(1, 2, VoteKind::Precommit, Some(value(8)))
        .signature;
    let mut twice = certificate(net, &[0, 1]);
    twice.signatures.push(twice.signatures[0]);
    let mut too_many = certificate(net, &[0, 1, 2, 3]);
    too_many.signatures.push(too_many.signatures[3]);
    let mut other_chain = good.clone();
    other_chain.chain = Hash([0xee; 32]);
    let mut stranger = certificate(net, &[0, 1, 2]);
    stranger.signatures[2].validator = cairn_genesis::PublicKey([7; 32]);
    vec![
        good,
        bad_signature,
        certificate(net, &[0, 1]),
        twice,
        too_many,
        other_chain,
        stranger,
        certificate(net, &[3, 1, 0, 2]),
    ]
}

#[test]
fn a_batch_check_gives_each_certificate_the_verdict_verify_gives() {
    let net = Net::new(4);
    let certificates = assorted(&net);
    let alone: Vec<_> = certificates
        .iter()
        .map(|c| c.verify(net.chain, &net.set).map(|_| ()))
        .collect();
    assert!(alone[0].is_ok() && alone[7].is_ok());
    assert!(alone[1..7].iter().all(Result::is_err), "{alone:?}");
    let batched = CommitCertificate::verify_batch(certificates.clone(), net.chain, &net.set);
    assert_eq!(batched.len(), certificates.len());
    for ((checked, verdict), certificate) in batched.into_iter().zip(alone).zip(certificates) {
        match checked {
            Ok(checked) => {
                assert_eq!(verdict, Ok(()));
                assert_eq!(checked.certificate(), &certificate);
                assert_eq!(checked.set(), net.set.hash());
            }
            Err(e) => assert_eq!(Err(e), verdict),
        }
    }
}

/// Runs longer than one batch of signatures, a bad signature inside: only
/// its certificate is refused.
#[test]
fn a_bad_signature_in_a_long_run_refuses_its_certificate_alone() {
    let net = Net::new(4);
    let mut certificates: Vec<CommitCertificate> =
        (0..120).map(|_| certificate(&net, &[0, 1, 2, 3])).collect();
    certificates[77].signatures[3].signature =
        net.vote(3, 2, VoteKind::Prevote, Some(value(9))).signature;
    let verdicts = CommitCertificate::verify_batch(certificates, net.chain, &net.set);
    for (i, verdict) in verdicts.iter().enumerate() {
        if i == 77 {
            assert_eq!(
                verdict.as_ref().err(),
                Some(&ConsensusError::InvalidSignature {
                    validator: net.key(3)
                })
            );
        } else {
            assert!(verdict.is_ok(), "{i}: {verdict:?}");
        }
    }
    assert!(CommitCertificate::verify_batch(Vec::new(), net.chain, &net.set).is_empty());
}
