//! Proof bundles: everything a verifier needs, with a trusted genesis, to
//! check a credential offline. The finalized header and its commit
//! certificate, the credential record and the issuer's and credential
//! type's entries with their state proofs under that header's state root,
//! and optionally the proofs of the record's events (for regulators).

use borsh::{BorshDeserialize, BorshSerialize};
use cairn_consensus::CompactCertificate;
use cairn_genesis::{CredentialType, Issuer};

use crate::block::{CompactHeader, TxInclusion};
use crate::state::StateProof;
use crate::{AnchoringError, CredentialRecord};

/// Largest encoded bundle [`ProofBundle::decode`] accepts.
pub const MAX_BUNDLE_BYTES: usize = 1024 * 1024;

/// One lifecycle event proven: the block it is in, that block's
/// certificate, and the transaction's inclusion.
#[derive(Clone, Debug, BorshSerialize, BorshDeserialize)]
pub struct EventProof {
    /// The event's block header (compact: the verifier's trust supplies the rest).
    pub header: CompactHeader,
    /// Its commit certificate, reduced to a quorum.
    pub certificate: CompactCertificate,
    /// The transaction and its inclusion proof.
    pub inclusion: TxInclusion,
}

/// A self-contained proof of a credential's state at a finalized height.
#[derive(Clone, Debug, BorshSerialize, BorshDeserialize)]
pub struct ProofBundle {
    /// The finalized header the proofs refer to (compact: the verifier's trust supplies the rest).
    pub header: CompactHeader,
    /// Its commit certificate, reduced to a quorum.
    pub certificate: CompactCertificate,
    /// The credential record.
    pub record: CredentialRecord,
    /// Its state proof.
    pub record_proof: StateProof,
    /// The issuer's entry.
    pub issuer: Issuer,
    /// Its state proof.
    pub issuer_proof: StateProof,
    /// The credential type's entry.
    pub credential_type: CredentialType,
    /// Its state proof.
    pub type_proof: StateProof,
    /// Proofs of the record's events, oldest first (may be empty).
    pub events: Vec<EventProof>,
}

impl ProofBundle {
    /// The borsh encoding.
    pub fn encode(&self) -> Vec<u8> {
        borsh::to_vec(self).unwrap_or_default()
    }

    /// Decodes a bundle, refusing one larger than [`MAX_BUNDLE_BYTES`] before
    /// decoding it and any trailing bytes.
    pub fn decode(bytes: &[u8]) -> Result<ProofBundle, AnchoringError> {
        if bytes.len() > MAX_BUNDLE_BYTES {
            return Err(AnchoringError::Decode {
                what: "proof bundle",
                reason: format!("{} bytes, more than {MAX_BUNDLE_BYTES}", bytes.len()),
            });
        }
        borsh::from_slice(bytes).map_err(|e| AnchoringError::Decode {
            what: "proof bundle",
            reason: e.to_string(),
        })
    }
}
