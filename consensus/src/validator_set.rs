//! The validators of a height, their voting power, quorum arithmetic,
//! signature checks and proposer selection.

use std::collections::HashMap;
use std::sync::Arc;

use cairn_genesis::signature::{self, KeyTable, SignatureItem};
use cairn_genesis::{GenesisDocument, Hash, PublicKey};
use ed25519_dalek::VerifyingKey;

use crate::ConsensusError;
use crate::types::{Height, Round, Signature};

/// Longest proposer rotation kept; larger power ratios are scaled to fit.
pub const MAX_ROTATION_LEN: u64 = 1 << 16;

/// One validator: its key and voting power.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidatorInfo {
    /// Consensus key.
    pub public_key: PublicKey,
    /// Voting power (non-zero).
    pub voting_power: u64,
}

/// The validators of a height, in a fixed order (their index is their
/// position), with a precomputed weighted round-robin proposer rotation.
#[derive(Clone, Debug)]
pub struct ValidatorSet {
    validators: Vec<ValidatorInfo>,
    keys: Vec<VerifyingKey>,
    /// Precomputed tables of the keys, for batch checks of certificates.
    table: Arc<KeyTable>,
    index: HashMap<PublicKey, usize>,
    total_power: u64,
    rotation: Vec<u16>,
    /// The set's digest (it never changes once built).
    hash: Hash,
}

impl ValidatorSet {
    /// A set from validators with non-zero power, strong and distinct keys,
    /// at most 65 536 of them and a total power that fits in `u64`.
    pub fn new(validators: Vec<ValidatorInfo>) -> Result<ValidatorSet, ConsensusError> {
        if validators.is_empty() || validators.len() > usize::from(u16::MAX) + 1 {
            return Err(ConsensusError::InvalidValidatorSet {
                reason: "1 to 65536 validators".into(),
            });
        }
        let mut keys = Vec::with_capacity(validators.len());
        let mut index = HashMap::new();
        let mut total_power = 0u64;
        for (i, v) in validators.iter().enumerate() {
            if v.voting_power == 0 {
                return Err(ConsensusError::InvalidValidatorSet {
                    reason: format!("validator {} has no power", v.public_key),
                });
            }
            total_power = total_power.checked_add(v.voting_power).ok_or_else(|| {
                ConsensusError::InvalidValidatorSet {
                    reason: "total voting power overflows".into(),
                }
            })?;
            let key = v
                .public_key
                .check()
                .map_err(|_| ConsensusError::InvalidValidatorSet {
                    reason: format!("key {} is not a strong ed25519 key", v.public_key),
                })?;
            if index.insert(v.public_key, i).is_some() {
                return Err(ConsensusError::InvalidValidatorSet {
                    reason: format!("key {} appears twice", v.public_key),
                });
            }
            keys.push(key);
        }
        let rotation = rotation(&validators, total_power);
        let table = Arc::new(KeyTable::new(&keys));
        let hash = digest(&validators);
        Ok(ValidatorSet {
            validators,
            table,
            keys,
            index,
            total_power,
            rotation,
            hash,
        })
    }

    /// The validator set a genesis document starts with.
    pub fn from_genesis(genesis: &GenesisDocument) -> Result<ValidatorSet, ConsensusError> {
        ValidatorSet::new(
            genesis
                .validators
                .iter()
                .map(|v| ValidatorInfo {
                    public_key: v.public_key,
                    voting_power: v.voting_power,
                })
                .collect(),
        )
    }

    /// Number of validators.
    pub fn len(&self) -> usize {
        self.validators.len()
    }

    /// Whether the set is empty (never true for a constructed set).
    pub fn is_empty(&self) -> bool {
        self.validators.is_empty()
    }

    /// The validators, in index order.
    pub fn validators(&self) -> &[ValidatorInfo] {
        &self.validators
    }

    /// Sum of all voting power.
    pub fn total_power(&self) -> u64 {
        self.total_power
    }

    /// The index of the validator with this key.
    pub fn index_of(&self, key: &PublicKey) -> Option<usize> {
        self.index.get(key).copied()
    }

    /// The validator at `index`.
    pub fn get(&self, index: usize) -> Option<&ValidatorInfo> {
        self.validators.get(index)
    }

    /// Voting power of the validator at `index` (0 if none).
    pub fn power(&self, index: usize) -> u64 {
        self.validators.get(index).map_or(0, |v| v.voting_power)
    }

    /// More than 2/3 of the total power: a quorum ("2f+1").
    pub fn is_quorum(&self, power: u64) -> bool {
        3 * u128::from(power) > 2 * u128::from(self.total_power)
    }

    /// More than 1/3 of the total power: at least one honest validator ("f+1").
    pub fn is_one_third(&self, power: u64) -> bool {
        3 * u128::from(power) > u128::from(self.total_power)
    }

    /// Verifies `signature` by the validator at `index` over `bytes`, by
    /// Cairn's signature rule ([`cairn_genesis::signature`]).
    pub fn verify(
        &self,
        index: usize,
        bytes: &[u8],
        signature: &Signature,
    ) -> Result<(), ConsensusError> {
        let key = self.key(index)?;
        signature::verify(&SignatureItem {
            key,
            message: bytes,
            signature: &signature.0,
        })
        .map_err(|_| ConsensusError::InvalidSignature {
            validator: self.validators[index].public_key,
        })
    }

    fn key(&self, index: usize) -> Result<&VerifyingKey, ConsensusError> {
        self.keys
            .get(index)
            .ok_or(ConsensusError::UnknownValidator {
                validator: PublicKey([0; 32]),
            })
    }

    /// Verifies many signatures at once, each `(index, bytes, signature)`
    /// by the validator at `index`, in one batch check whose verdict is
    /// the one-by-one verdict ([`signature::verify_all`]); a failure names
    /// the first signature that does not pass.
    pub fn verify_all(&self, items: &[(usize, &[u8], &Signature)]) -> Result<(), ConsensusError> {
        let checks = self.signature_items(items)?;
        self.table
            .verify_all(&checks)
            .map_err(|(position, _)| ConsensusError::InvalidSignature {
                validator: self.validators[items[position].0].public_key,
            })
    }

    /// [`ValidatorSet::verify_all`]'s check with a verdict for each
    /// signature, in order: a batch that fails is checked again one by
    /// one, so each verdict is the one-by-one verdict.
    pub fn verify_each(
        &self,
        items: &[(usize, &[u8], &Signature)],
    ) -> Result<Vec<Result<(), ConsensusError>>, ConsensusError> {
        let checks = self.signature_items(items)?;
        Ok(self
            .table
            .verify_each(&checks)
            .into_iter()
            .zip(items)
            .map(|(verdict, (index, _, _))| {
                verdict.map_err(|_| ConsensusError::InvalidSignature {
                    validator: self.validators[*index].public_key,
                })
            })
            .collect())
    }

    /// The signature checks of `items`; an index outside the set is
    /// [`ConsensusError::UnknownValidator`].
    fn signature_items<'a>(
        &'a self,
        items: &[(usize, &'a [u8], &'a Signature)],
    ) -> Result<Vec<SignatureItem<'a>>, ConsensusError> {
        items
            .iter()
            .map(|(index, message, sig)| {
                Ok(SignatureItem {
                    key: self.key(*index)?,
                    message,
                    signature: &sig.0,
                })
            })
            .collect()
    }

    /// The proposer of `round` at `height`: weighted round robin, where each
    /// validator proposes in proportion to its power, advancing one place per
    /// height and per round.
    pub fn proposer(&self, height: Height, round: Round) -> usize {
        let len = self.rotation.len() as u64;
        let position = (height.0 % len + u64::from(round.0) % len) % len;
        usize::from(self.rotation[position as usize])
    }

    /// A digest of the set (keys and powers, in order), for block headers;
    /// computed once, when the set is built.
    pub fn hash(&self) -> Hash {
        self.hash
    }
}

/// The digest of validators' keys and powers, in order.
fn digest(validators: &[ValidatorInfo]) -> Hash {
    let mut bytes = Vec::with_capacity(validators.len() * 40);
    for v in validators {
        bytes.extend_from_slice(&v.public_key.0);
        bytes.extend_from_slice(&v.voting_power.to_le_bytes());
    }
    Hash::domain("cairn 2026-11 validator set v1", &bytes)
}

/// The weighted round-robin rotation (Tendermint's proposer priority
/// algorithm): every step each validator's priority grows by its power, the
/// highest priority (lowest index on ties) proposes and loses the total. With
/// powers divided by their gcd the sequence repeats after `sum` steps, so one
/// period is computed once. Powers whose reduced sum exceeds
/// [`MAX_ROTATION_LEN`] are scaled down (each keeps at least one slot).
fn rotation(validators: &[ValidatorInfo], total: u64) -> Vec<u16> {
    let divisor = validators.iter().fold(0u64, |g, v| gcd(g, v.voting_power));
    let mut weights: Vec<u64> = validators
        .iter()
        .map(|v| v.voting_power / divisor.max(1))
        .collect();
    let mut sum: u64 = weights.iter().sum();
    if sum > MAX_ROTATION_LEN {
        let scale = MAX_ROTATION_LEN - validators.len() as u64;
        weights = validators
            .iter()
            .map(|v| {
                1 + (u128::from(v.voting_power) * u128::from(scale) / u128::from(total)) as u64
            })
            .collect();
        sum = weights.iter().sum();
    }
    let mut priority: Vec<i128> = vec![0; weights.len()];
    let mut sequence = Vec::with_capacity(sum as usize);
    for _ in 0..sum {
        let mut best = 0;
        for i in 0..weights.len() {
            priority[i] += i128::from(weights[i]);
            if priority[i] > priority[best] {
                best = i;
            }
        }
        priority[best] -= i128::from(sum);
        sequence.push(best as u16);
    }
    sequence
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    fn set(powers: &[u64]) -> ValidatorSet {
        ValidatorSet::new(
            powers
                .iter()
                .enumerate()
                .map(|(i, &voting_power)| ValidatorInfo {
                    public_key: PublicKey::from(
                        SigningKey::from_bytes(&[i as u8 + 1; 32]).verifying_key(),
                    ),
                    voting_power,
                })
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn the_digest_names_keys_powers_and_order() {
        assert_eq!(set(&[1, 2, 3]).hash(), set(&[1, 2, 3]).hash());
        assert_ne!(set(&[1, 2, 3]).hash(), set(&[1, 2, 4]).hash());
        assert_ne!(set(&[1, 2, 3]).hash(), set(&[1, 2]).hash());
        let a = set(&[5, 5]);
        let mut swapped = a.validators.clone();
        swapped.swap(0, 1);
        assert_ne!(a.hash(), ValidatorSet::new(swapped).unwrap().hash());
    }

    fn counts(set: &ValidatorSet, len: u64) -> Vec<u64> {
        let mut counts = vec![0; set.len()];
        for h in 0..len {
            counts[set.proposer(Height(h), Round(0))] += 1;
        }
        counts
    }

    #[test]
    fn equal_power_rotates_through_everyone() {
        let s = set(&[10, 10, 10, 10]);
        let order: Vec<usize> = (0..8).map(|h| s.proposer(Height(h), Round(0))).collect();
        assert_eq!(order, [0, 1, 2, 3, 0, 1, 2, 3]);
        // Rounds advance the rotation too.
        assert_eq!(
            s.proposer(Height(5), Round(2)),
            s.proposer(Height(7), Round(0))
        );
    }

    #[test]
    fn proposals_follow_power() {
        let s = set(&[1, 2, 3, 4]);
        assert_eq!(counts(&s, 100), [10, 20, 30, 40]);
        // Spread out, not in runs: the heaviest never proposes 3 times in a row.
        let seq: Vec<usize> = (0..10).map(|h| s.proposer(Height(h), Round(0))).collect();
        assert!(
            seq.windows(3).all(|w| !(w[0] == w[1] && w[1] == w[2])),
            "{seq:?}"
        );
    }

    #[test]
    fn huge_power_ratios_are_scaled_but_everyone_proposes() {
        let s = set(&[1_000_000_007, 1, 999_999_937]);
        assert!(s.rotation.len() as u64 <= MAX_ROTATION_LEN);
        let c = counts(&s, s.rotation.len() as u64);
        assert!(c.iter().all(|&n| n >= 1), "{c:?}");
        assert!(c[0] > 1000 * c[1]);
    }

    #[test]
    fn quorum_thresholds_are_strict() {
        let s = set(&[1, 1, 1]);
        assert!(!s.is_quorum(2));
        assert!(s.is_quorum(3));
        let s = set(&[10, 10, 10, 10]);
        assert!(!s.is_quorum(26));
        assert!(s.is_quorum(27));
        assert!(!s.is_one_third(13));
        assert!(s.is_one_third(14));
    }

    #[test]
    fn refuses_bad_sets() {
        assert!(ValidatorSet::new(vec![]).is_err());
        let key = PublicKey::from(SigningKey::from_bytes(&[1; 32]).verifying_key());
        let dup = vec![
            ValidatorInfo {
                public_key: key,
                voting_power: 1,
            },
            ValidatorInfo {
                public_key: key,
                voting_power: 1,
            },
        ];
        assert!(ValidatorSet::new(dup).is_err());
        assert!(
            ValidatorSet::new(vec![ValidatorInfo {
                public_key: key,
                voting_power: 0
            }])
            .is_err()
        );
        let mut weak = [0u8; 32];
        weak[0] = 1;
        assert!(
            ValidatorSet::new(vec![ValidatorInfo {
                public_key: PublicKey(weak),
                voting_power: 1
            }])
            .is_err()
        );
    }
}
