//! Cairn's ed25519 signature rule, one verdict for single and batch checks.
//!
//! Every node must reach the same verdict on every signature, or honest
//! validators disagree about a block. `verify_strict` checks the
//! cofactorless equation `[s]B = R + [k]A`, and ed25519 batch verification
//! checks a random combination of those equations; for a signature whose
//! `R` carries a small-order component the two disagree, and whether a batch
//! accepts it depends on which other signatures share the batch. A node that
//! batched and a node that did not would then judge the same transaction
//! differently.
//!
//! Cairn therefore fixes one rule, checked the same way alone and in a batch:
//!
//! - `s` is canonical (below the group order ℓ);
//! - `R`'s encoding is canonical (its y coordinate below p = 2^255 − 19) and
//!   decodes to a point that is not of small order;
//! - the key is a point that is not of small order ([`PublicKey::check`]);
//! - the cofactored equation `[8]([s]B − R − [k]A) = 0` holds, where
//!   `k = SHA-512(R ‖ A ‖ message)` as in RFC 8032.
//!
//! A batch computes `[8](Σ zᵢsᵢ·B − Σ zᵢRᵢ − Σ zᵢkᵢ·Aᵢ)` with 128-bit
//! coefficients `zᵢ` derived from every input, and accepts exactly when
//! every signature passes alone, except with probability about 2^-128.
//! Every signature that `verify_strict` accepts passes this rule; the rule
//! also accepts the signatures of the first paragraph, which no standard
//! signer produces and which it judges the same way on every node.
//!
//! [`PublicKey::check`]: crate::PublicKey::check

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint, VartimeEdwardsPrecomputation};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{
    IsIdentity, VartimeMultiscalarMul, VartimePrecomputedMultiscalarMul,
};
use ed25519_dalek::VerifyingKey;
use sha2::{Digest, Sha512};

/// Domain of the coefficients of a batch check.
const BATCH_DOMAIN: &str = "cairn 2026-12 ed25519 batch coefficients v1";

/// Largest number of signatures checked in one multiscalar multiplication;
/// longer batches are split, so a bad signature costs its chunk a recheck.
pub const MAX_BATCH_CHUNK: usize = 256;

/// Why a signature does not pass Cairn's rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureDefect {
    /// `s` is not below the group order.
    NonCanonicalScalar,
    /// `R`'s y coordinate is not below p.
    NonCanonicalR,
    /// `R` is not the encoding of a curve point.
    RNotAPoint,
    /// `R` is a point of small order.
    SmallOrderR,
    /// The verification equation does not hold.
    Mismatch,
}

/// One signature to check: key, signed bytes and the 64 signature bytes.
#[derive(Clone, Copy, Debug)]
pub struct SignatureItem<'a> {
    /// The signer's key (decoded and checked by [`crate::PublicKey::check`]).
    pub key: &'a VerifyingKey,
    /// The signed bytes.
    pub message: &'a [u8],
    /// `R ‖ s`.
    pub signature: &'a [u8; 64],
}

/// A signature decoded, with its challenge.
struct Decoded {
    r: EdwardsPoint,
    s: Scalar,
    k: Scalar,
}

/// Whether a point encoding's y coordinate (the low 255 bits) is below p.
/// The 19 values from p to 2^255 − 1 end in 0x7f (sign bit aside), have
/// 0xff in bytes 1 to 30 and a first byte of at least 0xed.
fn canonical_y(bytes: &[u8; 32]) -> bool {
    !(bytes[31] & 0x7f == 0x7f && bytes[1..31].iter().all(|&b| b == 0xff) && bytes[0] >= 0xed)
}

fn decode(item: &SignatureItem<'_>) -> Result<Decoded, SignatureDefect> {
    let mut r_bytes = [0u8; 32];
    r_bytes.copy_from_slice(&item.signature[..32]);
    let mut s_bytes = [0u8; 32];
    s_bytes.copy_from_slice(&item.signature[32..]);
    let s = Option::<Scalar>::from(Scalar::from_canonical_bytes(s_bytes))
        .ok_or(SignatureDefect::NonCanonicalScalar)?;
    if !canonical_y(&r_bytes) {
        return Err(SignatureDefect::NonCanonicalR);
    }
    let r = CompressedEdwardsY(r_bytes)
        .decompress()
        .ok_or(SignatureDefect::RNotAPoint)?;
    if r.is_small_order() {
        return Err(SignatureDefect::SmallOrderR);
    }
    let mut hash = Sha512::new();
    hash.update(r_bytes);
    hash.update(item.key.as_bytes());
    hash.update(item.message);
    Ok(Decoded {
        r,
        s,
        k: Scalar::from_hash(hash),
    })
}

/// Checks one signature.
pub fn verify(item: &SignatureItem<'_>) -> Result<(), SignatureDefect> {
    let d = decode(item)?;
    let minus_a = -item.key.to_edwards();
    // [k](−A) + [s]B − R, which is R − R = 0 for an honest signature.
    let difference = EdwardsPoint::vartime_double_scalar_mul_basepoint(&d.k, &minus_a, &d.s) - d.r;
    if difference.mul_by_cofactor().is_identity() {
        Ok(())
    } else {
        Err(SignatureDefect::Mismatch)
    }
}

/// The signatures of a chunk decoded, with their batch coefficients `z`;
/// `None` if any one does not decode.
fn decode_chunk(items: &[SignatureItem<'_>]) -> Option<(Vec<Decoded>, Vec<Scalar>)> {
    let decoded = items
        .iter()
        .map(|item| decode(item).ok())
        .collect::<Option<Vec<Decoded>>>()?;
    // Coefficients bound to every input: the signatures, keys and messages
    // (through the challenges k, which hash R, A and the message).
    let mut transcript = blake3::Hasher::new_derive_key(BATCH_DOMAIN);
    for (item, d) in items.iter().zip(&decoded) {
        transcript.update(item.signature);
        transcript.update(d.k.as_bytes());
    }
    let mut stream = transcript.finalize_xof();
    let z = decoded
        .iter()
        .map(|_| {
            let mut bytes = [0u8; 16];
            stream.fill(&mut bytes);
            Scalar::from(u128::from_le_bytes(bytes))
        })
        .collect();
    Some((decoded, z))
}

/// Whether every signature in `items` (at most [`MAX_BATCH_CHUNK`]) passes,
/// by one multiscalar multiplication. `false` when any one fails.
fn verify_chunk(items: &[SignatureItem<'_>]) -> bool {
    let Some((decoded, z)) = decode_chunk(items) else {
        return false;
    };
    let b_coefficient: Scalar = decoded.iter().zip(&z).map(|(d, z)| z * d.s).sum();
    // Signatures by the same key share its term: Σ zᵢkᵢ·A over each key's
    // signatures is one point times one scalar. A batch of one issuer's
    // transactions then costs one point per signature (its R), not two.
    let mut keys: Vec<(EdwardsPoint, Scalar)> = Vec::new();
    let mut key_index: HashMap<[u8; 32], usize> = HashMap::new();
    for ((item, d), z) in items.iter().zip(&decoded).zip(&z) {
        let zk = z * d.k;
        match key_index.entry(*item.key.as_bytes()) {
            Entry::Occupied(e) => keys[*e.get()].1 += zk,
            Entry::Vacant(e) => {
                e.insert(keys.len());
                keys.push((item.key.to_edwards(), zk));
            }
        }
    }
    let scalars = std::iter::once(b_coefficient)
        .chain(z.iter().map(|z| -z))
        .chain(keys.iter().map(|(_, zk)| -zk));
    let points = std::iter::once(ED25519_BASEPOINT_POINT)
        .chain(decoded.iter().map(|d| d.r))
        .chain(keys.iter().map(|(a, _)| *a));
    EdwardsPoint::vartime_multiscalar_mul(scalars, points)
        .mul_by_cofactor()
        .is_identity()
}

/// Checks every signature in `items` and returns one verdict per item, in
/// order. Batches of up to [`MAX_BATCH_CHUNK`] are checked at once; a batch
/// that fails is checked again one by one, so each verdict is exactly what
/// [`verify`] says of that signature.
pub fn verify_each(items: &[SignatureItem<'_>]) -> Vec<Result<(), SignatureDefect>> {
    verify_each_by(items, verify_chunk)
}

/// Checks every signature in `items`; on failure, the index of the first
/// one that does not pass and why.
pub fn verify_all(items: &[SignatureItem<'_>]) -> Result<(), (usize, SignatureDefect)> {
    first_failure(verify_each(items))
}

/// [`verify_each`] with `batch` checking each chunk of more than one.
fn verify_each_by(
    items: &[SignatureItem<'_>],
    batch: impl Fn(&[SignatureItem<'_>]) -> bool,
) -> Vec<Result<(), SignatureDefect>> {
    let mut verdicts = Vec::with_capacity(items.len());
    for chunk in items.chunks(MAX_BATCH_CHUNK) {
        if chunk.len() > 1 && batch(chunk) {
            verdicts.extend(chunk.iter().map(|_| Ok(())));
        } else {
            verdicts.extend(chunk.iter().map(verify));
        }
    }
    verdicts
}

fn first_failure(
    verdicts: Vec<Result<(), SignatureDefect>>,
) -> Result<(), (usize, SignatureDefect)> {
    match verdicts
        .into_iter()
        .enumerate()
        .find_map(|(i, v)| v.err().map(|d| (i, d)))
    {
        Some(failure) => Err(failure),
        None => Ok(()),
    }
}

/// A fixed set of keys (a validator set) with precomputed tables, so that
/// a batch of their signatures does not rebuild each key's multiples every
/// time. Same rule, same verdicts as [`verify_all`].
pub struct KeyTable {
    /// The base point, then the keys.
    table: VartimeEdwardsPrecomputation,
    index: HashMap<[u8; 32], usize>,
}

impl std::fmt::Debug for KeyTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyTable({} keys)", self.index.len())
    }
}

impl KeyTable {
    /// Tables for `keys` (and the base point).
    pub fn new(keys: &[VerifyingKey]) -> KeyTable {
        let points =
            std::iter::once(ED25519_BASEPOINT_POINT).chain(keys.iter().map(|k| k.to_edwards()));
        KeyTable {
            table: VartimeEdwardsPrecomputation::new(points),
            index: keys
                .iter()
                .enumerate()
                .map(|(i, k)| (*k.as_bytes(), i))
                .collect(),
        }
    }

    /// [`verify_all`], with the tables for signatures by the set's keys.
    pub fn verify_all(&self, items: &[SignatureItem<'_>]) -> Result<(), (usize, SignatureDefect)> {
        first_failure(self.verify_each(items))
    }

    /// [`verify_each`], with the tables for signatures by the set's keys.
    pub fn verify_each(&self, items: &[SignatureItem<'_>]) -> Vec<Result<(), SignatureDefect>> {
        verify_each_by(items, |chunk| self.verify_chunk(chunk))
    }

    fn verify_chunk(&self, items: &[SignatureItem<'_>]) -> bool {
        let Some((decoded, z)) = decode_chunk(items) else {
            return false;
        };
        let mut fixed = vec![Scalar::ZERO; self.index.len() + 1];
        fixed[0] = decoded.iter().zip(&z).map(|(d, z)| z * d.s).sum();
        for ((item, d), z) in items.iter().zip(&decoded).zip(&z) {
            let Some(&i) = self.index.get(item.key.as_bytes()) else {
                // Not one of the set's keys: no table for it.
                return verify_chunk(items);
            };
            fixed[i + 1] -= z * d.k;
        }
        self.table
            .vartime_mixed_multiscalar_mul(fixed, z.iter().map(|z| -z), decoded.iter().map(|d| d.r))
            .mul_by_cofactor()
            .is_identity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use curve25519_dalek::constants::EIGHT_TORSION;
    use ed25519_dalek::{Signer, SigningKey};
    use proptest::prelude::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn item<'a>(key: &'a VerifyingKey, message: &'a [u8], sig: &'a [u8; 64]) -> SignatureItem<'a> {
        SignatureItem {
            key,
            message,
            signature: sig,
        }
    }

    /// A signature whose R = rB + T for a torsion point T: it satisfies the
    /// cofactored equation, not the cofactorless one.
    fn torsioned_signature(signer: &SigningKey, message: &[u8], torsion: usize) -> [u8; 64] {
        let secret = signer.to_scalar();
        let r = Scalar::from(987_654_321u64);
        let big_r = ED25519_BASEPOINT_POINT * r + EIGHT_TORSION[torsion];
        let r_bytes = big_r.compress().to_bytes();
        let mut hash = Sha512::new();
        hash.update(r_bytes);
        hash.update(signer.verifying_key().as_bytes());
        hash.update(message);
        let k = Scalar::from_hash(hash);
        let s = r + k * secret;
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(&r_bytes);
        sig[32..].copy_from_slice(s.as_bytes());
        sig
    }

    #[test]
    fn honest_signatures_pass_alone_and_in_batches() {
        let keys: Vec<SigningKey> = (1..=40).map(key).collect();
        let messages: Vec<Vec<u8>> = (0..40u8).map(|i| vec![i; 1 + usize::from(i)]).collect();
        let sigs: Vec<[u8; 64]> = keys
            .iter()
            .zip(&messages)
            .map(|(k, m)| k.sign(m).to_bytes())
            .collect();
        let vks: Vec<VerifyingKey> = keys.iter().map(|k| k.verifying_key()).collect();
        let items: Vec<SignatureItem<'_>> = (0..40)
            .map(|i| item(&vks[i], &messages[i], &sigs[i]))
            .collect();
        assert!(items.iter().all(|i| verify(i).is_ok()));
        assert_eq!(verify_all(&items), Ok(()));
        assert!(verify_each(&items).iter().all(Result::is_ok));
    }

    #[test]
    fn one_key_signing_many_messages_batches_alike() {
        let signer = key(5);
        let vk = signer.verifying_key();
        let messages: Vec<Vec<u8>> = (0..50u8).map(|i| vec![i; 3]).collect();
        let mut sigs: Vec<[u8; 64]> = messages.iter().map(|m| signer.sign(m).to_bytes()).collect();
        let items = |sigs: &[[u8; 64]]| -> Vec<Result<(), SignatureDefect>> {
            let items: Vec<SignatureItem<'_>> =
                (0..50).map(|i| item(&vk, &messages[i], &sigs[i])).collect();
            verify_each(&items)
        };
        assert!(items(&sigs).iter().all(Result::is_ok));
        // Two signatures swapped between messages: both wrong, the rest fine.
        sigs.swap(10, 11);
        let verdicts = items(&sigs);
        let bad: Vec<usize> = (0..50).filter(|&i| verdicts[i].is_err()).collect();
        assert_eq!(bad, [10, 11]);
    }

    #[test]
    fn a_key_table_judges_as_the_plain_batch() {
        let keys: Vec<SigningKey> = (60..67).map(key).collect();
        let vks: Vec<VerifyingKey> = keys.iter().map(|k| k.verifying_key()).collect();
        let table = KeyTable::new(&vks);
        let stranger = key(99);
        let stranger_vk = stranger.verifying_key();
        let mut sigs: Vec<[u8; 64]> = keys.iter().map(|k| k.sign(b"v").to_bytes()).collect();
        let stranger_sig = stranger.sign(b"v").to_bytes();
        let good: Vec<SignatureItem<'_>> = (0..7).map(|i| item(&vks[i], b"v", &sigs[i])).collect();
        assert_eq!(table.verify_all(&good), Ok(()));
        let mut with_stranger = good.clone();
        with_stranger.push(item(&stranger_vk, b"v", &stranger_sig));
        assert_eq!(table.verify_all(&with_stranger), Ok(()));
        sigs[4][40] ^= 2;
        let bad: Vec<SignatureItem<'_>> = (0..7).map(|i| item(&vks[i], b"v", &sigs[i])).collect();
        assert_eq!(table.verify_all(&bad), verify_all(&bad));
        assert_eq!(table.verify_all(&bad).unwrap_err().0, 4);
    }

    #[test]
    fn a_bad_signature_is_named_by_its_index() {
        let keys: Vec<SigningKey> = (1..=10).map(key).collect();
        let vks: Vec<VerifyingKey> = keys.iter().map(|k| k.verifying_key()).collect();
        let mut sigs: Vec<[u8; 64]> = keys.iter().map(|k| k.sign(b"m").to_bytes()).collect();
        sigs[6] = keys[6].sign(b"other").to_bytes();
        let items: Vec<SignatureItem<'_>> =
            (0..10).map(|i| item(&vks[i], b"m", &sigs[i])).collect();
        assert_eq!(verify_all(&items), Err((6, SignatureDefect::Mismatch)));
        let verdicts = verify_each(&items);
        assert_eq!(verdicts.iter().filter(|v| v.is_err()).count(), 1);
        assert_eq!(verdicts[6], Err(SignatureDefect::Mismatch));
    }

    #[test]
    fn malformed_signatures_are_refused_with_their_defect() {
        let signer = key(3);
        let vk = signer.verifying_key();
        let good = signer.sign(b"m").to_bytes();

        let mut high_s = good;
        high_s[63] |= 0xf0;
        assert_eq!(
            verify(&item(&vk, b"m", &high_s)),
            Err(SignatureDefect::NonCanonicalScalar)
        );

        let mut small_r = good;
        small_r[..32].copy_from_slice(EIGHT_TORSION[1].compress().as_bytes());
        assert_eq!(
            verify(&item(&vk, b"m", &small_r)),
            Err(SignatureDefect::SmallOrderR)
        );

        let mut big_y = good;
        big_y[..32].copy_from_slice(&[0xff; 32]);
        big_y[31] = 0x7f;
        assert_eq!(
            verify(&item(&vk, b"m", &big_y)),
            Err(SignatureDefect::NonCanonicalR)
        );

        let mut not_point = good;
        not_point[..32].copy_from_slice(&[0; 32]);
        not_point[0] = 2; // y = 2 has no x on the curve
        assert_eq!(
            verify(&item(&vk, b"m", &not_point)),
            Err(SignatureDefect::RNotAPoint)
        );
        for bad in [high_s, small_r, big_y, not_point] {
            let items = [item(&vk, b"m", &good), item(&vk, b"m", &bad)];
            assert!(verify_all(&items).is_err());
        }
    }

    #[test]
    fn single_and_batch_agree_on_torsioned_r_whatever_the_batch() {
        // verify_strict refuses these; Cairn's rule accepts them, and the
        // same way in every batch, whatever shares it.
        let signer = key(9);
        let vk = signer.verifying_key();
        let others: Vec<SigningKey> = (20..30).map(key).collect();
        let other_vks: Vec<VerifyingKey> = others.iter().map(|k| k.verifying_key()).collect();
        let other_sigs: Vec<[u8; 64]> = others.iter().map(|k| k.sign(b"x").to_bytes()).collect();
        for torsion in 1..8 {
            let sig = torsioned_signature(&signer, b"t", torsion);
            let strict = vk.verify_strict(b"t", &ed25519_dalek::Signature::from_bytes(&sig));
            assert!(strict.is_err(), "torsion {torsion}");
            assert_eq!(verify(&item(&vk, b"t", &sig)), Ok(()));
            for n in 0..others.len() {
                let mut items: Vec<SignatureItem<'_>> = (0..n)
                    .map(|i| item(&other_vks[i], b"x", &other_sigs[i]))
                    .collect();
                items.push(item(&vk, b"t", &sig));
                assert_eq!(
                    verify_all(&items),
                    Ok(()),
                    "torsion {torsion}, batch of {}",
                    n + 1
                );
            }
        }
    }

    proptest! {
        #[test]
        fn batch_verdicts_equal_single_verdicts(
            flips in proptest::collection::vec((0usize..12, 0usize..64, 1u8..=255), 0..4),
        ) {
            let keys: Vec<SigningKey> = (40..52).map(key).collect();
            let vks: Vec<VerifyingKey> = keys.iter().map(|k| k.verifying_key()).collect();
            let mut sigs: Vec<[u8; 64]> = keys.iter().map(|k| k.sign(b"p").to_bytes()).collect();
            for (which, byte, mask) in flips {
                sigs[which][byte] ^= mask;
            }
            let items: Vec<SignatureItem<'_>> =
                (0..12).map(|i| item(&vks[i], b"p", &sigs[i])).collect();
            let single: Vec<_> = items.iter().map(verify).collect();
            prop_assert_eq!(verify_each(&items), single.clone());
            let first_bad = single.iter().position(Result::is_err);
            prop_assert_eq!(verify_all(&items).err().map(|(i, _)| i), first_bad);
            // Everything strict verification accepts passes here too.
            for (i, it) in items.iter().enumerate() {
                let strict = vks[i].verify_strict(b"p", &ed25519_dalek::Signature::from_bytes(it.signature));
                if strict.is_ok() {
                    prop_assert!(single[i].is_ok());
                }
            }
        }
    }
}
