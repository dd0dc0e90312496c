//! Commit certificates: the precommits of more than 2/3 of the voting power
//! for one block at one (height, round). A verifier who trusts a validator
//! set checks finality with [`CommitCertificate::verify`] alone.

use std::collections::HashSet;

use borsh::{BorshDeserialize, BorshSerialize};
use cairn_genesis::{Hash, PublicKey};

use crate::types::{Height, Round, Signature, ValueId, Vote, VoteKind};
use crate::{ConsensusError, ValidatorSet};

/// One validator's precommit signature in a certificate.
#[derive(Clone, Copy, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct CommitSignature {
    /// The validator.
    pub validator: PublicKey,
    /// Its signature over the precommit for the certificate's value.
    pub signature: Signature,
}

/// Proof that a block was decided.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct CommitCertificate {
    /// The chain's genesis hash.
    pub chain: Hash,
    /// The decided height.
    pub height: Height,
    /// The round whose precommits decided it.
    pub round: Round,
    /// The decided block.
    pub value: ValueId,
    /// Precommit signatures, in validator-set order.
    pub signatures: Vec<CommitSignature>,
}

/// What a successful verification established.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedCommit {
    /// Total power of the signers.
    pub signed_power: u64,
    /// Indexes of the signers in the validator set.
    pub signers: Vec<usize>,
}

impl CommitCertificate {
    /// The precommit that `validator` signed for this certificate.
    pub fn precommit(&self, validator: PublicKey) -> Vote {
        Vote {
            chain: self.chain,
            height: self.height,
            round: self.round,
            kind: VoteKind::Precommit,
            value: Some(self.value),
            validator,
        }
    }

    /// Checks that the certificate belongs to `chain` and carries valid
    /// precommit signatures, each from a distinct member of `validators`,
    /// with more than 2/3 of its voting power. Every signature is checked,
    /// so a certificate padded with a bad one is refused as a whole.
    pub fn verify(
        &self,
        chain: Hash,
        validators: &ValidatorSet,
    ) -> Result<VerifiedCommit, ConsensusError> {
        let signed = self.signed(chain, validators)?;
        validators.verify_all(&signed.items(self).collect::<Vec<_>>())?;
        signed.quorum(validators)
    }

    /// [`CommitCertificate::verify`] of each of `certificates`, with the
    /// signatures of them all checked in batches across certificates
    /// (a run of blocks from sync): one verdict per certificate, in order,
    /// each the one [`CommitCertificate::verify`] gives.
    pub fn verify_batch(
        certificates: Vec<CommitCertificate>,
        chain: Hash,
        validators: &ValidatorSet,
    ) -> Vec<Result<CheckedCertificate, ConsensusError>> {
        let signed: Vec<Result<Signed, ConsensusError>> = certificates
            .iter()
            .map(|c| c.signed(chain, validators))
            .collect();
        let items: Vec<(usize, &[u8], &Signature)> = certificates
            .iter()
            .zip(&signed)
            .filter_map(|(c, s)| s.as_ref().ok().map(|s| s.items(c)))
            .flatten()
            .collect();
        let mut verdicts = match validators.verify_each(&items) {
            Ok(verdicts) => verdicts.into_iter(),
            // Every index came from the set: it cannot be refused.
            Err(e) => return certificates.iter().map(|_| Err(e.clone())).collect(),
        };
        certificates
            .into_iter()
            .zip(signed)
            .map(|(certificate, signed)| {
                let signed = signed?;
                // One verdict per signature, all taken even after a
                // failure; a missing one refuses.
                let mut failure = None;
                for sig in &certificate.signatures {
                    let verdict =
                        verdicts
                            .next()
                            .unwrap_or(Err(ConsensusError::InvalidSignature {
                                validator: sig.validator,
                            }));
                    if let Err(e) = verdict {
                        failure.get_or_insert(e);
                    }
                }
                if let Some(e) = failure {
                    return Err(e);
                }
                signed.quorum(validators)?;
                Ok(CheckedCertificate {
                    certificate,
                    set: validators.hash(),
                })
            })
            .collect()
    }

    /// Everything [`CommitCertificate::verify`] checks before the
    /// signatures themselves: the chain, the count, that each signer is a
    /// distinct member of the set.
    fn signed(&self, chain: Hash, validators: &ValidatorSet) -> Result<Signed, ConsensusError> {
        if self.chain != chain {
            return Err(ConsensusError::WrongChain {
                expected: chain,
                found: self.chain,
            });
        }
        if self.signatures.len() > validators.len() {
            return Err(ConsensusError::TooManySignatures {
                found: self.signatures.len(),
                validators: validators.len(),
            });
        }
        let mut seen = HashSet::with_capacity(self.signatures.len());
        let mut signers = Vec::with_capacity(self.signatures.len());
        let mut power = 0u64;
        let mut messages = Vec::with_capacity(self.signatures.len());
        for sig in &self.signatures {
            let index =
                validators
                    .index_of(&sig.validator)
                    .ok_or(ConsensusError::UnknownValidator {
                        validator: sig.validator,
                    })?;
            if !seen.insert(index) {
                return Err(ConsensusError::DuplicateSignature {
                    validator: sig.validator,
                });
            }
            messages.push(self.precommit(sig.validator).sign_bytes());
            power += validators.power(index);
            signers.push(index);
        }
        Ok(Signed {
            signers,
            messages,
            power,
        })
    }
}

/// A certificate's signers, checked to be distinct members of the set,
/// with the messages they signed: what is left is their signatures.
struct Signed {
    signers: Vec<usize>,
    messages: Vec<Vec<u8>>,
    power: u64,
}

impl Signed {
    /// The signature checks, each `(signer, message, signature)`.
    fn items<'a>(
        &'a self,
        certificate: &'a CommitCertificate,
    ) -> impl Iterator<Item = (usize, &'a [u8], &'a Signature)> + 'a {
        self.signers
            .iter()
            .zip(&self.messages)
            .zip(&certificate.signatures)
            .map(|((&i, m), s)| (i, m.as_slice(), &s.signature))
    }

    /// After the signatures: more than 2/3 of the power signed.
    fn quorum(self, validators: &ValidatorSet) -> Result<VerifiedCommit, ConsensusError> {
        if !validators.is_quorum(self.power) {
            return Err(ConsensusError::InsufficientPower {
                found: self.power,
                needed_more_than: validators.total_power() * 2 / 3,
            });
        }
        Ok(VerifiedCommit {
            signed_power: self.power,
            signers: self.signers,
        })
    }
}

/// A certificate that [`CommitCertificate::verify_batch`] found valid for
/// its chain and a validator set (named by [`ValidatorSet::hash`]). Only
/// that check makes one; the engine takes it without checking its
/// signatures again when its own set is that one
/// ([`crate::Engine::handle_checked`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckedCertificate {
    certificate: CommitCertificate,
    set: Hash,
}

impl CheckedCertificate {
    /// The certificate.
    pub fn certificate(&self) -> &CommitCertificate {
        &self.certificate
    }

    /// The hash of the validator set it was checked against.
    pub fn set(&self) -> Hash {
        self.set
    }

    /// The certificate, its check forgotten.
    pub fn into_certificate(self) -> CommitCertificate {
        self.certificate
    }
}

/// A commit certificate as a proof bundle carries it: the signatures of a
/// quorum only, each signer named by its index in the validator set (a bit
/// in `signers`) instead of by its 32-byte key, and no chain, height or
/// block, which the header it travels with supplies.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct CompactCertificate {
    /// The round whose precommits decided the block.
    pub round: Round,
    /// Bit `i % 8` of byte `i / 8` set: validator `i` signed.
    pub signers: Vec<u8>,
    /// The signers' precommit signatures, in validator index order.
    pub signatures: Vec<Signature>,
}

impl CommitCertificate {
    /// The certificate reduced to its first signers (in validator order)
    /// whose power is a quorum of `validators`: the same proof of finality,
    /// in fewer bytes and fewer signature checks. `None` if a signer is not
    /// in the set or the signers hold no quorum (the certificate is not one
    /// of `validators`).
    pub fn compact(&self, validators: &ValidatorSet) -> Option<CompactCertificate> {
        let mut signed: Vec<(usize, Signature)> = self
            .signatures
            .iter()
            .map(|s| validators.index_of(&s.validator).map(|i| (i, s.signature)))
            .collect::<Option<_>>()?;
        signed.sort_by_key(|(i, _)| *i);
        signed.dedup_by_key(|(i, _)| *i);
        let mut signers = vec![0u8; validators.len().div_ceil(8)];
        let mut signatures = Vec::new();
        let mut power = 0u64;
        for (index, signature) in signed {
            signers[index / 8] |= 1 << (index % 8);
            signatures.push(signature);
            power += validators.power(index);
            if validators.is_quorum(power) {
                return Some(CompactCertificate {
                    round: self.round,
                    signers,
                    signatures,
                });
            }
        }
        None
    }
}

impl CompactCertificate {
    /// The commit certificate this stands for, for the block `value` at
    /// `height` on `chain`, with signers' keys from `validators`. Refuses a
    /// signer bitmap of the wrong length, with bits past the set, or whose
    /// count differs from the signatures'. [`CommitCertificate::verify`]
    /// then checks it.
    pub fn expand(
        &self,
        chain: Hash,
        height: Height,
        value: ValueId,
        validators: &ValidatorSet,
    ) -> Result<CommitCertificate, ConsensusError> {
        if self.signers.len() != validators.len().div_ceil(8) {
            return Err(ConsensusError::MalformedSigners {
                reason: format!(
                    "{} bytes of signer bits for {} validators",
                    self.signers.len(),
                    validators.len()
                ),
            });
        }
        let indexes: Vec<usize> = (0..self.signers.len() * 8)
            .filter(|i| self.signers[i / 8] & (1 << (i % 8)) != 0)
            .collect();
        if indexes.last().is_some_and(|&i| i >= validators.len()) {
            return Err(ConsensusError::MalformedSigners {
                reason: format!("a signer bit past the {} validators", validators.len()),
            });
        }
        if indexes.len() != self.signatures.len() {
            return Err(ConsensusError::MalformedSigners {
                reason: format!(
                    "{} signers but {} signatures",
                    indexes.len(),
                    self.signatures.len()
                ),
            });
        }
        let signatures = indexes
            .iter()
            .zip(&self.signatures)
            .filter_map(|(&i, &signature)| {
                validators.get(i).map(|v| CommitSignature {
                    validator: v.public_key,
                    signature,
                })
            })
            .collect();
        Ok(CommitCertificate {
            chain,
            height,
            round: self.round,
            value,
            signatures,
        })
    }
}
