//! ed25519 public keys and the libp2p peer ids derived from them.

use std::fmt;
use std::str::FromStr;

use borsh::{BorshDeserialize, BorshSerialize};
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An ed25519 public key: 32 bytes, shown as 64 lowercase hex characters.
///
/// Parsing checks only the length; [`PublicKey::check`] checks that the bytes
/// are a curve point of large order, which genesis validation requires of
/// every registered key (weak keys would let anyone forge signatures that a
/// batch verifier accepts).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize)]
pub struct PublicKey(pub [u8; 32]);

/// Why 32 bytes are not a usable public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyDefect {
    /// Not the encoding of a curve point.
    NotAPoint,
    /// A point of small order.
    Weak,
}

impl PublicKey {
    /// The dalek key, if the bytes are a point of large order.
    pub fn check(&self) -> Result<VerifyingKey, KeyDefect> {
        let key = VerifyingKey::from_bytes(&self.0).map_err(|_| KeyDefect::NotAPoint)?;
        if key.is_weak() {
            return Err(KeyDefect::Weak);
        }
        Ok(key)
    }

    /// The libp2p peer id of a node whose identity is this key.
    pub fn peer_id(&self) -> PeerId {
        PeerId(*self)
    }
}

impl From<VerifyingKey> for PublicKey {
    fn from(key: VerifyingKey) -> Self {
        PublicKey(key.to_bytes())
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

impl FromStr for PublicKey {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text, &mut bytes).map_err(|e| {
            format!("invalid public key {text:?}: {e} (expected 64 hex characters)")
        })?;
        Ok(PublicKey(bytes))
    }
}

impl Serialize for PublicKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PublicKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        <String as Deserialize>::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// The libp2p identity of a node whose key is ed25519: shown as the usual
/// base58 string (`12D3KooW…`), held as the public key it is derived from.
///
/// The text form is the base58btc encoding of an identity multihash
/// (`0x00`, length `0x24`) over the protobuf encoding of the key
/// (`0x08 0x01` = type Ed25519, `0x12 0x20` = 32 data bytes, then the key),
/// exactly as libp2p derives it.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize)]
pub struct PeerId(pub PublicKey);

/// The bytes before the key in an ed25519 peer id (multihash header, protobuf header).
const PEER_ID_PREFIX: [u8; 6] = [0x00, 0x24, 0x08, 0x01, 0x12, 0x20];

impl PeerId {
    /// The public key the peer id was derived from.
    pub fn public_key(&self) -> PublicKey {
        self.0
    }

    /// The multihash bytes libp2p uses for this peer id.
    pub fn to_bytes(&self) -> [u8; 38] {
        let mut bytes = [0u8; 38];
        bytes[..6].copy_from_slice(&PEER_ID_PREFIX);
        bytes[6..].copy_from_slice(&self.0.0);
        bytes
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&bs58::encode(self.to_bytes()).into_string())
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerId({self})")
    }
}

impl FromStr for PeerId {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bytes = bs58::decode(text)
            .into_vec()
            .map_err(|e| format!("invalid peer id {text:?}: {e}"))?;
        if bytes.len() != 38 || bytes[..6] != PEER_ID_PREFIX {
            return Err(format!(
                "invalid peer id {text:?}: only ed25519 peer ids (12D3KooW…) are accepted"
            ));
        }
        let mut key = [0u8; 32];
        key.copy_from_slice(&bytes[6..]);
        Ok(PeerId(PublicKey(key)))
    }
}

impl Serialize for PeerId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PeerId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        <String as Deserialize>::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;
    use proptest::prelude::*;

    #[test]
    fn identity_point_is_weak() {
        // The neutral element encodes as y = 1.
        let mut bytes = [0u8; 32];
        bytes[0] = 1;
        assert_eq!(PublicKey(bytes).check(), Err(KeyDefect::Weak));
    }

    #[test]
    fn non_point_is_refused() {
        // y = 2 has no x on the curve.
        let mut bytes = [0u8; 32];
        bytes[0] = 2;
        assert_eq!(PublicKey(bytes).check(), Err(KeyDefect::NotAPoint));
    }

    #[test]
    fn peer_id_text_starts_like_libp2p_ed25519_ids() {
        let key = PublicKey::from(SigningKey::from_bytes(&[7; 32]).verifying_key());
        assert!(key.peer_id().to_string().starts_with("12D3KooW"));
    }

    #[test]
    fn peer_id_refuses_other_key_types() {
        // A sha256 multihash (secp256k1/RSA style peer id) is not accepted.
        let mut bytes = vec![0x12, 0x20];
        bytes.extend_from_slice(&[9; 32]);
        let text = bs58::encode(bytes).into_string();
        assert!(text.parse::<PeerId>().is_err());
    }

    proptest! {
        #[test]
        fn text_forms_round_trip(bytes in any::<[u8; 32]>()) {
            let key = PublicKey(bytes);
            prop_assert_eq!(key.to_string().parse::<PublicKey>().unwrap(), key);
            prop_assert_eq!(key.peer_id().to_string().parse::<PeerId>().unwrap(), key.peer_id());
        }
    }
}
