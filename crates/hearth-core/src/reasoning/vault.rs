//! Sealing provider keys at rest with the box's `encryption-key` (XChaCha20-Poly1305). The provider's id is the
//! associated data, so a sealed key copied onto another provider's row does not open.

use std::path::Path;

use chacha20poly1305::aead::{Aead, Generate, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use uuid::Uuid;
use zeroize::Zeroizing;

use super::ReasoningError;
use crate::auth::{Source, read_secret_file};

/// The credential name hearthd picks up from `$CREDENTIALS_DIRECTORY` (what hearth-firstboot mints).
pub const ENCRYPTION_KEY_CREDENTIAL: &str = "encryption-key";
const NONCE_BYTES: usize = 24;
const AAD_PREFIX: &str = "hearth/provider-key/v1/";

pub struct KeyVault {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for KeyVault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyVault(..)")
    }
}

impl KeyVault {
    /// Reads the 32-byte key from `path` (0400/0600, or a systemd credential).
    pub fn load(path: &Path, credential: bool) -> Result<Self, ReasoningError> {
        let source = if credential {
            Source::Credential
        } else {
            Source::TokenFile
        };
        let bytes =
            read_secret_file(path, source).map_err(|e| ReasoningError::EncryptionKey(e.to_string()))?;
        Self::from_bytes(&bytes).ok_or_else(|| {
            ReasoningError::EncryptionKey(format!(
                "{} holds {} bytes; the encryption key is 32 raw bytes (`hearth-firstboot mint` writes it)",
                path.display(),
                bytes.len()
            ))
        })
    }

    /// None unless `key` is exactly 32 bytes.
    pub fn from_bytes(key: &[u8]) -> Option<Self> {
        XChaCha20Poly1305::new_from_slice(key)
            .ok()
            .map(|cipher| Self { cipher })
    }

    /// The nonce followed by the ciphertext of `secret`, bound to `provider`.
    pub fn seal(&self, provider: Uuid, secret: &str) -> Vec<u8> {
        let nonce = XNonce::generate();
        let aad = format!("{AAD_PREFIX}{provider}");
        let ciphertext = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: secret.as_bytes(),
                    aad: aad.as_bytes(),
                },
            )
            // Only fails for messages beyond what the cipher counts (256 GiB): an API key is not one.
            .unwrap_or_default();
        let mut sealed = nonce.to_vec();
        sealed.extend(ciphertext);
        sealed
    }

    /// The secret sealed for `provider`; an error when this box's key did not seal it (or the bytes changed).
    pub fn open(&self, provider: Uuid, sealed: &[u8]) -> Result<Zeroizing<String>, ReasoningError> {
        let unreadable = || ReasoningError::KeyUnreadable;
        if sealed.len() <= NONCE_BYTES {
            return Err(unreadable());
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_BYTES);
        let nonce = XNonce::try_from(nonce).map_err(|_| unreadable())?;
        let aad = format!("{AAD_PREFIX}{provider}");
        let plain = self
            .cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: ciphertext,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| unreadable())?;
        String::from_utf8(plain)
            .map(Zeroizing::new)
            .map_err(|_| unreadable())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_key_opens_only_with_the_same_key_and_provider() {
        let vault = KeyVault::from_bytes(&[7u8; 32]).expect("32 bytes");
        let provider = Uuid::new_v4();
        let sealed = vault.seal(provider, "sk-secret-key-123");
        assert!(
            !sealed.windows(6).any(|w| w == b"secret"),
            "the key is not in the sealed bytes"
        );
        assert_eq!(
            vault.open(provider, &sealed).expect("opens").as_str(),
            "sk-secret-key-123"
        );
        assert!(
            vault.open(Uuid::new_v4(), &sealed).is_err(),
            "another provider's id"
        );
        let other = KeyVault::from_bytes(&[8u8; 32]).expect("32 bytes");
        assert!(other.open(provider, &sealed).is_err(), "another box's key");
        let mut tampered = sealed.clone();
        *tampered.last_mut().expect("bytes") ^= 1;
        assert!(vault.open(provider, &tampered).is_err(), "changed bytes");
        assert!(KeyVault::from_bytes(&[7u8; 31]).is_none());
        assert_ne!(
            vault.seal(provider, "k"),
            vault.seal(provider, "k"),
            "a fresh nonce each time"
        );
    }
}
