//! End-to-end and simulation tests of Cairn that span crates. The tests
//! live in `tests/`; this library holds what they share.
#![forbid(unsafe_code)]
