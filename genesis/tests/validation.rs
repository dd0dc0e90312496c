//! Each way a genesis document can be wrong is refused with its own error,
//! and `problems` reports all of them at once.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use cairn_genesis::{
    GenesisDocument, GenesisError, IssuerKey, MAX_TOTAL_VOTING_POWER, PublicKey, Timestamp,
};
use common::{code, key, sample};

/// The problems of `doc`, asserting there is exactly one and returning it.
fn only_problem(doc: &GenesisDocument) -> GenesisError {
    let mut problems = doc.problems();
    assert_eq!(problems.len(), 1, "expected one problem, got {problems:#?}");
    problems.remove(0)
}

#[test]
fn the_sample_is_valid() {
    assert_eq!(sample().problems(), vec![]);
    assert!(sample().validate().is_ok());
}

#[test]
fn json_round_trip() {
    let doc = sample();
    let parsed =
        GenesisDocument::from_json(&doc.to_json(), std::path::Path::new("g.json")).unwrap();
    assert_eq!(parsed, doc);
    assert_eq!(parsed.hash(), doc.hash());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("genesis.json");
    doc.save(&path).unwrap();
    assert_eq!(GenesisDocument::load_valid(&path).unwrap(), doc);
}

#[test]
fn empty_validator_set() {
    let mut doc = sample();
    doc.validators.clear();
    assert_eq!(only_problem(&doc), GenesisError::EmptyValidatorSet);
}

#[test]
fn zero_voting_power() {
    let mut doc = sample();
    doc.validators[2].voting_power = 0;
    let agency_id = doc.validators[2].agency_id.clone();
    assert_eq!(
        only_problem(&doc),
        GenesisError::ZeroVotingPower { agency_id }
    );
}

#[test]
fn overflowing_voting_power() {
    let mut doc = sample();
    doc.validators[0].voting_power = u64::MAX;
    doc.validators[1].voting_power = u64::MAX;
    assert_eq!(
        only_problem(&doc),
        GenesisError::VotingPowerOverflow {
            max: MAX_TOTAL_VOTING_POWER
        }
    );

    // Past the protocol's cap without overflowing u64 is refused too.
    let mut doc = sample();
    doc.validators[0].voting_power = MAX_TOTAL_VOTING_POWER;
    assert!(matches!(
        only_problem(&doc),
        GenesisError::VotingPowerOverflow { .. }
    ));
}

#[test]
fn duplicate_agency_id() {
    let mut doc = sample();
    doc.validators[3].agency_id = doc.validators[0].agency_id.clone();
    assert!(matches!(
        only_problem(&doc),
        GenesisError::Duplicate {
            kind: "validator agency id",
            ..
        }
    ));
}

#[test]
fn duplicate_consensus_key() {
    let mut doc = sample();
    doc.validators[1].public_key = doc.validators[0].public_key;
    assert!(matches!(
        only_problem(&doc),
        GenesisError::DuplicateKey { .. }
    ));
}

#[test]
fn validator_key_reused_as_issuer_key() {
    let mut doc = sample();
    doc.issuers[0].keys[0].public_key = doc.validators[0].public_key;
    match only_problem(&doc) {
        GenesisError::DuplicateKey { first, second, .. } => {
            assert!(first.starts_with("validator"), "{first}");
            assert!(second.starts_with("issuer"), "{second}");
        }
        other => panic!("expected DuplicateKey, got {other:?}"),
    }
}

#[test]
fn duplicate_peer_id_and_address() {
    let mut doc = sample();
    doc.validators[1].peer_id = doc.validators[0].peer_id;
    doc.validators[1].address = doc.validators[0].address.clone();
    let problems = doc.problems();
    assert!(problems.contains(&GenesisError::Duplicate {
        kind: "validator peer id",
        value: doc.validators[0].peer_id.to_string()
    }));
    assert!(problems.contains(&GenesisError::Duplicate {
        kind: "validator address",
        value: doc.validators[0].address.clone()
    }));
    assert_eq!(problems.len(), 2, "{problems:#?}");
}

#[test]
fn duplicate_issuer_and_type() {
    let mut doc = sample();
    let copy = doc.credential_types[0].clone();
    doc.credential_types.push(copy);
    assert!(matches!(
        only_problem(&doc),
        GenesisError::Duplicate {
            kind: "credential type code",
            ..
        }
    ));

    let mut doc = sample();
    let mut copy = doc.issuers[0].clone();
    copy.keys = vec![IssuerKey {
        public_key: key(40).public_key(),
        valid_from: Timestamp(0),
        valid_until: None,
    }];
    doc.issuers.push(copy);
    assert!(matches!(
        only_problem(&doc),
        GenesisError::Duplicate {
            kind: "issuer id",
            ..
        }
    ));
}

#[test]
fn malformed_key() {
    let mut doc = sample();
    let mut bytes = [0u8; 32];
    bytes[0] = 2; // y = 2 is not on the curve
    doc.validators[0].public_key = PublicKey(bytes);
    assert!(matches!(
        only_problem(&doc),
        GenesisError::MalformedKey { .. }
    ));
}

#[test]
fn weak_key() {
    let mut doc = sample();
    let mut bytes = [0u8; 32];
    bytes[0] = 1; // the identity point, of order 1
    doc.issuers[1].keys[0].public_key = PublicKey(bytes);
    assert!(matches!(only_problem(&doc), GenesisError::WeakKey { .. }));
}

#[test]
fn malformed_peer_id() {
    let mut doc = sample();
    let mut bytes = [0u8; 32];
    bytes[0] = 2;
    doc.validators[0].peer_id = PublicKey(bytes).peer_id();
    assert!(matches!(
        only_problem(&doc),
        GenesisError::MalformedPeerId { .. }
    ));
}

#[test]
fn issuer_accredited_for_unknown_type() {
    let mut doc = sample();
    doc.issuers[0]
        .accredited_types
        .push("residence-permit".into());
    assert_eq!(
        only_problem(&doc),
        GenesisError::UnknownCredentialType {
            issuer: doc.issuers[0].id.clone(),
            credential_type: "residence-permit".into()
        }
    );
}

#[test]
fn type_listing_unknown_issuer() {
    let mut doc = sample();
    let stranger = code("11999999MB0000099");
    doc.credential_types[0].issuers.push(stranger.clone());
    assert_eq!(
        only_problem(&doc),
        GenesisError::UnknownIssuer {
            credential_type: "driver-license".into(),
            issuer: stranger
        }
    );
}

#[test]
fn accreditation_must_agree_both_ways() {
    let mut doc = sample();
    doc.issuers[0]
        .accredited_types
        .push("business-license".into());
    assert_eq!(
        only_problem(&doc),
        GenesisError::AccreditationMismatch {
            issuer: doc.issuers[0].id.clone(),
            credential_type: "business-license".into()
        }
    );
    let mut doc = sample();
    let market = doc.issuers[1].id.clone();
    doc.credential_types[0].issuers.push(market.clone());
    assert_eq!(
        only_problem(&doc),
        GenesisError::AccreditationMismatch {
            issuer: market,
            credential_type: "driver-license".into()
        }
    );
}

#[test]
fn identifiers_and_names_are_checked() {
    let mut doc = sample();
    doc.chain_id = "Cairn Main".into();
    doc.validators[0].agency_id = "91350100M000100Y44".into(); // wrong check character
    doc.validators[1].region = "31000".into();
    doc.validators[2].name = "  ".into();
    doc.validators[3].address = "127.0.0.1:26656".into();
    doc.credential_types[0].fields.push("Holder Name".into());
    doc.credential_types[1].fields.push("entity_name".into());
    let problems = doc.problems();
    let expect = [
        "InvalidChainId",
        "InvalidCreditCode",
        "InvalidRegion",
        "InvalidName",
        "InvalidAddress",
        "InvalidFieldName",
        "Duplicate",
    ];
    for name in expect {
        assert!(
            problems.iter().any(|p| format!("{p:?}").starts_with(name)),
            "{name} missing from {problems:#?}"
        );
    }
    assert_eq!(problems.len(), expect.len(), "{problems:#?}");
}

#[test]
fn types_need_fields_and_issuers_need_keys() {
    let mut doc = sample();
    doc.credential_types[0].fields.clear();
    doc.issuers[1].keys.clear();
    let problems = doc.problems();
    assert!(problems.contains(&GenesisError::NoFields {
        code: "driver-license".into()
    }));
    assert!(problems.contains(&GenesisError::NoSigningKey {
        issuer: doc.issuers[1].id.clone()
    }));
    assert_eq!(problems.len(), 2);
}

#[test]
fn key_window_must_not_be_empty() {
    let mut doc = sample();
    let key = &mut doc.issuers[0].keys[0];
    key.valid_until = Some(key.valid_from);
    assert!(matches!(
        only_problem(&doc),
        GenesisError::EmptyKeyWindow { .. }
    ));
}

#[test]
fn parameters_are_bounded() {
    let mut doc = sample();
    doc.consensus.propose_timeout_ms = 0;
    doc.consensus.max_commitments_per_tx = 10_001;
    doc.consensus.max_tx_bytes = doc.consensus.max_block_bytes + 1;
    let names: Vec<&str> = doc
        .problems()
        .iter()
        .map(|p| match p {
            GenesisError::ParameterOutOfRange { name, .. } => *name,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        names,
        [
            "propose_timeout_ms",
            "max_tx_bytes",
            "max_commitments_per_tx"
        ]
    );
}

#[test]
fn every_problem_is_reported_and_validate_lists_them() {
    let mut doc = sample();
    doc.validators.clear();
    doc.issuers[0].accredited_types.push("unknown".into());
    doc.credential_types[1].fields.clear();
    let err = doc.validate().unwrap_err();
    let GenesisError::Invalid(problems) = &err else {
        panic!("expected Invalid, got {err:?}")
    };
    assert_eq!(problems.len(), 3, "{problems:#?}");
    let shown = err.to_string();
    assert!(shown.contains("3 problem(s)"), "{shown}");
    assert!(shown.contains("validator set is empty"), "{shown}");
    assert!(shown.contains("unknown credential type unknown"), "{shown}");
}
