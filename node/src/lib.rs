//! The Cairn node: what an agency runs. Storage on RocksDB, the durable
//! sign state, and (as they arrive) the network, the consensus driver, the
//! mempool and the HTTP API around the pure `consensus` and `anchoring`
//! crates.

#![forbid(unsafe_code)]

pub mod config;
mod error;
pub mod sign_state;
pub mod store;

pub use error::NodeError;
