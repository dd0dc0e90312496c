//! End-to-end and simulation tests of Cairn that span crates. The tests
//! live in `tests/`; this library holds what they share, first of all the
//! deterministic consensus simulator ([`sim`]).

#![forbid(unsafe_code)]

pub mod sim;
