//! Recovery codes: the way back in for someone who lost their authenticator. Ten of them are
//! shown once when the second factor is turned on; each works once, in place of a code.
//!
//! A code is ten characters of RFC 4648's base32 alphabet in lowercase (50 bits from the OS
//! RNG), shown as `xxxxx-xxxxx`. The alphabet has no `0`, `1`, `8` or `9`, so nothing reads as
//! a letter it is not. People type them back in any case, with or without the dash or spaces;
//! [`canonical`] gives the one form that is hashed and compared.

use rand::{TryRngCore, rand_core::OsError, rngs::OsRng};
use zeroize::Zeroizing;

/// Characters of a code, dash not counted.
pub const CODE_CHARS: usize = 10;
const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// `count` fresh codes as they are shown (`xxxxx-xxxxx`).
pub fn generate(count: usize) -> Result<Vec<Zeroizing<String>>, OsError> {
    (0..count).map(|_| generate_one()).collect()
}

fn generate_one() -> Result<Zeroizing<String>, OsError> {
    let mut bytes = Zeroizing::new([0u8; CODE_CHARS]);
    OsRng.try_fill_bytes(&mut *bytes)?;
    let mut code = Zeroizing::new(String::with_capacity(CODE_CHARS + 1));
    for (index, byte) in bytes.iter().enumerate() {
        if index == CODE_CHARS / 2 {
            code.push('-');
        }
        // 256 is a multiple of 32: the low five bits are uniform.
        code.push(char::from(ALPHABET[usize::from(byte & 0x1f)]));
    }
    Ok(code)
}

/// The form a typed code is hashed in: lowercase, dashes and spaces dropped. `None` when what
/// is left is not [`CODE_CHARS`] characters of the alphabet (it cannot be a code).
pub fn canonical(typed: &str) -> Option<Zeroizing<String>> {
    let code: Zeroizing<String> =
        Zeroizing::new(typed.chars().filter(|c| *c != '-' && *c != ' ').map(|c| c.to_ascii_lowercase()).collect());
    let valid = code.len() == CODE_CHARS && code.bytes().all(|byte| ALPHABET.contains(&byte));
    valid.then_some(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_codes_are_shown_with_a_dash_and_read_back_in_any_case() {
        let codes = generate(10).expect("codes");
        assert_eq!(codes.len(), 10);
        for code in &codes {
            assert_eq!(code.len(), CODE_CHARS + 1);
            assert_eq!(code.as_bytes()[5], b'-');
            let stored = canonical(code).expect("a generated code is a code");
            assert_eq!(stored.as_str(), code.replace('-', ""));
            let shouted = code.to_uppercase().replace('-', " ");
            assert_eq!(canonical(&shouted).as_deref().map(String::as_str), Some(stored.as_str()));
        }
        let distinct: std::collections::HashSet<_> = codes.iter().map(|code| code.as_str()).collect();
        assert_eq!(distinct.len(), 10, "50 random bits each");
    }

    #[test]
    fn what_cannot_be_a_code_is_refused() {
        for typed in ["", "abcde-abcd", "abcde-abcdef", "abcde-abcd1", "abcde-abcd0", "abcdé-abcd", "123456"] {
            assert!(canonical(typed).is_none(), "{typed:?}");
        }
    }
}
