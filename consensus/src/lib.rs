//! Tendermint BFT consensus for Cairn, as a pure state machine: inputs
//! (proposals, votes, timeouts, validity verdicts) in, effects (broadcast,
//! schedule a timeout, decide with a commit certificate, evidence) out. No
//! clock, no I/O: the node drives it.
//!
//! The state machine itself arrives with the consensus work; this crate is
//! its place in the workspace.

#![forbid(unsafe_code)]
