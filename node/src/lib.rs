//! The Cairn node: what an agency runs, around the pure `consensus` and
//! `anchoring` crates. Storage on RocksDB ([`store`]), the durable sign
//! state ([`sign_state`]), the committed chain and block execution
//! ([`chain`]), the [`mempool`], the libp2p network ([`net`]), the
//! consensus [`driver`], the HTTP [`api`] and [`metrics`]; [`node::run`]
//! puts them together.

#![forbid(unsafe_code)]

pub mod api;
pub mod bench;
pub mod chain;
pub mod config;
pub mod driver;
mod error;
pub mod mempool;
pub mod metrics;
pub mod net;
pub mod node;
pub mod query;
pub mod sign_state;
pub mod store;

pub use error::NodeError;
