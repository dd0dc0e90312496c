//! One node's chain in memory: ledger, state tree, blocks, and commit
//! certificates signed by every validator of the test genesis.

#![allow(dead_code, clippy::unwrap_used)]

use cairn_anchoring::{
    Action, AuthenticatedState, Block, BlockContext, BlockHeader, EventProof, MemoryTreeStore,
    ProofBundle, SignedTransaction, StateKey, apply_block, genesis_state, transactions_root,
};
use cairn_consensus::{
    CommitCertificate, CommitSignature, CompactCertificate, Height, Round, Signature, ValidatorSet,
    Vote, VoteKind,
};
use cairn_genesis::{GenesisDocument, Timestamp};
use ed25519_dalek::Signer as _;

use super::common::*;

/// A single node's chain: ledger, state tree, blocks and certificates.
pub struct Node {
    pub genesis: GenesisDocument,
    pub set: ValidatorSet,
    pub state: AuthenticatedState<MemoryTreeStore>,
    pub blocks: Vec<(Block, CommitCertificate)>,
    pub applied: Applied,
    pub time: Timestamp,
    nonce: u64,
}

impl Node {
    pub fn new(validators: usize) -> Node {
        let genesis = genesis_with_validators(validators);
        let set = ValidatorSet::from_genesis(&genesis).unwrap();
        let mut state = AuthenticatedState::new(MemoryTreeStore::default(), None);
        state.commit(0, &genesis_state(&genesis)).unwrap();
        Node {
            genesis,
            set,
            state,
            blocks: Vec::new(),
            applied: Applied::default(),
            time: T0,
            nonce: 0,
        }
    }

    pub fn height(&self) -> u64 {
        self.blocks.len() as u64
    }

    pub fn police(&mut self, action: Action) -> SignedTransaction {
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
    pub fn block(&mut self, actions: Vec<Action>) {
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
        let view = TreeView {
            values: self.state.at(height - 1),
            applied: &self.applied,
        };
        let outcome = apply_block(&view, &ctx, &txs).unwrap();
        self.applied.record(&outcome);
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

    /// A certificate as a node serves it in bundles: reduced to a quorum.
    pub fn compact(&self, cert: &CommitCertificate) -> CompactCertificate {
        cert.compact(&ValidatorSet::from_genesis(&self.genesis).unwrap())
            .unwrap()
    }

    pub fn bundle(
        &self,
        commitment: cairn_anchoring::Commitment,
        with_events: bool,
    ) -> ProofBundle {
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
                        header: (&b.header).into(),
                        certificate: self.compact(c),
                        inclusion: b.prove_transaction(e.tx_index as usize).unwrap(),
                    }
                })
                .collect()
        } else {
            Vec::new()
        };
        ProofBundle {
            header: (&block.header).into(),
            certificate: self.compact(&cert),
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

/// A certificate in the compact form with every signature kept (unlike
/// [`CommitCertificate::compact`], which stops at a quorum and refuses
/// less), so tests can build certificates too weak to count.
pub fn all_signers(genesis: &GenesisDocument, cert: &CommitCertificate) -> CompactCertificate {
    let set = ValidatorSet::from_genesis(genesis).unwrap();
    let mut signers = vec![0u8; set.len().div_ceil(8)];
    let mut signed: Vec<(usize, Signature)> = cert
        .signatures
        .iter()
        .map(|s| (set.index_of(&s.validator).unwrap(), s.signature))
        .collect();
    signed.sort_by_key(|(i, _)| *i);
    for (i, _) in &signed {
        signers[i / 8] |= 1 << (i % 8);
    }
    CompactCertificate {
        round: cert.round,
        signers,
        signatures: signed.into_iter().map(|(_, s)| s).collect(),
    }
}

/// A commit certificate for `header` signed by the validators in `signers`.
pub fn certify(
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
