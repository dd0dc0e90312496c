//! The validator's last-signed record, in a file of its own.
//!
//! It lives beside the data folder, not in it: an operator who restores the
//! data folder from a backup must not restore an older sign state with it,
//! or the node could sign again what it already signed. The file is
//! replaced atomically (temporary file, fsync, rename, fsync of the folder)
//! before [`SignStateStore::store`] returns, as the signer's contract asks.
//! Its content is borsh with a blake3 checksum, so a damaged file is an
//! error, never a silently empty record.

use std::path::{Path, PathBuf};

use cairn_consensus::{ConsensusError, LastSigned, SignStateStore};
use cairn_genesis::Hash;

/// Domain of the file's checksum.
const CHECKSUM_DOMAIN: &str = "cairn 2026-11 sign state file v1";

/// The sign state file.
#[derive(Debug, Clone)]
pub struct SignStateFile {
    path: PathBuf,
}

impl SignStateFile {
    /// The record at `path` (created on the first signature).
    pub fn new(path: impl Into<PathBuf>) -> SignStateFile {
        SignStateFile { path: path.into() }
    }

    /// Where the record lives.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn storage(path: &Path, what: impl std::fmt::Display) -> ConsensusError {
    ConsensusError::SignStateStorage(format!("{}: {what}", path.display()))
}

impl SignStateStore for SignStateFile {
    fn load(&self) -> Result<Option<LastSigned>, ConsensusError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(storage(&self.path, e)),
        };
        if bytes.len() < 32 {
            return Err(storage(
                &self.path,
                "truncated sign state; refusing to sign until it is repaired",
            ));
        }
        let (body, checksum) = bytes.split_at(bytes.len() - 32);
        if Hash::domain(CHECKSUM_DOMAIN, body).0 != checksum {
            return Err(storage(
                &self.path,
                "sign state checksum mismatch; refusing to sign until it is repaired",
            ));
        }
        borsh::from_slice(body)
            .map(Some)
            .map_err(|e| storage(&self.path, e))
    }

    fn store(&mut self, state: &LastSigned) -> Result<(), ConsensusError> {
        let mut bytes = borsh::to_vec(state).map_err(|e| storage(&self.path, e))?;
        let checksum = Hash::domain(CHECKSUM_DOMAIN, &bytes);
        bytes.extend_from_slice(&checksum.0);
        cairn_genesis::write_atomic(&self.path, &bytes).map_err(|e| storage(&self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_consensus::{GuardedSigner, Height, Round, Signer, Step, ValueId, Vote, VoteKind};
    use ed25519_dalek::SigningKey;

    #[test]
    fn survives_a_restart_and_refuses_to_sign_twice() {
        let dir = tempfile::tempdir().unwrap();
        let file = SignStateFile::new(dir.path().join("sign_state"));
        let key = SigningKey::from_bytes(&[3; 32]);
        let mut signer = GuardedSigner::new(key.clone(), file.clone()).unwrap();
        let me = signer.public_key();
        let vote = |value: u8| Vote {
            chain: Hash([1; 32]),
            height: Height(7),
            round: Round(1),
            kind: VoteKind::Precommit,
            value: Some(ValueId(Hash([value; 32]))),
            validator: me,
        };
        let first = vote(1);
        signer.sign_vote(&first).unwrap();
        drop(signer);
        let mut restarted = GuardedSigner::new(key, file.clone()).unwrap();
        let last = restarted.last_signed().unwrap();
        assert_eq!(
            (last.height, last.round, last.step),
            (Height(7), Round(1), Step::Precommit)
        );
        assert!(matches!(
            restarted.sign_vote(&vote(2)),
            Err(ConsensusError::DoubleSignRefused { .. })
        ));
    }

    #[test]
    fn a_damaged_file_is_an_error_not_an_empty_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sign_state");
        let mut file = SignStateFile::new(&path);
        let state = LastSigned {
            height: Height(3),
            round: Round(0),
            step: Step::Prevote,
            sign_bytes_hash: Hash([4; 32]),
            signature: cairn_consensus::Signature([5; 64]),
        };
        file.store(&state).unwrap();
        assert_eq!(file.load().unwrap(), Some(state));
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[0] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(matches!(
            file.load(),
            Err(ConsensusError::SignStateStorage(_))
        ));
        std::fs::write(&path, [1, 2, 3]).unwrap();
        assert!(matches!(
            file.load(),
            Err(ConsensusError::SignStateStorage(_))
        ));
    }
}
