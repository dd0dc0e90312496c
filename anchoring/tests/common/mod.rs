//! A small chain: two issuers (a police corps issuing driver's licenses, a
//! market bureau issuing business licenses) and a ledger kept in memory.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashSet};

use cairn_anchoring::TreeStore;
use cairn_anchoring::{
    Action, AnchorItem, AnchoringError, BlockContext, BlockOutcome, Commitment, StateAt, StateKey,
    StateView, Transaction, TxReceipt, apply_block, genesis_state,
};
use cairn_genesis::{CredentialType, GenesisDocument, Hash, Issuer, IssuerKey, Timestamp};
use ed25519_dalek::SigningKey;

pub const POLICE: &str = "11310000MB0000001C";
pub const MARKET: &str = "11320000MB0000002K";
pub const DRIVER: &str = "driver-license";
pub const BUSINESS: &str = "business-license";
pub const T0: Timestamp = Timestamp(1_795_593_600_000);
pub const DAY_MS: u64 = 86_400_000;

pub fn police_key() -> SigningKey {
    SigningKey::from_bytes(&[21; 32])
}
pub fn market_key() -> SigningKey {
    SigningKey::from_bytes(&[22; 32])
}
/// A police key valid only for the first day.
pub fn old_police_key() -> SigningKey {
    SigningKey::from_bytes(&[23; 32])
}

/// The validators' consensus keys.
pub fn validator_key(i: usize) -> SigningKey {
    SigningKey::from_bytes(&[31 + i as u8; 32])
}

pub fn genesis() -> GenesisDocument {
    genesis_with_validators(4)
}

pub fn genesis_with_validators(n: usize) -> GenesisDocument {
    let mut doc = GenesisDocument::new("cairn-ledger-test", T0);
    for i in 0..n {
        let public_key: cairn_genesis::PublicKey = validator_key(i).verifying_key().into();
        doc.validators.push(cairn_genesis::Validator {
            agency_id: format!("agency-{i}"),
            name: format!("Agency {i}"),
            region: "310000".into(),
            public_key,
            peer_id: public_key.peer_id(),
            voting_power: 10,
            address: format!("/ip4/127.0.0.1/tcp/{}", 27000 + i),
        });
    }
    let key = |k: &SigningKey, until: Option<Timestamp>| IssuerKey {
        public_key: k.verifying_key().into(),
        valid_from: T0,
        valid_until: until,
    };
    doc.credential_types = vec![
        CredentialType {
            code: DRIVER.into(),
            name: "机动车驾驶证".into(),
            fields: vec!["class".into()],
            issuers: vec![POLICE.into()],
        },
        CredentialType {
            code: BUSINESS.into(),
            name: "营业执照".into(),
            fields: vec!["entity_name".into()],
            issuers: vec![MARKET.into()],
        },
    ];
    doc.issuers = vec![
        Issuer {
            id: POLICE.into(),
            name: "上海市公安局交通警察总队".into(),
            region: "310000".into(),
            keys: vec![
                key(&police_key(), None),
                key(&old_police_key(), Some(Timestamp(T0.0 + DAY_MS))),
            ],
            accredited_types: vec![DRIVER.into()],
        },
        Issuer {
            id: MARKET.into(),
            name: "江苏省市场监督管理局".into(),
            region: "320000".into(),
            keys: vec![key(&market_key(), None)],
            accredited_types: vec![BUSINESS.into()],
        },
    ];
    doc
}

pub fn commitment(n: u32) -> Commitment {
    Commitment(Hash::domain("test commitment", &n.to_le_bytes()))
}

pub fn item(n: u32, credential_type: &str) -> AnchorItem {
    AnchorItem {
        commitment: commitment(n),
        credential_type: credential_type.into(),
        valid_until: None,
    }
}

/// The transactions a chain's blocks applied, as a node's index of its
/// blocks keeps them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied(HashSet<Hash>);

impl Applied {
    /// Records the transactions `outcome` applied.
    pub fn record(&mut self, outcome: &BlockOutcome) {
        self.0
            .extend(outcome.results.iter().flatten().map(|receipt| receipt.tx));
    }

    pub fn contains(&self, tx: &Hash) -> bool {
        self.0.contains(tx)
    }
}

/// A ledger's state in memory: its entries and the transactions applied.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryState {
    pub entries: BTreeMap<StateKey, Vec<u8>>,
    pub applied: Applied,
}

impl StateView for MemoryState {
    fn get(&self, key: &StateKey) -> Result<Option<Vec<u8>>, AnchoringError> {
        Ok(self.entries.get(key).cloned())
    }

    fn applied(&self, tx: &Hash) -> Result<bool, AnchoringError> {
        Ok(self.applied.contains(tx))
    }
}

/// A state tree's values at one version, with the transactions applied
/// up to it: what a node gives `apply_block`.
pub struct TreeView<'a, S> {
    pub values: StateAt<'a, S>,
    pub applied: &'a Applied,
}

impl<S: TreeStore> StateView for TreeView<'_, S> {
    fn get(&self, key: &StateKey) -> Result<Option<Vec<u8>>, AnchoringError> {
        self.values.get(key)
    }

    fn applied(&self, tx: &Hash) -> Result<bool, AnchoringError> {
        Ok(self.applied.contains(tx))
    }
}

/// A ledger in memory, one block at a time.
pub struct Chain {
    pub genesis: GenesisDocument,
    pub state: MemoryState,
    pub height: u64,
    pub time: Timestamp,
    pub nonce: u64,
}

impl Chain {
    pub fn new() -> Chain {
        let genesis = genesis();
        let state = MemoryState {
            entries: genesis_state(&genesis),
            applied: Applied::default(),
        };
        Chain {
            genesis,
            state,
            height: 0,
            time: T0,
            nonce: 0,
        }
    }

    pub fn chain_id(&self) -> Hash {
        self.genesis.hash()
    }

    pub fn tx(
        &mut self,
        issuer: &str,
        key: &SigningKey,
        action: Action,
    ) -> cairn_anchoring::SignedTransaction {
        self.nonce += 1;
        Transaction {
            chain: self.chain_id(),
            issuer: issuer.into(),
            key: key.verifying_key().into(),
            nonce: self.nonce,
            expires_at: self.height + 100,
            action,
        }
        .sign(key)
    }

    pub fn police(&mut self, action: Action) -> cairn_anchoring::SignedTransaction {
        self.tx(POLICE, &police_key(), action)
    }

    pub fn ctx(&self) -> BlockContext {
        BlockContext {
            chain: self.chain_id(),
            height: self.height + 1,
            time: self.time,
            max_commitments_per_tx: 10_000,
            signatures_verified: false,
        }
    }

    /// Applies one block and keeps its changes; returns each transaction's result.
    pub fn block(
        &mut self,
        txs: &[cairn_anchoring::SignedTransaction],
    ) -> Vec<Result<TxReceipt, AnchoringError>> {
        let outcome = apply_block(&self.state, &self.ctx(), txs).unwrap();
        self.state.applied.record(&outcome);
        self.state.entries.extend(outcome.changes);
        self.height += 1;
        self.time = Timestamp(self.time.0 + 5_000);
        outcome.results
    }

    /// Applies one transaction in its own block.
    pub fn apply(
        &mut self,
        tx: cairn_anchoring::SignedTransaction,
    ) -> Result<TxReceipt, AnchoringError> {
        self.block(&[tx]).remove(0)
    }

    pub fn record(&self, n: u32) -> Option<cairn_anchoring::CredentialRecord> {
        self.state
            .entries
            .get(&StateKey::Credential(commitment(n)))
            .map(|b| borsh::from_slice(b).unwrap())
    }
}
