//! 32-byte blake3 digests and the domain tags that keep one use of the hash
//! from ever colliding with another.

use std::fmt;
use std::sync::OnceLock;

use blake3::hazmat::{ContextKey, HasherExt};

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

/// A derive-key context whose key is derived once per process.
///
/// `blake3::Hasher::new_derive_key` hashes its context string on every
/// call: one compression more than the input needs, which doubles the
/// work of hashing a 64-byte Merkle node. A `Domain` keeps the derived
/// key, so each hash costs only its input's compressions. The digests are
/// exactly [`Hash::domain`]'s.
pub struct Domain {
    context: &'static str,
    key: OnceLock<ContextKey>,
}

impl Domain {
    /// The domain of `context` (a string unique to one use of the hash).
    pub const fn new(context: &'static str) -> Domain {
        Domain {
            context,
            key: OnceLock::new(),
        }
    }

    /// The context string.
    pub fn context(&self) -> &'static str {
        self.context
    }

    /// A hasher in derive-key mode under this context, to feed in parts.
    pub fn hasher(&self) -> blake3::Hasher {
        let key = self
            .key
            .get_or_init(|| blake3::hazmat::hash_derive_key_context(self.context));
        blake3::Hasher::new_from_context_key(key)
    }

    /// The digest of `bytes` under this context.
    pub fn hash(&self, bytes: &[u8]) -> Hash {
        let mut hasher = self.hasher();
        hasher.update(bytes);
        Hash(*hasher.finalize().as_bytes())
    }
}

impl fmt::Debug for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Domain({:?})", self.context)
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

    /// A domain's digests are `Hash::domain`'s, before and after its key
    /// is derived, for inputs on both sides of blake3's block and chunk sizes.
    #[test]
    fn a_domain_hashes_as_hash_domain() {
        static DOMAIN: Domain = Domain::new("cairn test domain");
        for len in [0, 1, 63, 64, 65, 80, 1023, 1024, 1025, 5000] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            assert_eq!(
                DOMAIN.hash(&bytes),
                Hash::domain("cairn test domain", &bytes)
            );
            let mut parts = DOMAIN.hasher();
            let (a, b) = bytes.split_at(len / 3);
            parts.update(a);
            parts.update(b);
            assert_eq!(Hash(*parts.finalize().as_bytes()), DOMAIN.hash(&bytes));
        }
        assert_ne!(DOMAIN.hash(b"x"), Hash::domain("cairn test domain.", b"x"));
        assert_eq!(DOMAIN.context(), "cairn test domain");
    }

    #[test]
    fn hex_round_trip_and_rejects_wrong_length() {
        let hash = Hash::domain(GENESIS_DOMAIN, b"cairn");
        assert_eq!(Hash::from_hex(&hash.to_string()).unwrap(), hash);
        assert!(Hash::from_hex("abcd").is_err());
        assert!(Hash::from_hex(&"zz".repeat(32)).is_err());
    }
}
