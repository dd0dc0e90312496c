//! ed25519 key files: created readable by their owner only, refused when
//! anyone else could read them.
//!
//! A key file is JSON:
//! `{"algorithm": "ed25519", "public_key": "<64 hex>", "secret_key": "<64 hex>"}`.
//! The public key is stored so that an operator can see whose key it is, and
//! it is checked against the secret on every load.

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use ed25519_dalek::SigningKey;
use rand::rngs::OsRng;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::{GenesisError, PeerId, PublicKey};

/// A key file is a few hundred bytes; anything much larger is not one.
pub const MAX_KEY_FILE_BYTES: u64 = 4 * 1024;

/// An ed25519 signing key with its public key. `Debug` never shows the secret.
pub struct KeyPair {
    signing: SigningKey,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFileJson {
    algorithm: String,
    public_key: PublicKey,
    secret_key: Zeroizing<String>,
}

impl KeyPair {
    /// A fresh key from the operating system's CSPRNG.
    pub fn generate() -> KeyPair {
        KeyPair {
            signing: SigningKey::generate(&mut OsRng),
        }
    }

    /// A key from a 32-byte secret seed (test vectors and devnets).
    pub fn from_seed(seed: [u8; 32]) -> KeyPair {
        KeyPair {
            signing: SigningKey::from_bytes(&seed),
        }
    }

    /// The public half.
    pub fn public_key(&self) -> PublicKey {
        PublicKey::from(self.signing.verifying_key())
    }

    /// The libp2p peer id of a node using this key as its identity.
    pub fn peer_id(&self) -> PeerId {
        self.public_key().peer_id()
    }

    /// The dalek signing key, for the code that signs.
    pub fn signing_key(&self) -> &SigningKey {
        &self.signing
    }

    /// Writes a new key file with mode 0600, synced to disk. Refuses to
    /// replace an existing file: a lost validator key cannot be recovered.
    pub fn write_new(&self, path: &Path) -> Result<(), GenesisError> {
        let json = KeyFileJson {
            algorithm: "ed25519".to_owned(),
            public_key: self.public_key(),
            secret_key: Zeroizing::new(hex::encode(self.signing.to_bytes())),
        };
        let mut text = Zeroizing::new(
            serde_json::to_string_pretty(&json).map_err(|e| GenesisError::json(path, &e))?,
        );
        text.push('\n');
        crate::fsutil::write_new(path, text.as_bytes(), 0o600)
    }

    /// Reads a key file, refusing one that others may read, one that is
    /// not a key file, and one whose public key does not match its secret.
    pub fn load(path: &Path) -> Result<KeyPair, GenesisError> {
        let file = File::open(path).map_err(|e| GenesisError::io(path, &e))?;
        let metadata = file.metadata().map_err(|e| GenesisError::io(path, &e))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = metadata.permissions().mode() & 0o7777;
            if mode & 0o077 != 0 {
                return Err(GenesisError::KeyFilePermissions {
                    path: path.to_path_buf(),
                    mode,
                });
            }
        }
        if metadata.len() > MAX_KEY_FILE_BYTES {
            return Err(GenesisError::FileTooLarge {
                path: path.to_path_buf(),
                size: metadata.len(),
                limit: MAX_KEY_FILE_BYTES,
            });
        }
        let mut text = Zeroizing::new(String::new());
        file.take(MAX_KEY_FILE_BYTES)
            .read_to_string(&mut text)
            .map_err(|e| GenesisError::io(path, &e))?;
        let malformed = |reason: &str| GenesisError::MalformedKeyFile {
            path: path.to_path_buf(),
            reason: reason.to_owned(),
        };
        let json: KeyFileJson =
            serde_json::from_str(&text).map_err(|e| malformed(&e.to_string()))?;
        if json.algorithm != "ed25519" {
            return Err(malformed(&format!(
                "algorithm {:?} is not \"ed25519\"",
                json.algorithm
            )));
        }
        let mut seed = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(json.secret_key.as_bytes(), seed.as_mut())
            .map_err(|e| malformed(&format!("secret_key: {e} (expected 64 hex characters)")))?;
        let pair = KeyPair::from_seed(*seed);
        if pair.public_key() != json.public_key {
            return Err(malformed("public_key does not belong to secret_key"));
        }
        Ok(pair)
    }
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyPair")
            .field("public_key", &self.public_key())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::OpenOptions;
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;

    fn mode_of(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn written_key_is_owner_only_and_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("validator.key");
        let pair = KeyPair::generate();
        pair.write_new(&path).unwrap();
        assert_eq!(mode_of(&path), 0o600);
        let loaded = KeyPair::load(&path).unwrap();
        assert_eq!(loaded.public_key(), pair.public_key());
    }

    #[test]
    fn never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("validator.key");
        let first = KeyPair::generate();
        first.write_new(&path).unwrap();
        let err = KeyPair::generate().write_new(&path).unwrap_err();
        assert!(matches!(err, GenesisError::AlreadyExists { .. }));
        assert_eq!(
            KeyPair::load(&path).unwrap().public_key(),
            first.public_key()
        );
    }

    #[test]
    fn refuses_group_or_world_readable_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("validator.key");
        KeyPair::generate().write_new(&path).unwrap();
        for mode in [0o640, 0o604, 0o644, 0o660] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            match KeyPair::load(&path) {
                Err(GenesisError::KeyFilePermissions { mode: found, .. }) => {
                    assert_eq!(found, mode)
                }
                other => panic!("mode {mode:o}: expected KeyFilePermissions, got {other:?}"),
            }
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
        assert!(KeyPair::load(&path).is_ok());
    }

    fn write_owner_only(path: &Path, text: &str) {
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        options
            .open(path)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }

    #[test]
    fn refuses_malformed_key_files() {
        let good = KeyPair::from_seed([3; 32]);
        let other = KeyPair::from_seed([4; 32]);
        let cases = [
            ("not json", "hello".to_owned()),
            (
                "short secret",
                format!(
                    r#"{{"algorithm":"ed25519","public_key":"{}","secret_key":"abcd"}}"#,
                    good.public_key()
                ),
            ),
            (
                "mismatched public key",
                format!(
                    r#"{{"algorithm":"ed25519","public_key":"{}","secret_key":"{}"}}"#,
                    other.public_key(),
                    hex::encode([3u8; 32])
                ),
            ),
            (
                "other algorithm",
                format!(
                    r#"{{"algorithm":"secp256k1","public_key":"{}","secret_key":"{}"}}"#,
                    good.public_key(),
                    hex::encode([3u8; 32])
                ),
            ),
        ];
        let dir = tempfile::tempdir().unwrap();
        for (i, (name, text)) in cases.iter().enumerate() {
            let path = dir.path().join(format!("{i}.key"));
            write_owner_only(&path, text);
            let err = KeyPair::load(&path).unwrap_err();
            assert!(
                matches!(err, GenesisError::MalformedKeyFile { .. }),
                "{name}: {err:?}"
            );
        }
    }

    #[test]
    fn refuses_oversized_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.key");
        write_owner_only(&path, &" ".repeat(MAX_KEY_FILE_BYTES as usize + 1));
        assert!(matches!(
            KeyPair::load(&path),
            Err(GenesisError::FileTooLarge { .. })
        ));
    }

    #[test]
    fn debug_hides_the_secret() {
        let pair = KeyPair::from_seed([5; 32]);
        let shown = format!("{pair:?}");
        assert!(!shown.contains(&hex::encode([5u8; 32])));
        assert!(shown.contains(&pair.public_key().to_string()));
    }
}
