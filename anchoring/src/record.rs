//! What the ledger keeps: credential records with their lifecycle, issuers
//! and credential types, each under a [`StateKey`].

use borsh::{BorshDeserialize, BorshSerialize};
use cairn_genesis::{Domain, Hash, Timestamp};
use serde::{Deserialize, Serialize};

use crate::{Commitment, RevocationReason};

/// Domain of the keys of the authenticated state.
pub const STATE_KEY_DOMAIN: &str = "cairn 2026-12 state key v2";
static STATE_KEY: Domain = Domain::new(STATE_KEY_DOMAIN);

/// Version of the state tree's layout: where [`StateKey::hash`] puts each
/// kind of key, how the tree hashes its nodes (and, in the node's store,
/// how tree nodes are keyed). Layout 1 hashed every key alike; 2 sets the
/// catalog apart; 3 hashes each node in one blake3 compression
/// ([`crate::StateHasher`]); 4 no longer keeps a receipt of each applied
/// transaction in the state (the blocks record them, and the replay rule
/// reads them there). A data folder written under another layout holds a
/// different tree.
pub const STATE_KEY_LAYOUT: u32 = 4;

/// Where a value lives in the state.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize)]
pub enum StateKey {
    /// A credential record, by commitment.
    Credential(Commitment),
    /// An issuer, by id.
    Issuer(String),
    /// A credential type, by code.
    CredentialType(String),
}

impl StateKey {
    /// The 32-byte key the state tree uses: the key's domain hash, with its
    /// first nibble set apart by kind. The catalog (issuers and credential
    /// types) takes first nibble 0 and credentials 8 to 15, so the catalog
    /// is one subtree under the root, beside the credentials whatever their
    /// number: an issuer's or a type's proof, carried in every bundle, is a
    /// hash and three empty bits at the root and then only as deep as the
    /// catalog, where it would otherwise grow with every credential
    /// anchored.
    pub fn hash(&self) -> Hash {
        let mut hash = STATE_KEY.hash(&borsh::to_vec(self).unwrap_or_default());
        match self {
            StateKey::Issuer(_) | StateKey::CredentialType(_) => hash.0[0] &= 0x0f,
            StateKey::Credential(_) => hash.0[0] |= 0x80,
        }
        hash
    }
}

/// A credential's stored status; [`CredentialRecord::status_at`] adds expiry.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize,
)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum Status {
    /// Valid (also after a reinstatement).
    Active,
    /// Suspended (暂扣) until reinstated.
    Suspended,
    /// Revoked for good.
    Revoked {
        /// Why.
        reason: RevocationReason,
    },
    /// Replaced by a renewal or change.
    Superseded {
        /// The successor.
        by: Commitment,
    },
    /// Past its valid-until (never stored: derived from the time).
    Expired,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Status::Active => f.write_str("active"),
            Status::Suspended => f.write_str("suspended"),
            Status::Revoked { reason } => write!(f, "revoked ({reason:?})"),
            Status::Superseded { by } => write!(f, "superseded by {by}"),
            Status::Expired => f.write_str("expired"),
        }
    }
}

/// What happened to a credential.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize,
)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum EventKind {
    /// Anchored; `renews` names the credential it supersedes, if any.
    Anchored {
        /// The predecessor of a renewal.
        renews: Option<Commitment>,
    },
    /// Suspended.
    Suspended,
    /// Reinstated.
    Reinstated,
    /// Revoked.
    Revoked {
        /// Why.
        reason: RevocationReason,
    },
    /// Superseded.
    Superseded {
        /// The successor.
        by: Commitment,
    },
}

impl EventKind {
    /// The event's name, as the API and the CLI print it.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::Anchored { renews: None } => "anchored",
            EventKind::Anchored { renews: Some(_) } => "anchored (renewal)",
            EventKind::Suspended => "suspended",
            EventKind::Reinstated => "reinstated",
            EventKind::Revoked { .. } => "revoked",
            EventKind::Superseded { .. } => "superseded",
        }
    }
}

/// One lifecycle event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
pub struct LifecycleEvent {
    /// What happened.
    pub kind: EventKind,
    /// Height of the block.
    pub height: u64,
    /// Time of the block.
    pub time: Timestamp,
    /// The transaction.
    pub tx: Hash,
    /// Its position in the block.
    pub tx_index: u32,
    /// The acting issuer.
    pub actor: String,
}

/// Most events one credential may accumulate.
pub const MAX_EVENTS_PER_CREDENTIAL: usize = 1_000;

/// A credential on the ledger.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
pub struct CredentialRecord {
    /// The commitment.
    pub commitment: Commitment,
    /// Its credential type.
    pub credential_type: String,
    /// The issuer that anchored it.
    pub issuer: String,
    /// When it stops being valid, if ever.
    pub valid_until: Option<Timestamp>,
    /// Stored status.
    pub status: Status,
    /// Every event, oldest first.
    pub events: Vec<LifecycleEvent>,
}

impl CredentialRecord {
    /// The status at `time`: an active credential past its valid-until is expired.
    pub fn status_at(&self, time: Timestamp) -> Status {
        match (self.status, self.valid_until) {
            (Status::Active, Some(until)) if time >= until => Status::Expired,
            (status, _) => status,
        }
    }

    /// When the current status began (the last event's time).
    pub fn since(&self) -> Option<Timestamp> {
        self.events.last().map(|e| e.time)
    }
}

/// Where a transaction was applied. Not kept in the state: the block that
/// applied it records it, and proves it with a [`crate::TxInclusion`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
pub struct TxReceipt {
    /// The transaction id.
    pub tx: Hash,
    /// The block height.
    pub height: u64,
    /// Position in the block.
    pub index: u32,
}
