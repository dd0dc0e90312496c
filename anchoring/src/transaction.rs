//! Issuer transactions: signed by one of the issuer's keys, bound to the
//! chain, with an expiry height.
//!
//! # Replay rule
//!
//! A transaction's id is the hash of its unsigned body (chain, issuer, key,
//! nonce, expiry, action). A block holds only the transactions it applied,
//! so the chain's blocks are the record of every applied id, for good: the
//! same transaction is refused ([`AnchoringError::Replay`]) whenever it
//! comes again, and anyone can prove that it was applied with its block's
//! certificate and a [`crate::TxInclusion`]. The ledger asks the chain
//! through [`crate::StateView::applied`] (a node keeps an index of the ids
//! in its blocks); the authenticated state does not repeat it, so a
//! transaction adds to the state tree only what it changes. A transaction
//! is also refused after its expiry
//! height, which must lie within [`MAX_TX_LIFETIME_BLOCKS`] of the block, so
//! a signed transaction that was never submitted cannot surface years later.
//! Submitting the same transaction twice is therefore idempotent for the
//! issuer (the second answer is `Replay`, with the first one's receipt
//! available), and several of an issuer's workers can submit in parallel: no
//! per-issuer sequence has to be coordinated. Two intentionally identical
//! actions (suspend, reinstate, suspend again) differ by their `nonce`.

use std::collections::HashMap;

use borsh::{BorshDeserialize, BorshSerialize};
use cairn_genesis::signature::{self, SignatureItem};
use cairn_genesis::{Domain, Hash, PublicKey, Timestamp};
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::credential::{MAX_ISSUER_BYTES, MAX_NAME_BYTES, check_identifier};
use crate::{AnchoringError, Commitment};

/// Domain tag of the bytes an issuer signs.
pub const TX_SIGN_DOMAIN: &[u8] = b"cairn/anchoring/transaction/v1\0";
/// Domain of transaction ids.
pub const TX_ID_DOMAIN: &str = "cairn 2026-11 transaction id v1";
static TX_ID: Domain = Domain::new(TX_ID_DOMAIN);
/// Most commitments in one anchor transaction.
pub const MAX_COMMITMENTS_PER_TX: usize = 10_000;
/// How far ahead of the block a transaction's expiry may lie.
pub const MAX_TX_LIFETIME_BLOCKS: u64 = 100_000;
/// Largest encoded transaction accepted by [`SignedTransaction::decode`].
pub const MAX_TX_BYTES: usize = 2 * 1024 * 1024;

/// Why a license is revoked, following e-license practice.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    BorshSerialize,
    BorshDeserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum RevocationReason {
    /// 撤销: annulled, the license should never have been issued.
    Annulled,
    /// 注销: cancelled, at the holder's request or because its subject ceased to exist.
    Cancelled,
    /// 吊销: revoked as a penalty.
    RevokedAsPenalty,
    /// 失效: no longer effective.
    Lapsed,
    /// Any other reason.
    Other,
}

/// One credential to anchor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
#[serde(deny_unknown_fields)]
pub struct AnchorItem {
    /// The commitment.
    pub commitment: Commitment,
    /// Its credential type code.
    pub credential_type: String,
    /// When it stops being valid, if ever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<Timestamp>,
}

/// What a transaction does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Anchor 1 to [`MAX_COMMITMENTS_PER_TX`] new credentials, all or none.
    Anchor(Vec<AnchorItem>),
    /// Suspend an active credential (暂扣).
    Suspend {
        /// The credential.
        commitment: Commitment,
    },
    /// Reinstate a suspended credential (发还).
    Reinstate {
        /// The credential.
        commitment: Commitment,
    },
    /// Revoke a credential for good (吊销/撤销/注销).
    Revoke {
        /// The credential.
        commitment: Commitment,
        /// Why.
        reason: RevocationReason,
    },
    /// Replace a credential by a renewed or changed one (延续/变更), linked both ways.
    Supersede {
        /// The credential replaced.
        old: Commitment,
        /// Its successor, anchored by this transaction.
        new: AnchorItem,
    },
}

impl Action {
    /// The credentials the action reads or writes (without allocating: a
    /// node asks this of every pending transaction after each block).
    pub fn commitments(&self) -> impl Iterator<Item = Commitment> + '_ {
        let (items, others): (&[AnchorItem], [Option<Commitment>; 2]) = match self {
            Action::Anchor(items) => (items, [None, None]),
            Action::Suspend { commitment }
            | Action::Reinstate { commitment }
            | Action::Revoke { commitment, .. } => (&[], [Some(*commitment), None]),
            Action::Supersede { old, new } => (&[], [Some(*old), Some(new.commitment)]),
        };
        items
            .iter()
            .map(|i| i.commitment)
            .chain(others.into_iter().flatten())
    }
}

/// The body an issuer signs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
#[serde(deny_unknown_fields)]
pub struct Transaction {
    /// The chain's genesis hash.
    pub chain: Hash,
    /// The acting issuer's id.
    pub issuer: String,
    /// The issuer key that signs.
    pub key: PublicKey,
    /// Distinguishes otherwise identical transactions.
    pub nonce: u64,
    /// Last height at which it may be applied.
    pub expires_at: u64,
    /// What it does.
    pub action: Action,
}

/// A transaction with the issuer's signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedTransaction {
    /// The body.
    pub tx: Transaction,
    /// ed25519 signature by `tx.key` over [`Transaction::sign_bytes`].
    #[serde(with = "signature_hex")]
    pub signature: [u8; 64],
}

impl Transaction {
    /// The bytes the issuer signs: a domain tag, then the borsh encoding.
    pub fn sign_bytes(&self) -> Vec<u8> {
        let mut bytes = TX_SIGN_DOMAIN.to_vec();
        let _ = borsh::to_writer(&mut bytes, self);
        bytes
    }

    /// The transaction id: the hash of the unsigned body.
    pub fn id(&self) -> Hash {
        TX_ID.hash(&borsh::to_vec(self).unwrap_or_default())
    }

    /// Signs with `key` (which should be `self.key`'s secret).
    pub fn sign(self, key: &SigningKey) -> SignedTransaction {
        let signature = key.sign(&self.sign_bytes()).to_bytes();
        SignedTransaction {
            tx: self,
            signature,
        }
    }

    /// Checks the shape: identifiers, batch size, no commitment twice in a batch.
    pub fn check_shape(&self, max_commitments: usize) -> Result<(), AnchoringError> {
        check_identifier("issuer", &self.issuer, MAX_ISSUER_BYTES)?;
        let items: Vec<&AnchorItem> = match &self.action {
            Action::Anchor(items) => {
                let max = max_commitments.min(MAX_COMMITMENTS_PER_TX);
                if items.is_empty() || items.len() > max {
                    return Err(AnchoringError::BatchSize {
                        count: items.len(),
                        max,
                    });
                }
                items.iter().collect()
            }
            Action::Supersede { new, .. } => vec![new],
            _ => Vec::new(),
        };
        let mut seen = std::collections::HashSet::with_capacity(items.len());
        for item in items {
            check_identifier("credential type", &item.credential_type, MAX_NAME_BYTES)?;
            if !seen.insert(item.commitment) {
                return Err(AnchoringError::DuplicateInBatch {
                    commitment: item.commitment,
                });
            }
        }
        Ok(())
    }
}

impl SignedTransaction {
    /// The transaction id.
    pub fn id(&self) -> Hash {
        self.tx.id()
    }

    /// Checks the signature by Cairn's rule ([`cairn_genesis::signature`];
    /// weak keys refused).
    pub fn verify_signature(&self) -> Result<(), AnchoringError> {
        let key = self.verifying_key()?;
        signature::verify(&SignatureItem {
            key: &key,
            message: &self.tx.sign_bytes(),
            signature: &self.signature,
        })
        .map_err(|_| self.bad_signature())
    }

    /// Checks the signatures of many transactions in batches, one verdict
    /// per transaction, each exactly what
    /// [`SignedTransaction::verify_signature`] says of it.
    pub fn verify_signatures(txs: &[&SignedTransaction]) -> Vec<Result<(), AnchoringError>> {
        // An issuer signs many transactions with one key: each distinct key
        // is decoded and checked once (a point decompression each).
        let mut decoded: HashMap<[u8; 32], Option<VerifyingKey>> = HashMap::new();
        let keys: Vec<Result<VerifyingKey, AnchoringError>> = txs
            .iter()
            .map(|tx| {
                decoded
                    .entry(tx.tx.key.0)
                    .or_insert_with(|| tx.tx.key.check().ok())
                    .ok_or_else(|| tx.bad_signature())
            })
            .collect();
        let messages: Vec<Vec<u8>> = txs.iter().map(|tx| tx.tx.sign_bytes()).collect();
        // Only transactions with a usable key go into the batch.
        let mut checked = Vec::with_capacity(txs.len());
        let mut items = Vec::with_capacity(txs.len());
        for (i, key) in keys.iter().enumerate() {
            if let Ok(key) = key {
                checked.push(i);
                items.push(SignatureItem {
                    key,
                    message: &messages[i],
                    signature: &txs[i].signature,
                });
            }
        }
        let mut verdicts: Vec<Result<(), AnchoringError>> = keys
            .iter()
            .map(|k| k.as_ref().map(|_| ()).map_err(Clone::clone))
            .collect();
        for (i, verdict) in checked.into_iter().zip(signature::verify_each(&items)) {
            if verdict.is_err() {
                verdicts[i] = Err(txs[i].bad_signature());
            }
        }
        verdicts
    }

    fn bad_signature(&self) -> AnchoringError {
        AnchoringError::BadSignature {
            issuer: self.tx.issuer.clone(),
        }
    }

    fn verifying_key(&self) -> Result<VerifyingKey, AnchoringError> {
        self.tx.key.check().map_err(|_| self.bad_signature())
    }

    /// Decodes borsh bytes: refuses more than [`MAX_TX_BYTES`] before
    /// decoding, trailing bytes, and a shape outside the bounds.
    pub fn decode(bytes: &[u8]) -> Result<SignedTransaction, AnchoringError> {
        if bytes.len() > MAX_TX_BYTES {
            return Err(AnchoringError::Decode {
                what: "transaction",
                reason: format!("{} bytes, more than {MAX_TX_BYTES}", bytes.len()),
            });
        }
        let tx: SignedTransaction =
            borsh::from_slice(bytes).map_err(|e| AnchoringError::Decode {
                what: "transaction",
                reason: e.to_string(),
            })?;
        tx.tx.check_shape(MAX_COMMITMENTS_PER_TX)?;
        Ok(tx)
    }

    /// The borsh encoding.
    pub fn encode(&self) -> Vec<u8> {
        borsh::to_vec(self).unwrap_or_default()
    }
}

mod signature_hex {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8; 64], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<[u8; 64], D::Error> {
        let text = String::deserialize(deserializer)?;
        let mut bytes = [0u8; 64];
        hex::decode_to_slice(&text, &mut bytes).map_err(|e| {
            serde::de::Error::custom(format!("signature: {e} (expected 128 hex characters)"))
        })?;
        Ok(bytes)
    }
}
