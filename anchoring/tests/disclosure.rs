//! Commitments and selective disclosure: the committed test vectors, any
//! subset disclosing correctly, nothing undisclosed leaking, and any altered
//! byte being caught.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::collections::BTreeMap;

use borsh::BorshDeserialize;
use cairn_anchoring::{
    AnchoringError, CredentialDocument, Field, Presentation, Salt, field_leaf, merkle,
};
use cairn_genesis::Hash;
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Vector {
    description: String,
    document: CredentialDocument,
    leaves: Vec<Hash>,
    fields_root: Hash,
    commitment: Hash,
}

fn vector_documents() -> Vec<(String, CredentialDocument)> {
    let salt = |n: u8| Salt([n; 32]);
    let field = |value: &str, n: u8| Field {
        value: value.to_owned(),
        salt: salt(n),
    };
    let driver: BTreeMap<String, Field> = [
        ("holder_name", field("张三", 1)),
        ("id_number", field("310101199001011234", 2)),
        (
            "license_number",
            field(
                "1.2.156.3005.2.11100000000000127001.11310000MB0000001C.000123.001.X",
                3,
            ),
        ),
        ("class", field("C1", 4)),
        ("valid_from", field("2026-01-01", 5)),
        ("valid_until", field("2032-01-01", 6)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let single: BTreeMap<String, Field> =
        [("entity_name".to_owned(), field("上海示例科技有限公司", 7))].into();
    vec![
        (
            "a six-field driver's license (an unbalanced tree: 4 + 2 leaves)".to_owned(),
            CredentialDocument {
                credential_type: "driver-license".into(),
                issuer: "11310000MB0000001C".into(),
                fields: driver,
            },
        ),
        (
            "a one-field business license (the root is the single leaf)".to_owned(),
            CredentialDocument {
                credential_type: "business-license".into(),
                issuer: "11320000MB0000009A".into(),
                fields: single,
            },
        ),
    ]
}

fn vectors_path() -> std::path::PathBuf {
    manifest_dir().join("tests/vectors/commitments.json")
}

fn compute(description: String, document: CredentialDocument) -> Vector {
    Vector {
        description,
        leaves: document.leaves(),
        fields_root: document.fields_root(),
        commitment: document.commitment().0,
        document,
    }
}

#[test]
fn committed_vectors_hold() {
    // CAIRN_WRITE_VECTORS=1 rewrites the file from the documents above.
    let computed: Vec<Vector> = vector_documents()
        .into_iter()
        .map(|(d, doc)| compute(d, doc))
        .collect();
    if std::env::var_os("CAIRN_WRITE_VECTORS").is_some() {
        std::fs::write(
            vectors_path(),
            serde_json::to_string_pretty(&computed).unwrap() + "\n",
        )
        .unwrap();
    }
    let stored: Vec<Vector> =
        serde_json::from_str(&std::fs::read_to_string(vectors_path()).unwrap()).unwrap();
    assert_eq!(stored.len(), computed.len());
    for v in stored {
        // Recompute everything from the stored document alone.
        let leaves: Vec<Hash> = v
            .document
            .fields
            .iter()
            .map(|(n, f)| field_leaf(&f.salt, n, &f.value))
            .collect();
        assert_eq!(leaves, v.leaves, "{}", v.description);
        assert_eq!(merkle::root(&leaves), v.fields_root, "{}", v.description);
        assert_eq!(v.document.commitment().0, v.commitment, "{}", v.description);
    }
}

fn sample() -> CredentialDocument {
    vector_documents().remove(0).1
}

#[test]
fn fresh_salts_are_random_and_distinct() {
    let values: BTreeMap<String, String> = [
        ("a".to_owned(), "1".to_owned()),
        ("b".to_owned(), "1".to_owned()),
    ]
    .into();
    let one = CredentialDocument::new("t", "i", values.clone()).unwrap();
    let two = CredentialDocument::new("t", "i", values).unwrap();
    assert_ne!(
        one.commitment(),
        two.commitment(),
        "same values, new salts, new commitment"
    );
    assert_ne!(one.fields["a"].salt, one.fields["b"].salt);
}

#[test]
fn undisclosed_fields_do_not_appear_in_the_presentation() {
    let doc = sample();
    let p = Presentation::disclose(&doc, &["class"]).unwrap();
    let json = serde_json::to_string(&p).unwrap();
    for (name, field) in &doc.fields {
        if name == "class" {
            assert!(json.contains(&field.value));
            continue;
        }
        assert!(!json.contains(name.as_str()), "{name} leaked");
        assert!(!json.contains(&field.value), "value of {name} leaked");
        assert!(
            !json.contains(&hex::encode(field.salt.0)),
            "salt of {name} leaked"
        );
    }
    let bytes = borsh::to_vec(&p).unwrap();
    let id = "310101199001011234".as_bytes();
    assert!(!bytes.windows(id.len()).any(|w| w == id));
}

#[test]
fn unknown_fields_and_altered_values_are_refused_by_name() {
    let doc = sample();
    assert_eq!(
        Presentation::disclose(&doc, &["blood_type"]),
        Err(AnchoringError::UnknownField {
            name: "blood_type".into()
        })
    );
    let mut p = Presentation::disclose(&doc, &["class", "holder_name"]).unwrap();
    p.disclosed[0].value = "A1".into();
    assert_eq!(
        p.check(),
        Err(AnchoringError::FieldProof {
            name: "class".into()
        })
    );
    let mut p = Presentation::disclose(&doc, &["class", "holder_name"]).unwrap();
    p.disclosed.swap(0, 1);
    assert!(matches!(p.check(), Err(AnchoringError::FieldOrder { .. })));
    let mut p = Presentation::disclose(&doc, &["class"]).unwrap();
    p.disclosed.push(p.disclosed[0].clone());
    assert!(matches!(p.check(), Err(AnchoringError::FieldOrder { .. })));
}

proptest! {
    #[test]
    fn any_subset_discloses_to_the_same_commitment(mask in 0u32..64) {
        let doc = sample();
        let names: Vec<&str> = doc.fields.keys().enumerate().filter(|(i, _)| mask & (1 << i) != 0).map(|(_, n)| n.as_str()).collect();
        let p = Presentation::disclose(&doc, &names).unwrap();
        prop_assert_eq!(p.disclosed.len(), names.len());
        prop_assert_eq!(p.check().unwrap(), doc.commitment());
        // Borsh and JSON round trips.
        let back = Presentation::try_from_slice(&borsh::to_vec(&p).unwrap()).unwrap();
        prop_assert_eq!(&back, &p);
        let back: Presentation = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        prop_assert_eq!(back, p);
    }

    #[test]
    fn any_flipped_byte_is_caught_and_never_panics(mask in 1u32..64, position in any::<prop::sample::Index>(), bit in 0u8..8) {
        let doc = sample();
        let names: Vec<&str> = doc.fields.keys().enumerate().filter(|(i, _)| mask & (1 << i) != 0).map(|(_, n)| n.as_str()).collect();
        let p = Presentation::disclose(&doc, &names).unwrap();
        let mut bytes = borsh::to_vec(&p).unwrap();
        let i = position.index(bytes.len());
        bytes[i] ^= 1 << bit;
        if let Ok(altered) = Presentation::try_from_slice(&bytes) {
            // Either refused, or it names another credential (which the chain does not hold).
            if let Ok(c) = altered.check() {
                prop_assert_ne!(c, doc.commitment());
            }
        }
    }
}

/// This package's folder, from the test's environment (cargo and nextest
/// set it): a test binary reused by another checkout of the same sources
/// reads that checkout's files, not the ones it was built from.
fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), Into::into)
}
