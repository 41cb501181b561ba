//! Password rules, applied before any hashing.

use crate::error::AuthError;

/// Longest password accepted anywhere: hashing cost must not grow with attacker input.
pub const MAX_PASSWORD_BYTES: usize = 1024;

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

#[cfg(test)]
mod tests {
    use super::*;

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
