//! Credential documents and their commitments.
//!
//! A credential document is held by its holder and its issuer, never put on
//! chain. Each field carries its own random salt, so that a field leaf
//! cannot be reversed by trying every possible value (an ID number has only
//! ~10^10 of them):
//!
//! ```text
//! field leaf  = blake3-derive("cairn 2026-11 field leaf v1",  borsh(salt, name, value))
//! fields root = Merkle root (crate::merkle) over the leaves, fields in name order
//! commitment  = blake3-derive("cairn 2026-11 commitment v1", borsh(type, issuer, field count, fields root))
//! ```
//!
//! Only the commitment is anchored.

use std::collections::BTreeMap;
use std::fmt;

use borsh::{BorshDeserialize, BorshSerialize};
use cairn_genesis::{Domain, Hash};
use rand::RngCore;
use rand::rngs::OsRng;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{AnchoringError, merkle};

/// Domain of field leaves.
pub const FIELD_LEAF_DOMAIN: &str = "cairn 2026-11 field leaf v1";
/// Domain of commitments.
pub const COMMITMENT_DOMAIN: &str = "cairn 2026-11 commitment v1";
static FIELD_LEAF: Domain = Domain::new(FIELD_LEAF_DOMAIN);
static COMMITMENT: Domain = Domain::new(COMMITMENT_DOMAIN);
/// Bytes of salt per field (256 bits; at least 128 are required).
pub const SALT_BYTES: usize = 32;
/// Most fields in one credential.
pub const MAX_FIELDS: usize = 256;
/// Longest field value, in bytes of UTF-8.
pub const MAX_VALUE_BYTES: usize = 4096;
/// Longest field name or type code, in bytes.
pub const MAX_NAME_BYTES: usize = 64;
/// Longest issuer id, in bytes.
pub const MAX_ISSUER_BYTES: usize = 64;

/// The hash anchored on chain for one credential.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize)]
pub struct Commitment(pub Hash);

impl fmt::Display for Commitment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for Commitment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Commitment({})", self.0)
    }
}

impl Serialize for Commitment {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Serialize::serialize(&self.0, serializer)
    }
}

impl<'de> Deserialize<'de> for Commitment {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        <Hash as Deserialize>::deserialize(deserializer).map(Commitment)
    }
}

impl std::str::FromStr for Commitment {
    type Err = AnchoringError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Hash::from_hex(text)
            .map(Commitment)
            .map_err(|e| AnchoringError::Malformed {
                what: "commitment",
                reason: e.to_string(),
            })
    }
}

/// A per-field salt.
#[derive(Clone, Copy, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Salt(pub [u8; SALT_BYTES]);

impl Salt {
    /// A fresh salt from the operating system's CSPRNG.
    pub fn random() -> Salt {
        let mut bytes = [0u8; SALT_BYTES];
        OsRng.fill_bytes(&mut bytes);
        Salt(bytes)
    }
}

impl fmt::Debug for Salt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Salt(…)")
    }
}

impl Serialize for Salt {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(self.0))
    }
}

impl<'de> Deserialize<'de> for Salt {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <String as Deserialize>::deserialize(deserializer)?;
        let mut bytes = [0u8; SALT_BYTES];
        hex::decode_to_slice(&text, &mut bytes).map_err(|e| {
            serde::de::Error::custom(format!(
                "salt: {e} (expected {} hex characters)",
                2 * SALT_BYTES
            ))
        })?;
        Ok(Salt(bytes))
    }
}

/// One field of a credential: its value and its salt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
#[serde(deny_unknown_fields)]
pub struct Field {
    /// The value, as UTF-8 text.
    pub value: String,
    /// The field's salt.
    pub salt: Salt,
}

/// The leaf of one field.
pub fn field_leaf(salt: &Salt, name: &str, value: &str) -> Hash {
    let bytes = borsh::to_vec(&(salt, name, value)).unwrap_or_default();
    FIELD_LEAF.hash(&bytes)
}

/// The commitment over a credential's type, issuer and fields.
pub fn commitment(
    credential_type: &str,
    issuer: &str,
    field_count: u64,
    fields_root: Hash,
) -> Commitment {
    let bytes =
        borsh::to_vec(&(credential_type, issuer, field_count, fields_root)).unwrap_or_default();
    Commitment(COMMITMENT.hash(&bytes))
}

/// A credential document, as the holder and the issuer keep it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialDocument {
    /// Catalog code of the credential type.
    pub credential_type: String,
    /// The issuer's id (Unified Social Credit Code).
    pub issuer: String,
    /// Fields by name (kept in name order, the order of the leaves).
    pub fields: BTreeMap<String, Field>,
}

impl CredentialDocument {
    /// A new document with a fresh salt for every field.
    pub fn new(
        credential_type: &str,
        issuer: &str,
        values: BTreeMap<String, String>,
    ) -> Result<CredentialDocument, AnchoringError> {
        let fields = values
            .into_iter()
            .map(|(name, value)| {
                (
                    name,
                    Field {
                        value,
                        salt: Salt::random(),
                    },
                )
            })
            .collect();
        let document = CredentialDocument {
            credential_type: credential_type.to_owned(),
            issuer: issuer.to_owned(),
            fields,
        };
        document.check()?;
        Ok(document)
    }

    /// Checks the document's shape: bounded names, values and field count.
    pub fn check(&self) -> Result<(), AnchoringError> {
        check_identifier("credential type", &self.credential_type, MAX_NAME_BYTES)?;
        check_identifier("issuer", &self.issuer, MAX_ISSUER_BYTES)?;
        if self.fields.is_empty() || self.fields.len() > MAX_FIELDS {
            return Err(AnchoringError::Malformed {
                what: "credential",
                reason: format!(
                    "{} fields; a credential has 1 to {MAX_FIELDS}",
                    self.fields.len()
                ),
            });
        }
        for (name, field) in &self.fields {
            check_identifier("field name", name, MAX_NAME_BYTES)?;
            if field.value.len() > MAX_VALUE_BYTES {
                return Err(AnchoringError::Malformed {
                    what: "field value",
                    reason: format!(
                        "{name} has {} bytes, more than {MAX_VALUE_BYTES}",
                        field.value.len()
                    ),
                });
            }
        }
        Ok(())
    }

    /// The field leaves, in name order.
    pub fn leaves(&self) -> Vec<Hash> {
        self.fields
            .iter()
            .map(|(name, f)| field_leaf(&f.salt, name, &f.value))
            .collect()
    }

    /// The Merkle root over the field leaves.
    pub fn fields_root(&self) -> Hash {
        merkle::root(&self.leaves())
    }

    /// The commitment to anchor.
    pub fn commitment(&self) -> Commitment {
        commitment(
            &self.credential_type,
            &self.issuer,
            self.fields.len() as u64,
            self.fields_root(),
        )
    }
}

/// Identifiers (types, issuers, field names) are non-empty printable ASCII without spaces.
pub(crate) fn check_identifier(
    what: &'static str,
    text: &str,
    max: usize,
) -> Result<(), AnchoringError> {
    let ok = !text.is_empty() && text.len() <= max && text.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(AnchoringError::Malformed {
            what,
            reason: format!(
                "{text:?} must be 1 to {max} printable ASCII characters without spaces"
            ),
        })
    }
}
