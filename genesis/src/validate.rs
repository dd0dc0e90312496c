//! Validation of a genesis document. It does not stop at the first problem:
//! an operator fixing a hand-edited file wants to see all of them at once.

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::key::KeyDefect;
use crate::{ConsensusParams, GenesisDocument, GenesisError, PublicKey, credit_code};

/// Most validators a chain may start with.
pub const MAX_VALIDATORS: usize = 1_000;
/// Most credential types in the catalog.
pub const MAX_CREDENTIAL_TYPES: usize = 10_000;
/// Most issuers at genesis.
pub const MAX_ISSUERS: usize = 100_000;
/// Most fields a credential type may declare.
pub const MAX_FIELDS_PER_TYPE: usize = 256;
/// Most signing keys one issuer may hold.
pub const MAX_KEYS_PER_ISSUER: usize = 64;
/// Most credential types one issuer may be accredited for.
pub const MAX_TYPES_PER_ISSUER: usize = 1_024;
/// Longest display name, in bytes of UTF-8.
pub const MAX_NAME_BYTES: usize = 256;
/// Largest total voting power (as in Tendermint: `i64::MAX / 8`), so that
/// sums and the 2/3 thresholds of any subset never overflow.
pub const MAX_TOTAL_VOTING_POWER: u64 = (i64::MAX / 8) as u64;

impl GenesisDocument {
    /// Every problem in the document, in document order; empty when it is valid.
    pub fn problems(&self) -> Vec<GenesisError> {
        let mut found = Vec::new();
        check_chain_id(&self.chain_id, &mut found);
        check_params(&self.consensus, &mut found);
        check_validators(self, &mut found);
        check_catalog(self, &mut found);
        check_issuers(self, &mut found);
        check_keys_unique(self, &mut found);
        found
    }

    /// `Ok` when the document is valid, otherwise every problem in one error.
    pub fn validate(&self) -> Result<(), GenesisError> {
        let problems = self.problems();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(GenesisError::Invalid(problems))
        }
    }
}

fn check_chain_id(chain_id: &str, found: &mut Vec<GenesisError>) {
    let ok = (1..=64).contains(&chain_id.len())
        && chain_id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !ok {
        found.push(GenesisError::InvalidChainId {
            chain_id: chain_id.to_owned(),
        });
    }
}

fn check_params(params: &ConsensusParams, found: &mut Vec<GenesisError>) {
    const MINUTE_MS: u64 = 60_000;
    let ranges: [(&'static str, u64, u64, u64); 10] = [
        (
            "propose_timeout_ms",
            params.propose_timeout_ms,
            1,
            10 * MINUTE_MS,
        ),
        (
            "propose_timeout_delta_ms",
            params.propose_timeout_delta_ms,
            0,
            10 * MINUTE_MS,
        ),
        (
            "prevote_timeout_ms",
            params.prevote_timeout_ms,
            1,
            10 * MINUTE_MS,
        ),
        (
            "prevote_timeout_delta_ms",
            params.prevote_timeout_delta_ms,
            0,
            10 * MINUTE_MS,
        ),
        (
            "precommit_timeout_ms",
            params.precommit_timeout_ms,
            1,
            10 * MINUTE_MS,
        ),
        (
            "precommit_timeout_delta_ms",
            params.precommit_timeout_delta_ms,
            0,
            10 * MINUTE_MS,
        ),
        (
            "max_block_bytes",
            params.max_block_bytes,
            4 * 1024,
            256 * 1024 * 1024,
        ),
        (
            "max_block_txs",
            u64::from(params.max_block_txs),
            1,
            1_000_000,
        ),
        (
            "max_tx_bytes",
            params.max_tx_bytes,
            256,
            params.max_block_bytes.max(256),
        ),
        (
            "max_commitments_per_tx",
            u64::from(params.max_commitments_per_tx),
            1,
            10_000,
        ),
    ];
    for (name, value, min, max) in ranges {
        if !(min..=max).contains(&value) {
            found.push(GenesisError::ParameterOutOfRange {
                name,
                value,
                min,
                max,
            });
        }
    }
}

fn check_validators(doc: &GenesisDocument, found: &mut Vec<GenesisError>) {
    if doc.validators.is_empty() {
        found.push(GenesisError::EmptyValidatorSet);
    }
    check_count(
        "genesis",
        "validators",
        doc.validators.len(),
        MAX_VALIDATORS,
        found,
    );
    let mut ids = Duplicates::new("validator agency id");
    let mut peers = Duplicates::new("validator peer id");
    let mut addresses = Duplicates::new("validator address");
    let mut total: u64 = 0;
    let mut overflow = false;
    for v in &doc.validators {
        let owner = format!("validator {}", v.agency_id);
        ids.see(&v.agency_id, found);
        peers.see(&v.peer_id.to_string(), found);
        addresses.see(&v.address, found);
        check_credit_code("validator", &v.agency_id, found);
        check_name(&owner, &v.name, found);
        check_region(&owner, &v.region, found);
        if v.peer_id.public_key().check().is_err() {
            found.push(GenesisError::MalformedPeerId {
                agency_id: v.agency_id.clone(),
                peer_id: v.peer_id.to_string(),
            });
        }
        if !is_valid_address(&v.address) {
            found.push(GenesisError::InvalidAddress {
                agency_id: v.agency_id.clone(),
                address: v.address.clone(),
            });
        }
        if v.voting_power == 0 {
            found.push(GenesisError::ZeroVotingPower {
                agency_id: v.agency_id.clone(),
            });
        }
        match total.checked_add(v.voting_power) {
            Some(sum) => total = sum,
            None => overflow = true,
        }
    }
    if overflow || total > MAX_TOTAL_VOTING_POWER {
        found.push(GenesisError::VotingPowerOverflow {
            max: MAX_TOTAL_VOTING_POWER,
        });
    }
}

fn check_catalog(doc: &GenesisDocument, found: &mut Vec<GenesisError>) {
    check_count(
        "genesis",
        "credential_types",
        doc.credential_types.len(),
        MAX_CREDENTIAL_TYPES,
        found,
    );
    let issuers: HashMap<&str, &crate::Issuer> =
        doc.issuers.iter().map(|i| (i.id.as_str(), i)).collect();
    let mut codes = Duplicates::new("credential type code");
    for t in &doc.credential_types {
        let owner = format!("credential type {}", t.code);
        codes.see(&t.code, found);
        let code_ok = (1..=64).contains(&t.code.len())
            && t.code
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !code_ok {
            found.push(GenesisError::InvalidTypeCode {
                code: t.code.clone(),
            });
        }
        check_name(&owner, &t.name, found);
        if t.fields.is_empty() {
            found.push(GenesisError::NoFields {
                code: t.code.clone(),
            });
        }
        check_count(&owner, "fields", t.fields.len(), MAX_FIELDS_PER_TYPE, found);
        let mut fields = Duplicates::new("field name");
        for field in &t.fields {
            fields.see_in(&owner, field, found);
            let ok = (1..=64).contains(&field.len())
                && field
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !ok {
                found.push(GenesisError::InvalidFieldName {
                    code: t.code.clone(),
                    field: field.clone(),
                });
            }
        }
        check_count(&owner, "issuers", t.issuers.len(), MAX_ISSUERS, found);
        let mut listed = Duplicates::new("issuer id");
        for issuer_id in &t.issuers {
            listed.see_in(&owner, issuer_id, found);
            match issuers.get(issuer_id.as_str()) {
                None => found.push(GenesisError::UnknownIssuer {
                    credential_type: t.code.clone(),
                    issuer: issuer_id.clone(),
                }),
                Some(issuer) if !issuer.accredited_types.contains(&t.code) => {
                    found.push(GenesisError::AccreditationMismatch {
                        issuer: issuer_id.clone(),
                        credential_type: t.code.clone(),
                    })
                }
                Some(_) => {}
            }
        }
    }
}

fn check_issuers(doc: &GenesisDocument, found: &mut Vec<GenesisError>) {
    check_count("genesis", "issuers", doc.issuers.len(), MAX_ISSUERS, found);
    let types: HashMap<&str, &crate::CredentialType> = doc
        .credential_types
        .iter()
        .map(|t| (t.code.as_str(), t))
        .collect();
    let mut ids = Duplicates::new("issuer id");
    for issuer in &doc.issuers {
        let owner = format!("issuer {}", issuer.id);
        ids.see(&issuer.id, found);
        check_credit_code("issuer", &issuer.id, found);
        check_name(&owner, &issuer.name, found);
        check_region(&owner, &issuer.region, found);
        if issuer.keys.is_empty() {
            found.push(GenesisError::NoSigningKey {
                issuer: issuer.id.clone(),
            });
        }
        check_count(
            &owner,
            "keys",
            issuer.keys.len(),
            MAX_KEYS_PER_ISSUER,
            found,
        );
        for key in &issuer.keys {
            if let Some(until) = key.valid_until
                && until <= key.valid_from
            {
                found.push(GenesisError::EmptyKeyWindow {
                    issuer: issuer.id.clone(),
                    key: key.public_key.to_string(),
                    valid_from: key.valid_from.to_rfc3339(),
                    valid_until: until.to_rfc3339(),
                });
            }
        }
        check_count(
            &owner,
            "accredited_types",
            issuer.accredited_types.len(),
            MAX_TYPES_PER_ISSUER,
            found,
        );
        let mut accredited = Duplicates::new("accredited type");
        for code in &issuer.accredited_types {
            accredited.see_in(&owner, code, found);
            match types.get(code.as_str()) {
                None => found.push(GenesisError::UnknownCredentialType {
                    issuer: issuer.id.clone(),
                    credential_type: code.clone(),
                }),
                Some(t) if !t.issuers.contains(&issuer.id) => {
                    found.push(GenesisError::AccreditationMismatch {
                        issuer: issuer.id.clone(),
                        credential_type: code.clone(),
                    })
                }
                Some(_) => {}
            }
        }
    }
}

/// Every registered key must be a strong ed25519 point and used once only,
/// across roles: a validator's consensus key is never also an issuer's key.
fn check_keys_unique(doc: &GenesisDocument, found: &mut Vec<GenesisError>) {
    let validator_keys = doc
        .validators
        .iter()
        .map(|v| (v.public_key, format!("validator {}", v.agency_id)));
    let issuer_keys = doc.issuers.iter().flat_map(|i| {
        i.keys
            .iter()
            .map(move |k| (k.public_key, format!("issuer {}", i.id)))
    });
    let mut seen: HashMap<PublicKey, String> = HashMap::new();
    for (key, owner) in validator_keys.chain(issuer_keys) {
        match key.check() {
            Err(KeyDefect::NotAPoint) => found.push(GenesisError::MalformedKey {
                owner: owner.clone(),
                key: key.to_string(),
            }),
            Err(KeyDefect::Weak) => found.push(GenesisError::WeakKey {
                owner: owner.clone(),
                key: key.to_string(),
            }),
            Ok(_) => {}
        }
        if let Some(first) = seen.get(&key) {
            found.push(GenesisError::DuplicateKey {
                key: key.to_string(),
                first: first.clone(),
                second: owner,
            });
        } else {
            seen.insert(key, owner);
        }
    }
}

fn check_credit_code(role: &'static str, id: &str, found: &mut Vec<GenesisError>) {
    if !credit_code::is_valid(id) {
        found.push(GenesisError::InvalidCreditCode {
            role,
            id: id.to_owned(),
        });
    }
}

fn check_name(owner: &str, name: &str, found: &mut Vec<GenesisError>) {
    if name.trim().is_empty() || name.len() > MAX_NAME_BYTES {
        found.push(GenesisError::InvalidName {
            owner: owner.to_owned(),
            max: MAX_NAME_BYTES,
        });
    }
}

fn check_region(owner: &str, region: &str, found: &mut Vec<GenesisError>) {
    if region.len() != 6 || !region.bytes().all(|b| b.is_ascii_digit()) {
        found.push(GenesisError::InvalidRegion {
            owner: owner.to_owned(),
            region: region.to_owned(),
        });
    }
}

fn check_count(
    owner: &str,
    what: &'static str,
    count: usize,
    max: usize,
    found: &mut Vec<GenesisError>,
) {
    if count > max {
        found.push(GenesisError::TooMany {
            owner: owner.to_owned(),
            what,
            count,
            max,
        });
    }
}

/// `/ip4/A/tcp/P`, `/ip6/A/tcp/P`, `/dns/NAME/tcp/P`, `/dns4/…` or `/dns6/…`, with a non-zero port.
pub fn is_valid_address(address: &str) -> bool {
    let parts: Vec<&str> = address.split('/').collect();
    let [empty, protocol, host, tcp, port] = parts.as_slice() else {
        return false;
    };
    let host_ok = match *protocol {
        "ip4" => host.parse::<Ipv4Addr>().is_ok(),
        "ip6" => host.parse::<Ipv6Addr>().is_ok(),
        "dns" | "dns4" | "dns6" => {
            (1..=253).contains(&host.len())
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        }
        _ => false,
    };
    empty.is_empty() && host_ok && *tcp == "tcp" && port.parse::<u16>().is_ok_and(|p| p != 0)
}

/// Reports each value seen a second time once.
struct Duplicates {
    kind: &'static str,
    seen: HashSet<String>,
    reported: HashSet<String>,
}

impl Duplicates {
    fn new(kind: &'static str) -> Self {
        Duplicates {
            kind,
            seen: HashSet::new(),
            reported: HashSet::new(),
        }
    }

    fn see(&mut self, value: &str, found: &mut Vec<GenesisError>) {
        self.report(value, value.to_owned(), found);
    }

    fn see_in(&mut self, owner: &str, value: &str, found: &mut Vec<GenesisError>) {
        self.report(value, format!("{value} in {owner}"), found);
    }

    fn report(&mut self, value: &str, shown: String, found: &mut Vec<GenesisError>) {
        if !self.seen.insert(value.to_owned()) && self.reported.insert(value.to_owned()) {
            found.push(GenesisError::Duplicate {
                kind: self.kind,
                value: shown,
            });
        }
    }
}
