//! Offline verification of a presentation against a proof bundle and a
//! trusted chain identity. No node, no network.
//!
//! The verdict lists every check, passed or failed, with the reason, in
//! the order a person reads them: format, commitment, finality, inclusion,
//! accreditation, status, bundle age, and the events' proofs when present.
//! The credential is valid only if every check passes.
//!
//! Accreditation "at issuance" follows from the ledger's rules: an anchor by
//! an issuer not accredited for the type is refused, so a record that exists
//! was anchored by an accredited issuer; the bundle shows the issuer's and
//! the type's entries as of the bundle's height.

use cairn_consensus::ValidatorSet;
use cairn_genesis::{GenesisDocument, Hash, Timestamp};
use serde::Serialize;

use crate::bundle::ProofBundle;
use crate::{AnchoringError, Commitment, Presentation, StateKey, Status};

/// What the verifier trusts: the chain identity and its validator set.
#[derive(Clone, Debug)]
pub struct Trust {
    /// The genesis hash.
    pub chain: Hash,
    /// The validators whose certificates count.
    pub validators: ValidatorSet,
    /// Names of validator agencies, by validator index (for the verdict).
    pub validator_names: Vec<String>,
}

impl Trust {
    /// Trust rooted in a genesis document.
    pub fn from_genesis(genesis: &GenesisDocument) -> Result<Trust, AnchoringError> {
        let validators =
            ValidatorSet::from_genesis(genesis).map_err(|e| AnchoringError::Malformed {
                what: "genesis",
                reason: e.to_string(),
            })?;
        Ok(Trust {
            chain: genesis.hash(),
            validators,
            validator_names: genesis.validators.iter().map(|v| v.name.clone()).collect(),
        })
    }
}

/// The checks, in the order they are reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckName {
    /// The presentation and bundle are well formed.
    Format,
    /// The disclosed fields recompute the commitment.
    Commitment,
    /// The header is finalized by the trusted validators.
    Finality,
    /// The credential record is in the finalized state.
    Inclusion,
    /// The issuer is accredited for the credential type.
    Accreditation,
    /// The credential's current status.
    Status,
    /// How old the bundle is.
    BundleAge,
    /// The proofs of the credential's lifecycle events.
    Events,
}

/// One check's result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Which check.
    pub name: CheckName,
    /// Whether it passed.
    pub passed: bool,
    /// What was found, in words.
    pub detail: String,
}

/// The outcome of a verification.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// True only if every check passed.
    pub valid: bool,
    /// Every check, in order.
    pub checks: Vec<Check>,
    /// The commitment recomputed from the presentation, if it could be.
    pub commitment: Option<Commitment>,
    /// The credential's status, if the bundle proved it.
    pub status: Option<Status>,
    /// Since when it has had that status.
    pub since: Option<Timestamp>,
    /// Height of the bundle's header.
    pub height: Option<u64>,
    /// Names of the validators that signed the header's certificate.
    pub signers: Vec<String>,
}

impl Verdict {
    fn new() -> Verdict {
        Verdict {
            valid: false,
            checks: Vec::new(),
            commitment: None,
            status: None,
            since: None,
            height: None,
            signers: Vec::new(),
        }
    }

    fn record(&mut self, name: CheckName, result: Result<String, String>) -> bool {
        let passed = result.is_ok();
        let detail = result.unwrap_or_else(|e| e);
        self.checks.push(Check {
            name,
            passed,
            detail,
        });
        passed
    }

    /// The check with this name, if it was made.
    pub fn check(&self, name: CheckName) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }

    /// The first failed check.
    pub fn first_failure(&self) -> Option<&Check> {
        self.checks.iter().find(|c| !c.passed)
    }
}

/// Verifies `presentation` with `bundle` against `trust`, judging expiry and
/// bundle age at `now`. `max_age_ms` bounds how old the bundle's header may be.
pub fn verify(
    presentation: &Presentation,
    bundle: &ProofBundle,
    trust: &Trust,
    now: Timestamp,
    max_age_ms: Option<u64>,
) -> Verdict {
    let mut v = Verdict::new();
    v.height = Some(bundle.header.height);

    // Format and commitment.
    let commitment = match presentation.check() {
        Ok(c) => {
            v.record(
                CheckName::Format,
                Ok("presentation and bundle are well formed".into()),
            );
            v.record(
                CheckName::Commitment,
                Ok(format!(
                    "{} disclosed field(s) recompute commitment {c}",
                    presentation.disclosed.len()
                )),
            );
            c
        }
        Err(e @ (AnchoringError::FieldProof { .. } | AnchoringError::FieldOrder { .. })) => {
            v.record(
                CheckName::Format,
                Ok("presentation and bundle are well formed".into()),
            );
            v.record(CheckName::Commitment, Err(e.to_string()));
            return v;
        }
        Err(e) => {
            v.record(CheckName::Format, Err(e.to_string()));
            return v;
        }
    };
    v.commitment = Some(commitment);

    // Finality.
    let header = &bundle.header;
    let cert = &bundle.certificate;
    let finality = if header.chain != trust.chain {
        Err(format!(
            "the header is from chain {}, not the trusted {}",
            header.chain, trust.chain
        ))
    } else if cert.height.0 != header.height || cert.value != header.value_id() {
        Err(format!(
            "the certificate is for height {} block {}, not this header",
            cert.height, cert.value
        ))
    } else {
        match cert.verify(trust.chain, &trust.validators) {
            Ok(verified) => {
                v.signers = verified
                    .signers
                    .iter()
                    .map(|&i| {
                        trust
                            .validator_names
                            .get(i)
                            .cloned()
                            .unwrap_or_else(|| format!("validator {i}"))
                    })
                    .collect();
                Ok(format!(
                    "height {} finalized by {} of {} validators ({} of {} voting power): {}",
                    header.height,
                    verified.signers.len(),
                    trust.validators.len(),
                    verified.signed_power,
                    trust.validators.total_power(),
                    v.signers.join(", ")
                ))
            }
            Err(e) => Err(format!("commit certificate refused: {e}")),
        }
    };
    if !v.record(CheckName::Finality, finality) {
        return v;
    }

    // Inclusion of the record.
    let record = &bundle.record;
    let inclusion = if record.commitment != commitment {
        Err(format!(
            "the bundle proves {}, not the presented {commitment}",
            record.commitment
        ))
    } else {
        let bytes = borsh::to_vec(record).unwrap_or_default();
        bundle
            .record_proof
            .verify(
                header.state_root,
                &StateKey::Credential(commitment),
                Some(&bytes),
            )
            .map(|()| {
                format!(
                    "anchored at height {} by {}",
                    record.events.first().map_or(0, |e| e.height),
                    record.issuer
                )
            })
            .map_err(|e| e.to_string())
    };
    if !v.record(CheckName::Inclusion, inclusion) {
        return v;
    }

    // Accreditation.
    let issuer = &bundle.issuer;
    let t = &bundle.credential_type;
    let accreditation = (|| {
        if issuer.id != record.issuer || presentation.issuer != record.issuer {
            return Err(format!(
                "the credential names issuer {}, the record {}, the bundle {}",
                presentation.issuer, record.issuer, issuer.id
            ));
        }
        if t.code != record.credential_type
            || presentation.credential_type != record.credential_type
        {
            return Err(format!(
                "the credential is a {}, the record a {}",
                presentation.credential_type, record.credential_type
            ));
        }
        let issuer_bytes = borsh::to_vec(issuer).unwrap_or_default();
        let type_bytes = borsh::to_vec(t).unwrap_or_default();
        bundle
            .issuer_proof
            .verify(
                header.state_root,
                &StateKey::Issuer(issuer.id.clone()),
                Some(&issuer_bytes),
            )
            .map_err(|e| format!("issuer entry: {e}"))?;
        bundle
            .type_proof
            .verify(
                header.state_root,
                &StateKey::CredentialType(t.code.clone()),
                Some(&type_bytes),
            )
            .map_err(|e| format!("credential type entry: {e}"))?;
        if !issuer.accredited_types.contains(&t.code) || !t.issuers.contains(&issuer.id) {
            return Err(format!(
                "{} ({}) is not accredited for {} ({})",
                issuer.name, issuer.id, t.name, t.code
            ));
        }
        Ok(format!(
            "{} ({}, region {}) is accredited for {} ({})",
            issuer.name, issuer.id, issuer.region, t.name, t.code
        ))
    })();
    if !v.record(CheckName::Accreditation, accreditation) {
        return v;
    }

    // Status.
    let status = record.status_at(now);
    v.status = Some(status);
    v.since = match status {
        Status::Expired => record.valid_until,
        _ => record.since(),
    };
    let since = v.since.map_or_else(String::new, |t| format!(" since {t}"));
    let status_result = if status == Status::Active {
        Ok(format!("active{since}"))
    } else {
        Err(format!("{status}{since}"))
    };
    v.record(CheckName::Status, status_result);

    // Bundle age.
    let age_ms = now.0.saturating_sub(header.time.0);
    let age = match max_age_ms {
        Some(max) if age_ms > max => Err(format!(
            "the bundle is from {} ({} s old), older than the {} s allowed",
            header.time,
            age_ms / 1000,
            max / 1000
        )),
        _ => Ok(format!(
            "height {} at {} ({} s old)",
            header.height,
            header.time,
            age_ms / 1000
        )),
    };
    v.record(CheckName::BundleAge, age);

    // Events.
    if !bundle.events.is_empty() {
        let events = check_events(bundle, trust);
        v.record(CheckName::Events, events);
    }

    v.valid = v.checks.iter().all(|c| c.passed);
    v
}

fn check_events(bundle: &ProofBundle, trust: &Trust) -> Result<String, String> {
    if bundle.events.len() != bundle.record.events.len() {
        return Err(format!(
            "{} event proofs for {} events",
            bundle.events.len(),
            bundle.record.events.len()
        ));
    }
    for (proof, event) in bundle.events.iter().zip(&bundle.record.events) {
        let h = &proof.header;
        let ok = h.chain == trust.chain
            && h.height == event.height
            && proof.certificate.height.0 == h.height
            && proof.certificate.value == h.value_id()
            && proof
                .certificate
                .verify(trust.chain, &trust.validators)
                .is_ok()
            && proof.inclusion.verify(h)
            && proof.inclusion.transaction.id() == event.tx
            && u64::from(event.tx_index) == proof.inclusion.proof.index;
        if !ok {
            return Err(format!(
                "the proof of the {:?} event at height {} does not verify",
                event.kind, event.height
            ));
        }
    }
    Ok(format!(
        "{} event(s), each in a finalized block",
        bundle.events.len()
    ))
}
