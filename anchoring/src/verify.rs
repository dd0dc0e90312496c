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

use cairn_consensus::{
    CompactCertificate, ConsensusError, Height, ValidatorSet, ValueId, VerifiedCommit,
};
use cairn_genesis::{GenesisDocument, Hash, Timestamp};
use serde::Serialize;

use crate::block::{BlockHeader, CompactHeader};
use crate::bundle::{EventProof, ProofBundle};
use crate::{
    Action, AnchoringError, Commitment, CredentialRecord, LifecycleEvent, Presentation, StateKey,
    Status,
};

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

    /// A bundle's compact header with this trust's chain and validator set.
    pub fn header(&self, compact: &CompactHeader) -> BlockHeader {
        compact.expand(self.chain, self.validators.hash())
    }

    /// The name of the validator at `index`, for a verdict.
    fn signer_name(&self, index: usize) -> String {
        self.validator_names
            .get(index)
            .cloned()
            .unwrap_or_else(|| format!("validator {index}"))
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

impl CheckName {
    /// The check's name as people read it.
    pub fn label(self) -> &'static str {
        match self {
            CheckName::Format => "format",
            CheckName::Commitment => "commitment",
            CheckName::Finality => "finality",
            CheckName::Inclusion => "inclusion",
            CheckName::Accreditation => "accreditation",
            CheckName::Status => "status",
            CheckName::BundleAge => "bundle age",
            CheckName::Events => "events",
        }
    }
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
    let finality = finality(bundle, trust).map(|(detail, signers)| {
        v.signers = signers;
        detail
    });
    if !v.record(CheckName::Finality, finality) {
        return v;
    }

    // Inclusion of the record.
    let header = &bundle.header;
    let record = &bundle.record;
    let inclusion = record_inclusion(bundle, commitment);
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
        let header = trust.header(&proof.header);
        event_proof(proof, &header, header.hash(), event, trust)?;
    }
    Ok(format!(
        "{} event(s), each in a finalized block",
        bundle.events.len()
    ))
}

/// Checks that the bundle's header, read as one of the trusted chain and
/// validator set, is finalized by those validators (a header of any other
/// chain then hashes to a block no certificate of theirs covers); returns
/// the detail and the signers' names.
fn finality(bundle: &ProofBundle, trust: &Trust) -> Result<(String, Vec<String>), String> {
    let header = trust.header(&bundle.header);
    let cert = &bundle.certificate;
    let verified = certified(&header, header.hash(), cert, trust).map_err(|e| {
        format!(
            "commit certificate refused: {e} (the header was read as one of the trusted \
             chain {}: a bundle of another chain, or altered, fails here)",
            trust.chain
        )
    })?;
    let signers: Vec<String> = verified
        .signers
        .iter()
        .map(|&i| trust.signer_name(i))
        .collect();
    Ok((
        format!(
            "height {} finalized by {} of {} validators ({} of {} voting power): {}",
            header.height,
            verified.signers.len(),
            trust.validators.len(),
            verified.signed_power,
            trust.validators.total_power(),
            signers.join(", ")
        ),
        signers,
    ))
}

/// Checks that `certificate` finalizes `header` on the trusted chain: the
/// certificate is read as one for this header's height and block, so a
/// certificate of any other block does not verify.
fn certified(
    header: &BlockHeader,
    block: Hash,
    certificate: &CompactCertificate,
    trust: &Trust,
) -> Result<VerifiedCommit, ConsensusError> {
    certificate
        .expand(
            header.chain,
            Height(header.height),
            ValueId(block),
            &trust.validators,
        )?
        .verify(trust.chain, &trust.validators)
}

/// Checks that the bundle's record is `commitment`'s and sits in the
/// header's state.
fn record_inclusion(bundle: &ProofBundle, commitment: Commitment) -> Result<String, String> {
    let record = &bundle.record;
    if record.commitment != commitment {
        return Err(format!(
            "the bundle proves {}, not the presented {commitment}",
            record.commitment
        ));
    }
    let bytes = borsh::to_vec(record).unwrap_or_default();
    bundle
        .record_proof
        .verify(
            bundle.header.state_root,
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
}

/// Checks one event's proof, whose header `h` (hashing to `block`) is read
/// as one of the trusted chain: its transaction is in that block, at the event's height and
/// position, finalized by the validators. Returns the signers' names.
fn event_proof(
    proof: &EventProof,
    h: &BlockHeader,
    block: Hash,
    event: &LifecycleEvent,
    trust: &Trust,
) -> Result<Vec<String>, String> {
    let failed = |why: &str| {
        format!(
            "the proof of the {} event at height {} does not verify: {why}",
            event.kind.name(),
            event.height
        )
    };
    if h.height != event.height {
        return Err(failed("its block is of another height"));
    }
    let verified =
        certified(h, block, &proof.certificate, trust).map_err(|e| failed(&e.to_string()))?;
    if !proof.inclusion.verify(h)
        || proof.inclusion.transaction.id() != event.tx
        || u64::from(event.tx_index) != proof.inclusion.proof.index
    {
        return Err(failed("the transaction is not in its block"));
    }
    Ok(verified
        .signers
        .iter()
        .map(|&i| trust.signer_name(i))
        .collect())
}

/// One lifecycle event of a trace, with the check of its proof.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TracedEvent {
    /// The event as the record holds it.
    pub event: LifecycleEvent,
    /// The action of the transaction that caused it, as its proof shows.
    pub action: Option<Action>,
    /// Whether its proof verified.
    pub proven: bool,
    /// What the check found, in words.
    pub detail: String,
    /// Names of the validators that finalized its block.
    pub signers: Vec<String>,
    /// The hash of the block its proof names, if the bundle has its proof.
    pub block: Option<Hash>,
}

/// A regulator's view of one credential: its record as of a finalized
/// height, and every lifecycle event with its own proof checked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Trace {
    /// True only if the header, the record and every event verified.
    pub verified: bool,
    /// The checks of the bundle itself (finality, inclusion of the record).
    pub checks: Vec<Check>,
    /// The record.
    pub record: CredentialRecord,
    /// Its status at the time the trace was judged.
    pub status: Status,
    /// Height of the bundle's header.
    pub height: u64,
    /// The events, oldest first.
    pub events: Vec<TracedEvent>,
}

/// Traces `commitment` from a bundle that carries its events' proofs,
/// checking everything against `trust` (no node, no network).
pub fn trace(commitment: Commitment, bundle: &ProofBundle, trust: &Trust, now: Timestamp) -> Trace {
    let mut verdict = Verdict::new();
    let finality = finality(bundle, trust).map(|(detail, _)| detail);
    if verdict.record(CheckName::Finality, finality) {
        verdict.record(CheckName::Inclusion, record_inclusion(bundle, commitment));
    }
    let record_ok = verdict.checks.iter().all(|c| c.passed);
    let mut events = Vec::with_capacity(bundle.record.events.len());
    for (i, event) in bundle.record.events.iter().enumerate() {
        let proof = bundle.events.get(i);
        let header = proof.map(|p| trust.header(&p.header));
        let block = header.as_ref().map(BlockHeader::hash);
        let checked = match (proof, &header, block) {
            (Some(p), Some(h), Some(block)) => event_proof(p, h, block, event, trust),
            _ => Err("no proof of this event in the bundle".to_owned()),
        };
        let (proven, detail, signers) = match (checked, block) {
            (Ok(signers), Some(block)) => (
                true,
                format!(
                    "transaction {} is in block {block} at height {}, finalized by {} validator(s)",
                    event.tx,
                    event.height,
                    signers.len()
                ),
                signers,
            ),
            (Ok(_), None) => (false, "no proof".to_owned(), Vec::new()),
            (Err(e), _) => (false, e, Vec::new()),
        };
        events.push(TracedEvent {
            event: event.clone(),
            action: proof.map(|p| p.inclusion.transaction.tx.action.clone()),
            proven,
            detail,
            signers,
            block,
        });
    }
    Trace {
        verified: record_ok
            && bundle.events.len() == bundle.record.events.len()
            && events.iter().all(|e| e.proven),
        checks: verdict.checks,
        status: bundle.record.status_at(now),
        record: bundle.record.clone(),
        height: bundle.header.height,
        events,
    }
}
