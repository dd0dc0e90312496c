//! Signing, guarded against double signing.
//!
//! # The contract
//!
//! A validator must never sign two different messages for the same
//! (height, round, step), nor anything for a (height, round, step) earlier
//! than one it has signed, even across crashes, restarts and restores of its
//! data folder from a backup. [`GuardedSigner`] enforces this with a durable
//! record of the last signed (height, round, step), kept by a
//! [`SignStateStore`]:
//!
//! 1. before signing, the request is compared with the record: an earlier
//!    position is refused; the same position is allowed only for the very
//!    same bytes (it returns the same signature: ed25519 is deterministic,
//!    so a replay after a crash reproduces what was sent);
//! 2. the new record is stored, and [`SignStateStore::store`] returns only
//!    once it is durable (the node's store fsyncs it, in a file of its own,
//!    apart from the data folder's snapshots);
//! 3. only then is the signature returned, so no signed message can leave the
//!    process before the record that forbids its conflicting twin is on disk.

use std::sync::{Arc, Mutex};

use borsh::{BorshDeserialize, BorshSerialize};
use cairn_genesis::{Domain, Hash, PublicKey};
use ed25519_dalek::{Signer as _, SigningKey};

use crate::ConsensusError;
use crate::types::{Height, Proposal, Round, Signature, Step, Vote};

/// Domain of the hash of signed bytes kept in the sign state.
static SIGNED_BYTES: Domain = Domain::new("cairn 2026-11 signed bytes v1");

/// The last message a validator signed, durably recorded.
#[derive(Clone, Copy, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct LastSigned {
    /// Height signed at.
    pub height: Height,
    /// Round signed at.
    pub round: Round,
    /// Step signed at (a proposal is signed at [`Step::Propose`]).
    pub step: Step,
    /// Digest of the signed bytes.
    pub sign_bytes_hash: Hash,
    /// The signature given.
    pub signature: Signature,
}

/// Durable storage of the [`LastSigned`] record.
pub trait SignStateStore {
    /// The record, if anything was ever signed.
    fn load(&self) -> Result<Option<LastSigned>, ConsensusError>;
    /// Replaces the record; returns only once it survives a crash or power loss.
    fn store(&mut self, state: &LastSigned) -> Result<(), ConsensusError>;
}

/// What the state machine signs with.
pub trait Signer {
    /// The consensus key it signs for.
    fn public_key(&self) -> PublicKey;
    /// Signs a vote, or refuses.
    fn sign_vote(&mut self, vote: &Vote) -> Result<Signature, ConsensusError>;
    /// Signs a proposal, or refuses.
    fn sign_proposal(&mut self, proposal: &Proposal) -> Result<Signature, ConsensusError>;
}

/// An ed25519 key behind the double-sign guard.
pub struct GuardedSigner<S: SignStateStore> {
    key: SigningKey,
    public_key: PublicKey,
    store: S,
    last: Option<LastSigned>,
}

impl<S: SignStateStore> GuardedSigner<S> {
    /// Loads the last signed state from `store`.
    pub fn new(key: SigningKey, store: S) -> Result<Self, ConsensusError> {
        let last = store.load()?;
        let public_key = PublicKey::from(key.verifying_key());
        Ok(GuardedSigner {
            key,
            public_key,
            store,
            last,
        })
    }

    /// The last signed state.
    pub fn last_signed(&self) -> Option<LastSigned> {
        self.last
    }

    fn sign(
        &mut self,
        height: Height,
        round: Round,
        step: Step,
        bytes: &[u8],
    ) -> Result<Signature, ConsensusError> {
        let sign_bytes_hash = SIGNED_BYTES.hash(bytes);
        if let Some(last) = self.last {
            let refuse = || ConsensusError::DoubleSignRefused {
                height,
                round,
                step,
                last_height: last.height,
                last_round: last.round,
                last_step: last.step,
            };
            match (height, round, step).cmp(&(last.height, last.round, last.step)) {
                std::cmp::Ordering::Less => return Err(refuse()),
                std::cmp::Ordering::Equal if last.sign_bytes_hash == sign_bytes_hash => {
                    return Ok(last.signature);
                }
                std::cmp::Ordering::Equal => return Err(refuse()),
                std::cmp::Ordering::Greater => {}
            }
        }
        let signature = Signature(self.key.sign(bytes).to_bytes());
        let record = LastSigned {
            height,
            round,
            step,
            sign_bytes_hash,
            signature,
        };
        self.store.store(&record)?;
        self.last = Some(record);
        Ok(signature)
    }
}

impl<S: SignStateStore> Signer for GuardedSigner<S> {
    fn public_key(&self) -> PublicKey {
        self.public_key
    }

    fn sign_vote(&mut self, vote: &Vote) -> Result<Signature, ConsensusError> {
        self.sign(
            vote.height,
            vote.round,
            vote.kind.step(),
            &vote.sign_bytes(),
        )
    }

    fn sign_proposal(&mut self, proposal: &Proposal) -> Result<Signature, ConsensusError> {
        self.sign(
            proposal.height,
            proposal.round,
            Step::Propose,
            &proposal.sign_bytes(),
        )
    }
}

/// A sign-state store in memory, shared by its clones: it outlives a
/// simulated crash of the engine that used it, as a file would.
#[derive(Clone, Default, Debug)]
pub struct MemorySignState(Arc<Mutex<Option<LastSigned>>>);

impl MemorySignState {
    /// The stored record.
    pub fn load_last(&self) -> Option<LastSigned> {
        self.0.lock().ok().and_then(|s| *s)
    }
}

impl SignStateStore for MemorySignState {
    fn load(&self) -> Result<Option<LastSigned>, ConsensusError> {
        self.0
            .lock()
            .map(|s| *s)
            .map_err(|e| ConsensusError::SignStateStorage(e.to_string()))
    }

    fn store(&mut self, state: &LastSigned) -> Result<(), ConsensusError> {
        let mut slot = self
            .0
            .lock()
            .map_err(|e| ConsensusError::SignStateStorage(e.to_string()))?;
        *slot = Some(*state);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{ValueId, VoteKind};

    fn vote(
        height: u64,
        round: u32,
        kind: VoteKind,
        value: Option<u8>,
        validator: PublicKey,
    ) -> Vote {
        Vote {
            chain: Hash([7; 32]),
            height: Height(height),
            round: Round(round),
            kind,
            value: value.map(|b| ValueId(Hash([b; 32]))),
            validator,
        }
    }

    #[test]
    fn refuses_a_second_different_vote_at_the_same_step() {
        let store = MemorySignState::default();
        let mut signer = GuardedSigner::new(SigningKey::from_bytes(&[1; 32]), store).unwrap();
        let me = signer.public_key();
        let first = signer
            .sign_vote(&vote(5, 0, VoteKind::Prevote, Some(1), me))
            .unwrap();
        // The same vote again: the same signature (a replay after a crash).
        assert_eq!(
            signer
                .sign_vote(&vote(5, 0, VoteKind::Prevote, Some(1), me))
                .unwrap(),
            first
        );
        // A different value at the same step: refused.
        assert!(matches!(
            signer.sign_vote(&vote(5, 0, VoteKind::Prevote, Some(2), me)),
            Err(ConsensusError::DoubleSignRefused { .. })
        ));
        assert!(matches!(
            signer.sign_vote(&vote(5, 0, VoteKind::Prevote, None, me)),
            Err(ConsensusError::DoubleSignRefused { .. })
        ));
    }

    #[test]
    fn refuses_anything_earlier_and_survives_a_restart() {
        let store = MemorySignState::default();
        let mut signer =
            GuardedSigner::new(SigningKey::from_bytes(&[1; 32]), store.clone()).unwrap();
        let me = signer.public_key();
        signer
            .sign_vote(&vote(5, 2, VoteKind::Precommit, None, me))
            .unwrap();
        drop(signer);
        // A restarted signer (same durable store) still refuses.
        let mut signer = GuardedSigner::new(SigningKey::from_bytes(&[1; 32]), store).unwrap();
        for (h, r, kind) in [
            (5, 2, VoteKind::Prevote),
            (5, 1, VoteKind::Precommit),
            (4, 9, VoteKind::Precommit),
        ] {
            assert!(
                matches!(
                    signer.sign_vote(&vote(h, r, kind, Some(3), me)),
                    Err(ConsensusError::DoubleSignRefused { .. })
                ),
                "({h}, {r}, {kind:?}) must be refused"
            );
        }
        assert!(
            signer
                .sign_vote(&vote(5, 3, VoteKind::Prevote, Some(3), me))
                .is_ok()
        );
        assert!(
            signer
                .sign_vote(&vote(6, 0, VoteKind::Prevote, Some(3), me))
                .is_ok()
        );
    }

    #[test]
    fn record_is_stored_before_the_signature_is_returned() {
        struct Failing;
        impl SignStateStore for Failing {
            fn load(&self) -> Result<Option<LastSigned>, ConsensusError> {
                Ok(None)
            }
            fn store(&mut self, _: &LastSigned) -> Result<(), ConsensusError> {
                Err(ConsensusError::SignStateStorage("disk full".into()))
            }
        }
        let mut signer = GuardedSigner::new(SigningKey::from_bytes(&[1; 32]), Failing).unwrap();
        let me = signer.public_key();
        assert!(matches!(
            signer.sign_vote(&vote(1, 0, VoteKind::Prevote, None, me)),
            Err(ConsensusError::SignStateStorage(_))
        ));
        assert_eq!(signer.last_signed(), None);
    }
}
