//! Proof bundles verified offline: a valid credential, every reason to
//! refuse one, and any altered byte refused without a panic.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::collections::BTreeMap;

use cairn_anchoring::{
    Action, AnchorItem, AuthenticatedState, Block, BlockContext, BlockHeader, CheckName,
    CredentialDocument, EventProof, MemoryTreeStore, Presentation, ProofBundle, RevocationReason,
    SignedTransaction, StateKey, Status, Trust, apply_block, genesis_state, transactions_root,
    verify,
};
use cairn_consensus::{
    CommitCertificate, CommitSignature, Height, Round, Signature, ValidatorSet, Vote, VoteKind,
};
use cairn_genesis::{GenesisDocument, Hash, Timestamp};
use common::*;
use ed25519_dalek::Signer as _;
use proptest::prelude::*;

/// A single node's chain: ledger, state tree, blocks and certificates.
struct Node {
    genesis: GenesisDocument,
    set: ValidatorSet,
    state: AuthenticatedState<MemoryTreeStore>,
    blocks: Vec<(Block, CommitCertificate)>,
    time: Timestamp,
    nonce: u64,
}

impl Node {
    fn new(validators: usize) -> Node {
        let genesis = genesis_with_validators(validators);
        let set = ValidatorSet::from_genesis(&genesis).unwrap();
        let mut state = AuthenticatedState::new(MemoryTreeStore::default(), None);
        state.commit(0, &genesis_state(&genesis)).unwrap();
        Node {
            genesis,
            set,
            state,
            blocks: Vec::new(),
            time: T0,
            nonce: 0,
        }
    }

    fn height(&self) -> u64 {
        self.blocks.len() as u64
    }

    fn police(&mut self, action: Action) -> SignedTransaction {
        self.nonce += 1;
        cairn_anchoring::Transaction {
            chain: self.genesis.hash(),
            issuer: POLICE.into(),
            key: police_key().verifying_key().into(),
            nonce: self.nonce,
            expires_at: self.height() + 10,
            action,
        }
        .sign(&police_key())
    }

    /// Executes, commits and certifies one block (signed by every validator).
    fn block(&mut self, actions: Vec<Action>) {
        let txs: Vec<SignedTransaction> = actions.into_iter().map(|a| self.police(a)).collect();
        let height = self.height() + 1;
        self.time = Timestamp(self.time.0 + 5_000);
        let ctx = BlockContext {
            chain: self.genesis.hash(),
            height,
            time: self.time,
            max_commitments_per_tx: 10_000,
            signatures_verified: false,
        };
        let outcome = apply_block(&self.state.at(height - 1), &ctx, &txs).unwrap();
        assert!(
            outcome.results.iter().all(Result::is_ok),
            "{:?}",
            outcome.results
        );
        let state_root = self.state.commit(height, &outcome.changes).unwrap();
        let header = BlockHeader {
            chain: self.genesis.hash(),
            height,
            time: self.time,
            previous: self
                .blocks
                .last()
                .map_or(self.genesis.hash(), |(b, _)| b.header.hash()),
            transactions_root: transactions_root(&txs),
            transaction_count: txs.len() as u32,
            state_root,
            validator_set: self.set.hash(),
            proposer: self.set.validators()[0].public_key,
        };
        let cert = certify(&self.genesis, &header, (0..self.set.len()).collect());
        self.blocks.push((
            Block {
                header,
                transactions: txs,
            },
            cert,
        ));
    }

    fn bundle(&self, commitment: cairn_anchoring::Commitment, with_events: bool) -> ProofBundle {
        let height = self.height();
        let (block, cert) = self.blocks.last().unwrap().clone();
        let prove = |key: &StateKey| self.state.prove(key, height).unwrap();
        let (record, record_proof) = prove(&StateKey::Credential(commitment));
        let record: cairn_anchoring::CredentialRecord =
            borsh::from_slice(&record.unwrap()).unwrap();
        let (issuer, issuer_proof) = prove(&StateKey::Issuer(record.issuer.clone()));
        let (t, type_proof) = prove(&StateKey::CredentialType(record.credential_type.clone()));
        let events = if with_events {
            record
                .events
                .iter()
                .map(|e| {
                    let (b, c) = &self.blocks[e.height as usize - 1];
                    EventProof {
                        header: b.header.clone(),
                        certificate: c.clone(),
                        inclusion: b.prove_transaction(e.tx_index as usize).unwrap(),
                    }
                })
                .collect()
        } else {
            Vec::new()
        };
        ProofBundle {
            header: block.header,
            certificate: cert,
            record,
            record_proof,
            issuer: borsh::from_slice(&issuer.unwrap()).unwrap(),
            issuer_proof,
            credential_type: borsh::from_slice(&t.unwrap()).unwrap(),
            type_proof,
            events,
        }
    }
}

/// A commit certificate for `header` signed by the validators in `signers`.
fn certify(
    genesis: &GenesisDocument,
    header: &BlockHeader,
    signers: Vec<usize>,
) -> CommitCertificate {
    let value = header.value_id();
    CommitCertificate {
        chain: genesis.hash(),
        height: Height(header.height),
        round: Round(0),
        value,
        signatures: signers
            .into_iter()
            .map(|i| {
                let key = validator_key(i);
                let vote = Vote {
                    chain: genesis.hash(),
                    height: Height(header.height),
                    round: Round(0),
                    kind: VoteKind::Precommit,
                    value: Some(value),
                    validator: key.verifying_key().into(),
                };
                CommitSignature {
                    validator: vote.validator,
                    signature: Signature(key.sign(&vote.sign_bytes()).to_bytes()),
                }
            })
            .collect(),
    }
}

fn license() -> CredentialDocument {
    let fields: BTreeMap<String, String> = [
        ("holder_name", "李四"),
        ("id_number", "320102198805051234"),
        ("class", "C1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    CredentialDocument::new(DRIVER, POLICE, fields).unwrap()
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
    assert_eq!(
        verdict.signers,
        ["Agency 0", "Agency 1", "Agency 2", "Agency 3"]
    );
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
    assert_eq!(
        verify(&presentation, &bundle, &foreign, node.time, None)
            .first_failure()
            .unwrap()
            .name,
        CheckName::Finality
    );

    // Too few signatures.
    let mut weak = bundle.clone();
    weak.certificate = certify(&node.genesis, &bundle.header, vec![0, 1]);
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
    let stranger = Presentation::disclose(&license(), &["class"]).unwrap();
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
fn bundles_stay_small() {
    for validators in [4, 7, 31] {
        let (node, doc, _, _) = setup(validators);
        let size = node.bundle(doc.commitment(), false).encode().len();
        // Header ~250 B, certificate 96 B per signer, three state proofs.
        assert!(
            size < 1_500 + 100 * validators,
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
