//! The authenticated state: a root per height, membership and absence
//! proofs at any retained height, and the ledger running on top of it.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use cairn_anchoring::{
    Action, AnchoringError, AuthenticatedState, CredentialRecord, MemoryTreeStore, StateKey,
    Status, apply_block, genesis_state,
};
use cairn_genesis::Timestamp;
use common::*;

struct Ledger {
    chain: Chain,
    state: AuthenticatedState<MemoryTreeStore>,
    applied: Applied,
    roots: Vec<cairn_genesis::Hash>,
}

impl Ledger {
    fn new() -> Ledger {
        let chain = Chain::new();
        let mut state = AuthenticatedState::new(MemoryTreeStore::default(), None);
        let root = state.commit(0, &genesis_state(&chain.genesis)).unwrap();
        Ledger {
            chain,
            state,
            applied: Applied::default(),
            roots: vec![root],
        }
    }

    fn block(
        &mut self,
        actions: Vec<Action>,
    ) -> Vec<Result<cairn_anchoring::TxReceipt, AnchoringError>> {
        let txs: Vec<_> = actions.into_iter().map(|a| self.chain.police(a)).collect();
        let height = self.chain.height + 1;
        let view = TreeView {
            values: self.state.at(height - 1),
            applied: &self.applied,
        };
        let outcome = apply_block(&view, &self.chain.ctx(), &txs).unwrap();
        let root = self.state.commit(height, &outcome.changes).unwrap();
        self.applied.record(&outcome);
        self.roots.push(root);
        self.chain.height = height;
        self.chain.time = Timestamp(self.chain.time.0 + 5_000);
        outcome.results
    }

    fn record_at(&self, n: u32, height: u64) -> Option<CredentialRecord> {
        let key = StateKey::Credential(commitment(n));
        let (value, proof) = self.state.prove(&key, height).unwrap();
        proof
            .verify(self.roots[height as usize], &key, value.as_deref())
            .unwrap();
        value.map(|v| borsh::from_slice(&v).unwrap())
    }
}

#[test]
fn every_height_has_a_root_and_proofs_hold_at_each() {
    let mut ledger = Ledger::new();
    ledger.block(vec![Action::Anchor(vec![item(1, DRIVER), item(2, DRIVER)])]);
    ledger.block(vec![]);
    ledger.block(vec![Action::Suspend {
        commitment: commitment(1),
    }]);
    assert_eq!(ledger.roots.len(), 4);
    for h in 0..4 {
        assert_eq!(ledger.state.root(h).unwrap(), ledger.roots[h as usize]);
    }
    assert_ne!(ledger.roots[0], ledger.roots[1]);
    assert_eq!(
        ledger.roots[1], ledger.roots[2],
        "an empty block leaves the root as it was"
    );

    // Absent at genesis, active at 1 and 2, suspended at 3.
    assert!(ledger.record_at(1, 0).is_none());
    assert_eq!(ledger.record_at(1, 1).unwrap().status, Status::Active);
    assert_eq!(ledger.record_at(1, 2).unwrap().status, Status::Active);
    assert_eq!(ledger.record_at(1, 3).unwrap().status, Status::Suspended);
    assert!(ledger.record_at(99, 3).is_none(), "absence is proven too");
    // The issuer is in the genesis state.
    let key = StateKey::Issuer(POLICE.into());
    let (value, proof) = ledger.state.prove(&key, 3).unwrap();
    proof
        .verify(ledger.roots[3], &key, value.as_deref())
        .unwrap();
}

#[test]
fn a_proof_does_not_verify_a_different_value_key_or_root() {
    let mut ledger = Ledger::new();
    ledger.block(vec![Action::Anchor(vec![item(1, DRIVER)])]);
    ledger.block(vec![Action::Revoke {
        commitment: commitment(1),
        reason: cairn_anchoring::RevocationReason::Annulled,
    }]);
    let key = StateKey::Credential(commitment(1));
    let (old, old_proof) = ledger.state.prove(&key, 1).unwrap();
    let (new, _) = ledger.state.prove(&key, 2).unwrap();
    let old = old.unwrap();
    // The revoked record cannot be hidden behind the height-2 root with the old value.
    assert!(matches!(
        old_proof.verify(ledger.roots[2], &key, Some(&old)),
        Err(AnchoringError::StateProof { .. })
    ));
    assert!(
        old_proof
            .verify(ledger.roots[1], &key, new.as_deref())
            .is_err()
    );
    assert!(
        old_proof
            .verify(
                ledger.roots[1],
                &StateKey::Credential(commitment(2)),
                Some(&old)
            )
            .is_err()
    );
    assert!(
        old_proof.verify(ledger.roots[1], &key, None).is_err(),
        "present is not absent"
    );
    old_proof.verify(ledger.roots[1], &key, Some(&old)).unwrap();
}

#[test]
fn versions_only_move_forward() {
    let mut ledger = Ledger::new();
    ledger.block(vec![]);
    let latest = ledger.state.latest().unwrap();
    // Neither the latest version again nor one that skips a version.
    for version in [latest, latest + 2] {
        let refused = ledger.state.commit(version, &Default::default());
        assert!(
            matches!(refused, Err(AnchoringError::StateVersion { version: v, next })
                if v == version && next == latest + 1),
            "{refused:?}"
        );
    }
    assert_eq!(ledger.state.latest(), Some(latest));
    // An empty state's first version is 0.
    let mut empty = AuthenticatedState::new(MemoryTreeStore::default(), None);
    let changes = [(StateKey::Issuer("x".into()), vec![1])].into();
    assert!(matches!(
        empty.commit(1, &changes),
        Err(AnchoringError::StateVersion {
            version: 1,
            next: 0
        })
    ));
    assert!(empty.commit(0, &changes).is_ok());
}
