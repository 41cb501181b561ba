//! TOTP (RFC 6238) as every authenticator app computes it by default: HMAC-SHA1, 6 digits,
//! 30-second steps counted from the Unix epoch. Also the `otpauth://` URI (the Key Uri Format
//! authenticator apps read) and its QR code, which hand a new secret to an app.
//!
//! A few lines on RustCrypto's `hmac` and `sha1` rather than a TOTP crate: the algorithm is
//! small, and the rules around it (the window, the replay guard, constant-time comparison)
//! are ours to state. The secret lives in memory only as a [`TotpSecret`]; at rest it is
//! sealed (`auth::sealed`).

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use rand::{TryRngCore, rand_core::OsError, rngs::OsRng};
use sha1::Sha1;
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};
use zeroize::Zeroize;

/// Length of a secret: 160 bits, the HMAC-SHA1 output size RFC 4226 recommends.
pub const SECRET_BYTES: usize = 20;
/// Digits of a code.
pub const DIGITS: u32 = 6;
/// Seconds per time step.
pub const STEP_SECONDS: u64 = 30;
/// Steps either side of the current one whose codes are accepted too: a phone clock up to
/// 30 s off, or a code typed just as it changed (RFC 6238 section 5.2 recommends one).
pub const WINDOW_STEPS: u64 = 1;

/// The time step of `unix_seconds`.
pub fn step_at(unix_seconds: u64) -> u64 {
    unix_seconds / STEP_SECONDS
}

/// An authenticator's shared secret. Its `Debug` shows no byte of it, and its memory is wiped
/// when it is dropped.
pub struct TotpSecret([u8; SECRET_BYTES]);

impl TotpSecret {
    /// A fresh secret from the operating system's random number generator.
    pub fn generate() -> Result<Self, OsError> {
        let mut bytes = [0; SECRET_BYTES];
        OsRng.try_fill_bytes(&mut bytes)?;
        Ok(Self(bytes))
    }

    /// The secret of these bytes (an opened sealed secret); `None` unless there are exactly
    /// [`SECRET_BYTES`].
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    /// The raw secret, for sealing it. Never for a log or a response.
    pub fn expose_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The secret as people type it into an app: RFC 4648 base32, no padding (32 characters).
    pub fn to_base32(&self) -> String {
        base32(&self.0)
    }

    /// The `otpauth://totp/` URI of this secret (Key Uri Format): the label `issuer:account`
    /// and the `issuer` parameter percent-encoded (RFC 3986, everything but unreserved
    /// characters, so a space is `%20` and a colon in either part cannot split the label), and
    /// the parameters stated even where they are the defaults, for apps that assume others.
    pub fn otpauth_uri(&self, issuer: &str, account_name: &str) -> String {
        let issuer = utf8_percent_encode(issuer, URI_COMPONENT);
        let account_name = utf8_percent_encode(account_name, URI_COMPONENT);
        let secret = self.to_base32();
        format!(
            "otpauth://totp/{issuer}:{account_name}?secret={secret}&issuer={issuer}\
             &algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}"
        )
    }

    /// The code of time step `step`.
    pub fn code_at(&self, step: u64) -> u32 {
        truncated_code(&self.0, step, DIGITS)
    }

    /// Checks `code` at `now_unix` (seconds). It must be exactly six ASCII digits and the code
    /// of the current step or one within [`WINDOW_STEPS`] of it, and that step must be later
    /// than `last_used_step`: a code once accepted, or one older than it, never is again
    /// (replay). Returns the matched step, for the caller to store as the new last used step
    /// (the latest one, should two steps share a code). Every step of the window is compared,
    /// in constant time, whichever matches.
    pub fn verify(&self, code: &str, now_unix: u64, last_used_step: Option<u64>) -> Option<u64> {
        let given = parse_code(code)?;
        let current = step_at(now_unix);
        let (mut found, mut matched) = (Choice::from(0), 0);
        for step in current.saturating_sub(WINDOW_STEPS)..=current.saturating_add(WINDOW_STEPS) {
            if last_used_step.is_some_and(|last| step <= last) {
                continue;
            }
            let hit = self.code_at(step).ct_eq(&given);
            matched = u64::conditional_select(&matched, &step, hit);
            found |= hit;
        }
        bool::from(found).then_some(matched)
    }
}

impl Drop for TotpSecret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret([REDACTED])")
    }
}

/// The value of a code as typed: exactly [`DIGITS`] ASCII digits, nothing around them.
fn parse_code(code: &str) -> Option<u32> {
    let digits = code.as_bytes();
    if digits.len() != DIGITS as usize || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(digits.iter().fold(0, |value, digit| value * 10 + u32::from(digit - b'0')))
}

/// HOTP (RFC 4226 section 5.3) of `counter` with `digits` digits: HMAC-SHA1 of the counter's
/// 8 big-endian bytes, 31 bits taken at the offset its last nibble names, modulo 10^digits.
/// RFC 6238's test vectors have 8 digits, hence the parameter.
fn truncated_code(secret: &[u8; SECRET_BYTES], counter: u64, digits: u32) -> u32 {
    #[allow(clippy::expect_used, reason = "HMAC takes keys of any length; new_from_slice never fails")]
    let mut mac = Hmac::<Sha1>::new_from_slice(secret).expect("HMAC key");
    mac.update(&counter.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[digest.len() - 1] & 0x0f);
    let word = [digest[offset], digest[offset + 1], digest[offset + 2], digest[offset + 3]];
    (u32::from_be_bytes(word) & 0x7fff_ffff) % 10u32.pow(digits)
}

/// RFC 4648 base32 of `bytes`, without the `=` padding authenticator apps do not want.
fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut text = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u16, 0u32);
    for &byte in bytes {
        buffer = (buffer << 8) | u16::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            text.push(char::from(ALPHABET[usize::from((buffer >> bits) & 0x1f)]));
        }
    }
    if bits > 0 {
        text.push(char::from(ALPHABET[usize::from((buffer << (5 - bits)) & 0x1f)]));
    }
    text
}

/// What RFC 3986 leaves unencoded in a path segment or query value: its unreserved characters.
const URI_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// The otpauth URI could not be drawn as a QR code: it is longer than one can hold.
#[derive(Debug, thiserror::Error)]
#[error("the otpauth URI is too long for a QR code")]
pub struct UriTooLongForQr;

/// `uri` as a QR code image, in SVG: black modules on white, with the quiet zone scanners
/// need, at least 256 pixels square. The URI holds the secret, and so does the image.
pub fn qr_svg(uri: &str) -> Result<String, UriTooLongForQr> {
    let code = qrcode::QrCode::new(uri.as_bytes()).map_err(|_| UriTooLongForQr)?;
    Ok(code.render::<qrcode::render::svg::Color>().min_dimensions(256, 256).quiet_zone(true).build())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SHA1 secret of RFC 6238 Appendix B: the ASCII of "12345678901234567890".
    fn rfc_secret() -> TotpSecret {
        TotpSecret::from_bytes(b"12345678901234567890").unwrap()
    }

    /// RFC 6238 Appendix B, SHA1 rows: Unix time and the 8-digit code.
    const RFC_6238_SHA1: [(u64, u32); 6] = [
        (59, 94_287_082),
        (1_111_111_109, 7_081_804),
        (1_111_111_111, 14_050_471),
        (1_234_567_890, 89_005_924),
        (2_000_000_000, 69_279_037),
        (20_000_000_000, 65_353_130),
    ];

    #[test]
    fn the_rfc_6238_sha1_vectors_come_out_with_8_digits_and_their_last_6_as_codes() {
        let secret = rfc_secret();
        for (time, eight_digits) in RFC_6238_SHA1 {
            assert_eq!(truncated_code(&secret.0, step_at(time), 8), eight_digits, "T = {time}");
            assert_eq!(secret.code_at(step_at(time)), eight_digits % 1_000_000, "T = {time}");
        }
        // The RFC's step column (T, hex) for the first and last rows.
        assert_eq!((step_at(59), step_at(20_000_000_000)), (0x1, 0x27bc_86aa));
    }

    #[test]
    fn the_current_code_and_its_neighbours_are_accepted_and_return_their_step() {
        let secret = rfc_secret();
        let now = 1_234_567_890;
        let current = step_at(now);
        let code = |step: u64| format!("{:06}", secret.code_at(step));
        assert_eq!(code(current), "005924", "leading zeros are part of the code");
        assert_eq!(secret.verify(&code(current), now, None), Some(current));
        assert_eq!(secret.verify(&code(current - 1), now, None), Some(current - 1));
        assert_eq!(secret.verify(&code(current + 1), now, None), Some(current + 1));
        assert_eq!(secret.verify(&code(current - 2), now, None), None);
        assert_eq!(secret.verify(&code(current + 2), now, None), None);
        // The window follows the clock: the step's last second and the next step's first.
        let last_second = (current + 1) * STEP_SECONDS - 1;
        assert_eq!(secret.verify(&code(current - 1), last_second, None), Some(current - 1));
        assert_eq!(secret.verify(&code(current - 1), last_second + 1, None), None);
        // Another secret's code is not this one's.
        let other = TotpSecret::from_bytes(b"abcdefghijabcdefghij").unwrap();
        let other_code = format!("{:06}", other.code_at(current));
        assert_ne!(other_code, code(current));
        assert_eq!(secret.verify(&other_code, now, None), None);
    }

    #[test]
    fn a_code_is_accepted_once_and_no_older_code_after_it() {
        let secret = rfc_secret();
        let now = 2_000_000_000;
        let current = step_at(now);
        let code = |step: u64| format!("{:06}", secret.code_at(step));
        let used = secret.verify(&code(current), now, None).unwrap();
        // The same code again: refused, however often.
        assert_eq!(secret.verify(&code(current), now, Some(used)), None);
        assert_eq!(secret.verify(&code(current), now + 1, Some(used)), None);
        // An older code still inside the window: refused too.
        assert_eq!(secret.verify(&code(current - 1), now, Some(used)), None);
        // The next step's code is new.
        assert_eq!(secret.verify(&code(current + 1), now, Some(used)), Some(current + 1));
        assert_eq!(secret.verify(&code(current + 1), now + STEP_SECONDS, Some(used)), Some(current + 1));
        // A last step from the previous step lets the current code through, not the old one.
        assert_eq!(secret.verify(&code(current - 1), now, Some(current - 1)), None);
        assert_eq!(secret.verify(&code(current), now, Some(current - 1)), Some(current));
    }

    #[test]
    fn only_exactly_six_ascii_digits_are_a_code() {
        let secret = rfc_secret();
        let now = 59;
        let good = format!("{:06}", secret.code_at(step_at(now)));
        assert_eq!(secret.verify(&good, now, None), Some(1));
        let arabic_indic: String = good.chars().map(|c| char::from_u32(0x0660 + (c as u32 - 0x30)).unwrap()).collect();
        let fullwidth: String = good.chars().map(|c| char::from_u32(0xff10 + (c as u32 - 0x30)).unwrap()).collect();
        for bad in [
            String::new(),
            good[..5].to_owned(),
            format!("{good}0"),
            format!(" {good}"),
            format!("{good}\n"),
            format!("+{}", &good[1..]),
            format!("{} {}", &good[..3], &good[3..]),
            "94287082".to_owned(),
            arabic_indic,
            fullwidth,
        ] {
            assert_eq!(secret.verify(&bad, now, None), None, "{bad:?}");
        }
    }

    #[test]
    fn the_first_steps_have_no_step_before_them() {
        let secret = rfc_secret();
        assert_eq!(secret.verify(&format!("{:06}", secret.code_at(0)), 0, None), Some(0));
        assert_eq!(secret.verify(&format!("{:06}", secret.code_at(1)), 0, None), Some(1));
        assert_eq!(secret.verify(&format!("{:06}", secret.code_at(0)), 0, Some(0)), None);
    }

    #[test]
    fn base32_is_rfc_4648_without_padding() {
        // RFC 4648 section 10, padding removed.
        let vectors = [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ];
        for (bytes, text) in vectors {
            assert_eq!(base32(bytes.as_bytes()), text, "{bytes:?}");
        }
        assert_eq!(rfc_secret().to_base32(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
    }

    #[test]
    fn generated_secrets_are_160_random_bits() {
        let (one, two) = (TotpSecret::generate().unwrap(), TotpSecret::generate().unwrap());
        assert_eq!(one.expose_bytes().len(), SECRET_BYTES);
        assert_ne!(one.expose_bytes(), two.expose_bytes());
        assert_eq!(one.to_base32().len(), 32);
        assert!(TotpSecret::from_bytes(&[7; 19]).is_none());
        assert!(TotpSecret::from_bytes(&[7; 21]).is_none());
        assert_eq!(TotpSecret::from_bytes(one.expose_bytes()).unwrap().expose_bytes(), one.expose_bytes());
    }

    #[test]
    fn debug_shows_nothing_of_the_secret() {
        let secret = rfc_secret();
        let shown = format!("{secret:?}");
        assert_eq!(shown, "TotpSecret([REDACTED])");
        assert!(!shown.contains("GEZDGNBV") && !shown.contains("49, 50"));
    }

    #[test]
    fn the_otpauth_uri_percent_encodes_issuer_and_account() {
        let secret = rfc_secret();
        assert_eq!(
            secret.otpauth_uri("auth-svc", "alice"),
            "otpauth://totp/auth-svc:alice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=auth-svc\
             &algorithm=SHA1&digits=6&period=30"
        );
        assert_eq!(
            secret.otpauth_uri("ACME Co: Staging", "bob@example.com/ü?&="),
            "otpauth://totp/ACME%20Co%3A%20Staging:bob%40example.com%2F%C3%BC%3F%26%3D\
             ?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=ACME%20Co%3A%20Staging\
             &algorithm=SHA1&digits=6&period=30"
        );
    }

    #[test]
    fn the_qr_code_is_an_svg_image_of_the_uri() {
        let uri = rfc_secret().otpauth_uri("auth-svc", "alice");
        let svg = qr_svg(&uri).unwrap();
        assert!(svg.starts_with("<?xml") && svg.contains("<svg xmlns=\"http://www.w3.org/2000/svg\""), "{svg}");
        assert!(svg.ends_with("</svg>"), "{svg}");
        // Drawn from the URI: another URI is another picture.
        assert_ne!(qr_svg(&rfc_secret().otpauth_uri("auth-svc", "bob")).unwrap(), svg);
        // Longer than the largest QR code holds (2,331 bytes at the default error correction).
        assert!(qr_svg(&"x".repeat(2_400)).is_err());
    }
}
