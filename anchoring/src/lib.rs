//! Anchoring licenses on Cairn: credential documents and their commitments,
//! selective disclosure, issuer transactions, the ledger state machine, the
//! authenticated state and its proofs.
//!
//! Pure logic: no async runtime, network or database; storage sits behind a
//! trait with an in-memory implementation.

#![forbid(unsafe_code)]

mod credential;
mod error;
pub mod merkle;
mod presentation;

pub use credential::{
    COMMITMENT_DOMAIN, Commitment, CredentialDocument, FIELD_LEAF_DOMAIN, Field, MAX_FIELDS,
    MAX_VALUE_BYTES, SALT_BYTES, Salt, commitment, field_leaf,
};
pub use error::AnchoringError;
pub use presentation::{DisclosedField, Presentation};
