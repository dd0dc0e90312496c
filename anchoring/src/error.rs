//! The one error type of this crate.

use cairn_genesis::Hash;

use crate::Commitment;

/// Why a credential, presentation or transaction was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnchoringError {
    /// Something does not have the shape it must have.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// What was malformed.
        what: &'static str,
        /// How.
        reason: String,
    },
    /// A field name the credential does not have.
    #[error("the credential has no field {name:?}")]
    UnknownField {
        /// The name asked for.
        name: String,
    },
    /// A disclosed field does not belong under the presentation's fields root.
    #[error(
        "disclosed field {name:?} does not match the credential (value, salt or proof altered)"
    )]
    FieldProof {
        /// The field.
        name: String,
    },
    /// Disclosed fields out of name order, or repeated.
    #[error("disclosed field {name:?} is out of order or repeated")]
    FieldOrder {
        /// The field.
        name: String,
    },
    /// A transaction for another chain.
    #[error("transaction for chain {found}, this chain is {expected}")]
    WrongChain {
        /// This chain.
        expected: Hash,
        /// The transaction's.
        found: Hash,
    },
    /// The signature does not verify.
    #[error("invalid signature by issuer {issuer}")]
    BadSignature {
        /// The claimed issuer.
        issuer: String,
    },
    /// The issuer is not registered.
    #[error("unknown issuer {issuer}")]
    UnknownIssuer {
        /// The issuer id.
        issuer: String,
    },
    /// The signing key is not one of the issuer's, or not valid at the block time.
    #[error("key {key} of issuer {issuer} is not valid at {at}")]
    KeyNotValid {
        /// The issuer.
        issuer: String,
        /// The key (hex).
        key: String,
        /// The block time (RFC 3339).
        at: String,
    },
    /// The credential type is not in the catalog.
    #[error("unknown credential type {credential_type}")]
    UnknownType {
        /// The type code.
        credential_type: String,
    },
    /// The issuer is not accredited for the credential type.
    #[error("issuer {issuer} is not accredited for {credential_type}")]
    NotAccredited {
        /// The issuer.
        issuer: String,
        /// The type code.
        credential_type: String,
    },
    /// The commitment is already on the ledger.
    #[error("commitment {commitment} is already anchored")]
    AlreadyAnchored {
        /// The commitment.
        commitment: Commitment,
    },
    /// The same commitment twice in one anchor batch.
    #[error("commitment {commitment} appears twice in the batch")]
    DuplicateInBatch {
        /// The commitment.
        commitment: Commitment,
    },
    /// The commitment is not on the ledger.
    #[error("unknown commitment {commitment}")]
    UnknownCommitment {
        /// The commitment.
        commitment: Commitment,
    },
    /// Acting on a credential another issuer anchored.
    #[error("credential {commitment} was issued by {owner}, not {issuer}")]
    NotIssuingAgency {
        /// The credential.
        commitment: Commitment,
        /// Its issuer.
        owner: String,
        /// Who tried to act on it.
        issuer: String,
    },
    /// A lifecycle step that makes no sense from the credential's state.
    #[error("cannot {action} credential {commitment}: it is {status}")]
    IllegalTransition {
        /// The credential.
        commitment: Commitment,
        /// What was attempted.
        action: &'static str,
        /// Its current status.
        status: String,
    },
    /// A batch with no commitments or more than allowed.
    #[error("anchor batch has {count} commitments; 1 to {max} are allowed")]
    BatchSize {
        /// Commitments in the batch.
        count: usize,
        /// The cap.
        max: usize,
    },
    /// The transaction was already applied.
    #[error("transaction {tx} was already applied")]
    Replay {
        /// The transaction hash.
        tx: Hash,
    },
    /// The transaction's expiry height has passed, or is too far ahead.
    #[error(
        "transaction expires at height {expires_at}; the block is at height {height} (at most {max_lifetime} ahead)"
    )]
    Expired {
        /// The transaction's last valid height.
        expires_at: u64,
        /// The block height.
        height: u64,
        /// The longest lifetime allowed.
        max_lifetime: u64,
    },
    /// A renewal must keep the credential type.
    #[error("renewal {new} must have the type {expected} of the credential it supersedes")]
    TypeChange {
        /// The new commitment.
        new: Commitment,
        /// The old type.
        expected: String,
    },
    /// Encoded bytes that do not decode (length, trailing bytes, caps).
    #[error("cannot decode {what}: {reason}")]
    Decode {
        /// What was decoded.
        what: &'static str,
        /// Why it failed.
        reason: String,
    },
    /// A state proof does not prove what it claims under the given root.
    #[error("state proof does not verify: {reason}")]
    StateProof {
        /// What jmt reported.
        reason: String,
    },
    /// A state version written out of turn: versions follow one another
    /// from 0.
    #[error("state version {version} written where version {next} is next")]
    StateVersion {
        /// The version asked for.
        version: u64,
        /// The version that follows the latest written.
        next: u64,
    },
    /// The state storage failed.
    #[error("state storage failed: {0}")]
    Storage(String),
}
