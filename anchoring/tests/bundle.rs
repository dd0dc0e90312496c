//! Proof bundles verified offline: a valid credential, every reason to
//! refuse one, and any altered byte refused without a panic.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;
#[path = "common/node.rs"]
mod node;

use cairn_anchoring::{
    Action, AnchorItem, CheckName, CompactHeader, CredentialDocument, Field, Presentation,
    ProofBundle, RevocationReason, Salt, Status, Trust, verify,
};
use cairn_genesis::{Hash, Timestamp};
use common::*;
use node::{Node, all_signers, certify};
use proptest::prelude::*;

/// A driver's license with fixed salts, so that every run builds the same
/// state (and the same proof sizes).
fn license() -> CredentialDocument {
    license_salted(1)
}

/// The same fields under other salts: another credential.
fn license_salted(base: u8) -> CredentialDocument {
    let fields = [
        ("holder_name", "李四", 0u8),
        ("id_number", "320102198805051234", 1),
        ("class", "C1", 2),
    ]
    .into_iter()
    .map(|(k, v, i)| {
        (
            k.to_owned(),
            Field {
                value: v.to_owned(),
                salt: Salt([base.wrapping_add(i); 32]),
            },
        )
    })
    .collect();
    let doc = CredentialDocument {
        credential_type: DRIVER.into(),
        issuer: POLICE.into(),
        fields,
    };
    doc.check().unwrap();
    doc
}

fn anchor(doc: &CredentialDocument) -> Action {
    Action::Anchor(vec![AnchorItem {
        commitment: doc.commitment(),
        credential_type: DRIVER.into(),
        valid_until: None,
    }])
}

fn setup(validators: usize) -> (Node, CredentialDocument, Presentation, Trust) {
    let mut node = Node::new(validators);
    let doc = license();
    node.block(vec![anchor(&doc)]);
    node.block(vec![]);
    let presentation = Presentation::disclose(&doc, &["class", "holder_name"]).unwrap();
    let trust = Trust::from_genesis(&node.genesis).unwrap();
    (node, doc, presentation, trust)
}

#[test]
fn a_valid_credential_passes_every_check() {
    let (node, doc, presentation, trust) = setup(4);
    let bundle = node.bundle(doc.commitment(), true);
    let verdict = verify(&presentation, &bundle, &trust, node.time, Some(60_000));
    assert!(verdict.valid, "{verdict:#?}");
    let names: Vec<CheckName> = verdict.checks.iter().map(|c| c.name).collect();
    assert_eq!(
        names,
        [
            CheckName::Format,
            CheckName::Commitment,
            CheckName::Finality,
            CheckName::Inclusion,
            CheckName::Accreditation,
            CheckName::Status,
            CheckName::BundleAge,
            CheckName::Events
        ]
    );
    assert_eq!(verdict.status, Some(Status::Active));
    // All four signed; the bundle carries the first three, a quorum.
    assert_eq!(verdict.signers, ["Agency 0", "Agency 1", "Agency 2"]);
    assert_eq!(verdict.height, Some(2));
    // Round trip of the bundle's encoding.
    let decoded = ProofBundle::decode(&bundle.encode()).unwrap();
    assert!(verify(&presentation, &decoded, &trust, node.time, None).valid);
}

#[test]
fn a_revoked_credential_is_refused_with_its_reason_and_date() {
    let (mut node, doc, presentation, trust) = setup(4);
    node.block(vec![Action::Revoke {
        commitment: doc.commitment(),
        reason: RevocationReason::RevokedAsPenalty,
    }]);
    let verdict = verify(
        &presentation,
        &node.bundle(doc.commitment(), true),
        &trust,
        node.time,
        None,
    );
    assert!(!verdict.valid);
    let failure = verdict.first_failure().unwrap();
    assert_eq!(failure.name, CheckName::Status);
    assert!(
        failure.detail.contains("revoked (RevokedAsPenalty) since"),
        "{}",
        failure.detail
    );
    assert!(verdict.check(CheckName::Events).unwrap().passed);
}

#[test]
fn each_failure_names_its_check() {
    let (node, doc, presentation, trust) = setup(4);
    let bundle = node.bundle(doc.commitment(), false);

    // An altered disclosed value.
    let mut altered = presentation.clone();
    altered.disclosed[0].value = "A1".into();
    assert_eq!(
        verify(&altered, &bundle, &trust, node.time, None)
            .first_failure()
            .unwrap()
            .name,
        CheckName::Commitment
    );

    // Another chain's genesis.
    let mut other = genesis_with_validators(4);
    other.chain_id = "another-chain".into();
    let foreign = Trust::from_genesis(&other).unwrap();
    let verdict = verify(&presentation, &bundle, &foreign, node.time, None);
    let failure = verdict.first_failure().unwrap();
    assert_eq!(failure.name, CheckName::Finality);
    assert!(
        failure.detail.contains(&foreign.chain.to_string()),
        "{}",
        failure.detail
    );

    // Too few signatures.
    let mut weak = bundle.clone();
    weak.certificate = all_signers(
        &node.genesis,
        &certify(&node.genesis, &trust.header(&bundle.header), vec![0, 1]),
    );
    let verdict = verify(&presentation, &weak, &trust, node.time, None);
    let failure = verdict.first_failure().unwrap();
    assert_eq!(failure.name, CheckName::Finality);
    assert!(
        failure.detail.contains("voting power"),
        "{}",
        failure.detail
    );

    // A header whose state root was swapped: the certificate no longer covers it.
    let mut swapped = bundle.clone();
    swapped.header.state_root = Hash([1; 32]);
    assert_eq!(
        verify(&presentation, &swapped, &trust, node.time, None)
            .first_failure()
            .unwrap()
            .name,
        CheckName::Finality
    );

    // Another credential's presentation.
    let stranger = Presentation::disclose(&license_salted(50), &["class"]).unwrap();
    assert_eq!(
        verify(&stranger, &bundle, &trust, node.time, None)
            .first_failure()
            .unwrap()
            .name,
        CheckName::Inclusion
    );

    // A doctored record (status flipped back to active).
    let mut doctored = bundle.clone();
    doctored.record.valid_until = Some(Timestamp(u64::MAX));
    assert_eq!(
        verify(&presentation, &doctored, &trust, node.time, None)
            .first_failure()
            .unwrap()
            .name,
        CheckName::Inclusion
    );

    // A doctored issuer entry.
    let mut doctored = bundle.clone();
    doctored.issuer.name = "someone else".into();
    assert_eq!(
        verify(&presentation, &doctored, &trust, node.time, None)
            .first_failure()
            .unwrap()
            .name,
        CheckName::Accreditation
    );

    // A stale bundle.
    let later = Timestamp(node.time.0 + 3_600_000);
    let verdict = verify(&presentation, &bundle, &trust, later, Some(600_000));
    assert_eq!(verdict.first_failure().unwrap().name, CheckName::BundleAge);
}

#[test]
fn a_compact_header_expands_to_the_signed_header_only_with_its_own_chain_and_set() {
    let (node, doc, _, trust) = setup(4);
    let bundle = node.bundle(doc.commitment(), false);
    let full = trust.header(&bundle.header);
    assert_eq!(CompactHeader::from(&full), bundle.header);
    assert_eq!(full.chain, trust.chain);
    assert_eq!(
        borsh::to_vec(&bundle.header).unwrap().len() + 64,
        borsh::to_vec(&full).unwrap().len()
    );
    let other_set = bundle.header.expand(trust.chain, Hash([9; 32]));
    assert_ne!(other_set.hash(), full.hash());
    let other_chain = bundle.header.expand(Hash([9; 32]), trust.validators.hash());
    assert_ne!(other_chain.hash(), full.hash());
}

#[test]
fn bundles_stay_small() {
    for validators in [4, 7, 31] {
        let (node, doc, _, _) = setup(validators);
        let size = node.bundle(doc.commitment(), false).encode().len();
        // The goals of BENCHMARKS.md (2 KB at 4 validators, 4 KB at 31) for
        // a small state; header and entries ~1 KB, 64 B per signature of a
        // quorum, three compact state proofs.
        assert!(
            size < 1_000 + 70 * validators,
            "{validators} validators: {size} bytes"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn any_flipped_byte_of_the_bundle_is_refused(position in any::<prop::sample::Index>(), bit in 0u8..8) {
        let (node, doc, presentation, trust) = setup(4);
        let mut bytes = node.bundle(doc.commitment(), true).encode();
        let i = position.index(bytes.len());
        bytes[i] ^= 1 << bit;
        if let Ok(bundle) = ProofBundle::decode(&bytes) {
            let verdict = verify(&presentation, &bundle, &trust, node.time, None);
            prop_assert!(!verdict.valid, "byte {} bit {} flipped and still valid", i, bit);
        }
    }
}

#[test]
fn every_transaction_of_a_block_proves_its_inclusion_and_no_other_does() {
    let mut node = Node::new(4);
    let actions: Vec<Action> = (0..5u32)
        .map(|n| Action::Anchor(vec![item(n, DRIVER)]))
        .collect();
    node.block(actions);
    let (block, _) = node.blocks.last().unwrap().clone();
    block.check_transactions().unwrap();
    for i in 0..5 {
        let inclusion = block.prove_transaction(i).unwrap();
        assert!(inclusion.verify(&block.header));
        let mut other = inclusion.clone();
        other.transaction = block.transactions[(i + 1) % 5].clone();
        assert!(
            !other.verify(&block.header),
            "a transaction at another's place"
        );
        let mut resized = inclusion.clone();
        resized.proof.leaf_count += 1;
        assert!(!resized.verify(&block.header), "the header pins the count");
    }
    assert!(block.prove_transaction(5).is_none());
    let mut tampered = block.clone();
    tampered.transactions.pop();
    assert!(tampered.check_transactions().is_err());
}
