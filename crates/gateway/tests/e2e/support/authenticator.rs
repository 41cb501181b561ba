//! An authenticator app, for the second-factor tests: the TOTP code (RFC 6238: HMAC-SHA1,
//! six digits, 30-second steps) of a base32 secret as `/user/mfa/totp` shows it. Written here
//! from the RFCs, not taken from auth-svc, so that a mistake in one cannot agree with itself;
//! the RFC's own test vector checks it.

use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;

/// RFC 6238's time step, in seconds.
pub const STEP_SECONDS: u64 = 30;

/// The current time step.
pub fn current_step() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() / STEP_SECONDS
}

/// The six-digit code of `secret` (RFC 4648 base32, unpadded, as auth-svc shows it) at `step`.
pub fn code_at(secret: &str, step: u64) -> String {
    hotp(&base32_decode(secret), step)
}

/// RFC 4226's HOTP with six digits.
fn hotp(key: &[u8], counter: u64) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(key).unwrap();
    mac.update(&counter.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[19] & 0x0f);
    let word = u32::from_be_bytes([digest[offset], digest[offset + 1], digest[offset + 2], digest[offset + 3]]);
    format!("{:06}", (word & 0x7fff_ffff) % 1_000_000)
}

/// RFC 4648 base32 (upper case, padding optional).
fn base32_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut bits, mut count, mut out) = (0_u64, 0_u32, Vec::new());
    for byte in text.trim_end_matches('=').bytes() {
        let value = ALPHABET.iter().position(|&letter| letter == byte).unwrap_or_else(|| panic!("not base32: {text}"));
        bits = (bits << 5) | value as u64;
        count += 5;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
        }
    }
    out
}

#[test]
fn rfc_6238_test_vector() {
    // RFC 6238 appendix B, SHA-1: the key "12345678901234567890"; at T = 59 s the 8-digit code
    // is 94287082, whose last six digits are the 6-digit code.
    assert_eq!(hotp(b"12345678901234567890", 59 / STEP_SECONDS), "287082");
    // The same key in base32 (RFC 4648).
    assert_eq!(base32_decode("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"), b"12345678901234567890");
    assert_eq!(code_at("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", 1_111_111_109 / STEP_SECONDS), "081804");
}
