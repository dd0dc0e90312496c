//! Regenerates the test vector when asked: `CAIRN_WRITE_VECTORS=1 cargo test -p cairn-genesis --test write_vector`.
//! Without the variable it does nothing but check that the sample is valid.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

#[test]
fn write_vector_when_asked() {
    let doc = common::sample();
    doc.validate().unwrap();
    if std::env::var_os("CAIRN_WRITE_VECTORS").is_some() {
        let dir = manifest_dir().join("tests/vectors");
        std::fs::write(dir.join("genesis.json"), doc.to_json()).unwrap();
        std::fs::write(dir.join("genesis.hash"), format!("{}\n", doc.hash())).unwrap();
    }
}

/// This package's folder, from the test's environment (cargo and nextest
/// set it): a test binary reused by another checkout of the same sources
/// reads that checkout's files, not the ones it was built from.
fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), Into::into)
}
