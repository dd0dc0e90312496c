//! Credentials, commitments, selective disclosure, transactions, ledger state
//! and its proofs, proof bundles and offline verification: the pure logic
//! of anchoring licenses, with storage behind a trait.
//!
//! The ledger logic arrives with the anchoring work; this crate is its place
//! in the workspace.

#![forbid(unsafe_code)]
