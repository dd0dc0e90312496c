//! Regenerates the test vector when asked: `CAIRN_WRITE_VECTORS=1 cargo test -p cairn-genesis --test write_vector`.
//! Without the variable it does nothing but check that the sample is valid.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::path::Path;

#[test]
fn write_vector_when_asked() {
    let doc = common::sample();
    doc.validate().unwrap();
    if std::env::var_os("CAIRN_WRITE_VECTORS").is_some() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors");
        std::fs::write(dir.join("genesis.json"), doc.to_json()).unwrap();
        std::fs::write(dir.join("genesis.hash"), format!("{}\n", doc.hash())).unwrap();
    }
}
