//! Chain identity for Cairn: the genesis document, its validation and
//! canonical hash, and the ed25519 keys of validators and issuers.
//!
//! A Cairn chain is defined by one JSON file that every agency reviews and
//! every node loads: the validator agencies and their voting power, the
//! catalog of credential types, and the issuers accredited for them. Its
//! canonical borsh encoding, hashed with blake3 under a domain of its own,
//! is the chain's identity; every signed message binds that hash, so no
//! signature made for one chain is valid on another.
//!
//! Invariants this crate holds:
//!
//! - a document that passes [`GenesisDocument::validate`] has at least one
//!   validator, non-zero voting power adding up to at most
//!   [`MAX_TOTAL_VOTING_POWER`], unique ids, unique strong (non-small-order)
//!   keys across all roles, and an accreditation relation that both sides
//!   (issuer and credential type) agree on;
//! - [`GenesisDocument::problems`] reports every problem, each a named
//!   [`GenesisError`] variant, so `cairn genesis check` can list them all;
//! - key files are created with mode 0600, never overwritten, and refused
//!   when anyone but their owner may read them;
//! - every signature on the chain is judged by one rule, alone or in a
//!   batch ([`signature`]), so that nodes agree whatever they batch.
//!
//! This crate is pure: no async runtime, network or database.

#![forbid(unsafe_code)]

pub mod credit_code;
mod document;
mod error;
mod fsutil;
mod hash;
mod key;
mod keyfile;
pub mod signature;
mod time;
mod validate;

pub use document::{
    ConsensusParams, CredentialType, GenesisDocument, Issuer, IssuerKey, MAX_GENESIS_FILE_BYTES,
    Validator,
};
pub use error::GenesisError;
pub use fsutil::write_atomic;
pub use hash::{Domain, GENESIS_DOMAIN, Hash};
pub use key::{KeyDefect, PeerId, PublicKey};
pub use keyfile::{KeyPair, MAX_KEY_FILE_BYTES};
pub use time::Timestamp;
pub use validate::{
    MAX_CREDENTIAL_TYPES, MAX_FIELDS_PER_TYPE, MAX_ISSUERS, MAX_KEYS_PER_ISSUER, MAX_NAME_BYTES,
    MAX_TOTAL_VOTING_POWER, MAX_TYPES_PER_ISSUER, MAX_VALIDATORS, is_valid_address,
};
