//! Username and password rules, applied before any hashing or database work.

use crate::{config::MAX_PASSWORD_BYTES, error::AuthError};

pub const MAX_USERNAME_CHARS: usize = 64;

/// The stored form of a username: trimmed, 1..=64 characters, no control characters.
pub fn normalize_username(raw: &str) -> Result<String, AuthError> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(AuthError::InvalidArgument("username must not be empty".into()));
    }
    if name.chars().count() > MAX_USERNAME_CHARS {
        return Err(AuthError::InvalidArgument(format!("username must be at most {MAX_USERNAME_CHARS} characters")));
    }
    if name.chars().any(char::is_control) {
        return Err(AuthError::InvalidArgument("username must not contain control characters".into()));
    }
    Ok(name.to_owned())
}

/// A new password: at least `min_chars` characters, at most 1024 bytes.
pub fn check_new_password(password: &str, min_chars: usize) -> Result<(), AuthError> {
    check_password_size(password)?;
    if password.chars().count() < min_chars {
        return Err(AuthError::InvalidArgument(format!("password must be at least {min_chars} characters")));
    }
    Ok(())
}

/// Any presented password: present, and small enough to hash at a bounded cost.
pub fn check_password_size(password: &str) -> Result<(), AuthError> {
    if password.is_empty() {
        return Err(AuthError::InvalidArgument("password must not be empty".into()));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(AuthError::InvalidArgument(format!("password must be at most {MAX_PASSWORD_BYTES} bytes")));
    }
    Ok(())
}

/// Longest role name; roles travel in every access token.
pub const MAX_ROLE_CHARS: usize = 32;

/// Role names: a lowercase ASCII letter, then up to 31 of a-z 0-9 _ -.
pub fn check_role_name(role: &str) -> Result<(), String> {
    let mut chars = role.chars();
    let starts_with_letter = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    let rest_allowed = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-'));
    if !starts_with_letter || !rest_allowed || role.len() > MAX_ROLE_CHARS {
        return Err(format!("role names are 1..={MAX_ROLE_CHARS} characters: a-z first, then a-z 0-9 _ -"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_are_short_lowercase_words() {
        for good in ["user", "admin", "billing-reader", "a", "r2_d2"] {
            assert!(check_role_name(good).is_ok(), "{good}");
        }
        for bad in ["", "Admin", "1st", "ad min", "admin\n", "rôle", &"r".repeat(33)] {
            assert!(check_role_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn usernames_are_trimmed_and_bounded() {
        assert_eq!(normalize_username("  alice ").expect("valid"), "alice");
        assert_eq!(normalize_username(&"é".repeat(64)).expect("64 chars").chars().count(), 64);
        for bad in ["", "   ", "a\u{0}b", "tab\there", "new\nline", &"x".repeat(65)] {
            assert!(normalize_username(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn passwords_respect_min_chars_and_max_bytes() {
        assert!(check_new_password("12345678", 8).is_ok());
        assert!(check_new_password("1234567", 8).is_err());
        assert!(check_new_password(&"p".repeat(1024), 8).is_ok());
        assert!(check_new_password(&"p".repeat(1025), 8).is_err());
        // 8 characters of 2 bytes each pass the minimum; 513 of them break the byte cap.
        assert!(check_new_password(&"é".repeat(8), 8).is_ok());
        assert!(check_new_password(&"é".repeat(513), 8).is_err());
    }
}
