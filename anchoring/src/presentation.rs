//! Presentations: what a holder shows a verifier. Chosen fields are
//! disclosed with their salts and Merkle proofs; the others stay hidden
//! behind the fields root (each leaf hides its value under a 256-bit salt,
//! and a proof reveals only sibling hashes).

use borsh::{BorshDeserialize, BorshSerialize};
use cairn_genesis::Hash;
use serde::{Deserialize, Serialize};

use crate::credential::{MAX_FIELDS, check_identifier, commitment, field_leaf};
use crate::merkle::{self, InclusionProof};
use crate::{AnchoringError, Commitment, CredentialDocument, Salt};

/// One disclosed field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
#[serde(deny_unknown_fields)]
pub struct DisclosedField {
    /// Field name.
    pub name: String,
    /// Field value.
    pub value: String,
    /// The field's salt.
    pub salt: Salt,
    /// Where its leaf sits under the fields root.
    pub proof: InclusionProof,
}

/// A selective disclosure of one credential.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
#[serde(deny_unknown_fields)]
pub struct Presentation {
    /// Catalog code of the credential type.
    pub credential_type: String,
    /// The issuer's id.
    pub issuer: String,
    /// How many fields the credential has in all.
    pub field_count: u64,
    /// The Merkle root over all the field leaves.
    pub fields_root: Hash,
    /// The disclosed fields, in name order.
    pub disclosed: Vec<DisclosedField>,
}

impl Presentation {
    /// Discloses the fields named in `names` (any subset, in any order) of `document`.
    pub fn disclose(
        document: &CredentialDocument,
        names: &[&str],
    ) -> Result<Presentation, AnchoringError> {
        document.check()?;
        let leaves = document.leaves();
        let mut disclosed = Vec::with_capacity(names.len());
        for (index, (name, field)) in document.fields.iter().enumerate() {
            if names.contains(&name.as_str()) {
                let proof = merkle::prove(&leaves, index)
                    .ok_or(AnchoringError::UnknownField { name: name.clone() })?;
                disclosed.push(DisclosedField {
                    name: name.clone(),
                    value: field.value.clone(),
                    salt: field.salt,
                    proof,
                });
            }
        }
        if let Some(missing) = names.iter().find(|n| !document.fields.contains_key(**n)) {
            return Err(AnchoringError::UnknownField {
                name: (*missing).to_owned(),
            });
        }
        Ok(Presentation {
            credential_type: document.credential_type.clone(),
            issuer: document.issuer.clone(),
            field_count: document.fields.len() as u64,
            fields_root: merkle::root(&leaves),
            disclosed,
        })
    }

    /// Checks every disclosed field against the fields root and returns the
    /// commitment they belong to. The caller then checks that commitment on chain.
    pub fn check(&self) -> Result<Commitment, AnchoringError> {
        check_identifier(
            "credential type",
            &self.credential_type,
            crate::credential::MAX_NAME_BYTES,
        )?;
        check_identifier("issuer", &self.issuer, crate::credential::MAX_ISSUER_BYTES)?;
        if self.field_count == 0 || self.field_count > MAX_FIELDS as u64 {
            return Err(AnchoringError::Malformed {
                what: "presentation",
                reason: format!(
                    "field count {} is outside 1..={MAX_FIELDS}",
                    self.field_count
                ),
            });
        }
        let mut previous: Option<(&str, u64)> = None;
        for field in &self.disclosed {
            if let Some((name, index)) = previous
                && (field.name.as_str() <= name || field.proof.index <= index)
            {
                return Err(AnchoringError::FieldOrder {
                    name: field.name.clone(),
                });
            }
            if field.proof.leaf_count != self.field_count {
                return Err(AnchoringError::FieldProof {
                    name: field.name.clone(),
                });
            }
            let leaf = field_leaf(&field.salt, &field.name, &field.value);
            if !field.proof.verify(leaf, self.fields_root) {
                return Err(AnchoringError::FieldProof {
                    name: field.name.clone(),
                });
            }
            previous = Some((&field.name, field.proof.index));
        }
        Ok(commitment(
            &self.credential_type,
            &self.issuer,
            self.field_count,
            self.fields_root,
        ))
    }

    /// The value of a disclosed field.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.disclosed
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.value.as_str())
    }
}

/// Largest presentation file [`PresentationFile::parse`] reads.
pub const MAX_PRESENTATION_FILE_BYTES: usize = 4 * 1024 * 1024;

/// What a holder hands a verifier: the presentation and, stapled to it, a
/// recent proof bundle (hex of its borsh encoding), so that the verifier
/// need not ask any node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresentationFile {
    /// The disclosed fields.
    pub presentation: Presentation,
    /// The stapled proof bundle, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle: Option<String>,
}

impl PresentationFile {
    /// A file for `presentation`, with `bundle` stapled if given.
    pub fn new(presentation: Presentation, bundle: Option<&crate::ProofBundle>) -> Self {
        PresentationFile {
            presentation,
            bundle: bundle.map(|b| hex::encode(b.encode())),
        }
    }

    /// Parses the JSON of a presentation file, refusing oversized input first.
    pub fn parse(text: &str) -> Result<PresentationFile, AnchoringError> {
        if text.len() > MAX_PRESENTATION_FILE_BYTES {
            return Err(AnchoringError::Decode {
                what: "presentation file",
                reason: format!(
                    "{} bytes, more than {MAX_PRESENTATION_FILE_BYTES}",
                    text.len()
                ),
            });
        }
        serde_json::from_str(text).map_err(|e| AnchoringError::Decode {
            what: "presentation file",
            reason: e.to_string(),
        })
    }

    /// The stapled bundle, decoded.
    pub fn bundle(&self) -> Result<Option<crate::ProofBundle>, AnchoringError> {
        let Some(text) = &self.bundle else {
            return Ok(None);
        };
        let bytes = hex::decode(text).map_err(|e| AnchoringError::Decode {
            what: "proof bundle",
            reason: format!("not hex: {e}"),
        })?;
        crate::ProofBundle::decode(&bytes).map(Some)
    }
}
