//! 32-byte blake3 digests and the domain tags that keep one use of the hash
//! from ever colliding with another.

use std::fmt;

use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Domain of the genesis document hash, the chain's identity.
pub const GENESIS_DOMAIN: &str = "cairn 2026-11 genesis document v1";

/// A blake3 digest. Shown and parsed as 64 lowercase hex characters.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    /// blake3 in derive-key mode: `domain` is a context string unique to one use.
    pub fn domain(domain: &str, bytes: &[u8]) -> Hash {
        let mut hasher = blake3::Hasher::new_derive_key(domain);
        hasher.update(bytes);
        Hash(*hasher.finalize().as_bytes())
    }

    /// The digest's bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Parses 64 hex characters.
    pub fn from_hex(text: &str) -> Result<Hash, hex::FromHexError> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text, &mut bytes)?;
        Ok(Hash(bytes))
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({self})")
    }
}

impl Serialize for Hash {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Hash {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <String as Deserialize>::deserialize(deserializer)?;
        Hash::from_hex(&text)
            .map_err(|e| serde::de::Error::custom(format!("invalid hash {text:?}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_separate_equal_inputs() {
        assert_ne!(Hash::domain("a", b"x"), Hash::domain("b", b"x"));
        assert_eq!(Hash::domain("a", b"x"), Hash::domain("a", b"x"));
    }

    #[test]
    fn hex_round_trip_and_rejects_wrong_length() {
        let hash = Hash::domain(GENESIS_DOMAIN, b"cairn");
        assert_eq!(Hash::from_hex(&hash.to_string()).unwrap(), hash);
        assert!(Hash::from_hex("abcd").is_err());
        assert!(Hash::from_hex(&"zz".repeat(32)).is_err());
    }
}
