//! The genesis document: what a chain is, who runs it and who may issue on it.

use std::path::Path;

use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};

use crate::hash::GENESIS_DOMAIN;
use crate::{GenesisError, Hash, PeerId, PublicKey, Timestamp, fsutil};

/// A genesis file is at most this large (thousands of issuers fit easily).
pub const MAX_GENESIS_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// The document every node of a chain starts from.
///
/// The JSON form is for people: they write and review it. The chain's
/// identity is the blake3 hash of the document's borsh encoding
/// ([`GenesisDocument::hash`]), so formatting, key order and hex case in the
/// JSON file do not matter, while every value and the order of every list do.
/// Every field must be written out: a default that changed in a later release
/// would otherwise change the identity of an existing chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisDocument {
    /// Human-readable chain name, `[a-z0-9-]{1,64}` (e.g. `cairn-yangtze-delta`).
    pub chain_id: String,
    /// When height 1 may be proposed, at the earliest.
    pub genesis_time: Timestamp,
    /// Timeouts and block limits every validator applies identically.
    pub consensus: ConsensusParams,
    /// The agencies that run validators, in proposer-selection order.
    pub validators: Vec<Validator>,
    /// The catalog of credential types recognised on this chain.
    pub credential_types: Vec<CredentialType>,
    /// The licensing departments that may anchor credentials.
    pub issuers: Vec<Issuer>,
}

/// Consensus timeouts and block limits. Round `r`'s timeout for a step is
/// `base + r * delta` (Tendermint's linear growth).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsensusParams {
    /// Wait for a proposal in round 0.
    pub propose_timeout_ms: u64,
    /// Added to the propose timeout per round.
    pub propose_timeout_delta_ms: u64,
    /// Wait for more prevotes after seeing 2/3 of any.
    pub prevote_timeout_ms: u64,
    /// Added to the prevote timeout per round.
    pub prevote_timeout_delta_ms: u64,
    /// Wait for more precommits after seeing 2/3 of any.
    pub precommit_timeout_ms: u64,
    /// Added to the precommit timeout per round.
    pub precommit_timeout_delta_ms: u64,
    /// Largest encoded block, header included.
    pub max_block_bytes: u64,
    /// Most transactions in one block.
    pub max_block_txs: u32,
    /// Largest encoded transaction.
    pub max_tx_bytes: u64,
    /// Most commitments one anchor transaction may carry.
    pub max_commitments_per_tx: u32,
}

impl Default for ConsensusParams {
    fn default() -> Self {
        ConsensusParams {
            propose_timeout_ms: 1_000,
            propose_timeout_delta_ms: 500,
            prevote_timeout_ms: 500,
            prevote_timeout_delta_ms: 250,
            precommit_timeout_ms: 500,
            precommit_timeout_delta_ms: 250,
            max_block_bytes: 8 * 1024 * 1024,
            max_block_txs: 10_000,
            max_tx_bytes: 1024 * 1024,
            max_commitments_per_tx: 10_000,
        }
    }
}

/// An agency that runs a validator node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
#[serde(deny_unknown_fields)]
pub struct Validator {
    /// The agency's Unified Social Credit Code.
    pub agency_id: String,
    /// The agency's name, e.g. 上海市公安局交通警察总队.
    pub name: String,
    /// Administrative division code (GB/T 2260), e.g. `310000` for Shanghai.
    pub region: String,
    /// The key that signs the validator's votes and proposals.
    pub public_key: PublicKey,
    /// The libp2p identity of the validator's node.
    pub peer_id: PeerId,
    /// Weight of the validator's votes; quorum is more than 2/3 of the total.
    pub voting_power: u64,
    /// Where other validators dial it: `/ip4/A/tcp/P`, `/ip6/A/tcp/P` or `/dns/NAME/tcp/P`.
    pub address: String,
}

/// A kind of license in the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialType {
    /// Catalog code, `[A-Za-z0-9._-]{1,64}`.
    pub code: String,
    /// Display name, e.g. 机动车驾驶证.
    pub name: String,
    /// The names of the fields a credential of this type carries, `[a-z0-9_]{1,64}` each.
    pub fields: Vec<String>,
    /// Ids of the issuers that may issue it; each must list this type as accredited.
    pub issuers: Vec<String>,
}

/// A licensing department that anchors credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
#[serde(deny_unknown_fields)]
pub struct Issuer {
    /// The department's Unified Social Credit Code.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Administrative division code (GB/T 2260).
    pub region: String,
    /// Keys that sign its transactions, each within its validity window.
    pub keys: Vec<IssuerKey>,
    /// Codes of the credential types it may issue; each must list this issuer.
    pub accredited_types: Vec<String>,
}

/// An issuer's signing key and when it may be used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerKey {
    /// The ed25519 public key.
    pub public_key: PublicKey,
    /// First instant the key may sign.
    pub valid_from: Timestamp,
    /// The instant from which it may no longer sign; open-ended when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<Timestamp>,
}

impl GenesisDocument {
    /// An empty document with default consensus parameters.
    pub fn new(chain_id: impl Into<String>, genesis_time: Timestamp) -> GenesisDocument {
        GenesisDocument {
            chain_id: chain_id.into(),
            genesis_time,
            consensus: ConsensusParams::default(),
            validators: Vec::new(),
            credential_types: Vec::new(),
            issuers: Vec::new(),
        }
    }

    /// Parses the JSON form. Does not validate: call [`GenesisDocument::validate`].
    pub fn from_json(text: &str, path: &Path) -> Result<GenesisDocument, GenesisError> {
        serde_json::from_str(text).map_err(|e| GenesisError::json(path, &e))
    }

    /// Reads and parses a genesis file. Does not validate.
    pub fn load(path: &Path) -> Result<GenesisDocument, GenesisError> {
        let text = fsutil::read_capped(path, MAX_GENESIS_FILE_BYTES)?;
        GenesisDocument::from_json(&text, path)
    }

    /// Reads, parses and validates a genesis file.
    pub fn load_valid(path: &Path) -> Result<GenesisDocument, GenesisError> {
        let document = GenesisDocument::load(path)?;
        document.validate()?;
        Ok(document)
    }

    /// The JSON form, pretty-printed, ending in a newline.
    pub fn to_json(&self) -> String {
        // Serialising these plain structs cannot fail: no maps with non-string keys.
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }

    /// Writes the JSON form atomically (old or new file after a crash, never half).
    pub fn save(&self, path: &Path) -> Result<(), GenesisError> {
        fsutil::write_atomic(path, self.to_json().as_bytes())
    }

    /// Writes the JSON form to a new file; refuses to replace an existing one.
    pub fn save_new(&self, path: &Path) -> Result<(), GenesisError> {
        fsutil::write_new(path, self.to_json().as_bytes(), 0o644)
    }

    /// The canonical borsh encoding, the bytes the chain identity is hashed from.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        borsh::to_vec(self).unwrap_or_default()
    }

    /// The chain's identity: blake3 (derive-key mode, domain
    /// [`GENESIS_DOMAIN`]) of the canonical encoding. Every signed message
    /// on the chain binds it.
    pub fn hash(&self) -> Hash {
        Hash::domain(GENESIS_DOMAIN, &self.canonical_bytes())
    }

    /// Sum of all validators' voting power, saturating.
    pub fn total_voting_power(&self) -> u64 {
        self.validators
            .iter()
            .fold(0u64, |sum, v| sum.saturating_add(v.voting_power))
    }

    /// How many validators may fail (crash or lie) without endangering
    /// safety or liveness: the largest `k` such that the `k` most powerful
    /// validators together hold less than a third of the voting power.
    pub fn tolerated_faults(&self) -> usize {
        let total: u128 = self
            .validators
            .iter()
            .map(|v| u128::from(v.voting_power))
            .sum();
        let mut powers: Vec<u128> = self
            .validators
            .iter()
            .map(|v| u128::from(v.voting_power))
            .collect();
        powers.sort_unstable_by(|a, b| b.cmp(a));
        let mut faulty = 0u128;
        powers
            .into_iter()
            .take_while(|&p| {
                faulty += p;
                3 * faulty < total
            })
            .count()
    }

    /// The validator with this agency id.
    pub fn validator(&self, agency_id: &str) -> Option<&Validator> {
        self.validators.iter().find(|v| v.agency_id == agency_id)
    }

    /// The issuer with this id.
    pub fn issuer(&self, id: &str) -> Option<&Issuer> {
        self.issuers.iter().find(|i| i.id == id)
    }

    /// The credential type with this code.
    pub fn credential_type(&self, code: &str) -> Option<&CredentialType> {
        self.credential_types.iter().find(|t| t.code == code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_powers(powers: &[u64]) -> GenesisDocument {
        let mut doc = GenesisDocument::new("cairn-test", Timestamp(0));
        for (i, &voting_power) in powers.iter().enumerate() {
            let key = PublicKey([i as u8; 32]);
            doc.validators.push(Validator {
                agency_id: i.to_string(),
                name: "v".into(),
                region: "310000".into(),
                public_key: key,
                peer_id: key.peer_id(),
                voting_power,
                address: String::new(),
            });
        }
        doc
    }

    #[test]
    fn fault_tolerance_follows_the_one_third_bound() {
        assert_eq!(with_powers(&[]).tolerated_faults(), 0);
        assert_eq!(with_powers(&[10]).tolerated_faults(), 0);
        assert_eq!(with_powers(&[10, 10, 10]).tolerated_faults(), 0);
        assert_eq!(with_powers(&[10, 10, 10, 10]).tolerated_faults(), 1);
        assert_eq!(with_powers(&[1; 7]).tolerated_faults(), 2);
        // One heavy validator holding a third alone is not tolerated.
        assert_eq!(with_powers(&[20, 10, 10, 10, 10]).tolerated_faults(), 0);
    }

    #[test]
    fn borsh_round_trip() {
        let mut doc = GenesisDocument::new("cairn-test", Timestamp(1_795_593_600_000));
        doc.credential_types.push(CredentialType {
            code: "driver-license".into(),
            name: "机动车驾驶证".into(),
            fields: vec!["holder_name".into(), "class".into()],
            issuers: vec![],
        });
        let bytes = doc.canonical_bytes();
        assert_eq!(GenesisDocument::try_from_slice(&bytes).unwrap(), doc);
    }

    #[test]
    fn hash_ignores_json_formatting_but_not_values() {
        let doc = GenesisDocument::new("cairn-test", Timestamp(1_795_593_600_000));
        let compact = serde_json::to_string(&doc).unwrap();
        let reparsed = GenesisDocument::from_json(&compact, Path::new("x")).unwrap();
        assert_eq!(reparsed.hash(), doc.hash());
        let mut other = doc.clone();
        other.consensus.max_block_txs += 1;
        assert_ne!(other.hash(), doc.hash());
    }

    #[test]
    fn unknown_and_missing_fields_are_refused() {
        let doc = GenesisDocument::new("cairn-test", Timestamp(0));
        let mut value = serde_json::to_value(&doc).unwrap();
        value["surprise"] = serde_json::json!(1);
        let err = GenesisDocument::from_json(&value.to_string(), Path::new("g.json")).unwrap_err();
        assert!(matches!(err, GenesisError::Json { .. }), "{err}");
        assert!(err.to_string().contains("surprise"));

        let mut value = serde_json::to_value(&doc).unwrap();
        value["consensus"]
            .as_object_mut()
            .unwrap()
            .remove("max_block_txs");
        let err = GenesisDocument::from_json(&value.to_string(), Path::new("g.json")).unwrap_err();
        assert!(err.to_string().contains("max_block_txs"), "{err}");
    }
}
