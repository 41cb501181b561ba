//! Service accounts (OAuth 2.0 clients): what their ids, scopes, audiences and names may be,
//! and their secrets.
//!
//! A secret is [`SECRET_PREFIX`] and 32 random bytes as base64url, handed out once and stored
//! only as its SHA-256. The prefix makes a leaked secret recognisable to secret scanners (and to
//! `scripts/check-logs-for-secrets.sh`).
//! Being random and that long, it cannot be guessed from its hash, so no slow password hash
//! is needed (and a token request costs no hashing slot).

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::Rng;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub const MAX_CLIENT_ID_CHARS: usize = 64;
pub const MAX_NAME_CHARS: usize = 128;
pub const MAX_SCOPE_CHARS: usize = 128;
pub const MAX_SCOPES: usize = 32;
pub const MAX_AUDIENCES: usize = 16;
/// The scopes, and the audiences, joined: each list goes into every token, and a token must
/// stay under `MAX_TOKEN_BYTES` (4 KiB) for the verifiers to take it.
pub const MAX_LIST_CHARS: usize = 1024;
/// The role a client gets when none is given.
pub const DEFAULT_CLIENT_ROLE: &str = "service";
/// What every client secret starts with.
pub const SECRET_PREFIX: &str = "ascs_";
/// Longest secret worth hashing; ours are 48 characters.
const MAX_SECRET_BYTES: usize = 256;

/// A service account as stored (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceClient {
    pub client_id: String,
    pub name: String,
    pub role: String,
    pub scopes: Vec<String>,
    pub audiences: Vec<String>,
    pub disabled: bool,
    pub created_at: chrono::NaiveDateTime,
    pub secret_rotated_at: chrono::NaiveDateTime,
    /// Until when the secret before the last rotation works; `None` when it never will again.
    pub previous_secret_expires_at: Option<chrono::NaiveDateTime>,
}

/// `A-Z a-z 0-9 . _ -`, 1..=64, with at least one letter: safe in a URL, a log line and an
/// HTTP Basic header unencoded, and never a user's `sub` (a user id, all digits), so a token's
/// `sub` names one principal only (RFC 9068 section 5).
pub fn check_client_id(client_id: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if client_id.is_empty()
        || client_id.len() > MAX_CLIENT_ID_CHARS
        || !client_id.chars().all(allowed)
        || !client_id.chars().any(|c| c.is_ascii_alphabetic())
    {
        return Err(format!(
            "client ids are 1..={MAX_CLIENT_ID_CHARS} characters of A-Z a-z 0-9 . _ -, with at least one letter"
        ));
    }
    Ok(())
}

/// An RFC 6749 section 3.3 scope token: `%x21 / %x23-5B / %x5D-7E`, at most 128 characters.
pub fn check_scope(scope: &str) -> Result<(), String> {
    let allowed = |b: u8| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b);
    if scope.is_empty() || scope.len() > MAX_SCOPE_CHARS || !scope.bytes().all(allowed) {
        return Err(format!(
            "a scope is 1..={MAX_SCOPE_CHARS} printable ASCII characters other than space, `\"` and `\\`: {:?}",
            scope.chars().take(MAX_SCOPE_CHARS).collect::<String>()
        ));
    }
    Ok(())
}

/// Audiences follow the scope rules (no spaces, so they can be stored and sent space-separated).
pub fn check_audience(audience: &str) -> Result<(), String> {
    check_scope(audience).map_err(|_| {
        format!("an audience is 1..={MAX_SCOPE_CHARS} printable ASCII characters other than space, `\"` and `\\`")
    })
}

pub fn check_name(name: &str) -> Result<(), String> {
    let length = name.trim().chars().count();
    if length == 0 || name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(format!("a client name is 1..={MAX_NAME_CHARS} characters, with no control characters"));
    }
    Ok(())
}

/// A list of scopes or audiences without repeats, in the order given, each checked.
pub fn checked_list(
    items: &[String],
    max: usize,
    what: &str,
    check: fn(&str) -> Result<(), String>,
) -> Result<Vec<String>, String> {
    let mut list: Vec<String> = Vec::new();
    for item in items {
        check(item)?;
        if !list.contains(item) {
            list.push(item.clone());
        }
    }
    if list.len() > max {
        return Err(format!("at most {max} {what}"));
    }
    Ok(list)
}

/// A generated client id: `svc-` and 16 lowercase hex digits.
pub fn generate_client_id() -> String {
    format!("svc-{:016x}", rand::rng().random::<u64>())
}

/// A new secret and the hash to store.
pub fn generate_secret() -> (SecretString, String) {
    let bytes: [u8; 32] = rand::rng().random();
    let secret = format!("{SECRET_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    let hash = hash_secret(&secret);
    (SecretString::from(secret), hash)
}

/// Lowercase hex SHA-256, as stored.
pub fn hash_secret(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Whether `presented` is the secret behind `stored_hash`, compared in constant time.
pub fn secret_matches(presented: &SecretString, stored_hash: &str) -> bool {
    let presented = presented.expose_secret();
    if presented.is_empty() || presented.len() > MAX_SECRET_BYTES {
        return false;
    }
    hash_secret(presented).as_bytes().ct_eq(stored_hash.as_bytes()).into()
}

/// Space-separated, as stored and as the `scope` claim carries them.
pub fn join(items: &[String]) -> String {
    items.join(" ")
}

pub fn split(stored: &str) -> Vec<String> {
    stored.split(' ').filter(|item| !item.is_empty()).map(str::to_owned).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_matches_its_hash_only() {
        let (secret, hash) = generate_secret();
        assert_eq!(secret.expose_secret().len(), 48);
        assert!(secret.expose_secret().starts_with(SECRET_PREFIX));
        assert_eq!(hash.len(), 64);
        assert!(secret_matches(&secret, &hash));
        let (other, _) = generate_secret();
        assert!(!secret_matches(&other, &hash));
        assert!(!secret_matches(&SecretString::from(""), &hash_secret("")));
    }

    #[test]
    fn hash_is_sha256_hex() {
        // FIPS 180-2's "abc" example.
        assert_eq!(hash_secret("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn scope_tokens_follow_rfc_6749() {
        for good in ["introspect", "orders:read", "a!#[]^~", "https://api.example/orders"] {
            assert_eq!(check_scope(good), Ok(()), "{good}");
        }
        for bad in ["", "two words", "quote\"", "back\\slash", "tab\t", "é", &"x".repeat(129)] {
            assert!(check_scope(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn client_ids_are_url_and_header_safe() {
        assert_eq!(check_client_id("billing-service.v2_a"), Ok(()));
        assert!(generate_client_id().starts_with("svc-"));
        assert_eq!(check_client_id(&generate_client_id()), Ok(()));
        for bad in ["", "a b", "a:b", "a/b", "ä", "42", "1.2", &"x".repeat(65)] {
            assert!(check_client_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn lists_drop_repeats_and_are_bounded() {
        let items: Vec<String> = ["a", "b", "a"].map(String::from).to_vec();
        assert_eq!(checked_list(&items, 2, "scopes", check_scope).unwrap(), ["a", "b"]);
        let many: Vec<String> = (0..3).map(|n| n.to_string()).collect();
        assert!(checked_list(&many, 2, "scopes", check_scope).is_err());
        assert_eq!(split(&join(&items[..2])), ["a", "b"]);
        assert!(split("").is_empty());
    }
}
