//! The committed test vector: one genesis file and its hash. If the
//! encoding or the hash domain changes, every existing chain's identity
//! changes with it; this test makes such a change loud.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::path::Path;

use cairn_genesis::{GenesisDocument, Hash};

fn vector_path(name: &str) -> std::path::PathBuf {
    manifest_dir().join("tests/vectors").join(name)
}

fn committed_hash() -> Hash {
    let text = std::fs::read_to_string(vector_path("genesis.hash")).unwrap();
    Hash::from_hex(text.trim()).unwrap()
}

#[test]
fn vector_file_hashes_to_the_committed_hash() {
    let doc = GenesisDocument::load_valid(&vector_path("genesis.json")).unwrap();
    assert_eq!(doc.hash(), committed_hash());
}

#[test]
fn vector_file_is_the_sample_document() {
    // The file was written from `common::sample()`; both must stay the same
    // document, so the sample that other tests break is the vector.
    let doc = GenesisDocument::load(&vector_path("genesis.json")).unwrap();
    assert_eq!(doc, common::sample());
    let written = std::fs::read_to_string(vector_path("genesis.json")).unwrap();
    assert_eq!(written, common::sample().to_json());
}

#[test]
fn canonical_encoding_is_stable_under_reformatting() {
    let text = std::fs::read_to_string(vector_path("genesis.json")).unwrap();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    // Compact, with uppercase hex keys: still the same chain.
    let reformatted = serde_json::to_string(&value).unwrap().replace(
        &common::key(1).public_key().to_string(),
        &common::key(1).public_key().to_string().to_uppercase(),
    );
    let doc = GenesisDocument::from_json(&reformatted, Path::new("reformatted.json")).unwrap();
    assert_eq!(doc.hash(), committed_hash());
}

/// This package's folder, from the test's environment (cargo and nextest
/// set it): a test binary reused by another checkout of the same sources
/// reads that checkout's files, not the ones it was built from.
fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), Into::into)
}
