//! Secrets at rest: TOTP secrets sealed with an AEAD key ring from `mfa.keys`, and the keyed
//! hash recovery codes are stored as.
//!
//! **Sealing.** XChaCha20-Poly1305 with a random 24-byte nonce per seal (192 bits: random
//! nonces never collide in practice, however many secrets one key seals). The text stored is
//! `v1.<kid>.<base64url(nonce ‖ ciphertext ‖ tag)>`: the version and the key id travel with
//! it, so the ring can rotate (a new active key seals, the old ones still open what they
//! sealed) and the format can change. The caller's associated data (the user id) is
//! authenticated, so a sealed secret copied into another account's row does not open; the
//! format version and key id are authenticated with it, length-prefixed.
//!
//! **Recovery codes.** They carry about 50 bits: a plain SHA-256 of each could be reversed
//! from a database dump by trying them all. They are stored as HMAC-SHA256 under a key derived
//! from a sealing key (HMAC-SHA256 of a fixed label under the sealing key: a separate key for
//! a separate use, never the AEAD key itself), so a dump alone is worthless. Each hash is
//! stored beside the id of the key it was made under (`recovery_codes.key_id`): a rotation
//! does not invalidate the codes people printed, and a key stays in the ring while unused
//! codes hashed under it remain. Codes are hashed as given; the caller passes one canonical
//! form.

use std::{collections::BTreeMap, fmt};

use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use chacha20poly1305::{
    KeyInit, XChaCha20Poly1305, XNonce,
    aead::{Aead, Payload},
};
use hmac::{Hmac, Mac};
use hmac_sha2::Sha256;
use model::query::mfa::RecoveryCodeHash;
use rand::{TryRngCore, rand_core::OsError, rngs::OsRng};
use secrecy::{ExposeSecret, SecretSlice, SecretString};
use zeroize::Zeroizing;

use crate::config::{self, ConfigError, MfaConfig, SealingKeySource};

/// Length of a sealing key: 256 bits.
pub const KEY_BYTES: usize = 32;
/// The format of every sealed text this version writes.
const FORMAT: &str = "v1";
const NONCE_BYTES: usize = 24;
const TAG_BYTES: usize = 16;
/// What the recovery-code key is derived with; changing it invalidates every stored code.
const RECOVERY_HASH_LABEL: &[u8] = b"auth-svc mfa recovery-code hash v1";

/// Why a secret could not be sealed or opened. The messages name no secret.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("the operating system's random number generator failed")]
    Randomness(#[source] OsError),
    #[error("the AEAD refused to seal the plaintext")]
    Seal,
    #[error("not a sealed secret of a known format")]
    Malformed,
    /// Sealed under a key no longer (or not yet) in `mfa.keys`.
    #[error("sealed under key {0}, which is not in mfa.keys")]
    UnknownKey(String),
    /// Tampered with, truncated, or sealed for other associated data (another account).
    #[error("the sealed secret does not open")]
    DoesNotOpen,
}

/// The ring of sealing keys by id, one of them active. `Debug` shows the key ids only.
pub struct SealingKeys {
    keys: BTreeMap<String, SealingKey>,
    active: String,
}

struct SealingKey {
    /// Wipes its key when dropped (chacha20poly1305's `zeroize` feature).
    cipher: XChaCha20Poly1305,
    recovery_hash_key: Zeroizing<[u8; 32]>,
}

impl SealingKey {
    fn new(key: &[u8; KEY_BYTES]) -> Self {
        let mut derived = Zeroizing::new([0; 32]);
        derived.copy_from_slice(&hmac_sha256(key, RECOVERY_HASH_LABEL));
        Self { cipher: XChaCha20Poly1305::new(&(*key).into()), recovery_hash_key: derived }
    }
}

impl SealingKeys {
    /// A ring of `keys` (id, key) in which `active` seals. An error when a key id breaks the
    /// rules of [`config::check_kid`] or `active` is not among them.
    pub fn new<'a>(
        keys: impl IntoIterator<Item = (&'a str, &'a [u8; KEY_BYTES])>,
        active: &str,
    ) -> Result<Self, String> {
        let mut ring = BTreeMap::new();
        for (kid, key) in keys {
            config::check_kid(kid)?;
            ring.insert(kid.to_owned(), SealingKey::new(key));
        }
        if !ring.contains_key(active) {
            return Err(format!("names no key in mfa.keys: {active}"));
        }
        Ok(Self { keys: ring, active: active.to_owned() })
    }

    /// The ring `mfa.keys` configures, reading key files; `None` when no key is configured,
    /// which leaves the second factor unavailable (enrolment refused). There is deliberately
    /// no random per-process fallback: secrets sealed under it would be lost at the next
    /// restart. Errors are one line naming the key, never showing key material.
    pub fn from_config(mfa: &MfaConfig) -> Result<Option<Self>, ConfigError> {
        let Some(active) = &mfa.active_key else { return Ok(None) };
        let mut loaded = Vec::with_capacity(mfa.keys.len());
        for (kid, key) in &mfa.keys {
            let name = format!("mfa.keys.{kid}");
            let source = key.source().map_err(|why| config::invalid(&name, why))?;
            let bytes = load_key(source).map_err(|why| config::invalid(&name, &why))?;
            loaded.push((kid.as_str(), bytes));
        }
        Self::new(loaded.iter().map(|(kid, bytes)| (*kid, &**bytes)), active)
            .map(Some)
            .map_err(|why| config::invalid("mfa.active_key", &why))
    }

    /// The id of the key that seals and hashes from now on.
    pub fn active_key_id(&self) -> &str {
        &self.active
    }

    /// `plaintext` sealed under the active key, bound to `aad`; the text to store.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<String, SealError> {
        let key = self.active_key();
        let mut nonce = [0; NONCE_BYTES];
        OsRng.try_fill_bytes(&mut nonce).map_err(SealError::Randomness)?;
        let aad = bound_aad(&self.active, aad);
        let ciphertext = key
            .cipher
            .encrypt(&XNonce::from(nonce), Payload { msg: plaintext, aad: &aad })
            .map_err(|_| SealError::Seal)?;
        let mut payload = Vec::with_capacity(NONCE_BYTES + ciphertext.len());
        payload.extend_from_slice(&nonce);
        payload.extend_from_slice(&ciphertext);
        Ok(format!("{FORMAT}.{}.{}", self.active, URL_SAFE_NO_PAD.encode(payload)))
    }

    /// Opens what [`seal`](Self::seal) made with the same `aad`, under whichever key of the
    /// ring its key id names.
    pub fn open(&self, sealed: &str, aad: &[u8]) -> Result<SecretSlice<u8>, SealError> {
        // The key id may contain dots; base64url never does.
        let (kid, payload) = sealed
            .strip_prefix(FORMAT)
            .and_then(|rest| rest.strip_prefix('.'))
            .and_then(|rest| rest.rsplit_once('.'))
            .ok_or(SealError::Malformed)?;
        let key = self.keys.get(kid).ok_or_else(|| SealError::UnknownKey(kid.to_owned()))?;
        let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| SealError::Malformed)?;
        if payload.len() < NONCE_BYTES + TAG_BYTES {
            return Err(SealError::Malformed);
        }
        let (nonce, ciphertext) = payload.split_at(NONCE_BYTES);
        let nonce: [u8; NONCE_BYTES] = nonce.try_into().map_err(|_| SealError::Malformed)?;
        let aad = bound_aad(kid, aad);
        key.cipher
            .decrypt(&XNonce::from(nonce), Payload { msg: ciphertext, aad: &aad })
            .map(SecretSlice::from)
            .map_err(|_| SealError::DoesNotOpen)
    }

    /// How a new recovery code is stored: its keyed hash under the active key, and that key's id.
    pub fn recovery_code_hash(&self, code: &str) -> RecoveryCodeHash {
        recovery_code_hash(&self.active, self.active_key(), code)
    }

    /// The hashes a stored recovery code equal to `code` may have: one under each key of the
    /// ring, as it may have been made before a rotation.
    pub fn recovery_code_candidates(&self, code: &str) -> Vec<RecoveryCodeHash> {
        self.keys.iter().map(|(kid, key)| recovery_code_hash(kid, key, code)).collect()
    }

    fn active_key(&self) -> &SealingKey {
        // `new` is the one constructor, and it refuses an active id outside the ring.
        #[allow(clippy::expect_used, reason = "the active key id is checked to be in the ring")]
        self.keys.get(&self.active).expect("active key")
    }
}

impl fmt::Debug for SealingKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealingKeys").field("keys", &self.keys.keys()).field("active", &self.active).finish()
    }
}

/// The associated data the AEAD authenticates: the format, the key id (length-prefixed, so no
/// key id and caller data can run into each other), then the caller's.
fn bound_aad(kid: &str, aad: &[u8]) -> Vec<u8> {
    // Key ids are at most 64 ASCII characters (`SealingKeys::new` checks); none is longer.
    let kid_length = u8::try_from(kid.len()).unwrap_or(u8::MAX);
    [FORMAT.as_bytes(), &[kid_length], kid.as_bytes(), aad].concat()
}

fn recovery_code_hash(kid: &str, key: &SealingKey, code: &str) -> RecoveryCodeHash {
    let mac = hmac_sha256(&*key.recovery_hash_key, code.as_bytes());
    let code_hash = mac.iter().map(|byte| format!("{byte:02x}")).collect();
    RecoveryCodeHash { key_id: kid.to_owned(), code_hash }
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    #[allow(clippy::expect_used, reason = "HMAC takes keys of any length; new_from_slice never fails")]
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC key");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// A key's 32 bytes from its base64 text (surrounding whitespace, a file's newline, ignored).
fn load_key(source: SealingKeySource<'_>) -> Result<Zeroizing<[u8; KEY_BYTES]>, String> {
    let text = match source {
        SealingKeySource::File(path) => std::fs::read_to_string(path)
            .map(SecretString::from)
            .map_err(|err| format!("key_file: cannot read {}: {err}", path.display()))?,
        SealingKeySource::Inline(text) => text.clone(),
    };
    let wrong = || format!("must be {KEY_BYTES} bytes in base64 (try `openssl rand -base64 {KEY_BYTES}`)");
    let bytes = Zeroizing::new(STANDARD.decode(text.expose_secret().trim()).map_err(|_| wrong())?);
    let mut key = Zeroizing::new([0; KEY_BYTES]);
    if bytes.len() != KEY_BYTES {
        return Err(wrong());
    }
    key.copy_from_slice(&bytes);
    Ok(key)
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closures return figment::Error
mod tests {
    use super::*;

    const OLD: [u8; KEY_BYTES] = [1; KEY_BYTES];
    const NEW: [u8; KEY_BYTES] = [2; KEY_BYTES];

    fn ring(active: &str) -> SealingKeys {
        SealingKeys::new([("old", &OLD), ("new", &NEW)], active).unwrap()
    }

    fn opened(keys: &SealingKeys, sealed: &str, aad: &[u8]) -> Result<Vec<u8>, SealError> {
        keys.open(sealed, aad).map(|secret| secret.expose_secret().to_vec())
    }

    #[test]
    fn a_sealed_secret_opens_with_its_associated_data_and_names_its_key() {
        let keys = ring("new");
        let sealed = keys.seal(b"twenty bytes secret!", b"42").unwrap();
        let (prefix, payload) = sealed.rsplit_once('.').unwrap();
        assert_eq!(prefix, "v1.new");
        // Nonce, ciphertext and tag, unpadded base64url; it fits `user_totp.secret_sealed`.
        assert_eq!(URL_SAFE_NO_PAD.decode(payload).unwrap().len(), NONCE_BYTES + 20 + TAG_BYTES);
        assert!(format!("v1.{}.{payload}", "k".repeat(64)).len() <= 256, "{sealed}");
        assert!(!sealed.contains("twenty"));
        assert_eq!(opened(&keys, &sealed, b"42").unwrap(), b"twenty bytes secret!");
        // A fresh nonce each time: the same secret never seals to the same text.
        assert_ne!(keys.seal(b"twenty bytes secret!", b"42").unwrap(), sealed);
    }

    #[test]
    fn other_associated_data_does_not_open_it() {
        let keys = ring("new");
        let sealed = keys.seal(b"secret", b"42").unwrap();
        for other in [&b"43"[..], b"420", b"4", b""] {
            assert!(matches!(keys.open(&sealed, other), Err(SealError::DoesNotOpen)), "{other:?}");
        }
    }

    #[test]
    fn a_tampered_or_malformed_text_does_not_open() {
        let keys = ring("new");
        let sealed = keys.seal(b"secret", b"42").unwrap();
        // Every character of the payload, changed.
        let start = sealed.rfind('.').unwrap() + 1;
        for at in start..sealed.len() {
            let mut bytes = sealed.clone().into_bytes();
            bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
            let tampered = String::from_utf8(bytes).unwrap();
            let result = keys.open(&tampered, b"42");
            assert!(matches!(result, Err(SealError::DoesNotOpen | SealError::Malformed)), "at {at}: {result:?}");
        }
        // Relabelled to the other key of the ring: that key does not open it.
        let relabelled = sealed.replacen("v1.new.", "v1.old.", 1);
        assert!(matches!(keys.open(&relabelled, b"42"), Err(SealError::DoesNotOpen)));
        let truncated = &sealed[..sealed.len() - 4];
        assert!(keys.open(truncated, b"42").is_err());
        for malformed in ["", "v1", "v1.new", "v2.new.AAAA", "new.AAAA", "v1.new.AAAA", "v1.new.***"] {
            assert!(matches!(keys.open(malformed, b"42"), Err(SealError::Malformed)), "{malformed:?}");
        }
    }

    #[test]
    fn an_unknown_key_id_is_named() {
        let keys = ring("new");
        let sealed = keys.seal(b"secret", b"42").unwrap().replacen("new", "gone", 1);
        let err = keys.open(&sealed, b"42").unwrap_err();
        assert!(matches!(&err, SealError::UnknownKey(kid) if kid == "gone"), "{err:?}");
        assert_eq!(err.to_string(), "sealed under key gone, which is not in mfa.keys");
    }

    #[test]
    fn after_a_rotation_the_new_key_seals_and_the_old_one_still_opens() {
        let before = ring("old");
        let sealed_before = before.seal(b"old secret", b"7").unwrap();
        assert!(sealed_before.starts_with("v1.old."));

        let after = ring("new");
        assert_eq!(after.active_key_id(), "new");
        assert!(after.seal(b"new secret", b"7").unwrap().starts_with("v1.new."));
        assert_eq!(opened(&after, &sealed_before, b"7").unwrap(), b"old secret");

        // Once the old key leaves the ring, what it sealed is named, not silently lost.
        let retired = SealingKeys::new([("new", &NEW)], "new").unwrap();
        assert!(matches!(retired.open(&sealed_before, b"7"), Err(SealError::UnknownKey(_))));
        assert!(SealingKeys::new([("new", &NEW)], "old").is_err());
        assert!(SealingKeys::new([("a b", &NEW)], "a b").is_err(), "key ids follow check_kid");
    }

    #[test]
    fn a_key_id_may_contain_dots() {
        let keys = SealingKeys::new([("2026.07.a", &NEW)], "2026.07.a").unwrap();
        let sealed = keys.seal(b"secret", b"1").unwrap();
        assert!(sealed.starts_with("v1.2026.07.a."), "{sealed}");
        assert_eq!(opened(&keys, &sealed, b"1").unwrap(), b"secret");
    }

    #[test]
    fn recovery_codes_hash_under_a_key_of_the_ring_and_survive_its_rotation() {
        let before = ring("old");
        let stored = before.recovery_code_hash("abcde-fghij");
        assert_eq!(stored.key_id, "old");
        assert_eq!(stored.code_hash.len(), 64);
        assert!(stored.code_hash.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')));
        // Keyed: not the plain SHA-256 of the code, and another key gives another hash.
        let plain: String =
            <Sha256 as hmac_sha2::Digest>::digest(b"abcde-fghij").iter().map(|byte| format!("{byte:02x}")).collect();
        assert_ne!(stored.code_hash, plain);
        let after = ring("new");
        assert_ne!(after.recovery_code_hash("abcde-fghij").code_hash, stored.code_hash);
        assert_eq!(before.recovery_code_hash("abcde-fghij").code_hash, stored.code_hash, "deterministic");
        assert_ne!(before.recovery_code_hash("abcde-fghik").code_hash, stored.code_hash);

        // After the rotation, the candidates of the same code include the stored one.
        let candidates = after.recovery_code_candidates("abcde-fghij");
        assert_eq!(candidates.iter().map(|c| c.key_id.as_str()).collect::<Vec<_>>(), ["new", "old"]);
        assert!(candidates.iter().any(|c| c.key_id == stored.key_id && c.code_hash == stored.code_hash));
        // A derived key, not the AEAD key itself.
        assert_ne!(
            stored.code_hash,
            hmac_sha256(&OLD, b"abcde-fghij").iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
    }

    #[test]
    fn debug_shows_key_ids_only() {
        let shown = format!("{:?}", ring("new"));
        assert_eq!(shown, r#"SealingKeys { keys: ["new", "old"], active: "new" }"#);
    }

    #[test]
    fn the_ring_comes_from_config_keys_inline_or_in_files() {
        let old_b64 = STANDARD.encode(OLD);
        figment::Jail::expect_with(|jail| {
            let none = crate::Config::load(None).map_err(|e| e.to_string())?;
            assert!(SealingKeys::from_config(&none.mfa).map_err(|e| e.to_string())?.is_none(), "no keys, no MFA");

            jail.create_file("old.key", &format!("{old_b64}\n"))?;
            jail.set_env("AUTH_SVC__MFA__KEYS__OLD__KEY_FILE", "old.key");
            jail.set_env("AUTH_SVC__MFA__KEYS__NEW__KEY", STANDARD.encode(NEW));
            jail.set_env("AUTH_SVC__MFA__ACTIVE_KEY", "new");
            let config = crate::Config::load(None).map_err(|e| e.to_string())?;
            let keys = SealingKeys::from_config(&config.mfa).map_err(|e| e.to_string())?.ok_or("a ring")?;
            assert_eq!(keys.active_key_id(), "new");
            // The file's key is the one `ring` seals with under that id.
            let sealed = ring("old").seal(b"secret", b"1").map_err(|e| e.to_string())?;
            assert_eq!(opened(&keys, &sealed, b"1").map_err(|e| e.to_string())?, b"secret");
            Ok(())
        });
    }

    #[test]
    fn bad_key_material_is_refused_naming_the_key_and_showing_none_of_it() {
        for (value, why) in [
            ("not base64!", "base64"),
            (&*STANDARD.encode([3; 31]), "32 bytes"),
            (&*STANDARD.encode([3; 33]), "32 bytes"),
        ] {
            figment::Jail::expect_with(|jail| {
                jail.set_env("AUTH_SVC__MFA__KEYS__K1__KEY", value);
                jail.set_env("AUTH_SVC__MFA__ACTIVE_KEY", "k1");
                let config = crate::Config::load(None).map_err(|e| e.to_string())?;
                let err = SealingKeys::from_config(&config.mfa).err().ok_or("refused")?.to_string();
                assert!(err.contains("mfa.keys.k1") && err.contains(why), "{value}: {err}");
                assert!(!err.contains(value), "{err}");
                Ok(())
            });
        }
        figment::Jail::expect_with(|jail| {
            jail.set_env("AUTH_SVC__MFA__KEYS__K1__KEY_FILE", "missing.key");
            jail.set_env("AUTH_SVC__MFA__ACTIVE_KEY", "k1");
            let config = crate::Config::load(None).map_err(|e| e.to_string())?;
            let err = SealingKeys::from_config(&config.mfa).err().ok_or("refused")?.to_string();
            assert!(err.contains("mfa.keys.k1") && err.contains("missing.key"), "{err}");
            Ok(())
        });
    }
}
