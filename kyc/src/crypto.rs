//! The master key (key-encryption key from `COMPUTEGATE_MASTER_KEY`) and authenticated
//! encryption of secrets at rest with it: AES-256-GCM, a fresh random 96-bit nonce per message
//! prefixed to the ciphertext, and associated data that binds a ciphertext to the row it
//! belongs to (so a sealed value copied into another row fails to open).
//!
//! Also keyed hashing under a subkey of the master key ([`KeyedHasher`]: linking attributes,
//! incident indicators) and the crate's source of randomness (`random_bytes`), the operating
//! system's CSPRNG.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use hmac::{Hmac, KeyInit as HmacKeyInit, Mac as _};
use sha2::Sha256;

/// Length of the master key in bytes (AES-256).
pub const MASTER_KEY_LEN: usize = 32;

/// Length of the nonce prefixed to every sealed value.
const NONCE_LEN: usize = 12;

/// Length of the GCM authentication tag appended by the cipher.
const TAG_LEN: usize = 16;

/// The key-encryption key. Never printed: `Debug` shows `MasterKey(..)` and there is no
/// `Display`.
#[derive(Clone)]
pub struct MasterKey {
    cipher: Aes256Gcm,
    /// Kept only so [`MasterKey::to_base64`] can print a freshly generated key once (demo).
    bytes: [u8; MASTER_KEY_LEN],
}

/// Why a master key was refused or a sealed value did not open.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// The text is not base64 (standard or URL-safe alphabet, padding optional).
    #[error("master key is not valid base64")]
    KeyNotBase64,
    /// The key decoded to the wrong number of bytes.
    #[error("master key must decode to {MASTER_KEY_LEN} bytes, got {got}")]
    KeyWrongLength {
        /// How many bytes it decoded to.
        got: usize,
    },
    /// The sealed value is shorter than a nonce and a tag.
    #[error("sealed value is truncated")]
    SealedTooShort,
    /// Authentication failed: wrong key, wrong associated data, or tampered ciphertext.
    #[error("sealed value failed authentication (wrong key or tampered)")]
    OpenFailed,
    /// Encryption failed (only for inputs beyond GCM's 64 GiB limit).
    #[error("encryption failed")]
    SealFailed,
    /// The operating system's random number generator failed.
    #[error("the system random number generator failed")]
    Rng,
}

// === impl MasterKey ===

impl MasterKey {
    /// Parses a 32-byte key from base64, standard or URL-safe alphabet, with or without
    /// padding; surrounding whitespace is ignored.
    pub fn from_base64(text: &str) -> Result<MasterKey, CryptoError> {
        let trimmed = text.trim().trim_end_matches('=');
        let decoded = decode_unpadded(trimmed).ok_or(CryptoError::KeyNotBase64)?;
        let bytes: [u8; MASTER_KEY_LEN] = decoded
            .as_slice()
            .try_into()
            .map_err(|_| CryptoError::KeyWrongLength { got: decoded.len() })?;
        Ok(MasterKey::from_bytes(bytes))
    }

    /// A fresh random key (for `computegate demo` and tests).
    pub fn generate() -> Result<MasterKey, CryptoError> {
        Ok(MasterKey::from_bytes(random_bytes::<MASTER_KEY_LEN>()?))
    }

    /// The key as standard base64, for printing a generated key exactly once.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.bytes)
    }

    /// Encrypts `plaintext`, binding it to `aad`. Output: nonce ‖ ciphertext ‖ tag.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let nonce_bytes = random_bytes::<NONCE_LEN>()?;
        let nonce = Nonce::from(nonce_bytes);
        let ciphertext = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|_| CryptoError::SealFailed)?;
        let mut out = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&ciphertext);
        Ok(out)
    }

    /// Decrypts a value made by [`MasterKey::seal`] with the same `aad`.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if sealed.len() < NONCE_LEN + TAG_LEN {
            return Err(CryptoError::SealedTooShort);
        }
        let (nonce_bytes, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_from(nonce_bytes).map_err(|_| CryptoError::SealedTooShort)?;
        self.cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .map_err(|_| CryptoError::OpenFailed)
    }

    /// A 32-byte subkey for one purpose, so the master key itself never keys anything but
    /// AES-GCM: HKDF-Expand (RFC 5869 §2.3) with the master key as the pseudorandom key (it is
    /// uniformly random already, so the extract step adds nothing) and `label` as the info,
    /// one block: `HMAC-SHA256(master, label ‖ 0x01)`. Distinct labels give independent keys.
    pub fn derive_subkey(&self, label: &[u8]) -> [u8; 32] {
        // Cannot fail: HMAC accepts a key of any length.
        let mut mac = <Hmac<Sha256> as HmacKeyInit>::new_from_slice(&self.bytes)
            .expect("HMAC takes any key length");
        mac.update(label);
        mac.update(&[1]);
        mac.finalize().into_bytes().into()
    }

    fn from_bytes(bytes: [u8; MASTER_KEY_LEN]) -> MasterKey {
        let key = Key::<Aes256Gcm>::from(bytes);
        MasterKey {
            cipher: Aes256Gcm::new(&key),
            bytes,
        }
    }
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

/// HMAC-SHA256 under a subkey of the master key, over a domain and a value
/// (`domain ‖ 0x00 ‖ value`): the form in which values that must be compared but not read
/// (linking attributes, incident indicators) are stored. The domain separates kinds of value,
/// so one spelled like another never matches it. Never printed.
#[derive(Clone)]
pub struct KeyedHasher([u8; 32]);

// === impl KeyedHasher ===

impl KeyedHasher {
    /// The hasher keyed with the subkey of `master` for `label` (see
    /// [`MasterKey::derive_subkey`]; changing a label re-keys every hash made with it).
    pub fn derive(master: &MasterKey, label: &[u8]) -> KeyedHasher {
        KeyedHasher(master.derive_subkey(label))
    }

    /// `HMAC-SHA256(key, domain ‖ 0x00 ‖ value)`.
    pub fn digest(&self, domain: &str, value: &str) -> [u8; 32] {
        // Cannot fail: HMAC accepts a key of any length.
        let mut mac = <Hmac<Sha256> as HmacKeyInit>::new_from_slice(&self.0)
            .expect("HMAC takes any key length");
        mac.update(domain.as_bytes());
        mac.update(&[0]);
        mac.update(value.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

impl std::fmt::Debug for KeyedHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyedHasher(..)")
    }
}

/// Fills an array from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], CryptoError> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).map_err(|_| CryptoError::Rng)?;
    Ok(buf)
}

/// Decodes unpadded base64 in either alphabet. Mixed alphabets are refused.
fn decode_unpadded(text: &str) -> Option<Vec<u8>> {
    STANDARD_NO_PAD
        .decode(text)
        .or_else(|_| URL_SAFE_NO_PAD.decode(text))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE;

    #[test]
    fn parses_both_alphabets_with_and_without_padding() {
        let bytes: Vec<u8> = (0..32).map(|i| (i * 8 + 3) as u8).collect(); // yields + and / chars
        let std = STANDARD.encode(&bytes);
        let url = URL_SAFE.encode(&bytes);
        assert_ne!(std, url);
        for text in [
            std.clone(),
            url.clone(),
            std.trim_end_matches('=').to_owned(),
            format!("  {url}\n"),
        ] {
            let key = MasterKey::from_base64(&text).unwrap();
            assert_eq!(key.bytes.as_slice(), bytes.as_slice());
        }
    }

    #[test]
    fn precise_errors() {
        assert!(matches!(
            MasterKey::from_base64("not base64!"),
            Err(CryptoError::KeyNotBase64)
        ));
        assert!(matches!(
            MasterKey::from_base64(&STANDARD.encode([0u8; 16])),
            Err(CryptoError::KeyWrongLength { got: 16 })
        ));
        assert!(matches!(
            MasterKey::from_base64(""),
            Err(CryptoError::KeyWrongLength { got: 0 })
        ));
    }

    #[test]
    fn debug_hides_the_key() {
        let key = MasterKey::generate().unwrap();
        assert_eq!(format!("{key:?}"), "MasterKey(..)");
        assert!(!format!("{key:?}").contains(&key.to_base64()));
    }

    #[test]
    fn subkeys_follow_hkdf_expand_and_differ_by_label() {
        // RFC 5869 appendix A.1 (test case 1): its PRK as the master key, its info; the first
        // 32 bytes of its OKM.
        let prk = hex::decode("077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5")
            .unwrap();
        let key = MasterKey::from_bytes(prk.as_slice().try_into().unwrap());
        let info = hex::decode("f0f1f2f3f4f5f6f7f8f9").unwrap();
        assert_eq!(
            hex::encode(key.derive_subkey(&info)),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
        );
        assert_ne!(key.derive_subkey(b"a"), key.derive_subkey(b"b"));
        let other = MasterKey::generate().unwrap();
        assert_ne!(key.derive_subkey(b"a"), other.derive_subkey(b"a"));
    }

    #[test]
    fn seal_open_round_trip_and_binding() {
        let key = MasterKey::generate().unwrap();
        let sealed = key.seal(b"secret", b"row-1").unwrap();
        assert_eq!(sealed.len(), NONCE_LEN + 6 + TAG_LEN);
        assert_eq!(key.open(&sealed, b"row-1").unwrap(), b"secret");
        assert!(matches!(
            key.open(&sealed, b"row-2"),
            Err(CryptoError::OpenFailed)
        ));
        let other = MasterKey::generate().unwrap();
        assert!(matches!(
            other.open(&sealed, b"row-1"),
            Err(CryptoError::OpenFailed)
        ));
        let mut tampered = sealed.clone();
        tampered[NONCE_LEN] ^= 1;
        assert!(matches!(
            key.open(&tampered, b"row-1"),
            Err(CryptoError::OpenFailed)
        ));
        assert!(matches!(
            key.open(&sealed[..20], b"row-1"),
            Err(CryptoError::SealedTooShort)
        ));
        // Fresh nonce every time.
        assert_ne!(key.seal(b"secret", b"row-1").unwrap(), sealed);
    }
}
