//! The ledger state machine: applies a block's transactions in order,
//! deterministically. A refused transaction changes nothing and gets its
//! named error; the others apply one after the other, each seeing the
//! effects of those before it.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};

use borsh::BorshDeserialize;
use cairn_genesis::{CredentialType, GenesisDocument, Hash, Issuer, Timestamp};

use crate::record::{
    CredentialRecord, EventKind, LifecycleEvent, MAX_EVENTS_PER_CREDENTIAL, StateKey, Status,
    TxReceipt,
};
use crate::transaction::{Action, AnchorItem, MAX_TX_LIFETIME_BLOCKS, SignedTransaction};
use crate::{AnchoringError, Commitment};

/// Read access to the state as of the previous block, and to the
/// transactions its chain has applied (the replay rule of
/// [`SignedTransaction`]s: one applies at most once).
pub trait StateView {
    /// The encoded value under `key`, if any.
    fn get(&self, key: &StateKey) -> Result<Option<Vec<u8>>, AnchoringError>;
    /// Whether a block of this chain, up to the previous block, applied
    /// transaction `tx`.
    fn applied(&self, tx: &Hash) -> Result<bool, AnchoringError>;
}

/// What every transaction of a block is checked against.
#[derive(Clone, Debug)]
pub struct BlockContext {
    /// The chain's genesis hash.
    pub chain: Hash,
    /// The block's height.
    pub height: u64,
    /// The block's time (keys' validity windows and expiry are judged by it).
    pub time: Timestamp,
    /// Most commitments per anchor transaction (the genesis parameter).
    pub max_commitments_per_tx: usize,
    /// The signatures were verified already (at mempool admission, or by a
    /// batch check of the whole block): do not verify them again.
    pub signatures_verified: bool,
}

/// The result of applying a block.
#[derive(Clone, Debug, Default)]
pub struct BlockOutcome {
    /// Every state entry written, to store and to put in the state tree.
    pub changes: BTreeMap<StateKey, Vec<u8>>,
    /// One result per transaction, in block order.
    pub results: Vec<Result<TxReceipt, AnchoringError>>,
}

/// The state entries of a genesis document: its issuers and credential types.
pub fn genesis_state(genesis: &GenesisDocument) -> BTreeMap<StateKey, Vec<u8>> {
    let mut state = BTreeMap::new();
    for issuer in &genesis.issuers {
        state.insert(StateKey::Issuer(issuer.id.clone()), encode(issuer));
    }
    for t in &genesis.credential_types {
        state.insert(StateKey::CredentialType(t.code.clone()), encode(t));
    }
    state
}

/// The previous block's state with its catalog entries (issuers and
/// credential types, which every transaction reads and no transaction
/// writes) read once per block instead of once per transaction.
struct CatalogCache<'a, V: StateView> {
    base: &'a V,
    catalog: RefCell<HashMap<StateKey, Option<Vec<u8>>>>,
}

impl<V: StateView> StateView for CatalogCache<'_, V> {
    fn get(&self, key: &StateKey) -> Result<Option<Vec<u8>>, AnchoringError> {
        if !matches!(key, StateKey::Issuer(_) | StateKey::CredentialType(_)) {
            return self.base.get(key);
        }
        if let Some(found) = self.catalog.borrow().get(key) {
            return Ok(found.clone());
        }
        let found = self.base.get(key)?;
        self.catalog.borrow_mut().insert(key.clone(), found.clone());
        Ok(found)
    }

    fn applied(&self, tx: &Hash) -> Result<bool, AnchoringError> {
        self.base.applied(tx)
    }
}

/// Applies `txs` in order on top of `view`. Only a storage failure is an `Err`.
pub fn apply_block(
    view: &impl StateView,
    ctx: &BlockContext,
    txs: &[SignedTransaction],
) -> Result<BlockOutcome, AnchoringError> {
    // The cache sits under the block's own writes: were a transaction ever
    // to write a catalog entry, the overlay would still see its write first.
    let view = &CatalogCache {
        base: view,
        catalog: RefCell::new(HashMap::new()),
    };
    let mut outcome = BlockOutcome::default();
    let mut applied = HashSet::new();
    for (index, tx) in txs.iter().enumerate() {
        let mut overlay = Overlay {
            base: view,
            block: &outcome.changes,
            applied: &applied,
            writes: BTreeMap::new(),
        };
        let index = u32::try_from(index).unwrap_or(u32::MAX);
        match apply_tx(&mut overlay, ctx, tx, index) {
            Ok(receipt) => {
                let writes = overlay.writes;
                outcome.changes.extend(writes);
                applied.insert(receipt.tx);
                outcome.results.push(Ok(receipt));
            }
            Err(AnchoringError::Storage(e)) => return Err(AnchoringError::Storage(e)),
            Err(refusal) => outcome.results.push(Err(refusal)),
        }
    }
    Ok(outcome)
}

/// Checks each of `txs` on its own against `view`, as if it were the only
/// transaction of a block with context `ctx` (what a mempool admits): one
/// verdict each, in order, with the catalog read once for all of them. A
/// receipt's index is then 0. Only a storage failure is an `Err`.
pub fn check_each(
    view: &impl StateView,
    ctx: &BlockContext,
    txs: &[&SignedTransaction],
) -> Result<Vec<Result<TxReceipt, AnchoringError>>, AnchoringError> {
    let view = &CatalogCache {
        base: view,
        catalog: RefCell::new(HashMap::new()),
    };
    let nothing_before = BTreeMap::new();
    let none_applied = HashSet::new();
    txs.iter()
        .map(|tx| {
            let mut overlay = Overlay {
                base: view,
                block: &nothing_before,
                applied: &none_applied,
                writes: BTreeMap::new(),
            };
            match apply_tx(&mut overlay, ctx, tx, 0) {
                Err(AnchoringError::Storage(e)) => Err(AnchoringError::Storage(e)),
                verdict => Ok(verdict),
            }
        })
        .collect()
}

/// The state as of the previous block, this block's earlier transactions, and this one's writes.
struct Overlay<'a, V: StateView> {
    base: &'a V,
    block: &'a BTreeMap<StateKey, Vec<u8>>,
    /// The transactions this block applied before this one.
    applied: &'a HashSet<Hash>,
    writes: BTreeMap<StateKey, Vec<u8>>,
}

impl<V: StateView> Overlay<'_, V> {
    fn applied(&self, tx: &Hash) -> Result<bool, AnchoringError> {
        Ok(self.applied.contains(tx) || self.base.applied(tx)?)
    }

    fn raw(&self, key: &StateKey) -> Result<Option<Vec<u8>>, AnchoringError> {
        if let Some(v) = self.writes.get(key).or_else(|| self.block.get(key)) {
            return Ok(Some(v.clone()));
        }
        self.base.get(key)
    }

    fn read<T: BorshDeserialize>(&self, key: &StateKey) -> Result<Option<T>, AnchoringError> {
        match self.raw(key)? {
            None => Ok(None),
            Some(bytes) => borsh::from_slice(&bytes)
                .map(Some)
                .map_err(|e| AnchoringError::Storage(format!("corrupt state entry {key:?}: {e}"))),
        }
    }

    fn write<T: borsh::BorshSerialize>(&mut self, key: StateKey, value: &T) {
        self.writes.insert(key, encode(value));
    }
}

fn encode<T: borsh::BorshSerialize>(value: &T) -> Vec<u8> {
    borsh::to_vec(value).unwrap_or_default()
}

fn apply_tx<V: StateView>(
    state: &mut Overlay<'_, V>,
    ctx: &BlockContext,
    signed: &SignedTransaction,
    index: u32,
) -> Result<TxReceipt, AnchoringError> {
    let tx = &signed.tx;
    if tx.chain != ctx.chain {
        return Err(AnchoringError::WrongChain {
            expected: ctx.chain,
            found: tx.chain,
        });
    }
    if tx.expires_at < ctx.height || tx.expires_at - ctx.height > MAX_TX_LIFETIME_BLOCKS {
        return Err(AnchoringError::Expired {
            expires_at: tx.expires_at,
            height: ctx.height,
            max_lifetime: MAX_TX_LIFETIME_BLOCKS,
        });
    }
    tx.check_shape(ctx.max_commitments_per_tx)?;
    let id = signed.id();
    if state.applied(&id)? {
        return Err(AnchoringError::Replay { tx: id });
    }
    let issuer: Issuer = state
        .read(&StateKey::Issuer(tx.issuer.clone()))?
        .ok_or_else(|| AnchoringError::UnknownIssuer {
            issuer: tx.issuer.clone(),
        })?;
    let key_valid = issuer.keys.iter().any(|k| {
        k.public_key == tx.key
            && k.valid_from <= ctx.time
            && k.valid_until.is_none_or(|until| ctx.time < until)
    });
    if !key_valid {
        return Err(AnchoringError::KeyNotValid {
            issuer: tx.issuer.clone(),
            key: tx.key.to_string(),
            at: ctx.time.to_rfc3339(),
        });
    }
    if !ctx.signatures_verified {
        signed.verify_signature()?;
    }
    let event = |kind| LifecycleEvent {
        kind,
        height: ctx.height,
        time: ctx.time,
        tx: id,
        tx_index: index,
        actor: tx.issuer.clone(),
    };
    match &tx.action {
        Action::Anchor(items) => {
            // Most batches anchor one or two types: each is read once.
            let mut types = Vec::new();
            for item in items {
                check_new(state, &issuer, item, &mut types)?;
            }
            for item in items {
                let record = new_record(item, &issuer, event(EventKind::Anchored { renews: None }));
                state.write(StateKey::Credential(item.commitment), &record);
            }
        }
        Action::Suspend { commitment } => {
            let mut record = owned(state, &issuer, *commitment)?;
            expect(&record, ctx.time, "suspend", |s| s == Status::Active)?;
            record.status = Status::Suspended;
            push_event(state, record, event(EventKind::Suspended))?;
        }
        Action::Reinstate { commitment } => {
            let mut record = owned(state, &issuer, *commitment)?;
            expect(&record, ctx.time, "reinstate", |s| s == Status::Suspended)?;
            record.status = Status::Active;
            push_event(state, record, event(EventKind::Reinstated))?;
        }
        Action::Revoke { commitment, reason } => {
            let mut record = owned(state, &issuer, *commitment)?;
            expect(&record, ctx.time, "revoke", |s| {
                matches!(s, Status::Active | Status::Suspended | Status::Expired)
            })?;
            record.status = Status::Revoked { reason: *reason };
            push_event(state, record, event(EventKind::Revoked { reason: *reason }))?;
        }
        Action::Supersede { old, new } => {
            let mut record = owned(state, &issuer, *old)?;
            expect(&record, ctx.time, "supersede", |s| {
                matches!(s, Status::Active | Status::Suspended | Status::Expired)
            })?;
            if new.credential_type != record.credential_type {
                return Err(AnchoringError::TypeChange {
                    new: new.commitment,
                    expected: record.credential_type,
                });
            }
            check_new(state, &issuer, new, &mut Vec::new())?;
            record.status = Status::Superseded { by: new.commitment };
            push_event(
                state,
                record,
                event(EventKind::Superseded { by: new.commitment }),
            )?;
            let successor = new_record(
                new,
                &issuer,
                event(EventKind::Anchored { renews: Some(*old) }),
            );
            state.write(StateKey::Credential(new.commitment), &successor);
        }
    }
    Ok(TxReceipt {
        tx: id,
        height: ctx.height,
        index,
    })
}

/// A new credential's type exists, its issuer is accredited for it, and it
/// is not on the ledger yet. `types` keeps the credential types decoded so
/// far for this transaction.
fn check_new<V: StateView>(
    state: &Overlay<'_, V>,
    issuer: &Issuer,
    item: &AnchorItem,
    types: &mut Vec<CredentialType>,
) -> Result<(), AnchoringError> {
    let known = types.iter().position(|t| t.code == item.credential_type);
    let t = match known {
        Some(i) => &types[i],
        None => {
            let t: CredentialType = state
                .read(&StateKey::CredentialType(item.credential_type.clone()))?
                .ok_or_else(|| AnchoringError::UnknownType {
                    credential_type: item.credential_type.clone(),
                })?;
            types.push(t);
            &types[types.len() - 1]
        }
    };
    if !issuer.accredited_types.contains(&t.code) || !t.issuers.contains(&issuer.id) {
        return Err(AnchoringError::NotAccredited {
            issuer: issuer.id.clone(),
            credential_type: t.code.clone(),
        });
    }
    if state.raw(&StateKey::Credential(item.commitment))?.is_some() {
        return Err(AnchoringError::AlreadyAnchored {
            commitment: item.commitment,
        });
    }
    Ok(())
}

fn new_record(item: &AnchorItem, issuer: &Issuer, event: LifecycleEvent) -> CredentialRecord {
    CredentialRecord {
        commitment: item.commitment,
        credential_type: item.credential_type.clone(),
        issuer: issuer.id.clone(),
        valid_until: item.valid_until,
        status: Status::Active,
        events: vec![event],
    }
}

/// The record of `commitment`, which `issuer` must have anchored.
fn owned<V: StateView>(
    state: &Overlay<'_, V>,
    issuer: &Issuer,
    commitment: Commitment,
) -> Result<CredentialRecord, AnchoringError> {
    let record: CredentialRecord = state
        .read(&StateKey::Credential(commitment))?
        .ok_or(AnchoringError::UnknownCommitment { commitment })?;
    if record.issuer != issuer.id {
        return Err(AnchoringError::NotIssuingAgency {
            commitment,
            owner: record.issuer,
            issuer: issuer.id.clone(),
        });
    }
    Ok(record)
}

fn expect(
    record: &CredentialRecord,
    time: Timestamp,
    action: &'static str,
    allowed: impl Fn(Status) -> bool,
) -> Result<(), AnchoringError> {
    let status = record.status_at(time);
    if allowed(status) {
        Ok(())
    } else {
        Err(AnchoringError::IllegalTransition {
            commitment: record.commitment,
            action,
            status: status.to_string(),
        })
    }
}

fn push_event<V: StateView>(
    state: &mut Overlay<'_, V>,
    mut record: CredentialRecord,
    event: LifecycleEvent,
) -> Result<(), AnchoringError> {
    if record.events.len() >= MAX_EVENTS_PER_CREDENTIAL {
        return Err(AnchoringError::IllegalTransition {
            commitment: record.commitment,
            action: "record another event on",
            status: format!("at its limit of {MAX_EVENTS_PER_CREDENTIAL} events"),
        });
    }
    record.events.push(event);
    state.write(StateKey::Credential(record.commitment), &record);
    Ok(())
}
